//! Scoring in a settle: which sector-periods and institutions to score, against which
//! baseline, and what a new score sets in motion.

use super::{Engine, EngineError, Ids, Pending, note_change, score_value};
use foldhash::HashSetExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use yujing_alert::same_outcomes;
use yujing_model::{EntityKind, Period, Report, Sector, SectorScope};
use yujing_score::{Baseline, TrendBaseline};

/// Periods of one sector to score, each against its baseline and for the given
/// institutions (`None`: all of them).
type PeriodWork = BTreeMap<Period, (Baseline, Option<Ids>)>;

/// Periods of a sector scored in one call in a settle (see [`Engine::score_periods`]).
const SCORE_CHUNK_PERIODS: usize = 3;

impl Engine {
    /// Re-scores the changed sector-periods and the period after each; returns the
    /// sector-periods scored and adds every institution whose score changed to `entities`.
    ///
    /// A due period is scored against its own cross-section, in full. A period not yet due
    /// is scored against the sector's reference: the baseline of its latest due period (its
    /// own cross-section only while the sector has none). Its scores then depend on each
    /// institution's own reports only, so a batch re-scores just the institutions it
    /// brought, not the whole sector-period; a reference that moved re-scores them all.
    pub(super) fn rescore(
        &mut self,
        mut changed: Pending,
        entities: &mut BTreeSet<Arc<str>>,
    ) -> Result<BTreeSet<(Sector, Period)>, EngineError> {
        // A change also moves the next period's trend: the same institutions' changes there.
        for ((s, p), insts) in changed.clone() {
            let next = p.add_months(s.cadence_months());
            if self.ledger.sector_period(s, next).next().is_some() {
                merge_change(&mut changed, (s, next), insts);
            }
        }
        let due_through = self.due_through;
        let is_due = |p: Period| due_through.is_some_and(|d| p <= d);
        let mut touched = BTreeSet::new();
        for sector in Sector::ALL {
            let mut mine: BTreeMap<Period, Option<Ids>> = changed
                .range((sector, Period::from_index(i32::MIN))..=(sector, Period::from_index(i32::MAX)))
                .map(|((_, p), i)| (*p, i.clone()))
                .collect();
            let due: PeriodWork =
                mine.iter().filter(|(p, _)| is_due(**p)).map(|(p, _)| (*p, (Baseline::Own, None))).collect();
            self.score_periods(sector, &due, entities)?;
            // The reference for the periods not yet due.
            let reference = self
                .ledger
                .sector_periods()
                .filter(|(s, p)| *s == sector && is_due(*p))
                .map(|(_, p)| p)
                .max()
                .and_then(|q| Some((q, *self.baselines.get(&(sector, q))?)));
            if self.references.get(&sector) != reference.as_ref() {
                for (s, p) in self.ledger.sector_periods() {
                    if s == sector && !is_due(p) {
                        mine.insert(p, None);
                    }
                }
                match reference {
                    Some(r) => self.references.insert(sector, r),
                    None => self.references.remove(&sector),
                };
            }
            let baseline = reference.map_or(Baseline::Own, |(_, b)| Baseline::Fixed(b));
            let provisional: PeriodWork = mine
                .iter()
                .filter(|(p, _)| !is_due(**p))
                .map(|(p, insts)| (*p, (baseline, if baseline == Baseline::Own { None } else { insts.clone() })))
                .collect();
            self.score_periods(sector, &provisional, entities)?;
            touched.extend(mine.keys().map(|p| (sector, *p)));
        }
        Ok(touched)
    }

    /// Scores periods of one sector, each against its baseline and for the given
    /// institutions (`None`: all); keeps the baselines taken and adds every institution
    /// whose score changed to `entities`.
    fn score_periods(
        &mut self,
        sector: Sector,
        periods: &PeriodWork,
        entities: &mut BTreeSet<Arc<str>>,
    ) -> Result<(), EngineError> {
        // A few periods at a time: a period's scores depend only on its rows, the rows of
        // the period before and its baseline, so the result is the same, and the frames and
        // scores held at once are a few periods' (a backlog's settle scores every period).
        let work: Vec<(&Period, &(Baseline, Option<Ids>))> = periods.iter().collect();
        for chunk in work.chunks(SCORE_CHUNK_PERIODS) {
            self.score_chunk(sector, chunk, entities)?;
        }
        Ok(())
    }

