//! The Kafka source: a consumer-group member that hands out batches of inputs and stores
//! offsets only when told the batch is durable.

use super::context::{Cells, SourceContext, is_nothing_to_commit, is_unreachable};
use super::{Backoff, client_config, kafka_err, millis};
use crate::{Error, Input, Result};
use futures::{FutureExt, StreamExt};
use rdkafka::Message;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use yujing_model::Position;

/// The topic of reports by default.
pub const DEFAULT_TOPIC: &str = "yujing.reports";
/// The consumer group by default.
pub const DEFAULT_GROUP: &str = "yujing";

/// Configuration of the Kafka source (`[source.kafka]` in the service's config).
///
/// ```
/// let cfg: yujing_ingest::KafkaSourceConfig = toml::from_str(r#"
///     brokers = "127.0.0.1:9092"
///     batch_max_wait = "250ms"
///     extra = { "fetch.wait.max.ms" = "100" }
/// "#).unwrap();
/// assert_eq!(cfg.topic, "yujing.reports");
/// assert_eq!(cfg.batch_max_wait, std::time::Duration::from_millis(250));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port` separated by commas.
    pub brokers: String,
    /// The topic of reports.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// The consumer group. Instances in one group share the topic's partitions (DESIGN §8).
    #[serde(default = "default_group")]
    pub group: String,
    /// The most messages in one batch.
    #[serde(default = "default_batch_max_messages")]
    pub batch_max_messages: usize,
    /// How long a batch waits for its first message; an empty batch is returned after it,
    /// so the caller can do periodic work (watermarks, metrics) on an idle topic.
    #[serde(default = "default_batch_max_wait", with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// The most kilobytes prefetched and queued in the client, over all partitions
    /// (librdkafka's `queued.max.messages.kbytes`): this bounds the memory of the prefetch.
    #[serde(default = "default_queued_kbytes")]
    pub queued_max_messages_kbytes: u32,
    /// Without a heartbeat for this long, the broker gives this member's partitions to
    /// the other members of the group.
    #[serde(default = "default_session_timeout", with = "humantime_serde")]
    pub session_timeout: Duration,
    /// librdkafka settings passed through as they are (say `"fetch.wait.max.ms"`). Settings
    /// that yujing's delivery guarantee rests on (`enable.auto.commit`,
    /// `enable.auto.offset.store`) or its watermark (`statistics.interval.ms`: each
    /// partition's lag) cannot be changed here.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

fn default_topic() -> String {
    DEFAULT_TOPIC.into()
}

fn default_group() -> String {
    DEFAULT_GROUP.into()
}

fn default_batch_max_messages() -> usize {
    4096
}

fn default_batch_max_wait() -> Duration {
    Duration::from_millis(200)
}

fn default_queued_kbytes() -> u32 {
    16 * 1024
}

fn default_session_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        KafkaSourceConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: default_topic(),
            group: default_group(),
            batch_max_messages: default_batch_max_messages(),
            batch_max_wait: default_batch_max_wait(),
            queued_max_messages_kbytes: default_queued_kbytes(),
            session_timeout: default_session_timeout(),
            extra: BTreeMap::new(),
        }
    }
}

impl KafkaSourceConfig {
    /// Creates the consumer and subscribes it to the topic. Connecting happens in the
    /// background: an unreachable broker is not an error here (see
    /// [`KafkaSource::readiness`]). Must be called inside a tokio runtime. Assigned
    /// partitions start at the group's committed offsets.
    pub fn build(self) -> Result<KafkaSource> {
        self.build_with(None)
    }

    /// [`build`](Self::build), but each assigned partition starts at `positions` (the next
    /// offset to read, by partition: the caller's durable checkpoints), or at its beginning
    /// when `positions` has none for it, whatever the group has committed. The source keeps
    /// the positions up to date as [`KafkaSource::commit_through`] is called, so a partition
    /// that comes back after a rebalance resumes where this instance left it. This makes the
    /// caller's store, not the group, the record of what was processed: a partition that
    /// moves to an instance that never had it is read from its beginning, so that instance
    /// has the whole history (the topic must keep it).
    pub fn build_resuming(self, positions: BTreeMap<i32, i64>) -> Result<KafkaSource> {
        self.build_with(Some(Arc::new(Mutex::new(positions))))
    }

