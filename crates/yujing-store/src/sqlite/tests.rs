use super::*;
use crate::Delivery;
use crate::ledger::Outcome;
use yujing_model::{AlertState, Metrics, Report, Sector, Transition, TransitionKind};

fn report(inst: &str, period: &str, revision: u32, submitted: &str) -> Report {
    Report {
        schema_version: 1,
        report_id: format!("{inst}/{period}/r{revision}").into(),
        institution_id: inst.into(),
        institution_name: format!("{inst} 小额贷款有限公司").into(),
        sector: Sector::Microloan,
        district_code: 500103,
        period: period.parse().unwrap(),
        revision,
        submitted_at: DateTime::parse_from_rfc3339(submitted).unwrap(),
        metrics: Metrics::new(Sector::Microloan, &[100.0, 5.5, 50.0, 5.0, 10.0]).unwrap(),
    }
}

/// The rows a query gives, each as a tuple of its columns (or one column's value).
fn rows<T>(store: &Store, sql: &str, row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Vec<T> {
    store.conn.prepare(sql).unwrap().query_map([], row).unwrap().collect::<rusqlite::Result<_>>().unwrap()
}

/// A store as the first `version` migrations left it.
fn store_as_version(path: &Path, version: usize) -> rusqlite::Connection {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    for m in &MIGRATIONS[..version] {
        tx.execute_batch(m).unwrap();
    }
    tx.pragma_update(None, "user_version", version as i64).unwrap();
    tx.commit().unwrap();
    conn
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = StoreConfig::at(dir.path().join("y.db")).build().unwrap();
    (dir, s)
}

#[test]
fn the_ledger_round_trips_exactly() {
    let (_d, mut store) = store();
    let mut ledger = Ledger::new(LedgerSettings::default());
    ledger.apply(report("A", "2020-01", 2, "2020-02-12T10:00:00+08:00"));
    assert!(matches!(ledger.apply(report("A", "2020-01", 1, "2020-02-05T10:00:00+08:00")), Outcome::Rejected(_)));
    ledger.apply(report("B", "2020-02", 1, "2020-03-09T10:00:00+08:00"));
    let slots = ledger.take_dirty();
    assert_eq!(slots.len(), 2);
    assert!(ledger.take_dirty().is_empty());
    store.commit(&BatchWrite { slots, max_submitted: ledger.max_submitted(), ..Default::default() }).unwrap();

    let back = store.load_ledger(LedgerSettings::default()).unwrap();
    for (inst, p) in [("A", "2020-01"), ("B", "2020-02")] {
        assert_eq!(back.slot(inst, p.parse().unwrap()), ledger.slot(inst, p.parse().unwrap()));
    }
    assert_eq!(back.watermark(), ledger.watermark());
    assert_eq!(back.expected("A"), ledger.expected("A"));
    // A repeat after restart is still a duplicate; the stale r1 is still known.
    let mut back = back;
    assert_eq!(back.apply(report("A", "2020-01", 1, "2020-02-05T10:00:00+08:00")), Outcome::Duplicate);
    assert_eq!(store.report_count().unwrap(), 2);
}

#[test]
fn a_slot_with_its_original_text_is_stored_as_that_text_and_read_back_as_the_report() {
    let (_d, mut store) = store();
    let mut ledger = Ledger::new(LedgerSettings::default());
    ledger.apply(report("A", "2020-01", 1, "2020-02-12T10:00:00+08:00"));
    let mut slots = ledger.take_dirty();
    // As an institution might send it: another key order, spaces, a name to trim.
    let original = r#"{"metrics": {"borrowings": 10, "largest_borrower_balance": 5, "net_assets": 50,
        "npl_balance": 5.5, "loan_balance": 100}, "schema_version": 1, "report_id": "A/2020-01/r1",
        "institution_id": "A", "institution_name": " A 小额贷款有限公司 ", "sector": "microloan",
        "district_code": "500103", "period": "2020-01", "revision": 1,
        "submitted_at": "2020-02-12T10:00:00+08:00"}"#;
    slots[0].original = Some(original.to_string());
    store.commit(&BatchWrite { slots, ..Default::default() }).unwrap();
    let stored: String = store.conn.query_row("SELECT report FROM reports", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, original);
    let back = store.load_ledger(LedgerSettings::default()).unwrap();
    let period = "2020-01".parse().unwrap();
    assert_eq!(back.report("A", period), ledger.report("A", period));
}