    /// [`Engine::score_periods`] for some of the periods.
    fn score_chunk(
        &mut self,
        sector: Sector,
        periods: &[(&Period, &(Baseline, Option<Ids>))],
        entities: &mut BTreeSet<Arc<str>>,
    ) -> Result<(), EngineError> {
        let step = sector.cadence_months();
        // The rows each period needs, its own and those of the period before (for the
        // trend), taken once per period and in (period, institution) order.
        let mut needed: BTreeMap<Period, Option<BTreeSet<&Arc<str>>>> = BTreeMap::new();
        for &(p, (_, insts)) in periods {
            for q in [*p, p.add_months(-step)] {
                match (needed.entry(q).or_insert_with(|| Some(BTreeSet::new())), insts) {
                    (Some(mine), Some(insts)) => mine.extend(insts),
                    (slot, _) => *slot = None,
                }
            }
        }
        let mut reports: Vec<&Report> = Vec::new();
        for (q, insts) in needed {
            match insts {
                None => reports.extend(self.ledger.sector_period(sector, q).map(|r| r.as_ref())),
                Some(insts) => {
                    reports.extend(insts.iter().filter_map(|i| self.ledger.report(i, q)).map(|r| r.as_ref()))
                }
            }
        }
        let baselines: BTreeMap<Period, Baseline> = periods.iter().map(|&(p, (b, _))| (*p, *b)).collect();
        let scored = yujing_score::score_sector_against(&self.score, sector, &baselines, &reports)?;
        self.stats.scored += scored.scores.len() as u64;
        for (p, b) in scored.baselines {
            self.baselines.insert((sector, p), b);
        }
        // The periods whose baseline moved, with the one before: every score there with a
        // change has a new z-score, though the score itself (held without it) may not change.
        let mut moved: BTreeMap<Period, Option<TrendBaseline>> = BTreeMap::new();
        for (p, b) in scored.trend {
            let before = self.trend.insert((sector, p), b).flatten();
            if before != b {
                moved.insert(p, before);
            }
        }
        for s in scored.scores {
            // The ledger's shared id: its reports carry it, and so the scores made from them.
            let id = Arc::clone(&s.institution_id);
            let slot = self.inst_scores.entry(id.clone()).or_default();
            let old = slot.get(&s.period);
            let same = old.is_some_and(|a| **a == s);
            let z_moved = s.trend_delta.get().is_some() && moved.contains_key(&s.period);
            if same && !z_moved {
                continue;
            }
            // Re-scoring a whole sector-period because one report moved its baseline
            // mostly shifts trend z-scores a little: a change that moves no rule's outcome
            // and no alert's evidence leaves the alert history as it is.
            let now = self.trend.get(&(sector, s.period)).copied().flatten();
            let before = moved.get(&s.period).copied().unwrap_or(now);
            let (kind, scope) = (EntityKind::Institution, SectorScope::One(sector));
            let history_unchanged = old.is_some_and(|o| {
                let (z_old, z_new) = (o.trend_z(before.as_ref()), s.trend_z(now.as_ref()));
                same_outcomes(&self.rules, kind, scope, |m| score_value(o, z_old, m), |m| score_value(&s, z_new, m))
            }) && !self.book.has_evidence_at(kind, &id, scope, s.period);
            if !history_unchanged {
                note_change(&mut self.pending_from, &id, s.period);
                entities.insert(id);
            }
            if !same {
                slot.insert(s.period, Arc::new(s));
            }
        }
        Ok(())
    }
}

/// Adds the institutions of one change to the pending changes (`None`: all of them).
fn merge_change(changed: &mut Pending, key: (Sector, Period), insts: Option<Ids>) {
    match (changed.entry(key).or_insert_with(|| Some(Ids::new())), insts) {
        (Some(mine), Some(insts)) => mine.extend(insts),
        (slot, _) => *slot = None,
    }
}
