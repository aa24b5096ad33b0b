//! Report → alert latency at a steady produce rate, next to the broker's own produce →
//! consume latency for the same messages.
//!
//! The stream is the fixture set's reports in order, paced at `rate`; every
//! `trigger_every`-th message is instead a report of a new microloan company far over every
//! red line (a made-up id `CQ-MLC-Bnnnnnn`), which raises an alert on the alerts topic for
//! that company. The harness knows when it handed each message to its producer; a bare
//! consumer of the reports topic records when each arrived (the baseline), and a consumer of
//! the alerts topic records when each trigger's first alert arrived. The service has output
//! topics of its own in this phase ([`OUTPUT_TOPICS`]), and the consumer reads from the
//! topic's end: before, it read `yujing.alerts` from its start, through every alert of the
//! earlier phases, and that backlog was measured as the service's latency.

use super::cli::Service;
use super::kafka::{self, Outgoing};
use anyhow::Result;
use rdkafka::producer::Producer;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOPIC: &str = "bench.latency";

/// The service's output topics in this phase, its own: on the shared `yujing.*` topics it
/// read the throughput phase's alerts (hundreds of thousands) as another instance's, which
/// a fresh deployment of one instance does not do.
pub const OUTPUT_TOPICS: [(&str, &str); 3] = [
    ("alerts_topic", "bench.latency.alerts"),
    ("scores_topic", "bench.latency.scores"),
    ("dlq_topic", "bench.latency.dlq"),
];
const TRIGGER_PREFIX: &str = "CQ-MLC-B";

