//! TAP version 13 (what Perl's `prove` and most consumers read; 14 adds nothing used here):
//! `ok`/`not ok` per case with points in the description, a YAML block with the reason
//! (redacted for hidden cases), `# SKIP` for cases that did not run, and a failed build as a
//! test of its own that fails, with the build's output.

use super::super::score::{fmt_points, Grade, Status};
use super::{case_text, shows_details, tap_line, terminal_text, Audience};

/// The report's bytes.
pub fn render(g: &Grade, audience: Audience) -> Vec<u8> {
    let mut out = String::from("TAP version 13\n");
    // A build that failed is a test that failed: skipped cases alone would read as a pass.
    let build_test = usize::from(!g.build.ok);
    out.push_str(&format!("1..{}\n", g.cases.len() + build_test));
    out.push_str(&format!(
        "# {}: {} of {} points; seed {}; suites sha256 {}\n",
        g.title,
        fmt_points(g.score()),
        fmt_points(g.max_score()),
        g.seed,
        g.suites_sha256
    ));
    if !g.build.ok {
        out.push_str("not ok 1 - build\n  ---\n  status: build failed\n  message: |\n");
        out.push_str(&format!(
            "    {}\n",
            tap_line(&terminal_text(g.build.error.as_deref().unwrap_or("the build failed")).replace('\n', " "))
        ));
        // What the build printed, inside the YAML block, where a TAP consumer does not read it as TAP.
        out.push_str("  output: |\n");
        for l in terminal_text(&g.build.output).lines() {
            out.push_str(&format!("    {}\n", tap_line(l)));
        }
        out.push_str("  ...\n");
    }
    for (i, c) in g.cases.iter().enumerate() {
        let n = i + 1 + build_test;
        // TAP descriptions end at '#': keep names free of it.
        let desc = format!(
            "{} ({}/{} pts)",
            c.name.replace('#', "_"),
            fmt_points(c.score),
            fmt_points(c.max_score)
        );
        match c.status {
            Status::Passed => {
                out.push_str(&format!("ok {n} - {desc}\n"));
                // What an actor measured (a DASH player's QoE) as a TAP comment.
                if let Some(line) = super::figures_line(c, audience) {
                    out.push_str(&format!("# figures: {}\n", tap_line(&line)));
                }
            }
            // Not a failure: ok, skipped with why (the premise, unless the case is hidden).
            Status::NotApplicable => {
                let why = if shows_details(c, audience) {
                    terminal_text(c.reason.as_deref().unwrap_or("n/a")).replace('\n', " ")
                } else {
                    super::redacted_line(c)
                };
                out.push_str(&format!("ok {n} - {desc} # SKIP {}\n", why.replace('#', "_")));
            }
            Status::NotRun => out.push_str(&format!(
                "not ok {n} - {desc} # SKIP {}\n",
                terminal_text(c.reason.as_deref().unwrap_or("not run")).replace('\n', " ")
            )),
            st => {
                out.push_str(&format!("not ok {n} - {desc}\n"));
                out.push_str("  ---\n");
                out.push_str(&format!("  status: {}\n", st.as_str()));
                out.push_str("  message: |\n");
                for l in case_text(c, shows_details(c, audience)).lines() {
                    out.push_str(&format!("    {}\n", tap_line(l)));
                }
                out.push_str("  ...\n");
            }
        }
    }
    out.into_bytes()
}
