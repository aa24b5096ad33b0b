//! The Alertmanager client (DESIGN §6): alerts go to Alertmanager's `POST /api/v2/alerts`,
//! re-sent while they are active and sent once more with `endsAt` when they end.
//!
//! [`AlertmanagerSink`] keeps the set of alerts Alertmanager should know about, keyed by
//! their label set. [`update`](AlertmanagerSink::update) takes an alert as it is now (from
//! a transition); [`due`](AlertmanagerSink::due) says, for an explicit instant, what must
//! be sent: everything new or changed, and every active alert not sent for
//! `resend_interval` (Alertmanager resolves an alert it has not heard of for its
//! `resolve_timeout`, 5 minutes by default); [`tick`](AlertmanagerSink::tick) sends it, in
//! batches, retrying with exponential backoff on connection errors, timeouts, 5xx and 429.
//! Another 4xx is not retried. A batch that failed stays due, so the next tick sends it
//! again: nothing is dropped. Ended alerts leave the set once Alertmanager has taken them.
//!
//! A severity is a label, so an escalation is a new alert to Alertmanager: the sink ends
//! the old label set (`endsAt` = the escalation time) and starts the new one.
//!
//! The sink counts what it does in [`PushCounters`] (plain atomics; the binary exports
//! them as Prometheus metrics).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use yujing_alert::AlertmanagerConfig;
//!
//! let config = AlertmanagerConfig {
//!     enabled: true,
//!     url: "http://alertmanager:9093".into(),
//!     resend_interval: Duration::from_secs(60),
//!     ..AlertmanagerConfig::default()
//! };
//! let sink = config.build().unwrap();
//! // Feed it alerts with `sink.update(&alert)`; then, on a timer:
//! // `sink.tick(Instant::now()).await` posts `sink.due(now)`.
//! assert!(sink.due(Instant::now()).is_empty());
//! ```

mod payload;

pub use payload::PostableAlert;

use crate::error::{Error, Result};
use payload::Links;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use yujing_model::Alert;

/// The `[alertmanager]` section: where and how alerts are pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Push alerts at all; off by default.
    pub enabled: bool,
    /// Alertmanager's base URL, e.g. "http://alertmanager:9093"; alerts are posted to
    /// `{url}/api/v2/alerts`.
    pub url: String,
    /// How often an active alert is sent again, e.g. "1m". Keep it well under
    /// Alertmanager's `resolve_timeout` (5m by default), or active alerts will flap.
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
    /// The timeout of one HTTP request, e.g. "10s".
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Retries of one batch after the first attempt, on connection errors, timeouts,
    /// 5xx and 429.
    pub max_retries: u32,
    /// The wait before the first retry, e.g. "500ms"; it doubles on each further retry.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// The longest wait between retries, e.g. "30s".
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// The most alerts in one request.
    pub batch_size: usize,
    /// The base URL of yujing's API as people reach it, e.g. "http://yujing:8080";
    /// `generatorURL` is `{generator_base_url}/api/v1/alerts/{id}`.
    pub generator_base_url: String,
    /// The runbook link of an alert; `{mechanism}` and `{rule}` are replaced by the
    /// alert's mechanism id and rule id.
    pub runbook_url: String,
}

impl Default for AlertmanagerConfig {
    /// The same values as the binary's embedded default configuration.
    fn default() -> Self {
        AlertmanagerConfig {
            enabled: false,
            url: "http://127.0.0.1:9093".to_owned(),
            resend_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_retries: 4,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            batch_size: 500,
            generator_base_url: "http://127.0.0.1:8080".to_owned(),
            runbook_url: "https://example.invalid/yujing/blob/main/deploy/runbooks/{mechanism}.md".to_owned(),
        }
    }
}

