//! District-level judgement: the district rules (区域性风险防控, 网格化管理) and the
//! district's all-sector score, against "a distress event at an institution of the
//! district within the horizon".
//!
//! An observation is a district-period with an aggregate as of the period's close. Unlike
//! an institution, a district goes on after an event, so no period is left out for being
//! after one; quiet periods whose horizon runs past the history are left out as before.

use super::probability::severity_rank;
use super::walk::{DistrictSnapshot, History};
use super::{Event, Figures, Judged, figures_of};
use std::collections::{BTreeMap, HashMap};
use yujing_alert::RulePack;
use yujing_model::{EntityKind, Period};

/// The `sector` column of district figures.
pub const SECTOR: &str = "district";

/// The district rules, the district score at `line`, and any district rule, judged over the
/// district-periods within `window`.
pub fn judge(
    history: &History,
    events: &[Event],
    rules: &RulePack,
    line: f64,
    horizon: u32,
    theta: f64,
    window: Option<(Period, Period)>,
) -> Vec<Figures> {
    let Some((_, last)) = history.span() else {
        return Vec::new();
    };
    let district_of: HashMap<&str, u32> =
        history.snapshots.iter().map(|s| (&*s.score.institution_id, s.score.district_code)).collect();
    let mut by_district: BTreeMap<u32, Vec<Period>> = BTreeMap::new();
    for e in events {
        if let Some(d) = district_of.get(&*e.institution_id) {
            by_district.entry(*d).or_default().push(e.period);
        }
    }
    for v in by_district.values_mut() {
        v.sort();
    }
    let h = horizon as i32;
    let obs: Vec<(&DistrictSnapshot, String, Option<Period>)> = history
        .districts
        .iter()
        .filter(|d| window.is_none_or(|(a, b)| (a..=b).contains(&d.period)))
        .filter_map(|d| {
            let evs = by_district.get(&d.code).map(Vec::as_slice).unwrap_or_default();
            let event = evs.iter().copied().find(|e| *e > d.period && *e <= d.period.add_months(h));
            if event.is_none() && d.period.add_months(h) > last {
                return None;
            }
            Some((d, d.code.to_string(), event))
        })
        .collect();
    let district_rules: Vec<&str> =
        rules.rules().iter().filter(|r| r.entity != EntityKind::Institution).map(|r| &*r.id).collect();
    let judged = |rank: &dyn Fn(&DistrictSnapshot) -> f64| -> Vec<Judged> {
        obs.iter()
            .map(|(d, code, event)| Judged { entity: code, period: d.period, rank: rank(d), event: *event })
            .collect()
    };
    let mut out = vec![figures_of(&format!("district-score>={line}"), line, SECTOR, &judged(&|d| d.score), theta)];
    for r in &district_rules {
        let rows = judged(&|d| d.alerts.get(*r).copied().map_or(0.0, severity_rank));
        out.push(figures_of(&format!("rule:{r}"), 1.0, SECTOR, &rows, theta));
    }
    let any =
        judged(&|d| district_rules.iter().filter_map(|r| d.alerts.get(*r)).copied().max().map_or(0.0, severity_rank));
    out.push(figures_of("any-district-rule", 1.0, SECTOR, &any, theta));
    out
}
