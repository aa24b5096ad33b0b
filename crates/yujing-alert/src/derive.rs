//! Derivation: one entity's complete alert history from its period series.

use crate::pack::{Rule, RulePack};
use crate::series::{EntitySeries, SeriesPoint};
use crate::text::{self, Reading};
use chrono::TimeDelta;
use std::borrow::Cow;
use yujing_model::alert::Figures;
use yujing_model::score::OptF64;
use yujing_model::{
    Alert, AlertState, EntityKind, Evidence, Period, SectorScope, Severity, alert::SeverityStep, alert_id,
};

/// Derives the complete alert history of one entity from its period series.
///
/// For every rule that applies to the series (entity kind and sector), the points are
/// walked in period order:
///
/// - a point without the rule's metric (or with a non-finite value) changes nothing;
/// - each level keeps a streak of consecutive crossing points; the target severity is the
///   highest level whose streak has reached its `for_periods`;
/// - with no alert active, a target opens one, with an id from the dedupe key and the
///   opening period;
/// - an active alert escalates when the target rises above its severity and never
///   de-escalates; it auto-resolves once the value is back past the lowest line by more
///   than the hysteresis; a later crossing then opens a new alert with a new id.
///
/// The result is ordered by rule (pack order), then by opening period. It is a pure
/// function of its inputs: the same pack and series give byte-identical alerts.
pub fn derive(pack: &RulePack, series: &EntitySeries) -> Vec<Alert> {
    derive_quiet(pack, series).alerts
}

/// An entity's alert history and where its rules were all quiet.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// The alerts, as [`derive()`] gives them.
    pub alerts: Vec<Alert>,
    /// The periods after whose point every rule was quiet (no streak running, no alert
    /// active), ascending. The state there is the initial one: a later change of the series
    /// can be derived from the points after such a period alone, and gives the same alerts
    /// opened after it as deriving the whole series (alerts opened up to it are closed by then).
    pub quiet: Vec<Period>,
}

/// [`derive()`], also noting where every rule was quiet.
pub fn derive_quiet(pack: &RulePack, series: &EntitySeries) -> Derived {
    let mut points: Vec<&SeriesPoint> = series.points.iter().collect();
    points.sort_by_key(|p| p.period); // stable: equal periods keep their input order
    let mut out = Vec::new();
    let mut quiet = vec![true; points.len()];
    for rule in pack.rules() {
        if rule.applies_to(series.kind, series.sector) {
            derive_rule(rule, series, &points, &mut out, &mut quiet);
        }
    }
    let quiet = points.iter().zip(quiet).filter(|(_, q)| *q).map(|(p, _)| p.period).collect();
    Derived { alerts: out, quiet }
}

/// The dedupe key: `rule:kind:entity` for institutions, `rule:kind:entity:sector` for
/// aggregates (a district has one series per sector scope).
pub fn dedupe_key(rule: &str, series: &EntitySeries) -> String {
    match series.kind {
        EntityKind::Institution => {
            format!("{rule}:{}:{}", series.kind.as_str(), series.entity_id)
        }
        EntityKind::District | EntityKind::Sector => {
            format!("{rule}:{}:{}:{}", series.kind.as_str(), series.entity_id, series.sector)
        }
    }
}

/// Whether two sets of values for one point drive the rules that apply to a series of this
/// kind and sector alike: each rule finds its metric in both or in neither, and both values
/// on the same side of each of its lines and of its auto-resolve line. `a` and `b` give a
/// metric's value as [`SeriesPoint::value`] does (present and finite).
///
/// Deriving a series with `b` in place of `a` at one point then gives the same alerts, the
/// evidence of an alert whose last point it is excepted ([`crate::AlertBook::has_evidence_at`]):
/// streaks, openings, escalations and resolutions depend on these outcomes only.
pub fn same_outcomes(
    pack: &RulePack,
    kind: EntityKind,
    sector: SectorScope,
    a: impl Fn(&str) -> Option<f64>,
    b: impl Fn(&str) -> Option<f64>,
) -> bool {
    pack.rules().iter().filter(|rule| rule.applies_to(kind, sector)).all(|rule| {
        match (a(&rule.metric), b(&rule.metric)) {
            (None, None) => true,
            (Some(x), Some(y)) => {
                let d = rule.direction;
                rule.levels.iter().all(|l| d.crossed(x, l.at) == d.crossed(y, l.at))
                    && rule
                        .lowest()
                        .is_none_or(|l| d.cleared(x, l.at, rule.hysteresis) == d.cleared(y, l.at, rule.hysteresis))
            }
            _ => false,
        }
    })
}

