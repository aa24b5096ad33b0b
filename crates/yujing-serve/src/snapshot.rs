//! The immutable view of the pipeline's state that the API reads.
//!
//! The pipeline builds a [`Snapshot`] from [`SnapshotParts`] after each committed batch and
//! publishes it through a [`SnapshotHandle`]; a request clones the `Arc` at its start.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use yujing_model::{
    AggregateScore, Alert, Indicator, InstitutionScore, Level, Period, Report, Sector, SectorScope, Severity,
    score::TrendBaseline,
};

/// One institution: who it is, its scores and its winning reports, oldest period first.
#[derive(Debug, Clone)]
pub struct InstitutionView {
    /// The institution id.
    pub id: String,
    /// Its registered name (from its latest report).
    pub name: String,
    /// Its sector.
    pub sector: Sector,
    /// Its 区县 (from its latest report).
    pub district_code: u32,
    /// Its score in each period scored, oldest first (shared with the pipeline's state, so a
    /// snapshot costs a pointer per score, not a copy).
    pub scores: Vec<Arc<InstitutionScore>>,
    /// Its winning report of each period, oldest first.
    pub reports: Vec<Arc<Report>>,
    /// The calibrated probability of a distress event within the horizon, at its latest
    /// scored period (only when the configuration has a `[probability]` model).
    pub p_event: Option<EventProbability>,
}

/// A calibrated probability of a distress event within a horizon (`yujing calibrate`'s
/// logistic model), next to the 0-100 score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EventProbability {
    /// The period whose score and alerts it is computed from.
    pub period: Period,
    /// The probability, 0 to 1.
    pub p: f64,
    /// The horizon in months.
    pub horizon_months: u32,
    /// The probability at and above which the model flags an institution.
    pub flag_at: f64,
    /// Whether `p` is at or above `flag_at`.
    pub flagged: bool,
}

impl InstitutionView {
    /// The score of a period.
    pub fn score(&self, period: Period) -> Option<&InstitutionScore> {
        self.scores.binary_search_by_key(&period, |s| s.period).ok().map(|i| &*self.scores[i])
    }

    /// The latest score.
    pub fn latest(&self) -> Option<&InstitutionScore> {
        self.scores.last().map(|s| &**s)
    }
}

/// The cutoffs of one indicator in one sector, to explain sub-scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IndicatorCutoff {
    /// The sector.
    pub sector: Sector,
    /// The indicator.
    pub indicator: Indicator,
    /// The value at which the sub-score is 0.
    pub safe: f64,
    /// The value at which the sub-score is 100.
    pub critical: f64,
    /// The indicator's weight in the sector's composite, normalised so a sector's weights
    /// sum to 1.
    pub weight: f64,
}

/// A person's action on an alert, as the audit log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number, increasing.
    pub seq: u64,
    /// When (wall clock).
    pub at: DateTime<FixedOffset>,
    /// Who: the token's name.
    pub actor: String,
    /// The token's role (`regulator`, `district:500101`, …).
    pub role: String,
    /// `acknowledge`, `assign` or `resolve`.
    pub action: String,
    /// The alert acted on.
    pub alert_id: String,
    /// The alert's district.
    pub district_code: String,
    /// The assignee or the note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Counts of what the pipeline has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineStats {
    /// Inputs received.
    pub received: u64,
    /// Reports accepted into the ledger.
    pub accepted: u64,
    /// Exact repeats.
    pub duplicates: u64,
    /// Inputs dead-lettered.
    pub rejected: u64,
    /// Batches committed.
    pub batches: u64,
}

