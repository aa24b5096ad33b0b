//! The TOML shape of a rule pack and its validation into [`Rule`]s.

use super::{Direction, Rule, Threshold};
use crate::metrics;
use crate::{Error, Result};
use humantime_serde::re::humantime;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;
use yujing_model::{EntityKind, Mechanism, SectorScope, Severity};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPack {
    /// The rules, one `[[rule]]` table each.
    #[serde(default)]
    rule: Vec<RawRule>,
}

/// One `[[rule]]` table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// Unique kebab-case id.
    id: Spanned<String>,
    /// What the rule watches, Chinese then English.
    description: String,
    /// `institution` or `district`.
    entity: Spanned<String>,
    /// Sector names, or `all` for district rules.
    sectors: Spanned<Vec<Spanned<String>>>,
    /// The metric watched.
    metric: Spanned<String>,
    /// `above` or `below`: which side of the lines is risky.
    direction: Spanned<String>,
    /// A mechanism id of DESIGN §6.
    mechanism: Spanned<String>,
    /// Who must respond.
    owner: String,
    /// A humantime duration such as `5d`.
    respond_within: Spanned<String>,
    /// Margin past the lowest line needed to auto-resolve; 0 when absent.
    #[serde(default)]
    hysteresis: Option<Spanned<f64>>,
    /// The lines, least severe first.
    levels: Spanned<Vec<Spanned<RawLevel>>>,
}

/// One entry of `levels`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    /// `blue`, `yellow`, `orange` or `red`.
    severity: Spanned<String>,
    /// The line.
    at: Spanned<f64>,
    /// Consecutive points that must cross the line; 1 when absent.
    #[serde(default)]
    for_periods: Option<Spanned<i64>>,
}

/// Maps byte offsets of the source to 1-based lines.
struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn of(&self, span: Range<usize>) -> usize {
        let upto = self.0.get(..span.start).unwrap_or(self.0);
        upto.bytes().filter(|b| *b == b'\n').count() + 1
    }
}

