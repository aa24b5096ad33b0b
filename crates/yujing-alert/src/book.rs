//! The alert book: what is published, how a fresh derivation changes it, and people's
//! actions on it.
//!
//! The book keeps, per alert id, the alert as the engine last derived it and, once people's
//! actions change it, the alert as published: the derived one with them laid over it (an
//! alert nobody acted on is held once). Actions are kept apart,
//! keyed by the deterministic alert id, so they survive any number of re-derivations and
//! can be persisted and restored on their own.

use crate::{Error, Result};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use yujing_model::{Alert, AlertState, EntityKind, Period, SectorScope, Severity, Transition, TransitionKind};

/// Who the engine's own transitions are `by`.
pub const ENGINE: &str = "yujing";

/// A person's action on an alert, as recorded and persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The alert acted on.
    pub alert_id: String,
    /// Who acted.
    pub by: String,
    /// When.
    pub at: DateTime<FixedOffset>,
    /// The alert's severity when the person acted. A resolution stands until the derived
    /// severity rises above it.
    pub severity: Severity,
    /// What they did.
    pub kind: ActionKind,
}

/// What a person did to an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ActionKind {
    /// Took the alert: an open alert shows as acknowledged.
    Acknowledge,
    /// Gave the alert to someone.
    Assign {
        /// To whom.
        assignee: String,
    },
    /// Closed the alert, saying why.
    Resolve {
        /// Why.
        note: String,
    },
}

impl ActionKind {
    fn verb(&self) -> &'static str {
        match self {
            ActionKind::Acknowledge => "acknowledge",
            ActionKind::Assign { .. } => "assign",
            ActionKind::Resolve { .. } => "resolve",
        }
    }

    fn transition(&self) -> TransitionKind {
        match self {
            ActionKind::Acknowledge => TransitionKind::Acknowledged,
            ActionKind::Assign { .. } => TransitionKind::Assigned,
            ActionKind::Resolve { .. } => TransitionKind::Resolved,
        }
    }
}

/// One alert id in the book.
#[derive(Debug, Clone)]
enum Entry {
    /// The alert is held.
    Held(Held),
    /// A superseded alert that [`AlertBook::take_changed`] handed over: nothing reads it any
    /// more (the store keeps it), so only its id's place is kept. Superseded alerts are
    /// about half of a long history's.
    Taken,
}

impl Entry {
    /// The alert as published, when it is held.
    fn view(&self) -> Option<&Arc<Alert>> {
        match self {
            Entry::Held(h) => Some(h.view()),
            Entry::Taken => None,
        }
    }

    fn state(&self) -> AlertState {
        self.view().map_or(AlertState::Superseded, |a| a.state)
    }
}

/// A held alert. Both forms are shared: the API's snapshots and the transitions hold the
/// same allocation, not copies.
#[derive(Debug, Clone)]
struct Held {
    /// As the engine derived it last (state open, auto-resolved or superseded).
    derived: Arc<Alert>,
    /// As published, when people's actions make it differ from `derived`: `derived` with
    /// them laid over it. Most alerts are never acted on and are held once.
    overlaid: Option<Arc<Alert>>,
}

impl Held {
    fn new(derived: Alert, view: Alert) -> Held {
        let derived = Arc::new(derived);
        let overlaid = (view != *derived).then(|| Arc::new(view));
        Held { derived, overlaid }
    }

    /// The alert as published.
    fn view(&self) -> &Arc<Alert> {
        self.overlaid.as_ref().unwrap_or(&self.derived)
    }

    /// A freshly derived alert (no assignee, no note) with people's actions laid over it.
    /// Without actions it is published as derived: no copy is made to compare.
    fn with_actions(derived: Alert, actions: Option<&Vec<Action>>) -> Held {
        match actions {
            Some(actions) => {
                let view = overlay(&derived, Some(actions));
                Held::new(derived, view)
            }
            None => Held { derived: Arc::new(derived), overlaid: None },
        }
    }

    fn set_view(&mut self, view: Alert) {
        self.overlaid = (view != *self.derived).then(|| Arc::new(view));
    }
}

/// The ids ever published for each entity: by kind and sector scope, then by entity id (so
/// that a lookup by a borrowed id allocates nothing: the engine asks once per re-scored
/// institution).
type Entities = BTreeMap<(EntityKind, SectorScope), BTreeMap<Arc<str>, BTreeSet<String>>>;