    fn build_with(self, positions: Option<Arc<Mutex<BTreeMap<i32, i64>>>>) -> Result<KafkaSource> {
        if self.batch_max_messages == 0 {
            return Err(Error::KafkaSetup("`batch_max_messages` must be at least 1".into()));
        }
        if self.topic.is_empty() || self.group.is_empty() {
            return Err(Error::KafkaSetup("`topic` and `group` must not be empty".into()));
        }
        let config = client_config(
            &self.brokers,
            &[
                ("group.id", self.group.clone()),
                ("client.id", "yujing".into()),
                ("auto.offset.reset", "earliest".into()),
                ("session.timeout.ms", millis(self.session_timeout)),
                ("queued.max.messages.kbytes", self.queued_max_messages_kbytes.to_string()),
                ("auto.commit.interval.ms", "1000".into()),
            ],
            &self.extra,
            // Statistics tell readiness and each partition's lag, which holds the watermark.
            &[
                ("enable.auto.commit", "true"),
                ("enable.auto.offset.store", "false"),
                ("statistics.interval.ms", "1000"),
            ],
        )?;
        let name: Arc<str> = format!("kafka:{}", self.topic).into();
        let ready = Arc::new(AtomicBool::new(false));
        let cells = Arc::new(Cells { lag: (-1).into(), ..Cells::default() });
        let context = SourceContext {
            name: name.to_string(),
            topic: self.topic.clone(),
            ready: ready.clone(),
            cells: cells.clone(),
            positions: positions.clone(),
        };
        let consumer =
            StreamConsumer::from_config_and_context(&config, context).map_err(kafka_err("create the consumer"))?;
        consumer.subscribe(&[self.topic.as_str()]).map_err(kafka_err(format!("subscribe to {}", self.topic)))?;
        tracing::info!(source = %name, brokers = %self.brokers, group = %self.group, "Kafka source started");
        Ok(KafkaSource {
            consumer,
            name,
            config: self,
            ready,
            cells,
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
            last_error_log: None,
            positions,
        })
    }
}

/// A snapshot of the source's counters, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceCounters {
    /// Messages handed out.
    pub messages: u64,
    /// Errors reported by the client (transport failures, brokers down, …); each is retried.
    pub broker_errors: u64,
    /// Offsets not stored because their partition had been revoked meanwhile (benign: the
    /// next owner re-reads those messages and the ledger ignores the duplicates).
    pub stale_offset_stores: u64,
    /// Offset commits that succeeded.
    pub commits: u64,
    /// Offset commits that failed (they are retried by the next commit).
    pub commit_failures: u64,
    /// Rebalances (assignments and revocations).
    pub rebalances: u64,
    /// The assigned partitions' total lag from the last statistics, when known.
    pub lag: Option<u64>,
}

