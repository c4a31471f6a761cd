//! The terminal: a line per case as it finishes, then the grade with every lost case explained
//! (hidden ones only named, for students). Colour goes through anstream, which honours NO_COLOR.

use anstyle::Style;

use super::super::score::{fmt_points, Grade, GradedCase, Status};
use super::{case_text, shows_details, terminal_text, Audience};
use crate::report::console::{BOLD, CYAN, DIM, GREEN, RED, YELLOW};

fn word(c: &GradedCase) -> (Style, &'static str) {
    match c.status {
        Status::Passed => (GREEN, "PASS"),
        Status::Failed => (RED, "FAIL"),
        Status::Error => (YELLOW, "ERROR"),
        Status::Flaky => (YELLOW, "FLAKY"),
        Status::NotRun => (DIM, "SKIP"),
        Status::NotApplicable => (CYAN, "N/A"),
    }
}

/// One line for a finished case: verdict, name, points (never details, so safe for any audience).
pub fn live_line(c: &GradedCase) -> String {
    let (style, w) = word(c);
    let rerun = if c.attempts > 1 {
        format!(", re-run {}", c.attempts - 1)
    } else {
        String::new()
    };
    if c.status == Status::NotApplicable {
        return format!(
            "{style}{w:<5}{style:#} {} {DIM}(n/a: {} pts not counted){DIM:#}\n",
            c.name,
            fmt_points(c.worth)
        );
    }
    format!(
        "{style}{w:<5}{style:#} {} {DIM}({}/{} pts{rerun}){DIM:#}\n",
        c.name,
        fmt_points(c.score),
        fmt_points(c.max_score)
    )
}

/// The grade for a terminal: every case (`all`), or only those that lost points (after the live
/// lines showed every case), each with why.
pub fn console_text(g: &Grade, audience: Audience, all: bool) -> String {
    let mut out = String::new();
    out.push_str(&format!("{BOLD}{}{BOLD:#} — {}\n", g.title, terminal_text(&g.submission)));
    if !g.build.ok {
        out.push_str(&format!(
            "{RED}build failed:{RED:#} {}\n",
            terminal_text(g.build.error.as_deref().unwrap_or("unknown error"))
        ));
        for l in terminal_text(&g.build.output).lines() {
            out.push_str(&format!("    {DIM}{l}{DIM:#}\n"));
        }
    }
    for n in &g.notes {
        out.push_str(&format!("{YELLOW}note:{YELLOW:#} {}\n", terminal_text(n)));
    }
    for c in &g.cases {
        if c.status == Status::Passed && c.warnings.is_empty() {
            if all {
                out.push_str(&live_line(c));
            }
            continue;
        }
        out.push_str(&live_line(c));
        let show = shows_details(c, audience);
        for l in case_text(c, show).lines() {
            out.push_str(&format!("      {l}\n"));
        }
    }
    for e in &g.target_errors {
        out.push_str(&format!("{RED}error:{RED:#} {}\n", terminal_text(e).replace('\n', "\n       ")));
    }
    if g.budget_exhausted {
        out.push_str(&format!(
            "{YELLOW}the time budget ran out; the cases not reached score 0{YELLOW:#}\n"
        ));
    }
    let style = if g.all_passed() { GREEN } else { RED };
    let lost: Vec<&str> = g.lost().map(|c| c.name.as_str()).collect();
    let na: Vec<&str> = g.not_applicable().map(|c| c.name.as_str()).collect();
    out.push_str(&format!(
        "{style}score: {} of {} points{style:#}{}{}\n",
        fmt_points(g.score()),
        fmt_points(g.max_score()),
        if lost.is_empty() {
            String::new()
        } else {
            format!("; not passed: {}", lost.join(", "))
        },
        if na.is_empty() {
            String::new()
        } else {
            format!("; n/a (not counted): {}", na.join(", "))
        }
    ));
    out.push_str(&format!(
        "{DIM}seed {} · suites sha256 {} · {:.1}s{DIM:#}\n",
        g.seed,
        g.suites_sha256,
        g.duration.as_secs_f64()
    ));
    out
}
