//! Scoring in a settle: which sector-periods and institutions to score, against which
//! baseline, and what a new score sets in motion.
//!
//! Only the institutions whose reports changed go through polars. A late report or a
//! correction for a due period moves that period's baseline (its own cross-section), and with
//! it the trend of every other institution there and the reference of the periods after it;
//! those scores are brought up to date from what they hold ([`yujing_score::rebaseline`]),
//! not scored again. The result is the same as scoring every sector-period in full.

use super::{Engine, EngineError, Ids, Pending, note_change, score_value};
use foldhash::HashSetExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use yujing_alert::{metrics as rule_metrics, same_outcomes};
use yujing_model::{EntityKind, InstitutionScore, Period, Report, Sector, SectorScope};
use yujing_score::{Baseline, Scored, TrendBaseline};

/// Periods of one sector to score, each against its baseline and for the given
/// institutions (`None`: all of them).
type PeriodWork = BTreeMap<Period, (Baseline, Option<Ids>)>;

/// What scoring a chunk of periods takes, taken before the chunk before it is kept (see
/// [`Engine::score_periods`]).
struct Prepared<'p> {
    /// Each period, its baseline and the institutions to score there (`None`: all).
    work: Vec<(Period, Baseline, Option<&'p Ids>)>,
    /// The rows polars scores, in (period, institution) order.
    reports: Vec<Arc<Report>>,
    /// The baseline polars scores each period against.
    polars: BTreeMap<Period, Baseline>,
}

impl Prepared<'_> {
    /// The rows, as polars takes them.
    fn rows(&self) -> Vec<&Report> {
        self.reports.iter().map(|r| &**r).collect()
    }
}

/// Periods of a sector scored in one call in a settle (see [`Engine::score_periods`]).
const SCORE_CHUNK_PERIODS: usize = 3;

