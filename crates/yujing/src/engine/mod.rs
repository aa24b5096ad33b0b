//! The pipeline core: decode → ledger → scoring → aggregates → rules → transitions, one
//! micro-batch at a time.
//!
//! Every batch scores only the institutions it brought, in the sector-periods it touched and
//! the period after each (whose trend depends on it); when their changes move a
//! sector-period's trend baseline, the other scores there are taken again from what they
//! hold (see the `score` module). It re-aggregates only the touched periods: a few changed
//! rows are taken out of and put into the period's running aggregation, more are
//! aggregated again in full. It re-derives the alert history of only the entities whose
//! inputs changed. The state after any
//! sequence of batches is a function of the set of reports applied, so batch boundaries,
//! duplicates and arrival order within a period change nothing (DESIGN §7).

mod deltas;
mod derive;
mod score;

use crate::config::Config;
use crate::peers::DistrictSums;
use chrono::{DateTime, Datelike, FixedOffset};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;
use yujing_alert::{Action, AlertBook, RulePack, metrics as rule_metrics};
use yujing_ingest::{Decoder, Input};
use yujing_model::period::PeriodMap;
use yujing_model::{
    AggregateScore, Alert, DeadLetter, DecodeLimits, InstitutionScore, Level, Period, Reason, Report, Sector,
    SectorScope, Transition, period::china_tz,
};
use yujing_score::{Aggregation, ScoreConfig, TrendBaseline};
use yujing_store::{Ledger, LedgerSettings, Outcome, SlotState};

/// Key of an aggregate: level, entity, sector scope, period (ordered for series building).
pub type AggKey = (Level, String, SectorScope, Period);

/// A district score's identity: the district's code, the sector scope and the period.
pub type DistrictScoreKey = (String, SectorScope, Period);

/// A set of institutions, unordered: a batch notes one per report, and scoring sorts them.
type Ids = HashSet<Arc<str>>;

/// Changed sector-periods, each with the institutions whose report changed (`None`: all).
type Pending = BTreeMap<(Sector, Period), Option<Ids>>;

/// What some institutions held in a period before the changes since the last settle: the
/// first report or score each replaced (`None`: it had none).
type Before<T> = HashMap<Period, HashMap<Arc<str>, Option<Arc<T>>>>;

/// A period's aggregation is kept up to date row by row when the rows that changed are at
/// most this share of its rows (1 in `DELTA_SHARE`); above it, it is taken again in full.
const DELTA_SHARE: usize = 8;

/// A sector-period is noted for scoring in full once more than 1 in `IN_FULL_SHARE` of its
/// reports changed since the last settle.
const IN_FULL_SHARE: usize = 2;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Scoring failed.
    #[error(transparent)]
    Score(#[from] yujing_score::Error),
}

/// The ledger's settings from the configuration.
pub fn ledger_settings(config: &Config) -> LedgerSettings {
    LedgerSettings {
        report_deadline: chrono::Duration::from_std(config.ledger.report_deadline)
            .unwrap_or(chrono::Duration::days(15)),
        allowed_lateness: chrono::Duration::from_std(config.ledger.allowed_lateness)
            .unwrap_or(chrono::Duration::zero()),
    }
}

/// Counts of what the engine has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Inputs received.
    pub received: u64,
    /// Reports applied to the ledger (new, or replacing a lower revision).
    pub accepted: u64,
    /// Exact repeats of a report_id (counted no-ops).
    pub duplicates: u64,
    /// Inputs dead-lettered, by reason.
    pub rejected: BTreeMap<Reason, u64>,
    /// Micro-batches processed.
    pub batches: u64,
    /// Reports applied to the ledger, by sector (for metrics).
    pub accepted_by_sector: BTreeMap<Sector, u64>,
    /// Of the dead-lettered inputs, those the ledger refused (stale revisions).
    pub ledger_rejected: u64,
    /// Institution-periods scored through polars, each re-score counted again.
    pub scored: u64,
    /// Held scores taken again against a sector-period's moved baseline, without scoring.
    pub rebaselined: u64,
    /// Periods re-aggregated by taking their changed rows out and in again.
    pub aggregated_in_part: u64,
    /// Periods re-aggregated in full.
    pub aggregated_in_full: u64,
}

