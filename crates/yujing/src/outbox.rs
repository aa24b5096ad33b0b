//! Delivery of what a committed batch left for Kafka: dead letters and alert transitions
//! (kept in the store until delivered) and district scores (re-published for the periods
//! they changed in).
//!
//! Delivery failures never stop the service: what was not delivered stays pending and is
//! tried again after a backoff, while the service goes on consuming. A record the broker
//! refuses for good (say, a dead letter larger than the topic accepts) is marked
//! undeliverable in the store, counted and logged, and kept there for an operator.
//! Transitions are marked delivered only as an unbroken prefix, so after a failure the rest
//! go out again in order: the alerts topic is compacted by alert id, and a later state must
//! never be overwritten by an earlier one.

use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::service::KafkaConfig;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use yujing_ingest::kafka::{KafkaSink, Record, dead_letter_record};
use yujing_model::{DeadLetter, Level, Period, Transition};
use yujing_store::{Delivery, Store};

/// How many outbox records one round sends at most, per kind.
const CHUNK: usize = 1000;
/// The first pause after a failed round; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// The longest pause between rounds while deliveries fail.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Counts of the publisher's deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishCounters {
    /// Records delivered.
    pub delivered: u64,
    /// Failed attempts (the record stays pending).
    pub failed: u64,
    /// Records refused for good and kept in the store.
    pub undeliverable: u64,
}

/// Publishes the store's outbox and the changed district scores.
pub struct Publisher {
    dlq_topic: String,
    alerts_topic: String,
    scores_topic: String,
    pending_periods: BTreeSet<Period>,
    backoff: Duration,
    next_try: Option<Instant>,
    counters: PublishCounters,
    metrics: Option<Arc<Metrics>>,
}

/// The outcome of sending one ordered run of records.
struct Sent {
    /// Sequence numbers delivered, as an unbroken prefix.
    delivered: Vec<i64>,
    /// Sequence numbers in that prefix refused for good.
    undeliverable: Vec<i64>,
    /// Whether anything after the prefix failed (and stays pending).
    failed: bool,
}

impl Publisher {
    /// A publisher to the topics of `kafka`, with no scores pending.
    pub fn new(kafka: &KafkaConfig) -> Publisher {
        Publisher {
            dlq_topic: kafka.dlq_topic.clone(),
            alerts_topic: kafka.alerts_topic.clone(),
            scores_topic: kafka.scores_topic.clone(),
            pending_periods: BTreeSet::new(),
            backoff: MIN_BACKOFF,
            next_try: None,
            counters: PublishCounters::default(),
            metrics: None,
        }
    }

