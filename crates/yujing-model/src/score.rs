//! Scores: indicators, institution scores, aggregates and grades (DESIGN §5).

use crate::period::Period;
use crate::sector::{Sector, SectorScope};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A risk grade. Blue to red are the four warning levels of the Emergency Response Law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    /// Below the blue cutoff.
    Normal,
    /// 蓝色预警.
    Blue,
    /// 黄色预警.
    Yellow,
    /// 橙色预警.
    Orange,
    /// 红色预警.
    Red,
}

impl Grade {
    /// All grades from least to most severe.
    pub const ALL: [Grade; 5] = [Grade::Normal, Grade::Blue, Grade::Yellow, Grade::Orange, Grade::Red];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Normal => "normal",
            Grade::Blue => "blue",
            Grade::Yellow => "yellow",
            Grade::Orange => "orange",
            Grade::Red => "red",
        }
    }

    /// The Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            Grade::Normal => "正常",
            Grade::Blue => "蓝色",
            Grade::Yellow => "黄色",
            Grade::Orange => "橙色",
            Grade::Red => "红色",
        }
    }

    /// The warning severity of this grade, `None` for normal.
    pub fn severity(self) -> Option<Severity> {
        match self {
            Grade::Normal => None,
            Grade::Blue => Some(Severity::Blue),
            Grade::Yellow => Some(Severity::Yellow),
            Grade::Orange => Some(Severity::Orange),
            Grade::Red => Some(Severity::Red),
        }
    }

    /// Parses a lowercase name.
    pub fn parse(s: &str) -> Option<Grade> {
        Grade::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The severity of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// 蓝色: watch.
    Blue,
    /// 黄色: act within the deadline.
    Yellow,
    /// 橙色: act urgently.
    Orange,
    /// 红色: act now.
    Red,
}

impl Severity {
    /// All severities from least to most severe.
    pub const ALL: [Severity; 4] = [Severity::Blue, Severity::Yellow, Severity::Orange, Severity::Red];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        Grade::from(self).as_str()
    }

    /// Parses a lowercase name.
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

impl From<Severity> for Grade {
    fn from(s: Severity) -> Grade {
        match s {
            Severity::Blue => Grade::Blue,
            Severity::Yellow => Grade::Yellow,
            Severity::Orange => Grade::Orange,
            Severity::Red => Grade::Red,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A derived indicator (DESIGN §5). The formulas live in the scoring crate; cutoffs and
/// weights in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Indicator {
    /// NPLs / loans.
    NplRatio,
    /// Special-mention loans / loans (bank).
    SpecialMentionRatio,
    /// Loan-loss provision / NPLs (bank).
    ProvisionCoverage,
    /// Capital / risk-weighted assets, as reported (bank).
    CapitalAdequacyRatio,
    /// Largest borrower or client / net assets.
    Concentration,
    /// Borrowings (microloan) or outstanding guarantees (guarantee) / net assets.
    Leverage,
    /// Payouts this year / guarantees released this year (代偿率).
    PayoutRate,
    /// Recoveries / payouts this year.
    RecoveryRate,
    /// 1 - outstanding / principal at exit (P2P wind-down).
    RepaymentProgress,
    /// Repaid this period / outstanding (P2P wind-down).
    Stall,
    /// Complaints this period per 1,000 unpaid lenders.
    #[serde(rename = "complaints_per_1000_lenders")]
    ComplaintsPer1000Lenders,
}

impl Indicator {
    /// Every indicator.
    pub const ALL: [Indicator; 11] = [
        Indicator::NplRatio,
        Indicator::SpecialMentionRatio,
        Indicator::ProvisionCoverage,
        Indicator::CapitalAdequacyRatio,
        Indicator::Concentration,
        Indicator::Leverage,
        Indicator::PayoutRate,
        Indicator::RecoveryRate,
        Indicator::RepaymentProgress,
        Indicator::Stall,
        Indicator::ComplaintsPer1000Lenders,
    ];

    /// The snake_case name used in config, rules, outputs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::NplRatio => "npl_ratio",
            Indicator::SpecialMentionRatio => "special_mention_ratio",
            Indicator::ProvisionCoverage => "provision_coverage",
            Indicator::CapitalAdequacyRatio => "capital_adequacy_ratio",
            Indicator::Concentration => "concentration",
            Indicator::Leverage => "leverage",
            Indicator::PayoutRate => "payout_rate",
            Indicator::RecoveryRate => "recovery_rate",
            Indicator::RepaymentProgress => "repayment_progress",
            Indicator::Stall => "stall",
            Indicator::ComplaintsPer1000Lenders => "complaints_per_1000_lenders",
        }
    }

    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Option<Indicator> {
        Indicator::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// The indicators scored for a sector, in display order.
    pub fn for_sector(sector: Sector) -> &'static [Indicator] {
        use Indicator::*;
        match sector {
            Sector::Bank => &[NplRatio, SpecialMentionRatio, ProvisionCoverage, CapitalAdequacyRatio],
            Sector::Microloan => &[NplRatio, Concentration, Leverage],
            Sector::Guarantee => &[PayoutRate, Leverage, Concentration, RecoveryRate],
            Sector::P2pResidual => &[RepaymentProgress, Stall, ComplaintsPer1000Lenders],
        }
    }
}

