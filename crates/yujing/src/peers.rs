//! The whole-city view of a scaled-out deployment (DESIGN §8).
//!
//! Instances of one consumer group split the reports topic's partitions, which are keyed
//! by district, so each engine holds only its own districts. Every instance publishes its
//! district scores to `yujing.scores` and its alert transitions to `yujing.alerts`
//! ([`crate::outbox`]); the [`PeerView`] reads both topics in full, from their beginning
//! and outside any consumer group, and keeps the latest district score per key and the
//! latest state per alert id (skipping the alerts this instance's own store published,
//! told by their `yujing.origin` header: the engine holds those, and with one instance
//! keeping a second copy of every alert only cost memory). [`PeerState::merge`] then adds to the API's snapshot what this
//! instance's engine does not hold: peers' district scores and alerts, and regions and the
//! city recomputed over every instance's districts. The engine's own state always wins.
//!
//! The same reader follows `yujing.alert-actions`: actions people took on another
//! instance's API on alerts this one holds ([`crate::forward`]).
//!
//! A record that cannot be read is counted and logged, never retried: the reader never
//! stalls. The brokers being away only makes the view older; the reader retries by itself.

use crate::forward::ForwardedAction;
use crate::metrics::Metrics;
use crate::service::KafkaConfig;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use yujing_ingest::kafka::KafkaTableConfig;
use yujing_model::{AggregateScore, Alert, AlertState, CITY_CODE, Contributor, Level, Period, Sector, SectorScope};
use yujing_score::GradeCutoffs;
use yujing_serve::SnapshotParts;

/// The `[peers]` section: reading the other instances' published scores and alerts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersConfig {
    /// Whether `yujing run` reads `kafka.scores_topic`, `kafka.alerts_topic` and
    /// `kafka.alert_actions_topic` in full to serve the whole city (the districts of every
    /// instance of the group) and forwards actions on the other instances' alerts.
    pub enabled: bool,
    /// The most records applied to the view at once.
    pub batch_max_messages: usize,
    /// How long one read waits for a first record, e.g. "500ms".
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// How long the broker may hold one of the reader's fetches while nothing new comes
    /// (librdkafka's `fetch.wait.max.ms`), e.g. "500ms"; it overrides `[kafka.client]`'s, which
    /// the source may need short. The view is not on an alert's way out, and a short wait
    /// only loads the broker with empty fetches.
    #[serde(with = "humantime_serde")]
    pub fetch_wait: Duration,
}

impl PeersConfig {
    /// The reader of the peers' topics: the client settings of `kafka`, with the fetch wait
    /// of [`PeersConfig::fetch_wait`].
    pub fn reader_config(&self, kafka: &KafkaConfig) -> KafkaTableConfig {
        let mut extra = kafka.client.clone();
        extra.insert("fetch.wait.max.ms".into(), self.fetch_wait.as_millis().to_string());
        KafkaTableConfig {
            brokers: kafka.brokers.clone(),
            topics: vec![kafka.scores_topic.clone(), kafka.alerts_topic.clone(), kafka.alert_actions_topic.clone()],
            batch_max_messages: self.batch_max_messages,
            batch_max_wait: self.batch_max_wait,
            extra,
        }
    }