    /// Also counts deliveries in `metrics` (`yujing_pipeline_records_total{stage="publish"}`,
    /// `yujing_kafka_publish_failures_total{topic}`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Publisher {
        self.metrics = Some(metrics);
        self
    }

    fn count(&mut self, topic: &str, delivered: usize, failed: usize) {
        self.counters.delivered += delivered as u64;
        self.counters.failed += failed as u64;
        if let Some(m) = &self.metrics {
            if delivered > 0 {
                m.record_publish(topic, delivered, true);
            }
            if failed > 0 {
                m.record_publish(topic, failed, false);
            }
        }
    }

    /// The district scores of `periods` changed and are to be published.
    pub fn scores_changed(&mut self, periods: impl IntoIterator<Item = Period>) {
        self.pending_periods.extend(periods);
    }

    /// Every period's district scores are to be published (after a restart, when what was
    /// pending before the stop is not known; the scores topic is compacted by key).
    pub fn all_scores(&mut self, engine: &Engine) {
        self.pending_periods.extend(engine.aggregates().filter(|a| a.level == Level::District).map(|a| a.period));
    }

    /// The counts so far.
    pub fn counters(&self) -> &PublishCounters {
        &self.counters
    }

    /// Whether anything is waiting to be delivered (scores; the store's outbox is not read).
    pub fn has_pending_scores(&self) -> bool {
        !self.pending_periods.is_empty()
    }

    /// Delivers what is pending, unless a failed round asked to wait. Delivery failures are
    /// counted and logged, not returned; an error means the store failed.
    pub async fn publish(&mut self, store: &mut Store, engine: &Engine, sink: &KafkaSink) -> Result<()> {
        if self.next_try.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let mut failed = false;
        failed |= self.dead_letters(store, sink).await?;
        failed |= self.transitions(store, sink).await?;
        failed |= self.scores(engine, sink).await;
        if failed {
            self.next_try = Some(Instant::now() + self.backoff);
            tracing::warn!(retry_in = ?self.backoff, "some deliveries to Kafka failed; they stay pending");
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        } else {
            self.next_try = None;
            self.backoff = MIN_BACKOFF;
        }
        Ok(())
    }

    async fn dead_letters(&mut self, store: &mut Store, sink: &KafkaSink) -> Result<bool> {
        loop {
            let pending = store.pending_dead_letters(CHUNK)?;
            if pending.is_empty() {
                return Ok(false);
            }
            let records = pending
                .iter()
                .map(|d| {
                    let letter: DeadLetter = serde_json::from_str(&d.record).context("a stored dead letter")?;
                    Ok((d.seq, dead_letter_record(&letter, &d.original)))
                })
                .collect::<Result<Vec<_>>>()?;
            let sent = self.send(sink, &self.dlq_topic.clone(), &records).await;
            store.mark_dead_letters(&sent.delivered, Delivery::Published)?;
            store.mark_dead_letters(&sent.undeliverable, Delivery::Undeliverable)?;
            if sent.failed || pending.len() < CHUNK {
                return Ok(sent.failed);
            }
        }
    }

    async fn transitions(&mut self, store: &mut Store, sink: &KafkaSink) -> Result<bool> {
        loop {
            let pending = store.audit(0, CHUNK, true)?;
            if pending.is_empty() {
                return Ok(false);
            }
            let records = pending
                .iter()
                .map(|a| {
                    let t: Transition = serde_json::from_str(&a.record).context("a stored transition")?;
                    let record = Record {
                        key: a.alert_id.clone(),
                        value: serde_json::to_vec(&t.alert)?,
                        headers: vec![
                            ("yujing.transition".into(), a.kind.as_bytes().to_vec()),
                            ("yujing.by".into(), a.actor.clone().into_bytes()),
                        ],
                        partition: None,
                    };
                    Ok((a.seq, record))
                })
                .collect::<Result<Vec<_>>>()?;
            let sent = self.send(sink, &self.alerts_topic.clone(), &records).await;
            store.mark_audit(&sent.delivered, Delivery::Published)?;
            store.mark_audit(&sent.undeliverable, Delivery::Undeliverable)?;
            if sent.failed || pending.len() < CHUNK {
                return Ok(sent.failed);
            }
        }
    }

    async fn scores(&mut self, engine: &Engine, sink: &KafkaSink) -> bool {
        if self.pending_periods.is_empty() {
            return false;
        }
        let periods = std::mem::take(&mut self.pending_periods);
        let records: Vec<(Period, Record)> = engine
            .aggregates()
            .filter(|a| a.level == Level::District && periods.contains(&a.period))
            .filter_map(|a| {
                let value = serde_json::to_vec(a).ok()?;
                let key = format!("{}:{}:{}", a.entity_id, a.sector, a.period);
                Some((a.period, Record { key, value, headers: Vec::new(), partition: None }))
            })
            .collect();
        let results =
            futures::future::join_all(records.iter().map(|(_, r)| sink.send_record(&self.scores_topic, r))).await;
        let (mut delivered, mut failed) = (0, 0);
        for ((period, _), result) in records.iter().zip(results) {
            match result {
                Ok(_) => delivered += 1,
                Err(e) => {
                    failed += 1;
                    tracing::debug!(topic = %self.scores_topic, error = %e, "district score not delivered");
                    self.pending_periods.insert(*period);
                }
            }
        }
        let topic = self.scores_topic.clone();
        self.count(&topic, delivered, failed);
        failed > 0
    }

    /// Sends `records` (in sequence order) concurrently; the delivered prefix is what may be
    /// marked. A record refused for good does not break the prefix.
    async fn send(&mut self, sink: &KafkaSink, topic: &str, records: &[(i64, Record)]) -> Sent {
        let results = futures::future::join_all(records.iter().map(|(_, r)| sink.send_record(topic, r))).await;
        let mut sent = Sent { delivered: Vec::new(), undeliverable: Vec::new(), failed: false };
        let (mut delivered, mut failed) = (0, 0);
        for ((seq, record), result) in records.iter().zip(results) {
            match result {
                Ok(_) if !sent.failed => {
                    delivered += 1;
                    sent.delivered.push(*seq);
                }
                // Delivered, but after a failure: sent again in order next round.
                Ok(_) => delivered += 1,
                Err(e) if e.is_permanent() && !sent.failed => {
                    self.counters.undeliverable += 1;
                    if let Some(m) = &self.metrics {
                        m.record_publish(topic, 1, false);
                    }
                    tracing::error!(topic, seq, key = %record.key, bytes = record.value.len(), error = %e,
                        "the broker refuses this record for good; it is kept in the store as undeliverable");
                    sent.undeliverable.push(*seq);
                }
                Err(e) => {
                    if !sent.failed {
                        tracing::warn!(topic, seq, error = %e, "delivery failed; this and later records stay pending");
                    }
                    failed += 1;
                    sent.failed = true;
                }
            }
        }
        self.count(topic, delivered, failed);
        sent
    }
}