impl Stats {
    /// All dead-lettered inputs.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct BatchOutput {
    /// Inputs that could not be accepted.
    pub dead_letters: Vec<DeadLetter>,
    /// Alert transitions to publish.
    pub transitions: Vec<Transition>,
}

/// Institutions derived at once in a settle, on both cores, before the book takes their
/// alerts: enough to keep the cores busy, few enough that the derived alerts held at once
/// stay small.
const DERIVE_CHUNK: usize = 2048;

/// The pipeline state and its batch step.
pub struct Engine {
    decoder: Decoder,
    ledger: Ledger,
    score: ScoreConfig,
    rules: RulePack,
    book: AlertBook,
    inst_scores: HashMap<Arc<str>, PeriodMap<Arc<InstitutionScore>>>,
    /// How many scores `inst_scores` holds for each sector-period.
    scores_held: HashMap<(Sector, Period), usize>,
    aggregates: BTreeMap<AggKey, AggregateScore>,
    /// Each period's running aggregation, what its aggregates are made of.
    aggregation: HashMap<Period, Aggregation>,
    /// The reports replaced since the last settle in periods with a running aggregation.
    reports_before: Before<Report>,
    /// The scores replaced in this settle in periods with a running aggregation.
    scores_before: Before<InstitutionScore>,
    agg_at: HashMap<(u32, SectorScope, Period), DateTime<FixedOffset>>,
    /// The integer sums behind each district aggregate's ratios, taken as the aggregates
    /// are (published with the district scores: [`crate::outbox::score_records`]).
    district_sums: HashMap<(u32, SectorScope, Period), DistrictSums>,
    due_through: Option<Period>,
    stats: Stats,
    /// The district scores (district, scope, period) whose aggregate or sums changed since
    /// the last [`Engine::take_changed_district_scores`].
    changed_district_scores: BTreeSet<DistrictScoreKey>,
    /// Sector-periods ingested since the last settle, each with the institutions whose
    /// report changed (`None`: all of them).
    pending_changed: Pending,
    /// Institutions ingested since the last settle.
    pending_entities: Ids,
    /// The trend baseline of each sector-period scored against its own cross-section.
    baselines: HashMap<(Sector, Period), Option<TrendBaseline>>,
    /// Each sector's reference for the periods not yet due: its latest due period and that
    /// period's baseline.
    references: HashMap<Sector, (Period, Option<TrendBaseline>)>,
    /// The baseline each sector-period's scores were last scored against, own or a
    /// reference: what their trend z-scores are against ([`InstitutionScore::trend_z`]).
    trend: HashMap<(Sector, Period), Option<TrendBaseline>>,
    /// The changes the latest own baselines taken in part were taken from.
    own_deltas: deltas::OwnDeltas,
    /// The earliest period whose series point may have changed since the last settle, per
    /// institution.
    pending_from: HashMap<Arc<str>, Period>,
    /// What each institution's last derivation leaves to resume from.
    memos: HashMap<Arc<str>, Memo>,
    /// The latest `submitted_at` of a decoded report read from each partition of the
    /// source (Kafka): what [`Engine::hold_watermark`] is given while partitions lag.
    submitted_by_partition: BTreeMap<i32, DateTime<FixedOffset>>,
    /// While the ledger notes its changed slots for a store: each report that won its slot
    /// since the last [`Engine::take_dirty_slots`], with the bytes it was received as, by the
    /// address of the ledger's copy (held here, so no other report can take the address).
    originals: HashMap<usize, (Arc<Report>, Vec<u8>)>,
}

/// An aggregation's row of an institution and period: its score and winning report, when it
/// has both.
fn row<'a>(s: Option<&'a Arc<InstitutionScore>>, r: Option<&'a Arc<Report>>) -> Option<yujing_score::Row<'a>> {
    Some((&**s?, &**r?))
}

