//! Institution scores: indicators, sub-scores and the base composite in polars, then the
//! trend adjustment (statrs) and grades.

use crate::config::ScoreConfig;
use crate::trend::TrendBaseline;
use crate::{Error, Result};
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use yujing_model::{Indicator, IndicatorScore, InstitutionScore, Metric, Period, Report, Sector};

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
fn base_scores(config: &ScoreConfig, sector: Sector, reports: &[&Report]) -> Result<Vec<BaseRow>> {
    let cutoffs = config.sector_cutoffs(sector);
    let mut exprs = Vec::with_capacity(cutoffs.len() * 2 + 2);
    let mut weighted = Vec::with_capacity(cutoffs.len());
    exprs.push(col("row"));
    for (ind, c) in &cutoffs {
        let name = ind.as_str();
        let sub = format!("{name}__sub");
        exprs.push(indicator_expr(sector, *ind).alias(name));
        let scaled = ((indicator_expr(sector, *ind) - lit(c.safe)) / lit(c.critical - c.safe))
            .clip(lit(0.0), lit(1.0))
            .fill_nan(lit(0.0))
            .fill_null(lit(0.0))
            * lit(100.0);
        exprs.push(scaled.clone().alias(sub.as_str()));
        weighted.push(scaled * lit(c.weight));
    }
    let base = weighted.into_iter().reduce(|a, b| a + b).unwrap_or_else(|| lit(0.0));
    exprs.push(base.alias("base"));
    let out = frame(sector, reports)?.lazy().select(exprs).collect()?;

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
            let points = baseline.map_or(0.0, |b| crate::trend::points(&b, &config.trend, deltas[k]).1);
            let score = (rows[i].base + points).clamp(0.0, 100.0);
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
                grade: config.grades.grade(score),
                exposure: r.metrics.value(sector.exposure_metric()),
            });
        }
    }
    Ok(scored)
}
