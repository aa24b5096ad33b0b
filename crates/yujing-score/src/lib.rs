//! Scoring: indicators, scorecards, composites, trend and aggregates (DESIGN §5), in polars.
//!
//! Each indicator maps linearly to a 0..100 sub-score between its configured safe and
//! critical cutoffs (the FDIC scorecard method); the composite is the weighted sum; a sharp
//! deterioration against the sector's changes (a z-score, with statrs) adds points; grades
//! follow the blue/yellow/orange/red lines. Work is done per micro-batch: a batch scores only
//! the sector-periods it touched, in one DataFrame per sector, never one per report.
//! [`stress`] parses stress scenarios and applies their shocks to copies of reports.
//!
//! ```
//! use std::collections::BTreeSet;
//! use yujing_model::{decode, DecodeLimits, Grade, Sector};
//! use yujing_score::{ScoreConfig, score_sector};
//! let line = r#"{"schema_version":1,"report_id":"m/2025-09/r1","institution_id":"CQ-MLC-0042",
//!   "institution_name":"某小额贷款有限公司","sector":"microloan","district_code":"500103","period":"2025-09",
//!   "revision":1,"submitted_at":"2025-10-12T09:30:00+08:00","metrics":{"loan_balance":100,
//!   "npl_balance":15,"net_assets":100,"largest_borrower_balance":15,"borrowings":100}}"#;
//! let report = decode(line.as_bytes(), &DecodeLimits::default()).unwrap();
//! let config = ScoreConfig::default();
//! let periods = BTreeSet::from([report.period]);
//! let scores = score_sector(&config, Sector::Microloan, &periods, &[&report]).unwrap();
//! // Every indicator sits at its critical cutoff: the composite is 100, red.
//! assert_eq!(scores[0].score, 100.0);
//! assert_eq!(scores[0].grade, Grade::Red);
//! ```

pub mod aggregate;
pub mod config;
pub mod institution;
pub mod stress;
pub mod trend;

pub use aggregate::{Aggregation, DistrictTotals, Row, aggregate, entity_name};
pub use config::{Cutoff, DEFAULT_TOML, GradeCutoffs, ScoreConfig, TrendConfig};
pub use institution::{Baseline, Scored, rebaseline, score_sector, score_sector_against};
pub use trend::TrendBaseline;

/// Errors of scoring.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid scoring config at {path}: {message}")]
    Config {
        /// The dotted path of the bad setting.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The inputs do not fit together.
    #[error("invalid scoring input: {0}")]
    Input(String),
    /// polars failed.
    #[error("polars: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
