//! Every endpoint, every role, 401/403, bad parameters, actions and the audit log, on a
//! small hand-made snapshot.

mod common;

use common::*;
use serde_json::Value;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let app = app();
    let r = send(&app.router, "GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    let r = send(&app.router, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 200);
    app.ready.store(false, Ordering::Relaxed);
    let r = send(&app.router, "GET", "/readyz", None, None).await;
    assert_eq!(r.status, 503);
}

#[tokio::test]
async fn missing_or_unknown_tokens_get_401_with_a_bearer_challenge() {
    let app = app();
    for uri in ["/api/v1/riskmap", "/api/v1/alerts", "/api/v1/audit", "/api/v1/districts/500101"] {
        let r = send(&app.router, "GET", uri, None, None).await;
        assert_problem(&r, 401);
        assert!(r.www_authenticate.as_deref().unwrap().starts_with("Bearer"), "{uri}");
        let r = send(&app.router, "GET", uri, Some("not-a-token"), None).await;
        assert_problem(&r, 401);
        assert!(r.www_authenticate.as_deref().unwrap().contains("invalid_token"), "{uri}");
    }
    let r = send(&app.router, "POST", "/api/v1/alerts/yj-a-blue/ack", None, Some("{}")).await;
    assert_problem(&r, 401);
    // A token in another scheme is no bearer token.
    let req = axum::http::Request::get("/api/v1/riskmap")
        .header("authorization", format!("Basic {REGULATOR}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(app.router.clone(), req).await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn riskmap_for_each_level_and_sector() {
    let app = app();
    let r = get(&app.router, "/api/v1/riskmap", REGULATOR).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["level"], "district");
    assert_eq!(r.body["period"], "2021-03", "the default is the latest complete period");
    assert_eq!(r.body["periods"], serde_json::json!(["2021-02", "2021-03"]));
    let entities = r.body["entities"].as_array().unwrap();
    let codes: Vec<&str> = entities.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(codes, [WANZHOU_CODE, YUZHONG_CODE]);
    let wanzhou = &entities[0];
    assert_eq!(wanzhou["institutions"], 2);
    assert_eq!(wanzhou["name_pinyin"], "Wanzhou");
    assert_eq!(wanzhou["region"], "northeast");
    let counts: u64 = wanzhou["grade_counts"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(counts, 2);
    assert_eq!(wanzhou["top"][0]["institution_id"], "MLC-B", "the riskiest contributor comes first");
    assert_eq!(wanzhou["top"][0]["district_code"], WANZHOU_CODE);
    assert_eq!(wanzhou["open_alerts"]["orange"], 1);
    assert_eq!(wanzhou["open_alerts"]["blue"], 1);
    assert_eq!(wanzhou["sectors"][0]["sector"], "microloan");
    assert!(wanzhou["npl_ratio"].is_number());

    let r = get(&app.router, "/api/v1/riskmap?level=region&sector=microloan&period=2021-02", REGULATOR).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["sector"], "microloan");
    assert_eq!(r.body["period"], "2021-02");
    assert_eq!(r.body["entities"].as_array().unwrap().len(), 2);
    let northeast = r.body["entities"].as_array().unwrap().iter().find(|e| e["id"] == "northeast").unwrap();
    assert_eq!(northeast["open_alerts"]["orange"], 1, "Wanzhou's alerts count for its region");
    assert!(northeast.get("sectors").is_none(), "sector figures only on the all-sector map");

    let r = get(&app.router, "/api/v1/riskmap?level=city", ANALYST).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["entities"][0]["id"], "500000");
    assert_eq!(r.body["entities"][0]["institutions"], 3);
    let open: u64 =
        r.body["entities"][0]["open_alerts"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(open, 3, "every active alert counts city-wide, the auto-resolved one does not");
}

#[tokio::test]
async fn riskmap_rejects_bad_parameters() {
    let app = app();
    for (uri, status) in [
        ("/api/v1/riskmap?level=province", 400),
        ("/api/v1/riskmap?level=institution", 400),
        ("/api/v1/riskmap?sector=insurance", 400),
        ("/api/v1/riskmap?period=2021-13", 400),
        ("/api/v1/riskmap?period=march", 400),
        ("/api/v1/riskmap?colour=red", 400),
        ("/api/v1/riskmap?period=2019-01", 404),
    ] {
        let r = get(&app.router, uri, REGULATOR).await;
        assert_problem(&r, status);
    }
}

#[tokio::test]
async fn a_district_officer_sees_only_their_district_on_the_map() {
    let app = app();
    let r = get(&app.router, "/api/v1/riskmap", WANZHOU).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let entities = r.body["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 1);
    assert_eq!(entities[0]["id"], WANZHOU_CODE);
    for level in ["region", "city"] {
        let r = get(&app.router, &format!("/api/v1/riskmap?level={level}"), WANZHOU).await;
        assert_problem(&r, 403);
        assert!(r.www_authenticate.is_none());
    }
}

#[tokio::test]
async fn district_page_history_sectors_and_ranking() {
    let app = app();
    let r = get(&app.router, "/api/v1/districts/500101", REGULATOR).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "万州区");
    assert_eq!(r.body["period"], "2021-03");
    let history = r.body["history"].as_array().unwrap();
    assert_eq!(history.iter().map(|h| h["period"].as_str().unwrap()).collect::<Vec<_>>(), ["2021-02", "2021-03"]);
    let sectors: Vec<&str> =
        r.body["sectors"].as_array().unwrap().iter().map(|s| s["sector"].as_str().unwrap()).collect();
    assert_eq!(sectors, ["microloan", "all"]);
    let ranked = r.body["institutions"].as_array().unwrap();
    assert_eq!(ranked.len(), 2);
    assert!(ranked[0]["score"].as_f64() >= ranked[1]["score"].as_f64(), "riskiest first");
    assert_eq!(ranked[0]["id"], "MLC-B");
    assert_eq!(ids(&r.body["alerts"]), ["yj-b-orange", "yj-a-blue"], "active alerts, most severe first");
    assert_eq!(r.body["current"]["id"], WANZHOU_CODE);

    let r = get(&app.router, "/api/v1/districts/500101?period=2021-02&sector=microloan", ANALYST).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["period"], "2021-02");
    assert_eq!(r.body["sector"], "microloan");
    let r = get(&app.router, "/api/v1/districts/500101?sector=bank", REGULATOR).await;
    assert_eq!(r.status, 200, "a district without banks has an empty bank history");
    assert!(r.body["history"].as_array().unwrap().is_empty() && r.body["institutions"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn district_page_errors_and_scope() {
    let app = app();
    for code in ["999999", "500232", "wanzhou"] {
        let r = get(&app.router, &format!("/api/v1/districts/{code}"), REGULATOR).await;
        assert_problem(&r, 404);
    }
    assert_problem(&get(&app.router, "/api/v1/districts/500101?period=2021-3x", REGULATOR).await, 400);
    assert_problem(&get(&app.router, "/api/v1/districts/500101?level=city", REGULATOR).await, 400);
    assert_problem(&get(&app.router, "/api/v1/districts/500103", WANZHOU).await, 403);
    let r = get(&app.router, "/api/v1/districts/500101", WANZHOU).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn institution_page_explains_the_score() {
    let app = app();
    let r = get(&app.router, "/api/v1/institutions/MLC-B", REGULATOR).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["district_code"], WANZHOU_CODE);
    assert_eq!(r.body["district_name"], "万州区");
    let score = &r.body["score"];
    assert_eq!(score["period"], "2021-03", "the latest period by default");
    // The z-score is the change against the snapshot's baseline of the sector-period.
    assert_eq!((score["trend_delta"].as_f64(), score["trend_z"].as_f64()), (Some(1.5), Some(0.5)));
    let parts = score["indicators"].as_array().unwrap();
    let total: f64 = parts.iter().map(|p| p["points"].as_f64().unwrap()).sum();
    assert!((total - score["base_score"].as_f64().unwrap()).abs() < 1e-9, "the points add up to the base score");
    for p in parts {
        let expect = p["sub_score"].as_f64().unwrap() * p["weight"].as_f64().unwrap();
        assert!((p["points"].as_f64().unwrap() - expect).abs() < 1e-9);
    }
    assert_eq!(parts[0]["indicator"], "npl_ratio");
    assert_eq!(parts[0]["safe"], 0.03);
    assert_eq!(parts[0]["critical"], 0.15);
    // The weights are the sector's, from the configuration the snapshot carries.
    assert_eq!((parts[1]["safe"].as_f64(), parts[1]["weight"].as_f64()), (Some(0.05), Some(0.25)));
    let explanation = score["explanation"].as_str().unwrap();
    assert!(explanation.contains("npl_ratio 17.00%") && explanation.contains("critical 15.00%"), "{explanation}");
    assert_eq!(r.body["history"].as_array().unwrap().len(), 2);
    let reports = r.body["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1]["report_id"], "MLC-B/2021-03/r1");
    assert!(reports[1]["metrics"]["loan_balance"].is_number());
    assert_eq!(ids(&r.body["alerts"]), ["yj-b-orange"]);

    let r = get(&app.router, "/api/v1/institutions/MLC-B?period=2021-02", ANALYST).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["score"]["period"], "2021-02");
}

#[tokio::test]
async fn institution_page_errors_and_scope() {
    let app = app();
    assert_problem(&get(&app.router, "/api/v1/institutions/NOPE", REGULATOR).await, 404);
    assert_problem(&get(&app.router, "/api/v1/institutions/MLC-B?period=2020-01", REGULATOR).await, 404);
    assert_problem(&get(&app.router, "/api/v1/institutions/MLC-B?period=soon", REGULATOR).await, 400);
    assert_problem(&get(&app.router, "/api/v1/institutions/MLC-C", WANZHOU).await, 403);
    assert_eq!(get(&app.router, "/api/v1/institutions/MLC-A", WANZHOU).await.status, 200);
}

#[tokio::test]
async fn alert_list_filters_and_order() {
    let app = app();
    let r = get(&app.router, "/api/v1/alerts", REGULATOR).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["total"], 4);
    assert_eq!(ids(&r.body["items"]), ["yj-b-orange", "yj-c-yellow", "yj-a-blue", "yj-c-old"]);
    assert!(r.body.get("next").is_none());
    let cases: [(&str, &[&str]); 8] = [
        ("state=active", &["yj-b-orange", "yj-c-yellow", "yj-a-blue"]),
        ("state=auto-resolved", &["yj-c-old"]),
        ("severity=blue,yellow", &["yj-c-yellow", "yj-a-blue", "yj-c-old"]),
        ("mechanism=exit-mechanism&district=500103", &["yj-c-yellow", "yj-c-old"]),
        ("mechanism=grid-management", &[]),
        ("sector=microloan&state=open&severity=orange", &["yj-b-orange"]),
        ("sector=bank", &[]),
        ("since=2021-03-01", &["yj-b-orange", "yj-a-blue"]),
    ];
    for (q, expect) in cases {
        let r = get(&app.router, &format!("/api/v1/alerts?{q}"), ANALYST).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text);
        assert_eq!(ids(&r.body["items"]), expect, "{q}");
    }
    let r = get(&app.router, "/api/v1/alerts?since=2021-03-28T02:00:00Z", REGULATOR).await;
    assert_eq!(ids(&r.body["items"]), ["yj-b-orange", "yj-a-blue"]);
}

#[tokio::test]
async fn alert_list_pages() {
    let app = app();
    let mut seen = Vec::new();
    let mut uri = "/api/v1/alerts?limit=3".to_string();
    loop {
        let r = get(&app.router, &uri, REGULATOR).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["limit"], 3);
        seen.extend(ids(&r.body["items"]));
        match r.body["next"].as_str() {
            Some(next) => uri = format!("/api/v1/alerts?limit=3&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["yj-b-orange", "yj-c-yellow", "yj-a-blue", "yj-c-old"]);
    for q in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "cursor=abc",
        "state=closed",
        "severity=purple",
        "mechanism=x",
        "district=123",
        "sector=all,bank",
        "since=yesterday",
        "page=2",
    ] {
        assert_problem(&get(&app.router, &format!("/api/v1/alerts?{q}"), REGULATOR).await, 400);
    }
    let r = get(&app.router, "/api/v1/alerts?limit=500&cursor=100", REGULATOR).await;
    assert_eq!(r.status, 200);
    assert!(r.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_district_officer_lists_only_their_alerts() {
    let app = app();
    let r = get(&app.router, "/api/v1/alerts", WANZHOU).await;
    assert_eq!(ids(&r.body["items"]), ["yj-b-orange", "yj-a-blue"]);
    let r = get(&app.router, "/api/v1/alerts?district=500101", WANZHOU).await;
    assert_eq!(r.status, 200);
    assert_problem(&get(&app.router, "/api/v1/alerts?district=500103", WANZHOU).await, 403);
    assert_eq!(get(&app.router, "/api/v1/alerts/yj-a-blue", WANZHOU).await.status, 200);
    assert_problem(&get(&app.router, "/api/v1/alerts/yj-c-yellow", WANZHOU).await, 403);
    let r = get(&app.router, "/api/v1/alerts/yj-c-yellow", ANALYST).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["district_code"], YUZHONG_CODE);
    assert_problem(&get(&app.router, "/api/v1/alerts/yj-nope", REGULATOR).await, 404);
}

#[tokio::test]
async fn regulator_acknowledges_assigns_and_resolves_with_a_note() {
    let app = app();
    let r = post(&app.router, "/api/v1/alerts/yj-c-yellow/ack", REGULATOR, "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "acknowledged");
    assert_eq!(get(&app.router, "/api/v1/alerts/yj-c-yellow", ANALYST).await.body["state"], "acknowledged");
    assert_problem(&post(&app.router, "/api/v1/alerts/yj-c-yellow/ack", REGULATOR, "{}").await, 409);

    let r = post(&app.router, "/api/v1/alerts/yj-c-yellow/assign", REGULATOR, r#"{"assignee":"王五"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["assignee"], "王五");
    assert_problem(&post(&app.router, "/api/v1/alerts/yj-c-yellow/assign", REGULATOR, "{}").await, 422);

    for body in ["{}", r#"{"note":"   "}"#, r#"{"note":null}"#, "", r#"{"note":7}"#, r#"{"note":"x","extra":1}"#] {
        let r = post(&app.router, "/api/v1/alerts/yj-c-yellow/resolve", REGULATOR, body).await;
        assert_problem(&r, 422);
    }
    assert_problem(&post(&app.router, "/api/v1/alerts/yj-c-yellow/resolve", REGULATOR, "{note:").await, 400);
    assert_problem(&post(&app.router, "/api/v1/alerts/yj-c-yellow/resolve", REGULATOR, "[1]").await, 400);
    let big = format!(r#"{{"note":"{}"}}"#, "x".repeat(4096));
    assert_problem(&post(&app.router, "/api/v1/alerts/yj-c-yellow/resolve", REGULATOR, &big).await, 413);

    let r = post(&app.router, "/api/v1/alerts/yj-c-yellow/resolve", REGULATOR, r#"{"note":"机构已整改"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "resolved");
    assert_eq!(r.body["note"], "机构已整改");
    assert_problem(
        &post(&app.router, "/api/v1/alerts/yj-c-yellow/resolve", REGULATOR, r#"{"note":"again"}"#).await,
        409,
    );
    assert_problem(&post(&app.router, "/api/v1/alerts/yj-nope/ack", REGULATOR, "").await, 404);

    let r = get(&app.router, "/api/v1/audit", REGULATOR).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let entries = r.body["items"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["resolve", "assign", "acknowledge"], "newest first, refused actions not audited");
    assert!(entries.iter().all(|e| e["actor"] == "duty-desk" && e["role"] == "regulator" && e["at"].is_string()));
    assert_eq!(entries[0]["detail"], "机构已整改");
}

#[tokio::test]
async fn analysts_read_but_do_not_act() {
    let app = app();
    for (path, body) in [("ack", ""), ("assign", r#"{"assignee":"x"}"#), ("resolve", r#"{"note":"x"}"#)] {
        let r = post(&app.router, &format!("/api/v1/alerts/yj-a-blue/{path}"), ANALYST, body).await;
        assert_problem(&r, 403);
    }
    assert_eq!(get(&app.router, "/api/v1/alerts/yj-a-blue", ANALYST).await.body["state"], "open");
    let r = get(&app.router, "/api/v1/audit", ANALYST).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["total"], 0);
}

#[tokio::test]
async fn a_district_officer_acts_only_on_their_district() {
    let app = app();
    let r = post(&app.router, "/api/v1/alerts/yj-c-yellow/ack", WANZHOU, "").await;
    assert_problem(&r, 403);
    let r = post(&app.router, "/api/v1/alerts/yj-a-blue/ack", WANZHOU, "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = post(&app.router, "/api/v1/alerts/yj-c-yellow/ack", REGULATOR, "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get(&app.router, "/api/v1/audit", WANZHOU).await;
    let entries = r.body["items"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "the officer sees their district's audit only: {}", r.text);
    assert_eq!(entries[0]["actor"], "wanzhou-officer");
    assert_eq!(entries[0]["role"], "district:500101");
    let r = get(&app.router, "/api/v1/audit?actor=duty-desk", REGULATOR).await;
    assert_eq!(r.body["total"], 1);
    let r = get(&app.router, "/api/v1/audit?alert_id=yj-a-blue&limit=1", REGULATOR).await;
    assert_eq!(r.body["items"][0]["alert_id"], "yj-a-blue");
    assert_problem(&get(&app.router, "/api/v1/audit?limit=0", REGULATOR).await, 400);
    assert_problem(&get(&app.router, "/api/v1/audit?since=never", REGULATOR).await, 400);
}

#[tokio::test]
async fn actions_on_a_read_only_instance_are_unavailable() {
    let app = app_with(false);
    assert_problem(&post(&app.router, "/api/v1/alerts/yj-a-blue/ack", REGULATOR, "").await, 503);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let app = app();
    assert_problem(&get(&app.router, "/api/v1/nothing", REGULATOR).await, 404);
    assert_problem(&send(&app.router, "GET", "/nothing", None, None).await, 404);
    assert_problem(&get(&app.router, "/api/v1/alerts/yj-a-blue/ack", REGULATOR).await, 405);
    assert_problem(&send(&app.router, "DELETE", "/api/v1/alerts", Some(REGULATOR), None).await, 405);
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let app = app();
    let r = send(&app.router, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("application/json"));
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&String> = r.body["paths"].as_object().unwrap().keys().collect();
    let expected = [
        ("/riskmap", "get"),
        ("/districts/{code}", "get"),
        ("/institutions/{id}", "get"),
        ("/alerts", "get"),
        ("/alerts/{id}", "get"),
        ("/alerts/{id}/ack", "post"),
        ("/alerts/{id}/assign", "post"),
        ("/alerts/{id}/resolve", "post"),
        ("/audit", "get"),
        ("/stress", "post"),
        ("/openapi.json", "get"),
    ];
    assert_eq!(paths.len(), expected.len(), "{paths:?}");
    for (path, method) in expected {
        let op = &r.body["paths"][path][method];
        assert!(op.is_object(), "openapi.json lacks {method} {path}");
        assert!(op["responses"]["200"].is_object(), "{method} {path} documents its 200");
    }
    // Every $ref points at a schema that exists.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                if k == "$ref" {
                    out.push(v.as_str().unwrap());
                } else {
                    refs(v, out)
                }
            }),
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&r.body, &mut found);
    assert!(!found.is_empty());
    for rf in found {
        let pointer = rf.strip_prefix('#').unwrap();
        assert!(r.body.pointer(pointer).is_some(), "dangling {rf}");
    }
}

#[tokio::test]
async fn the_web_page_is_served_without_a_token() {
    let app = app();
    let r = send(&app.router, "GET", "/", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/html"));
}

#[tokio::test]
async fn metrics_router_encodes_the_registry() {
    let registry = prometheus::Registry::new();
    let c = prometheus::IntCounter::new("yujing_test_total", "a test counter").unwrap();
    registry.register(Box::new(c.clone())).unwrap();
    c.inc_by(3);
    let router = yujing_serve::metrics_router(registry);
    let r = send(&router, "GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain"));
    assert!(r.text.contains("yujing_test_total 3"), "{}", r.text);
}

const SCENARIO: &str = "name = \"npl up\"\n[[shock]]\nsector = \"microloan\"\nmetric = \"npl_ratio\"\nadd_pp = 5.0\n";

fn stress_body(scenario: &str, period: Option<&str>) -> String {
    let mut body = serde_json::json!({ "scenario": scenario });
    if let Some(p) = period {
        body["period"] = p.into();
    }
    body.to_string()
}

#[tokio::test]
async fn regulators_and_analysts_run_stress_projections() {
    let app = app();
    let r = post(&app.router, "/api/v1/stress", REGULATOR, &stress_body(SCENARIO, None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scenario"], SCENARIO);
    assert_eq!(r.body["period"], Value::Null);
    assert_eq!(r.body["asked_by"], "duty-desk");
    assert!(r.body["districts"].is_array() && r.body["mechanisms"].is_array());
    let r = post(&app.router, "/api/v1/stress", ANALYST, &stress_body(SCENARIO, Some("2021-02"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["period"], "2021-02");
    assert_eq!(r.body["asked_by"], "analyst-li");
}

#[tokio::test]
async fn stress_projections_are_refused_to_district_officers_and_strangers() {
    let app = app();
    let r = post(&app.router, "/api/v1/stress", WANZHOU, &stress_body(SCENARIO, None)).await;
    assert_problem(&r, 403);
    let r = send(&app.router, "POST", "/api/v1/stress", None, Some(&stress_body(SCENARIO, None))).await;
    assert_problem(&r, 401);
    let r = send(&app.router, "GET", "/api/v1/stress", Some(REGULATOR), None).await;
    assert_problem(&r, 405);
}

#[tokio::test]
async fn bad_stress_bodies_are_422_with_the_reason() {
    let app = app();
    // The pipeline's parser refuses it: its message comes back.
    let r = post(&app.router, "/api/v1/stress", REGULATOR, &stress_body("name = \"no shocks\"", None)).await;
    assert_problem(&r, 422);
    assert!(r.body["detail"].as_str().unwrap().contains("line 1"), "{}", r.text);
    for body in [
        "{}".to_string(),
        r#"{"scenario": 5}"#.to_string(),
        r#"{"scenario": "  "}"#.to_string(),
        stress_body(SCENARIO, Some("March")),
        r#"{"scenario": "x", "shock": 1}"#.to_string(),
    ] {
        let r = post(&app.router, "/api/v1/stress", REGULATOR, &body).await;
        assert_problem(&r, 422);
    }
    let r = post(&app.router, "/api/v1/stress", REGULATOR, "not json").await;
    assert_problem(&r, 400);
    let r = post(&app.router, "/api/v1/stress", REGULATOR, &stress_body(&"#".repeat(2000), None)).await;
    assert_problem(&r, 413);
}

#[tokio::test]
async fn stress_without_a_pipeline_is_unavailable() {
    let app = app_full(true, false);
    let r = post(&app.router, "/api/v1/stress", REGULATOR, &stress_body(SCENARIO, None)).await;
    assert_problem(&r, 503);
}

#[tokio::test]
async fn p_event_shows_only_when_the_snapshot_has_one() {
    let app = app();
    let r = get(&app.router, "/api/v1/institutions/MLC-B", REGULATOR).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("p_event").is_none(), "{}", r.text);
    let mut parts = parts();
    let p = yujing_serve::EventProbability {
        period: period("2021-03"),
        p: 0.42,
        horizon_months: 6,
        flag_at: 0.3,
        flagged: true,
    };
    let view = parts.institutions.iter_mut().find(|i| i.id == "MLC-B").unwrap();
    std::sync::Arc::make_mut(view).p_event = Some(p);
    app.snapshots.publish(yujing_serve::Snapshot::new(parts));
    let r = get(&app.router, "/api/v1/institutions/MLC-B", REGULATOR).await;
    assert_eq!(r.body["p_event"]["p"], 0.42, "{}", r.text);
    assert_eq!(r.body["p_event"]["horizon_months"], 6);
    assert_eq!(r.body["p_event"]["flagged"], true);
    let r = get(&app.router, "/api/v1/districts/500101", REGULATOR).await;
    let list = r.body["institutions"].as_array().unwrap();
    let b = list.iter().find(|i| i["id"] == "MLC-B").unwrap();
    let a = list.iter().find(|i| i["id"] == "MLC-A").unwrap();
    assert_eq!(b["p_event"]["p"], 0.42, "{}", r.text);
    assert!(a.get("p_event").is_none());
    // An earlier period of the district does not show the latest probability.
    let r = get(&app.router, "/api/v1/districts/500101?period=2021-02", REGULATOR).await;
    let list = r.body["institutions"].as_array().unwrap();
    assert!(list.iter().all(|i| i.get("p_event").is_none()), "{}", r.text);
}
