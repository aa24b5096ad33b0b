//! The Alertmanager feed of `yujing run`: a task that owns the [`AlertmanagerSink`], takes
//! the alerts of every committed transition through a channel and pushes them (DESIGN §2,
//! §6).
//!
//! The service hands it the alerts active at start (so a restarted service tells
//! Alertmanager again about everything still open), then the transitions of each batch
//! after the batch's store transaction has committed. The task pushes at once when
//! something arrives, and on a timer re-sends active alerts and retries what failed.
//! Nothing waits on it: a slow or absent Alertmanager never holds up the pipeline, and
//! what it has not yet taken stays in the sink for the next tick.

use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use yujing_alert::{AlertmanagerConfig, AlertmanagerSink, PushCounters};
use yujing_model::{Alert, Transition};

/// How long [`AlertmanagerFeed::shutdown`] waits for the last push.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// A running Alertmanager feed.
#[derive(Debug)]
pub struct AlertmanagerFeed {
    tx: mpsc::UnboundedSender<Vec<Arc<Alert>>>,
    counters: Arc<PushCounters>,
    task: JoinHandle<()>,
}

/// How often the task wakes to re-send and retry: a quarter of the resend interval,
/// between one and fifteen seconds.
fn tick_every(config: &AlertmanagerConfig) -> Duration {
    (config.resend_interval / 4).clamp(Duration::from_secs(1), Duration::from_secs(15))
}

impl AlertmanagerFeed {
    /// Starts the feed when `[alertmanager] enabled = true`, else returns `None`. `active`
    /// are the alerts to announce at once (the store's active alerts on start).
    pub fn spawn_if_enabled<'a>(
        config: &AlertmanagerConfig,
        active: impl IntoIterator<Item = &'a Alert>,
    ) -> Result<Option<AlertmanagerFeed>> {
        if !config.enabled {
            return Ok(None);
        }
        let mut sink = config.build()?;
        for alert in active.into_iter().filter(|a| a.state.is_active()) {
            sink.update(alert);
        }
        tracing::info!(
            url = %config.url,
            alerts = sink.len(),
            resend_interval = ?config.resend_interval,
            "alertmanager feed started"
        );
        let counters = sink.counters();
        let (tx, rx) = mpsc::unbounded_channel();
        let every = tick_every(config);
        let task = tokio::spawn(feed(sink, rx, every));
        Ok(Some(AlertmanagerFeed { tx, counters, task }))
    }

    /// Hands over the alerts of committed transitions (engine or people's actions).
    pub fn send(&self, transitions: &[Transition]) {
        if transitions.is_empty() {
            return;
        }
        let alerts = transitions.iter().map(|t| Arc::clone(&t.alert)).collect();
        if self.tx.send(alerts).is_err() {
            tracing::error!(transitions = transitions.len(), "alertmanager feed has stopped; alerts not handed over");
        }
    }

    /// Hands over alerts that people's actions changed (acknowledged, assigned, resolved).
    pub fn send_alerts(&self, alerts: Vec<yujing_model::Alert>) {
        if alerts.is_empty() {
            return;
        }
        let n = alerts.len();
        if self.tx.send(alerts.into_iter().map(Arc::new).collect()).is_err() {
            tracing::error!(alerts = n, "alertmanager feed has stopped; alerts not handed over");
        }
    }

    /// The push counters (for `yujing_alertmanager_pushes_total` and
    /// `yujing_alertmanager_push_failures_total`).
    pub fn counters(&self) -> Arc<PushCounters> {
        Arc::clone(&self.counters)
    }

    /// Stops the feed after one last push of whatever is due, waiting for it at most
    /// [`SHUTDOWN_WAIT`]. Active alerts are announced again on the next start; an end
    /// not pushed by then reaches Alertmanager as its `resolve_timeout`.
    pub async fn shutdown(self) {
        drop(self.tx);
        let mut task = self.task;
        match tokio::time::timeout(SHUTDOWN_WAIT, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "alertmanager feed task failed"),
            Err(_) => {
                task.abort();
                tracing::warn!(wait = ?SHUTDOWN_WAIT, "alertmanager feed stopped before its last push completed");
            }
        }
    }
}