#[test]
fn the_watermarks_hold_is_kept_until_a_batch_clears_it() {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
    let (_d, mut store) = store();
    let mut ledger = Ledger::new(LedgerSettings::default());
    ledger.apply(report("A", "2020-01", 1, "2020-02-12T10:00:00+08:00"));
    ledger.apply(report("B", "2020-03", 1, "2020-04-09T10:00:00+08:00"));
    let hold = Some(at("2020-03-01T00:00:00+08:00"));
    let (slots, max) = (ledger.take_dirty(), ledger.max_submitted());
    let write = |slots, hold| BatchWrite { slots, max_submitted: max, watermark_hold: hold, ..Default::default() };
    store.commit(&write(slots, Some(hold))).unwrap();
    let back = store.load_ledger(LedgerSettings::default()).unwrap();
    assert_eq!(back.watermark(), hold, "a restart derives with the hold the service had");
    assert_eq!(back.max_submitted(), ledger.max_submitted());
    store.commit(&write(Vec::new(), None)).unwrap();
    assert_eq!(store.load_ledger(LedgerSettings::default()).unwrap().watermark(), hold, "None leaves it");
    store.commit(&write(Vec::new(), Some(None))).unwrap();
    let back = store.load_ledger(LedgerSettings::default()).unwrap();
    assert_eq!(back.watermark(), ledger.max_submitted(), "cleared");
}

#[test]
fn alerts_actions_checkpoints_and_the_audit_outbox() {
    let (dir, mut store) = store();
    let at = DateTime::parse_from_rfc3339("2020-03-01T10:00:00+08:00").unwrap();
    let alert: Alert = serde_json::from_str(include_str!("test_alert.json")).unwrap();
    let transition = |kind: TransitionKind| Transition { kind, by: "yujing".into(), alert: Arc::new(alert.clone()) };
    let (opened, escalated) = (transition(TransitionKind::Opened), transition(TransitionKind::Escalated));
    let cp = |p: i32, o: i64| Checkpoint { source: "kafka:yujing.reports".into(), partition: p, next_offset: o };
    store
        .commit(&BatchWrite {
            alerts: vec![&alert],
            actions: vec![(alert.id.clone(), "{\"type\":\"acknowledge\"}".into())],
            audit: vec![(at, &opened), (at, &escalated)],
            checkpoints: vec![cp(0, 10), cp(1, 5)],
            ..Default::default()
        })
        .unwrap();
    // Offsets never go backwards.
    store.commit(&BatchWrite { checkpoints: vec![cp(0, 7), cp(1, 6)], ..Default::default() }).unwrap();
    assert_eq!(store.checkpoints("kafka:yujing.reports").unwrap(), vec![cp(0, 10), cp(1, 6)]);
    assert_eq!(store.load_alerts().unwrap(), vec![alert.clone()]);
    assert_eq!(store.load_actions().unwrap().len(), 1);
    let outbox = store.audit(0, 100, true).unwrap();
    assert_eq!(outbox.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), ["opened", "escalated"]);
    // Each record is its transition, as published, with who and when.
    assert_eq!(serde_json::from_str::<Transition>(&outbox[1].record).unwrap(), escalated);
    assert_eq!(
        (outbox[1].actor.as_str(), outbox[1].alert_id.as_str(), outbox[1].recorded_at),
        ("yujing", alert.id.as_str(), at)
    );
    store.mark_published(outbox[0].seq).unwrap();
    assert_eq!(store.audit(0, 100, true).unwrap().len(), 1);
    assert_eq!(store.audit(0, 100, false).unwrap().len(), 2);

    // A reader sees the same while the writer stays open.
    let reader = Store::open_read_only(&dir.path().join("y.db")).unwrap();
    assert_eq!(reader.load_alerts().unwrap()[0].state, AlertState::Open);
    assert!(reader.audit(0, 10, false).unwrap().len() == 2);
}

