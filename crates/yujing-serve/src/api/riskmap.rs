//! `GET riskmap` and `GET districts/{code}`.

use super::{AppState, parse_period, parse_scope, query};
use crate::auth::{Caller, Role};
use crate::problem::Problem;
use crate::snapshot::{Snapshot, Source};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use yujing_model::{AggregateScore, Alert, Grade, Level, Period, Region, Sector, SectorScope, Severity};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RiskmapQuery {
    level: Option<String>,
    sector: Option<String>,
    period: Option<String>,
}

/// Counts per grade, by grade name.
fn grade_counts(a: &AggregateScore) -> BTreeMap<&'static str, u32> {
    Grade::ALL.iter().zip(a.grade_counts).map(|(g, n)| (g.as_str(), n)).collect()
}

/// Open (and acknowledged) alerts per severity, by severity name.
fn open_counts(snap: &Snapshot, keep: impl Fn(&Alert) -> bool) -> BTreeMap<&'static str, u32> {
    snap.open_counts(keep).into_iter().map(|(s, n)| (s.as_str(), n)).collect()
}

fn in_scope(alert: &Alert, scope: SectorScope) -> bool {
    scope == SectorScope::All || alert.sector == scope
}

/// An institution that adds most to an aggregate.
#[derive(Debug, Serialize)]
pub(crate) struct TopContributor {
    institution_id: String,
    name: String,
    sector: Option<Sector>,
    district_code: Option<String>,
    score: f64,
    grade: Option<Grade>,
    /// Its share of the aggregate score, in points.
    points: f64,
}

/// One sector's figures within an entity.
#[derive(Debug, Serialize)]
pub(crate) struct SectorFigures {
    sector: SectorScope,
    score: f64,
    grade: Grade,
    institutions: u32,
    grade_counts: BTreeMap<&'static str, u32>,
    npl_ratio: Option<f64>,
    payout_rate: Option<f64>,
}

impl SectorFigures {
    fn of(a: &AggregateScore) -> SectorFigures {
        SectorFigures {
            sector: a.sector,
            score: a.score,
            grade: a.grade,
            institutions: a.institutions,
            grade_counts: grade_counts(a),
            npl_ratio: a.npl_ratio,
            payout_rate: a.payout_rate,
        }
    }
}

/// One district, region or the city on the map.
#[derive(Debug, Serialize)]
pub(crate) struct RiskEntity {
    id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name_pinyin: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'static str>,
    score: f64,
    grade: Grade,
    institutions: u32,
    grade_counts: BTreeMap<&'static str, u32>,
    exposure: f64,
    npl_ratio: Option<f64>,
    payout_rate: Option<f64>,
    p2p_complaints: Option<f64>,
    p2p_lenders_unpaid: Option<f64>,
    /// Per sector, when the map is of all sectors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sectors: Vec<SectorFigures>,
    top: Vec<TopContributor>,
    open_alerts: BTreeMap<&'static str, u32>,
    /// `peer`: a district another instance holds (read from its published scores);
    /// `merged`: a region or the city recomputed over the districts of every instance.
    /// Absent: this instance's own figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
}

fn top(snap: &Snapshot, a: &AggregateScore) -> Vec<TopContributor> {
    a.top
        .iter()
        .map(|c| {
            let inst = snap.institution(&c.institution_id);
            TopContributor {
                institution_id: c.institution_id.clone(),
                name: inst.map_or_else(String::new, |i| i.name.clone()),
                sector: inst.map(|i| i.sector),
                district_code: inst.map(|i| i.district_code.to_string()),
                score: c.score,
                grade: inst.and_then(|i| i.score(a.period)).map(|s| s.grade),
                points: c.points,
            }
        })
        .collect()
}

/// The districts an aggregate covers.
fn covers(level: Level, id: &str, code: &str) -> bool {
    match level {
        Level::District => id == code,
        Level::Region => {
            code.parse().ok().and_then(yujing_model::district).is_some_and(|d| Region::from_id(id) == Some(d.region))
        }
        _ => true,
    }
}

