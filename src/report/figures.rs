//! Figures an actor measured during a case (`EventKind::Figure`): totals, whose last value every
//! report shows in one line (a DASH player's QoE, rebuffering, average bitrate, switches), and
//! series over time, which text reports draw as a table by second and the HTML report as a chart
//! (the bitrate a player chose against the bandwidth the origin offered).

use super::escape;
use crate::dialogue::{Dialogue, EventKind};

/// The most columns (seconds) a table shows; a longer case is summed up in its last one.
const MAX_COLUMNS: usize = 40;
/// Chart size.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 56.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 24.0;
/// Series colours, in order of first appearance.
const COLOURS: &[&str] = &["#36c", "#c63", "#393", "#939", "#666"];

/// Each total's last value, in the order they first appeared.
pub fn totals(d: &Dialogue) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for e in &d.events {
        if let EventKind::Figure {
            name,
            value,
            series: false,
        } = &e.kind
        {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = *value,
                None => out.push((name.clone(), *value)),
            }
        }
    }
    out
}

/// Each series' samples (µs since the case started, value), in order of first appearance.
pub fn series(d: &Dialogue) -> Vec<(String, Vec<(u64, f64)>)> {
    let mut out: Vec<(String, Vec<(u64, f64)>)> = Vec::new();
    for e in &d.events {
        if let EventKind::Figure { name, value, series: true } = &e.kind {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(s) => s.1.push((e.t_us, *value)),
                None => out.push((name.clone(), vec![(e.t_us, *value)])),
            }
        }
    }
    out
}

fn number(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e12) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The totals in one line (`QoE 3.21 · rebuffering s 0.00 · ...`), or None when there are none.
pub fn line(d: &Dialogue) -> Option<String> {
    let t = totals(d);
    (!t.is_empty()).then(|| t.iter().map(|(n, v)| format!("{n} {}", number(*v))).collect::<Vec<_>>().join(" · "))
}

/// The series as a table: a row per series, a column per second (the last value sampled in it,
/// `·` where none was).
pub fn table(d: &Dialogue) -> Option<String> {
    let s = series(d);
    let start = s.iter().flat_map(|(_, v)| v.first().map(|x| x.0)).min()?;
    let end = s.iter().flat_map(|(_, v)| v.last().map(|x| x.0)).max()?;
    let columns = (((end - start) / 1_000_000) as usize + 1).min(MAX_COLUMNS);
    let name_w = s.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(6);
    let mut cells: Vec<Vec<String>> = Vec::new();
    for (_, values) in &s {
        let mut row = vec![String::from("·"); columns];
        for (t, v) in values {
            let col = (((t - start) / 1_000_000) as usize).min(columns - 1);
            row[col] = number(*v);
        }
        cells.push(row);
    }
    let col_w = cells.iter().flatten().map(|c| c.chars().count()).max().unwrap_or(1).max(3);
    let mut out = format!("{:<name_w$}", "second");
    for c in 0..columns {
        let label = match c + 1 == columns && columns == MAX_COLUMNS {
            true => format!("{c}+"),
            false => c.to_string(),
        };
        out.push_str(&format!(" {label:>col_w$}"));
    }
    out.push('\n');
    for ((name, _), row) in s.iter().zip(&cells) {
        out.push_str(&format!("{name:<name_w$}"));
        for c in row {
            out.push_str(&format!(" {c:>col_w$}"));
        }
        out.push('\n');
    }
    Some(out)
}

/// The series as a step chart, one line each, on one scale from 0.
pub fn svg(d: &Dialogue) -> Option<String> {
    let s = series(d);
    let start = s.iter().flat_map(|(_, v)| v.first().map(|x| x.0)).min()?;
    let end = s.iter().flat_map(|(_, v)| v.last().map(|x| x.0)).max()?;
    let top = s.iter().flat_map(|(_, v)| v.iter().map(|x| x.1)).fold(0.0f64, f64::max).max(1.0) * 1.1;
    let span = (end - start).max(1) as f64;
    let x = |t: u64| LEFT + (t - start) as f64 / span * (WIDTH - LEFT - 10.0);
    let y = |v: f64| TOP + (1.0 - v / top) * (HEIGHT - TOP - BOTTOM);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"figures\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"monospace\" font-size=\"11\" role=\"img\" aria-label=\"figures over time\">\n"
    );
    for k in 0..=4 {
        let v = top / 1.1 * k as f64 / 4.0;
        out.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#666\">{}</text>\n",
            y(v),
            WIDTH - 10.0,
            y(v),
            LEFT - 4.0,
            y(v) + 4.0,
            number(v)
        ));
    }
    let seconds = (span / 1e6).ceil() as u64;
    let step = (seconds / 10).max(1);
    let mut sec = 0;
    while sec <= seconds {
        let tx = x(start + (sec * 1_000_000).min(end - start));
        out.push_str(&format!(
            "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#666\">{sec}s</text>\n",
            HEIGHT - 8.0
        ));
        sec += step;
    }
    for (i, (name, values)) in s.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut points = String::new();
        for (j, (t, v)) in values.iter().enumerate() {
            if j > 0 {
                points.push_str(&format!("{:.1},{:.1} ", x(*t), y(values[j - 1].1)));
            }
            points.push_str(&format!("{:.1},{:.1} ", x(*t), y(*v)));
        }
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>\n",
            points.trim_end(),
            escape::html(name)
        ));
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"14\" fill=\"{colour}\">{}</text>\n",
            LEFT + 150.0 * i as f64,
            escape::html(name)
        ));
    }
    out.push_str("</svg>");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::{ConnInfo, Recorder};
    use crate::proto::Transport;

    fn dialogue() -> Dialogue {
        let rec = Recorder::new();
        let c = rec.open(ConnInfo {
            id: 0,
            name: "origin".into(),
            transport: Transport::Tcp,
            protocol: "dash".into(),
            harness_is_client: false,
            captured: false,
            actor: true,
            local: None,
            peer: None,
        });
        for (name, value, series) in [
            ("offered kbit/s", 1600.0, true),
            ("chosen kbit/s", 40.0, true),
            ("QoE", 0.5, false),
            ("chosen kbit/s", 320.0, true),
            ("QoE", 1.25, false),
        ] {
            rec.event(
                c,
                EventKind::Figure {
                    name: name.into(),
                    value,
                    series,
                },
            );
        }
        rec.snapshot()
    }

    #[test]
    fn keeps_the_last_total_and_every_sample() {
        let d = dialogue();
        assert_eq!(totals(&d), vec![("QoE".to_string(), 1.25)]);
        assert_eq!(line(&d).unwrap(), "QoE 1.25");
        let s = series(&d);
        assert_eq!(s[1].0, "chosen kbit/s");
        assert_eq!(s[1].1.iter().map(|x| x.1).collect::<Vec<_>>(), [40.0, 320.0]);
        let t = table(&d).unwrap();
        assert!(t.contains("offered kbit/s") && t.contains("320"), "{t}");
        let svg = svg(&d).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    }

    #[test]
    fn no_figures_no_report() {
        let d = Dialogue::default();
        assert!(line(&d).is_none() && table(&d).is_none() && svg(&d).is_none());
    }
}