fn derive_rule(rule: &Rule, series: &EntitySeries, points: &[&SeriesPoint], out: &mut Vec<Alert>, quiet: &mut [bool]) {
    let Some(lowest) = rule.lowest() else {
        return;
    };
    // Made when the first alert opens: most series open none.
    let mut key: Option<String> = None;
    let mut streaks = vec![0u32; rule.levels.len()];
    let mut active: Option<Alert> = None;
    // The evidence reflects the last point an alert saw: it is built once, when the alert
    // is closed or the series ends, from that point (not rebuilt at every point).
    let mut last: Option<(&SeriesPoint, f64, u32, bool)> = None;
    let mut hint = 0;
    for (i, point) in points.iter().enumerate() {
        // A point without the metric (unknown this period) leaves the state as it is.
        if let Some(v) = point.value_hinted(&rule.metric, &mut hint) {
            for (streak, level) in streaks.iter_mut().zip(&rule.levels) {
                *streak = if rule.direction.crossed(v, level.at) { streak.saturating_add(1) } else { 0 };
            }
            let target = rule
                .levels
                .iter()
                .zip(&streaks)
                .rev()
                .find(|(level, streak)| **streak >= level.for_periods)
                .map(|(level, _)| level.severity);
            let mut resolved = false;
            match (&mut active, target) {
                (None, None) => {}
                (None, Some(severity)) => {
                    let key = key.get_or_insert_with(|| dedupe_key(&rule.id, series));
                    active = Some(open(rule, series, key, point, severity));
                }
                (Some(alert), target) => {
                    if let Some(severity) = target.filter(|s| *s > alert.severity) {
                        alert.severity = severity;
                        alert.updated_at = point.at;
                        alert.history.push(SeverityStep { period: point.period, severity });
                    } else if rule.direction.cleared(v, lowest.at, rule.hysteresis) {
                        alert.state = AlertState::AutoResolved;
                        alert.resolved_at = Some(point.at);
                        alert.updated_at = point.at;
                        resolved = true;
                    }
                }
            }
            if active.is_some() {
                last = Some((point, v, streaks[0], resolved));
            }
            if resolved && let Some(mut alert) = active.take() {
                finish(&mut alert, rule, series, last.take());
                out.push(alert);
            }
        }
        quiet[i] &= active.is_none() && streaks.iter().all(|s| *s == 0);
    }
    if let Some(mut alert) = active {
        finish(&mut alert, rule, series, last);
        out.push(alert);
    }
}

/// Fills an alert's evidence from the last point it saw.
fn finish(alert: &mut Alert, rule: &Rule, series: &EntitySeries, last: Option<(&SeriesPoint, f64, u32, bool)>) {
    if let Some((point, value, periods, resolved)) = last {
        refresh(alert, rule, series, point, value, periods, resolved);
    }
}

fn open(rule: &Rule, series: &EntitySeries, key: &str, point: &SeriesPoint, severity: Severity) -> Alert {
    let id = alert_id(key, point.period);
    let respond_by =
        TimeDelta::from_std(rule.respond_within).ok().and_then(|d| point.at.checked_add_signed(d)).unwrap_or(point.at);
    Alert {
        id,
        dedupe_key: key.to_owned(),
        rule: rule.id.clone(),
        severity,
        mechanism: rule.mechanism,
        mechanism_zh: Cow::Borrowed(rule.mechanism.name_zh()),
        owner: rule.owner.clone(),
        state: AlertState::Open,
        entity_kind: series.kind,
        entity_id: series.entity_id.clone(),
        entity_name: series.entity_name.clone(),
        district_code: series.district_code.clone(),
        sector: series.sector,
        period: point.period,
        last_period: point.period,
        opened_at: point.at,
        updated_at: point.at,
        resolved_at: None,
        respond_by,
        history: vec![SeverityStep { period: point.period, severity }],
        evidence: Evidence {
            metric: rule.metric.clone(),
            value: f64::NAN, // filled by `refresh` straight away
            threshold: f64::NAN,
            direction: Cow::Borrowed(rule.direction.as_str()),
            periods: 0,
            score: OptF64::NONE,
            trend_z: OptF64::NONE,
            indicators: Figures::default(),
            summary: String::new(),
        },
        assignee: None,
        note: None,
    }
}

/// Brings `last_period` and the evidence up to the current point.
fn refresh(
    alert: &mut Alert,
    rule: &Rule,
    series: &EntitySeries,
    point: &SeriesPoint,
    value: f64,
    periods: u32,
    resolved: bool,
) {
    let threshold = rule.level(alert.severity).or(rule.lowest()).map_or(value, |l| l.at);
    alert.last_period = point.period;
    let indicators = point.values.retained(|k, v| {
        v.is_finite() && *k != *rule.metric && k != crate::metrics::SCORE && k != crate::metrics::TREND_Z
    });
    let reading = Reading { severity: alert.severity, value, threshold, resolved };
    alert.evidence = Evidence {
        metric: rule.metric.clone(),
        value,
        threshold,
        direction: Cow::Borrowed(rule.direction.as_str()),
        periods,
        score: point.value(crate::metrics::SCORE).into(),
        trend_z: point.value(crate::metrics::TREND_Z).into(),
        indicators,
        summary: text::summary(rule, series, reading),
    };
}

#[cfg(test)]
mod tests;
