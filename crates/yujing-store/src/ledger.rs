//! The ledger: which report is authoritative for each institution and period.
//!
//! Dedupe by `report_id`, highest revision per institution+period wins, stale revisions are
//! rejected, and the watermark (the latest `submitted_at` seen, less the allowed lateness)
//! drives missing-report detection (DESIGN §4, §7).

use chrono::{DateTime, Duration, FixedOffset};
use foldhash::HashMap;
use rayon::prelude::*;
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;
use yujing_model::period::PeriodMap;
use yujing_model::{Metric, Period, Reason, Rejection, Report, Sector};

/// What applying a report did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The first report for its institution and period.
    New,
    /// A higher revision replaced the previous winner.
    Replaced {
        /// The revision it replaced.
        previous_revision: u32,
    },
    /// An exact repeat of a `report_id` already seen: a counted no-op.
    Duplicate,
    /// Not applied; dead-letter it with this rejection (`stale_revision` or `inconsistent`).
    Rejected(Rejection),
}

impl Outcome {
    /// Whether the ledger changed.
    pub fn changed(&self) -> bool {
        matches!(self, Outcome::New | Outcome::Replaced { .. })
    }
}

/// Ledger settings.
#[derive(Debug, Clone, Copy)]
pub struct LedgerSettings {
    /// How long after a period ends its report is due.
    pub report_deadline: Duration,
    /// Subtracted from the latest `submitted_at` seen to give the watermark.
    pub allowed_lateness: Duration,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings { report_deadline: Duration::days(15), allowed_lateness: Duration::zero() }
    }
}

/// Where [`Ledger::freeze_watermark`] holds the watermark of a ledger that has seen nothing:
/// before the deadline of any period a report can be for (1900-01-01 UTC).
pub const BEFORE_ANY_DEADLINE: DateTime<chrono::Utc> = DateTime::from_timestamp_nanos(-2_208_988_800_000_000_000);

/// One institution and period: the winning report and every `report_id` seen for it.
#[derive(Debug, Clone)]
struct Slot {
    winner: Arc<Report>,
    /// The `report_id`s seen other than the winner's (most slots have none, and then no
    /// allocation).
    others: Box<[Box<str>]>,
    /// The earliest submission of any revision: a correction does not make a report late.
    first_submitted: DateTime<FixedOffset>,
}

impl Slot {
    /// Notes a `report_id` seen besides the winner's (rare: a boxed slice rather than a
    /// `Vec` keeps every other slot 8 bytes smaller).
    fn note_other(&mut self, id: Box<str>) {
        let mut others = std::mem::take(&mut self.others).into_vec();
        others.push(id);
        self.others = others.into_boxed_slice();
    }
}

/// What the ledger knows of an institution.
#[derive(Debug, Clone)]
pub struct InstitutionRecord {
    /// Its id.
    pub institution_id: Arc<str>,
    /// Its sector (fixed: a report under another sector is rejected).
    pub sector: Sector,
    periods: PeriodMap<Slot>,
    /// The name its reports share (the last one applied with a new name).
    shared_name: Arc<str>,
    /// Listed in [`Ledger::take_changed`]'s list since it last gave it.
    changed: bool,
}

impl InstitutionRecord {
    /// The winning report of each period, oldest first.
    pub fn reports(&self) -> impl DoubleEndedIterator<Item = &Arc<Report>> + '_ {
        self.periods.values().map(|s| &s.winner)
    }

    /// How many periods have a winning report.
    pub fn report_count(&self) -> usize {
        self.periods.len()
    }

    /// The winning report of a period.
    pub fn report(&self, period: Period) -> Option<&Arc<Report>> {
        self.periods.get(&period).map(|s| &s.winner)
    }

    /// The latest period's winning report.
    pub fn latest(&self) -> Option<&Arc<Report>> {
        self.periods.values().next_back().map(|s| &s.winner)
    }

    /// The name and district of the latest period's report.
    pub fn name(&self) -> &str {
        self.latest().map(|r| &*r.institution_name).unwrap_or("")
    }
}

/// Whether an expected report came in on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Submitted by the deadline.
    OnTime {
        /// When the winning revision was submitted.
        at: DateTime<FixedOffset>,
    },
    /// First submitted after the deadline.
    Late {
        /// When it was first submitted.
        at: DateTime<FixedOffset>,
        /// When it was due.
        deadline: DateTime<FixedOffset>,
    },
    /// Not submitted, and the watermark has passed the deadline.
    Missing {
        /// When it was due.
        deadline: DateTime<FixedOffset>,
    },
}

