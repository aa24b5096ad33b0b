//! Institution scores: indicators, sub-scores and the base composite in polars, then the
//! trend adjustment (statrs) and grades.

use crate::config::ScoreConfig;
use crate::trend::TrendBaseline;
use crate::{Error, Result};
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use yujing_model::{Grade, Indicator, IndicatorScore, InstitutionScore, Metric, Period, Report, Sector};

/// The polars expression that derives an indicator from the sector's metric columns.
/// Ratios over zero are `inf` (or null for 0/0): `inf` scores at the risky end or the safe
/// end by direction, null scores 0.
fn indicator_expr(sector: Sector, indicator: Indicator) -> Expr {
    use Indicator::*;
    use Metric::*;
    let m = |x: Metric| col(x.as_str());
    let ratio = |a: Metric, b: Metric| m(a) / m(b);
    let e = match (sector, indicator) {
        (Sector::Bank, NplRatio) => ratio(NplBalance, TotalLoans),
        (Sector::Bank, SpecialMentionRatio) => ratio(SpecialMentionBalance, TotalLoans),
        (Sector::Bank, ProvisionCoverage) => ratio(LoanLossProvision, NplBalance),
        (Sector::Bank, Indicator::CapitalAdequacyRatio) => m(Metric::CapitalAdequacyRatio),
        (Sector::Microloan, NplRatio) => ratio(NplBalance, LoanBalance),
        (Sector::Microloan, Concentration) => ratio(LargestBorrowerBalance, NetAssets),
        (Sector::Microloan, Leverage) => ratio(Borrowings, NetAssets),
        (Sector::Guarantee, PayoutRate) => ratio(PayoutsYtd, ReleasedYtd),
        (Sector::Guarantee, Leverage) => ratio(OutstandingGuarantees, NetAssets),
        (Sector::Guarantee, Concentration) => ratio(LargestClientExposure, NetAssets),
        (Sector::Guarantee, RecoveryRate) => ratio(RecoveriesYtd, PayoutsYtd),
        (Sector::P2pResidual, RepaymentProgress) => lit(1.0) - ratio(OutstandingPrincipal, PrincipalAtExit),
        (Sector::P2pResidual, Stall) => ratio(RepaidInPeriod, OutstandingPrincipal),
        (Sector::P2pResidual, ComplaintsPer1000Lenders) => m(ComplaintsInPeriod) * lit(1000.0) / m(LendersUnpaid),
        (s, i) => unreachable!("{i} is not an indicator of {s}"),
    };
    e.fill_nan(lit(NULL))
}

/// Builds the sector's frame: one row per report, one column per metric.
fn frame(sector: Sector, reports: &[&Report]) -> Result<DataFrame> {
    let n = reports.len();
    let mut cols: Vec<Column> = Vec::with_capacity(sector.metrics().len() + 3);
    cols.push(Column::new("row".into(), (0..n as u32).collect::<Vec<u32>>()));
    cols.push(Column::new("period".into(), reports.iter().map(|r| r.period.index()).collect::<Vec<i32>>()));
    for (k, m) in sector.metrics().iter().enumerate() {
        let values: Vec<f64> = reports.iter().map(|r| r.metrics.values()[k]).collect();
        cols.push(Column::new(m.as_str().into(), values));
    }
    Ok(DataFrame::new(n, cols)?)
}

/// What the polars pass computes for one report.
struct BaseRow {
    indicators: Vec<IndicatorScore>,
    base: f64,
}

/// Indicators, sub-scores and the weighted base score of every report, in one polars pass.
///
/// In three steps, each reading the columns of the one before, so that every indicator and
/// sub-score is computed once (the crate builds polars without common-subexpression
/// elimination): the indicators, then their sub-scores, then the base score from those.
fn base_scores(config: &ScoreConfig, sector: Sector, reports: &[&Report]) -> Result<Vec<BaseRow>> {
    let cutoffs = config.sector_cutoffs(sector);
    let (mut indicators, mut subs) = (Vec::with_capacity(cutoffs.len()), Vec::with_capacity(cutoffs.len()));
    let mut exprs = Vec::with_capacity(cutoffs.len() * 2 + 2);
    let mut weighted = Vec::with_capacity(cutoffs.len());
    exprs.push(col("row"));
    for (ind, c) in &cutoffs {
        let name = ind.as_str();
        let sub = format!("{name}__sub");
        indicators.push(indicator_expr(sector, *ind).alias(name));
        // Clamped to [0, 1] with NaN and null as 0. NaN goes first: polars orders NaN above
        // every number. (`when`/`then` runs polars' vectorised kernels, where `clip` takes a
        // value-by-value path that cost more than the rest of the pass.)
        let x = ((col(name) - lit(c.safe)) / lit(c.critical - c.safe)).fill_nan(lit(0.0));
        let scaled = when(x.clone().lt(lit(0.0)))
            .then(lit(0.0))
            .when(x.clone().gt(lit(1.0)))
            .then(lit(1.0))
            .otherwise(x)
            .fill_null(lit(0.0))
            * lit(100.0);
        subs.push(scaled.alias(sub.as_str()));
        exprs.push(col(name));
        exprs.push(col(sub.as_str()));
        weighted.push(col(sub.as_str()) * lit(c.weight));
    }
    let base = weighted.into_iter().reduce(|a, b| a + b).unwrap_or_else(|| lit(0.0));
    exprs.push(base.alias("base"));
    let out = frame(sector, reports)?.lazy().with_columns(indicators).with_columns(subs).select(exprs).collect()?;

    let base = out.column("base")?.f64()?;
    let mut rows: Vec<BaseRow> = base
        .iter()
        .map(|b| BaseRow { indicators: Vec::with_capacity(cutoffs.len()), base: b.unwrap_or(0.0) })
        .collect();
    for (ind, _) in &cutoffs {
        let values = out.column(ind.as_str())?.f64()?;
        let subs = out.column(&format!("{}__sub", ind.as_str()))?.f64()?;
        for (row, (v, s)) in rows.iter_mut().zip(values.iter().zip(subs.iter())) {
            row.indicators.push(IndicatorScore { indicator: *ind, value: v.into(), sub_score: s.unwrap_or(0.0) });
        }
    }
    Ok(rows)
}

