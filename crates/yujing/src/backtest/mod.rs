//! Backtesting: how good were the warnings? (the signals approach, AUROC, lead times)
//!
//! [`walk::walk_forward`] replays report files as they arrived and records every period's
//! scores and open alerts as they stood at the period's close. [`label`] pairs each recorded
//! institution-period with the ground truth (`events.csv`): did a distress event follow
//! within the horizon? [`evaluate`] scores each [`Signal`] — a rule's alerts, the composite
//! score at a grade line, any distress rule, the fitted probability — against that truth:
//! the confusion table, hit rate, false-alarm rate, noise-to-signal ratio, the AUROC of the
//! signal's ranking and the lead time of the warnings, for all sectors and each sector.
//!
//! Choices, stated once:
//!
//! - An observation is an institution-period with a score as of the period's close. Banks
//!   report quarterly, so theirs are quarter ends; an institution that went silent has no
//!   observations after its last report (its reporting alerts are not judged here).
//! - "Event within horizon" at period t means an event of that institution in (t, t+h],
//!   months. Periods at or after an institution's event are left out (post-crisis bias:
//!   the figures of a defaulted firm say nothing about early warning).
//! - A quiet observation whose horizon runs past the end of the history is left out (it is
//!   censored: the event may yet come); one followed by an event inside the history counts.
//! - Lead time of a warned event = event period − the first signalled period among its
//!   observations in [event − h, event − 1].

pub mod calibrate;
pub mod district;
pub mod metrics;
pub mod probability;
pub mod report;
pub mod walk;

use crate::config::Config;
use anyhow::{Context, Result, bail};
use metrics::{Confusion, auroc, median, roc_points};
use probability::{ProbabilityConfig, severity_rank, snapshot_severity};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use walk::{History, Snapshot};
use yujing_alert::RulePack;
use yujing_model::{EntityKind, Mechanism, Period, Sector, SectorScope};

/// A planted (or recorded) distress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The institution.
    pub institution_id: String,
    /// The period whose figures show the event.
    pub period: Period,
    /// `default`, `payout-crisis`, `closure`, `wind-down-stall`, ...
    pub kind: String,
}

/// Reads an `events.csv` (`institution_id,period,kind`, with a header line).
pub fn load_events(path: &Path) -> Result<Vec<Event>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut events = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let [id, period, kind, ..] = cols[..] else {
            bail!("{}:{}: expected institution_id,period,kind", path.display(), n + 1);
        };
        let period: Period = period.parse().map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?;
        events.push(Event { institution_id: id.to_string(), period, kind: kind.to_string() });
    }
    Ok(events)
}

/// One labelled institution-period.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// What was known at the period's close.
    pub snap: &'a Snapshot,
    /// The first event of the institution within (t, t+h], if any.
    pub event: Option<Period>,
}

impl Observation<'_> {
    /// Whether an event followed within the horizon.
    pub fn positive(&self) -> bool {
        self.event.is_some()
    }
}

/// Labels the recorded institution-periods within `window` (inclusive; all when `None`)
/// against the events, by the rules in the module documentation.
pub fn label<'a>(
    history: &'a History,
    events: &[Event],
    horizon: u32,
    window: Option<(Period, Period)>,
) -> Vec<Observation<'a>> {
    let Some((_, last)) = history.span() else {
        return Vec::new();
    };
    let mut by_inst: HashMap<&str, Vec<Period>> = HashMap::new();
    for e in events {
        by_inst.entry(&*e.institution_id).or_default().push(e.period);
    }
    for v in by_inst.values_mut() {
        v.sort();
    }
    let h = horizon as i32;
    history
        .snapshots
        .iter()
        .filter(|s| window.is_none_or(|(a, b)| (a..=b).contains(&s.score.period)))
        .filter_map(|s| {
            let t = s.score.period;
            let evs = by_inst.get(&*s.score.institution_id).map(Vec::as_slice).unwrap_or_default();
            if evs.iter().any(|e| *e <= t) {
                return None; // at or after the event
            }
            let event = evs.iter().copied().find(|e| *e <= t.add_months(h));
            if event.is_none() && t.add_months(h) > last {
                return None; // censored
            }
            Some(Observation { snap: s, event })
        })
        .collect()
}

