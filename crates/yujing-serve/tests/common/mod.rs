//! A small hand-made snapshot, tokens for every role, a stand-in for the pipeline's action
//! handling, and request helpers.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tower::ServiceExt;
use yujing_model::alert::SeverityStep;
use yujing_model::score::TrendBaseline;
use yujing_model::{
    AggregateScore, Alert, AlertState, Contributor, DecodeLimits, EntityKind, Evidence, Grade, Indicator,
    IndicatorScore, InstitutionScore, Level, Mechanism, Period, Sector, SectorScope, Severity, decode,
};
use yujing_serve::{
    ActionError, ActionReceiver, AlertAction, AuditEntry, IndicatorCutoff, InstitutionView, Role, ServeConfig,
    Snapshot, SnapshotHandle, SnapshotParts, StressError, StressReceiver, TokenConfig, action_channel, hash_token,
    stress_channel,
};

pub const REGULATOR: &str = "tok-regulator";
pub const ANALYST: &str = "tok-analyst";
/// A district officer of 万州区 (500101).
pub const WANZHOU: &str = "tok-wanzhou";
pub const WANZHOU_CODE: &str = "500101";
pub const YUZHONG_CODE: &str = "500103";
/// The latest period of the fixture.
pub const LATEST: &str = "2021-03";

pub fn period(s: &str) -> Period {
    s.parse().unwrap()
}

pub fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn report_line(id: &str, district: &str, p: &str, npl: f64) -> String {
    format!(
        r#"{{"schema_version":1,"report_id":"{id}/{p}/r1","institution_id":"{id}","institution_name":"重庆{id}小额贷款有限公司",
        "sector":"microloan","district_code":"{district}","period":"{p}","revision":1,
        "submitted_at":"{p}-28T10:00:00+08:00","metrics":{{"loan_balance":100000000,"npl_balance":{npl},
        "net_assets":80000000,"largest_borrower_balance":5000000,"borrowings":30000000}}}}"#
    )
}

fn inst_score(id: &str, district: u32, p: &str, npl: f64) -> InstitutionScore {
    let sub = ((npl - 0.03) / 0.12).clamp(0.0, 1.0) * 100.0;
    let base = sub * 0.5 + 10.0 * 0.25 + 20.0 * 0.25;
    InstitutionScore {
        institution_id: id.into(),
        period: period(p),
        sector: Sector::Microloan,
        district_code: district,
        indicators: vec![
            IndicatorScore { indicator: Indicator::NplRatio, value: Some(npl).into(), sub_score: sub },
            IndicatorScore { indicator: Indicator::Concentration, value: Some(0.0625).into(), sub_score: 10.0 },
            IndicatorScore { indicator: Indicator::Leverage, value: Some(0.375).into(), sub_score: 20.0 },
        ]
        .into(),
        base_score: base,
        trend_delta: None.into(),
        trend_points: 0.0,
        score: base,
        grade: grade(base),
        exposure: 1e8,
    }
}

fn grade(score: f64) -> Grade {
    match score {
        s if s >= 90.0 => Grade::Red,
        s if s >= 75.0 => Grade::Orange,
        s if s >= 60.0 => Grade::Yellow,
        s if s >= 40.0 => Grade::Blue,
        _ => Grade::Normal,
    }
}

fn aggregate(
    level: Level,
    id: &str,
    name: &str,
    scope: SectorScope,
    p: &str,
    scores: &[&InstitutionScore],
) -> AggregateScore {
    let n = scores.len() as f64;
    let score = scores.iter().map(|s| s.score).sum::<f64>() / n;
    let mut counts = [0u32; 5];
    for s in scores {
        counts[s.grade as usize] += 1;
    }
    let mut top: Vec<Contributor> = scores
        .iter()
        .map(|s| Contributor { institution_id: s.institution_id.to_string(), score: s.score, points: s.score / n })
        .collect();
    top.sort_by(|a, b| b.points.total_cmp(&a.points));
    AggregateScore {
        level,
        entity_id: id.into(),
        entity_name: name.into(),
        sector: scope,
        period: period(p),
        score,
        grade: grade(score),
        institutions: scores.len() as u32,
        grade_counts: counts,
        exposure: 1e8 * n,
        npl_ratio: Some(0.05),
        payout_rate: None,
        p2p_complaints: None,
        p2p_lenders_unpaid: None,
        top,
    }
}

