//! Durable state: a replay into the store, stopped (even by `kill -9`) and resumed, ends
//! exactly where an uninterrupted replay ends; `yujing export` reads it back.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use yujing::durable::{open_engine, persist};
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
    let run_into = |store: &Path, dlq: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_yujing"));
        c.arg("replay").args(sample()).arg("--store").arg(store).arg("--dlq-out").arg(dlq).arg("-q");
        c.env("YUJING__INGEST__BATCH_SIZE", "97");
        c
    };
    let run = || run_into(&store, &dlq);
    // The killed runs settle every batch, so that kills land between every kind of commit;
    // the last run settles as it likes.
    let killable_into = |store: &Path, dlq: &Path| {
        let mut c = run_into(store, dlq);
        c.env("YUJING__INGEST__SETTLE_INTERVAL", "0s");
        c
    };
    let killable = || killable_into(&store, &dlq);
    // How long an uninterrupted run takes here, into a scratch store: the kills land a
    // quarter of that into each run, whatever the machine's speed, and each run resumes
    // from the last one's store.
    let scratch = dir.path().join("scratch.db");
    let started = std::time::Instant::now();
    let status = killable_into(&scratch, &dir.path().join("scratch-dlq.jsonl")).status().unwrap();
    assert!(status.success());
    let quarter = started.elapsed() / 4;
    let mut killed = 0;
    for k in 0..3 {
        let mut child = killable().spawn().unwrap();
        std::thread::sleep(quarter);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        eprintln!("run {k}: killed after {quarter:?}");
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
                (d.position.source.to_string(), d.position.line.unwrap())
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

#[test]
fn batches_committed_but_never_settled_are_derived_on_restart() {
    // A service reading a backlog commits batches whose scores and alerts it has not yet
    // derived (yujing::pace); a crash then leaves them in the store underived.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.db");
    let config = common::config();
    let lines: Vec<String> = sample()
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(String::from).collect::<Vec<_>>())
        .collect();
    {
        let mut store = yujing_store::StoreConfig::at(&path).build().unwrap();
        let (mut engine, _) = open_engine(&config, load_rules(&config).unwrap(), &mut store).unwrap();
        for batch in common::inputs(&lines).chunks(97) {
            engine.ingest(batch);
            persist(&mut engine, &mut store, &[], Vec::new()).unwrap();
        }
        assert_eq!(engine.alerts().count(), 0, "nothing was settled");
    } // the crash
    let mut store = yujing_store::StoreConfig::at(&path).build().unwrap();
    let (engine, published) = open_engine(&config, load_rules(&config).unwrap(), &mut store).unwrap();
    drop(store);
    let want = reference(dir.path());
    let got = exported(dir.path(), &path);
    assert!(want.0 == got.0, "alerts differ after restarting on unsettled batches");
    assert!(want.1 == got.1, "scores differ after restarting on unsettled batches");
    // The restart published every alert, and its audit trail has each opening.
    let opened = published.iter().filter(|t| t.kind == yujing_model::TransitionKind::Opened).count();
    assert_eq!(opened, engine.alerts().count());
    let reader = yujing_store::Store::open_read_only(&path).unwrap();
    let audited = reader.audit(0, 1_000_000, false).unwrap().iter().filter(|a| a.kind == "opened").count();
    assert_eq!(audited, opened);
}

#[test]
fn a_batchs_winning_reports_go_to_the_store_as_received_and_the_rest_serialized() {
    use common::{healthy_microloan, line, on_time};
    use yujing_model::Sector;
    let mut e = common::engine();
    e.track_dirty_slots();
    let v = healthy_microloan();
    let a1 = line("A", Sector::Microloan, 500103, "2021-01", 1, &on_time("2021-01"), &v);
    let a2 = line("A", Sector::Microloan, 500103, "2021-01", 2, "2021-02-11T10:00:00+08:00", &v);
    let b1 = format!(" {}", line("B", Sector::Microloan, 500103, "2021-01", 1, &on_time("2021-01"), &v));
    // A's first revision is replaced within the batch: its slot keeps the second's text.
    e.ingest(&common::inputs(&[a1.clone(), a2.clone(), b1.clone()]));
    let mut slots = e.take_dirty_slots();
    slots.sort_by(|x, y| x.winner.institution_id.cmp(&y.winner.institution_id));
    let originals: Vec<_> = slots.iter().map(|s| (&*s.winner.institution_id, s.original.as_deref())).collect();
    assert_eq!(originals, vec![("A", Some(a2.as_str())), ("B", Some(b1.as_str()))]);
    // A re-send changes what the slot has seen, not its winner: serialized, as nothing
    // holds the winner's text any longer.
    e.ingest(&common::inputs(&[a1]));
    let slots = e.take_dirty_slots();
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].original, None);
    assert!(e.take_dirty_slots().is_empty());
}
