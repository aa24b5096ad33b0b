//! Human-readable pieces of an alert: the one-sentence summary, in Chinese then English.

use crate::metrics;
use crate::pack::{Direction, Rule};
use crate::series::EntitySeries;
use yujing_model::{EntityKind, Grade, SectorScope, Severity};

/// What the summary describes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reading {
    /// The alert's severity.
    pub severity: Severity,
    /// The metric's value now.
    pub value: f64,
    /// The line of the alert's severity.
    pub threshold: f64,
    /// Whether this point auto-resolved the alert.
    pub resolved: bool,
}

/// Formats a metric's value: fractions as percentages, other values plainly.
pub(crate) fn value(metric: &str, v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    if metrics::is_fraction(metric) {
        let pct = v * 100.0;
        if pct == 0.0 || pct.abs() >= 1.0 { format!("{pct:.1}%") } else { format!("{pct:.2}%") }
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// How the entity is named in Chinese and in English.
fn names(series: &EntitySeries) -> (String, String) {
    match series.kind {
        EntityKind::Institution => {
            let district =
                yujing_model::district::parse_district_code(&series.district_code).and_then(yujing_model::district);
            let zh = match district {
                Some(d) => format!("{} {}", d.name_zh, series.entity_name),
                None => series.entity_name.to_string(),
            };
            (zh, series.entity_id.to_string())
        }
        EntityKind::District | EntityKind::Sector => {
            let scope_zh = match series.sector {
                SectorScope::One(s) => s.name_zh(),
                SectorScope::All => "全行业",
            };
            (format!("{} {}", series.entity_name, scope_zh), format!("{} [{}]", series.entity_id, series.sector))
        }
    }
}

/// The summary sentence: Chinese, then ` / `, then English.
///
/// `渝中区 重庆某小贷: npl_ratio 16.2% ≥ 15.0% (橙色) / CQ-MLC-0042 npl_ratio 16.2%
/// crossed 15.0% (orange)`.
pub(crate) fn summary(rule: &Rule, series: &EntitySeries, r: Reading) -> String {
    let (zh, en) = names(series);
    let m = &*rule.metric;
    let v = value(m, r.value);
    let sev = r.severity.as_str();
    let sev_zh = Grade::from(r.severity).name_zh();
    let lowest = rule.lowest().map_or(r.threshold, |l| l.at);
    let (clear_line, clear_sym, back) = match rule.direction {
        Direction::Above => (lowest - rule.hysteresis, "<", "under"),
        Direction::Below => (lowest + rule.hysteresis, ">", "above"),
    };
    let clear = value(m, clear_line);
    if r.resolved {
        return format!(
            "{zh}: {m} {v} {clear_sym} {clear}，{sev_zh}预警自动解除 / \
             {en} {m} {v} back {back} {clear}, {sev} alert auto-resolved"
        );
    }
    let th = value(m, r.threshold);
    if rule.direction.crossed(r.value, r.threshold) {
        let sym = match rule.direction {
            Direction::Above => "≥",
            Direction::Below => "≤",
        };
        format!("{zh}: {m} {v} {sym} {th} ({sev_zh}) / {en} {m} {v} crossed {th} ({sev})")
    } else {
        let sym = match rule.direction {
            Direction::Above => "<",
            Direction::Below => ">",
        };
        format!(
            "{zh}: {m} {v} {sym} {th}，未过解除线 {clear} ({sev_zh}) / \
             {en} {m} {v} is back {back} {th} but not past {clear} ({sev})"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_values() {
        assert_eq!(value("npl_ratio", 0.162), "16.2%");
        assert_eq!(value("npl_ratio", 0.15), "15.0%");
        assert_eq!(value("stall", 0.0015), "0.15%");
        assert_eq!(value("stall", 0.0), "0.0%");
        assert_eq!(value("stall", -0.0), "0.0%");
        assert_eq!(value("leverage", 1.05), "1.05");
        assert_eq!(value("score", 78.0), "78");
        assert_eq!(value("score", 76.4), "76.4");
        assert_eq!(value("reporting_gap", 2.0), "2");
        assert_eq!(value("p2p_complaints_growth", 1.5), "150.0%");
    }
}
