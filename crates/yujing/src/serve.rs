//! The engine behind the HTTP API: snapshots built from the engine after each committed
//! batch, and people's actions applied to the engine's alert book (and made durable in the
//! store, with their audit record, in one transaction) by the task that owns the engine,
//! and stress projections (`POST /api/v1/stress`) taken between batches and projected off
//! the pipeline's path.

use crate::config::Config;
use crate::engine::Engine;
use crate::forward::{ForwardedAction, Forwarder};
use crate::metrics::Metrics;
use crate::peers::PeerView;
use crate::publishing::Publisher;
use anyhow::{Context, Result};
use chrono::Timelike;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use yujing_alert::{ENGINE, Error as AlertError, RulePack};
use yujing_model::period::china_tz;
use yujing_model::{Alert, Transition};
use yujing_serve::{
    ActionError, ActionReceiver, ActionRequest, ActionSender, AlertAction, AuditEntry, Snapshot, SnapshotHandle,
    SnapshotParts, StressError, StressReceiver, StressRequest, StressSender, action_channel, stress_channel,
};
use yujing_store::{BatchWrite, Store};

mod views;

pub use views::{Views, snapshot, snapshot_parts, snapshot_parts_reusing};

/// How many action requests may wait for the pipeline.
const ACTION_QUEUE: usize = 64;

/// How many stress requests may wait for the pipeline.
const STRESS_QUEUE: usize = 8;

/// How many stress projections may run at once (each reruns the scoring twice); more get 503.
const MAX_PROJECTIONS: usize = 2;

fn action_error(e: AlertError) -> ActionError {
    match e {
        AlertError::UnknownAlert { id } => ActionError::NotFound(id),
        AlertError::InvalidState { .. } => ActionError::Conflict(e.to_string()),
        AlertError::NoteRequired { .. } | AlertError::BlankActor { .. } => ActionError::Invalid(e.to_string()),
        other => ActionError::Invalid(other.to_string()),
    }
}

/// The pipeline's side of the API: where it publishes snapshots and takes actions from.
pub struct ApiLink {
    /// Where snapshots go.
    pub snapshots: SnapshotHandle,
    /// Actions from the API.
    pub actions: ActionReceiver,
    /// The metrics refreshed with each snapshot.
    pub metrics: Arc<Metrics>,
    /// Whether the service is ready (mirrored into `yujing_ready`).
    pub ready: Arc<AtomicBool>,
    audit: Vec<AuditEntry>,
    roles: HashMap<String, String>,
    stress: Option<StressLink>,
    /// Builds and publishes snapshots (crate::publishing).
    publisher: Publisher,
    /// Whether the engine changed since the last snapshot.
    stale: bool,
    /// The other instances' scores and alerts, merged into each snapshot (DESIGN §8).
    peers: Option<PeerView>,
    /// The peers' version in the last snapshot.
    peers_seen: u64,
    /// Where actions on the peers' alerts go.
    forwarder: Option<Forwarder>,
    /// The institutions' views of the last snapshot, shared with the next where unchanged.
    views: Views,
}

/// What stress projections need besides the engine's reports.
struct StressLink {
    requests: StressReceiver,
    config: Arc<Config>,
    rules: Arc<RulePack>,
    running: Arc<AtomicUsize>,
}

/// Counts a running projection, also when it panics.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for ApiLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiLink").field("audit", &self.audit.len()).finish_non_exhaustive()
    }
}

