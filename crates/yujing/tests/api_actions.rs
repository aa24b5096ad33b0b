//! API actions as `yujing run` applies them: through the channel, to the alert book and the
//! store (action, alert and audit record in one transaction), into the next snapshot; and
//! still there after a restart from the store.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::oneshot;
use yujing::durable::{open_engine, persist};
use yujing::metrics::Metrics;
use yujing::replay::load_rules;
use yujing::serve::{ApiLink, link};
use yujing_ingest::Input;
use yujing_model::{Alert, AlertState, Position};
use yujing_serve::{ActionError, ActionRequest, ActionSender, AlertAction, Caller, Role};
use yujing_store::StoreConfig;

fn sample_inputs(n: usize) -> Vec<Input> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/sample/reports-2020.jsonl");
    let text = std::fs::read_to_string(path).expect("the committed sample");
    text.lines()
        .take(n)
        .enumerate()
        .map(|(i, l)| Input {
            bytes: l.as_bytes().to_vec(),
            position: Position::line("sample", i as u64 + 1),
            truncated_from: None,
        })
        .collect()
}

/// Sends one action and lets the pipeline side take it, as the run loop does between batches.
fn act(
    tx: &ActionSender,
    link: &mut ApiLink,
    engine: &mut yujing::engine::Engine,
    store: &mut yujing_store::Store,
    id: &str,
    who: (&str, Role),
    action: AlertAction,
) -> Result<Alert, ActionError> {
    let (reply, answer) = oneshot::channel();
    let caller = Caller { name: who.0.into(), role: who.1 };
    tx.blocking_send(ActionRequest { alert_id: id.into(), caller, action, reply }).unwrap();
    let changed = link.drain(engine, Some(store));
    let answer = answer.blocking_recv().unwrap();
    let ids: Vec<&str> = changed.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, answer.as_ref().ok().map(|a| a.id.as_str()).into_iter().collect::<Vec<_>>());
    answer
}

#[test]
fn actions_are_stored_audited_published_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("yujing.db");
    let config = common::config();
    let mut store = StoreConfig::at(&path).build().unwrap();
    let (mut engine, _) = open_engine(&config, load_rules(&config).unwrap(), &mut store).unwrap();
    let out = engine.process(&sample_inputs(1500)).unwrap();
    persist(&mut engine, &mut store, &out.transitions, Vec::new()).unwrap();

    let metrics = Arc::new(Metrics::new().unwrap());
    let (mut api, snapshots, tx) = link(&config, metrics.clone(), Arc::new(AtomicBool::new(true)));
    api.publish(&engine, &config);
    let open: Vec<Alert> = snapshots.load().alerts().filter(|a| a.state == AlertState::Open).cloned().collect();
    assert!(open.len() >= 2, "the sample opens alerts in its first months");
    let (first, second) = (&open[0], &open[1]);
    let desk = ("duty-desk", Role::Regulator);

    let a = act(&tx, &mut api, &mut engine, &mut store, &first.id, desk, AlertAction::Acknowledge).unwrap();
    assert_eq!(a.state, AlertState::Acknowledged);
    let again = act(&tx, &mut api, &mut engine, &mut store, &first.id, desk, AlertAction::Acknowledge);
    assert!(matches!(again, Err(ActionError::Conflict(_))), "{again:?}");
    let blank = AlertAction::Resolve { note: "  ".into() };
    let refused = act(&tx, &mut api, &mut engine, &mut store, &second.id, desk, blank);
    assert!(matches!(refused, Err(ActionError::Invalid(_))), "{refused:?}");
    let unknown = act(&tx, &mut api, &mut engine, &mut store, "yj-0000000000000000", desk, AlertAction::Acknowledge);
    assert!(matches!(unknown, Err(ActionError::NotFound(_))), "{unknown:?}");
    let note = AlertAction::Resolve { note: "机构已补报并整改".into() };
    let officer = (format!("officer-{}", second.district_code), Role::District(second.district_code.parse().unwrap()));
    let r = act(&tx, &mut api, &mut engine, &mut store, &second.id, (&officer.0, officer.1), note).unwrap();
    assert_eq!(r.state, AlertState::Resolved);
    assert_eq!(r.note.as_deref(), Some("机构已补报并整改"));

    // A request whose client gave up (timed out) before the pipeline took it is not applied.
    let (reply, answer) = oneshot::channel();
    drop(answer);
    let caller = Caller { name: "duty-desk".into(), role: Role::Regulator };
    let action = AlertAction::Assign { assignee: "王五".into() };
    tx.blocking_send(ActionRequest { alert_id: first.id.clone(), caller, action, reply }).unwrap();
    assert!(api.drain(&mut engine, Some(&mut store)).is_empty(), "a timed-out request changes nothing");
    assert_eq!(snapshots.load().alert(&first.id).unwrap().assignee, None);

    // The next snapshot shows both, with who did what.
    let snap = snapshots.load();
    assert_eq!(snap.alert(&first.id).unwrap().state, AlertState::Acknowledged);
    assert_eq!(snap.alert(&second.id).unwrap().state, AlertState::Resolved);
    let audit: Vec<(&str, &str, &str)> =
        snap.audit().iter().map(|e| (e.actor.as_str(), e.action.as_str(), e.alert_id.as_str())).collect();
    assert_eq!(
        audit,
        [("duty-desk", "acknowledge", first.id.as_str()), (officer.0.as_str(), "resolve", second.id.as_str())]
    );

    // The store has them: a restart rebuilds the same states and the same audit trail.
    drop(store);
    let mut store = StoreConfig::at(&path).build().unwrap();
    let (restored, changed) = open_engine(&config, load_rules(&config).unwrap(), &mut store).unwrap();
    assert!(changed.is_empty(), "a restart publishes nothing new: {changed:?}");
    let state = |id: &str| restored.alerts().find(|a| a.id == id).map(|a| a.state);
    assert_eq!(state(&first.id), Some(AlertState::Acknowledged));
    assert_eq!(state(&second.id), Some(AlertState::Resolved));
    let (mut api2, snapshots2, _tx2) = link(&config, metrics, Arc::new(AtomicBool::new(true)));
    api2.load_audit(&store).unwrap();
    api2.publish(&restored, &config);
    let audit2: Vec<(String, String, String, Option<String>)> = snapshots2
        .load()
        .audit()
        .iter()
        .map(|e| (e.actor.clone(), e.action.clone(), e.alert_id.clone(), e.detail.clone()))
        .collect();
    assert_eq!(
        audit2,
        [
            ("duty-desk".to_string(), "acknowledge".to_string(), first.id.clone(), None),
            (officer.0.clone(), "resolve".to_string(), second.id.clone(), Some("机构已补报并整改".to_string())),
        ]
    );
    // Both actions are in the outbox, to go out on yujing.alerts.
    let outbox = store.audit(0, 100_000, true).unwrap();
    let kinds: Vec<&str> = outbox.iter().filter(|a| a.actor != "yujing").map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["acknowledged", "resolved"]);
}
