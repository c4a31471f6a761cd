//! The console: one line per case, and for a failure everything needed to fix it.

use std::io::Write;

use anstyle::{AnsiColor, Style};

use crate::run::{CaseResult, Reporter, Summary, Verdict};

/// The console's palette, shared with the grade console so a verdict looks the same in both.
pub(crate) const RED: Style = AnsiColor::Red.on_default().bold();
/// Passed.
pub(crate) const GREEN: Style = AnsiColor::Green.on_default().bold();
/// Could not run; warnings.
pub(crate) const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
/// Does not apply.
pub(crate) const CYAN: Style = AnsiColor::Cyan.on_default().bold();
/// Timings and transcripts.
pub(crate) const DIM: Style = Style::new().dimmed();
/// Labels.
pub(crate) const BOLD: Style = Style::new().bold();

/// Prints results to stdout (colour per NO_COLOR/terminal); a progress bar on a terminal only.
pub struct Console {
    out: anstream::AutoStream<std::io::Stdout>,
    bar: Option<indicatif::ProgressBar>,
    verbose: bool,
    /// Why cases could not run, as already shown: a program that does not start is explained
    /// once, with its stderr, not again for every case.
    shown_errors: std::collections::HashSet<String>,
    /// The case that took longest so far: a run lasts at least that long whatever `--jobs` is.
    longest: Option<(std::time::Duration, String)>,
}

impl Console {
    /// A console reporter; `verbose` also prints the transcript of passing cases.
    pub fn new(verbose: bool) -> Console {
        Console {
            out: anstream::stdout(),
            bar: None,
            verbose,
            shown_errors: std::collections::HashSet::new(),
            longest: None,
        }
    }

    fn print(&mut self, text: &str) {
        let out = &mut self.out;
        let mut write = || {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        };
        match &self.bar {
            Some(b) => b.suspend(write),
            None => write(),
        }
    }
}

impl Reporter for Console {
    fn start(&mut self, total: usize) {
        use std::io::IsTerminal;
        // A bar in a CI log is noise: only on an interactive terminal.
        if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() && total > 1 {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {pos}/{len} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            self.bar = Some(bar);
        }
    }