/// The trend points, composite and grade of a base score and its change against a
/// baseline (none: no points).
fn adjust(config: &ScoreConfig, base: f64, delta: Option<f64>, baseline: Option<&TrendBaseline>) -> (f64, f64, Grade) {
    let points = baseline.map_or(0.0, |b| crate::trend::points(b, &config.trend, delta).1);
    let score = (base + points).clamp(0.0, 100.0);
    (points, score, config.grades.grade(score))
}

/// A score against another baseline of its sector-period: the same indicators, base score
/// and change, with the trend points, composite and grade taken again, exactly as
/// [`score_sector_against`] would give them. `None` when none of the three changes.
///
/// When a late report moves a sector-period's baseline, this brings every other score there
/// up to date without scoring its report again.
pub fn rebaseline(
    config: &ScoreConfig,
    score: &InstitutionScore,
    baseline: Option<&TrendBaseline>,
) -> Option<InstitutionScore> {
    let (points, composite, grade) = adjust(config, score.base_score, score.trend_delta.get(), baseline);
    if (points, composite, grade) == (score.trend_points, score.score, score.grade) {
        return None;
    }
    Some(InstitutionScore { trend_points: points, score: composite, grade, ..score.clone() })
}

/// What one period's changes of base score are scored against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// The period's own cross-section: every report of the sector-period must be given.
    Own,
    /// A baseline taken elsewhere (a complete earlier period), or none (no z-score, no
    /// points): any subset of the sector-period's reports may be given.
    Fixed(Option<TrendBaseline>),
}

/// Scores and the baselines taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scored {
    /// Scores of the requested periods, ordered by period then institution id.
    pub scores: Vec<InstitutionScore>,
    /// The baseline of each period scored against its own cross-section.
    pub baselines: BTreeMap<Period, Option<TrendBaseline>>,
    /// The baseline of every period scored, own or fixed: what its scores' trend z-scores
    /// are against ([`InstitutionScore::trend_z`]).
    pub trend: BTreeMap<Period, Option<TrendBaseline>>,
}

/// Scores one sector for the given periods, each against its own cross-section.
///
/// `reports` must hold the winning reports of those periods and of the period one cadence
/// step before each (for the trend); rows of the earlier periods are used only as the trend's
/// baseline. Scores come back for the requested periods only, ordered by period then
/// institution id. The result is a pure function of the inputs, whatever their order.
pub fn score_sector(
    config: &ScoreConfig,
    sector: Sector,
    periods: &BTreeSet<Period>,
    reports: &[&Report],
) -> Result<Vec<InstitutionScore>> {
    let periods: BTreeMap<Period, Baseline> = periods.iter().map(|p| (*p, Baseline::Own)).collect();
    Ok(score_sector_against(config, sector, &periods, reports)?.scores)
}

