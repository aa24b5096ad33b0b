use super::*;
use crate::testutil::*;
use crate::{EntitySeries, RulePack, derive};
use yujing_model::Sector;

const ML: SectorScope = SectorScope::One(Sector::Microloan);

/// The microloan-npl history of CQ-MLC-0042 for NPL ratios from 2025-01.
fn npl(values: &[Option<f64>]) -> Vec<Alert> {
    let s = institution(Sector::Microloan, run("npl_ratio", values));
    derive(&RulePack::default_pack(), &s)
}

fn rec(book: &mut AlertBook, alerts: Vec<Alert>) -> Vec<(TransitionKind, String, AlertState)> {
    book.reconcile(EntityKind::Institution, "CQ-MLC-0042", ML, alerts)
        .into_iter()
        .map(|t| {
            assert_eq!(t.by, "yujing");
            (t.kind, t.alert.id.clone(), t.alert.state)
        })
        .collect()
}

fn now() -> DateTime<FixedOffset> {
    at("2025-06")
}

#[test]
fn reconcile_opens_escalates_resolves_and_supersedes() {
    use AlertState::*;
    use TransitionKind as T;
    let mut book = AlertBook::new();
    let first = npl(&[Some(0.12)]);
    let id = first[0].id.clone();
    assert_eq!(rec(&mut book, first.clone()), [(T::Opened, id.clone(), Open)]);
    assert!(rec(&mut book, first).is_empty(), "nothing changed, nothing published");

    // a new period refreshes evidence silently
    let quiet = npl(&[Some(0.12), Some(0.13)]);
    assert!(rec(&mut book, quiet).is_empty());
    assert_eq!(book.get(&id).unwrap().last_period, period("2025-02"));

    let worse = npl(&[Some(0.12), Some(0.13), Some(0.16)]);
    assert_eq!(rec(&mut book, worse), [(T::Escalated, id.clone(), Open)]);
    assert_eq!(book.get(&id).unwrap().severity, Severity::Orange);

    let better = npl(&[Some(0.12), Some(0.13), Some(0.16), Some(0.05)]);
    assert_eq!(rec(&mut book, better), [(T::AutoResolved, id.clone(), AutoResolved)]);
    assert_eq!(book.current().count(), 1, "auto-resolved alerts are still current");

    // a corrected January report: the alert now opens in February, with another id
    let corrected = npl(&[Some(0.02), Some(0.13), Some(0.16), Some(0.05)]);
    let new_id = corrected[0].id.clone();
    assert_ne!(new_id, id);
    let t = rec(&mut book, corrected.clone());
    assert_eq!(
        t,
        [
            (T::Superseded, id.clone(), Superseded),
            (T::Opened, new_id.clone(), Open),
            (T::AutoResolved, new_id.clone(), AutoResolved),
        ]
    );
    assert_eq!(book.get(&id).unwrap().state, Superseded, "kept for audit");
    let current: Vec<&str> = book.current().map(|a| a.id.as_str()).collect();
    assert_eq!(current, [new_id.as_str()]);
    assert_eq!(book.all().count(), 2);
    assert!(rec(&mut book, corrected).is_empty(), "superseded only once");

    // the correction is corrected back: the superseded id opens again
    let back = npl(&[Some(0.12), Some(0.13), Some(0.16), Some(0.05)]);
    let t = rec(&mut book, back);
    assert_eq!(
        t,
        [
            (T::Opened, id.clone(), Open),
            (T::AutoResolved, id.clone(), AutoResolved),
            (T::Superseded, new_id, Superseded),
        ]
    );
}

#[test]
fn opened_then_auto_resolved_shows_the_alert_open_first() {
    let mut book = AlertBook::new();
    let alerts = npl(&[Some(0.12), Some(0.05)]);
    let t = book.reconcile(EntityKind::Institution, "CQ-MLC-0042", ML, alerts);
    assert_eq!(t.len(), 2);
    assert_eq!((t[0].kind, t[0].alert.state), (TransitionKind::Opened, AlertState::Open));
    assert_eq!(t[0].alert.resolved_at, None);
    assert_eq!(t[1].kind, TransitionKind::AutoResolved);
    assert_eq!(t[1].alert.resolved_at, Some(at("2025-02")));
}

#[test]
fn an_auto_resolved_alert_reopened_by_a_correction_is_opened_again() {
    let mut book = AlertBook::new();
    rec(&mut book, npl(&[Some(0.12), Some(0.05)]));
    let t = rec(&mut book, npl(&[Some(0.12), Some(0.11)]));
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].0, t[0].2), (TransitionKind::Opened, AlertState::Open));
}