fn entity(snap: &Snapshot, a: &AggregateScore) -> RiskEntity {
    let district = (a.level == Level::District).then(|| a.entity_id.parse().ok().and_then(yujing_model::district));
    let district = district.flatten();
    let sectors = if a.sector == SectorScope::All {
        Sector::ALL
            .iter()
            .filter_map(|s| snap.aggregate(a.level, &a.entity_id, SectorScope::One(*s), a.period))
            .map(SectorFigures::of)
            .collect()
    } else {
        Vec::new()
    };
    RiskEntity {
        id: a.entity_id.clone(),
        name: a.entity_name.clone(),
        name_pinyin: district.map(|d| d.name_pinyin),
        region: district.map(|d| d.region.id()),
        score: a.score,
        grade: a.grade,
        institutions: a.institutions,
        grade_counts: grade_counts(a),
        exposure: a.exposure,
        npl_ratio: a.npl_ratio,
        payout_rate: a.payout_rate,
        p2p_complaints: a.p2p_complaints,
        p2p_lenders_unpaid: a.p2p_lenders_unpaid,
        sectors,
        top: top(snap, a),
        open_alerts: open_counts(snap, |al| in_scope(al, a.sector) && covers(a.level, &a.entity_id, &al.district_code)),
        source: snap.aggregate_source(a),
    }
}

/// The risk map.
#[derive(Debug, Serialize)]
pub(crate) struct RiskMap {
    level: Level,
    sector: SectorScope,
    period: Option<Period>,
    /// Every period with scores, oldest first.
    periods: Vec<Period>,
    entities: Vec<RiskEntity>,
}

/// The period asked for, or the default; 404 when there are no scores for it.
fn period_of(snap: &Snapshot, asked: Option<&str>) -> Result<Option<Period>, Problem> {
    match asked {
        None | Some("") => Ok(snap.default_period()),
        Some(s) => {
            let p = parse_period(s)?;
            if snap.has_period(p) { Ok(Some(p)) } else { Err(Problem::not_found(format!("no scores for period {p}"))) }
        }
    }
}