impl fmt::Display for Indicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An optional `f64` in the eight bytes of an `f64`, NaN standing for none: a score holds
/// three for each of a million institution-periods, where an `Option<f64>` takes sixteen.
/// It compares and serializes as the `Option<f64>` it stands for (so two nones are equal).
/// A NaN value is none.
///
/// ```
/// use yujing_model::score::OptF64;
/// assert_eq!(OptF64::from(Some(1.5)).get(), Some(1.5));
/// assert_eq!(OptF64::from(None), OptF64::NONE);
/// assert_eq!(serde_json::to_string(&OptF64::NONE).unwrap(), "null");
/// ```
#[derive(Clone, Copy)]
pub struct OptF64(f64);

impl OptF64 {
    /// None.
    pub const NONE: OptF64 = OptF64(f64::NAN);

    /// The value, if there is one.
    pub fn get(self) -> Option<f64> {
        (!self.0.is_nan()).then_some(self.0)
    }
}

impl Default for OptF64 {
    fn default() -> Self {
        OptF64::NONE
    }
}

impl From<Option<f64>> for OptF64 {
    fn from(v: Option<f64>) -> Self {
        OptF64(v.unwrap_or(f64::NAN))
    }
}

impl From<OptF64> for Option<f64> {
    fn from(v: OptF64) -> Self {
        v.get()
    }
}

impl PartialEq for OptF64 {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for OptF64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl Serialize for OptF64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de> Deserialize<'de> for OptF64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<f64>::deserialize(d).map(OptF64::from)
    }
}

/// One indicator of one institution and period, with how it scored. Its weight in the
/// composite is the sector's, in the scoring configuration (held once there, not in each
/// of the million scores).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IndicatorScore {
    /// Which indicator.
    pub indicator: Indicator,
    /// Its value; none when undefined (say, a ratio over zero).
    pub value: OptF64,
    /// Its 0..100 sub-score between the safe and critical cutoffs.
    pub sub_score: f64,
}

/// The sector's changes of base score in one period: the baseline each institution's change
/// is scored against (DESIGN §5, trend).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrendBaseline {
    /// Mean change.
    pub mean: f64,
    /// Standard deviation of the changes.
    pub sd: f64,
    /// How many changes it was taken over.
    pub peers: usize,
}

impl TrendBaseline {
    /// A change's z-score against this baseline (0 when the changes do not spread).
    ///
    /// ```
    /// let b = yujing_model::score::TrendBaseline { mean: 1.0, sd: 2.0, peers: 10 };
    /// assert_eq!(b.z(5.0), 2.0);
    /// ```
    pub fn z(&self, delta: f64) -> f64 {
        if self.sd > 1e-12 { (delta - self.mean) / self.sd } else { 0.0 }
    }
}

