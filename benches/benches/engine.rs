//! `Engine::process` on a micro-batch of 4096 inputs after warm state: a mixed population
//! that has reported 12 months (about 57k reports, processed in batches of 4096), then a
//! batch with the next month's reports, corrections and re-sends of the last month and a
//! few bad lines. The month rolls over, so the batch also re-derives every institution's
//! alert history (the due period advances), as the live engine does once a month.

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use yujing::config::Config;
use yujing::engine::Engine;
use yujing::replay::load_rules;
use yujing_bench::{inputs, next_batch_lines, report_lines};
use yujing_ingest::Input;

const BATCH: usize = 4096;
const INSTITUTIONS: usize = 5_000;
const MONTHS: usize = 12;

fn bench_engine(c: &mut Criterion) {
    let config = Config::load_with_env(None, std::iter::empty()).expect("default config");
    let rules = load_rules(&config).expect("default rules");
    let history = inputs(&report_lines(INSTITUTIONS, MONTHS, 8), 1);
    let next = inputs(&next_batch_lines(INSTITUTIONS, MONTHS, BATCH, (3, 2, 1), 8), history.len() as u64 + 1);
    assert_eq!(next.len(), BATCH);
    let warm = || {
        let mut engine = Engine::new(&config, rules.clone());
        for batch in history.chunks(BATCH) {
            engine.process(batch).expect("warm-up batch");
        }
        engine
    };

    let mut g = c.benchmark_group("engine_process");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(format!("warm_{INSTITUTIONS}x{MONTHS}m/batch_{BATCH}"), |b| {
        b.iter_batched(
            || (warm(), next.clone()),
            |(mut engine, batch): (Engine, Vec<Input>)| {
                let out = engine.process(black_box(&batch)).expect("batch");
                (engine, out)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
