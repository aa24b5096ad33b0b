//! The probability view: a logistic model of "a distress event within the horizon", fitted
//! with linfa-logistic on the calibration's training window, turning what the engine already
//! computes about an institution-period into a probability (the FDIC flags a bank when its
//! model's probability of downgrade passes 30%).
//!
//! The features are few and all on comparable scales: the composite score and its base
//! (÷100), the trend z-score (clamped to ±5, 0 when undefined), the highest severity of the
//! institution's open alerts (÷4, 0 without any) and one indicator per sector besides banks.

use super::walk::Snapshot;
use anyhow::{Context, Result, bail};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use yujing_model::{InstitutionScore, Sector, Severity};

/// The feature names, in the order of [`features`].
pub const FEATURES: [&str; 7] =
    ["score", "base_score", "trend_z", "alert_severity", "sector_microloan", "sector_guarantee", "sector_p2p_residual"];

/// The fitted model: `p = 1 / (1 + exp(−(intercept + Σ coefficient·feature)))`. This is
/// the `[probability]` section of a configuration written by `yujing calibrate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilityConfig {
    /// The horizon, in months, the model predicts an event within.
    pub horizon: u32,
    /// The probability at and above which the model flags an institution (e.g. 0.3).
    pub flag_at: f64,
    /// The intercept.
    pub intercept: f64,
    /// One coefficient per feature name (see `FEATURES`); a missing one counts as 0.
    pub coefficients: BTreeMap<String, f64>,
}

/// The rank of a severity, 1 (blue) to 4 (red).
pub fn severity_rank(s: Severity) -> f64 {
    match s {
        Severity::Blue => 1.0,
        Severity::Yellow => 2.0,
        Severity::Orange => 3.0,
        Severity::Red => 4.0,
    }
}

/// The features of an institution-period: its score and the highest severity of its open
/// alerts (reporting-discipline alerts left out: a late report is not distress).
pub fn features(score: &InstitutionScore, trend_z: Option<f64>, max_severity: Option<Severity>) -> [f64; 7] {
    let s = score.sector;
    [
        score.score / 100.0,
        score.base_score / 100.0,
        trend_z.unwrap_or(0.0).clamp(-5.0, 5.0),
        max_severity.map_or(0.0, severity_rank) / 4.0,
        f64::from(u8::from(s == Sector::Microloan)),
        f64::from(u8::from(s == Sector::Guarantee)),
        f64::from(u8::from(s == Sector::P2pResidual)),
    ]
}

/// The highest severity among a snapshot's distress alerts.
pub fn snapshot_severity(s: &Snapshot) -> Option<Severity> {
    s.alerts.iter().filter(|(rule, _)| !rule.starts_with("reporting-")).map(|(_, v)| *v).max()
}

impl ProbabilityConfig {
    /// The probability of an event within the horizon for an institution-period.
    pub fn p_event(&self, score: &InstitutionScore, trend_z: Option<f64>, max_severity: Option<Severity>) -> f64 {
        let x = features(score, trend_z, max_severity);
        let z = self.intercept
            + FEATURES
                .iter()
                .zip(x)
                .map(|(name, v)| self.coefficients.get(*name).copied().unwrap_or(0.0) * v)
                .sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }

    /// The probability for a recorded snapshot.
    pub fn p_snapshot(&self, s: &Snapshot) -> f64 {
        self.p_event(&s.score, s.trend_z, snapshot_severity(s))
    }

    /// Checks the section.
    pub fn validate(&self) -> Result<()> {
        if !(self.flag_at > 0.0 && self.flag_at < 1.0) {
            bail!("probability.flag_at must be within (0, 1)");
        }
        if let Some(k) = self.coefficients.keys().find(|k| !FEATURES.contains(&k.as_str())) {
            bail!("probability.coefficients.{k} is not a feature (expected one of {})", FEATURES.join(", "));
        }
        if !self.intercept.is_finite() || self.coefficients.values().any(|v| !v.is_finite()) {
            bail!("probability coefficients must be finite");
        }
        Ok(())
    }
}

