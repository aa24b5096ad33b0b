//! Aggregates: districts, regions and the city, per sector and for all sectors together.
//!
//! Ratios are recomputed from sums, as official statistics are (Σnpl / Σloans, not the mean
//! of ratios); scores are exposure-weighted means of institution scores.

use crate::Result;
use crate::config::ScoreConfig;
use foldhash::{HashMap, HashMapExt};
use polars::prelude::*;
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

/// The integer sums behind one aggregate. Every field is an exact integer sum, so adding
/// groups together gives what summing their rows would, in any order.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    institutions: i64,
    /// Σ exposure in fen.
    exposure: i64,
    /// Σ round(score × exposure in yuan).
    weighted: i64,
    /// Σ score in millionths of a point.
    score_sum: i64,
    grades: [i64; 5],
    sums: [i64; 6],
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.institutions += o.institutions;
        self.exposure += o.exposure;
        self.weighted += o.weighted;
        self.score_sum += o.score_sum;
        for k in 0..5 {
            self.grades[k] += o.grades[k];
        }
        for k in 0..6 {
            self.sums[k] += o.sums[k];
        }
    }
}

/// Computes every aggregate of the given institution scores (each with its winning report),
/// for every period present: district, region and city, each per sector and for `all`.
/// Output is ordered by period, level, entity and sector.
pub fn aggregate(config: &ScoreConfig, rows: &[(&InstitutionScore, &Report)]) -> Result<Vec<AggregateScore>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let n = rows.len();
    // Sums are taken over integers (amounts in fen, score × exposure in yuan-points, scores
    // in millionths): integer addition is exact and associative, so the aggregates are
    // bit-identical whatever order or partitioning polars sums in, and a region's or the
    // city's sums are its districts' added up.
    let fen = |v: f64| (v * 100.0).round() as i64;
    let mut cols = vec![
        Column::new("period".into(), rows.iter().map(|(s, _)| s.period.index()).collect::<Vec<i32>>()),
        Column::new("sector".into(), rows.iter().map(|(s, _)| s.sector as u32).collect::<Vec<u32>>()),
        Column::new("district".into(), rows.iter().map(|(s, _)| s.district_code).collect::<Vec<u32>>()),
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
        len().cast(DataType::Int64).alias("institutions"),
        col("exposure").sum().alias("exposure"),
        col("weighted").sum().alias("weighted"),
        col("score").sum().alias("score_sum"),
    ];
    for g in Grade::ALL {
        aggs.push(col("grade").eq(lit(g as u32)).sum().cast(DataType::Int64).alias(format!("g{}", g as u32)));
    }
    for name in SUMS {
        aggs.push(col(name).sum().alias(name));
    }
    // One pass at the finest grain: district, sector and period.
    let g = df.lazy().group_by([col("period"), col("district"), col("sector")]).agg(aggs).collect()?;
    let finest = read_groups(&g)?;

    // Then every level and scope, from the districts' sums.
    let mut groups: HashMap<MemberKey, Sums> = HashMap::new();
    for ((period, code, sector), sums) in finest {
        let region = district(code).map_or(Region::MainUrban, |d| d.region);
        for (level, code, region) in
            [(Level::District, code, None), (Level::Region, 0, Some(region)), (Level::City, 0, None)]
        {
            for scope in [SectorScope::One(sector), SectorScope::All] {
                groups.entry((period, level, code, region, scope)).or_default().add(&sums);
            }
        }
    }
    let mut out: Vec<AggregateScore> = groups.into_iter().map(|(key, sums)| aggregate_of(config, key, &sums)).collect();
    add_contributors(rows, &mut out);
    out.sort_by(|a, b| (a.period, a.level, &a.entity_id, a.sector).cmp(&(b.period, b.level, &b.entity_id, b.sector)));
    Ok(out)
}

/// The finest group: period, district code and sector.
type GroupKey = (Period, u32, Sector);

/// The sums of each (period, district, sector) group polars computed.
fn read_groups(g: &DataFrame) -> Result<Vec<(GroupKey, Sums)>> {
    let period = g.column("period")?.i32()?;
    let district = g.column("district")?.u32()?;
    let sector = g.column("sector")?.u32()?;
    let int = |name: &str| -> Result<Vec<i64>> { Ok(g.column(name)?.i64()?.iter().map(|v| v.unwrap_or(0)).collect()) };
    let (count, exposure, weighted, score_sum) =
        (int("institutions")?, int("exposure")?, int("weighted")?, int("score_sum")?);
    let grades: Vec<Vec<i64>> = Grade::ALL.iter().map(|gr| int(&format!("g{}", *gr as u32))).collect::<Result<_>>()?;
    let sums: Vec<Vec<i64>> = SUMS.iter().map(|s| int(s)).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(g.height());
    for i in 0..g.height() {
        let sector = sector.get(i).and_then(|s| Sector::ALL.into_iter().find(|x| *x as u32 == s));
        let (Some(p), Some(d), Some(sector)) = (period.get(i), district.get(i), sector) else {
            return Err(crate::Error::Input(format!("aggregate group {i} has no period, district or sector")));
        };
        let s = Sums {
            institutions: count[i],
            exposure: exposure[i],
            weighted: weighted[i],
            score_sum: score_sum[i],
            grades: std::array::from_fn(|k| grades[k][i]),
            sums: std::array::from_fn(|k| sums[k][i]),
        };
        out.push(((Period::from_index(p), d, sector), s));
    }
    Ok(out)
}

