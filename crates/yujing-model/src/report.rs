//! Reports v1: the wire format of DESIGN §4, its decoding and its validation.

use crate::district::{district, parse_district_code};
use crate::period::Period;
use crate::sector::{MAX_METRICS, Metric, Sector};
use chrono::{DateTime, FixedOffset};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// The only schema version this build reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Why an input was dead-lettered. The codes are part of the output contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not JSON at all, truncated, or not UTF-8.
    MalformedJson,
    /// JSON, but not a report v1: a field missing, of the wrong type, unknown or out of range.
    SchemaViolation,
    /// `district_code` is not one of Chongqing's 38 区县.
    UnknownDistrict,
    /// A metric is below zero.
    NegativeAmount,
    /// The figures contradict each other (say, NPLs above loans).
    Inconsistent,
    /// A revision no higher than the one already accepted for the institution and period.
    StaleRevision,
    /// Larger than the configured maximum report size.
    TooLarge,
}

impl Reason {
    /// Every reason, in a stable order.
    pub const ALL: [Reason; 7] = [
        Reason::MalformedJson,
        Reason::SchemaViolation,
        Reason::UnknownDistrict,
        Reason::NegativeAmount,
        Reason::Inconsistent,
        Reason::StaleRevision,
        Reason::TooLarge,
    ];

    /// The reason code.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedJson => "malformed_json",
            Reason::SchemaViolation => "schema_violation",
            Reason::UnknownDistrict => "unknown_district",
            Reason::NegativeAmount => "negative_amount",
            Reason::Inconsistent => "inconsistent",
            Reason::StaleRevision => "stale_revision",
            Reason::TooLarge => "too_large",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input: the reason code and a sentence for the person who fixes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    /// The reason code.
    pub reason: Reason,
    /// What exactly is wrong.
    pub detail: String,
}

impl Rejection {
    /// A rejection with a reason and a detail.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Rejection {
        Rejection { reason, detail: detail.into() }
    }
}

/// The figures of one report: the sector's metrics in [`Sector::metrics`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    sector: Sector,
    values: [f64; MAX_METRICS],
}

impl Metrics {
    /// Builds metrics from values in the sector's canonical order.
    ///
    /// Returns `None` when the number of values is not the sector's.
    pub fn new(sector: Sector, values: &[f64]) -> Option<Metrics> {
        if values.len() != sector.metrics().len() {
            return None;
        }
        let mut v = [0.0; MAX_METRICS];
        v[..values.len()].copy_from_slice(values);
        Some(Metrics { sector, values: v })
    }

    /// The sector these metrics belong to.
    pub fn sector(&self) -> Sector {
        self.sector
    }

    /// The value of a metric, or `None` when the sector does not report it.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.sector.metrics().iter().position(|m| *m == metric).map(|i| self.values[i])
    }

    /// The value of a metric, or 0 when the sector does not report it.
    pub fn value(&self, metric: Metric) -> f64 {
        self.get(metric).unwrap_or(0.0)
    }

    /// The values in canonical order.
    pub fn values(&self) -> &[f64] {
        &self.values[..self.sector.metrics().len()]
    }

    /// Pairs of metric and value, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = (Metric, f64)> + '_ {
        self.sector.metrics().iter().copied().zip(self.values().iter().copied())
    }
}

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.values().len()))?;
        for (m, v) in self.iter() {
            map.serialize_entry(m.as_str(), &v)?;
        }
        map.end()
    }
}

/// A validated report v1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Unique per submission; an exact repeat is a no-op.
    pub report_id: Box<str>,
    /// The reporting institution (shared: a ledger keeps one copy per institution).
    pub institution_id: Arc<str>,
    /// Its registered name (shared, as the id).
    pub institution_name: Arc<str>,
    /// Its sector.
    pub sector: Sector,
    /// Its 区县, as the 6-digit code.
    #[serde(serialize_with = "ser_code")]
    pub district_code: u32,
    /// The month the figures are as of.
    pub period: Period,
    /// 1 for the first submission, higher for corrections.
    pub revision: u32,
    /// When the institution submitted it.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub submitted_at: DateTime<FixedOffset>,
    /// The figures.
    pub metrics: Metrics,
}

fn ser_code<S: Serializer>(code: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(code)
}