/// What a snapshot is built from.
#[derive(Debug, Clone, Default)]
pub struct SnapshotParts {
    /// Every institution. Shared: the pipeline hands the same view to the next snapshot
    /// while the institution's scores and reports stay as they were.
    pub institutions: Vec<Arc<InstitutionView>>,
    /// Every aggregate (district, region, city; every sector scope and period).
    pub aggregates: Vec<AggregateScore>,
    /// The current alerts (superseded ones left out), shared with the alert book.
    pub alerts: Vec<Arc<Alert>>,
    /// People's actions, oldest first.
    pub audit: Vec<AuditEntry>,
    /// The scoring cutoffs, to explain sub-scores.
    pub cutoffs: Vec<IndicatorCutoff>,
    /// The trend baseline of each sector-period that has one: what its scores' trend
    /// z-scores are against.
    pub trend_baselines: Vec<((Sector, Period), TrendBaseline)>,
    /// The latest period whose reports are all due.
    pub complete_through: Option<Period>,
    /// Counts so far.
    pub stats: PipelineStats,
    /// When the pipeline built it.
    pub generated_at: Option<DateTime<FixedOffset>>,
    /// Aggregates that did not come from this instance's engine: districts read from the
    /// peers' scores topic, and regions and the city recomputed over districts of several
    /// instances (DESIGN §8).
    pub peer_aggregates: HashSet<AggregateKey>,
    /// Ids of the alerts read from the peers' alerts topic (not held by this instance).
    pub peer_alerts: HashSet<String>,
}

/// An aggregate's identity: level, entity id, sector scope and period.
pub type AggregateKey = (Level, String, SectorScope, Period);

/// Where a figure of the API comes from, when not from this instance's own engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Read from another instance's published scores or alerts.
    Peer,
    /// Recomputed over districts of this instance and of its peers.
    Merged,
}

/// The alerts of a snapshot, with an index by id.
#[derive(Debug, Default)]
struct Alerts {
    list: Vec<Arc<Alert>>,
    /// A snapshot is built for every batch: the index shares the alerts (no id copied) and
    /// hashes with foldhash.
    by_id: foldhash::HashMap<ById, usize>,
    from_peers: HashSet<String>,
}

impl Alerts {
    fn new(list: Vec<Arc<Alert>>, from_peers: HashSet<String>) -> Alerts {
        let mut by_id = foldhash::HashMap::with_capacity_and_hasher(list.len(), Default::default());
        by_id.extend(list.iter().enumerate().map(|(i, a)| (ById(Arc::clone(a)), i)));
        Alerts { list, by_id, from_peers }
    }
}

/// An alert as a key of the id index: hashed and compared by its id, and looked up by a
/// `&str` (`Borrow<str>`, consistent with `str`'s `Hash` and `Eq`).
#[derive(Debug)]
struct ById(Arc<Alert>);

impl PartialEq for ById {
    fn eq(&self, other: &ById) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.id.as_str().hash(h);
    }
}

impl std::borrow::Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

/// Aggregates of one entity and sector scope, oldest period first.
type Series = Vec<AggregateScore>;

/// The immutable state the API reads.
#[derive(Debug, Clone)]
pub struct Snapshot {
    scores: Arc<Scores>,
    alerts: Arc<Alerts>,
    audit: Arc<Vec<AuditEntry>>,
    stats: PipelineStats,
    generated_at: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Default)]
struct Scores {
    institutions: BTreeMap<String, Arc<InstitutionView>>,
    by_district: BTreeMap<u32, Vec<String>>,
    aggregates: BTreeMap<(Level, String, SectorScope), Series>,
    periods: BTreeSet<Period>,
    cutoffs: HashMap<(Sector, Indicator), IndicatorCutoff>,
    trend: HashMap<(Sector, Period), TrendBaseline>,
    complete_through: Option<Period>,
    from_peers: HashSet<AggregateKey>,
}

impl Snapshot {
    /// A snapshot with nothing in it (before the first batch).
    pub fn empty() -> Snapshot {
        Snapshot::new(SnapshotParts::default())
    }

