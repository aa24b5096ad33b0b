//! When a pipeline that commits every batch brings its derived state up to date.
//!
//! Ingesting a batch (decode, ledger, store) costs in proportion to the batch. Settling
//! ([`crate::engine::Engine::settle`]: scores, aggregates, alert histories) costs in
//! proportion to the sector-periods and histories the batch touched, which while a backlog
//! is read is most of each period, batch after batch. Settling is deferred safely: the
//! derived state is a function of the ledger, and a restart re-derives it from the store and
//! publishes what differs from what was published (DESIGN §7). So a [`Pacer`] settles at
//! once when the pipeline has caught up, and while it reads a backlog at most once per
//! interval and never for longer than it spent ingesting since the last settle. A settle's
//! cost includes committing the transitions it produced ([`Pacer::add_cost`]): while a
//! backlog is read that commit can cost more than the settle.

use crate::engine::{Engine, EngineError};
use std::time::{Duration, Instant};
use yujing_model::Transition;

/// Decides, batch by batch, whether to settle now.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    unsettled_since: Option<Instant>,
    last_cost: Duration,
}

impl Pacer {
    /// A pacer that lets a backlog go unsettled for up to `interval` (zero: settle after
    /// every batch).
    pub fn new(interval: Duration) -> Pacer {
        Pacer { interval, unsettled_since: None, last_cost: Duration::ZERO }
    }

    /// Notes an ingested batch and tells whether to settle now: at once when `caught_up`
    /// (nothing is known to wait behind the batch); while behind, once the oldest unsettled
    /// batch has waited the interval and at least as long as the last settle took.
    pub fn ingested(&mut self, caught_up: bool) -> bool {
        let since = *self.unsettled_since.get_or_insert_with(Instant::now);
        caught_up || since.elapsed() >= self.interval.max(self.last_cost)
    }

    /// Whether batches were ingested since the last settle.
    pub fn pending(&self) -> bool {
        self.unsettled_since.is_some()
    }

    /// Notes a settle and how long it took.
    pub fn settled(&mut self, cost: Duration) {
        self.unsettled_since = None;
        self.last_cost = cost;
    }

    /// Adds to the last settle's cost what followed from it: committing the transitions
    /// it produced, which while a backlog is read can cost more than the settle itself.
    pub fn add_cost(&mut self, cost: Duration) {
        self.last_cost += cost;
    }

    /// Settles the engine now and notes how long it took; returns the transitions.
    pub fn settle(&mut self, engine: &mut Engine) -> Result<Vec<Transition>, EngineError> {
        let started = Instant::now();
        let transitions = engine.settle()?;
        self.settled(started.elapsed());
        Ok(transitions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_at_once_when_caught_up_and_after_the_interval_when_behind() {
        let mut p = Pacer::new(Duration::from_secs(3600));
        assert!(!p.pending());
        assert!(!p.ingested(false), "a full batch waits");
        assert!(p.pending());
        assert!(!p.ingested(false));
        assert!(p.ingested(true), "caught up: settle");
        p.settled(Duration::from_millis(5));
        assert!(!p.pending());
        let mut every = Pacer::new(Duration::ZERO);
        assert!(every.ingested(false), "a zero interval settles every batch");
    }

    #[test]
    fn a_slow_settle_spaces_the_next_one_out() {
        let mut p = Pacer::new(Duration::ZERO);
        p.settled(Duration::from_secs(3600));
        assert!(!p.ingested(false), "behind: no sooner than the last settle's cost");
        assert!(p.ingested(true));
    }

    #[test]
    fn the_commit_of_a_settles_transitions_counts_toward_its_cost() {
        let mut p = Pacer::new(Duration::ZERO);
        p.settled(Duration::ZERO);
        p.add_cost(Duration::from_secs(3600));
        assert!(!p.ingested(false), "behind: no sooner than the settle and its commit took");
        p.settled(Duration::ZERO);
        assert!(p.ingested(false), "the next settle's cost starts afresh");
    }
}
