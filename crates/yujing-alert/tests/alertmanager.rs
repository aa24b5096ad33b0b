//! The Alertmanager sink against a local HTTP stub of `POST /api/v2/alerts` that records
//! every request and answers with scripted statuses. Time is passed to `tick` explicitly,
//! so nothing here waits on a clock (the retry backoffs are a millisecond).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use yujing_alert::{AlertmanagerConfig, AlertmanagerSink, Error};
use yujing_model::alert::SeverityStep;
use yujing_model::{Alert, AlertState, EntityKind, Evidence, Mechanism, Sector, SectorScope, Severity};

/// One request the stub received.
#[derive(Debug, Clone)]
struct Received {
    content_type: Option<String>,
    body: Value,
}

#[derive(Default)]
struct StubState {
    received: Vec<Received>,
    /// Statuses to answer with, in order; 200 once they run out.
    script: VecDeque<u16>,
}

#[derive(Clone)]
struct Stub {
    url: String,
    state: Arc<Mutex<StubState>>,
}

impl Stub {
    /// Starts the stub on a free port of 127.0.0.1.
    async fn start(script: &[u16]) -> Stub {
        let state = Arc::new(Mutex::new(StubState { received: Vec::new(), script: script.iter().copied().collect() }));
        let app = Router::new().route("/api/v2/alerts", post(receive)).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Stub { url, state }
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    fn script(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script.extend(statuses.iter().copied());
    }
}

async fn receive(State(state): State<Arc<Mutex<StubState>>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let mut s = state.lock().unwrap();
    let content_type = headers.get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    s.received.push(Received { content_type, body });
    let status = StatusCode::from_u16(s.script.pop_front().unwrap_or(200)).unwrap();
    (status, if status.is_success() { String::new() } else { format!("stub says {status}") })
}

fn config(url: &str) -> AlertmanagerConfig {
    AlertmanagerConfig {
        enabled: true,
        url: url.to_owned(),
        resend_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        max_retries: 2,
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(2),
        batch_size: 100,
        generator_base_url: "http://yujing.internal:8080/".to_owned(),
        runbook_url: "https://wiki.internal/yujing/runbooks/{mechanism}#{rule}".to_owned(),
    }
}

fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

const OWNER: &str = "市金融监管局地方金融组织监管处 · 属地区县金融工作部门";
const ID: &str = "yj-3f2a9c0d11e2b4a5";

/// A hand-made orange microloan NPL alert of 渝中区's CQ-MLC-0042, open since 2025-08.
fn alert() -> Alert {
    Alert {
        id: ID.into(),
        dedupe_key: "microloan-npl:institution:CQ-MLC-0042".into(),
        rule: "microloan-npl".into(),
        severity: Severity::Orange,
        mechanism: Mechanism::ExitMechanism,
        mechanism_zh: "地方金融组织退出机制".into(),
        owner: OWNER.into(),
        state: AlertState::Open,
        entity_kind: EntityKind::Institution,
        entity_id: "CQ-MLC-0042".into(),
        entity_name: "重庆某某小额贷款有限公司".into(),
        district_code: "500103".into(),
        sector: SectorScope::One(Sector::Microloan),
        period: "2025-08".parse().unwrap(),
        last_period: "2025-09".parse().unwrap(),
        opened_at: t("2025-09-12T09:30:00+08:00"),
        updated_at: t("2025-10-12T09:30:00+08:00"),
        resolved_at: None,
        respond_by: t("2025-10-17T09:30:00+08:00"),
        history: vec![SeverityStep { period: "2025-08".parse().unwrap(), severity: Severity::Orange }],
        evidence: Evidence {
            metric: "npl_ratio".into(),
            value: 0.162,
            threshold: 0.15,
            direction: "above".into(),
            periods: 2,
            score: Some(78.4).into(),
            trend_z: None.into(),
            indicators: Default::default(),
            summary: "渝中区 重庆某某小额贷款有限公司: npl_ratio 16.2% ≥ 15.0% (橙色) / \
                      CQ-MLC-0042 npl_ratio 16.2% crossed 15.0% (orange)"
                .into(),
        },
        assignee: None,
        note: None,
    }
}

/// What Alertmanager must receive for [`alert`], written out by hand.
fn expected(ends_at: Option<&str>, state: &str, state_zh: &str) -> Value {
    let mut v = json!({
        "labels": {
            "alertname": "microloan-npl",
            "severity": "orange",
            "mechanism": "exit-mechanism",
            "district_code": "500103",
            "sector": "microloan",
            "institution_id": "CQ-MLC-0042"
        },
        "annotations": {
            "summary": "橙色预警 · 地方金融组织退出机制 · 渝中区 重庆某某小额贷款有限公司 / \
                        orange alert · Exit mechanism for local financial organisations · CQ-MLC-0042 (Yuzhong)",
            "description": format!(
                "渝中区 重庆某某小额贷款有限公司: npl_ratio 16.2% ≥ 15.0% (橙色) / \
                 CQ-MLC-0042 npl_ratio 16.2% crossed 15.0% (orange)\n\
                 地方金融组织退出机制：npl_ratio 16.2%，阈值 15.0%，连续 2 期（2025-08 起，最近 2025-09）。\
                 责任单位：{OWNER}；响应时限：2025-10-17 09:30 +08:00；状态：{state_zh}。综合风险评分 78.4。\n\
                 Exit mechanism for local financial organisations: npl_ratio 16.2% against a line of 15.0% \
                 (above), 2 period(s) running, since 2025-08, latest 2025-09. Owner: {OWNER}; \
                 respond by 2025-10-17 09:30 +08:00; state: {state}. Composite risk score 78.4."
            ),
            "runbook_url": "https://wiki.internal/yujing/runbooks/exit-mechanism#microloan-npl",
            "alert_id": ID,
            "owner": OWNER,
            "respond_by": "2025-10-17T01:30:00Z",
            "state": state
        },
        "startsAt": "2025-09-12T01:30:00Z",
        "generatorURL": "http://yujing.internal:8080/api/v1/alerts/yj-3f2a9c0d11e2b4a5"
    });
    if let Some(e) = ends_at {
        v["endsAt"] = json!(e);
    }
    v
}

fn sink(stub_url: &str) -> AlertmanagerSink {
    config(stub_url).build().unwrap()
}

#[tokio::test]
async fn posts_the_exact_v2_json() {
    let stub = Stub::start(&[]).await;
    let mut sink = sink(&stub.url);
    sink.update(&alert());
    assert_eq!(sink.tick(Instant::now()).await.unwrap(), 1);
    let received = stub.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(received[0].body, json!([expected(None, "open", "待处理")]));
    let c = sink.counters();
    assert_eq!((c.pushes.load(Ordering::Relaxed), c.failures.load(Ordering::Relaxed)), (1, 0));
    assert_eq!(c.alerts_sent.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn resends_while_open_and_sends_ends_at_on_resolve() {
    let stub = Stub::start(&[]).await;
    let mut sink = sink(&stub.url);
    let t0 = Instant::now();
    let mut a = alert();
    sink.update(&a);
    assert_eq!(sink.tick(t0).await.unwrap(), 1);
    // Within the resend interval nothing is due; at it, the alert goes out again.
    assert_eq!(sink.tick(t0 + Duration::from_secs(59)).await.unwrap(), 0);
    assert_eq!(stub.received().len(), 1);
    assert_eq!(sink.tick(t0 + Duration::from_secs(60)).await.unwrap(), 1);
    let received = stub.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].body, received[0].body);

    // Acknowledged is still active: sent at once because an annotation changed, no endsAt.
    a.state = AlertState::Acknowledged;
    sink.update(&a);
    assert_eq!(sink.tick(t0 + Duration::from_secs(61)).await.unwrap(), 1);
    assert_eq!(stub.received()[2].body, json!([expected(None, "acknowledged", "已认领")]));

    a.state = AlertState::AutoResolved;
    a.resolved_at = Some(t("2025-11-12T09:30:00+08:00"));
    a.updated_at = t("2025-11-12T09:30:00+08:00");
    sink.update(&a);
    assert_eq!(sink.tick(t0 + Duration::from_secs(62)).await.unwrap(), 1);
    let received = stub.received();
    assert_eq!(received.len(), 4);
    assert_eq!(received[3].body, json!([expected(Some("2025-11-12T01:30:00Z"), "auto-resolved", "指标回落自动解除")]));
    // Resolved and accepted: never sent again.
    assert!(sink.is_empty());
    assert_eq!(sink.tick(t0 + Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(stub.received().len(), 4);
}

#[tokio::test]
async fn retries_a_503_and_a_429_then_succeeds() {
    let stub = Stub::start(&[503, 429]).await;
    let mut sink = sink(&stub.url);
    sink.update(&alert());
    assert_eq!(sink.tick(Instant::now()).await.unwrap(), 1);
    let received = stub.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.body == json!([expected(None, "open", "待处理")])));
    let c = sink.counters();
    assert_eq!(c.pushes.load(Ordering::Relaxed), 1);
    assert_eq!(c.retries.load(Ordering::Relaxed), 2);
    assert_eq!(c.failures.load(Ordering::Relaxed), 0);
    assert!(sink.due(Instant::now()).is_empty());
}

#[tokio::test]
async fn does_not_retry_a_400_and_keeps_the_alert_due() {
    let stub = Stub::start(&[400]).await;
    let mut sink = sink(&stub.url);
    sink.update(&alert());
    let t0 = Instant::now();
    match sink.tick(t0).await {
        Err(Error::AlertmanagerRefused { status, body, .. }) => {
            assert_eq!(status, 400);
            assert_eq!(body, "stub says 400 Bad Request");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(stub.received().len(), 1, "a 400 is not retried");
    let c = sink.counters();
    assert_eq!((c.pushes.load(Ordering::Relaxed), c.failures.load(Ordering::Relaxed)), (1, 1));
    assert_eq!(c.retries.load(Ordering::Relaxed), 0);
    // Not dropped: due at once, and the next tick delivers it.
    assert_eq!(sink.due(t0).len(), 1);
    assert_eq!(sink.tick(t0).await.unwrap(), 1);
    assert_eq!(stub.received().len(), 2);
    assert!(sink.due(t0).is_empty());
}

#[tokio::test]
async fn counts_failures_when_alertmanager_is_down() {
    // A port that was free a moment ago and has no listener now.
    let url = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut sink = sink(&url);
    sink.update(&alert());
    let t0 = Instant::now();
    match sink.tick(t0).await {
        Err(Error::AlertmanagerUnavailable { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("expected unavailable, got {other:?}"),
    }
    let c = sink.counters();
    assert_eq!(c.pushes.load(Ordering::Relaxed), 1);
    assert_eq!(c.failures.load(Ordering::Relaxed), 1);
    assert_eq!(c.retries.load(Ordering::Relaxed), 2);
    assert_eq!(c.alerts_sent.load(Ordering::Relaxed), 0);
    assert_eq!(sink.due(t0), vec![sink.postable(&alert())], "the failed alert stays due");
}

#[tokio::test]
async fn sends_in_batches_and_stops_at_an_unavailable_one() {
    let stub = Stub::start(&[]).await;
    let mut sink = AlertmanagerConfig { batch_size: 2, ..config(&stub.url) }.build().unwrap();
    for i in 0..5 {
        let mut a = alert();
        a.id = format!("yj-00000000000000{i:02}");
        a.entity_id = format!("CQ-MLC-{i:04}").into();
        sink.update(&a);
    }
    // The second batch meets three 503s in a row (max_retries = 2): the tick stops there.
    stub.script(&[200, 503, 503, 503]);
    let t0 = Instant::now();
    assert!(matches!(sink.tick(t0).await, Err(Error::AlertmanagerUnavailable { .. })));
    let sizes: Vec<usize> = stub.received().iter().map(|r| r.body.as_array().unwrap().len()).collect();
    assert_eq!(sizes, [2, 2, 2, 2]);
    assert_eq!(sink.due(t0).len(), 3, "the first batch went through, the other three alerts are due");
    assert_eq!(sink.tick(t0).await.unwrap(), 3);
    let sizes: Vec<usize> = stub.received().iter().skip(4).map(|r| r.body.as_array().unwrap().len()).collect();
    assert_eq!(sizes, [2, 1]);
}
