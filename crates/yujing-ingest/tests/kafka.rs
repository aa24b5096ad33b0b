//! The Kafka source, sink, dead letters and producer against a real broker (tansu), which
//! each test starts itself (see `common/broker.rs`).

mod common;

use common::broker::{Broker, Storage};
use common::{consume, district_of, init_tracing, key_of, read_raw, report_line};
use rdkafka::Message;
use rdkafka::message::Headers;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use yujing_ingest::kafka::{
    self, KafkaProducerConfig, KafkaSink, KafkaSource, KafkaSourceConfig, dead_letter_record, district_partition,
    headers, produce_reports,
};
use yujing_ingest::{Decoder, Error, Input};
use yujing_model::Reason;

const WITHIN: Duration = Duration::from_secs(40);

fn sink(broker: &Broker) -> KafkaSink {
    KafkaProducerConfig {
        brokers: broker.addr(),
        message_timeout: Duration::from_secs(10),
        extra: BTreeMap::from([("message.max.bytes".into(), "4000000".into())]),
        ..Default::default()
    }
    .build()
    .unwrap()
}

fn source(broker: &Broker, topic: &str, group: &str) -> KafkaSource {
    KafkaSourceConfig {
        brokers: broker.addr(),
        topic: topic.into(),
        group: group.into(),
        batch_max_messages: 64,
        batch_max_wait: Duration::from_millis(200),
        session_timeout: Duration::from_secs(6),
        extra: std::env::var("YUJING_KAFKA_DEBUG")
            .map(|d| BTreeMap::from([("debug".to_string(), d)]))
            .unwrap_or_default(),
        ..Default::default()
    }
    .build()
    .unwrap()
}

