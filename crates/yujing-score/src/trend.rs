//! The trend adjustment: a sharp deterioration relative to the sector adds points.

use crate::config::TrendConfig;
use statrs::distribution::{ContinuousCDF, Normal};
use statrs::statistics::Statistics;

pub use yujing_model::score::TrendBaseline;

/// The baseline of a cross-section of changes (`None` for an institution with no previous
/// period), or `None` when fewer than `min_peers` (and at least 2) changes are present.
pub fn baseline_of(config: &TrendConfig, deltas: &[Option<f64>]) -> Option<TrendBaseline> {
    let present: Vec<f64> = deltas.iter().flatten().copied().collect();
    if present.len() < config.min_peers.max(2) {
        return None;
    }
    Some(TrendBaseline { mean: present.iter().mean(), sd: present.iter().std_dev(), peers: present.len() })
}

/// One change's z-score against a baseline and the points it adds: only a deterioration (a
/// positive change with a z-score above `z_start`) adds any,
/// `max_points × (Φ(z) − Φ(z_start)) / (1 − Φ(z_start))`.
pub fn points(baseline: &TrendBaseline, config: &TrendConfig, delta: Option<f64>) -> (Option<f64>, f64) {
    let Some(d) = delta else { return (None, 0.0) };
    let z = baseline.z(d);
    let points = if d > 0.0 && z > config.z_start {
        let normal = Normal::standard();
        let floor = normal.cdf(config.z_start);
        config.max_points * ((normal.cdf(z) - floor) / (1.0 - floor)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (Some(z), points)
}

/// For each institution's change of base score since its previous period (`None` when it has
/// no previous period), its z-score against the sector's changes and the points it adds
/// (see [`points`]); no z-score at all with fewer than `min_peers` changes.
pub fn trend_points(config: &TrendConfig, deltas: &[Option<f64>]) -> Vec<(Option<f64>, f64)> {
    match baseline_of(config, deltas) {
        Some(b) => deltas.iter().map(|d| points(&b, config, *d)).collect(),
        None => deltas.iter().map(|_| (None, 0.0)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sharp_deterioration_adds_points() {
        let cfg = TrendConfig { min_peers: 5, z_start: 1.0, max_points: 10.0 };
        let deltas = [Some(0.0), Some(1.0), Some(-1.0), Some(0.5), Some(-0.5), Some(0.0), Some(30.0), None];
        let t = trend_points(&cfg, &deltas);
        assert_eq!(t[7], (None, 0.0));
        assert!(t[6].0.unwrap() > 2.0 && t[6].1 > 5.0 && t[6].1 <= 10.0, "{:?}", t[6]);
        assert!(t[..6].iter().all(|(_, p)| *p == 0.0));
        // Too few peers: no z-score at all.
        let few = trend_points(&cfg, &[Some(1.0), Some(50.0)]);
        assert!(few.iter().all(|(z, p)| z.is_none() && *p == 0.0));
    }
}
