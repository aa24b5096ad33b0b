//! Marking delivered outbox records in the store, on a thread and connection of their own.
//!
//! A mark is a write: it waits for the store's write lock, which the writer holds for the
//! length of a batch's commit. Done on the publisher's thread, that wait held up the
//! delivery of the next batch's alerts; here the publisher goes on sending meanwhile.
//! Marks are idempotent and applied in the order given; what is not marked when the
//! service stops is delivered again on its next start (the topics are compacted by key).

use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use yujing_store::{Delivery, Store};

/// The outbox table a mark is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    /// Alert transitions (the audit log).
    Audit,
    /// Dead letters.
    DeadLetters,
}

/// What became of some records of one table.
struct Mark {
    table: Table,
    seqs: Vec<i64>,
    delivery: Delivery,
}

/// How many times a mark is tried once the service is stopping.
const ATTEMPTS_WHEN_STOPPING: u32 = 3;

/// The thread that marks delivered records (see the module docs).
pub(super) struct Marker {
    tx: Option<mpsc::Sender<Mark>>,
    /// Set once the service is stopping: a failing mark is then given up after a few tries.
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Marker {
    /// Starts the marker on `store` (a connection of its own).
    pub(super) fn spawn(mut store: Store) -> Result<Marker> {
        let (tx, rx) = mpsc::channel::<Mark>();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("outbox-marker".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Whatever came meanwhile goes in the same transactions.
                    let mut marks = vec![first];
                    marks.extend(rx.try_iter());
                    apply(&mut store, &stop, marks);
                }
            })
            .context("starting the outbox marker's thread")?;
        Ok(Marker { tx: Some(tx), stopping, thread: Some(thread) })
    }

    /// Marks `seqs` of `table` as `delivery` (after the marks handed over before).
    pub(super) fn mark(&self, table: Table, seqs: Vec<i64>, delivery: Delivery) {
        if seqs.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            // The thread ends only when `tx` is dropped, or if it panicked: the records are
            // then delivered again on the next start.
            let _ = tx.send(Mark { table, seqs, delivery });
        }
    }
}

/// Dropping the marker applies every mark handed over, then ends the thread.
impl Drop for Marker {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Applies `marks`, grouped by table and delivery (one transaction each), in order. A store
/// error is retried with a pause until it passes, or a few times once `stopping` is set.
fn apply(store: &mut Store, stopping: &AtomicBool, marks: Vec<Mark>) {
    let started = Instant::now();
    let mut groups: Vec<Mark> = Vec::new();
    for m in marks {
        match groups.iter_mut().find(|g| g.table == m.table && g.delivery == m.delivery) {
            Some(g) => g.seqs.extend(m.seqs),
            None => groups.push(m),
        }
    }
    let records: usize = groups.iter().map(|g| g.seqs.len()).sum();
    for g in &groups {
        let mut pause = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match g.table {
                Table::Audit => store.mark_audit(&g.seqs, g.delivery),
                Table::DeadLetters => store.mark_dead_letters(&g.seqs, g.delivery),
            };
            let Err(e) = result else { break };
            if stopping.load(Ordering::Relaxed) && attempt >= ATTEMPTS_WHEN_STOPPING {
                tracing::error!(table = ?g.table, records = g.seqs.len(), error = %e,
                    "cannot mark delivered records in the store; they are delivered again on the next start");
                break;
            }
            tracing::warn!(table = ?g.table, records = g.seqs.len(), error = %e, retry_in = ?pause,
                "cannot mark delivered records in the store; retrying");
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
    tracing::debug!(records, mark_ms = started.elapsed().as_millis() as u64, "outbox records marked");
}
