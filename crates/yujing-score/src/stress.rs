//! Stress scenarios: shocks to reported figures by sector and place (the plan's "strengthen
//! risk stress testing").
//!
//! A scenario is a TOML file of `[[shock]]` tables. Each shock picks the reports of one
//! sector within a scope (the whole city, a region of 一区两群, listed districts, and/or the
//! N largest institutions by exposure) and moves one figure:
//!
//! - `metric` is a reported metric (`net_assets`, `payouts_ytd`, …) or a ratio indicator of
//!   the sector (`npl_ratio`, `payout_rate`, `leverage`, …);
//! - exactly one of `add_pp` (percentage points; a ratio indicator, or a metric that is
//!   itself a fraction such as `capital_adequacy_ratio`), `multiply` (a factor on the
//!   metric, or on a ratio's numerator) or `add` (an amount added to a metric) is given.
//!
//! Shocks apply in file order to copies of the reports; the originals are never touched.
//!
//! ```
//! use yujing_score::stress::Scenario;
//! let s = Scenario::from_toml_str(r#"
//!     name = "microloan NPL +3pp"
//!     [[shock]]
//!     sector = "microloan"
//!     metric = "npl_ratio"
//!     scope = { region = "all" }
//!     add_pp = 3.0
//! "#).unwrap();
//! assert_eq!(s.shocks.len(), 1);
//! assert!(Scenario::from_toml_str("name = \"x\"\n[[shock]]\nsector = \"bank\"\nmetric = \"npl\"\nmultiply = 2.0").is_err());
//! ```

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use yujing_model::district::parse_district_code;
use yujing_model::{Indicator, Metric, Region, Report, Sector, district};

/// A stress scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name.
    pub name: String,
    /// What the scenario stands for.
    #[serde(default)]
    pub description: String,
    /// The shocks, applied in order.
    #[serde(rename = "shock")]
    pub shocks: Vec<Shock>,
}

/// Which institutions of a sector a shock hits. An empty scope is the whole city.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// `all`, or a region id: `main-urban` (主城都市区), `northeast` (渝东北), `southeast` (渝东南).
    #[serde(default)]
    pub region: Option<String>,
    /// District codes such as `"500103"`; institutions elsewhere are left alone.
    #[serde(default)]
    pub districts: Option<Vec<String>>,
    /// Only the N largest of the sector within the place, by exposure.
    #[serde(default)]
    pub largest: Option<usize>,
}

/// One shock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shock {
    /// The sector shocked.
    pub sector: Sector,
    /// A metric of the sector or one of its ratio indicators.
    pub metric: String,
    /// Where.
    #[serde(default)]
    pub scope: Scope,
    /// Percentage points added to a ratio.
    #[serde(default)]
    pub add_pp: Option<f64>,
    /// A factor.
    #[serde(default)]
    pub multiply: Option<f64>,
    /// An amount added to a metric (yuan, or a count).
    #[serde(default)]
    pub add: Option<f64>,
}

/// What a shock moves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Metric(Metric),
    /// A ratio: numerator, denominator, and whether the numerator is a part of the
    /// denominator (so it cannot exceed it).
    Ratio(Metric, Metric, bool),
}

fn target(sector: Sector, name: &str) -> Option<Target> {
    use Metric::*;
    if let Some(m) = sector.metrics().iter().find(|m| m.as_str() == name) {
        return Some(Target::Metric(*m));
    }
    let ind = Indicator::parse(name).filter(|i| Indicator::for_sector(sector).contains(i))?;
    let t = match (sector, ind) {
        (Sector::Bank, Indicator::NplRatio) => Target::Ratio(NplBalance, TotalLoans, true),
        (Sector::Bank, Indicator::SpecialMentionRatio) => Target::Ratio(SpecialMentionBalance, TotalLoans, true),
        (Sector::Bank, Indicator::ProvisionCoverage) => Target::Ratio(LoanLossProvision, NplBalance, false),
        (Sector::Bank, Indicator::CapitalAdequacyRatio) => Target::Metric(CapitalAdequacyRatio),
        (Sector::Microloan, Indicator::NplRatio) => Target::Ratio(NplBalance, LoanBalance, true),
        (Sector::Microloan, Indicator::Concentration) => Target::Ratio(LargestBorrowerBalance, NetAssets, false),
        (Sector::Microloan, Indicator::Leverage) => Target::Ratio(Borrowings, NetAssets, false),
        (Sector::Guarantee, Indicator::PayoutRate) => Target::Ratio(PayoutsYtd, ReleasedYtd, false),
        (Sector::Guarantee, Indicator::Leverage) => Target::Ratio(OutstandingGuarantees, NetAssets, false),
        (Sector::Guarantee, Indicator::Concentration) => Target::Ratio(LargestClientExposure, NetAssets, false),
        (Sector::Guarantee, Indicator::RecoveryRate) => Target::Ratio(RecoveriesYtd, PayoutsYtd, true),
        (Sector::P2pResidual, Indicator::Stall) => Target::Ratio(RepaidInPeriod, OutstandingPrincipal, true),
        (Sector::P2pResidual, Indicator::ComplaintsPer1000Lenders) => {
            Target::Ratio(ComplaintsInPeriod, LendersUnpaid, false)
        }
        _ => return None, // repayment_progress: shock its metrics instead
    };
    Some(t)
}

