use super::*;
use proptest::prelude::*;
use yujing_model::score::OptF64;
use yujing_model::{DecodeLimits, decode};

/// Districts in each of the three regions.
const DISTRICTS: [u32; 3] = [500103, 500101, 500114];

/// One institution's row as a test describes it.
#[derive(Debug, Clone, Copy)]
struct Spec {
    district: usize,
    /// Microloan or a P2P platform (whose exposure can be none at all).
    p2p: bool,
    /// A score on a coarse grid, so that ties happen.
    score: u8,
    /// Exposure in ten-thousands (zero: none).
    exposure: u8,
    npl: u16,
    minute: u8,
}

fn spec() -> impl Strategy<Value = Spec> {
    (0..DISTRICTS.len(), any::<bool>(), 0u8..5, 0u8..4, 0u16..500, 0u8..60)
        .prop_map(|(district, p2p, score, exposure, npl, minute)| Spec { district, p2p, score, exposure, npl, minute })
}

fn report(inst: usize, s: Spec) -> Report {
    let (sector, metrics) = if s.p2p {
        (
            "p2p_residual",
            format!(
                r#""outstanding_principal":{e},"principal_at_exit":1000000,"lenders_unpaid":{n},"repaid_in_period":5,"complaints_in_period":{n}"#,
                e = u32::from(s.exposure) * 10_000,
                n = s.npl
            ),
        )
    } else {
        (
            "microloan",
            format!(
                r#""loan_balance":{e},"npl_balance":{n},"net_assets":100,"largest_borrower_balance":10,"borrowings":100"#,
                e = 10_000 + u32::from(s.exposure) * 10_000,
                n = s.npl
            ),
        )
    };
    let line = format!(
        r#"{{"schema_version":1,"report_id":"r{inst}","institution_id":"CQ-{inst:04}","institution_name":"某{inst}","sector":"{sector}","district_code":"{d}","period":"2025-09","revision":1,"submitted_at":"2025-10-12T09:{m:02}:00+08:00","metrics":{{{metrics}}}}}"#,
        d = DISTRICTS[s.district],
        m = s.minute
    );
    decode(line.as_bytes(), &DecodeLimits::default()).unwrap_or_else(|e| panic!("{e:?}: {line}"))
}

fn score_of(r: &Report, s: Spec) -> InstitutionScore {
    let score = f64::from(s.score) * 23.5;
    InstitutionScore {
        institution_id: r.institution_id.clone(),
        period: r.period,
        sector: r.sector,
        district_code: r.district_code,
        indicators: Box::default(),
        base_score: score,
        trend_delta: OptF64::NONE,
        trend_points: 0.0,
        score,
        grade: ScoreConfig::default().grades.grade(score),
        exposure: f64::from(s.exposure) * 10_000.0,
    }
}

type Held = Vec<Option<(InstitutionScore, Report)>>;

/// Institutions of the row-by-row test: more than an aggregate holds in order
/// ([`HELD_CONTRIBUTORS`]) in the region and city ones, so that their reserves run out.
const INSTITUTIONS: usize = 2 * HELD_CONTRIBUTORS + 8;

fn rows(held: &Held) -> Vec<Row<'_>> {
    held.iter().flatten().map(|(s, r)| (s, r)).collect()
}

proptest! {
    /// Offering members one by one holds the first of them all sorted, ties on the
    /// contribution included (few distinct scores).
    #[test]
    fn offering_holds_the_first_of_all_sorted(points in proptest::collection::vec(0u8..6, 0..40)) {
        let members: Vec<Member> = points
            .iter()
            .enumerate()
            .map(|(i, p)| Member { id: Arc::from(format!("I{:03}", points.len() - i)), score: f64::from(*p), exposure: 1.0, score_m: i64::from(*p), exposure_fen: 100 })
            .collect();
        let mut agg = Agg { sums: Sums { exposure: 1, ..Sums::default() }, ..Agg::default() };
        for m in &members {
            agg.offer(m.clone());
        }
        let mut all = members.clone();
        all.sort_by(|a, b| member_order(a, b, true));
        all.truncate(HELD_CONTRIBUTORS);
        let ids = |v: &[Member]| v.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
        prop_assert_eq!(ids(&agg.top), ids(&all));
    }

    /// Whatever rows come, go and change, the aggregation kept up to date a row at a time
    /// (taken again in full only when it says so) gives what taking it in full gives.
    #[test]
    fn updating_row_by_row_gives_what_taking_it_in_full_gives(
        first in proptest::collection::vec(proptest::option::of(spec()), INSTITUTIONS),
        changes in proptest::collection::vec((0..INSTITUTIONS, proptest::option::of(spec())), 1..60),
    ) {
        let config = ScoreConfig::default();
        let mut held: Held = first.iter().enumerate().map(|(i, s)| s.map(|s| { let r = report(i, s); (score_of(&r, s), r) })).collect();
        let mut running = Aggregation::of(&rows(&held)).unwrap();
        for (i, s) in changes {
            let new = s.map(|s| { let r = report(i, s); (score_of(&r, s), r) });
            let old = held[i].take();
            let kept = running.update(old.as_ref().map(|(s, r)| (s, r)), new.as_ref().map(|(s, r)| (s, r)));
            held[i] = new;
            if !kept {
                running = Aggregation::of(&rows(&held)).unwrap();
            }
            prop_assert_eq!(running.aggregates(&config), aggregate(&config, &rows(&held)).unwrap());
            let mut a: Vec<DistrictTotals> = running.districts().collect();
            let mut b: Vec<DistrictTotals> = Aggregation::of(&rows(&held)).unwrap().districts().collect();
            let key = |d: &DistrictTotals| (d.district_code, d.scope);
            a.sort_by_key(key);
            b.sort_by_key(key);
            prop_assert_eq!(a, b);
        }
    }
}

