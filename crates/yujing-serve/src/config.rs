//! The `[serve]` section: listen addresses, limits and tokens.

use crate::actions::ActionSender;
use crate::api::{AppState, Limits};
use crate::auth::{TokenConfig, Tokens};
use crate::snapshot::SnapshotHandle;
use crate::stress::StressSender;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// HTTP settings (`[serve]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// The address of the API, the web page, /healthz and /readyz, e.g. "127.0.0.1:8080".
    pub listen: String,
    /// The address of /metrics, e.g. "127.0.0.1:9898".
    pub metrics_listen: String,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// A request taking longer gets 503, e.g. "10s".
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// `POST /api/v1/stress` taking longer gets 503, e.g. "60s" (a projection reruns the
    /// scoring over the whole history twice).
    #[serde(default = "default_stress_timeout", with = "humantime_serde")]
    pub stress_timeout: Duration,
    /// The API's bearer tokens (`[[serve.tokens]]`); none means every API call gets 401.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// While the pipeline is busy, the API's view is refreshed at most this often, e.g.
    /// "1s" (and never more often than building it costs four times over, so the view
    /// takes at most a fifth of the pipeline's time); it is refreshed as soon as the
    /// pipeline is idle. People's actions show at once either way.
    #[serde(default = "default_snapshot_interval", with = "humantime_serde")]
    pub snapshot_interval: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: "127.0.0.1:9898".into(),
            max_body_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(10),
            stress_timeout: default_stress_timeout(),
            tokens: Vec::new(),
            snapshot_interval: default_snapshot_interval(),
        }
    }
}

fn default_snapshot_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_stress_timeout() -> Duration {
    Duration::from_secs(60)
}

impl ServeConfig {
    /// The application: `/api/v1/…`, `/healthz`, `/readyz` and the web page. `actions` is
    /// `None` on a read-only instance (actions then get 503); `ready` drives `/readyz`.
    /// Stress projections get 503 (see [`ServeConfig::build_with_stress`]).
    pub fn build(
        &self,
        snapshots: SnapshotHandle,
        actions: Option<ActionSender>,
        ready: Arc<AtomicBool>,
    ) -> crate::Result<axum::Router> {
        self.build_with_stress(snapshots, actions, None, ready)
    }

    /// [`ServeConfig::build`], with stress projections sent down `stress` (`None`: 503).
    pub fn build_with_stress(
        &self,
        snapshots: SnapshotHandle,
        actions: Option<ActionSender>,
        stress: Option<StressSender>,
        ready: Arc<AtomicBool>,
    ) -> crate::Result<axum::Router> {
        let mut state = self.state(snapshots, actions)?;
        state.stress = stress;
        Ok(crate::api::app(state, ready))
    }

    /// The API's shared state, checked.
    pub fn state(&self, snapshots: SnapshotHandle, actions: Option<ActionSender>) -> crate::Result<AppState> {
        if self.max_body_bytes == 0 {
            return Err(crate::Error::Config { key: "max_body_bytes", message: "must be at least 1".into() });
        }
        if self.request_timeout.is_zero() {
            return Err(crate::Error::Config { key: "request_timeout", message: "must be above 0".into() });
        }
        if self.stress_timeout.is_zero() {
            return Err(crate::Error::Config { key: "stress_timeout", message: "must be above 0".into() });
        }
        let tokens = Tokens::new(&self.tokens)?;
        let limits = Limits {
            max_body_bytes: self.max_body_bytes,
            request_timeout: self.request_timeout,
            stress_timeout: self.stress_timeout,
        };
        Ok(AppState { snapshots, tokens: Arc::new(tokens), actions, stress: None, limits })
    }
}
