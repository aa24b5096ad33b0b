//! Delivery of what a committed batch left for Kafka: dead letters and alert transitions
//! (kept in the store until delivered) and district scores (re-published for the periods
//! they changed in).
//!
//! The publisher is a task of its own with its own connection to the store, so delivery
//! never holds up consumption (nor readiness, nor a shutdown). Delivery failures never stop
//! the service: what was not delivered stays pending and is tried again after a backoff. A record the broker
//! refuses for good (say, a dead letter larger than the topic accepts) is marked
//! undeliverable in the store, counted and logged, and kept there for an operator.
//! Transitions are marked delivered only as an unbroken prefix, so after a failure the rest
//! go out again in order: the alerts topic is compacted by alert id, and a later state must
//! never be overwritten by an earlier one.

use crate::engine::{DistrictScoreKey, Engine};
use crate::metrics::Metrics;
use crate::peers::score_key;
use crate::service::KafkaConfig;
use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use yujing_ingest::kafka::{KafkaSink, Record};
use yujing_model::{AggregateScore, Level, Period};
use yujing_store::StoreConfig;

mod deliver;
mod marker;

use deliver::Publisher;
use marker::Marker;

/// The header naming the store an alert transition was published from (see
/// [`Store::origin`](yujing_store::Store::origin)): the whole-city view skips its own
/// alerts when it reads them back.
pub const ORIGIN_HEADER: &str = "yujing.origin";

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

/// How often the publisher looks at the store's outbox when nobody wakes it.
const TICK: Duration = Duration::from_secs(1);

/// The district score records of `periods` (key: district, sector and period; value: the
/// aggregate, plus the integer `sums` behind its ratios, so that other instances can
/// recompute regions and the city exactly: [`crate::peers`]).
pub fn score_records(engine: &Engine, periods: &BTreeSet<Period>) -> Vec<Record> {
    engine
        .aggregates()
        .filter(|a| a.level == Level::District && periods.contains(&a.period))
        .filter_map(|a| score_record(engine, a))
        .collect()
}

/// The district score records of `keys` ([`Engine::take_changed_district_scores`]), as
/// [`score_records`] makes them.
pub fn changed_score_records(engine: &Engine, keys: &BTreeSet<DistrictScoreKey>) -> Vec<Record> {
    keys.iter()
        .filter_map(|(district, scope, period)| engine.aggregate(Level::District, district, *scope, *period))
        .filter_map(|a| score_record(engine, a))
        .collect()
}

fn score_record(engine: &Engine, a: &AggregateScore) -> Option<Record> {
    let mut value = serde_json::to_value(a).ok()?;
    let code = a.entity_id.parse::<u32>().ok();
    let s = code.map(|c| engine.district_sums(c, a.sector, a.period)).unwrap_or_default();
    value.as_object_mut()?.insert("sums".into(), serde_json::to_value(s).ok()?);
    let value = serde_json::to_vec(&value).ok()?;
    Some(Record { key: score_key(a), value, headers: Vec::new(), partition: None })
}

/// Every period that has district scores.
pub fn all_periods(engine: &Engine) -> BTreeSet<Period> {
    engine.aggregates().filter(|a| a.level == Level::District).map(|a| a.period).collect()
}

enum Work {
    /// District score records to publish (a later record of the same key replaces one not
    /// yet delivered).
    Scores(Vec<Record>),
    /// The store's outbox has something new.
    Wake,
}

/// The running publisher, on a thread of its own: the pipeline's batches run on the
/// service's runtime between awaits, and a task woken there could wait behind a whole batch
/// before delivering the alerts that batch committed. Dropping the handle without
/// [`shutdown`](Self::shutdown) stops the publisher when it next looks for work; what it had
/// not delivered stays in the store.
pub struct PublisherHandle {
    waker: PublisherWaker,
    done: tokio::sync::oneshot::Receiver<PublishCounters>,
}

