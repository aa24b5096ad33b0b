//! The durable store: SQLite (WAL) holding the ledger, the published alerts, people's
//! actions, the audit log (an outbox of transitions to publish) and source checkpoints.
//!
//! One [`Store::commit`] is one transaction: a batch's ledger changes, alert changes,
//! audit records and source offsets land together or not at all, which is what makes
//! at-least-once delivery effectively exactly-once (DESIGN §7).

use crate::ledger::{Ledger, LedgerSettings, SlotState};
use crate::{Error, Result};
use checkpointer::Checkpointer;
use chrono::{DateTime, FixedOffset};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use yujing_model::{Alert, DecodeLimits, Period, Transition, decode};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE reports (
         institution_id TEXT NOT NULL,
         period INTEGER NOT NULL,
         revision INTEGER NOT NULL,
         report_id TEXT NOT NULL,
         first_submitted TEXT NOT NULL,
         seen TEXT NOT NULL,
         report TEXT NOT NULL,
         PRIMARY KEY (institution_id, period)
     ) WITHOUT ROWID;
     CREATE TABLE alerts (
         id TEXT PRIMARY KEY,
         state TEXT NOT NULL,
         severity TEXT NOT NULL,
         district_code TEXT NOT NULL,
         alert TEXT NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE actions (seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, action TEXT NOT NULL);
     CREATE TABLE audit (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         recorded_at TEXT NOT NULL,
         actor TEXT NOT NULL,
         kind TEXT NOT NULL,
         alert_id TEXT NOT NULL,
         record TEXT NOT NULL,
         published INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX audit_unpublished ON audit (published, seq);
     CREATE INDEX audit_alert ON audit (alert_id, seq);
     CREATE TABLE checkpoints (
         source TEXT NOT NULL,
         partition INTEGER NOT NULL,
         next_offset INTEGER NOT NULL,
         PRIMARY KEY (source, partition)
     ) WITHOUT ROWID;",
    // 2: dead letters kept with their batch until the dead-letter topic has them;
    // audit.published 2 marks a transition that can never be delivered.
    "CREATE TABLE dead_letters (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         record TEXT NOT NULL,
         original BLOB NOT NULL,
         state INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX dead_letters_pending ON dead_letters (state, seq);",
    // 3: reports keyed by period first. A batch mostly carries one period's reports; keyed by
    // institution first, they landed on nearly every leaf of the table, so each commit
    // rewrote most of it into the WAL (at 1M reports, ~250 MB of WAL per 16k-report batch;
    // 45 MB keyed by period, and commits about 3x faster).
    "CREATE TABLE reports_by_period (
         institution_id TEXT NOT NULL,
         period INTEGER NOT NULL,
         revision INTEGER NOT NULL,
         report_id TEXT NOT NULL,
         first_submitted TEXT NOT NULL,
         seen TEXT NOT NULL,
         report TEXT NOT NULL,
         PRIMARY KEY (period, institution_id)
     ) WITHOUT ROWID;
     INSERT INTO reports_by_period
         SELECT institution_id, period, revision, report_id, first_submitted, seen, report FROM reports;
     DROP TABLE reports;
     ALTER TABLE reports_by_period RENAME TO reports;",
    // 4: reports in the order they were written, found by a unique index on the slot. A
    // backlog's batch spreads over most of a period's slots (institutions come in no order);
    // in a table keyed by the slot it rewrote most of the period's leaves into the WAL at
    // every commit. Appended by rowid, a batch fills new leaves, and only the index (about a
    // tenth of the bytes) takes the scattered inserts.
    "CREATE TABLE reports_in_order (
         seq INTEGER PRIMARY KEY,
         institution_id TEXT NOT NULL,
         period INTEGER NOT NULL,
         revision INTEGER NOT NULL,
         report_id TEXT NOT NULL,
         first_submitted TEXT NOT NULL,
         seen TEXT NOT NULL,
         report TEXT NOT NULL
     );
     INSERT INTO reports_in_order (institution_id, period, revision, report_id, first_submitted, seen, report)
         SELECT institution_id, period, revision, report_id, first_submitted, seen, report FROM reports
         ORDER BY period, institution_id;
     DROP TABLE reports;
     ALTER TABLE reports_in_order RENAME TO reports;
     CREATE UNIQUE INDEX reports_slot ON reports (period, institution_id);",
    // 5: the audit log is written once and never again. Marking a record published rewrote
    // its row (and moved its index entry), so every transition went into the WAL twice;
    // what waits for the alerts topic, and what never can go there, are kept beside it.
    "CREATE TABLE audit_pending (seq INTEGER PRIMARY KEY);
     INSERT INTO audit_pending (seq) SELECT seq FROM audit WHERE published = 0;
     CREATE TABLE audit_undeliverable (seq INTEGER PRIMARY KEY);
     INSERT INTO audit_undeliverable (seq) SELECT seq FROM audit WHERE published = 2;
     DROP INDEX audit_unpublished;
     ALTER TABLE audit DROP COLUMN published;",
];

