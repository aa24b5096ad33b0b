//! The publisher's loop: rounds of records handed to the producer as soon as they are
//! committed, their acknowledgements awaited while the next rounds go out.
//!
//! A round is one ordered run of records of one kind. Alert transitions go out in up to
//! [`MAX_TRANSITION_ROUNDS`] rounds at once: a batch's alerts do not wait for the
//! acknowledgements of the batch before, nor for the store's write lock to mark them (the
//! [`Marker`] does that on its own thread). Rounds finish in the order they were handed
//! over, so the delivered transitions are still marked as an unbroken prefix. Dead letters
//! and district scores go one round of each at a time: a failed score is put back only if
//! no newer record of its key is pending, which one round in flight keeps true.

use super::marker::{Marker, Table};
use super::{CHUNK, MAX_BACKOFF, MIN_BACKOFF, ORIGIN_HEADER, PublishCounters, TICK, Work};
use crate::metrics::Metrics;
use crate::service::KafkaConfig;
use anyhow::{Context, Result};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use yujing_ingest::kafka::{Delivered, KafkaSink, Record, dead_letter_record};
use yujing_model::{DeadLetter, Transition};
use yujing_store::{Delivery, Store};

/// Rounds of alert transitions in flight at most (each of up to [`CHUNK`] records).
const MAX_TRANSITION_ROUNDS: usize = 4;

/// What a round carries, by kind.
enum Kind {
    /// Alert transitions: the oldest one's wait in the outbox (from its commit) when read.
    Transitions { waited_ms: i64 },
    /// Dead letters.
    DeadLetters,
    /// District scores.
    Scores,
}

/// A round whose sends have all returned.
struct Done {
    kind: Kind,
    /// The records, each with its outbox sequence number (0 for scores), in the order sent.
    records: Vec<(i64, Record)>,
    results: Vec<yujing_ingest::Result<Delivered>>,
    took: Duration,
}

/// The outcome of one round, read in order.
struct Sent {
    /// Sequence numbers delivered, as an unbroken prefix.
    delivered: Vec<i64>,
    /// Sequence numbers in that prefix refused for good.
    undeliverable: Vec<i64>,
    /// Whether anything after the prefix failed (and stays pending).
    failed: bool,
}

impl Sent {
    /// How many records, from the first, the prefix holds.
    fn prefix(&self) -> usize {
        self.delivered.len() + self.undeliverable.len()
    }
}

/// Publishes the store's outbox and the changed district scores.
pub(super) struct Publisher {
    dlq_topic: String,
    alerts_topic: String,
    scores_topic: String,
    pending_scores: BTreeMap<String, Record>,
    /// The store's origin, as a header of every alert transition.
    pub(super) origin: Vec<u8>,
    backoff: Duration,
    next_try: Option<Instant>,
    counters: PublishCounters,
    pub(super) metrics: Option<Arc<Metrics>>,
    in_flight: FuturesOrdered<BoxFuture<'static, Done>>,
    /// Rounds of transitions in flight.
    transition_rounds: usize,
    /// The last transition handed to the producer: the next round reads after it.
    transitions_sent: i64,
    /// The last transition of the unbroken prefix delivered (or refused for good).
    transitions_acked: i64,
    /// A round of transitions failed: rounds still in flight are not marked, and sending
    /// resumes after [`Publisher::transitions_acked`] once they are all back.
    transitions_halted: bool,
    /// The same two for dead letters (one round at a time).
    dead_letters_sent: i64,
    dead_letters_in_flight: bool,
    scores_in_flight: bool,
}

