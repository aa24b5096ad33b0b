//! `yujing`: early warning of financial risk for Chongqing's institutions.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use yujing::config::Config;
use yujing::fixtures::{FixtureSpec, generate, write_dir};
use yujing::replay::{ReplayOptions, export, load_rules, replay};
use yujing::report::{Style, summary};
use yujing_model::Period;

/// jemalloc, as polars recommends: the engine allocates and frees many small objects from
/// both cores (decode, scoring, derivation), where glibc's allocator spent a fifth of the
/// time and kept freed memory fragmented.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The environment variable jemalloc reads its options from (this build's prefix is `_rjem_`).
const JEMALLOC_CONF_VAR: &str = "_RJEM_MALLOC_CONF";

/// jemalloc's options, unless the environment gives its own: pages freed and left unused
/// for a second go back to the kernel, instead of after ten (jemalloc's default). A settle
/// frees hundreds of megabytes of short-lived scores, frames and series; kept for ten
/// seconds they stood on top of the state held. `yujing replay -q` of 1M reports, three
/// runs each, alternated: peak RSS 854–881 → 784–809 MiB, wall and CPU time unchanged.
const JEMALLOC_CONF: &str = "dirty_decay_ms:1000";

/// jemalloc reads its options once, before `main`: so the process executes itself again
/// (same pid, arguments and descriptors) with [`JEMALLOC_CONF`] in the environment. An
/// environment that sets `_RJEM_MALLOC_CONF`, even to nothing, is left as it is. Returns
/// only when executing failed; the process then runs with jemalloc's defaults.
fn tune_allocator() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(JEMALLOC_CONF_VAR).is_some() {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Some(e),
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    Some(std::process::Command::new(&exe).arg0(arg0).args(args).env(JEMALLOC_CONF_VAR, JEMALLOC_CONF).exec())
}

