//! `yujing run`'s batch commits, on a thread and store connection of their own.
//!
//! Each batch commits in one store transaction before Kafka may forget its messages
//! (DESIGN §7). The commit (the ledger's slots, the alerts and the audit outbox as JSON in
//! SQLite) costs about as much as settling a live batch, so the [`StoreWriter`] runs it while
//! the pipeline goes on with the next batch. At most one commit is in flight: the pipeline
//! waits for it before it hands over the next, so batches commit in order. What may happen
//! only once a batch is durable is done by the writer as soon as the commit returns (the
//! publisher is woken and given the batch's district scores; the commit metrics) or by the
//! pipeline when it collects the [`Committed`] batch (the source offsets, Alertmanager).
//!
//! People's actions still commit on the pipeline's own connection; the pipeline waits for
//! the commit in flight before it applies one, so the store and the outbox hold the engine's
//! order.

use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::outbox::PublisherWaker;
use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, FixedOffset};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use yujing_ingest::kafka::Record;
use yujing_model::{Alert, Position, Transition};
use yujing_store::{BatchWrite, Checkpoint, SlotState, Store, StoredDeadLetter};

/// One batch to commit, owned: what the engine changed, and what depends on the commit.
pub struct Commit {
    slots: Vec<SlotState>,
    max_submitted: Option<DateTime<FixedOffset>>,
    watermark_hold: Option<DateTime<FixedOffset>>,
    alerts: Vec<Arc<Alert>>,
    transitions: Vec<Transition>,
    recorded_at: DateTime<FixedOffset>,
    checkpoints: Vec<Checkpoint>,
    dead_letters: Vec<StoredDeadLetter>,
    scores: Vec<Record>,
    positions: Vec<Position>,
    settled: bool,
}

impl Commit {
    /// Takes what `engine` changed since the last commit (its dirty ledger slots and touched
    /// alerts), with the batch's `transitions` (`settled`: whether it settled the engine),
    /// the source `checkpoints` and `positions` it consumed, its `dead_letters`, and the
    /// district `scores` to publish once it is durable.
    pub fn take(
        engine: &mut Engine,
        settled: bool,
        transitions: Vec<Transition>,
        checkpoints: Vec<Checkpoint>,
        positions: Vec<Position>,
        dead_letters: Vec<StoredDeadLetter>,
        scores: Vec<Record>,
    ) -> Commit {
        Commit {
            slots: engine.take_dirty_slots(),
            max_submitted: engine.ledger().max_submitted(),
            watermark_hold: engine.ledger().watermark_hold(),
            alerts: engine.take_touched_alerts(),
            transitions,
            recorded_at: chrono::Utc::now().fixed_offset(),
            checkpoints,
            dead_letters,
            scores,
            positions,
            settled,
        }
    }
}

/// A batch whose commit has returned.
pub struct Committed {
    /// The source positions the batch consumed: Kafka may forget them once this is `Ok`.
    pub positions: Vec<Position>,
    /// The batch's transitions, now in the store's outbox.
    pub transitions: Vec<Transition>,
    /// How long the commit took.
    pub took: Duration,
    /// Whether the batch settled the engine (its transitions are the settle's).
    pub settled: bool,
    /// The commit's outcome.
    pub result: std::result::Result<(), yujing_store::Error>,
}

/// The thread that commits batches (see the module docs).
pub struct StoreWriter {
    jobs: Option<mpsc::SyncSender<Commit>>,
    done: mpsc::Receiver<Committed>,
    in_flight: bool,
    thread: Option<JoinHandle<()>>,
}

