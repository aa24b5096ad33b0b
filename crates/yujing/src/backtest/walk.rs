//! Walk-forward replay: the engine fed in arrival order, with every period's scores and
//! open alerts recorded as they stood when that period's reports were all due.
//!
//! The engine's final state is *not* the walk-forward view: a correction or a late report
//! re-derives an entity's alert history, so the alerts an engine holds at the end can differ
//! from what the desk saw at the time. The backtest needs what was known at the time, so the
//! replay cuts its batches where the watermark passes a period's deadline, and records the
//! period as of that moment.

use crate::config::Config;
use crate::engine::{Engine, ledger_settings};
use anyhow::Result;
use chrono::{DateTime, Datelike, FixedOffset};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use yujing_alert::RulePack;
use yujing_ingest::{FileSourceConfig, Input};
use yujing_model::{
    AlertState, DecodeLimits, EntityKind, InstitutionScore, Level, Period, SectorScope, Severity, period::china_tz,
};

/// One institution-period as it stood at the period's close.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The institution's score of the period (its id, sector, district and indicators).
    pub score: InstitutionScore,
    /// Its trend z-score, as it stood.
    pub trend_z: Option<f64>,
    /// The institution-level rules with an alert open at the period, and the severity it
    /// had reached by then.
    pub alerts: BTreeMap<String, Severity>,
}

/// One district-period as it stood at the period's close.
#[derive(Debug, Clone, PartialEq)]
pub struct DistrictSnapshot {
    /// The district code.
    pub code: u32,
    /// The period.
    pub period: Period,
    /// The district's all-sector score.
    pub score: f64,
    /// The district rules with an alert open at the period (any sector scope), and the
    /// severity reached by then.
    pub alerts: BTreeMap<String, Severity>,
}

/// Everything the walk-forward replay recorded.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Snapshots in period then institution order.
    pub snapshots: Vec<Snapshot>,
    /// District snapshots in period then district order.
    pub districts: Vec<DistrictSnapshot>,
}

impl History {
    /// The first and last period recorded.
    pub fn span(&self) -> Option<(Period, Period)> {
        Some((self.snapshots.first()?.score.period, self.snapshots.last()?.score.period))
    }
}

/// The latest period whose deadline a watermark has passed (the engine's rule).
fn due_period(config: &Config, max_submitted: DateTime<FixedOffset>) -> Option<Period> {
    let s = ledger_settings(config);
    let t = (max_submitted - s.allowed_lateness).with_timezone(&china_tz()) - s.report_deadline;
    Some(Period::new(t.year(), t.month())?.add_months(-1))
}

