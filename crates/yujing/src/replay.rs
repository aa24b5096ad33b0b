//! `yujing replay`: JSONL files through the whole pipeline to the end.

use crate::config::Config;
use crate::durable::{open_engine, persist, restore};
use crate::engine::{BatchOutput, Decoded, Engine, decode_all};
use crate::output::{DeadLetterWriter, write_alerts, write_scores};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use yujing_alert::RulePack;
use yujing_ingest::{FileSourceConfig, Input};
use yujing_store::{Checkpoint, Store, StoreConfig};

/// What to replay and where to write the results.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// JSONL report files, read in order.
    pub files: Vec<PathBuf>,
    /// Alerts in their final state, JSONL.
    pub alerts_out: Option<PathBuf>,
    /// Scores, CSV or Parquet by extension.
    pub scores_out: Option<PathBuf>,
    /// Dead letters, JSONL.
    pub dlq_out: Option<PathBuf>,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Keep state in this durable store: resume from it, and commit every batch to it.
    pub store: Option<PathBuf>,
}

/// The rule pack the configuration names: its file, or the embedded default.
pub fn load_rules(config: &Config) -> Result<RulePack> {
    let path = &config.alerts.rules;
    if path.as_os_str().is_empty() {
        return Ok(RulePack::default_pack());
    }
    let source = std::fs::read_to_string(path).with_context(|| format!("cannot read rule pack {}", path.display()))?;
    RulePack::from_toml_str(&source).with_context(|| format!("rule pack {}", path.display()))
}

/// The result of a replay.
pub struct Replayed {
    /// The engine in its final state.
    pub engine: Engine,
    /// Wall-clock time taken.
    pub elapsed: Duration,
    /// Dead letters written.
    pub dead_letters: u64,
    /// Alert transitions produced along the way.
    pub transitions: u64,
}