/// Parses and validates a pack source.
pub(super) fn parse(source: &str) -> Result<Vec<Rule>> {
    let lines = Lines(source);
    let pack: RawPack =
        toml::from_str(source).map_err(|e| Error::Toml { line: e.span().map(|s| lines.of(s)), source: e })?;
    if pack.rule.is_empty() {
        return Err(Error::NoRules);
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut rules = Vec::with_capacity(pack.rule.len());
    for raw in pack.rule {
        let rule = validate(raw, &lines)?;
        if let Some(first_line) = seen.insert(rule.id.to_string(), rule.line) {
            return Err(Error::DuplicateRuleId { rule: rule.id.to_string(), line: rule.line, first_line });
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn is_kebab(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

fn validate(raw: RawRule, lines: &Lines<'_>) -> Result<Rule> {
    let line = lines.of(raw.id.span());
    let id = raw.id.into_inner();
    let at = |span: Range<usize>| lines.of(span);
    if !is_kebab(&id) {
        return Err(Error::BadRuleId { rule: id, line });
    }
    for (field, text) in [("description", &raw.description), ("owner", &raw.owner)] {
        if text.trim().is_empty() {
            return Err(Error::BlankField { rule: id, line, field });
        }
    }
    let entity = match raw.entity.get_ref().as_str() {
        "institution" => EntityKind::Institution,
        "district" => EntityKind::District,
        other => {
            return Err(Error::UnknownEntity { line: at(raw.entity.span()), entity: other.to_owned(), rule: id });
        }
    };
    let Some(direction) = Direction::parse(raw.direction.get_ref()) else {
        return Err(Error::UnknownDirection {
            line: at(raw.direction.span()),
            direction: raw.direction.into_inner(),
            rule: id,
        });
    };
    let Some(mechanism) = Mechanism::parse(raw.mechanism.get_ref()) else {
        return Err(Error::UnknownMechanism {
            line: at(raw.mechanism.span()),
            mechanism: raw.mechanism.into_inner(),
            rule: id,
        });
    };
    let sectors = sectors(&id, entity, &raw.sectors, lines)?;
    let metric_line = at(raw.metric.span());
    let metric = raw.metric.into_inner();
    if !metrics::is_known(entity, &metric) {
        return Err(Error::UnknownMetric { rule: id, line: metric_line, metric, entity });
    }
    if entity == EntityKind::Institution {
        for s in &sectors {
            if let SectorScope::One(sector) = *s
                && !metrics::institution_metric_in(&metric, *s)
            {
                return Err(Error::MetricNotInSector { rule: id, line: metric_line, metric, sector });
            }
        }
    }
    let respond_within = duration(&id, &raw.respond_within, lines)?;
    let hysteresis = match &raw.hysteresis {
        None => 0.0,
        Some(h) => {
            let (value, line) = (*h.get_ref(), at(h.span()));
            if !value.is_finite() {
                return Err(Error::NotFinite { rule: id, line, field: "hysteresis" });
            }
            if value < 0.0 {
                return Err(Error::NegativeHysteresis { rule: id, line, hysteresis: value });
            }
            value
        }
    };
    let levels = levels(&id, direction, &raw.levels, lines)?;
    Ok(Rule {
        id: id.into(),
        description: raw.description,
        entity,
        sectors,
        metric: metric.into(),
        direction,
        mechanism,
        owner: raw.owner.into(),
        respond_within,
        hysteresis,
        levels,
        line,
    })
}

fn sectors(
    id: &str,
    entity: EntityKind,
    raw: &Spanned<Vec<Spanned<String>>>,
    lines: &Lines<'_>,
) -> Result<Vec<SectorScope>> {
    if raw.get_ref().is_empty() {
        return Err(Error::NoSectors { rule: id.to_owned(), line: lines.of(raw.span()) });
    }
    let mut out = Vec::with_capacity(raw.get_ref().len());
    for s in raw.get_ref() {
        let line = lines.of(s.span());
        let name = s.get_ref();
        let refuse = |reason| Error::SectorNotAllowed { rule: id.to_owned(), line, sector: name.clone(), reason };
        let Some(scope) = SectorScope::parse(name) else {
            return Err(Error::UnknownSector { rule: id.to_owned(), line, sector: name.clone() });
        };
        if scope == SectorScope::All && entity == EntityKind::Institution {
            return Err(refuse("is only for district rules"));
        }
        if out.contains(&scope) {
            return Err(refuse("is listed twice"));
        }
        out.push(scope);
    }
    Ok(out)
}

fn duration(id: &str, raw: &Spanned<String>, lines: &Lines<'_>) -> Result<std::time::Duration> {
    let refuse = |reason: String| Error::BadDuration {
        rule: id.to_owned(),
        line: lines.of(raw.span()),
        value: raw.get_ref().clone(),
        reason,
    };
    let d = humantime::parse_duration(raw.get_ref()).map_err(|e| refuse(e.to_string()))?;
    // A deadline must lie ahead, and within what chrono can add to a timestamp.
    if d.is_zero() {
        return Err(refuse("must be longer than zero".to_owned()));
    }
    if d > std::time::Duration::from_secs(10 * 366 * 86_400) {
        return Err(refuse("must be at most ten years".to_owned()));
    }
    Ok(d)
}

fn levels(
    id: &str,
    direction: Direction,
    raw: &Spanned<Vec<Spanned<RawLevel>>>,
    lines: &Lines<'_>,
) -> Result<Vec<Threshold>> {
    if raw.get_ref().is_empty() {
        return Err(Error::NoLevels { rule: id.to_owned(), line: lines.of(raw.span()) });
    }
    let mut out: Vec<Threshold> = Vec::with_capacity(raw.get_ref().len());
    for level in raw.get_ref() {
        let line = lines.of(level.span());
        let level = level.get_ref();
        let Some(severity) = Severity::parse(level.severity.get_ref()) else {
            return Err(Error::UnknownSeverity {
                rule: id.to_owned(),
                line: lines.of(level.severity.span()),
                severity: level.severity.get_ref().clone(),
            });
        };
        let at = *level.at.get_ref();
        if !at.is_finite() {
            return Err(Error::NotFinite { rule: id.to_owned(), line: lines.of(level.at.span()), field: "at" });
        }
        let for_periods = match &level.for_periods {
            None => 1,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(v @ 1..=1200) => v,
                _ => {
                    return Err(Error::ForPeriods {
                        rule: id.to_owned(),
                        line: lines.of(n.span()),
                        for_periods: *n.get_ref(),
                    });
                }
            },
        };
        if let Some(prev) = out.last() {
            if severity <= prev.severity {
                return Err(Error::SeverityOrder { rule: id.to_owned(), line, severity, previous: prev.severity });
            }
            // An equal line is allowed when it must hold longer (orange for 2 periods,
            // red for 3 at the same line): otherwise the lower level could never show.
            let monotone = direction.not_safer(prev.at, at) && (at != prev.at || for_periods > prev.for_periods);
            if !monotone {
                return Err(Error::ThresholdOrder { rule: id.to_owned(), line, at, previous: prev.at, direction });
            }
        }
        out.push(Threshold { severity, at, for_periods });
    }
    Ok(out)
}
