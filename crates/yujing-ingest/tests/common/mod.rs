//! Helpers shared by the Kafka integration tests.

#![allow(dead_code)]

pub mod broker;

use rdkafka::config::{ClientConfig, FromClientConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use yujing_ingest::{Input, KafkaSource};

/// Logs to the test's output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A valid microloan report of institution `i`, in district `DISTRICTS[i % 38]`.
pub fn report_line(i: usize) -> Vec<u8> {
    let d = &yujing_model::DISTRICTS[i % yujing_model::DISTRICTS.len()];
    format!(
        concat!(
            r#"{{"schema_version":1,"report_id":"CQ-MLC-{i:04}/2025-09/r1","#,
            r#""institution_id":"CQ-MLC-{i:04}","institution_name":"重庆某小额贷款有限公司{i}","#,
            r#""sector":"microloan","district_code":"{d}","period":"2025-09","revision":1,"#,
            r#""submitted_at":"2025-10-12T09:30:00+08:00","metrics":{{"loan_balance":512000000,"#,
            r#""npl_balance":48000000,"net_assets":300000000,"largest_borrower_balance":26000000,"#,
            r#""borrowings":150000000}}}}"#
        ),
        i = i,
        d = d.code
    )
    .into_bytes()
}

/// The district code of report `i` (see [`report_line`]).
pub fn district_of(i: usize) -> String {
    yujing_model::DISTRICTS[i % yujing_model::DISTRICTS.len()].code_str()
}

/// Reads batches until `n` inputs have come (more may come in the last batch), or panics
/// after `within`.
pub async fn consume(source: &mut KafkaSource, n: usize, within: Duration) -> Vec<Input> {
    let deadline = Instant::now() + within;
    let mut all = Vec::new();
    while all.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} messages within {within:?} (counters {:?})",
            all.len(),
            source.counters()
        );
        all.extend(source.next_batch().await.expect("a batch"));
    }
    all
}

/// Reads `n` messages of every partition of `topic` from the beginning, outside any group,
/// with the raw client (to see keys and headers), or panics after `within`.
pub fn read_raw(brokers: &str, topic: &str, n: usize, within: Duration) -> Vec<OwnedMessage> {
    let consumer = BaseConsumer::from_config(
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "yujing-test-raw")
            .set("enable.auto.commit", "false"),
    )
    .unwrap();
    let partitions = yujing_ingest::kafka::topic_partitions(brokers, topic).unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} raw messages of {topic} within {within:?}", out.len());
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => eprintln!("raw consumer: {e}"),
            None => {}
        }
    }
    out
}

/// The key of a raw message as text.
pub fn key_of(m: &OwnedMessage) -> String {
    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned()
}

/// Produces one message without a value (and without a key) to partition 0 of `topic`.
pub async fn produce_null(brokers: &str, topic: &str) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer =
        FutureProducer::from_config(ClientConfig::new().set("bootstrap.servers", brokers)).unwrap();
    let record = FutureRecord::<(), ()>::to(topic).partition(0);
    producer.send(record, Duration::from_secs(10)).await.expect("a message without a value is delivered");
}
