//! Stress projection: a scenario's shocks applied to one period's winning reports (copies),
//! rescored and re-alerted by the same pipeline, and compared with the baseline — without
//! touching live state.
//!
//! [`project`] is a pure function of the configuration, the rule pack, the reports and the
//! scenario: it runs two fresh engines (baseline and shocked) over the same history, the
//! shocked one with the period's reports replaced by their shocked copies, and reports
//! which districts change grade, which institutions change grade, which alerts would open
//! or escalate and which response mechanisms would light up. `POST /api/v1/stress` and
//! `yujing stress` both call it.

use crate::backtest::walk::active_severity;
use crate::config::Config;
use crate::engine::Engine;
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use yujing_alert::RulePack;
use yujing_ingest::Input;
use yujing_model::{
    Alert, EntityKind, Grade, InstitutionScore, Level, Mechanism, Period, Position, Report, SectorScope, Severity,
};
use yujing_score::stress::{Scenario, apply};

/// What a scenario would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StressProjection {
    /// The scenario's name.
    pub scenario: String,
    /// The period shocked (the latest, unless asked otherwise).
    pub period: Period,
    /// Per shock, how many reports it changed.
    pub shocks: Vec<ShockEffect>,
    /// The city, all sectors.
    pub city: Change,
    /// Every district with reports in the period, all sectors, riskiest after first.
    pub districts: Vec<DistrictChange>,
    /// Institutions whose grade changes, largest score change first.
    pub institutions: Vec<InstitutionChange>,
    /// Open alerts per mechanism before and after, in mechanism order.
    pub mechanisms: Vec<MechanismChange>,
    /// Alerts that would open or escalate in the period.
    pub new_alerts: Vec<AlertChange>,
}

/// One shock's reach.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShockEffect {
    /// `sector metric` of the shock.
    pub shock: String,
    /// Reports changed.
    pub reports: usize,
}

/// A score and grade before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Score before.
    pub score_before: f64,
    /// Score after.
    pub score_after: f64,
    /// Grade before.
    pub grade_before: Grade,
    /// Grade after.
    pub grade_after: Grade,
}

/// A district before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistrictChange {
    /// The district code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Score and grade.
    #[serde(flatten)]
    pub change: Change,
    /// Institutions at orange or red, before and after.
    pub orange_plus: (u32, u32),
    /// Mechanisms of the alerts that would open or escalate there (institution or district).
    pub lit: Vec<Mechanism>,
}

/// An institution whose grade changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstitutionChange {
    /// The institution.
    pub institution_id: String,
    /// Its sector.
    pub sector: yujing_model::Sector,
    /// Its district code.
    pub district_code: u32,
    /// Score and grade.
    #[serde(flatten)]
    pub change: Change,
    /// The probability of an event within the horizon, before and after, when a model is
    /// configured.
    pub p_event: Option<(f64, f64)>,
}

/// Open alerts of one mechanism.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MechanismChange {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// Its Chinese name.
    pub name_zh: String,
    /// Alerts open in the period before.
    pub before: usize,
    /// And after.
    pub after: usize,
}

/// An alert that would open or escalate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertChange {
    /// The rule.
    pub rule: String,
    /// Institution or district.
    pub entity_kind: EntityKind,
    /// The entity.
    pub entity_id: String,
    /// The district.
    pub district_code: String,
    /// Severity before (none when it would be new).
    pub before: Option<Severity>,
    /// Severity after.
    pub after: Severity,
    /// Its mechanism.
    pub mechanism: Mechanism,
}

fn engine_over(config: &Config, rules: &RulePack, reports: &[&Report]) -> Result<Engine> {
    let mut engine = Engine::new(config, rules.clone());
    let inputs: Vec<Input> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(Input {
                bytes: serde_json::to_vec(r)?,
                position: Position { source: "stress".into(), line: Some(i as u64 + 1), partition: None, offset: None },
                truncated_from: None,
            })
        })
        .collect::<Result<_>>()?;
    for chunk in inputs.chunks(config.ingest.batch_size.max(1)) {
        engine.process(chunk)?;
    }
    Ok(engine)
}

/// Alerts active in `period`: (kind, entity, rule) → (severity, alert).
fn active(engine: &Engine, period: Period) -> BTreeMap<(EntityKind, String, String), (Severity, Alert)> {
    engine
        .alerts()
        .filter_map(|a| {
            let sev = active_severity(a, period)?;
            Some(((a.entity_kind, a.dedupe_key.clone(), a.rule.to_string()), (sev, a.clone())))
        })
        .collect()
}

