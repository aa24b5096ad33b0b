//! Kafka: the report source, the producer used for dead letters and `yujing produce`, and
//! topic administration (DESIGN §2, §7, §8).
//!
//! - [`KafkaSource`] consumes `yujing.reports` in a consumer group and hands out batches of
//!   [`Input`](crate::Input)s positioned by partition and offset. Offsets are *stored* only
//!   when the caller says its durable store has committed the batch
//!   ([`KafkaSource::commit_through`]); librdkafka's auto-commit then commits what was
//!   stored. That is at-least-once delivery, which the ledger's dedupe by `report_id` turns
//!   into effectively exactly-once.
//! - [`KafkaSink`] is an idempotent producer (`enable.idempotence=true`, `acks=all`) whose
//!   sends await delivery, retry a bounded number of times and report every failure.
//! - [`dead_letter_record`] turns a [`DeadLetter`](yujing_model::DeadLetter) and the
//!   original bytes into the message for `yujing.reports.dlq`.
//! - [`produce_reports`] publishes JSONL reports keyed by institution and partitioned by
//!   district, optionally rate limited.
//! - [`topic_partitions`] and [`ensure_topics`] look topics up and create them.
//! - [`KafkaTableReader`] reads whole topics (every partition from its beginning, outside
//!   any group) and follows them: how each instance reads its peers' compacted topics.
//!
//! librdkafka is linked only by this crate, and only with its `kafka` feature (on by
//! default). Every client here needs a tokio runtime: build and use them inside one.

mod admin;
mod context;
mod dead_letter;
mod produce;
mod sink;
mod source;
mod table;

pub use admin::{ensure_topics, topic_partitions};
pub use dead_letter::{DEFAULT_DLQ_TOPIC, Record, dead_letter_record, headers};
pub use produce::{TokenBucket, district_partition, fnv1a32, produce_reports};
pub use sink::{Delivered, KafkaProducerConfig, KafkaSink, SinkCounters};
pub use source::{DEFAULT_GROUP, DEFAULT_TOPIC, KafkaSource, KafkaSourceConfig, SourceCounters};
pub use table::{KafkaTableConfig, KafkaTableReader, TableRecord};

use crate::{Error, Result};
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use std::collections::BTreeMap;
use std::time::Duration;

/// A closure that wraps a client error with what was being done.
fn kafka_err(what: impl Into<String>) -> impl FnOnce(KafkaError) -> Error {
    let what = what.into();
    move |source| Error::Kafka { what, source }
}

/// Milliseconds as librdkafka wants them, at least 1 when the duration is not zero.
fn millis(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 && !d.is_zero() { 1 } else { ms }.to_string()
}

/// A librdkafka configuration: `defaults`, then the user's `extra` overrides, then the
/// settings yujing's guarantees rest on (`fixed`), which `extra` may not change.
fn client_config(
    brokers: &str,
    defaults: &[(&str, String)],
    extra: &BTreeMap<String, String>,
    fixed: &[(&str, &str)],
) -> Result<ClientConfig> {
    if brokers.trim().is_empty() {
        return Err(Error::KafkaSetup("`brokers` is empty".into()));
    }
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (k, v) in defaults {
        config.set(*k, v.as_str());
    }
    for (k, v) in extra {
        if k == "bootstrap.servers" {
            return Err(Error::KafkaSetup("set the brokers with `brokers`, not `extra.\"bootstrap.servers\"`".into()));
        }
        if let Some((_, want)) = fixed.iter().find(|(f, _)| f == k)
            && v != want
        {
            return Err(Error::KafkaSetup(format!(
                "`extra.\"{k}\" = \"{v}\"` is not allowed: yujing relies on {k}={want}"
            )));
        }
        config.set(k.as_str(), v.as_str());
    }
    for (k, v) in fixed {
        config.set(*k, *v);
    }
    Ok(config)
}

/// Exponential backoff between `min` and `max`, doubling on each failure.
#[derive(Debug, Clone)]
struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, current: min }
    }

    /// The next delay; each call doubles the following one, up to `max`.
    fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        d
    }

    /// Back to the shortest delay, after a success.
    fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_overrides_defaults_but_not_the_guarantees() {
        let mut extra = BTreeMap::new();
        extra.insert("linger.ms".to_string(), "50".to_string());
        let c = client_config("127.0.0.1:1", &[("linger.ms", "5".into())], &extra, &[("acks", "all")]).unwrap();
        assert_eq!(c.get("linger.ms"), Some("50"));
        assert_eq!(c.get("acks"), Some("all"));
        extra.insert("acks".to_string(), "1".to_string());
        let err = client_config("127.0.0.1:1", &[], &extra, &[("acks", "all")]).unwrap_err();
        assert!(err.to_string().contains("acks"), "{err}");
        extra.insert("acks".to_string(), "all".to_string());
        assert!(client_config("127.0.0.1:1", &[], &extra, &[("acks", "all")]).is_ok());
        assert!(client_config(" ", &[], &BTreeMap::new(), &[]).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        assert_eq!(millis(Duration::from_micros(10)), "1");
        assert_eq!(millis(Duration::from_secs(2)), "2000");
    }
}
