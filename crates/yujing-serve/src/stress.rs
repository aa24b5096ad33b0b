//! Stress projections asked for through the API (`POST /api/v1/stress`), sent to the
//! pipeline task that owns the engine. The pipeline takes each request between batches,
//! parses the scenario, copies the reports it needs and projects the scenario off the
//! pipeline's path; it replies with the projection as JSON. Live state is never touched.

use crate::auth::Caller;
use tokio::sync::{mpsc, oneshot};
use yujing_model::Period;

/// Why the pipeline could not project a scenario.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StressError {
    /// The scenario does not parse or says something invalid (the parser's message).
    #[error("{0}")]
    Invalid(String),
    /// There is nothing to project onto (no reports yet, or none in the period asked for).
    #[error("{0}")]
    NoData(String),
    /// The pipeline cannot project now (say, too many projections are running).
    #[error("{0}")]
    Unavailable(String),
}

/// One scenario for the pipeline to project, with where to send the projection.
#[derive(Debug)]
pub struct StressRequest {
    /// The scenario, as TOML text (the format of `yujing stress --scenario`).
    pub scenario: String,
    /// The period to shock; the latest when absent.
    pub period: Option<Period>,
    /// Who asks (already authorised).
    pub caller: Caller,
    /// The projection as JSON, or why not.
    pub reply: oneshot::Sender<Result<serde_json::Value, StressError>>,
}

/// The API's end of the stress channel.
pub type StressSender = mpsc::Sender<StressRequest>;

/// The pipeline's end of the stress channel.
pub type StressReceiver = mpsc::Receiver<StressRequest>;

/// A bounded channel of stress requests.
pub fn stress_channel(capacity: usize) -> (StressSender, StressReceiver) {
    mpsc::channel(capacity.max(1))
}
