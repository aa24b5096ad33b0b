//! The committed sample replayed as a user would: the city's 2020-12 figures sit near
//! Chongqing's published end-2020 figures, and the outputs meet the contract.

mod common;

use std::path::{Path, PathBuf};
use yujing::replay::{ReplayOptions, jsonl_files, load_rules, replay};
use yujing_model::{CITY_CODE, Level, Period, Sector, SectorScope};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn city_aggregates_for_2020_12_are_within_10_percent_of_the_plans_figures() {
    let files = jsonl_files(&workspace().join("fixtures/sample")).unwrap();
    assert!(!files.is_empty(), "fixtures/sample holds the committed sample");
    let dir = tempfile::tempdir().unwrap();
    let (a, s, d) = (dir.path().join("alerts.jsonl"), dir.path().join("scores.csv"), dir.path().join("dlq.jsonl"));
    let opts = ReplayOptions {
        files,
        alerts_out: Some(a.clone()),
        scores_out: Some(s.clone()),
        dlq_out: Some(d.clone()),
        ..Default::default()
    };
    let config = common::config();
    let done = replay(&config, load_rules(&config).unwrap(), &opts).unwrap();
    let e = &done.engine;
    let p: Period = "2020-12".parse().unwrap();
    let city = |sector| e.aggregate(Level::City, CITY_CODE, SectorScope::One(sector), p).unwrap();
    let near = |got: f64, want: f64| (got / want - 1.0).abs() <= 0.10;
    let bank = city(Sector::Bank).npl_ratio.unwrap();
    let micro = city(Sector::Microloan).npl_ratio.unwrap();
    let payout = city(Sector::Guarantee).payout_rate.unwrap();
    assert!(near(bank, 0.0148), "bank NPL ratio {bank}");
    assert!(near(micro, 0.0943), "microloan NPL ratio {micro}");
    assert!(near(payout, 0.025), "guarantee payout rate {payout}");

    // Every mechanism a regulator expects to see in two years of a troubled sector shows up.
    let mechanisms: std::collections::BTreeSet<_> = e.alerts().map(|a| a.mechanism).collect();
    assert!(mechanisms.len() >= 6, "{mechanisms:?}");
    assert!(done.dead_letters > 0 && done.dead_letters == e.stats().rejected_total());

    // The output contract of ../shared/contract, when it is there (CI always has it).
    let contract = workspace().join("../shared/contract/check_replay_outputs.py");
    if contract.exists() {
        let out = std::process::Command::new("python3").arg(&contract).args([&a, &s, &d]).output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("note: {} not found; contract not checked here", contract.display());
    }
}
