//! One scoring batch: `score_sector` for one sector-period touching 10 (the fixed cost of a
//! call) / 1k / 10k / 100k institutions, with the previous period present for the trend;
//! and `aggregate` (district, region, city) over 10k institution scores of all sectors.

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::collections::{BTreeSet, HashMap};
use std::hint::black_box;
use std::time::Duration;
use yujing_bench::{reports, sector_reports, synth};
use yujing_model::{InstitutionScore, Period, Report, Sector};
use yujing_score::{ScoreConfig, aggregate, score_sector};

fn bench_score_sector(c: &mut Criterion) {
    let config = ScoreConfig::default();
    let mut g = c.benchmark_group("score_sector_microloan");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(300));
    for n in [10usize, 1_000, 10_000, 100_000] {
        // Months 0 and 1: the batch scores month 1, month 0 is the trend's baseline.
        let reports = sector_reports(Sector::Microloan, n, 2, 3);
        let refs: Vec<&Report> = reports.iter().collect();
        let periods = BTreeSet::from([synth::period(1)]);
        g.measurement_time(Duration::from_secs(if n >= 100_000 { 4 } else { 2 }));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &refs, |b, refs| {
            b.iter(|| {
                let scores = score_sector(&config, Sector::Microloan, &periods, black_box(refs)).expect("scores");
                assert_eq!(scores.len(), n);
                scores
            })
        });
    }
    g.finish();
}

/// Scores of one quarter-end month (every sector reports) of a mixed population, with
/// their reports.
fn scored(n: usize, config: &ScoreConfig) -> (Vec<Report>, Vec<InstitutionScore>) {
    let month = 2; // 2020-03, a quarter end: banks report too
    let all = reports(n, month + 1, 5);
    let keep: Vec<Report> = all.into_iter().filter(|r| r.period >= synth::period(month - 1)).collect();
    let mut scores = Vec::new();
    for sector in Sector::ALL {
        let refs: Vec<&Report> = keep.iter().filter(|r| r.sector == sector).collect();
        let periods = BTreeSet::from([synth::period(month)]);
        scores.extend(score_sector(config, sector, &periods, &refs).expect("scores"));
    }
    (keep, scores)
}

fn bench_aggregate(c: &mut Criterion) {
    let config = ScoreConfig::default();
    let mut g = c.benchmark_group("aggregate");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    for n in [100usize, 10_000] {
        let (reports, scores) = scored(n, &config);
        let by_key: HashMap<(&str, Period), &Report> =
            reports.iter().map(|r| ((&*r.institution_id, r.period), r)).collect();
        let rows: Vec<(&InstitutionScore, &Report)> =
            scores.iter().map(|s| (s, by_key[&(&*s.institution_id, s.period)])).collect();
        g.throughput(Throughput::Elements(rows.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(rows.len()), &rows, |b, rows| {
            b.iter(|| aggregate(&config, black_box(rows)).expect("aggregates"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_score_sector, bench_aggregate);
criterion_main!(benches);
