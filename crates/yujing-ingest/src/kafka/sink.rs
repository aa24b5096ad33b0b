//! The Kafka sink: an idempotent producer whose sends await delivery and report failures.

use super::dead_letter::Record;
use super::{Backoff, client_config, kafka_err, millis};
use crate::{Error, Result};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Configuration of a Kafka producer (dead letters, alerts, scores, `yujing produce`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaProducerConfig {
    /// Bootstrap brokers, `host:port` separated by commas.
    pub brokers: String,
    /// How long the client waits to fill a batch before sending it (`linger.ms`).
    #[serde(default = "default_linger", with = "humantime_serde")]
    pub linger: Duration,
    /// How long the client tries to deliver one message before it reports a failure
    /// (`message.timeout.ms`); the sink then retries it, up to `delivery_attempts` in all.
    #[serde(default = "default_message_timeout", with = "humantime_serde")]
    pub message_timeout: Duration,
    /// How many times one message is tried before its failure is returned to the caller.
    #[serde(default = "default_attempts")]
    pub delivery_attempts: u32,
    /// The pause after the first failed attempt; it doubles after each further one.
    #[serde(default = "default_retry_backoff", with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// librdkafka settings passed through as they are (say `"message.max.bytes"`).
    /// `enable.idempotence` and `acks`, which delivery rests on, cannot be changed here.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

fn default_linger() -> Duration {
    Duration::from_millis(5)
}

fn default_message_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_attempts() -> u32 {
    3
}

fn default_retry_backoff() -> Duration {
    Duration::from_millis(200)
}

impl Default for KafkaProducerConfig {
    fn default() -> Self {
        KafkaProducerConfig {
            brokers: "127.0.0.1:9092".into(),
            linger: default_linger(),
            message_timeout: default_message_timeout(),
            delivery_attempts: default_attempts(),
            retry_backoff: default_retry_backoff(),
            extra: BTreeMap::new(),
        }
    }
}

impl KafkaProducerConfig {
    /// Creates the producer. Connecting happens in the background: an unreachable broker
    /// shows as delivery failures, not here. Must be called inside a tokio runtime.
    pub fn build(self) -> Result<KafkaSink> {
        let config = client_config(
            &self.brokers,
            &[
                ("client.id", "yujing".into()),
                ("linger.ms", millis(self.linger)),
                ("message.timeout.ms", millis(self.message_timeout)),
            ],
            &self.extra,
            &[("enable.idempotence", "true"), ("acks", "all")],
        )?;
        let producer = FutureProducer::from_config(&config).map_err(kafka_err("create the producer"))?;
        Ok(KafkaSink { producer, counters: Arc::default(), config: self })
    }
}

/// Where a message was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The partition.
    pub partition: i32,
    /// The offset in the partition.
    pub offset: i64,
}

/// A snapshot of the sink's counters, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkCounters {
    /// Messages delivered.
    pub delivered: u64,
    /// Failed attempts that were tried again.
    pub retries: u64,
    /// Messages given up on, each returned to its caller as an error.
    pub failures: u64,
}

#[derive(Debug, Default)]
struct Cells {
    delivered: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
}

/// An idempotent Kafka producer (`enable.idempotence=true`, `acks=all`). Every send awaits
/// the broker's acknowledgement; a failed delivery is retried with backoff up to
/// `delivery_attempts` times, then returned as [`Error::Delivery`] and counted. Nothing is
/// dropped silently. Cheap to share by reference across tasks.
#[derive(Clone)]
pub struct KafkaSink {
    producer: FutureProducer<DefaultClientContext>,
    counters: Arc<Cells>,
    config: KafkaProducerConfig,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("config", &self.config)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// The counters so far.
    pub fn counters(&self) -> SinkCounters {
        SinkCounters {
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
        }
    }

    /// Sends one message and waits until it is delivered. An empty `key` sends a message
    /// without a key; the partition is chosen by the client's partitioner.
    pub async fn send(&self, topic: &str, key: &str, value: &[u8], headers: &[(&str, &[u8])]) -> Result<()> {
        self.send_to(topic, None, key, value, headers).await.map(|_| ())
    }

