//! Alerts: mechanisms, states, transitions and deterministic ids (DESIGN §6).

use crate::period::Period;
use crate::score::{OptF64, Severity};
use crate::sector::SectorScope;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The response mechanism an alert sets in motion, as the 2021-2025 plan names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// 央地监管协同: notify the central regulator's local office about a bank.
    CentralLocalCoordination,
    /// 一事一案一专班: a case team for a failing institution.
    OneCaseOnePlanOneTeam,
    /// 风险分担与代偿补偿: risk sharing and payout compensation for guarantors.
    GuaranteeRiskSharing,
    /// 地方金融组织退出机制: exit of a local lender.
    ExitMechanism,
    /// 互联网金融遗留问题接续化解: P2P wind-down follow-up.
    InternetFinanceLegacy,
    /// 非法集资网格化管理: grid management of illegal fundraising.
    GridManagement,
    /// 监管数据报送: missing or late reports.
    ReportingDiscipline,
    /// 区域性风险防控: district-level concentration of risk.
    DistrictConcentration,
}

impl Mechanism {
    /// Every mechanism.
    pub const ALL: [Mechanism; 8] = [
        Mechanism::CentralLocalCoordination,
        Mechanism::OneCaseOnePlanOneTeam,
        Mechanism::GuaranteeRiskSharing,
        Mechanism::ExitMechanism,
        Mechanism::InternetFinanceLegacy,
        Mechanism::GridManagement,
        Mechanism::ReportingDiscipline,
        Mechanism::DistrictConcentration,
    ];

    /// The kebab-case id.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::CentralLocalCoordination => "central-local-coordination",
            Mechanism::OneCaseOnePlanOneTeam => "one-case-one-plan-one-team",
            Mechanism::GuaranteeRiskSharing => "guarantee-risk-sharing",
            Mechanism::ExitMechanism => "exit-mechanism",
            Mechanism::InternetFinanceLegacy => "internet-finance-legacy",
            Mechanism::GridManagement => "grid-management",
            Mechanism::ReportingDiscipline => "reporting-discipline",
            Mechanism::DistrictConcentration => "district-concentration",
        }
    }

    /// Parses a kebab-case id.
    pub fn parse(s: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            Mechanism::CentralLocalCoordination => "央地监管协同",
            Mechanism::OneCaseOnePlanOneTeam => "一事一案一专班",
            Mechanism::GuaranteeRiskSharing => "风险分担与代偿补偿",
            Mechanism::ExitMechanism => "地方金融组织退出机制",
            Mechanism::InternetFinanceLegacy => "互联网金融遗留问题接续化解",
            Mechanism::GridManagement => "非法集资网格化管理",
            Mechanism::ReportingDiscipline => "监管数据报送",
            Mechanism::DistrictConcentration => "区域性风险防控",
        }
    }

    /// The English name.
    pub fn name_en(self) -> &'static str {
        match self {
            Mechanism::CentralLocalCoordination => "Central-local supervisory coordination",
            Mechanism::OneCaseOnePlanOneTeam => "One case, one plan, one task force",
            Mechanism::GuaranteeRiskSharing => "Guarantee risk sharing and payout compensation",
            Mechanism::ExitMechanism => "Exit mechanism for local financial organisations",
            Mechanism::InternetFinanceLegacy => "Wind-down of closed P2P platforms",
            Mechanism::GridManagement => "Grid management of illegal fundraising",
            Mechanism::ReportingDiscipline => "Timely and truthful reporting",
            Mechanism::DistrictConcentration => "Regional risk prevention",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertState {
    /// Raised and not yet seen to.
    Open,
    /// A person has taken it.
    Acknowledged,
    /// A person closed it, with a note.
    Resolved,
    /// The indicators went back under the line (with hysteresis).
    AutoResolved,
    /// Only a report that a later revision replaced raised it.
    Superseded,
}

impl AlertState {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
            AlertState::AutoResolved => "auto-resolved",
            AlertState::Superseded => "superseded",
        }
    }

    /// Whether the alert still needs attention (open or acknowledged).
    pub fn is_active(self) -> bool {
        matches!(self, AlertState::Open | AlertState::Acknowledged)
    }

    /// Parses a kebab-case name.
    pub fn parse(s: &str) -> Option<AlertState> {
        [
            AlertState::Open,
            AlertState::Acknowledged,
            AlertState::Resolved,
            AlertState::AutoResolved,
            AlertState::Superseded,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    /// One institution.
    Institution,
    /// A district's sector aggregate.
    District,
    /// A sector city-wide.
    Sector,
}

impl EntityKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Institution => "institution",
            EntityKind::District => "district",
            EntityKind::Sector => "sector",
        }
    }
}

