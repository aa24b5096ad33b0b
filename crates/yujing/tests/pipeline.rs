//! The pipeline end to end on hand-made reports: alerts of the right severity and mechanism,
//! corrections, missing reports, district clusters and dead letters.

mod common;

use common::*;
use yujing_model::{AlertState, EntityKind, Mechanism, Reason, Sector, Severity, TransitionKind};

#[test]
fn a_critical_microloan_gets_a_red_exit_mechanism_alert_and_a_healthy_one_none() {
    let mut lines = monthly("CQ-MLC-0001", 500103, "2020-01", 4, |_| healthy_microloan());
    lines.extend(monthly("CQ-MLC-0002", 500103, "2020-01", 4, |k| microloan_with_npl(if k < 2 { 0.02 } else { 0.30 })));
    let e = run(&lines, 100);
    assert!(alerts_of(&e, "CQ-MLC-0001").is_empty(), "{:#?}", alerts_of(&e, "CQ-MLC-0001"));
    let npl: Vec<_> = alerts_of(&e, "CQ-MLC-0002").into_iter().filter(|a| &*a.rule == "microloan-npl").collect();
    assert_eq!(npl.len(), 1);
    assert_eq!(npl[0].severity, Severity::Red);
    assert_eq!(npl[0].mechanism, Mechanism::ExitMechanism);
    assert_eq!(npl[0].state, AlertState::Open);
    assert_eq!(npl[0].period.to_string(), "2020-03");
    assert!((npl[0].evidence.value - 0.30).abs() < 1e-12);
}

#[test]
fn a_bank_over_the_npl_ceiling_goes_to_central_local_coordination() {
    let q = |p: &str, npl: f64| {
        line("CQ-BNK-0001", Sector::Bank, 500105, p, 1, &on_time(p), &[1.0e11, npl * 1.0e11, 2.0e9, 3.0e9, 0.14])
    };
    let e = run(&[q("2020-03", 0.012), q("2020-06", 0.09)], 10);
    let a: Vec<_> = alerts_of(&e, "CQ-BNK-0001").into_iter().filter(|a| &*a.rule == "bank-npl-ceiling").collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].severity, Severity::Red);
    assert_eq!(a[0].mechanism, Mechanism::CentralLocalCoordination);
}

#[test]
fn a_corrected_revision_that_brings_the_figures_back_resolves_the_alert() {
    let mut lines =
        monthly("CQ-MLC-0003", 500106, "2020-01", 3, |k| microloan_with_npl(if k < 2 { 0.02 } else { 0.30 }));
    let mut e = engine();
    let first = feed(&mut e, &lines, 100);
    let raised: Vec<_> = alerts_of(&e, "CQ-MLC-0003").into_iter().map(|a| a.id.clone()).collect();
    assert!(!raised.is_empty());
    assert!(first.transitions.iter().any(|t| t.kind == TransitionKind::Opened));
    // The institution corrects March: the 30% was a typo for 3%.
    lines = vec![line(
        "CQ-MLC-0003",
        Sector::Microloan,
        500106,
        "2020-03",
        2,
        "2020-04-12T09:00:00+08:00",
        &microloan_with_npl(0.03),
    )];
    let second = feed(&mut e, &lines, 100);
    assert!(alerts_of(&e, "CQ-MLC-0003").is_empty(), "{:#?}", alerts_of(&e, "CQ-MLC-0003"));
    for id in &raised {
        assert!(
            second.transitions.iter().any(|t| &t.alert.id == id && t.kind == TransitionKind::Superseded),
            "{id} was not superseded"
        );
    }
}