/// What a signal looks at.
#[derive(Debug, Clone)]
pub enum SignalKind {
    /// The composite score.
    Score,
    /// One rule's alerts, ranked by severity.
    Rule(String),
    /// Any of these rules, ranked by the highest severity.
    AnyRule(Vec<String>),
    /// The fitted probability of an event within the horizon.
    Probability(Box<ProbabilityConfig>),
}

/// A warning signal: it fires when its rank reaches its threshold.
#[derive(Debug, Clone)]
pub struct Signal {
    /// A short name for tables and file names, e.g. `score>=60`, `rule:microloan-npl`.
    pub name: String,
    /// What it looks at.
    pub kind: SignalKind,
    /// The rank at and above which it fires.
    pub threshold: f64,
    /// The sectors it applies to (observations of other sectors are not counted).
    pub sectors: Vec<Sector>,
}

impl Signal {
    /// The composite score at a line.
    pub fn score(line: f64) -> Signal {
        Signal {
            name: format!("score>={line}"),
            kind: SignalKind::Score,
            threshold: line,
            sectors: Sector::ALL.to_vec(),
        }
    }

    /// The signal's rank of a snapshot (higher is riskier).
    pub fn rank(&self, s: &Snapshot) -> f64 {
        match &self.kind {
            SignalKind::Score => s.score.score,
            SignalKind::Rule(r) => s.alerts.get(r).copied().map_or(0.0, severity_rank),
            SignalKind::AnyRule(rules) => {
                rules.iter().filter_map(|r| s.alerts.get(r)).copied().max().map_or(0.0, severity_rank)
            }
            SignalKind::Probability(m) => m.p_snapshot(s),
        }
    }

    /// Whether it fires on a snapshot.
    pub fn fires(&self, s: &Snapshot) -> bool {
        self.rank(s) >= self.threshold
    }
}

/// The default signals: the composite at each grade line, each institution rule, any
/// distress rule (all institution rules but reporting discipline) and, when configured, the
/// probability at its flag line.
pub fn default_signals(config: &Config, rules: &RulePack, model: Option<&ProbabilityConfig>) -> Vec<Signal> {
    let g = &config.score.grades;
    let mut out: Vec<Signal> = [g.blue, g.yellow, g.orange, g.red].into_iter().map(Signal::score).collect();
    let inst_rules: Vec<&yujing_alert::Rule> =
        rules.rules().iter().filter(|r| r.entity == EntityKind::Institution).collect();
    let mut distress = Vec::new();
    for r in &inst_rules {
        let sectors: Vec<Sector> =
            r.sectors.iter().filter_map(|s| if let SectorScope::One(s) = s { Some(*s) } else { None }).collect();
        out.push(Signal {
            name: format!("rule:{}", r.id),
            kind: SignalKind::Rule(r.id.to_string()),
            threshold: 1.0,
            sectors,
        });
        if r.mechanism != Mechanism::ReportingDiscipline {
            distress.push(r.id.to_string());
        }
    }
    out.push(Signal {
        name: "any-distress-rule".into(),
        kind: SignalKind::AnyRule(distress),
        threshold: 1.0,
        sectors: Sector::ALL.to_vec(),
    });
    if let Some(m) = model {
        out.push(Signal {
            name: format!("p_event>={}", m.flag_at),
            kind: SignalKind::Probability(Box::new(m.clone())),
            threshold: m.flag_at,
            sectors: Sector::ALL.to_vec(),
        });
    }
    out
}

/// The figures of one signal over one set of observations.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// The signal's name.
    pub signal: String,
    /// `all` or a sector.
    pub sector: String,
    /// The signal's threshold.
    pub threshold: f64,
    /// Observations counted.
    pub observations: u64,
    /// The confusion table.
    #[serde(flatten)]
    pub table: Confusion,
    /// A/(A+C).
    pub hit_rate: Option<f64>,
    /// B/(B+D).
    pub false_alarm_rate: Option<f64>,
    /// FAR / HR.
    pub noise_to_signal: Option<f64>,
    /// The Alessi–Detken loss at the θ of the run.
    pub loss: f64,
    /// The AUROC of the signal's rank.
    pub auroc: Option<f64>,
    /// Events with at least one observation in their warning window.
    pub events: u64,
    /// Of those, events signalled in the window.
    pub events_warned: u64,
    /// Median lead time of the warned events, in months.
    pub median_lead: Option<f64>,
    /// Every warned event's lead time (for the histogram).
    #[serde(skip)]
    pub leads: Vec<u32>,
    /// The ROC curve's points (for the picture).
    #[serde(skip)]
    pub roc: Vec<(f64, f64)>,
}

