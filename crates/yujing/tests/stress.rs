//! Stress projection: one small case worked out by hand, determinism, and the shipped
//! scenario files.

mod common;

use common::{config, line, on_time};
use yujing::replay::load_rules;
use yujing::stress::project;
use yujing_model::{DecodeLimits, EntityKind, Grade, Mechanism, Report, Sector, Severity, decode};
use yujing_score::stress::Scenario;

fn report(inst: &str, district: u32, values: &[f64]) -> Report {
    let l = line(inst, Sector::Microloan, district, "2021-06", 1, &on_time("2021-06"), values);
    decode(l.as_bytes(), &DecodeLimits::default()).expect("valid report")
}

/// Two microloan companies with equal loans: one in 云阳 (渝东北) at a 9% NPL ratio, one in
/// 渝中 at 3%; concentration and leverage at their safe cutoffs.
fn reports() -> Vec<Report> {
    vec![
        report("CQ-MLC-0001", 500235, &[1000.0, 90.0, 1000.0, 50.0, 500.0]),
        report("CQ-MLC-0002", 500103, &[1000.0, 30.0, 1000.0, 50.0, 500.0]),
    ]
}

const NORTHEAST_NPL: &str = r#"
name = "northeast microloan NPL +6pp"
[[shock]]
sector = "microloan"
metric = "npl_ratio"
scope = { region = "northeast" }
add_pp = 6.0
"#;

#[test]
fn a_northeast_npl_shock_projects_as_worked_out_by_hand() {
    let c = config();
    let rules = load_rules(&c).unwrap();
    let scenario = Scenario::from_toml_str(NORTHEAST_NPL).unwrap();
    let p = project(&c, &rules, &reports(), &scenario, None).unwrap();
    assert_eq!(p.period.to_string(), "2021-06");
    assert_eq!(p.shocks.len(), 1);
    assert_eq!(p.shocks[0].reports, 1, "only the 云阳 company is in the northeast");

    // NPL 9% scores 0.45 × (9−3)/(15−3) × 100 = 22.5; at 15% the sub-score is 100: 45, blue.
    assert_eq!(p.institutions.len(), 1);
    let i = &p.institutions[0];
    assert_eq!(i.institution_id, "CQ-MLC-0001");
    assert!((i.change.score_before - 22.5).abs() < 1e-9 && (i.change.score_after - 45.0).abs() < 1e-9, "{i:?}");
    assert_eq!((i.change.grade_before, i.change.grade_after), (Grade::Normal, Grade::Blue));

    // The city is the exposure-weighted mean of 22.5 and 0, then of 45 and 0.
    assert!((p.city.score_before - 11.25).abs() < 1e-9 && (p.city.score_after - 22.5).abs() < 1e-9);
    let yunyang = p.districts.iter().find(|d| d.code == "500235").unwrap();
    assert_eq!((yunyang.change.grade_before, yunyang.change.grade_after), (Grade::Normal, Grade::Blue));
    assert_eq!(yunyang.lit, vec![Mechanism::ExitMechanism, Mechanism::DistrictConcentration]);
    let yuzhong = p.districts.iter().find(|d| d.code == "500103").unwrap();
    assert!(yuzhong.lit.is_empty() && yuzhong.change.score_after == yuzhong.change.score_before);

    // Two alerts open: the company's NPL at the 15% orange line, and 云阳's microloan NPL
    // ratio (Σnpl/Σloans = 15%) at the district's orange line.
    let mut opened: Vec<(&str, EntityKind, Option<Severity>, Severity)> =
        p.new_alerts.iter().map(|a| (a.rule.as_str(), a.entity_kind, a.before, a.after)).collect();
    opened.sort_by_key(|o| o.0);
    assert_eq!(
        opened,
        vec![
            ("district-microloan-npl", EntityKind::District, None, Severity::Orange),
            ("microloan-npl", EntityKind::Institution, None, Severity::Orange),
        ]
    );
    let lit: Vec<Mechanism> =
        p.mechanisms.iter().filter(|m| m.before == 0 && m.after > 0).map(|m| m.mechanism).collect();
    assert_eq!(lit, vec![Mechanism::ExitMechanism, Mechanism::DistrictConcentration]);

    // Pure: the same inputs give the same projection, and the inputs are untouched.
    assert_eq!(project(&c, &rules, &reports(), &scenario, None).unwrap(), p);
}

#[test]
fn the_shipped_scenarios_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::from_toml_str(&std::fs::read_to_string(&path).unwrap());
            assert!(s.is_ok(), "{}: {:?}", path.display(), s.err());
            n += 1;
        }
    }
    assert!(n >= 3, "{n} scenarios");
}
