//! `GET alerts`, `GET alerts/{id}`, `POST alerts/{id}/ack|assign|resolve`, `GET audit`.

use super::{AppState, Page, page, parse_scope, query};
use crate::actions::{ActionError, ActionRequest, AlertAction};
use crate::auth::{Caller, Role};
use crate::problem::Problem;
use crate::snapshot::{AuditEntry, Snapshot, Source};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use yujing_model::{Alert, AlertState, Mechanism, Severity};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertsQuery {
    state: Option<String>,
    severity: Option<String>,
    mechanism: Option<String>,
    district: Option<String>,
    sector: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// A comma-separated list of values, each parsed; empty means no filter.
fn csv_list<T>(s: Option<&str>, name: &str, parse: impl Fn(&str) -> Option<Vec<T>>) -> Result<Vec<T>, Problem> {
    let Some(s) = s.filter(|s| !s.is_empty()) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        out.extend(parse(part).ok_or_else(|| Problem::bad_parameter(format!("{name} {part:?} is not valid")))?);
    }
    Ok(out)
}

/// `since=`: an RFC 3339 time, or a date (midnight China time).
fn parse_since(s: &str) -> Result<DateTime<FixedOffset>, Problem> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| yujing_model::period::china_tz().from_local_datetime(&d.and_hms_opt(0, 0, 0)?).single())
        .ok_or_else(|| Problem::bad_parameter(format!("since {s:?} is not an RFC 3339 time or a YYYY-MM-DD date")))
}

fn district_param(role: Role, s: Option<&str>) -> Result<Option<String>, Problem> {
    let asked = match s.filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            yujing_model::district::parse_district_code(s)
                .filter(|c| yujing_model::district(*c).is_some())
                .ok_or_else(|| Problem::bad_parameter(format!("district {s:?} is not one of the 38 district codes")))?,
        ),
    };
    match (role.district(), asked) {
        (Some(own), Some(a)) if own != a => Err(Problem::forbidden(format!("role {role} may not read district {a}"))),
        (Some(own), _) => Ok(Some(own.to_string())),
        (None, a) => Ok(a.map(|c| c.to_string())),
    }
}

/// `GET /api/v1/alerts?state=&severity=&mechanism=&district=&sector=&since=&limit=&cursor=`:
/// most severe first, then the most recently opened.
pub(crate) async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<Page<AlertOut>>, Problem> {
    let q = query(q)?;
    let states = csv_list(q.state.as_deref(), "state", |s| match s {
        "active" => Some(vec![AlertState::Open, AlertState::Acknowledged]),
        s => AlertState::parse(s).map(|x| vec![x]),
    })?;
    let severities = csv_list(q.severity.as_deref(), "severity", |s| Severity::parse(s).map(|x| vec![x]))?;
    let mechanisms = csv_list(q.mechanism.as_deref(), "mechanism", |s| Mechanism::parse(s).map(|x| vec![x]))?;
    let district = district_param(caller.role, q.district.as_deref())?;
    let sector = q.sector.as_deref().filter(|s| !s.is_empty()).map(|s| parse_scope(Some(s))).transpose()?;
    let since = q.since.as_deref().filter(|s| !s.is_empty()).map(parse_since).transpose()?;
    let snap = state.snapshots.load();
    let mut alerts: Vec<&Alert> = snap
        .alerts()
        .filter(|a| caller.role.can_read_alert(a))
        .filter(|a| states.is_empty() || states.contains(&a.state))
        .filter(|a| severities.is_empty() || severities.contains(&a.severity))
        .filter(|a| mechanisms.is_empty() || mechanisms.contains(&a.mechanism))
        .filter(|a| district.as_ref().is_none_or(|d| *a.district_code == **d))
        .filter(|a| sector.is_none_or(|s| a.sector == s))
        .filter(|a| since.is_none_or(|t| a.updated_at >= t))
        .collect();
    alerts.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then_with(|| b.opened_at.cmp(&a.opened_at)).then_with(|| a.id.cmp(&b.id))
    });
    let alerts: Vec<AlertOut> = alerts.into_iter().map(|a| AlertOut::of(&snap, a)).collect();
    Ok(Json(page(alerts, q.limit.as_deref(), q.cursor.as_deref())?))
}

/// An alert as the API shows it: the alert v1 record, and where it comes from when another
/// instance holds it.
#[derive(Debug, Serialize)]
pub(crate) struct AlertOut {
    #[serde(flatten)]
    alert: Alert,
    /// `peer`: read from another instance's alerts topic (DESIGN §8).
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
}

impl AlertOut {
    fn of(snap: &Snapshot, a: &Alert) -> AlertOut {
        AlertOut { alert: a.clone(), source: snap.alert_source(&a.id) }
    }
}

/// `GET /api/v1/alerts/{id}`.
pub(crate) async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertOut>, Problem> {
    let snap = state.snapshots.load();
    let alert = snap.alert(&id).ok_or_else(|| Problem::not_found(format!("no alert {id:?}")))?;
    if !caller.role.can_read_alert(alert) {
        return Err(Problem::forbidden(format!("role {} may not read alert {id}", caller.role)));
    }
    Ok(Json(AlertOut::of(&snap, alert)))
}

