//! Live micro-batches on a warm engine, timed batch by batch: what `yujing run` does at a
//! steady produce rate, without Kafka or the store.
//!
//! ```sh
//! cargo run --release -p yujing-bench --example live              # 42,000 institutions
//! cargo run --release -p yujing-bench --example live -- 4000 1000  # institutions, batch size
//! ```
//!
//! The engine first takes 12 months of a mixed population in one settle (as `yujing replay`
//! does). Then the next month's reports, with corrections (3%) and re-sends (2%) of the month
//! before and a few bad lines (1%), arrive in batches, each ingested and settled as the
//! service does. The first batch passes the report deadline of the month before, which is
//! then scored against its own cross-section in full; the corrections that follow move that
//! baseline.

use std::time::{Duration, Instant};
use yujing::config::Config;
use yujing::engine::Engine;
use yujing::replay::load_rules;
use yujing_bench::{inputs, next_batch_lines, report_lines};

const MONTHS: usize = 12;

fn main() {
    let arg = |k: usize, default: usize| std::env::args().nth(k).and_then(|v| v.parse().ok()).unwrap_or(default);
    let (n, size) = (arg(1, 42_000), arg(2, 2_000).max(1));
    let config = Config::load_with_env(None, std::iter::empty()).expect("the default config");
    let rules = load_rules(&config).expect("the default rules");
    let history = inputs(&report_lines(n, MONTHS, 8), 1);
    let started = Instant::now();
    let mut engine = Engine::new(&config, rules);
    for batch in history.chunks(16_384) {
        engine.ingest(batch);
    }
    engine.settle().expect("the warm-up settles");
    // As if the store had taken the warm state.
    engine.take_touched_alerts();
    engine.take_dirty_slots();
    engine.take_changed_district_scores();
    println!("warm: {} reports of {n} institutions in {:.1?}", history.len(), started.elapsed());

    let next = inputs(&next_batch_lines(n, MONTHS, 2 * n, (3, 2, 1), 8), history.len() as u64 + 1);
    let mut took: Vec<Duration> = Vec::new();
    for (k, batch) in next.chunks(size).enumerate() {
        let before = engine.stats().clone();
        let started = Instant::now();
        engine.process(batch).expect("a live batch");
        // What the service hands the store after every batch.
        let (alerts, slots) = (engine.take_touched_alerts().len(), engine.take_dirty_slots().len());
        engine.take_changed_district_scores();
        let t = started.elapsed();
        let st = engine.stats();
        println!(
            "batch {k:3}: {:5} inputs in {:6.1} ms; scored {:5}, rebaselined {:6}, {:5} alerts and {:5} slots changed",
            batch.len(),
            t.as_secs_f64() * 1e3,
            st.scored - before.scored,
            st.rebaselined - before.rebaselined,
            alerts,
            slots,
        );
        took.push(t);
    }
    // The first batch passes a report deadline; the rest are the steady state.
    let mut steady: Vec<Duration> = took.iter().skip(1).copied().collect();
    steady.sort();
    if let (Some(first), Some(median), Some(max)) = (took.first(), steady.get(steady.len() / 2), steady.last()) {
        println!(
            "{} batches of {size}: the deadline's batch {:.0} ms; after it, median {:.0} ms, max {:.0} ms",
            took.len(),
            first.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
        );
    }
}