/// Evaluates a signal over observations, for all its sectors together (`all`) and each.
pub fn evaluate(signal: &Signal, observations: &[Observation], theta: f64) -> Vec<Figures> {
    let mine: Vec<&Observation> =
        observations.iter().filter(|o| signal.sectors.contains(&o.snap.score.sector)).collect();
    let mut out = vec![figures(signal, "all", &mine, theta)];
    if signal.sectors.len() > 1 {
        for sector in &signal.sectors {
            let of: Vec<&Observation> = mine.iter().copied().filter(|o| o.snap.score.sector == *sector).collect();
            out.push(figures(signal, sector.as_str(), &of, theta));
        }
    }
    out
}

fn figures(signal: &Signal, sector: &str, obs: &[&Observation], theta: f64) -> Figures {
    let rows: Vec<Judged> = obs
        .iter()
        .map(|o| Judged {
            entity: &o.snap.score.institution_id,
            period: o.snap.score.period,
            rank: signal.rank(o.snap),
            event: o.event,
        })
        .collect();
    figures_of(&signal.name, signal.threshold, sector, &rows, theta)
}

/// One judged observation of any entity: its rank under a signal and the event ahead.
pub(crate) struct Judged<'a> {
    /// The institution or district.
    pub entity: &'a str,
    /// The period.
    pub period: Period,
    /// The signal's rank.
    pub rank: f64,
    /// The first event within the horizon.
    pub event: Option<Period>,
}

/// The figures of a signal (name, threshold) over judged observations.
pub(crate) fn figures_of(name: &str, threshold: f64, sector: &str, rows: &[Judged], theta: f64) -> Figures {
    let ranked: Vec<(f64, bool)> = rows.iter().map(|o| (o.rank, o.event.is_some())).collect();
    let table = Confusion::of(ranked.iter().map(|(r, e)| (*r >= threshold, *e)));
    // Events: the observations inside each event's window, grouped by entity and event.
    let mut windows: BTreeMap<(&str, Period), Option<Period>> = BTreeMap::new();
    for o in rows {
        if let Some(e) = o.event {
            let first = windows.entry((o.entity, e)).or_default();
            if o.rank >= threshold && first.is_none_or(|f| o.period < f) {
                *first = Some(o.period);
            }
        }
    }
    let leads: Vec<u32> =
        windows.iter().filter_map(|((_, e), first)| first.map(|f| e.months_since(f).max(0) as u32)).collect();
    Figures {
        signal: name.to_string(),
        sector: sector.to_string(),
        threshold,
        observations: rows.len() as u64,
        hit_rate: table.hit_rate(),
        false_alarm_rate: table.false_alarm_rate(),
        noise_to_signal: table.noise_to_signal(),
        loss: table.loss(theta),
        auroc: auroc(&ranked),
        events: windows.len() as u64,
        events_warned: leads.len() as u64,
        median_lead: median(&leads.iter().map(|l| f64::from(*l)).collect::<Vec<_>>()),
        leads,
        roc: roc_points(&ranked),
        table,
    }
}

/// What to backtest.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// JSONL report files, in arrival order.
    pub files: Vec<PathBuf>,
    /// The ground truth.
    pub events: PathBuf,
    /// Months ahead an event must fall to count as warned.
    pub horizon: u32,
    /// The policymaker's preference θ between missed events and false alarms.
    pub theta: f64,
    /// Only observations in this window (inclusive) are judged.
    pub window: Option<(Period, Period)>,
    /// Write the report (README.md, figures.csv, SVG pictures) here.
    pub out: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
    /// Also judge "any of these rules open" as the signal `chosen-rules` (the rules
    /// `yujing calibrate` chose).
    pub chosen_rules: Option<Vec<String>>,
}

