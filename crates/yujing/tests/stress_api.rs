//! `POST /api/v1/stress` as the pipeline answers it: a request through the API link, the
//! scenario parsed, the engine's winning reports projected off the pipeline's path; and the
//! institutions' `p_event` in the API's snapshot when a `[probability]` model is configured.

mod common;

use common::{config, line, on_time};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::oneshot;
use yujing::backtest::probability::{ProbabilityConfig, p_events};
use yujing::config::Config;
use yujing::engine::Engine;
use yujing::metrics::Metrics;
use yujing::replay::load_rules;
use yujing::serve::{ApiLink, link, snapshot};
use yujing::stress::{project, winning_reports};
use yujing_ingest::Input;
use yujing_model::{Position, Sector};
use yujing_score::stress::Scenario;
use yujing_serve::{ActionSender, Caller, Role, StressError, StressRequest, StressSender};

const NORTHEAST_NPL: &str = r#"
name = "northeast microloan NPL +6pp"
[[shock]]
sector = "microloan"
metric = "npl_ratio"
scope = { region = "northeast" }
add_pp = 6.0
"#;

/// Two microloan companies, one in 云阳 (渝东北) at a 9% NPL ratio and one in 渝中 at 3%,
/// over two periods.
fn engine(config: &Config) -> Engine {
    let mut engine = Engine::new(config, load_rules(config).unwrap());
    let mut lines = Vec::new();
    for p in ["2021-05", "2021-06"] {
        lines.push(line(
            "CQ-MLC-0001",
            Sector::Microloan,
            500235,
            p,
            1,
            &on_time(p),
            &[1000.0, 90.0, 1000.0, 50.0, 500.0],
        ));
        lines.push(line(
            "CQ-MLC-0002",
            Sector::Microloan,
            500103,
            p,
            1,
            &on_time(p),
            &[1000.0, 30.0, 1000.0, 50.0, 500.0],
        ));
    }
    let inputs: Vec<Input> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Input {
            bytes: l.clone().into_bytes(),
            position: Position::line("t", i as u64 + 1),
            truncated_from: None,
        })
        .collect();
    engine.process(&inputs).unwrap();
    engine
}

/// The pipeline's link, its stress sender, and its action sender (held, as the app holds it).
fn api(config: &Config) -> (ApiLink, StressSender, ActionSender) {
    let metrics = Arc::new(Metrics::new().unwrap());
    let (mut api, _snapshots, actions) = link(config, metrics, Arc::new(AtomicBool::new(true)));
    let stress = api.enable_stress(config, &load_rules(config).unwrap());
    (api, stress, actions)
}

type Answer = oneshot::Receiver<Result<serde_json::Value, StressError>>;

fn ask(tx: &StressSender, scenario: &str, period: Option<&str>) -> Answer {
    let (reply, answer) = oneshot::channel();
    let caller = Caller { name: "analyst-li".into(), role: Role::Analyst };
    let period = period.map(|p| p.parse().unwrap());
    tx.try_send(StressRequest { scenario: scenario.into(), period, caller, reply }).unwrap();
    answer
}

#[test]
fn a_stress_request_through_the_link_gets_the_projection() {
    let c = config();
    let mut engine = engine(&c);
    let (mut api, tx, _actions) = api(&c);
    let answer = ask(&tx, NORTHEAST_NPL, None);
    assert!(api.drain(&mut engine, None).is_empty(), "a projection changes no alert");
    let got = answer.blocking_recv().unwrap().expect("a projection");

    // The same as projecting the engine's reports directly.
    let scenario = Scenario::from_toml_str(NORTHEAST_NPL).unwrap();
    let direct = project(&c, &load_rules(&c).unwrap(), &winning_reports(&engine), &scenario, None).unwrap();
    assert_eq!(got, serde_json::to_value(&direct).unwrap());
    assert_eq!(got["period"], "2021-06");
    let districts = got["districts"].as_array().expect("districts");
    let yunyang = districts.iter().find(|d| d["code"] == "500235").expect("云阳 is in the projection");
    assert!(!yunyang["lit"].as_array().unwrap().is_empty(), "{yunyang}");
    let mechanisms = got["mechanisms"].as_array().expect("mechanisms");
    assert!(mechanisms.iter().any(|m| m["after"].as_u64() > m["before"].as_u64()), "{got}");

    // An earlier period may be asked for.
    let answer = ask(&tx, NORTHEAST_NPL, Some("2021-05"));
    api.drain(&mut engine, None);
    assert_eq!(answer.blocking_recv().unwrap().unwrap()["period"], "2021-05");
}

#[test]
fn bad_scenarios_and_missing_reports_are_refused() {
    let c = config();
    let mut engine = engine(&c);
    let (mut api, tx, _actions) = api(&c);
    let bad = ask(
        &tx,
        "name = \"x\"\n[[shock]]\nsector = \"microloan\"\nmetric = \"npl_ratio\"\nadd_pp = 1\nbogus = 2\n",
        None,
    );
    let broken = ask(&tx, "name = \n", None);
    let absent = ask(&tx, NORTHEAST_NPL, Some("2019-01"));
    api.drain(&mut engine, None);
    for answer in [bad, broken] {
        match answer.blocking_recv().unwrap() {
            Err(StressError::Invalid(m)) => assert!(m.contains("line"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(absent.blocking_recv().unwrap(), Err(StressError::NoData(_))));

    let mut empty = Engine::new(&c, load_rules(&c).unwrap());
    let nothing = ask(&tx, NORTHEAST_NPL, None);
    api.drain(&mut empty, None);
    assert!(matches!(nothing.blocking_recv().unwrap(), Err(StressError::NoData(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pipeline_takes_stress_requests_too() {
    let c = config();
    let mut engine = engine(&c);
    let (mut api, tx, actions) = api(&c);
    let answer = ask(&tx, NORTHEAST_NPL, None);
    assert!(api.next(&mut engine, None).await);
    let got = answer.await.unwrap().expect("a projection");
    assert_eq!(got["scenario"], "northeast microloan NPL +6pp");
    assert!(got["districts"].is_array() && got["mechanisms"].is_array());
    // Once the API is gone, the idle pipeline stops waiting.
    drop(actions);
    assert!(!api.next(&mut engine, None).await);
}

#[test]
fn p_event_is_in_the_institution_view_only_with_a_probability_model() {
    let mut c = config();
    let engine = engine(&c);
    let snap = snapshot(&engine, &c, &[]);
    assert!(snap.institutions().all(|i| i.p_event.is_none()));

    let model = ProbabilityConfig {
        horizon: 6,
        flag_at: 0.3,
        intercept: -3.0,
        coefficients: BTreeMap::from([("score".to_string(), 4.0)]),
    };
    c.probability = Some(model.clone());
    let snap = snapshot(&engine, &c, &[]);
    let expected = p_events(&model, &engine, "2021-06".parse().unwrap());
    assert_eq!(expected.len(), 2);
    for i in snap.institutions() {
        let p = i.p_event.expect("a probability");
        assert_eq!(p.period.to_string(), "2021-06");
        assert_eq!(p.p, expected[&i.id]);
        assert_eq!((p.horizon_months, p.flag_at, p.flagged), (6, 0.3, p.p >= 0.3));
    }
    let p = |id: &str| snap.institutions().find(|i| i.id == id).unwrap().p_event.unwrap().p;
    assert!(p("CQ-MLC-0001") > p("CQ-MLC-0002"), "the riskier company is more likely to have an event");
}
