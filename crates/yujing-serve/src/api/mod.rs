//! The JSON API under `/api/v1` (its contract is `openapi.json`), `/healthz` and `/readyz`.

mod alerts;
mod institutions;
mod riskmap;
mod stress;

use crate::actions::ActionSender;
use crate::auth::Tokens;
use crate::problem::Problem;
use crate::snapshot::SnapshotHandle;
use crate::stress::StressSender;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use yujing_model::{Period, SectorScope};

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    /// Slower requests get 503.
    pub request_timeout: Duration,
    /// Slower stress projections get 503.
    pub stress_timeout: Duration,
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The latest snapshot.
    pub snapshots: SnapshotHandle,
    /// The configured tokens.
    pub tokens: Arc<Tokens>,
    /// Where actions go; `None` on a read-only instance.
    pub actions: Option<ActionSender>,
    /// Where stress projections go; `None` when this instance runs none.
    pub stress: Option<StressSender>,
    /// Request limits.
    pub limits: Limits,
}

/// Pages of lists: at most this many items.
pub const MAX_LIMIT: usize = 500;
/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;

/// The API routes, to be nested under `/api/v1`.
pub fn api_router(state: AppState) -> Router {
    let limits = state.limits;
    // Projections rerun the scoring: their own, longer timeout.
    let stress = Router::new()
        .route("/stress", post(stress::stress))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            Limits { request_timeout: limits.stress_timeout, ..limits },
            timeout,
        ));
    Router::new()
        .route("/riskmap", get(riskmap::riskmap))
        .route("/districts/{code}", get(riskmap::district))
        .route("/institutions/{id}", get(institutions::institution))
        .route("/alerts", get(alerts::list_alerts))
        .route("/alerts/{id}", get(alerts::one))
        .route("/alerts/{id}/ack", post(alerts::acknowledge))
        .route("/alerts/{id}/assign", post(alerts::assign))
        .route("/alerts/{id}/resolve", post(alerts::resolve))
        .route("/audit", get(alerts::audit))
        .route("/openapi.json", get(crate::openapi::openapi))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(limits, timeout))
        .merge(stress)
        .with_state(state)
}

/// `/healthz` (the process is up) and `/readyz` (`ready` is set).
pub fn health_router(ready: Arc<AtomicBool>) -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" })).route(
        "/readyz",
        get(move || {
            let ready = ready.load(Ordering::Relaxed);
            async move {
                if ready { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready\n") }
            }
        }),
    )
}

/// The whole application: the API under `/api/v1`, health, and the web page; anything
/// else is a 404 problem.
pub fn app(state: AppState, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .nest("/api/v1", api_router(state))
        .merge(health_router(ready))
        .merge(crate::web::router())
        .fallback(not_found)
}

async fn not_found() -> Problem {
    Problem::not_found("no such resource")
}

async fn method_not_allowed() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this resource")
}

async fn timeout(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::unavailable("the request took too long").into_response(),
    }
}

/// The query of a request, or a 400 problem saying what is wrong with it.
pub(crate) fn query<T: DeserializeOwned>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(t)| t).map_err(|e| {
        let text = e.body_text();
        let text = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
        Problem::bad_parameter(format!("bad query: {text}"))
    })
}

/// A `period=YYYY-MM` parameter.
pub(crate) fn parse_period(s: &str) -> Result<Period, Problem> {
    s.parse().map_err(|_| Problem::bad_parameter(format!("period {s:?} is not YYYY-MM")))
}

/// A `sector=` parameter: a sector or `all` (the default).
pub(crate) fn parse_scope(s: Option<&str>) -> Result<SectorScope, Problem> {
    match s {
        None | Some("") => Ok(SectorScope::All),
        Some(s) => SectorScope::parse(s).ok_or_else(|| {
            Problem::bad_parameter(format!("sector {s:?} is not bank, microloan, guarantee, p2p_residual or all"))
        }),
    }
}

/// A page of a list.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    /// The items of this page.
    items: Vec<T>,
    /// Items matching the query, over all pages.
    total: usize,
    /// The page size.
    limit: usize,
    /// The cursor of the next page (pass it as `cursor=`), absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// `limit` (1..=500, default 50) and `cursor` (an offset from a previous page's `next`).
pub(crate) fn page<T>(items: Vec<T>, limit: Option<&str>, cursor: Option<&str>) -> Result<Page<T>, Problem> {
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| Problem::bad_parameter(format!("limit {s:?} is not a number from 1 to {MAX_LIMIT}")))?,
    };
    let offset = match cursor {
        None | Some("") => 0,
        Some(s) => s.parse::<usize>().map_err(|_| Problem::bad_parameter(format!("cursor {s:?} is not valid")))?,
    };
    let total = items.len();
    let end = offset.saturating_add(limit).min(total);
    let next = (end < total).then(|| end.to_string());
    let items = items.into_iter().skip(offset).take(limit).collect();
    Ok(Page { items, total, limit, next })
}
