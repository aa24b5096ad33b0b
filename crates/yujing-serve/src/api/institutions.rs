//! `GET institutions/{id}`: why an institution's score is what it is.

use super::riskmap::AlertBrief;
use super::{AppState, parse_period, query};
use crate::auth::Caller;
use crate::problem::Problem;
use crate::snapshot::{EventProbability, InstitutionView, Snapshot};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use yujing_model::{Grade, Indicator, InstitutionScore, Period, Sector};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InstitutionQuery {
    period: Option<String>,
}

/// One indicator's part in the score.
#[derive(Debug, Serialize)]
struct IndicatorPart {
    indicator: Indicator,
    value: Option<f64>,
    /// The value at which the sub-score is 0 (when the cutoffs are known).
    safe: Option<f64>,
    /// The value at which the sub-score is 100.
    critical: Option<f64>,
    sub_score: f64,
    weight: f64,
    /// sub_score × weight: its points in the base score.
    points: f64,
}

/// The score of one period, taken apart.
#[derive(Debug, Serialize)]
struct Breakdown {
    period: Period,
    score: f64,
    grade: Grade,
    base_score: f64,
    trend_delta: Option<f64>,
    trend_z: Option<f64>,
    trend_points: f64,
    exposure: f64,
    indicators: Vec<IndicatorPart>,
    /// The same in one sentence.
    explanation: String,
}

/// A point of the score history.
#[derive(Debug, Serialize)]
struct ScorePoint {
    period: Period,
    score: f64,
    grade: Grade,
    base_score: f64,
    trend_points: f64,
    indicators: BTreeMap<&'static str, Option<f64>>,
}

/// A winning report.
#[derive(Debug, Serialize)]
struct ReportPoint {
    report_id: String,
    period: Period,
    revision: u32,
    submitted_at: DateTime<FixedOffset>,
    metrics: yujing_model::Metrics,
}

/// An institution's page.
#[derive(Debug, Serialize)]
pub(crate) struct InstitutionPage {
    id: String,
    name: String,
    sector: Sector,
    district_code: String,
    district_name: String,
    /// The period broken down (the one asked for, else the latest scored).
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<Breakdown>,
    /// The calibrated probability of an event within the horizon, at its latest period
    /// (only with a `[probability]` model).
    #[serde(skip_serializing_if = "Option::is_none")]
    p_event: Option<EventProbability>,
    history: Vec<ScorePoint>,
    reports: Vec<ReportPoint>,
    /// Its current alerts, most severe first.
    alerts: Vec<AlertBrief>,
}

fn fmt_value(i: Indicator, v: f64) -> String {
    match i {
        Indicator::Leverage => format!("{v:.2}×"),
        Indicator::ComplaintsPer1000Lenders => format!("{v:.1}"),
        _ => format!("{:.2}%", v * 100.0),
    }
}

fn breakdown(snap: &Snapshot, inst: &InstitutionView, s: &InstitutionScore) -> Breakdown {
    let indicators: Vec<IndicatorPart> = s
        .indicators
        .iter()
        .map(|x| {
            let c = snap.cutoff(inst.sector, x.indicator);
            let weight = c.map_or(0.0, |c| c.weight);
            IndicatorPart {
                indicator: x.indicator,
                value: x.value.get(),
                safe: c.map(|c| c.safe),
                critical: c.map(|c| c.critical),
                sub_score: x.sub_score,
                weight,
                points: x.sub_score * weight,
            }
        })
        .collect();
    let mut explanation = format!("{} {:.1} ({}) = base {:.1}", s.period, s.score, s.grade, s.base_score);
    if s.trend_points > 0.0 {
        let _ = write!(explanation, " + trend {:.1}", s.trend_points);
    }
    if s.base_score + s.trend_points > s.score + 0.05 {
        explanation.push_str(" (capped at 100)");
    }
    let mut parts: Vec<&IndicatorPart> = indicators.iter().collect();
    parts.sort_by(|a, b| b.points.total_cmp(&a.points));
    let said: Vec<String> = parts
        .iter()
        .map(|p| {
            let value = p.value.map_or_else(|| "undefined".to_string(), |v| fmt_value(p.indicator, v));
            let range = match (p.safe, p.critical) {
                (Some(a), Some(b)) => {
                    format!(" (safe {} → critical {})", fmt_value(p.indicator, a), fmt_value(p.indicator, b))
                }
                _ => String::new(),
            };
            format!("{} {value}{range}: {:.0} × {:.2} = {:.1}", p.indicator, p.sub_score, p.weight, p.points)
        })
        .collect();
    if !said.is_empty() {
        let _ = write!(explanation, "; {}", said.join("; "));
    }
    Breakdown {
        period: s.period,
        score: s.score,
        grade: s.grade,
        base_score: s.base_score,
        trend_delta: s.trend_delta.get(),
        trend_z: snap.trend_z(s),
        trend_points: s.trend_points,
        exposure: s.exposure,
        indicators,
        explanation,
    }
}

/// `GET /api/v1/institutions/{id}?period=`.
pub(crate) async fn institution(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<InstitutionQuery>, QueryRejection>,
) -> Result<Json<InstitutionPage>, Problem> {
    let q = query(q)?;
    let period = q.period.as_deref().filter(|s| !s.is_empty()).map(parse_period).transpose()?;
    let snap = state.snapshots.load();
    let inst = snap.institution(&id).ok_or_else(|| {
        if snap.peer_mentions_institution(&id) {
            Problem::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_held",
                format!(
                    "institution {id:?} is held by another instance (its district's reports are consumed there); \
                     ask that instance for its drill-down"
                ),
            )
        } else {
            Problem::not_found(format!("no institution {id:?}"))
        }
    })?;
    if !caller.role.can_read_district(inst.district_code) {
        return Err(Problem::forbidden(format!("role {} may not read institution {id}", caller.role)));
    }
    let score = match period {
        Some(p) => Some(inst.score(p).ok_or_else(|| Problem::not_found(format!("{id} has no score for {p}")))?),
        None => inst.latest(),
    };
    let history = inst
        .scores
        .iter()
        .map(|s| ScorePoint {
            period: s.period,
            score: s.score,
            grade: s.grade,
            base_score: s.base_score,
            trend_points: s.trend_points,
            indicators: s.indicators.iter().map(|x| (x.indicator.as_str(), x.value.get())).collect(),
        })
        .collect();
    let reports = inst
        .reports
        .iter()
        .map(|r| ReportPoint {
            report_id: r.report_id.to_string(),
            period: r.period,
            revision: r.revision,
            submitted_at: r.submitted_at,
            metrics: r.metrics,
        })
        .collect();
    let mut alerts: Vec<_> = snap
        .alerts()
        .filter(|a| a.entity_kind == yujing_model::EntityKind::Institution && *a.entity_id == *id)
        .collect();
    alerts.sort_by(|a, b| {
        b.state.is_active().cmp(&a.state.is_active()).then(b.severity.cmp(&a.severity)).then(b.period.cmp(&a.period))
    });
    Ok(Json(InstitutionPage {
        id: inst.id.clone(),
        name: inst.name.clone(),
        sector: inst.sector,
        district_code: inst.district_code.to_string(),
        district_name: yujing_model::district(inst.district_code).map_or_else(String::new, |d| d.name_zh.to_string()),
        score: score.map(|s| breakdown(&snap, inst, s)),
        p_event: inst.p_event,
        history,
        reports,
        alerts: alerts.into_iter().map(|a| AlertBrief::of(&snap, a)).collect(),
    }))
}
