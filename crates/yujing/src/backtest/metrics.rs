//! The arithmetic of early-warning quality, free of any pipeline: the signals approach's
//! confusion table (Kaminsky, Lizondo and Reinhart), the preference-weighted loss (Alessi and
//! Detken), the area under the ROC curve as a rank statistic (Mann–Whitney), ROC points and
//! medians.
//!
//! The confusion table of a signal against an outcome:
//!
//! |            | event within horizon | no event |
//! |------------|----------------------|----------|
//! | signal     | A (hit)              | B (false alarm) |
//! | no signal  | C (miss)             | D (quiet) |
//!
//! hit rate = A/(A+C), false-alarm rate = B/(B+D), noise-to-signal ratio = FAR / HR,
//! loss L(θ) = θ·C/(A+C) + (1−θ)·B/(B+D).

use serde::Serialize;

/// Counts of a signal against an outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Signal and an event within the horizon (hits).
    pub a: u64,
    /// Signal and no event (false alarms).
    pub b: u64,
    /// No signal but an event (misses).
    pub c: u64,
    /// No signal and no event.
    pub d: u64,
}

impl Confusion {
    /// Counts one observation.
    pub fn add(&mut self, signal: bool, event: bool) {
        match (signal, event) {
            (true, true) => self.a += 1,
            (true, false) => self.b += 1,
            (false, true) => self.c += 1,
            (false, false) => self.d += 1,
        }
    }

    /// The table of a list of (signal, event) observations.
    pub fn of(observations: impl IntoIterator<Item = (bool, bool)>) -> Confusion {
        let mut c = Confusion::default();
        for (s, e) in observations {
            c.add(s, e);
        }
        c
    }

    /// Observations with an event.
    pub fn positives(&self) -> u64 {
        self.a + self.c
    }

    /// Observations without an event.
    pub fn negatives(&self) -> u64 {
        self.b + self.d
    }

    /// A/(A+C): the share of event observations that were signalled; `None` without events.
    pub fn hit_rate(&self) -> Option<f64> {
        ratio(self.a, self.positives())
    }

    /// B/(B+D): the share of quiet observations that were signalled; `None` without them.
    pub fn false_alarm_rate(&self) -> Option<f64> {
        ratio(self.b, self.negatives())
    }

    /// [B/(B+D)] / [A/(A+C)]; `None` when either rate is undefined or nothing was hit.
    pub fn noise_to_signal(&self) -> Option<f64> {
        let hr = self.hit_rate()?;
        let far = self.false_alarm_rate()?;
        (hr > 0.0).then(|| far / hr)
    }

    /// A/(A+B): the share of signals followed by an event.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.a, self.a + self.b)
    }

    /// The Alessi–Detken loss θ·C/(A+C) + (1−θ)·B/(B+D); an undefined rate counts as 0.
    pub fn loss(&self, theta: f64) -> f64 {
        let miss = ratio(self.c, self.positives()).unwrap_or(0.0);
        let far = self.false_alarm_rate().unwrap_or(0.0);
        theta * miss + (1.0 - theta) * far
    }
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The area under the ROC curve of `score` as a predictor of `event`, by the Mann–Whitney
/// rank statistic with tied scores given their average rank: the probability that a random
/// event observation scores higher than a random quiet one, ties counting one half.
/// `None` without both kinds of observation; non-finite scores are not allowed.
pub fn auroc(observations: &[(f64, bool)]) -> Option<f64> {
    let positives = observations.iter().filter(|(_, e)| *e).count();
    let negatives = observations.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = observations.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let j = i + sorted[i..].iter().take_while(|(s, _)| *s == sorted[i].0).count();
        // Ranks i+1 ..= j share their average.
        let avg = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg * sorted[i..j].iter().filter(|(_, e)| *e).count() as f64;
        i = j;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The ROC curve: (false-alarm rate, hit rate) at every distinct threshold "score ≥ τ",
/// from (0, 0) (no signal) to (1, 1) (always signal). Empty without both kinds.
pub fn roc_points(observations: &[(f64, bool)]) -> Vec<(f64, f64)> {
    let positives = observations.iter().filter(|(_, e)| *e).count() as f64;
    let negatives = observations.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return Vec::new();
    }
    let mut sorted: Vec<(f64, bool)> = observations.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < sorted.len() {
        let j = i + sorted[i..].iter().take_while(|(s, _)| *s == sorted[i].0).count();
        for (_, e) in &sorted[i..j] {
            if *e {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
        }
        points.push((fp / negatives, tp / positives));
        i = j;
    }
    points
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_predictor_has_auroc_one() {
        let obs = [(0.1, false), (0.2, false), (0.3, false), (0.8, true), (0.9, true)];
        assert_eq!(auroc(&obs), Some(1.0));
        // Reversed, it is perfectly wrong.
        let rev: Vec<(f64, bool)> = obs.iter().map(|(s, e)| (-s, *e)).collect();
        assert_eq!(auroc(&rev), Some(0.0));
    }

    #[test]
    fn a_constant_predictor_has_auroc_one_half() {
        let obs = [(5.0, false), (5.0, true), (5.0, false), (5.0, false), (5.0, true)];
        assert_eq!(auroc(&obs), Some(0.5));
    }

    #[test]
    fn auroc_counts_pairs_with_ties_as_halves() {
        // Positives 3 and 2; negatives 1 and 2. Pairs: (3,1) 1, (3,2) 1, (2,1) 1, (2,2) ½
        // → 3.5 of 4.
        let obs = [(3.0, true), (2.0, true), (1.0, false), (2.0, false)];
        assert_eq!(auroc(&obs), Some(3.5 / 4.0));
        assert_eq!(auroc(&[(1.0, true)]), None);
        assert_eq!(auroc(&[]), None);
    }

    #[test]
    fn roc_points_run_from_corner_to_corner_and_match_the_area() {
        let obs = [(3.0, true), (2.0, true), (1.0, false), (2.0, false)];
        let pts = roc_points(&obs);
        assert_eq!(pts, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        let area: f64 = pts.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        assert!((area - auroc(&obs).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn the_confusion_table_gives_hit_rate_false_alarms_and_nsr() {
        // A hand-made table: 8 hits, 2 misses, 9 false alarms, 81 quiet.
        let t = Confusion { a: 8, b: 9, c: 2, d: 81 };
        assert_eq!(t.hit_rate(), Some(0.8));
        assert_eq!(t.false_alarm_rate(), Some(0.1));
        assert!((t.noise_to_signal().unwrap() - 0.125).abs() < 1e-12);
        assert_eq!(t.precision(), Some(8.0 / 17.0));
        // L(θ) = θ·0.2 + (1−θ)·0.1
        assert!((t.loss(0.5) - 0.15).abs() < 1e-12);
        assert!((t.loss(0.8) - (0.16 + 0.02)).abs() < 1e-12);
        let counted = Confusion::of([(true, true), (true, false), (false, true), (false, false), (false, false)]);
        assert_eq!(counted, Confusion { a: 1, b: 1, c: 1, d: 2 });
        // Nothing hit: no NSR.
        assert_eq!(Confusion { a: 0, b: 3, c: 2, d: 5 }.noise_to_signal(), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