#[test]
fn transitions_come_in_period_then_id_order() {
    let mut book = AlertBook::new();
    // three alerts: Jan (resolved in Feb), Mar (resolved Apr), May
    let alerts = npl(&[Some(0.12), Some(0.05), Some(0.12), Some(0.05), Some(0.12)]);
    assert_eq!(alerts.len(), 3);
    let t = book.reconcile(EntityKind::Institution, "CQ-MLC-0042", ML, alerts.clone());
    let periods: Vec<String> = t.iter().map(|t| t.alert.period.to_string()).collect();
    assert_eq!(periods, ["2025-01", "2025-01", "2025-03", "2025-03", "2025-05"]);
    let ids: Vec<&str> = book.current().map(|a| a.id.as_str()).collect();
    let expected: Vec<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, expected);
}

#[test]
fn acknowledgement_and_resolution_survive_re_derivation() {
    let mut book = AlertBook::new();
    let alerts = npl(&[Some(0.12), Some(0.13)]);
    let id = alerts[0].id.clone();
    rec(&mut book, alerts.clone());

    let t = book.acknowledge(&id, "张三", now()).unwrap();
    assert_eq!((t.kind, t.by.as_str()), (TransitionKind::Acknowledged, "张三"));
    assert_eq!(t.alert.state, AlertState::Acknowledged);
    assert_eq!(t.alert.updated_at, now());
    assert!(rec(&mut book, alerts.clone()).is_empty());
    assert_eq!(book.get(&id).unwrap().state, AlertState::Acknowledged);

    let t = book.assign(&id, "李四", "张三", now()).unwrap();
    assert_eq!(t.kind, TransitionKind::Assigned);
    assert_eq!(t.alert.assignee.as_deref(), Some("李四"));
    assert_eq!(t.alert.state, AlertState::Acknowledged);

    let t = book.resolve(&id, "张三", "  已约谈，限期整改  ", now()).unwrap();
    assert_eq!(t.kind, TransitionKind::Resolved);
    assert_eq!(t.alert.state, AlertState::Resolved);
    assert_eq!(t.alert.note.as_deref(), Some("已约谈，限期整改"));
    assert_eq!(t.alert.resolved_at, Some(now()));

    // same severity next period: still resolved, note and assignee kept
    let same = npl(&[Some(0.12), Some(0.13), Some(0.14)]);
    assert!(rec(&mut book, same).is_empty());
    let a = book.get(&id).unwrap();
    assert_eq!(a.state, AlertState::Resolved);
    assert_eq!(a.note.as_deref(), Some("已约谈，限期整改"));
    assert_eq!(a.assignee.as_deref(), Some("李四"));
    assert_eq!(a.last_period, period("2025-03"), "evidence still refreshes");
    // the engine's own recovery does not re-resolve a person's resolution
    assert!(rec(&mut book, npl(&[Some(0.12), Some(0.13), Some(0.05)])).is_empty());
    assert_eq!(book.get(&id).unwrap().state, AlertState::Resolved);

    // severity rises above what was resolved: it reopens
    let worse = npl(&[Some(0.12), Some(0.13), Some(0.16)]);
    let t = rec(&mut book, worse);
    assert_eq!(t, [(TransitionKind::Escalated, id.clone(), AlertState::Open)]);
    let a = book.get(&id).unwrap();
    assert_eq!((a.note.as_deref(), a.resolved_at), (None, None));
    assert_eq!(a.assignee.as_deref(), Some("李四"));
    // and can be resolved again at the new severity
    book.resolve(&id, "王五", "专班已介入", now()).unwrap();
    assert_eq!(book.get(&id).unwrap().state, AlertState::Resolved);
    assert_eq!(book.actions_for(&id).len(), 4);
}

#[test]
fn engine_auto_resolution_of_an_acknowledged_alert_is_published() {
    let mut book = AlertBook::new();
    let id = npl(&[Some(0.12)])[0].id.clone();
    rec(&mut book, npl(&[Some(0.12)]));
    book.acknowledge(&id, "张三", now()).unwrap();
    let t = rec(&mut book, npl(&[Some(0.12), Some(0.05)]));
    assert_eq!(t, [(TransitionKind::AutoResolved, id, AlertState::AutoResolved)]);
}

