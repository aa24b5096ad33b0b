//! Writing results: scores (CSV or Parquet), alerts and dead letters (JSONL).

use crate::engine::Engine;
use anyhow::{Context, Result, bail};
use polars::prelude::*;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use yujing_model::{Alert, DeadLetter, Grade, Indicator, Level, district};

/// The score table: one row per (level, entity_id, sector, period).
pub fn scores_frame(engine: &Engine) -> Result<DataFrame> {
    let inst = engine.institution_scores();
    let aggs: Vec<_> = engine.aggregates().collect();
    let n = inst.len() + aggs.len();
    let mut level = Vec::with_capacity(n);
    let mut entity_id = Vec::with_capacity(n);
    let mut entity_name = Vec::with_capacity(n);
    let mut district_code: Vec<Option<String>> = Vec::with_capacity(n);
    let mut region: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut sector = Vec::with_capacity(n);
    let mut period = Vec::with_capacity(n);
    let mut score = Vec::with_capacity(n);
    let mut grade = Vec::with_capacity(n);
    let mut institutions = Vec::with_capacity(n);
    let mut counts: [Vec<u32>; 5] = Default::default();
    let mut exposure = Vec::with_capacity(n);
    let mut npl_ratio = Vec::with_capacity(n);
    let mut payout_rate = Vec::with_capacity(n);
    let mut base_score = Vec::with_capacity(n);
    let mut trend_z = Vec::with_capacity(n);
    let mut indicators: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(n); Indicator::ALL.len()];

    let mut name = (String::new(), String::new());
    for s in &inst {
        // Rows come grouped by institution: look each name up once.
        if *name.0 != *s.institution_id {
            let n = engine.ledger().institution(&s.institution_id).map(|r| r.name().to_string()).unwrap_or_default();
            name = (s.institution_id.to_string(), n);
        }
        let name = name.1.clone();
        level.push(Level::Institution.as_str());
        entity_id.push(s.institution_id.to_string());
        entity_name.push(name);
        district_code.push(Some(s.district_code.to_string()));
        region.push(district(s.district_code).map(|d| d.region.id()));
        sector.push(s.sector.as_str());
        period.push(s.period.to_string());
        score.push(s.score);
        grade.push(s.grade.as_str());
        institutions.push(1u32);
        for (k, c) in counts.iter_mut().enumerate() {
            c.push(u32::from(s.grade as usize == k));
        }
        exposure.push(s.exposure);
        npl_ratio.push(s.indicator(Indicator::NplRatio));
        payout_rate.push(s.indicator(Indicator::PayoutRate));
        base_score.push(Some(s.base_score));
        trend_z.push(engine.trend_z(s));
        for (k, i) in Indicator::ALL.iter().enumerate() {
            indicators[k].push(s.indicator(*i).filter(|v| v.is_finite()));
        }
    }
    for a in &aggs {
        level.push(a.level.as_str());
        entity_id.push(a.entity_id.clone());
        entity_name.push(a.entity_name.clone());
        let d = (a.level == Level::District).then(|| a.entity_id.clone());
        region.push(match a.level {
            Level::District => a.entity_id.parse().ok().and_then(district).map(|d| d.region.id()),
            Level::Region => yujing_model::Region::from_id(&a.entity_id).map(|r| r.id()),
            _ => None,
        });
        district_code.push(d);
        sector.push(a.sector.as_str());
        period.push(a.period.to_string());
        score.push(a.score);
        grade.push(a.grade.as_str());
        institutions.push(a.institutions);
        for (k, c) in counts.iter_mut().enumerate() {
            c.push(a.grade_counts[k]);
        }
        exposure.push(a.exposure);
        npl_ratio.push(a.npl_ratio);
        payout_rate.push(a.payout_rate);
        base_score.push(None);
        trend_z.push(None);
        for col in indicators.iter_mut() {
            col.push(None);
        }
    }
    let mut cols = vec![
        Column::new("level".into(), level),
        Column::new("entity_id".into(), entity_id),
        Column::new("entity_name".into(), entity_name),
        Column::new("district_code".into(), district_code),
        Column::new("region".into(), region),
        Column::new("sector".into(), sector),
        Column::new("period".into(), period),
        Column::new("score".into(), score),
        Column::new("grade".into(), grade),
        Column::new("institutions".into(), institutions),
    ];
    for (k, g) in Grade::ALL.iter().enumerate() {
        cols.push(Column::new(format!("grade_{}", g.as_str()).into(), std::mem::take(&mut counts[k])));
    }
    cols.push(Column::new("exposure".into(), exposure));
    cols.push(Column::new("npl_ratio".into(), npl_ratio));
    cols.push(Column::new("payout_rate".into(), payout_rate));
    cols.push(Column::new("base_score".into(), base_score));
    cols.push(Column::new("trend_z".into(), trend_z));
    for (k, i) in Indicator::ALL.iter().enumerate() {
        if matches!(i, Indicator::NplRatio | Indicator::PayoutRate) {
            continue;
        }
        cols.push(Column::new(i.as_str().into(), std::mem::take(&mut indicators[k])));
    }
    Ok(DataFrame::new(n, cols)?)
}

/// Writes the score table as CSV, or Parquet when the path ends in `.parquet`.
pub fn write_scores(engine: &Engine, path: &Path) -> Result<()> {
    let mut df = scores_frame(engine)?;
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => {
            ParquetWriter::new(file).finish(&mut df).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        Some("csv") | None => {
            CsvWriter::new(BufWriter::new(file))
                .include_header(true)
                .finish(&mut df)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        Some(other) => bail!("scores output {}: unknown extension .{other} (use .csv or .parquet)", path.display()),
    }
    Ok(())
}

/// Writes alerts as JSONL, one object per line.
pub fn write_alerts<'a>(alerts: impl Iterator<Item = &'a Alert>, path: &Path) -> Result<usize> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(file);
    let mut n = 0;
    for a in alerts {
        serde_json::to_writer(&mut w, a)?;
        w.write_all(b"\n")?;
        n += 1;
    }
    w.flush()?;
    Ok(n)
}

/// Appends dead letters as JSONL.
pub struct DeadLetterWriter {
    out: Option<BufWriter<File>>,
    written: u64,
}

impl DeadLetterWriter {
    /// A writer to `path` (appending when `append`), or one that only counts when `path`
    /// is `None`.
    pub fn create(path: Option<&Path>, append: bool) -> Result<DeadLetterWriter> {
        let out = match path {
            Some(p) => {
                let file =
                    std::fs::OpenOptions::new().create(true).write(true).append(append).truncate(!append).open(p);
                Some(BufWriter::new(file.with_context(|| format!("cannot create {}", p.display()))?))
            }
            None => None,
        };
        Ok(DeadLetterWriter { out, written: 0 })
    }

    /// Writes a batch of dead letters.
    pub fn write(&mut self, letters: &[DeadLetter]) -> Result<()> {
        if let Some(w) = &mut self.out {
            for d in letters {
                serde_json::to_writer(&mut *w, d)?;
                w.write_all(b"\n")?;
            }
        }
        self.written += letters.len() as u64;
        Ok(())
    }

    /// Flushes what was written so far (before the store commits the batch).
    pub fn flush(&mut self) -> Result<()> {
        if let Some(w) = &mut self.out {
            w.flush()?;
        }
        Ok(())
    }

    /// Flushes to disk.
    pub fn finish(mut self) -> Result<u64> {
        if let Some(w) = &mut self.out {
            w.flush()?;
        }
        Ok(self.written)
    }
}