impl AlertmanagerConfig {
    /// Checks the settings and builds the sink.
    pub fn build(&self) -> Result<AlertmanagerSink> {
        let bad = |field: &'static str, reason: &str| Error::AlertmanagerConfig { field, reason: reason.to_owned() };
        for (field, url) in [("url", &self.url), ("generator_base_url", &self.generator_base_url)] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad(field, "must be an http:// or https:// URL"));
            }
        }
        if self.resend_interval.is_zero() {
            return Err(bad("resend_interval", "must be positive"));
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout", "must be positive"));
        }
        if self.batch_size == 0 {
            return Err(bad("batch_size", "must be at least 1"));
        }
        if self.backoff_initial > self.backoff_max {
            return Err(bad("backoff_initial", "must not exceed backoff_max"));
        }
        let endpoint = format!("{}/api/v2/alerts", self.url.trim_end_matches('/'));
        reqwest::Url::parse(&endpoint).map_err(|e| bad("url", &e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(concat!("yujing/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| Error::AlertmanagerClient { source })?;
        Ok(AlertmanagerSink {
            config: self.clone(),
            client,
            endpoint,
            entries: BTreeMap::new(),
            by_alert: HashMap::new(),
            counters: Arc::new(PushCounters::default()),
        })
    }
}

/// What the sink has done, as monotonic counters (read them with `Ordering::Relaxed`).
#[derive(Debug, Default)]
pub struct PushCounters {
    /// Batches pushed, whatever the outcome (a batch's retries count once).
    pub pushes: AtomicU64,
    /// Batches that failed: retries used up, or refused with a 4xx. They stay due.
    pub failures: AtomicU64,
    /// Retried requests.
    pub retries: AtomicU64,
    /// Alerts Alertmanager accepted (each sending of an alert counts).
    pub alerts_sent: AtomicU64,
}

impl PushCounters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One label set the sink tracks.
#[derive(Debug, Clone)]
struct Entry {
    /// The yujing alert behind it.
    alert_id: String,
    /// What to send.
    alert: PostableAlert,
    /// Changed since it was last accepted.
    dirty: bool,
    /// When Alertmanager last accepted it.
    last_sent: Option<Instant>,
}

impl Entry {
    fn active(&self) -> bool {
        self.alert.ends_at.is_none()
    }
}

/// The Alertmanager client and the set of alerts it keeps Alertmanager told about.
#[derive(Debug)]
pub struct AlertmanagerSink {
    config: AlertmanagerConfig,
    client: reqwest::Client,
    endpoint: String,
    /// By label key.
    entries: BTreeMap<String, Entry>,
    /// Alert id -> the label key it was last entered under.
    by_alert: HashMap<String, String>,
    counters: Arc<PushCounters>,
}

/// How one POST went.
enum Attempt {
    Accepted,
    Retryable(String),
    Refused { status: u16, body: String },
}

impl AlertmanagerSink {
    /// The configuration it was built from.
    pub fn config(&self) -> &AlertmanagerConfig {
        &self.config
    }

    /// The counters, shared: the binary reads them when metrics are scraped.
    pub fn counters(&self) -> Arc<PushCounters> {
        Arc::clone(&self.counters)
    }

    /// The Alertmanager form of an alert, as this sink would send it.
    pub fn postable(&self, alert: &Alert) -> PostableAlert {
        payload::postable(
            alert,
            &Links { generator_base_url: &self.config.generator_base_url, runbook_url: &self.config.runbook_url },
        )
    }

    /// Takes an alert as it is now. An active alert is sent (again) when it is new or has
    /// changed, then every `resend_interval`; an ended one is sent once with `endsAt` and
    /// then forgotten. An escalation ends the old severity's label set.
    pub fn update(&mut self, alert: &Alert) {
        let next = self.postable(alert);
        let key = next.label_key();
        if let Some(old_key) = self.by_alert.get(&alert.id).filter(|k| **k != key).cloned() {
            // The labels changed (an escalation): the old label set ends now, or, if
            // Alertmanager never heard of it, is simply dropped.
            let ended_at = payload::timestamp(alert.updated_at);
            match self.entries.get_mut(&old_key).filter(|e| e.alert_id == alert.id && e.active()) {
                Some(old) if old.last_sent.is_none() => {
                    self.entries.remove(&old_key);
                }
                Some(old) => {
                    old.alert.ends_at = Some(ended_at);
                    old.dirty = true;
                }
                None => {}
            }
        }
        let active = next.ends_at.is_none();
        match self.entries.get_mut(&key) {
            // An end for a label set a newer alert has taken over: that one stays.
            Some(e) if !active && e.alert_id != alert.id && e.active() => {}
            Some(e) => {
                if e.alert != next || e.alert_id != alert.id {
                    e.alert = next;
                    e.alert_id = alert.id.clone();
                    e.dirty = true;
                }
            }
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry { alert_id: alert.id.clone(), alert: next, dirty: true, last_sent: None },
                );
            }
        }
        if active {
            self.by_alert.insert(alert.id.clone(), key);
        } else {
            self.by_alert.remove(&alert.id);
        }
    }

    /// Label sets tracked: active alerts, and ended ones Alertmanager has not yet taken.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn is_due(&self, e: &Entry, now: Instant) -> bool {
        e.dirty || e.last_sent.is_none_or(|t| now.saturating_duration_since(t) >= self.config.resend_interval)
    }

    /// What must be sent at `now`, in label order: every new, changed or ended alert not
    /// yet accepted, and every active alert last accepted `resend_interval` or more ago.
    pub fn due(&self, now: Instant) -> Vec<PostableAlert> {
        self.entries.values().filter(|e| self.is_due(e, now)).map(|e| e.alert.clone()).collect()
    }

    /// Sends what is due at `now`, `batch_size` alerts a request, and returns how many
    /// Alertmanager accepted. A batch refused with a 4xx other than 429 is not retried;
    /// the others are still sent, and the first such refusal is returned. When a batch
    /// runs out of retries the tick stops there and returns the error. Either way the
    /// failed alerts stay due for the next tick.
    pub async fn tick(&mut self, now: Instant) -> Result<usize> {
        let keys: Vec<String> =
            self.entries.iter().filter(|(_, e)| self.is_due(e, now)).map(|(k, _)| k.clone()).collect();
        let mut accepted = 0;
        let mut refused = None;
        for chunk in keys.chunks(self.config.batch_size) {
            let batch: Vec<&PostableAlert> = chunk.iter().map(|k| &self.entries[k].alert).collect();
            let body = serde_json::to_vec(&batch).map_err(|source| Error::AlertmanagerEncode { source })?;
            PushCounters::add(&self.counters.pushes, 1);
            match self.push(&body, chunk.len()).await {
                Ok(()) => {
                    PushCounters::add(&self.counters.alerts_sent, chunk.len() as u64);
                    accepted += chunk.len();
                    for k in chunk {
                        self.accepted(k, now);
                    }
                }
                Err(e @ Error::AlertmanagerRefused { .. }) => {
                    PushCounters::add(&self.counters.failures, 1);
                    refused.get_or_insert(e);
                }
                Err(e) => {
                    PushCounters::add(&self.counters.failures, 1);
                    return Err(e);
                }
            }
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(accepted),
        }
    }

    /// Marks a label set as taken by Alertmanager; an ended one is forgotten.
    fn accepted(&mut self, key: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else { return };
        if e.active() {
            e.dirty = false;
            e.last_sent = Some(now);
        } else {
            self.entries.remove(key);
        }
    }

    /// One batch, with retries and exponential backoff.
    async fn push(&self, body: &[u8], alerts: usize) -> Result<()> {
        let mut backoff = self.config.backoff_initial;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let reason = match self.post(body).await {
                Attempt::Accepted => {
                    tracing::debug!(alerts, attempt, "alertmanager accepted the alerts");
                    return Ok(());
                }
                Attempt::Refused { status, body } => {
                    tracing::warn!(
                        status,
                        alerts,
                        response = %body,
                        "alertmanager refused the alerts; not retrying, they stay due"
                    );
                    return Err(Error::AlertmanagerRefused { url: self.endpoint.clone(), status, body });
                }
                Attempt::Retryable(reason) => reason,
            };
            if attempt > self.config.max_retries {
                tracing::warn!(
                    attempts = attempt,
                    alerts,
                    reason = %reason,
                    "alertmanager unreachable; retries used up, the alerts stay due"
                );
                return Err(Error::AlertmanagerUnavailable { url: self.endpoint.clone(), attempts: attempt, reason });
            }
            tracing::debug!(attempt, reason = %reason, wait = ?backoff, "alertmanager push failed; retrying");
            PushCounters::add(&self.counters.retries, 1);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
    }

    async fn post(&self, body: &[u8]) -> Attempt {
        let response = self
            .client
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await;
        match response {
            Err(e) => Attempt::Retryable(error_chain(&e)),
            Ok(r) if r.status().is_success() => Attempt::Accepted,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let text: String = text.chars().take(500).collect();
                if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    Attempt::Retryable(format!("HTTP {}: {}", status.as_u16(), text.trim()))
                } else {
                    Attempt::Refused { status: status.as_u16(), body: text }
                }
            }
        }
    }
}

/// An error with its sources, `a: b: c` (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests;
