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

impl Period {
    /// `YYYY-MM` as bytes, written without `core::fmt`, for years 0 to 9999 (every period
    /// a report can name); `None` for the others.
    fn ascii(self) -> Option<[u8; 7]> {
        let (year, month) = (self.year(), self.month());
        let year = u32::try_from(year).ok().filter(|y| *y <= 9999)?;
        let digit = |n: u32| b'0' + (n % 10) as u8;
        Some([
            digit(year / 1000),
            digit(year / 100),
            digit(year / 10),
            digit(year),
            b'-',
            digit(month / 10),
            digit(month),
        ])
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ascii() {
            // ASCII digits and a dash.
            Some(b) => f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?),
            None => write!(f, "{:04}-{:02}", self.year(), self.month()),
        }
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.ascii() {
            Some(b) => s.serialize_str(std::str::from_utf8(&b).map_err(serde::ser::Error::custom)?),
            None => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Values by period, in period order: a sorted vector.
///
/// An institution holds one entry per period reported (about 25 in two years), and there
/// are tens of thousands of institutions. A `BTreeMap` that small fills its 11-entry nodes
/// to six or seven and costs about twice the entries' own size; this costs the entries,
/// grown by a quarter at a time. Periods mostly arrive in order, so an insert is a push.
///
/// ```
/// use yujing_model::period::PeriodMap;
/// let mut m = PeriodMap::new();
/// let (jan, feb) = ("2025-01".parse().unwrap(), "2025-02".parse().unwrap());
/// m.insert(feb, "b");
/// m.insert(jan, "a");
/// assert_eq!(m.insert(feb, "B"), Some("b"));
/// assert_eq!(m.values().copied().collect::<Vec<_>>(), ["a", "B"]);
/// assert_eq!(m.get(&jan), Some(&"a"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodMap<V> {
    entries: Vec<(Period, V)>,
}

impl<V> Default for PeriodMap<V> {
    fn default() -> Self {
        PeriodMap { entries: Vec::new() }
    }
}

impl<V> PeriodMap<V> {
    /// An empty map (no allocation).
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, period: &Period) -> Result<usize, usize> {
        // Lookups are mostly of the latest periods: check the end before searching.
        match self.entries.last() {
            Some((last, _)) if last == period => Ok(self.entries.len() - 1),
            Some((last, _)) if last < period => Err(self.entries.len()),
            _ => self.entries.binary_search_by_key(period, |(p, _)| *p),
        }
    }

    /// The value of a period.
    pub fn get(&self, period: &Period) -> Option<&V> {
        self.find(period).ok().map(|i| &self.entries[i].1)
    }

    /// The value of a period, to change it.
    pub fn get_mut(&mut self, period: &Period) -> Option<&mut V> {
        self.find(period).ok().map(|i| &mut self.entries[i].1)
    }

    /// Sets a period's value; returns the value it replaces.
    pub fn insert(&mut self, period: Period, value: V) -> Option<V> {
        match self.find(&period) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                if self.entries.len() == self.entries.capacity() {
                    self.entries.reserve_exact((self.entries.len() / 4).max(4));
                }
                self.entries.insert(i, (period, value));
                None
            }
        }
    }

    /// The periods, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Period> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(p, _)| p)
    }

    /// The values, in period order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The periods and values, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Period, &V)> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(p, v)| (p, v))
    }

    /// The number of periods.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// The text written without `core::fmt` is the formatted one, whatever the year.
        #[test]
        fn a_period_reads_as_its_year_and_month_formatted(index in -130_000i32..130_000) {
            let p = Period::from_index(index);
            let formatted = format!("{:04}-{:02}", p.year(), p.month());
            prop_assert_eq!(p.to_string(), formatted.clone());
            prop_assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{formatted}\""));
        }

        /// Whatever order periods come in, with repeats, the map holds what a `BTreeMap`
        /// would, in the same order.
        #[test]
        fn period_map_is_a_map_in_period_order(ops in prop::collection::vec((0i32..40, any::<u16>()), 0..120)) {
            let (mut ours, mut theirs) = (PeriodMap::new(), BTreeMap::new());
            for (k, v) in ops {
                let p = Period::from_index(24_240 + k);
                prop_assert_eq!(ours.insert(p, v), theirs.insert(p, v));
                prop_assert_eq!(ours.get(&p), theirs.get(&p));
            }
            prop_assert_eq!(ours.len(), theirs.len());
            prop_assert!(ours.iter().eq(theirs.iter()));
            prop_assert_eq!(ours.keys().next_back(), theirs.keys().next_back());
            for k in 0..40 {
                let p = Period::from_index(24_240 + k);
                prop_assert_eq!(ours.get(&p), theirs.get(&p));
            }
        }
    }

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
