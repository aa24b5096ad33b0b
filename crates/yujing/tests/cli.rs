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

/// The environment and arguments of a running `yujing hash-token` (it waits for its token
/// on standard input), once `wanted` holds for its environment or after `patience`.
#[cfg(target_os = "linux")]
fn environ_of_waiting_process(
    cmd: &mut Command,
    wanted: impl Fn(&[String]) -> bool,
    patience: std::time::Duration,
) -> (Vec<String>, Vec<String>) {
    let mut child = cmd.arg("hash-token").stdin(std::process::Stdio::piped()).spawn().unwrap();
    let split = |b: Vec<u8>| -> Vec<String> {
        b.split(|c| *c == 0).filter(|v| !v.is_empty()).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
    };
    let proc = std::path::PathBuf::from(format!("/proc/{}", child.id()));
    let deadline = std::time::Instant::now() + patience;
    let (env, cmdline) = loop {
        let env = split(std::fs::read(proc.join("environ")).unwrap_or_default());
        if wanted(&env) || std::time::Instant::now() > deadline {
            break (env, split(std::fs::read(proc.join("cmdline")).unwrap_or_default()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"a token\n").unwrap();
    assert!(child.wait().unwrap().success());
    (env, cmdline)
}

#[cfg(target_os = "linux")]
#[test]
fn the_binary_runs_with_jemalloc_returning_freed_pages_after_a_second() {
    let conf = |env: &[String]| env.iter().find(|v| v.starts_with("_RJEM_MALLOC_CONF=")).cloned();
    let secs = std::time::Duration::from_secs;
    let (env, cmdline) =
        environ_of_waiting_process(yujing().env_remove("_RJEM_MALLOC_CONF"), |env| conf(env).is_some(), secs(10));
    assert_eq!(conf(&env).as_deref(), Some("_RJEM_MALLOC_CONF=dirty_decay_ms:1000"));
    // Executed again with the same arguments.
    assert_eq!(cmdline, [env!("CARGO_BIN_EXE_yujing"), "hash-token"]);

    // An operator's own options, even none, are left as they are.
    let (env, _) = environ_of_waiting_process(yujing().env("_RJEM_MALLOC_CONF", ""), |_| false, secs(1));
    assert_eq!(conf(&env).as_deref(), Some("_RJEM_MALLOC_CONF="));
}