#[test]
fn an_institution_that_stops_reporting_gets_a_reporting_discipline_alert() {
    let mut lines = monthly("CQ-MLC-0004", 500108, "2020-01", 3, |_| healthy_microloan());
    // Another institution keeps reporting, so the watermark moves on to mid-June.
    lines.extend(monthly("CQ-MLC-0005", 500108, "2020-01", 6, |_| healthy_microloan()));
    lines.push(line(
        "CQ-MLC-0005",
        Sector::Microloan,
        500108,
        "2020-06",
        2,
        "2020-07-20T10:00:00+08:00",
        &healthy_microloan(),
    ));
    let e = run(&lines, 7);
    let a = alerts_of(&e, "CQ-MLC-0004");
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(&*a[0].rule, "reporting-late");
    assert_eq!(a[0].mechanism, Mechanism::ReportingDiscipline);
    assert_eq!(a[0].period.to_string(), "2020-04");
    // April, May and June missing (the watermark, 2020-07-20, passed June's deadline of 07-15).
    assert_eq!(a[0].severity, Severity::Red);
    assert!(alerts_of(&e, "CQ-MLC-0005").is_empty());
}

#[test]
fn several_institutions_of_one_district_turning_orange_raise_a_district_alert() {
    let mut lines = Vec::new();
    for k in 0..4 {
        let id = format!("CQ-MLC-01{k:02}");
        // npl 14%, concentration 14%, leverage 0.95: each well into orange.
        lines.extend(monthly(&id, 500112, "2020-01", 2, |m| {
            if m == 0 { healthy_microloan() } else { vec![1.0e9, 1.4e8, 8.0e8, 1.12e8, 7.6e8] }
        }));
    }
    lines.extend(monthly("CQ-MLC-0200", 500101, "2020-01", 2, |_| healthy_microloan()));
    let e = run(&lines, 3);
    let district: Vec<_> =
        e.alerts().filter(|a| a.entity_kind == EntityKind::District && &*a.rule == "district-orange-cluster").collect();
    assert_eq!(district.len(), 1, "{district:#?}");
    assert_eq!(&*district[0].entity_id, "500112");
    assert_eq!(district[0].mechanism, Mechanism::DistrictConcentration);
    assert!(district[0].severity >= Severity::Orange);
    assert!(e.alerts().all(|a| &*a.district_code != "500101"));
}

#[test]
fn every_bad_line_yields_one_dead_letter_with_its_reason_and_the_run_goes_on() {
    let good = line("CQ-MLC-0300", Sector::Microloan, 500103, "2020-01", 1, &on_time("2020-01"), &healthy_microloan());
    let cases: Vec<(String, Reason)> = vec![
        ("{\"schema_version\":1,".into(), Reason::MalformedJson),
        (String::from_utf8_lossy(b"\xff not utf8").into_owned(), Reason::MalformedJson),
        (good.replace("\"microloan\"", "\"insurance\""), Reason::SchemaViolation),
        (good.replace("500103", "500199"), Reason::UnknownDistrict),
        (good.replace("\"borrowings\":240000000.0", "\"borrowings\":-1.0"), Reason::NegativeAmount),
        (good.replace("\"npl_balance\":20000000.0", "\"npl_balance\":2000000000.0"), Reason::Inconsistent),
        (format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)), Reason::TooLarge),
    ];
    let mut lines: Vec<String> = cases.iter().map(|(l, _)| l.clone()).collect();
    lines.push(good.clone());
    lines.push(good.replace("/r1", "/r1-again"));
    let mut e = engine();
    let out = feed(&mut e, &lines, 4);
    let reasons: Vec<Reason> = out.dead_letters.iter().map(|d| d.reason).collect();
    let mut expected: Vec<Reason> = cases.iter().map(|(_, r)| *r).collect();
    expected.push(Reason::StaleRevision);
    assert_eq!(reasons, expected);
    assert_eq!(out.dead_letters[0].position.line, Some(1));
    assert_eq!(out.dead_letters[0].original, lines[0]);
    assert_eq!(e.stats().accepted, 1);
    assert_eq!(e.stats().received, lines.len() as u64);
}

/// Eight microloans with varied NPL ratios, 2020-01..=2020-03, on time.
fn eight_microloans() -> Vec<String> {
    (0..8)
        .flat_map(|i| {
            monthly(&format!("CQ-MLC-01{i:02}"), 500103, "2020-01", 3, move |k| {
                microloan_with_npl(0.05 + 0.004 * f64::from(i * k) + 0.002 * f64::from((i * 7 + k * 3) % 5))
            })
        })
        .collect()
}