impl Scenario {
    /// Parses and checks a scenario.
    pub fn from_toml_str(source: &str) -> Result<Scenario> {
        let s: Scenario =
            toml::from_str(source).map_err(|e| Error::Config { path: "scenario".into(), message: e.to_string() })?;
        s.validate()?;
        Ok(s)
    }

    /// Checks every shock: a known metric, one operation, a known place.
    pub fn validate(&self) -> Result<()> {
        if self.shocks.is_empty() {
            return Err(Error::Config { path: "shock".into(), message: "a scenario needs at least one shock".into() });
        }
        for (i, s) in self.shocks.iter().enumerate() {
            let err = |field: &str, message: String| Error::Config { path: format!("shock[{i}].{field}"), message };
            let Some(t) = target(s.sector, &s.metric) else {
                return Err(err("metric", format!("{} is not a metric or ratio indicator of {}", s.metric, s.sector)));
            };
            let ops = [s.add_pp, s.multiply, s.add];
            if ops.iter().flatten().count() != 1 {
                return Err(err("add_pp", "give exactly one of add_pp, multiply, add".into()));
            }
            if ops.iter().flatten().any(|v| !v.is_finite()) || s.multiply.is_some_and(|m| m < 0.0) {
                return Err(err("multiply", "must be finite (and a factor 0 or more)".into()));
            }
            match t {
                Target::Ratio(..) if s.add.is_some() => {
                    return Err(err("add", format!("{} is a ratio: use add_pp or multiply", s.metric)));
                }
                Target::Metric(m) if s.add_pp.is_some() && m != Metric::CapitalAdequacyRatio => {
                    return Err(err("add_pp", format!("{m} is an amount: use multiply or add")));
                }
                _ => {}
            }
            if let Some(r) = s.scope.region.as_deref()
                && r != "all"
                && Region::from_id(r).is_none()
            {
                return Err(err("scope.region", format!("{r}: expected all, main-urban, northeast or southeast")));
            }
            for d in s.scope.districts.iter().flatten() {
                if parse_district_code(d).is_none() {
                    return Err(err("scope.districts", format!("{d} is not a district code of Chongqing")));
                }
            }
        }
        Ok(())
    }
}

impl Scope {
    fn place(&self, code: u32) -> bool {
        let region_ok = match self.region.as_deref() {
            None | Some("all") => true,
            Some(r) => district(code).is_some_and(|d| Some(d.region) == Region::from_id(r)),
        };
        let district_ok =
            self.districts.as_ref().is_none_or(|ds| ds.iter().any(|d| parse_district_code(d) == Some(code)));
        region_ok && district_ok
    }
}

/// Shocked copies of the reports, and how many reports each shock touched.
#[derive(Debug, Clone, PartialEq)]
pub struct Shocked {
    /// The reports after every shock, in input order.
    pub reports: Vec<Report>,
    /// Per shock, the number of reports it changed.
    pub touched: Vec<usize>,
}