/// What the last derivation of an institution's alert history leaves to resume from.
struct Memo {
    /// The periods after whose point every rule was quiet, ascending (see
    /// [`yujing_alert::Derived::quiet`]).
    quiet: Vec<Period>,
    /// The series' last period: every point after it is new.
    last: Period,
    /// The name and district the alerts carry: when either changes every alert does.
    name: Arc<str>,
    district: Arc<str>,
}

impl Engine {
    /// An empty engine with a configuration and a rule pack. No durable store keeps it yet:
    /// it notes no changed ledger slots until [`Engine::track_dirty_slots`] (an engine
    /// [`Engine::restore`]d from a store notes them).
    pub fn new(config: &Config, rules: RulePack) -> Engine {
        let mut ledger = Ledger::new(ledger_settings(config));
        ledger.track_dirty(false);
        Engine {
            decoder: Decoder { limits: DecodeLimits { max_report_bytes: config.ingest.max_report_bytes } },
            ledger,
            score: config.score.clone(),
            rules,
            book: AlertBook::new(),
            inst_scores: HashMap::new(),
            scores_held: HashMap::new(),
            aggregates: BTreeMap::new(),
            aggregation: HashMap::new(),
            reports_before: HashMap::new(),
            scores_before: HashMap::new(),
            agg_at: HashMap::new(),
            district_sums: HashMap::new(),
            due_through: None,
            stats: Stats::default(),
            changed_district_scores: BTreeSet::new(),
            pending_changed: BTreeMap::new(),
            pending_entities: Ids::new(),
            baselines: HashMap::new(),
            references: HashMap::new(),
            trend: HashMap::new(),
            own_deltas: deltas::OwnDeltas::new(),
            pending_from: HashMap::new(),
            memos: HashMap::new(),
            submitted_by_partition: BTreeMap::new(),
            originals: HashMap::new(),
        }
    }

    /// An engine rebuilt from durable state: the ledger, the alerts as last published and
    /// people's actions. Everything derived (scores, aggregates, alert histories) is
    /// recomputed from the ledger; the returned transitions are what differs from what was
    /// published (nothing, unless the rules or the config changed), to publish and audit.
    pub fn restore(
        config: &Config,
        rules: RulePack,
        ledger: Ledger,
        published: Vec<Alert>,
        actions: Vec<Action>,
    ) -> Result<(Engine, Vec<Transition>), EngineError> {
        let mut e = Engine::new(config, rules);
        e.ledger = ledger;
        e.ledger.take_dirty();
        e.ledger.track_dirty(true);
        e.book = AlertBook::restore(published, actions);
        // As if the whole ledger had just been ingested: every sector-period and institution.
        for r in e.ledger.institutions() {
            e.pending_changed.extend(r.reports().map(|rep| ((rep.sector, rep.period), None)));
            e.pending_entities.insert(r.institution_id.clone());
        }
        let transitions = e.settle()?;
        Ok((e, transitions))
    }

    /// Processes one micro-batch of inputs: [`Engine::ingest`], then [`Engine::settle`].
    pub fn process(&mut self, inputs: &[Input]) -> Result<BatchOutput, EngineError> {
        let dead_letters = self.ingest(inputs);
        let transitions = self.settle()?;
        Ok(BatchOutput { dead_letters, transitions })
    }

    /// Decodes inputs and applies them to the ledger; returns the inputs that could not be
    /// accepted. Nothing derived changes until [`Engine::settle`]: a bulk load (a replay
    /// with nothing to commit on the way) ingests everything and settles once, which gives
    /// the same state as settling after every batch (DESIGN §7) for a fraction of the work.
    pub fn ingest(&mut self, inputs: &[Input]) -> Vec<DeadLetter> {
        // Decoding is pure and takes most of the time here: both cores share it, then the
        // ledger applies the reports in input order.
        let decoded = decode_all(&self.decoder, inputs);
        self.ingest_decoded(inputs, decoded)
    }

    /// The decoder [`Engine::ingest`] uses, for decoding ahead on another thread
    /// ([`decode_all`], then [`Engine::ingest_decoded`]).
    pub fn decoder(&self) -> Decoder {
        self.decoder
    }