impl StoreWriter {
    /// Starts the writer on `store` (a connection of its own). After each commit it hands
    /// the batch's district scores to `publisher` and wakes it, and records the commit in
    /// `metrics`. The store's WAL is checkpointed beside the commits from then on
    /// ([`Store::checkpoint_in_background`]).
    pub fn spawn(mut store: Store, publisher: PublisherWaker, metrics: Arc<Metrics>) -> Result<StoreWriter> {
        // The pipeline waits for each commit: checkpoints go beside them, not inside one.
        store.checkpoint_in_background().context("starting the store's checkpoints")?;
        let (jobs, rx) = mpsc::sync_channel::<Commit>(1);
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                for job in rx {
                    let started = Instant::now();
                    let Commit {
                        slots,
                        max_submitted,
                        watermark_hold,
                        alerts,
                        transitions,
                        recorded_at,
                        checkpoints,
                        dead_letters,
                        ..
                    } = job;
                    let write = BatchWrite {
                        slots,
                        max_submitted,
                        // Kept so that a restart derives with the hold the service had.
                        watermark_hold: Some(watermark_hold),
                        alerts: alerts.iter().map(|a| &**a).collect(),
                        actions: Vec::new(),
                        audit: transitions.iter().map(|t| (recorded_at, t)).collect(),
                        checkpoints,
                        dead_letters,
                    };
                    let inputs = job.positions.len();
                    let result = store.commit(&write);
                    drop(write);
                    let took = started.elapsed();
                    metrics.record_store_commit(took, inputs, result.is_ok());
                    if result.is_ok() {
                        publisher.scores(job.scores);
                        publisher.wake();
                        metrics.observe_report_to_alert(&transitions);
                        metrics.record_committed();
                    }
                    let committed =
                        Committed { positions: job.positions, transitions, took, settled: job.settled, result };
                    if done_tx.send(committed).is_err() {
                        break;
                    }
                }
            })
            .context("starting the store writer's thread")?;
        Ok(StoreWriter { jobs: Some(jobs), done, in_flight: false, thread: Some(thread) })
    }

    /// Hands a batch over. Call [`wait`](Self::wait) first: one commit at a time.
    pub fn submit(&mut self, commit: Commit) -> Result<()> {
        if self.in_flight {
            return Err(anyhow!("a commit is still in flight"));
        }
        let jobs = self.jobs.as_ref().ok_or_else(|| anyhow!("the store writer is closed"))?;
        jobs.send(commit).map_err(|_| anyhow!("the store writer has stopped"))?;
        self.in_flight = true;
        Ok(())
    }

    /// Whether a commit is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// The commit in flight, if it has returned; does not wait.
    pub fn try_finished(&mut self) -> Result<Option<Committed>> {
        if !self.in_flight {
            return Ok(None);
        }
        match self.done.try_recv() {
            Ok(c) => {
                self.in_flight = false;
                Ok(Some(c))
            }
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            Err(mpsc::TryRecvError::Disconnected) => Err(anyhow!("the store writer stopped mid-commit")),
        }
    }

    /// Waits for the commit in flight, if any, and returns it.
    pub fn wait(&mut self) -> Result<Option<Committed>> {
        if !self.in_flight {
            return Ok(None);
        }
        let c = self.done.recv().map_err(|_| anyhow!("the store writer stopped mid-commit"))?;
        self.in_flight = false;
        Ok(Some(c))
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        // Closing the channel ends the thread once its commit (if any) returns.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yujing_store::StoreConfig;

    fn commit(next_offset: i64) -> Commit {
        Commit {
            slots: Vec::new(),
            max_submitted: None,
            watermark_hold: None,
            alerts: Vec::new(),
            transitions: Vec::new(),
            recorded_at: chrono::Utc::now().fixed_offset(),
            checkpoints: vec![Checkpoint { source: "kafka:t".into(), partition: 0, next_offset }],
            dead_letters: Vec::new(),
            scores: Vec::new(),
            positions: Vec::new(),
            settled: false,
        }
    }

    #[test]
    fn batches_commit_one_at_a_time_in_order_and_a_failed_commit_is_reported_not_published() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let (waker, mut woken) = PublisherWaker::for_test();
        let metrics = Arc::new(Metrics::new().unwrap());
        let mut writer = StoreWriter::spawn(StoreConfig::at(&path).build().unwrap(), waker, metrics).unwrap();
        assert!(writer.wait().unwrap().is_none(), "nothing in flight");

        writer.submit(commit(5)).unwrap();
        assert!(writer.in_flight());
        assert!(writer.submit(commit(6)).is_err(), "one commit at a time");
        let done = writer.wait().unwrap().expect("the commit in flight");
        done.result.unwrap();
        assert!(!writer.in_flight());
        assert_eq!(woken.blocking_recv(), Some(true), "the publisher is woken after the commit");
        writer.submit(commit(9)).unwrap();
        writer.wait().unwrap().unwrap().result.unwrap();
        let reader = StoreConfig::at(&path).build().unwrap();
        assert_eq!(reader.checkpoints("kafka:t").unwrap()[0].next_offset, 9);
        assert_eq!(woken.blocking_recv(), Some(true));

        // A commit that fails comes back as an error, and nobody is told to publish it.
        rusqlite::Connection::open(&path).unwrap().execute_batch("DROP TABLE checkpoints").unwrap();
        writer.submit(commit(12)).unwrap();
        let failed = loop {
            if let Some(c) = writer.try_finished().unwrap() {
                break c;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(failed.result.is_err());
        drop(writer);
        assert_eq!(woken.blocking_recv(), None, "no wake for a failed commit");
    }
}