fn change(before: (f64, Grade), after: (f64, Grade)) -> Change {
    Change { score_before: before.0, score_after: after.0, grade_before: before.1, grade_after: after.1 }
}

/// Projects a scenario onto `reports` (winning reports of any periods; the shocked period
/// is `period`, or the latest one).
pub fn project(
    config: &Config,
    rules: &RulePack,
    reports: &[Report],
    scenario: &Scenario,
    period: Option<Period>,
) -> Result<StressProjection> {
    let Some(latest) = reports.iter().map(|r| r.period).max() else {
        bail!("no reports to stress");
    };
    let period = period.unwrap_or(latest);
    let current: Vec<Report> = reports.iter().filter(|r| r.period == period).cloned().collect();
    if current.is_empty() {
        bail!("no reports for {period}");
    }
    let shocked = apply(scenario, &current)?;
    let mut sorted: Vec<&Report> = reports.iter().collect();
    sorted.sort_by(|a, b| (a.submitted_at, &a.report_id).cmp(&(b.submitted_at, &b.report_id)));
    let base = engine_over(config, rules, &sorted)?;
    let replaced: BTreeMap<&str, &Report> = shocked.reports.iter().map(|r| (&*r.institution_id, r)).collect();
    let stressed_inputs: Vec<&Report> = sorted
        .iter()
        .map(|r| if r.period == period { replaced.get(&*r.institution_id).copied().unwrap_or(r) } else { r })
        .collect();
    let after = engine_over(config, rules, &stressed_inputs)?;

    let city = |e: &Engine| {
        e.aggregate(Level::City, yujing_model::CITY_CODE, SectorScope::All, period)
            .map_or((0.0, Grade::Normal), |a| (a.score, a.grade))
    };
    let (a0, a1) = (active(&base, period), active(&after, period));
    let new_alerts: Vec<AlertChange> = a1
        .iter()
        .filter(|(k, (sev, _))| a0.get(*k).is_none_or(|(s0, _)| s0 < sev))
        .map(|(k, (sev, a))| AlertChange {
            rule: a.rule.to_string(),
            entity_kind: a.entity_kind,
            entity_id: a.entity_id.to_string(),
            district_code: a.district_code.to_string(),
            before: a0.get(k).map(|(s, _)| *s),
            after: *sev,
            mechanism: a.mechanism,
        })
        .collect();
    let mut lit: BTreeMap<&str, BTreeSet<Mechanism>> = BTreeMap::new();
    for n in &new_alerts {
        lit.entry(n.district_code.as_str()).or_default().insert(n.mechanism);
    }
    let mut districts: Vec<DistrictChange> = base
        .aggregates()
        .filter(|a| a.level == Level::District && a.sector == SectorScope::All && a.period == period)
        .map(|b| {
            let s = after.aggregate(Level::District, &b.entity_id, SectorScope::All, period).unwrap_or(b);
            DistrictChange {
                code: b.entity_id.clone(),
                name: b.entity_name.clone(),
                change: change((b.score, b.grade), (s.score, s.grade)),
                orange_plus: (b.orange_plus(), s.orange_plus()),
                lit: lit.get(b.entity_id.as_str()).map(|m| m.iter().copied().collect()).unwrap_or_default(),
            }
        })
        .collect();
    districts.sort_by(|x, y| y.change.score_after.total_cmp(&x.change.score_after).then_with(|| x.code.cmp(&y.code)));
    // Each score with its trend z-score.
    let scores_at = |e: &Engine| -> BTreeMap<String, (InstitutionScore, Option<f64>)> {
        e.institution_scores()
            .into_iter()
            .filter(|s| s.period == period)
            .map(|s| (s.institution_id.to_string(), (s.clone(), e.trend_z(s))))
            .collect()
    };
    let (s0, s1) = (scores_at(&base), scores_at(&after));
    let max_sev = |m: &BTreeMap<(EntityKind, String, String), (Severity, Alert)>, id: &str| {
        m.values()
            .filter(|(_, a)| a.entity_kind == EntityKind::Institution && *a.entity_id == *id)
            .filter(|(_, a)| a.mechanism != Mechanism::ReportingDiscipline)
            .map(|(s, _)| *s)
            .max()
    };
    let mut institutions: Vec<InstitutionChange> = s1
        .values()
        .filter_map(|(n, nz)| {
            let (o, oz) = s0.get(&*n.institution_id)?;
            (o.grade != n.grade).then(|| InstitutionChange {
                institution_id: n.institution_id.to_string(),
                sector: n.sector,
                district_code: n.district_code,
                change: change((o.score, o.grade), (n.score, n.grade)),
                p_event: config.probability.as_ref().map(|m| {
                    (
                        m.p_event(o, *oz, max_sev(&a0, &o.institution_id)),
                        m.p_event(n, *nz, max_sev(&a1, &n.institution_id)),
                    )
                }),
            })
        })
        .collect();
    institutions.sort_by(|x, y| {
        let d = |c: &Change| c.score_after - c.score_before;
        d(&y.change).total_cmp(&d(&x.change)).then_with(|| x.institution_id.cmp(&y.institution_id))
    });
    let count =
        |m: &BTreeMap<_, (Severity, Alert)>, mech: Mechanism| m.values().filter(|(_, a)| a.mechanism == mech).count();
    let mechanisms = Mechanism::ALL
        .iter()
        .map(|&m| MechanismChange {
            mechanism: m,
            name_zh: m.name_zh().to_string(),
            before: count(&a0, m),
            after: count(&a1, m),
        })
        .collect();
    Ok(StressProjection {
        scenario: scenario.name.clone(),
        period,
        shocks: scenario
            .shocks
            .iter()
            .zip(&shocked.touched)
            .map(|(s, n)| ShockEffect { shock: format!("{} {}", s.sector, s.metric), reports: *n })
            .collect(),
        city: change(city(&base), city(&after)),
        districts,
        institutions,
        mechanisms,
        new_alerts,
    })
}