    /// [`Engine::ingest`] of inputs already decoded, `decoded[i]` from `inputs[i]`.
    pub fn ingest_decoded(&mut self, inputs: &[Input], decoded: Vec<Decoded>) -> Vec<DeadLetter> {
        let mut dead_letters = Vec::new();
        self.stats.batches += 1;
        debug_assert_eq!(inputs.len(), decoded.len());
        for (input, decoded) in inputs.iter().zip(decoded) {
            self.stats.received += 1;
            let report = match decoded {
                Ok(r) => r,
                Err(dl) => {
                    *self.stats.rejected.entry(dl.reason).or_default() += 1;
                    dead_letters.push(*dl);
                    continue;
                }
            };
            if let Some(p) = input.position.partition {
                let latest = self.submitted_by_partition.entry(p).or_insert(report.submitted_at);
                *latest = (*latest).max(report.submitted_at);
            }
            let (sector, period) = (report.sector, report.period);
            // What a running aggregation counted for the institution, to take out again.
            let before = self
                .aggregation
                .contains_key(&period)
                .then(|| self.ledger.report(&report.institution_id, period).cloned());
            match self.ledger.apply_keyed(report) {
                (Outcome::New | Outcome::Replaced { .. }, inst) => {
                    if self.ledger.tracks_dirty()
                        && let Some(winner) = self.ledger.report(&inst, period)
                    {
                        let original = (Arc::clone(winner), input.bytes.clone());
                        self.originals.insert(Arc::as_ptr(winner) as usize, original);
                    }
                    if let Some(before) = before {
                        let noted = self.reports_before.entry(period).or_default();
                        noted.entry(inst.clone()).or_insert(before);
                        let n = noted.len();
                        self.drop_outgrown_aggregation(period, n);
                    }
                    self.stats.accepted += 1;
                    *self.stats.accepted_by_sector.entry(sector).or_default() += 1;
                    let pending = self.pending_changed.entry((sector, period)).or_insert_with(|| Some(Ids::new()));
                    if let Some(insts) = pending {
                        insts.insert(inst.clone());
                        // Most of the sector-period changed (a new period, a backlog): it is
                        // scored in full, which gives the same scores, without a set of
                        // most of its institutions.
                        if insts.len() * IN_FULL_SHARE > self.ledger.sector_period_len(sector, period) {
                            *pending = None;
                        }
                    }
                    // (The institution's series changed too: the ledger lists it.)
                    note_change(&mut self.pending_from, &self.memos, &inst, period);
                }
                (Outcome::Duplicate, _) => self.stats.duplicates += 1,
                (Outcome::Rejected(rej), _) => {
                    *self.stats.rejected.entry(rej.reason).or_default() += 1;
                    self.stats.ledger_rejected += 1;
                    dead_letters.push(DeadLetter::new(rej, input.position.clone(), &input.bytes));
                }
            }
        }
        dead_letters
    }

    /// The latest `submitted_at` of a decoded report read from each partition of the source.
    pub fn submitted_by_partition(&self) -> &BTreeMap<i32, DateTime<FixedOffset>> {
        &self.submitted_by_partition
    }

    /// Holds the watermark back to trail `at` at the latest, or releases it (`None`): see
    /// [`Ledger::hold_watermark`]. The next settle derives with it. Returns whether that
    /// moved the due period (the latest period whose report deadline has passed): only then
    /// does the next settle have something to do for it.
    pub fn hold_watermark(&mut self, at: Option<DateTime<FixedOffset>>) -> bool {
        self.ledger.hold_watermark(at);
        self.due_moved()
    }

    /// Holds the ledger's watermark where it is ([`Ledger::freeze_watermark`]); returns
    /// what [`Engine::hold_watermark`] does (a freeze itself moves nothing).
    pub fn freeze_watermark(&mut self) -> bool {
        self.ledger.freeze_watermark();
        self.due_moved()
    }

    /// Whether the due period differs from the one the last settle derived with.
    fn due_moved(&self) -> bool {
        self.due_period() != self.due_through
    }