/// An alert's engine transitions in one reconcile, each with the alert after it.
type Changes = Vec<(TransitionKind, Arc<Alert>)>;

/// The published alerts and people's actions on them.
#[derive(Debug, Clone, Default)]
pub struct AlertBook {
    /// Every alert id, hashed: alert ids share long prefixes, which makes a search tree's
    /// comparisons slow, and the book is asked about each re-scored institution.
    entries: foldhash::HashMap<String, Entry>,
    /// `(opening period, id)` of every entry, for ordered listing.
    order: BTreeSet<(Period, String)>,
    /// The ids ever published for each entity.
    entities: Entities,
    /// People's actions per alert id, each list in the order taken.
    actions: BTreeMap<String, Vec<Action>>,
    /// Ids whose published view [`AlertBook::reconcile`] changed since the last
    /// [`AlertBook::take_changed`].
    changed: BTreeSet<String>,
}

impl AlertBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a book from what a store kept: the alerts as last published (any state)
    /// and the recorded actions (see [`AlertBook::actions`]). No transitions are
    /// produced; the next [`reconcile`](AlertBook::reconcile) of each entity publishes
    /// only what changed since.
    ///
    /// Actions may name alerts not (yet) in the book; they apply when the id is derived.
    pub fn restore(published: impl IntoIterator<Item = Alert>, actions: impl IntoIterator<Item = Action>) -> Self {
        let mut book = AlertBook::new();
        for action in actions {
            book.actions.entry(action.alert_id.clone()).or_default().push(action);
        }
        for view in published {
            let mut derived = view.clone();
            derived.assignee = None;
            derived.note = None;
            derived.state = match view.state {
                AlertState::AutoResolved | AlertState::Superseded => view.state,
                AlertState::Open | AlertState::Acknowledged | AlertState::Resolved => {
                    derived.resolved_at = None;
                    AlertState::Open
                }
            };
            let taken = (view.state == AlertState::Superseded).then(|| view.id.clone());
            book.put(Held::new(derived, view));
            if let Some(id) = taken {
                // The store keeps it: taken at once.
                book.take(&id);
            }
        }
        book
    }

    /// Replaces what is published for one entity (kind, id and sector scope) by a freshly
    /// derived history (see [`crate::derive()`]) and returns the transitions to publish.
    ///
    /// - an id new to the book: `Opened` (then `AutoResolved` if it is already resolved);
    /// - a known id whose severity rose: `Escalated` (a person's resolution made at a
    ///   lower severity is void: the alert reopens);
    /// - a known id that went from active to auto-resolved: `AutoResolved`;
    /// - an auto-resolved or superseded id that is active (or derived) again: `Opened`;
    /// - a published id of the entity missing from `derived`: `Superseded` (kept for
    ///   [`get`](AlertBook::get) until [`take_changed`](AlertBook::take_changed) hands it
    ///   over, left out of [`current`](AlertBook::current)).
    ///
    /// Other changes (evidence, last period) update silently. Transitions come ordered by
    /// the alert's opening period, then id, each alert's in the order they happened.
    /// Alerts in `derived` that belong to another entity are ignored (and logged).
    pub fn reconcile(
        &mut self,
        kind: EntityKind,
        entity_id: &str,
        sector: SectorScope,
        derived: Vec<Alert>,
    ) -> Vec<Transition> {
        self.reconcile_after(kind, entity_id, sector, None, derived)
    }

    /// [`reconcile`](AlertBook::reconcile) with the history derived only from the points
    /// after period `after` (see [`crate::Derived::quiet`]): the entity's alerts opened up to
    /// `after` are left as they are, the others are reconciled with `derived`.
    pub fn reconcile_after(
        &mut self,
        kind: EntityKind,
        entity_id: &str,
        sector: SectorScope,
        after: Option<Period>,
        derived: Vec<Alert>,
    ) -> Vec<Transition> {
        let mut fresh: BTreeMap<String, Alert> = BTreeMap::new();
        for mut alert in derived {
            if alert.entity_kind != kind || &*alert.entity_id != entity_id || alert.sector != sector {
                tracing::warn!(
                    alert = %alert.id, entity = entity_id, "reconcile: alert of another entity ignored"
                );
                continue;
            }
            if alert.state != AlertState::AutoResolved {
                alert.state = AlertState::Open;
                alert.resolved_at = None;
            }
            alert.assignee = None;
            alert.note = None;
            fresh.insert(alert.id.clone(), alert);
        }
        let mut staged: Vec<(Period, String, Changes)> = Vec::new();
        let published = self.ids_of(kind, entity_id, sector).cloned().unwrap_or_default();
        for id in published.iter().filter(|id| !fresh.contains_key(*id)) {
            let Some(Entry::Held(entry)) = self.entries.get_mut(id) else {
                continue;
            };
            if entry.derived.state == AlertState::Superseded || after.is_some_and(|a| entry.derived.period <= a) {
                continue;
            }
            Arc::make_mut(&mut entry.derived).state = AlertState::Superseded;
            entry.set_view(overlay(&entry.derived, self.actions.get(id)));
            self.changed.insert(id.clone());
            let view = entry.view();
            staged.push((view.period, id.clone(), vec![(TransitionKind::Superseded, view.clone())]));
        }
        for (id, derived) in fresh {
            let entry = Held::with_actions(derived, self.actions.get(&id));
            let previous = self.entries.get(&id).and_then(Entry::view).map(|a| &**a);
            if previous != Some(&**entry.view()) {
                self.changed.insert(id.clone());
            }
            let changes = engine_changes(previous, entry.view());
            if !changes.is_empty() {
                staged.push((entry.view().period, id.clone(), changes));
            }
            self.put(entry);
        }
        staged.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let transitions: Vec<Transition> = staged
            .into_iter()
            .flat_map(|(_, _, changes)| changes)
            .map(|(kind, alert)| Transition { kind, by: ENGINE.to_owned(), alert })
            .collect();
        tracing::debug!(
            entity = entity_id,
            sector = %sector,
            transitions = transitions.len(),
            "reconciled"
        );
        transitions
    }

    /// A person acknowledges an open alert.
    pub fn acknowledge(&mut self, id: &str, by: &str, at: DateTime<FixedOffset>) -> Result<Transition> {
        self.act(id, by, at, ActionKind::Acknowledge)
    }

    /// A person assigns an open or acknowledged alert to someone.
    pub fn assign(&mut self, id: &str, assignee: &str, by: &str, at: DateTime<FixedOffset>) -> Result<Transition> {
        if assignee.trim().is_empty() {
            return Err(Error::BlankActor { id: id.to_owned(), field: "assignee" });
        }
        let assignee = assignee.trim().to_owned();
        self.act(id, by, at, ActionKind::Assign { assignee })
    }

    /// A person resolves an open or acknowledged alert, with a note saying why (required).
    pub fn resolve(&mut self, id: &str, by: &str, note: &str, at: DateTime<FixedOffset>) -> Result<Transition> {
        if note.trim().is_empty() {
            return Err(Error::NoteRequired { id: id.to_owned() });
        }
        let note = note.trim().to_owned();
        self.act(id, by, at, ActionKind::Resolve { note })
    }

    fn act(&mut self, id: &str, by: &str, at: DateTime<FixedOffset>, kind: ActionKind) -> Result<Transition> {
        if by.trim().is_empty() {
            return Err(Error::BlankActor { id: id.to_owned(), field: "by" });
        }
        let Some(entry) = self.entries.get_mut(id) else {
            return Err(Error::UnknownAlert { id: id.to_owned() });
        };
        let state = entry.state();
        let refused = !state.is_active() || (kind == ActionKind::Acknowledge && state == AlertState::Acknowledged);
        // A taken alert is superseded: refused.
        let (Entry::Held(entry), false) = (entry, refused) else {
            return Err(Error::InvalidState { id: id.to_owned(), state, action: kind.verb() });
        };
        let transition = kind.transition();
        let list = self.actions.entry(id.to_owned()).or_default();
        list.push(Action {
            alert_id: id.to_owned(),
            by: by.trim().to_owned(),
            at,
            severity: entry.view().severity,
            kind,
        });
        entry.set_view(overlay(&entry.derived, Some(list)));
        Ok(Transition { kind: transition, by: by.trim().to_owned(), alert: Arc::clone(entry.view()) })
    }

    /// Whether an alert of the entity (not superseded) took its evidence from the point of
    /// `period`, its last period. A change of that point's values shows in the alert even
    /// when every rule's outcome stays the same (see [`crate::same_outcomes`]).
    pub fn has_evidence_at(&self, kind: EntityKind, entity_id: &str, sector: SectorScope, period: Period) -> bool {
        self.evidence_at(kind, entity_id, sector, period).next().is_some()
    }

    /// The entity's alerts (not superseded, as derived) that took their evidence from the
    /// point of `period`, with their ids.
    fn evidence_at<'a>(
        &'a self,
        kind: EntityKind,
        entity_id: &str,
        sector: SectorScope,
        period: Period,
    ) -> impl Iterator<Item = (&'a String, &'a Alert)> + 'a {
        self.ids_of(kind, entity_id, sector)
            .into_iter()
            .flatten()
            .filter_map(|id| match self.entries.get(id) {
                Some(Entry::Held(h)) => Some((id, &*h.derived)),
                _ => None,
            })
            .filter(move |(_, d)| d.state != AlertState::Superseded && d.last_period == period)
    }

    /// Sets the composite score and trend z-score in the evidence of the entity's alerts
    /// (not superseded) that took them from the point of `period`: what deriving the
    /// history again gives when only those two figures of that point moved and no rule's
    /// outcome changed (a late report moved the sector-period's trend baseline). Notes the
    /// alerts changed, for the store.
    ///
    /// Returns false, changing nothing, when one of those alerts watches a figure that
    /// moved ([`crate::metrics::SCORE`] or [`crate::metrics::TREND_Z`]): its value and
    /// summary move too, and only deriving its history again gives them.
    pub fn restate_trend(
        &mut self,
        kind: EntityKind,
        entity_id: &str,
        sector: SectorScope,
        period: Period,
        (score, trend_z): (Option<f64>, Option<f64>),
    ) -> bool {
        let mut at: Vec<String> = Vec::new();
        for (id, derived) in self.evidence_at(kind, entity_id, sector, period) {
            let e = &derived.evidence;
            let (score_moved, z_moved) = (e.score.get() != score, e.trend_z.get() != trend_z);
            let watched = |metric: &str| *e.metric == *metric;
            if (score_moved && watched(crate::metrics::SCORE)) || (z_moved && watched(crate::metrics::TREND_Z)) {
                return false;
            }
            if score_moved || z_moved {
                at.push(id.clone());
            }
        }
        for id in at {
            let Some(Entry::Held(h)) = self.entries.get_mut(&id) else { continue };
            for alert in std::iter::once(&mut h.derived).chain(h.overlaid.as_mut()) {
                let e = &mut Arc::make_mut(alert).evidence;
                (e.score, e.trend_z) = (score.into(), trend_z.into());
            }
            self.changed.insert(id);
        }
        true
    }

    /// An alert by id, as published, superseded ones included until
    /// [`take_changed`](AlertBook::take_changed) hands them over.
    pub fn get(&self, id: &str) -> Option<&Alert> {
        self.entries.get(id).and_then(Entry::view).map(|a| &**a)
    }

    /// Every alert except superseded ones, ordered by (opening period, id).
    pub fn current(&self) -> impl Iterator<Item = &Alert> {
        self.current_shared().map(|a| &**a)
    }

    /// [`current`](AlertBook::current), each alert shared: cloning one is a pointer copy.
    pub fn current_shared(&self) -> impl Iterator<Item = &Arc<Alert>> {
        self.order
            .iter()
            .filter_map(|(_, id)| self.entries.get(id).and_then(Entry::view))
            .filter(|a| a.state != AlertState::Superseded)
    }

    /// Every alert held, superseded ones included until
    /// [`take_changed`](AlertBook::take_changed) hands them over, ordered by (opening
    /// period, id).
    pub fn all(&self) -> impl Iterator<Item = &Alert> {
        self.order.iter().filter_map(|(_, id)| self.entries.get(id).and_then(Entry::view)).map(|a| &**a)
    }

    /// The number of alerts in the book, superseded ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book has no alerts.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every recorded action, grouped by alert id (in id order), each alert's in the
    /// order taken: persist them, and hand them back to [`AlertBook::restore`].
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.actions.values().flatten()
    }

    /// The alerts whose published view reconciling changed (opened, updated, closed or
    /// superseded) since the last call, in id order: what a store must write, and nothing it
    /// already holds. The superseded ones are handed over: the book keeps only their ids
    /// (enough to open one again should a later correction derive it anew).
    pub fn take_changed(&mut self) -> Vec<Arc<Alert>> {
        let mut out = Vec::new();
        for id in std::mem::take(&mut self.changed) {
            let Some(view) = self.entries.get(&id).and_then(Entry::view).cloned() else {
                continue;
            };
            if view.state == AlertState::Superseded {
                self.take(&id);
            }
            out.push(view);
        }
        out
    }

    /// Lets go of a held alert, keeping only its id's place.
    fn take(&mut self, id: &str) {
        if let Some(entry) = self.entries.get_mut(id)
            && let Some(view) = entry.view()
        {
            self.order.remove(&(view.period, id.to_owned()));
            *entry = Entry::Taken;
        }
    }

    /// The ids ever published for one entity.
    fn ids_of(&self, kind: EntityKind, entity_id: &str, sector: SectorScope) -> Option<&BTreeSet<String>> {
        self.entities.get(&(kind, sector))?.get(entity_id)
    }

    /// The recorded actions on one alert, in the order taken.
    pub fn actions_for(&self, id: &str) -> &[Action] {
        self.actions.get(id).map_or(&[], Vec::as_slice)
    }

    fn put(&mut self, held: Held) {
        let a = held.view();
        self.order.insert((a.period, a.id.clone()));
        let of_kind = self.entities.entry((a.entity_kind, a.sector)).or_default();
        of_kind.entry(a.entity_id.clone()).or_default().insert(a.id.clone());
        self.entries.insert(a.id.clone(), Entry::Held(held));
    }
}

