//! Decode + validate, per report: valid lines, and a stream with 10% bad lines (which also
//! pays for the rejection's message and, through the ingest `Decoder`, the dead letter).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use yujing_bench::{inputs, mixed_lines, report_lines};
use yujing_ingest::Decoder;
use yujing_model::{DecodeLimits, decode};

const LINES_INSTITUTIONS: usize = 1_000;
const MONTHS: usize = 4;

fn bench_decode(c: &mut Criterion) {
    let limits = DecodeLimits::default();
    let valid = report_lines(LINES_INSTITUTIONS, MONTHS, 1);
    let mixed = mixed_lines(LINES_INSTITUTIONS, MONTHS, 10, 1);
    let mixed_inputs = inputs(&mixed, 1);
    let bytes: usize = valid.iter().map(Vec::len).sum();

    let mut g = c.benchmark_group("decode");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(valid.len() as u64));
    g.bench_function(format!("valid/{}_lines_{}B_avg", valid.len(), bytes / valid.len()), |b| {
        b.iter(|| {
            for line in &valid {
                let _ = black_box(decode(black_box(line), &limits));
            }
        })
    });
    g.throughput(Throughput::Elements(mixed.len() as u64));
    g.bench_function(format!("mixed_10pct_bad/{}_lines", mixed.len()), |b| {
        b.iter(|| {
            for line in &mixed {
                let _ = black_box(decode(black_box(line), &limits));
            }
        })
    });
    let decoder = Decoder { limits };
    g.bench_function(format!("ingest_decoder_mixed_10pct_bad/{}_inputs", mixed_inputs.len()), |b| {
        b.iter(|| {
            for input in &mixed_inputs {
                let _ = black_box(decoder.decode(black_box(input)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