pub fn alert(id: &str, entity: &str, district: &str, severity: Severity, state: AlertState, opened: &str) -> Alert {
    Alert {
        id: id.into(),
        dedupe_key: format!("microloan-npl:institution:{entity}"),
        rule: "microloan-npl".into(),
        severity,
        mechanism: Mechanism::ExitMechanism,
        mechanism_zh: Mechanism::ExitMechanism.name_zh().into(),
        owner: "district".into(),
        state,
        entity_kind: EntityKind::Institution,
        entity_id: entity.into(),
        entity_name: format!("重庆{entity}小额贷款有限公司").into(),
        district_code: district.into(),
        sector: SectorScope::One(Sector::Microloan),
        period: period("2021-02"),
        last_period: period("2021-03"),
        opened_at: at(opened),
        updated_at: at(opened),
        resolved_at: None,
        respond_by: at(opened) + chrono::Duration::days(10),
        history: vec![SeverityStep { period: period("2021-02"), severity }],
        evidence: Evidence {
            metric: "npl_ratio".into(),
            value: 0.16,
            threshold: 0.15,
            direction: "above".into(),
            periods: 1,
            score: Some(60.0).into(),
            trend_z: None.into(),
            indicators: Default::default(),
            summary: format!("{entity} npl_ratio crossed the line"),
        },
        assignee: None,
        note: None,
    }
}

/// Two periods, three microloan companies: two in 万州 (500101), one in 渝中 (500103).
pub fn parts() -> SnapshotParts {
    let insts = [("MLC-A", 500101u32, [0.04, 0.09]), ("MLC-B", 500101, [0.10, 0.17]), ("MLC-C", 500103, [0.05, 0.06])];
    let periods = ["2021-02", LATEST];
    let mut institutions = Vec::new();
    let mut scores: BTreeMap<(&str, &str), InstitutionScore> = BTreeMap::new();
    for (id, district, npl) in insts {
        let mut view = InstitutionView {
            id: id.into(),
            name: format!("重庆{id}小额贷款有限公司"),
            sector: Sector::Microloan,
            district_code: district,
            scores: Vec::new(),
            reports: Vec::new(),
            p_event: None,
        };
        for (p, npl) in periods.iter().zip(npl) {
            let mut s = inst_score(id, district, p, npl);
            if *p == LATEST {
                // A change since 2021-02 of 1.5 points, z = 0.5 against the baseline below.
                s.trend_delta = Some(1.5).into();
            }
            scores.insert((id, p), s.clone());
            view.scores.push(Arc::new(s));
            let line = report_line(id, &district.to_string(), p, npl * 1e8);
            view.reports.push(Arc::new(decode(line.as_bytes(), &DecodeLimits::default()).unwrap()));
        }
        institutions.push(Arc::new(view));
    }
    let mut aggregates = Vec::new();
    for p in periods {
        let a = &scores[&("MLC-A", p)];
        let b = &scores[&("MLC-B", p)];
        let c = &scores[&("MLC-C", p)];
        for scope in [SectorScope::All, SectorScope::One(Sector::Microloan)] {
            aggregates.push(aggregate(Level::District, WANZHOU_CODE, "万州区", scope, p, &[a, b]));
            aggregates.push(aggregate(Level::District, YUZHONG_CODE, "渝中区", scope, p, &[c]));
            aggregates.push(aggregate(Level::Region, "main_urban", "主城都市区", scope, p, &[c]));
            aggregates.push(aggregate(Level::Region, "northeast", "渝东北三峡库区城镇群", scope, p, &[a, b]));
            aggregates.push(aggregate(Level::City, "500000", "重庆市", scope, p, &[a, b, c]));
        }
    }
    let alerts = vec![
        alert("yj-b-orange", "MLC-B", WANZHOU_CODE, Severity::Orange, AlertState::Open, "2021-03-28T10:00:00+08:00"),
        alert("yj-a-blue", "MLC-A", WANZHOU_CODE, Severity::Blue, AlertState::Open, "2021-03-28T10:00:00+08:00"),
        alert("yj-c-yellow", "MLC-C", YUZHONG_CODE, Severity::Yellow, AlertState::Open, "2021-02-28T10:00:00+08:00"),
        alert("yj-c-old", "MLC-C", YUZHONG_CODE, Severity::Blue, AlertState::AutoResolved, "2021-01-28T10:00:00+08:00"),
    ];
    let cutoff = |indicator, safe, critical, weight| IndicatorCutoff {
        sector: Sector::Microloan,
        indicator,
        safe,
        critical,
        weight,
    };
    let cutoffs = vec![
        cutoff(Indicator::NplRatio, 0.03, 0.15, 0.5),
        cutoff(Indicator::Concentration, 0.05, 0.175, 0.25),
        cutoff(Indicator::Leverage, 0.25, 0.875, 0.25),
    ];
    SnapshotParts {
        institutions,
        aggregates,
        alerts: alerts.into_iter().map(Arc::new).collect(),
        audit: Vec::new(),
        cutoffs,
        trend_baselines: vec![((Sector::Microloan, period(LATEST)), TrendBaseline { mean: 0.5, sd: 2.0, peers: 6 })],
        complete_through: Some(period(LATEST)),
        stats: Default::default(),
        generated_at: None,
        ..Default::default()
    }
}

pub fn tokens() -> Vec<TokenConfig> {
    let t = |name: &str, role: &str, token: &str| TokenConfig {
        name: name.into(),
        role: role.parse::<Role>().unwrap(),
        sha256: hash_token(token),
    };
    vec![
        t("duty-desk", "regulator", REGULATOR),
        t("analyst-li", "analyst", ANALYST),
        t("wanzhou-officer", "district:500101", WANZHOU),
    ]
}

