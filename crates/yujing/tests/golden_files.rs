//! Golden files: a small committed report set and the scores and alerts it must give.
//! Any change to scoring or rules that moves a number shows up here as a diff.
//! After an intended change, regenerate with `YUJING_BLESS=1 cargo test -p yujing --test golden_files`
//! and review the diff of `fixtures/golden/`.

mod common;

use polars::prelude::SerWriter;
use std::path::{Path, PathBuf};
use yujing::fixtures::{FixtureSpec, generate};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/golden")
}

fn check(name: &str, got: &str) {
    let path = golden().join(name);
    if std::env::var_os("YUJING_BLESS").is_some() {
        std::fs::create_dir_all(golden()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with YUJING_BLESS=1 to create it)", path.display()));
    if want != got {
        let (w, g): (Vec<_>, Vec<_>) = (want.lines().collect(), got.lines().collect());
        let first = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(w.len().min(g.len()));
        panic!(
            "{name} differs from the golden file at line {}:\n  want: {}\n  got:  {}\n({} vs {} lines; YUJING_BLESS=1 regenerates)",
            first + 1,
            w.get(first).unwrap_or(&"<end>"),
            g.get(first).unwrap_or(&"<end>"),
            w.len(),
            g.len()
        );
    }
}

#[test]
fn golden_reports_give_the_golden_scores_and_alerts() {
    let input = golden().join("reports.jsonl");
    if std::env::var_os("YUJING_BLESS").is_some() {
        let spec = FixtureSpec {
            seed: 11,
            institutions: 40,
            from: "2020-01".parse().unwrap(),
            to: "2020-09".parse().unwrap(),
        };
        std::fs::create_dir_all(golden()).unwrap();
        std::fs::write(&input, generate(&spec).lines.join("\n") + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let e = common::run(&lines, 64);
    let mut df = yujing::output::scores_frame(&e).unwrap();
    let mut csv = Vec::new();
    polars::prelude::CsvWriter::new(&mut csv).with_float_precision(Some(6)).finish(&mut df).unwrap();
    check("expected_scores.csv", &String::from_utf8(csv).unwrap());
    let alerts: String = common::alerts_json(&e).into_iter().map(|l| l + "\n").collect();
    check("expected_alerts.jsonl", &alerts);
}
