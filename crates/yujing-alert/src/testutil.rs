//! Series builders shared by the unit tests.

use crate::{EntitySeries, SeriesPoint};
use chrono::{DateTime, FixedOffset};
use yujing_model::{EntityKind, Period, Sector, SectorScope};

pub fn period(s: &str) -> Period {
    s.parse().unwrap()
}

/// The event time used for month `p`: the 20th, 10:00 CST.
pub fn at(p: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(&format!("{p}-20T10:00:00+08:00")).unwrap()
}

/// A point in month `p` (e.g. `2025-01`) with the given values.
pub fn pt(p: &str, values: &[(&str, f64)]) -> SeriesPoint {
    SeriesPoint { period: period(p), at: at(p), values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect() }
}

/// Points for consecutive months from 2025-01, one metric each; `None` leaves it out.
pub fn run(metric: &str, values: &[Option<f64>]) -> Vec<SeriesPoint> {
    let start = period("2025-01");
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let p = start.add_months(i as i32).to_string();
            match v {
                Some(v) => pt(&p, &[(metric, *v)]),
                None => pt(&p, &[]),
            }
        })
        .collect()
}

/// Institution `CQ-MLC-0042` of 渝中区.
pub fn institution(sector: Sector, points: Vec<SeriesPoint>) -> EntitySeries {
    EntitySeries {
        kind: EntityKind::Institution,
        entity_id: "CQ-MLC-0042".into(),
        entity_name: "重庆某小贷".into(),
        district_code: "500103".into(),
        sector: SectorScope::One(sector),
        points,
    }
}

/// 渝中区's aggregate for a sector scope.
pub fn district(scope: SectorScope, points: Vec<SeriesPoint>) -> EntitySeries {
    EntitySeries {
        kind: EntityKind::District,
        entity_id: "500103".into(),
        entity_name: "渝中区".into(),
        district_code: "500103".into(),
        sector: scope,
        points,
    }
}
