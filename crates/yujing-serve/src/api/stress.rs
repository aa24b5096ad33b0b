//! `POST stress`: what a stress scenario would do to the latest period, without touching
//! live state.

use super::AppState;
use super::alerts::body;
use crate::auth::Caller;
use crate::problem::Problem;
use crate::stress::{StressError, StressRequest};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde_json::Value;
use tokio::sync::oneshot;
use yujing_model::Period;

/// `POST /api/v1/stress` with `{"scenario": "<TOML text>", "period": "YYYY-MM"}` (the
/// period is optional): the projection (districts, institutions, mechanisms, new alerts).
pub(crate) async fn stress(
    State(state): State<AppState>,
    caller: Caller,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, Problem> {
    if caller.role.district().is_some() {
        return Err(Problem::forbidden(format!("role {} may not run stress projections", caller.role)));
    }
    let body = body(b)?;
    if let Some(k) = body.keys().find(|k| !matches!(k.as_str(), "scenario" | "period")) {
        return Err(Problem::unprocessable(format!("unknown field {k:?}")));
    }
    let scenario = match body.get("scenario") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err(Problem::unprocessable("a scenario (TOML text, as for `yujing stress`) is required"));
        }
        Some(_) => return Err(Problem::unprocessable("scenario must be a string of TOML text")),
    };
    let period: Option<Period> = match body.get("period") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            Some(s.trim().parse().map_err(|_| Problem::unprocessable(format!("period {s:?} is not YYYY-MM")))?)
        }
        Some(_) => return Err(Problem::unprocessable("period must be a string YYYY-MM")),
    };
    let sender =
        state.stress.as_ref().ok_or_else(|| Problem::unavailable("this instance runs no stress projections"))?;
    let (reply, answer) = oneshot::channel();
    let request = StressRequest { scenario, period, caller: caller.clone(), reply };
    sender.send(request).await.map_err(|_| Problem::unavailable("the pipeline is not taking stress projections"))?;
    let outcome = answer.await.map_err(|_| Problem::unavailable("the pipeline dropped the projection"))?;
    match outcome {
        Ok(projection) => {
            tracing::info!(by = %caller.name, role = %caller.role, "stress projection answered");
            Ok(Json(projection))
        }
        Err(StressError::Invalid(m)) => Err(Problem::unprocessable(m)),
        Err(StressError::NoData(m)) => Err(Problem::conflict(m)),
        Err(StressError::Unavailable(m)) => Err(Problem::unavailable(m)),
    }
}