/// The published form of a derived alert: people's actions laid over it.
///
/// Assignments always show. An acknowledgement shows while the derived alert is open. A
/// resolution shows (state resolved, its note and time) unless the derived severity has
/// risen above the severity it was made at; such a void resolution reopens the alert
/// and voids the acknowledgements before it. Superseded stays superseded.
fn overlay(derived: &Alert, actions: Option<&Vec<Action>>) -> Alert {
    let mut view = derived.clone();
    view.assignee = None;
    view.note = None;
    let mut acked = false;
    let mut resolution: Option<&Action> = None;
    for action in actions.into_iter().flatten() {
        let took_effect = match &action.kind {
            ActionKind::Assign { assignee } => {
                view.assignee = Some(assignee.clone());
                true
            }
            ActionKind::Acknowledge => {
                acked = resolution.is_none();
                acked
            }
            ActionKind::Resolve { .. } if derived.severity > action.severity => {
                resolution = None;
                acked = false;
                false
            }
            ActionKind::Resolve { .. } => {
                resolution = Some(action);
                true
            }
        };
        if took_effect && derived.state != AlertState::Superseded {
            view.updated_at = view.updated_at.max(action.at);
        }
    }
    if derived.state != AlertState::Superseded {
        if let Some(Action { at, kind: ActionKind::Resolve { note }, .. }) = resolution {
            view.state = AlertState::Resolved;
            view.resolved_at = Some(*at);
            view.note = Some(note.clone());
        } else if acked && derived.state == AlertState::Open {
            view.state = AlertState::Acknowledged;
        }
    }
    view
}

