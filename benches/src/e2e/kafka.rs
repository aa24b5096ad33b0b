//! The harness's own Kafka clients (plain rdkafka, no yujing code on the path): a producer
//! that keys and partitions reports as `yujing produce` does, and bare consumers that only
//! count and time what they receive.

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message as _};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The header carrying a message's sequence number in the latency stream.
pub const SEQ_HEADER: &str = "bench.seq";

/// One report to produce: its bytes, key and partition.
pub struct Outgoing {
    /// The JSON line.
    pub payload: Vec<u8>,
    /// The institution id (the message key).
    pub key: String,
    /// The partition (by district, as `yujing produce` does).
    pub partition: i32,
}

/// Counts delivery reports; remembers the first failure.
#[derive(Default)]
pub struct Deliveries {
    /// Messages the broker acknowledged.
    pub delivered: AtomicU64,
    /// Messages that failed.
    pub failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, m)) => {
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| format!("{e} (partition {})", m.partition()));
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// The harness's producer.
pub type Prod = BaseProducer<Deliveries>;

/// Fails unless every message sent so far was delivered.
pub fn check_delivered(p: &Prod, sent: u64) -> Result<()> {
    let c = p.context();
    let (ok, failed) = (c.delivered.load(Ordering::Relaxed), c.failed.load(Ordering::Relaxed));
    if ok != sent {
        let first = c.first_error.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
        bail!("{ok} of {sent} messages delivered, {failed} failed; first failure: {first}");
    }
    Ok(())
}

/// A producer; `linger` is librdkafka's `linger.ms`.
pub fn producer(brokers: &str, linger_ms: u32) -> Result<Prod> {
    producer_config(brokers, linger_ms).create_with_context(Deliveries::default()).context("creating the producer")
}

/// A producer for a steady live stream, set as a latency-minded client would be: records
/// wait at most 5 ms to go out together (librdkafka's own default `linger.ms`), and at most
/// five requests are in flight per connection. Fewer, fuller requests are what keep the local
/// broker's produce → consume latency low: at 2,000 records/s over 4 partitions, a linger of
/// 5 ms gave p50 / p99 20 / 29 ms, 1 ms gave 54–59 / 383–432 ms, and none 98 / 1,077 ms (10 s
/// each on a fresh broker, `fetch.wait.max.ms` 10). With no linger and a million requests in
/// flight the broker fell ever further behind (the bare consumer's p50 reached 30 s).
pub fn live_producer(brokers: &str) -> Result<Prod> {
    producer_config(brokers, 5)
        .set("max.in.flight.requests.per.connection", "5")
        .create_with_context(Deliveries::default())
        .context("creating the producer")
}

fn producer_config(brokers: &str, linger_ms: u32) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "120000");
    c
}

/// Sends one record, waiting while the local queue is full; `seq` goes into a header.
pub fn send(p: &Prod, topic: &str, m: &Outgoing, seq: Option<u64>) -> Result<()> {
    let seq_bytes = seq.map(|s| s.to_be_bytes());
    loop {
        let mut record = BaseRecord::to(topic).key(m.key.as_bytes()).payload(&m.payload).partition(m.partition);
        if let Some(b) = &seq_bytes {
            record = record.headers(OwnedHeaders::new().insert(Header { key: SEQ_HEADER, value: Some(&b[..]) }));
        }
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                p.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e).context("producing"),
        }
    }
}

/// Produces every message as fast as the broker takes them; returns the seconds taken.
pub fn produce_all(brokers: &str, topic: &str, messages: &[Outgoing]) -> Result<f64> {
    let p = producer(brokers, 20)?;
    let t0 = Instant::now();
    for (i, m) in messages.iter().enumerate() {
        send(&p, topic, m, None)?;
        if i % 1024 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(300)).context("flushing the producer")?;
    let took = t0.elapsed().as_secs_f64();
    check_delivered(&p, messages.len() as u64)?;
    Ok(took)
}

/// librdkafka's `fetch.wait.max.ms` for every consumer, the harness's and `yujing run`'s
/// (set by [`set_fetch_wait`]).
static FETCH_WAIT_MS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Sets `fetch.wait.max.ms` for the harness's consumers.
pub fn set_fetch_wait(ms: u32) {
    let _ = FETCH_WAIT_MS.set(ms);
}

