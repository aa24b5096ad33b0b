use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use yujing_model::Metrics;

fn report(inst: &str, period: &str, revision: u32, npl: f64, submitted: &str) -> Report {
    Report {
        schema_version: 1,
        report_id: format!("{inst}/{period}/r{revision}").into(),
        institution_id: inst.into(),
        institution_name: format!("{inst} 小贷").into(),
        sector: Sector::Microloan,
        district_code: 500103,
        period: period.parse().unwrap(),
        revision,
        submitted_at: DateTime::parse_from_rfc3339(submitted).unwrap(),
        metrics: Metrics::new(Sector::Microloan, &[100.0, npl, 50.0, 5.0, 10.0]).unwrap(),
    }
}

#[test]
fn an_institutions_reports_share_one_id_and_one_name_until_the_name_changes() {
    let mut l = Ledger::new(LedgerSettings::default());
    for (p, at) in [("2020-01", "2020-02-10T10:00:00+08:00"), ("2020-02", "2020-03-10T10:00:00+08:00")] {
        l.apply(report("A", p, 1, 5.0, at));
    }
    let mut renamed = report("A", "2020-03", 1, 5.0, "2020-04-10T10:00:00+08:00");
    renamed.institution_name = "A 小额贷款".into();
    l.apply(renamed);
    let r: Vec<&Arc<Report>> = l.institution("A").unwrap().reports().collect();
    let key = &l.institution("A").unwrap().institution_id;
    assert!(r.iter().all(|x| Arc::ptr_eq(&x.institution_id, key)), "one id for the record and its reports");
    assert!(Arc::ptr_eq(&r[0].institution_name, &r[1].institution_name), "the same name is held once");
    assert_eq!((&*r[1].institution_name, &*r[2].institution_name), ("A 小贷", "A 小额贷款"));
}

#[test]
fn changed_institutions_are_listed_once_for_new_and_replaced_winners_only() {
    let mut l = Ledger::new(LedgerSettings::default());
    let at = "2020-02-10T10:00:00+08:00";
    l.apply(report("B", "2020-01", 1, 5.0, at));
    l.apply(report("A", "2020-01", 1, 5.0, at));
    l.apply(report("B", "2020-02", 1, 5.0, "2020-03-10T10:00:00+08:00"));
    let ids = |v: Vec<Arc<str>>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(l.take_changed()), ["B", "A"], "each once, in the order first changed");
    assert!(l.take_changed().is_empty(), "taking clears the list");
    // A repeat and a stale revision change no winner.
    l.apply(report("A", "2020-01", 1, 5.0, at));
    let mut stale = report("B", "2020-01", 1, 6.0, at);
    stale.report_id = "B/2020-01/r1-again".into();
    assert!(matches!(l.apply(stale), Outcome::Rejected(_)));
    assert!(l.take_changed().is_empty());
    // A correction does, and so does a new institution; after a take, B is listed again.
    l.apply(report("B", "2020-01", 2, 7.0, at));
    l.apply(report("C", "2020-01", 1, 5.0, at));
    assert_eq!(ids(l.take_changed()), ["B", "C"]);
}

#[test]
fn each_slot_touched_since_the_last_take_is_taken_once_in_the_order_first_touched() {
    let mut l = Ledger::new(LedgerSettings::default());
    let at = "2020-02-10T10:00:00+08:00";
    l.apply(report("B", "2020-01", 1, 5.0, at));
    l.apply(report("A", "2020-01", 1, 5.0, at));
    l.apply(report("B", "2020-01", 1, 5.0, at)); // a repeat: the slot has seen it already
    l.apply(report("A", "2020-02", 1, 5.0, "2020-03-10T10:00:00+08:00"));
    l.apply(report("B", "2020-01", 2, 6.0, "2020-02-12T10:00:00+08:00"));
    l.apply(report("AB", "2020-01", 1, 5.0, at));
    let taken: Vec<(String, String, u32)> = l
        .take_dirty()
        .iter()
        .map(|s| (s.winner.institution_id.to_string(), s.winner.period.to_string(), s.winner.revision))
        .collect();
    let t = |i: &str, p: &str, r| (i.to_string(), p.to_string(), r);
    assert_eq!(taken, [t("B", "2020-01", 2), t("A", "2020-01", 1), t("A", "2020-02", 1), t("AB", "2020-01", 1)]);
    assert!(l.take_dirty().is_empty(), "taken once");
    l.apply(report("A", "2020-01", 1, 5.0, at));
    assert_eq!(l.take_dirty().len(), 1, "a repeat after the take touches its slot again");
}

