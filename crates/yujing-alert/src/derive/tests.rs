use super::*;
use crate::testutil::*;
use yujing_model::{Mechanism, Sector, SectorScope};

fn of_rule<'a>(alerts: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| &*a.rule == rule).collect()
}

fn severities(a: &Alert) -> Vec<Severity> {
    a.history.iter().map(|s| s.severity).collect()
}

#[test]
fn same_input_gives_byte_identical_alerts() {
    let pack = RulePack::default_pack();
    let mut points = run("npl_ratio", &[Some(0.08), Some(0.12), Some(0.2), Some(0.05)]);
    points[1].values.insert("score".into(), 78.0);
    points[2].values.insert("score".into(), 80.0);
    points[2].values.insert("leverage".into(), 1.2);
    let s = institution(Sector::Microloan, points);
    let a = derive(&pack, &s);
    let b = derive(&pack, &s);
    assert!(a.len() >= 3, "{a:#?}");
    assert_eq!(serde_json::to_vec(&a).unwrap(), serde_json::to_vec(&b).unwrap());
    // order of the input points is not load-bearing
    let mut shuffled = s.clone();
    shuffled.points.reverse();
    assert_eq!(serde_json::to_vec(&derive(&pack, &shuffled)).unwrap(), serde_json::to_vec(&a).unwrap());
}

#[test]
fn opens_at_the_crossed_severity_with_every_field() {
    let pack = RulePack::default_pack();
    let s = institution(Sector::Microloan, run("npl_ratio", &[Some(0.05), Some(0.162)]));
    let alerts = derive(&pack, &s);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    let key = "microloan-npl:institution:CQ-MLC-0042";
    assert_eq!(a.dedupe_key, key);
    assert_eq!(a.id, alert_id(key, period("2025-02")));
    assert_eq!(a.severity, Severity::Orange);
    assert_eq!(a.state, AlertState::Open);
    assert_eq!(a.mechanism, Mechanism::ExitMechanism);
    assert_eq!(a.mechanism_zh, "地方金融组织退出机制");
    assert!(a.owner.contains("地方金融组织监管处"));
    assert_eq!((a.period, a.last_period), (period("2025-02"), period("2025-02")));
    assert_eq!(a.opened_at, at("2025-02"));
    assert_eq!(a.updated_at, at("2025-02"));
    assert_eq!(a.respond_by, at("2025-02") + TimeDelta::days(10));
    assert_eq!(a.resolved_at, None);
    assert_eq!(severities(a), vec![Severity::Orange]);
    assert_eq!(a.links().alert, format!("/api/v1/alerts/{}", a.id));
    assert_eq!(a.links().entity, "/api/v1/institutions/CQ-MLC-0042");
    assert_eq!((a.entity_kind, &*a.entity_id), (EntityKind::Institution, "CQ-MLC-0042"));
    assert_eq!(&*a.district_code, "500103");
    assert_eq!(a.sector, SectorScope::One(Sector::Microloan));
    assert_eq!((a.assignee.as_deref(), a.note.as_deref()), (None, None));
    let e = &a.evidence;
    assert_eq!((&*e.metric, e.value, e.threshold), ("npl_ratio", 0.162, 0.15));
    assert_eq!((&*e.direction, e.periods), ("above", 1));
    assert_eq!(
        e.summary,
        "渝中区 重庆某小贷: npl_ratio 16.2% ≥ 15.0% (橙色) / \
         CQ-MLC-0042 npl_ratio 16.2% crossed 15.0% (orange)"
    );
}

#[test]
fn escalates_and_never_de_escalates_while_open() {
    let pack = RulePack::default_pack();
    let values = [Some(0.11), Some(0.16), Some(0.26), Some(0.11)];
    let s = institution(Sector::Microloan, run("npl_ratio", &values));
    let alerts = derive(&pack, &s);
    let a = of_rule(&alerts, "microloan-npl");
    assert_eq!(a.len(), 1);
    let a = a[0];
    assert_eq!(severities(a), vec![Severity::Yellow, Severity::Orange, Severity::Red]);
    let periods: Vec<String> = a.history.iter().map(|s| s.period.to_string()).collect();
    assert_eq!(periods, ["2025-01", "2025-02", "2025-03"]);
    assert_eq!(a.severity, Severity::Red, "back at 11% it stays red");
    assert_eq!(a.state, AlertState::Open);
    assert_eq!(a.updated_at, at("2025-03"), "the last change was the escalation");
    assert_eq!(a.last_period, period("2025-04"));
    assert_eq!(a.evidence.value, 0.11);
    assert_eq!(a.evidence.threshold, 0.25, "the red line");
    assert!(a.evidence.summary.contains("未过解除线 9.0%"), "{}", a.evidence.summary);
}

