//! What another instance holds (DESIGN §8): its districts and alerts marked as a peer's,
//! regions and the city marked as merged, institution drill-downs it holds answered
//! `not_held`, and actions on its alerts answered 202 once forwarded.

mod common;

use common::*;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use yujing_model::Level;
use yujing_serve::{ActionError, ServeConfig, Snapshot, SnapshotHandle, action_channel};

/// The test snapshot as an instance holding only 万州 (500101) sees it: 渝中 (500103), its
/// alerts and its institution come from a peer; regions and the city are merged.
fn app_holding_wanzhou() -> axum::Router {
    let mut parts = parts();
    parts.institutions.retain(|i| i.district_code != 500103);
    for a in &parts.aggregates {
        if a.level != Level::District || a.entity_id == YUZHONG_CODE {
            parts.peer_aggregates.insert((a.level, a.entity_id.clone(), a.sector, a.period));
        }
    }
    parts.peer_alerts.extend(parts.alerts.iter().filter(|a| &*a.district_code == YUZHONG_CODE).map(|a| a.id.clone()));
    let snapshots = SnapshotHandle::new(Snapshot::new(parts));
    // The pipeline does not hold 渝中's alerts: it hands actions on them to their holder.
    let (tx, mut rx) = action_channel(8);
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let _ = req.reply.send(Err(ActionError::Forwarded(YUZHONG_CODE.into())));
        }
    });
    let config = ServeConfig { tokens: tokens(), ..ServeConfig::default() };
    config.build_with_stress(snapshots, Some(tx), None, Arc::new(AtomicBool::new(true))).unwrap()
}

#[tokio::test]
async fn a_peers_districts_and_alerts_are_marked_and_regions_and_city_merged() {
    let app = app_holding_wanzhou();
    let r = get(&app, "/api/v1/riskmap?level=district&period=2021-03", REGULATOR).await;
    let source = |id: &str| {
        r.body["entities"].as_array().unwrap().iter().find(|e| e["id"] == id).map(|e| e["source"].clone()).unwrap()
    };
    assert_eq!(source(YUZHONG_CODE), "peer");
    assert!(source(WANZHOU_CODE).is_null(), "this instance's own district carries no source");
    let r = get(&app, "/api/v1/riskmap?level=city&period=2021-03", REGULATOR).await;
    assert_eq!(r.body["entities"][0]["source"], "merged", "{}", r.text);
    let r = get(&app, &format!("/api/v1/districts/{YUZHONG_CODE}?period=2021-03"), REGULATOR).await;
    assert_eq!(r.body["source"], "peer", "{}", r.text);
    assert_eq!(r.body["institutions"].as_array().unwrap().len(), 0, "the peer lists its own institutions");
    assert_eq!(r.body["alerts"][0]["source"], "peer", "{}", r.text);
    let r = get(&app, &format!("/api/v1/districts/{WANZHOU_CODE}?period=2021-03"), REGULATOR).await;
    assert!(r.body.get("source").is_none(), "{}", r.text);
    let r = get(&app, "/api/v1/alerts", REGULATOR).await;
    for a in r.body["items"].as_array().unwrap() {
        assert_eq!(a["source"] == "peer", a["district_code"] == YUZHONG_CODE, "{a}");
    }
    let r = get(&app, "/api/v1/alerts/yj-c-yellow", REGULATOR).await;
    assert_eq!(r.body["source"], "peer", "{}", r.text);
}

#[tokio::test]
async fn an_institution_a_peer_holds_is_not_held_here_and_an_unknown_one_is_not_found() {
    let app = app_holding_wanzhou();
    let r = get(&app, "/api/v1/institutions/MLC-C", REGULATOR).await;
    assert_problem(&r, 404);
    assert_eq!(r.body["code"], "not_held", "{}", r.text);
    let r = get(&app, "/api/v1/institutions/MLC-NOBODY", REGULATOR).await;
    assert_problem(&r, 404);
    assert_eq!(r.body["code"], "not_found", "{}", r.text);
}

#[tokio::test]
async fn an_action_on_a_peers_alert_is_accepted_once_forwarded() {
    let app = app_holding_wanzhou();
    let r = post(&app, "/api/v1/alerts/yj-c-yellow/ack", REGULATOR, "{}").await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.text);
    assert_eq!(r.body["status"], "forwarded");
    assert_eq!(
        (r.body["alert_id"].as_str(), r.body["district_code"].as_str()),
        (Some("yj-c-yellow"), Some(YUZHONG_CODE))
    );
    assert_eq!(r.body["action"], "acknowledge");
}
