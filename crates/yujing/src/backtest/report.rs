//! The backtest report: a Markdown summary, a CSV of every figure, and two pictures drawn
//! as plain SVG (ROC curves; lead-time histograms) — no plotting dependency.

use super::{Backtest, Figures};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The files a report consists of.
pub const FILES: [&str; 5] = ["README.md", "figures.csv", "observations.csv", "roc.svg", "lead-times.svg"];

/// Writes `README.md`, `figures.csv`, `roc.svg` and `lead-times.svg` into `dir`.
pub fn write_dir(bt: &Backtest, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, body: String| {
        let p = dir.join(name);
        std::fs::write(&p, body).with_context(|| format!("cannot write {}", p.display()))
    };
    write("README.md", markdown(bt))?;
    write("figures.csv", csv(bt))?;
    write("observations.csv", observations_csv(bt))?;
    write("roc.svg", roc_svg(bt))?;
    write("lead-times.svg", lead_svg(bt))?;
    Ok(())
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0))
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// The signal the pictures and the summary single out: the composite at the yellow line
/// when present, else the first score signal.
fn headline_score(bt: &Backtest) -> Option<&Figures> {
    let scores: Vec<&Figures> =
        bt.figures.iter().filter(|f| f.signal.starts_with("score>=") && f.sector == "all").collect();
    scores.get(1).or(scores.first()).copied()
}

/// The Markdown summary.
pub fn markdown(bt: &Backtest) -> String {
    let mut s = String::new();
    let span = bt.span.map_or("–".into(), |(a, b)| format!("{a} … {b}"));
    // An open end of the window shows as the history's end.
    let window = match (bt.window, bt.span) {
        (Some((a, b)), Some((first, last))) => format!("{} … {}", a.max(first), b.min(last)),
        (Some((a, b)), None) => format!("{a} … {b}"),
        (None, _) => "the whole history".into(),
    };
    let _ = writeln!(s, "# yujing backtest\n");
    let _ = writeln!(
        s,
        "History {span}; judged {window}; horizon {} months; θ = {}. {} institution-periods judged, {} of them \
         followed by a distress event within the horizon; {} events in the ground truth.\n",
        bt.horizon, bt.theta, bt.observations.0, bt.observations.1, bt.events
    );
    let _ = writeln!(
        s,
        "Signals approach: A = signal & event within (t, t+h], B = signal & none, C = no signal & event, \
         D = neither. Hit rate A/(A+C), false-alarm rate B/(B+D), NSR = FAR/HR, loss θ·C/(A+C) + (1−θ)·B/(B+D). \
         AUROC ranks by the score, by an alert's severity (0 none … 4 red) or by the probability. Periods at or \
         after an institution's event are left out; quiet periods whose horizon runs past the history are left out.\n"
    );
    let _ = writeln!(s, "## All sectors\n");
    table(&mut s, bt.figures.iter().filter(|f| f.sector == "all"));
    if bt.figures.iter().any(|f| f.sector == super::district::SECTOR) {
        let _ = writeln!(
            s,
            "\n## Districts\n\nA district-period is followed by an event when an institution of the district has one \
             within the horizon; lead times are per district and event.\n"
        );
        table(&mut s, bt.figures.iter().filter(|f| f.sector == super::district::SECTOR));
    }
    let _ = writeln!(s, "\n## By sector\n");
    let keys: Vec<&str> = ["any-distress-rule"]
        .into_iter()
        .chain(headline_score(bt).map(|f| f.signal.as_str()))
        .chain(bt.figures.iter().filter(|f| f.signal.starts_with("p_event")).map(|f| f.signal.as_str()).take(1))
        .collect();
    table(&mut s, bt.figures.iter().filter(|f| f.sector != "all" && keys.contains(&f.signal.as_str())));
    let _ = writeln!(s, "\n![ROC curves](roc.svg)\n\n![Lead times](lead-times.svg)");
    s
}

fn table<'a>(s: &mut String, rows: impl Iterator<Item = &'a Figures>) {
    let _ = writeln!(
        s,
        "| signal | sector | obs | A | B | C | D | hit rate | false alarms | NSR | AUROC | events warned | median lead | loss |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in rows {
        let t = &f.table;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {:.3} |",
            f.signal,
            f.sector,
            f.observations,
            t.a,
            t.b,
            t.c,
            t.d,
            pct(f.hit_rate),
            pct(f.false_alarm_rate),
            num(f.noise_to_signal, 2),
            num(f.auroc, 3),
            f.events_warned,
            f.events,
            num(f.median_lead, 1),
            f.loss
        );
    }
}