    /// Brings everything derived up to date with the ledger: re-scores what the ingested
    /// reports touched, re-aggregates, re-derives the affected alert histories and returns
    /// the alert transitions to publish.
    pub fn settle(&mut self) -> Result<Vec<Transition>, EngineError> {
        let settled = self.settle_inner();
        if settled.is_err() {
            // The running aggregations may have missed changes: the next settle takes every
            // period again in full.
            self.aggregation.clear();
            self.reports_before.clear();
            self.scores_before.clear();
            self.own_deltas.clear();
        }
        settled
    }

    fn settle_inner(&mut self) -> Result<Vec<Transition>, EngineError> {
        // Everything below reads sector-periods in order.
        self.ledger.index();
        let (started, scored_before, rebaselined_before) = (Instant::now(), self.stats.scored, self.stats.rebaselined);
        let in_part_before = self.stats.aggregated_in_part;
        let mut changed = std::mem::take(&mut self.pending_changed);
        // A hash set: a backlog's settle adds each institution once for every score it keeps.
        let mut entities: Ids = std::mem::take(&mut self.pending_entities);
        entities.extend(self.ledger.take_changed());
        let due = self.due_period();
        if due != self.due_through {
            // A report deadline passed: the periods that became due are scored against their
            // own (now complete) cross-section, and records that now end in a missing report
            // change.
            let (lo, hi) = (due.min(self.due_through), due.max(self.due_through));
            for (s, p) in self.ledger.sector_periods() {
                if lo.is_none_or(|lo| p > lo) && hi.is_some_and(|hi| p <= hi) {
                    changed.insert((s, p), None);
                }
            }
            self.due_through = due;
            for r in self.ledger.institutions() {
                if self.ledger.overdue(r) {
                    entities.insert(r.institution_id.clone());
                }
                // A gap inside a record whose deadline passed becomes a missing point there:
                // walk the record's periods in (lo, hi] only.
                let (Some(first), Some(last)) = (r.reports().next(), r.reports().next_back()) else { continue };
                let step = r.sector.cadence_months();
                // Every period of a record is on its sector's cadence from the first (a
                // bank's are quarter-ends): one with a report for each has no gap.
                let span = (last.period.index() - first.period.index()) / step + 1;
                if usize::try_from(span).is_ok_and(|n| n == r.report_count()) {
                    continue;
                }
                let skip = lo.map_or(0, |lo| (lo.index() - first.period.index()).div_euclid(step) + 1).max(0);
                let mut p = first.period.add_months(skip * step);
                while p < last.period && hi.is_some_and(|hi| p <= hi) {
                    if r.report(p).is_none() {
                        note_change(&mut self.pending_from, &self.memos, &r.institution_id, p);
                        entities.insert(r.institution_id.clone());
                        break;
                    }
                    p = p.add_months(step);
                }
            }
        }
        let touched = self.rescore(changed, &mut entities)?;
        let scored = started.elapsed();
        let districts = self.reaggregate(&touched)?;
        let aggregated = started.elapsed();
        let (institutions, district_series) = (entities.len(), districts.len());
        let transitions = self.rederive(&entities, districts);
        tracing::debug!(
            sector_periods = touched.len(),
            scored = self.stats.scored - scored_before,
            rebaselined = self.stats.rebaselined - rebaselined_before,
            aggregated_in_part = self.stats.aggregated_in_part - in_part_before,
            institutions,
            district_series,
            transitions = transitions.len(),
            score_ms = scored.as_millis() as u64,
            aggregate_ms = (aggregated - scored).as_millis() as u64,
            derive_ms = (started.elapsed() - aggregated).as_millis() as u64,
            "settled"
        );
        Ok(transitions)
    }

    /// The district scores whose aggregate or sums changed since the last call, for
    /// publishing them: a settle re-aggregates every district of each period it touches,
    /// and most come out as they were.
    pub fn take_changed_district_scores(&mut self) -> BTreeSet<DistrictScoreKey> {
        std::mem::take(&mut self.changed_district_scores)
    }

    /// Notes the ledger slots each batch changes from now on, for a durable store
    /// ([`Engine::take_dirty_slots`]).
    pub fn track_dirty_slots(&mut self) {
        self.ledger.track_dirty(true);
    }

