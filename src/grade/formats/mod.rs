//! Report formats for grades: one file per format. Every format lists every planned case, and
//! none shows a hidden case's expectations to students (see [`shows_details`]).

mod classroom;
mod console;
mod gradescope;
mod json;
mod junit;
mod markdown;
mod prairielearn;
mod tap;

use std::path::PathBuf;

pub use console::{console_text, live_line};

use super::assignment::Visibility;
use super::score::{fmt_points, Grade, GradedCase, Status};
use crate::report::escape;

/// Who reads a report: staff see everything, students never see hidden cases' details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Course staff.
    Staff,
    /// A student (`--student`): hidden, `after_due_date` and `after_published` cases show only passed/failed.
    Student,
}

/// A report format of `wirecheck grade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Gradescope's results.json.
    Gradescope,
    /// JUnit XML (GitLab-safe).
    Junit,
    /// JSON: the `run` schema plus points.
    Json,
    /// TAP 14.
    Tap,
    /// PrairieLearn's external grader results.json.
    Prairielearn,
    /// The base64 JSON GitHub Classroom's grading reporter sums.
    Classroom,
    /// Markdown for `$GITHUB_STEP_SUMMARY`.
    Markdown,
    /// One self-contained HTML page with a ladder diagram per case (`report::html`).
    Html,
}

/// Format names `--report` accepts.
pub const FORMATS: &[&str] = &[
    "gradescope",
    "junit",
    "json",
    "tap",
    "prairielearn",
    "classroom",
    "markdown",
    "html",
];

impl Format {
    /// The name `--report` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Gradescope => "gradescope",
            Format::Junit => "junit",
            Format::Json => "json",
            Format::Tap => "tap",
            Format::Prairielearn => "prairielearn",
            Format::Classroom => "classroom",
            Format::Markdown => "markdown",
            Format::Html => "html",
        }
    }

    /// The file a format is written to when no path is given (in `--out`).
    pub fn default_file(self) -> &'static str {
        match self {
            Format::Gradescope => "results.json",
            Format::Junit => "junit.xml",
            Format::Json => "grade.json",
            Format::Tap => "grade.tap",
            Format::Prairielearn => "prairielearn.json",
            Format::Classroom => "classroom.b64",
            Format::Markdown => "summary.md",
            Format::Html => "report.html",
        }
    }

    /// The report's bytes.
    pub fn render(self, g: &Grade, audience: Audience) -> Vec<u8> {
        match self {
            Format::Gradescope => gradescope::render(g),
            Format::Junit => junit::render(g, audience),
            Format::Json => json::render(g, audience),
            Format::Tap => tap::render(g, audience),
            Format::Prairielearn => prairielearn::render(g, audience),
            Format::Classroom => classroom::render(g, audience),
            Format::Markdown => markdown::render(g, audience),
            Format::Html => crate::report::html::render(g, audience),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Ok(match s {
            "gradescope" => Format::Gradescope,
            "junit" => Format::Junit,
            "json" => Format::Json,
            "tap" => Format::Tap,
            "prairielearn" => Format::Prairielearn,
            "classroom" => Format::Classroom,
            "markdown" => Format::Markdown,
            "html" => Format::Html,
            _ => {
                let hint = crate::suite::did_you_mean(s, FORMATS.iter().copied())
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                return Err(format!("unknown report format '{s}' (known: {}){hint}", FORMATS.join(", ")));
            }
        })
    }
}

/// A `--report FORMAT[:PATH]` argument of `wirecheck grade`.
#[derive(Debug, Clone)]
pub struct ReportSpec {
    /// The format.
    pub format: Format,
    /// Where to write (None: `--out/<default file>`); `-` is stdout.
    pub path: Option<PathBuf>,
}

impl std::str::FromStr for ReportSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<ReportSpec, String> {
        let (f, path) = match s.split_once(':') {
            Some((f, "")) => {
                return Err(format!(
                    "'{f}:' has no path; give FORMAT alone to write into --out, or '-' for stdout"
                ))
            }
            Some((f, p)) => (f, Some(PathBuf::from(p))),
            None => (s, None),
        };
        Ok(ReportSpec { format: f.parse()?, path })
    }
}

/// Whether `audience` may see `c`'s details (failure text, expectations, title).
pub fn shows_details(c: &GradedCase, audience: Audience) -> bool {
    audience == Audience::Staff || c.visibility == Visibility::Visible
}

/// What a redacted case shows: only whether it passed.
pub fn redacted_line(c: &GradedCase) -> String {
    match c.status {
        Status::Passed => "hidden case passed".into(),
        Status::NotRun => "hidden case not run".into(),
        Status::NotApplicable => "hidden case does not apply (n/a, not counted)".into(),
        Status::Flaky => "hidden case flaky (failed, then passed on a re-run)".into(),
        _ => "hidden case failed".into(),
    }
}