/// (partition, offset) of an input.
fn at(i: &Input) -> (i32, i64) {
    (i.position.partition.unwrap(), i.position.offset.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_keyed_by_institution_partitioned_by_district_and_consumed_in_full() {
    init_tracing();
    let broker = Broker::start();
    broker.create_topic("reports", 3);
    let sink = sink(&broker);
    let n = 300;
    let lines: Vec<Vec<u8>> = (0..n).map(report_line).collect();
    let progress = AtomicU64::new(0);
    let sent =
        produce_reports(&sink, "reports", lines.clone().into_iter(), None, |k| progress.store(k, Ordering::Relaxed))
            .await
            .unwrap();
    assert_eq!(sent, n as u64);
    assert_eq!(progress.load(Ordering::Relaxed), n as u64);
    assert_eq!(sink.counters().delivered, n as u64);

    let mut src = source(&broker, "reports", "g-full");
    let started = Instant::now();
    let got = consume(&mut src, n, WITHIN).await;
    eprintln!("consumed {} in {:?}", got.len(), started.elapsed());
    assert_eq!(got.len(), n, "nothing twice");
    assert!(src.readiness().load(Ordering::Relaxed));

    let index: HashMap<&[u8], usize> = lines.iter().enumerate().map(|(i, l)| (l.as_slice(), i)).collect();
    let mut seen = BTreeSet::new();
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut district_partitions: HashMap<String, BTreeSet<i32>> = HashMap::new();
    for input in &got {
        assert_eq!(&*input.position.source, "kafka:reports");
        assert_eq!(input.position.line, None);
        let i = *index.get(input.bytes.as_slice()).expect("the bytes as produced");
        assert!(seen.insert(i));
        let (p, o) = at(input);
        assert_eq!(p, district_partition(&district_of(i), 3));
        per_partition.entry(p).or_default().push(o);
        district_partitions.entry(district_of(i)).or_default().insert(p);
        Decoder::default().decode(input).expect("a valid report");
    }
    assert_eq!(per_partition.len(), 3, "all partitions used");
    for (p, offsets) in &per_partition {
        let want: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &want, "partition {p}: every offset, in order");
    }
    assert!(district_partitions.values().all(|ps| ps.len() == 1));

    let raw = tokio::task::spawn_blocking({
        let addr = broker.addr();
        move || read_raw(&addr, "reports", n, WITHIN)
    })
    .await
    .unwrap();
    for m in &raw {
        let i = index[m.payload().unwrap()];
        assert_eq!(key_of(m), format!("CQ-MLC-{i:04}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_resumes_right_after_the_committed_offsets() {
    init_tracing();
    // SQLite storage: tansu's memory (object store) engine cannot fetch from an offset in
    // the middle of a record batch, which is exactly where a committed offset may point.
    let broker = Broker::start_with(Storage::Sqlite);
    broker.create_topic("resume", 3);
    let sink = sink(&broker);
    let n = 240;
    produce_reports(&sink, "resume", (0..n).map(report_line), None, |_| {}).await.unwrap();

    let mut first = source(&broker, "resume", "g-resume");
    let all = consume(&mut first, n, WITHIN).await;
    assert_eq!(all.len(), n);
    // The store "committed" the first half of each partition only.
    let mut per_partition: BTreeMap<i32, Vec<&Input>> = BTreeMap::new();
    for i in &all {
        per_partition.entry(at(i).0).or_default().push(i);
    }
    let mut done = Vec::new();
    let mut rest = BTreeSet::new();
    for inputs in per_partition.values() {
        let half = inputs.len() / 2;
        done.extend(inputs[..half].iter().map(|i| i.position.clone()));
        rest.extend(inputs[half..].iter().map(|i| at(i)));
    }
    first.commit_through(&done).unwrap();
    assert_eq!(first.counters().stale_offset_stores, 0);
    drop(first);

    let mut second = source(&broker, "resume", "g-resume");
    let again = consume(&mut second, rest.len(), WITHIN).await;
    // Nothing more arrives: the committed part is not read again.
    let extra = second.next_batch().await.unwrap();
    let got: BTreeSet<(i32, i64)> = again.iter().chain(&extra).map(at).collect();
    assert_eq!(again.len() + extra.len(), rest.len(), "no duplicates");
    assert_eq!(got, rest, "exactly the uncommitted part");
    second.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storing_offsets_of_a_revoked_partition_is_benign() {
    init_tracing();
    let broker = Broker::start_with(Storage::Sqlite);
    broker.create_topic("shared", 2);
    let sink = sink(&broker);
    produce_reports(&sink, "shared", (0..40).map(report_line), None, |_| {}).await.unwrap();
    let mut a = source(&broker, "shared", "g-shared");
    let read = consume(&mut a, 40, WITHIN).await;
    assert_eq!(a.assigned_partitions().unwrap(), vec![0, 1]);
    // A second member joins; both keep polling until the partitions are shared.
    let mut b = source(&broker, "shared", "g-shared");
    let deadline = Instant::now() + WITHIN;
    loop {
        // (Both read their partitions again from the start: nothing was committed yet, and
        // the default eager rebalance revokes every partition before assigning again.)
        let (x, y) = tokio::join!(a.next_batch(), b.next_batch());
        x.unwrap();
        y.unwrap();
        let (pa, pb) = (a.assigned_partitions().unwrap(), b.assigned_partitions().unwrap());
        if pa.len() == 1 && pb.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no rebalance: {pa:?} {pb:?}");
    }
    // The first member's store commits what it read before the rebalance.
    a.commit_through(&read.iter().map(|i| i.position.clone()).collect::<Vec<_>>()).unwrap();
    assert_eq!(a.counters().stale_offset_stores, 1);
    assert!(a.counters().rebalances >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_do_not_stall_and_reach_the_dead_letter_topic_as_they_were() {
    init_tracing();
    let broker = Broker::start();
    broker.create_topic("poison", 1);
    broker.create_topic("poison.dlq", 1);
    let sink = sink(&broker);
    let huge = vec![b'x'; 2 * 1024 * 1024];
    let poison: Vec<(Vec<u8>, Reason)> = vec![
        (br#"{"schema_version":1,"report_id":"#.to_vec(), Reason::MalformedJson),
        (huge, Reason::TooLarge),
        (vec![0xff, 0xfe, b'{', 0x80], Reason::MalformedJson),
    ];
    sink.send("poison", "a", &report_line(1), &[]).await.unwrap();
    for (bytes, _) in &poison {
        sink.send("poison", "", bytes, &[]).await.unwrap();
    }
    // A message without a value (a tombstone), then a good report again.
    common::produce_null(&broker.addr(), "poison").await;
    sink.send("poison", "b", &report_line(2), &[]).await.unwrap();

    let mut src = source(&broker, "poison", "g-poison");
    let got = consume(&mut src, 6, WITHIN).await;
    assert_eq!(got.len(), 6);
    let decoder = Decoder::default();
    let results: Vec<_> = got.iter().map(|i| decoder.decode(i)).collect();
    assert!(results[0].is_ok() && results[5].is_ok());
    let mut dead = Vec::new();
    for (k, input) in got.iter().enumerate().take(5).skip(1) {
        let letter = results[k].clone().unwrap_err();
        dead.push(dead_letter_record(&letter, &input.bytes));
    }
    let want_reasons: Vec<&str> = poison.iter().map(|(_, r)| r.as_str()).chain(["malformed_json"]).collect();
    assert!(got[4].bytes.is_empty(), "no value: empty bytes");
    sink.send_all("poison.dlq", &dead).await.unwrap();

    let raw = tokio::task::spawn_blocking({
        let addr = broker.addr();
        move || read_raw(&addr, "poison.dlq", 4, WITHIN)
    })
    .await
    .unwrap();
    let mut by_offset: Vec<_> = raw.iter().collect();
    by_offset.sort_by_key(|m| {
        let h = m.headers().unwrap();
        let v = h.iter().find(|h| h.key == headers::SOURCE_OFFSET).unwrap();
        String::from_utf8(v.value.unwrap().to_vec()).unwrap().parse::<i64>().unwrap()
    });
    for (k, m) in by_offset.iter().enumerate() {
        let original = &got[k + 1];
        assert_eq!(m.payload().unwrap_or_default(), original.bytes.as_slice());
        let h = m.headers().unwrap();
        let header = |name: &str| {
            h.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(header(headers::REASON).as_deref(), Some(want_reasons[k]));
        assert_eq!(header(headers::SOURCE_TOPIC).as_deref(), Some("poison"));
        assert_eq!(header(headers::SOURCE_PARTITION).as_deref(), Some("0"));
        assert!(!header(headers::DETAIL).unwrap().is_empty());
        assert_eq!(key_of(m), format!("poison/0/{}", at(original).1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_survives_a_broker_restart_without_losing_anything() {
    init_tracing();
    let mut broker = Broker::start_with(Storage::Sqlite);
    broker.create_topic("restart", 2);
    let sink = sink(&broker);
    produce_reports(&sink, "restart", (0..50).map(report_line), None, |_| {}).await.unwrap();
    let mut src = source(&broker, "restart", "g-restart");
    let before = consume(&mut src, 50, WITHIN).await;
    src.commit_through(&before.iter().map(|i| i.position.clone()).collect::<Vec<_>>()).unwrap();
    let ready = src.readiness();
    assert!(ready.load(Ordering::Relaxed));

    broker.stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready.load(Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "readiness never went false");
        assert!(src.next_batch().await.unwrap().is_empty());
    }
    assert!(src.counters().broker_errors > 0);

    broker.restart();
    produce_reports(&sink, "restart", (50..100).map(report_line), None, |_| {}).await.unwrap();
    let after = consume(&mut src, 50, WITHIN).await;
    assert!(ready.load(Ordering::Relaxed), "ready again");
    let lines: BTreeSet<Vec<u8>> = before.iter().chain(&after).map(|i| i.bytes.clone()).collect();
    let want: BTreeSet<Vec<u8>> = (0..100).map(report_line).collect();
    assert_eq!(lines, want, "nothing lost");
    src.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_returned_and_counted() {
    init_tracing();
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sink = KafkaProducerConfig {
        brokers: format!("127.0.0.1:{port}"),
        message_timeout: Duration::from_millis(800),
        delivery_attempts: 2,
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    }
    .build()
    .unwrap();
    let err = sink.send("t", "k", b"v", &[("h", b"1")]).await.unwrap_err();
    assert!(matches!(err, Error::Delivery { attempts: 2, .. }), "{err}");
    let c = sink.counters();
    assert_eq!((c.delivered, c.retries, c.failures), (0, 1, 1));

    let records = vec![kafka::Record::default(); 3];
    assert!(sink.send_all("t", &records).await.is_err());
    assert_eq!(sink.counters().failures, 4, "every failure counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_and_non_reports_are_still_produced() {
    init_tracing();
    let broker = Broker::start();
    broker.create_topic("rated", 2);
    let sink = sink(&broker);
    let mut lines: Vec<Vec<u8>> = (0..29).map(report_line).collect();
    lines.push(b"not a report".to_vec());
    let started = Instant::now();
    let sent = produce_reports(&sink, "rated", lines.into_iter(), Some(50), |_| {}).await.unwrap();
    let took = started.elapsed();
    assert_eq!(sent, 30);
    // 5 at once, then 25 at 50 a second.
    assert!(took >= Duration::from_millis(450), "{took:?}");
    let raw = tokio::task::spawn_blocking({
        let addr = broker.addr();
        move || read_raw(&addr, "rated", 30, WITHIN)
    })
    .await
    .unwrap();
    let odd = raw.iter().find(|m| m.payload() == Some(b"not a report")).unwrap();
    assert_eq!(odd.key(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_and_their_partitions_counted() {
    init_tracing();
    let broker = Broker::start();
    kafka::ensure_topics(&broker.addr(), &[("made", 4), ("made.dlq", 1)]).await.unwrap();
    // Again: they exist now, which is fine.
    kafka::ensure_topics(&broker.addr(), &[("made", 4)]).await.unwrap();
    let addr = broker.addr();
    let counts = tokio::task::spawn_blocking(move || {
        (
            kafka::topic_partitions(&addr, "made").unwrap(),
            kafka::topic_partitions(&addr, "made.dlq").unwrap(),
            kafka::topic_partitions(&addr, "missing").is_err(),
        )
    })
    .await
    .unwrap();
    assert_eq!(counts, (4, 1, true));
}

/// Not a check, a measurement: `cargo test -p yujing-ingest --release --test kafka throughput
/// -- --ignored --nocapture` (`YUJING_KAFKA_N` reports, 100 000 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn throughput() {
    init_tracing();
    let n: usize = std::env::var("YUJING_KAFKA_N").map_or(100_000, |v| v.parse().unwrap());
    let broker = Broker::start();
    broker.create_topic("bulk", 3);
    let sink = sink(&broker);
    let started = Instant::now();
    produce_reports(&sink, "bulk", (0..n).map(report_line), None, |_| {}).await.unwrap();
    let produced = started.elapsed();
    let mut src = KafkaSourceConfig {
        brokers: broker.addr(),
        topic: "bulk".into(),
        group: "g-bulk".into(),
        ..Default::default()
    }
    .build()
    .unwrap();
    let started = Instant::now();
    let got = consume(&mut src, n, Duration::from_secs(600)).await;
    let consumed = started.elapsed();
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
    eprintln!(
        "{n} reports: produced in {produced:?} ({:.0}/s), consumed {} in {consumed:?} ({:.0}/s)",
        per_sec(produced),
        got.len(),
        per_sec(consumed)
    );
}