#[test]
fn refused_actions_are_typed_errors() {
    let mut book = AlertBook::new();
    let alerts = npl(&[Some(0.12), Some(0.05), Some(0.12)]);
    let (resolved, open) = (alerts[0].id.clone(), alerts[1].id.clone());
    rec(&mut book, alerts);

    let e = book.resolve(&open, "张三", "   ", now()).unwrap_err();
    assert!(matches!(&e, Error::NoteRequired { id } if *id == open), "{e:?}");
    assert_eq!(book.get(&open).unwrap().state, AlertState::Open, "nothing recorded");
    assert!(book.actions_for(&open).is_empty());
    assert!(matches!(book.acknowledge("yj-0000000000000000", "张三", now()), Err(Error::UnknownAlert { .. })));
    assert!(matches!(book.acknowledge(&open, " ", now()), Err(Error::BlankActor { field: "by", .. })));
    assert!(matches!(book.assign(&open, "", "张三", now()), Err(Error::BlankActor { field: "assignee", .. })));
    let e = book.resolve(&resolved, "张三", "done", now()).unwrap_err();
    assert!(matches!(e, Error::InvalidState { state: AlertState::AutoResolved, action: "resolve", .. }), "{e:?}");
    book.acknowledge(&open, "张三", now()).unwrap();
    assert!(matches!(
        book.acknowledge(&open, "张三", now()),
        Err(Error::InvalidState { state: AlertState::Acknowledged, .. })
    ));
    book.resolve(&open, "张三", "done", now()).unwrap();
    assert!(matches!(
        book.resolve(&open, "张三", "again", now()),
        Err(Error::InvalidState { state: AlertState::Resolved, .. })
    ));
    // superseded
    rec(&mut book, Vec::new());
    assert!(matches!(
        book.acknowledge(&resolved, "张三", now()),
        Err(Error::InvalidState { state: AlertState::Superseded, .. })
    ));
    assert_eq!(book.current().count(), 0);
}

#[test]
fn restore_from_persisted_alerts_and_actions_publishes_nothing_new() {
    let mut book = AlertBook::new();
    let alerts = npl(&[Some(0.12), Some(0.05), Some(0.12), Some(0.13)]);
    let (first, second) = (alerts[0].id.clone(), alerts[1].id.clone());
    rec(&mut book, alerts.clone());
    book.assign(&second, "李四", "张三", now()).unwrap();
    book.resolve(&second, "张三", "已核实", now()).unwrap();

    // what a store would keep, through JSON
    let published: Vec<Alert> = book.all().cloned().collect();
    let actions = serde_json::to_string(&book.actions().collect::<Vec<_>>()).unwrap();
    let actions: Vec<Action> = serde_json::from_str(&actions).unwrap();
    assert_eq!(actions.len(), 2);
    assert!(matches!(&actions[1].kind, ActionKind::Resolve { note } if note == "已核实"));

    let mut restored = AlertBook::restore(published, actions.clone());
    assert_eq!(restored.len(), 2);
    assert!(rec(&mut restored, alerts.clone()).is_empty(), "nothing doubled");
    assert_eq!(restored.get(&second).unwrap().state, AlertState::Resolved);
    assert_eq!(restored.get(&first).unwrap().state, AlertState::AutoResolved);
    let (a, b): (Vec<_>, Vec<_>) = (restored.current().collect(), book.current().collect());
    assert_eq!(a, b);

    // actions alone: everything is opened again, with the people's actions laid over
    let mut bare = AlertBook::restore(Vec::new(), actions);
    let t = rec(&mut bare, alerts);
    assert_eq!(t.last().unwrap(), &(TransitionKind::Opened, second.clone(), AlertState::Resolved));
    assert_eq!(bare.get(&second).unwrap().assignee.as_deref(), Some("李四"));
}

#[test]
fn alerts_of_another_entity_are_ignored() {
    let mut book = AlertBook::new();
    let t = book.reconcile(EntityKind::Institution, "CQ-MLC-9999", ML, npl(&[Some(0.12)]));
    assert!(t.is_empty());
    assert!(book.is_empty());
}

#[test]
fn actions_serialize_with_a_type_tag() {
    let a = Action {
        alert_id: "yj-0123456789abcdef".into(),
        by: "张三".into(),
        at: now(),
        severity: Severity::Orange,
        kind: ActionKind::Assign { assignee: "李四".into() },
    };
    let j = serde_json::to_value(&a).unwrap();
    assert_eq!(j["kind"]["type"], "assign");
    assert_eq!(j["kind"]["assignee"], "李四");
    assert_eq!(j["severity"], "orange");
    assert_eq!(serde_json::from_value::<Action>(j).unwrap(), a);
}