/// A JSON object body: empty means `{}`; 400 when not JSON, 413 when too large.
pub(super) fn body(b: Result<Bytes, BytesRejection>) -> Result<serde_json::Map<String, serde_json::Value>, Problem> {
    let bytes = b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the request body is too large")
        } else {
            Problem::new(StatusCode::BAD_REQUEST, "bad_body", "the request body could not be read")
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "bad_body", "the body is not a JSON object"))
}

/// A required, non-blank string field of a body; other fields are refused.
fn field(
    body: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    allowed: &[&str],
) -> Result<Option<String>, Problem> {
    if let Some(k) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Problem::unprocessable(format!("unknown field {k:?}")));
    }
    match body.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Some(serde_json::Value::String(_)) => Ok(None),
        Some(_) => Err(Problem::unprocessable(format!("{name} must be a string"))),
    }
}

/// What an action answers: the changed alert, or 202 when another instance holds it.
pub(crate) enum Acted {
    /// Applied here: the alert after the action.
    Applied(Box<Alert>),
    /// Handed to the instance holding the alert.
    Forwarded(Forwarded),
}

/// The body of a 202: the action went to the instance holding the alert.
#[derive(Debug, Serialize)]
pub(crate) struct Forwarded {
    status: &'static str,
    alert_id: String,
    district_code: String,
    action: &'static str,
    detail: String,
}

impl axum::response::IntoResponse for Acted {
    fn into_response(self) -> axum::response::Response {
        match self {
            Acted::Applied(a) => Json(a).into_response(),
            Acted::Forwarded(f) => (StatusCode::ACCEPTED, Json(f)).into_response(),
        }
    }
}

async fn act(state: AppState, caller: Caller, id: String, action: AlertAction) -> Result<Acted, Problem> {
    if caller.role == Role::Analyst {
        return Err(Problem::forbidden("analysts may read but not act on alerts"));
    }
    let alert =
        state.snapshots.load().alert(&id).cloned().ok_or_else(|| Problem::not_found(format!("no alert {id:?}")))?;
    if !caller.role.can_act_on(&alert) {
        return Err(Problem::forbidden(format!("role {} may not act on alert {id}", caller.role)));
    }
    let sender = state.actions.as_ref().ok_or_else(|| Problem::unavailable("this instance takes no actions"))?;
    let (reply, answer) = oneshot::channel();
    let verb = action.verb();
    let request = ActionRequest { alert_id: id.clone(), caller: caller.clone(), action, reply };
    sender.send(request).await.map_err(|_| Problem::unavailable("the pipeline is not taking actions"))?;
    let outcome = answer.await.map_err(|_| Problem::unavailable("the pipeline dropped the action"))?;
    match outcome {
        Ok(alert) => {
            tracing::info!(alert = %id, by = %caller.name, role = %caller.role, action = verb, "alert action applied");
            Ok(Acted::Applied(Box::new(alert)))
        }
        Err(ActionError::Forwarded(district_code)) => Ok(Acted::Forwarded(Forwarded {
            status: "forwarded",
            alert_id: id,
            district_code,
            action: verb,
            detail: "another instance holds this alert: the action was handed to it and shows once it is applied"
                .into(),
        })),
        Err(ActionError::NotFound(_)) => Err(Problem::not_found(format!("no alert {id:?}"))),
        Err(ActionError::Conflict(m)) => Err(Problem::conflict(m)),
        Err(ActionError::Invalid(m)) => Err(Problem::unprocessable(m)),
        Err(ActionError::Unavailable(m)) => Err(Problem::unavailable(m)),
    }
}

/// `POST /api/v1/alerts/{id}/ack` (body empty or `{}`).
pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Acted, Problem> {
    field(&body(b)?, "", &[])?;
    act(state, caller, id, AlertAction::Acknowledge).await
}

/// `POST /api/v1/alerts/{id}/assign` with `{"assignee": "…"}`.
pub(crate) async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Acted, Problem> {
    let assignee = field(&body(b)?, "assignee", &["assignee"])?
        .ok_or_else(|| Problem::unprocessable("an assignee is required"))?;
    act(state, caller, id, AlertAction::Assign { assignee }).await
}

/// `POST /api/v1/alerts/{id}/resolve` with `{"note": "…"}` (the note is required).
pub(crate) async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Acted, Problem> {
    let note = field(&body(b)?, "note", &["note"])?
        .ok_or_else(|| Problem::unprocessable("a note saying why is required to resolve an alert"))?;
    act(state, caller, id, AlertAction::Resolve { note }).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    alert_id: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/v1/audit?alert_id=&actor=&since=&limit=&cursor=`: people's actions, newest first.
pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Page<AuditEntry>>, Problem> {
    let q = query(q)?;
    let since = q.since.as_deref().filter(|s| !s.is_empty()).map(parse_since).transpose()?;
    let own = caller.role.district().map(|c| c.to_string());
    let snap = state.snapshots.load();
    let entries: Vec<AuditEntry> = snap
        .audit()
        .iter()
        .rev()
        .filter(|e| own.as_ref().is_none_or(|d| &e.district_code == d))
        .filter(|e| q.alert_id.as_ref().is_none_or(|a| &e.alert_id == a))
        .filter(|e| q.actor.as_ref().is_none_or(|a| &e.actor == a))
        .filter(|e| since.is_none_or(|t| e.at >= t))
        .cloned()
        .collect();
    Ok(Json(page(entries, q.limit.as_deref(), q.cursor.as_deref())?))
}