/// Applies a scenario to copies of `reports` (one period's winning reports, typically).
/// A pure function: the same scenario and reports give the same result.
pub fn apply(scenario: &Scenario, reports: &[Report]) -> Result<Shocked> {
    scenario.validate()?;
    let mut out: Vec<Report> = reports.to_vec();
    let mut touched = Vec::with_capacity(scenario.shocks.len());
    for shock in &scenario.shocks {
        let Some(t) = target(shock.sector, &shock.metric) else {
            return Err(Error::Input(format!("unknown metric {}", shock.metric)));
        };
        let mut hit: Vec<usize> = (0..out.len())
            .filter(|&i| out[i].sector == shock.sector && shock.scope.place(out[i].district_code))
            .collect();
        if let Some(n) = shock.scope.largest {
            let exposure = |i: usize| out[i].metrics.value(shock.sector.exposure_metric());
            hit.sort_by(|&a, &b| {
                exposure(b).total_cmp(&exposure(a)).then(out[a].institution_id.cmp(&out[b].institution_id))
            });
            hit.truncate(n);
        }
        for &i in &hit {
            let r = &mut out[i];
            let mut values = r.metrics.values().to_vec();
            let pos = |m: Metric| r.sector.metrics().iter().position(|x| *x == m).expect("metric of the sector");
            match t {
                Target::Metric(m) => {
                    let v = &mut values[pos(m)];
                    *v = (shock.multiply.map_or(*v, |f| *v * f)
                        + shock.add.unwrap_or(0.0)
                        + shock.add_pp.unwrap_or(0.0) / 100.0)
                        .max(0.0);
                }
                Target::Ratio(num, den, part) => {
                    let d = values[pos(den)];
                    let n = &mut values[pos(num)];
                    *n = (shock.multiply.map_or(*n, |f| *n * f) + shock.add_pp.unwrap_or(0.0) / 100.0 * d).max(0.0);
                    if part {
                        *n = n.min(d);
                    }
                }
            }
            r.metrics = yujing_model::Metrics::new(r.sector, &values).expect("same arity");
        }
        touched.push(hit.len());
    }
    Ok(Shocked { reports: out, touched })
}

#[cfg(test)]
mod tests {
    use super::*;
    use yujing_model::{DecodeLimits, decode};

    fn microloan(id: &str, district: &str, loans: f64, npl: f64, net: f64) -> Report {
        let line = format!(
            r#"{{"schema_version":1,"report_id":"{id}/2021-06/r1","institution_id":"{id}","institution_name":"x",
            "sector":"microloan","district_code":"{district}","period":"2021-06","revision":1,
            "submitted_at":"2021-07-10T09:00:00+08:00","metrics":{{"loan_balance":{loans},"npl_balance":{npl},
            "net_assets":{net},"largest_borrower_balance":1,"borrowings":{net}}}}}"#
        );
        decode(line.as_bytes(), &DecodeLimits::default()).unwrap()
    }

    #[test]
    fn shocks_hit_their_scope_only() {
        // 500103 渝中 is main-urban, 500235 云阳 is in the northeast.
        let reports = vec![
            microloan("CQ-MLC-0001", "500103", 1000.0, 50.0, 500.0),
            microloan("CQ-MLC-0002", "500235", 2000.0, 100.0, 800.0),
            microloan("CQ-MLC-0003", "500235", 500.0, 490.0, 100.0),
        ];
        let s = Scenario::from_toml_str(
            r#"name = "t"
            [[shock]]
            sector = "microloan"
            metric = "npl_ratio"
            scope = { region = "northeast" }
            add_pp = 3.0
            [[shock]]
            sector = "microloan"
            metric = "net_assets"
            scope = { largest = 1 }
            multiply = 0.5
            [[shock]]
            sector = "bank"
            metric = "capital_adequacy_ratio"
            add_pp = -2.0
            "#,
        )
        .unwrap();
        let out = apply(&s, &reports).unwrap();
        assert_eq!(out.touched, vec![2, 1, 0]);
        let npl = |i: usize| out.reports[i].metrics.value(Metric::NplBalance);
        assert_eq!(npl(0), 50.0, "main-urban is outside the scope");
        assert_eq!(npl(1), 160.0, "+3pp of 2000");
        assert_eq!(npl(2), 500.0, "capped at the loans");
        // The largest by loans is 0002.
        assert_eq!(out.reports[1].metrics.value(Metric::NetAssets), 400.0);
        assert_eq!(out.reports[0].metrics.value(Metric::NetAssets), 500.0);
        assert_eq!(reports[1].metrics.value(Metric::NplBalance), 100.0, "the originals are untouched");
    }

    #[test]
    fn bad_scenarios_name_the_shock() {
        let bad =
            |body: &str| Scenario::from_toml_str(&format!("name = \"x\"\n[[shock]]\n{body}")).unwrap_err().to_string();
        assert!(bad("sector = \"bank\"\nmetric = \"leverage\"\nmultiply = 2.0").contains("shock[0].metric"));
        assert!(bad("sector = \"bank\"\nmetric = \"npl_ratio\"\nmultiply = 2.0\nadd_pp = 1.0").contains("exactly one"));
        assert!(bad("sector = \"bank\"\nmetric = \"npl_ratio\"\nadd = 2.0").contains("shock[0].add"));
        assert!(
            bad("sector = \"bank\"\nmetric = \"npl_ratio\"\nadd_pp = 1\nscope = { region = \"west\" }")
                .contains("region")
        );
        assert!(bad("sector = \"bank\"\nmetric = \"npl_ratio\"\nadd_pp = 1\nsize = 3").contains("size"));
    }
}
