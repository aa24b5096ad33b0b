//! Institution scores: indicators, sub-scores and the base composite in polars, then the
//! trend adjustment (statrs) and grades.

use crate::config::ScoreConfig;
use crate::trend::TrendBaseline;
use crate::{Error, Result};
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use yujing_model::{Grade, Indicator, IndicatorScore, InstitutionScore, Metric, Period, Report, Sector};

/// The metric columns of a sector's reports, one polars array per metric, in the sector's
/// canonical metric order.
struct Columns {
    sector: Sector,
    columns: Vec<Float64Chunked>,
}

impl Columns {
    fn of(sector: Sector, reports: &[&Report]) -> Columns {
        let columns = (0..sector.metrics().len())
            .map(|k| {
                let values: Vec<f64> = reports.iter().map(|r| r.metrics.values()[k]).collect();
                Float64Chunked::from_vec(sector.metrics()[k].as_str().into(), values)
            })
            .collect();
        Columns { sector, columns }
    }

    fn get(&self, metric: Metric) -> &Float64Chunked {
        let k = self.sector.metrics().iter().position(|m| *m == metric);
        &self.columns[k.unwrap_or_else(|| unreachable!("{metric} is not a metric of {}", self.sector))]
    }
}

/// Derives an indicator from the sector's metric columns. Ratios over zero are `inf` (or
/// null for 0/0): `inf` scores at the risky end or the safe end by direction, null scores 0.
fn indicator(columns: &Columns, indicator: Indicator) -> Float64Chunked {
    use Indicator::*;
    use Metric::*;
    let m = |x: Metric| columns.get(x);
    let ratio = |a: Metric, b: Metric| m(a) / m(b);
    let values = match (columns.sector, indicator) {
        (Sector::Bank, NplRatio) => ratio(NplBalance, TotalLoans),
        (Sector::Bank, SpecialMentionRatio) => ratio(SpecialMentionBalance, TotalLoans),
        (Sector::Bank, ProvisionCoverage) => ratio(LoanLossProvision, NplBalance),
        (Sector::Bank, Indicator::CapitalAdequacyRatio) => m(Metric::CapitalAdequacyRatio).clone(),
        (Sector::Microloan, NplRatio) => ratio(NplBalance, LoanBalance),
        (Sector::Microloan, Concentration) => ratio(LargestBorrowerBalance, NetAssets),
        (Sector::Microloan, Leverage) => ratio(Borrowings, NetAssets),
        (Sector::Guarantee, PayoutRate) => ratio(PayoutsYtd, ReleasedYtd),
        (Sector::Guarantee, Leverage) => ratio(OutstandingGuarantees, NetAssets),
        (Sector::Guarantee, Concentration) => ratio(LargestClientExposure, NetAssets),
        (Sector::Guarantee, RecoveryRate) => ratio(RecoveriesYtd, PayoutsYtd),
        (Sector::P2pResidual, RepaymentProgress) => {
            ratio(OutstandingPrincipal, PrincipalAtExit).apply_values(|x| 1.0 - x)
        }
        (Sector::P2pResidual, Stall) => ratio(RepaidInPeriod, OutstandingPrincipal),
        (Sector::P2pResidual, ComplaintsPer1000Lenders) => &(m(ComplaintsInPeriod) * 1000.0) / m(LendersUnpaid),
        (s, i) => unreachable!("{i} is not an indicator of {s}"),
    };
    // NaN (0/0) becomes null.
    values.iter().map(|v| v.filter(|x| !x.is_nan())).collect()
}

/// What the polars pass computes for one report.
struct BaseRow {
    indicators: Vec<IndicatorScore>,
    base: f64,
}

/// Indicators, sub-scores and the weighted base score of every report, with polars' array
/// kernels.
///
/// Eagerly, each step once: the indicators, then their sub-scores, then the base score from
/// those. A live batch scores a few dozen reports, one call per sector and kind of period it
/// touches; the lazy engine's planning cost about a millisecond per call, more than the
/// arithmetic of tens of thousands of rows.
fn base_scores(config: &ScoreConfig, sector: Sector, reports: &[&Report]) -> Result<Vec<BaseRow>> {
    let cutoffs = config.sector_cutoffs(sector);
    let columns = Columns::of(sector, reports);
    let mut rows: Vec<BaseRow> =
        reports.iter().map(|_| BaseRow { indicators: Vec::with_capacity(cutoffs.len()), base: 0.0 }).collect();
    let mut base: Option<Float64Chunked> = None;
    for (ind, c) in &cutoffs {
        let values = indicator(&columns, *ind);
        // Clamped to [0, 1] with NaN and null as 0, then scaled to 100.
        let scaled = (&(&values - c.safe) / (c.critical - c.safe))
            .apply_values(|x| if x.is_nan() || x < 0.0 { 0.0 } else { x.min(1.0) })
            .fill_null_with_values(0.0)?;
        let sub = &scaled * 100.0;
        let weighted = &sub * c.weight;
        base = Some(match base {
            Some(b) => &b + &weighted,
            None => weighted,
        });
        for (row, (v, s)) in rows.iter_mut().zip(values.iter().zip(sub.iter())) {
            row.indicators.push(IndicatorScore { indicator: *ind, value: v.into(), sub_score: s.unwrap_or(0.0) });
        }
    }
    if let Some(base) = base {
        for (row, b) in rows.iter_mut().zip(base.iter()) {
            row.base = b.unwrap_or(0.0);
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
    fn a_ratio_over_zero_scores_at_the_risky_end_and_zero_over_zero_is_undefined() {
        let line = |id: &str, net_assets: u32, largest: u32, borrowings: u32| {
            format!(
                r#"{{"schema_version":1,"report_id":"{id}/r1","institution_id":"{id}","institution_name":"某小额贷款有限公司","sector":"microloan","district_code":"500103","period":"2025-09","revision":1,"submitted_at":"2025-10-12T09:30:00+08:00","metrics":{{"loan_balance":100,"npl_balance":5,"net_assets":{net_assets},"largest_borrower_balance":{largest},"borrowings":{borrowings}}}}}"#
            )
        };
        let reports: Vec<Report> = [line("CQ-MLC-0001", 0, 10, 0), line("CQ-MLC-0002", 40, 100, 40)]
            .iter()
            .map(|l| decode(l.as_bytes(), &DecodeLimits::default()).unwrap())
            .collect();
        let refs: Vec<&Report> = reports.iter().collect();
        let p: Period = "2025-09".parse().unwrap();
        let scores = score_sector(&ScoreConfig::default(), Sector::Microloan, &BTreeSet::from([p]), &refs).unwrap();
        let get = |k: usize, i: Indicator| {
            let s = scores[k].indicators.iter().find(|x| x.indicator == i).unwrap();
            (s.value.get(), s.sub_score)
        };
        // 10 / 0: infinite, at the risky end; 0 / 0: undefined, scores nothing.
        assert_eq!(get(0, Indicator::Concentration), (Some(f64::INFINITY), 100.0));
        assert_eq!(get(0, Indicator::Leverage), (None, 0.0));
        // Past the critical line: clamped to 100; at the safe end: 0.
        assert_eq!(get(1, Indicator::Concentration), (Some(2.5), 100.0));
        assert_eq!(get(1, Indicator::NplRatio).1, 100.0 * (0.05 - 0.03) / 0.12);
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
