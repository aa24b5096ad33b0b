//! Ledger apply of a batch of 10k reports: into an empty ledger (all new), and into a ledger
//! already holding about 100k institution-periods, with the batch carrying the next month's
//! reports, corrections (revision 2) of the last month and exact re-sends.

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use yujing_bench::{decode_all, next_batch_lines, reports};
use yujing_model::Report;
use yujing_store::{Ledger, LedgerSettings};

const BATCH: usize = 10_000;
/// 8,800 institutions over 12 months hold about 100k institution-periods (banks quarterly).
const HELD_INSTITUTIONS: usize = 8_800;
const HELD_MONTHS: usize = 12;

fn apply_all(ledger: &mut Ledger, batch: Vec<Report>) -> usize {
    batch.into_iter().map(|r| ledger.apply(r)).filter(|o| o.changed()).count()
}

fn bench_ledger(c: &mut Criterion) {
    let mut fresh = reports(11_000, 1, 2);
    fresh.truncate(BATCH);
    let held = reports(HELD_INSTITUTIONS, HELD_MONTHS, 1);
    let batch = decode_all(&next_batch_lines(HELD_INSTITUTIONS, HELD_MONTHS, BATCH, (15, 10, 0), 1));
    assert_eq!(batch.len(), BATCH);
    let settings = LedgerSettings::default();
    let warm = || {
        let mut ledger = Ledger::new(settings);
        for r in &held {
            ledger.apply(r.clone());
        }
        ledger
    };

    let mut g = c.benchmark_group("ledger_apply");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("empty/10k_new", |b| {
        b.iter_batched(
            || (Ledger::new(settings), fresh.clone()),
            |(mut ledger, batch)| {
                black_box(apply_all(&mut ledger, batch));
                ledger
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function(format!("held_{}k/10k_new_revised_resent", warm().len() / 1000), |b| {
        b.iter_batched(
            || (warm(), batch.clone()),
            |(mut ledger, batch)| {
                black_box(apply_all(&mut ledger, batch));
                ledger
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_ledger);
criterion_main!(benches);