/// The score of one institution for one period.
///
/// Its trend z-score is not held: it is its change against its sector-period's
/// [`TrendBaseline`] ([`InstitutionScore::trend_z`]), which a late report of a peer moves.
/// Held, it would make a new score of every score of the sector-period, and the old ones
/// would stay alive as long as a published snapshot shares them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstitutionScore {
    /// The institution (shared with the reports and the other periods' scores).
    pub institution_id: Arc<str>,
    /// The period.
    pub period: Period,
    /// Its sector.
    pub sector: Sector,
    /// Its district code.
    pub district_code: u32,
    /// Each indicator, value and sub-score (a boxed slice: a score is held for every
    /// institution and period, and never grows).
    pub indicators: Box<[IndicatorScore]>,
    /// The weighted sum of sub-scores, before trend.
    pub base_score: f64,
    /// The change of the base score since the previous period, if there was one.
    pub trend_delta: OptF64,
    /// Points the trend added to the composite.
    pub trend_points: f64,
    /// The composite 0..100.
    pub score: f64,
    /// Its grade.
    pub grade: Grade,
    /// The exposure that weights it in aggregates (loans, guarantees, principal), in yuan.
    pub exposure: f64,
}

impl InstitutionScore {
    /// Its change as a z-score against `baseline`, the baseline of its sector-period: none
    /// without a change (no previous period) or without a baseline (too few peers).
    pub fn trend_z(&self, baseline: Option<&TrendBaseline>) -> Option<f64> {
        Some(baseline?.z(self.trend_delta.get()?))
    }

    /// The value of an indicator, if this sector has it and it is defined.
    pub fn indicator(&self, i: Indicator) -> Option<f64> {
        self.indicators.iter().find(|x| x.indicator == i).and_then(|x| x.value.get())
    }
}

/// The level of a score row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One institution.
    Institution,
    /// One 区县.
    District,
    /// One of the three regions.
    Region,
    /// The whole city (entity id `500000`).
    City,
}

impl Level {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Institution => "institution",
            Level::District => "district",
            Level::Region => "region",
            Level::City => "city",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(s: &str) -> Option<Level> {
        [Level::Institution, Level::District, Level::Region, Level::City].into_iter().find(|l| l.as_str() == s)
    }
}

/// An institution that contributes most to an aggregate's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributor {
    /// The institution.
    pub institution_id: String,
    /// Its score.
    pub score: f64,
    /// Its share of the aggregate score (exposure share × score), in points.
    pub points: f64,
}

/// The aggregate score of a district, region or the city, for a sector or all sectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateScore {
    /// District, region or city.
    pub level: Level,
    /// District code, region id, or `500000`.
    pub entity_id: String,
    /// The Chinese name.
    pub entity_name: String,
    /// The sector, or all.
    pub sector: SectorScope,
    /// The period.
    pub period: Period,
    /// Exposure-weighted mean of the institutions' scores.
    pub score: f64,
    /// Its grade.
    pub grade: Grade,
    /// Institutions with a report this period.
    pub institutions: u32,
    /// Institutions in each grade, normal to red.
    pub grade_counts: [u32; 5],
    /// Σ exposure, in yuan.
    pub exposure: f64,
    /// Σ NPLs / Σ loans of banks and microloan companies, as a fraction.
    pub npl_ratio: Option<f64>,
    /// Σ payouts / Σ released guarantees, as a fraction.
    pub payout_rate: Option<f64>,
    /// Σ complaints this period at closed P2P platforms.
    pub p2p_complaints: Option<f64>,
    /// Σ unpaid P2P lenders.
    pub p2p_lenders_unpaid: Option<f64>,
    /// The institutions that add most to the score, most first.
    pub top: Vec<Contributor>,
}

impl AggregateScore {
    /// Institutions graded orange or red.
    pub fn orange_plus(&self) -> u32 {
        self.grade_counts[3] + self.grade_counts[4]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_figure_takes_the_room_of_a_figure_and_reads_back_as_an_option() {
        assert_eq!(std::mem::size_of::<OptF64>(), 8);
        assert_eq!(std::mem::size_of::<IndicatorScore>(), 24);
        for v in [None, Some(0.0), Some(-1.25), Some(f64::INFINITY)] {
            let o = OptF64::from(v);
            assert_eq!(o.get(), v);
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, serde_json::to_string(&v).unwrap());
            assert_eq!(serde_json::from_str::<OptF64>(&json).unwrap().get(), v.filter(|x| x.is_finite()));
        }
        assert_eq!(OptF64::from(Some(f64::NAN)), OptF64::NONE, "NaN is none");
        assert_ne!(OptF64::from(Some(1.0)), OptF64::NONE);
    }

    #[test]
    fn serde_names_are_the_documented_names() {
        for i in Indicator::ALL {
            assert_eq!(serde_json::to_string(&i).unwrap(), format!("\"{}\"", i.as_str()));
        }
    }
}
