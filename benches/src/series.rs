//! Institution series for the rules: scored synthetic reports, shaped as the engine shapes
//! them (`reporting_gap`, `score`, `base_score`, `trend_z` and every finite indicator).

use crate::synth::institution;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use yujing_alert::{EntitySeries, SeriesPoint};
use yujing_model::alert::Figures;
use yujing_model::{EntityKind, Period, Report, Sector, SectorScope};
use yujing_score::{Baseline, ScoreConfig, score_sector_against};

/// The series of `n_institutions` of a mixed population, each with `points` consecutive
/// reporting periods (months; quarters for banks), scored with `config`.
///
/// # Panics
///
/// When scoring fails, which a valid config and synthetic reports never make it do.
pub fn institution_series(n_institutions: usize, points: usize, seed: u64, config: &ScoreConfig) -> Vec<EntitySeries> {
    let population: Vec<_> = (0..n_institutions).map(|i| institution(seed, i, None)).collect();
    let mut lines = Vec::with_capacity(n_institutions * points);
    for inst in &population {
        let months = (0..).filter(|m| inst.reports_in(*m)).take(points);
        lines.extend(months.map(|m| inst.line(seed, m, 1, None).into_bytes()));
    }
    let reports = crate::decode_all(&lines);
    let by_key: HashMap<(&str, Period), &Report> =
        reports.iter().map(|r| ((&*r.institution_id, r.period), r)).collect();
    let mut points_of: BTreeMap<&str, Vec<SeriesPoint>> = BTreeMap::new();
    for sector in Sector::ALL {
        let of_sector: Vec<&Report> = reports.iter().filter(|r| r.sector == sector).collect();
        let periods: BTreeSet<Period> = of_sector.iter().map(|r| r.period).collect();
        let own: BTreeMap<Period, Baseline> = periods.iter().map(|p| (*p, Baseline::Own)).collect();
        let scored = score_sector_against(config, sector, &own, &of_sector).expect("synthetic reports score");
        for s in scored.scores {
            let report: &Report = by_key[&(&*s.institution_id, s.period)];
            let id = &*report.institution_id;
            let mut values: Figures =
                [("reporting_gap", 0.0), ("score", s.score), ("base_score", s.base_score)].into_iter().collect();
            if let Some(z) = s.trend_z(scored.trend.get(&s.period).and_then(Option::as_ref)) {
                values.insert("trend_z".into(), z);
            }
            for i in &s.indicators {
                if let Some(v) = i.value.get().filter(|v| v.is_finite()) {
                    values.insert(i.indicator.as_str().into(), v);
                }
            }
            points_of.entry(id).or_default().push(SeriesPoint { period: s.period, at: report.submitted_at, values });
        }
    }
    population
        .iter()
        .map(|inst| {
            let id = inst.id();
            let points = points_of.remove(id.as_str()).unwrap_or_default();
            EntitySeries {
                kind: EntityKind::Institution,
                entity_name: inst.name().into(),
                entity_id: id.into(),
                district_code: inst.district_code.to_string().into(),
                sector: SectorScope::One(inst.sector),
                points,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_institution_has_its_points() {
        let series = institution_series(60, 24, 4, &ScoreConfig::default());
        assert_eq!(series.len(), 60);
        assert!(series.iter().all(|s| s.points.len() == 24));
        assert!(series.iter().all(|s| s.points.iter().all(|p| p.values.contains_key("score"))));
        let pack = yujing_alert::RulePack::default_pack();
        let alerts: usize = series.iter().map(|s| yujing_alert::derive(&pack, s).len()).sum();
        assert!(alerts > 0);
    }
}
