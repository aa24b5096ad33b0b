//! Shared helpers of the integration tests: hand-made report lines and engine runs.
#![allow(dead_code)]

use serde_json::json;
use yujing::config::Config;
use yujing::engine::Engine;
use yujing::replay::load_rules;
use yujing_ingest::Input;
use yujing_model::{Alert, Position, Sector};

/// The default configuration, ignoring the environment.
pub fn config() -> Config {
    Config::load_with_env(None, std::iter::empty()).expect("default config")
}

/// A fresh engine with the defaults.
pub fn engine() -> Engine {
    let c = config();
    let rules = load_rules(&c).expect("default rules");
    Engine::new(&c, rules)
}

/// Runs lines through a fresh engine in batches of `batch`.
pub fn run(lines: &[String], batch: usize) -> Engine {
    let mut e = engine();
    feed(&mut e, lines, batch);
    e
}

/// Lines as inputs, numbered from 1 in a source called "test".
pub fn inputs(lines: &[String]) -> Vec<Input> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| Input {
            bytes: l.as_bytes().to_vec(),
            position: Position::line("test", i as u64 + 1),
            truncated_from: None,
        })
        .collect()
}

/// Feeds lines to an engine in batches; returns every batch's output merged.
pub fn feed(e: &mut Engine, lines: &[String], batch: usize) -> yujing::engine::BatchOutput {
    let mut all = yujing::engine::BatchOutput::default();
    for chunk in inputs(lines).chunks(batch.max(1)) {
        let out = e.process(chunk).expect("batch");
        all.dead_letters.extend(out.dead_letters);
        all.transitions.extend(out.transitions);
    }
    all
}

/// A report line. `values` are the sector's metrics in canonical order.
pub fn line(
    inst: &str,
    sector: Sector,
    district: u32,
    period: &str,
    revision: u32,
    submitted: &str,
    values: &[f64],
) -> String {
    let metrics: serde_json::Map<String, serde_json::Value> =
        sector.metrics().iter().zip(values).map(|(m, v)| (m.as_str().to_string(), json!(v))).collect();
    json!({
        "schema_version": 1,
        "report_id": format!("{inst}/{period}/r{revision}"),
        "institution_id": inst,
        "institution_name": format!("测试机构 {inst}"),
        "sector": sector.as_str(),
        "district_code": district.to_string(),
        "period": period,
        "revision": revision,
        "submitted_at": submitted,
        "metrics": metrics,
    })
    .to_string()
}

/// The submission time of a period's report: the 10th of the next month.
pub fn on_time(period: &str) -> String {
    let p: yujing_model::Period = period.parse().expect("period");
    let n = p.add_months(1);
    format!("{:04}-{:02}-10T10:00:00+08:00", n.year(), n.month())
}

/// Healthy microloan metrics: loans 1e9, npl 2%, net assets 8e8, largest borrower 3%, borrowings 0.3×.
pub fn healthy_microloan() -> Vec<f64> {
    vec![1.0e9, 2.0e7, 8.0e8, 2.4e7, 2.4e8]
}

/// Microloan metrics with the given NPL ratio, otherwise healthy.
pub fn microloan_with_npl(npl: f64) -> Vec<f64> {
    vec![1.0e9, npl * 1.0e9, 8.0e8, 2.4e7, 2.4e8]
}

/// Monthly microloan lines from `from` for `n` months, on time.
pub fn monthly(inst: &str, district: u32, from: &str, n: i32, values: impl Fn(i32) -> Vec<f64>) -> Vec<String> {
    let p0: yujing_model::Period = from.parse().expect("period");
    (0..n)
        .map(|k| {
            let p = p0.add_months(k).to_string();
            line(inst, Sector::Microloan, district, &p, 1, &on_time(&p), &values(k))
        })
        .collect()
}

/// The current alerts as JSON values, for comparisons.
pub fn alerts_json(e: &Engine) -> Vec<String> {
    e.alerts().map(|a| serde_json::to_string(a).expect("json")).collect()
}

/// The current alerts of one entity.
pub fn alerts_of<'a>(e: &'a Engine, entity: &str) -> Vec<&'a Alert> {
    e.alerts().filter(|a| *a.entity_id == *entity).collect()
}

/// The committed sample's report files.
pub fn sample_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sample");
    yujing::replay::jsonl_files(&dir).expect("fixtures/sample")
}

/// `yujing replay` of the sample in-process: its alerts JSONL and scores CSV, as text.
pub fn sample_replay_outputs(dir: &std::path::Path) -> (String, String) {
    let (a, s) = (dir.join("replay-alerts.jsonl"), dir.join("replay-scores.csv"));
    let config = config();
    let opts = yujing::replay::ReplayOptions {
        files: sample_files(),
        alerts_out: Some(a.clone()),
        scores_out: Some(s.clone()),
        ..Default::default()
    };
    yujing::replay::replay(&config, load_rules(&config).expect("rules"), &opts).expect("replay");
    (std::fs::read_to_string(a).expect("alerts"), std::fs::read_to_string(s).expect("scores"))
}
