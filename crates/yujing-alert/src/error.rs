//! The crate's error type.

use crate::pack::Direction;
use yujing_model::{AlertState, EntityKind, Sector, Severity};

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong: a rule pack that does not parse or validate, a
/// person's action that the alert book refuses, or a push to Alertmanager that failed.
///
/// Rule-pack errors name the rule id and the 1-based line of the TOML source where the
/// problem is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TOML is malformed, has a wrong type or an unknown field; toml's own message
    /// (with line and column) is kept.
    #[error("rule pack: {source}")]
    Toml {
        /// The 1-based line the parser points at, when it points somewhere.
        line: Option<usize>,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// The pack has no `[[rule]]` at all.
    #[error("rule pack has no [[rule]]: an empty pack would silently disable every alert")]
    NoRules,
    /// A rule id that is not kebab-case.
    #[error("rule pack line {line}: rule id {rule:?} must be kebab-case (a-z, 0-9, single '-')")]
    BadRuleId {
        /// The rule id.
        rule: String,
        /// The line of the id.
        line: usize,
    },
    /// Two rules share an id.
    #[error("rule pack line {line}: rule {rule:?} is defined twice (first on line {first_line})")]
    DuplicateRuleId {
        /// The rule id.
        rule: String,
        /// The line of the second definition.
        line: usize,
        /// The line of the first definition.
        first_line: usize,
    },
    /// A text field that must say something is blank.
    #[error("rule pack line {line}: rule {rule:?}: {field} must not be blank")]
    BlankField {
        /// The rule id.
        rule: String,
        /// The line of the rule id (the field itself may be absent).
        line: usize,
        /// The field.
        field: &'static str,
    },
    /// `entity` is neither `institution` nor `district`.
    #[error("rule pack line {line}: rule {rule:?}: unknown entity {entity:?} (institution | district)")]
    UnknownEntity {
        /// The rule id.
        rule: String,
        /// The line of the field.
        line: usize,
        /// What was written.
        entity: String,
    },
    /// `direction` is neither `above` nor `below`.
    #[error("rule pack line {line}: rule {rule:?}: unknown direction {direction:?} (above | below)")]
    UnknownDirection {
        /// The rule id.
        rule: String,
        /// The line of the field.
        line: usize,
        /// What was written.
        direction: String,
    },
    /// `mechanism` is not one of DESIGN §6.
    #[error("rule pack line {line}: rule {rule:?}: unknown mechanism {mechanism:?}")]
    UnknownMechanism {
        /// The rule id.
        rule: String,
        /// The line of the field.
        line: usize,
        /// What was written.
        mechanism: String,
    },
    /// `metric` is not one the pipeline computes for this kind of entity.
    #[error(
        "rule pack line {line}: rule {rule:?}: unknown metric {metric:?} for {} rules",
        entity.as_str()
    )]
    UnknownMetric {
        /// The rule id.
        rule: String,
        /// The line of the field.
        line: usize,
        /// What was written.
        metric: String,
        /// The rule's entity kind.
        entity: EntityKind,
    },
    /// An indicator the rule watches is not computed for one of its sectors.
    #[error(
        "rule pack line {line}: rule {rule:?}: indicator {metric:?} is not computed for sector {}",
        sector.as_str()
    )]
    MetricNotInSector {
        /// The rule id.
        rule: String,
        /// The line of the metric.
        line: usize,
        /// The indicator.
        metric: String,
        /// The sector without it.
        sector: Sector,
    },
    /// `sectors` is empty.
    #[error("rule pack line {line}: rule {rule:?}: sectors must name at least one sector")]
    NoSectors {
        /// The rule id.
        rule: String,
        /// The line of the field.
        line: usize,
    },
    /// A sector name that is not `bank`, `microloan`, `guarantee`, `p2p_residual` or `all`.
    #[error("rule pack line {line}: rule {rule:?}: unknown sector {sector:?}")]
    UnknownSector {
        /// The rule id.
        rule: String,
        /// The line of the sector.
        line: usize,
        /// What was written.
        sector: String,
    },
    /// A sector listed twice, or `all` in an institution rule.
    #[error("rule pack line {line}: rule {rule:?}: sector {sector:?} {reason}")]
    SectorNotAllowed {
        /// The rule id.
        rule: String,
        /// The line of the sector.
        line: usize,
        /// The sector.
        sector: String,
        /// Why.
        reason: &'static str,
    },
    /// `levels` is empty.
    #[error("rule pack line {line}: rule {rule:?}: levels must have at least one level")]
    NoLevels {
        /// The rule id.
        rule: String,
        /// The line of the field.
        line: usize,
    },
    /// A severity name that is not blue, yellow, orange or red.
    #[error("rule pack line {line}: rule {rule:?}: unknown severity {severity:?} (blue | yellow | orange | red)")]
    UnknownSeverity {
        /// The rule id.
        rule: String,
        /// The line of the level.
        line: usize,
        /// What was written.
        severity: String,
    },
    /// Severities must strictly increase from one level to the next.
    #[error(
        "rule pack line {line}: rule {rule:?}: severity {severity} after {previous}; levels must go strictly up in severity"
    )]
    SeverityOrder {
        /// The rule id.
        rule: String,
        /// The line of the level.
        line: usize,
        /// The level's severity.
        severity: Severity,
        /// The previous level's severity.
        previous: Severity,
    },
    /// Thresholds must move in the rule's direction (an equal line needs a longer
    /// `for_periods` than the level below it).
    #[error(
        "rule pack line {line}: rule {rule:?}: level at = {at} after at = {previous} does not move toward risk (direction {direction}); an equal value needs a longer for_periods"
    )]
    ThresholdOrder {
        /// The rule id.
        rule: String,
        /// The line of the level.
        line: usize,
        /// The level's line.
        at: f64,
        /// The previous level's line.
        previous: f64,
        /// The rule's direction.
        direction: Direction,
    },
    /// `for_periods` below 1 (or absurdly large).
    #[error("rule pack line {line}: rule {rule:?}: for_periods = {for_periods} must be 1..=1200")]
    ForPeriods {
        /// The rule id.
        rule: String,
        /// The line of the field.
        line: usize,
        /// What was written.
        for_periods: i64,
    },
    /// A number that is NaN or infinite.
    #[error("rule pack line {line}: rule {rule:?}: {field} must be a finite number")]
    NotFinite {
        /// The rule id.
        rule: String,
        /// The line of the field.
        line: usize,
        /// The field.
        field: &'static str,
    },
    /// A negative hysteresis.
    #[error("rule pack line {line}: rule {rule:?}: hysteresis = {hysteresis} must be >= 0")]
    NegativeHysteresis {
        /// The rule id.
        rule: String,
        /// The line of the field.
        line: usize,
        /// What was written.
        hysteresis: f64,
    },
    /// `respond_within` is not a positive humantime duration such as `5d` or `36h`.
    #[error("rule pack line {line}: rule {rule:?}: respond_within = {value:?}: {reason}")]
    BadDuration {
        /// The rule id.
        rule: String,
        /// The line of the field.
        line: usize,
        /// What was written.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// No alert has this id.
    #[error("no alert with id {id:?}")]
    UnknownAlert {
        /// The id asked for.
        id: String,
    },
    /// The alert's state does not allow the action (say, resolving a superseded or
    /// already resolved alert).
    #[error("alert {id:?} is {}: cannot {action} it", state.as_str())]
    InvalidState {
        /// The alert.
        id: String,
        /// Its current state.
        state: AlertState,
        /// The refused action: `acknowledge`, `assign` or `resolve`.
        action: &'static str,
    },
    /// Resolving needs a note saying why.
    #[error("resolving alert {id:?} needs a non-blank note")]
    NoteRequired {
        /// The alert.
        id: String,
    },
    /// Who acted (or the assignee) is blank.
    #[error("action on alert {id:?}: {field} must not be blank")]
    BlankActor {
        /// The alert.
        id: String,
        /// `by` or `assignee`.
        field: &'static str,
    },
    /// An `[alertmanager]` setting is unusable.
    #[error("alertmanager.{field}: {reason}")]
    AlertmanagerConfig {
        /// The setting.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("alertmanager: cannot build the HTTP client: {source}")]
    AlertmanagerClient {
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// The alerts could not be encoded as JSON.
    #[error("alertmanager: cannot encode alerts: {source}")]
    AlertmanagerEncode {
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// Alertmanager answered a batch with a 4xx other than 429; it was not retried.
    #[error("alertmanager {url} refused the alerts with HTTP {status}: {body}")]
    AlertmanagerRefused {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// Alertmanager could not be reached, timed out or answered 5xx or 429 on every try.
    #[error("alertmanager {url} unavailable after {attempts} attempt(s): {reason}")]
    AlertmanagerUnavailable {
        /// The endpoint.
        url: String,
        /// Attempts made, the first included.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
}

impl Error {
    /// The 1-based line in the rule pack source the error points at, for rule errors
    /// (toml's own errors carry theirs in the message).
    pub fn line(&self) -> Option<usize> {
        use Error::*;
        match self {
            BadRuleId { line, .. }
            | DuplicateRuleId { line, .. }
            | BlankField { line, .. }
            | UnknownEntity { line, .. }
            | UnknownDirection { line, .. }
            | UnknownMechanism { line, .. }
            | UnknownMetric { line, .. }
            | MetricNotInSector { line, .. }
            | NoSectors { line, .. }
            | UnknownSector { line, .. }
            | SectorNotAllowed { line, .. }
            | NoLevels { line, .. }
            | UnknownSeverity { line, .. }
            | SeverityOrder { line, .. }
            | ThresholdOrder { line, .. }
            | ForPeriods { line, .. }
            | NotFinite { line, .. }
            | NegativeHysteresis { line, .. }
            | BadDuration { line, .. } => Some(*line),
            Toml { line, .. } => *line,
            NoRules | UnknownAlert { .. } | InvalidState { .. } => None,
            NoteRequired { .. } | BlankActor { .. } => None,
            AlertmanagerConfig { .. }
            | AlertmanagerClient { .. }
            | AlertmanagerEncode { .. }
            | AlertmanagerRefused { .. }
            | AlertmanagerUnavailable { .. } => None,
        }
    }
}