/// New institutions arriving, the live path's commonest change, never need the
/// aggregation taken again.
#[test]
fn new_rows_are_always_kept_a_row_at_a_time() {
    let config = ScoreConfig::default();
    let spec = |i: usize| Spec {
        district: i % 3,
        p2p: false,
        score: (i % 5) as u8,
        exposure: 1 + (i % 3) as u8,
        npl: i as u16,
        minute: (i % 60) as u8,
    };
    let all: Vec<(InstitutionScore, Report)> = (0..40)
        .map(|i| {
            let r = report(i, spec(i));
            (score_of(&r, spec(i)), r)
        })
        .collect();
    let mut running = Aggregation::of(&[]).unwrap();
    for (s, r) in &all {
        assert!(running.update(None, Some((s, r))), "{} is kept", s.institution_id);
    }
    let rows: Vec<Row> = all.iter().map(|(s, r)| (s, r)).collect();
    assert_eq!(running.aggregates(&config), aggregate(&config, &rows).unwrap());
    assert!(running.aggregates(&config).iter().all(|a| a.top.len() == TOP_CONTRIBUTORS.min(a.institutions as usize)));
}

/// The bug: a district aggregate was taken again in full (its whole period, 50 to 90 ms on
/// the live path) whenever a correction moved one of its top five below the sixth.
#[test]
fn a_top_contributor_falling_back_keeps_the_aggregation_a_row_at_a_time() {
    let config = ScoreConfig::default();
    let spec = |score: u8| Spec { district: 0, p2p: false, score, exposure: 2, npl: 1, minute: 0 };
    // Thirty in one district, ranked by score (ties by id).
    let mut held: Vec<(InstitutionScore, Report)> = (0..30)
        .map(|i| {
            let s = spec((i % 5) as u8);
            let r = report(i, s);
            (score_of(&r, s), r)
        })
        .collect();
    let mut running = Aggregation::of(&held.iter().map(|(s, r)| (s, r)).collect::<Vec<Row>>()).unwrap();
    // One after another, each of the top five is corrected to the bottom.
    for _ in 0..TOP_CONTRIBUTORS {
        let rows: Vec<Row> = held.iter().map(|(s, r)| (s, r)).collect();
        let top = &aggregate(&config, &rows).unwrap().into_iter().find(|a| a.level == Level::District).unwrap().top[0];
        let i = held.iter().position(|(s, _)| *s.institution_id == top.institution_id).unwrap();
        let r = report(i, spec(0));
        let new = (score_of(&r, spec(0)), r);
        assert!(running.update(Some((&held[i].0, &held[i].1)), Some((&new.0, &new.1))), "kept a row at a time");
        held[i] = new;
        let rows: Vec<Row> = held.iter().map(|(s, r)| (s, r)).collect();
        assert_eq!(running.aggregates(&config), aggregate(&config, &rows).unwrap());
    }
}

#[test]
fn a_group_key_gives_back_its_period_district_and_sector() {
    let periods =
        [Period::from_index(0), "2020-01".parse().unwrap(), "2099-12".parse().unwrap(), Period::from_index(-5)];
    for period in periods {
        for code in [500101, 500243, 0, (1 << 29) - 1] {
            for sector in Sector::ALL {
                assert_eq!(from_group_key(group_key(period, code, sector)), Some((period, code, sector)));
            }
        }
    }
    // Keys of different groups differ.
    let a = group_key("2020-01".parse().unwrap(), 500101, Sector::Bank);
    let b = group_key("2020-02".parse().unwrap(), 500101, Sector::Bank);
    assert_ne!(a, b);
}