    /// Builds the snapshot and its indices.
    pub fn new(parts: SnapshotParts) -> Snapshot {
        let mut scores =
            Scores { complete_through: parts.complete_through, from_peers: parts.peer_aggregates, ..Scores::default() };
        for a in parts.aggregates {
            scores.periods.insert(a.period);
            scores.aggregates.entry((a.level, a.entity_id.clone(), a.sector)).or_default().push(a);
        }
        for series in scores.aggregates.values_mut() {
            series.sort_by_key(|a| a.period);
        }
        for mut inst in parts.institutions {
            // Copied only when out of order: the pipeline's views come in order.
            if !inst.scores.is_sorted_by_key(|s| s.period) || !inst.reports.is_sorted_by_key(|r| r.period) {
                let view = Arc::make_mut(&mut inst);
                view.scores.sort_by_key(|s| s.period);
                view.reports.sort_by_key(|r| r.period);
            }
            scores.by_district.entry(inst.district_code).or_default().push(inst.id.clone());
            scores.institutions.insert(inst.id.clone(), inst);
        }
        scores.cutoffs = parts.cutoffs.into_iter().map(|c| ((c.sector, c.indicator), c)).collect();
        scores.trend = parts.trend_baselines.into_iter().collect();
        Snapshot {
            scores: Arc::new(scores),
            alerts: Arc::new(Alerts::new(parts.alerts, parts.peer_alerts)),
            audit: Arc::new(parts.audit),
            stats: parts.stats,
            generated_at: parts.generated_at,
        }
    }

    /// A copy with one alert replaced (or added) and an audit entry appended: what an
    /// action changes. The scores are shared, not copied. The alert is this instance's own.
    pub fn with_action(&self, alert: Arc<Alert>, entry: Option<AuditEntry>) -> Snapshot {
        let mut list = self.alerts.list.clone();
        let mut from_peers = self.alerts.from_peers.clone();
        from_peers.remove(&alert.id);
        match self.alerts.by_id.get(alert.id.as_str()) {
            Some(&i) => list[i] = alert,
            None => list.push(alert),
        }
        let mut audit = self.audit.clone();
        if let Some(e) = entry {
            Arc::make_mut(&mut audit).push(e);
        }
        Snapshot { alerts: Arc::new(Alerts::new(list, from_peers)), audit, ..self.clone() }
    }

    /// Where an aggregate comes from, when not from this instance's engine.
    pub fn aggregate_source(&self, a: &AggregateScore) -> Option<Source> {
        let key = (a.level, a.entity_id.clone(), a.sector, a.period);
        self.scores.from_peers.contains(&key).then_some(match a.level {
            Level::District | Level::Institution => Source::Peer,
            Level::Region | Level::City => Source::Merged,
        })
    }

    /// Whether a peer's alerts or district scores name this institution (so another
    /// instance holds it).
    pub fn peer_mentions_institution(&self, id: &str) -> bool {
        let alerted = self
            .alerts
            .from_peers
            .iter()
            .filter_map(|a| self.alert(a))
            .any(|a| a.entity_kind == yujing_model::EntityKind::Institution && *a.entity_id == *id);
        alerted
            || self.scores.aggregates.iter().filter(|((l, _, _), _)| *l == Level::District).any(|(_, series)| {
                series
                    .iter()
                    .any(|a| self.aggregate_source(a).is_some() && a.top.iter().any(|c| c.institution_id == id))
            })
    }

    /// [`Source::Peer`] for an alert read from the peers' alerts topic.
    pub fn alert_source(&self, id: &str) -> Option<Source> {
        self.alerts.from_peers.contains(id).then_some(Source::Peer)
    }

    /// The period the API shows by default: the latest whose reports are all due, else the
    /// latest with data.
    pub fn default_period(&self) -> Option<Period> {
        let latest = self.scores.periods.last().copied();
        match (self.scores.complete_through, latest) {
            (Some(c), Some(l)) => Some(c.min(l)),
            (_, l) => l,
        }
    }

