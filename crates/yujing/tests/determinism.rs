//! The same reports give the same scores and alerts whatever the batch boundaries,
//! duplicates or arrival order within a period (DESIGN §7).

mod common;

use common::*;
use polars::prelude::SerWriter;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::collections::BTreeMap;
use yujing::engine::Engine;
use yujing::fixtures::{FixtureSpec, generate};
use yujing::output::scores_frame;

fn sample() -> Vec<String> {
    let spec =
        FixtureSpec { seed: 7, institutions: 120, from: "2020-01".parse().unwrap(), to: "2020-12".parse().unwrap() };
    generate(&spec).lines
}

fn outcome(e: &Engine) -> (String, Vec<String>) {
    let mut df = scores_frame(e).unwrap();
    let mut csv = Vec::new();
    polars::prelude::CsvWriter::new(&mut csv).finish(&mut df).unwrap();
    (String::from_utf8(csv).unwrap(), alerts_json(e))
}

/// The period a line reports on, if it parses that far.
fn period_of(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("period")?.as_str().map(str::to_string)
}

#[test]
fn batch_boundaries_duplicates_and_order_within_a_period_change_nothing() {
    let lines = sample();
    let base = run(&lines, 500);
    let expected = outcome(&base);
    assert!(expected.1.len() > 10, "the sample raises alerts");
    assert!(expected.0.lines().count() > 1000);

    // Other batch sizes.
    assert!(outcome(&run(&lines, 37)).eq(&expected), "batch size 37");
    // Batches small enough that each period's aggregates are kept up to date row by row
    // give the same aggregates, their top contributors and district sums included.
    let small = run(&lines, 7);
    assert!(outcome(&small).eq(&expected), "batch size 7");
    assert!(small.stats().aggregated_in_part > 0, "{:?}", small.stats());
    assert_eq!(small.aggregates().collect::<Vec<_>>(), base.aggregates().collect::<Vec<_>>());
    for a in base.aggregates().filter(|a| a.level == yujing_model::Level::District) {
        let code: u32 = a.entity_id.parse().unwrap();
        assert_eq!(small.district_sums(code, a.sector, a.period), base.district_sums(code, a.sector, a.period));
    }
    assert!(outcome(&run(&lines, 4096)).eq(&expected), "batch size 4096");

    // Ingested in batches and settled once at the end, as `yujing replay` does.
    let mut bulk = engine();
    for chunk in inputs(&lines).chunks(300) {
        bulk.ingest(chunk);
    }
    assert!(bulk.alerts().next().is_none(), "nothing is derived before settle");
    assert!(!bulk.settle().unwrap().is_empty());
    assert!(outcome(&bulk).eq(&expected), "ingest all, settle once");

    // The same input twice in one run.
    let twice: Vec<String> = lines.iter().chain(lines.iter()).cloned().collect();
    assert!(outcome(&run(&twice, 333)).eq(&expected), "input twice");

    // Every line duplicated in place.
    let doubled: Vec<String> = lines.iter().flat_map(|l| [l.clone(), l.clone()]).collect();
    let e = run(&doubled, 257);
    assert!(outcome(&e).eq(&expected), "every line duplicated");
    assert!(e.stats().duplicates >= base.stats().accepted);

    // Lines of each period shuffled (periods keep their order of first appearance).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let mut by_period: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for l in &lines {
        let p = period_of(l).unwrap_or_else(|| "bad".into());
        if !by_period.contains_key(&p) {
            order.push(p.clone());
        }
        by_period.entry(p).or_default().push(l.clone());
    }
    let mut shuffled = Vec::new();
    for p in &order {
        let mut group = by_period.remove(p).unwrap();
        group.shuffle(&mut rng);
        shuffled.extend(group);
    }
    assert_ne!(shuffled, lines);
    assert!(outcome(&run(&shuffled, 211)).eq(&expected), "shuffled within periods");
}