/// Scores one sector for the given periods, each against its [`Baseline`].
///
/// As [`score_sector`], except that a period with a [`Baseline::Fixed`] needs only the
/// reports to score (and each one's report of the previous period).
pub fn score_sector_against(
    config: &ScoreConfig,
    sector: Sector,
    periods: &BTreeMap<Period, Baseline>,
    reports: &[&Report],
) -> Result<Scored> {
    if let Some(r) = reports.iter().find(|r| r.sector != sector) {
        return Err(Error::Input(format!("report {} is {}, not {sector}", r.report_id, r.sector)));
    }
    // Sorting is linear when the caller already gives them in order (the engine does).
    let mut reports: Vec<&Report> = reports.to_vec();
    reports.sort_by(|a, b| (a.period, &a.institution_id).cmp(&(b.period, &b.institution_id)));
    reports.dedup_by(|a, b| a.period == b.period && a.institution_id == b.institution_id);
    let mut scored = Scored::default();
    if reports.is_empty() {
        return Ok(scored);
    }
    let mut rows = base_scores(config, sector, &reports)?;
    // Each period's rows, by institution id: a period's trend joins them with the
    // previous period's by merging the two runs.
    let mut runs: BTreeMap<Period, std::ops::Range<usize>> = BTreeMap::new();
    let mut start = 0;
    while start < reports.len() {
        let period = reports[start].period;
        let end = start + reports[start..].iter().take_while(|r| r.period == period).count();
        runs.insert(period, start..end);
        start = end;
    }
    let step = sector.cadence_months();
    for (&period, run) in &runs {
        let Some(baseline) = periods.get(&period) else { continue };
        let mut prev = runs.get(&period.add_months(-step)).cloned().unwrap_or_default().peekable();
        let deltas: Vec<Option<f64>> = run
            .clone()
            .map(|i| {
                let id = &reports[i].institution_id;
                while prev.next_if(|j| reports[*j].institution_id < *id).is_some() {}
                let j = prev.next_if(|j| reports[*j].institution_id == *id)?;
                Some(rows[i].base - rows[j].base)
            })
            .collect();
        let baseline = match baseline {
            Baseline::Own => {
                let own = crate::trend::baseline_of(&config.trend, &deltas);
                scored.baselines.insert(period, own);
                own
            }
            Baseline::Fixed(b) => *b,
        };
        scored.trend.insert(period, baseline);
        for (k, i) in run.clone().enumerate() {
            let r = reports[i];
            let (points, score, grade) = adjust(config, rows[i].base, deltas[k], baseline.as_ref());
            scored.scores.push(InstitutionScore {
                institution_id: r.institution_id.clone(),
                period,
                sector,
                district_code: r.district_code,
                // Each row is scored once: its indicators move into its score.
                indicators: std::mem::take(&mut rows[i].indicators).into_boxed_slice(),
                base_score: rows[i].base,
                trend_delta: deltas[k].into(),
                trend_points: points,
                score,
                grade,
                exposure: r.metrics.value(sector.exposure_metric()),
            });
        }
    }
    Ok(scored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yujing_model::{DecodeLimits, decode};

    /// Microloan reports of `n` companies for 2025-08 and 2025-09, NPLs growing at different
    /// paces so that the changes spread.
    fn reports(n: usize) -> Vec<Report> {
        let mut out = Vec::new();
        for i in 0..n {
            for (p, npl) in [("2025-08", 5 + i % 4), ("2025-09", 5 + (i * 7) % 23)] {
                let line = format!(
                    r#"{{"schema_version":1,"report_id":"m{i}/{p}/r1","institution_id":"CQ-MLC-{i:04}","institution_name":"某{i}小额贷款有限公司","sector":"microloan","district_code":"500103","period":"{p}","revision":1,"submitted_at":"2025-10-12T09:30:00+08:00","metrics":{{"loan_balance":100,"npl_balance":{npl},"net_assets":100,"largest_borrower_balance":10,"borrowings":100}}}}"#
                );
                out.push(decode(line.as_bytes(), &DecodeLimits::default()).unwrap());
            }
        }
        out
    }

    #[test]
    fn rebaseline_gives_what_scoring_against_that_baseline_gives() {
        let config = ScoreConfig::default();
        let reports = reports(40);
        let refs: Vec<&Report> = reports.iter().collect();
        let p: Period = "2025-09".parse().unwrap();
        let own =
            score_sector_against(&config, Sector::Microloan, &BTreeMap::from([(p, Baseline::Own)]), &refs).unwrap();
        let b = own.baselines[&p].expect("enough peers for a baseline");
        // Against its own baseline nothing changes.
        assert!(own.scores.iter().all(|s| rebaseline(&config, s, Some(&b)).is_none()));
        // Against a calmer sector, the sharpest deteriorations earn points.
        let calm = TrendBaseline { mean: b.mean - 1.0, sd: b.sd / 4.0, peers: b.peers };
        let fixed = score_sector_against(
            &config,
            Sector::Microloan,
            &BTreeMap::from([(p, Baseline::Fixed(Some(calm)))]),
            &refs,
        )
        .unwrap();
        let mut moved = 0;
        for (s, f) in own.scores.iter().zip(&fixed.scores) {
            match rebaseline(&config, s, Some(&calm)) {
                Some(r) => {
                    assert_eq!(&r, f);
                    moved += 1;
                }
                None => assert_eq!(s, f),
            }
        }
        assert!(moved > 0, "the calmer baseline moves some scores");
        // And without a baseline, no points at all.
        for s in &own.scores {
            let none = rebaseline(&config, s, None).unwrap_or_else(|| s.clone());
            assert_eq!(none.trend_points, 0.0);
        }
    }
}