/// Why the alert fired: the values behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The metric the rule watches (an indicator, `score`, or an aggregate figure; shared
    /// with the rule).
    pub metric: Arc<str>,
    /// Its value in the latest period evaluated.
    pub value: f64,
    /// The line it crossed for the current severity.
    pub threshold: f64,
    /// `above` or `below`: which side of the line is risky.
    pub direction: Cow<'static, str>,
    /// How many consecutive periods the line has been crossed.
    pub periods: u32,
    /// The composite score in the latest period, where the entity has one.
    pub score: OptF64,
    /// The trend z-score in the latest period, where there is one.
    pub trend_z: OptF64,
    /// Every indicator value of the latest period.
    pub indicators: Figures,
    /// One sentence in Chinese and English.
    pub summary: String,
}

/// Metric name → value, in name order: the small map every alert carries in its evidence.
///
/// A sorted vector rather than a `BTreeMap` (whose smallest node takes 400 bytes for a
/// handful of entries), with the pipeline's metric names borrowed rather than copied. It
/// is a JSON object on the wire, in the same order as a map's.
///
/// ```
/// use yujing_model::alert::Figures;
/// let f: Figures = [("npl_ratio", 0.12), ("base_score", 61.0)].into_iter().collect();
/// assert_eq!(f.get("npl_ratio"), Some(0.12));
/// assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"base_score":61.0,"npl_ratio":0.12}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures(Vec<(Cow<'static, str>, f64)>);

impl Figures {
    /// The value of a metric.
    pub fn get(&self, metric: &str) -> Option<f64> {
        self.position(metric).ok().map(|i| self.0[i].1)
    }

    /// [`Figures::get`], looking first at position `hint` (where the metric sat in figures
    /// of the same shape), and setting `hint` to where it was found: a walk over a series'
    /// points finds each in one comparison instead of a search.
    ///
    /// ```
    /// use yujing_model::alert::Figures;
    /// let f: Figures = [("npl_ratio", 0.12), ("base_score", 61.0)].into_iter().collect();
    /// let mut hint = 0;
    /// assert_eq!(f.get_hinted("npl_ratio", &mut hint), Some(0.12));
    /// assert_eq!(hint, 1);
    /// assert_eq!(f.get_hinted("npl_ratio", &mut hint), Some(0.12));
    /// assert_eq!(f.get_hinted("leverage", &mut hint), None);
    /// ```
    pub fn get_hinted(&self, metric: &str, hint: &mut usize) -> Option<f64> {
        if let Some((k, v)) = self.0.get(*hint)
            && **k == *metric
        {
            return Some(*v);
        }
        let i = self.position(metric).ok()?;
        *hint = i;
        Some(self.0[i].1)
    }

    /// Whether a metric has a value.
    pub fn contains_key(&self, metric: &str) -> bool {
        self.position(metric).is_ok()
    }

    /// Sets a metric's value (replacing the one it had).
    pub fn insert(&mut self, metric: Cow<'static, str>, value: f64) {
        match self.position(&metric) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (metric, value)),
        }
    }

    /// Takes a metric out, returning its value.
    pub fn remove(&mut self, metric: &str) -> Option<f64> {
        self.position(metric).ok().map(|i| self.0.remove(i).1)
    }

    /// The figures `keep` keeps, in the same order (a name given as a `&'static str` is not
    /// copied).
    pub fn retained(&self, keep: impl Fn(&str, f64) -> bool) -> Figures {
        Figures(self.0.iter().filter(|(k, v)| keep(k, *v)).cloned().collect())
    }

    fn position(&self, metric: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(metric))
    }

    /// The metrics and their values, in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, f64)> + '_ {
        self.0.iter().map(|(k, v)| (&**k, *v))
    }

    /// The metric names, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.0.iter().map(|(k, _)| &**k)
    }

    /// The number of metrics.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Sorts by name; of a name given twice the last value stays, as a map's insert would.