    /// The ledger slots changed since the last call, for the store: a slot whose winning
    /// report was ingested since then carries the text it was received as
    /// ([`SlotState::original`]), which the store keeps rather than serializing it again.
    pub fn take_dirty_slots(&mut self) -> Vec<SlotState> {
        let mut slots = self.ledger.take_dirty();
        let mut originals = std::mem::take(&mut self.originals);
        if !originals.is_empty() {
            for s in &mut slots {
                // The address is the ledger's copy's, held in `originals`: the same report.
                if let Some((_, bytes)) = originals.remove(&(Arc::as_ptr(&s.winner) as usize)) {
                    s.original = String::from_utf8(bytes).ok();
                }
            }
        }
        slots
    }

    /// The alerts whose published view changed since the last call, for the store to write
    /// (only those: re-deriving a history mostly gives back what the store already holds).
    /// The superseded ones are handed over ([`AlertBook::take_changed`]).
    pub fn take_touched_alerts(&mut self) -> Vec<Arc<Alert>> {
        self.book.take_changed()
    }

    /// Re-aggregates the touched periods; returns the (district, scope) pairs whose
    /// aggregates changed.
    fn reaggregate(
        &mut self,
        touched: &BTreeSet<(Sector, Period)>,
    ) -> Result<BTreeSet<(String, SectorScope)>, EngineError> {
        let periods: BTreeSet<Period> = touched.iter().map(|(_, p)| *p).collect();
        let (reports_before, scores_before) =
            (std::mem::take(&mut self.reports_before), std::mem::take(&mut self.scores_before));
        // A live batch changes a few rows of a period: they are taken out of its running
        // aggregation and put in again as they are now.
        let mut taken: Vec<(Period, Aggregation, Vec<AggregateScore>)> = Vec::new();
        let mut in_full: Vec<Period> = Vec::new();
        for &p in &periods {
            let kept = self.aggregation.remove(&p).and_then(|mut agg| {
                self.update_rows(&mut agg, p, reports_before.get(&p), scores_before.get(&p)).then_some(agg)
            });
            match kept {
                Some(agg) => {
                    let aggregates = agg.aggregates(&self.score);
                    taken.push((p, agg, aggregates));
                }
                None => in_full.push(p),
            }
        }
        // The others in full, in parallel, each on its own: the sums are exact integer sums
        // and the top contributors a total order, so a period's aggregates do not depend on
        // what else was touched. The rows held at once are those of the periods being
        // aggregated (a backlog's settle touches every period, a million rows).
        let full: Vec<(Aggregation, Vec<AggregateScore>)> =
            in_full.par_iter().map(|&p| self.aggregate_period(p)).collect::<Result<_, EngineError>>()?;
        self.stats.aggregated_in_part += taken.len() as u64;
        self.stats.aggregated_in_full += in_full.len() as u64;
        taken.extend(in_full.into_iter().zip(full).map(|(p, (agg, aggregates))| (p, agg, aggregates)));
        taken.sort_by_key(|(p, ..)| *p);
        let mut changed = BTreeSet::new();
        for (p, agg, aggregates) in taken {
            let mut sums_before = HashMap::new();
            self.district_sums.retain(|k, v| {
                let keep = k.2 != p;
                if !keep {
                    sums_before.insert((k.0, k.1), *v);
                }
                keep
            });
            for d in agg.districts() {
                let sums = DistrictSums { npl: d.npl, loans: d.loans, payouts: d.payouts, released: d.released };
                if sums_before.get(&(d.district_code, d.scope)) != Some(&sums) {
                    self.changed_district_scores.insert((d.district_code.to_string(), d.scope, p));
                }
                self.district_sums.insert((d.district_code, d.scope, p), sums);
                if self.agg_at.insert((d.district_code, d.scope, p), d.latest) != Some(d.latest) {
                    changed.insert((d.district_code.to_string(), d.scope));
                }
            }
            for a in aggregates {
                let key: AggKey = (a.level, a.entity_id.clone(), a.sector, a.period);
                if self.aggregates.get(&key) != Some(&a) {
                    if a.level == Level::District {
                        changed.insert((a.entity_id.clone(), a.sector));
                        self.changed_district_scores.insert((a.entity_id.clone(), a.sector, a.period));
                    }
                    self.aggregates.insert(key, a);
                }
            }
            self.aggregation.insert(p, agg);
        }
        Ok(changed)
    }