    /// Starts reading the peers' topics (inside a tokio runtime); `None` when disabled.
    /// Alerts published from the store of `origin` (this instance's, see
    /// [`yujing_store::Store::origin`]) are skipped: the engine holds them already.
    pub fn build(&self, kafka: &KafkaConfig, origin: &str, metrics: Option<Arc<Metrics>>) -> Result<Option<PeerView>> {
        if !self.enabled {
            return Ok(None);
        }
        let mut reader = self.reader_config(kafka).build()?;
        let view = PeerView { state: Arc::new(Mutex::new(PeerState::default())), version: Arc::default() };
        let topics = Topics {
            scores: kafka.scores_topic.clone(),
            alerts: kafka.alerts_topic.clone(),
            actions: kafka.alert_actions_topic.clone(),
            origin: origin.as_bytes().to_vec(),
        };
        let task_view = view.clone();
        let task = tokio::spawn(async move {
            loop {
                let batch = match reader.next_batch().await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "the peers' topics cannot be read any more; the whole-city view stops here");
                        return;
                    }
                };
                if batch.is_empty() {
                    continue;
                }
                let mut counts = (0usize, 0usize);
                {
                    let mut state = task_view.lock();
                    for r in &batch {
                        match state.apply_record(r, &topics) {
                            Read::Applied | Read::Own => counts.0 += 1,
                            Read::Other => {}
                            Read::Malformed(why) => {
                                counts.1 += 1;
                                tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset,
                                    reason = %why, "a peer record cannot be read; skipped");
                            }
                        }
                    }
                }
                task_view.version.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &metrics {
                    m.record_peer_records(counts.0, counts.1);
                }
                tracing::debug!(records = batch.len(), malformed = counts.1, "peer records applied");
            }
        });
        tracing::info!(scores = %kafka.scores_topic, alerts = %kafka.alerts_topic, actions = %kafka.alert_actions_topic,
            "reading the peers' scores, alerts and forwarded actions");
        drop(task);
        Ok(Some(view))
    }
}

/// The peers' latest scores and alerts, shared between the reading task and the API link.
#[derive(Debug, Clone)]
pub struct PeerView {
    state: Arc<Mutex<PeerState>>,
    version: Arc<AtomicU64>,
}

impl PeerView {
    /// A view fed by hand (tests).
    pub fn from_state(state: PeerState) -> PeerView {
        PeerView { state: Arc::new(Mutex::new(state)), version: Arc::default() }
    }

    /// The state, locked (briefly: the reader waits meanwhile).
    pub fn lock(&self) -> MutexGuard<'_, PeerState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Increases with every batch of records applied.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

/// The topics the view reads, and this instance's origin.
#[derive(Debug, Clone)]
pub struct Topics {
    /// District scores.
    pub scores: String,
    /// Alerts.
    pub alerts: String,
    /// Forwarded actions.
    pub actions: String,
    /// The origin of this instance's store: its own alerts carry it in their
    /// [`crate::outbox::ORIGIN_HEADER`].
    pub origin: Vec<u8>,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Applied to the view.
    Applied,
    /// One of this instance's own alerts: the engine holds it, so it is not kept.
    Own,
    /// Of none of the view's topics.
    Other,
    /// Unreadable, with the reason: counted and skipped.
    Malformed(String),
}

/// Which of the peers' topics a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// District scores (key: district, sector and period).
    Scores,
    /// Alerts (key: alert id).
    Alerts,
    /// Actions on alerts, forwarded to the instance holding them (key: district code).
    Actions,
}

/// Integer sums (in fen) behind a district's ratios, published next to its scores record so
/// that regions and the city can be recomputed exactly over the districts of several
/// instances. Not part of the aggregate itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistrictSums {
    /// Σ NPLs of banks and microloan companies.
    pub npl: i64,
    /// Σ loans of banks and microloan companies.
    pub loans: i64,
    /// Σ payouts this year of guarantee companies.
    pub payouts: i64,
    /// Σ guarantees released this year.
    pub released: i64,
}

impl DistrictSums {
    /// Adds another's sums.
    pub fn add(&mut self, o: DistrictSums) {
        self.npl += o.npl;
        self.loans += o.loans;
        self.payouts += o.payouts;
        self.released += o.released;
    }
}

/// The extra field of a published scores record.
#[derive(Deserialize)]
struct WithSums {
    #[serde(default)]
    sums: Option<DistrictSums>,
}

/// A peer's district score as read.
#[derive(Debug, Clone)]
struct PeerScore {
    score: AggregateScore,
    sums: Option<DistrictSums>,
}

/// Counts of the records read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// Records applied (tombstones included).
    pub applied: u64,
    /// Records that could not be read (skipped).
    pub malformed: u64,
}