/// Decoding and validation limits.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Inputs longer than this many bytes are rejected as `too_large`.
    pub max_report_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_report_bytes: 64 * 1024 }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport<'a> {
    schema_version: u32,
    #[serde(borrow)]
    report_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    institution_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    institution_name: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    sector: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    district_code: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    period: std::borrow::Cow<'a, str>,
    revision: u32,
    #[serde(borrow)]
    submitted_at: std::borrow::Cow<'a, str>,
    metrics: RawMetrics,
}

macro_rules! raw_metrics {
    ($($name:ident => $variant:ident),* $(,)?) => {
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct RawMetrics {
            $(#[serde(default)] $name: Option<f64>,)*
        }

        impl RawMetrics {
            fn get(&self, m: Metric) -> Option<f64> {
                match m { $(Metric::$variant => self.$name,)* }
            }

            fn present(&self) -> impl Iterator<Item = Metric> + '_ {
                [$((Metric::$variant, self.$name.is_some()),)*]
                    .into_iter()
                    .filter_map(|(m, p)| p.then_some(m))
            }
        }
    };
}

raw_metrics! {
    total_loans => TotalLoans,
    npl_balance => NplBalance,
    special_mention_balance => SpecialMentionBalance,
    loan_loss_provision => LoanLossProvision,
    capital_adequacy_ratio => CapitalAdequacyRatio,
    loan_balance => LoanBalance,
    net_assets => NetAssets,
    largest_borrower_balance => LargestBorrowerBalance,
    borrowings => Borrowings,
    outstanding_guarantees => OutstandingGuarantees,
    released_ytd => ReleasedYtd,
    payouts_ytd => PayoutsYtd,
    recoveries_ytd => RecoveriesYtd,
    largest_client_exposure => LargestClientExposure,
    outstanding_principal => OutstandingPrincipal,
    principal_at_exit => PrincipalAtExit,
    lenders_unpaid => LendersUnpaid,
    repaid_in_period => RepaidInPeriod,
    complaints_in_period => ComplaintsInPeriod,
}

fn schema(detail: impl Into<String>) -> Rejection {
    Rejection::new(Reason::SchemaViolation, detail)
}

fn valid_id(s: &str, max: usize) -> bool {
    let visible = |c: char| !c.is_whitespace() && !c.is_control();
    // An ASCII id (every id seen in practice) is checked a byte at a time: for ASCII the
    // characters neither white space nor control are exactly the graphic ones.
    let ok = if s.is_ascii() { s.bytes().all(|b| b.is_ascii_graphic()) } else { s.chars().all(visible) };
    !s.is_empty() && s.len() <= max && ok
}