    fn case_finished(&mut self, r: &CaseResult) {
        if self.longest.as_ref().is_none_or(|(d, _)| r.duration > *d) {
            self.longest = Some((r.duration, r.name()));
        }
        let case = r.case();
        let (style, word) = match r.verdict {
            Verdict::Pass => (GREEN, "PASS"),
            Verdict::Fail => (RED, "FAIL"),
            Verdict::Error => (YELLOW, "ERROR"),
            Verdict::NotApplicable => (CYAN, "N/A"),
        };
        let not_counted = if r.verdict == Verdict::NotApplicable { " not counted" } else { "" };
        let mut s = format!(
            "{style}{word:<5}{style:#} {} {DIM}({} pts{not_counted}, {:.0?}){DIM:#}\n",
            r.name(),
            case.points,
            r.duration
        );
        let repeated = r.verdict == Verdict::Error && r.failure.as_ref().is_some_and(|f| !self.shown_errors.insert(f.message.clone()));
        if repeated {
            s.push_str(&format!("  {BOLD}error:{BOLD:#}    the same as above: the case could not run\n"));
        } else if let Some(premise) = r.premise() {
            s.push_str(&not_applicable_text(r, premise, true));
            if self.verbose {
                s.push_str(&indent(&r.transcript(true), "    "));
            }
        } else if r.verdict != Verdict::Pass {
            s.push_str(&failure_text(r, true));
            s.push('\n');
        } else if self.verbose {
            s.push_str(&indent(&r.transcript(true), "    "));
        }
        // A swarm's picture (who sent which piece, whom the program unchoked) explains a choking
        // or piece-picking verdict better than the transcript of a thousand messages.
        if r.verdict != Verdict::Pass || self.verbose {
            if let Some(t) = super::swarm::table(&r.dialogue) {
                s.push_str(&indent(&t, "    "));
            }
        }
        // What an actor measured (a DASH player's QoE) is reported on every run; its series over
        // time (bitrate chosen against bandwidth offered) with a failure or -v.
        if let Some(line) = super::figures::line(&r.dialogue) {
            s.push_str(&format!("      {DIM}figures:{DIM:#} {line}\n"));
            if r.verdict != Verdict::Pass || self.verbose {
                if let Some(t) = super::figures::table(&r.dialogue) {
                    s.push_str(&indent(&t, "    "));
                }
            }
        }
        for w in &r.warnings {
            s.push_str(&format!("      {YELLOW}warning:{YELLOW:#} {w} (costs no points)\n"));
        }
        self.print(&s);
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(r.name());
        }
    }

    fn finish(&mut self, s: &Summary) -> std::io::Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let mut text = String::new();
        for e in &s.target_errors {
            // It may quote the program's stderr: shown, never played, on the terminal.
            let e = super::escape::visible_controls(&e.to_string()).into_owned();
            // Shown in full on the first case it stopped: here its first line is enough.
            let e = match self.shown_errors.contains(&e) {
                true => e.lines().next().unwrap_or_default().to_string(),
                false => e,
            };
            text.push_str(&format!("{RED}error:{RED:#} {}\n", e.replace('\n', "\n       ")));
        }
        let style = if s.failed + s.errors == 0 && s.target_errors.is_empty() {
            GREEN
        } else {
            RED
        };
        text.push_str(&format!(
            "{style}wirecheck: {} passed, {} failed{}{style:#}; {} of {} points in {:.1}s\n",
            s.passed,
            s.failed,
            if s.errors > 0 {
                format!(", {} errors", s.errors)
            } else {
                String::new()
            } + &if s.not_applicable > 0 {
                format!(", {} n/a", s.not_applicable)
            } else {
                String::new()
            },
            fmt_points(s.points),
            fmt_points(s.max_points),
            s.duration_ms as f64 / 1000.0
        ));
        if let Some((d, name)) = self
            .longest
            .as_ref()
            .filter(|_| s.passed + s.failed + s.errors + s.not_applicable > 1)
        {
            // On its own line, so the summary line keeps its shape for scripts that read it.
            text.push_str(&format!(
                "{DIM}longest case: {name}, {:.1}s (the whole run: {:.1}s){DIM:#}\n",
                d.as_secs_f64(),
                s.duration_ms as f64 / 1000.0
            ));
        }
        self.print(&text);
        Ok(())
    }
}

fn fmt_points(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.2}")
    }
}

fn indent(s: &str, by: &str) -> String {
    s.lines().map(|l| format!("{by}{l}\n")).collect()
}

/// `  step:     suites/x.yaml:L:C (keyword)`, or nothing when the failure has no step.
fn step_line(r: &CaseResult, f: &crate::run::Failure, bold: Style) -> String {
    match f.loc {
        Some(loc) => format!(
            "  {bold}step:{bold:#}     {}:{}:{} ({})\n",
            r.suite.source.path.display(),
            loc.line,
            loc.col,
            f.keyword.unwrap_or("step")
        ),
        None => String::new(),
    }
}

/// Why a case does not apply: its premise, the step, and what arrived instead (no dialogue: nothing
/// is wrong with the program).
pub fn not_applicable_text(r: &CaseResult, premise: &str, color: bool) -> String {
    let bold = if color { BOLD } else { Style::new() };
    let mut out = format!("  {bold}n/a:{bold:#}      the program does not offer: {premise} (costs no points)\n");
    if let Some(f) = &r.failure {
        out.push_str(&step_line(r, f, bold));
        out.push_str(&format!("  {bold}because:{bold:#}  {}\n", f.message));
        if let Some(g) = &f.got {
            out.push_str(&format!("  {bold}got:{bold:#}      {}\n", g.lines().next().unwrap_or("")));
        }
    }
    out
}

