//! The rule pack: which metric crossing which line raises which alert, for whom.
//!
//! A pack is TOML, one `[[rule]]` table per rule; [`DEFAULT_RULES_TOML`] is the pack the
//! engine ships with. Every rule is validated when the pack is read, and every error
//! names the rule id and the line of the source it comes from.

use crate::Result;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use yujing_model::{EntityKind, Mechanism, SectorScope, Severity};

mod raw;

/// The default rule pack (`rules/default.toml`), embedded in the binary.
pub const DEFAULT_RULES_TOML: &str = include_str!("../rules/default.toml");

/// Which side of a rule's lines is risky.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Higher values are riskier: a line is crossed when the value is at or above it.
    Above,
    /// Lower values are riskier: a line is crossed when the value is at or below it.
    Below,
}

impl Direction {
    /// `above` or `below`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Above => "above",
            Direction::Below => "below",
        }
    }

    /// Parses `above` or `below`.
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "above" => Some(Direction::Above),
            "below" => Some(Direction::Below),
            _ => None,
        }
    }

    /// Whether `value` crosses the line `at`: `value >= at` above, `value <= at` below.
    ///
    /// Comparisons allow a tolerance of 1e-9 relative to the line, so that lines written
    /// in decimal behave as written (`0.10 - 0.01` is not quite `0.09` in binary).
    pub fn crossed(self, value: f64, at: f64) -> bool {
        match self {
            Direction::Above => value >= at - tolerance(at),
            Direction::Below => value <= at + tolerance(at),
        }
    }

    /// Whether `value` is back past the line `at` by more than `hysteresis`, on the safe
    /// side: `value < at - hysteresis` above, `value > at + hysteresis` below (with the
    /// same tolerance as [`Direction::crossed`]).
    pub fn cleared(self, value: f64, at: f64, hysteresis: f64) -> bool {
        match self {
            Direction::Above => value < at - hysteresis - tolerance(at),
            Direction::Below => value > at + hysteresis + tolerance(at),
        }
    }

    /// Whether line `b` is at least as far into the risky side as line `a`.
    pub(crate) fn not_safer(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Above => b >= a,
            Direction::Below => b <= a,
        }
    }
}

/// Float noise allowed around a line.
fn tolerance(at: f64) -> f64 {
    1e-9 * at.abs().max(1.0)
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a rule: crossing it for `for_periods` consecutive points means `severity`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// The severity this line stands for.
    pub severity: Severity,
    /// The line.
    pub at: f64,
    /// Consecutive points (with a value) that must cross the line; at least 1.
    pub for_periods: u32,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Unique kebab-case id; the first part of the alerts' dedupe key.
    pub id: Arc<str>,
    /// What the rule watches, in Chinese and English.
    pub description: String,
    /// `Institution` or `District` (district rules also apply to city-wide sector series).
    pub entity: EntityKind,
    /// The sectors (or `all`, for district rules) whose series the rule applies to.
    pub sectors: Vec<SectorScope>,
    /// The metric watched, a name from [`crate::metrics`] or an indicator name.
    pub metric: Arc<str>,
    /// Which side of the lines is risky.
    pub direction: Direction,
    /// The mechanism an alert of this rule starts.
    pub mechanism: Mechanism,
    /// Who must respond.
    pub owner: Arc<str>,
    /// The response time: an alert's `respond_by` is its `opened_at` plus this.
    #[serde(with = "humantime_serde")]
    pub respond_within: Duration,
    /// How far past the lowest line (to the safe side) the value must go to auto-resolve.
    pub hysteresis: f64,
    /// The lines, from the least to the most severe.
    pub levels: Vec<Threshold>,
    /// The 1-based line of the rule's `id` in the pack source.
    pub line: usize,
}

impl Rule {
    /// Whether the rule applies to a series of this kind and sector scope. District
    /// rules apply to district and city-wide sector series.
    pub fn applies_to(&self, kind: EntityKind, sector: SectorScope) -> bool {
        let kind_ok = match self.entity {
            EntityKind::Institution => kind == EntityKind::Institution,
            EntityKind::District | EntityKind::Sector => kind != EntityKind::Institution,
        };
        kind_ok && self.sectors.contains(&sector)
    }

    /// The least severe level, whose line (with hysteresis) decides auto-resolution.
    pub fn lowest(&self) -> Option<&Threshold> {
        self.levels.first()
    }

    /// The level of a severity, if the rule has one.
    pub fn level(&self, severity: Severity) -> Option<&Threshold> {
        self.levels.iter().find(|l| l.severity == severity)
    }
}

/// A validated set of rules, in the order of the source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RulePack {
    rules: Vec<Rule>,
}

impl RulePack {
    /// Reads and validates a pack.
    ///
    /// TOML syntax and type errors (including unknown fields) come back as
    /// [`Error::Toml`](crate::Error::Toml) with toml's own message, line and column;
    /// validation errors name the rule id and the line.
    pub fn from_toml_str(source: &str) -> Result<RulePack> {
        raw::parse(source).map(|rules| RulePack { rules })
    }

    /// The embedded default pack ([`DEFAULT_RULES_TOML`]).
    ///
    /// # Panics
    ///
    /// Never in a released build: the default pack is validated by this crate's tests.
    pub fn default_pack() -> RulePack {
        match RulePack::from_toml_str(DEFAULT_RULES_TOML) {
            Ok(pack) => pack,
            Err(e) => panic!("the embedded default rule pack is invalid: {e}"),
        }
    }

    /// The rules, in the order of the source.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// A rule by id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.id == id)
    }
}

impl Default for RulePack {
    fn default() -> Self {
        RulePack::default_pack()
    }
}

#[cfg(test)]
mod tests;