/// Where a new consumer group starts reading a topic.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// At the first message: every message of the topic is read.
    Earliest,
    /// At the end when the group joins: only messages produced after are read.
    Latest,
}

/// A consumer in its own group, reading from the earliest offset, with the same prefetch
/// bound and fetch wait as `yujing run`.
pub fn consumer(brokers: &str, group: &str, topic: &str, start: Start) -> Result<BaseConsumer> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("fetch.wait.max.ms", FETCH_WAIT_MS.get().copied().unwrap_or(500).to_string())
        .set("group.id", group)
        .set(
            "auto.offset.reset",
            match start {
                Start::Earliest => "earliest",
                Start::Latest => "latest",
            },
        )
        .set("enable.auto.commit", "false")
        .set("queued.max.messages.kbytes", "16384")
        .create()
        .context("creating a consumer")?;
    c.subscribe(&[topic]).context("subscribing")?;
    Ok(c)
}

/// The sum of the partitions' high watermarks: the number of messages in a fresh topic.
pub fn message_count(brokers: &str, topic: &str, partitions: i32) -> Result<i64> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let mut n = 0;
    for p in 0..partitions {
        n += c.fetch_watermarks(topic, p, Duration::from_secs(10)).context("watermarks")?.1;
    }
    Ok(n)
}

/// What the bare consumer saw: the times of its first and last message.
pub struct Drained {
    /// From the consumer's creation to its first message (group join, first fetch).
    pub first_after: Duration,
    /// From the first message to the last.
    pub first_to_last: Duration,
    /// Messages read.
    pub messages: i64,
}

/// Reads `n` messages of a topic with a consumer that does nothing else.
pub fn drain(brokers: &str, group: &str, topic: &str, n: i64, within: Duration) -> Result<Drained> {
    let t0 = Instant::now();
    let c = consumer(brokers, group, topic, Start::Earliest)?;
    let (mut first, mut last, mut count) = (None, t0, 0i64);
    while count < n {
        if t0.elapsed() > within {
            bail!("the bare consumer read {count} of {n} messages in {within:?}");
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                std::hint::black_box(m.payload());
                count += 1;
                last = Instant::now();
                first.get_or_insert(last);
            }
            Some(Err(e)) => eprintln!("bare consumer: {e}"),
            None => {}
        }
    }
    let first = first.unwrap_or(t0);
    Ok(Drained { first_after: first - t0, first_to_last: last - first, messages: count })
}

/// Receive times collected by a consumer thread until `stop` is set.
pub type Received<K> = HashMap<K, Instant>;

/// Consumes `topic` in a thread, recording when each message with a `bench.seq` header
/// arrived (the first arrival of each).
pub fn spawn_seq_consumer(
    brokers: &str,
    group: &str,
    topic: &str,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> Result<std::thread::JoinHandle<Received<u64>>> {
    let c = consumer(brokers, group, topic, Start::Earliest)?;
    Ok(std::thread::spawn(move || {
        let mut got = HashMap::new();
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                count.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                let seq: Option<[u8; 8]> = m.headers().and_then(|h| {
                    h.iter().find(|h| h.key == SEQ_HEADER).and_then(|h| h.value).and_then(|v| v.try_into().ok())
                });
                if let Some(s) = seq.map(u64::from_be_bytes) {
                    got.entry(s).or_insert(now);
                }
            }
        }
        got
    }))
}

/// Consumes the alerts topic in a thread, recording when the first transition of each
/// entity whose id `wanted` accepts arrived.
pub fn spawn_alert_consumer(
    brokers: &str,
    group: &str,
    topic: &str,
    wanted: impl Fn(&str) -> bool + Send + 'static,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> Result<std::thread::JoinHandle<Received<String>>> {
    // From the end: the topic holds every alert of the earlier phases, and reading through
    // them first would be measured as latency.
    let c = consumer(brokers, group, topic, Start::Latest)?;
    Ok(std::thread::spawn(move || {
        let mut got = HashMap::new();
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                count.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                let entity =
                    m.payload().and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok()).and_then(|v| {
                        // The alert as published (or a transition wrapping it).
                        let e = v.get("entity_id").or_else(|| v.pointer("/alert/entity_id"));
                        e.and_then(|e| e.as_str()).map(str::to_string)
                    });
                if let Some(e) = entity.filter(|e| wanted(e)) {
                    got.entry(e).or_insert(now);
                }
            }
        }
        got
    }))
}