/// Every figure as CSV, one row per signal and sector.
pub fn csv(bt: &Backtest) -> String {
    let mut s = String::from(
        "signal,sector,threshold,horizon,observations,a,b,c,d,hit_rate,false_alarm_rate,noise_to_signal,loss,auroc,\
         events,events_warned,median_lead\n",
    );
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    for f in &bt.figures {
        let t = &f.table;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.6},{},{},{},{}",
            f.signal,
            f.sector,
            f.threshold,
            bt.horizon,
            f.observations,
            t.a,
            t.b,
            t.c,
            t.d,
            o(f.hit_rate),
            o(f.false_alarm_rate),
            o(f.noise_to_signal),
            f.loss,
            o(f.auroc),
            f.events,
            f.events_warned,
            o(f.median_lead)
        );
    }
    s
}

/// The judged observations as CSV.
pub fn observations_csv(bt: &Backtest) -> String {
    let mut s = String::from(
        "institution_id,sector,district_code,period,score,base_score,trend_z,alert_severity,p_event,event\n",
    );
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    for r in &bt.rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{:.4},{:.4},{},{},{},{}",
            r.institution_id,
            r.sector,
            r.district_code,
            r.period,
            r.score,
            r.base_score,
            o(r.trend_z),
            r.alert_severity,
            o(r.p_event),
            r.event.map(|p| p.to_string()).unwrap_or_default()
        );
    }
    s
}

const COLORS: [&str; 6] = ["#1f5fa8", "#d9822b", "#2e8b57", "#b03a2e", "#7b4fa0", "#6b6b6b"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// ROC curves of the composite (all sectors and each), any distress rule and the
/// probability, with the chance diagonal.
pub fn roc_svg(bt: &Backtest) -> String {
    let (w, h, m) = (700.0, 460.0, 50.0);
    let side = 360.0;
    let x = |v: f64| m + v * side;
    let y = |v: f64| m + side - v * side;
    let mut curves: Vec<(String, &Figures)> = Vec::new();
    if let Some(head) = headline_score(bt) {
        for f in bt.figures.iter().filter(|f| f.signal == head.signal) {
            let label = if f.sector == "all" { "composite score, all".into() } else { format!("score, {}", f.sector) };
            curves.push((label, f));
        }
    }
    for f in bt.figures.iter().filter(|f| f.sector == "all") {
        if f.signal == "any-distress-rule" || f.signal == "chosen-rules" || f.signal.starts_with("p_event") {
            let label = match f.signal.as_str() {
                "any-distress-rule" => "any distress alert".to_string(),
                "chosen-rules" => "chosen rules' alerts".to_string(),
                _ => "probability".to_string(),
            };
            curves.push((label, f));
        }
    }
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{m}\" y=\"30\" font-size=\"15\">ROC, event within {} months (AUROC in brackets)</text>",
        bt.horizon
    );
    for k in 0..=5 {
        let v = f64::from(k) / 5.0;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#eee\"/><line x1=\"{}\" y1=\"{}\" x2=\"{}\" \
             y2=\"{}\" stroke=\"#eee\"/>",
            x(v),
            y(0.0),
            x(v),
            y(1.0),
            x(0.0),
            y(v),
            x(1.0),
            y(v)
        );
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{v:.1}</text>", x(v), y(0.0) + 16.0);
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.1}</text>", x(0.0) - 6.0, y(v) + 4.0);
    }
    let _ = writeln!(
        s,
        "<rect x=\"{m}\" y=\"{m}\" width=\"{side}\" height=\"{side}\" fill=\"none\" stroke=\"#333\"/>\n<line x1=\"{}\" \
         y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>",
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">false-alarm rate</text><text transform=\"translate(14 {}) \
         rotate(-90)\" text-anchor=\"middle\">hit rate</text>",
        x(0.5),
        y(0.0) + 34.0,
        y(0.5)
    );
    for (i, (label, f)) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = thin(&f.roc).iter().map(|(fx, fy)| format!("{:.1},{:.1}", x(*fx), y(*fy))).collect();
        let width = if f.sector == "all" { 2.5 } else { 1.2 };
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" points=\"{}\"/>",
            pts.join(" ")
        );
        let ly = m + 14.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{color}\" stroke-width=\"{width}\"/><text x=\"{}\" \
             y=\"{}\">{} ({})</text>",
            x(1.0) + 10.0,
            ly - 4.0,
            x(1.0) + 28.0,
            ly - 4.0,
            x(1.0) + 32.0,
            ly,
            esc(label),
            num(f.auroc, 3)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The points of a curve that move it by at least 0.2% of the plot (and the last one): a
