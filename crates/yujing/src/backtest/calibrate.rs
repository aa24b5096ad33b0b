//! Calibration: grade lines, rule lines and the probability model chosen on a training
//! window by the policymaker's loss, and judged on a later window.
//!
//! 1. The history is replayed walk-forward with the current configuration.
//! 2. Training observations are the institution-periods whose whole horizon ends by the end
//!    of the training window (`t + h ≤ train_until`), so the choice uses only what was known
//!    then. For the composite score and for each institution rule (reporting discipline
//!    aside), the line that minimises the Alessi–Detken loss
//!    L(θ) = θ·C/(A+C) + (1−θ)·B/(B+D) is found. For a rule the search moves the lowest line
//!    and scales the others with it (a score line moves by addition); it judges the crossing
//!    point by point, ignoring streaks and hysteresis — the replay in step 3 judges the real
//!    alerts.
//! 3. The grade lines move with the composite's line (yellow = the chosen line, the others
//!    keep their distances, clamped into 0..100; a rule with fewer than [`MIN_EVENTS`]
//!    positive training observations keeps its lines); the history is replayed again with the
//!    suggested configuration and rule pack.
//! 4. The probability model is fitted (linfa-logistic) on the training observations of that
//!    replay.
//! 5. The "chosen rules" are picked greedily on the training window of that replay, by its
//!    real alerts: the rule whose addition lowers the loss of "any chosen rule open" most,
//!    as long as the union's noise-to-signal ratio stays at or below `max_nsr`.
//! 6. Both replays are judged on the test window (after `train_until`): the before/after
//!    figures.

use super::probability::{ProbabilityConfig, fit};
use super::walk::{History, Snapshot, walk_forward};
use super::{Backtest, Event, Signal, SignalKind, default_signals, judge, label, load_events, metrics::Confusion};
use crate::config::Config;
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use yujing_alert::{Direction, Rule, RulePack};
use yujing_model::{EntityKind, Mechanism, Period, Sector, SectorScope};

/// What to calibrate on.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// JSONL report files, in arrival order.
    pub files: Vec<PathBuf>,
    /// The ground truth.
    pub events: PathBuf,
    /// Months ahead.
    pub horizon: u32,
    /// The preference θ: the weight of missed events against false alarms.
    pub theta: f64,
    /// The last period of the training window; the test window follows it.
    pub train_until: Period,
    /// Where to write the suggested configuration, rule pack and reports.
    pub out: PathBuf,
    /// The probability at which the model flags (the FDIC uses 30%).
    pub flag_at: f64,
    /// The highest noise-to-signal ratio the chosen rules may have together on the
    /// training window.
    pub max_nsr: f64,
    /// Show progress bars.
    pub progress: bool,
}

/// One line chosen on the training window.
#[derive(Debug, Clone)]
pub struct Choice {
    /// `score` or a rule id.
    pub what: String,
    /// The metric it watches.
    pub metric: String,
    /// The line before.
    pub before: f64,
    /// The chosen line.
    pub after: f64,
    /// The training-window table at the old line.
    pub train_before: Confusion,
    /// And at the chosen one.
    pub train_after: Confusion,
    /// Whether the rule is among the chosen rules (for the score: whether its line beat
    /// both trivial signals, never and always warn, on the training window).
    pub chosen: bool,
}

/// The result of a calibration.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// θ.
    pub theta: f64,
    /// The lines chosen.
    pub choices: Vec<Choice>,
    /// The suggested configuration's probability model.
    pub model: ProbabilityConfig,
    /// The test-window backtest of the current configuration.
    pub before: Backtest,
    /// The test-window backtest of the suggested one.
    pub after: Backtest,
    /// The ids of the chosen rules.
    pub chosen_rules: Vec<String>,
}

/// A rule's lines move only when this many training observations of its sectors are
/// followed by an event.
pub const MIN_EVENTS: usize = 10;

/// The value a rule watches, as a snapshot knows it.
fn metric_value(s: &Snapshot, metric: &str) -> Option<f64> {
    match metric {
        "score" => Some(s.score.score),
        "base_score" => Some(s.score.base_score),
        "trend_z" => s.trend_z,
        m => s.score.indicators.iter().find(|i| i.indicator.as_str() == m).and_then(|i| i.value.get()),
    }
    .filter(|v| v.is_finite())
}