/// The page size of a new store, in bytes (SQLite's default is 4096). A stored report is
/// about 700 bytes: on 4 KiB pages a `WITHOUT ROWID` table holds five or six of them per
/// leaf, so a batch split and rewrote many pages and the B-tree grew deep. `yujing replay
/// --store` of the 1M set: 35.6–41.9 s and a 1.39 GB file at 4096; 25.4–25.6 s and 0.97 GB
/// at 16384 (22.4 s at 32768, but every scattered update of an alert then writes 32 KiB
/// into the WAL).
pub const PAGE_SIZE: i64 = 16384;

/// The page cache of a writing connection, in KiB (SQLite's default is 2,000). A backlog's
/// commit touches tens of megabytes of pages: in 2 MB the transaction spilled dirty pages
/// into the WAL before it ended and read evicted ones back. `yujing replay --store` of the
/// 1M set (reports appended in order, migration 4) read 4.4–4.8 GB and wrote 3.5–3.8 GB
/// through the file system with 2,000 KiB; 1.8–2.1 GB and 2.8 GB with 32 MiB (64 MiB did no
/// better). It is filled as it is used.
pub const CACHE_KIB: i64 = 32 * 1024;

/// Configuration of the durable store.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite database file (created when missing).
    pub path: PathBuf,
    /// How long a writer waits for a lock held by a reader before failing, e.g. "5s".
    #[serde(with = "humantime_serde", default = "default_busy")]
    pub busy_timeout: Duration,
}

fn default_busy() -> Duration {
    Duration::from_secs(5)
}

impl StoreConfig {
    /// A store at `path` with default settings.
    pub fn at(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig { path: path.into(), busy_timeout: default_busy() }
    }

    /// Opens (creating and migrating when needed) the store for writing.
    pub fn build(&self) -> Result<Store> {
        Store::open(&self.path, self.busy_timeout)
    }
}

/// A source position to resume from: the next offset to read of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The source, e.g. `kafka:yujing.reports`.
    pub source: String,
    /// The partition.
    pub partition: i32,
    /// The next offset to read.
    pub next_offset: i64,
}

/// One audit record: a transition or a person's action on an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Its sequence number (assigned by the store; 0 before it is written).
    pub seq: i64,
    /// When it was recorded (wall clock).
    pub recorded_at: DateTime<FixedOffset>,
    /// Who: `yujing` or a person.
    pub actor: String,
    /// What happened (`opened`, `escalated`, `acknowledged`, …).
    pub kind: String,
    /// The alert.
    pub alert_id: String,
    /// The record as JSON (a transition v1).
    pub record: String,
}

/// Everything one batch changes, written in one transaction.
#[derive(Debug, Default)]
pub struct BatchWrite<'a> {
    /// Ledger slots that changed.
    pub slots: Vec<SlotState>,
    /// The latest `submitted_at` seen.
    pub max_submitted: Option<DateTime<FixedOffset>>,
    /// The watermark's hold ([`Ledger::hold_watermark`]) to keep: `Some(None)` clears it,
    /// `None` leaves what is kept as it is.
    pub watermark_hold: Option<Option<DateTime<FixedOffset>>>,
    /// Alerts to insert or replace, as published.
    pub alerts: Vec<&'a Alert>,
    /// People's actions to append: (alert id, action JSON).
    pub actions: Vec<(String, String)>,
    /// Transitions to append to the audit log (the outbox), each with when it was
    /// recorded (wall clock). Each is serialized as its row is written, so a batch of many
    /// never holds all their JSON at once.
    pub audit: Vec<(DateTime<FixedOffset>, &'a Transition)>,
    /// Source positions to record.
    pub checkpoints: Vec<Checkpoint>,
    /// Dead letters to keep until they are delivered (their `seq` is ignored).
    pub dead_letters: Vec<StoredDeadLetter>,
}

