use super::*;
use crate::Error;
use yujing_model::Sector;

/// A valid two-rule pack; line numbers below refer to it.
const GOOD: &str = r#"# a small pack
[[rule]]
id = "microloan-npl"
description = "小贷不良率 / microloan NPL"
entity = "institution"
sectors = ["microloan"]
metric = "npl_ratio"
direction = "above"
mechanism = "exit-mechanism"
owner = "地方金融组织监管处"
respond_within = "10d"
hysteresis = 0.01
levels = [
  { severity = "yellow", at = 0.10 },
  { severity = "orange", at = 0.15, for_periods = 2 },
]

[[rule]]
id = "bank-capital-floor"
description = "资本充足率 / bank capital floor"
entity = "institution"
sectors = ["bank"]
metric = "capital_adequacy_ratio"
direction = "below"
mechanism = "central-local-coordination"
owner = "银行处"
respond_within = "3d"
levels = [
  { severity = "yellow", at = 0.105 },
  { severity = "red", at = 0.08 },
]
"#;

fn err(src: &str) -> Error {
    match RulePack::from_toml_str(src) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e,
    }
}

#[test]
fn good_pack_parses() {
    let pack = RulePack::from_toml_str(GOOD).unwrap();
    assert_eq!(pack.rules().len(), 2);
    let r = &pack.rules()[0];
    assert_eq!(&*r.id, "microloan-npl");
    assert_eq!(r.line, 3);
    assert_eq!(r.entity, EntityKind::Institution);
    assert_eq!(r.sectors, vec![SectorScope::One(Sector::Microloan)]);
    assert_eq!(r.direction, Direction::Above);
    assert_eq!(r.mechanism, Mechanism::ExitMechanism);
    assert_eq!(r.respond_within, Duration::from_secs(10 * 86_400));
    assert_eq!(r.hysteresis, 0.01);
    assert_eq!(r.levels[0].for_periods, 1);
    assert_eq!(r.levels[1].for_periods, 2);
    assert_eq!(r.levels[1].severity, Severity::Orange);
    let b = pack.rule("bank-capital-floor").unwrap();
    assert_eq!(b.line, 19);
    assert_eq!(b.direction, Direction::Below);
    assert_eq!(b.hysteresis, 0.0, "hysteresis defaults to 0");
}

#[test]
fn default_pack_parses_and_covers_every_sector_and_mechanism() {
    let pack = RulePack::from_toml_str(DEFAULT_RULES_TOML).unwrap();
    assert_eq!(pack, RulePack::default_pack());
    assert!(pack.rules().len() >= 20);
    for m in Mechanism::ALL {
        assert!(pack.rules().iter().any(|r| r.mechanism == m), "no rule starts {m}");
    }
    for s in Sector::ALL {
        let scope = SectorScope::One(s);
        assert!(pack.rules().iter().any(|r| r.applies_to(EntityKind::Institution, scope)));
        assert!(pack.rules().iter().any(|r| r.applies_to(EntityKind::District, scope)));
    }
    assert!(pack.rules().iter().any(|r| r.applies_to(EntityKind::District, SectorScope::All)));
    let failing = pack.rule("institution-failing").unwrap();
    assert_eq!(failing.levels[0].for_periods, 2);
    assert_eq!(failing.sectors.len(), 4);
    let late = pack.rule("reporting-late").unwrap();
    assert_eq!(late.mechanism, Mechanism::ReportingDiscipline);
    assert_eq!(&*late.metric, "reporting_gap");
    assert_eq!(late.hysteresis, 0.5);
}

#[test]
fn rule_applies_by_kind_and_sector() {
    let pack = RulePack::default_pack();
    let cluster = pack.rule("district-orange-cluster").unwrap();
    assert!(cluster.applies_to(EntityKind::District, SectorScope::All));
    assert!(cluster.applies_to(EntityKind::Sector, SectorScope::All));
    assert!(!cluster.applies_to(EntityKind::District, SectorScope::One(Sector::Bank)));
    assert!(!cluster.applies_to(EntityKind::Institution, SectorScope::All));
    let npl = pack.rule("microloan-npl").unwrap();
    assert!(npl.applies_to(EntityKind::Institution, SectorScope::One(Sector::Microloan)));
    assert!(!npl.applies_to(EntityKind::District, SectorScope::One(Sector::Microloan)));
    assert!(!npl.applies_to(EntityKind::Institution, SectorScope::One(Sector::Bank)));
}