    /// Every period with aggregates, oldest first.
    pub fn periods(&self) -> impl Iterator<Item = Period> + '_ {
        self.scores.periods.iter().copied()
    }

    /// Whether a period has aggregates.
    pub fn has_period(&self, p: Period) -> bool {
        self.scores.periods.contains(&p)
    }

    /// An aggregate's series, oldest period first.
    pub fn series(&self, level: Level, id: &str, scope: SectorScope) -> &[AggregateScore] {
        self.scores.aggregates.get(&(level, id.to_string(), scope)).map_or(&[], Vec::as_slice)
    }

    /// One aggregate.
    pub fn aggregate(&self, level: Level, id: &str, scope: SectorScope, p: Period) -> Option<&AggregateScore> {
        let s = self.series(level, id, scope);
        s.binary_search_by_key(&p, |a| a.period).ok().map(|i| &s[i])
    }

    /// Every aggregate of a level and sector scope in a period, by entity id.
    pub fn aggregates_at(&self, level: Level, scope: SectorScope, p: Period) -> Vec<&AggregateScore> {
        self.scores
            .aggregates
            .iter()
            .filter(|((l, _, s), _)| *l == level && *s == scope)
            .filter_map(|(_, series)| series.binary_search_by_key(&p, |a| a.period).ok().map(|i| &series[i]))
            .collect()
    }

    /// An institution.
    pub fn institution(&self, id: &str) -> Option<&InstitutionView> {
        self.scores.institutions.get(id).map(|v| &**v)
    }

    /// The institutions of a district.
    pub fn institutions_in(&self, code: u32) -> impl Iterator<Item = &InstitutionView> + '_ {
        self.scores
            .by_district
            .get(&code)
            .into_iter()
            .flatten()
            .filter_map(|id| self.scores.institutions.get(id).map(|v| &**v))
    }

    /// Every institution, by id.
    pub fn institutions(&self) -> impl Iterator<Item = &InstitutionView> + '_ {
        self.scores.institutions.values().map(|v| &**v)
    }

    /// A score's trend z-score, against its sector-period's baseline.
    pub fn trend_z(&self, s: &InstitutionScore) -> Option<f64> {
        s.trend_z(self.scores.trend.get(&(s.sector, s.period)))
    }

    /// The cutoffs of an indicator in a sector, when known.
    pub fn cutoff(&self, sector: Sector, indicator: Indicator) -> Option<&IndicatorCutoff> {
        self.scores.cutoffs.get(&(sector, indicator))
    }

    /// The current alerts.
    pub fn alerts(&self) -> impl ExactSizeIterator<Item = &Alert> + '_ {
        self.alerts.list.iter().map(|a| &**a)
    }

    /// An alert by id.
    pub fn alert(&self, id: &str) -> Option<&Alert> {
        self.alerts.by_id.get(id).map(|&i| &*self.alerts.list[i])
    }

    /// Open and acknowledged alerts by severity, of the alerts `keep` accepts.
    pub fn open_counts(&self, keep: impl Fn(&Alert) -> bool) -> BTreeMap<Severity, u32> {
        let mut m: BTreeMap<Severity, u32> = Severity::ALL.into_iter().map(|s| (s, 0)).collect();
        for a in self.alerts.list.iter().filter(|a| a.state.is_active() && keep(a)) {
            *m.entry(a.severity).or_default() += 1;
        }
        m
    }

    /// People's actions, oldest first.
    pub fn audit(&self) -> &[AuditEntry] {
        &self.audit
    }

    /// Counts so far.
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// When the pipeline built it.
    pub fn generated_at(&self) -> Option<DateTime<FixedOffset>> {
        self.generated_at
    }
}

/// Where the pipeline publishes snapshots and requests read them: an `Arc<Snapshot>`
/// swapped behind a lock that is held only to clone or replace the `Arc`.
#[derive(Debug, Clone)]
pub struct SnapshotHandle {
    cell: Arc<RwLock<Arc<Snapshot>>>,
}

impl SnapshotHandle {
    /// A handle holding a first snapshot.
    pub fn new(first: Snapshot) -> SnapshotHandle {
        SnapshotHandle { cell: Arc::new(RwLock::new(Arc::new(first))) }
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        match self.cell.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the current snapshot.
    pub fn publish(&self, next: Snapshot) {
        let next = Arc::new(next);
        match self.cell.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}
