//! Whole topics read as tables: every partition from its beginning, outside any consumer
//! group, following new messages (DESIGN §8: every instance reads `yujing.scores` and
//! `yujing.alerts` in full).

use super::admin::partitions_from;
use super::context::{Cells, SourceContext};
use super::{Backoff, client_config, kafka_err, millis};
use crate::{Error, Result};
use futures::{FutureExt, StreamExt};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How often the topics' partition counts are looked up again once all are assigned.
const METADATA_REFRESH: Duration = Duration::from_secs(30);
/// How long one metadata lookup may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Configuration of a [`KafkaTableReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTableConfig {
    /// Bootstrap brokers, `host:port` separated by commas.
    pub brokers: String,
    /// The topics to read in full.
    pub topics: Vec<String>,
    /// The most messages one [`KafkaTableReader::next_batch`] returns.
    pub batch_max_messages: usize,
    /// How long a batch waits for its first message.
    pub batch_max_wait: Duration,
    /// librdkafka settings passed through as they are (security, tuning). Settings that
    /// would make the reader commit offsets are refused.
    pub extra: BTreeMap<String, String>,
}

/// One message of a table topic: its key and value (a tombstone has no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// The headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl TableRecord {
    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }
}

impl KafkaTableConfig {
    /// Creates the reader. Nothing is assigned yet: the first [`KafkaTableReader::next_batch`]
    /// looks the topics up (retrying, with backoff, while the brokers are unreachable or a
    /// topic does not exist yet) and assigns every partition at its beginning. Must be called
    /// inside a tokio runtime.
    pub fn build(self) -> Result<KafkaTableReader> {
        if self.topics.is_empty() || self.topics.iter().any(String::is_empty) {
            return Err(Error::KafkaSetup("a table reader needs topics".into()));
        }
        if self.batch_max_messages == 0 {
            return Err(Error::KafkaSetup("`batch_max_messages` must be at least 1".into()));
        }
        let config = client_config(
            &self.brokers,
            &[
                ("client.id", "yujing-tables".into()),
                // librdkafka assigns partitions only with a group id; the reader never joins
                // the group (no subscribe) nor commits to it.
                ("group.id", "yujing-tables".into()),
                ("statistics.interval.ms", "1000".into()),
                ("fetch.wait.max.ms", millis(self.batch_max_wait.min(Duration::from_millis(500)))),
            ],
            &self.extra,
            &[("enable.auto.commit", "false"), ("enable.auto.offset.store", "false")],
        )?;
        let name = format!("kafka-table:{}", self.topics.join(","));
        let ready = Arc::new(AtomicBool::new(false));
        let context = SourceContext {
            name: name.clone(),
            topic: self.topics[0].clone(),
            ready: ready.clone(),
            cells: Arc::new(Cells::default()),
            positions: None,
        };
        let consumer =
            StreamConsumer::from_config_and_context(&config, context).map_err(kafka_err("create the table reader"))?;
        tracing::info!(reader = %name, brokers = %self.brokers, "Kafka table reader started");
        Ok(KafkaTableReader {
            consumer: Arc::new(consumer),
            name,
            config: self,
            ready,
            partitions: BTreeMap::new(),
            next: BTreeMap::new(),
            next_lookup: None,
            lookup_backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(60)),
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
            last_error_log: None,
        })
    }
}

/// Reads topics in full and follows them. See [`KafkaTableConfig::build`].
pub struct KafkaTableReader {
    consumer: Arc<StreamConsumer<SourceContext>>,
    name: String,
    config: KafkaTableConfig,
    ready: Arc<AtomicBool>,
    /// The partition count assigned, by topic.
    partitions: BTreeMap<String, i32>,
    /// The next offset to read, by topic and partition (to keep positions on reassignment).
    next: BTreeMap<(String, i32), i64>,
    /// When to look the topics up again.
    next_lookup: Option<Instant>,
    lookup_backoff: Backoff,
    backoff: Backoff,
    last_error_log: Option<Instant>,
}