#[test]
fn an_alert_written_with_its_change_is_stored_as_each_would_be_written_alone() {
    let (_d, mut store) = store();
    let at = DateTime::parse_from_rfc3339("2020-03-01T10:00:00+08:00").unwrap();
    let alert: Alert = serde_json::from_str(include_str!("test_alert.json")).unwrap();
    // One alert's row goes with its transition (the same alert); another's with none; a
    // third transition carries an equal alert that is not the one whose row is written;
    // a fourth's alert has no row in the batch.
    let shared = Arc::new(Alert { entity_name: "共享的 \"机构\"".into(), ..alert.clone() });
    let alone = Alert { id: "b".repeat(64), ..alert.clone() };
    let equal = Alert { id: "c".repeat(64), ..alert.clone() };
    let other = Arc::new(Alert { id: "d".repeat(64), ..alert.clone() });
    let changes = [
        Transition { kind: TransitionKind::Opened, by: "yujing".into(), alert: shared.clone() },
        Transition {
            kind: TransitionKind::Assigned, by: "张三 \\ \"值班\"".into(), alert: Arc::new(equal.clone())
        },
        Transition { kind: TransitionKind::AutoResolved, by: "yujing".into(), alert: other.clone() },
    ];
    store
        .commit(&BatchWrite {
            alerts: vec![&alone, &*shared, &equal],
            audit: changes.iter().map(|t| (at, t)).collect(),
            ..Default::default()
        })
        .unwrap();
    let mut written: Vec<(String, String)> =
        rows(&store, "SELECT id, alert FROM alerts ORDER BY id", |r| Ok((r.get(0)?, r.get(1)?)));
    let mut expected: Vec<(String, String)> =
        [&*shared, &alone, &equal].iter().map(|a| (a.id.clone(), serde_json::to_string(a).unwrap())).collect();
    written.sort();
    expected.sort();
    assert_eq!(written, expected, "each alert's row, and no other");
    let records: Vec<String> = store.audit(0, 10, false).unwrap().into_iter().map(|r| r.record).collect();
    let expected: Vec<String> = changes.iter().map(|t| serde_json::to_string(t).unwrap()).collect();
    assert_eq!(records, expected, "each record as the transition serializes, in order");
}

#[test]
fn marking_the_outbox_leaves_the_audit_log_as_it_was_written() {
    let (_d, mut store) = store();
    let at = DateTime::parse_from_rfc3339("2020-03-01T10:00:00+08:00").unwrap();
    let alert = Arc::new(serde_json::from_str::<Alert>(include_str!("test_alert.json")).unwrap());
    let kinds =
        [TransitionKind::Opened, TransitionKind::Escalated, TransitionKind::Acknowledged, TransitionKind::Resolved];
    let changes: Vec<Transition> =
        kinds.iter().map(|k| Transition { kind: *k, by: "yujing".into(), alert: alert.clone() }).collect();
    store.commit(&BatchWrite { audit: changes.iter().map(|t| (at, t)).collect(), ..Default::default() }).unwrap();
    let written = store.audit(0, 10, false).unwrap();
    let seqs: Vec<i64> = written.iter().map(|r| r.seq).collect();
    assert_eq!(store.audit(0, 10, true).unwrap(), written, "every record waits for the topic");
    assert_eq!(store.audit_counts().unwrap(), (4, 0, 0));

    store.mark_audit(&[seqs[1]], Delivery::Undeliverable).unwrap();
    store.mark_audit(&[seqs[0], seqs[2]], Delivery::Published).unwrap();
    let waiting: Vec<i64> = store.audit(0, 10, true).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(waiting, [seqs[3]]);
    assert_eq!(store.audit(seqs[3], 10, true).unwrap(), [], "after the last");
    assert_eq!(store.audit_counts().unwrap(), (1, 2, 1));
    store.mark_published(seqs[3]).unwrap();
    assert_eq!(store.audit_counts().unwrap(), (0, 3, 1), "the refused one stays refused");
    store.mark_audit(&[seqs[1]], Delivery::Pending).unwrap();
    assert_eq!(store.audit_counts().unwrap(), (1, 3, 0), "and can be queued again");
    assert_eq!(store.audit(0, 10, false).unwrap(), written, "the log itself is as written");
}

