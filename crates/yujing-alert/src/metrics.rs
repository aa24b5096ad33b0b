//! The metric names the pipeline puts into [`SeriesPoint::values`](crate::SeriesPoint),
//! per kind of entity. Rules may only watch these.

use yujing_model::{EntityKind, Indicator, Sector, SectorScope};

/// Composite 0..100 score (institutions and district aggregates).
pub const SCORE: &str = "score";
/// An institution's score before trend points.
pub const BASE_SCORE: &str = "base_score";
/// An institution's trend z-score.
pub const TREND_Z: &str = "trend_z";
/// Reporting discipline: 0 on time, 1 late, `1 + k` for the k-th consecutive missing
/// period. A missing period is a point carrying only this metric.
pub const REPORTING_GAP: &str = "reporting_gap";
/// A district aggregate's count of institutions graded orange or red.
pub const ORANGE_PLUS: &str = "orange_plus";
/// A district aggregate's count of institutions with a report this period.
pub const INSTITUTIONS: &str = "institutions";
/// A district aggregate's Σnpl / Σloans.
pub const NPL_RATIO: &str = "npl_ratio";
/// A district aggregate's Σpayouts / Σreleased.
pub const PAYOUT_RATE: &str = "payout_rate";
/// A district's P2P complaints this period.
pub const P2P_COMPLAINTS: &str = "p2p_complaints";
/// A district's P2P complaints this period per 1,000 unpaid lenders.
pub const P2P_COMPLAINTS_PER_1000: &str = "p2p_complaints_per_1000";
/// A district's P2P complaints this period / previous period − 1.
pub const P2P_COMPLAINTS_GROWTH: &str = "p2p_complaints_growth";
/// A district's unpaid P2P lenders.
pub const P2P_LENDERS_UNPAID: &str = "p2p_lenders_unpaid";

/// Metrics of an institution's series, besides each [`Indicator`] by its name.
pub const INSTITUTION_EXTRA: [&str; 4] = [SCORE, BASE_SCORE, TREND_Z, REPORTING_GAP];

/// Metrics of a district's (or a city-wide sector's) series, per sector scope.
pub const DISTRICT_METRICS: [&str; 9] = [
    SCORE,
    ORANGE_PLUS,
    INSTITUTIONS,
    NPL_RATIO,
    PAYOUT_RATE,
    P2P_COMPLAINTS,
    P2P_COMPLAINTS_PER_1000,
    P2P_COMPLAINTS_GROWTH,
    P2P_LENDERS_UNPAID,
];

/// Whether the pipeline computes `metric` for entities of `kind` (districts and
/// city-wide sectors share their names).
pub fn is_known(kind: EntityKind, metric: &str) -> bool {
    match kind {
        EntityKind::Institution => INSTITUTION_EXTRA.contains(&metric) || Indicator::parse(metric).is_some(),
        EntityKind::District | EntityKind::Sector => DISTRICT_METRICS.contains(&metric),
    }
}

/// Whether an institution metric exists for a sector: indicators only for the sectors
/// that compute them, the rest for every sector.
pub(crate) fn institution_metric_in(metric: &str, scope: SectorScope) -> bool {
    match (Indicator::parse(metric), scope) {
        (Some(i), SectorScope::One(s)) => Indicator::for_sector(s).contains(&i),
        (Some(_), SectorScope::All) => {
            Sector::ALL.iter().any(|s| Indicator::for_sector(*s).iter().any(|i| i.as_str() == metric))
        }
        (None, _) => true,
    }
}

/// Whether values of `metric` are fractions, printed as percentages in summaries.
pub fn is_fraction(metric: &str) -> bool {
    use Indicator::*;
    match Indicator::parse(metric) {
        Some(Leverage | ComplaintsPer1000Lenders) => false,
        Some(_) => true,
        None => metric == P2P_COMPLAINTS_GROWTH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_kind() {
        assert!(is_known(EntityKind::Institution, "npl_ratio"));
        assert!(is_known(EntityKind::Institution, "reporting_gap"));
        assert!(!is_known(EntityKind::Institution, "orange_plus"));
        assert!(is_known(EntityKind::District, "orange_plus"));
        assert!(is_known(EntityKind::Sector, "p2p_complaints_growth"));
        assert!(!is_known(EntityKind::District, "stall"));
        assert!(!is_known(EntityKind::District, "npl"));
    }

    #[test]
    fn indicators_belong_to_their_sectors() {
        let bank = SectorScope::One(Sector::Bank);
        let ml = SectorScope::One(Sector::Microloan);
        assert!(institution_metric_in("capital_adequacy_ratio", bank));
        assert!(!institution_metric_in("capital_adequacy_ratio", ml));
        assert!(institution_metric_in("score", ml));
        assert!(institution_metric_in("reporting_gap", bank));
    }

    #[test]
    fn fractions_print_as_percent() {
        assert!(is_fraction("npl_ratio"));
        assert!(is_fraction("stall"));
        assert!(is_fraction("p2p_complaints_growth"));
        assert!(!is_fraction("leverage"));
        assert!(!is_fraction("score"));
        assert!(!is_fraction("complaints_per_1000_lenders"));
        assert!(!is_fraction("reporting_gap"));
    }
}
