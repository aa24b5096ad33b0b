//! The durable state of yujing: the ledger of accepted reports, and the SQLite store that
//! keeps it with the alerts, people's actions, the audit log and source checkpoints.
//!
//! The [`Ledger`] decides which report is authoritative for each institution and period:
//! exact repeats of a `report_id` are counted no-ops, the highest revision wins, a lower or
//! equal revision arriving later is rejected as `stale_revision`, and the watermark drives
//! missing-report detection.
//!
//! ```
//! use yujing_store::{Ledger, LedgerSettings, Outcome};
//! use yujing_model::{decode, DecodeLimits};
//! let line = r#"{"schema_version":1,"report_id":"CQ-MLC-0042/2025-09/r1","institution_id":"CQ-MLC-0042",
//!   "institution_name":"某小额贷款有限公司","sector":"microloan","district_code":"500103","period":"2025-09",
//!   "revision":1,"submitted_at":"2025-10-12T09:30:00+08:00","metrics":{"loan_balance":512000000,
//!   "npl_balance":48000000,"net_assets":300000000,"largest_borrower_balance":26000000,"borrowings":150000000}}"#;
//! let report = decode(line.as_bytes(), &DecodeLimits::default()).unwrap();
//! let mut ledger = Ledger::new(LedgerSettings::default());
//! assert_eq!(ledger.apply(report.clone()), Outcome::New);
//! assert_eq!(ledger.apply(report), Outcome::Duplicate);
//! ```

pub mod ledger;
pub mod sqlite;

pub use ledger::{
    BEFORE_ANY_DEADLINE, Expected, InstitutionRecord, Ledger, LedgerCounts, LedgerSettings, Outcome, SlotState,
};
pub use sqlite::{AuditRecord, BatchWrite, Checkpoint, Delivery, Store, StoreConfig, StoredDeadLetter};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed.
    #[error("store {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: std::path::PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The database's schema is not one this build reads.
    #[error("store {}: {message}", path.display())]
    Schema {
        /// The database file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A stored value does not parse.
    #[error("store {}: corrupt: {message}", path.display())]
    Corrupt {
        /// The database file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// JSON encoding failed.
    #[error("json: {0}")]
    Json(String),
    /// A thread of the store's could not start.
    #[error("store {}: starting a thread: {source}", path.display())]
    Thread {
        /// The database file.
        path: std::path::PathBuf,
        /// Why it could not.
        source: std::io::Error,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