/// Consumes reports from Kafka in batches. See [`KafkaSourceConfig::build`].
pub struct KafkaSource {
    consumer: StreamConsumer<SourceContext>,
    /// Shared by the positions of every message read.
    name: Arc<str>,
    config: KafkaSourceConfig,
    ready: Arc<AtomicBool>,
    cells: Arc<Cells>,
    backoff: Backoff,
    last_error_log: Option<Instant>,
    positions: Option<Arc<Mutex<BTreeMap<i32, i64>>>>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// The source's name in positions: `kafka:TOPIC`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &KafkaSourceConfig {
        &self.config
    }

    /// A flag that is true while the broker is reachable: it turns false on transport
    /// errors and true again when messages arrive or a broker connection is up (checked
    /// every second). Serve it from `/readyz`.
    pub fn readiness(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// The counters so far.
    pub fn counters(&self) -> SourceCounters {
        let c = &self.cells;
        let lag = c.lag.load(Ordering::Relaxed);
        SourceCounters {
            messages: c.messages.load(Ordering::Relaxed),
            broker_errors: c.broker_errors.load(Ordering::Relaxed),
            stale_offset_stores: c.stale_offset_stores.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            commit_failures: c.commit_failures.load(Ordering::Relaxed),
            rebalances: c.rebalances.load(Ordering::Relaxed),
            lag: u64::try_from(lag).ok(),
        }
    }

    /// Each assigned partition's lag (messages behind its high watermark, counted from the
    /// committed offset, or from the fetch position before the first commit; -1 when not
    /// known yet), from the last statistics: at most a second old. Empty before the first
    /// statistics.
    pub fn partition_lags(&self) -> BTreeMap<i32, i64> {
        self.cells.partition_lags.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The partitions currently assigned to this member, in order.
    pub fn assigned_partitions(&self) -> Result<Vec<i32>> {
        let tpl = self.consumer.assignment().map_err(kafka_err("read the assignment"))?;
        let mut p: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        p.sort_unstable();
        Ok(p)
    }

    /// The next batch: waits up to `batch_max_wait` for a first message, then takes what
    /// is already fetched, up to `batch_max_messages`, without waiting further. An empty
    /// batch means nothing arrived in time.
    ///
    /// Broker errors (an unreachable broker, say) are logged, with backoff, and the client
    /// keeps reconnecting by itself; they are not returned. Only a fatal client error is.
    ///
    /// Not cancel-safe: dropping the future after its first message drops the messages
    /// taken so far for this run (they are not committed, so a restart reads them again).
    pub async fn next_batch(&mut self) -> Result<Vec<Input>> {
        let deadline = Instant::now() + self.config.batch_max_wait;
        let max = self.config.batch_max_messages;
        let mut batch = Vec::new();
        let mut stream = self.consumer.stream();
        // The first message, or the deadline.
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) | Ok(None) => return Ok(batch),
                Ok(Some(Ok(m))) => {
                    batch.push(to_input(&self.name, &m));
                    break;
                }
                Ok(Some(Err(e))) => {
                    let pause = on_error(&self.name, e, &mut self.backoff, &mut self.last_error_log)?;
                    let until = (Instant::now() + pause).min(deadline);
                    tokio::time::sleep_until(until).await;
                }
            }
        }
        // What is already there, without waiting. A poll that only served an event (a
        // rebalance, statistics) looks empty, so stop after a few empty polls in a row.
        let mut empty_polls = 0;
        while batch.len() < max && empty_polls < 3 {
            match stream.next().now_or_never() {
                Some(Some(Ok(m))) => {
                    batch.push(to_input(&self.name, &m));
                    empty_polls = 0;
                }
                Some(Some(Err(e))) => {
                    on_error(&self.name, e, &mut self.backoff, &mut self.last_error_log)?;
                    break;
                }
                Some(None) => break,
                None => empty_polls += 1,
            }
        }
        drop(stream);
        self.backoff.reset();
        self.ready.store(true, Ordering::Relaxed);
        self.cells.messages.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(batch)
    }

    /// Marks everything up to and including `positions` as done, so that a restart or
    /// another member of the group resumes after it: for each partition, stores the
    /// highest offset + 1 (the next to read) and starts an (asynchronous) commit of what is stored.
    ///
    /// Call it only after the durable store has committed the batch these positions came
    /// from: that order is what makes delivery at-least-once. Positions of other sources
    /// are ignored. A partition revoked since its messages were read is skipped and
    /// counted ([`SourceCounters::stale_offset_stores`]): its new owner reads them again.
    pub fn commit_through(&self, positions: &[Position]) -> Result<()> {
        let mut highest: HashMap<i32, i64> = HashMap::new();
        for p in positions.iter().filter(|p| p.source == self.name) {
            if let (Some(part), Some(off)) = (p.partition, p.offset) {
                let h = highest.entry(part).or_insert(off);
                *h = (*h).max(off);
            }
        }
        if highest.is_empty() {
            return Ok(());
        }
        if let Some(Ok(mut positions)) = self.positions.as_ref().map(|p| p.lock()) {
            for (&partition, &offset) in &highest {
                let next = positions.entry(partition).or_insert(offset + 1);
                *next = (*next).max(offset + 1);
            }
        }
        let mut stored = 0;
        for (partition, offset) in highest {
            // librdkafka's rd_kafka_offset_store stores `offset + 1` itself: the position of
            // the next message to read, which is what gets committed.
            match self.consumer.store_offset(&self.config.topic, partition, offset) {
                Ok(()) => stored += 1,
                Err(e) if is_revoked(&e) => {
                    self.cells.stale_offset_stores.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(source = %self.name, partition, offset, error = %e,
                        "offset of a revoked partition not stored");
                }
                Err(e) => {
                    return Err(kafka_err(format!("store offset {offset} of {}/{partition}", self.config.topic))(e));
                }
            }
        }
        if stored > 0 {
            match self.consumer.commit_consumer_state(CommitMode::Async) {
                Ok(()) => {}
                Err(e) if is_nothing_to_commit(&e) => {}
                // The stored offsets stay stored: auto-commit and close() commit them.
                Err(e) => tracing::warn!(source = %self.name, error = %e, "could not start a commit"),
            }
        }
        Ok(())
    }

    /// Commits the stored offsets synchronously and leaves the group, so the partitions
    /// move to the other members at once. Use it on shutdown; dropping the source leaves
    /// the group too, committing asynchronously.
    pub fn close(self) -> Result<()> {
        // Just after a broker restart the client may fetch again before it has found the
        // group coordinator: a commit then fails with "waiting for coordinator". Retry that
        // for a few seconds rather than fail a clean shutdown.
        let deadline = std::time::Instant::now() + COMMIT_ON_CLOSE_PATIENCE;
        let result = loop {
            match self.consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => break Ok(()),
                Err(e) if is_nothing_to_commit(&e) => break Ok(()),
                Err(e) if is_coordinator_pending(&e) && std::time::Instant::now() < deadline => {
                    tracing::debug!(source = %self.name, error = %e, "commit on close: no coordinator yet; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => break Err(kafka_err("commit offsets on close")(e)),
            }
        };
        self.consumer.unsubscribe();
        tracing::info!(source = %self.name, "Kafka source closed");
        result
    }
}