/// 渝警 yujing — scores Chongqing's supervised financial institutions from their reports and
/// raises graded early-warning alerts (blue / yellow / orange / red), each naming the
/// response mechanism the regulator must start.
#[derive(Parser)]
#[command(name = "yujing", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay the sample reports through the whole pipeline and serve the web page, the API
    /// and /metrics on 127.0.0.1 until Ctrl-C (--no-serve: print the district risk table and
    /// the open red and orange alerts, and exit). Needs no Kafka.
    Demo {
        /// Directory of JSONL reports; generated there when it holds none.
        #[arg(long, default_value = "fixtures/sample")]
        sample: PathBuf,
        /// Configuration file (defaults are embedded).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the risk table and exit instead of serving.
        #[arg(long)]
        no_serve: bool,
        /// Address of the web page and the API (overrides serve.listen).
        #[arg(long)]
        listen: Option<String>,
        /// Address of /metrics (overrides serve.metrics_listen).
        #[arg(long)]
        metrics_listen: Option<String>,
        /// Pause between batches so the map fills in as if live, e.g. 200ms.
        #[arg(long, value_parser = humantime::parse_duration)]
        pace: Option<std::time::Duration>,
        /// Reports per batch (default: the config's; about a month's with --pace).
        #[arg(long)]
        batch_size: Option<usize>,
    },
    /// Print the SHA-256 (hex) of an API token, for [[serve.tokens]]; reads the token from
    /// standard input when it is not given.
    HashToken {
        /// The token.
        token: Option<String>,
    },
    /// Run JSONL report files through the pipeline to the end and write the results.
    Replay {
        /// JSONL files of reports v1, read in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Configuration file (defaults are embedded).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write every alert in its final state here (JSONL).
        #[arg(long)]
        alerts_out: Option<PathBuf>,
        /// Write scores here: CSV, or Parquet when the name ends in .parquet.
        #[arg(long)]
        scores_out: Option<PathBuf>,
        /// Write dead letters (rejected inputs with their reason) here (JSONL).
        #[arg(long)]
        dlq_out: Option<PathBuf>,
        /// Keep state in this SQLite store: resume from it after a stop, commit every batch.
        #[arg(long)]
        store: Option<PathBuf>,
        /// No progress bar and no summary.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Write a store's current alerts and scores in the formats of `replay` (works while
    /// the service runs).
    Export {
        /// The SQLite store.
        #[arg(long)]
        store: PathBuf,
        /// Configuration file (defaults are embedded).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write every alert in its current state here (JSONL).
        #[arg(long)]
        alerts_out: Option<PathBuf>,
        /// Write scores here: CSV, or Parquet when the name ends in .parquet.
        #[arg(long)]
        scores_out: Option<PathBuf>,
    },
    /// Generate a deterministic, realistic set of reports (with planted trouble).
    Fixtures {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Random seed: the same seed gives the same files.
        #[arg(long, default_value_t = FixtureSpec::default().seed)]
        seed: u64,
        /// Number of institutions.
        #[arg(long, default_value_t = FixtureSpec::default().institutions)]
        institutions: usize,
        /// First period, YYYY-MM.
        #[arg(long, default_value_t = FixtureSpec::default().from)]
        from: Period,
        /// Last period, YYYY-MM.
        #[arg(long, default_value_t = FixtureSpec::default().to)]
        to: Period,
        /// Months of visible deterioration before events that come with warning, MIN-MAX
        /// (banks 3 to 4 more); the committed sample's are 3-8.
        #[arg(long, default_value = "3-8", value_parser = parse_months)]
        warning_months: (u32, u32),
    },
    /// Run the service: consume reports from Kafka, keep state in the store, publish alerts.
    Run {
        /// Configuration file (defaults are embedded; YUJING__ variables override).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Kafka bootstrap brokers (overrides kafka.brokers).
        #[arg(long)]
        brokers: Option<String>,
        /// The reports topic (overrides kafka.reports_topic).
        #[arg(long)]
        topic: Option<String>,
        /// The consumer group (overrides kafka.group).
        #[arg(long)]
        group: Option<String>,
        /// The SQLite store (overrides store.path).
        #[arg(long)]
        store: Option<PathBuf>,
        /// Address of the API, /healthz and /readyz (overrides serve.listen).
        #[arg(long)]
        listen: Option<String>,
        /// Address of /metrics (overrides serve.metrics_listen).
        #[arg(long)]
        metrics_listen: Option<String>,
        /// This instance's stable id in the consumer group (overrides kafka.instance_id):
        /// a restart takes its partitions back at once.
        #[arg(long)]
        instance_id: Option<String>,
    },
    /// Publish JSONL reports to Kafka, keyed by institution and partitioned by district.
    Produce {
        /// JSONL files of reports.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Kafka bootstrap brokers.
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        /// The topic.
        #[arg(long, default_value = "yujing.reports")]
        topic: String,
        /// At most this many reports a second.
        #[arg(long)]
        rate: Option<u32>,
    },
    /// Replay report files walk-forward and score the warnings against the ground truth:
    /// hit rate, false alarms, noise-to-signal ratio, AUROC and lead time, per rule and sector.
    Backtest {
        /// JSONL files of reports v1, in arrival order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The ground truth: events.csv (institution_id,period,kind).
        #[arg(long)]
        events: PathBuf,
        /// Months ahead an event must fall to count as warned.
        #[arg(long, default_value_t = 6)]
        horizon: u32,
        /// Preference θ between missed events (θ) and false alarms (1−θ), for the loss column.
        #[arg(long, default_value_t = 0.5)]
        theta: f64,
        /// Judge only periods from this one (YYYY-MM).
        #[arg(long)]
        from: Option<Period>,
        /// Judge only periods up to this one (YYYY-MM).
        #[arg(long)]
        to: Option<Period>,
        /// Write the report (README.md, figures.csv, observations.csv, roc.svg,
        /// lead-times.svg) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also judge "any of these rules open" (comma-separated ids, or @FILE such as the
        /// chosen-rules.txt that calibrate writes) as the signal `chosen-rules`.
        #[arg(long)]
        chosen_rules: Option<String>,
        /// Configuration file (defaults are embedded).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Choose grade lines, rule lines and a probability model that minimise the
    /// preference-weighted loss on a training window; judge them on the later window and
    /// write a suggested configuration with the before/after figures.
    Calibrate {
        /// JSONL files of reports v1, in arrival order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The ground truth: events.csv (institution_id,period,kind).
        #[arg(long)]
        events: PathBuf,
        /// The last period of the training window (YYYY-MM); the test window follows.
        #[arg(long)]
        train_until: Period,
        /// Preference θ: the weight of a missed event (a false alarm weighs 1−θ).
        #[arg(long, default_value_t = 0.5)]
        theta: f64,
        /// Months ahead an event must fall to count as warned.
        #[arg(long, default_value_t = 6)]
        horizon: u32,
        /// The probability at which the fitted model flags an institution.
        #[arg(long, default_value_t = 0.3)]
        flag_at: f64,
        /// The highest noise-to-signal ratio the chosen rules may have together.
        #[arg(long, default_value_t = 0.3)]
        max_nsr: f64,
        /// Output directory: suggested.toml, rules.toml, CALIBRATION.md, before/, after/.
        #[arg(long)]
        out: PathBuf,
        /// Configuration file to start from (defaults are embedded).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List each institution's score, grade and calibrated probability of a distress event
    /// within the horizon, riskiest first (needs a [probability] section in the config, as
    /// `yujing calibrate` writes).
    Probability {
        /// JSONL report files (or use --store).
        files: Vec<PathBuf>,
        /// Read the state from this SQLite store instead of files.
        #[arg(long)]
        store: Option<PathBuf>,
        /// The period to show (default: the latest whose reports are all due).
        #[arg(long)]
        period: Option<Period>,
        /// Show this many institutions.
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Write every institution as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Configuration file with a [probability] section.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Project a stress scenario onto the latest period: rescore, re-alert and compare with
    /// the baseline, without touching live state.
    Stress {
        /// The scenario file (TOML, see deploy/scenarios/).
        #[arg(long)]
        scenario: PathBuf,
        /// JSONL report files (or use --store).
        files: Vec<PathBuf>,
        /// Read the winning reports from this SQLite store instead of files.
        #[arg(long)]
        store: Option<PathBuf>,
        /// The period to shock (default: the latest).
        #[arg(long)]
        period: Option<Period>,
        /// Also write the projection as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Configuration file (defaults are embedded).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file or a rule pack; errors name the line.
    CheckConfig {
        /// A config TOML, or a rule pack (a file of [[rule]] tables).
        file: PathBuf,
    },
    /// Print the effective configuration (defaults, file, environment) as TOML.
    Config {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("YUJING_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

fn main() {
    let not_tuned = tune_allocator();
    init_tracing();
    if let Some(e) = not_tuned {
        tracing::warn!(error = %e, conf = JEMALLOC_CONF, "cannot execute again with these allocator options; running with jemalloc's defaults");
    }
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Replay { files, config, alerts_out, scores_out, dlq_out, store, quiet } => {
            let config = Config::load(config.as_deref())?;
            let rules = load_rules(&config)?;
            let progress = !quiet && std::io::stderr().is_terminal();
            let opts = ReplayOptions { files, alerts_out, scores_out, dlq_out, progress, store };
            let r = replay(&config, rules, &opts)?;
            if !quiet {
                eprint!("{}", summary(&r, Style::detect()));
            }
            // The process exits next: freeing millions of small allocations one by one would
            // take seconds (about 8% of a replay of 1M reports) and return nothing to anyone.
            std::mem::forget(r);
            Ok(())
        }
        Command::Demo { sample, config, no_serve, listen, metrics_listen, pace, batch_size } => {
            let opts = yujing::demo::DemoOptions {
                sample,
                config,
                serve: !no_serve,
                listen,
                metrics_listen,
                pace,
                batch_size,
            };
            yujing::demo::demo(&opts)
        }
        Command::HashToken { token } => {
            let token = match token {
                Some(t) => t,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if token.is_empty() {
                bail!("the token is empty");
            }
            println!("{}", yujing_serve::hash_token(&token));
            Ok(())
        }
        Command::Export { store, config, alerts_out, scores_out } => {
            let config = Config::load(config.as_deref())?;
            let rules = load_rules(&config)?;
            let e = export(&config, rules, &store, alerts_out.as_deref(), scores_out.as_deref())?;
            eprintln!("{}: {} institution-periods, {} alerts", store.display(), e.ledger().len(), e.alerts().count());
            Ok(())
        }
        Command::Fixtures { out, seed, institutions, from, to, warning_months } => {
            if from > to {
                bail!("--from {from} is after --to {to}");
            }
            let spec = FixtureSpec { seed, institutions, from, to };
            let bar = progress_bar();
            bar.set_message("generating");
            let precursors =
                yujing::fixtures::Precursors { min_months: warning_months.0, max_months: warning_months.1 };
            let set = if precursors == yujing::fixtures::Precursors::default() {
                generate(&spec)
            } else {
                yujing::fixtures::generate_with(&spec, precursors)
            };
            let written = write_dir(&set, &out, Some(&bar)).with_context(|| format!("writing {}", out.display()))?;
            bar.finish_and_clear();
            eprintln!(
                "{} report lines for {} institutions written to {}",
                set.lines.len(),
                set.institutions.len(),
                out.display()
            );
            let _ = written;
            Ok(())
        }
        Command::Backtest { files, events, horizon, theta, from, to, out, chosen_rules, config } => {
            let config = Config::load(config.as_deref())?;
            let rules = load_rules(&config)?;
            let window = window(from, to);
            let progress = std::io::stderr().is_terminal();
            let chosen_rules = match chosen_rules {
                Some(s) => {
                    let list = match s.strip_prefix('@') {
                        Some(f) => std::fs::read_to_string(f).with_context(|| format!("cannot read {f}"))?,
                        None => s,
                    };
                    Some(list.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect())
                }
                None => None,
            };
            let opts = yujing::backtest::BacktestOptions {
                files,
                events,
                horizon,
                theta,
                window,
                out,
                progress,
                chosen_rules,
            };
            let bt = yujing::backtest::run(&config, rules, &opts)?;
            print!("{}", yujing::backtest::report::markdown(&bt));
            Ok(())
        }
        Command::Calibrate { files, events, train_until, theta, horizon, flag_at, max_nsr, out, config } => {
            let config = Config::load(config.as_deref())?;
            let rules = load_rules(&config)?;
            let progress = std::io::stderr().is_terminal();
            let opts = yujing::backtest::calibrate::CalibrateOptions {
                files,
                events: events.clone(),
                horizon,
                theta,
                train_until,
                out: out.clone(),
                flag_at,
                max_nsr,
                progress,
            };
            let cal = yujing::backtest::calibrate::run(&config, rules, &opts)?;
            let events = yujing::backtest::load_events(&events)?;
            print!("{}", yujing::backtest::calibrate::markdown(&cal, &opts, &events));
            eprintln!("suggested configuration written to {}", out.join("suggested.toml").display());
            Ok(())
        }
        Command::Probability { files, store, period, top, csv, config } => {
            let config = Config::load(config.as_deref())?;
            let Some(model) = config.probability.clone() else {
                bail!(
                    "the configuration has no [probability] section: run `yujing calibrate` and pass its suggested.toml"
                );
            };
            let rules = load_rules(&config)?;
            let engine = match (store, files.is_empty()) {
                (Some(store), true) => export(&config, rules, &store, None, None)?,
                (None, false) => replay(&config, rules, &ReplayOptions { files, ..Default::default() })?.engine,
                _ => bail!("give either report files or --store"),
            };
            let latest = engine.institution_scores().iter().map(|s| s.period).max();
            let Some(period) = period.or(engine.complete_through().filter(|p| Some(*p) <= latest)).or(latest) else {
                bail!("no scored period");
            };
            let table = yujing::backtest::probability::csv(&model, &engine, period);
            if let Some(path) = csv {
                std::fs::write(&path, &table).with_context(|| format!("cannot write {}", path.display()))?;
            }
            println!("{period}: probability of a distress event within {} months", model.horizon);
            for line in table.lines().take(top + 1) {
                let c: Vec<&str> = line.split(',').collect();
                println!("{:<14} {:<13} {:<8} {:>7} {:<7} {:>8}", c[0], c[1], c[2], c[4], c[5], c[6]);
            }
            Ok(())
        }
        Command::Stress { scenario, files, store, period, json, config } => {
            stress(&scenario, &files, store.as_deref(), period, json.as_deref(), config.as_deref())
        }
        Command::CheckConfig { file } => check_config(&file),
        Command::Run { config, brokers, topic, group, store, listen, metrics_listen, instance_id } => {
            let mut config = Config::load(config.as_deref())?;
            if let Some(b) = brokers {
                config.kafka.brokers = b;
            }
            if let Some(t) = topic {
                config.kafka.reports_topic = t;
            }
            if let Some(g) = group {
                config.kafka.group = g;
            }
            if let Some(s) = store {
                config.store.path = s;
            }
            if let Some(l) = listen {
                config.serve.listen = l;
            }
            if let Some(l) = metrics_listen {
                config.serve.metrics_listen = l;
            }
            if let Some(i) = instance_id {
                config.kafka.instance_id = i;
            }
            let rules = load_rules(&config)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(yujing::serve::run_service(&config, rules))
        }
        Command::Produce { files, brokers, topic, rate } => produce(&files, &brokers, &topic, rate),
        Command::Config { config } => {
            print!("{}", Config::load(config.as_deref())?.to_toml());
            Ok(())
        }
    }
}

fn stress(
    scenario: &Path,
    files: &[PathBuf],
    store: Option<&Path>,
    period: Option<Period>,
    json: Option<&Path>,
    config: Option<&Path>,
) -> Result<()> {
    let config = Config::load(config)?;
    let rules = load_rules(&config)?;
    let source = std::fs::read_to_string(scenario).with_context(|| format!("cannot read {}", scenario.display()))?;
    let scenario = yujing_score::stress::Scenario::from_toml_str(&source)
        .map_err(|e| anyhow::anyhow!("{}: {e}", scenario.display()))?;
    let engine = match (store, files.is_empty()) {
        (Some(store), true) => export(&config, rules.clone(), store, None, None)?,
        (None, false) => {
            let opts = ReplayOptions { files: files.to_vec(), ..Default::default() };
            replay(&config, rules.clone(), &opts)?.engine
        }
        _ => bail!("give either report files or --store"),
    };
    let reports = yujing::stress::winning_reports(&engine);
    let projection = yujing::stress::project(&config, &rules, &reports, &scenario, period)?;
    print!("{}", yujing::stress::render(&projection));
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&projection)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Parses `MIN-MAX` months.
fn parse_months(s: &str) -> std::result::Result<(u32, u32), String> {
    let (a, b) = s.split_once('-').ok_or_else(|| format!("{s}: expected MIN-MAX, e.g. 6-12"))?;
    let (a, b): (u32, u32) =
        (a.trim().parse().map_err(|e| format!("{a}: {e}"))?, b.trim().parse().map_err(|e| format!("{b}: {e}"))?);
    if a == 0 || a > b {
        return Err(format!("{s}: need 1 <= MIN <= MAX"));
    }
    Ok((a, b))
}

/// A judged window from optional ends.
fn window(from: Option<Period>, to: Option<Period>) -> Option<(Period, Period)> {
    match (from, to) {
        (None, None) => None,
        (a, b) => Some((a.unwrap_or(Period::from_index(i32::MIN)), b.unwrap_or(Period::from_index(i32::MAX)))),
    }
}

fn produce(files: &[PathBuf], brokers: &str, topic: &str, rate: Option<u32>) -> Result<()> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for f in files {
        let text = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        lines
            .extend(text.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).map(<[u8]>::to_vec));
    }
    let total = lines.len() as u64;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let delivered = runtime.block_on(async {
        let sink =
            yujing_ingest::kafka::KafkaProducerConfig { brokers: brokers.to_string(), ..Default::default() }.build()?;
        let n = yujing_ingest::kafka::produce_reports(&sink, topic, lines.into_iter(), rate, |n| bar.set_position(n))
            .await?;
        sink.flush(std::time::Duration::from_secs(30))?;
        anyhow::Ok(n)
    })?;
    bar.finish_and_clear();
    eprintln!("{delivered} of {total} reports delivered to {topic}");
    Ok(())
}

fn progress_bar() -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    }
}

fn check_config(file: &Path) -> Result<()> {
    let source = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let is_rule_pack = toml::from_str::<toml::Table>(&source).map(|t| t.contains_key("rule")).unwrap_or(false);
    if is_rule_pack {
        let pack =
            yujing_alert::RulePack::from_toml_str(&source).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        println!("{}: rule pack OK, {} rules", file.display(), pack.rules().len());
    } else {
        let config = Config::load(Some(file))?;
        load_rules(&config)?;
        println!("{}: config OK", file.display());
    }
    Ok(())
}
