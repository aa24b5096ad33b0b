//! Deriving alert histories in a settle: the institutions and districts whose inputs
//! changed get their series built and their rules run again, and the book reconciles what
//! they derive with what it holds.
//!
//! Building a series and running the rules read shared state only, so a chunk of
//! institutions is derived on the rayon pool while the book takes the chunk before it: the
//! book's reconciliation runs one institution at a time, in id order, and overlapping it
//! with the next chunk's derivation keeps both cores busy.

use super::{AggKey, DERIVE_CHUNK, Engine, Ids, Memo, score_value, trend_z_in};
use foldhash::HashMap;
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use yujing_alert::{EntitySeries, RulePack, SeriesPoint, derive, derive_quiet, metrics as rule_metrics};
use yujing_model::alert::Figures;
use yujing_model::period::PeriodMap;
use yujing_model::{Alert, EntityKind, InstitutionScore, Level, Period, Sector, SectorScope, Transition};
use yujing_score::TrendBaseline;
use yujing_store::{Expected, Ledger};

/// An institution's history derived again: its id, sector, the quiet period it resumed
/// from, the alerts derived after it and what to resume from next time (`None`: nothing
/// to derive from).
type Derived<'i> = (&'i Arc<str>, SectorScope, Option<Period>, Vec<Alert>, Option<Memo>);

/// What an institution's derivation reads: the engine's state apart from the alert book,
/// which takes the chunk derived before meanwhile.
struct Sources<'a> {
    ledger: &'a Ledger,
    inst_scores: &'a HashMap<Arc<str>, PeriodMap<Arc<InstitutionScore>>>,
    trend: &'a HashMap<(Sector, Period), Option<TrendBaseline>>,
    rules: &'a RulePack,
    memos: &'a HashMap<Arc<str>, Memo>,
    /// The earliest period whose series point may have changed, per institution.
    from: &'a HashMap<Arc<str>, Period>,
}

impl Engine {
    /// Re-derives the alert histories of institutions and districts and reconciles them
    /// with the book (which notes the alerts whose view changed, for the store).
    pub(super) fn rederive(
        &mut self,
        institutions: &Ids,
        districts: BTreeSet<(String, SectorScope)>,
    ) -> Vec<Transition> {
        let from = std::mem::take(&mut self.pending_from);
        let mut institutions: Vec<&Arc<str>> = institutions.iter().collect();
        institutions.sort_unstable();
        let sources = Sources {
            ledger: &self.ledger,
            inst_scores: &self.inst_scores,
            trend: &self.trend,
            rules: &self.rules,
            memos: &self.memos,
            from: &from,
        };
        let book = &mut self.book;
        let (mut transitions, mut derived_n, mut resumed) = (Vec::new(), 0, 0);
        // What to resume from next time, put in once every chunk is derived (a chunk's
        // derivation reads the memos of its own institutions only).
        let mut memos: Vec<(&Arc<str>, Option<Memo>)> = Vec::with_capacity(institutions.len());
        // A chunk at a time: the derived histories are held only until the book has them
        // (a backlog's settle re-derives tens of thousands of institutions). The book takes
        // one chunk while the next is derived.
        let mut chunks = institutions.chunks(DERIVE_CHUNK);
        let mut taken: Vec<Derived<'_>> = Vec::new();
        loop {
            let next = chunks.next();
            if next.is_none() && taken.is_empty() {
                break;
            }
            derived_n += taken.len();
            resumed += taken.iter().filter(|d| d.2.is_some()).count();
            let (derived, ()) = rayon::join(
                || next.map_or_else(Vec::new, |chunk| chunk.par_iter().filter_map(|i| sources.derive(i)).collect()),
                || {
                    for (inst, sector, resume, alerts, memo) in taken.drain(..) {
                        transitions.extend(book.reconcile_after(EntityKind::Institution, inst, sector, resume, alerts));
                        memos.push((inst, memo));
                    }
                },
            );
            taken = derived;
        }
        for (inst, memo) in memos {
            match memo {
                Some(memo) => self.memos.insert(inst.clone(), memo),
                None => self.memos.remove(&**inst),
            };
        }
        tracing::debug!(institutions = derived_n, resumed, "institution histories derived");
        let districts: Vec<(String, SectorScope)> = districts.into_iter().collect();
        let derived_districts: Vec<_> = districts
            .par_iter()
            .map(|(code, scope)| derive(&self.rules, &self.district_series(code, *scope)))
            .collect();
        for ((code, scope), derived) in districts.iter().zip(derived_districts) {
            transitions.extend(self.book.reconcile(EntityKind::District, code, *scope, derived));
        }
        transitions
    }

