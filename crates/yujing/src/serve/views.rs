//! What the API's snapshots are built from: the engine's state, with each institution's
//! view shared from one snapshot to the next while it does not change.

use crate::config::Config;
use crate::engine::Engine;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use yujing_model::period::china_tz;
use yujing_model::{InstitutionScore, Period, Report};
use yujing_serve::{
    AuditEntry, EventProbability, IndicatorCutoff, InstitutionView, PipelineStats, Snapshot, SnapshotParts,
};
use yujing_store::InstitutionRecord;

/// Each institution's probability of an event at its latest scored period, when the
/// configuration has a `[probability]` model.
fn latest_p_events(config: &Config, engine: &Engine) -> HashMap<(String, Period), EventProbability> {
    let Some(model) = &config.probability else { return HashMap::new() };
    let mut latest: HashMap<&str, Period> = HashMap::new();
    for s in engine.institution_scores() {
        let e = latest.entry(&*s.institution_id).or_insert(s.period);
        *e = (*e).max(s.period);
    }
    let periods: BTreeSet<Period> = latest.values().copied().collect();
    let mut out = HashMap::new();
    for period in periods {
        for (id, p) in crate::backtest::probability::p_events(model, engine, period) {
            if latest.get(id.as_str()) == Some(&period) {
                let e = EventProbability {
                    period,
                    p,
                    horizon_months: model.horizon,
                    flag_at: model.flag_at,
                    flagged: p >= model.flag_at,
                };
                out.insert((id, period), e);
            }
        }
    }
    out
}

/// A snapshot of the engine's current state.
pub fn snapshot(engine: &Engine, config: &Config, audit: &[AuditEntry]) -> Snapshot {
    Snapshot::new(snapshot_parts(engine, config, audit))
}

/// What a snapshot of the engine's current state is built from.
pub fn snapshot_parts(engine: &Engine, config: &Config, audit: &[AuditEntry]) -> SnapshotParts {
    snapshot_parts_reusing(engine, config, audit, &mut Views::default())
}

/// The institutions' views of the last snapshot. A view holds a pointer to each of the
/// institution's scores and reports; building all of them anew touched the reference count
/// of every score and report held (a million of each at a million institution-periods,
/// scattered over the heap), which cost the pipeline's thread 40-200 ms per snapshot. A
/// view is built anew only when one of its pointers, its event probability or its sector
/// differs from the engine's; otherwise the last snapshot's is shared.
#[derive(Debug, Default)]
pub struct Views(HashMap<Arc<str>, Arc<InstitutionView>>);

impl Views {
    /// The view of `record`'s institution, shared with the last snapshot when nothing in it
    /// changed.
    fn view(
        &self,
        record: &InstitutionRecord,
        latest: &Report,
        scores: &[&Arc<InstitutionScore>],
        p_event: Option<EventProbability>,
    ) -> Arc<InstitutionView> {
        if let Some(v) = self.0.get(&*record.institution_id)
            && v.sector == record.sector
            && v.p_event == p_event
            && v.scores.len() == scores.len()
            && v.scores.iter().zip(scores).all(|(a, b)| Arc::ptr_eq(a, b))
            && v.reports.len() == record.report_count()
            && v.reports.iter().zip(record.reports()).all(|(a, b)| Arc::ptr_eq(a, b))
        {
            return Arc::clone(v);
        }
        Arc::new(InstitutionView {
            id: record.institution_id.to_string(),
            name: latest.institution_name.to_string(),
            sector: record.sector,
            district_code: latest.district_code,
            scores: scores.iter().map(|s| Arc::clone(s)).collect(),
            reports: record.reports().cloned().collect(),
            p_event,
        })
    }
}