#[test]
fn hysteresis_resolves_only_past_the_margin() {
    let pack = RulePack::default_pack();
    // yellow at 10%, hysteresis 1 point: 9.5% and exactly 9% hold, 8.99% resolves
    let values = [Some(0.12), Some(0.095), Some(0.09), Some(0.0899), Some(0.095)];
    let s = institution(Sector::Microloan, run("npl_ratio", &values));
    let alerts = derive(&pack, &s);
    let a = of_rule(&alerts, "microloan-npl");
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].state, AlertState::AutoResolved);
    assert_eq!(a[0].resolved_at, Some(at("2025-04")));
    assert_eq!(a[0].updated_at, at("2025-04"));
    assert_eq!(a[0].last_period, period("2025-04"), "evidence stops at resolution");
    assert_eq!(a[0].evidence.value, 0.0899);
    assert!(a[0].evidence.summary.contains("自动解除"), "{}", a[0].evidence.summary);

    let held = institution(Sector::Microloan, run("npl_ratio", &values[..3]));
    let alerts = derive(&pack, &held);
    let a = of_rule(&alerts, "microloan-npl");
    assert_eq!(a[0].state, AlertState::Open, "a value just under the line holds");
    assert_eq!(a[0].evidence.periods, 0, "but the crossing streak is broken");
}

#[test]
fn for_periods_needs_consecutive_crossings() {
    let pack = RulePack::default_pack();
    // institution-failing: orange at 75 for 2 periods, red at 90 at once
    let s = institution(Sector::Guarantee, run("score", &[Some(80.0), Some(70.0), Some(80.0)]));
    assert!(of_rule(&derive(&pack, &s), "institution-failing").is_empty());

    let s = institution(Sector::Guarantee, run("score", &[Some(70.0), Some(80.0), Some(81.0)]));
    let alerts = derive(&pack, &s);
    let a = of_rule(&alerts, "institution-failing");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].period, period("2025-03"), "orange only after 2 consecutive");
    assert_eq!(a[0].severity, Severity::Orange);
    assert_eq!(a[0].evidence.periods, 2);

    let s = institution(Sector::Bank, run("score", &[Some(95.0)]));
    let a = derive(&pack, &s);
    let a = of_rule(&a, "institution-failing");
    assert_eq!(a[0].severity, Severity::Red, "red needs one period");
    assert_eq!(a[0].evidence.periods, 1);
}

#[test]
fn a_missing_metric_holds_streaks_and_state() {
    let pack = RulePack::default_pack();
    // streak 80, gap, 80 => two consecutive crossings among points that have a value
    let s = institution(Sector::Microloan, run("score", &[Some(80.0), None, Some(80.0)]));
    let alerts = derive(&pack, &s);
    let a = of_rule(&alerts, "institution-failing");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].period, period("2025-03"));

    // an open alert is neither resolved nor refreshed by a gap
    let s = institution(Sector::Microloan, run("npl_ratio", &[Some(0.12), None, None]));
    let alerts = derive(&pack, &s);
    let a = of_rule(&alerts, "microloan-npl");
    assert_eq!(a[0].state, AlertState::Open);
    assert_eq!(a[0].last_period, period("2025-01"));

    // a non-finite value is a gap too
    let s = institution(Sector::Microloan, run("npl_ratio", &[Some(0.12), Some(f64::NAN), Some(f64::INFINITY)]));
    let alerts = derive(&pack, &s);
    assert_eq!(of_rule(&alerts, "microloan-npl")[0].last_period, period("2025-01"));
}

#[test]
fn crossing_again_after_resolution_opens_a_new_alert() {
    let pack = RulePack::default_pack();
    let values = [Some(0.12), Some(0.05), Some(0.12)];
    let s = institution(Sector::Microloan, run("npl_ratio", &values));
    let alerts = derive(&pack, &s);
    let a = of_rule(&alerts, "microloan-npl");
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].state, AlertState::AutoResolved);
    assert_eq!(a[1].state, AlertState::Open);
    assert_eq!(a[0].dedupe_key, a[1].dedupe_key);
    assert_ne!(a[0].id, a[1].id);
    assert_eq!(a[1].id, alert_id(&a[1].dedupe_key, period("2025-03")));
    assert_eq!(a[1].history.len(), 1);
}