/// The loss-minimising line of `value ≥ line` (or `≤` for `below`) over candidates.
fn best_line(obs: &[(Option<f64>, bool)], dir: Direction, current: f64, theta: f64) -> (f64, Confusion, Confusion) {
    let table = |line: f64| Confusion::of(obs.iter().map(|(v, e)| (v.is_some_and(|v| dir.crossed(v, line)), *e)));
    let mut values: Vec<f64> = obs.iter().filter_map(|(v, _)| *v).collect();
    values.sort_by(f64::total_cmp);
    let mut candidates = vec![current];
    if !values.is_empty() {
        for k in 1..100 {
            candidates.push(values[(values.len() - 1) * k / 100]);
        }
    }
    let before = table(current);
    let mut best = (current, before, before.loss(theta));
    for c in candidates {
        let t = table(c);
        let l = t.loss(theta);
        if l < best.2 - 1e-12 {
            best = (c, t, l);
        }
    }
    (best.0, before, best.1)
}

fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = 10f64.powi(3 - v.abs().log10().ceil() as i32);
    (v * mag).round() / mag
}

/// Chooses the composite line and each rule's lines on the training observations.
fn choose(config: &Config, rules: &RulePack, train: &[super::Observation], theta: f64) -> Vec<Choice> {
    let floor = theta.min(1.0 - theta);
    let mut out = Vec::new();
    let obs: Vec<(Option<f64>, bool)> = train.iter().map(|o| (Some(o.snap.score.score), o.positive())).collect();
    let (line, b, a) = best_line(&obs, Direction::Above, config.score.grades.yellow, theta);
    out.push(Choice {
        what: "score".into(),
        metric: "score".into(),
        before: config.score.grades.yellow,
        // Grade lines are kept to a tenth of a point.
        after: (line * 10.0).round() / 10.0,
        train_before: b,
        train_after: a,
        chosen: a.loss(theta) < floor,
    });
    for r in rules.rules().iter().filter(|r| r.entity == EntityKind::Institution) {
        if r.mechanism == Mechanism::ReportingDiscipline {
            continue;
        }
        let Some(lowest) = r.lowest() else { continue };
        let sectors: Vec<Sector> =
            r.sectors.iter().filter_map(|s| if let SectorScope::One(s) = s { Some(*s) } else { None }).collect();
        let obs: Vec<(Option<f64>, bool)> = train
            .iter()
            .filter(|o| sectors.contains(&o.snap.score.sector))
            .map(|o| (metric_value(o.snap, &r.metric), o.positive()))
            .collect();
        // Too few events to move a line on: keep it (banks fail rarely).
        let positives = obs.iter().filter(|(_, e)| *e).count();
        let (line, b, a) = if positives < MIN_EVENTS {
            let t = best_line(&obs, r.direction, lowest.at, theta).1;
            (lowest.at, t, t)
        } else {
            best_line(&obs, r.direction, lowest.at, theta)
        };
        out.push(Choice {
            what: r.id.to_string(),
            metric: r.metric.to_string(),
            before: lowest.at,
            after: round_sig(line),
            train_before: b,
            train_after: a,
            chosen: false,
        });
    }
    out
}

/// Greedy selection of rules by their real alerts on the training observations: each step
/// adds the rule that lowers the union's loss most while its NSR stays within `max_nsr`.
fn select_rules(train: &[super::Observation], candidates: &[String], theta: f64, max_nsr: f64) -> Vec<String> {
    let mut chosen: Vec<String> = Vec::new();
    let mut best_loss = Confusion::of(train.iter().map(|o| (false, o.positive()))).loss(theta);
    loop {
        let mut best: Option<(String, f64)> = None;
        for r in candidates.iter().filter(|r| !chosen.contains(r)) {
            let t = Confusion::of(train.iter().map(|o| {
                let fires = o.snap.alerts.contains_key(r) || chosen.iter().any(|c| o.snap.alerts.contains_key(c));
                (fires, o.positive())
            }));
            let l = t.loss(theta);
            if t.noise_to_signal().is_some_and(|n| n <= max_nsr)
                && l < best_loss - 1e-9
                && best.as_ref().is_none_or(|b| l < b.1)
            {
                best = Some((r.clone(), l));
            }
        }
        match best {
            Some((r, l)) => {
                chosen.push(r);
                best_loss = l;
            }
            None => return chosen,
        }
    }
}

/// Grade lines with yellow at `line`, the others keeping their distances, within 0..100.
fn grades_at(config: &Config, line: f64) -> yujing_score::GradeCutoffs {
    let g = config.score.grades;
    let d = line - g.yellow;
    let red = (g.red + d).clamp(4.0, 100.0);
    let orange = (g.orange + d).clamp(3.0, red - 1.0);
    let yellow = (g.yellow + d).clamp(2.0, orange - 1.0);
    let blue = (g.blue + d).clamp(1.0, yellow - 1.0);
    let r = |v: f64| (v * 10.0).round() / 10.0;
    yujing_score::GradeCutoffs { blue: r(blue), yellow: r(yellow), orange: r(orange), red: r(red) }
}

