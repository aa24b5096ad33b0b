//! The Alertmanager v2 postable alert and how a yujing [`Alert`] maps onto it.
//!
//! Labels identify an alert in Alertmanager (its fingerprint is the hash of the label
//! set), so they hold only what routes and groups it: the rule, the severity, the
//! mechanism, the district, the sector and the institution where there is one. Everything
//! that describes it goes into annotations, in Chinese and in English.

use crate::text;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use yujing_model::{Alert, AlertState, EntityKind, Grade, SectorScope};

/// One alert as Alertmanager's `POST /api/v2/alerts` takes it (`postableAlert`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostableAlert {
    /// Identifying labels: `alertname`, `severity`, `mechanism`, `district_code`,
    /// `sector` and, for an institution, `institution_id`.
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations: `summary`, `description`, `runbook_url` and more.
    pub annotations: BTreeMap<String, String>,
    /// When the alert (in this label set) started, RFC 3339 in UTC.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// When it ended; absent while it is active.
    #[serde(rename = "endsAt", default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// The alert in yujing's API.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

impl PostableAlert {
    /// The label set as one string, `name="value",...` in name order: the identity
    /// Alertmanager gives the alert.
    pub fn label_key(&self) -> String {
        let mut key = String::new();
        for (k, v) in &self.labels {
            if !key.is_empty() {
                key.push(',');
            }
            key.push_str(&format!("{k}={v:?}"));
        }
        key
    }
}

/// Where links in the payload point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Links<'a> {
    /// The API base, e.g. `http://yujing:8080`.
    pub generator_base_url: &'a str,
    /// The runbook template with `{mechanism}` and `{rule}` placeholders.
    pub runbook_url: &'a str,
}

/// RFC 3339 in UTC with a `Z`, seconds unless the time has a fraction.
pub(crate) fn timestamp(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The identifying labels of an alert.
pub(crate) fn labels(alert: &Alert) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("alertname".to_owned(), alert.rule.to_string());
    l.insert("severity".to_owned(), alert.severity.as_str().to_owned());
    l.insert("mechanism".to_owned(), alert.mechanism.as_str().to_owned());
    if !alert.district_code.is_empty() {
        l.insert("district_code".to_owned(), alert.district_code.to_string());
    }
    l.insert("sector".to_owned(), alert.sector.as_str().to_owned());
    if alert.entity_kind == EntityKind::Institution && !alert.entity_id.is_empty() {
        l.insert("institution_id".to_owned(), alert.entity_id.to_string());
    }
    l
}

fn state_zh(state: AlertState) -> &'static str {
    match state {
        AlertState::Open => "待处理",
        AlertState::Acknowledged => "已认领",
        AlertState::Resolved => "已处置解除",
        AlertState::AutoResolved => "指标回落自动解除",
        AlertState::Superseded => "因报送更正而撤销",
    }
}

fn sector_zh(sector: SectorScope) -> &'static str {
    match sector {
        SectorScope::One(s) => s.name_zh(),
        SectorScope::All => "全行业",
    }
}

/// The entity in Chinese and in English.
fn entity_names(alert: &Alert) -> (String, String) {
    let district = yujing_model::district::parse_district_code(&alert.district_code).and_then(yujing_model::district);
    match alert.entity_kind {
        EntityKind::Institution => {
            let zh = match district {
                Some(d) => format!("{} {}", d.name_zh, alert.entity_name),
                None => alert.entity_name.to_string(),
            };
            let en = match district {
                Some(d) => format!("{} ({})", alert.entity_id, d.name_pinyin),
                None => alert.entity_id.to_string(),
            };
            (zh, en)
        }
        EntityKind::District | EntityKind::Sector => {
            let zh = format!("{} {}", alert.entity_name, sector_zh(alert.sector));
            let en = match district {
                Some(d) => format!("{} {} [{}]", d.name_pinyin, alert.entity_id, alert.sector),
                None => format!("{} [{}]", alert.entity_id, alert.sector),
            };
            (zh, en)
        }
    }
}

/// The one-line title: severity, mechanism and entity, Chinese then English.
fn summary(alert: &Alert) -> String {
    let (zh, en) = entity_names(alert);
    let sev_zh = Grade::from(alert.severity).name_zh();
    let sev = alert.severity.as_str();
    format!("{sev_zh}预警 · {} · {zh} / {sev} alert · {} · {en}", alert.mechanism.name_zh(), alert.mechanism.name_en())
}

/// The body: why it fired, who must respond by when, in Chinese and in English.
fn description(alert: &Alert) -> String {
    let ev = &alert.evidence;
    let m = &*ev.metric;
    let respond_by = alert.respond_by.format("%Y-%m-%d %H:%M %:z");
    let mut zh = format!(
        "{}\n{}：{} {}，阈值 {}，连续 {} 期（{} 起，最近 {}）。责任单位：{}；响应时限：{}；状态：{}。",
        ev.summary,
        alert.mechanism.name_zh(),
        m,
        text::value(m, ev.value),
        text::value(m, ev.threshold),
        ev.periods,
        alert.period,
        alert.last_period,
        alert.owner,
        respond_by,
        state_zh(alert.state),
    );
    if let Some(score) = ev.score.get() {
        zh.push_str(&format!("综合风险评分 {}。", text::value("score", score)));
    }
    let mut en = format!(
        "{}: {} {} against a line of {} ({}), {} period(s) running, since {}, latest {}. \
         Owner: {}; respond by {}; state: {}.",
        alert.mechanism.name_en(),
        m,
        text::value(m, ev.value),
        text::value(m, ev.threshold),
        ev.direction,
        ev.periods,
        alert.period,
        alert.last_period,
        alert.owner,
        respond_by,
        alert.state.as_str(),
    );
    if let Some(score) = ev.score.get() {
        en.push_str(&format!(" Composite risk score {}.", text::value("score", score)));
    }
    if let Some(who) = &alert.assignee {
        zh.push_str(&format!("已指派：{who}。"));
        en.push_str(&format!(" Assigned to {who}."));
    }
    format!("{zh}\n{en}")
}

/// The Alertmanager form of an alert in its current state. An inactive alert (resolved,
/// auto-resolved, superseded) carries `endsAt`: its resolution time, else its last update.
pub(crate) fn postable(alert: &Alert, links: &Links<'_>) -> PostableAlert {
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".to_owned(), summary(alert));
    annotations.insert("description".to_owned(), description(alert));
    let runbook = links.runbook_url.replace("{mechanism}", alert.mechanism.as_str()).replace("{rule}", &alert.rule);
    annotations.insert("runbook_url".to_owned(), runbook);
    annotations.insert("alert_id".to_owned(), alert.id.clone());
    annotations.insert("owner".to_owned(), alert.owner.to_string());
    annotations.insert("respond_by".to_owned(), timestamp(alert.respond_by));
    annotations.insert("state".to_owned(), alert.state.as_str().to_owned());
    let self_link = alert.links().alert;
    let ends_at = (!alert.state.is_active()).then(|| timestamp(alert.resolved_at.unwrap_or(alert.updated_at)));
    PostableAlert {
        labels: labels(alert),
        annotations,
        starts_at: timestamp(alert.opened_at),
        ends_at,
        generator_url: format!("{}{self_link}", links.generator_base_url.trim_end_matches('/')),
    }
}