#[test]
fn reporting_gap_opens_and_resolves_a_reporting_discipline_alert() {
    let pack = RulePack::default_pack();
    let mut points = run("reporting_gap", &[Some(0.0), Some(1.0), Some(2.0), Some(3.0), Some(0.0)]);
    // reported periods carry indicators; missing ones (gap >= 2) only the gap
    for p in [0, 1, 4] {
        points[p].values.insert("npl_ratio".into(), 0.12);
    }
    let s = institution(Sector::Microloan, points);
    let alerts = derive(&pack, &s);
    let late = of_rule(&alerts, "reporting-late");
    assert_eq!(late.len(), 1, "{alerts:#?}");
    let a = late[0];
    assert_eq!(a.mechanism, Mechanism::ReportingDiscipline);
    assert_eq!(a.period, period("2025-02"));
    assert_eq!(severities(a), vec![Severity::Blue, Severity::Yellow, Severity::Orange]);
    assert_eq!(a.state, AlertState::AutoResolved);
    assert_eq!(a.resolved_at, Some(at("2025-05")));
    // the NPL alert held through the missing periods
    let npl = of_rule(&alerts, "microloan-npl");
    assert_eq!(npl.len(), 1);
    assert_eq!(npl[0].state, AlertState::Open);
    assert_eq!(npl[0].last_period, period("2025-05"));
    assert_eq!(npl[0].evidence.indicators.get("reporting_gap"), Some(0.0));
}

#[test]
fn district_orange_cluster_raises_district_concentration() {
    let pack = RulePack::default_pack();
    let mut points = run("orange_plus", &[Some(1.0), Some(2.0), Some(3.0), Some(1.0)]);
    points[2].values.insert("score".into(), 58.0);
    points[2].values.insert("institutions".into(), 14.0);
    let s = district(SectorScope::All, points);
    let alerts = derive(&pack, &s);
    let a = of_rule(&alerts, "district-orange-cluster");
    assert_eq!(a.len(), 1, "{alerts:#?}");
    let a = a[0];
    assert_eq!(a.mechanism, Mechanism::DistrictConcentration);
    assert_eq!(a.dedupe_key, "district-orange-cluster:district:500103:all");
    assert_eq!(a.links().entity, "/api/v1/districts/500103");
    assert_eq!(severities(a), vec![Severity::Yellow, Severity::Orange]);
    assert_eq!(a.state, AlertState::AutoResolved, "1 is past 2 - 0.5");
    // no district rule watches a sector it is not listed for
    let s = district(SectorScope::One(Sector::Bank), run("orange_plus", &[Some(9.0)]));
    assert!(derive(&pack, &s).is_empty());
}

#[test]
fn evidence_carries_the_point() {
    let pack = RulePack::default_pack();
    let p = pt("2025-03", &[("score", 81.5), ("trend_z", 2.1), ("npl_ratio", 0.2), ("leverage", 0.5)]);
    let alerts = derive(&pack, &institution(Sector::Microloan, vec![p]));
    let a = of_rule(&alerts, "microloan-npl")[0];
    assert_eq!(a.evidence.score.get(), Some(81.5));
    assert_eq!(a.evidence.trend_z.get(), Some(2.1));
    let keys: Vec<&str> = a.evidence.indicators.keys().collect();
    assert_eq!(keys, ["leverage"]);
}

#[test]
fn below_rules_cross_downwards() {
    let pack = RulePack::default_pack();
    let values = [Some(0.12), Some(0.10), Some(0.075), Some(0.108), Some(0.111)];
    let s = institution(Sector::Bank, run("capital_adequacy_ratio", &values));
    let alerts = derive(&pack, &s);
    let a = of_rule(&alerts, "bank-capital-floor");
    assert_eq!(a.len(), 1);
    assert_eq!(severities(a[0]), vec![Severity::Yellow, Severity::Red]);
    assert_eq!(a[0].resolved_at, Some(at("2025-05")), "10.8% holds; 11.1% > 10.5% + 0.5%");
    assert!(a[0].evidence.summary.contains("capital_adequacy_ratio 11.1% > 11.0%"), "{}", a[0].evidence.summary);
    // p2p stall: yellow <= 1% for 2 periods, orange <= 0.2% for 3
    let values = [Some(0.005), Some(0.001), Some(0.001), Some(0.0)];
    let s = institution(Sector::P2pResidual, run("stall", &values));
    let alerts = derive(&pack, &s);
    let a = of_rule(&alerts, "p2p-wind-down-stall");
    assert_eq!(a[0].period, period("2025-02"));
    assert_eq!(a[0].history[1].period, period("2025-04"));
    assert_eq!(a[0].severity, Severity::Orange);
    assert!(a[0].evidence.summary.contains("stall 0.0% ≤ 0.20%"), "{}", a[0].evidence.summary);
}

