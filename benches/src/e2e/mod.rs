//! The end-to-end harness: one broker, one data set, every figure from the same run.

mod broker;
mod cli;
mod kafka;
mod latency;
mod table;

use anyhow::{Context, Result, bail};
use kafka::Outgoing;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use yujing_model::DecodeLimits;

/// Options of `yujing-bench e2e`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// A smaller run (4,000 institutions, 10 s of latency): about a minute.
    #[arg(long)]
    pub quick: bool,
    /// Institutions of the fixture set (default 42,000: with 25 months about 1,007,000 reports).
    #[arg(long)]
    pub institutions: Option<usize>,
    /// Months of reports, from 2020-01.
    #[arg(long, default_value_t = 25)]
    pub months: i32,
    /// Partitions of the reports topics.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// The steady produce rate of the latency phase, reports per second.
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    /// Seconds measured in the latency phase (after a warm-up of 10 s).
    #[arg(long)]
    pub latency_secs: Option<u64>,
    /// One report in this many of the latency stream is built to raise an alert.
    #[arg(long, default_value_t = 20)]
    pub trigger_every: u64,
    /// Where the JSON goes.
    #[arg(long, default_value_os_t = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/results")))]
    pub out: PathBuf,
    /// The yujing binary (default: `target/release/yujing`, built first under `cargo run`).
    #[arg(long)]
    pub yujing: Option<PathBuf>,
    /// librdkafka's `fetch.wait.max.ms` for every consumer (the bare ones and `yujing run`'s,
    /// through a `[kafka.client]` config). tansu answers a fetch only when this expires
    /// (librdkafka's default, 500 ms, puts half a second on every hop).
    #[arg(long, default_value_t = 10)]
    pub fetch_wait_ms: u32,
    /// The broker's storage engine (tansu `--storage-engine`). Under sustained load its
    /// SQLite engine stalled group heartbeats for more than 10 s and then panicked here.
    #[arg(long, default_value = "memory://tansu/")]
    pub broker_storage: String,
    /// Keep the working directory (broker data, stores, logs) and print where it is.
    #[arg(long)]
    pub keep: bool,
    /// Measure one phase only, for comparing two builds: `run` (the bare consumer and
    /// `yujing run`, with its memory) or `latency`. Prints its rows and writes no JSON.
    #[arg(long, value_enum)]
    pub only: Option<Phase>,
}

/// A phase of the harness that can be measured alone (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// The bare consumer and `yujing run` over the whole set.
    Run,
    /// Report → alert at a steady rate.
    Latency,
}

/// Every figure of one run.
#[derive(Debug, Default)]
pub struct Figures {
    /// Reports in the data set.
    pub reports: i64,
    /// Fixture generation, seconds.
    pub generate_s: f64,
    /// Producing every report to the broker, seconds.
    pub produce_s: f64,
    /// Bare consumer: first message to last.
    pub bare_rate: f64,
    /// Bare consumer: from its creation (group join included).
    pub bare_rate_total: f64,
    /// Bare consumer: creation to first message, seconds.
    pub bare_join_s: f64,
    /// `yujing run`: first commit to last.
    pub run_rate: f64,
    /// `yujing run`: from process start.
    pub run_rate_total: f64,
    /// `yujing run`: start to first commit, seconds.
    pub run_first_commit_s: f64,
    /// Institution-periods the store held at the end.
    pub run_held: i64,
    /// Peak resident memory of `yujing run`, bytes.
    pub run_peak_rss: u64,
    /// Resident memory at the end, bytes.
    pub run_rss: u64,
    /// `yujing replay` wall time, seconds: the median of [`REPLAY_RUNS`] runs.
    pub replay_s: f64,
    /// Each run's wall time, seconds, in the order run.
    pub replay_runs: Vec<f64>,
    /// `yujing replay`: reports per second.
    pub replay_rate: f64,
    /// The latency phase.
    pub latency: latency::Latency,
}

/// How many times `yujing replay` runs; its figure is their median.
pub const REPLAY_RUNS: usize = 3;