/// The aggregate of one group from its sums.
fn aggregate_of(config: &ScoreConfig, (period, level, code, region, scope): MemberKey, s: &Sums) -> AggregateScore {
    let entity_id = match level {
        Level::District => code.to_string(),
        Level::Region => region.unwrap_or(Region::MainUrban).id().to_string(),
        _ => CITY_CODE.to_string(),
    };
    let f = |v: i64| v as f64;
    let (count, exposure, weighted, score_sum) = (f(s.institutions), f(s.exposure), f(s.weighted), f(s.score_sum));
    let sums: [f64; 6] = s.sums.map(f);
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    // exposure is in fen, weighted in yuan-points, score_sum in millionths of a point.
    let score = if exposure > 0.0 { weighted / (exposure / 100.0) } else { score_sum / 1e6 / count.max(1.0) };
    let has = |x: Sector| matches!(scope, SectorScope::All) || scope == SectorScope::One(x);
    let lending = has(Sector::Bank) || has(Sector::Microloan);
    AggregateScore {
        level,
        entity_name: entity_name(level, &entity_id),
        entity_id,
        sector: scope,
        period,
        score,
        grade: config.grades.grade(score),
        institutions: s.institutions as u32,
        grade_counts: s.grades.map(|g| g as u32),
        exposure: exposure / 100.0,
        npl_ratio: if lending { ratio(sums[0], sums[1]) } else { None },
        payout_rate: if has(Sector::Guarantee) { ratio(sums[2], sums[3]) } else { None },
        p2p_complaints: has(Sector::P2pResidual).then_some(sums[4] / 100.0),
        p2p_lenders_unpaid: has(Sector::P2pResidual).then_some(sums[5] / 100.0),
        top: Vec::new(),
    }
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
///
/// One pass over the rows keeps each aggregate's best five so far: the order is total, so
/// this gives what sorting every member and taking the first five would, without holding
/// a list of members per aggregate (a period's city aggregate has every row).
fn add_contributors(rows: &[(&InstitutionScore, &Report)], out: &mut [AggregateScore]) {
    let index: HashMap<MemberKey, usize> =
        out.iter().enumerate().filter_map(|(i, a)| Some((member_key(a)?, i))).collect();
    let mut best: Vec<Vec<(f64, &InstitutionScore)>> = vec![Vec::new(); out.len()];
    for (s, _) in rows {
        let region = district(s.district_code).map_or(Region::MainUrban, |d| d.region);
        for (level, code, region) in
            [(Level::District, s.district_code, None), (Level::Region, 0, Some(region)), (Level::City, 0, None)]
        {
            for scope in [SectorScope::One(s.sector), SectorScope::All] {
                let Some(&i) = index.get(&(s.period, level, code, region, scope)) else { continue };
                let a = &out[i];
                let weight =
                    if a.exposure > 0.0 { s.exposure / a.exposure } else { 1.0 / f64::from(a.institutions.max(1)) };
                keep_best(&mut best[i], (weight * s.score, s));
            }
        }
    }
    for (a, ranked) in out.iter_mut().zip(best) {
        a.top = ranked
            .into_iter()
            .map(|(points, s)| Contributor { institution_id: s.institution_id.to_string(), score: s.score, points })
            .collect();
    }
}

/// The contributors' order: most points first, ties by institution id.
fn contributor_order(x: &(f64, &InstitutionScore), y: &(f64, &InstitutionScore)) -> std::cmp::Ordering {
    y.0.total_cmp(&x.0).then_with(|| x.1.institution_id.cmp(&y.1.institution_id))
}

/// Adds a candidate to a list of at most [`TOP_CONTRIBUTORS`] kept in order.
fn keep_best<'a>(best: &mut Vec<(f64, &'a InstitutionScore)>, c: (f64, &'a InstitutionScore)) {
    if best.len() == TOP_CONTRIBUTORS {
        match best.last() {
            Some(worst) if contributor_order(&c, worst).is_lt() => {
                best.pop();
            }
            _ => return,
        }
    }
    let at = best.partition_point(|x| contributor_order(x, &c).is_lt());
    best.insert(at, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use yujing_model::score::OptF64;

    fn score(id: usize, score: f64) -> InstitutionScore {
        InstitutionScore {
            institution_id: Arc::from(format!("I{id:03}")),
            period: Period::new(2024, 1).unwrap(),
            sector: Sector::Bank,
            district_code: 500103,
            indicators: Box::default(),
            base_score: score,
            trend_delta: OptF64::NONE,
            trend_points: 0.0,
            score,
            grade: Grade::Normal,
            exposure: 0.0,
        }
    }

    proptest! {
        /// Keeping the best five while walking the members gives what sorting them all and
        /// taking the first five gives, ties on points included (few distinct points).
        #[test]
        fn keep_best_equals_sorting_all(points in proptest::collection::vec(0u8..6, 0..40)) {
            let scores: Vec<InstitutionScore> =
                points.iter().enumerate().map(|(i, p)| score(points.len() - i, f64::from(*p))).collect();
            let mut best = Vec::new();
            for s in &scores {
                keep_best(&mut best, (s.score, s));
            }
            let mut all: Vec<(f64, &InstitutionScore)> = scores.iter().map(|s| (s.score, s)).collect();
            all.sort_by(contributor_order);
            all.truncate(TOP_CONTRIBUTORS);
            let ids = |v: &[(f64, &InstitutionScore)]| v.iter().map(|(p, s)| (*p, s.institution_id.clone())).collect::<Vec<_>>();
            prop_assert_eq!(ids(&best), ids(&all));
        }
    }
}
