//! Aggregates: districts, regions and the city, per sector and for all sectors together.
//!
//! Ratios are recomputed from sums, as official statistics are (Σnpl / Σloans, not the mean
//! of ratios); scores are exposure-weighted means of institution scores.

use crate::Result;
use crate::config::ScoreConfig;
use polars::prelude::*;
use std::collections::HashMap;
use yujing_model::{
    AggregateScore, CITY_CODE, CITY_NAME, Contributor, Grade, InstitutionScore, Level, Metric, Period, Region, Report,
    Sector, SectorScope, district,
};

/// How many top contributors an aggregate lists.
pub const TOP_CONTRIBUTORS: usize = 5;

/// Sum columns: (name, metric per sector that feeds it).
fn sum_inputs(r: &Report) -> [f64; 6] {
    use Metric::*;
    let m = &r.metrics;
    match r.sector {
        Sector::Bank => [m.value(NplBalance), m.value(TotalLoans), 0.0, 0.0, 0.0, 0.0],
        Sector::Microloan => [m.value(NplBalance), m.value(LoanBalance), 0.0, 0.0, 0.0, 0.0],
        Sector::Guarantee => [0.0, 0.0, m.value(PayoutsYtd), m.value(ReleasedYtd), 0.0, 0.0],
        Sector::P2pResidual => [0.0, 0.0, 0.0, 0.0, m.value(ComplaintsInPeriod), m.value(LendersUnpaid)],
    }
}

const SUMS: [&str; 6] = ["npl", "loans", "payouts", "released", "complaints", "lenders"];

/// Computes every aggregate of the given institution scores (each with its winning report),
/// for every period present: district, region and city, each per sector and for `all`.
/// Output is ordered by period, level, entity and sector.
pub fn aggregate(config: &ScoreConfig, rows: &[(&InstitutionScore, &Report)]) -> Result<Vec<AggregateScore>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let n = rows.len();
    let region_of = |code: u32| district(code).map_or(Region::MainUrban, |d| d.region);
    // Sums are taken over integers (amounts in fen, score × exposure in yuan-points, scores
    // in millionths): integer addition is exact and associative, so the aggregates are
    // bit-identical whatever order or partitioning polars sums in.
    let fen = |v: f64| (v * 100.0).round() as i64;
    let mut cols = vec![
        Column::new("period".into(), rows.iter().map(|(s, _)| s.period.index()).collect::<Vec<i32>>()),
        Column::new("sector".into(), rows.iter().map(|(s, _)| s.sector.as_str()).collect::<Vec<&str>>()),
        Column::new("district".into(), rows.iter().map(|(s, _)| s.district_code).collect::<Vec<u32>>()),
        Column::new("region".into(), rows.iter().map(|(s, _)| region_of(s.district_code).id()).collect::<Vec<&str>>()),
        Column::new("city".into(), vec![CITY_CODE; n]),
        Column::new("score".into(), rows.iter().map(|(s, _)| (s.score * 1e6).round() as i64).collect::<Vec<i64>>()),
        Column::new("exposure".into(), rows.iter().map(|(s, _)| fen(s.exposure)).collect::<Vec<i64>>()),
        Column::new(
            "weighted".into(),
            rows.iter().map(|(s, _)| (s.score * s.exposure).round() as i64).collect::<Vec<i64>>(),
        ),
        Column::new("grade".into(), rows.iter().map(|(s, _)| s.grade as u32).collect::<Vec<u32>>()),
    ];
    let sums: Vec<[f64; 6]> = rows.iter().map(|(_, r)| sum_inputs(r)).collect();
    for (k, name) in SUMS.iter().enumerate() {
        cols.push(Column::new((*name).into(), sums.iter().map(|s| fen(s[k])).collect::<Vec<i64>>()));
    }
    let df = DataFrame::new(n, cols)?;

    let mut aggs = vec![
        len().alias("institutions"),
        col("exposure").sum().alias("exposure"),
        col("weighted").sum().alias("weighted"),
        col("score").sum().alias("score_sum"),
    ];
    for g in Grade::ALL {
        aggs.push(col("grade").eq(lit(g as u32)).sum().alias(format!("g{}", g as u32)));
    }
    for name in SUMS {
        aggs.push(col(name).sum().alias(name));
    }

    let mut out = Vec::new();
    for (level, key) in [(Level::District, "district"), (Level::Region, "region"), (Level::City, "city")] {
        for by_sector in [true, false] {
            let mut keys = vec![col("period"), col(key)];
            if by_sector {
                keys.push(col("sector"));
            }
            let g = df.clone().lazy().group_by(keys).agg(aggs.clone()).collect()?;
            read_groups(config, &g, level, key, by_sector, &mut out)?;
        }
    }
    add_contributors(rows, &mut out);
    out.sort_by(|a, b| (a.period, a.level, &a.entity_id, a.sector).cmp(&(b.period, b.level, &b.entity_id, b.sector)));
    Ok(out)
}

