use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};

fn microloan() -> Value {
    json!({
        "schema_version": 1,
        "report_id": "CQ-MLC-0042/2025-09/r1",
        "institution_id": "CQ-MLC-0042",
        "institution_name": "重庆某某小额贷款有限公司",
        "sector": "microloan",
        "district_code": "500103",
        "period": "2025-09",
        "revision": 1,
        "submitted_at": "2025-10-12T09:30:00+08:00",
        "metrics": { "loan_balance": 512000000, "npl_balance": 48000000,
                     "net_assets": 300000000, "largest_borrower_balance": 26000000,
                     "borrowings": 150000000 }
    })
}

fn reason_of(v: &Value) -> Result<Report, Reason> {
    decode(v.to_string().as_bytes(), &DecodeLimits::default()).map_err(|r| r.reason)
}

fn with(mut v: Value, path: &[&str], new: Value) -> Value {
    let mut cur = &mut v;
    for p in &path[..path.len() - 1] {
        cur = &mut cur[*p];
    }
    cur[path[path.len() - 1]] = new;
    v
}

#[test]
fn accepts_the_design_example() {
    let r = reason_of(&microloan()).unwrap();
    assert_eq!(r.sector, Sector::Microloan);
    assert_eq!(r.metrics.value(Metric::NplBalance), 48_000_000.0);
    // Round trip: what we serialize decodes to the same report.
    let again = decode(serde_json::to_string(&r).unwrap().as_bytes(), &DecodeLimits::default()).unwrap();
    assert_eq!(again, r);
}

#[test]
fn malformed_json() {
    for bad in [&b"{"[..], b"not json", b"\xff\xfe{}", b"", b"{\"schema_version\":1,"] {
        assert_eq!(decode(bad, &DecodeLimits::default()).unwrap_err().reason, Reason::MalformedJson, "{bad:?}");
    }
}

#[test]
fn a_name_that_is_not_utf8_is_malformed_json_where_serde_json_says() {
    let good = serde_json::to_vec(&microloan()).unwrap();
    assert!(decode(&good, &DecodeLimits::default()).is_ok());
    // The name's first byte made invalid: only a string's content can be.
    let at = good.windows(3).position(|w| w == "重".as_bytes()).unwrap();
    let mut bad = good.clone();
    bad[at] = 0xff;
    let err = decode(&bad, &DecodeLimits::default()).unwrap_err();
    assert_eq!(err.reason, Reason::MalformedJson);
    let expected = serde_json::from_slice::<Value>(&bad).unwrap_err().to_string();
    assert_eq!(err.detail, expected, "the position of the bad byte is named");
}

#[test]
fn schema_violation() {
    let cases = [
        with(microloan(), &["schema_version"], json!(2)),
        with(microloan(), &["sector"], json!("insurance")),
        with(microloan(), &["period"], json!("2025-13")),
        with(microloan(), &["revision"], json!(0)),
        with(microloan(), &["submitted_at"], json!("yesterday")),
        with(microloan(), &["metrics", "npl_ratio"], json!(0.1)),
        with(microloan(), &["metrics", "total_loans"], json!(1)),
        with(microloan(), &["metrics", "loan_balance"], json!("512000000")),
        with(microloan(), &["district_code"], json!(500103)),
        with(microloan(), &["district_code"], json!("5001")),
        with(microloan(), &["extra"], json!(true)),
        json!([1, 2, 3]),
    ];
    for c in &cases {
        assert_eq!(reason_of(c).unwrap_err(), Reason::SchemaViolation, "{c}");
    }
    let mut missing = microloan();
    missing["metrics"].as_object_mut().unwrap().remove("borrowings");
    assert_eq!(reason_of(&missing).unwrap_err(), Reason::SchemaViolation);
}

#[test]
fn unknown_district() {
    assert_eq!(
        reason_of(&with(microloan(), &["district_code"], json!("500232"))).unwrap_err(),
        Reason::UnknownDistrict
    );
    assert_eq!(
        reason_of(&with(microloan(), &["district_code"], json!("110101"))).unwrap_err(),
        Reason::UnknownDistrict
    );
}

#[test]
fn negative_amount() {
    assert_eq!(
        reason_of(&with(microloan(), &["metrics", "borrowings"], json!(-1))).unwrap_err(),
        Reason::NegativeAmount
    );
}

#[test]
fn inconsistent() {
    assert_eq!(
        reason_of(&with(microloan(), &["metrics", "npl_balance"], json!(600000000))).unwrap_err(),
        Reason::Inconsistent
    );
    assert_eq!(
        reason_of(&with(microloan(), &["submitted_at"], json!("2025-08-01T00:00:00+08:00"))).unwrap_err(),
        Reason::Inconsistent
    );
}

#[test]
fn too_large() {
    let padded = with(microloan(), &["institution_name"], json!("x".repeat(70 * 1024)));
    assert_eq!(reason_of(&padded).unwrap_err(), Reason::TooLarge);
}

#[test]
fn bank_reports_are_quarterly_and_car_is_a_fraction() {
    let bank = json!({
        "schema_version": 1, "report_id": "b/2025-09/r1", "institution_id": "CQ-BNK-0001",
        "institution_name": "重庆某银行", "sector": "bank", "district_code": "500103", "period": "2025-09",
        "revision": 1, "submitted_at": "2025-10-20T00:00:00+08:00",
        "metrics": {"total_loans": 1.0e11, "npl_balance": 1.5e9, "special_mention_balance": 2.0e9,
                    "loan_loss_provision": 3.0e9, "capital_adequacy_ratio": 0.135}
    });
    assert!(reason_of(&bank).is_ok());
    assert_eq!(reason_of(&with(bank.clone(), &["period"], json!("2025-08"))).unwrap_err(), Reason::SchemaViolation);
    assert_eq!(
        reason_of(&with(bank, &["metrics", "capital_adequacy_ratio"], json!(13.5))).unwrap_err(),
        Reason::SchemaViolation
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, &DecodeLimits::default());
    }

    #[test]
    fn arbitrary_json_is_accepted_or_rejected_with_a_reason(v in arb_json()) {
        match decode(v.to_string().as_bytes(), &DecodeLimits::default()) {
            Ok(_) => {}
            Err(r) => prop_assert!(Reason::ALL.contains(&r.reason) && r.reason != Reason::StaleRevision),
        }
    }

    #[test]
    fn mutated_reports_never_panic(key in "[a-z_]{1,24}", val in arb_json()) {
        let mut v = microloan();
        v[key.as_str()] = val.clone();
        let _ = decode(v.to_string().as_bytes(), &DecodeLimits::default());
        let mut v = microloan();
        v["metrics"][key.as_str()] = val;
        let _ = decode(v.to_string().as_bytes(), &DecodeLimits::default());
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn an_ascii_id_is_valid_exactly_when_every_character_is_visible() {
    for b in 0u8..128 {
        let c = char::from(b);
        let id = format!("CQ{c}1");
        assert_eq!(valid_id(&id, 64), !c.is_whitespace() && !c.is_control(), "{b:#04x}");
    }
    // Beyond ASCII, Unicode's white space and controls are refused as before.
    assert!(!valid_id("CQ\u{3000}1", 64) && !valid_id("CQ\u{85}1", 64) && valid_id("CQ-某1", 64));
}