#[test]
fn take_changed_lists_only_alerts_whose_published_view_changed() {
    use AlertState::*;
    use TransitionKind as T;
    let mut book = AlertBook::new();
    let taken = |book: &mut AlertBook| -> Vec<String> { book.take_changed().iter().map(|a| a.id.clone()).collect() };
    let first = npl(&[Some(0.12)]);
    let id = first[0].id.clone();
    rec(&mut book, first.clone());
    assert_eq!(taken(&mut book), [id.as_str()], "opened");
    rec(&mut book, first.clone());
    assert!(taken(&mut book).is_empty(), "the same derivation again changes nothing");

    // A new period refreshes the evidence without a transition: the store must still get it.
    assert!(rec(&mut book, npl(&[Some(0.12), Some(0.13)])).is_empty());
    assert_eq!(taken(&mut book), [id.as_str()], "silently refreshed");

    // A correction supersedes the alert and opens another.
    let corrected = npl(&[Some(0.02), Some(0.13)]);
    let new_id = corrected[0].id.clone();
    rec(&mut book, corrected.clone());
    let changed = book.take_changed();
    let mut expected = [(id.clone(), Superseded), (new_id.clone(), Open)];
    expected.sort();
    assert_eq!(changed.iter().map(|a| (a.id.clone(), a.state)).collect::<Vec<_>>(), expected);

    // Handed over, the superseded alert is no longer held, but its id still counts.
    assert_eq!(book.get(&id), None);
    assert_eq!(book.len(), 2);
    assert!(rec(&mut book, corrected).is_empty(), "superseded only once");
    assert!(matches!(
        book.acknowledge(&id, "张三", now()),
        Err(Error::InvalidState { state: AlertState::Superseded, .. })
    ));
    // The correction corrected back: the taken id opens again, as if it were held.
    let t = rec(&mut book, npl(&[Some(0.12), Some(0.13)]));
    assert_eq!(t, [(T::Opened, id.clone(), Open), (T::Superseded, new_id, Superseded)]);
    assert_eq!(book.get(&id).unwrap().state, Open);
}

/// Microloan points from 2025-01 with an NPL ratio, a composite and a trend z-score each.
fn scored(points: &[(f64, f64, f64)]) -> EntitySeries {
    let start = period("2025-01");
    let points = points
        .iter()
        .enumerate()
        .map(|(i, (npl, score, z))| {
            pt(&start.add_months(i as i32).to_string(), &[("npl_ratio", *npl), ("score", *score), ("trend_z", *z)])
        })
        .collect();
    institution(Sector::Microloan, points)
}

#[test]
fn restating_the_trend_figures_gives_what_deriving_again_gives() {
    let pack = RulePack::default_pack();
    let before = scored(&[(0.12, 40.0, 0.5), (0.13, 42.0, 0.8)]);
    let after = scored(&[(0.12, 40.0, 0.5), (0.13, 43.5, 1.1)]);
    let (mut restated, mut derived_again) = (AlertBook::new(), AlertBook::new());
    for book in [&mut restated, &mut derived_again] {
        book.reconcile(EntityKind::Institution, "CQ-MLC-0042", ML, derive(&pack, &before));
        book.take_changed();
    }
    derived_again.reconcile(EntityKind::Institution, "CQ-MLC-0042", ML, derive(&pack, &after));
    let last = period("2025-02");
    assert!(restated.restate_trend(EntityKind::Institution, "CQ-MLC-0042", ML, last, (Some(43.5), Some(1.1))));
    let views = |b: &AlertBook| b.current().cloned().collect::<Vec<Alert>>();
    assert_eq!(views(&restated), views(&derived_again));
    assert_eq!(restated.current().next().unwrap().evidence.trend_z.get(), Some(1.1));
    assert_eq!(restated.take_changed().len(), 1, "the store is given the restated alert");
    // Nothing shows the figures of another period.
    assert!(restated.restate_trend(EntityKind::Institution, "CQ-MLC-0042", ML, period("2025-01"), (None, None)));
    assert!(restated.take_changed().is_empty());
}

#[test]
fn an_alert_watching_the_composite_is_not_restated() {
    let pack = RulePack::default_pack();
    // Orange or worse for three periods: the exit mechanism's alert watches the composite.
    let series = scored(&[(0.05, 80.0, 0.0), (0.05, 81.0, 0.1), (0.05, 82.0, 0.2)]);
    let mut book = AlertBook::new();
    book.reconcile(EntityKind::Institution, "CQ-MLC-0042", ML, derive(&pack, &series));
    assert!(book.current().any(|a| &*a.evidence.metric == "score"));
    let before = book.current().cloned().collect::<Vec<Alert>>();
    let last = period("2025-03");
    assert!(!book.restate_trend(EntityKind::Institution, "CQ-MLC-0042", ML, last, (Some(83.0), Some(0.2))));
    assert_eq!(book.current().cloned().collect::<Vec<Alert>>(), before, "nothing changed");
    // Only the z-score moved: the composite's alert shows the same figures but the z-score.
    assert!(book.restate_trend(EntityKind::Institution, "CQ-MLC-0042", ML, last, (Some(82.0), Some(0.3))));
}
