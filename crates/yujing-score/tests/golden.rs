//! Golden tests: a small hand-made report set whose expected scores are derived by hand here,
//! independently of the polars code.

use std::collections::BTreeSet;
use yujing_model::{Grade, Level, Metrics, Period, Report, Sector, SectorScope};
use yujing_score::{ScoreConfig, aggregate, score_sector};

fn report(inst: &str, sector: Sector, district: u32, period: &str, values: &[f64]) -> Report {
    Report {
        schema_version: 1,
        report_id: format!("{inst}/{period}/r1").into(),
        institution_id: inst.into(),
        institution_name: inst.into(),
        sector,
        district_code: district,
        period: period.parse().unwrap(),
        revision: 1,
        submitted_at: "2026-01-01T00:00:00+08:00".parse().unwrap(),
        metrics: Metrics::new(sector, values).unwrap(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn periods(p: &[&str]) -> BTreeSet<Period> {
    p.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn bank_scorecard_by_hand() {
    // loans 1000, npl 30 (3%), special mention 60 (6%), provision 36 (coverage 120%), CAR 10.5%.
    let r = report("B1", Sector::Bank, 500103, "2020-12", &[1000.0, 30.0, 60.0, 36.0, 0.105]);
    let s = &score_sector(&ScoreConfig::default(), Sector::Bank, &periods(&["2020-12"]), &[&r]).unwrap()[0];
    // Sub-scores: npl (3-1)/(5-1) = 50; sm (6-2)/(10-2) = 50; coverage (1.2-1.5)/(1.0-1.5) = 60;
    // CAR (0.105-0.13)/(0.08-0.13) = 50. Weights .35 .15 .20 .30.
    let expected = 0.35 * 50.0 + 0.15 * 50.0 + 0.20 * 60.0 + 0.30 * 50.0;
    assert!(close(s.base_score, expected), "{} vs {expected}", s.base_score);
    assert!(close(s.score, 52.0));
    assert_eq!(s.grade, Grade::Blue);
    assert!(close(s.indicator(yujing_model::Indicator::NplRatio).unwrap(), 0.03));
    assert_eq!(s.trend_delta.get(), None);
    assert_eq!(s.exposure, 1000.0);
}

#[test]
fn microloan_guarantee_and_p2p_by_hand() {
    let cfg = ScoreConfig::default();
    // Microloan: npl 9/100 -> (0.09-0.03)/0.12 = 50; concentration 10/100 -> 50; leverage 75/100 -> 50.
    let m = report("M1", Sector::Microloan, 500101, "2020-12", &[100.0, 9.0, 100.0, 10.0, 75.0]);
    let s = &score_sector(&cfg, Sector::Microloan, &periods(&["2020-12"]), &[&m]).unwrap()[0];
    assert!(close(s.score, 50.0), "{}", s.score);
    // Guarantee: outstanding 1000, released 200, payouts 2 (1% -> 0), recoveries 2 (100% -> 0),
    // net assets 100 (leverage 10 -> 50), largest client 20 (20% -> 100).
    let g = report("G1", Sector::Guarantee, 500101, "2020-12", &[1000.0, 200.0, 2.0, 2.0, 100.0, 20.0]);
    let s = &score_sector(&cfg, Sector::Guarantee, &periods(&["2020-12"]), &[&g]).unwrap()[0];
    assert!(close(s.score, 0.25 * 50.0 + 0.15 * 100.0), "{}", s.score);
    // P2P: outstanding 0 of 100 at exit -> progress 1 -> 0; stall: nothing repaid of nothing
    // outstanding -> undefined -> 0; complaints 0 of 0 lenders -> undefined -> 0.
    let p = report("P1", Sector::P2pResidual, 500101, "2020-12", &[0.0, 100.0, 0.0, 0.0, 0.0]);
    let s = &score_sector(&cfg, Sector::P2pResidual, &periods(&["2020-12"]), &[&p]).unwrap()[0];
    assert_eq!(s.score, 0.0);
    assert_eq!(s.indicator(yujing_model::Indicator::Stall), None);
    // A stalled platform: 90 of 100 outstanding (progress 10% -> 100), nothing repaid (stall 0 ->
    // 100), 10 complaints from 500 lenders (20 per 1000 -> 100).
    let p = report("P2", Sector::P2pResidual, 500101, "2020-12", &[90.0, 100.0, 500.0, 0.0, 10.0]);
    let s = &score_sector(&cfg, Sector::P2pResidual, &periods(&["2020-12"]), &[&p]).unwrap()[0];
    assert!(close(s.score, 100.0), "{}", s.score);
    assert_eq!(s.grade, Grade::Red);
}

#[test]
fn trend_adds_points_to_the_sharpest_deterioration_only() {
    let cfg = ScoreConfig::default();
    let mut reports = Vec::new();
    // Six microloan companies, flat at npl 6% (sub 25); one jumps to 12% (sub 75).
    for i in 0..6 {
        let id = format!("M{i}");
        reports.push(report(&id, Sector::Microloan, 500101, "2020-11", &[100.0, 6.0, 100.0, 5.0, 50.0]));
        let npl = if i == 0 { 12.0 } else { 6.0 + 0.1 * i as f64 };
        reports.push(report(&id, Sector::Microloan, 500101, "2020-12", &[100.0, npl, 100.0, 5.0, 50.0]));
    }
    let refs: Vec<&Report> = reports.iter().collect();
    let s = score_sector(&cfg, Sector::Microloan, &periods(&["2020-12"]), &refs).unwrap();
    assert_eq!(s.len(), 6, "only the requested period comes back");
    let jumper = s.iter().find(|x| &*x.institution_id == "M0").unwrap();
    assert!(close(jumper.trend_delta.get().unwrap(), 0.45 * 50.0));
    // Its z-score is against the period's own baseline, which the scores come with.
    let own = [("2020-12".parse::<Period>().unwrap(), yujing_score::Baseline::Own)].into_iter().collect();
    let scored = yujing_score::score_sector_against(&cfg, Sector::Microloan, &own, &refs).unwrap();
    assert_eq!(scored.scores, s);
    let baseline = scored.trend[&"2020-12".parse::<Period>().unwrap()].expect("six changes: a baseline");
    assert_eq!(scored.baselines[&"2020-12".parse::<Period>().unwrap()], Some(baseline));
    assert!(jumper.trend_z(Some(&baseline)).unwrap() > 2.0);
    assert_eq!(jumper.trend_z(None), None);
    assert!(jumper.trend_points > 5.0);
    assert!(close(jumper.score, jumper.base_score + jumper.trend_points));
    assert!(s.iter().filter(|x| &*x.institution_id != "M0").all(|x| x.trend_points == 0.0));
    // Order of inputs does not matter.
    let mut rev = refs.clone();
    rev.reverse();
    assert_eq!(score_sector(&cfg, Sector::Microloan, &periods(&["2020-12"]), &rev).unwrap(), s);
}

#[test]
fn aggregates_are_recomputed_from_sums() {
    let cfg = ScoreConfig::default();
    // Two microloan companies in 渝中区: npl 1/100 and 30/200. Σ ratio = 31/300, not the mean of ratios.
    let a = report("M1", Sector::Microloan, 500103, "2020-12", &[100.0, 1.0, 100.0, 1.0, 10.0]);
    let b = report("M2", Sector::Microloan, 500103, "2020-12", &[200.0, 30.0, 100.0, 1.0, 10.0]);
    let g = report("G1", Sector::Guarantee, 500101, "2020-12", &[1000.0, 200.0, 5.0, 5.0, 100.0, 20.0]);
    let p = periods(&["2020-12"]);
    let sm = score_sector(&cfg, Sector::Microloan, &p, &[&a, &b]).unwrap();
    let sg = score_sector(&cfg, Sector::Guarantee, &p, &[&g]).unwrap();
    let rows = vec![(&sm[0], &a), (&sm[1], &b), (&sg[0], &g)];
    let agg = aggregate(&cfg, &rows).unwrap();
    let find = |level: Level, id: &str, sector: SectorScope| {
        agg.iter().find(|x| x.level == level && x.entity_id == id && x.sector == sector).unwrap()
    };
    let yz = find(Level::District, "500103", SectorScope::One(Sector::Microloan));
    assert!(close(yz.npl_ratio.unwrap(), 31.0 / 300.0));
    assert_eq!(yz.institutions, 2);
    let weighted = (sm[0].score * 100.0 + sm[1].score * 200.0) / 300.0;
    assert!(close(yz.score, weighted));
    assert_eq!(yz.entity_name, "渝中区");
    assert_eq!(yz.top[0].institution_id, "M2");
    let city = find(Level::City, "500000", SectorScope::All);
    assert_eq!(city.institutions, 3);
    assert!(close(city.payout_rate.unwrap(), 5.0 / 200.0));
    assert!(close(city.npl_ratio.unwrap(), 31.0 / 300.0));
    let region = find(Level::Region, "northeast", SectorScope::One(Sector::Guarantee));
    assert_eq!(region.npl_ratio, None);
    assert_eq!(region.institutions, 1);
    // 3 institutions × (district, region, city) × (own sector, all), merged by key:
    // districts: 500103/microloan, 500103/all, 500101/guarantee, 500101/all; regions 4; city 3.
    assert_eq!(agg.len(), 4 + 4 + 3);
}

/// Regression: district sums differed in their last bits depending on how polars partitioned
/// the rows, so two batchings of the same reports gave different scores.
#[test]
fn regression_aggregate_sums_do_not_depend_on_row_order() {
    let cfg = ScoreConfig::default();
    let p = periods(&["2020-12"]);
    let reports: Vec<Report> = (0..300)
        .map(|i| {
            let npl = 0.01 + (i as f64 * 0.37).sin().abs() * 0.2;
            let loans = 1.0e8 * (1.0 + (i as f64 * 1.3).cos().abs() * 50.0) + 0.37;
            report(
                &format!("M{i:03}"),
                Sector::Microloan,
                500103 + (i % 3) as u32,
                "2020-12",
                &[loans, npl * loans, 0.9 * loans, 0.05 * loans, 0.4 * loans],
            )
        })
        .collect();
    let refs: Vec<&Report> = reports.iter().collect();
    let scores = score_sector(&cfg, Sector::Microloan, &p, &refs).unwrap();
    let rows: Vec<_> = scores.iter().zip(reports.iter()).collect();
    let forward = aggregate(&cfg, &rows).unwrap();
    let mut reversed = rows.clone();
    reversed.reverse();
    let mut interleaved: Vec<_> = rows.iter().step_by(2).chain(rows.iter().skip(1).step_by(2)).copied().collect();
    interleaved.rotate_left(17);
    for other in [reversed, interleaved] {
        let got = aggregate(&cfg, &other).unwrap();
        for (a, b) in forward.iter().zip(&got) {
            assert_eq!(a.score.to_bits(), b.score.to_bits(), "{} {}", a.entity_id, a.sector);
            assert_eq!(a.npl_ratio.map(f64::to_bits), b.npl_ratio.map(f64::to_bits));
            assert_eq!(a.exposure.to_bits(), b.exposure.to_bits());
        }
    }
}

/// Regions and the city are summed from their districts' integer sums: the same bits as
/// aggregating all their rows as one district.
#[test]
fn regions_and_the_city_equal_their_rows_aggregated_as_one() {
    let cfg = ScoreConfig::default();
    let p = periods(&["2020-12"]);
    // Spread over districts of two regions (主城 500103..500105, 渝东北 500101).
    let districts = [500103, 500104, 500105, 500101];
    let reports: Vec<Report> = (0..200)
        .map(|i| {
            let loans = 1.0e7 * (1.0 + (i as f64 * 0.7).sin().abs() * 30.0) + 0.13;
            let npl = 0.02 + (i as f64 * 0.41).cos().abs() * 0.15;
            let values = [loans, npl * loans, 0.8 * loans, 0.07 * loans, 0.5 * loans];
            report(&format!("M{i:03}"), Sector::Microloan, districts[i % 4], "2020-12", &values)
        })
        .collect();
    let refs: Vec<&Report> = reports.iter().collect();
    let scores = score_sector(&cfg, Sector::Microloan, &p, &refs).unwrap();
    let rows: Vec<_> = scores.iter().zip(reports.iter()).collect();
    let agg = aggregate(&cfg, &rows).unwrap();
    // The same rows, every one in 渝中区: its district aggregate is computed directly.
    let moved: Vec<yujing_model::InstitutionScore> =
        scores.iter().map(|s| yujing_model::InstitutionScore { district_code: 500103, ..s.clone() }).collect();
    let one: Vec<_> = moved.iter().zip(reports.iter()).collect();
    let direct = aggregate(&cfg, &one).unwrap();
    let get = |v: &[yujing_model::AggregateScore], level: Level, id: &str| {
        v.iter().find(|x| x.level == level && x.entity_id == id && x.sector == SectorScope::All).unwrap().clone()
    };
    let (city, whole) = (get(&agg, Level::City, "500000"), get(&direct, Level::District, "500103"));
    assert_eq!(city.institutions, 200);
    assert_eq!(city.score.to_bits(), whole.score.to_bits());
    assert_eq!(city.exposure.to_bits(), whole.exposure.to_bits());
    assert_eq!(city.npl_ratio.map(f64::to_bits), whole.npl_ratio.map(f64::to_bits));
    assert_eq!(city.grade_counts, whole.grade_counts);
    let main_urban = get(&agg, Level::Region, "main-urban");
    assert_eq!(main_urban.institutions, 150);
    let districts_exposure: f64 =
        ["500103", "500104", "500105"].iter().map(|d| get(&agg, Level::District, d).exposure).sum();
    assert!(close(main_urban.exposure, districts_exposure));
}