    /// Sends one message to `partition` (or where the partitioner puts it, for `None`) and
    /// waits until it is delivered; returns where it was written.
    pub async fn send_to(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        value: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<Delivered> {
        let attempts = self.config.delivery_attempts.max(1);
        let mut backoff = Backoff::new(self.config.retry_backoff, Duration::from_secs(10));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut record = FutureRecord::<str, [u8]>::to(topic).payload(value).headers(owned_headers(headers));
            if !key.is_empty() {
                record = record.key(key);
            }
            if let Some(p) = partition {
                record = record.partition(p);
            }
            let error = match self.producer.send(record, Timeout::After(self.config.message_timeout)).await {
                Ok(d) => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return Ok(Delivered { partition: d.partition, offset: d.offset });
                }
                Err((e, _message)) => e,
            };
            if attempt >= attempts || !is_retriable(&error) {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                if attempts > 1 {
                    tracing::error!(topic, key, attempt, %error, "Kafka delivery failed; giving up");
                } else {
                    // One attempt: the caller retries, and says so once for the lot.
                    tracing::debug!(topic, key, %error, "Kafka delivery failed");
                }
                return Err(Error::Delivery { topic: topic.into(), attempts: attempt, source: error });
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            let pause = backoff.next_delay();
            tracing::warn!(topic, key, attempt, %error, retry_in = ?pause, "Kafka delivery failed; retrying");
            tokio::time::sleep(pause).await;
        }
    }

    /// Sends one [`Record`] (its partition, key, value and headers) to `topic`.
    pub async fn send_record(&self, topic: &str, record: &Record) -> Result<Delivered> {
        let headers = record.header_refs();
        self.send_to(topic, record.partition, &record.key, &record.value, &headers).await
    }

    /// Sends all `records` to `topic` concurrently and waits for every delivery. Returns
    /// the first failure, after all the others have finished (and been counted).
    pub async fn send_all(&self, topic: &str, records: &[Record]) -> Result<()> {
        let results = futures::future::join_all(records.iter().map(|r| self.send_record(topic, r))).await;
        results.into_iter().find_map(Result::err).map_or(Ok(()), Err)
    }

    /// Waits up to `timeout` for every queued message to be delivered (on shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(Timeout::After(timeout)).map_err(kafka_err("flush the producer"))
    }

    /// The number of partitions of `topic`, from the brokers' metadata (waits up to 10 s).
    pub async fn partition_count(&self, topic: &str) -> Result<i32> {
        let producer = self.producer.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            super::admin::partitions_from(producer.client(), &topic, Duration::from_secs(10))
        })
        .await
        .map_err(|e| Error::KafkaSetup(format!("metadata lookup panicked: {e}")))?
    }
}

/// Errors that another attempt cannot fix.
fn is_retriable(e: &KafkaError) -> bool {
    !matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidArgument
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::Fatal
        )
    )
}

fn owned_headers(headers: &[(&str, &[u8])]) -> OwnedHeaders {
    headers
        .iter()
        .fold(OwnedHeaders::new_with_capacity(headers.len()), |h, (k, v)| h.insert(Header { key: k, value: Some(*v) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults() {
        let cfg: KafkaProducerConfig = serde_json::from_str(r#"{"brokers":"b:1","linger":"20ms"}"#).unwrap();
        assert_eq!(cfg.linger, Duration::from_millis(20));
        assert_eq!(cfg.message_timeout, Duration::from_secs(30));
        assert_eq!(cfg.delivery_attempts, 3);
        assert!(serde_json::from_str::<KafkaProducerConfig>(r#"{"brokers":"b","x":1}"#).is_err());
    }

    #[test]
    fn size_errors_are_not_retried() {
        use rdkafka::error::KafkaError::MessageProduction as P;
        assert!(!is_retriable(&P(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(is_retriable(&P(RDKafkaErrorCode::MessageTimedOut)));
        assert!(is_retriable(&P(RDKafkaErrorCode::AllBrokersDown)));
    }
}