/// The median of some timings (the mean of the middle two for an even count).
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs the harness.
pub fn main(opts: Options) -> Result<()> {
    let institutions = opts.institutions.unwrap_or(if opts.quick { 4_000 } else { 42_000 });
    let latency_secs = opts.latency_secs.unwrap_or(if opts.quick { 10 } else { 30 });
    let bin = cli::binary(opts.yujing.clone())?;
    let work = tempfile::Builder::new().prefix("yujing-e2e-").tempdir()?;
    let dir = work.path().to_path_buf();
    let started = chrono::Utc::now();
    let load_before = load_average();
    let mut f = Figures::default();

    // The data: the fixture generator's output.
    let to = yujing_model::Period::new(2020, 1).context("period")?.add_months(opts.months - 1);
    let fx = dir.join("fixtures");
    eprintln!("generating fixtures: {institutions} institutions, 2020-01..={to}");
    f.generate_s = cli::run_to_end(
        &bin,
        &["fixtures", "--institutions", &institutions.to_string(), "--from", "2020-01", "--to", &to.to_string()],
        &[Path::new("--out"), fx.as_path()],
    )?
    .as_secs_f64();
    let files = yujing::replay::jsonl_files(&fx)?;
    let messages = outgoing(&files, opts.partitions)?;
    f.reports = messages.len() as i64;
    eprintln!("{} reports in {} files", f.reports, files.len());

    kafka::set_fetch_wait(opts.fetch_wait_ms);
    let config = dir.join("bench.toml");
    std::fs::write(&config, format!("[kafka.client]\n\"fetch.wait.max.ms\" = \"{}\"\n", opts.fetch_wait_ms))?;
    let broker = broker::Broker::start(&dir.join("broker"), &opts.broker_storage)?;
    let brokers = broker.addr();
    for (topic, partitions) in [
        ("bench.reports", opts.partitions),
        ("bench.latency", opts.partitions),
        ("yujing.alerts", 1),
        ("yujing.scores", 1),
        ("yujing.reports.dlq", 1),
    ]
    .into_iter()
    .chain(latency::OUTPUT_TOPICS.map(|(_, topic)| (topic, 1)))
    {
        broker.create_topic(topic, partitions)?;
    }

    if opts.only == Some(Phase::Latency) {
        let spec = latency_spec(&opts, latency_secs);
        f.latency = latency::measure(&bin, &config, &brokers, &dir, &messages, &spec)?;
        return only(&f, Phase::Latency, broker, work, opts.keep);
    }

    eprintln!("producing {} reports to bench.reports", f.reports);
    f.produce_s = kafka::produce_all(&brokers, "bench.reports", &messages)?;
    // Every message was acknowledged; tansu's memory engine under-reports high watermarks,
    // so the count to wait for is what was produced.
    let n = f.reports;
    let held = kafka::message_count(&brokers, "bench.reports", opts.partitions)?;
    if held != n {
        eprintln!("note: the broker reports {held} messages in bench.reports, {n} were acknowledged");
    }

    eprintln!("bare consumer");
    let d = kafka::drain(&brokers, "bench-bare", "bench.reports", n, Duration::from_secs(600))?;
    f.bare_join_s = d.first_after.as_secs_f64();
    f.bare_rate = (d.messages - 1) as f64 / d.first_to_last.as_secs_f64();
    f.bare_rate_total = d.messages as f64 / (d.first_after + d.first_to_last).as_secs_f64();

    eprintln!("yujing run");
    throughput_run(&bin, &config, &brokers, n, &dir, &mut f)?;
    if opts.only == Some(Phase::Run) {
        return only(&f, Phase::Run, broker, work, opts.keep);
    }
    if !opts.keep {
        // The store of a million reports takes a gigabyte; the disk may not have two.
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("run.db{ext}")));
        }
    }

    // A single run of a few seconds swings with this shared machine by a fifth or more:
    // the median of three is what the table shows, every run is in the JSON.
    let inputs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    for i in 1..=REPLAY_RUNS {
        eprintln!("yujing replay ({i} of {REPLAY_RUNS})");
        f.replay_runs.push(cli::run_to_end(&bin, &["replay", "--quiet"], &inputs)?.as_secs_f64());
    }
    f.replay_s = median(&f.replay_runs);
    f.replay_rate = f.reports as f64 / f.replay_s;

    eprintln!("latency at {} reports/s for {latency_secs} s after a 10 s warm-up", opts.rate);
    let spec = latency_spec(&opts, latency_secs);
    f.latency = latency::measure(&bin, &config, &brokers, &dir, &messages, &spec)?;
    drop(broker);

    let context = table::Context {
        started,
        quick: opts.quick,
        institutions,
        months: opts.months,
        partitions: opts.partitions,
        load_before,
        load_after: load_average(),
    };
    println!("{}", table::render(&f, &context));
    std::fs::create_dir_all(&opts.out)?;
    let name = format!("e2e{}-{}.json", if opts.quick { "-quick" } else { "" }, started.format("%Y%m%dT%H%MZ"));
    let path = opts.out.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&table::json(&f, &context))? + "\n")?;
    eprintln!("figures written to {}", path.display());
    if opts.keep {
        eprintln!("working directory kept: {}", work.keep().display());
    }
    Ok(())
}