impl Publisher {
    /// A publisher to the topics of `kafka`, with no scores pending.
    pub(super) fn new(kafka: &KafkaConfig) -> Publisher {
        Publisher {
            dlq_topic: kafka.dlq_topic.clone(),
            alerts_topic: kafka.alerts_topic.clone(),
            scores_topic: kafka.scores_topic.clone(),
            pending_scores: BTreeMap::new(),
            origin: Vec::new(),
            backoff: MIN_BACKOFF,
            next_try: None,
            counters: PublishCounters::default(),
            metrics: None,
            in_flight: FuturesOrdered::new(),
            transition_rounds: 0,
            transitions_sent: 0,
            transitions_acked: 0,
            transitions_halted: false,
            dead_letters_sent: 0,
            dead_letters_in_flight: false,
            scores_in_flight: false,
        }
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

    /// Waits for work and delivers it, until the handle is dropped; then delivers what is
    /// pending (one try, whatever the backoff says) and waits for what is in flight.
    pub(super) async fn run(
        mut self,
        store: Store,
        marker: Marker,
        sink: KafkaSink,
        mut rx: mpsc::UnboundedReceiver<Work>,
    ) -> PublishCounters {
        let mut open = true;
        // Whether the outbox may hold records not yet handed over: at start, it may.
        let mut outbox = true;
        loop {
            match self.dispatch(&store, &sink, outbox) {
                Ok(more) => outbox = more,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "the publisher cannot use the store; retrying");
                    self.failed();
                }
            }
            let idle = !outbox && self.pending_scores.is_empty();
            if !open && self.in_flight.is_empty() && (idle || self.next_try.is_some()) {
                break;
            }
            tokio::select! {
                biased;
                work = rx.recv(), if open => match work {
                    Some(work) => outbox |= self.take(work),
                    None => {
                        open = false;
                        // The last round, whatever the backoff says.
                        (self.next_try, outbox) = (None, true);
                    }
                },
                Some(done) = self.in_flight.next() => self.finish(done, &marker),
                // Retry what is pending.
                () = tokio::time::sleep(TICK), if open => outbox = true,
                else => break,
            }
            while let Ok(work) = rx.try_recv() {
                outbox |= self.take(work);
            }
        }
        // Every mark handed over is applied before the counts are returned.
        drop(marker);
        if let Err(e) = sink.flush(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "flushing the producer");
        }
        self.counters
    }

    /// Takes work handed over; returns whether the outbox has something new.
    fn take(&mut self, work: Work) -> bool {
        match work {
            Work::Scores(records) => {
                for r in records {
                    self.pending_scores.insert(r.key.clone(), r);
                }
                false
            }
            Work::Wake => true,
        }
    }

    /// Hands the producer what is pending and may go, unless a failed round asked to wait;
    /// `outbox`: whether to look at the store's outbox. Returns whether the outbox may still
    /// hold records not handed over (the rounds in flight were at their limit).
    fn dispatch(&mut self, store: &Store, sink: &KafkaSink, outbox: bool) -> Result<bool> {
        if self.next_try.is_some_and(|t| Instant::now() < t) {
            return Ok(outbox);
        }
        self.next_try = None;
        let mut more = false;
        // Alerts first: someone is waiting for them.
        if outbox {
            more |= self.send_transitions(store, sink)?;
            more |= self.send_dead_letters(store, sink)?;
        }
        if !self.scores_in_flight && !self.pending_scores.is_empty() {
            let records: Vec<(i64, Record)> =
                std::mem::take(&mut self.pending_scores).into_values().map(|r| (0, r)).collect();
            self.scores_in_flight = true;
            self.push(sink, Kind::Scores, self.scores_topic.clone(), records);
        }
        Ok(more)
    }

    /// Hands over the committed transitions after the last sent, up to the rounds' limit;
    /// returns whether more may be waiting.
    fn send_transitions(&mut self, store: &Store, sink: &KafkaSink) -> Result<bool> {
        while !self.transitions_halted {
            if self.transition_rounds >= MAX_TRANSITION_ROUNDS {
                return Ok(true);
            }
            let pending = store.audit(self.transitions_sent, CHUNK, true)?;
            let Some(last) = pending.last() else { return Ok(false) };
            self.transitions_sent = last.seq;
            let full = pending.len() == CHUNK;
            // How long the oldest of them waited in the outbox, from its commit.
            let waited_ms = pending
                .first()
                .map_or(0, |a| chrono::Utc::now().signed_duration_since(a.recorded_at).num_milliseconds());
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
                            (ORIGIN_HEADER.into(), self.origin.clone()),
                        ],
                        partition: None,
                    };
                    Ok((a.seq, record))
                })
                .collect::<Result<Vec<_>>>()?;
            self.transition_rounds += 1;
            self.push(sink, Kind::Transitions { waited_ms }, self.alerts_topic.clone(), records);
            if !full {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Hands over the dead letters after the last sent, one round at a time; returns
    /// whether more may be waiting.
    fn send_dead_letters(&mut self, store: &Store, sink: &KafkaSink) -> Result<bool> {
        if self.dead_letters_in_flight {
            return Ok(true);
        }
        let pending = store.pending_dead_letters(self.dead_letters_sent, CHUNK)?;
        let Some(last) = pending.last() else { return Ok(false) };
        self.dead_letters_sent = last.seq;
        let records = pending
            .iter()
            .map(|d| {
                let letter: DeadLetter = serde_json::from_str(&d.record).context("a stored dead letter")?;
                Ok((d.seq, dead_letter_record(&letter, &d.original)))
            })
            .collect::<Result<Vec<_>>>()?;
        self.dead_letters_in_flight = true;
        self.push(sink, Kind::DeadLetters, self.dlq_topic.clone(), records);
        Ok(pending.len() == CHUNK)
    }

    /// Starts a round: its records go to the producer, in order, when it is first polled
    /// (rounds are polled in the order they were pushed).
    fn push(&mut self, sink: &KafkaSink, kind: Kind, topic: String, records: Vec<(i64, Record)>) {
        let sink = sink.clone();
        self.in_flight.push_back(Box::pin(async move {
            let started = Instant::now();
            let results = futures::future::join_all(records.iter().map(|(_, r)| sink.send_record(&topic, r))).await;
            Done { kind, records, results, took: started.elapsed() }
        }));
    }

    /// Takes a round's outcome: marks what may be marked, puts back what failed.
    fn finish(&mut self, done: Done, marker: &Marker) {
        let Done { kind, records, results, took } = done;
        match kind {
            Kind::Transitions { waited_ms } => {
                self.transition_rounds -= 1;
                let topic = self.alerts_topic.clone();
                let sent = self.sent(&topic, &records, results);
                if !self.transitions_halted {
                    if let Some((last, _)) = records.get(sent.prefix().wrapping_sub(1)) {
                        self.transitions_acked = *last;
                    }
                    self.transitions_halted = sent.failed;
                    tracing::debug!(
                        records = records.len(),
                        delivered = sent.delivered.len(),
                        waited_ms,
                        send_ms = took.as_millis() as u64,
                        "transitions published"
                    );
                    marker.mark(Table::Audit, sent.delivered, Delivery::Published);
                    marker.mark(Table::Audit, sent.undeliverable, Delivery::Undeliverable);
                }
                if sent.failed {
                    self.failed();
                }
                if self.transitions_halted && self.transition_rounds == 0 {
                    // Every round is back: what follows the prefix goes out again, in order.
                    self.transitions_halted = false;
                    self.transitions_sent = self.transitions_acked;
                }
            }
            Kind::DeadLetters => {
                self.dead_letters_in_flight = false;
                let topic = self.dlq_topic.clone();
                let sent = self.sent(&topic, &records, results);
                if sent.failed {
                    // Sent again from the first that failed.
                    let first = &records[sent.prefix()];
                    self.dead_letters_sent = first.0 - 1;
                    self.failed();
                }
                marker.mark(Table::DeadLetters, sent.delivered, Delivery::Published);
                marker.mark(Table::DeadLetters, sent.undeliverable, Delivery::Undeliverable);
            }
            Kind::Scores => {
                self.scores_in_flight = false;
                let (mut delivered, mut failed) = (0, 0);
                for ((_, record), result) in records.into_iter().zip(results) {
                    match result {
                        Ok(_) => delivered += 1,
                        Err(e) => {
                            failed += 1;
                            tracing::debug!(topic = %self.scores_topic, error = %e, "district score not delivered");
                            // Unless a newer record of the key came meanwhile.
                            self.pending_scores.entry(record.key.clone()).or_insert(record);
                        }
                    }
                }
                let topic = self.scores_topic.clone();
                self.count(&topic, delivered, failed);
                if failed > 0 {
                    self.failed();
                }
            }
        }
        if self.next_try.is_none() {
            self.backoff = MIN_BACKOFF;
        }
    }

    /// A round failed: nothing more goes out until the backoff has passed.
    fn failed(&mut self) {
        if self.next_try.is_none() {
            tracing::warn!(retry_in = ?self.backoff, "some deliveries to Kafka failed; they stay pending");
            self.next_try = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Reads one round's results in order: the delivered prefix is what may be marked. A
    /// record refused for good does not break the prefix.
    fn sent(&mut self, topic: &str, records: &[(i64, Record)], results: Vec<yujing_ingest::Result<Delivered>>) -> Sent {
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