/// Replays report files through a fresh engine, recording each period at its close.
pub fn walk_forward(config: &Config, rules: RulePack, files: &[PathBuf], progress: bool) -> Result<History> {
    let source_config =
        FileSourceConfig { paths: files.to_vec(), batch_size: config.ingest.batch_size, ..Default::default() };
    let mut source = source_config.build()?;
    let bar = if progress { ProgressBar::new(source.total_bytes()) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} walk-forward [{bar:32}] {bytes}/{total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let limits = DecodeLimits { max_report_bytes: config.ingest.max_report_bytes };
    let mut engine = Engine::new(config, rules);
    let mut history = History::default();
    let mut recorded: Option<Period> = None;
    let mut max_submitted: Option<DateTime<FixedOffset>> = None;
    let mut predicted: Option<Period> = None;
    let mut pending: Vec<Input> = Vec::new();
    while let Some(batch) = source.next_batch()? {
        for input in batch {
            // Where the watermark would pass a deadline, the batch is cut: what came before
            // is processed, then this input alone, then the period is recorded.
            let crossing = match yujing_model::decode(&input.bytes, &limits) {
                Ok(r) if max_submitted.is_none_or(|m| r.submitted_at > m) => {
                    max_submitted = Some(r.submitted_at);
                    let due = due_period(config, r.submitted_at);
                    let crosses = due > predicted;
                    predicted = predicted.max(due);
                    crosses
                }
                _ => false,
            };
            if crossing {
                engine.process(&std::mem::take(&mut pending))?;
                engine.process(std::slice::from_ref(&input))?;
                record(&engine, &mut recorded, &mut history, None);
            } else {
                pending.push(input);
                if pending.len() >= config.ingest.batch_size {
                    engine.process(&std::mem::take(&mut pending))?;
                    record(&engine, &mut recorded, &mut history, None);
                }
            }
        }
        bar.set_position(source.read_bytes());
        bar.set_message(format!("through {}", recorded.map(|p| p.to_string()).unwrap_or_default()));
    }
    engine.process(&pending)?;
    // The periods never closed within the stream are recorded as the stream ends.
    let last = engine.ledger().institutions().filter_map(|r| r.latest().map(|l| l.period)).max();
    record(&engine, &mut recorded, &mut history, last);
    bar.finish_and_clear();
    Ok(history)
}

/// Records every period after `recorded` up to the engine's complete period (or `through`).
fn record(engine: &Engine, recorded: &mut Option<Period>, history: &mut History, through: Option<Period>) {
    let Some(due) = engine.complete_through().max(through) else {
        return;
    };
    if recorded.is_some_and(|r| r >= due) {
        return;
    }
    let scores = engine.institution_scores();
    let Some(first) = scores.iter().map(|s| s.period).min() else {
        return;
    };
    let from = recorded.map_or(first, |r| r.add_months(1).max(first));
    // The alerts by institution and by district, once for all the periods being recorded.
    let mut by_inst: HashMap<&str, Vec<&yujing_model::Alert>> = HashMap::new();
    let mut by_district: HashMap<&str, Vec<&yujing_model::Alert>> = HashMap::new();
    for a in engine.alerts() {
        let map = if a.entity_kind == EntityKind::Institution { &mut by_inst } else { &mut by_district };
        map.entry(&*a.entity_id).or_default().push(a);
    }
    let mut period = from;
    while period <= due {
        let mut rows: Vec<Snapshot> = scores
            .iter()
            .filter(|s| s.period == period)
            .map(|s| {
                let alerts = severities(by_inst.get(&*s.institution_id).into_iter().flatten().copied(), period);
                Snapshot { score: (*s).clone(), trend_z: engine.trend_z(s), alerts }
            })
            .collect();
        rows.sort_by(|a, b| a.score.institution_id.cmp(&b.score.institution_id));
        history.snapshots.extend(rows);
        for d in yujing_model::DISTRICTS.iter() {
            let code = d.code.to_string();
            let Some(agg) = engine.aggregate(Level::District, &code, SectorScope::All, period) else {
                continue;
            };
            let alerts = severities(by_district.get(code.as_str()).into_iter().flatten().copied(), period);
            history.districts.push(DistrictSnapshot { code: d.code, period, score: agg.score, alerts });
        }
        period = period.add_months(1);
    }
    *recorded = Some(due);
}

/// The rules with an alert open at `period`, each with the highest severity reached.
fn severities<'a>(alerts: impl Iterator<Item = &'a yujing_model::Alert>, period: Period) -> BTreeMap<String, Severity> {
    let mut m: BTreeMap<String, Severity> = BTreeMap::new();
    for a in alerts {
        if let Some(sev) = active_severity(a, period) {
            let e = m.entry(a.rule.to_string()).or_insert(sev);
            *e = (*e).max(sev);
        }
    }
    m
}

/// The severity an alert had reached at `period`, if it was open then.
pub(crate) fn active_severity(a: &yujing_model::Alert, period: Period) -> Option<Severity> {
    if a.period > period {
        return None;
    }
    let closed = matches!(a.state, AlertState::AutoResolved | AlertState::Resolved | AlertState::Superseded);
    if closed && a.last_period <= period {
        return None;
    }
    a.history.iter().filter(|s| s.period <= period).map(|s| s.severity).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_due_period_follows_the_deadline() {
        let config = Config::load(None).unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        // 15 days after March ends, March is due; a day before, February is the latest.
        assert_eq!(due_period(&config, at("2021-04-16T00:00:01+08:00")), Period::new(2021, 3));
        assert_eq!(due_period(&config, at("2021-04-14T00:00:00+08:00")), Period::new(2021, 2));
    }
}