/// Decodes and validates one report from its bytes (one JSONL line or one Kafka message).
///
/// Every input yields either a [`Report`] or a [`Rejection`] carrying one of the reason
/// codes of DESIGN §4; nothing panics. `stale_revision` is decided later, by the ledger.
///
/// ```
/// use yujing_model::report::{decode, DecodeLimits, Reason};
/// let line = r#"{"schema_version":1,"report_id":"r1","institution_id":"CQ-MLC-0042",
///   "institution_name":"某小贷","sector":"microloan","district_code":"500103","period":"2025-09",
///   "revision":1,"submitted_at":"2025-10-12T09:30:00+08:00","metrics":{"loan_balance":512000000,
///   "npl_balance":48000000,"net_assets":300000000,"largest_borrower_balance":26000000,
///   "borrowings":150000000}}"#.as_bytes();
/// let report = decode(line, &DecodeLimits::default()).unwrap();
/// assert_eq!(report.period.to_string(), "2025-09");
/// assert_eq!(decode(b"{", &DecodeLimits::default()).unwrap_err().reason, Reason::MalformedJson);
/// ```
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Report, Rejection> {
    if bytes.len() > limits.max_report_bytes {
        return Err(Rejection::new(
            Reason::TooLarge,
            format!("{} bytes is over the limit of {} bytes", bytes.len(), limits.max_report_bytes),
        ));
    }
    // Text checked as UTF-8 in one pass parses faster than bytes whose strings are checked
    // one by one; bytes that are not UTF-8 go to serde_json as they are, for its own error.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str::<RawReport>(text),
        Err(_) => serde_json::from_slice::<RawReport>(bytes),
    };
    let raw: RawReport = parsed.map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => schema(e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => Rejection::new(Reason::MalformedJson, e.to_string()),
        }
    })?;
    if raw.schema_version != SCHEMA_VERSION {
        return Err(schema(format!("schema_version {} is not supported (expected 1)", raw.schema_version)));
    }
    if !valid_id(&raw.report_id, 128) {
        return Err(schema("report_id must be 1 to 128 characters without spaces"));
    }
    if !valid_id(&raw.institution_id, 64) {
        return Err(schema("institution_id must be 1 to 64 characters without spaces"));
    }
    let name = raw.institution_name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(schema("institution_name must be 1 to 200 characters"));
    }
    let sector = Sector::parse(&raw.sector).ok_or_else(|| {
        schema(format!("sector {:?} is not one of bank, microloan, guarantee, p2p_residual", raw.sector))
    })?;
    let period: Period = raw.period.parse().map_err(|e: crate::period::ParsePeriodError| schema(e.to_string()))?;
    if raw.revision == 0 {
        return Err(schema("revision starts at 1"));
    }
    let submitted_at = DateTime::parse_from_rfc3339(&raw.submitted_at)
        .map_err(|e| schema(format!("submitted_at {:?} is not an RFC 3339 time: {e}", raw.submitted_at)))?;
    if let Some(extra) = raw.metrics.present().find(|m| !sector.metrics().contains(m)) {
        return Err(schema(format!("metric {extra} is not reported by sector {sector}")));
    }
    let mut values = [0.0; MAX_METRICS];
    for (i, m) in sector.metrics().iter().enumerate() {
        values[i] = raw.metrics.get(*m).ok_or_else(|| schema(format!("metric {m} is required for sector {sector}")))?;
    }
    let metrics = Metrics { sector, values };
    let district_code = parse_district_code(&raw.district_code)
        .ok_or_else(|| schema(format!("district_code {:?} is not a 6-digit code", raw.district_code)))?;
    if district(district_code).is_none() {
        return Err(Rejection::new(
            Reason::UnknownDistrict,
            format!("district_code {district_code} is not one of Chongqing's 38 区县"),
        ));
    }
    if let Some((m, v)) = metrics.iter().find(|(_, v)| *v < 0.0) {
        return Err(Rejection::new(Reason::NegativeAmount, format!("{m} is {v}, below zero")));
    }
    let report = Report {
        schema_version: raw.schema_version,
        report_id: raw.report_id.into(),
        institution_id: Arc::from(&*raw.institution_id),
        institution_name: Arc::from(name),
        sector,
        district_code,
        period,
        revision: raw.revision,
        submitted_at,
        metrics,
    };
    check_consistency(&report)?;
    Ok(report)
}

/// The checks across fields that the schema cannot express.
fn check_consistency(r: &Report) -> Result<(), Rejection> {
    use Metric::*;
    let m = &r.metrics;
    let inconsistent = |detail: String| Err(Rejection::new(Reason::Inconsistent, detail));
    let not_above = |a: Metric, b: Metric| -> Result<(), Rejection> {
        if m.value(a) > m.value(b) {
            inconsistent(format!("{a} ({}) is above {b} ({})", m.value(a), m.value(b)))
        } else {
            Ok(())
        }
    };
    if r.submitted_at.date_naive() < r.period.first_day() {
        return inconsistent(format!("submitted_at {} is before period {} began", r.submitted_at, r.period));
    }
    match r.sector {
        Sector::Bank => {
            if !r.period.is_quarter_end() {
                return Err(schema(format!("banks report quarterly; {} is not a quarter-end month", r.period)));
            }
            if m.value(CapitalAdequacyRatio) > 1.0 {
                return Err(schema(format!(
                    "capital_adequacy_ratio {} must be a fraction (0.135 for 13.5%)",
                    m.value(CapitalAdequacyRatio)
                )));
            }
            not_above(NplBalance, TotalLoans)?;
            if m.value(NplBalance) + m.value(SpecialMentionBalance) > m.value(TotalLoans) {
                return inconsistent("npl_balance plus special_mention_balance is above total_loans".into());
            }
        }
        Sector::Microloan => {
            not_above(NplBalance, LoanBalance)?;
            not_above(LargestBorrowerBalance, LoanBalance)?;
        }
        Sector::Guarantee => {
            not_above(LargestClientExposure, OutstandingGuarantees)?;
        }
        Sector::P2pResidual => {
            not_above(OutstandingPrincipal, PrincipalAtExit)?;
            for c in [LendersUnpaid, ComplaintsInPeriod] {
                if m.value(c).fract() != 0.0 {
                    return Err(schema(format!("{c} is a count; {} is not a whole number", m.value(c))));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