/// Counters of what the ledger has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerCounts {
    /// Reports that were new for their institution and period.
    pub new: u64,
    /// Reports that replaced a lower revision.
    pub replaced: u64,
    /// Exact repeats of a `report_id`.
    pub duplicates: u64,
    /// Reports rejected by the ledger (stale revisions, sector conflicts).
    pub rejected: u64,
}

/// The winning reports of each sector-period, by institution.
type BySectorPeriod = HashMap<(Sector, Period), SectorPeriod>;

/// A sector-period whose staged reports are at most 1 in `MERGE_SHARE` of its rows takes
/// them in one by one; more are sorted and merged in.
const MERGE_SHARE: usize = 16;

/// The winning reports of one sector-period. Readers walk `rows`, in institution id order;
/// a report applied is staged, and [`Ledger::index`] puts the staged ones in their places.
/// Staging keeps ordering off the path of every report applied: a backlog's reports of a
/// sector-period are sorted once, by id, instead of each finding its place among tens of
/// thousands of reports (a comparison of ids through each report's pointer).
#[derive(Debug, Default)]
struct SectorPeriod {
    /// The winning reports by institution id, one per institution.
    rows: Vec<Arc<Report>>,
    /// The reports that won here since the last [`Ledger::index`], in the order applied:
    /// the last of an institution's is its winner.
    staged: Vec<Arc<Report>>,
    /// How many institutions have a winning report here, staged ones included.
    len: usize,
}

impl SectorPeriod {
    /// Stages a winning report (`new`: its institution had none here).
    fn stage(&mut self, winner: Arc<Report>, new: bool) {
        self.staged.push(winner);
        self.len += usize::from(new);
    }

    /// Puts the staged reports in their places.
    fn index(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut self.staged);
        if staged.len() * MERGE_SHARE <= self.rows.len() {
            for r in staged {
                match self.rows.binary_search_by(|x| x.institution_id.cmp(&r.institution_id)) {
                    Ok(i) => self.rows[i] = r,
                    Err(i) => self.rows.insert(i, r),
                }
            }
            return;
        }
        // The staged reports by id, the latest applied first among an institution's, which
        // is the one kept.
        let picks: Vec<usize> = {
            let mut order: Vec<(&str, Reverse<usize>)> =
                staged.iter().enumerate().map(|(i, r)| (&*r.institution_id, Reverse(i))).collect();
            order.sort_unstable();
            order.dedup_by_key(|(id, _)| *id);
            order.into_iter().map(|(_, Reverse(i))| i).collect()
        };
        let mut staged: Vec<Option<Arc<Report>>> = staged.into_iter().map(Some).collect();
        let old = std::mem::take(&mut self.rows);
        let mut rows = Vec::with_capacity(old.len() + picks.len());
        let mut old = old.into_iter().peekable();
        for i in picks {
            let Some(r) = staged[i].take() else { continue };
            while let Some(o) = old.next_if(|o| o.institution_id < r.institution_id) {
                rows.push(o);
            }
            // The report it replaces, if any.
            old.next_if(|o| o.institution_id == r.institution_id);
            rows.push(r);
        }
        rows.extend(old);
        self.rows = rows;
    }
}

/// How many months [`Ledger::index`] takes deadlines for, from `lo` to a year past `hi`.
fn deadline_span(lo: Period, hi: Period) -> usize {
    usize::try_from(hi.index() - lo.index() + 13).unwrap_or(0)
}

/// The in-memory ledger. Every method is deterministic; the final state depends only on the
/// set of reports applied, not on their order, except which of two equal revisions wins.
#[derive(Debug, Default)]
pub struct Ledger {
    settings: LedgerSettings,
    /// Every institution, found by id in one hash (a tree of string keys cost a dozen
    /// string comparisons for each report applied).
    institutions: HashMap<Arc<str>, InstitutionRecord>,
    /// The institutions' ids in order, for walking them in order (added to only when an
    /// institution is first seen).
    ids: BTreeSet<Arc<str>>,
    /// The winning reports of each sector-period by institution (the same reports as the
    /// records', shared): scoring reads whole sector-periods.
    by_sector_period: BySectorPeriod,
    max_submitted: Option<DateTime<FixedOffset>>,
    /// The bound [`Ledger::hold_watermark`] set on the latest submission the watermark trails.
    hold: Option<DateTime<FixedOffset>>,
    counts: LedgerCounts,
    /// The report deadline of each month from the first (by [`Period::index`]) on, as
    /// [`Ledger::deadline`] gives it (taken in [`Ledger::index`]): a reporting record takes
    /// one or two for each period of an institution's, each calendar arithmetic in a time
    /// zone when worked out.
    deadlines: (i32, Vec<DateTime<FixedOffset>>),
    /// The slots touched since the last [`Ledger::take_dirty`], with repeats (a push is
    /// cheaper than a set insert on every report; taking sorts and dedupes them once).
    dirty: Vec<(Arc<str>, Period)>,
    /// Whether `dirty` is kept: not for a ledger no durable store keeps.
    untracked: bool,
    /// The institutions whose winners changed since [`Ledger::take_changed`] last gave them
    /// (each once: its record's flag says it is here).
    changed: Vec<Arc<str>>,
}