#[test]
fn only_rules_of_the_series_sector_apply() {
    let pack = RulePack::default_pack();
    let s = institution(Sector::Bank, run("npl_ratio", &[Some(0.2)]));
    let rules: Vec<String> = derive(&pack, &s).into_iter().map(|a| a.rule.to_string()).collect();
    assert_eq!(rules, ["bank-npl-ceiling"]);
    let mut sector = district(SectorScope::One(Sector::Microloan), run("npl_ratio", &[Some(0.2)]));
    sector.kind = EntityKind::Sector;
    let a = derive(&pack, &sector);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].dedupe_key, "district-microloan-npl:sector:500103:microloan");
    assert!(a[0].evidence.summary.starts_with("渝中区 小额贷款公司: npl_ratio 20.0% ≥ 20.0% (红色)"));
}

#[test]
fn a_history_derived_from_after_a_quiet_period_gives_the_same_later_alerts() {
    let pack = RulePack::default_pack();
    let npl = [Some(0.05), Some(0.12), Some(0.17), Some(0.05), Some(0.05), Some(0.12), Some(0.05), None, Some(0.16)];
    let s = institution(Sector::Microloan, run("npl_ratio", &npl));
    let whole = derive_quiet(&pack, &s);
    assert_eq!(whole.alerts, derive(&pack, &s));
    let quiet = &whole.quiet;
    // Quiet before anything crossed and once the alert resolved; not while it ran.
    assert!(quiet.contains(&period("2025-01")) && quiet.contains(&period("2025-04")), "{quiet:?}");
    assert!(!quiet.contains(&period("2025-02")) && !quiet.contains(&period("2025-06")), "{quiet:?}");
    assert!(!quiet.contains(&period("2025-09")), "an alert is open at the end: {quiet:?}");
    for q in quiet {
        let mut tail = s.clone();
        tail.points.retain(|p| p.period > *q);
        let later: Vec<&Alert> = whole.alerts.iter().filter(|a| a.period > *q).collect();
        assert_eq!(derive(&pack, &tail).iter().collect::<Vec<_>>(), later, "after {q}");
        assert!(whole.alerts.iter().filter(|a| a.period <= *q).all(|a| a.state == AlertState::AutoResolved));
    }
}

#[test]
fn values_with_the_same_outcomes_derive_the_same_alerts_but_for_evidence_at_that_point() {
    let pack = RulePack::default_pack();
    // Microloan npl_ratio lines: around 0.08 / 0.10 / 0.15 with hysteresis; the grid crosses
    // each line and each auto-resolve line from both sides.
    let grid = [0.0, 0.02, 0.049, 0.06, 0.079, 0.081, 0.099, 0.101, 0.12, 0.149, 0.151, 0.3];
    let npl = [Some(0.05), Some(0.09), Some(0.12), Some(0.16), Some(0.07), Some(0.05), Some(0.11), Some(0.02)];
    let base = institution(Sector::Microloan, run("npl_ratio", &npl));
    let alerts = derive(&pack, &base);
    let (mut same, mut differ) = (0, 0);
    for i in 0..npl.len() {
        for v in grid {
            let mut changed = base.clone();
            changed.points[i].values.insert("npl_ratio".into(), v);
            let (a, b) = (&base.points[i], &changed.points[i]);
            let got = derive(&pack, &changed);
            if same_outcomes(&pack, base.kind, base.sector, |m| a.value(m), |m| b.value(m)) {
                same += 1;
                let period = a.period;
                let strip =
                    |v: &[Alert]| -> Vec<Alert> { v.iter().filter(|x| x.last_period != period).cloned().collect() };
                assert_eq!(strip(&got), strip(&alerts), "point {i} set to {v}");
                assert_eq!(got.len(), alerts.len(), "point {i} set to {v}");
            } else {
                differ += 1;
            }
        }
    }
    assert!(same > 10 && differ > 10, "the grid exercises both sides: {same} same, {differ} differ");
    // A metric that appears or disappears always counts as a change.
    let (a, mut b) = (base.points[0].clone(), base.points[0].clone());
    b.values.remove("npl_ratio");
    assert!(!same_outcomes(&pack, base.kind, base.sector, |m| a.value(m), |m| b.value(m)));
}
