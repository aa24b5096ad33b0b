//! The JSON Schemas in `schemas/` are the source of truth for the wire formats: they must
//! be valid draft 2020-12 schemas, agree with the decoder on every generated report line,
//! and describe what the pipeline actually writes (alerts, dead letters, transitions and
//! score rows).

use jsonschema::{Draft, Registry, Validator};
use polars::prelude::AnyValue;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yujing::config::Config;
use yujing::fixtures::{FixtureSpec, generate, write_dir};
use yujing::replay::{ReplayOptions, jsonl_files, load_rules, replay};
use yujing_model::{Alert, DecodeLimits, Reason, Transition, TransitionKind, decode};

const BASE: &str = "https://yujing.example/schemas/";
const FILES: [&str; 5] =
    ["report.v1.json", "alert.v1.json", "dead-letter.v1.json", "transition.v1.json", "scores.v1.json"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(name: &str) -> Value {
    let path = repo_root().join("schemas").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// The validator of one schema, with every schema registered under its `$id` so that
/// relative `$ref`s between them resolve offline, and with `format` asserted.
fn validator(name: &str) -> Validator {
    let registry = Registry::new()
        .extend(FILES.map(|f| (format!("{BASE}{f}"), load(f))))
        .and_then(|b| b.prepare())
        .unwrap_or_else(|e| panic!("registry: {e}"));
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .with_registry(&registry)
        .offline()
        .build(&load(name))
        .unwrap_or_else(|e| panic!("{name} does not compile: {e}"))
}

/// The validation errors of `instance`, one line each; empty when it is valid.
fn errors(v: &Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| format!("{} (at {})", e, e.instance_path())).collect()
}

fn assert_valid(v: &Validator, instance: &Value, what: &str) {
    let errs = errors(v, instance);
    assert!(errs.is_empty(), "{what} should validate but: {errs:#?}\n{instance}");
}

fn assert_invalid(v: &Validator, instance: &Value, what: &str) {
    assert!(!v.is_valid(instance), "{what} should fail the schema:\n{instance}");
}

#[test]
fn every_schema_is_a_valid_draft_2020_12_schema() {
    let mut on_disk: Vec<String> = std::fs::read_dir(repo_root().join("schemas"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut expected = FILES.map(String::from).to_vec();
    expected.sort();
    assert_eq!(on_disk, expected, "every schema file must be listed (and so checked) here");
    for name in FILES {
        let schema = load(name);
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
        assert_eq!(schema["$id"], format!("{BASE}{name}"), "{name}");
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("{name} is not a valid draft 2020-12 schema: {e} at {}", e.instance_path());
        }
        let v = validator(name);
        for example in schema["examples"].as_array().into_iter().flatten() {
            assert_valid(&v, example, &format!("the example of {name}"));
        }
    }
}

/// Report lines to check: the default generated set, and the committed sample if present.
fn report_lines() -> Vec<String> {
    let mut lines = generate(&FixtureSpec::default()).lines;
    let sample = repo_root().join("fixtures/sample");
    if sample.is_dir() {
        for file in jsonl_files(&sample).unwrap() {
            lines.extend(std::fs::read_to_string(file).unwrap().lines().map(String::from));
        }
    }
    lines
}

#[test]
fn the_schema_agrees_with_the_decoder_on_every_generated_line() {
    let v = validator("report.v1.json");
    let limits = DecodeLimits::default();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, line) in report_lines().iter().enumerate() {
        let json: Option<Value> = serde_json::from_str(line).ok();
        let verdict = match decode(line.as_bytes(), &limits) {
            Ok(_) => {
                let errs = json.as_ref().map(|j| errors(&v, j));
                assert!(errs.as_ref().is_some_and(Vec::is_empty), "line {i} decodes but fails: {errs:?}\n{line}");
                "accepted"
            }
            Err(r) => {
                if matches!(r.reason, Reason::MalformedJson | Reason::SchemaViolation | Reason::NegativeAmount) {
                    let passes = json.as_ref().is_some_and(|j| v.is_valid(j));
                    assert!(!passes, "line {i} is rejected ({r}) yet passes the schema:\n{line}");
                }
                r.reason.as_str()
            }
        };
        *seen.entry(verdict).or_default() += 1;
    }
    eprintln!("report lines checked: {seen:?}");
    for must in ["accepted", "malformed_json", "schema_violation", "negative_amount"] {
        assert!(seen.get(must).copied().unwrap_or(0) > 0, "no {must} line was checked: {seen:?}");
    }
}

#[test]
fn the_pipeline_writes_what_the_schemas_describe() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(&generate(&FixtureSpec::default()), &dir.path().join("in"), None).unwrap();
    let config = Config::load_with_env(None, std::iter::empty()).unwrap();
    let opts = ReplayOptions {
        files: jsonl_files(&dir.path().join("in")).unwrap(),
        alerts_out: Some(dir.path().join("alerts.jsonl")),
        dlq_out: Some(dir.path().join("dlq.jsonl")),
        ..ReplayOptions::default()
    };
    let done = replay(&config, load_rules(&config).unwrap(), &opts).unwrap();
    let jsonl = |p: &Option<PathBuf>| -> Vec<Value> {
        let text = std::fs::read_to_string(p.as_ref().unwrap()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };

    let alert_v = validator("alert.v1.json");
    let alerts = jsonl(&opts.alerts_out);
    assert!(alerts.len() >= 10, "only {} alerts", alerts.len());
    for a in &alerts {
        assert_valid(&alert_v, a, "an alert");
    }
    let mut bad = alerts[0].clone();
    bad["state"] = json!("closed");
    assert_invalid(&alert_v, &bad, "an alert in state closed");
    let mut bad = alerts[0].clone();
    bad["evidence"].as_object_mut().unwrap().remove("score");
    assert_invalid(&alert_v, &bad, "an alert without evidence.score");

    let dlq_v = validator("dead-letter.v1.json");
    let letters = jsonl(&opts.dlq_out);
    assert!(!letters.is_empty(), "no dead letters");
    for d in &letters {
        assert_valid(&dlq_v, d, "a dead letter");
    }
    let mut bad = letters[0].clone();
    bad["original_hex"] = json!("abc");
    assert_invalid(&dlq_v, &bad, "a dead letter with odd hex");

    let transition_v = validator("transition.v1.json");
    for (alert, kind) in done.engine.alerts().zip(TransitionKind::ALL) {
        let t = Transition { kind, by: "yujing".into(), alert: std::sync::Arc::new(Alert::clone(alert)) };
        let t = serde_json::to_value(&t).unwrap();
        assert_valid(&transition_v, &t, "a transition");
        let mut bad = t.clone();
        bad["alert"]["severity"] = json!("purple");
        assert_invalid(&transition_v, &bad, "a transition of an alert with severity purple");
    }

    let scores_v = validator("scores.v1.json");
    let frame = yujing::output::scores_frame(&done.engine).unwrap();
    let names: Vec<&str> = frame.columns().iter().map(|c| c.name().as_str()).collect();
    let required = load("scores.v1.json")["required"].clone();
    assert_eq!(json!(names), required, "the score columns and their order");
    let mut levels = BTreeMap::new();
    for row in 0..frame.height() {
        let mut obj = serde_json::Map::new();
        for c in frame.columns() {
            obj.insert(c.name().to_string(), to_json(c.get(row).unwrap()));
        }
        let obj = Value::Object(obj);
        assert_valid(&scores_v, &obj, &format!("score row {row}"));
        *levels.entry(obj["level"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(levels.len(), 4, "every level has rows: {levels:?}");
    eprintln!("validated {} alerts, {} dead letters, score rows {levels:?}", alerts.len(), letters.len());
}

/// A Polars cell as JSON; a non-finite float becomes a string so that it fails the schema.
fn to_json(v: AnyValue) -> Value {
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::String(s) => json!(s),
        AnyValue::StringOwned(s) => json!(s.as_str()),
        AnyValue::UInt32(n) => json!(n),
        AnyValue::Float64(f) if f.is_finite() => json!(f),
        AnyValue::Float64(f) => json!(f.to_string()),
        other => panic!("unexpected score cell type {}", other.dtype()),
    }
}

fn report(sector: &str, period: &str, metrics: Value) -> Value {
    json!({
        "schema_version": 1,
        "report_id": format!("CQ-X-0001/{period}/r1"),
        "institution_id": "CQ-X-0001",
        "institution_name": "重庆某某有限公司",
        "sector": sector,
        "district_code": "500103",
        "period": period,
        "revision": 1,
        "submitted_at": "2025-10-12T09:30:00+08:00",
        "metrics": metrics,
    })
}

#[test]
fn hand_made_reports_validate_and_their_mutations_do_not() {
    let v = validator("report.v1.json");
    let reports = [
        report(
            "bank",
            "2025-09",
            json!({"total_loans": 1.0e11, "npl_balance": 1.5e9, "special_mention_balance": 2.0e9,
                   "loan_loss_provision": 3.0e9, "capital_adequacy_ratio": 0.135}),
        ),
        report(
            "microloan",
            "2025-09",
            json!({"loan_balance": 512000000, "npl_balance": 48000000, "net_assets": 300000000,
                   "largest_borrower_balance": 26000000, "borrowings": 150000000}),
        ),
        report(
            "guarantee",
            "2025-09",
            json!({"outstanding_guarantees": 2.4e9, "released_ytd": 9.0e8, "payouts_ytd": 2.2e7,
                   "recoveries_ytd": 8.0e6, "net_assets": 3.0e8, "largest_client_exposure": 3.0e7}),
        ),
        report(
            "p2p_residual",
            "2025-09",
            json!({"outstanding_principal": 3.1e8, "principal_at_exit": 1.2e9, "lenders_unpaid": 5321,
                   "repaid_in_period": 4.0e6, "complaints_in_period": 17}),
        ),
    ];
    let limits = DecodeLimits::default();
    for r in &reports {
        let sector = r["sector"].as_str().unwrap();
        assert_valid(&v, r, sector);
        decode(r.to_string().as_bytes(), &limits).unwrap_or_else(|e| panic!("{sector}: the decoder rejects it: {e}"));

        let first = r["metrics"].as_object().unwrap().keys().next().unwrap().clone();
        let mutate = |f: &dyn Fn(&mut Value)| {
            let mut m = r.clone();
            f(&mut m);
            m
        };
        let mutants = [
            ("an extra field", mutate(&|m| m["extra"] = json!(true))),
            ("an extra metric", mutate(&|m| m["metrics"]["npl_ratio"] = json!(0.1))),
            (
                "a missing metric",
                mutate(&|m| {
                    m["metrics"].as_object_mut().unwrap().remove(&first);
                }),
            ),
            ("a negative amount", mutate(&|m| m["metrics"][first.as_str()] = json!(-1))),
            ("a metric as a string", mutate(&|m| m["metrics"][first.as_str()] = json!("1"))),
            ("period 2025-13", mutate(&|m| m["period"] = json!("2025-13"))),
            ("period 2025-9", mutate(&|m| m["period"] = json!("2025-9"))),
            ("schema_version 2", mutate(&|m| m["schema_version"] = json!(2))),
            ("revision 0", mutate(&|m| m["revision"] = json!(0))),
            ("a district code as a number", mutate(&|m| m["district_code"] = json!(500103))),
            ("submitted_at yesterday", mutate(&|m| m["submitted_at"] = json!("yesterday"))),
            ("a report_id with a space", mutate(&|m| m["report_id"] = json!("CQ X"))),
            ("a blank institution_name", mutate(&|m| m["institution_name"] = json!("  "))),
            ("sector insurance", mutate(&|m| m["sector"] = json!("insurance"))),
        ];
        for (what, m) in &mutants {
            assert_invalid(&v, m, &format!("{sector} with {what}"));
            let reason = decode(m.to_string().as_bytes(), &limits).map(|_| ()).unwrap_err().reason;
            assert!(
                matches!(reason, Reason::SchemaViolation | Reason::NegativeAmount),
                "{sector} with {what}: the decoder says {reason}"
            );
        }
    }
    let [bank, _, _, p2p] = &reports;
    let mut car = bank.clone();
    car["metrics"]["capital_adequacy_ratio"] = json!(13.5);
    assert_invalid(&v, &car, "a bank with CAR 13.5");
    let mut quarter = bank.clone();
    quarter["period"] = json!("2025-08");
    assert_invalid(&v, &quarter, "a bank report for a month that ends no quarter");
    let mut count = p2p.clone();
    count["metrics"]["lenders_unpaid"] = json!(12.5);
    assert_invalid(&v, &count, "a fractional count of lenders");
    for m in [&car, &quarter, &count] {
        assert_eq!(decode(m.to_string().as_bytes(), &limits).unwrap_err().reason, Reason::SchemaViolation);
    }
    let mut unknown = reports[1].clone();
    unknown["district_code"] = json!("500232");
    assert_valid(&v, &unknown, "a retired district code (the engine's unknown_district, not the schema's)");
}