#[test]
fn a_version_4_store_keeps_what_its_outbox_had_delivered_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.db");
    {
        let conn = store_as_version(&path, 4);
        for (n, published) in [0, 1, 2, 0, 1].into_iter().enumerate() {
            conn.execute(
                "INSERT INTO audit (recorded_at, actor, kind, alert_id, record, published)
                 VALUES ('2020-03-01T10:00:00+08:00', 'yujing', 'opened', ?1, '{}', ?2)",
                params![format!("a{n}"), published],
            )
            .unwrap();
        }
    }
    let store = StoreConfig::at(&path).build().unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let waiting: Vec<String> = store.audit(0, 10, true).unwrap().into_iter().map(|r| r.alert_id).collect();
    assert_eq!(waiting, ["a0", "a3"]);
    assert_eq!(store.audit_counts().unwrap(), (2, 2, 1));
    assert_eq!(store.audit(0, 10, false).unwrap().len(), 5);
}

#[test]
fn reopening_migrates_once_and_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.db");
    drop(StoreConfig::at(&path).build().unwrap());
    let s = StoreConfig::at(&path).build().unwrap();
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
    s.conn.pragma_update(None, "user_version", 99).unwrap();
    drop(s);
    let err = StoreConfig::at(&path).build().err().unwrap().to_string();
    assert!(err.contains("newer than this build"), "{err}");
    assert!(Store::open_read_only(&dir.path().join("missing.db")).is_err());
}

#[test]
fn a_version_2_store_keeps_its_reports_when_they_are_rekeyed_by_period() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("y.db");
    // A store as version 2 left it, with two slots in it.
    drop(store_as_version(&path, 2));
    let mut ledger = Ledger::new(LedgerSettings::default());
    ledger.apply(report("B", "2020-01", 1, "2020-02-09T10:00:00+08:00"));
    ledger.apply(report("A", "2020-02", 2, "2020-03-12T10:00:00+08:00"));
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for s in ledger.take_dirty() {
            let r = &s.winner;
            conn.execute(
                "INSERT INTO reports (institution_id, period, revision, report_id, first_submitted, seen, report)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    r.institution_id,
                    r.period.index(),
                    r.revision,
                    r.report_id,
                    s.first_submitted.to_rfc3339(),
                    serde_json::to_string(&s.seen).unwrap(),
                    serde_json::to_string(r.as_ref()).unwrap()
                ],
            )
            .unwrap();
        }
    }
    let store = StoreConfig::at(&path).build().unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    let back = store.load_ledger(LedgerSettings::default()).unwrap();
    for (inst, p) in [("A", "2020-02"), ("B", "2020-01")] {
        assert!(back.slot(inst, p.parse().unwrap()).is_some(), "{inst} {p}");
        assert_eq!(back.slot(inst, p.parse().unwrap()), ledger.slot(inst, p.parse().unwrap()));
    }
    // Version 4: rows in the order written, each slot found through a unique index.
    let slot_index: Vec<String> =
        rows(&store, "SELECT name FROM pragma_index_info('reports_slot') ORDER BY seqno", |r| r.get(0));
    assert_eq!(slot_index, ["period", "institution_id"], "found by period first");
    let unique: bool = store
        .conn
        .query_row("SELECT \"unique\" FROM pragma_index_list('reports') WHERE name = 'reports_slot'", [], |r| r.get(0))
        .unwrap();
    assert!(unique);
    let in_order: Vec<(i64, String)> =
        rows(&store, "SELECT period, institution_id FROM reports ORDER BY rowid", |r| Ok((r.get(0)?, r.get(1)?)));
    let p = |s: &str| s.parse::<Period>().unwrap().index() as i64;
    assert_eq!(in_order, [(p("2020-01"), "B".to_string()), (p("2020-02"), "A".to_string())], "moved in slot order");
}

