//! Times as RFC 3339 text exactly as chrono's `Serialize` writes them (`Z` for a zero
//! offset, seconds with no fraction or one of 3, 6 or 9 digits), written straight into a
//! buffer rather than through `core::fmt`.
//!
//! An alert carries four times and is serialized for the store's alert row, again in its
//! audit record and on `yujing.alerts`; chrono's formatting (a `core::fmt` call per field)
//! was about a tenth of a store commit's instructions.
//!
//! ```
//! use chrono::DateTime;
//! #[derive(serde::Serialize)]
//! struct At(#[serde(serialize_with = "yujing_model::rfc3339::serialize")] DateTime<chrono::FixedOffset>);
//! let t = DateTime::parse_from_rfc3339("2025-10-12T09:30:00.250+08:00").unwrap();
//! assert_eq!(serde_json::to_string(&At(t)).unwrap(), serde_json::to_string(&t).unwrap());
//! ```

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use serde::{Serialize, Serializer};

/// The longest text written here: `9999-12-31T23:59:59.123456789+23:59`.
const MAX: usize = 35;

/// The text of a time, or `None` for what is left to chrono: years outside 0–9999, a leap
/// second, an offset that is not a whole number of minutes.
fn text(t: &DateTime<FixedOffset>) -> Option<([u8; MAX], usize)> {
    let local = t.naive_local();
    let year = local.year();
    let nano = local.nanosecond();
    let offset = t.offset().local_minus_utc();
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 || offset % 60 != 0 {
        return None;
    }
    let mut buf = [0u8; MAX];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    let two = |v: u32| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    let year = year as u32;
    put(&two(year / 100));
    put(&two(year % 100));
    put(b"-");
    put(&two(local.month()));
    put(b"-");
    put(&two(local.day()));
    put(b"T");
    put(&two(local.hour()));
    put(b":");
    put(&two(local.minute()));
    put(b":");
    put(&two(local.second()));
    let (fraction, digits) = match nano {
        0 => (0, 0),
        _ if nano.is_multiple_of(1_000_000) => (nano / 1_000_000, 3),
        _ if nano.is_multiple_of(1_000) => (nano / 1_000, 6),
        _ => (nano, 9),
    };
    if digits > 0 {
        let mut d = [b'.'; 10];
        let mut f = fraction;
        for i in (1..=digits).rev() {
            d[i] = b'0' + (f % 10) as u8;
            f /= 10;
        }
        put(&d[..=digits]);
    }
    if offset == 0 {
        put(b"Z");
    } else {
        let minutes = offset.unsigned_abs() / 60;
        put(if offset < 0 { b"-" } else { b"+" });
        put(&two(minutes / 60));
        put(b":");
        put(&two(minutes % 60));
    }
    Some((buf, n))
}

/// `serialize_with` for a time: the text chrono's `Serialize` gives it.
pub fn serialize<S: Serializer>(t: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
    match text(t) {
        Some((buf, n)) => s.serialize_str(std::str::from_utf8(&buf[..n]).map_err(serde::ser::Error::custom)?),
        None => t.serialize(s),
    }
}

/// [`serialize`] for an optional time (`null` when absent).
pub fn serialize_option<S: Serializer>(t: &Option<DateTime<FixedOffset>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&Text(t)),
        None => s.serialize_none(),
    }
}

/// A time serialized by [`serialize`].
struct Text<'a>(&'a DateTime<FixedOffset>);

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};
    use proptest::prelude::*;

    fn time(secs: i64, nano: u32, offset: i32) -> DateTime<FixedOffset> {
        let utc = DateTime::from_timestamp(secs, nano).unwrap().naive_utc();
        FixedOffset::east_opt(offset).unwrap().from_utc_datetime(&utc)
    }

    fn same_as_chrono(t: &DateTime<FixedOffset>) {
        assert_eq!(serde_json::to_string(&Text(t)).unwrap(), serde_json::to_string(t).unwrap(), "{t:?}");
    }

    #[test]
    fn the_edges_read_as_chrono_writes_them() {
        for (secs, nano, offset) in [
            (0, 0, 0),
            (1_760_232_600, 0, 8 * 3600),
            (1_760_232_600, 5_000_000, -5 * 3600 - 30 * 60),
            (1_760_232_600, 123_456_000, 3600),
            (1_760_232_600, 1, 86_340),
            (-62_167_219_200, 0, 0),
            (253_402_300_799, 999_999_999, 0),
            // Left to chrono: a year past 9999, an offset with seconds, a leap second.
            (253_402_300_800, 0, 0),
            (1_760_232_600, 0, 8 * 3600 + 7),
            (1_760_232_599, 1_500_000_000, 8 * 3600),
        ] {
            same_as_chrono(&time(secs, nano, offset));
        }
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 1_000_000_000).unwrap();
        same_as_chrono(&FixedOffset::east_opt(0).unwrap().from_utc_datetime(&leap));
    }

    #[test]
    fn an_optional_time_reads_as_chrono_writes_it() {
        #[derive(Serialize)]
        struct Ours(#[serde(serialize_with = "serialize_option")] Option<DateTime<FixedOffset>>);
        for t in [None, Some(time(1_760_232_600, 5_000_000, 8 * 3600))] {
            assert_eq!(serde_json::to_string(&Ours(t)).unwrap(), serde_json::to_string(&t).unwrap());
        }
    }

    proptest! {
        #[test]
        fn any_time_reads_as_chrono_writes_it(
            secs in -70_000_000_000i64..260_000_000_000,
            nano in prop_oneof![Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000),
                                (0u32..1_000_000).prop_map(|u| u * 1000), 0u32..1_000_000_000],
            offset in prop_oneof![(-1439i32..1440).prop_map(|m| m * 60), -86_399i32..86_400],
        ) {
            same_as_chrono(&time(secs, nano, offset));
        }
    }
}