/// Applies actions as the pipeline does (to its own copy of the alerts), publishes a
/// snapshot with the changed alert and an audit entry, then replies.
fn spawn_pipeline(mut rx: ActionReceiver, snapshots: SnapshotHandle) {
    tokio::spawn(async move {
        let mut seq = 0;
        while let Some(req) = rx.recv().await {
            let snap = snapshots.load();
            let result = match snap.alert(&req.alert_id).cloned() {
                None => Err(ActionError::NotFound(req.alert_id.clone())),
                Some(mut a) => match (&req.action, a.state) {
                    (_, s) if !s.is_active() => Err(ActionError::Conflict(format!("alert is {}", s.as_str()))),
                    (AlertAction::Acknowledge, AlertState::Acknowledged) => {
                        Err(ActionError::Conflict("already acknowledged".into()))
                    }
                    (AlertAction::Acknowledge, _) => {
                        a.state = AlertState::Acknowledged;
                        Ok(a)
                    }
                    (AlertAction::Assign { assignee }, _) => {
                        a.assignee = Some(assignee.clone());
                        Ok(a)
                    }
                    (AlertAction::Resolve { note }, _) => {
                        a.state = AlertState::Resolved;
                        a.note = Some(note.clone());
                        Ok(a)
                    }
                },
            };
            if let Ok(a) = &result {
                seq += 1;
                let entry = AuditEntry {
                    seq,
                    at: at("2021-04-01T09:00:00+08:00"),
                    actor: req.caller.name.clone(),
                    role: req.caller.role.to_string(),
                    action: req.action.verb().into(),
                    alert_id: a.id.clone(),
                    district_code: a.district_code.to_string(),
                    detail: req.action.detail().map(str::to_string),
                };
                snapshots.publish(snap.with_action(Arc::new(a.clone()), Some(entry)));
            }
            let _ = req.reply.send(result);
        }
    });
}

/// Answers stress requests as the pipeline would, without projecting: a scenario without
/// a `[[shock]]` is refused as the parser would refuse it; otherwise the reply echoes what
/// was asked, in the projection's shape.
fn spawn_stress_pipeline(mut rx: StressReceiver) {
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let result = if req.scenario.contains("[[shock]]") {
                Ok(serde_json::json!({
                    "scenario": req.scenario,
                    "period": req.period.map(|p| p.to_string()),
                    "asked_by": req.caller.name,
                    "districts": [],
                    "mechanisms": [],
                }))
            } else {
                Err(StressError::Invalid("TOML parse error at line 1, column 1: a scenario needs a shock".into()))
            };
            let _ = req.reply.send(result);
        }
    });
}

pub struct App {
    pub router: Router,
    pub snapshots: SnapshotHandle,
    pub ready: Arc<AtomicBool>,
}

/// The application over the test snapshot, with actions applied by a stand-in pipeline.
/// Needs a tokio runtime.
pub fn app() -> App {
    app_with(true)
}

pub fn app_with(actions: bool) -> App {
    app_full(actions, true)
}

/// The application with or without a stand-in pipeline for actions and for stress requests.
pub fn app_full(actions: bool, stress: bool) -> App {
    let config = ServeConfig { tokens: tokens(), max_body_bytes: 1024, ..ServeConfig::default() };
    let snapshots = SnapshotHandle::new(Snapshot::new(parts()));
    let ready = Arc::new(AtomicBool::new(true));
    let sender = actions.then(|| {
        let (tx, rx) = action_channel(8);
        spawn_pipeline(rx, snapshots.clone());
        tx
    });
    let stress = stress.then(|| {
        let (tx, rx) = stress_channel(4);
        spawn_stress_pipeline(rx);
        tx
    });
    let router = config.build_with_stress(snapshots.clone(), sender, stress, ready.clone()).unwrap();
    App { router, snapshots, ready }
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    pub body: Value,
    pub text: String,
}

pub async fn send(router: &Router, method: &str, uri: &str, token: Option<&str>, body: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let header = |n: &str| res.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let content_type = header("content-type").unwrap_or_default();
    let www_authenticate = header("www-authenticate");
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, content_type, www_authenticate, body, text }
}

pub async fn get(router: &Router, uri: &str, token: &str) -> Reply {
    send(router, "GET", uri, Some(token), None).await
}

pub async fn post(router: &Router, uri: &str, token: &str, body: &str) -> Reply {
    send(router, "POST", uri, Some(token), Some(body)).await
}

/// Asserts a problem+json reply with this status.
pub fn assert_problem(r: &Reply, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json", "{}", r.text);
    assert_eq!(r.body["status"], status, "{}", r.text);
    assert!(r.body["detail"].is_string() && r.body["title"].is_string() && r.body["code"].is_string(), "{}", r.text);
}

/// The ids of a list of alerts.
pub fn ids(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
}