/// The winning reports an engine holds, for [`project`].
pub fn winning_reports(engine: &Engine) -> Vec<Report> {
    engine.ledger().institutions().flat_map(|r| r.reports().map(|r| (**r).clone()).collect::<Vec<_>>()).collect()
}

/// A plain-text summary of a projection.
pub fn render(p: &StressProjection) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Stress scenario \"{}\" on {}", p.scenario, p.period);
    for e in &p.shocks {
        let _ = writeln!(s, "  shock {:<32} {} reports", e.shock, e.reports);
    }
    let c = &p.city;
    let _ = writeln!(
        s,
        "\nCity: {:.1} {} → {:.1} {}",
        c.score_before,
        c.grade_before.as_str(),
        c.score_after,
        c.grade_after.as_str()
    );
    let _ = writeln!(s, "\n{:<8} {:<12} {:>14} {:>16} {:>8}  lit", "district", "name", "before", "after", "orange+");
    for d in p.districts.iter().filter(|d| d.change.grade_before != d.change.grade_after || !d.lit.is_empty()) {
        let lit: Vec<&str> = d.lit.iter().map(|m| m.as_str()).collect();
        let _ = writeln!(
            s,
            "{:<8} {:<12} {:>6.1} {:<7} {:>6.1} {:<7}  {:>3}→{:<3}  {}",
            d.code,
            d.name,
            d.change.score_before,
            d.change.grade_before.as_str(),
            d.change.score_after,
            d.change.grade_after.as_str(),
            d.orange_plus.0,
            d.orange_plus.1,
            lit.join(", ")
        );
    }
    let _ = writeln!(s, "\nMechanisms (open alerts before → after):");
    for m in p.mechanisms.iter().filter(|m| m.before + m.after > 0) {
        let mark = if m.before == 0 && m.after > 0 { "  newly lit" } else { "" };
        let _ = writeln!(s, "  {:<28} {:<14} {:>4} → {:<4}{mark}", m.mechanism.as_str(), m.name_zh, m.before, m.after);
    }
    let _ = writeln!(
        s,
        "\n{} institutions change grade; {} alerts would open or escalate.",
        p.institutions.len(),
        p.new_alerts.len()
    );
    for i in p.institutions.iter().take(15) {
        let pe = i.p_event.map(|(a, b)| format!("  p_event {:.0}% → {:.0}%", a * 100.0, b * 100.0)).unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:<12} {:<12} {:>6.1} {:<7} → {:>6.1} {:<7}{pe}",
            i.institution_id,
            i.sector.as_str(),
            i.change.score_before,
            i.change.grade_before.as_str(),
            i.change.score_after,
            i.change.grade_after.as_str()
        );
    }
    s
}