/// The SQLite store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Checkpoints the WAL beside this connection's commits, when asked for
    /// ([`Store::checkpoint_in_background`]).
    checkpointer: Option<Checkpointer>,
}

fn sql(e: rusqlite::Error, path: &Path) -> Error {
    Error::Sqlite { path: path.to_path_buf(), source: e }
}

impl Store {
    /// Opens the store for writing: WAL mode, migrations applied.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Store> {
        let conn = Connection::open(path).map_err(|e| sql(e, path))?;
        conn.busy_timeout(busy_timeout).map_err(|e| sql(e, path))?;
        // Only a new database takes it (before its first write); one made before keeps its own.
        conn.pragma_update(None, "page_size", PAGE_SIZE).map_err(|e| sql(e, path))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| sql(e, path))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| sql(e, path))?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB).map_err(|e| sql(e, path))?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| sql(e, path))?;
        let mut store = Store { conn, path: path.to_path_buf(), checkpointer: None };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing store read-only (a WAL reader: works while a writer runs).
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| sql(e, path))?;
        conn.busy_timeout(default_busy()).map_err(|e| sql(e, path))?;
        let store = Store { conn, path: path.to_path_buf(), checkpointer: None };
        let version = store.schema_version()?;
        if version as usize != MIGRATIONS.len() {
            return Err(Error::Schema {
                path: path.to_path_buf(),
                message: format!("schema version {version}, this build reads {}", MIGRATIONS.len()),
            });
        }
        Ok(store)
    }

    /// The applied schema version.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| sql(e, &self.path))
    }

    fn migrate(&mut self) -> Result<()> {
        let current = self.schema_version()? as usize;
        if current > MIGRATIONS.len() {
            return Err(Error::Schema {
                path: self.path.clone(),
                message: format!("schema version {current} is newer than this build ({})", MIGRATIONS.len()),
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(current) {
            let tx = self.conn.transaction().map_err(|e| sql(e, &self.path))?;
            tx.execute_batch(m).map_err(|e| sql(e, &self.path))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(|e| sql(e, &self.path))?;
            tx.commit().map_err(|e| sql(e, &self.path))?;
            tracing::info!(path = %self.path.display(), version = i + 1, "store migrated");
        }
        Ok(())
    }

    /// Writes one batch in one transaction.
    pub fn commit(&mut self, batch: &BatchWrite<'_>) -> Result<()> {
        let path = self.path.clone();
        let e = |err| sql(err, &path);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut put_report = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO reports (institution_id, period, revision, report_id, first_submitted, seen, report)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(e)?;
            for s in &batch.slots {
                let r = &s.winner;
                // The report as received where the batch still has it: serializing every
                // report again took about a fifth of a commit.
                let json = match &s.original {
                    Some(text) => std::borrow::Cow::Borrowed(text.as_str()),
                    None => serde_json::to_string(r.as_ref()).map_err(|x| Error::Json(x.to_string()))?.into(),
                };
                let seen = serde_json::to_string(&s.seen).map_err(|x| Error::Json(x.to_string()))?;
                put_report
                    .execute(params![
                        r.institution_id,
                        r.period.index(),
                        r.revision,
                        r.report_id,
                        s.first_submitted.to_rfc3339(),
                        seen,
                        json
                    ])
                    .map_err(e)?;
            }
            if let Some(m) = batch.max_submitted {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('max_submitted', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![m.to_rfc3339()],
                )
                .map_err(e)?;
            }
            match batch.watermark_hold {
                Some(Some(h)) => {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('watermark_hold', ?1)
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        params![h.to_rfc3339()],
                    )
                    .map_err(e)?;
                }
                Some(None) => {
                    tx.execute("DELETE FROM meta WHERE key = 'watermark_hold'", []).map_err(e)?;
                }
                None => {}
            }
            let mut put_alert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO alerts (id, state, severity, district_code, alert) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(e)?;
            let mut put_audit = tx
                .prepare_cached(
                    "INSERT INTO audit (recorded_at, actor, kind, alert_id, record) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(e)?;
            // Each record waits for the alerts topic until it is marked.
            let mut queue_audit =
                tx.prepare_cached("INSERT INTO audit_pending (seq) VALUES (last_insert_rowid())").map_err(e)?;
            let json = |x: serde_json::Error| Error::Json(x.to_string());
            // An alert whose row goes with the audit record of its change (the same alert,
            // not an equal one) is made into JSON once, for both: the alert's JSON is most of
            // either. By address: the batch holds every alert it names.
            let mut unwritten: HashSet<*const Alert> = batch.alerts.iter().map(|a| *a as *const Alert).collect();
            for (at, t) in &batch.audit {
                let alert = serde_json::to_string(&*t.alert).map_err(json)?;
                let record = t.to_json_around(&alert).map_err(json)?;
                put_audit.execute(params![at.to_rfc3339(), t.by, t.kind.as_str(), t.alert.id, record]).map_err(e)?;
                queue_audit.execute([]).map_err(e)?;
                if unwritten.remove(&Arc::as_ptr(&t.alert)) {
                    let a = &t.alert;
                    put_alert
                        .execute(params![a.id, a.state.as_str(), a.severity.as_str(), a.district_code, alert])
                        .map_err(e)?;
                }
            }
            for a in batch.alerts.iter().filter(|a| unwritten.contains(&(**a as *const Alert))) {
                let alert = serde_json::to_string(a).map_err(json)?;
                put_alert
                    .execute(params![a.id, a.state.as_str(), a.severity.as_str(), a.district_code, alert])
                    .map_err(e)?;
            }
            let mut put_action =
                tx.prepare_cached("INSERT INTO actions (alert_id, action) VALUES (?1, ?2)").map_err(e)?;
            for (id, json) in &batch.actions {
                put_action.execute(params![id, json]).map_err(e)?;
            }
            let mut put_cp = tx
                .prepare_cached(
                    "INSERT INTO checkpoints (source, partition, next_offset) VALUES (?1, ?2, ?3)
                     ON CONFLICT(source, partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                )
                .map_err(e)?;
            for c in &batch.checkpoints {
                put_cp.execute(params![c.source, c.partition, c.next_offset]).map_err(e)?;
            }
            let mut put_dead =
                tx.prepare_cached("INSERT INTO dead_letters (record, original) VALUES (?1, ?2)").map_err(e)?;
            for d in &batch.dead_letters {
                put_dead.execute(params![d.record, d.original]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        if let Some(c) = &self.checkpointer {
            c.wake();
        }
        Ok(())
    }

    /// Checkpoints the WAL on a thread and connection of their own from now on, not in this
    /// connection's commits (unless the WAL outgrows the bound this sets): for a writer
    /// whose commits someone waits for (`yujing run`'s). The thread ends with the store.
    pub fn checkpoint_in_background(&mut self) -> Result<()> {
        if self.checkpointer.is_some() {
            return Ok(());
        }
        let e = |err| sql(err, &self.path);
        self.conn.pragma_update(None, "wal_autocheckpoint", checkpointer::WRITER_CHECKPOINT_PAGES).map_err(e)?;
        self.conn.pragma_update(None, "journal_size_limit", checkpointer::WAL_SIZE_LIMIT).map_err(e)?;
        self.checkpointer = Some(Checkpointer::spawn(&self.path, default_busy())?);
        Ok(())
    }

    /// Rebuilds the ledger from the stored slots.
    pub fn load_ledger(&self, settings: LedgerSettings) -> Result<Ledger> {
        let e = |err| sql(err, &self.path);
        let mut ledger = Ledger::new(settings);
        // The hold first: on an empty ledger it is taken as it is.
        if let Some(h) = self.meta("watermark_hold")? {
            let h = DateTime::parse_from_rfc3339(&h)
                .map_err(|x| Error::Corrupt { path: self.path.clone(), message: format!("watermark_hold: {x}") })?;
            ledger.hold_watermark(Some(h));
        }
        let mut stmt = self
            .conn
            .prepare("SELECT first_submitted, seen, report FROM reports ORDER BY period, institution_id")
            .map_err(e)?;
        let limits = DecodeLimits { max_report_bytes: usize::MAX };
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(e)?;
        for row in rows {
            let (first, seen, json) = row.map_err(e)?;
            let winner = decode(json.as_bytes(), &limits)
                .map_err(|r| Error::Corrupt { path: self.path.clone(), message: format!("stored report: {r}") })?;
            let seen: Vec<String> = serde_json::from_str(&seen).map_err(|x| Error::Json(x.to_string()))?;
            let first_submitted = DateTime::parse_from_rfc3339(&first)
                .map_err(|x| Error::Corrupt { path: self.path.clone(), message: format!("first_submitted: {x}") })?;
            ledger.restore_slot(SlotState { winner: Arc::new(winner), seen, first_submitted, original: None });
        }
        if let Some(m) = self.meta("max_submitted")? {
            let m = DateTime::parse_from_rfc3339(&m)
                .map_err(|x| Error::Corrupt { path: self.path.clone(), message: format!("max_submitted: {x}") })?;
            ledger.observe(m);
        }
        Ok(ledger)
    }

    /// This store's origin: an id made when it is first asked for and kept in the store, so
    /// that what a service publishes from this state can be told from what other instances
    /// publish (the whole-city view skips its own alerts when it reads them back).
    pub fn origin(&mut self) -> Result<String> {
        if let Some(o) = self.meta("origin")? {
            return Ok(o);
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let made = format!("{nanos:x}-{:x}", std::process::id());
        self.conn
            .execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('origin', ?1)", [&made])
            .map_err(|e| sql(e, &self.path))?;
        Ok(self.meta("origin")?.unwrap_or(made))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| sql(e, &self.path))
    }

    /// Every stored alert (any state), ordered by id.
    pub fn load_alerts(&self) -> Result<Vec<Alert>> {
        let e = |err| sql(err, &self.path);
        let mut stmt = self.conn.prepare("SELECT alert FROM alerts ORDER BY id").map_err(e)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(e)?;
        rows.map(|r| {
            let json = r.map_err(e)?;
            serde_json::from_str(&json).map_err(|x| Error::Json(x.to_string()))
        })
        .collect()
    }

    /// Every stored action as (alert id, JSON), in the order taken.
    pub fn load_actions(&self) -> Result<Vec<(String, String)>> {
        let e = |err| sql(err, &self.path);
        let mut stmt = self.conn.prepare("SELECT alert_id, action FROM actions ORDER BY seq").map_err(e)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)
    }

    /// The checkpoints of a source.
    pub fn checkpoints(&self, source: &str) -> Result<Vec<Checkpoint>> {
        let e = |err| sql(err, &self.path);
        let mut stmt = self
            .conn
            .prepare("SELECT partition, next_offset FROM checkpoints WHERE source = ?1 ORDER BY partition")
            .map_err(e)?;
        let rows = stmt
            .query_map([source], |r| {
                Ok(Checkpoint { source: source.to_string(), partition: r.get(0)?, next_offset: r.get(1)? })
            })
            .map_err(e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)
    }

    /// Audit records after `after_seq`, oldest first, at most `limit`; `unpublished_only`
    /// returns the outbox of transitions not yet marked published.
    pub fn audit(&self, after_seq: i64, limit: usize, unpublished_only: bool) -> Result<Vec<AuditRecord>> {
        let e = |err| sql(err, &self.path);
        // Two statements: the outbox walks the records waiting, not every record ever written.
        let mut stmt = self
            .conn
            .prepare_cached(if unpublished_only {
                "SELECT a.seq, a.recorded_at, a.actor, a.kind, a.alert_id, a.record
                 FROM audit_pending p JOIN audit a ON a.seq = p.seq
                 WHERE p.seq > ?1 ORDER BY p.seq LIMIT ?2"
            } else {
                "SELECT seq, recorded_at, actor, kind, alert_id, record FROM audit
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            })
            .map_err(e)?;
        let rows = stmt
            .query_map(params![after_seq, limit as i64], |r| {
                let at: String = r.get(1)?;
                Ok(AuditRecord {
                    seq: r.get(0)?,
                    recorded_at: DateTime::parse_from_rfc3339(&at).unwrap_or_else(|_| Period::from_index(0).end()),
                    actor: r.get(2)?,
                    kind: r.get(3)?,
                    alert_id: r.get(4)?,
                    record: r.get(5)?,
                })
            })
            .map_err(e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)
    }

    /// Marks audit records as published (up to and including `through_seq`).
    pub fn mark_published(&mut self, through_seq: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM audit_pending WHERE seq <= ?1", [through_seq])
            .map(|_| ())
            .map_err(|e| sql(e, &self.path))
    }

    /// Number of stored institution-periods.
    pub fn report_count(&self) -> Result<i64> {
        self.conn.query_row("SELECT count(*) FROM reports", [], |r| r.get(0)).map_err(|e| sql(e, &self.path))
    }
}

mod checkpointer;
mod outbox;
pub use outbox::{Delivery, StoredDeadLetter};

#[cfg(test)]
mod tests;