/// Both ends of the API wiring: the pipeline's [`ApiLink`] and what the HTTP app needs.
pub fn link(config: &Config, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> (ApiLink, SnapshotHandle, ActionSender) {
    let snapshots = SnapshotHandle::new(Snapshot::empty());
    let (tx, rx) = action_channel(ACTION_QUEUE);
    let roles = config.serve.tokens.iter().map(|t| (t.name.clone(), t.role.to_string())).collect();
    let link = ApiLink {
        snapshots: snapshots.clone(),
        actions: rx,
        publisher: Publisher::new(snapshots.clone(), metrics.clone()),
        metrics,
        ready,
        audit: Vec::new(),
        roles,
        stress: None,
        stale: false,
        peers: None,
        peers_seen: 0,
        forwarder: None,
        views: Views::default(),
    };
    (link, snapshots, tx)
}

impl ApiLink {
    /// Takes stress projections from now on (between batches, in [`ApiLink::drain`] and
    /// [`ApiLink::next`]), projecting with this configuration and rule pack; returns the
    /// API's end of the channel (for [`yujing_serve::ServeConfig::build_with_stress`]).
    pub fn enable_stress(&mut self, config: &Config, rules: &RulePack) -> StressSender {
        let (tx, rx) = stress_channel(STRESS_QUEUE);
        self.stress = Some(StressLink {
            requests: rx,
            config: Arc::new(config.clone()),
            rules: Arc::new(rules.clone()),
            running: Arc::new(AtomicUsize::new(0)),
        });
        tx
    }

    /// Starts one stress projection: parses the scenario (a bad one is answered at once),
    /// copies the engine's winning reports and projects them on a blocking thread, which
    /// replies. Does not wait for the projection.
    pub fn stress(&self, engine: &Engine, req: StressRequest) {
        if req.reply.is_closed() {
            tracing::info!(by = %req.caller.name, "stress projection dropped: its request timed out");
            return;
        }
        let Some(link) = &self.stress else {
            let _ = req.reply.send(Err(StressError::Unavailable("this instance runs no stress projections".into())));
            return;
        };
        let scenario = match yujing_score::stress::Scenario::from_toml_str(&req.scenario) {
            Ok(s) => s,
            Err(e) => {
                let _ = req.reply.send(Err(StressError::Invalid(e.to_string())));
                return;
            }
        };
        let reports = crate::stress::winning_reports(engine);
        let missing = match req.period {
            _ if reports.is_empty() => Some("no reports yet: nothing to stress".to_string()),
            Some(p) if !reports.iter().any(|r| r.period == p) => Some(format!("no reports for {p}")),
            _ => None,
        };
        if let Some(m) = missing {
            let _ = req.reply.send(Err(StressError::NoData(m)));
            return;
        }
        if link.running.fetch_add(1, Ordering::Relaxed) >= MAX_PROJECTIONS {
            link.running.fetch_sub(1, Ordering::Relaxed);
            let busy = format!("{MAX_PROJECTIONS} stress projections are running; try again shortly");
            let _ = req.reply.send(Err(StressError::Unavailable(busy)));
            return;
        }
        let running = Running(link.running.clone());
        let (config, rules) = (link.config.clone(), link.rules.clone());
        let job = move || {
            let _running = running;
            let started = Instant::now();
            let outcome = crate::stress::project(&config, &rules, &reports, &scenario, req.period)
                .map_err(|e| match e.downcast_ref::<yujing_score::Error>() {
                    Some(e) => StressError::Invalid(e.to_string()),
                    None => {
                        tracing::error!(error = %format!("{e:#}"), "stress projection failed");
                        StressError::Unavailable("the projection failed".into())
                    }
                })
                .and_then(|p| serde_json::to_value(p).map_err(|e| StressError::Unavailable(e.to_string())));
            tracing::info!(
                scenario = %scenario.name,
                by = %req.caller.name,
                ok = outcome.is_ok(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "stress projection done"
            );
            let _ = req.reply.send(outcome);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(job)),
            Err(_) => drop(std::thread::spawn(job)),
        }
    }

    /// Waits for the next action or stress request and takes it (for a pipeline with
    /// nothing else to do); false once the API's action channel is closed.
    pub async fn next(&mut self, engine: &mut Engine, store: Option<&mut Store>) -> bool {
        enum Next {
            Action(Option<ActionRequest>),
            Stress(StressRequest),
        }
        let stress = &mut self.stress;
        let next = tokio::select! {
            a = self.actions.recv() => Next::Action(a),
            Some(s) = async {
                match stress.as_mut() {
                    Some(l) => l.requests.recv().await,
                    None => std::future::pending().await,
                }
            } => Next::Stress(s),
        };
        match next {
            Next::Action(Some(req)) => {
                self.apply(engine, store, req);
                true
            }
            Next::Action(None) => false,
            Next::Stress(req) => {
                self.stress(engine, req);
                true
            }
        }
    }

    /// Loads people's past actions from a store's audit log, for `GET audit`.
    pub fn load_audit(&mut self, store: &Store) -> Result<()> {
        let mut after = 0;
        loop {
            let page = store.audit(after, 1000, false).context("reading the audit log")?;
            let Some(last) = page.last().map(|a| a.seq) else { break };
            for a in page.iter().filter(|a| a.actor != ENGINE) {
                let t: Transition = serde_json::from_str(&a.record).context("a stored audit record")?;
                let seq = self.audit.len() as u64 + 1;
                self.audit.push(self.entry(seq, a.recorded_at, &a.actor, &a.kind, &t.alert, None));
            }
            after = last;
        }
        Ok(())
    }

    fn entry(
        &self,
        seq: u64,
        at: chrono::DateTime<chrono::FixedOffset>,
        actor: &str,
        action: &str,
        alert: &Alert,
        detail: Option<&str>,
    ) -> AuditEntry {
        let detail = detail.map(str::to_string).or_else(|| match action {
            "assign" | "assigned" => alert.assignee.clone(),
            "resolve" | "resolved" => alert.note.clone(),
            _ => None,
        });
        let action = match action {
            "acknowledged" => "acknowledge",
            "assigned" => "assign",
            "resolved" => "resolve",
            other => other,
        };
        AuditEntry {
            seq,
            at,
            actor: actor.to_string(),
            role: self.roles.get(actor).cloned().unwrap_or_default(),
            action: action.to_string(),
            alert_id: alert.id.clone(),
            district_code: alert.district_code.to_string(),
            detail,
        }
    }

    /// Merges the other instances' scores and alerts into every snapshot from now on.
    pub fn set_peers(&mut self, peers: PeerView) {
        self.peers = Some(peers);
    }

    /// Publishes a snapshot of the engine (with the peers' view merged in, when there is
    /// one) and refreshes the state gauges (from this instance's own state).
    pub fn publish(&mut self, engine: &Engine, config: &Config) {
        let parts = self.parts(engine, config);
        self.publisher.publish_now(parts, self.peers.as_ref(), &config.score.grades);
    }

    /// The engine's parts of a snapshot; notes the peers' version and that the view is
    /// being brought up to date.
    fn parts(&mut self, engine: &Engine, config: &Config) -> SnapshotParts {
        let parts = snapshot_parts_reusing(engine, config, &self.audit, &mut self.views);
        if let Some(peers) = &self.peers {
            self.peers_seen = peers.version();
        }
        self.metrics.set_ready(self.ready.load(Ordering::Relaxed));
        self.stale = false;
        parts
    }

    /// After a batch (`idle` false) or when no input came (`idle` true): publishes a
    /// snapshot if the engine changed and one is due. While busy, one is due once
    /// `serve.snapshot_interval` and four times the last one's build time have passed, so
    /// a large state cannot make the API's view eat the pipeline's time; when idle, at once.
    /// The snapshot is built off the pipeline's thread (crate::publishing); while one is
    /// being built, the next waits.
    pub fn publish_due(&mut self, engine: &Engine, config: &Config, changed: bool, idle: bool) {
        let (building, dropped, last) = {
            let s = self.publisher.lock();
            (s.building, s.dropped, s.last)
        };
        self.stale |= changed || dropped || self.peers.as_ref().is_some_and(|p| p.version() != self.peers_seen);
        if !self.stale || building {
            return;
        }
        let due = match last {
            None => true,
            Some(_) if idle => true,
            Some((at, cost)) => at.elapsed() >= config.serve.snapshot_interval.max(cost * 4),
        };
        if due {
            let parts = self.parts(engine, config);
            self.publisher.publish_later(parts, self.peers.as_ref(), &config.score.grades);
        }
    }

    /// Waits until the snapshot being built, if any, is published.
    pub fn wait_published(&self) {
        self.publisher.wait();
    }

    /// Applies one action: to the alert book, then (when there is a store) the action, the
    /// alert and the audit record in one transaction; then publishes the changed alert and
    /// replies. A failed commit leaves the book as it was. Returns the changed alert.
    pub fn apply(&mut self, engine: &mut Engine, store: Option<&mut Store>, req: ActionRequest) -> Option<Alert> {
        // The request timed out (the client got 503) while it waited for a batch to end: do
        // not apply what the client was told failed.
        if req.reply.is_closed() {
            tracing::info!(alert = %req.alert_id, by = %req.caller.name, "alert action dropped: its request timed out");
            return None;
        }
        let now = chrono::Utc::now().with_timezone(&china_tz());
        // Milliseconds are enough for people's actions, and read better.
        let now = now.with_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now);
        let outcome = self.try_apply(engine, store, &req.alert_id, &req.caller.name, &req.action, now);
        // Another instance holds the alert: hand the action to it.
        if let (Err(ActionError::NotFound(_)), Some(forwarder)) = (&outcome, &self.forwarder) {
            let snap = self.snapshots.load();
            if let Some(alert) = snap.alert(&req.alert_id).filter(|_| snap.alert_source(&req.alert_id).is_some()) {
                let action = ForwardedAction {
                    alert_id: req.alert_id.clone(),
                    district_code: alert.district_code.to_string(),
                    action: req.action.clone(),
                    by: req.caller.name.clone(),
                    role: req.caller.role.to_string(),
                    at: now,
                };
                forwarder.forward(action, req.reply);
                return None;
            }
        }
        if let Err(e) = &outcome {
            tracing::info!(alert = %req.alert_id, by = %req.caller.name, error = %e, "alert action refused");
        }
        let changed = outcome.as_ref().ok().cloned();
        let _ = req.reply.send(outcome);
        changed
    }

    /// Applies an action another instance forwarded, when this instance holds the alert
    /// and has not applied it yet (the same person's action at the same time already in the
    /// book): through the same path as the API's own actions. Returns the changed alert.
    pub fn apply_forwarded(
        &mut self,
        engine: &mut Engine,
        store: Option<&mut Store>,
        fwd: &ForwardedAction,
    ) -> Option<Alert> {
        let book = engine.book_mut();
        if book.actions_for(&fwd.alert_id).iter().any(|a| a.at == fwd.at && a.by == fwd.by) {
            return None;
        }
        self.roles.entry(fwd.by.clone()).or_insert_with(|| fwd.role.clone());
        match self.try_apply(engine, store, &fwd.alert_id, &fwd.by, &fwd.action, fwd.at) {
            Ok(alert) => {
                tracing::info!(alert = %fwd.alert_id, by = %fwd.by, action = fwd.action.verb(),
                    "alert action applied for a peer");
                Some(alert)
            }
            Err(ActionError::NotFound(_)) => None, // another instance's alert
            Err(e) => {
                tracing::info!(alert = %fwd.alert_id, by = %fwd.by, error = %e, "forwarded alert action refused");
                None
            }
        }
    }

    /// Forwards actions on alerts this instance does not hold (its peers') from now on.
    pub fn set_forwarder(&mut self, forwarder: Forwarder) {
        self.forwarder = Some(forwarder);
    }

    fn try_apply(
        &mut self,
        engine: &mut Engine,
        store: Option<&mut Store>,
        id: &str,
        by: &str,
        what: &AlertAction,
        now: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<Alert, ActionError> {
        let before = store.is_some().then(|| engine.book_mut().clone());
        let book = engine.book_mut();
        let transition = match what {
            AlertAction::Acknowledge => book.acknowledge(id, by, now),
            AlertAction::Assign { assignee } => book.assign(id, assignee, by, now),
            AlertAction::Resolve { note } => book.resolve(id, by, note, now),
        }
        .map_err(action_error)?;
        let seq = self.audit.len() as u64 + 1;
        let entry = self.entry(seq, now, by, what.verb(), &transition.alert, what.detail());
        if let Some(store) = store {
            let action = engine.book_mut().actions_for(id).last().cloned();
            let started = Instant::now();
            let committed = commit_action(store, &transition, action.as_ref(), now);
            self.metrics.record_store_commit(started.elapsed(), 1, committed.is_ok());
            if let Err(e) = committed {
                if let Some(b) = before {
                    *engine.book_mut() = b;
                }
                tracing::error!(alert = id, error = %format!("{e:#}"), "could not store an alert action");
                return Err(ActionError::Unavailable("the action could not be stored; try again".into()));
            }
        }
        self.audit.push(entry.clone());
        // Published at once; a snapshot being built from the parts before it is dropped.
        let mut published = self.publisher.lock();
        published.epoch += 1;
        let snap = self.snapshots.load().with_action(transition.alert.clone(), Some(entry));
        match &mut published.local {
            Some(local) => {
                *local = local.with_action(transition.alert.clone(), None);
                self.metrics.refresh(local);
            }
            None => self.metrics.refresh(&snap),
        }
        self.snapshots.publish(snap);
        drop(published);
        Ok(Arc::unwrap_or_clone(transition.alert))
    }

    /// Whether [`drain`](Self::drain) has people's actions to apply (its own or forwarded),
    /// which commit to the store.
    pub fn actions_pending(&self) -> bool {
        !self.actions.is_empty() || self.peers.as_ref().is_some_and(|p| p.lock().has_forwarded())
    }

    /// Applies every waiting action and starts every waiting stress projection (between
    /// batches); returns the alerts the actions changed.
    pub fn drain(&mut self, engine: &mut Engine, mut store: Option<&mut Store>) -> Vec<Alert> {
        let mut changed = Vec::new();
        while let Ok(req) = self.actions.try_recv() {
            changed.extend(self.apply(engine, store.as_deref_mut(), req));
        }
        let forwarded = self.peers.as_ref().map(|p| p.lock().take_forwarded()).unwrap_or_default();
        for fwd in &forwarded {
            changed.extend(self.apply_forwarded(engine, store.as_deref_mut(), fwd));
        }
        while let Some(req) = self.stress.as_mut().and_then(|l| l.requests.try_recv().ok()) {
            self.stress(engine, req);
        }
        changed
    }
}

/// Commits an action, its alert and its audit record (the transition, also the outbox
/// entry that publishes it) in one transaction.
fn commit_action(
    store: &mut Store,
    t: &Transition,
    action: Option<&yujing_alert::Action>,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> Result<()> {
    let actions = action.map(|a| Ok::<_, serde_json::Error>((a.alert_id.clone(), serde_json::to_string(a)?)));
    let write = BatchWrite {
        alerts: vec![&t.alert],
        actions: actions.into_iter().collect::<Result<_, _>>()?,
        audit: vec![(now, t)],
        ..BatchWrite::default()
    };
    store.commit(&write).context("committing an alert action")
}

/// Binds the app's address and the metrics address, so a bad address fails before
/// anything runs.
pub async fn bind(listen: &str, metrics_listen: &str) -> Result<(tokio::net::TcpListener, tokio::net::TcpListener)> {
    let api = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let metrics = tokio::net::TcpListener::bind(metrics_listen)
        .await
        .with_context(|| format!("cannot listen on {metrics_listen} (metrics)"))?;
    Ok((api, metrics))
}

/// Runs both HTTP servers on bound listeners until the process ends.
pub async fn serve(
    api: tokio::net::TcpListener,
    app: axum::Router,
    metrics: tokio::net::TcpListener,
    registry: prometheus::Registry,
) -> Result<()> {
    let metrics_app = yujing_serve::metrics_router(registry);
    let a = async { axum::serve(api, app).await.context("API server") };
    let m = async { axum::serve(metrics, metrics_app).await.context("metrics server") };
    tokio::try_join!(a, m)?;
    Ok(())
}

/// `yujing run` with its HTTP side: the app (API, page, health) on `serve.listen`,
/// `/metrics` on `serve.metrics_listen`, and the service loop, which publishes a snapshot
/// after each committed batch and applies API actions between batches.
pub async fn run_service(config: &Config, rules: yujing_alert::RulePack) -> Result<()> {
    let metrics = Arc::new(Metrics::new()?);
    let ready = Arc::new(AtomicBool::new(false));
    let (mut api_link, snapshots, actions) = link(config, metrics.clone(), ready.clone());
    let stress = api_link.enable_stress(config, &rules);
    let app = config.serve.build_with_stress(snapshots, Some(actions), Some(stress), ready.clone())?;
    if config.serve.tokens.is_empty() {
        tracing::warn!("no [[serve.tokens]] configured: every API call will get 401");
    }
    let (api, metrics_listener) = bind(&config.serve.listen, &config.serve.metrics_listen).await?;
    tracing::info!(
        listen = %api.local_addr()?,
        metrics = %metrics_listener.local_addr()?,
        tokens = config.serve.tokens.len(),
        "HTTP up"
    );
    let server = tokio::spawn(serve(api, app, metrics_listener, metrics.registry.clone()));
    let result = crate::service::run(config, rules, &config.kafka, &config.store.path, ready, &mut api_link).await;
    server.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use yujing_ingest::Input;
    use yujing_model::Position;

    fn batch(n: u64) -> Vec<Input> {
        vec![Input { bytes: b"not json".to_vec(), position: Position::line("t", n), truncated_from: None }]
    }

    /// An engine that has processed the sample's first 1,500 reports (it has open alerts).
    fn sample_engine(config: &Config) -> Engine {
        let mut engine = Engine::new(config, RulePack::default_pack());
        engine.process(&crate::testing::sample_inputs(0, 1500)).unwrap();
        engine
    }

    #[test]
    fn a_forwarded_action_is_applied_once_by_the_instance_holding_the_alert() {
        let config = Config::load(None).unwrap();
        let mut engine = sample_engine(&config);
        let (mut api, snapshots, _tx) =
            link(&config, Arc::new(Metrics::new().unwrap()), Arc::new(AtomicBool::new(true)));
        let open = engine.alerts().find(|a| a.state == yujing_model::AlertState::Open).unwrap().clone();
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00.123+08:00").unwrap();
        let fwd = ForwardedAction {
            alert_id: open.id.clone(),
            district_code: open.district_code.to_string(),
            action: AlertAction::Assign { assignee: "li".into() },
            by: "desk-on-b".into(),
            role: "regulator".into(),
            at,
        };
        let changed = api.apply_forwarded(&mut engine, None, &fwd).expect("applied by the holder");
        assert_eq!(changed.assignee.as_deref(), Some("li"));
        assert!(api.apply_forwarded(&mut engine, None, &fwd).is_none(), "read again: not applied twice");
        let audit = snapshots.load().audit().to_vec();
        assert_eq!(audit.len(), 1);
        assert_eq!((audit[0].actor.as_str(), audit[0].role.as_str(), audit[0].at), ("desk-on-b", "regulator", at));
        let elsewhere = ForwardedAction { alert_id: "yj-not-held-here".into(), ..fwd };
        assert!(api.apply_forwarded(&mut engine, None, &elsewhere).is_none(), "another instance's alert");
        assert_eq!(engine.book_mut().actions_for(&open.id).len(), 1);
    }

    #[test]
    fn a_busy_pipeline_publishes_at_most_once_per_interval_and_at_once_when_idle() {
        let mut config = Config::load(None).unwrap();
        config.serve.snapshot_interval = Duration::from_secs(3600);
        let mut engine = Engine::new(&config, RulePack::default_pack());
        let (mut api, snapshots, _tx) =
            link(&config, Arc::new(Metrics::new().unwrap()), Arc::new(AtomicBool::new(true)));
        let batches = |s: &SnapshotHandle| s.load().stats().batches;

        engine.process(&batch(1)).unwrap();
        api.publish_due(&engine, &config, true, false);
        api.wait_published();
        assert_eq!(batches(&snapshots), 1, "the first batch is published");

        engine.process(&batch(2)).unwrap();
        api.publish_due(&engine, &config, true, false);
        api.wait_published();
        assert_eq!(batches(&snapshots), 1, "busy: not due before the interval");

        api.publish_due(&engine, &config, false, true);
        api.wait_published();
        assert_eq!(batches(&snapshots), 2, "idle: published at once");

        let before = snapshots.load();
        api.publish_due(&engine, &config, false, true);
        api.wait_published();
        assert!(Arc::ptr_eq(&before, &snapshots.load()), "nothing changed: nothing published");
    }

    #[test]
    fn an_action_published_while_a_snapshot_is_built_is_not_undone_by_it() {
        let config = Config::load(None).unwrap();
        let mut engine = sample_engine(&config);
        let (mut api, snapshots, _tx) =
            link(&config, Arc::new(Metrics::new().unwrap()), Arc::new(AtomicBool::new(true)));
        let peers = PeerView::from_state(crate::peers::PeerState::default());
        api.set_peers(peers.clone());
        api.publish(&engine, &config);
        let open = engine.alerts().find(|a| a.state == yujing_model::AlertState::Open).unwrap().clone();
        // The builder waits for the peers' lock, held here, while a person acts.
        engine.process(&batch(9999)).unwrap();
        let held = peers.lock();
        api.publish_due(&engine, &config, true, true);
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00+08:00").unwrap();
        let outcome = api.try_apply(&mut engine, None, &open.id, "li", &AlertAction::Acknowledge, at);
        assert!(outcome.is_ok());
        drop(held);
        api.wait_published();
        let acked = |s: &SnapshotHandle| s.load().alert(&open.id).map(|a| a.state);
        assert_eq!(acked(&snapshots), Some(yujing_model::AlertState::Acknowledged), "the older build was dropped");
        // The dropped build is made again, with the action in it.
        api.publish_due(&engine, &config, false, true);
        api.wait_published();
        assert_eq!(snapshots.load().stats().batches, 2);
        assert_eq!(acked(&snapshots), Some(yujing_model::AlertState::Acknowledged));
    }
}