/// The failure block: step location, what it checks, expected vs got (a diff when multi-line),
/// the dialogue up to the failure and the target's stderr tail.
pub fn failure_text(r: &CaseResult, color: bool) -> String {
    let st = |s: Style| if color { s } else { Style::new() };
    let (bold, dim, red, green) = (st(BOLD), st(DIM), st(RED), st(GREEN));
    let case = r.case();
    let mut out = String::new();
    let Some(f) = &r.failure else { return out };
    out.push_str(&step_line(r, f, bold));
    if let Some(loc) = f.loc {
        if let Some(line) = r.suite.source.text.lines().nth(loc.line.saturating_sub(1) as usize) {
            out.push_str(&format!("            {dim}{}{dim:#}\n", line.trim()));
        }
    }
    if let Some(at) = f.at.as_deref().copied() {
        out.push_str(&format!(
            "  {bold}at:{bold:#}       {}:{}:{}\n",
            r.suite.source.path.display(),
            at.line,
            at.col
        ));
        if let Some(snip) = crate::syntax::snippet(&r.suite.source, at, Some("this check failed")) {
            out.push_str(&indent(&snip, "    "));
        }
    }
    // The failing step's own rule is the one that broke; the case's reference names its topic.
    if let Some(rule) = &f.rule {
        out.push_str(&format!("  {bold}checks:{bold:#}   {rule}\n"));
    } else if let Some(rfc) = &case.rfc {
        out.push_str(&format!("  {bold}checks:{bold:#}   {rfc} — {}\n", case.title));
    }
    // From here on the text may quote the program (what it sent, what it wrote to stderr): its
    // control sequences are shown, never played, on the terminal or in any report.
    let quoted = |s: &str| super::escape::visible_controls(s).into_owned();
    out.push_str(&format!("  {bold}error:{bold:#}    {}\n", quoted(&f.message)));
    for h in &f.hints {
        out.push_str(&format!("  {bold}hint:{bold:#}     {}\n", quoted(h)));
    }
    if let (Some(e), Some(g)) = (&f.expected, &f.got) {
        if e.contains('\n') || g.contains('\n') {
            out.push_str(&format!("  {bold}diff:{bold:#}     {red}- expected{red:#} {green}+ got{green:#}\n"));
            let diff = similar::TextDiff::from_lines(e.as_str(), g.as_str());
            for change in diff.iter_all_changes() {
                let (sign, s) = match change.tag() {
                    similar::ChangeTag::Delete => ("-", red),
                    similar::ChangeTag::Insert => ("+", green),
                    similar::ChangeTag::Equal => (" ", Style::new()),
                };
                out.push_str(&format!("    {s}{sign} {}{s:#}\n", quoted(change.value().trim_end_matches('\n'))));
            }
        } else {
            out.push_str(&format!("  {bold}expected:{bold:#} {green}{}{green:#}\n", quoted(e)));
            out.push_str(&format!("  {bold}got:{bold:#}      {red}{}{red:#}\n", quoted(g)));
        }
    }
    let transcript = r.transcript(true);
    if !transcript.is_empty() {
        let lines: Vec<&str> = transcript.lines().collect();
        let shown = &lines[lines.len().saturating_sub(30)..];
        out.push_str(&format!(
            "  {bold}dialogue{bold:#}{}:\n",
            if shown.len() < lines.len() { " (last 30 events)" } else { "" }
        ));
        for l in shown {
            out.push_str(&format!("    {dim}{}{dim:#}\n", quoted(l)));
        }
    }
    if let Some(tail) = &r.stderr_tail {
        out.push_str(&format!("  {bold}program output (stderr, last lines, verbatim):{bold:#}\n"));
        out.push_str(&indent(&quoted(tail), "    | "));
    }
    out
}
