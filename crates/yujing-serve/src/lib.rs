//! yujing's HTTP surface (DESIGN §2, §9, §10): the JSON API under `/api/v1`, the web page,
//! `/healthz` and `/readyz`, and a `/metrics` router for its own listen address.
//!
//! The API reads the pipeline's latest immutable [`Snapshot`]: the pipeline publishes a
//! new one after every committed batch through a [`SnapshotHandle`], and each request
//! takes an `Arc` of the current one at its start, so no lock is held across a request.
//! People's actions on alerts (acknowledge, assign, resolve) are not applied here: they
//! are sent as [`ActionRequest`]s down a channel to the pipeline task, which applies them
//! to its alert book, makes them durable, publishes a new snapshot and replies. Stress
//! projections (`POST /api/v1/stress`) go the same way as [`StressRequest`]s.
//!
//! Every API call needs a bearer token from the configuration ([`ServeConfig::tokens`],
//! stored as SHA-256 hex); the token's [`Role`] scopes every query and action.
//!
//! ```
//! use yujing_serve::{ServeConfig, Snapshot, SnapshotHandle, TokenConfig, hash_token};
//! let config = ServeConfig {
//!     tokens: vec![TokenConfig { name: "duty".into(), role: "regulator".parse().unwrap(), sha256: hash_token("s3cret") }],
//!     ..ServeConfig::default()
//! };
//! let snapshots = SnapshotHandle::new(Snapshot::empty());
//! let (actions, _requests) = yujing_serve::action_channel(16);
//! let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
//! let app: axum::Router = config.build(snapshots, Some(actions), ready).expect("valid config");
//! # let _ = app;
//! ```

pub mod actions;
pub mod api;
pub mod auth;
pub mod config;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod snapshot;
pub mod stress;
pub mod web;

pub use actions::{ActionError, ActionReceiver, ActionRequest, ActionSender, AlertAction, action_channel};
pub use auth::{Caller, Role, TokenConfig, Tokens, hash_token};
pub use config::ServeConfig;
pub use metrics::metrics_router;
pub use problem::Problem;
pub use snapshot::{
    AggregateKey, AuditEntry, EventProbability, IndicatorCutoff, InstitutionView, PipelineStats, Snapshot,
    SnapshotHandle, SnapshotParts, Source,
};
pub use stress::{StressError, StressReceiver, StressRequest, StressSender, stress_channel};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configured token is invalid.
    #[error("serve.tokens[{index}] ({name}): {message}")]
    Token {
        /// Its position in the list.
        index: usize,
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A setting is out of range.
    #[error("serve.{key}: {message}")]
    Config {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