/// Replays files through a fresh engine and writes the requested outputs.
pub fn replay(config: &Config, rules: RulePack, opts: &ReplayOptions) -> Result<Replayed> {
    let started = Instant::now();
    let source_config =
        FileSourceConfig { paths: opts.files.clone(), batch_size: config.ingest.batch_size, ..Default::default() };
    let source = source_config.build()?;
    let bar = if opts.progress { ProgressBar::new(source.total_bytes()) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} replay [{bar:32}] {bytes}/{total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let (mut engine, mut store, resume) = match &opts.store {
        Some(path) => {
            let mut store = StoreConfig::at(path).build()?;
            let (engine, _) = open_engine(config, rules, &mut store)?;
            let resume: HashMap<String, i64> = opts
                .files
                .iter()
                .map(|f| {
                    let source = file_source_name(f);
                    let done = store.checkpoints(&source)?.first().map_or(0, |c| c.next_offset);
                    Ok((f.display().to_string(), done))
                })
                .collect::<Result<_>>()?;
            (engine, Some(store), resume)
        }
        None => (Engine::new(config, rules), None, HashMap::new()),
    };
    let resuming = resume.values().any(|v| *v > 0);
    if resuming {
        tracing::info!(files = resume.len(), "resuming from the store's checkpoints");
    }
    let mut dlq = DeadLetterWriter::create(opts.dlq_out.as_deref(), resuming)?;
    let mut transitions = 0u64;
    let mut pacer = crate::pace::Pacer::new(config.ingest.settle_interval);
    // The next batches are read and decoded on another thread while the ledger applies
    // this one: the apply runs on one core, decoding on both.
    let (ahead, reader) = read_ahead(source, engine.decoder(), resume)?;
    for next in ahead {
        let Ahead { batch, decoded, read_bytes } = next?;
        // With a store every batch commits, and scores and alerts are brought up to date
        // every so often (crate::pace). Without one there is nothing to commit on the way:
        // load everything, settle once.
        let dead_letters = engine.ingest_decoded(&batch, decoded);
        let settled = if store.is_some() && pacer.ingested(false) { pacer.settle(&mut engine)? } else { Vec::new() };
        let out = BatchOutput { dead_letters, transitions: settled };
        dlq.write(&out.dead_letters)?;
        if let Some(store) = store.as_mut() {
            let mut last: BTreeMap<&str, i64> = BTreeMap::new();
            for i in &batch {
                let l = last.entry(&*i.position.source).or_default();
                *l = (*l).max(i.position.line.unwrap_or(0) as i64);
            }
            let checkpoints = last
                .into_iter()
                .map(|(src, line)| Checkpoint { source: format!("file:{src}"), partition: 0, next_offset: line })
                .collect();
            dlq.flush()?;
            persist(&mut engine, store, &out.transitions, checkpoints)?;
        }
        transitions += out.transitions.len() as u64;
        bar.set_position(read_bytes);
        bar.set_message(format!("{} reports", engine.stats().received));
        tracing::debug!(
            batch = engine.stats().batches,
            inputs = batch.len(),
            dead_letters = out.dead_letters.len(),
            transitions = out.transitions.len(),
            "batch processed"
        );
    }
    reader.join().map_err(|_| anyhow::anyhow!("the replay's reader thread panicked"))?;
    if store.is_none() || pacer.pending() {
        bar.set_message(format!("{} reports; scoring and deriving alerts", engine.stats().received));
        bar.enable_steady_tick(Duration::from_millis(200));
        let settled = engine.settle()?;
        if let Some(store) = store.as_mut() {
            persist(&mut engine, store, &settled, Vec::new())?;
        }
        transitions += settled.len() as u64;
    }
    bar.finish_and_clear();
    let dead_letters = dlq.finish()?;
    if let Some(p) = &opts.alerts_out {
        write_alerts(engine.alerts(), p)?;
    }
    if let Some(p) = &opts.scores_out {
        write_scores(&engine, p)?;
    }
    Ok(Replayed { engine, elapsed: started.elapsed(), dead_letters, transitions })
}

/// The checkpoint source name of a replayed file.
fn file_source_name(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// Writes the store's current alerts and scores in the formats of `yujing replay`. Opens the
/// store read-only, so it works while `yujing run` writes to it.
pub fn export(
    config: &Config,
    rules: RulePack,
    store: &Path,
    alerts_out: Option<&Path>,
    scores_out: Option<&Path>,
) -> Result<Engine> {
    let store = Store::open_read_only(store)?;
    let (engine, _) = restore(config, rules, &store)?;
    if let Some(p) = alerts_out {
        write_alerts(engine.alerts(), p)?;
    }
    if let Some(p) = scores_out {
        write_scores(&engine, p)?;
    }
    Ok(engine)
}

/// The `*.jsonl` files of a directory, sorted by name.
pub fn jsonl_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

/// A batch read and decoded ahead.
struct Ahead {
    batch: Vec<Input>,
    decoded: Vec<Decoded>,
    /// The source's bytes read so far, for the progress bar.
    read_bytes: u64,
}

/// Reads and decodes the source's batches on a thread of its own, two batches ahead at
/// most, skipping the lines a store already holds (`resume`: the last line committed per
/// source). A read error ends the batches, after those read before it.
fn read_ahead(
    mut source: yujing_ingest::FileSource,
    decoder: yujing_ingest::Decoder,
    resume: HashMap<String, i64>,
) -> Result<(std::sync::mpsc::IntoIter<Result<Ahead>>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(2);
    let reader = std::thread::Builder::new()
        .name("replay-reader".into())
        .spawn(move || {
            loop {
                let next = match source.next_batch() {
                    Ok(Some(mut batch)) => {
                        // Lines already committed to the store before a restart are skipped.
                        batch.retain(|i| {
                            i.position.line.unwrap_or(0) as i64 > resume.get(&*i.position.source).copied().unwrap_or(0)
                        });
                        let decoded = decode_all(&decoder, &batch);
                        Ok(Ahead { batch, decoded, read_bytes: source.read_bytes() })
                    }
                    Ok(None) => return,
                    Err(e) => Err(anyhow::Error::from(e).context("reading the replay's files")),
                };
                let failed = next.is_err();
                // The receiver is gone when the replay stopped on an error of its own.
                if tx.send(next).is_err() || failed {
                    return;
                }
            }
        })
        .context("starting the replay's reader thread")?;
    Ok((rx.into_iter(), reader))
}