impl<K: Into<Cow<'static, str>>> FromIterator<(K, f64)> for Figures {
    fn from_iter<I: IntoIterator<Item = (K, f64)>>(iter: I) -> Figures {
        let mut v: Vec<(Cow<'static, str>, f64)> = iter.into_iter().map(|(k, x)| (k.into(), x)).collect();
        // Stable, so equal names keep their order and the last is the one kept.
        // The first bytes decide most pairs of metric names without a `memcmp` call.
        v.sort_by(|a, b| a.0.as_bytes().first().cmp(&b.0.as_bytes().first()).then_with(|| a.0.cmp(&b.0)));
        v.reverse();
        v.dedup_by(|later, earlier| later.0 == earlier.0);
        v.reverse();
        v.shrink_to_fit();
        Figures(v)
    }
}

impl Serialize for Figures {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Figures {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Figures, D::Error> {
        let map = BTreeMap::<String, f64>::deserialize(d)?;
        Ok(map.into_iter().collect())
    }
}

/// A severity change in an alert's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityStep {
    /// The period the severity was reached.
    pub period: Period,
    /// The severity.
    pub severity: Severity,
}

/// An early-warning alert.
///
/// On the wire (`alert.v1`) it also carries its API [`links`](Alert::links), made from its
/// id and entity when it is serialized rather than held by each of the alerts in memory
/// (a `links` object read back is ignored: it is made the same way).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Alert {
    /// Deterministic id: a hash of the dedupe key and the opening period.
    pub id: String,
    /// `rule:entity_kind:entity_id`; one active alert at most per key.
    pub dedupe_key: String,
    /// The rule id (shared with the rule).
    pub rule: Arc<str>,
    /// The current severity (it only rises while open).
    pub severity: Severity,
    /// The mechanism to start.
    pub mechanism: Mechanism,
    /// The mechanism's Chinese name.
    pub mechanism_zh: Cow<'static, str>,
    /// Who must respond (shared with the rule).
    pub owner: Arc<str>,
    /// The lifecycle state.
    pub state: AlertState,
    /// What the alert is about.
    pub entity_kind: EntityKind,
    /// Institution id, district code or sector (shared with the entity's other alerts).
    pub entity_id: Arc<str>,
    /// A readable name of the entity (shared as its id is).
    pub entity_name: Arc<str>,
    /// The district (of the institution, or the district itself; shared as the id is).
    pub district_code: Arc<str>,
    /// The sector, or `all`.
    pub sector: SectorScope,
    /// The period in which the alert opened.
    pub period: Period,
    /// The latest period evaluated.
    pub last_period: Period,
    /// When it opened, in event time (the submission that crossed the line, or a deadline).
    pub opened_at: DateTime<FixedOffset>,
    /// When the latest change happened, in event time.
    pub updated_at: DateTime<FixedOffset>,
    /// When it was resolved, if it was.
    pub resolved_at: Option<DateTime<FixedOffset>>,
    /// The response deadline: opened_at plus the rule's response time.
    pub respond_by: DateTime<FixedOffset>,
    /// Severity steps, first the opening one.
    pub history: Vec<SeverityStep>,
    /// Why it fired.
    pub evidence: Evidence,
    /// Who it is assigned to, if anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// The note of the person who resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Alert {
    /// Its API links: the entity's and its own.
    pub fn links(&self) -> AlertLinks {
        let entity = match self.entity_kind {
            EntityKind::Institution => format!("/api/v1/institutions/{}", self.entity_id),
            EntityKind::District | EntityKind::Sector => format!("/api/v1/districts/{}", self.entity_id),
        };
        AlertLinks { entity, alert: format!("/api/v1/alerts/{}", self.id) }
    }
}

/// [`Alert`] as serialized: its fields, borrowed, in order, then its links.
#[derive(Serialize)]
struct AlertWire<'a> {
    id: &'a str,
    dedupe_key: &'a str,
    rule: &'a str,
    severity: Severity,
    mechanism: Mechanism,
    mechanism_zh: &'a str,
    owner: &'a str,
    state: AlertState,
    entity_kind: EntityKind,
    entity_id: &'a str,
    entity_name: &'a str,
    district_code: &'a str,
    sector: SectorScope,
    period: Period,
    last_period: Period,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    opened_at: DateTime<FixedOffset>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    updated_at: DateTime<FixedOffset>,
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    resolved_at: Option<DateTime<FixedOffset>>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    respond_by: DateTime<FixedOffset>,
    history: &'a [SeverityStep],
    evidence: &'a Evidence,
    #[serde(skip_serializing_if = "Option::is_none")]
    assignee: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    links: AlertLinks,
}