#[test]
fn dedupe_and_revisions() {
    let mut l = Ledger::new(LedgerSettings::default());
    let r1 = report("A", "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00");
    assert_eq!(l.apply(r1.clone()), Outcome::New);
    assert_eq!(l.apply(r1.clone()), Outcome::Duplicate);
    let r2 = report("A", "2020-01", 2, 7.0, "2020-02-12T10:00:00+08:00");
    assert_eq!(l.apply(r2.clone()), Outcome::Replaced { previous_revision: 1 });
    // The repeat of r1 after r2 is still a duplicate, not a stale revision.
    assert_eq!(l.apply(r1), Outcome::Duplicate);
    let mut r2b = report("A", "2020-01", 2, 9.0, "2020-02-13T10:00:00+08:00");
    r2b.report_id = "A/2020-01/r2-resent-differently".into();
    assert!(matches!(l.apply(r2b.clone()), Outcome::Rejected(Rejection { reason: Reason::StaleRevision, .. })));
    assert_eq!(l.report("A", "2020-01".parse().unwrap()).unwrap().metrics.value(Metric::NplBalance), 7.0);
    assert_eq!(l.counts(), LedgerCounts { new: 1, replaced: 1, duplicates: 2, rejected: 1 });
    // Every id seen is kept (the winner's with it) and restored: each is a duplicate after.
    let slot = l.slot("A", "2020-01".parse().unwrap()).unwrap();
    let mut seen = slot.seen.clone();
    seen.sort();
    assert_eq!(seen, ["A/2020-01/r1", "A/2020-01/r2", "A/2020-01/r2-resent-differently"]);
    let mut back = Ledger::new(LedgerSettings::default());
    back.restore_slot(slot);
    for r in [report("A", "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"), r2, r2b] {
        assert_eq!(back.apply(r), Outcome::Duplicate);
    }
}

#[test]
fn an_older_period_never_overwrites_a_newer_one() {
    let mut l = Ledger::new(LedgerSettings::default());
    l.apply(report("A", "2020-02", 1, 6.0, "2020-03-10T10:00:00+08:00"));
    l.apply(report("A", "2020-01", 1, 5.0, "2020-03-11T10:00:00+08:00"));
    let rec = l.institution("A").unwrap();
    assert_eq!(rec.latest().unwrap().period.to_string(), "2020-02");
    assert_eq!(rec.reports().count(), 2);
}

#[test]
fn sector_conflict_is_inconsistent() {
    let mut l = Ledger::new(LedgerSettings::default());
    l.apply(report("A", "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"));
    let mut other = report("A", "2020-02", 1, 5.0, "2020-03-10T10:00:00+08:00");
    other.sector = Sector::Guarantee;
    other.metrics = Metrics::new(Sector::Guarantee, &[1.0, 1.0, 0.0, 0.0, 1.0, 1.0]).unwrap();
    assert!(matches!(l.apply(other), Outcome::Rejected(Rejection { reason: Reason::Inconsistent, .. })));
}

#[test]
fn missing_and_late_reports_follow_the_watermark() {
    let mut l = Ledger::new(LedgerSettings::default());
    l.apply(report("A", "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"));
    // 2020-02 is late (deadline 2020-03-16), 2020-03 never comes.
    l.apply(report("A", "2020-02", 1, 5.0, "2020-03-20T10:00:00+08:00"));
    l.apply(report("B", "2020-04", 1, 5.0, "2020-05-20T10:00:00+08:00"));
    let exp = l.expected("A");
    let kinds: Vec<_> = exp
        .iter()
        .map(|(p, e)| {
            (
                p.to_string(),
                match e {
                    Expected::OnTime { .. } => "on-time",
                    Expected::Late { .. } => "late",
                    Expected::Missing { .. } => "missing",
                },
            )
        })
        .collect();
    // The watermark (2020-05-20) passed the deadlines of 2020-03 (04-15) and 2020-04 (05-15).
    assert_eq!(
        kinds,
        vec![
            ("2020-01".into(), "on-time"),
            ("2020-02".into(), "late"),
            ("2020-03".into(), "missing"),
            ("2020-04".into(), "missing")
        ]
    );
}

