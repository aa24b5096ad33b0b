//! `yujing run`: the service. Reports from Kafka, state in the SQLite store, transitions
//! to `yujing.alerts`, district scores to `yujing.scores`, bad input to the dead-letter
//! topic (DESIGN §2, §7, §8).
//!
//! Per batch, in this order: dead letters are delivered; the batch's ledger changes,
//! alerts, audit records and source offsets commit in one store transaction; the offsets
//! are then stored in Kafka; finally the audit outbox is published. A crash anywhere
//! replays at most the last batch, which the ledger turns into no-ops: at-least-once
//! delivery, effectively exactly-once state.

use crate::config::Config;
use crate::durable::{open_engine, persist};
use crate::engine::Engine;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use yujing_alert::RulePack;
use yujing_ingest::Input;
use yujing_ingest::kafka::{KafkaProducerConfig, KafkaSink, KafkaSourceConfig, Record, dead_letter_record};
use yujing_model::{Level, Position, Transition};
use yujing_store::{Checkpoint, Store, StoreConfig};

/// The `[kafka]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port` separated by commas.
    pub brokers: String,
    /// The consumer group; instances in one group share the partitions.
    pub group: String,
    /// Reports in.
    pub reports_topic: String,
    /// Bad input out, with the original bytes and the reason in headers.
    pub dlq_topic: String,
    /// Alert transitions out (key: alert id; compacted).
    pub alerts_topic: String,
    /// District scores out (key: district and sector; compacted).
    pub scores_topic: String,
    /// The most messages in one batch.
    pub batch_max_messages: usize,
    /// How long a batch waits for its first message, e.g. "200ms".
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// Prefetch bound in kilobytes (librdkafka `queued.max.messages.kbytes`).
    pub queued_max_messages_kbytes: u32,
    /// Group session timeout, e.g. "10s".
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// This instance's static group membership id (librdkafka `group.instance.id`), stable
    /// across restarts: a restarted instance takes its partitions back at once instead of
    /// waiting for the broker to expire its old session. Empty: dynamic membership.
    #[serde(default)]
    pub instance_id: String,
    /// librdkafka settings for every client (consumer and producers), passed through as
    /// they are: security (`security.protocol`, `sasl.*`, `ssl.*`), client id, tuning.
    #[serde(default)]
    pub client: std::collections::BTreeMap<String, String>,
}

/// The `[store]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The SQLite database file.
    pub path: PathBuf,
}

/// Publishes the store's audit outbox to the alerts topic and marks it published.
async fn publish_outbox(store: &mut Store, sink: &KafkaSink, topic: &str) -> Result<usize> {
    let mut published = 0;
    loop {
        let pending = store.audit(0, 1000, true)?;
        let Some(last) = pending.last().map(|a| a.seq) else { return Ok(published) };
        let records: Vec<Record> = pending
            .iter()
            .map(|a| {
                let t: Transition = serde_json::from_str(&a.record)?;
                let value = serde_json::to_vec(&t.alert)?;
                let kind = a.kind.as_bytes().to_vec();
                Ok(Record {
                    key: a.alert_id.clone(),
                    value,
                    headers: vec![
                        ("yujing.transition".into(), kind),
                        ("yujing.by".into(), a.actor.clone().into_bytes()),
                    ],
                    partition: None,
                })
            })
            .collect::<Result<_, serde_json::Error>>()?;
        sink.send_all(topic, &records).await.context("publishing alert transitions")?;
        store.mark_published(last)?;
        published += records.len();
    }
}

/// Publishes the district aggregates of the periods a batch touched.
async fn publish_scores(
    engine: &Engine,
    periods: &[yujing_model::Period],
    sink: &KafkaSink,
    topic: &str,
) -> Result<()> {
    let records: Vec<Record> = engine
        .aggregates()
        .filter(|a| a.level == Level::District && periods.contains(&a.period))
        .map(|a| {
            Ok(Record {
                key: format!("{}:{}:{}", a.entity_id, a.sector, a.period),
                value: serde_json::to_vec(a)?,
                headers: Vec::new(),
                partition: None,
            })
        })
        .collect::<Result<_, serde_json::Error>>()?;
    sink.send_all(topic, &records).await.context("publishing district scores")
}

/// The original bytes behind a dead letter, found in its batch by position.
fn original<'a>(batch: &'a [Input], position: &Position) -> &'a [u8] {
    batch
        .iter()
        .find(|i| i.position.partition == position.partition && i.position.offset == position.offset)
        .map_or(&[][..], |i| i.bytes.as_slice())
}

