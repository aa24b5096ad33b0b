//! Rules: `derive` over 1k institution series of 24 points each (mixed sectors, scored
//! synthetic reports; about one institution in eight deteriorates and raises alerts).

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use yujing_alert::{RulePack, derive};
use yujing_bench::institution_series;
use yujing_score::ScoreConfig;

const SERIES: usize = 1_000;
const POINTS: usize = 24;

fn bench_derive(c: &mut Criterion) {
    let pack = RulePack::default_pack();
    let series = institution_series(SERIES, POINTS, 6, &ScoreConfig::default());
    let alerts: usize = series.iter().map(|s| derive(&pack, s).len()).sum();

    let mut g = c.benchmark_group("derive");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function(format!("{SERIES}_series_x{POINTS}_points/{alerts}_alerts"), |b| {
        b.iter(|| series.iter().map(|s| derive(&pack, black_box(s))).collect::<Vec<_>>())
    });
    g.finish();
}

criterion_group!(benches, bench_derive);
criterion_main!(benches);