/// Ends a run of one phase (`--only`): stops the broker, prints the phase's rows and keeps
/// the working directory if asked.
fn only(f: &Figures, phase: Phase, broker: broker::Broker, work: tempfile::TempDir, keep: bool) -> Result<()> {
    drop(broker);
    println!("{}", table::render_only(f, phase));
    if keep {
        eprintln!("working directory kept: {}", work.keep().display());
    }
    Ok(())
}

/// The latency phase's stream: `opts.rate` reports/s, measured for `secs` after 10 s.
fn latency_spec(opts: &Options, secs: u64) -> latency::Spec {
    latency::Spec {
        rate: opts.rate,
        warm_up: Duration::from_secs(10),
        measured: Duration::from_secs(secs),
        trigger_every: opts.trigger_every.max(2),
        partitions: opts.partitions,
    }
}

/// The reports of the files as Kafka messages: keyed by institution, partitioned by
/// district as `yujing produce` does.
fn outgoing(files: &[PathBuf], partitions: i32) -> Result<Vec<Outgoing>> {
    let limits = DecodeLimits::default();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
            // The fixture set plants bad lines too (dead letters): those are keyed as far as
            // they can be read, as `yujing produce` does.
            let (key, district) = match yujing_model::decode(line, &limits) {
                Ok(r) => (r.institution_id.to_string(), r.district_code.to_string()),
                Err(_) => {
                    let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
                    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
                    (field("institution_id"), field("district_code"))
                }
            };
            out.push(Outgoing {
                partition: yujing_ingest::kafka::district_partition(&district, partitions),
                key,
                payload: line.to_vec(),
            });
        }
    }
    Ok(out)
}

/// `yujing run` from the first offset of `bench.reports` to the last, then its memory.
fn throughput_run(bin: &Path, config: &Path, brokers: &str, n: i64, dir: &Path, f: &mut Figures) -> Result<()> {
    let t0 = Instant::now();
    let store = (dir.join("run.db"), "bench-run");
    let mut service =
        cli::Service::start(bin, config, brokers, "bench.reports", (&store.0, store.1), &dir.join("run.log"))?;
    let mut first: Option<(Instant, i64)> = None;
    let done = loop {
        service.check_alive().with_context(|| format!("log: {}", dir.join("run.log").display()))?;
        let c = service.committed();
        let now = Instant::now();
        if c > 0 && first.is_none() {
            first = Some((now, c));
        }
        if c >= n {
            break now;
        }
        if t0.elapsed() > Duration::from_secs(1800) {
            bail!("yujing run committed {c} of {n} messages in 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (t1, c1) = first.unwrap_or((t0, 0));
    f.run_first_commit_s = (t1 - t0).as_secs_f64();
    f.run_rate = (n - c1) as f64 / (done - t1).as_secs_f64().max(1e-9);
    f.run_rate_total = n as f64 / (done - t0).as_secs_f64();
    (f.run_peak_rss, f.run_rss) = cli::memory(service.pid())?;
    f.run_held = service.reports_held()?;
    service.stop()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_median_is_the_middle_timing_whatever_the_order() {
        assert_eq!(super::median(&[4.1, 3.2, 3.6]), 3.6);
        assert_eq!(super::median(&[3.0, 5.0, 4.0, 1.0]), 3.5);
        assert!(super::median(&[]).is_nan());
    }
}