/// The latest district score per key and the latest state per alert id, as published.
#[derive(Debug, Default)]
pub struct PeerState {
    scores: HashMap<String, PeerScore>,
    /// By id, so that [`merge`](Self::merge) adds them in id order without sorting them
    /// for every snapshot.
    alerts: BTreeMap<String, Arc<Alert>>,
    /// Forwarded actions read and not yet taken by the pipeline.
    forwarded: Vec<ForwardedAction>,
    counters: PeerCounters,
}

/// The key of a district's scores record on the scores topic.
pub fn score_key(a: &AggregateScore) -> String {
    format!("{}:{}:{}", a.entity_id, a.sector, a.period)
}

impl PeerState {
    /// Applies one record: a later record of a key replaces the earlier one, a tombstone
    /// (no value) removes it. A record that cannot be read is counted and left out, with
    /// the reason returned.
    pub fn apply(&mut self, table: Table, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<(), String> {
        let outcome = self.read(table, key, value);
        match outcome {
            Ok(()) => self.counters.applied += 1,
            Err(_) => self.counters.malformed += 1,
        }
        outcome
    }

    fn read(&mut self, table: Table, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<(), String> {
        let key = key.ok_or("no key")?;
        let key = std::str::from_utf8(key).map_err(|_| "the key is not UTF-8")?.to_string();
        let Some(value) = value else {
            match table {
                Table::Scores => drop(self.scores.remove(&key)),
                Table::Alerts => drop(self.alerts.remove(&key)),
                Table::Actions => {}
            }
            return Ok(());
        };
        match table {
            Table::Scores => {
                let score: AggregateScore = serde_json::from_slice(value).map_err(|e| format!("not a score: {e}"))?;
                if score.level != Level::District {
                    return Err(format!("a {} score on the district scores topic", score.level.as_str()));
                }
                if score_key(&score) != key {
                    return Err(format!("key {key:?} does not match its score {:?}", score_key(&score)));
                }
                let sums = serde_json::from_slice::<WithSums>(value).ok().and_then(|w| w.sums);
                self.scores.insert(key, PeerScore { score, sums });
            }
            Table::Alerts => {
                let alert: Alert = serde_json::from_slice(value).map_err(|e| format!("not an alert v1: {e}"))?;
                if alert.id != key {
                    return Err(format!("key {key:?} does not match alert {:?}", alert.id));
                }
                self.alerts.insert(key, Arc::new(alert));
            }
            Table::Actions => {
                let action: ForwardedAction =
                    serde_json::from_slice(value).map_err(|e| format!("not a forwarded action: {e}"))?;
                if action.district_code != key {
                    return Err(format!("key {key:?} is not the action's district {:?}", action.district_code));
                }
                self.forwarded.push(action);
            }
        }
        Ok(())
    }

    /// Applies one record read from `topics` (see [`PeerState::apply`]), unless it is one
    /// of this instance's own alerts.
    pub fn apply_record(&mut self, r: &yujing_ingest::kafka::TableRecord, topics: &Topics) -> Read {
        let table = if r.topic == topics.scores {
            Table::Scores
        } else if r.topic == topics.alerts {
            if r.header(crate::outbox::ORIGIN_HEADER) == Some(topics.origin.as_slice()) {
                return Read::Own;
            }
            Table::Alerts
        } else if r.topic == topics.actions {
            Table::Actions
        } else {
            return Read::Other;
        };
        match self.apply(table, r.key.as_deref(), r.value.as_deref()) {
            Ok(()) => Read::Applied,
            Err(why) => Read::Malformed(why),
        }
    }

    /// The forwarded actions read since the last call, oldest first (for the pipeline to
    /// apply those on alerts it holds: [`crate::serve::ApiLink::apply_forwarded`]).
    pub fn take_forwarded(&mut self) -> Vec<ForwardedAction> {
        std::mem::take(&mut self.forwarded)
    }

    /// Whether forwarded actions wait to be taken.
    pub fn has_forwarded(&self) -> bool {
        !self.forwarded.is_empty()
    }

    /// Counts so far.
    pub fn counters(&self) -> PeerCounters {
        self.counters
    }

    /// The latest alert of an id, as published.
    pub fn alert(&self, id: &str) -> Option<&Alert> {
        self.alerts.get(id).map(|a| &**a)
    }

    /// Whether [`merge`](Self::merge) would add anything to these parts: a district score or
    /// a current alert this instance's engine does not hold. (With one instance, the view
    /// holds only what the engine published itself.)
    pub fn contributes(&self, parts: &SnapshotParts) -> bool {
        if !self.alerts.is_empty() {
            let own_alerts = own_alert_ids(parts);
            if self.alerts.values().any(|a| a.state != AlertState::Superseded && !own_alerts.contains(a.id.as_str())) {
                return true;
            }
        }
        let own = own_districts(parts);
        self.scores.values().any(|p| !own.contains(&(p.score.entity_id.as_str(), p.score.sector, p.score.period)))
    }

    /// Adds the peers' view to a snapshot of this instance's engine.
    ///
    /// - Districts: a peer's district score (district, sector scope, period) is added unless
    ///   the engine has that aggregate; it is marked as a peer's.
    /// - Alerts: a peer's alert is added unless the engine has that id, or it was superseded.
    /// - Regions and the city, for every sector scope and period that has a peer's district:
    ///   recomputed over the engine's and the peers' districts, from the same integer sums the
    ///   scoring takes them from, and marked as merged. The ratios (NPL, payout) need each
    ///   district's sums: without them for every district a merged ratio is left out.
    pub fn merge(&self, parts: &mut SnapshotParts, grades: &GradeCutoffs) {
        let own = own_districts(parts);
        let mut added = Vec::new();
        for p in self.scores.values() {
            let a = &p.score;
            if !own.contains(&(a.entity_id.as_str(), a.sector, a.period)) {
                added.push(a.clone());
            }
        }
        let own_alerts = own_alert_ids(parts);
        let alerts: Vec<Arc<Alert>> = self
            .alerts
            .values()
            .filter(|a| a.state != AlertState::Superseded && !own_alerts.contains(a.id.as_str()))
            .cloned()
            .collect();
        parts.peer_alerts.extend(alerts.iter().map(|a| a.id.clone()));
        parts.alerts.extend(alerts);
        if added.is_empty() {
            return;
        }
        let groups: HashSet<(SectorScope, Period)> = added.iter().map(|a| (a.sector, a.period)).collect();
        for a in &added {
            parts.peer_aggregates.insert((a.level, a.entity_id.clone(), a.sector, a.period));
        }
        parts.aggregates.extend(added);
        // Regions and the city of those groups, over every district now in the parts.
        parts
            .aggregates
            .retain(|a| !(matches!(a.level, Level::Region | Level::City) && groups.contains(&(a.sector, a.period))));
        let mut members: BTreeMap<(Level, String, SectorScope, Period), Vec<&AggregateScore>> = BTreeMap::new();
        for a in
            parts.aggregates.iter().filter(|a| a.level == Level::District && groups.contains(&(a.sector, a.period)))
        {
            let region = a.entity_id.parse().ok().and_then(yujing_model::district).map(|d| d.region.id());
            if let Some(region) = region {
                members.entry((Level::Region, region.to_string(), a.sector, a.period)).or_default().push(a);
            }
            members.entry((Level::City, CITY_CODE.to_string(), a.sector, a.period)).or_default().push(a);
        }
        let merged: Vec<AggregateScore> = members
            .into_iter()
            .map(|((level, id, scope, period), districts)| {
                let sums = districts.iter().map(|d| self.sums_of(d)).collect::<Option<Vec<_>>>();
                combine(level, &id, scope, period, &districts, sums.as_deref(), grades)
            })
            .collect();
        for a in &merged {
            parts.peer_aggregates.insert((a.level, a.entity_id.clone(), a.sector, a.period));
        }
        parts.aggregates.extend(merged);
    }

    /// A district's sums, from its record on the scores topic (this instance's own records
    /// are read back from there too).
    fn sums_of(&self, d: &AggregateScore) -> Option<DistrictSums> {
        self.scores.get(&score_key(d)).and_then(|p| p.sums)
    }
}

/// The ids of the alerts the engine holds (foldhash: this set is built for every snapshot).
fn own_alert_ids(parts: &SnapshotParts) -> foldhash::HashSet<&str> {
    let mut ids = foldhash::HashSet::with_capacity_and_hasher(parts.alerts.len(), Default::default());
    ids.extend(parts.alerts.iter().map(|a| a.id.as_str()));
    ids
}

/// The (district, sector scope, period) of every district aggregate the engine holds.
fn own_districts(parts: &SnapshotParts) -> HashSet<(&str, SectorScope, Period)> {
    parts
        .aggregates
        .iter()
        .filter(|a| a.level == Level::District)
        .map(|a| (a.entity_id.as_str(), a.sector, a.period))
        .collect()
}

/// A region or the city from its districts' aggregates: counts, exposure, the score and
/// the P2P sums are exact integer sums, as the scoring crate takes them, so they equal what
/// one instance holding every district computes; the ratios when every district's sums are
/// known; the top contributors re-ranked from the districts' own.
fn combine(
    level: Level,
    id: &str,
    scope: SectorScope,
    period: Period,
    districts: &[&AggregateScore],
    sums: Option<&[DistrictSums]>,
    grades: &GradeCutoffs,
) -> AggregateScore {
    let fen = |v: f64| (v * 100.0).round() as i64;
    let mut institutions = 0u32;
    let mut grade_counts = [0u32; 5];
    let (mut exposure, mut weighted, mut score_sum, mut complaints, mut lenders) = (0i64, 0i64, 0i64, 0i64, 0i64);
    for d in districts {
        institutions += d.institutions;
        for (g, n) in grade_counts.iter_mut().zip(d.grade_counts) {
            *g += n;
        }
        exposure += fen(d.exposure);
        // score = weighted / exposure (yuan), or the mean of the scores when there is none.
        weighted += (d.score * d.exposure).round() as i64;
        score_sum += (d.score * f64::from(d.institutions.max(1)) * 1e6).round() as i64;
        complaints += d.p2p_complaints.map_or(0, fen);
        lenders += d.p2p_lenders_unpaid.map_or(0, fen);
    }
    let score = if exposure > 0 {
        weighted as f64 / (exposure as f64 / 100.0)
    } else {
        score_sum as f64 / 1e6 / f64::from(institutions.max(1))
    };
    let has = |s: Sector| matches!(scope, SectorScope::All) || scope == SectorScope::One(s);
    let lending = has(Sector::Bank) || has(Sector::Microloan);
    let total = sums.map(|all| {
        let mut t = DistrictSums::default();
        for s in all {
            t.add(*s);
        }
        t
    });
    let ratio = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
    let exposure_yuan = exposure as f64 / 100.0;
    let mut top: Vec<Contributor> = districts
        .iter()
        .flat_map(|d| {
            d.top.iter().map(move |c| {
                let points = if exposure_yuan > 0.0 {
                    if d.exposure > 0.0 { c.points * d.exposure / exposure_yuan } else { 0.0 }
                } else {
                    c.score / f64::from(institutions.max(1))
                };
                Contributor { institution_id: c.institution_id.clone(), score: c.score, points }
            })
        })
        .collect();
    top.sort_by(|x, y| y.points.total_cmp(&x.points).then_with(|| x.institution_id.cmp(&y.institution_id)));
    top.truncate(yujing_score::aggregate::TOP_CONTRIBUTORS);
    AggregateScore {
        level,
        entity_id: id.to_string(),
        entity_name: yujing_score::entity_name(level, id),
        sector: scope,
        period,
        score,
        grade: grades.grade(score),
        institutions,
        grade_counts,
        exposure: exposure_yuan,
        npl_ratio: if lending { total.and_then(|t| ratio(t.npl, t.loans)) } else { None },
        payout_rate: if has(Sector::Guarantee) { total.and_then(|t| ratio(t.payouts, t.released)) } else { None },
        p2p_complaints: has(Sector::P2pResidual).then_some(complaints as f64 / 100.0),
        p2p_lenders_unpaid: has(Sector::P2pResidual).then_some(lenders as f64 / 100.0),
        top,
    }
}

#[cfg(test)]
mod tests;
