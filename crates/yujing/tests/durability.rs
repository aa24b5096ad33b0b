//! Durable state: a replay into the store, stopped (even by `kill -9`) and resumed, ends
//! exactly where an uninterrupted replay ends; `yujing export` reads it back.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use yujing::replay::{ReplayOptions, export, load_rules, replay};

use common::{sample_files as sample, sample_replay_outputs as reference};

fn outputs(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{tag}-alerts.jsonl")), dir.join(format!("{tag}-scores.csv")))
}

fn exported(dir: &Path, store: &Path) -> (String, String) {
    let (a, s) = outputs(dir, "export");
    let config = common::config();
    export(&config, load_rules(&config).unwrap(), store, Some(&a), Some(&s)).unwrap();
    (std::fs::read_to_string(a).unwrap(), std::fs::read_to_string(s).unwrap())
}

#[test]
fn a_replay_stopped_after_each_file_and_resumed_equals_one_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("y.db");
    let config = common::config();
    let files = sample();
    // One file at a time, a fresh process state each time (restore from the store).
    for k in 1..=files.len() {
        let opts = ReplayOptions { files: files[..k].to_vec(), store: Some(store.clone()), ..Default::default() };
        replay(&config, load_rules(&config).unwrap(), &opts).unwrap();
    }
    let want = reference(dir.path());
    let got = exported(dir.path(), &store);
    if want.0 != got.0 {
        let (w, g): (Vec<_>, Vec<_>) = (want.0.lines().collect(), got.0.lines().collect());
        let i = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "alerts differ after resuming ({} vs {} lines) at {i}:\n{}\n{}",
            w.len(),
            g.len(),
            w.get(i).unwrap_or(&""),
            g.get(i).unwrap_or(&"")
        );
    }
    assert!(want.1 == got.1, "scores differ after resuming");
}

#[test]
fn kill_9_at_random_points_loses_nothing_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("y.db");
    let dlq = dir.path().join("dlq.jsonl");
    let run = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_yujing"));
        c.arg("replay").args(sample()).arg("--store").arg(&store).arg("--dlq-out").arg(&dlq).arg("-q");
        c.env("YUJING__INGEST__BATCH_SIZE", "97");
        c
    };
    // Three kills at different points of the run (fixed delays, so reproducible).
    let mut killed = 0;
    for (k, ms) in [700u64, 1900, 3100].into_iter().enumerate() {
        let mut child = run().spawn().unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        eprintln!("run {k}: killed after {ms} ms");
    }
    assert!(killed >= 2, "the runs ended before they could be killed; the test proves nothing");
    let status = run().status().unwrap();
    assert!(status.success());
    let want = reference(dir.path());
    let got = exported(dir.path(), &store);
    assert!(want.0 == got.0, "alerts differ after kill -9 and restart");
    assert!(want.1 == got.1, "scores differ after kill -9 and restart");
    // No alert opened twice: in the audit trail an alert opens again only after it was
    // auto-resolved or superseded, never while it is open.
    let reader = yujing_store::Store::open_read_only(&store).unwrap();
    let mut active = std::collections::HashMap::new();
    for a in reader.audit(0, 1_000_000, false).unwrap() {
        match a.kind.as_str() {
            "opened" => {
                assert!(!active.insert(a.alert_id.clone(), true).unwrap_or(false), "{} opened twice", a.alert_id)
            }
            "auto-resolved" | "superseded" => {
                active.insert(a.alert_id.clone(), false);
            }
            _ => {}
        }
    }
    assert!(!active.is_empty());
    // Every dead letter is there (at least once: a kill between writing the dead-letter file
    // and committing the batch repeats that batch's letters, never loses them).
    let positions = |text: &str| -> std::collections::BTreeSet<(String, u64)> {
        text.lines()
            .map(|l| {
                let d: yujing_model::DeadLetter = serde_json::from_str(l).unwrap();
                (d.position.source, d.position.line.unwrap())
            })
            .collect()
    };
    let once_file = dir.path().join("dlq-once.jsonl");
    let config = common::config();
    let opts = ReplayOptions { files: sample(), dlq_out: Some(once_file.clone()), ..Default::default() };
    replay(&config, load_rules(&config).unwrap(), &opts).unwrap();
    assert_eq!(
        positions(&std::fs::read_to_string(&dlq).unwrap()),
        positions(&std::fs::read_to_string(&once_file).unwrap())
    );
}