impl Serialize for Alert {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AlertWire {
            id: &self.id,
            dedupe_key: &self.dedupe_key,
            rule: &self.rule,
            severity: self.severity,
            mechanism: self.mechanism,
            mechanism_zh: &self.mechanism_zh,
            owner: &self.owner,
            state: self.state,
            entity_kind: self.entity_kind,
            entity_id: &self.entity_id,
            entity_name: &self.entity_name,
            district_code: &self.district_code,
            sector: self.sector,
            period: self.period,
            last_period: self.last_period,
            opened_at: self.opened_at,
            updated_at: self.updated_at,
            resolved_at: self.resolved_at,
            respond_by: self.respond_by,
            history: &self.history,
            evidence: &self.evidence,
            assignee: self.assignee.as_deref(),
            note: self.note.as_deref(),
            links: self.links(),
        }
        .serialize(s)
    }
}

/// An alert's API links (an object with two fields on the wire, as `alert.v1` has it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertLinks {
    /// The institution or district (`/api/v1/institutions/…`, `/api/v1/districts/…`).
    pub entity: String,
    /// The alert itself (`/api/v1/alerts/…`).
    #[serde(rename = "self")]
    pub alert: String,
}

/// The deterministic alert id for a dedupe key and the period the alert opened in.
///
/// ```
/// let p = "2025-09".parse().unwrap();
/// let a = yujing_model::alert::alert_id("microloan-npl:institution:CQ-MLC-0042", p);
/// assert_eq!(a, yujing_model::alert::alert_id("microloan-npl:institution:CQ-MLC-0042", p));
/// assert!(a.starts_with("yj-") && a.len() == 19);
/// ```
pub fn alert_id(dedupe_key: &str, opened: Period) -> String {
    let mut h = Sha256::new();
    h.update(dedupe_key.as_bytes());
    h.update(b"\x1f");
    h.update(opened.to_string().as_bytes());
    let d = h.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(19);
    s.push_str("yj-");
    for b in &d[..8] {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransitionKind {
    /// It opened.
    Opened,
    /// Its severity rose.
    Escalated,
    /// The indicators went back under the line.
    AutoResolved,
    /// A corrected report took away what raised it.
    Superseded,
    /// A person acknowledged it.
    Acknowledged,
    /// A person assigned it.
    Assigned,
    /// A person resolved it.
    Resolved,
}

impl TransitionKind {
    /// Every kind.
    pub const ALL: [TransitionKind; 7] = [
        TransitionKind::Opened,
        TransitionKind::Escalated,
        TransitionKind::AutoResolved,
        TransitionKind::Superseded,
        TransitionKind::Acknowledged,
        TransitionKind::Assigned,
        TransitionKind::Resolved,
    ];

    /// Its name on the wire (`opened`, `auto-resolved`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Opened => "opened",
            TransitionKind::Escalated => "escalated",
            TransitionKind::AutoResolved => "auto-resolved",
            TransitionKind::Superseded => "superseded",
            TransitionKind::Acknowledged => "acknowledged",
            TransitionKind::Assigned => "assigned",
            TransitionKind::Resolved => "resolved",
        }
    }
}

/// One change to an alert, as published on `yujing.alerts` and written to the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// What happened.
    pub kind: TransitionKind,
    /// Who did it: `yujing` for the engine, else the person.
    pub by: String,
    /// The alert after the change (shared with the alert book that made it).
    pub alert: Arc<Alert>,
}