/// `GET /api/v1/riskmap?level=district|region|city&sector=&period=`.
pub(crate) async fn riskmap(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<RiskmapQuery>, QueryRejection>,
) -> Result<Json<RiskMap>, Problem> {
    let q = query(q)?;
    let level = match q.level.as_deref() {
        None | Some("") | Some("district") => Level::District,
        Some("region") => Level::Region,
        Some("city") => Level::City,
        Some(other) => {
            return Err(Problem::bad_parameter(format!("level {other:?} is not district, region or city")));
        }
    };
    let sector = parse_scope(q.sector.as_deref())?;
    if level != Level::District && !caller.role.reads_everything() {
        return Err(Problem::forbidden(format!("role {} sees its own district only", caller.role)));
    }
    let snap = state.snapshots.load();
    let period = period_of(&snap, q.period.as_deref())?;
    let mut entities: Vec<RiskEntity> = match period {
        Some(p) => snap
            .aggregates_at(level, sector, p)
            .into_iter()
            .filter(|a| match caller.role {
                Role::District(code) => a.entity_id == code.to_string(),
                _ => true,
            })
            .map(|a| entity(&snap, a))
            .collect(),
        None => Vec::new(),
    };
    entities.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(RiskMap { level, sector, period, periods: snap.periods().collect(), entities }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DistrictQuery {
    sector: Option<String>,
    period: Option<String>,
}

/// A point of a district's score history.
#[derive(Debug, Serialize)]
struct HistoryPoint {
    period: Period,
    score: f64,
    grade: Grade,
    institutions: u32,
    npl_ratio: Option<f64>,
    payout_rate: Option<f64>,
}

/// An institution of a district, ranked.
#[derive(Debug, Serialize)]
struct RankedInstitution {
    id: String,
    name: String,
    sector: Sector,
    score: f64,
    grade: Grade,
    trend_z: Option<f64>,
    exposure: f64,
    /// The calibrated probability of an event within the horizon, when the period is the
    /// institution's latest and a `[probability]` model is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    p_event: Option<crate::snapshot::EventProbability>,
}

/// An alert in a list, in brief.
#[derive(Debug, Serialize)]
pub(crate) struct AlertBrief {
    id: String,
    rule: std::sync::Arc<str>,
    severity: Severity,
    state: yujing_model::AlertState,
    mechanism: yujing_model::Mechanism,
    entity_kind: yujing_model::EntityKind,
    entity_id: std::sync::Arc<str>,
    entity_name: std::sync::Arc<str>,
    sector: SectorScope,
    period: Period,
    summary: String,
    /// `peer` when another instance holds the alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
}

impl AlertBrief {
    pub(crate) fn of(snap: &Snapshot, a: &Alert) -> AlertBrief {
        AlertBrief {
            id: a.id.clone(),
            rule: a.rule.clone(),
            severity: a.severity,
            state: a.state,
            mechanism: a.mechanism,
            entity_kind: a.entity_kind,
            entity_id: a.entity_id.clone(),
            entity_name: a.entity_name.clone(),
            sector: a.sector,
            period: a.period,
            summary: a.evidence.summary.clone(),
            source: snap.alert_source(&a.id),
        }
    }
}

/// A district's page.
#[derive(Debug, Serialize)]
pub(crate) struct DistrictView {
    code: String,
    name: &'static str,
    name_pinyin: &'static str,
    region: &'static str,
    region_name: &'static str,
    sector: SectorScope,
    period: Option<Period>,
    /// The district at the period (absent when it has no scores then).
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<RiskEntity>,
    /// The score of the sector scope in every period, oldest first.
    history: Vec<HistoryPoint>,
    /// Each sector at the period.
    sectors: Vec<SectorFigures>,
    /// Institutions scored in the period, riskiest first.
    institutions: Vec<RankedInstitution>,
    /// Open and acknowledged alerts of the district, most severe first.
    alerts: Vec<AlertBrief>,
    /// `peer` when another instance holds the district: its scores and alerts come from
    /// that instance's published topics, and its institutions are not listed here.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
}

/// `GET /api/v1/districts/{code}?sector=&period=`.
pub(crate) async fn district(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    q: Result<Query<DistrictQuery>, QueryRejection>,
) -> Result<Json<DistrictView>, Problem> {
    let q = query(q)?;
    let d = yujing_model::district::parse_district_code(&code)
        .and_then(yujing_model::district)
        .ok_or_else(|| Problem::not_found(format!("no district {code:?}")))?;
    if !caller.role.can_read_district(d.code) {
        return Err(Problem::forbidden(format!("role {} may not read district {}", caller.role, d.code)));
    }
    let sector = parse_scope(q.sector.as_deref())?;
    let snap = state.snapshots.load();
    let period = period_of(&snap, q.period.as_deref())?;
    let id = d.code.to_string();
    let history = snap
        .series(Level::District, &id, sector)
        .iter()
        .map(|a| HistoryPoint {
            period: a.period,
            score: a.score,
            grade: a.grade,
            institutions: a.institutions,
            npl_ratio: a.npl_ratio,
            payout_rate: a.payout_rate,
        })
        .collect();
    let current = period.and_then(|p| snap.aggregate(Level::District, &id, sector, p)).map(|a| entity(&snap, a));
    let source = current.as_ref().and_then(|c| c.source);
    let sectors = period
        .map(|p| {
            SectorScope::EVERY
                .iter()
                .filter_map(|s| snap.aggregate(Level::District, &id, *s, p))
                .map(SectorFigures::of)
                .collect()
        })
        .unwrap_or_default();
    let mut institutions: Vec<RankedInstitution> = period
        .map(|p| {
            snap.institutions_in(d.code)
                .filter(|i| sector == SectorScope::All || SectorScope::One(i.sector) == sector)
                .filter_map(|i| i.score(p).map(|s| (i, s)))
                .map(|(i, s)| RankedInstitution {
                    id: i.id.clone(),
                    name: i.name.clone(),
                    sector: i.sector,
                    score: s.score,
                    grade: s.grade,
                    trend_z: snap.trend_z(s),
                    exposure: s.exposure,
                    p_event: i.p_event.filter(|e| e.period == p),
                })
                .collect()
        })
        .unwrap_or_default();
    institutions.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    let mut alerts: Vec<&Alert> =
        snap.alerts().filter(|a| a.state.is_active() && *a.district_code == *id && in_scope(a, sector)).collect();
    alerts.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| b.opened_at.cmp(&a.opened_at)));
    Ok(Json(DistrictView {
        code: id,
        name: d.name_zh,
        name_pinyin: d.name_pinyin,
        region: d.region.id(),
        region_name: d.region.name_zh(),
        sector,
        period,
        current,
        history,
        sectors,
        institutions,
        source,
        alerts: alerts.into_iter().map(|a| AlertBrief::of(&snap, a)).collect(),
    }))
}
