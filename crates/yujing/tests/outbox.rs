//! The publisher ([`yujing::outbox::PublisherHandle`]) against a real Kafka-compatible broker
//! (tansu, started by the test): what it delivers, and that a commit holding the store's
//! write lock does not hold up delivery.

#[path = "../../yujing-ingest/tests/common/broker.rs"]
#[allow(dead_code)]
mod broker;
mod common;

use std::time::{Duration, Instant};
use yujing::outbox::PublisherHandle;
use yujing_ingest::kafka::{KafkaProducerConfig, KafkaTableConfig, KafkaTableReader, Record};
use yujing_store::{BatchWrite, StoreConfig};

/// Reads `topic` until a record keyed `key` comes, or panics after `within`.
async fn wait_for_key(reader: &mut KafkaTableReader, topic: &str, key: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        assert!(Instant::now() < deadline, "no record keyed {key} on {topic} within {within:?}");
        let batch = reader.next_batch().await.expect("reading the topics");
        if batch.iter().any(|r| r.topic == topic && r.key.as_deref() == Some(key.as_bytes())) {
            return;
        }
    }
}

/// The publisher used to mark delivered transitions on its own thread: while a commit held
/// the store's write lock, it sat in SQLite's busy wait (up to 5 s, then an error and the
/// same again) and sent nothing else, so the next batch's alerts and scores waited.
#[test]
fn deliveries_go_on_while_a_commit_holds_the_store_and_marks_land_after_it() {
    let broker = broker::Broker::start();
    let mut kafka = common::config().kafka;
    kafka.brokers = broker.addr();
    for topic in [&kafka.alerts_topic, &kafka.scores_topic, &kafka.dlq_topic] {
        broker.create_topic(topic, 1);
    }
    // A transition committed to the store's outbox.
    let lines: Vec<String> =
        std::fs::read_to_string(&common::sample_files()[0]).unwrap().lines().take(3000).map(String::from).collect();
    let out = common::feed(&mut common::engine(), &lines, lines.len());
    let transition = out.transitions.first().expect("the sample opens alerts");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut store = StoreConfig::at(&path).build().unwrap();
    store.origin().unwrap();
    let at = chrono::Utc::now().fixed_offset();
    store.commit(&BatchWrite { audit: vec![(at, transition)], ..Default::default() }).unwrap();
    drop(store);
    // A commit in progress on another connection: the write lock is held.
    let lock = rusqlite::Connection::open(&path).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let counters = runtime.block_on(async {
        let sink = KafkaProducerConfig { brokers: kafka.brokers.clone(), delivery_attempts: 1, ..Default::default() }
            .build()
            .unwrap();
        let publisher = PublisherHandle::spawn(&kafka, &path, sink, None).unwrap();
        publisher.wake();
        let mut reader = KafkaTableConfig {
            brokers: kafka.brokers.clone(),
            topics: vec![kafka.alerts_topic.clone(), kafka.scores_topic.clone()],
            batch_max_messages: 100,
            batch_max_wait: Duration::from_millis(100),
            extra: Default::default(),
        }
        .build()
        .unwrap();
        // The alert goes out; marking it waits for the lock.
        wait_for_key(&mut reader, &kafka.alerts_topic, &transition.alert.id, Duration::from_secs(20)).await;
        // A score handed over now goes out while the mark still waits (well within the
        // store's busy timeout of 5 s).
        let score = Record { key: "test-score".into(), value: b"{}".to_vec(), headers: Vec::new(), partition: None };
        publisher.scores(vec![score]);
        wait_for_key(&mut reader, &kafka.scores_topic, "test-score", Duration::from_secs(3)).await;
        lock.execute_batch("COMMIT").unwrap();
        publisher.shutdown(Duration::from_secs(10)).await.expect("the publisher stops in time")
    });
    assert_eq!(counters.delivered, 2, "{counters:?}");
    assert_eq!(counters.failed, 0, "{counters:?}");
    // The mark landed once the lock was let go, before the publisher stopped.
    let store = StoreConfig::at(&path).build().unwrap();
    assert!(store.audit(0, 10, true).unwrap().is_empty(), "the delivered transition is marked published");
    assert_eq!(store.audit(0, 10, false).unwrap().len(), 1);
}