impl Transition {
    /// The transition as JSON, the text `serde_json::to_string` gives, around its alert
    /// already written as JSON (`alert`: `serde_json::to_string(&self.alert)`'s text). A store
    /// that writes an alert's row and the audit record of its change makes the alert's JSON,
    /// most of the record, once.
    pub fn to_json_around(&self, alert: &str) -> serde_json::Result<String> {
        // The fields in their declared order, as the derived `Serialize` writes them.
        let (kind, by) = (serde_json::to_string(&self.kind)?, serde_json::to_string(&self.by)?);
        let mut json = String::with_capacity(alert.len() + kind.len() + by.len() + 26);
        for part in ["{\"kind\":", &kind, ",\"by\":", &by, ",\"alert\":", alert, "}"] {
            json.push_str(part);
        }
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the hint (stale, out of range, another metric's), the value is `get`'s,
        /// and the hint then points at the metric.
        #[test]
        fn a_hinted_lookup_finds_what_get_finds(
            names in proptest::collection::vec("[a-e]{1,3}", 0..8),
            metric in "[a-e]{1,3}",
            hint in 0usize..10,
        ) {
            let figures: Figures = names.iter().enumerate().map(|(i, n)| (n.clone(), i as f64)).collect();
            let mut h = hint;
            prop_assert_eq!(figures.get_hinted(&metric, &mut h), figures.get(&metric));
            if figures.contains_key(&metric) {
                prop_assert_eq!(figures.keys().nth(h), Some(metric.as_str()));
            }
        }
    }

    #[test]
    fn figures_read_and_write_as_the_map_they_replace() {
        let pairs = [("stall", 0.5), ("npl_ratio", 0.1), ("base_score", 40.0), ("npl_ratio", 0.2)];
        let map: BTreeMap<String, f64> = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let figures: Figures = pairs.into_iter().collect();
        // A name given twice keeps its last value, as a map's insert does.
        assert_eq!(figures.get("npl_ratio"), Some(0.2));
        assert_eq!(figures.get("leverage"), None);
        assert_eq!(figures.keys().collect::<Vec<_>>(), ["base_score", "npl_ratio", "stall"]);
        let json = serde_json::to_string(&figures).unwrap();
        assert_eq!(json, serde_json::to_string(&map).unwrap());
        assert_eq!(serde_json::from_str::<Figures>(&json).unwrap(), figures);
    }

    #[test]
    fn figures_insert_remove_and_retain_as_a_map_does() {
        let mut figures = Figures::default();
        let mut map: BTreeMap<String, f64> = BTreeMap::new();
        for (k, v) in [("score", 1.0), ("leverage", 2.0), ("base_score", 3.0), ("score", 4.0), ("trend_z", 5.0)] {
            figures.insert(k.into(), v);
            map.insert(k.into(), v);
        }
        assert_eq!(figures.remove("leverage"), map.remove("leverage"));
        assert_eq!(figures.remove("leverage"), None);
        assert!(figures.contains_key("trend_z") && !figures.contains_key("leverage"));
        let pairs = |f: &Figures| f.iter().map(|(k, v)| (k.to_string(), v)).collect::<Vec<_>>();
        assert_eq!(pairs(&figures), map.clone().into_iter().collect::<Vec<_>>());
        let kept = figures.retained(|k, v| k != "score" && v > 3.0);
        assert_eq!(pairs(&kept), [("trend_z".to_string(), 5.0)]);
    }

    #[test]
    fn an_alert_is_written_as_read_with_its_links_made_from_its_id_and_entity() {
        let json = r#"{"id":"yj-0005452e3c8d8a2d","dedupe_key":"reporting-late:institution:CQ-GUA-10151","rule":"reporting-late","severity":"blue","mechanism":"reporting-discipline","mechanism_zh":"监管数据报送","owner":"市金融监管局统计信息处","state":"acknowledged","entity_kind":"institution","entity_id":"CQ-GUA-10151","entity_name":"重庆巴南恒信3融资担保有限公司","district_code":"500113","sector":"guarantee","period":"2022-01","last_period":"2022-01","opened_at":"2022-03-08T15:51:12+08:00","updated_at":"2022-03-08T15:51:12+08:00","resolved_at":null,"respond_by":"2022-03-11T15:51:12+08:00","history":[{"period":"2022-01","severity":"blue"}],"evidence":{"metric":"reporting_gap","value":1.0,"threshold":1.0,"direction":"above","periods":1,"score":37.6,"trend_z":null,"indicators":{"base_score":27.9,"leverage":4.4},"summary":"巴南区"},"assignee":"王","links":{"entity":"/api/v1/institutions/CQ-GUA-10151","self":"/api/v1/alerts/yj-0005452e3c8d8a2d"}}"#;
        let alert: Alert = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&alert).unwrap(), json);
        let mut district = alert.clone();
        (district.entity_kind, district.entity_id, district.assignee) = (EntityKind::District, "500113".into(), None);
        let v = serde_json::to_value(&district).unwrap();
        assert_eq!(v["links"]["entity"], "/api/v1/districts/500113");
        assert!(v.get("assignee").is_none() && v.get("note").is_none());
        // Links read back are not held: they are made again, the same way.
        let stale = json.replace("/api/v1/institutions/CQ-GUA-10151", "/elsewhere");
        assert_eq!(serde_json::from_str::<Alert>(&stale).unwrap(), alert);
    }

    #[test]
    fn transition_kinds_are_named_as_serde_names_them() {
        for k in TransitionKind::ALL {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{}\"", k.as_str()));
        }
    }
}