#[test]
fn a_held_watermark_trails_the_hold_never_moves_back_and_follows_the_latest_once_released() {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
    let mut l = Ledger::new(LedgerSettings::default());
    l.apply(report("A", "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"));
    assert!(!l.hold_watermark(Some(at("2020-03-01T00:00:00+08:00"))), "a hold ahead of the watermark changes nothing");
    l.apply(report("B", "2020-03", 1, 5.0, "2020-04-10T10:00:00+08:00"));
    assert_eq!(l.watermark(), Some(at("2020-03-01T00:00:00+08:00")), "held");
    assert_eq!(l.max_submitted(), Some(at("2020-04-10T10:00:00+08:00")), "the latest seen is kept");
    assert!(!l.hold_watermark(Some(at("2020-01-01T00:00:00+08:00"))), "a hold never moves the watermark back");
    assert_eq!(l.watermark(), Some(at("2020-03-01T00:00:00+08:00")));
    assert!(l.hold_watermark(Some(at("2020-03-20T00:00:00+08:00"))));
    assert_eq!(l.watermark(), Some(at("2020-03-20T00:00:00+08:00")));
    assert!(l.hold_watermark(None), "released");
    assert_eq!(l.watermark(), Some(at("2020-04-10T10:00:00+08:00")));
}

#[test]
fn a_frozen_watermark_stays_where_it_was_until_raised_or_released() {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
    let mut fresh = Ledger::new(LedgerSettings::default());
    assert!(!fresh.freeze_watermark());
    fresh.apply(report("A", "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"));
    assert_eq!(fresh.watermark(), Some(BEFORE_ANY_DEADLINE.fixed_offset()), "frozen before anything was seen");
    assert_eq!(
        fresh.expected("A"),
        vec![(Period::new(2020, 1).unwrap(), Expected::OnTime { at: at("2020-02-10T10:00:00+08:00") })],
        "what was reported still shows, nothing is missing"
    );
    assert!(fresh.hold_watermark(Some(at("2020-02-01T00:00:00+08:00"))), "raised");
    assert_eq!(fresh.watermark(), Some(at("2020-02-01T00:00:00+08:00")));

    let mut seen = Ledger::new(LedgerSettings::default());
    seen.apply(report("A", "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"));
    assert!(!seen.freeze_watermark());
    seen.apply(report("B", "2020-03", 1, 5.0, "2020-04-10T10:00:00+08:00"));
    assert_eq!(seen.watermark(), Some(at("2020-02-10T10:00:00+08:00")), "frozen where it was");
    assert!(seen.hold_watermark(None), "released");
    assert_eq!(seen.watermark(), Some(at("2020-04-10T10:00:00+08:00")));
}

#[test]
fn a_correction_after_the_deadline_does_not_make_a_report_late() {
    let mut l = Ledger::new(LedgerSettings::default());
    l.apply(report("A", "2020-01", 2, 6.0, "2020-03-01T10:00:00+08:00"));
    // r1 arrives after r2 and is stale, but it proves the report was submitted on time.
    l.apply(report("A", "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"));
    assert!(matches!(l.expected("A")[0].1, Expected::OnTime { .. }));
}

proptest! {
    /// Whatever the order, with repeats, the winners are the highest revisions.
    #[test]
    fn winners_do_not_depend_on_order(order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(), dup in 0..12usize) {
        let mut reports = Vec::new();
        for inst in ["A", "B"] {
            for (i, p) in ["2020-01", "2020-02"].iter().enumerate() {
                for rev in 1..=3u32 {
                    reports.push(report(inst, p, rev, f64::from(rev) + i as f64, "2020-03-01T10:00:00+08:00"));
                }
            }
        }
        let mut l = Ledger::new(LedgerSettings::default());
        for &i in &order {
            l.apply(reports[i].clone());
            if i == dup { l.apply(reports[i].clone()); }
        }
        for inst in ["A", "B"] {
            for p in ["2020-01", "2020-02"] {
                prop_assert_eq!(l.report(inst, p.parse().unwrap()).unwrap().revision, 3);
            }
        }
        // The sector-period index holds the same winners, one per institution, in id order.
        l.index();
        for p in ["2020-01", "2020-02"] {
            let held: Vec<(&str, u32)> = l
                .sector_period(Sector::Microloan, p.parse().unwrap())
                .map(|r| (&*r.institution_id, r.revision))
                .collect();
            prop_assert_eq!(held, vec![("A", 3), ("B", 3)]);
        }
        prop_assert_eq!(l.len(), 4);
        prop_assert_eq!(l.counts().duplicates, 1);
    }
}