#[test]
fn a_later_revision_replaces_its_slots_row_and_the_rest_stay_in_written_order() {
    let (_d, mut store) = store();
    let mut ledger = Ledger::new(LedgerSettings::default());
    ledger.apply(report("B", "2020-01", 1, "2020-02-09T10:00:00+08:00"));
    ledger.apply(report("A", "2020-01", 1, "2020-02-10T10:00:00+08:00"));
    store.commit(&BatchWrite { slots: ledger.take_dirty(), ..Default::default() }).unwrap();
    ledger.apply(report("A", "2020-01", 2, "2020-02-20T10:00:00+08:00"));
    store.commit(&BatchWrite { slots: ledger.take_dirty(), ..Default::default() }).unwrap();

    assert_eq!(store.report_count().unwrap(), 2, "one row per slot");
    let written: Vec<(String, u32)> =
        rows(&store, "SELECT institution_id, revision FROM reports ORDER BY rowid", |r| Ok((r.get(0)?, r.get(1)?)));
    assert_eq!(written, [("B".to_string(), 1), ("A".to_string(), 2)], "the revision is written after the rest");
    let back = store.load_ledger(LedgerSettings::default()).unwrap();
    for inst in ["A", "B"] {
        let period = "2020-01".parse().unwrap();
        assert_eq!(back.slot(inst, period), ledger.slot(inst, period), "{inst}");
    }
}

#[test]
fn a_store_keeps_its_origin_across_reopening_and_two_stores_differ() {
    let (dir, mut a) = store();
    let origin = a.origin().unwrap();
    assert!(!origin.is_empty());
    assert_eq!(a.origin().unwrap(), origin);
    drop(a);
    let mut again = StoreConfig::at(dir.path().join("y.db")).build().unwrap();
    assert_eq!(again.origin().unwrap(), origin);
    let (_d, mut b) = store();
    assert_ne!(b.origin().unwrap(), origin);
}

#[test]
fn a_new_store_has_16k_pages_and_one_made_before_keeps_its_own() {
    let page_size = |path: &Path| -> i64 {
        let c = rusqlite::Connection::open(path).unwrap();
        c.pragma_query_value(None, "page_size", |r| r.get(0)).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.db");
    drop(StoreConfig::at(&new).build().unwrap());
    assert_eq!(page_size(&new), PAGE_SIZE);

    // A store made with SQLite's default pages, in WAL mode, as earlier builds made them.
    let old = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
    }
    assert_eq!(page_size(&old), 4096);
    drop(StoreConfig::at(&old).build().unwrap());
    assert_eq!(page_size(&old), 4096);
}

#[test]
fn the_wal_is_checkpointed_beside_the_writers_commits() {
    let (dir, mut store) = store();
    store.checkpoint_in_background().unwrap();
    let file = dir.path().join("y.db");
    let size = || std::fs::metadata(&file).unwrap().len();
    let before = size();
    let mut ledger = Ledger::new(LedgerSettings::default());
    for i in 0..200 {
        ledger.apply(report(&format!("I{i:03}"), "2020-01", 1, "2020-02-12T10:00:00+08:00"));
    }
    store.commit(&BatchWrite { slots: ledger.take_dirty(), ..Default::default() }).unwrap();
    // A few dozen pages: far below any threshold of the writer's own checkpoints.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while size() <= before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(size() > before, "the checkpointer copied the committed pages into the database file");
    assert_eq!(store.report_count().unwrap(), 200);
}

#[test]
fn a_writing_connection_caches_a_backlog_commits_pages() {
    let (_d, store) = store();
    let cache: i64 = store.conn.pragma_query_value(None, "cache_size", |r| r.get(0)).unwrap();
    assert_eq!(cache, -CACHE_KIB, "in KiB, not SQLite's 2,000");
}