/// A finished backtest.
#[derive(Debug, Clone)]
pub struct Backtest {
    /// The horizon used.
    pub horizon: u32,
    /// θ used for the loss column.
    pub theta: f64,
    /// The first and last period of the history replayed.
    pub span: Option<(Period, Period)>,
    /// The judged window.
    pub window: Option<(Period, Period)>,
    /// Observations judged, and of those followed by an event.
    pub observations: (u64, u64),
    /// Events in the ground truth.
    pub events: usize,
    /// Every signal's figures: `all` first, then each sector.
    pub figures: Vec<Figures>,
    /// The judged observations, for `observations.csv`.
    pub rows: Vec<ObservationRow>,
}

/// One judged observation, as written to `observations.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct ObservationRow {
    /// The institution.
    pub institution_id: String,
    /// Its sector.
    pub sector: Sector,
    /// Its district code.
    pub district_code: u32,
    /// The period.
    pub period: Period,
    /// The composite score as of the period's close.
    pub score: f64,
    /// The base score (before trend).
    pub base_score: f64,
    /// The trend z-score.
    pub trend_z: Option<f64>,
    /// The highest severity of its open distress alerts (0 none … 4 red).
    pub alert_severity: f64,
    /// The probability, when a model is configured.
    pub p_event: Option<f64>,
    /// The event within the horizon, if any.
    pub event: Option<Period>,
}

impl Backtest {
    /// The figures of a signal for a sector (`all` for every sector).
    pub fn get(&self, signal: &str, sector: &str) -> Option<&Figures> {
        self.figures.iter().find(|f| f.signal == signal && f.sector == sector)
    }
}

/// Judges a recorded history with the given signals.
pub fn judge(
    history: &History,
    model: Option<&ProbabilityConfig>,
    events: &[Event],
    signals: &[Signal],
    horizon: u32,
    theta: f64,
    window: Option<(Period, Period)>,
) -> Backtest {
    let obs = label(history, events, horizon, window);
    let positives = obs.iter().filter(|o| o.positive()).count() as u64;
    Backtest {
        horizon,
        theta,
        span: history.span(),
        window,
        observations: (obs.len() as u64, positives),
        events: events.len(),
        figures: signals.iter().flat_map(|s| evaluate(s, &obs, theta)).collect(),
        rows: obs.iter().map(|o| row(o, model)).collect(),
    }
}

/// Replays the files walk-forward, judges the default signals and writes the report.
pub fn run(config: &Config, rules: RulePack, opts: &BacktestOptions) -> Result<Backtest> {
    let events = load_events(&opts.events)?;
    let mut signals = default_signals(config, &rules, config.probability.as_ref());
    if let Some(chosen) = &opts.chosen_rules {
        if let Some(bad) = chosen.iter().find(|r| rules.rule(r).is_none()) {
            bail!("--chosen-rules: no rule {bad} in the rule pack");
        }
        signals.push(Signal {
            name: "chosen-rules".into(),
            kind: SignalKind::AnyRule(chosen.clone()),
            threshold: 1.0,
            sectors: Sector::ALL.to_vec(),
        });
    }
    let history = walk::walk_forward(config, rules.clone(), &opts.files, opts.progress)?;
    let mut bt = judge(&history, config.probability.as_ref(), &events, &signals, opts.horizon, opts.theta, opts.window);
    let yellow = config.score.grades.yellow;
    bt.figures.extend(district::judge(&history, &events, &rules, yellow, opts.horizon, opts.theta, opts.window));
    if let Some(dir) = &opts.out {
        report::write_dir(&bt, dir)?;
    }
    Ok(bt)
}

fn row(o: &Observation, model: Option<&ProbabilityConfig>) -> ObservationRow {
    let s = &o.snap.score;
    ObservationRow {
        institution_id: s.institution_id.to_string(),
        sector: s.sector,
        district_code: s.district_code,
        period: s.period,
        score: s.score,
        base_score: s.base_score,
        trend_z: o.snap.trend_z,
        alert_severity: snapshot_severity(o.snap).map_or(0.0, severity_rank),
        p_event: model.map(|m| m.p_snapshot(o.snap)),
        event: o.event,
    }
}