/// Whether a rule's lines move by addition (scores) rather than by scaling.
fn additive(r: &Rule) -> bool {
    matches!(&*r.metric, "score" | "base_score" | "trend_z") || r.lowest().is_none_or(|l| l.at == 0.0)
}

/// The rule pack source with the chosen rules' lines moved; comments, order and layout of
/// the source are kept, so the suggestion diffs cleanly against it.
fn suggested_pack(source: &str, rules: &RulePack, choices: &[Choice]) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = source.parse().context("rule pack source")?;
    let Some(list) = doc.get_mut("rule").and_then(|r| r.as_array_of_tables_mut()) else {
        bail!("the rule pack has no [[rule]] tables");
    };
    for t in list.iter_mut() {
        let Some(id) = t.get("id").and_then(|v| v.as_str()).map(str::to_string) else { continue };
        let (Some(c), Some(rule)) = (choices.iter().find(|c| c.what == id), rules.rule(&id)) else { continue };
        if c.after == c.before {
            continue;
        }
        let Some(levels) = t.get_mut("levels").and_then(|l| l.as_array_mut()) else { continue };
        for l in levels.iter_mut().filter_map(|l| l.as_inline_table_mut()) {
            let Some(at) = l.get("at").and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64))) else {
                continue;
            };
            let moved = if additive(rule) { at + (c.after - c.before) } else { at * c.after / c.before };
            if let Some(v) = l.get_mut("at") {
                let decor = v.decor().clone();
                *v = toml_edit::Value::from(round_sig(moved));
                *v.decor_mut() = decor;
            }
        }
    }
    Ok(format!(
        "# Rule pack suggested by `yujing calibrate`: the pack below with the lines chosen on the\n\
         # training window moved (see CALIBRATION.md beside this file). Review before use.\n\n{doc}"
    ))
}

/// The suggested configuration file.
fn suggested_config(
    grades: &yujing_score::GradeCutoffs,
    rules_path: &Path,
    model: &ProbabilityConfig,
) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Grades<'a> {
        grades: &'a yujing_score::GradeCutoffs,
    }
    #[derive(serde::Serialize)]
    struct Alerts<'a> {
        rules: &'a Path,
    }
    #[derive(serde::Serialize)]
    struct Suggested<'a> {
        score: Grades<'a>,
        alerts: Alerts<'a>,
        probability: &'a ProbabilityConfig,
    }
    let s = Suggested { score: Grades { grades }, alerts: Alerts { rules: rules_path }, probability: model };
    Ok(format!(
        "# Configuration suggested by `yujing calibrate` (see CALIBRATION.md). Use it with\n\
         # --config; every other setting keeps its default.\n\n{}",
        toml::to_string_pretty(&s)?
    ))
}