/// One institution's score for a period.
/// An institution's score of a period, with its trend z-score.
fn score_at(e: &yujing::engine::Engine, inst: &str, period: &str) -> (yujing_model::InstitutionScore, Option<f64>) {
    let p: yujing_model::Period = period.parse().unwrap();
    e.scores_of(inst).find(|s| s.period == p).map(|s| ((**s).clone(), e.trend_z(s))).unwrap()
}

#[test]
fn a_report_in_a_period_not_yet_due_moves_no_other_institutions_score() {
    // The watermark (2020-04-10) leaves 2020-03 open: its trend is scored against 2020-02's.
    let mut e = engine();
    feed(&mut e, &eight_microloans(), 100);
    assert_eq!(e.complete_through().map(|p| p.to_string()).as_deref(), Some("2020-02"));
    let others: Vec<_> = (1..8).map(|i| score_at(&e, &format!("CQ-MLC-01{i:02}"), "2020-03")).collect();
    let before = score_at(&e, "CQ-MLC-0100", "2020-03");
    // A sharp deterioration, still within 2020-03.
    let revised =
        line("CQ-MLC-0100", Sector::Microloan, 500103, "2020-03", 2, &on_time("2020-03"), &microloan_with_npl(0.25));
    let out = feed(&mut e, std::slice::from_ref(&revised), 100);
    let after = score_at(&e, "CQ-MLC-0100", "2020-03");
    assert!(after.1.unwrap() > before.1.unwrap() + 1.0, "{before:?} -> {after:?}");
    let others_after: Vec<_> = (1..8).map(|i| score_at(&e, &format!("CQ-MLC-01{i:02}"), "2020-03")).collect();
    assert_eq!(others, others_after, "a report moved its peers' provisional scores");
    assert!(
        out.transitions
            .iter()
            .all(|t| &*t.alert.entity_id == "CQ-MLC-0100" || t.alert.entity_kind != EntityKind::Institution)
    );

    // Once 2020-03 is due its own (complete) cross-section is the baseline: the state is the
    // one of a single settle over every report.
    let late =
        line("CQ-MLC-0199", Sector::Microloan, 500104, "2020-04", 1, "2020-05-10T10:00:00+08:00", &healthy_microloan());
    feed(&mut e, std::slice::from_ref(&late), 100);
    assert_eq!(e.complete_through().map(|p| p.to_string()).as_deref(), Some("2020-03"));
    let mut all = eight_microloans();
    all.extend([revised, late]);
    let once = run(&all, usize::MAX);
    for i in 0..8 {
        let inst = format!("CQ-MLC-01{i:02}");
        assert_eq!(score_at(&e, &inst, "2020-03"), score_at(&once, &inst, "2020-03"), "{inst}");
    }
    assert_ne!(score_at(&e, "CQ-MLC-0101", "2020-03").1, others[0].1, "2020-03 kept the 2020-02 baseline");
    assert_eq!(alerts_json(&e), alerts_json(&once));
}

#[test]
fn a_gap_in_a_record_whose_deadline_passes_later_is_missed_in_every_batching() {
    // 2020-03 is filed during March, before February's deadline (15 March): February is a gap
    // with no point yet. Another institution's report then moves the watermark past it.
    let a = |p: &str, at: &str| line("CQ-MLC-0301", Sector::Microloan, 500103, p, 1, at, &healthy_microloan());
    let lines = vec![
        a("2020-01", "2020-02-10T10:00:00+08:00"),
        a("2020-03", "2020-03-05T10:00:00+08:00"),
        line("CQ-MLC-0302", Sector::Microloan, 500104, "2020-03", 1, "2020-03-20T10:00:00+08:00", &healthy_microloan()),
    ];
    let mut batched = engine();
    feed(&mut batched, &lines[..2], 100);
    feed(&mut batched, &lines[2..], 100);
    let once = run(&lines, 100);
    let missing: Vec<_> =
        alerts_of(&once, "CQ-MLC-0301").into_iter().filter(|x| &*x.rule == "reporting-late").collect();
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert_eq!(missing[0].period.to_string(), "2020-02");
    assert_eq!(alerts_json(&batched), alerts_json(&once));
}