/// What to produce.
pub struct Spec {
    /// Reports per second.
    pub rate: u32,
    /// Produced first and not measured (group joins, first fetches); longer when the
    /// consumers or the service have not caught up by then.
    pub warm_up: Duration,
    /// Produced and measured.
    pub measured: Duration,
    /// One message in this many is a trigger.
    pub trigger_every: u64,
    /// Partitions of the topic.
    pub partitions: i32,
}

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Percentiles {
    /// Samples.
    pub n: usize,
    /// Samples expected but never seen.
    pub missing: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    fn of(mut ms: Vec<f64>, missing: usize) -> Percentiles {
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms.get(((ms.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or(f64::NAN);
        Percentiles { n: ms.len(), missing, p50: at(0.5), p99: at(0.99), max: at(1.0) }
    }
}

/// The latency phase's figures.
#[derive(Debug, Default, Clone)]
pub struct Latency {
    /// The rate asked for.
    pub rate: u32,
    /// The rate achieved over the measured window.
    pub achieved_rate: f64,
    /// Seconds measured.
    pub measured_s: f64,
    /// Seconds of warm-up before the measured window.
    pub warm_up_s: f64,
    /// Whether the service had caught up with the stream when measuring began.
    pub caught_up: bool,
    /// Produce → consume of every measured message by a bare consumer.
    pub bare: Percentiles,
    /// Produce of a trigger → its alert consumed from the phase's alerts topic.
    pub alert: Percentiles,
}

/// A report of a new microloan company far over every red line, in the period and
/// district of `like` and submitted when it was.
fn trigger(n: u64, like: &yujing_model::Report, partitions: i32) -> Outgoing {
    let id = format!("{TRIGGER_PREFIX}{n:06}");
    let line = format!(
        r#"{{"schema_version":1,"report_id":"{id}/{p}/r1","institution_id":"{id}","institution_name":"重庆基准测试{n}小额贷款有限公司","sector":"microloan","district_code":"{d}","period":"{p}","revision":1,"submitted_at":"{t}","metrics":{{"loan_balance":100000000,"npl_balance":60000000,"net_assets":50000000,"largest_borrower_balance":25000000,"borrowings":100000000}}}}"#,
        p = like.period,
        d = like.district_code,
        t = like.submitted_at.to_rfc3339(),
    );
    let partition = yujing_ingest::kafka::district_partition(&like.district_code.to_string(), partitions);
    Outgoing { payload: line.into_bytes(), key: id, partition }
}

/// Runs the phase against a fresh `yujing run`.
pub fn measure(
    bin: &Path,
    config: &Path,
    brokers: &str,
    dir: &Path,
    background: &[Outgoing],
    spec: &Spec,
) -> Result<Latency> {
    // Room for a warm-up of up to a minute; the measured window starts once every consumer
    // is live and caught up (see below) and the warm-up time has passed.
    let measured_n = (spec.measured.as_secs_f64() * f64::from(spec.rate)) as u64;
    let total = measured_n + 60 * u64::from(spec.rate);
    let limits = yujing_model::DecodeLimits::default();
    let mut stream: Vec<Outgoing> = Vec::with_capacity(total as usize);
    let mut bg = background.iter().cycle();
    let mut last = None;
    for seq in 0..total {
        if seq % spec.trigger_every == spec.trigger_every - 1
            && let Some(like) = &last
        {
            stream.push(trigger(seq, like, spec.partitions));
            continue;
        }
        let m = bg.next().expect("a non-empty background");
        last = yujing_model::decode(&m.payload, &limits).ok();
        stream.push(Outgoing { payload: m.payload.clone(), key: m.key.clone(), partition: m.partition });
    }

    // The throughput phase's configuration, with the output topics of this phase.
    let mut toml = String::from("[kafka]\n");
    for (key, topic) in OUTPUT_TOPICS {
        toml.push_str(&format!("{key} = \"{topic}\"\n"));
    }
    toml.push_str(&std::fs::read_to_string(config)?);
    let config = dir.join("latency.toml");
    std::fs::write(&config, toml)?;
    let service =
        Service::start(bin, &config, brokers, TOPIC, (&dir.join("latency.db"), "bench-lat"), &dir.join("lat.log"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (bare_n, alerts_n) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let bare = kafka::spawn_seq_consumer(brokers, "bench-lat-bare", TOPIC, stop.clone(), bare_n.clone())?;
    let wanted = |e: &str| e.starts_with(TRIGGER_PREFIX);
    let alerts = kafka::spawn_alert_consumer(
        brokers,
        "bench-lat-alerts",
        OUTPUT_TOPICS[0].1,
        wanted,
        stop.clone(),
        alerts_n.clone(),
    )?;

    let producer = kafka::live_producer(brokers)?;
    let mut sent = Vec::with_capacity(stream.len());
    let t0 = Instant::now();
    let mut warm: Option<u64> = None;
    let mut caught_up = false;
    let mut end = stream.len() as u64;
    for (seq, m) in stream.iter().enumerate() {
        let seq64 = seq as u64;
        if seq64 >= end {
            break;
        }
        // Warm until the bare consumer and the alert consumer receive and the service has
        // caught up with what was produced a second ago: then measure `measured_n` more.
        if warm.is_none() && seq % 200 == 0 && t0.elapsed() >= spec.warm_up {
            let behind = seq64.saturating_sub(u64::from(spec.rate));
            let live = bare_n.load(Ordering::Relaxed) >= behind
                && alerts_n.load(Ordering::Relaxed) > 0
                && service.committed() as u64 >= behind;
            // A service that cannot keep up is measured anyway (its latency grows).
            caught_up = live;
            if live || t0.elapsed() >= spec.warm_up + Duration::from_secs(40) {
                warm = Some(seq64);
                end = seq64 + measured_n;
            }
        }
        let due = t0 + Duration::from_secs_f64(seq as f64 / f64::from(spec.rate));
        pace_until(&producer, due);
        sent.push(Instant::now());
        kafka::send(&producer, TOPIC, m, Some(seq64))?;
        producer.poll(Duration::ZERO);
    }
    let total = sent.len() as u64;
    let warm = warm.unwrap_or(total);
    let produced_in = sent.last().copied().unwrap_or(t0) - sent.get(warm as usize).copied().unwrap_or(t0);
    producer.flush(Duration::from_secs(60))?;
    kafka::check_delivered(&producer, total)?;
    // Until the service has committed everything, then a moment for the last alerts.
    let deadline = Instant::now() + Duration::from_secs(120);
    while service.committed() < total as i64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let bare = bare.join().map_err(|_| anyhow::anyhow!("the bare consumer panicked"))?;
    let alerts = alerts.join().map_err(|_| anyhow::anyhow!("the alert consumer panicked"))?;
    service.stop()?;

    let ms = |a: Instant, b: Instant| a.saturating_duration_since(b).as_secs_f64() * 1e3;
    let measured = warm..total;
    let (mut bare_ms, mut bare_missing) = (Vec::new(), 0);
    for seq in measured.clone() {
        match bare.get(&seq) {
            Some(t) => bare_ms.push(ms(*t, sent[seq as usize])),
            None => bare_missing += 1,
        }
    }
    let (mut alert_ms, mut alert_missing) = (Vec::new(), 0);
    for seq in measured.filter(|s| stream[*s as usize].key.starts_with(TRIGGER_PREFIX)) {
        match alerts.get(&stream[seq as usize].key) {
            Some(t) => alert_ms.push(ms(*t, sent[seq as usize])),
            None => alert_missing += 1,
        }
    }
    Ok(Latency {
        rate: spec.rate,
        achieved_rate: (total - warm - 1) as f64 / produced_in.as_secs_f64().max(1e-9),
        measured_s: spec.measured.as_secs_f64(),
        warm_up_s: (sent.get(warm as usize).copied().unwrap_or(t0) - t0).as_secs_f64(),
        caught_up,
        bare: Percentiles::of(bare_ms, bare_missing),
        alert: Percentiles::of(alert_ms, alert_missing),
    })
}

/// Waits until `due`, serving the producer's delivery reports meanwhile. At 2,000 records/s
/// the wait is half a millisecond: librdkafka's poll counts in whole milliseconds, so a
/// shorter timeout returned at once and the loop spun a whole core, which the broker and the
/// service measured then lacked (on 2 cores). A wait under a millisecond sleeps instead.
fn pace_until(producer: &kafka::Prod, due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left >= Duration::from_millis(1) {
            producer.poll(Duration::from_millis(1));
        } else {
            std::thread::sleep(left);
        }
    }
}
