//! The domain of yujing: the wire format of institutions' reports, its validation, the
//! districts of Chongqing, and the score and alert types every other crate shares.
//!
//! This crate does no I/O. Everything downstream — ingest, the ledger, scoring, rules,
//! serving — speaks these types.
//!
//! ```
//! use yujing_model::{decode, DecodeLimits, Sector};
//! let line = r#"{"schema_version":1,"report_id":"CQ-BNK-0001/2020-12/r1",
//!   "institution_id":"CQ-BNK-0001","institution_name":"重庆某银行","sector":"bank",
//!   "district_code":"500103","period":"2020-12","revision":1,
//!   "submitted_at":"2021-01-20T10:00:00+08:00","metrics":{"total_loans":1.0e11,
//!   "npl_balance":1.48e9,"special_mention_balance":2.0e9,"loan_loss_provision":2.9e9,
//!   "capital_adequacy_ratio":0.14}}"#.as_bytes();
//! let report = decode(line, &DecodeLimits::default()).expect("valid");
//! assert_eq!(report.sector, Sector::Bank);
//! assert_eq!(yujing_model::district(report.district_code).unwrap().name_zh, "渝中区");
//! ```

pub mod alert;
pub mod dead_letter;
pub mod district;
pub mod period;
pub mod report;
pub mod rfc3339;
pub mod score;
pub mod sector;

pub use alert::{Alert, AlertLinks, AlertState, EntityKind, Evidence, Mechanism, Transition, TransitionKind, alert_id};
pub use dead_letter::{DeadLetter, Position};
pub use district::{CITY_CODE, CITY_NAME, DISTRICTS, District, Region, district};
pub use period::Period;
pub use report::{DecodeLimits, Metrics, Reason, Rejection, Report, decode};
pub use score::{AggregateScore, Contributor, Grade, Indicator, IndicatorScore, InstitutionScore, Level, Severity};
pub use sector::{Metric, Sector, SectorScope};
