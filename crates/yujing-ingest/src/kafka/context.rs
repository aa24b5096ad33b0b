//! The consumer's librdkafka context: rebalance logging, the final commit on revoke,
//! readiness and counters from errors and statistics.

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::TopicPartitionList;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters shared by the source, its context and whoever reads them.
#[derive(Debug, Default)]
pub(crate) struct Cells {
    pub(crate) messages: AtomicU64,
    pub(crate) broker_errors: AtomicU64,
    pub(crate) stale_offset_stores: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) commit_failures: AtomicU64,
    pub(crate) rebalances: AtomicU64,
    /// Sum of the assigned partitions' lag from the last statistics, or -1 if unknown.
    pub(crate) lag: AtomicI64,
    /// Each assigned partition's lag from the last statistics (-1: unknown).
    pub(crate) partition_lags: Mutex<BTreeMap<i32, i64>>,
}

/// The state the context shares with [`KafkaSource`](super::KafkaSource).
#[derive(Debug)]
pub(crate) struct SourceContext {
    pub(crate) name: String,
    pub(crate) topic: String,
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) cells: Arc<Cells>,
    /// Where to start each partition when it is assigned: `None` to use the group's
    /// committed offsets; otherwise the caller's positions (its store's checkpoints), and
    /// the beginning of a partition it has none for.
    pub(crate) positions: Option<Arc<Mutex<BTreeMap<i32, i64>>>>,
}

/// Whether an error means the broker cannot be reached (as opposed to a bad request).
pub(crate) fn is_unreachable(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::LeaderNotAvailable
        )
    )
}

/// Whether a commit error only says there was nothing (new) to commit.
pub(crate) fn is_nothing_to_commit(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset)
}

impl SourceContext {
    fn partitions(tpl: &TopicPartitionList) -> String {
        let mut p: Vec<_> = tpl.elements().iter().map(|e| format!("{}/{}", e.topic(), e.partition())).collect();
        p.sort();
        p.join(",")
    }
}

#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    brokers: HashMap<String, BrokerStats>,
    #[serde(default)]
    topics: HashMap<String, TopicStats>,
}

#[derive(Deserialize)]
struct BrokerStats {
    state: String,
}

#[derive(Deserialize)]
struct TopicStats {
    #[serde(default)]
    partitions: HashMap<String, PartitionStats>,
}

#[derive(Deserialize)]
struct PartitionStats {
    partition: i32,
    #[serde(default = "unknown")]
    consumer_lag: i64,
    #[serde(default)]
    fetch_state: String,
    #[serde(default = "unknown")]
    hi_offset: i64,
    #[serde(default = "unknown")]
    next_offset: i64,
    #[serde(default = "unknown")]
    app_offset: i64,
    #[serde(default)]
    fetchq_cnt: i64,
}

fn unknown() -> i64 {
    -1
}

impl PartitionStats {
    /// The messages of the partition not yet handed over, -1 when unknown.
    ///
    /// librdkafka's `consumer_lag` counts from the committed offset, and there is none
    /// before this group's first commit on the partition: then what is neither fetched nor
    /// handed over is counted from the fetch position. An empty partition is not behind,
    /// and a partition read in full into the fetch queue still is.
    fn lag(&self) -> i64 {
        if self.consumer_lag >= 0 {
            self.consumer_lag
        } else if self.hi_offset < 0 {
            -1
        } else if self.app_offset >= 0 {
            (self.hi_offset - self.app_offset).max(0)
        } else if self.next_offset >= 0 {
            (self.hi_offset - self.next_offset).max(0) + self.fetchq_cnt.max(0)
        } else {
            -1
        }
    }
}

