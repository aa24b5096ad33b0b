//! Reporting periods: calendar months written `YYYY-MM`.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A calendar month, the period a report's figures are as of.
///
/// Stored as the number of months since year 0, so periods order and subtract naturally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period(i32);

impl Period {
    /// Builds a period from a year and a month (1..=12).
    pub fn new(year: i32, month: u32) -> Option<Period> {
        ((1..=12).contains(&month) && (1900..=9999).contains(&year)).then(|| Period(year * 12 + month as i32 - 1))
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.0.div_euclid(12)
    }

    /// The month, 1..=12.
    pub fn month(self) -> u32 {
        self.0.rem_euclid(12) as u32 + 1
    }

    /// The period `n` months later (earlier for negative `n`).
    pub fn add_months(self, n: i32) -> Period {
        Period(self.0 + n)
    }

    /// Months from `earlier` to `self`.
    pub fn months_since(self, earlier: Period) -> i32 {
        self.0 - earlier.0
    }

    /// Whether this month ends a calendar quarter (March, June, September, December).
    pub fn is_quarter_end(self) -> bool {
        self.month().is_multiple_of(3)
    }

    /// The first day of the month.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year(), self.month(), 1).expect("valid period")
    }

    /// The first instant after the month ends, in China Standard Time (UTC+8).
    pub fn end(self) -> DateTime<FixedOffset> {
        let next = self.add_months(1).first_day();
        china_tz()
            .from_local_datetime(&next.and_hms_opt(0, 0, 0).expect("midnight"))
            .single()
            .expect("fixed offsets are unambiguous")
    }

    /// A dense index usable as a sort key or an array offset.
    pub fn index(self) -> i32 {
        self.0
    }

    /// The period for a dense index made by [`Period::index`].
    pub fn from_index(index: i32) -> Period {
        Period(index)
    }

    /// Iterates over the periods from `self` to `last` inclusive, stepping by `step` months.
    pub fn range_to(self, last: Period, step: i32) -> impl Iterator<Item = Period> {
        let step = step.max(1);
        (self.0..=last.0).step_by(step as usize).map(Period)
    }
}

/// China Standard Time, UTC+8, in which periods end and deadlines fall.
pub fn china_tz() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// Why a period failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("period {0:?} is not a month written YYYY-MM")]
pub struct ParsePeriodError(pub String);

impl FromStr for Period {
    type Err = ParsePeriodError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if b.len() != 7 || b[4] != b'-' || !digits(0..4) || !digits(5..7) {
            return Err(ParsePeriodError(s.to_owned()));
        }
        let year: i32 = s[0..4].parse().map_err(|_| ParsePeriodError(s.to_owned()))?;
        let month: u32 = s[5..7].parse().map_err(|_| ParsePeriodError(s.to_owned()))?;
        Period::new(year, month).ok_or_else(|| ParsePeriodError(s.to_owned()))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p: Period = "2025-09".parse().unwrap();
        assert_eq!((p.year(), p.month()), (2025, 9));
        assert_eq!(p.to_string(), "2025-09");
        assert_eq!(p.add_months(4).to_string(), "2026-01");
        assert_eq!(p.add_months(-9).to_string(), "2024-12");
        assert!(p.is_quarter_end());
        assert_eq!(p.end().to_rfc3339(), "2025-10-01T00:00:00+08:00");
        for bad in ["2025-13", "2025-00", "2025-9", "25-09", "2025/09", "abcd-ef", ""] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }
}