impl std::fmt::Debug for KafkaTableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTableReader")
            .field("name", &self.name)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl KafkaTableReader {
    /// True while a broker connection is up (from the client's statistics and errors).
    pub fn readiness(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// The partitions assigned so far, by topic.
    pub fn assigned(&self) -> &BTreeMap<String, i32> {
        &self.partitions
    }

    /// Looks the topics up when due and assigns partitions not yet assigned, from their
    /// beginning (the others keep their positions). Failures are logged and retried later.
    async fn assign_when_due(&mut self) {
        if self.next_lookup.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let (consumer, topics) = (self.consumer.clone(), self.config.topics.clone());
        let looked_up = tokio::task::spawn_blocking(move || {
            topics
                .iter()
                .map(|t| partitions_from(consumer.client(), t, METADATA_TIMEOUT).map(|n| (t.clone(), n)))
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(looked_up) = looked_up else { return };
        let mut missing = false;
        let mut grew = false;
        for found in looked_up {
            match found {
                Ok((topic, n)) => {
                    if self.partitions.get(&topic).is_none_or(|&had| n > had) {
                        self.partitions.insert(topic, n);
                        grew = true;
                    }
                }
                Err(e) => {
                    missing = true;
                    tracing::warn!(reader = %self.name, error = %e, "cannot look a topic up yet; retrying");
                }
            }
        }
        if grew {
            let mut tpl = TopicPartitionList::new();
            for (topic, &n) in &self.partitions {
                for p in 0..n {
                    let at = match self.next.get(&(topic.clone(), p)) {
                        Some(&o) => Offset::Offset(o),
                        None => Offset::Beginning,
                    };
                    if let Err(e) = tpl.add_partition_offset(topic, p, at) {
                        tracing::error!(reader = %self.name, error = %e, "cannot set a start position");
                        return;
                    }
                }
            }
            match self.consumer.assign(&tpl) {
                Ok(()) => {
                    tracing::info!(reader = %self.name, partitions = ?self.partitions, "table partitions assigned");
                }
                Err(e) => {
                    tracing::warn!(reader = %self.name, error = %e, "cannot assign the table partitions; retrying");
                    self.partitions.clear();
                    missing = true;
                }
            }
        }
        let wait = if missing { self.lookup_backoff.next_delay() } else { METADATA_REFRESH };
        if !missing {
            self.lookup_backoff.reset();
        }
        self.next_lookup = Some(Instant::now() + wait);
    }

    /// The next batch: waits up to `batch_max_wait` for a first message, then takes what is
    /// already fetched, up to `batch_max_messages`. An empty batch means nothing new arrived
    /// (or nothing is assigned yet: the brokers are away or the topics do not exist).
    ///
    /// Broker errors are logged with backoff and retried by the client; only a fatal client
    /// error is returned.
    pub async fn next_batch(&mut self) -> Result<Vec<TableRecord>> {
        let deadline = Instant::now() + self.config.batch_max_wait;
        self.assign_when_due().await;
        let mut batch = Vec::new();
        if self.partitions.is_empty() {
            tokio::time::sleep_until(deadline).await;
            return Ok(batch);
        }
        let consumer = self.consumer.clone();
        let mut stream = consumer.stream();
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) | Ok(None) => return Ok(batch),
                Ok(Some(Ok(m))) => {
                    batch.push(self.record(&m));
                    break;
                }
                Ok(Some(Err(e))) => {
                    let pause = self.on_error(e)?;
                    tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
                }
            }
        }
        let mut empty_polls = 0;
        while batch.len() < self.config.batch_max_messages && empty_polls < 3 {
            match stream.next().now_or_never() {
                Some(Some(Ok(m))) => {
                    batch.push(self.record(&m));
                    empty_polls = 0;
                }
                Some(Some(Err(e))) => {
                    self.on_error(e)?;
                    break;
                }
                Some(None) => break,
                None => empty_polls += 1,
            }
        }
        self.backoff.reset();
        self.ready.store(true, Ordering::Relaxed);
        Ok(batch)
    }

    fn record(&mut self, m: &BorrowedMessage<'_>) -> TableRecord {
        self.next.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
        TableRecord {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec())).collect())
                .unwrap_or_default(),
        }
    }

    /// Fatal errors are returned; the others are logged at most once per backoff period.
    fn on_error(&mut self, e: KafkaError) -> Result<Duration> {
        if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
            tracing::error!(reader = %self.name, error = %e, "fatal Kafka consumer error");
            return Err(kafka_err("read a table topic")(e));
        }
        let pause = self.backoff.next_delay();
        let now = Instant::now();
        if self.last_error_log.is_none_or(|t| now.duration_since(t) >= pause) {
            self.last_error_log = Some(now);
            tracing::warn!(reader = %self.name, error = %e, retry_in = ?pause, "reading a table topic failed; retrying");
        }
        Ok(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KafkaTableConfig {
        KafkaTableConfig {
            brokers: "127.0.0.1:1".into(),
            topics: vec!["t".into()],
            batch_max_messages: 10,
            batch_max_wait: Duration::from_millis(100),
            extra: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn a_table_reader_cannot_be_made_to_commit_offsets() {
        let mut c = config();
        c.extra.insert("enable.auto.commit".into(), "true".into());
        assert!(c.build().unwrap_err().to_string().contains("enable.auto.commit"));
        assert!(KafkaTableConfig { topics: vec![], ..config() }.build().is_err());
        assert!(KafkaTableConfig { batch_max_messages: 0, ..config() }.build().is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_broker_gives_empty_batches_not_errors() {
        let mut r = config().build().unwrap();
        assert!(r.next_batch().await.unwrap().is_empty());
        assert!(r.assigned().is_empty());
    }
}