proptest! {
    /// However the reports applied are put in order (one by one into a long sector-period,
    /// sorted and merged into a short one, or a mix across calls), a sector-period holds
    /// each institution's winning report, in id order, and counts them.
    #[test]
    fn the_sector_period_index_holds_the_winners_in_id_order(
        applied in proptest::collection::vec((0..40usize, 1..4u32, 0..2usize, any::<bool>()), 1..160),
    ) {
        let mut l = Ledger::new(LedgerSettings::default());
        let mut model: BTreeMap<(usize, String), (u32, usize)> = BTreeMap::new();
        for (n, &(inst, rev, p, index_after)) in applied.iter().enumerate() {
            let (id, period) = (format!("CQ-MLC-{inst}"), ["2020-01", "2020-02"][p]);
            let mut r = report(&id, period, rev, n as f64, "2020-03-01T10:00:00+08:00");
            // A distinct report id per application: a higher revision wins, an equal or
            // lower one is stale.
            r.report_id = format!("{id}/{period}/r{rev}/{n}").into();
            l.apply(r);
            // The first of the highest revision wins: an equal revision is stale.
            let held = model.entry((p, id)).or_insert((rev, n));
            if rev > held.0 {
                *held = (rev, n);
            }
            prop_assert_eq!(l.sector_period_len(Sector::Microloan, period.parse().unwrap()), model.keys().filter(|(q, _)| *q == p).count());
            if index_after {
                l.index();
            }
        }
        l.index();
        for (p, period) in ["2020-01", "2020-02"].into_iter().enumerate() {
            let held: Vec<(String, u32, String)> = l
                .sector_period(Sector::Microloan, period.parse().unwrap())
                .map(|r| (r.institution_id.to_string(), r.revision, r.report_id.to_string()))
                .collect();
            let want: Vec<(String, u32, String)> = model
                .iter()
                .filter(|((q, _), _)| *q == p)
                .map(|((_, id), (rev, n))| (id.clone(), *rev, format!("{id}/{period}/r{rev}/{n}")))
                .collect();
            prop_assert_eq!(held, want);
        }
    }
}

#[test]
fn a_sector_period_read_before_the_index_is_a_panic_not_a_stale_answer() {
    let mut l = Ledger::new(LedgerSettings::default());
    l.apply(report("A", "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"));
    l.index();
    l.apply(report("B", "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"));
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        l.sector_period(Sector::Microloan, "2020-01".parse().unwrap()).count()
    }));
    assert!(read.is_err());
    l.index();
    assert_eq!(l.sector_period(Sector::Microloan, "2020-01".parse().unwrap()).count(), 2);
}

#[test]
fn institutions_are_walked_in_id_order_applied_or_restored() {
    let mut l = Ledger::new(LedgerSettings::default());
    for id in ["CQ-MLC-20", "CQ-MLC-3", "CQ-MLC-100", "CQ-MLC-3"] {
        l.apply(report(id, "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"));
    }
    let mut restored = Ledger::new(LedgerSettings::default());
    for id in ["B", "A"] {
        let r = Arc::new(report(id, "2020-01", 1, 5.0, "2020-02-10T10:00:00+08:00"));
        let first_submitted = r.submitted_at;
        restored.restore_slot(SlotState { winner: r, seen: Vec::new(), first_submitted, original: None });
    }
    let ids = |l: &Ledger| l.institutions().map(|r| r.institution_id.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&l), ["CQ-MLC-100", "CQ-MLC-20", "CQ-MLC-3"]);
    assert_eq!(ids(&restored), ["A", "B"]);
}

#[test]
fn deadlines_from_the_table_are_those_worked_out() {
    let settings = LedgerSettings { report_deadline: Duration::days(20), ..LedgerSettings::default() };
    let mut l = Ledger::new(settings);
    l.apply(report("A", "2020-03", 1, 5.0, "2020-04-10T10:00:00+08:00"));
    l.apply(report("A", "2020-05", 1, 5.0, "2020-06-10T10:00:00+08:00"));
    let worked_out = |p: Period| p.end() + Duration::days(20);
    let periods = || (0..40).map(|i| "2019-06".parse::<Period>().unwrap().add_months(i));
    let before: Vec<_> = periods().map(|p| l.deadline(p)).collect();
    l.index();
    assert!(!l.deadlines.1.is_empty(), "index takes a table");
    for (p, b) in periods().zip(before) {
        assert_eq!(l.deadline(p), worked_out(p), "{p}");
        assert_eq!(b, worked_out(p), "{p} before the table");
    }
}
