//! `/metrics` exposes the agreed names after a replay, with the counts the engine saw; and
//! `yujing demo` serves the API, its actions and `/metrics` end to end.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use yujing::metrics::{Metrics, NAMES};
use yujing_ingest::Input;
use yujing_model::Position;

/// The metrics that only the Kafka service sets.
const KAFKA_ONLY: [&str; 2] = ["yujing_consumer_lag_messages", "yujing_kafka_publish_failures_total"];

fn sample_lines(n: usize) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/sample/reports-2020.jsonl");
    let text = std::fs::read_to_string(path).expect("the committed sample");
    text.lines().take(n).map(str::to_string).collect()
}

/// A plain HTTP/1.0 request; returns the status and the body.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\n\r\n{body}", body.len())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The value of one sample line of the text format.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

/// The sum of every series of a metric.
fn sum(text: &str, prefix: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

#[test]
fn metrics_expose_the_agreed_names_after_a_replay() {
    let config = common::config();
    let mut engine = common::engine();
    let metrics = Arc::new(Metrics::new().unwrap());
    let ready = Arc::new(AtomicBool::new(true));
    let (mut link, _snapshots, _actions) = yujing::serve::link(&config, metrics.clone(), ready);
    let mut lines = sample_lines(700);
    lines.push("{not json".into());
    lines.push(lines[0].clone());
    for (b, chunk) in lines.chunks(300).enumerate() {
        let inputs: Vec<Input> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| Input {
                bytes: l.as_bytes().to_vec(),
                position: Position::line("test", (b * 300 + i) as u64 + 1),
                truncated_from: None,
            })
            .collect();
        let before = engine.stats().clone();
        let out = engine.process(&inputs).unwrap();
        metrics.record_batch("file", &before, engine.stats(), &out, Duration::from_millis(5));
        metrics.record_committed();
        link.publish(&engine, &config);
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = yujing_serve::metrics_router(metrics.registry.clone());
    std::thread::spawn(move || runtime.block_on(async { axum::serve(listener, app).await }));
    let (status, text) = http(&addr, "GET", "/metrics", None, "");
    assert_eq!(status, 200);

    for name in NAMES.iter().filter(|n| !KAFKA_ONLY.contains(n)) {
        assert!(text.contains(&format!("# TYPE {name} ")), "/metrics lacks {name}:\n{text}");
    }
    let st = engine.stats();
    assert_eq!(value(&text, "yujing_reports_received_total{source=\"file\"}"), Some(st.received as f64));
    assert_eq!(sum(&text, "yujing_reports_accepted_total{"), st.accepted as f64);
    assert_eq!(value(&text, "yujing_reports_duplicate_total"), Some(st.duplicates as f64));
    let malformed = st.rejected.get(&yujing_model::Reason::MalformedJson).copied().unwrap_or(0) as f64;
    assert!(malformed >= 1.0, "the line that is not JSON is counted");
    assert_eq!(value(&text, "yujing_reports_rejected_total{reason=\"malformed_json\"}"), Some(malformed));
    assert_eq!(value(&text, "yujing_dead_letters_total{reason=\"malformed_json\"}"), Some(malformed));
    assert_eq!(sum(&text, "yujing_reports_rejected_total{"), st.rejected_total() as f64);
    assert_eq!(value(&text, "yujing_batch_duration_seconds_count"), Some(3.0));
    assert_eq!(value(&text, "yujing_ready"), Some(1.0));
    let open = engine.alerts().filter(|a| a.state.is_active()).count() as f64;
    assert_eq!(sum(&text, "yujing_alerts_open{"), open, "the open-alert gauges add up to the engine's open alerts");
    assert!(text.contains("yujing_district_score{district_code=\"500101\",sector=\"all\"}"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("yujing_city_score{sector=\"all\"}")));
    assert!(text.contains(&format!("yujing_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))));
}

/// Kills the demo when the test ends, also when it fails.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_serves_the_api_actions_and_metrics() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/sample");
    let child = Command::new(env!("CARGO_BIN_EXE_yujing"))
        .args(["demo", "--sample", sample, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut demo = Demo(child);
    let stdout = BufReader::new(demo.0.stdout.take().unwrap());
    let (mut api, mut metrics) = (String::new(), String::new());
    for line in stdout.lines().map_while(Result::ok) {
        let addr = |l: &str| l.split("http://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("").to_string();
        if line.trim_start().starts_with("web page") {
            api = addr(&line);
        } else if line.trim_start().starts_with("metrics") {
            metrics = addr(&line);
        } else if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert!(!api.is_empty() && !metrics.is_empty(), "the banner names both addresses");
    // The replay is done when stderr says so.
    let stderr = BufReader::new(demo.0.stderr.take().unwrap());
    let started = Instant::now();
    let done = stderr.lines().map_while(Result::ok).any(|l| l.contains("Serving until Ctrl-C"));
    assert!(done, "the demo finished its replay ({:?})", started.elapsed());

    let (status, _) = http(&api, "GET", "/api/v1/riskmap", None, "");
    assert_eq!(status, 401);
    let (status, body) = http(&api, "GET", "/api/v1/riskmap", Some("yujing-demo-regulator"), "");
    assert_eq!(status, 200, "{body}");
    let map: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(map["entities"].as_array().unwrap().len(), 38, "every district has scores");

    let officer = "yujing-demo-500101";
    let (status, body) = http(&api, "GET", "/api/v1/alerts?state=open&limit=1", Some(officer), "");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let alert = &list["items"][0];
    assert_eq!(alert["district_code"], "500101");
    let id = alert["id"].as_str().unwrap();
    let (status, body) = http(&api, "POST", &format!("/api/v1/alerts/{id}/ack"), Some(officer), "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&api, "POST", &format!("/api/v1/alerts/{id}/ack"), Some("yujing-demo-analyst"), "");
    assert_eq!(status, 403, "{body}");
    let (status, body) = http(&api, "GET", &format!("/api/v1/alerts/{id}"), Some("yujing-demo-analyst"), "");
    assert_eq!(status, 200);
    assert!(body.contains("\"state\":\"acknowledged\""), "{body}");
    let (_, body) = http(&api, "GET", "/api/v1/audit", Some("yujing-demo-regulator"), "");
    assert!(body.contains("\"actor\":\"demo-wanzhou\"") && body.contains(id), "{body}");

    let (status, text) = http(&metrics, "GET", "/metrics", None, "");
    assert_eq!(status, 200);
    assert!(value(&text, "yujing_reports_received_total{source=\"file\"}").unwrap_or(0.0) > 6000.0, "{text}");
}