    /// Drops a period's running aggregation once `changed` rows of it changed and it is no
    /// longer worth keeping up to date row by row (see [`DELTA_SHARE`]): the replaced reports
    /// and scores noted for it are let go at once (a backlog's settle replaces every score
    /// of every period), and the period is aggregated in full. Checked every 64 rows.
    fn drop_outgrown_aggregation(&mut self, period: Period, changed: usize) {
        if !changed.is_multiple_of(64) || !self.outgrown(period, changed) {
            return;
        }
        self.aggregation.remove(&period);
        self.reports_before.remove(&period);
        self.scores_before.remove(&period);
    }

    /// Whether so many of a period's rows changed that aggregating it in full is the cheaper.
    fn outgrown(&self, period: Period, changed: usize) -> bool {
        let rows: usize = Sector::ALL.iter().map(|s| self.ledger.sector_period_len(*s, period)).sum();
        changed * DELTA_SHARE > rows
    }

    /// Brings a period's running aggregation up to date with the rows changed since the last
    /// settle: each institution's row as it was counted (the report and score each change
    /// replaced first, or the ones held) out, its row now in. `false` when the aggregation
    /// cannot be kept so, or when so many rows changed that aggregating the period in full
    /// is the cheaper: the caller then does.
    fn update_rows(
        &self,
        agg: &mut Aggregation,
        p: Period,
        reports: Option<&HashMap<Arc<str>, Option<Arc<Report>>>>,
        scores: Option<&HashMap<Arc<str>, Option<Arc<InstitutionScore>>>>,
    ) -> bool {
        let mut ids: Vec<&Arc<str>> =
            reports.into_iter().flat_map(|m| m.keys()).chain(scores.into_iter().flat_map(|m| m.keys())).collect();
        ids.sort_unstable();
        ids.dedup();
        if self.outgrown(p, ids.len()) {
            return false;
        }
        ids.into_iter().all(|id| {
            let report = self.ledger.report(id, p);
            let score = self.inst_scores.get(&**id).and_then(|m| m.get(&p));
            let report_before = reports.and_then(|m| m.get(id)).map_or(report, Option::as_ref);
            let score_before = scores.and_then(|m| m.get(id)).map_or(score, Option::as_ref);
            agg.update(row(score_before, report_before), row(score, report))
        })
    }

    /// A period's aggregation taken in full from the scores held, and its aggregates.
    fn aggregate_period(&self, p: Period) -> Result<(Aggregation, Vec<AggregateScore>), EngineError> {
        let mut rows: Vec<(&InstitutionScore, &Report)> = Vec::new();
        for sector in Sector::ALL {
            for r in self.ledger.sector_period(sector, p) {
                if let Some(s) = self.inst_scores.get(&*r.institution_id).and_then(|m| m.get(&p)) {
                    rows.push((&**s, r.as_ref()));
                }
            }
        }
        let agg = Aggregation::of(&rows)?;
        let aggregates = agg.aggregates(&self.score);
        Ok((agg, aggregates))
    }

    /// The latest period whose report deadline the watermark has passed.
    fn due_period(&self) -> Option<Period> {
        let wm = self.ledger.watermark()?.with_timezone(&china_tz());
        let t = wm - self.ledger.settings().report_deadline;
        let month_of_t = Period::new(t.year(), t.month())?;
        Some(month_of_t.add_months(-1))
    }

