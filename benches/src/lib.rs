//! Shared inputs of yujing's criterion benches: deterministic synthetic reports, built fast
//! in memory, without disk I/O.
//!
//! Everything is a pure function of its arguments and a seed. A population of institutions
//! ([`synth::institution`]) reports monthly from 2020-01 (banks quarterly, at quarter ends);
//! the lines are valid report v1 JSON unless a [`Flaw`] is planted. About one institution in
//! eight deteriorates, so scores, grades and alerts cover the whole range.
//!
//! ```
//! use yujing_bench::{report_lines, reports};
//! let lines = report_lines(100, 3, 7);
//! assert_eq!(lines, report_lines(100, 3, 7));
//! assert_eq!(reports(100, 3, 7).len(), lines.len());
//! ```

pub mod series;
pub mod synth;

pub use series::institution_series;
pub use synth::{Flaw, Institution, institution};

use yujing_ingest::Input;
use yujing_model::{DecodeLimits, Position, Report, Sector, decode};

/// The lines of `n_institutions` of a mixed population (8% banks, 40% microloan, 32%
/// guarantee, 20% P2P) over `periods` months, in arrival order: month by month, institution
/// by institution. Banks report only at quarter ends, so a month has fewer lines than
/// institutions unless it ends a quarter.
pub fn report_lines(n_institutions: usize, periods: usize, seed: u64) -> Vec<Vec<u8>> {
    lines_of(n_institutions, periods, seed, None)
}

/// Like [`report_lines`], with every institution in one sector. For banks only the
/// quarter-end months of the `periods` months have lines.
pub fn sector_lines(sector: Sector, n_institutions: usize, periods: usize, seed: u64) -> Vec<Vec<u8>> {
    lines_of(n_institutions, periods, seed, Some(sector))
}

fn lines_of(n: usize, periods: usize, seed: u64, sector: Option<Sector>) -> Vec<Vec<u8>> {
    let population: Vec<Institution> = (0..n).map(|i| institution(seed, i, sector)).collect();
    let mut out = Vec::with_capacity(n * periods);
    for month in 0..periods {
        for inst in population.iter().filter(|i| i.reports_in(month)) {
            out.push(inst.line(seed, month, 1, None).into_bytes());
        }
    }
    out
}

/// [`report_lines`] with about `bad_percent` in 100 lines replaced by flawed ones, cycling
/// through every [`Flaw`], each of which the decoder must reject.
pub fn mixed_lines(n_institutions: usize, periods: usize, bad_percent: u32, seed: u64) -> Vec<Vec<u8>> {
    let population: Vec<Institution> = (0..n_institutions).map(|i| institution(seed, i, None)).collect();
    let mut out = Vec::with_capacity(n_institutions * periods);
    let mut planted = 0;
    for month in 0..periods {
        for inst in population.iter().filter(|i| i.reports_in(month)) {
            let bad = synth::unit(seed, inst.index as u64, month as u64, 11) * 100.0 < f64::from(bad_percent);
            let flaw = bad.then(|| {
                planted += 1;
                Flaw::ALL[planted % Flaw::ALL.len()]
            });
            out.push(inst.line(seed, month, 1, flaw).into_bytes());
        }
    }
    out
}

/// Decodes lines that must all be valid.
///
/// # Panics
///
/// When a line is rejected: synthetic inputs are a bug then.
pub fn decode_all(lines: &[Vec<u8>]) -> Vec<Report> {
    let limits = DecodeLimits::default();
    lines
        .iter()
        .map(|l| match decode(l, &limits) {
            Ok(r) => r,
            Err(e) => panic!("synthetic line rejected: {e}: {}", String::from_utf8_lossy(l)),
        })
        .collect()
}

/// The decoded reports of [`report_lines`].
pub fn reports(n_institutions: usize, periods: usize, seed: u64) -> Vec<Report> {
    decode_all(&report_lines(n_institutions, periods, seed))
}

