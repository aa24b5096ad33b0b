//! The engine behind the HTTP API: snapshots built from the engine after each committed
//! batch, and people's actions applied to the engine's alert book (and made durable in the
//! store, with their audit record, in one transaction) by the task that owns the engine.

use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use chrono::Timelike;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use yujing_alert::{ENGINE, Error as AlertError};
use yujing_model::period::china_tz;
use yujing_model::{Alert, Transition};
use yujing_serve::{
    ActionError, ActionReceiver, ActionRequest, ActionSender, AlertAction, AuditEntry, IndicatorCutoff,
    InstitutionView, PipelineStats, Snapshot, SnapshotHandle, SnapshotParts, action_channel,
};
use yujing_store::{AuditRecord, BatchWrite, Store};

/// How many action requests may wait for the pipeline.
const ACTION_QUEUE: usize = 64;

/// A snapshot of the engine's current state.
pub fn snapshot(engine: &Engine, config: &Config, audit: &[AuditEntry]) -> Snapshot {
    let mut scores: HashMap<&str, Vec<yujing_model::InstitutionScore>> = HashMap::new();
    for s in engine.institution_scores() {
        scores.entry(s.institution_id.as_str()).or_default().push(s.clone());
    }
    let institutions = engine
        .ledger()
        .institutions()
        .filter_map(|r| {
            let latest = r.latest()?;
            Some(InstitutionView {
                id: r.institution_id.to_string(),
                name: latest.institution_name.clone(),
                sector: r.sector,
                district_code: latest.district_code,
                scores: scores.remove(r.institution_id.as_ref()).unwrap_or_default(),
                reports: r.reports().cloned().collect(),
            })
        })
        .collect();
    let cutoffs = config
        .score
        .indicators
        .iter()
        .flat_map(|(sector, m)| {
            m.iter().map(|(indicator, c)| IndicatorCutoff {
                sector: *sector,
                indicator: *indicator,
                safe: c.safe,
                critical: c.critical,
            })
        })
        .collect();
    let st = engine.stats();
    Snapshot::new(SnapshotParts {
        institutions,
        aggregates: engine.aggregates().cloned().collect(),
        alerts: engine.alerts().cloned().collect(),
        audit: audit.to_vec(),
        cutoffs,
        complete_through: engine.complete_through(),
        stats: PipelineStats {
            received: st.received,
            accepted: st.accepted,
            duplicates: st.duplicates,
            rejected: st.rejected_total(),
            batches: st.batches,
        },
        generated_at: Some(chrono::Utc::now().with_timezone(&china_tz())),
    })
}

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
    let link = ApiLink { snapshots: snapshots.clone(), actions: rx, metrics, ready, audit: Vec::new(), roles };
    (link, snapshots, tx)
}

impl ApiLink {
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
            district_code: alert.district_code.clone(),
            detail,
        }
    }

    /// Publishes a snapshot of the engine and refreshes the state gauges.
    pub fn publish(&self, engine: &Engine, config: &Config) {
        let started = Instant::now();
        let snap = snapshot(engine, config, &self.audit);
        self.metrics.refresh(&snap);
        self.metrics.set_ready(self.ready.load(Ordering::Relaxed));
        self.snapshots.publish(snap);
        self.metrics.record_publish("api", 1, true);
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "snapshot published");
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
        let outcome = self.try_apply(engine, store, &req);
        if let Err(e) = &outcome {
            tracing::info!(alert = %req.alert_id, by = %req.caller.name, error = %e, "alert action refused");
        }
        let changed = outcome.as_ref().ok().cloned();
        let _ = req.reply.send(outcome);
        changed
    }

    fn try_apply(
        &mut self,
        engine: &mut Engine,
        store: Option<&mut Store>,
        req: &ActionRequest,
    ) -> Result<Alert, ActionError> {
        let now = chrono::Utc::now().with_timezone(&china_tz());
        // Milliseconds are enough for people's actions, and read better.
        let now = now.with_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(now);
        let by = req.caller.name.as_str();
        let id = req.alert_id.as_str();
        let before = store.is_some().then(|| engine.book_mut().clone());
        let book = engine.book_mut();
        let transition = match &req.action {
            AlertAction::Acknowledge => book.acknowledge(id, by, now),
            AlertAction::Assign { assignee } => book.assign(id, assignee, by, now),
            AlertAction::Resolve { note } => book.resolve(id, by, note, now),
        }
        .map_err(action_error)?;
        let seq = self.audit.len() as u64 + 1;
        let entry = self.entry(seq, now, by, req.action.verb(), &transition.alert, req.action.detail());
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
        let snap = self.snapshots.load().with_action(transition.alert.clone(), Some(entry));
        self.metrics.refresh(&snap);
        self.snapshots.publish(snap);
        Ok(transition.alert)
    }

    /// Applies every waiting action (between batches); returns the alerts they changed.
    pub fn drain(&mut self, engine: &mut Engine, mut store: Option<&mut Store>) -> Vec<Alert> {
        let mut changed = Vec::new();
        while let Ok(req) = self.actions.try_recv() {
            changed.extend(self.apply(engine, store.as_deref_mut(), req));
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
    let kind = serde_json::to_value(t.kind)?.as_str().unwrap_or_default().to_string();
    let record = AuditRecord {
        seq: 0,
        recorded_at: now,
        actor: t.by.clone(),
        kind,
        alert_id: t.alert.id.clone(),
        record: serde_json::to_string(t)?,
    };
    let actions = action.map(|a| Ok::<_, serde_json::Error>((a.alert_id.clone(), serde_json::to_string(a)?)));
    let write = BatchWrite {
        alerts: vec![&t.alert],
        actions: actions.into_iter().collect::<Result<_, _>>()?,
        audit: vec![record],
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
    let app = config.serve.build(snapshots, Some(actions), ready.clone())?;
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