    /// The series rules see for a district's aggregate of one sector scope.
    fn district_series(&self, code: &str, scope: SectorScope) -> EntitySeries {
        let lo: AggKey = (Level::District, code.to_string(), scope, Period::from_index(i32::MIN));
        let hi: AggKey = (Level::District, code.to_string(), scope, Period::from_index(i32::MAX));
        let district = code.parse().unwrap_or(0);
        let mut points = Vec::new();
        let mut prev_complaints: Option<f64> = None;
        for a in self.aggregates.range(lo..=hi).map(|(_, a)| a) {
            let mut values: Figures = [
                (rule_metrics::SCORE, a.score),
                (rule_metrics::ORANGE_PLUS, f64::from(a.orange_plus())),
                (rule_metrics::INSTITUTIONS, f64::from(a.institutions)),
            ]
            .into_iter()
            .collect();
            let mut put = |k: &'static str, v: Option<f64>| {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    values.insert(k.into(), v);
                }
            };
            put(rule_metrics::NPL_RATIO, a.npl_ratio);
            put(rule_metrics::PAYOUT_RATE, a.payout_rate);
            put(rule_metrics::P2P_COMPLAINTS, a.p2p_complaints);
            put(rule_metrics::P2P_LENDERS_UNPAID, a.p2p_lenders_unpaid);
            if let (Some(c), Some(l)) = (a.p2p_complaints, a.p2p_lenders_unpaid) {
                put(rule_metrics::P2P_COMPLAINTS_PER_1000, (l > 0.0).then(|| c * 1000.0 / l));
                put(rule_metrics::P2P_COMPLAINTS_GROWTH, prev_complaints.filter(|p| *p > 0.0).map(|p| c / p - 1.0));
            }
            prev_complaints = a.p2p_complaints;
            let at = self.agg_at.get(&(district, scope, a.period)).copied().unwrap_or_else(|| a.period.end());
            points.push(SeriesPoint { period: a.period, at, values });
        }
        EntitySeries {
            kind: EntityKind::District,
            entity_id: code.into(),
            entity_name: yujing_score::entity_name(Level::District, code).into(),
            district_code: code.into(),
            sector: scope,
            points,
        }
    }
}

impl Sources<'_> {
    /// Derives an institution's alert history again, from its last quiet period before
    /// the first point that changed: the state there is the initial one, and the alerts
    /// opened up to it are closed and cannot change.
    fn derive<'i>(&self, inst: &'i Arc<str>) -> Option<Derived<'i>> {
        let latest = self.ledger.institution(inst)?.latest()?;
        let memo = self.memos.get(&**inst).filter(|m| {
            *m.name == *latest.institution_name
                && *m.district == *yujing_model::district::code_text(latest.district_code)
        });
        // Every point after the last one derived is new, and no quiet period is after it.
        let resume = memo.and_then(|m| {
            let first_change = self.from.get(&**inst).copied().unwrap_or_else(|| m.last.add_months(1));
            m.quiet.iter().rev().find(|q| **q < first_change).copied()
        });
        let series = self.institution_series(inst, resume)?;
        let mut quiet: Vec<Period> = Vec::new();
        if let (Some(r), Some(m)) = (resume, memo) {
            quiet.extend(m.quiet.iter().filter(|q| **q <= r));
        }
        // The series' last period (a quiet period is a point's: with nothing after the
        // resumption, it is the last).
        let last = series.points.last().map(|p| p.period).or(resume);
        let derived = derive_quiet(self.rules, &series);
        quiet.extend(derived.quiet);
        let memo = last.map(|last| Memo { quiet, last, name: series.entity_name, district: series.district_code });
        Some((inst, series.sector, resume, derived.alerts, memo))
    }

    /// The series rules see for an institution: every expected period after `after` (all
    /// of them with `None`), with its scores.
    fn institution_series(&self, inst: &str, after: Option<Period>) -> Option<EntitySeries> {
        let rec = self.ledger.institution(inst)?;
        let latest = rec.latest()?;
        let scores = self.inst_scores.get(inst);
        let mut missing_run = 0.0;
        let mut points = Vec::new();
        for (period, status) in self.ledger.expected(inst) {
            let (gap, at) = match status {
                Expected::OnTime { at } => (0.0, at),
                Expected::Late { at, .. } => (1.0, at),
                Expected::Missing { deadline } => (2.0 + missing_run, deadline),
            };
            missing_run = if matches!(status, Expected::Missing { .. }) { missing_run + 1.0 } else { 0.0 };
            if after.is_some_and(|a| period <= a) {
                continue;
            }
            let score = scores.and_then(|m| m.get(&period));
            let mut values: Vec<(&'static str, f64)> = Vec::with_capacity(4 + score.map_or(0, |s| s.indicators.len()));
            values.push((rule_metrics::REPORTING_GAP, gap));
            if let Some(s) = score {
                let z = trend_z_in(self.trend, s);
                for metric in [rule_metrics::SCORE, rule_metrics::BASE_SCORE, rule_metrics::TREND_Z] {
                    if let Some(v) = score_value(s, z, metric) {
                        values.push((metric, v));
                    }
                }
                // Each indicator's own value, as `score_value` would find it by name.
                for i in &s.indicators {
                    if let Some(v) = i.value.get().filter(|v| v.is_finite()) {
                        values.push((i.indicator.as_str(), v));
                    }
                }
            }
            points.push(SeriesPoint { period, at, values: values.into_iter().collect() });
        }
        Some(EntitySeries {
            kind: EntityKind::Institution,
            entity_id: Arc::clone(&rec.institution_id),
            entity_name: Arc::clone(&latest.institution_name),
            district_code: yujing_model::district::code_text(latest.district_code),
            sector: SectorScope::One(rec.sector),
            points,
        })
    }
}