/// The persisted state of one institution and period: what a durable store keeps so that
/// [`Ledger::restore_slot`] rebuilds the ledger exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotState {
    /// The winning report.
    pub winner: Arc<Report>,
    /// Every `report_id` seen for the institution and period.
    pub seen: Vec<String>,
    /// The earliest submission of any revision.
    pub first_submitted: DateTime<FixedOffset>,
    /// The winning report as it was received (its JSON text), when whoever takes the slot
    /// still has it: a store keeps it as it is rather than serializing the report again.
    /// `None` (always so from the ledger itself): the report is serialized.
    pub original: Option<String>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(settings: LedgerSettings) -> Ledger {
        Ledger { settings, ..Ledger::default() }
    }

    /// The settings.
    pub fn settings(&self) -> &LedgerSettings {
        &self.settings
    }

    /// Counts so far.
    pub fn counts(&self) -> LedgerCounts {
        self.counts
    }

    /// Advances the watermark with a validly decoded report's submission time. Call it for
    /// every decoded report, applied or not, so the watermark does not depend on order.
    pub fn observe(&mut self, submitted_at: DateTime<FixedOffset>) -> bool {
        if self.max_submitted.is_none_or(|m| submitted_at > m) {
            self.max_submitted = Some(submitted_at);
            true
        } else {
            false
        }
    }

    /// The watermark: the latest `submitted_at` seen (no later than a hold) less the allowed
    /// lateness.
    pub fn watermark(&self) -> Option<DateTime<FixedOffset>> {
        self.held_max().map(|m| m - self.settings.allowed_lateness)
    }

    /// The watermark's hold, if any ([`Ledger::hold_watermark`]).
    pub fn watermark_hold(&self) -> Option<DateTime<FixedOffset>> {
        self.hold
    }

    /// The latest `submitted_at` seen, no later than the hold.
    fn held_max(&self) -> Option<DateTime<FixedOffset>> {
        self.max_submitted.map(|m| self.hold.map_or(m, |h| m.min(h)))
    }

    /// Holds the watermark back to trail `at` at the latest (`None`: no hold, the latest
    /// `submitted_at` seen). A hold never moves the watermark back: it is raised to where
    /// the watermark already is. Returns whether the watermark moved.
    ///
    /// A consumer of several partitions holds it while some are behind, at the latest
    /// submission read from the one furthest behind: otherwise the partitions read ahead
    /// would make the institutions of those behind look late (see `yujing run`).
    pub fn hold_watermark(&mut self, at: Option<DateTime<FixedOffset>>) -> bool {
        let before = self.held_max();
        self.hold = match (at, before) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (at, _) => at,
        };
        self.held_max() != before
    }

    /// Holds the watermark where it is now, or before every deadline when nothing has been
    /// seen yet ([`BEFORE_ANY_DEADLINE`]): until the hold is raised or released, no further
    /// deadline passes. Returns whether the watermark moved (never).
    ///
    /// A consumer holds it so while it cannot tell how far behind its partitions are: before
    /// its first statistics, or while a partition with messages waiting has not been read
    /// from at all.
    pub fn freeze_watermark(&mut self) -> bool {
        let at = self.held_max().unwrap_or_else(|| BEFORE_ANY_DEADLINE.fixed_offset());
        self.hold_watermark(Some(at))
    }

    /// Applies a validated report.
    pub fn apply(&mut self, report: Report) -> Outcome {
        self.apply_keyed(report).0
    }

    /// Applies a validated report, as [`Ledger::apply`]; also returns the ledger's shared id
    /// of its institution (cloning it is a pointer copy).
    pub fn apply_keyed(&mut self, report: Report) -> (Outcome, Arc<str>) {
        self.observe(report.submitted_at);
        let (outcome, key) = self.apply_inner(report);
        match &outcome {
            Outcome::New => self.counts.new += 1,
            Outcome::Replaced { .. } => self.counts.replaced += 1,
            Outcome::Duplicate => self.counts.duplicates += 1,
            Outcome::Rejected(_) => self.counts.rejected += 1,
        }
        (outcome, key)
    }

    /// The institution-periods whose state changed since the last call (any applied,
    /// duplicate or stale report can change what is seen), for a durable store to write, in
    /// the order they were first touched.
    pub fn take_dirty(&mut self) -> Vec<SlotState> {
        debug_assert!(!self.untracked || self.dirty.is_empty());
        let dirty = std::mem::take(&mut self.dirty);
        // A slot touched again is taken once. Each id noted is the ledger's own copy of it,
        // so one institution is one address: no id is hashed or compared as text (sorting
        // them by text was about a third of taking a backlog's batch).
        let mut taken = foldhash::HashSet::with_capacity_and_hasher(dirty.len(), Default::default());
        dirty
            .into_iter()
            .filter(|(inst, period)| taken.insert((Arc::as_ptr(inst).cast::<u8>() as usize, *period)))
            .filter_map(|(inst, period)| self.slot(&inst, period))
            .collect()
    }

    /// Whether to note the slots each report changes for [`Ledger::take_dirty`] (on from
    /// [`Ledger::new`]). A ledger no durable store keeps need not: off, it holds no note for
    /// each report applied, and [`Ledger::take_dirty`] returns nothing.
    pub fn track_dirty(&mut self, on: bool) {
        self.untracked = !on;
        if !on {
            self.dirty = Vec::new();
        }
    }

    /// Whether the slots each report changes are noted ([`Ledger::track_dirty`]).
    pub fn tracks_dirty(&self) -> bool {
        !self.untracked
    }

    /// The state of one institution and period.
    pub fn slot(&self, institution_id: &str, period: Period) -> Option<SlotState> {
        let s = self.institutions.get(institution_id)?.periods.get(&period)?;
        Some(SlotState {
            winner: s.winner.clone(),
            seen: s.others.iter().chain([&s.winner.report_id]).map(|x| x.to_string()).collect(),
            first_submitted: s.first_submitted,
            original: None,
        })
    }

    /// Puts back a persisted slot (on start-up). Does not count, does not mark dirty.
    pub fn restore_slot(&mut self, state: SlotState) {
        let mut report = state.winner;
        self.observe(state.first_submitted);
        self.observe(report.submitted_at);
        let key: Arc<str> = match self.institutions.get_key_value(&*report.institution_id) {
            Some((k, _)) => k.clone(),
            None => {
                self.ids.insert(report.institution_id.clone());
                report.institution_id.clone()
            }
        };
        let rec = self.institutions.entry(key.clone()).or_insert_with(|| InstitutionRecord {
            institution_id: key.clone(),
            sector: report.sector,
            periods: PeriodMap::new(),
            shared_name: report.institution_name.clone(),
            changed: false,
        });
        share_strings(&rec.institution_id, &mut rec.shared_name, Arc::make_mut(&mut report));
        let new = rec.periods.get(&report.period).is_none();
        self.by_sector_period.entry((report.sector, report.period)).or_default().stage(report.clone(), new);
        let others =
            state.seen.into_iter().filter(|id| **id != *report.report_id).map(String::into_boxed_str).collect();
        rec.periods.insert(report.period, Slot { winner: report, others, first_submitted: state.first_submitted });
    }

    /// The latest `submitted_at` seen (what the watermark trails).
    pub fn max_submitted(&self) -> Option<DateTime<FixedOffset>> {
        self.max_submitted
    }

    fn apply_inner(&mut self, report: Report) -> (Outcome, Arc<str>) {
        // One descent of the id tree for an institution already known.
        if let Some(rec) = self.institutions.get_mut(&*report.institution_id) {
            let dirty = (!self.untracked).then_some(&mut self.dirty);
            return apply_to(rec, &mut self.by_sector_period, Notes { dirty, changed: &mut self.changed }, report);
        }
        let key: Arc<str> = report.institution_id.clone();
        let rec = InstitutionRecord {
            institution_id: key.clone(),
            sector: report.sector,
            periods: PeriodMap::new(),
            shared_name: report.institution_name.clone(),
            changed: false,
        };
        self.ids.insert(key.clone());
        let rec = self.institutions.entry(key).or_insert(rec);
        let dirty = (!self.untracked).then_some(&mut self.dirty);
        apply_to(rec, &mut self.by_sector_period, Notes { dirty, changed: &mut self.changed }, report)
    }

    /// The institutions with a new or replaced winning report (an [`Outcome::New`] or
    /// [`Outcome::Replaced`]) since the last call, each once, in the order first changed.
    ///
    /// The record notes that it is listed, so noting costs no lookup per report applied.
    pub fn take_changed(&mut self) -> Vec<Arc<str>> {
        let changed = std::mem::take(&mut self.changed);
        for id in &changed {
            if let Some(rec) = self.institutions.get_mut(&**id) {
                rec.changed = false;
            }
        }
        changed
    }

    /// An institution's record.
    pub fn institution(&self, id: &str) -> Option<&InstitutionRecord> {
        self.institutions.get(id)
    }

    /// Every institution, by id.
    pub fn institutions(&self) -> impl Iterator<Item = &InstitutionRecord> + '_ {
        self.ids.iter().filter_map(|id| self.institutions.get(id))
    }

    /// The winning report of an institution and period.
    pub fn report(&self, institution_id: &str, period: Period) -> Option<&Arc<Report>> {
        self.institutions.get(institution_id)?.report(period)
    }

    /// Puts the reports applied since the last call in their places in their sector-periods'
    /// order (on both cores), for [`Ledger::sector_period`]: call it after applying and
    /// before reading sector-periods.
    pub fn index(&mut self) {
        self.by_sector_period.par_iter_mut().for_each(|(_, sp)| sp.index());
        // The deadlines of the periods held and a year past them, for the reporting records.
        let mut periods = self.by_sector_period.keys().map(|(_, p)| *p);
        if let Some(first) = periods.next() {
            let (lo, hi) = periods.fold((first, first), |(lo, hi), p| (lo.min(p), hi.max(p)));
            if self.deadlines.0 != lo.index() || self.deadlines.1.len() < deadline_span(lo, hi) {
                let table = (0..deadline_span(lo, hi) as i32)
                    .map(|i| lo.add_months(i).end() + self.settings.report_deadline)
                    .collect();
                self.deadlines = (lo.index(), table);
            }
        }
    }

    /// The winning reports of one sector and period, ordered by institution id.
    ///
    /// # Panics
    /// When reports were applied or restored there since the last [`Ledger::index`].
    pub fn sector_period(&self, sector: Sector, period: Period) -> impl Iterator<Item = &Arc<Report>> + '_ {
        let sp = self.by_sector_period.get(&(sector, period));
        assert!(
            sp.is_none_or(|sp| sp.staged.is_empty()),
            "{sector} {period} is read before Ledger::index put its new reports in order"
        );
        sp.into_iter().flat_map(|sp| sp.rows.iter())
    }

    /// How many winning reports one sector and period holds (indexed or not).
    pub fn sector_period_len(&self, sector: Sector, period: Period) -> usize {
        self.by_sector_period.get(&(sector, period)).map_or(0, |sp| sp.len)
    }

    /// Every sector-period holding a report, in no particular order.
    pub fn sector_periods(&self) -> impl Iterator<Item = (Sector, Period)> + '_ {
        self.by_sector_period.keys().copied()
    }

    /// Number of institution-periods held.
    pub fn len(&self) -> usize {
        self.institutions.values().map(|r| r.periods.len()).sum()
    }

    /// Whether nothing has been applied.
    pub fn is_empty(&self) -> bool {
        self.institutions.is_empty()
    }

    /// The deadline of a period's report.
    pub fn deadline(&self, period: Period) -> DateTime<FixedOffset> {
        let (first, table) = &self.deadlines;
        usize::try_from(period.index() - first)
            .ok()
            .and_then(|i| table.get(i))
            .copied()
            .unwrap_or_else(|| period.end() + self.settings.report_deadline)
    }

    /// Whether the reporting record of an institution ([`Ledger::expected`]) ends in a
    /// missing report: the period after its latest report is past its deadline. Only such an
    /// institution's record changes when the watermark advances; the others' records end at
    /// their latest report whatever the watermark.
    pub fn overdue(&self, record: &InstitutionRecord) -> bool {
        let (Some(last), Some(wm)) = (record.periods.keys().next_back(), self.watermark()) else {
            return false;
        };
        self.deadline(last.add_months(record.sector.cadence_months())) <= wm
    }

    /// The reporting record of an institution: every period it was expected to report, from its
    /// first report to the last period whose deadline the watermark has passed, and whether
    /// the report came on time, late or not at all. A closed P2P platform that reported
    /// nothing outstanding is no longer expected to report.
    pub fn expected(&self, institution_id: &str) -> Vec<(Period, Expected)> {
        let Some(rec) = self.institutions.get(institution_id) else {
            return Vec::new();
        };
        let (Some(first), Some(wm)) = (rec.periods.keys().next().copied(), self.watermark()) else {
            return Vec::new();
        };
        let step = rec.sector.cadence_months();
        let wound_down = rec
            .latest()
            .is_some_and(|r| r.sector == Sector::P2pResidual && r.metrics.value(Metric::OutstandingPrincipal) == 0.0);
        let last_reported = rec.periods.keys().next_back().copied().unwrap_or(first);
        let mut out = Vec::new();
        let mut p = first;
        while p <= last_reported || (!wound_down && self.deadline(p) <= wm) {
            let deadline = self.deadline(p);
            let status = match rec.periods.get(&p) {
                Some(s) if s.first_submitted <= deadline => Some(Expected::OnTime { at: s.winner.submitted_at }),
                Some(s) => Some(Expected::Late { at: s.first_submitted, deadline }),
                None if deadline <= wm => Some(Expected::Missing { deadline }),
                None => None,
            };
            if let Some(status) = status {
                out.push((p, status));
            }
            p = p.add_months(step);
        }
        out
    }
}