async fn feed(mut sink: AlertmanagerSink, mut rx: mpsc::UnboundedReceiver<Vec<Arc<Alert>>>, every: Duration) {
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let open = tokio::select! {
            got = rx.recv() => match got {
                Some(alerts) => {
                    alerts.iter().for_each(|a| sink.update(a));
                    // Take everything already queued before pushing, so one push covers it.
                    while let Ok(more) = rx.try_recv() {
                        more.iter().for_each(|a| sink.update(a));
                    }
                    true
                }
                None => false,
            },
            _ = timer.tick() => true,
        };
        // The sink logs and counts failures; what failed stays due for the next tick.
        if let Err(e) = sink.tick(Instant::now()).await {
            tracing::debug!(error = %e, pending = sink.len(), "alertmanager push incomplete");
        }
        if !open {
            tracing::info!(pending = sink.due(Instant::now()).len(), "alertmanager feed stopped");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_match_the_library_defaults() {
        let config = crate::config::Config::load_with_env(None, std::iter::empty()).unwrap();
        assert_eq!(config.alertmanager, AlertmanagerConfig::default());
        assert!(!config.alertmanager.enabled);
    }

    #[test]
    fn an_enabled_feed_with_a_bad_url_is_a_located_config_error() {
        let env = [
            ("YUJING__ALERTMANAGER__ENABLED".to_owned(), "true".to_owned()),
            ("YUJING__ALERTMANAGER__URL".to_owned(), "alertmanager:9093".to_owned()),
        ];
        match crate::config::Config::load_with_env(None, env.into_iter()) {
            Err(crate::config::ConfigError::Invalid { key, message, .. }) => {
                assert_eq!(key, "alertmanager.url");
                assert!(message.contains("http://"), "{message}");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn ticks_stay_within_bounds() {
        let at = |s| tick_every(&AlertmanagerConfig { resend_interval: Duration::from_secs(s), ..Default::default() });
        assert_eq!(at(1), Duration::from_secs(1));
        assert_eq!(at(20), Duration::from_secs(5));
        assert_eq!(at(3600), Duration::from_secs(15));
    }

    /// A stub of Alertmanager's `POST /api/v2/alerts` that hands each body to the test.
    async fn stub() -> (String, mpsc::UnboundedReceiver<serde_json::Value>) {
        use axum::routing::post;
        let (tx, rx) = mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/api/v2/alerts",
            post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let _ = tx.send(body);
                async {}
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, rx)
    }

    /// The microloan NPL alert of an institution whose NPL ratio crosses the orange line.
    fn npl_alert() -> Alert {
        use yujing_alert::{EntitySeries, RulePack, SeriesPoint, derive};
        use yujing_model::{EntityKind, Sector, SectorScope};
        let point = |period: &str, npl: f64| SeriesPoint {
            period: period.parse().unwrap(),
            at: chrono::DateTime::parse_from_rfc3339(&format!("{period}-20T10:00:00+08:00")).unwrap(),
            values: [("npl_ratio", npl)].into_iter().collect(),
        };
        let series = EntitySeries {
            kind: EntityKind::Institution,
            entity_id: "CQ-MLC-0042".into(),
            entity_name: "重庆某小贷".into(),
            district_code: "500103".into(),
            sector: SectorScope::One(Sector::Microloan),
            points: vec![point("2025-08", 0.16), point("2025-09", 0.17)],
        };
        derive(&RulePack::default_pack(), &series).into_iter().find(|a| &*a.rule == "microloan-npl").unwrap()
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<serde_json::Value>) -> serde_json::Value {
        // Waits for the push to happen; the bound only keeps a broken feed from hanging.
        tokio::time::timeout(Duration::from_secs(60), rx.recv()).await.expect("no push").expect("stub gone")
    }

    #[tokio::test]
    async fn announces_active_alerts_on_start_and_pushes_transitions() {
        let (url, mut rx) = stub().await;
        let resend_interval = Duration::from_secs(3600); // no re-send during the test
        let config = AlertmanagerConfig { enabled: true, url, resend_interval, ..AlertmanagerConfig::default() };
        let open = npl_alert();
        let feed = AlertmanagerFeed::spawn_if_enabled(&config, [&open]).unwrap().unwrap();
        let first = next(&mut rx).await;
        assert_eq!(first[0]["labels"]["alertname"], "microloan-npl");
        assert_eq!(first[0]["annotations"]["alert_id"], open.id.as_str());
        assert!(first[0].get("endsAt").is_none());

        let mut resolved = open.clone();
        resolved.state = yujing_model::AlertState::AutoResolved;
        resolved.resolved_at = Some(open.updated_at);
        let kind = yujing_model::TransitionKind::AutoResolved;
        feed.send(&[Transition { kind, by: yujing_alert::ENGINE.into(), alert: Arc::new(resolved) }]);
        let second = next(&mut rx).await;
        assert_eq!(second[0]["annotations"]["state"], "auto-resolved");
        assert!(second[0]["endsAt"].is_string());
        let counters = feed.counters();
        feed.shutdown().await;
        assert_eq!(counters.pushes.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(counters.failures.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn disabled_starts_nothing() {
        let feed = AlertmanagerFeed::spawn_if_enabled(&AlertmanagerConfig::default(), std::iter::empty()).unwrap();
        assert!(feed.is_none());
    }
}
