//! Publishing the API's snapshots: built on the pipeline's thread at start-up, and on a
//! thread of their own while the pipeline runs, so that merging a large peer view (every
//! other instance's alerts, DESIGN §8) does not hold up the next batch.
//!
//! The pipeline takes the engine's parts (a copy of shared pointers and the alerts) and
//! hands them to the builder; the builder merges the peers', builds the snapshot and
//! publishes it. An action on an alert is published at once on top of the current
//! snapshot; a build begun before it is dropped and begun again, so that the API never
//! shows an alert as it was before a person's action.

use crate::metrics::Metrics;
use crate::peers::PeerView;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use yujing_score::GradeCutoffs;
use yujing_serve::{Snapshot, SnapshotHandle, SnapshotParts};

/// What the pipeline and the builder share.
#[derive(Debug, Default)]
pub struct Published {
    /// Bumped by every action published directly: a build begun before it is dropped.
    pub epoch: u64,
    /// This instance's own snapshot when the peers' view is merged into the API's (the
    /// state gauges stay per instance).
    pub local: Option<Snapshot>,
    /// Whether a build is under way.
    pub building: bool,
    /// A build was dropped because an action was published meanwhile: build again.
    pub dropped: bool,
    /// When the last snapshot was published and what building it cost.
    pub last: Option<(Instant, Duration)>,
}

/// One build.
struct Job {
    parts: SnapshotParts,
    peers: Option<PeerView>,
    grades: GradeCutoffs,
    epoch: u64,
    started: Instant,
}

/// Builds and publishes snapshots.
#[derive(Debug)]
pub struct Publisher {
    snapshots: SnapshotHandle,
    metrics: Arc<Metrics>,
    state: Arc<Mutex<Published>>,
    /// The builder thread's queue (none if the thread could not start: then builds run
    /// on the caller's thread).
    jobs: Option<Sender<Job>>,
}

impl Publisher {
    /// A publisher to `snapshots`, refreshing the state gauges of `metrics`; starts its
    /// builder thread.
    pub fn new(snapshots: SnapshotHandle, metrics: Arc<Metrics>) -> Publisher {
        let mut publisher = Publisher { snapshots, metrics, state: Arc::default(), jobs: None };
        publisher.jobs = publisher.spawn();
        publisher
    }

    /// The shared state, locked. Publishing a snapshot holds it.
    pub fn lock(&self) -> MutexGuard<'_, Published> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Builds and publishes a snapshot here and now (after any build under way).
    pub fn publish_now(&self, parts: SnapshotParts, peers: Option<&PeerView>, grades: &GradeCutoffs) {
        self.wait();
        let epoch = self.lock().epoch;
        let job = Job { parts, peers: peers.cloned(), grades: *grades, epoch, started: Instant::now() };
        build(&self.snapshots, &self.metrics, &self.state, job);
    }

    /// Hands a build to the builder thread. Returns at once.
    pub fn publish_later(&self, parts: SnapshotParts, peers: Option<&PeerView>, grades: &GradeCutoffs) {
        let epoch = {
            let mut s = self.lock();
            s.building = true;
            s.dropped = false;
            s.epoch
        };
        let job = Job { parts, peers: peers.cloned(), grades: *grades, epoch, started: Instant::now() };
        match &self.jobs {
            Some(tx) => {
                if let Err(e) = tx.send(job) {
                    build(&self.snapshots, &self.metrics, &self.state, e.0);
                }
            }
            None => build(&self.snapshots, &self.metrics, &self.state, job),
        }
    }

    fn spawn(&self) -> Option<Sender<Job>> {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = channel();
        let (snapshots, metrics, state) = (self.snapshots.clone(), self.metrics.clone(), self.state.clone());
        let spawned = std::thread::Builder::new().name("snapshots".into()).spawn(move || {
            while let Ok(job) = rx.recv() {
                build(&snapshots, &metrics, &state, job);
            }
        });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the snapshot builder; building on the pipeline's thread");
                None
            }
        }
    }

    /// Waits until no build is under way.
    pub fn wait(&self) {
        while self.lock().building {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Builds one snapshot and publishes it, unless an action was published since its parts
/// were taken.
fn build(snapshots: &SnapshotHandle, metrics: &Metrics, state: &Mutex<Published>, job: Job) {
    let Job { mut parts, peers, grades, epoch, started } = job;
    let peers = peers.as_ref().map(PeerView::lock).filter(|p| p.contributes(&parts));
    let (snap, local) = match peers {
        Some(peers) => {
            let local = Snapshot::new(SnapshotParts {
                aggregates: parts.aggregates.clone(),
                alerts: parts.alerts.clone(),
                complete_through: parts.complete_through,
                ..SnapshotParts::default()
            });
            peers.merge(&mut parts, &grades);
            drop(peers);
            (Snapshot::new(parts), Some(local))
        }
        None => (Snapshot::new(parts), None),
    };
    let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    s.building = false;
    if s.epoch != epoch {
        s.dropped = true;
        tracing::debug!("snapshot dropped: an action was published while it was built");
        return;
    }
    metrics.refresh(local.as_ref().unwrap_or(&snap));
    s.local = local;
    snapshots.publish(snap);
    metrics.record_publish("api", 1, true);
    s.last = Some((Instant::now(), started.elapsed()));
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "snapshot published");
}