/// Runs the calibration and writes `suggested.toml`, `rules.toml`, `CALIBRATION.md` and the
/// before/after reports into the output directory.
pub fn run(config: &Config, rules: RulePack, opts: &CalibrateOptions) -> Result<Calibration> {
    if !(0.0..=1.0).contains(&opts.theta) {
        bail!("θ must be within 0..=1");
    }
    let events = load_events(&opts.events)?;
    let source = if config.alerts.rules.as_os_str().is_empty() {
        yujing_alert::DEFAULT_RULES_TOML.to_string()
    } else {
        std::fs::read_to_string(&config.alerts.rules)?
    };
    let base = walk_forward(config, rules.clone(), &opts.files, opts.progress)?;
    let train_window = train_window(&base, opts)?;
    let train = label(&base, &events, opts.horizon, Some(train_window));
    if !train.iter().any(|o| o.positive()) {
        bail!("no event follows any observation of the training window (…{})", opts.train_until);
    }
    let choices = choose(config, &rules, &train, opts.theta);
    let grades = grades_at(config, choices[0].after);
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create {}", opts.out.display()))?;
    let rules_path = opts.out.join("rules.toml");
    let pack_text = suggested_pack(&source, &rules, &choices)?;
    let new_rules = RulePack::from_toml_str(&pack_text).context("the suggested rule pack")?;
    std::fs::write(&rules_path, &pack_text)?;
    let rules_path = rules_path.canonicalize().unwrap_or(rules_path);
    let mut new_config = config.clone();
    new_config.score.grades = grades;
    new_config.alerts.rules = rules_path.clone();
    let after = walk_forward(&new_config, new_rules.clone(), &opts.files, opts.progress)?;
    let train_after = label(&after, &events, opts.horizon, Some(train_window));
    let rows: Vec<(&Snapshot, bool)> = train_after.iter().map(|o| (o.snap, o.positive())).collect();
    let model = fit(&rows, opts.horizon, opts.flag_at)?;
    new_config.probability = Some(model.clone());
    std::fs::write(opts.out.join("suggested.toml"), suggested_config(&grades, &rules_path, &model)?)?;

    let candidates: Vec<String> = choices.iter().skip(1).map(|c| c.what.clone()).collect();
    let chosen_rules = select_rules(&train_after, &candidates, opts.theta, opts.max_nsr);
    let mut choices = choices;
    for c in choices.iter_mut().skip(1) {
        c.chosen = chosen_rules.contains(&c.what);
    }
    let test = Some((opts.train_until.add_months(1), Period::from_index(i32::MAX)));
    let judged = |h: &History, c: &Config, r: &RulePack, model: Option<&ProbabilityConfig>| {
        let mut signals = default_signals(c, r, model);
        signals.push(Signal {
            name: "chosen-rules".into(),
            kind: SignalKind::AnyRule(chosen_rules.clone()),
            threshold: 1.0,
            sectors: Sector::ALL.to_vec(),
        });
        let mut bt = judge(h, model, &events, &signals, opts.horizon, opts.theta, test);
        let yellow = c.score.grades.yellow;
        bt.figures.extend(super::district::judge(h, &events, r, yellow, opts.horizon, opts.theta, test));
        bt
    };
    let before = judged(&base, config, &rules, config.probability.as_ref());
    let after_bt = judged(&after, &new_config, &new_rules, Some(&model));
    std::fs::write(opts.out.join("chosen-rules.txt"), format!("{}\n", chosen_rules.join(",")))?;
    super::report::write_dir(&before, &opts.out.join("before"))?;
    super::report::write_dir(&after_bt, &opts.out.join("after"))?;
    let cal = Calibration { theta: opts.theta, choices, model, before, after: after_bt, chosen_rules };
    std::fs::write(opts.out.join("CALIBRATION.md"), markdown(&cal, opts, &events))?;
    Ok(cal)
}

fn train_window(h: &History, opts: &CalibrateOptions) -> Result<(Period, Period)> {
    let Some((first, last)) = h.span() else { bail!("the reports hold no scored period") };
    if opts.train_until >= last || opts.train_until < first {
        bail!("--train-until {} must fall within {first}..{last}, before its end", opts.train_until);
    }
    Ok((first, opts.train_until.add_months(-(opts.horizon as i32))))
}

fn opt(v: Option<f64>, pct: bool) -> String {
    match v {
        Some(v) if pct => format!("{:.1}%", v * 100.0),
        Some(v) => format!("{v:.3}"),
        None => "–".into(),
    }
}

