//! Streaming consistency: reconciling an entity after every new period ends where a
//! one-shot derivation of the whole series does, and growing a series never supersedes.

use chrono::{DateTime, FixedOffset};
use std::collections::BTreeSet;
use yujing_alert::{AlertBook, EntitySeries, RulePack, SeriesPoint, derive};
use yujing_model::alert::Figures;
use yujing_model::{Alert, AlertState, EntityKind, Period, Sector, SectorScope, Severity, TransitionKind};

/// A small deterministic generator (an LCG), so the test needs no extra dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn at(p: Period) -> DateTime<FixedOffset> {
    p.end() + chrono::TimeDelta::days(12)
}

/// A microloan company drifting through good and bad months, with missing reports.
fn microloan(seed: u64, months: usize) -> EntitySeries {
    let mut rng = Lcg(seed);
    let start: Period = "2024-01".parse().unwrap();
    let (mut npl, mut score) = (0.08, 55.0);
    let points = (0..months)
        .map(|i| {
            let period = start.add_months(i as i32);
            npl = (npl + (rng.next() - 0.5) * 0.05).clamp(0.0, 0.4);
            score = (score + (rng.next() - 0.5) * 25.0).clamp(0.0, 100.0);
            let missing = rng.next() < 0.12;
            let values: Figures = if missing {
                [("reporting_gap", 2.0)].into_iter().collect()
            } else {
                [
                    ("npl_ratio", npl),
                    ("score", score),
                    ("leverage", 0.4 + rng.next()),
                    ("concentration", rng.next() * 0.2),
                    ("reporting_gap", if rng.next() < 0.1 { 1.0 } else { 0.0 }),
                ]
                .into_iter()
                .collect()
            };
            SeriesPoint { period, at: at(period), values }
        })
        .collect();
    EntitySeries {
        kind: EntityKind::Institution,
        entity_id: format!("CQ-MLC-{seed:04}").into(),
        entity_name: format!("重庆某小贷{seed}").into(),
        district_code: "500106".into(),
        sector: SectorScope::One(Sector::Microloan),
        points,
    }
}

#[test]
fn period_by_period_equals_one_shot() {
    let pack = RulePack::default_pack();
    for seed in 1..=12 {
        let full = microloan(seed, 36);
        let mut book = AlertBook::new();
        let mut opened = BTreeSet::new();
        for n in 1..=full.points.len() {
            let mut prefix = full.clone();
            prefix.points.truncate(n);
            let derived = derive(&pack, &prefix);
            for t in book.reconcile(full.kind, &full.entity_id, full.sector, derived) {
                assert_ne!(t.kind, TransitionKind::Superseded, "seed {seed}: {t:?}");
                if t.kind == TransitionKind::Opened {
                    assert!(opened.insert(t.alert.id.clone()), "opened twice");
                }
                if t.kind == TransitionKind::Escalated {
                    let steps = &t.alert.history;
                    assert!(steps.len() >= 2 && steps.windows(2).all(|w| w[0].severity < w[1].severity));
                }
            }
        }
        let mut one_shot = derive(&pack, &full);
        one_shot.sort_by(|a, b| (a.period, &a.id).cmp(&(b.period, &b.id)));
        let published: Vec<Alert> = book.current().cloned().collect();
        assert_eq!(published, one_shot, "seed {seed}");
        assert_eq!(opened.len(), one_shot.len());
        // at most one active alert per dedupe key, and ids unique
        let active: Vec<&str> =
            one_shot.iter().filter(|a| a.state == AlertState::Open).map(|a| a.dedupe_key.as_str()).collect();
        let unique: BTreeSet<&str> = active.iter().copied().collect();
        assert_eq!(active.len(), unique.len());
    }
}

#[test]
fn the_default_pack_finds_something_in_a_bad_year() {
    let pack = RulePack::default_pack();
    let alerts: Vec<Alert> = (1..=12).flat_map(|s| derive(&pack, &microloan(s, 36))).collect();
    let rules: BTreeSet<&str> = alerts.iter().map(|a| &*a.rule).collect();
    for r in ["microloan-npl", "reporting-late", "institution-failing"] {
        assert!(rules.contains(r), "{rules:?}");
    }
    assert!(alerts.iter().any(|a| a.severity == Severity::Red));
    assert!(alerts.iter().any(|a| a.history.len() > 1), "some escalate");
    assert!(alerts.iter().any(|a| a.state == AlertState::AutoResolved));
    assert!(alerts.iter().any(|a| a.state == AlertState::Open));
    assert!(alerts.iter().all(|a| a.respond_by > a.opened_at));
    assert!(alerts.iter().all(|a| a.evidence.summary.contains(" / ")));
}