fn read_groups(
    config: &ScoreConfig,
    g: &DataFrame,
    level: Level,
    key: &str,
    by_sector: bool,
    out: &mut Vec<AggregateScore>,
) -> Result<()> {
    let period = g.column("period")?.i32()?;
    // District codes are grouped as integers (no string per row) and named here.
    let entity = g.column(key)?.cast(&DataType::String)?;
    let entity = entity.str()?;
    let sector = if by_sector { Some(g.column("sector")?.str()?) } else { None };
    let f = |name: &str| -> Result<Vec<f64>> {
        Ok(g.column(name)?.cast(&DataType::Float64)?.f64()?.iter().map(|v| v.unwrap_or(0.0)).collect())
    };
    let (count, exposure, weighted, score_sum) = (f("institutions")?, f("exposure")?, f("weighted")?, f("score_sum")?);
    let grades: Vec<Vec<f64>> = Grade::ALL.iter().map(|gr| f(&format!("g{}", *gr as u32))).collect::<Result<_>>()?;
    let sums: Vec<Vec<f64>> = SUMS.iter().map(|s| f(s)).collect::<Result<_>>()?;
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    for i in 0..g.height() {
        let entity_id = entity.get(i).unwrap_or_default().to_string();
        let scope = match &sector {
            Some(s) => SectorScope::One(Sector::parse(s.get(i).unwrap_or_default()).unwrap_or(Sector::Bank)),
            None => SectorScope::All,
        };
        // exposure is in fen, weighted in yuan-points, score_sum in millionths of a point.
        let score = if exposure[i] > 0.0 {
            weighted[i] / (exposure[i] / 100.0)
        } else {
            score_sum[i] / 1e6 / count[i].max(1.0)
        };
        let has = |s: Sector| matches!(scope, SectorScope::All) || scope == SectorScope::One(s);
        let lending = has(Sector::Bank) || has(Sector::Microloan);
        out.push(AggregateScore {
            level,
            entity_name: entity_name(level, &entity_id),
            entity_id,
            sector: scope,
            period: Period::from_index(period.get(i).unwrap_or_default()),
            score,
            grade: config.grades.grade(score),
            institutions: count[i] as u32,
            grade_counts: std::array::from_fn(|k| grades[k][i] as u32),
            exposure: exposure[i] / 100.0,
            npl_ratio: if lending { ratio(sums[0][i], sums[1][i]) } else { None },
            payout_rate: if has(Sector::Guarantee) { ratio(sums[2][i], sums[3][i]) } else { None },
            p2p_complaints: has(Sector::P2pResidual).then_some(sums[4][i] / 100.0),
            p2p_lenders_unpaid: has(Sector::P2pResidual).then_some(sums[5][i] / 100.0),
            top: Vec::new(),
        });
    }
    Ok(())
}

/// The Chinese name of a district, region or the city.
pub fn entity_name(level: Level, id: &str) -> String {
    match level {
        Level::District => id.parse().ok().and_then(district).map_or_else(|| id.to_string(), |d| d.name_zh.to_string()),
        Level::Region => Region::from_id(id).map_or_else(|| id.to_string(), |r| r.name_zh().to_string()),
        Level::City => CITY_NAME.to_string(),
        Level::Institution => id.to_string(),
    }
}

/// The member key of an aggregate: period, level, entity and scope, without allocating
/// (a district by its code, a region by itself, the city as neither).
type MemberKey = (Period, Level, u32, Option<Region>, SectorScope);

fn member_key(a: &AggregateScore) -> Option<MemberKey> {
    let (code, region) = match a.level {
        Level::District => (a.entity_id.parse().ok()?, None),
        Level::Region => (0, Some(Region::from_id(&a.entity_id)?)),
        _ => (0, None),
    };
    Some((a.period, a.level, code, region, a.sector))
}

/// Fills each aggregate's top contributors: the institutions adding the most points
/// (exposure share × score), ties broken by institution id.
fn add_contributors(rows: &[(&InstitutionScore, &Report)], out: &mut [AggregateScore]) {
    let mut members: HashMap<MemberKey, Vec<&InstitutionScore>> = HashMap::new();
    for (s, _) in rows {
        let region = district(s.district_code).map_or(Region::MainUrban, |d| d.region);
        for (level, code, region) in
            [(Level::District, s.district_code, None), (Level::Region, 0, Some(region)), (Level::City, 0, None)]
        {
            for scope in [SectorScope::One(s.sector), SectorScope::All] {
                members.entry((s.period, level, code, region, scope)).or_default().push(s);
            }
        }
    }
    for a in out.iter_mut() {
        let Some(m) = member_key(a).and_then(|k| members.get(&k)) else {
            continue;
        };
        let weight = |s: &InstitutionScore| {
            if a.exposure > 0.0 { s.exposure / a.exposure } else { 1.0 / m.len() as f64 }
        };
        let mut ranked: Vec<(f64, &InstitutionScore)> = m.iter().map(|s| (weight(s) * s.score, *s)).collect();
        let order = |x: &(f64, &InstitutionScore), y: &(f64, &InstitutionScore)| {
            y.0.total_cmp(&x.0).then_with(|| x.1.institution_id.cmp(&y.1.institution_id))
        };
        // A total order, so selecting the first five and sorting them equals sorting all.
        if ranked.len() > TOP_CONTRIBUTORS {
            ranked.select_nth_unstable_by(TOP_CONTRIBUTORS - 1, order);
            ranked.truncate(TOP_CONTRIBUTORS);
        }
        ranked.sort_by(order);
        a.top = ranked
            .into_iter()
            .map(|(points, s)| Contributor { institution_id: s.institution_id.clone(), score: s.score, points })
            .collect();
    }
}
