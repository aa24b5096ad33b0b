//! `yujing run`: the service. Reports from Kafka, state in the SQLite store, transitions
//! to `yujing.alerts`, district scores to `yujing.scores`, bad input to the dead-letter
//! topic (DESIGN §2, §7, §8).
//!
//! Per batch, in this order: the batch's ledger changes, alerts, audit records, dead
//! letters and source offsets commit in one store transaction (while a backlog is read,
//! scores and alerts are brought up to date only every so often: [`crate::pace`]); the offsets are then stored
//! in Kafka; finally the store's outbox (dead letters, transitions) and the changed district
//! scores are published ([`crate::outbox`]). The commit runs on the store writer's thread
//! while the next batch is processed, one at a time ([`crate::writer`]). A crash anywhere replays at most the last
//! batch, which the ledger turns into no-ops: at-least-once delivery, effectively
//! exactly-once state. A failed delivery stays in the outbox and is retried with backoff
//! while consumption goes on: no bad message and no broker hiccup stalls the pipeline.

use crate::config::Config;
use crate::durable::open_engine;
use crate::engine::BatchOutput;
use crate::outbox::{PublisherHandle, all_periods, changed_score_records, score_records};
use crate::writer::{Commit, Committed, StoreWriter};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use yujing_alert::RulePack;
use yujing_ingest::Input;
use yujing_ingest::kafka::{KafkaProducerConfig, KafkaSourceConfig};
use yujing_model::Position;
use yujing_store::{Checkpoint, StoreConfig, StoredDeadLetter};

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
    /// Actions on alerts another instance holds, forwarded to it (key: district).
    pub alert_actions_topic: String,
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
    // Partitions start where this instance's store says it stopped (DESIGN §7, §8).
    .build_resuming(resume_positions(&store, &kafka.reports_topic)?)?;
    // Dead letters carry the original bytes, which may be far larger than a report.
    // A failed delivery is retried by the publisher, not held in the client.
    let mut extra = kafka.client.clone();
    extra.entry("message.max.bytes".into()).or_insert_with(|| "16777216".into());
    let sink = KafkaProducerConfig {
        brokers: kafka.brokers.clone(),
        extra,
        delivery_attempts: 1,
        message_timeout: Duration::from_secs(15),
        ..Default::default()
    }
    .build()?;
    let source_ready = source.readiness();
    let publisher = PublisherHandle::spawn(kafka, store_path, sink, Some(api.metrics.clone()))?;
    // What was pending before a stop is not known: the scores topic is compacted by key.
    publisher.scores(score_records(&engine, &all_periods(&engine)));
    publisher.wake();
    // Readiness follows the source at once, even while a batch is being processed.
    let readiness = {
        let (ready, source_ready) = (ready.clone(), source_ready.clone());
        tokio::spawn(async move {
            loop {
                ready.store(source_ready.load(Ordering::Relaxed), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    // The whole-city view: the other instances' scores and alerts (DESIGN §8).
    if let Some(peers) = config.peers.build(kafka, &store.origin()?, Some(api.metrics.clone()))? {
        api.set_peers(peers);
        let forwarder = KafkaProducerConfig {
            brokers: kafka.brokers.clone(),
            extra: kafka.client.clone(),
            // Within the API's request timeout: the person is told to try again.
            message_timeout: Duration::from_secs(5),
            delivery_attempts: 1,
            ..Default::default()
        }
        .build()?;
        api.set_forwarder(crate::forward::Forwarder::new(forwarder, kafka.alert_actions_topic.clone()));
    }
    // The API: people's past actions, and the state as restored.
    api.load_audit(&store)?;
    api.publish(&engine, config);

    // Batches commit on a thread and connection of their own (crate::writer); this one
    // keeps people's actions.
    let mut writer = StoreWriter::spawn(StoreConfig::at(store_path).build()?, publisher.waker(), api.metrics.clone())?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut pacer = crate::pace::Pacer::new(config.ingest.settle_interval);
    // No deadline passes before the first statistics tell how far behind each partition is:
    // a backlog's first batches would otherwise make the institutions of the partitions not
    // yet read look late.
    engine.freeze_watermark();
    let mut hold_kind = "frozen";
    // On a stop, one last round with no batch settles what is still unsettled.
    let mut stopping = false;
    loop {
        let batch = if stopping {
            Vec::new()
        } else {
            tokio::select! {
                _ = &mut stop => { stopping = true; Vec::new() },
                b = source.next_batch() => b?,
            }
        };
        if let Some(c) = writer.try_finished()? {
            committed(&source, alertmanager.as_ref(), &mut pacer, c)?;
        }
        // An action commits on this connection: after the batch in flight, so that the
        // store and the outbox keep the engine's order.
        if api.actions_pending()
            && let Some(c) = writer.wait()?
        {
            committed(&source, alertmanager.as_ref(), &mut pacer, c)?;
        }
        // API actions, between batches: each commits with its audit record, then goes out.
        let acted = api.drain(&mut engine, Some(&mut store));
        if let Some(am) = &alertmanager {
            am.send_alerts(acted.clone());
            let c = am.counters();
            api.metrics.sync_alertmanager(c.pushes.load(Ordering::Relaxed), c.failures.load(Ordering::Relaxed));
        }
        api.metrics.set_consumer_lag(source.counters().lag);
        if !acted.is_empty() {
            publisher.wake();
        }
        // While some partitions are behind, the watermark trails the one furthest behind;
        // once none is (or on a stop) it is the latest submission seen (DESIGN §7). Until
        // the first statistics tell the lags, the hold stays where it is (frozen at start).
        let lags = source.partition_lags();
        let hold = next_hold(stopping, engine.submitted_by_partition(), &lags);
        if let Some(kind) = hold.kind()
            && kind != hold_kind
        {
            // A watermark that stays frozen keeps every missing report from being noticed.
            tracing::info!(hold = kind, from = hold_kind, ?lags, "watermark hold changed");
            hold_kind = kind;
        }
        let due_moved = match hold {
            Hold::Leave => false,
            Hold::Freeze => engine.freeze_watermark(),
            Hold::At(hold) => engine.hold_watermark(hold),
        };
        // A full batch means a backlog: its scores and alerts may wait (crate::pace).
        let settle = settles(&mut pacer, stopping, batch.len(), kafka.batch_max_messages, due_moved, &lags);
        if batch.is_empty() && !settle {
            if stopping {
                break;
            }
            // Idle: the API's view catches up with everything committed.
            api.publish_due(&engine, config, false, true);
            continue;
        }
        let (before, started) = (engine.stats().clone(), std::time::Instant::now());
        let dead_letters = if batch.is_empty() { Vec::new() } else { engine.ingest(&batch) };
        let transitions = if settle { pacer.settle(&mut engine)? } else { Vec::new() };
        let out = BatchOutput { dead_letters, transitions };
        if !batch.is_empty() {
            api.metrics.record_batch("kafka", &before, engine.stats(), &out, started.elapsed());
        }
        let processed = started.elapsed();
        // One store transaction for the batch, with its dead letters and the positions it
        // consumed, on the writer's thread once the batch before it has committed. Then
        // Kafka may forget the messages (`committed`), and the publisher delivers the
        // outbox and the district scores of what changed.
        let letters = out
            .dead_letters
            .iter()
            .map(|d| {
                let record = serde_json::to_string(d)?;
                Ok(StoredDeadLetter { seq: 0, record, original: original(&batch, &d.position).to_vec() })
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        let waiting = std::time::Instant::now();
        let previous = writer.wait()?;
        let waited = waiting.elapsed();
        let previous_ms = previous.as_ref().map_or(0, |c| c.took.as_millis() as u64);
        if let Some(c) = previous {
            committed(&source, alertmanager.as_ref(), &mut pacer, c)?;
        }
        let changed = engine.take_changed_district_scores();
        let scores = changed_score_records(&engine, &changed);
        let positions: Vec<Position> = batch.iter().map(|i| i.position.clone()).collect();
        let transitions = out.transitions.len();
        writer.submit(Commit::take(
            &mut engine,
            settle,
            out.transitions,
            checkpoints(&batch),
            positions,
            letters,
            scores,
        ))?;
        let after = std::time::Instant::now();
        api.publish_due(&engine, config, true, false);
        tracing::debug!(
            inputs = batch.len(),
            dead_letters = out.dead_letters.len(),
            transitions,
            settled = settle,
            process_ms = processed.as_millis() as u64,
            waited_ms = waited.as_millis() as u64,
            previous_commit_ms = previous_ms,
            after_ms = after.elapsed().as_millis() as u64,
            "batch handed to the store writer"
        );
        if stopping {
            break;
        }
    }
    if let Some(c) = writer.wait()? {
        committed(&source, alertmanager.as_ref(), &mut pacer, c)?;
    }
    // The writer holds a waker of the publisher: the publisher stops once every one is gone.
    drop(writer);
    tracing::info!("shutting down: committing offsets and closing");
    readiness.abort();
    ready.store(false, Ordering::Relaxed);
    source.close()?;
    if let Some(c) = publisher.shutdown(Duration::from_secs(10)).await {
        tracing::info!(delivered = c.delivered, failed = c.failed, undeliverable = c.undeliverable, "closed");
    }
    if let Some(am) = alertmanager {
        am.shutdown().await;
    }
    Ok(())
}

/// What follows a batch's commit on the pipeline: an error if it failed; otherwise Kafka
/// may forget its messages, and Alertmanager hears of its transitions.
fn committed(
    source: &yujing_ingest::kafka::KafkaSource,
    alertmanager: Option<&crate::alertmanager::AlertmanagerFeed>,
    pacer: &mut crate::pace::Pacer,
    c: Committed,
) -> Result<()> {
    c.result.context("committing the batch to the store")?;
    if c.settled {
        pacer.add_cost(c.took);
    }
    if let Some(am) = alertmanager {
        am.send(&c.transitions);
    }
    source.commit_through(&c.positions)?;
    Ok(())
}

/// What to do with the watermark's hold after a batch ([`next_hold`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Leave it as it is.
    Leave,
    /// Hold the watermark where it is ([`yujing_store::Ledger::freeze_watermark`]).
    Freeze,
    /// Hold it at this submission (`None`: release it).
    At(Option<chrono::DateTime<chrono::FixedOffset>>),
}

impl Hold {
    /// What the hold becomes, for the log (`None`: it stays as it is).
    fn kind(self) -> Option<&'static str> {
        match self {
            Hold::Leave => None,
            Hold::Freeze => Some("frozen"),
            Hold::At(Some(_)) => Some("trailing"),
            Hold::At(None) => Some("released"),
        }
    }
}

/// The watermark's next hold: released on a stop; left alone until the first statistics
/// tell the lags (the service freezes it at its start); frozen while a partition that is
/// behind (or whose lag is not known) has not been read from at all, since its first
/// message may be older than anything read; otherwise [`watermark_hold`].
fn next_hold(
    stopping: bool,
    submitted: &std::collections::BTreeMap<i32, chrono::DateTime<chrono::FixedOffset>>,
    lags: &std::collections::BTreeMap<i32, i64>,
) -> Hold {
    if stopping {
        Hold::At(None)
    } else if lags.is_empty() {
        Hold::Leave
    } else if lags.iter().any(|(p, lag)| *lag != 0 && !submitted.contains_key(p)) {
        Hold::Freeze
    } else {
        Hold::At(watermark_hold(submitted, lags))
    }
}

/// Whether a round of the loop settles the engine: a batch of `len` inputs (0: none came in
/// time), `due_moved` when the watermark moved the due period. On a stop, whenever anything is
/// unsettled. Otherwise the pacer decides (crate::pace), at once when nothing is known to
/// wait ([`caught_up`]). An empty round in a backlog, where the client's prefetch ran dry
/// for a moment, waits as a short batch does: settling at every one of those, `yujing run`
/// settled 14 times in the e2e backlog of 1M reports at a 15 s interval.
fn settles(
    pacer: &mut crate::pace::Pacer,
    stopping: bool,
    len: usize,
    max: usize,
    due_moved: bool,
    lags: &std::collections::BTreeMap<i32, i64>,
) -> bool {
    if stopping {
        return pacer.pending() || due_moved;
    }
    if len == 0 && !pacer.pending() && !due_moved {
        return false;
    }
    pacer.ingested(caught_up(len, max, lags))
}

/// Whether nothing is known to wait behind a batch of `len` inputs (`max`: a full batch's),
/// so that it settles at once (crate::pace): a batch that is not full, unless the last
/// statistics (`lags`, at most a second old; -1 unknown) tell of at least a full batch more.
/// A backlog's batches often come short, where the client's prefetch runs dry for a moment:
/// each of those settled the engine, every 2 or 3 batches in the e2e backlog of 1M reports.
fn caught_up(len: usize, max: usize, lags: &std::collections::BTreeMap<i32, i64>) -> bool {
    let behind: i64 = lags.values().map(|l| (*l).max(0)).sum();
    len < max && behind < max as i64
}

/// Where to hold the watermark: at the latest submission read from the partition furthest
/// behind, of those that are (`lags`: each assigned partition's lag, -1 unknown). None when
/// none is behind, or none of those behind has been read from yet.
///
/// Reports are partitioned by district, and while a backlog is read some partitions run
/// ahead of others. The watermark is the latest submission seen; taken over every partition
/// it would pass the deadlines of periods whose reports still wait in the partitions behind,
/// and every institution there would look late (in the e2e backlog of 1M reports, 258,000
/// `reporting-late` alerts opened and were then superseded).
fn watermark_hold(
    submitted: &std::collections::BTreeMap<i32, chrono::DateTime<chrono::FixedOffset>>,
    lags: &std::collections::BTreeMap<i32, i64>,
) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    lags.iter().filter(|(_, lag)| **lag != 0).filter_map(|(p, _)| submitted.get(p)).min().copied()
}

/// The store's next offset to read per partition of `topic`.
fn resume_positions(store: &yujing_store::Store, topic: &str) -> Result<std::collections::BTreeMap<i32, i64>> {
    let source = format!("kafka:{topic}");
    Ok(store.checkpoints(&source)?.into_iter().map(|c| (c.partition, c.next_offset)).collect())
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
            let n = next.entry((i.position.source.to_string(), p)).or_insert(o + 1);
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

#[cfg(test)]
mod tests {
    use super::{Hold, caught_up, next_hold, settles, watermark_hold};
    use crate::pace::Pacer;
    use chrono::{DateTime, FixedOffset};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn at(day: u32) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(&format!("2021-03-{day:02}T10:00:00+08:00")).unwrap()
    }

    #[test]
    fn a_short_batch_settles_at_once_unless_the_statistics_tell_of_a_full_batch_more() {
        let lags = |l: &[i64]| l.iter().enumerate().map(|(p, l)| (p as i32, *l)).collect::<BTreeMap<i32, i64>>();
        // Live: short batches, little or nothing behind; before the first statistics too.
        assert!(caught_up(40, 16384, &lags(&[3, 0, 12, 0])));
        assert!(caught_up(40, 16384, &lags(&[])));
        assert!(caught_up(40, 16384, &lags(&[-1, -1, 5, 0])));
        // A backlog's short batch.
        assert!(!caught_up(7548, 16384, &lags(&[388_781, 160_023, 0, 0])));
        assert!(!caught_up(7548, 16384, &lags(&[8000, 8384])));
        // A full batch never is.
        assert!(!caught_up(16384, 16384, &lags(&[0, 0])));
    }

    /// Regression: an empty round (no message within the batch wait) settled whenever
    /// anything was unsettled, backlog or not: 14 settles in the e2e backlog of 1M reports
    /// with a 15 s interval, most of them after empty rounds.
    #[test]
    fn an_empty_round_in_a_backlog_waits_for_the_pacer_as_a_short_batch_does() {
        let backlog = BTreeMap::from([(0, 388_781), (1, 0)]);
        let live = BTreeMap::from([(0, 3), (1, 0)]);
        let max = 16384;
        let mut p = Pacer::new(Duration::from_secs(3600));
        assert!(!settles(&mut p, false, 0, max, false, &live), "nothing unsettled");
        assert!(!p.pending(), "an empty round starts no clock");
        assert!(!settles(&mut p, false, max, max, false, &backlog));
        assert!(!settles(&mut p, false, 0, max, false, &backlog), "empty, and a backlog behind it");
        assert!(!settles(&mut p, false, 0, max, true, &backlog), "the due period moved, in a backlog");
        assert!(settles(&mut p, false, 0, max, false, &live), "caught up");
        p.settled(Duration::ZERO);
        // The due period moving alone: at once when caught up; in a backlog, it waits and
        // is then pending, so that a later round settles it.
        assert!(settles(&mut p, false, 0, max, true, &live));
        p.settled(Duration::ZERO);
        assert!(!settles(&mut p, false, 0, max, true, &backlog));
        assert!(p.pending());
        // A stop settles whatever is unsettled, whatever the statistics say.
        assert!(settles(&mut p, true, 0, max, false, &backlog));
        p.settled(Duration::ZERO);
        assert!(!settles(&mut p, true, 0, max, false, &backlog), "nothing left");
        assert!(settles(&mut p, true, 0, max, true, &backlog));
        // Past the interval, a backlog's empty round settles.
        let mut p = Pacer::new(Duration::ZERO);
        assert!(!settles(&mut p, false, 0, max, false, &backlog), "nothing unsettled");
        assert!(settles(&mut p, false, max, max, false, &backlog));
        assert!(settles(&mut p, false, 0, max, false, &backlog), "still unsettled, the interval passed");
    }

    #[test]
    fn the_watermark_is_held_at_the_partition_furthest_behind_of_those_behind() {
        let submitted = BTreeMap::from([(0, at(20)), (1, at(12)), (2, at(5))]);
        let lags = |l: &[(i32, i64)]| l.iter().copied().collect::<BTreeMap<_, _>>();
        assert_eq!(watermark_hold(&submitted, &lags(&[(0, 0), (1, 40), (2, -1)])), Some(at(5)), "lag unknown counts");
        assert_eq!(watermark_hold(&submitted, &lags(&[(0, 0), (1, 40), (2, 0)])), Some(at(12)));
        assert_eq!(watermark_hold(&submitted, &lags(&[(0, 0), (1, 0), (2, 0)])), None, "none behind: no hold");
        assert_eq!(watermark_hold(&submitted, &lags(&[])), None, "no statistics yet");
        assert_eq!(watermark_hold(&submitted, &lags(&[(1, 3), (7, 9)])), Some(at(12)), "nothing read from 7 yet");
        assert_eq!(watermark_hold(&submitted, &lags(&[(0, 0), (7, 9)])), None);
    }

    #[test]
    fn a_stop_releases_the_hold_and_no_statistics_leave_it_as_it_is() {
        let submitted = BTreeMap::from([(0, at(20)), (1, at(12))]);
        let behind = BTreeMap::from([(0, 0), (1, 40)]);
        assert_eq!(next_hold(true, &submitted, &behind), Hold::At(None), "a stop releases it");
        assert_eq!(next_hold(false, &submitted, &BTreeMap::new()), Hold::Leave, "no statistics yet: it stays frozen");
        assert_eq!(next_hold(false, &submitted, &behind), Hold::At(Some(at(12))));
    }

    /// Regression: a partition behind that nothing had been read from did not count, so
    /// the partitions read first moved the watermark past deadlines whose reports were still
    /// waiting in it (22,947 transitions in the first settle of the e2e backlog).
    #[test]
    fn a_partition_behind_and_not_yet_read_freezes_the_watermark() {
        let submitted = BTreeMap::from([(0, at(20)), (1, at(12))]);
        let lags = |l: &[(i32, i64)]| l.iter().copied().collect::<BTreeMap<_, _>>();
        assert_eq!(next_hold(false, &submitted, &lags(&[(0, 0), (1, 4), (2, 9)])), Hold::Freeze);
        assert_eq!(next_hold(false, &submitted, &lags(&[(0, 0), (1, 4), (2, -1)])), Hold::Freeze, "lag not known");
        assert_eq!(next_hold(false, &submitted, &lags(&[(0, 0), (1, 4), (2, 0)])), Hold::At(Some(at(12))), "empty");
        assert_eq!(next_hold(false, &submitted, &lags(&[(0, 0), (1, 0), (2, 0)])), Hold::At(None));
        assert_eq!(next_hold(true, &submitted, &lags(&[(2, 9)])), Hold::At(None), "a stop releases it");
    }
}
