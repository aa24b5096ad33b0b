//! Human-readable summaries: the end-of-run summary and the demo's risk table.

use crate::engine::Engine;
use crate::replay::Replayed;
use std::collections::BTreeMap;
use std::fmt::Write;
use yujing_model::{AggregateScore, AlertState, Grade, Level, Period, SectorScope, Severity};

/// How many open alerts the demo lists.
const SHOWN_ALERTS: usize = 20;

/// Whether to colour output.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Use ANSI colours.
    pub color: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    pub fn detect() -> Style {
        use std::io::IsTerminal;
        Style { color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
    }

    fn grade(&self, g: Grade, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match g {
            Grade::Normal => "32",
            Grade::Blue => "1;34",
            Grade::Yellow => "1;33",
            Grade::Orange => "1;38;5;208",
            Grade::Red => "1;31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// Display width: CJK characters take two columns.
fn width(s: &str) -> usize {
    s.chars().map(|c| if (c as u32) >= 0x1100 { 2 } else { 1 }).sum()
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{:.2}%", v * 100.0))
}

/// The period to show: the latest whose reports are all due, else the latest with data.
pub fn display_period(engine: &Engine) -> Option<Period> {
    let latest = engine.aggregates().filter(|a| a.level == Level::City).map(|a| a.period).max();
    match (engine.complete_through(), latest) {
        (Some(c), Some(l)) => Some(c.min(l)),
        (_, l) => l,
    }
}

/// The end-of-run summary.
pub fn summary(r: &Replayed, style: Style) -> String {
    let e = &r.engine;
    let st = e.stats();
    let mut s = String::new();
    let secs = r.elapsed.as_secs_f64();
    let _ = writeln!(
        s,
        "{} inputs in {:.2}s ({} reports/s)",
        thousands(st.received),
        secs,
        thousands((st.received as f64 / secs.max(1e-9)) as u64)
    );
    let _ = writeln!(
        s,
        "  accepted {} · duplicates {} · dead-lettered {}",
        thousands(st.accepted),
        thousands(st.duplicates),
        thousands(st.rejected_total())
    );
    if !st.rejected.is_empty() {
        let reasons: Vec<String> = st.rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "    by reason: {}", reasons.join(", "));
    }
    let alerts: Vec<_> = e.alerts().collect();
    let mut by_sev: BTreeMap<Severity, usize> = BTreeMap::new();
    let mut by_mech: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &alerts {
        *by_sev.entry(a.severity).or_default() += 1;
        *by_mech.entry(a.mechanism.as_str()).or_default() += 1;
    }
    let active = alerts.iter().filter(|a| a.state.is_active()).count();
    let sev: Vec<String> =
        by_sev.iter().rev().map(|(k, v)| style.grade(Grade::from(*k), &format!("{k} {v}"))).collect();
    let _ = writeln!(s, "  alerts {} ({}), {} still open", alerts.len(), sev.join(", "), active);
    let mech: Vec<String> = by_mech.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(s, "    by mechanism: {}", mech.join(", "));
    if let Some(p) = display_period(e) {
        let mut d: Vec<&AggregateScore> = e
            .aggregates()
            .filter(|a| a.level == Level::District && a.sector == SectorScope::All && a.period == p)
            .collect();
        d.sort_by(|a, b| b.score.total_cmp(&a.score));
        let _ = writeln!(s, "  riskiest districts, {p}, all sectors:");
        for a in d.iter().take(5) {
            let _ = writeln!(
                s,
                "    {} {} {}  {} institution{}",
                pad(&a.entity_name, 22),
                a.entity_id,
                style.grade(a.grade, &format!("{:5.1} {:<6}", a.score, a.grade.as_str())),
                a.institutions,
                if a.institutions == 1 { "" } else { "s" }
            );
        }
    }
    s
}

/// The demo's risk table of all 38 districts and the open red and orange alerts.
pub fn risk_table(engine: &Engine, style: Style) -> String {
    let mut s = String::new();
    let Some(p) = display_period(engine) else { return "no data\n".into() };
    let _ = writeln!(s, "Chongqing district risk map · 重庆市区县风险地图 · {p}");
    let _ = writeln!(
        s,
        "{} {} {:>6}  {:<7} {:>5} {:>9} {:>9}  orange+ / red",
        pad("区县 district", 22),
        pad("region", 10),
        "score",
        "grade",
        "inst.",
        "NPL",
        "payout"
    );
    let mut rows: Vec<&AggregateScore> = engine
        .aggregates()
        .filter(|a| a.level == Level::District && a.sector == SectorScope::All && a.period == p)
        .collect();
    rows.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.entity_id.cmp(&b.entity_id)));
    for a in rows {
        let d = a.entity_id.parse().ok().and_then(yujing_model::district);
        let name = d.map_or(a.entity_name.clone(), |d| format!("{} {}", d.name_zh, d.name_pinyin));
        let region = d.map_or("", |d| d.region.id());
        let _ = writeln!(
            s,
            "{} {} {}  {:>5} {:>9} {:>9}  {} / {}",
            pad(&name, 22),
            pad(region, 10),
            style.grade(a.grade, &format!("{:>6.1}  {:<7}", a.score, a.grade.as_str())),
            a.institutions,
            pct(a.npl_ratio),
            pct(a.payout_rate),
            a.orange_plus(),
            a.grade_counts[4]
        );
    }
    if let Some(city) = engine.aggregate(Level::City, yujing_model::CITY_CODE, SectorScope::All, p) {
        let _ = writeln!(
            s,
            "{} {} {}  {:>5} {:>9} {:>9}",
            pad("重庆市 city", 22),
            pad("", 10),
            style.grade(city.grade, &format!("{:>6.1}  {:<7}", city.score, city.grade.as_str())),
            city.institutions,
            pct(city.npl_ratio),
            pct(city.payout_rate)
        );
    }
    let mut open: Vec<_> =
        engine.alerts().filter(|a| a.state == AlertState::Open && a.severity >= Severity::Orange).collect();
    // Most severe first, then the most recently opened.
    open.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| b.opened_at.cmp(&a.opened_at)));
    let _ = writeln!(s, "\nOpen red and orange alerts · 红色/橙色预警 ({}):", open.len());
    for a in open.iter().take(SHOWN_ALERTS) {
        let _ = writeln!(
            s,
            "  {} {} {} · {} · {}\n      {}",
            style.grade(Grade::from(a.severity), &format!("{:<6}", a.severity.as_str())),
            a.id,
            a.period,
            a.mechanism.as_str(),
            a.mechanism_zh,
            a.evidence.summary
        );
    }
    if open.len() > SHOWN_ALERTS {
        let _ =
            writeln!(s, "  … and {} more (yujing replay --alerts-out F writes them all)", open.len() - SHOWN_ALERTS);
    }
    s
}
