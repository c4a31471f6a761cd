//! Markdown for `$GITHUB_STEP_SUMMARY` (and anything else that renders it): the summary, a table
//! of every case, and a collapsed block per lost case (only its status when hidden).

use super::super::score::{fmt_points, Grade, Status};
use super::{case_text, md_case_block, md_inline, md_name, shows_details, summary_markdown, Audience};

/// The report's bytes.
pub fn render(g: &Grade, audience: Audience) -> Vec<u8> {
    let mut out = format!("## {} — {}\n\n", md_inline(&g.title), md_inline(&g.submission));
    out.push_str(&summary_markdown(g));
    out.push_str("\n| # | case | status | points |\n|---|---|---|---|\n");
    for c in &g.cases {
        let mark = match c.status {
            Status::Passed => "✅ passed",
            Status::Failed => "❌ failed",
            Status::Error => "⛔ error",
            Status::Flaky => "⚠️ flaky",
            Status::NotRun => "⏭️ not run",
            Status::NotApplicable => "➖ n/a",
        };
        out.push_str(&format!(
            "| {} | {} | {mark} | {}/{} |\n",
            c.number,
            md_name(&c.name).replace('|', "\\|"),
            fmt_points(c.score),
            fmt_points(c.max_score)
        ));
    }
    // What actors measured (a DASH player's QoE) for the cases that passed; the others' blocks
    // below carry theirs.
    let measured: Vec<String> = g
        .cases
        .iter()
        .filter(|c| c.status == Status::Passed)
        .filter_map(|c| super::figures_line(c, audience).map(|l| format!("- {}: {}\n", md_name(&c.name), md_inline(&l))))
        .collect();
    if !measured.is_empty() {
        out.push_str("\n**Figures**\n\n");
        out.push_str(&measured.concat());
    }
    for c in g.cases.iter().filter(|c| !matches!(c.status, Status::Passed | Status::NotRun)) {
        out.push_str(&format!(
            "\n<details><summary><code>{}</code>: {}</summary>\n\n{}\n\n</details>\n",
            html_text(&c.name),
            c.status.as_str(),
            md_case_block(&case_text(c, shows_details(c, audience)))
        ));
    }
    out.into_bytes()
}

/// Text inside the HTML of a `<summary>`.
fn html_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