/// What applying a report notes beside the record: the slots a durable store is to write
/// (when kept) and the institutions whose winners changed.
struct Notes<'a> {
    dirty: Option<&'a mut Vec<(Arc<str>, Period)>>,
    changed: &'a mut Vec<Arc<str>>,
}

/// Applies a report to its institution's record (the sector-period index and the notes
/// alongside).
fn apply_to(
    rec: &mut InstitutionRecord,
    by_sector_period: &mut BySectorPeriod,
    Notes { dirty, changed }: Notes<'_>,
    mut report: Report,
) -> (Outcome, Arc<str>) {
    let key = rec.institution_id.clone();
    if rec.sector != report.sector {
        let why = format!("institution {} reports as {}, not {}", key, rec.sector, report.sector);
        return (Outcome::Rejected(Rejection::new(Reason::Inconsistent, why)), key);
    }
    let (period, sector) = (report.period, report.sector);
    if let Some(dirty) = dirty {
        dirty.push((key.clone(), period));
    }
    let outcome = match rec.periods.get_mut(&period) {
        None => {
            let first_submitted = report.submitted_at;
            share_strings(&rec.institution_id, &mut rec.shared_name, &mut report);
            let winner = Arc::new(report);
            by_sector_period.entry((sector, period)).or_default().stage(winner.clone(), true);
            rec.periods.insert(period, Slot { winner, others: Box::default(), first_submitted });
            Outcome::New
        }
        Some(slot) => {
            slot.first_submitted = slot.first_submitted.min(report.submitted_at);
            if slot.winner.report_id == report.report_id || slot.others.iter().any(|s| **s == *report.report_id) {
                return (Outcome::Duplicate, key);
            }
            let current = slot.winner.revision;
            if report.revision <= current {
                slot.note_other(report.report_id.clone());
                let why = format!(
                    "revision {} of {} {} is not above the accepted revision {}",
                    report.revision, report.institution_id, period, current
                );
                return (Outcome::Rejected(Rejection::new(Reason::StaleRevision, why)), key);
            }
            share_strings(&rec.institution_id, &mut rec.shared_name, &mut report);
            let previous = std::mem::replace(&mut slot.winner, Arc::new(report));
            slot.note_other(previous.report_id.clone());
            by_sector_period.entry((sector, period)).or_default().stage(slot.winner.clone(), false);
            Outcome::Replaced { previous_revision: current }
        }
    };
    if !rec.changed {
        rec.changed = true;
        changed.push(key.clone());
    }
    (outcome, key)
}

/// Makes a report the ledger keeps share its institution's id, and its name with the
/// institution's other reports when the name is the same (`shared_name`, the record's): a
/// ledger holds a report for every institution and period, and without this each would
/// hold its own copies of both.
fn share_strings(id: &Arc<str>, shared_name: &mut Arc<str>, report: &mut Report) {
    report.institution_id = id.clone();
    if *shared_name == report.institution_name {
        report.institution_name = shared_name.clone();
    } else {
        *shared_name = report.institution_name.clone();
    }
}

#[cfg(test)]
mod tests;