impl Engine {
    /// Re-scores the changed sector-periods and the period after each; returns the
    /// sector-periods scored and adds every institution whose score changed to `entities`.
    ///
    /// A due period is scored against its own cross-section. A period not yet due is scored
    /// against the sector's reference: the baseline of its latest due period (its own
    /// cross-section only while the sector has none). Either way a batch scores just the
    /// institutions it brought; when their changes move a baseline, the other scores of the
    /// sector-period are taken again against it from what they hold.
    pub(super) fn rescore(
        &mut self,
        mut changed: Pending,
        entities: &mut Ids,
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
                mine.iter().filter(|(p, _)| is_due(**p)).map(|(p, i)| (*p, (Baseline::Own, i.clone()))).collect();
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
                // Every period not yet due moves with it: the institutions that changed are
                // scored, the rest taken again against the new reference.
                for (s, p) in self.ledger.sector_periods() {
                    if s == sector && !is_due(p) {
                        mine.entry(p).or_insert_with(|| Some(Ids::new()));
                    }
                }
                match reference {
                    Some(r) => self.references.insert(sector, r),
                    None => self.references.remove(&sector),
                };
            }
            let baseline = reference.map_or(Baseline::Own, |(_, b)| Baseline::Fixed(b));
            let provisional: PeriodWork =
                mine.iter().filter(|(p, _)| !is_due(**p)).map(|(p, i)| (*p, (baseline, i.clone()))).collect();
            self.score_periods(sector, &provisional, entities)?;
            touched.extend(mine.keys().map(|p| (sector, *p)));
        }
        Ok(touched)
    }

    /// Scores periods of one sector, each against its baseline and for the given
    /// institutions (`None`: all); keeps the baselines taken and adds every institution
    /// whose score changed to `entities`.
    fn score_periods(&mut self, sector: Sector, periods: &PeriodWork, entities: &mut Ids) -> Result<(), EngineError> {
        // A few periods at a time: a period's scores depend only on its rows, the rows of
        // the period before and its baseline, so the result is the same, and the frames and
        // scores held at once are a few periods' (a backlog's settle scores every period).
        let work: Vec<(&Period, &(Baseline, Option<Ids>))> = periods.iter().collect();
        let mut chunks = work.chunks(SCORE_CHUNK_PERIODS);
        let Some(first) = chunks.next() else { return Ok(()) };
        let mut current = self.prepare(sector, first);
        let mut scored = yujing_score::score_sector_against(&self.score, sector, &current.polars, &current.rows())?;
        // Polars scores the next chunk on the pool while the engine keeps this one's scores.
        // The next chunk's input is taken first: what it reads of the engine's state is its
        // own periods', which keeping this chunk does not touch.
        // (A single chunk has nothing to overlap, and no need of the configuration's copy.)
        if work.len() > SCORE_CHUNK_PERIODS {
            let config = self.score.clone();
            for chunk in chunks {
                let next = self.prepare(sector, chunk);
                let (next_scored, ()) = rayon::join(
                    || yujing_score::score_sector_against(&config, sector, &next.polars, &next.rows()),
                    || self.keep_chunk(sector, current, scored, entities),
                );
                (current, scored) = (next, next_scored?);
            }
        }
        self.keep_chunk(sector, current, scored, entities);
        Ok(())
    }

    /// Whether every report of a sector-period but those of `except` has a score held: what
    /// scoring just those institutions needs (always so, unless a settle failed).
    ///
    /// Counted, not walked: the reports without a score must all be among `except`.
    fn scored_but(&self, sector: Sector, period: Period, except: &Ids) -> bool {
        let held = |id: &str| self.inst_scores.get(id).is_some_and(|m| m.get(&period).is_some());
        let reports = self.ledger.sector_period_len(sector, period);
        let scored = self.scores_held.get(&(sector, period)).copied().unwrap_or(0);
        let unscored_excepted = except
            .iter()
            .filter(|id| self.ledger.report(id, period).is_some_and(|r| r.sector == sector) && !held(id))
            .count();
        let counted = reports.checked_sub(scored) == Some(unscored_excepted);
        debug_assert_eq!(
            counted,
            self.ledger
                .sector_period(sector, period)
                .all(|r| except.contains(&r.institution_id) || held(&r.institution_id)),
            "the scores held for {sector} {period} are miscounted"
        );
        counted
    }

    /// What scoring some of the periods of [`Engine::score_periods`] takes.
    fn prepare<'p>(&self, sector: Sector, periods: &[(&Period, &'p (Baseline, Option<Ids>))]) -> Prepared<'p> {
        let step = sector.cadence_months();
        // Each period in part (its changed institutions) or in full. In part, the other
        // scores are taken again when the baseline moves: they must all be held.
        let work: Vec<(Period, Baseline, Option<&Ids>)> = periods
            .iter()
            .map(|&(p, (b, insts))| {
                let kept = match b {
                    Baseline::Fixed(b) => self.trend.get(&(sector, *p)).is_some_and(|t| *t == *b),
                    Baseline::Own => false,
                };
                (*p, *b, insts.as_ref().filter(|i| kept || self.scored_but(sector, *p, i)))
            })
            .collect();
        // The rows each period needs, its own and those of the period before (for the
        // trend), taken once per period and in (period, institution) order.
        let mut needed: BTreeMap<Period, Option<BTreeSet<&Arc<str>>>> = BTreeMap::new();
        for &(p, _, insts) in &work {
            for q in [p, p.add_months(-step)] {
                match (needed.entry(q).or_insert_with(|| Some(BTreeSet::new())), insts) {
                    (Some(mine), Some(insts)) => mine.extend(insts),
                    (slot, _) => *slot = None,
                }
            }
        }
        let mut reports: Vec<Arc<Report>> = Vec::new();
        for (q, insts) in needed {
            match insts {
                None => reports.extend(self.ledger.sector_period(sector, q).cloned()),
                Some(insts) => reports.extend(insts.iter().filter_map(|i| self.ledger.report(i, q)).cloned()),
            }
        }
        // A period in part against its own cross-section is scored against no baseline
        // first: its baseline needs every change, the held ones too (below).
        let polars: BTreeMap<Period, Baseline> = work
            .iter()
            .map(|&(p, b, insts)| match (b, insts) {
                (Baseline::Own, Some(_)) => (p, Baseline::Fixed(None)),
                _ => (p, b),
            })
            .collect();
        Prepared { work, reports, polars }
    }

    /// Keeps the scores polars gave a prepared chunk: the baselines they set, the scores
    /// of the periods in part taken again against a baseline that moved.
    fn keep_chunk(&mut self, sector: Sector, prepared: Prepared<'_>, scored: Scored, entities: &mut Ids) {
        let Prepared { work, .. } = prepared;
        self.stats.scored += scored.scores.len() as u64;
        let mut fresh: BTreeMap<Period, Vec<InstitutionScore>> = BTreeMap::new();
        for s in scored.scores {
            fresh.entry(s.period).or_default().push(s);
        }
        // Each period's baseline now, and the periods whose baseline moved with the one
        // before: every score there with a change has a new z-score, though the score
        // itself (held without it) may not change.
        let mut moved: BTreeMap<Period, Option<TrendBaseline>> = BTreeMap::new();
        for &(p, b, insts) in &work {
            let scores = fresh.entry(p).or_default();
            // A period in part may have had all its rows in the frame, as the period before
            // one scored in full; only its changed institutions had theirs before them.
            if let Some(insts) = insts {
                scores.retain(|s| insts.contains(&s.institution_id));
            }
            let now = match (b, insts) {
                (Baseline::Own, None) => scored.baselines.get(&p).copied().flatten(),
                (Baseline::Own, Some(_)) => {
                    let own = self.own_baseline(sector, p, scores);
                    for s in scores.iter_mut() {
                        if let Some(r) = yujing_score::rebaseline(&self.score, s, own.as_ref()) {
                            *s = r;
                        }
                    }
                    own
                }
                (Baseline::Fixed(b), _) => b,
            };
            if b == Baseline::Own {
                self.baselines.insert((sector, p), now);
            }
            let before = self.trend.insert((sector, p), now).flatten();
            if before != now {
                moved.insert(p, before);
            }
        }
        for &(p, _, insts) in &work {
            let scores = fresh.remove(&p).unwrap_or_default();
            // The other institutions of a period in part, when its baseline moved.
            let mut others: Vec<(Arc<str>, Option<InstitutionScore>)> = Vec::new();
            if let (Some(_), true) = (insts, moved.contains_key(&p)) {
                let now = self.trend.get(&(sector, p)).copied().flatten();
                let mut new = scores.iter().map(|s| &*s.institution_id).peekable();
                for r in self.ledger.sector_period(sector, p) {
                    if new.next_if(|id| *id == &*r.institution_id).is_some() {
                        continue;
                    }
                    let Some(held) = self.inst_scores.get(&*r.institution_id).and_then(|m| m.get(&p)) else {
                        continue;
                    };
                    let again = yujing_score::rebaseline(&self.score, held, now.as_ref());
                    if again.is_some() || held.trend_delta.get().is_some() {
                        others.push((r.institution_id.clone(), again));
                    }
                }
                self.stats.rebaselined += others.len() as u64;
            }
            for s in scores {
                self.keep(sector, Arc::clone(&s.institution_id), p, Some(s), &moved, entities);
            }
            for (id, again) in others {
                self.keep(sector, id, p, again, &moved, entities);
            }
        }
    }

    /// The baseline of a sector-period against its own cross-section, from the changes of
    /// `fresh` (its institutions just scored, by id) and those the other scores there hold,
    /// taken in institution order as scoring the period in full takes them (the held ones
    /// from the sector-period's column where it has them: [`super::deltas`]).
    fn own_baseline(&mut self, sector: Sector, period: Period, fresh: &[InstitutionScore]) -> Option<TrendBaseline> {
        let rows = self.ledger.sector_period(sector, period).map(|r| &r.institution_id);
        let scores = &self.inst_scores;
        let held = |id: &str| scores.get(id).and_then(|m| m.get(&period)).and_then(|s| s.trend_delta.get());
        let deltas = self.own_deltas.take(sector, period, rows, fresh, held);
        #[cfg(debug_assertions)]
        {
            // The column gives what walking every held score gives.
            let mut fresh_it = fresh.iter().peekable();
            let walked: Vec<Option<u64>> = self
                .ledger
                .sector_period(sector, period)
                .map(|r| match fresh_it.next_if(|s| s.institution_id == r.institution_id) {
                    Some(s) => s.trend_delta.get(),
                    None => held(&r.institution_id),
                })
                .map(|d| d.map(f64::to_bits))
                .collect();
            let taken: Vec<Option<u64>> = deltas.iter().map(|d| d.map(f64::to_bits)).collect();
            assert_eq!(taken, walked, "the changes column of {sector} {period} is stale");
        }
        yujing_score::trend::baseline_of(&self.score.trend, deltas)
    }

    /// Takes an institution's new score for a sector-period (`None`: the held one, whose
    /// baseline moved): holds it if it changed, and notes the institution for re-derivation
    /// unless its rule outcomes and alert evidence stay as they were.
    fn keep(
        &mut self,
        sector: Sector,
        id: Arc<str>,
        period: Period,
        new: Option<InstitutionScore>,
        moved: &BTreeMap<Period, Option<TrendBaseline>>,
        entities: &mut Ids,
    ) {
        let slot = self.inst_scores.entry(id.clone()).or_default();
        let old = slot.get(&period);
        let Some(s) = new.as_ref().or(old.map(|o| &**o)) else { return };
        let same = new.as_ref().is_none_or(|n| old.is_some_and(|o| **o == *n));
        let z_moved = s.trend_delta.get().is_some() && moved.contains_key(&period);
        if same && !z_moved {
            return;
        }
        // Re-scoring a whole sector-period because one report moved its baseline
        // mostly shifts trend z-scores a little: a change that moves no rule's outcome
        // and no alert's evidence leaves the alert history as it is.
        let now = self.trend.get(&(sector, period)).copied().flatten();
        let before = moved.get(&period).copied().unwrap_or(now);
        let (kind, scope) = (EntityKind::Institution, SectorScope::One(sector));
        let z_new = s.trend_z(now.as_ref());
        let history_unchanged = old.is_some_and(|o| {
            let z_old = o.trend_z(before.as_ref());
            if same || only_trend_moved(o, s) {
                // Only the composite and the z-score can differ: only the rules watching
                // them can change, and the alerts that show them are restated in place, as
                // the series point holds them (finite or none).
                let shown = |m| score_value(s, z_new, m);
                same_outcomes(&self.rules, kind, scope, |m| trend_value(o, z_old, m), |m| trend_value(s, z_new, m))
                    && self.book.restate_trend(
                        kind,
                        &id,
                        scope,
                        period,
                        (shown(rule_metrics::SCORE), shown(rule_metrics::TREND_Z)),
                    )
            } else {
                same_outcomes(&self.rules, kind, scope, |m| score_value(o, z_old, m), |m| score_value(s, z_new, m))
                    && !self.book.has_evidence_at(kind, &id, scope, period)
            }
        });
        if !history_unchanged {
            note_change(&mut self.pending_from, &self.memos, &id, period);
            entities.insert(id.clone());
        }
        if let (false, Some(new)) = (same, new) {
            let delta = new.trend_delta;
            let before = slot.insert(period, Arc::new(new));
            if before.as_ref().is_none_or(|b| b.trend_delta.get().map(f64::to_bits) != delta.get().map(f64::to_bits)) {
                self.own_deltas.set(period, &id, delta.get());
            }
            if before.is_none() {
                *self.scores_held.entry((sector, period)).or_default() += 1;
            }
            if self.aggregation.contains_key(&period) {
                // What the period's running aggregation counted, to take out again.
                let noted = self.scores_before.entry(period).or_default();
                noted.entry(id.clone()).or_insert(before);
                let n = noted.len();
                self.drop_outgrown_aggregation(period, n);
            }
        }
    }
}

/// Adds the institutions of one change to the pending changes (`None`: all of them).
fn merge_change(changed: &mut Pending, key: (Sector, Period), insts: Option<Ids>) {
    match (changed.entry(key).or_insert_with(|| Some(Ids::new())), insts) {
        (Some(mine), Some(insts)) => mine.extend(insts),
        (slot, _) => *slot = None,
    }
}

/// Whether two scores of one institution-period differ at most in what the trend baseline
/// sets: the trend points, the composite and the grade (and the z-score, held apart).
fn only_trend_moved(a: &InstitutionScore, b: &InstitutionScore) -> bool {
    a.base_score == b.base_score && a.trend_delta == b.trend_delta && a.indicators == b.indicators
}

/// The value of a rule metric that the trend baseline sets (the composite and the z-score),
/// as [`score_value`] gives it; none for any other metric.
fn trend_value(s: &InstitutionScore, trend_z: Option<f64>, metric: &str) -> Option<f64> {
    match metric {
        rule_metrics::SCORE | rule_metrics::TREND_Z => score_value(s, trend_z, metric),
        _ => None,
    }
}