impl PublisherHandle {
    /// Starts the publisher on its own thread and connection to the store at `store_path`.
    pub fn spawn(
        kafka: &KafkaConfig,
        store_path: &Path,
        sink: KafkaSink,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<PublisherHandle> {
        let mut store = StoreConfig::at(store_path).build().context("opening the store for the publisher")?;
        let marker =
            Marker::spawn(StoreConfig::at(store_path).build().context("opening the store for the publisher")?)?;
        let mut publisher = Publisher::new(kafka);
        publisher.metrics = metrics;
        publisher.origin = store.origin()?.into_bytes();
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the publisher's runtime")?;
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || {
                let counters = runtime.block_on(publisher.run(store, marker, sink, rx));
                let _ = done_tx.send(counters);
            })
            .context("starting the publisher's thread")?;
        Ok(PublisherHandle { waker: PublisherWaker { tx }, done })
    }

    /// Hands over district score records to publish.
    pub fn scores(&self, records: Vec<Record>) {
        self.waker.scores(records);
    }

    /// Tells the publisher the store's outbox has something new.
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// A handle that hands the publisher work from another thread (the store writer's).
    /// [`shutdown`](Self::shutdown) ends the publisher only once every waker is dropped.
    pub fn waker(&self) -> PublisherWaker {
        self.waker.clone()
    }

    /// Delivers what it can within `within`, then stops; returns the counts (none if the
    /// time ran out: what was not delivered stays in the store for the next start).
    pub async fn shutdown(self, within: Duration) -> Option<PublishCounters> {
        let PublisherHandle { waker, done } = self;
        drop(waker);
        match tokio::time::timeout(within, done).await {
            Ok(Ok(counters)) => Some(counters),
            Ok(Err(_)) => {
                tracing::error!("the publisher stopped without its counts");
                None
            }
            Err(_) => {
                tracing::warn!(?within, "publisher stopped with deliveries pending; they go out on the next start");
                None
            }
        }
    }
}

/// Hands the publisher work from another thread: [`PublisherHandle::waker`].
#[derive(Clone)]
pub struct PublisherWaker {
    tx: mpsc::UnboundedSender<Work>,
}

impl PublisherWaker {
    /// A waker with no publisher behind it: the receiver sees what it is handed (`true`
    /// for a wake, `false` for scores).
    #[cfg(test)]
    pub(crate) fn for_test() -> (PublisherWaker, mpsc::UnboundedReceiver<bool>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (out, seen) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            while let Some(work) = rx.blocking_recv() {
                let _ = out.send(matches!(work, Work::Wake));
            }
        });
        (PublisherWaker { tx }, seen)
    }

    /// Hands over district score records to publish.
    pub fn scores(&self, records: Vec<Record>) {
        if !records.is_empty() {
            let _ = self.tx.send(Work::Scores(records));
        }
    }

    /// Tells the publisher the store's outbox has something new.
    pub fn wake(&self) {
        let _ = self.tx.send(Work::Wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_inputs as lines;
    use std::collections::BTreeMap;
    use yujing_alert::RulePack;

    /// Every district score record the engine has, by key.
    fn all(engine: &Engine) -> BTreeMap<String, Vec<u8>> {
        score_records(engine, &all_periods(engine)).into_iter().map(|r| (r.key, r.value)).collect()
    }

    #[test]
    fn a_settle_publishes_exactly_the_district_scores_that_changed() {
        let config = crate::config::Config::load(None).unwrap();
        let mut engine = Engine::new(&config, RulePack::default_pack());
        engine.process(&lines(0, 1200)).unwrap();
        let keys = engine.take_changed_district_scores();
        let first = changed_score_records(&engine, &keys);
        let mut held = all(&engine);
        assert_eq!(first.into_iter().map(|r| (r.key, r.value)).collect::<BTreeMap<_, _>>(), held);
        // Batch by batch: new reports, then the same again (duplicates change nothing).
        for (from, to) in [(1200, 1260), (1200, 1260), (1260, 1261), (1261, 1400)] {
            engine.process(&lines(from, to)).unwrap();
            let keys = engine.take_changed_district_scores();
            let changed: BTreeMap<String, Vec<u8>> =
                changed_score_records(&engine, &keys).into_iter().map(|r| (r.key, r.value)).collect();
            let now = all(&engine);
            let differ: BTreeMap<String, Vec<u8>> =
                now.iter().filter(|(k, v)| held.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(changed, differ, "lines {from}..{to}");
            assert!(changed.len() < now.len(), "lines {from}..{to}: every district score published again");
            held = now;
        }
    }
}
