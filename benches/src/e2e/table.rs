//! The run's table (Markdown, as pasted into the README) and its JSON.

use super::latency::{Latency, Percentiles};
use super::{Figures, Phase};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// Where and how the run ran.
pub struct Context {
    /// Start (UTC).
    pub started: chrono::DateTime<chrono::Utc>,
    /// A `--quick` run.
    pub quick: bool,
    /// Institutions of the fixture set.
    pub institutions: usize,
    /// Months of the fixture set.
    pub months: i32,
    /// Partitions of the reports topics.
    pub partitions: i32,
    /// `/proc/loadavg` before.
    pub load_before: String,
    /// `/proc/loadavg` after.
    pub load_after: String,
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn rate(r: f64) -> String {
    if r >= 1e6 { format!("{:.2} M/s", r / 1e6) } else { format!("{:.1} k/s", r / 1e3) }
}

fn verdict(ok_floor: bool, ok_goal: bool) -> &'static str {
    match (ok_floor, ok_goal) {
        (_, true) => "goal met",
        (true, false) => "floor met, goal missed",
        (false, _) => "**floor missed**",
    }
}

fn lat(p: &Percentiles) -> String {
    format!("{:.1} / {:.1} / {:.1} ms (n = {}{})", p.p50, p.p99, p.max, p.n, missing(p))
}

fn missing(p: &Percentiles) -> String {
    if p.missing > 0 { format!(", {} missing", p.missing) } else { String::new() }
}

/// The table, with the machine and the verdict against the performance issue's targets.
pub fn render(f: &Figures, c: &Context) -> String {
    let l = &f.latency;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "yujing e2e{} — {} — {} × {} — {} reports ({} institutions × {} months), {} partitions — load {} → {}\n",
        if c.quick { " (quick)" } else { "" },
        c.started.format("%Y-%m-%d %H:%M UTC"),
        cores(),
        cpu_model(),
        f.reports,
        c.institutions,
        c.months,
        c.partitions,
        c.load_before,
        c.load_after,
    );
    let _ = writeln!(s, "| measure | result | target (floor / goal) | verdict |");
    let _ = writeln!(s, "|---|---:|---|---|");
    s.push_str(&run_rows(f));
    let _ = writeln!(
        s,
        "| `yujing replay` of the {} reports ({:.1} s, the median of {}: {}) | {} | 300k/s / 1M/s | {} |",
        f.reports,
        f.replay_s,
        f.replay_runs.len(),
        f.replay_runs.iter().map(|s| format!("{s:.1} s")).collect::<Vec<_>>().join(", "),
        rate(f.replay_rate),
        verdict(f.replay_rate >= 3e5, f.replay_rate >= 1e6)
    );
    s.push_str(&latency_rows(l));
    s.push_str(&memory_row(f));
    let _ = write!(
        s,
        "\n(fixtures generated in {:.1} s; {} reports produced in {:.1} s = {})",
        f.generate_s,
        f.reports,
        f.produce_s,
        rate(f.reports as f64 / f.produce_s)
    );
    s
}

/// The rows of one phase measured alone (`--only`), with the table's header.
pub fn render_only(f: &Figures, phase: Phase) -> String {
    let rows = match phase {
        Phase::Run => run_rows(f) + &memory_row(f),
        Phase::Latency => latency_rows(&f.latency),
    };
    format!("| measure | result | target (floor / goal) | verdict |\n|---|---:|---|---|\n{rows}")
}

/// The rows of the bare consumer and `yujing run`.
fn run_rows(f: &Figures) -> String {
    let ratio = f.run_rate / f.bare_rate;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| bare rdkafka consumer, first → last message | {} | the limit | (join {:.1} s; {} from its start) |",
        rate(f.bare_rate),
        f.bare_join_s,
        rate(f.bare_rate_total)
    );
    let _ = writeln!(
        s,
        "| `yujing run`, first → last committed offset, store included | {} = {:.0}% of bare | 80% / 95% | {} |",
        rate(f.run_rate),
        ratio * 100.0,
        verdict(ratio >= 0.80, ratio >= 0.95)
    );
    let _ = writeln!(
        s,
        "| `yujing run` from process start (join, first commit at {:.1} s) | {} | | |",
        f.run_first_commit_s,
        rate(f.run_rate_total)
    );
    s
}

/// The row of `yujing run`'s memory.
fn memory_row(f: &Figures) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| peak RSS of `yujing run` holding {} institution-periods | {:.0} MiB (at the end {:.0} MiB) | 1024 / 400 MiB | {} |",
        f.run_held,
        mib(f.run_peak_rss),
        mib(f.run_rss),
        verdict(mib(f.run_peak_rss) <= 1024.0, mib(f.run_peak_rss) <= 400.0)
    );
    s
}

/// The rows of the latency phase: the bare consumer's hop and report → alert.
fn latency_rows(l: &Latency) -> String {
    let gap = l.alert.p99 - l.bare.p99;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| produce → consume, bare consumer, p50 / p99 / max at {:.0}/s | {} | the baseline | (after {:.0} s of warm-up{}) |",
        l.achieved_rate,
        lat(&l.bare),
        l.warm_up_s,
        if l.caught_up { "" } else { "; **the service had not caught up**" }
    );
    let _ = writeln!(
        s,
        "| report → alert on the alerts topic, p50 / p99 / max | {} | p99 ≤ 100 ms / ≤ bare p99 + 20 ms ({:+.1} ms) | {} |",
        lat(&l.alert),
        gap,
        verdict(l.alert.p99 <= 100.0 && l.alert.missing == 0, gap <= 20.0 && l.alert.missing == 0)
    );
    s
}

fn pct(p: &Percentiles) -> Value {
    json!({"n": p.n, "missing": p.missing, "p50_ms": p.p50, "p99_ms": p.p99, "max_ms": p.max})
}

/// The figures as JSON.
pub fn json(f: &Figures, c: &Context) -> Value {
    let l = &f.latency;
    json!({
        "started": c.started.to_rfc3339(),
        "machine": {"cores": cores(), "cpu": cpu_model(), "load_before": c.load_before, "load_after": c.load_after},
        "data": {"quick": c.quick, "institutions": c.institutions, "months": c.months, "reports": f.reports,
                 "partitions": c.partitions, "generate_s": f.generate_s, "produce_s": f.produce_s},
        "bare_consumer": {"reports_per_s": f.bare_rate, "reports_per_s_from_start": f.bare_rate_total,
                          "join_s": f.bare_join_s},
        "run": {"reports_per_s": f.run_rate, "reports_per_s_from_start": f.run_rate_total,
                "of_bare": f.run_rate / f.bare_rate, "first_commit_s": f.run_first_commit_s,
                "institution_periods_held": f.run_held, "peak_rss_bytes": f.run_peak_rss, "rss_bytes": f.run_rss},
        "replay": {"seconds": f.replay_s, "reports_per_s": f.replay_rate, "runs_s": f.replay_runs},
        "latency": {"rate": l.rate, "achieved_rate": l.achieved_rate, "measured_s": l.measured_s,
                    "warm_up_s": l.warm_up_s, "service_caught_up": l.caught_up,
                    "bare_produce_to_consume": pct(&l.bare), "report_to_alert": pct(&l.alert)},
    })
}
