//! The engine over the durable store: restore on start, persist each batch in one
//! transaction (ledger, alerts, audit outbox, source positions), export.

use crate::config::Config;
use crate::engine::{Engine, ledger_settings};
use anyhow::{Context, Result};
use chrono::Utc;
use yujing_alert::{Action, RulePack};
use yujing_model::Transition;
use yujing_store::{BatchWrite, Checkpoint, Store, StoredDeadLetter};

/// Rebuilds the engine from a store. Returns the transitions that differ from what was
/// published (normally none), already persisted to the audit outbox.
pub fn open_engine(config: &Config, rules: RulePack, store: &mut Store) -> Result<(Engine, Vec<Transition>)> {
    let (engine, transitions) = restore(config, rules, store)?;
    let mut engine = engine;
    persist(&mut engine, store, &transitions, Vec::new())?;
    Ok((engine, transitions))
}

/// Rebuilds the engine from a store without writing to it (for readers such as export).
pub fn restore(config: &Config, rules: RulePack, store: &Store) -> Result<(Engine, Vec<Transition>)> {
    let ledger = store.load_ledger(ledger_settings(config)).context("loading the ledger")?;
    let alerts = store.load_alerts().context("loading alerts")?;
    let actions: Vec<Action> = store
        .load_actions()
        .context("loading actions")?
        .into_iter()
        .map(|(id, json)| serde_json::from_str(&json).with_context(|| format!("stored action on {id}")))
        .collect::<Result<_>>()?;
    tracing::info!(reports = ledger.len(), alerts = alerts.len(), actions = actions.len(), "restoring from the store");
    Ok(Engine::restore(config, rules, ledger, alerts, actions)?)
}

/// Writes what the last batch changed, with the source positions it consumed, in one
/// transaction. Call it before acknowledging the positions to the source.
pub fn persist(
    engine: &mut Engine,
    store: &mut Store,
    transitions: &[Transition],
    checkpoints: Vec<Checkpoint>,
) -> Result<()> {
    persist_with_dead_letters(engine, store, transitions, checkpoints, Vec::new())
}

/// [`persist`], keeping the batch's dead letters in the store's outbox in the same
/// transaction, until [`crate::outbox::PublisherHandle`] delivers them.
pub fn persist_with_dead_letters(
    engine: &mut Engine,
    store: &mut Store,
    transitions: &[Transition],
    checkpoints: Vec<Checkpoint>,
    dead_letters: Vec<StoredDeadLetter>,
) -> Result<()> {
    let slots = engine.take_dirty_slots();
    let touched = engine.take_touched_alerts();
    let now = Utc::now().fixed_offset();
    let write = BatchWrite {
        slots,
        max_submitted: engine.ledger().max_submitted(),
        // Kept as it is: only `yujing run` holds the watermark (crate::writer).
        watermark_hold: None,
        alerts: touched.iter().map(|a| &**a).collect(),
        actions: Vec::new(),
        audit: transitions.iter().map(|t| (now, t)).collect(),
        checkpoints,
        dead_letters,
    };
    store.commit(&write).context("committing the batch to the store")?;
    Ok(())
}