impl ClientContext for SourceContext {
    /// Statistics (every `statistics.interval.ms`): readiness follows whether any broker
    /// connection is up, and the lag is summed over the partitions being fetched.
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(stats) = serde_json::from_slice::<Stats>(statistics) else {
            tracing::debug!(source = %self.name, "unreadable librdkafka statistics");
            return;
        };
        let up = stats.brokers.values().any(|b| b.state == "UP");
        let was = self.ready.swap(up, Ordering::Relaxed);
        if was != up {
            tracing::info!(source = %self.name, ready = up, "broker connection state changed");
        }
        let lags: Option<BTreeMap<i32, i64>> = stats.topics.get(&self.topic).map(|t| {
            t.partitions
                .values()
                .filter(|p| p.partition >= 0 && p.fetch_state == "active")
                .map(|p| (p.partition, p.lag()))
                .collect()
        });
        let lag = lags.as_ref().map(|l| l.values().map(|lag| (*lag).max(0)).sum::<i64>());
        self.cells.lag.store(lag.unwrap_or(-1), Ordering::Relaxed);
        if let Ok(mut held) = self.cells.partition_lags.lock() {
            *held = lags.unwrap_or_default();
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.cells.broker_errors.fetch_add(1, Ordering::Relaxed);
        if is_unreachable(&error) {
            if self.ready.swap(false, Ordering::Relaxed) {
                tracing::warn!(source = %self.name, %error, reason, "Kafka unreachable");
            } else {
                tracing::debug!(source = %self.name, %error, reason, "Kafka still unreachable");
            }
        } else {
            tracing::warn!(source = %self.name, %error, reason, "Kafka client error");
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.cells.rebalances.fetch_add(1, Ordering::Relaxed);
        match rebalance {
            // The coordinator dropped this member (its session expired): the partitions may
            // already be another member's, and librdkafka refuses to commit for them. The
            // client rejoins by itself; the store's positions say where to resume.
            Rebalance::Revoke(tpl) if consumer.assignment_lost() => tracing::warn!(
                source = %self.name,
                partitions = %Self::partitions(tpl),
                "partitions lost: the group dropped this member (session expired); rejoining"
            ),
            Rebalance::Revoke(tpl) => {
                tracing::info!(
                    source = %self.name,
                    partitions = %Self::partitions(tpl),
                    "partitions revoked; committing stored offsets"
                );
                // What was stored (the batches the store has committed) is committed now,
                // synchronously, so the next owner starts right after it.
                match consumer.commit_consumer_state(CommitMode::Sync) {
                    Ok(()) => {
                        self.cells.commits.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if is_nothing_to_commit(&e) => {}
                    Err(e) => {
                        self.cells.commit_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(source = %self.name, error = %e, "commit on revoke failed");
                    }
                }
            }
            Rebalance::Assign(tpl) => tracing::info!(
                source = %self.name,
                partitions = %Self::partitions(tpl),
                "partitions assigned"
            ),
            Rebalance::Error(e) => {
                tracing::warn!(source = %self.name, error = %e, "rebalance error");
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (Rebalance::Assign(tpl), Some(positions)) = (rebalance, &self.positions) else { return };
        if tpl.count() == 0 {
            return;
        }
        // Assign again, at the positions the caller's store has committed: the store, not
        // the group's offsets, says what has been processed, so a partition that moves to
        // an instance that never had it is read from its beginning.
        let known = positions.lock().map(|p| p.clone()).unwrap_or_default();
        let mut at = TopicPartitionList::new();
        let mut described = Vec::new();
        for e in tpl.elements() {
            let offset = match known.get(&e.partition()) {
                Some(&next) => rdkafka::Offset::Offset(next),
                None => rdkafka::Offset::Beginning,
            };
            described.push(format!("{}/{}@{offset:?}", e.topic(), e.partition()));
            if let Err(err) = at.add_partition_offset(e.topic(), e.partition(), offset) {
                tracing::error!(source = %self.name, error = %err, "cannot set a start position");
                return;
            }
        }
        match consumer.assign(&at) {
            Ok(()) => tracing::info!(source = %self.name, positions = %described.join(","),
                "partitions start at the store's positions"),
            Err(err) => tracing::error!(source = %self.name, error = %err, "cannot start at the store's positions"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                self.cells.commits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(source = %self.name, offsets = ?offsets.to_topic_map(), "offsets committed");
            }
            Err(e) if is_nothing_to_commit(&e) => {}
            Err(e) => {
                self.cells.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %self.name, error = %e, "offset commit failed; it is retried with the next one");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> SourceContext {
        SourceContext {
            name: "kafka:t".into(),
            topic: "t".into(),
            ready: Arc::new(AtomicBool::new(false)),
            cells: Arc::new(Cells::default()),
            positions: None,
        }
    }

    #[test]
    fn statistics_drive_readiness_and_lag() {
        let c = context();
        c.stats_raw(
            br#"{"brokers":{"127.0.0.1:9/1":{"state":"UP"},"b/bootstrap":{"state":"INIT"}},
            "topics":{"t":{"partitions":{"0":{"partition":0,"consumer_lag":5,"fetch_state":"active"},
            "1":{"partition":1,"consumer_lag":-1,"fetch_state":"active"},
            "-1":{"partition":-1,"consumer_lag":9,"fetch_state":"none"}}}}}"#,
        );
        assert!(c.ready.load(Ordering::Relaxed));
        assert_eq!(c.cells.lag.load(Ordering::Relaxed), 5);
        let lags = c.cells.partition_lags.lock().unwrap().clone();
        assert_eq!(lags, BTreeMap::from([(0, 5), (1, -1)]), "each active partition's own lag, -1 unknown");
        c.stats_raw(br#"{"brokers":{"127.0.0.1:9/1":{"state":"TRY_CONNECT"}},"topics":{}}"#);
        assert!(!c.ready.load(Ordering::Relaxed));
        assert_eq!(c.cells.lag.load(Ordering::Relaxed), -1);
        c.stats_raw(b"not json");
        assert!(!c.ready.load(Ordering::Relaxed));
    }

    /// Regression: before this group's first commit on a partition librdkafka reports its
    /// lag as unknown, so a backlog not yet read looked like an empty partition.
    #[test]
    fn a_partition_never_committed_has_its_lag_counted_from_the_fetch_position() {
        let c = context();
        c.stats_raw(
            br#"{"brokers":{},"topics":{"t":{"partitions":{
            "0":{"partition":0,"consumer_lag":-1,"fetch_state":"active","hi_offset":900,"next_offset":0,"app_offset":-1001,"fetchq_cnt":0},
            "1":{"partition":1,"consumer_lag":-1,"fetch_state":"active","hi_offset":900,"next_offset":900,"app_offset":-1001,"fetchq_cnt":700},
            "2":{"partition":2,"consumer_lag":-1,"fetch_state":"active","hi_offset":900,"next_offset":900,"app_offset":850,"fetchq_cnt":50},
            "3":{"partition":3,"consumer_lag":-1,"fetch_state":"active","hi_offset":0,"next_offset":0,"app_offset":-1001,"fetchq_cnt":0},
            "4":{"partition":4,"consumer_lag":-1,"fetch_state":"active","hi_offset":-1001,"next_offset":0,"app_offset":-1001,"fetchq_cnt":0},
            "5":{"partition":5,"consumer_lag":40,"fetch_state":"active","hi_offset":900,"next_offset":900,"app_offset":900,"fetchq_cnt":0}}}}}"#,
        );
        let lags = c.cells.partition_lags.lock().unwrap().clone();
        assert_eq!(
            lags,
            BTreeMap::from([(0, 900), (1, 700), (2, 50), (3, 0), (4, -1), (5, 40)]),
            "not fetched; fetched, not handed over; handed over in part; empty; not known; committed"
        );
        assert_eq!(c.cells.lag.load(Ordering::Relaxed), 1690);
    }

    #[test]
    fn transport_errors_clear_readiness() {
        let c = context();
        c.ready.store(true, Ordering::Relaxed);
        c.error(KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown), "1/1 brokers are down");
        assert!(!c.ready.load(Ordering::Relaxed));
        assert_eq!(c.cells.broker_errors.load(Ordering::Relaxed), 1);
    }
}