    /// The current alerts (all but superseded), ordered by opening period and id.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> + '_ {
        self.book.current()
    }

    /// [`Engine::alerts`], each shared with the alert book: cloning one is a pointer copy.
    pub fn shared_alerts(&self) -> impl Iterator<Item = &Arc<Alert>> + '_ {
        self.book.current_shared()
    }

    /// The alert book, for people's actions.
    pub fn book_mut(&mut self) -> &mut AlertBook {
        &mut self.book
    }

    /// An institution's scores, oldest period first (shared: cloning one is a pointer copy).
    pub fn scores_of(&self, institution: &str) -> impl Iterator<Item = &Arc<InstitutionScore>> + '_ {
        self.inst_scores.get(institution).into_iter().flat_map(|m| m.values())
    }

    /// A score's trend z-score, against its sector-period's current baseline.
    pub fn trend_z(&self, s: &InstitutionScore) -> Option<f64> {
        trend_z_in(&self.trend, s)
    }

    /// The trend baseline of every sector-period that has one, for [`Engine::trend_z`]
    /// elsewhere.
    pub fn trend_baselines(&self) -> impl Iterator<Item = ((Sector, Period), TrendBaseline)> + '_ {
        self.trend.iter().filter_map(|(k, b)| Some((*k, (*b)?)))
    }

    /// An institution's score of one period.
    pub fn score_at(&self, institution: &str, period: Period) -> Option<&Arc<InstitutionScore>> {
        self.inst_scores.get(institution)?.get(&period)
    }

    /// Every institution score, ordered by institution then period.
    pub fn institution_scores(&self) -> Vec<&InstitutionScore> {
        // Sorting the institutions (not every score) is enough: each one's are in period order.
        let mut ids: Vec<&Arc<str>> = self.inst_scores.keys().collect();
        ids.sort_unstable();
        ids.into_iter().flat_map(|id| self.inst_scores[id].values().map(|s| &**s)).collect()
    }

    /// Every aggregate, ordered by level, entity, sector scope and period.
    pub fn aggregates(&self) -> impl Iterator<Item = &AggregateScore> + '_ {
        self.aggregates.values()
    }

    /// The integer sums behind a district aggregate's ratios (see
    /// [`DistrictSums`]); zero when the district has no scored report in the period.
    pub fn district_sums(&self, district_code: u32, scope: SectorScope, period: Period) -> DistrictSums {
        self.district_sums.get(&(district_code, scope, period)).copied().unwrap_or_default()
    }

    /// One aggregate.
    pub fn aggregate(&self, level: Level, id: &str, scope: SectorScope, period: Period) -> Option<&AggregateScore> {
        self.aggregates.get(&(level, id.to_string(), scope, period))
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Counts so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The latest period whose reports are all due: the natural period to show.
    pub fn complete_through(&self) -> Option<Period> {
        self.due_through
    }
}

/// The value of a rule metric that an institution's score gives its series point, if present
/// and finite (the reporting gap comes from the ledger: `None`), given its trend z-score.
fn score_value(s: &InstitutionScore, trend_z: Option<f64>, metric: &str) -> Option<f64> {
    let v = match metric {
        rule_metrics::SCORE => Some(s.score),
        rule_metrics::BASE_SCORE => Some(s.base_score),
        rule_metrics::TREND_Z => trend_z,
        _ => s.indicators.iter().find(|i| i.indicator.as_str() == metric).and_then(|i| i.value.get()),
    };
    v.filter(|v| v.is_finite())
}

/// A score's trend z-score against its sector-period's baseline in `trend`.
fn trend_z_in(trend: &HashMap<(Sector, Period), Option<TrendBaseline>>, s: &InstitutionScore) -> Option<f64> {
    s.trend_z(trend.get(&(s.sector, s.period)).and_then(Option::as_ref))
}

/// An input decoded: its report, or why it is dead-lettered.
pub type Decoded = Result<Report, Box<DeadLetter>>;

/// Decodes inputs on both cores, in input order.
pub fn decode_all(decoder: &Decoder, inputs: &[Input]) -> Vec<Decoded> {
    inputs.par_iter().map(|input| decoder.decode(input)).collect()
}

/// Notes that an institution's series may have changed from `period` on. Only a derivation
/// resumed from a memo reads the note (and only a derivation, which takes the notes first,
/// makes memos): an institution without one needs none.
fn note_change(from: &mut HashMap<Arc<str>, Period>, memos: &HashMap<Arc<str>, Memo>, inst: &Arc<str>, period: Period) {
    if !memos.contains_key(inst) {
        return;
    }
    match from.get_mut(inst) {
        Some(p) => *p = (*p).min(period),
        None => {
            from.insert(inst.clone(), period);
        }
    }
}