/// The probability of every institution scored in `period`, from what an engine holds now
/// (its scores and the distress alerts open at that period): for the API's institution view
/// and the risk map, next to the 0-100 score.
pub fn p_events(
    model: &ProbabilityConfig,
    engine: &crate::engine::Engine,
    period: yujing_model::Period,
) -> BTreeMap<String, f64> {
    let mut severity: BTreeMap<&str, Severity> = BTreeMap::new();
    for a in engine.alerts() {
        if a.entity_kind != yujing_model::EntityKind::Institution || a.rule.starts_with("reporting-") {
            continue;
        }
        if let Some(s) = super::walk::active_severity(a, period) {
            let e = severity.entry(&*a.entity_id).or_insert(s);
            *e = (*e).max(s);
        }
    }
    engine
        .institution_scores()
        .into_iter()
        .filter(|s| s.period == period)
        .map(|s| {
            let p = model.p_event(s, engine.trend_z(s), severity.get(&*s.institution_id).copied());
            (s.institution_id.to_string(), p)
        })
        .collect()
}

/// Every institution scored in `period` with its score, grade and probability, riskiest
/// (by probability) first: CSV with a header.
pub fn csv(model: &ProbabilityConfig, engine: &crate::engine::Engine, period: yujing_model::Period) -> String {
    use std::fmt::Write as _;
    let p = p_events(model, engine, period);
    let mut rows: Vec<&InstitutionScore> =
        engine.institution_scores().into_iter().filter(|s| s.period == period).collect();
    rows.sort_by(|a, b| {
        p[&*b.institution_id].total_cmp(&p[&*a.institution_id]).then_with(|| a.institution_id.cmp(&b.institution_id))
    });
    let mut out = String::from("institution_id,sector,district_code,period,score,grade,p_event\n");
    for s in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{:.2},{},{:.4}",
            s.institution_id,
            s.sector,
            s.district_code,
            s.period,
            s.score,
            s.grade.as_str(),
            p[&*s.institution_id]
        );
    }
    out
}

/// Fits the model on labelled snapshots (`true`: an event followed within the horizon).
/// A light L2 penalty keeps the fit finite when a feature separates the classes.
pub fn fit(rows: &[(&Snapshot, bool)], horizon: u32, flag_at: f64) -> Result<ProbabilityConfig> {
    if !rows.iter().any(|(_, e)| *e) || rows.iter().all(|(_, e)| *e) {
        bail!("the training window needs both institution-periods followed by an event and quiet ones");
    }
    let mut x = Array2::<f64>::zeros((rows.len(), FEATURES.len()));
    for (i, (s, _)) in rows.iter().enumerate() {
        for (j, v) in features(&s.score, s.trend_z, snapshot_severity(s)).into_iter().enumerate() {
            x[[i, j]] = v;
        }
    }
    let y: Array1<bool> = rows.iter().map(|(_, e)| *e).collect();
    let fitted = LogisticRegression::default()
        .alpha(0.01)
        .max_iterations(300)
        .fit(&Dataset::new(x, y))
        .context("fitting the logistic model")?;
    // linfa's positive class is the more frequent one (no event): flip to P(event).
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let coefficients = FEATURES.iter().zip(fitted.params().iter()).map(|(n, b)| (n.to_string(), sign * b)).collect();
    Ok(ProbabilityConfig { horizon, flag_at, intercept: sign * fitted.intercept(), coefficients })
}

#[cfg(test)]
mod tests {
    use super::*;
    use yujing_model::Period;

    fn snap(score: f64) -> Snapshot {
        Snapshot {
            score: InstitutionScore {
                institution_id: "CQ-MLC-0001".into(),
                period: Period::new(2021, 1).unwrap(),
                sector: Sector::Microloan,
                district_code: 500103,
                indicators: Box::default(),
                base_score: score,
                trend_delta: None.into(),
                trend_points: 0.0,
                score,
                grade: yujing_model::Grade::Normal,
                exposure: 1.0,
            },
            trend_z: None,
            alerts: BTreeMap::new(),
        }
    }

    #[test]
    fn a_fitted_model_puts_higher_scores_at_higher_probability() {
        let snaps: Vec<Snapshot> = (0..200).map(|i| snap(f64::from(i) / 2.0)).collect();
        // Events follow scores above 70, with some noise at the edge.
        let rows: Vec<(&Snapshot, bool)> =
            snaps.iter().enumerate().map(|(i, s)| (s, s.score.score > 70.0 || i % 37 == 0)).collect();
        let m = fit(&rows, 6, 0.3).unwrap();
        m.validate().unwrap();
        let lo = m.p_snapshot(&snap(10.0));
        let hi = m.p_snapshot(&snap(95.0));
        assert!(lo < 0.2 && hi > 0.8, "{lo} {hi} {m:?}");
        assert!(fit(&rows[..10].iter().map(|(s, _)| (*s, false)).collect::<Vec<_>>(), 6, 0.3).is_err());
    }
}
