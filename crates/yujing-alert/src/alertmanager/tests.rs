use super::*;
use crate::testutil::{at, institution, pt};
use crate::{RulePack, derive};
use std::time::Duration;
use yujing_model::{AlertState, EntityKind, Sector, SectorScope, Severity};

fn sink() -> AlertmanagerSink {
    AlertmanagerConfig { resend_interval: Duration::from_secs(60), ..AlertmanagerConfig::default() }.build().unwrap()
}

/// The microloan NPL alert of CQ-MLC-0042: yellow in 2025-08, orange in 2025-09.
fn npl_alerts() -> (Alert, Alert) {
    let pack = RulePack::default_pack();
    let yellow_series = institution(
        Sector::Microloan,
        vec![pt("2025-07", &[("npl_ratio", 0.08)]), pt("2025-08", &[("npl_ratio", 0.12)])],
    );
    let mut orange_series = yellow_series.clone();
    orange_series.points.push(pt("2025-09", &[("npl_ratio", 0.162)]));
    let find = |alerts: Vec<Alert>| alerts.into_iter().find(|a| &*a.rule == "microloan-npl").unwrap();
    (find(derive(&pack, &yellow_series)), find(derive(&pack, &orange_series)))
}

#[test]
fn labels_identify_and_annotations_describe() {
    let s = sink();
    let (yellow, _) = npl_alerts();
    let p = s.postable(&yellow);
    let labels: Vec<(&str, &str)> = p.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        labels,
        [
            ("alertname", "microloan-npl"),
            ("district_code", "500103"),
            ("institution_id", "CQ-MLC-0042"),
            ("mechanism", yellow.mechanism.as_str()),
            ("sector", "microloan"),
            ("severity", "yellow"),
        ]
    );
    assert_eq!(p.starts_at, "2025-08-20T02:00:00Z");
    assert_eq!(p.ends_at, None);
    assert_eq!(p.generator_url, format!("http://127.0.0.1:8080/api/v1/alerts/{}", yellow.id));
    assert!(p.annotations["summary"].starts_with("黄色预警 · "), "{}", p.annotations["summary"]);
    assert!(p.annotations["summary"].contains(" / yellow alert · "), "{}", p.annotations["summary"]);
    assert!(p.annotations["description"].contains(&yellow.evidence.summary));
    assert!(p.annotations["description"].contains("respond by"));
    assert!(p.annotations["runbook_url"].ends_with(&format!("/{}.md", yellow.mechanism.as_str())));
}

#[test]
fn a_district_alert_has_no_institution_label() {
    let s = sink();
    let (mut a, _) = npl_alerts();
    a.entity_kind = EntityKind::District;
    a.entity_id = "500103".into();
    a.entity_name = "渝中区".into();
    a.sector = SectorScope::All;
    let p = s.postable(&a);
    assert!(!p.labels.contains_key("institution_id"));
    assert_eq!(p.labels["district_code"], "500103");
    assert_eq!(p.labels["sector"], "all");
    assert!(p.annotations["summary"].contains("渝中区 全行业"), "{}", p.annotations["summary"]);
}

#[test]
fn an_active_alert_is_due_when_new_changed_or_stale() {
    let mut s = sink();
    let (yellow, _) = npl_alerts();
    let t0 = Instant::now();
    s.update(&yellow);
    assert_eq!(s.due(t0).len(), 1);
    s.accepted(&s.postable(&yellow).label_key(), t0);
    assert!(s.due(t0 + Duration::from_secs(59)).is_empty());
    assert_eq!(s.due(t0 + Duration::from_secs(60)).len(), 1);
    // The same alert again changes nothing; an acknowledgement changes an annotation.
    s.update(&yellow);
    assert!(s.due(t0 + Duration::from_secs(1)).is_empty());
    let mut acked = yellow.clone();
    acked.state = AlertState::Acknowledged;
    s.update(&acked);
    let due = s.due(t0 + Duration::from_secs(1));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].annotations["state"], "acknowledged");
    assert_eq!(due[0].ends_at, None);
}

#[test]
fn an_escalation_ends_the_old_label_set() {
    let mut s = sink();
    let (yellow, orange) = npl_alerts();
    assert_eq!(orange.severity, Severity::Orange);
    assert_eq!(yellow.id, orange.id);
    let t0 = Instant::now();
    s.update(&yellow);
    s.accepted(&s.postable(&yellow).label_key(), t0);
    s.update(&orange);
    let due = s.due(t0);
    assert_eq!(due.len(), 2);
    let old = due.iter().find(|p| p.labels["severity"] == "yellow").unwrap();
    let new = due.iter().find(|p| p.labels["severity"] == "orange").unwrap();
    assert_eq!(old.ends_at.as_deref(), Some("2025-09-20T02:00:00Z"));
    assert_eq!(new.ends_at, None);
    assert_eq!(new.starts_at, old.starts_at);
    for p in &due {
        s.accepted(&p.label_key(), t0);
    }
    assert_eq!(s.len(), 1, "the ended yellow label set is forgotten once taken");
}

#[test]
fn an_escalation_before_the_first_push_sends_only_the_new_severity() {
    let mut s = sink();
    let (yellow, orange) = npl_alerts();
    s.update(&yellow);
    s.update(&orange);
    let due = s.due(Instant::now());
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].labels["severity"], "orange");
    assert_eq!(due[0].ends_at, None);
}

#[test]
fn an_end_does_not_override_a_newer_alert_with_the_same_labels() {
    let mut s = sink();
    let (yellow, _) = npl_alerts();
    let mut reopened = yellow.clone();
    reopened.id = "yj-0000000000000002".into();
    reopened.opened_at = at("2025-11");
    let mut ended = yellow.clone();
    ended.state = AlertState::AutoResolved;
    ended.resolved_at = Some(at("2025-10"));
    // The new alert arrives before the end of the old one.
    s.update(&reopened);
    s.update(&ended);
    let due = s.due(Instant::now());
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].ends_at, None);
    assert_eq!(due[0].annotations["alert_id"], reopened.id);
}

#[test]
fn build_refuses_unusable_settings() {
    let base = AlertmanagerConfig::default();
    let cases = [
        ("url", AlertmanagerConfig { url: "alertmanager:9093".into(), ..base.clone() }),
        ("generator_base_url", AlertmanagerConfig { generator_base_url: "".into(), ..base.clone() }),
        ("resend_interval", AlertmanagerConfig { resend_interval: Duration::ZERO, ..base.clone() }),
        ("timeout", AlertmanagerConfig { timeout: Duration::ZERO, ..base.clone() }),
        ("batch_size", AlertmanagerConfig { batch_size: 0, ..base.clone() }),
        ("backoff_initial", AlertmanagerConfig { backoff_initial: Duration::from_secs(60), ..base.clone() }),
    ];
    for (field, config) in cases {
        match config.build() {
            Err(Error::AlertmanagerConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected a config error, got {other:?}"),
        }
    }
    assert!(base.build().is_ok());
}
