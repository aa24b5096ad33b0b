//! The serving side of the CLI: `hash-token` and the one-shot `demo --no-serve`.

use std::io::Write;
use std::process::{Command, Stdio};

fn yujing() -> Command {
    Command::new(env!("CARGO_BIN_EXE_yujing"))
}

#[test]
fn hash_token_prints_the_sha256_of_the_argument_or_of_stdin() {
    let out = yujing().args(["hash-token", "abc"]).output().unwrap();
    assert!(out.status.success());
    let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    let mut child = yujing().arg("hash-token").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected, "the newline is not part of the token");
    let out = yujing().arg("hash-token").stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success(), "an empty token is refused");
}

#[test]
fn demo_no_serve_prints_the_risk_table_and_exits() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/sample");
    let out = yujing().args(["demo", "--no-serve", "--sample", sample]).env("NO_COLOR", "1").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Chongqing district risk map"), "{stdout}");
    assert!(stdout.contains("万州区 Wanzhou"), "{stdout}");
    assert!(!stdout.contains("http://"), "nothing is served");
}
