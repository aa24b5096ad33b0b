//! The input of derivation: one entity's period series.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use yujing_model::alert::Figures;
use yujing_model::{EntityKind, Period, SectorScope};

/// One period of an entity's series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesPoint {
    /// The period the values are as of.
    pub period: Period,
    /// The event time of the point: the latest `submitted_at` behind it, or the deadline
    /// that made a report count as missing. Alerts take their timestamps from it.
    pub at: DateTime<FixedOffset>,
    /// Metric name → value (see [`crate::metrics`]). An absent metric is unknown this
    /// period: rules on it hold their state. Non-finite values count as absent. The
    /// pipeline's names are borrowed, not copied. (A flat map sorted by name: a point
    /// holds a handful and derivation makes one for every institution and period.)
    pub values: Figures,
}

impl SeriesPoint {
    /// The value of a metric, if present and finite.
    pub fn value(&self, metric: &str) -> Option<f64> {
        self.values.get(metric).filter(|v| v.is_finite())
    }

    /// [`SeriesPoint::value`] through [`Figures::get_hinted`], for a walk over a series.
    pub fn value_hinted(&self, metric: &str, hint: &mut usize) -> Option<f64> {
        self.values.get_hinted(metric, hint).filter(|v| v.is_finite())
    }
}

/// One entity's series: an institution, or a district's (or the city's) aggregate for
/// one sector scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySeries {
    /// `Institution` or `District`; a `Sector` series is treated like a district.
    pub kind: EntityKind,
    /// The institution id, or the district code such as `500103`.
    pub entity_id: Arc<str>,
    /// A readable name (the institution's name, or the district's).
    pub entity_name: Arc<str>,
    /// The district code: the institution's, or the district itself.
    pub district_code: Arc<str>,
    /// An institution's sector; for an aggregate, its sector or `all`.
    pub sector: SectorScope,
    /// One point per period, ascending by period. (Derivation sorts a copy by period, so
    /// order is not load-bearing, but each period should appear once.)
    pub points: Vec<SeriesPoint>,
}