#[test]
fn unknown_metric_names_rule_and_line() {
    let e = err(&GOOD.replace(r#"metric = "npl_ratio""#, r#"metric = "npl""#));
    assert!(
        matches!(&e, Error::UnknownMetric { rule, line: 7, metric, .. }
            if rule == "microloan-npl" && metric == "npl"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("line 7") && msg.contains("microloan-npl"), "{msg}");
    assert_eq!(e.line(), Some(7));
}

#[test]
fn district_metric_in_institution_rule_is_unknown() {
    let e = err(&GOOD.replace(r#"metric = "npl_ratio""#, r#"metric = "orange_plus""#));
    assert!(matches!(e, Error::UnknownMetric { line: 7, .. }), "{e:?}");
}

#[test]
fn indicator_of_another_sector_is_refused() {
    let e = err(&GOOD.replace(r#"metric = "npl_ratio""#, r#"metric = "stall""#));
    assert!(matches!(e, Error::MetricNotInSector { line: 7, sector: Sector::Microloan, .. }), "{e:?}");
}

#[test]
fn duplicate_id_names_both_lines() {
    let e = err(&GOOD.replace(r#"id = "bank-capital-floor""#, r#"id = "microloan-npl""#));
    assert!(
        matches!(&e, Error::DuplicateRuleId { rule, line: 19, first_line: 3 }
            if rule == "microloan-npl"),
        "{e:?}"
    );
    assert!(e.to_string().contains("line 19"), "{e}");
}

#[test]
fn non_monotone_levels_are_refused() {
    // above: orange's line under yellow's
    let e = err(&GOOD.replace("at = 0.15, for_periods = 2", "at = 0.05"));
    assert!(matches!(&e, Error::ThresholdOrder { rule, line: 15, .. } if rule == "microloan-npl"), "{e:?}");
    assert!(e.to_string().contains("line 15"), "{e}");
    // below: red's line over yellow's
    let e = err(&GOOD.replace("at = 0.08 }", "at = 0.2 }"));
    assert!(matches!(&e, Error::ThresholdOrder { line: 30, direction: Direction::Below, .. }), "{e:?}");
    // an equal line is fine only when it must hold longer
    let same = GOOD.replace("at = 0.15, for_periods = 2", "at = 0.10, for_periods = 2");
    assert!(RulePack::from_toml_str(&same).is_ok());
    let e = err(&GOOD.replace("at = 0.15, for_periods = 2", "at = 0.10"));
    assert!(matches!(e, Error::ThresholdOrder { line: 15, .. }), "{e:?}");
}

#[test]
fn severities_must_rise() {
    let e = err(&GOOD.replace(r#"severity = "orange""#, r#"severity = "yellow""#));
    assert!(matches!(e, Error::SeverityOrder { line: 15, severity: Severity::Yellow, .. }), "{e:?}");
    let e = err(&GOOD.replace(r#"severity = "orange""#, r#"severity = "purple""#));
    assert!(matches!(e, Error::UnknownSeverity { line: 15, .. }), "{e:?}");
}

#[test]
fn unknown_field_is_a_toml_error_with_its_line() {
    let e = err(&GOOD.replace("hysteresis = 0.01", "hysteresis = 0.01\nthreshold = 3"));
    let msg = e.to_string();
    assert!(matches!(e, Error::Toml { .. }), "{e:?}");
    assert!(msg.contains("unknown field `threshold`"), "{msg}");
    assert!(msg.contains("line 13"), "{msg}");
    assert_eq!(e.line(), Some(13));
    // inside a level, too
    let e = err(&GOOD.replace("at = 0.10 }", "at = 0.10, periods = 2 }"));
    assert!(e.to_string().contains("unknown field `periods`"), "{e}");
    assert_eq!(e.line(), Some(14));
}

#[test]
fn syntax_and_type_errors_keep_tomls_message() {
    let e = err(&GOOD.replace(r#"hysteresis = 0.01"#, r#"hysteresis = "a lot""#));
    assert!(e.to_string().contains("line 12"), "{e}");
    let e = err("[[rule]\nid = 1");
    assert!(matches!(e, Error::Toml { line: Some(1), .. }), "{e:?}");
    let e = err(&GOOD.replace(r#"owner = "银行处""#, ""));
    assert!(e.to_string().contains("missing field `owner`"), "{e}");
}

#[test]
fn other_validation_errors() {
    let cases: [(&str, &str, usize); 12] = [
        (r#"id = "microloan-npl""#, r#"id = "Microloan_NPL""#, 3),
        (r#"mechanism = "exit-mechanism""#, r#"mechanism = "exit""#, 9),
        (r#"entity = "institution""#, r#"entity = "company""#, 5),
        (r#"direction = "above""#, r#"direction = "up""#, 8),
        (r#"sectors = ["microloan"]"#, r#"sectors = ["microloans"]"#, 6),
        (r#"sectors = ["microloan"]"#, r#"sectors = ["all"]"#, 6),
        (r#"sectors = ["microloan"]"#, r#"sectors = ["microloan", "microloan"]"#, 6),
        (r#"sectors = ["microloan"]"#, r#"sectors = []"#, 6),
        ("hysteresis = 0.01", "hysteresis = -0.01", 12),
        ("hysteresis = 0.01", "hysteresis = nan", 12),
        ("for_periods = 2", "for_periods = 0", 15),
        (r#"respond_within = "10d""#, r#"respond_within = "soon""#, 11),
    ];
    for (from, to, line) in cases {
        let src = GOOD.replacen(from, to, 1);
        assert_ne!(src, GOOD, "{from}");
        let e = err(&src);
        assert_eq!(e.line(), Some(line), "{to}: {e}");
        assert!(e.to_string().contains("microloan-npl") || to.contains("Microloan"), "{e}");
    }
    let e = err(&GOOD.replacen(
        "levels = [\n  { severity = \"yellow\", at = 0.10 },\n  { severity = \"orange\", at = 0.15, for_periods = 2 },\n]",
        "levels = []",
        1,
    ));
    assert!(matches!(e, Error::NoLevels { line: 13, .. }), "{e:?}");
    let e = err(&GOOD.replacen(r#"owner = "地方金融组织监管处""#, r#"owner = "  ""#, 1));
    assert!(matches!(e, Error::BlankField { field: "owner", line: 3, .. }), "{e:?}");
    let e = err(&GOOD.replacen(r#"respond_within = "10d""#, r#"respond_within = "0s""#, 1));
    assert!(matches!(e, Error::BadDuration { line: 11, .. }), "{e:?}");
    assert!(matches!(err("# nothing\n"), Error::NoRules));
}

#[test]
fn district_rules_take_all_and_district_metrics() {
    let src = r#"
[[rule]]
id = "district-orange-cluster"
description = "区县多家橙色 / orange cluster"
entity = "district"
sectors = ["all", "microloan"]
metric = "orange_plus"
direction = "above"
mechanism = "district-concentration"
owner = "区县金融工作部门"
respond_within = "5d"
hysteresis = 0.5
levels = [{ severity = "yellow", at = 2 }, { severity = "red", at = 5 }]
"#;
    let pack = RulePack::from_toml_str(src).unwrap();
    let r = &pack.rules()[0];
    assert_eq!(r.entity, EntityKind::District);
    assert_eq!(r.sectors[0], SectorScope::All);
    assert_eq!(r.levels[1].at, 5.0, "integers are read as numbers");
    let e = err(&src.replace("orange_plus", "npl"));
    assert!(matches!(e, Error::UnknownMetric { line: 7, entity: EntityKind::District, .. }));
}

#[test]
fn direction_semantics() {
    assert!(Direction::Above.crossed(5.0, 5.0));
    assert!(!Direction::Above.crossed(4.99, 5.0));
    assert!(Direction::Below.crossed(0.08, 0.08));
    assert!(!Direction::Below.crossed(0.081, 0.08));
    assert!(!Direction::Above.cleared(4.5, 5.0, 0.5));
    assert!(Direction::Above.cleared(4.49, 5.0, 0.5));
    assert!(!Direction::Below.cleared(0.085, 0.08, 0.005));
    assert!(Direction::Below.cleared(0.0851, 0.08, 0.005));
    // decimal lines behave as written despite binary floats
    assert!(Direction::Above.crossed(0.1 + 0.2, 0.3) && Direction::Above.crossed(0.3, 0.1 + 0.2));
    assert!(!Direction::Above.cleared(0.09, 0.10, 0.01));
    assert!(Direction::Above.cleared(0.0899, 0.10, 0.01));
    assert!(!Direction::Below.cleared(0.11, 0.105, 0.005));
}

#[test]
fn rules_serialize_for_the_api() {
    let pack = RulePack::from_toml_str(GOOD).unwrap();
    let j = serde_json::to_value(&pack.rules()[0]).unwrap();
    assert_eq!(j["respond_within"], "10days");
    assert_eq!(j["direction"], "above");
    assert_eq!(j["mechanism"], "exit-mechanism");
    assert_eq!(j["sectors"][0], "microloan");
    assert_eq!(j["levels"][1]["severity"], "orange");
}
