//! Early-warning rules for yujing (DESIGN §6, §7): the rule pack, the derivation of an
//! entity's alert history from its period series, and the alert book that reconciles a
//! fresh derivation with what was published and keeps people's actions.
//!
//! Everything but the Alertmanager client is pure logic, without I/O:
//!
//! 1. [`RulePack`] — rules in TOML ([`DEFAULT_RULES_TOML`] is embedded), validated on
//!    load; errors name the rule and the line.
//! 2. [`derive()`] — one entity's [`EntitySeries`] in, its complete, deterministic alert
//!    history out. A late or corrected report simply means deriving again.
//! 3. [`AlertBook`] — [`reconcile`](AlertBook::reconcile) turns the difference between
//!    the new history and what was published into [`Transition`]s (opened, escalated,
//!    auto-resolved, superseded); [`acknowledge`](AlertBook::acknowledge),
//!    [`assign`](AlertBook::assign) and [`resolve`](AlertBook::resolve) record people's
//!    actions, which survive re-derivation because alert ids are deterministic.
//! 4. [`AlertmanagerSink`] — pushes alerts to Alertmanager's v2 API, re-sends them while
//!    they are active and sends `endsAt` when they end (see [`alertmanager`]).
//!
//! ```
//! use yujing_alert::{AlertBook, EntitySeries, RulePack, SeriesPoint, derive};
//! use yujing_model::{AlertState, EntityKind, Mechanism, Sector, SectorScope, Severity};
//! use yujing_model::TransitionKind;
//!
//! let pack = RulePack::default_pack();
//! let point = |period: &str, npl: f64| SeriesPoint {
//!     period: period.parse().unwrap(),
//!     at: chrono::DateTime::parse_from_rfc3339(&format!("{period}-28T10:00:00+08:00"))
//!         .unwrap(),
//!     values: [("npl_ratio", npl)].into_iter().collect(),
//! };
//! let series = EntitySeries {
//!     kind: EntityKind::Institution,
//!     entity_id: "CQ-MLC-0042".into(),
//!     entity_name: "重庆某小贷".into(),
//!     district_code: "500103".into(),
//!     sector: SectorScope::One(Sector::Microloan),
//!     points: vec![point("2025-07", 0.08), point("2025-08", 0.12), point("2025-09", 0.162)],
//! };
//! let alerts = derive(&pack, &series);
//! let npl = alerts.iter().find(|a| &*a.rule == "microloan-npl").unwrap().clone();
//! assert_eq!(npl.severity, Severity::Orange); // yellow in August, orange in September
//! assert_eq!(npl.mechanism, Mechanism::ExitMechanism);
//! assert_eq!(
//!     npl.evidence.summary,
//!     "渝中区 重庆某小贷: npl_ratio 16.2% ≥ 15.0% (橙色) / \
//!      CQ-MLC-0042 npl_ratio 16.2% crossed 15.0% (orange)"
//! );
//!
//! let mut book = AlertBook::new();
//! let t = book.reconcile(series.kind, &series.entity_id, series.sector, alerts.clone());
//! assert!(t.iter().all(|t| t.kind == TransitionKind::Opened));
//! let at = chrono::DateTime::parse_from_rfc3339("2025-10-13T09:00:00+08:00").unwrap();
//! book.acknowledge(&npl.id, "张三", at).unwrap();
//! // Deriving again from the same series changes nothing, and the acknowledgement stays.
//! assert!(book.reconcile(series.kind, &series.entity_id, series.sector, alerts).is_empty());
//! assert_eq!(book.get(&npl.id).unwrap().state, AlertState::Acknowledged);
//! ```

pub mod alertmanager;
mod book;
mod derive;
mod error;
pub mod metrics;
mod pack;
mod series;
#[cfg(test)]
mod testutil;
mod text;

pub use alertmanager::{AlertmanagerConfig, AlertmanagerSink, PostableAlert, PushCounters};
pub use book::{Action, ActionKind, AlertBook, ENGINE};
pub use derive::{Derived, dedupe_key, derive, derive_quiet, same_outcomes};
pub use error::{Error, Result};
pub use pack::{DEFAULT_RULES_TOML, Direction, Rule, RulePack, Threshold};
pub use series::{EntitySeries, SeriesPoint};
pub use yujing_model::{Alert, Transition};