/// Copies a message out of the client.
fn to_input(name: &Arc<str>, m: &BorrowedMessage<'_>) -> Input {
    Input {
        bytes: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        position: Position {
            source: name.clone(),
            line: None,
            partition: Some(m.partition()),
            offset: Some(m.offset()),
        },
        truncated_from: None,
    }
}

/// How long [`KafkaSource::close`] retries a commit while the group coordinator is being
/// found again.
const COMMIT_ON_CLOSE_PATIENCE: Duration = Duration::from_secs(10);

/// Whether a commit failed only because the group coordinator is not (yet) known.
fn is_coordinator_pending(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::WaitingForCoordinator
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorLoadInProgress
        )
    )
}

/// Whether storing an offset failed because the partition is no longer assigned.
fn is_revoked(e: &KafkaError) -> bool {
    matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::State | RDKafkaErrorCode::UnknownPartition))
}

/// Handles an error from the client: fatal ones are returned; the others (the client
/// retries them itself) are logged at most once per backoff period. Returns how long to
/// pause before polling again.
fn on_error(name: &str, e: KafkaError, backoff: &mut Backoff, last_log: &mut Option<Instant>) -> Result<Duration> {
    if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
        tracing::error!(source = %name, error = %e, "fatal Kafka consumer error");
        return Err(kafka_err("consume")(e));
    }
    let pause = backoff.next_delay();
    let now = Instant::now();
    if last_log.is_none_or(|t| now.duration_since(t) >= pause) {
        *last_log = Some(now);
        if is_unreachable(&e) {
            tracing::warn!(source = %name, error = %e, retry_in = ?pause, "Kafka unreachable; retrying");
        } else {
            tracing::warn!(source = %name, error = %e, retry_in = ?pause, "Kafka consumer error; retrying");
        }
    }
    Ok(pause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_fields() {
        let cfg: KafkaSourceConfig = serde_json::from_str(r#"{"brokers":"b:1"}"#).unwrap();
        assert_eq!(cfg, KafkaSourceConfig { brokers: "b:1".into(), ..Default::default() });
        assert_eq!(cfg.session_timeout, Duration::from_secs(10));
        let err = serde_json::from_str::<KafkaSourceConfig>(r#"{"brokers":"b:1","topc":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[tokio::test]
    async fn the_offset_settings_cannot_be_overridden() {
        let mut cfg = KafkaSourceConfig::default();
        cfg.extra.insert("enable.auto.offset.store".into(), "true".into());
        let err = cfg.build().unwrap_err();
        assert!(err.to_string().contains("enable.auto.offset.store"), "{err}");
        let mut cfg = KafkaSourceConfig::default();
        cfg.extra.insert("statistics.interval.ms".into(), "0".into());
        let err = cfg.build().unwrap_err();
        assert!(err.to_string().contains("statistics.interval.ms"), "{err}");
        let cfg = KafkaSourceConfig { batch_max_messages: 0, ..Default::default() };
        assert!(cfg.build().is_err());
    }
}