/// [`snapshot_parts`], sharing the views of the institutions that did not change since
/// `views` was last used; `views` then holds this snapshot's.
pub fn snapshot_parts_reusing(
    engine: &Engine,
    config: &Config,
    audit: &[AuditEntry],
    views: &mut Views,
) -> SnapshotParts {
    let mut p_events = latest_p_events(config, engine);
    let mut next = HashMap::with_capacity(views.0.len());
    let mut scores = Vec::new();
    let institutions = engine
        .ledger()
        .institutions()
        .filter_map(|r| {
            let latest = r.latest()?;
            scores.clear();
            scores.extend(engine.scores_of(&r.institution_id));
            let p_event = match scores.last() {
                Some(s) if !p_events.is_empty() => p_events.remove(&(r.institution_id.to_string(), s.period)),
                _ => None,
            };
            let view = views.view(r, latest, &scores, p_event);
            next.insert(Arc::clone(&r.institution_id), Arc::clone(&view));
            Some(view)
        })
        .collect();
    views.0 = next;
    let cutoffs = config
        .score
        .indicators
        .keys()
        .flat_map(|sector| {
            config.score.sector_cutoffs(*sector).into_iter().map(|(indicator, c)| IndicatorCutoff {
                sector: *sector,
                indicator,
                safe: c.safe,
                critical: c.critical,
                weight: c.weight,
            })
        })
        .collect();
    let st = engine.stats();
    SnapshotParts {
        institutions,
        aggregates: engine.aggregates().cloned().collect(),
        alerts: engine.shared_alerts().cloned().collect(),
        audit: audit.to_vec(),
        cutoffs,
        trend_baselines: engine.trend_baselines().collect(),
        complete_through: engine.complete_through(),
        stats: PipelineStats {
            received: st.received,
            accepted: st.accepted,
            duplicates: st.duplicates,
            rejected: st.rejected_total(),
            batches: st.batches,
        },
        generated_at: Some(chrono::Utc::now().with_timezone(&china_tz())),
        ..SnapshotParts::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_inputs as lines;
    use yujing_alert::RulePack;

    /// Whether two views show the same institution, scores and reports.
    fn same(a: &InstitutionView, b: &InstitutionView) -> bool {
        (&a.id, &a.name, a.sector, a.district_code, a.p_event) == (&b.id, &b.name, b.sector, b.district_code, b.p_event)
            && a.scores.len() == b.scores.len()
            && a.scores.iter().zip(&b.scores).all(|(x, y)| Arc::ptr_eq(x, y))
            && a.reports.len() == b.reports.len()
            && a.reports.iter().zip(&b.reports).all(|(x, y)| Arc::ptr_eq(x, y))
    }

    #[test]
    fn a_view_is_shared_until_its_institutions_scores_or_reports_change_and_equals_one_built_anew() {
        let config = Config::load(None).unwrap();
        let mut engine = Engine::new(&config, RulePack::default_pack());
        engine.process(&lines(0, 1500)).unwrap();
        let mut views = Views::default();
        let first = snapshot_parts_reusing(&engine, &config, &[], &mut views);
        let again = snapshot_parts_reusing(&engine, &config, &[], &mut views);
        assert!(first.institutions.len() > 100);
        assert_eq!(first.institutions.len(), again.institutions.len());
        assert!(first.institutions.iter().zip(&again.institutions).all(|(a, b)| Arc::ptr_eq(a, b)));

        // The next month's reports: some institutions get new scores and reports.
        engine.process(&lines(1500, 1700)).unwrap();
        let next = snapshot_parts_reusing(&engine, &config, &[], &mut views);
        let anew = snapshot_parts(&engine, &config, &[]);
        assert_eq!(next.institutions.len(), anew.institutions.len());
        assert!(next.institutions.iter().zip(&anew.institutions).all(|(a, b)| same(a, b)));
        let before: HashMap<&str, &Arc<InstitutionView>> = first.institutions.iter().map(|v| (&*v.id, v)).collect();
        let (mut shared, mut rebuilt) = (0, 0);
        for v in &next.institutions {
            match before.get(&*v.id) {
                Some(old) if Arc::ptr_eq(old, v) => shared += 1,
                Some(old) => {
                    assert!(!same(old, v), "{} was rebuilt though nothing in it changed", v.id);
                    rebuilt += 1;
                }
                None => rebuilt += 1,
            }
        }
        assert!(shared > 0 && rebuilt > 0, "shared {shared}, rebuilt {rebuilt}");
    }
}