/// The alert as it was just before it resolved, for the transition that precedes the
/// resolving one.
fn still_active(view: &Alert, state: AlertState) -> Arc<Alert> {
    let mut a = view.clone();
    a.state = state;
    a.resolved_at = None;
    a.note = None;
    Arc::new(a)
}

/// The engine's transitions from the published `prev` to the new published `new`.
fn engine_changes(prev: Option<&Alert>, new: &Arc<Alert>) -> Changes {
    use AlertState::*;
    use TransitionKind as T;
    let prev = prev.filter(|p| p.state != Superseded);
    let Some(prev) = prev else {
        return if new.state == AutoResolved {
            vec![(T::Opened, still_active(new, Open)), (T::AutoResolved, Arc::clone(new))]
        } else {
            vec![(T::Opened, Arc::clone(new))]
        };
    };
    let rose = new.severity > prev.severity;
    let was_active = prev.state.is_active();
    match new.state {
        Open | Acknowledged if prev.state == AutoResolved => vec![(T::Opened, Arc::clone(new))],
        Open | Acknowledged if prev.state == Resolved && !rose => vec![(T::Opened, Arc::clone(new))],
        Open | Acknowledged if rose => vec![(T::Escalated, Arc::clone(new))],
        AutoResolved if prev.state == AutoResolved => {
            if rose {
                vec![(T::Escalated, Arc::clone(new))]
            } else {
                vec![]
            }
        }
        AutoResolved => {
            let before = if was_active { prev.state } else { Open };
            let mut out = Vec::new();
            if rose {
                out.push((T::Escalated, still_active(new, before)));
            }
            out.push((T::AutoResolved, Arc::clone(new)));
            out
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests;
