//! The scoring configuration: cutoffs, weights, grades and the trend adjustment.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use yujing_model::{Grade, Indicator, Sector};

/// The embedded default scoring configuration (the `[score]` section of yujing's config).
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// The cutoffs and weight of one indicator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cutoff {
    /// The value at and beyond which the sub-score is 0.
    pub safe: f64,
    /// The value at and beyond which the sub-score is 100. Below `safe` means lower is riskier.
    pub critical: f64,
    /// The relative weight in the sector's composite.
    pub weight: f64,
}

impl Cutoff {
    /// The 0..100 sub-score of a value; an undefined value scores 0.
    pub fn sub_score(&self, value: Option<f64>) -> f64 {
        match value {
            Some(v) if !v.is_nan() => ((v - self.safe) / (self.critical - self.safe)).clamp(0.0, 1.0) * 100.0,
            _ => 0.0,
        }
    }
}

/// The score lines of the four warning grades.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeCutoffs {
    /// Scores at or above this are blue (蓝).
    pub blue: f64,
    /// Scores at or above this are yellow (黄).
    pub yellow: f64,
    /// Scores at or above this are orange (橙).
    pub orange: f64,
    /// Scores at or above this are red (红).
    pub red: f64,
}

impl GradeCutoffs {
    /// The grade of a score.
    pub fn grade(&self, score: f64) -> Grade {
        if score >= self.red {
            Grade::Red
        } else if score >= self.orange {
            Grade::Orange
        } else if score >= self.yellow {
            Grade::Yellow
        } else if score >= self.blue {
            Grade::Blue
        } else {
            Grade::Normal
        }
    }
}

/// How a sharp deterioration adds to the composite.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendConfig {
    /// Fewest changes in a sector and period for a z-score to mean anything.
    pub min_peers: usize,
    /// z-scores at or below this add nothing.
    pub z_start: f64,
    /// Points added as the z-score goes to infinity (scaled by the normal CDF above `z_start`).
    pub max_points: f64,
}

/// The scoring configuration (the `[score]` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// Grade lines.
    pub grades: GradeCutoffs,
    /// Trend adjustment.
    pub trend: TrendConfig,
    /// Cutoffs and weights per sector and indicator.
    pub indicators: BTreeMap<Sector, BTreeMap<Indicator, Cutoff>>,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        toml::from_str(DEFAULT_TOML).expect("the embedded scoring defaults are valid")
    }
}

impl ScoreConfig {
    /// Checks that every sector has exactly its indicators, with sane cutoffs and weights.
    pub fn validate(&self) -> Result<()> {
        let g = &self.grades;
        if !(0.0 < g.blue && g.blue < g.yellow && g.yellow < g.orange && g.orange < g.red && g.red <= 100.0) {
            return Err(Error::Config {
                path: "score.grades".into(),
                message: "need 0 < blue < yellow < orange < red <= 100".into(),
            });
        }
        if !(self.trend.max_points >= 0.0 && self.trend.max_points <= 100.0) {
            return Err(Error::Config {
                path: "score.trend.max_points".into(),
                message: "must be within 0..=100".into(),
            });
        }
        for sector in Sector::ALL {
            let path = format!("score.indicators.{sector}");
            let Some(map) = self.indicators.get(&sector) else {
                return Err(Error::Config { path, message: "missing".into() });
            };
            let expected = Indicator::for_sector(sector);
            if let Some(extra) = map.keys().find(|i| !expected.contains(i)) {
                return Err(Error::Config {
                    path: format!("{path}.{extra}"),
                    message: format!("{extra} is not an indicator of {sector}"),
                });
            }
            let mut total = 0.0;
            for i in expected {
                let Some(c) = map.get(i) else {
                    return Err(Error::Config { path: format!("{path}.{i}"), message: "missing".into() });
                };
                if !(c.safe.is_finite() && c.critical.is_finite()) || c.safe == c.critical {
                    return Err(Error::Config {
                        path: format!("{path}.{i}"),
                        message: "safe and critical must be finite and differ".into(),
                    });
                }
                if !(c.weight >= 0.0 && c.weight.is_finite()) {
                    return Err(Error::Config {
                        path: format!("{path}.{i}.weight"),
                        message: "must be 0 or more".into(),
                    });
                }
                total += c.weight;
            }
            if total <= 0.0 {
                return Err(Error::Config { path, message: "weights must not all be zero".into() });
            }
        }
        Ok(())
    }

    /// The cutoffs of a sector's indicators in display order, weights normalised to sum to 1.
    pub fn sector_cutoffs(&self, sector: Sector) -> Vec<(Indicator, Cutoff)> {
        let map = &self.indicators[&sector];
        let total: f64 = Indicator::for_sector(sector).iter().map(|i| map[i].weight).sum();
        Indicator::for_sector(sector).iter().map(|i| (*i, Cutoff { weight: map[i].weight / total, ..map[i] })).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_sub_scores_follow_direction() {
        let c = ScoreConfig::default();
        c.validate().unwrap();
        let npl = c.indicators[&Sector::Bank][&Indicator::NplRatio];
        assert_eq!(npl.sub_score(Some(0.005)), 0.0);
        assert!((npl.sub_score(Some(0.03)) - 50.0).abs() < 1e-9);
        assert_eq!(npl.sub_score(Some(0.2)), 100.0);
        let cov = c.indicators[&Sector::Bank][&Indicator::ProvisionCoverage];
        assert!((cov.sub_score(Some(1.2)) - 60.0).abs() < 1e-9);
        assert_eq!(cov.sub_score(Some(f64::INFINITY)), 0.0);
        assert_eq!(cov.sub_score(None), 0.0);
        let w: f64 = c.sector_cutoffs(Sector::Guarantee).iter().map(|(_, c)| c.weight).sum();
        assert!((w - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_missing_indicator_is_named() {
        let mut c = ScoreConfig::default();
        c.indicators.get_mut(&Sector::Microloan).unwrap().remove(&Indicator::Leverage);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("score.indicators.microloan.leverage"), "{e}");
    }
}