/// Runs the service until SIGINT or SIGTERM; then finishes the batch, commits and closes.
pub async fn run(
    config: &Config,
    rules: RulePack,
    kafka: &KafkaConfig,
    store_path: &std::path::Path,
    ready: Arc<AtomicBool>,
    api: &mut crate::serve::ApiLink,
) -> Result<()> {
    let mut store = StoreConfig::at(store_path).build()?;
    let (mut engine, restored) = open_engine(config, rules, &mut store)?;
    tracing::info!(
        store = %store_path.display(),
        reports = engine.ledger().len(),
        alerts = engine.alerts().count(),
        changed = restored.len(),
        "state restored"
    );
    // Alertmanager feed (crate::alertmanager), when `[alertmanager] enabled = true`.
    let alertmanager = crate::alertmanager::AlertmanagerFeed::spawn_if_enabled(&config.alertmanager, engine.alerts())?;
    if let Some(am) = &alertmanager {
        am.send(&restored);
    }
    let mut source = KafkaSourceConfig {
        brokers: kafka.brokers.clone(),
        topic: kafka.reports_topic.clone(),
        group: kafka.group.clone(),
        batch_max_messages: kafka.batch_max_messages,
        batch_max_wait: kafka.batch_max_wait,
        queued_max_messages_kbytes: kafka.queued_max_messages_kbytes,
        session_timeout: kafka.session_timeout,
        extra: consumer_settings(kafka),
    }
    .build()?;
    // Dead letters carry the original bytes, which may be far larger than a report.
    let mut extra = kafka.client.clone();
    extra.entry("message.max.bytes".into()).or_insert_with(|| "16777216".into());
    let sink = KafkaProducerConfig { brokers: kafka.brokers.clone(), extra, ..Default::default() }.build()?;
    let source_ready = source.readiness();
    publish_outbox(&mut store, &sink, &kafka.alerts_topic).await?;
    // The API: people's past actions, and the state as restored.
    api.load_audit(&store)?;
    api.publish(&engine, config);

    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let batch = tokio::select! {
            _ = &mut stop => break,
            b = source.next_batch() => b?,
        };
        ready.store(source_ready.load(Ordering::Relaxed), Ordering::Relaxed);
        // API actions, between batches: each commits with its audit record, then goes out.
        if api.drain(&mut engine, Some(&mut store)) > 0 {
            publish_outbox(&mut store, &sink, &kafka.alerts_topic).await?;
        }
        api.metrics.set_consumer_lag(source.counters().lag);
        if batch.is_empty() {
            continue;
        }
        let (before, started) = (engine.stats().clone(), std::time::Instant::now());
        let out = engine.process(&batch)?;
        api.metrics.record_batch("kafka", &before, engine.stats(), &out, started.elapsed());
        // 1. Dead letters first: they must be safe before their offsets are.
        let letters: Vec<Record> =
            out.dead_letters.iter().map(|d| dead_letter_record(d, original(&batch, &d.position))).collect();
        sink.send_all(&kafka.dlq_topic, &letters).await.context("delivering dead letters")?;
        // 2. One store transaction for the batch, with the positions it consumed.
        let checkpoints = checkpoints(&batch);
        let started = std::time::Instant::now();
        let committed = persist(&mut engine, &mut store, &out.transitions, checkpoints);
        api.metrics.record_store_commit(started.elapsed(), batch.len(), committed.is_ok());
        committed?;
        if let Some(am) = &alertmanager {
            am.send(&out.transitions);
        }
        // 3. Only now may Kafka forget the messages.
        let positions: Vec<Position> = batch.iter().map(|i| i.position.clone()).collect();
        source.commit_through(&positions)?;
        // 4. Publish what changed.
        publish_outbox(&mut store, &sink, &kafka.alerts_topic).await?;
        let periods = engine.take_touched_periods();
        publish_scores(&engine, &periods, &sink, &kafka.scores_topic).await?;
        api.metrics.observe_report_to_alert(&out.transitions);
        api.metrics.record_committed();
        api.publish(&engine, config);
        tracing::debug!(
            inputs = batch.len(),
            dead_letters = out.dead_letters.len(),
            transitions = out.transitions.len(),
            "batch committed"
        );
    }
    tracing::info!("shutting down: committing offsets and closing");
    ready.store(false, Ordering::Relaxed);
    source.close()?;
    sink.flush(Duration::from_secs(10))?;
    if let Some(am) = alertmanager {
        am.shutdown().await;
    }
    Ok(())
}

/// The consumer's librdkafka settings: the `client` pass-through plus static membership.
fn consumer_settings(kafka: &KafkaConfig) -> std::collections::BTreeMap<String, String> {
    let mut extra = kafka.client.clone();
    if !kafka.instance_id.is_empty() {
        extra.insert("group.instance.id".into(), kafka.instance_id.clone());
    }
    extra
}

fn checkpoints(batch: &[Input]) -> Vec<Checkpoint> {
    let mut next: std::collections::BTreeMap<(String, i32), i64> = Default::default();
    for i in batch {
        if let (Some(p), Some(o)) = (i.position.partition, i.position.offset) {
            let n = next.entry((i.position.source.clone(), p)).or_insert(o + 1);
            *n = (*n).max(o + 1);
        }
    }
    next.into_iter().map(|((source, partition), next_offset)| Checkpoint { source, partition, next_offset }).collect()
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Serves `/healthz` (the process is up) and `/readyz` (the source reaches the broker) on
/// `listen` until the process ends.
pub async fn serve_health(listen: &str, ready: Arc<AtomicBool>) -> Result<()> {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    let app =
        Router::new().route("/healthz", get(|| async { "ok\n" })).route(
            "/readyz",
            get(move || {
                let ready = ready.load(Ordering::Relaxed);
                async move {
                    if ready { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready\n") }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(listen, "health endpoints up");
    axum::serve(listener, app).await.context("health server")
}
