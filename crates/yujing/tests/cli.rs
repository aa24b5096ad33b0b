//! The `yujing` binary as a user runs it.

mod common;

use std::process::Command;

fn yujing() -> Command {
    Command::new(env!("CARGO_BIN_EXE_yujing"))
}

fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn replay_writes_alerts_scores_and_dead_letters_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        common::line(
            "CQ-MLC-0001",
            yujing_model::Sector::Microloan,
            500103,
            "2020-01",
            1,
            &common::on_time("2020-01"),
            &common::microloan_with_npl(0.3),
        ),
        "{broken".to_string(),
    ];
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let (a, s, d) = (dir.path().join("a.jsonl"), dir.path().join("s.csv"), dir.path().join("d.jsonl"));
    let out = yujing()
        .arg("replay")
        .arg(&input)
        .args([
            "--alerts-out",
            a.to_str().unwrap(),
            "--scores-out",
            s.to_str().unwrap(),
            "--dlq-out",
            d.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("accepted 1") && summary.contains("malformed_json 1"), "{summary}");
    let alerts = std::fs::read_to_string(&a).unwrap();
    assert!(alerts.contains("\"rule\":\"microloan-npl\""));
    let scores = std::fs::read_to_string(&s).unwrap();
    assert!(scores.starts_with("level,entity_id,entity_name,"));
    assert!(scores.contains("city,500000,重庆市"));
    let dlq = std::fs::read_to_string(&d).unwrap();
    assert_eq!(dlq.lines().count(), 1);
    assert!(dlq.contains("\"reason\":\"malformed_json\"") && dlq.contains("\"line\":2"));

    // Parquet by extension.
    let pq = dir.path().join("s.parquet");
    let out =
        yujing().arg("replay").arg(&input).arg("-q").args(["--scores-out", pq.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    assert!(std::fs::read(&pq).unwrap().starts_with(b"PAR1"));
}

#[test]
fn replay_of_a_missing_file_fails_with_a_clear_error() {
    let out = yujing().args(["replay", "/nonexistent/reports.jsonl"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read /nonexistent/reports.jsonl"), "{err}");
}

#[test]
fn check_config_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[ingest]\nbatch_size = 100\n").unwrap();
    let out = yujing().arg("check-config").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[ingest]\nbatch_size = 100\n\n[score.grades]\nred = \"high\"\n").unwrap();
    let out = yujing().arg("check-config").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:5") && err.contains("score.grades.red"), "{err}");
    let example = workspace().join("deploy/yujing.example.toml");
    let out = yujing().arg("check-config").arg(&example).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rules = workspace().join("crates/yujing-alert/rules/default.toml");
    let out = yujing().arg("check-config").arg(&rules).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let broken = dir.path().join("rules.toml");
    let text = std::fs::read_to_string(&rules).unwrap().replacen("metric = \"score\"", "metric = \"scroe\"", 1);
    std::fs::write(&broken, text).unwrap();
    let out = yujing().arg("check-config").arg(&broken).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scroe") && err.contains("line"), "{err}");
}