/// The decoded reports of [`sector_lines`].
pub fn sector_reports(sector: Sector, n_institutions: usize, periods: usize, seed: u64) -> Vec<Report> {
    decode_all(&sector_lines(sector, n_institutions, periods, seed))
}

/// Wraps lines as source [`Input`]s, numbered like the lines of a file `bench.jsonl`
/// starting at `first_line`.
pub fn inputs(lines: &[Vec<u8>], first_line: u64) -> Vec<Input> {
    lines
        .iter()
        .zip(first_line..)
        .map(|(l, n)| Input { bytes: l.clone(), position: Position::line("bench.jsonl", n), truncated_from: None })
        .collect()
}

/// The arrivals of one micro-batch after `months` months of a mixed population: the next
/// month's first reports, corrections (revision 2) of the last month for about `revise_percent`
/// in 100 institutions, exact re-sends of last month's reports for about `resend_percent`,
/// and flawed lines for about `bad_percent`, interleaved by institution and cut to `size`.
pub fn next_batch_lines(
    n_institutions: usize,
    months: usize,
    size: usize,
    (revise_percent, resend_percent, bad_percent): (u32, u32, u32),
    seed: u64,
) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(size);
    let last = months.saturating_sub(1);
    let chance = |i: usize, salt: u64, percent: u32| {
        synth::unit(seed, i as u64, months as u64, salt) * 100.0 < f64::from(percent)
    };
    for i in 0..n_institutions {
        let inst = institution(seed, i, None);
        if inst.reports_in(last) && months > 0 {
            if chance(i, 21, revise_percent) {
                out.push(inst.line(seed, last, 2, None).into_bytes());
            }
            if chance(i, 22, resend_percent) {
                out.push(inst.line(seed, last, 1, None).into_bytes());
            }
        }
        if inst.reports_in(months) {
            let flaw = chance(i, 23, bad_percent).then(|| Flaw::ALL[i % Flaw::ALL.len()]);
            out.push(inst.line(seed, months, 1, flaw).into_bytes());
        }
        if out.len() >= size {
            break;
        }
    }
    out.truncate(size);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use yujing_model::Reason;

    #[test]
    fn lines_are_valid_and_deterministic() {
        let lines = report_lines(400, 13, 1);
        assert_eq!(lines, report_lines(400, 13, 1));
        let reports = decode_all(&lines);
        for s in Sector::ALL {
            assert!(reports.iter().any(|r| r.sector == s), "{s}");
            assert_eq!(decode_all(&sector_lines(s, 30, 3, 1)).iter().filter(|r| r.sector != s).count(), 0);
        }
    }

    #[test]
    fn flaws_get_their_reasons() {
        let limits = DecodeLimits::default();
        for s in Sector::ALL {
            let inst = institution(5, 3, Some(s));
            for f in Flaw::ALL {
                let line = inst.line(5, 2, 1, Some(f));
                let got = decode(line.as_bytes(), &limits).map(|_| ()).map_err(|e| e.reason);
                assert_eq!(got, Err(f.reason()), "{s} {f:?}: {line}");
            }
            let rev = decode(inst.line(5, 2, 3, None).as_bytes(), &limits).unwrap();
            assert_eq!(rev.revision, 3);
        }
        let mixed = mixed_lines(500, 2, 10, 9);
        let bad = mixed.iter().filter(|l| decode(l, &limits).is_err()).count();
        assert!((50..=150).contains(&bad), "{bad}");
        assert!(mixed.iter().all(|l| decode(l, &limits).map_err(|e| e.reason) != Err(Reason::TooLarge)));
    }

    #[test]
    fn next_batch_mixes_corrections_resends_and_bad_lines() {
        let batch = next_batch_lines(2000, 6, 1000, (5, 5, 2), 3);
        assert_eq!(batch.len(), 1000);
        let limits = DecodeLimits::default();
        let ok: Vec<Report> = batch.iter().filter_map(|l| decode(l, &limits).ok()).collect();
        assert!(ok.iter().any(|r| r.revision == 2));
        assert!(ok.len() < batch.len());
    }
}