/// The calibration report: chosen lines with their training figures, and the test window
/// before and after.
pub fn markdown(c: &Calibration, opts: &CalibrateOptions, events: &[Event]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# yujing calibration\n\nθ = {} (weight of a missed event; 1−θ of a false alarm), horizon {} months, \
         training observations up to {} (their horizon ends by {}), test window after {}. {} events. \
         Chosen rules (greedy, NSR ≤ {} together on the training window): {}.\n",
        c.theta,
        opts.horizon,
        opts.train_until.add_months(-(opts.horizon as i32)),
        opts.train_until,
        opts.train_until,
        events.len(),
        opts.max_nsr,
        if c.chosen_rules.is_empty() { "none".to_string() } else { c.chosen_rules.join(", ") }
    );
    let _ = writeln!(s, "## Lines chosen on the training window\n");
    let _ =
        writeln!(s, "| signal | metric | line before | line after | loss before | loss after | NSR after | chosen |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|");
    for ch in &c.choices {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.3} | {:.3} | {} | {} |",
            ch.what,
            ch.metric,
            round_sig(ch.before),
            ch.after,
            ch.train_before.loss(c.theta),
            ch.train_after.loss(c.theta),
            opt(ch.train_after.noise_to_signal(), false),
            if ch.chosen { "yes" } else { "no" }
        );
    }
    let _ = writeln!(s, "\n## Test window: before → after\n");
    let _ = writeln!(s, "| signal | hit rate | false alarms | NSR | AUROC | events warned | median lead | loss |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    let pick = |bt: &Backtest, name: &str| bt.figures.iter().find(|f| f.sector == "all" && f.signal == name).cloned();
    let names: Vec<String> = c.after.figures.iter().filter(|f| f.sector == "all").map(|f| f.signal.clone()).collect();
    for name in names {
        let a = pick(&c.after, &name);
        let b = pick(&c.before, &name).or_else(|| {
            // Score lines moved: compare with the same grade's old line.
            let idx = c
                .after
                .figures
                .iter()
                .filter(|f| f.sector == "all" && f.signal.starts_with("score>="))
                .position(|f| f.signal == name)?;
            c.before.figures.iter().filter(|f| f.sector == "all" && f.signal.starts_with("score>=")).nth(idx).cloned()
        });
        let cell = |f: &Option<super::Figures>, g: &dyn Fn(&super::Figures) -> String| f.as_ref().map_or("–".into(), g);
        let both = |g: &dyn Fn(&super::Figures) -> String| format!("{} → {}", cell(&b, g), cell(&a, g));
        let _ = writeln!(
            s,
            "| {}{} | {} | {} | {} | {} | {} | {} | {} |",
            name,
            b.as_ref().filter(|b| b.signal != name).map(|b| format!(" (was {})", b.signal)).unwrap_or_default(),
            both(&|f| opt(f.hit_rate, true)),
            both(&|f| opt(f.false_alarm_rate, true)),
            both(&|f| opt(f.noise_to_signal, false)),
            both(&|f| opt(f.auroc, false)),
            both(&|f| format!("{}/{}", f.events_warned, f.events)),
            both(&|f| f.median_lead.map_or("–".into(), |l| format!("{l:.1}"))),
            both(&|f| format!("{:.3}", f.loss)),
        );
    }
    let _ = writeln!(
        s,
        "\nThe probability model (linfa-logistic, fitted on the training window of the suggested \
         configuration) is in `suggested.toml` under `[probability]`; it flags at p ≥ {}. The full \
         before/after reports, with ROC curves and lead-time histograms, are in `before/` and `after/`.",
        c.model.flag_at
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_line_minimises_the_loss() {
        // Events above 5; a line at 5 separates them perfectly.
        let obs: Vec<(Option<f64>, bool)> = (0..10).map(|i| (Some(f64::from(i)), i >= 5)).collect();
        let (line, before, after) = best_line(&obs, Direction::Above, 8.0, 0.5);
        assert_eq!(line, 5.0);
        assert_eq!(after, Confusion { a: 5, b: 0, c: 0, d: 5 });
        assert_eq!(before, Confusion { a: 2, b: 0, c: 3, d: 5 });
        // Missing values never signal.
        let (_, _, t) = best_line(&[(None, true), (Some(1.0), false)], Direction::Above, 0.5, 0.5);
        assert_eq!(t.a, 0);
    }

    #[test]
    fn grade_lines_move_with_yellow_and_stay_ordered() {
        let c = Config::load_with_env(None, std::iter::empty()).unwrap();
        let g = grades_at(&c, 50.0);
        assert_eq!((g.blue, g.yellow, g.orange, g.red), (30.0, 50.0, 65.0, 80.0));
        let g = grades_at(&c, 95.0);
        assert!(g.blue < g.yellow && g.yellow < g.orange && g.orange < g.red && g.red <= 100.0, "{g:?}");
    }

    #[test]
    fn the_suggested_pack_moves_lines_and_still_loads() {
        let rules = RulePack::default_pack();
        let choice = |what: &str, before: f64, after: f64| Choice {
            what: what.into(),
            metric: String::new(),
            before,
            after,
            train_before: Confusion::default(),
            train_after: Confusion::default(),
            chosen: true,
        };
        let text = suggested_pack(
            yujing_alert::DEFAULT_RULES_TOML,
            &rules,
            &[choice("microloan-npl", 0.10, 0.12), choice("institution-failing", 75.0, 70.0)],
        )
        .unwrap();
        let pack = RulePack::from_toml_str(&text).unwrap();
        let npl: Vec<f64> = pack.rule("microloan-npl").unwrap().levels.iter().map(|l| l.at).collect();
        assert_eq!(npl, vec![0.12, 0.18, 0.3]);
        let failing: Vec<f64> = pack.rule("institution-failing").unwrap().levels.iter().map(|l| l.at).collect();
        assert_eq!(failing, vec![70.0, 85.0]);
        assert_eq!(pack.rules().len(), rules.rules().len());
        // The source's comments and layout are kept.
        assert!(text.contains("# yujing default rule pack"), "{text}");
        assert!(text.contains("  { severity = \"yellow\", at = 0.12 },"), "{text}");
    }
}
