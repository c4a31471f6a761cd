//! TAP version 14: `ok`/`not ok` per case with points in the description, a YAML block with the
//! reason (redacted for hidden cases), `# SKIP` for cases that did not run.

use super::super::score::{fmt_points, Grade, Status};
use super::{case_text, shows_details, tap_line, terminal_text, Audience};

/// The report's bytes.
pub fn render(g: &Grade, audience: Audience) -> Vec<u8> {
    let mut out = String::from("TAP version 14\n");
    out.push_str(&format!("1..{}\n", g.cases.len()));
    out.push_str(&format!(
        "# {}: {} of {} points; seed {}; suites sha256 {}\n",
        g.title,
        fmt_points(g.score()),
        fmt_points(g.max_score()),
        g.seed,
        g.suites_sha256
    ));
    if !g.build.ok {
        out.push_str(&format!(
            "# build failed: {}\n",
            terminal_text(g.build.error.as_deref().unwrap_or("")).replace('\n', " ")
        ));
        // Comment lines: whatever the build printed, a TAP consumer skips them.
        out.push_str("# build output (the program's, verbatim):\n");
        for l in terminal_text(&g.build.output).lines() {
            out.push_str(&format!("#   {l}\n"));
        }
    }
    for (i, c) in g.cases.iter().enumerate() {
        let n = i + 1;
        // TAP descriptions end at '#': keep names free of it.
        let desc = format!(
            "{} ({}/{} pts)",
            c.name.replace('#', "_"),
            fmt_points(c.score),
            fmt_points(c.max_score)
        );
        match c.status {
            Status::Passed => out.push_str(&format!("ok {n} - {desc}\n")),
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