/// The text shown for one case: the reason and failure block, SHOULD findings, or the redacted line.
pub fn case_text(c: &GradedCase, show: bool) -> String {
    if !show {
        return redacted_line(c);
    }
    let mut out = String::new();
    if c.status == Status::Passed {
        out.push_str(&format!("passed: {}\n", c.title));
    } else if c.status == Status::NotApplicable {
        out.push_str(&format!("n/a: {}\n", c.title));
        match c.failed.as_deref().and_then(|r| r.premise().map(|p| (r, p))) {
            Some((r, p)) => out.push_str(&crate::report::not_applicable_text(r, p, false)),
            None => out.push_str(&format!("reason: {}\n", c.reason.as_deref().unwrap_or("does not apply"))),
        }
    } else {
        out.push_str(&format!("{}: {}\n", c.status.as_str(), c.title));
        // The failure block starts with the same message; a case that never ran has only the reason.
        match (&c.failed, &c.reason) {
            (Some(r), Some(why)) if r.premise().is_some() => {
                // Required, and not offered: the failure block, after what the assignment asked for.
                out.push_str(&format!("  required: {why}\n"));
                out.push_str(&crate::report::failure_text(r, false));
            }
            (Some(r), _) => out.push_str(&crate::report::failure_text(r, false)),
            (None, Some(r)) => out.push_str(&format!("reason: {r}\n")),
            (None, None) => {}
        }
    }
    for w in &c.warnings {
        out.push_str(&format!("warning (SHOULD): {w}\n"));
    }
    if let Some(d) = c.result.as_ref().map(|r| &r.dialogue).filter(|_| show) {
        if let Some(line) = crate::report::figures::line(d) {
            out.push_str(&format!("figures: {line}\n"));
            if let Some(t) = crate::report::figures::table(d) {
                out.push_str(&t);
            }
        }
    }
    // The failure block quotes the program (what it sent, its stderr): no format shows its controls.
    escape::visible_controls(&out).into_owned()
}

/// The figures an actor measured in a case (`report::figures::line`), when its details are shown.
pub fn figures_line(c: &GradedCase, audience: Audience) -> Option<String> {
    let r = c.result.as_ref().filter(|_| shows_details(c, audience))?;
    crate::report::figures::line(&r.dialogue)
}

/// The markdown summary Gradescope shows at the top and the markdown format opens with. Text a
/// program wrote (build output, its stderr in a target error) is only ever inside a code block.
pub fn summary_markdown(g: &Grade) -> String {
    let mut out = format!(
        "**{}**: {} of {} points\n\n",
        escape::md_inline(&g.title),
        fmt_points(g.score()),
        fmt_points(g.max_score())
    );
    if !g.build.ok {
        out.push_str(&format!(
            "The build failed, so no case ran: {}\n\nBuild output (the program's, verbatim):\n\n{}\n\n",
            escape::md_inline(g.build.error.as_deref().unwrap_or("unknown error")),
            escape::md_code_block(&g.build.output)
        ));
    }
    for n in &g.notes {
        out.push_str(&format!("- {}\n", escape::md_inline(n)));
    }
    for e in &g.target_errors {
        out.push_str(&format!(
            "\nThe program could not be tested (its output quoted verbatim):\n\n{}\n",
            escape::md_code_block(&first_lines(e, 20))
        ));
    }
    if g.budget_exhausted {
        out.push_str("\n- the time budget ran out; the cases not reached score 0\n");
    }
    let lost: Vec<String> = g
        .lost()
        .map(|c| {
            // Names and statuses only: what a hidden case checks stays hidden.
            format!(
                "{} ({}, {}/{})",
                md_name(&c.name),
                c.status.as_str(),
                fmt_points(c.score),
                fmt_points(c.max_score)
            )
        })
        .collect();
    if !lost.is_empty() {
        out.push_str(&format!("\nLost points: {}\n", lost.join(", ")));
    }
    let na: Vec<String> = g
        .not_applicable()
        .map(|c| format!("{} ({} points not counted)", md_name(&c.name), fmt_points(c.worth)))
        .collect();
    if !na.is_empty() {
        out.push_str(&format!("\nDoes not apply (n/a): {}\n", na.join(", ")));
    }
    out.push_str(&format!(
        "\n<sub>seed {} · suites sha256 {} · assignment sha256 {} · wirecheck {}</sub>\n",
        g.seed,
        &g.suites_sha256[..16.min(g.suites_sha256.len())],
        &g.assignment_sha256[..16.min(g.assignment_sha256.len())],
        escape::md_inline(g.version)
    ));
    out
}

/// A case's text as the markdown formats show it: in a code block, marked as the report's
/// quotation of what happened (which includes what the program sent and wrote).
pub fn md_case_block(text: &str) -> String {
    escape::md_code_block(text)
}

/// A case name in markdown: as code, unless it holds a backtick, then escaped text.
pub fn md_name(name: &str) -> String {
    if name.contains('`') || name.contains('\n') {
        escape::md_inline(name)
    } else {
        format!("`{name}`")
    }
}

/// Text for markdown lines and table cells (see [`escape::md_inline`]).
pub fn md_inline(s: &str) -> String {
    escape::md_inline(s)
}

/// Text that is valid in XML 1.0 (see [`escape::xml_text`]).
pub fn xml_text(s: &str) -> String {
    escape::xml_text(s)
}

/// A line of a TAP YAML block (see [`escape::tap_line`]).
pub fn tap_line(l: &str) -> String {
    escape::tap_line(l)
}

/// Text for a terminal (see [`escape::visible_controls`]).
pub fn terminal_text(s: &str) -> String {
    escape::visible_controls(s).into_owned()
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join("\n")
}