/// curve of thousands of distinct scores draws the same with a few hundred points.
fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let keep = match out.last() {
            None => true,
            Some(q) => i + 1 == points.len() || (p.0 - q.0).abs() >= 0.002 || (p.1 - q.1).abs() >= 0.002,
        };
        if keep {
            out.push(*p);
        }
    }
    out
}

/// Histograms of the lead times of warned events: the composite at its headline line and
/// any distress rule, side by side per month of lead.
pub fn lead_svg(bt: &Backtest) -> String {
    let rules = bt
        .figures
        .iter()
        .find(|f| f.signal == "chosen-rules" && f.sector == "all")
        .or_else(|| bt.figures.iter().find(|f| f.signal == "any-distress-rule" && f.sector == "all"));
    let series: Vec<&Figures> = headline_score(bt).into_iter().chain(rules).collect();
    let max_lead = bt.horizon.max(1) as usize;
    // Leads run from 1 (signalled the period before the event) to the horizon.
    let counts: Vec<Vec<usize>> = series
        .iter()
        .map(|f| (1..=max_lead).map(|l| f.leads.iter().filter(|x| **x as usize == l).count()).collect())
        .collect();
    let top = counts.iter().flatten().copied().max().unwrap_or(0).max(1);
    let (w, h, m) = (560.0, 380.0, 50.0);
    let (pw, ph) = (w - 2.0 * m, h - 2.0 * m - 50.0);
    let slot = pw / max_lead as f64;
    let bar = slot * 0.8 / series.len().max(1) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{m}\" y=\"30\" font-size=\"15\">Lead time of warned events (months before the event)</text>"
    );
    let base = m + ph;
    for k in 1..=4 {
        let v = top as f64 * f64::from(k) / 4.0;
        let yy = base - ph * f64::from(k) / 4.0;
        let _ = writeln!(
            s,
            "<line x1=\"{m}\" y1=\"{yy}\" x2=\"{}\" y2=\"{yy}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{}\" \
             text-anchor=\"end\">{v:.0}</text>",
            m + pw,
            m - 6.0,
            yy + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{m}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#333\"/><text x=\"{}\" y=\"{}\" \
         text-anchor=\"middle\">months from the first warning to the event</text>",
        m + pw,
        m + pw / 2.0,
        base + 34.0
    );
    for l in 0..max_lead {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            m + slot * (l as f64 + 0.5),
            base + 16.0,
            l + 1
        );
        for (i, c) in counts.iter().enumerate() {
            let bh = ph * c[l] as f64 / top as f64;
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
                m + slot * l as f64 + slot * 0.1 + bar * i as f64,
                base - bh,
                bar,
                bh,
                COLORS[i % COLORS.len()]
            );
        }
    }
    for (i, f) in series.iter().enumerate() {
        let ly = h - 40.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{m}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{} \
             (median {}, {}/{} events warned)</text>",
            ly - 10.0,
            COLORS[i % COLORS.len()],
            m + 16.0,
            ly,
            esc(&f.signal),
            num(f.median_lead, 1),
            f.events_warned,
            f.events
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_ends_and_drops_invisible_steps() {
        let pts: Vec<(f64, f64)> = (0..=1000).map(|i| (f64::from(i) / 1000.0, f64::from(i) / 1000.0)).collect();
        let t = thin(&pts);
        assert_eq!(t.first(), Some(&(0.0, 0.0)));
        assert_eq!(t.last(), Some(&(1.0, 1.0)));
        assert!(t.len() <= 501 && t.len() >= 400, "{}", t.len());
        assert_eq!(thin(&[]), Vec::<(f64, f64)>::new());
    }
}
