//! `Store::commit` of one micro-batch's write to a SQLite file: the 4,096 ledger slots of a
//! batch (the next month's reports, corrections and re-sends), the alerts it touched, one
//! audit record per transition and the source checkpoints, in one transaction (WAL,
//! `synchronous = FULL`, so the time includes the fsync of the temporary file's disk).

use chrono::Utc;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use yujing::config::Config;
use yujing::engine::Engine;
use yujing::replay::load_rules;
use yujing_bench::{inputs, next_batch_lines, report_lines};
use yujing_model::Alert;
use yujing_store::{BatchWrite, Checkpoint, StoreConfig};

const BATCH: usize = 4096;
const INSTITUTIONS: usize = 5_000;
const MONTHS: usize = 6;

fn bench_store(c: &mut Criterion) {
    let config = Config::load_with_env(None, std::iter::empty()).expect("default config");
    let mut engine = Engine::new(&config, load_rules(&config).expect("default rules"));
    engine.track_dirty_slots();
    let history = inputs(&report_lines(INSTITUTIONS, MONTHS, 4), 1);
    for batch in history.chunks(BATCH) {
        engine.process(batch).expect("warm-up batch");
    }
    engine.take_dirty_slots();
    engine.take_touched_alerts();
    // The batch under test: its slots, alerts and transitions as the engine made them.
    let next = inputs(&next_batch_lines(INSTITUTIONS, MONTHS, BATCH, (3, 2, 0), 4), history.len() as u64 + 1);
    let out = engine.process(&next).expect("batch");
    let mut slots = engine.take_dirty_slots();
    // Pad with earlier slots should corrections and re-sends have collapsed a few.
    let extra: Vec<_> = engine
        .ledger()
        .institutions()
        .flat_map(|r| r.reports().next())
        .take(BATCH.saturating_sub(slots.len()))
        .map(|r| engine.ledger().slot(&r.institution_id, r.period).expect("held slot"))
        .collect();
    slots.extend(extra);
    let touched = engine.take_touched_alerts();
    let alerts: Vec<&Alert> = touched.iter().map(|a| &**a).collect();
    let now = Utc::now().fixed_offset();
    let audit: Vec<_> = out.transitions.iter().map(|t| (now, t)).collect();
    let checkpoints = |offset: i64| {
        (0..4).map(|p| Checkpoint { source: "kafka:bench".into(), partition: p, next_offset: offset }).collect()
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut store = StoreConfig::at(dir.path().join("bench.db")).build().expect("store");

    let mut g = c.benchmark_group("store_commit");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(slots.len() as u64));
    let name = format!("{}_slots_{}_alerts_{}_audit", slots.len(), alerts.len(), audit.len());
    let mut offset = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            offset += BATCH as i64;
            let write = BatchWrite {
                slots: slots.clone(),
                max_submitted: engine.ledger().max_submitted(),
                watermark_hold: None,
                alerts: alerts.clone(),
                actions: Vec::new(),
                audit: audit.clone(),
                checkpoints: checkpoints(offset),
                dead_letters: Vec::new(),
            };
            store.commit(black_box(&write)).expect("commit");
        })
    });
    g.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
