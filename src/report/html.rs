//! `--report html:PATH`: one self-contained page (inline CSS, no script, nothing fetched) with the
//! summary, every case with its verdict and points, the failure block the console prints, and the
//! dialogue drawn as a ladder diagram (`ladder.rs`) above its transcript.
//!
//! It renders a [`Grade`], the shape every grade format reads; `wirecheck run` builds one from its
//! results (`grade::score::from_run`). A case a student may not see in detail
//! (`formats::shows_details`) shows its name, status and points only, as in the other formats.
//! Everything the program controls (its replies, its stderr, the build output) goes through
//! [`escape::html`]; the page's Content-Security-Policy forbids scripts and every fetch besides,
//! so even a missed escape could neither run code nor load anything.

use super::escape::html;
use super::ladder::{self, FailureMark};
use crate::grade::formats::{redacted_line, shows_details, Audience};
use crate::grade::score::{fmt_points, Grade, GradedCase, Status};
use crate::run::CaseResult;

/// The page's stylesheet: the summary, the case list, failure blocks and the ladder's classes.
const STYLE: &str = r#"
:root { --pass: #1a7f37; --fail: #c62828; --error: #b26a00; --na: #0b7285; --muted: #666; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; padding: 1em 2em; max-width: 1200px; color: #1b1b1b; }
h1 { font-size: 1.5em; margin: .2em 0; } h2 { font-size: 1.1em; margin: 0 0 .4em; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12.5px; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; padding: .6em .8em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; margin: .3em 0; }
pre.program { border-left: 4px solid #999; }
.target { color: var(--muted); margin: 0 0 .8em; }
.tiles { display: flex; gap: .6em; flex-wrap: wrap; margin: .5em 0; }
.tile { border-radius: 6px; padding: .35em .8em; background: #eee; }
.tile b { font-size: 1.25em; }
.tile.passed { background: #e6f4ea; color: var(--pass); } .tile.failed { background: #fdecea; color: var(--fail); }
.tile.error, .tile.flaky { background: #fff4e0; color: var(--error); } .tile.na { background: #e3f4f7; color: var(--na); }
.points b { font-size: 1.2em; }
.provenance { color: var(--muted); font-size: .85em; }
table.index { border-collapse: collapse; margin: 1em 0; }
table.index td, table.index th { padding: .2em .8em; border-bottom: 1px solid #eee; text-align: left; }
table.index td.num { text-align: right; }
.badge { display: inline-block; min-width: 4.2em; text-align: center; border-radius: 4px; padding: 0 .4em; color: #fff; font-size: .85em; font-weight: 600; }
.passed .badge, .badge.passed { background: var(--pass); } .failed .badge, .badge.failed { background: var(--fail); }
.error .badge, .badge.error, .flaky .badge, .badge.flaky { background: var(--error); }
.na .badge, .badge.na { background: var(--na); } .notrun .badge, .badge.notrun { background: #888; }
section.case { border: 1px solid #ddd; border-left: 6px solid #888; border-radius: 6px; padding: .8em 1em; margin: 1em 0; }
section.case.passed { border-left-color: var(--pass); } section.case.failed { border-left-color: var(--fail); }
section.case.error, section.case.flaky { border-left-color: var(--error); } section.case.na { border-left-color: var(--na); }
.pts, .dur { color: var(--muted); font-weight: normal; font-size: .9em; margin-left: .6em; }
.case-title { margin: 0 0 .3em; } .rfc, .tags { color: var(--muted); margin: 0 0 .3em; font-size: .9em; }
dl.failure { display: grid; grid-template-columns: max-content 1fr; gap: .15em .8em; margin: .6em 0; }
dl.failure dt { font-weight: 600; } dl.failure dd { margin: 0; min-width: 0; }
dl.failure dd pre { margin: 0; }
.expected { color: var(--pass); } .got { color: var(--fail); }
pre.diff span { display: inline-block; width: 100%; } pre.diff .del { color: var(--fail); background: #fdecea; } pre.diff .ins { color: var(--pass); background: #e6f4ea; }
.warning { color: var(--error); }
.redacted { color: var(--muted); font-style: italic; }
details { margin: .4em 0; } summary { cursor: pointer; color: #0b4f9c; }
figure.dialogue { margin: .4em 0; overflow-x: auto; }
figure.dialogue figcaption { color: var(--muted); font-size: .85em; }
svg.ladder { font: 11px ui-monospace, "DejaVu Sans Mono", Menlo, monospace; background: #fff; }
svg.ladder text { fill: #1b1b1b; }
svg.ladder text.conn { font-weight: 600; } svg.ladder text.end { font-weight: 600; font-size: 12px; }
svg.ladder text.end-sub, svg.ladder text.time { fill: var(--muted); }
svg.ladder line.life { stroke: #9aa0a6; stroke-width: 1.5; }
svg.ladder .arrow line { stroke-width: 1.6; }
svg.ladder .arrow text, svg.ladder .mark text, svg.ladder .failure-mark text { paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
svg.ladder .arrow.c2s line { stroke: #1f4e9c; } svg.ladder .arrow.c2s polygon { fill: #1f4e9c; }
svg.ladder .arrow.s2c line { stroke: #333; } svg.ladder .arrow.s2c polygon { fill: #333; }
svg.ladder .arrow.close line { stroke: #999; stroke-dasharray: 4 3; } svg.ladder .arrow.close polygon { fill: #999; } svg.ladder .arrow.close text { fill: #777; }
svg.ladder .arrow.bad line { stroke: #c05600; } svg.ladder .arrow.bad polygon, svg.ladder .arrow.bad text { fill: #c05600; }
svg.ladder .arrow.info line { stroke: #6a737d; stroke-dasharray: 2 2; } svg.ladder .arrow.info polygon { fill: #6a737d; }
svg.ladder .mark line { stroke: #2da44e; stroke-dasharray: 2 3; } svg.ladder .mark circle { fill: #2da44e; } svg.ladder .mark text { fill: #2da44e; }
svg.ladder .mark.reset line, svg.ladder .mark.refused line { stroke: var(--fail); stroke-dasharray: none; }
svg.ladder .mark.reset circle, svg.ladder .mark.refused circle, svg.ladder .mark.reset text, svg.ladder .mark.refused text { fill: var(--fail); }
svg.ladder .mark.note line { stroke: none; } svg.ladder .mark.note circle { fill: none; } svg.ladder .mark.note text { fill: var(--muted); font-style: italic; }
svg.ladder .failure-mark line { stroke: var(--fail); stroke-width: 2; stroke-dasharray: 7 4; }
svg.ladder .failure-mark text { fill: var(--fail); font-weight: 700; }
svg.ladder .elided text, svg.ladder text.elided { fill: var(--muted); font-style: italic; }
"#;

/// The report's bytes.
pub fn render(g: &Grade, audience: Audience) -> Vec<u8> {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // No script may run and nothing may be fetched, whatever the page holds; styles are inline.
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!("<meta name=\"generator\" content=\"wirecheck {}\">\n", html(g.version)));
    out.push_str(&format!("<title>{} — {}</title>\n", html(&g.title), html(&g.submission)));
    out.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    out.push_str(&format!(
        "<header>\n<h1>{}</h1>\n<p class=\"target\">{}</p>\n</header>\n",
        html(&g.title),
        html(&g.submission)
    ));
    summary(&mut out, g);
    index(&mut out, g);
    out.push_str("<main>\n");
    for (i, c) in g.cases.iter().enumerate() {
        case(&mut out, i, c, shows_details(c, audience));
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out.into_bytes()
}

/// CSS class and badge word of a status.
fn status_class(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Passed => ("passed", "PASS"),
        Status::Failed => ("failed", "FAIL"),
        Status::Error => ("error", "ERROR"),
        Status::Flaky => ("flaky", "FLAKY"),
        Status::NotRun => ("notrun", "NOT RUN"),
        Status::NotApplicable => ("na", "N/A"),
    }
}

fn summary(out: &mut String, g: &Grade) {
    let count = |s: Status| g.cases.iter().filter(|c| c.status == s).count();
    out.push_str("<section id=\"summary\" class=\"summary\">\n<div class=\"tiles\">");
    for (status, word) in [
        (Status::Passed, "passed"),
        (Status::Failed, "failed"),
        (Status::Error, "errors"),
        (Status::Flaky, "flaky"),
        (Status::NotApplicable, "n/a"),
        (Status::NotRun, "not run"),
    ] {
        let n = count(status);
        // Passed and failed always show, so a summary reads the same from run to run.
        if n > 0 || matches!(status, Status::Passed | Status::Failed) {
            out.push_str(&format!("<span class=\"tile {}\"><b>{n}</b> {word}</span>", status_class(status).0));
        }
    }
    out.push_str("</div>\n");
    out.push_str(&format!(
        "<p class=\"points\"><b>{}</b> of {} points · {} case{} · {:.1} s</p>\n",
        fmt_points(g.score()),
        fmt_points(g.max_score()),
        g.cases.len(),
        if g.cases.len() == 1 { "" } else { "s" },
        g.duration.as_secs_f64()
    ));
    if !g.build.ok {
        out.push_str(&format!(
            "<p class=\"got\"><b>The build failed, so no case ran:</b> {}</p>\n<p>Build output (the program's, verbatim):</p>\n<pre class=\"program\">{}</pre>\n",
            html(g.build.error.as_deref().unwrap_or("unknown error")),
            html(&g.build.output)
        ));
    }
    if !g.notes.is_empty() {
        out.push_str("<ul class=\"notes\">");
        for n in &g.notes {
            out.push_str(&format!("<li>{}</li>", html(n)));
        }
        out.push_str("</ul>\n");
    }
    for e in &g.target_errors {
        out.push_str(&format!(
            "<p class=\"got\"><b>The program could not be tested</b> (its output quoted verbatim):</p>\n<pre class=\"program\">{}</pre>\n",
            html(e)
        ));
    }
    if g.budget_exhausted {
        out.push_str("<p class=\"warning\">The time budget ran out; the cases not reached score 0.</p>\n");
    }
    let mut prov = Vec::new();
    // A run draws no seed and has no assignment file: only a grade shows them.
    if !g.assignment_sha256.is_empty() {
        prov.push(format!("seed {}", g.seed));
    }
    prov.push(format!("suites sha256 {}", html(&g.suites_sha256)));
    if !g.assignment_sha256.is_empty() {
        prov.push(format!("assignment sha256 {}", html(&g.assignment_sha256)));
    }
    prov.push(format!("wirecheck {}", html(g.version)));
    out.push_str(&format!("<p class=\"provenance\">{}</p>\n</section>\n", prov.join(" · ")));
}

fn index(out: &mut String, g: &Grade) {
    out.push_str("<nav>\n<table class=\"index\">\n<thead><tr><th>#</th><th>case</th><th>status</th><th>points</th><th>time</th></tr></thead>\n<tbody>\n");
    for (i, c) in g.cases.iter().enumerate() {
        let (class, word) = status_class(c.status);
        out.push_str(&format!(
            "<tr class=\"{class}\"><td>{}</td><td><a href=\"#case-{}\"><code>{}</code></a></td><td><span class=\"badge\">{word}</span></td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
            html(&c.number),
            i + 1,
            html(&c.name),
            points(c),
            duration(c),
        ));
    }
    out.push_str("</tbody>\n</table>\n</nav>\n");
}

/// A case's points: `score/max pts`, or what a case that does not apply would have been worth.
fn points(c: &GradedCase) -> String {
    match c.status {
        Status::NotApplicable => format!("n/a: {} pts not counted", fmt_points(c.worth)),
        _ => format!("{}/{} pts", fmt_points(c.score), fmt_points(c.max_score)),
    }
}

fn duration(c: &GradedCase) -> String {
    match c.attempts {
        0 => String::new(),
        _ => format!("{:.0} ms", c.duration.as_secs_f64() * 1000.0),
    }
}

fn case(out: &mut String, i: usize, c: &GradedCase, show: bool) {
    let (class, word) = status_class(c.status);
    out.push_str(&format!(
        "<section class=\"case {class}\" id=\"case-{}\">\n<h2><span class=\"badge\">{word}</span> <code>{}</code><span class=\"pts\">{}</span><span class=\"dur\">{}</span></h2>\n",
        i + 1,
        html(&c.name),
        points(c),
        duration(c),
    ));
    if !show {
        // Name, status and points only: what a hidden case checks and saw stays hidden.
        out.push_str(&format!("<p class=\"redacted\">{}</p>\n</section>\n", html(&redacted_line(c))));
        return;
    }
    out.push_str(&format!("<p class=\"case-title\">{}</p>\n", html(&c.title)));
    if let Some(rfc) = &c.rfc {
        out.push_str(&format!("<p class=\"rfc\">checks: {}</p>\n", html(rfc)));
    }
    if !c.tags.is_empty() {
        out.push_str(&format!("<p class=\"tags\">tags: {}</p>\n", html(&c.tags.join(", "))));
    }
    let failed = c.failed.as_deref();
    match (failed, c.status) {
        (_, Status::Passed) => {}
        (Some(r), _) => failure_block(out, c, r),
        (None, _) => {
            if let Some(why) = &c.reason {
                out.push_str(&format!("<dl class=\"failure\"><dt>reason</dt><dd>{}</dd></dl>\n", html(why)));
            }
        }
    }
    for w in &c.warnings {
        out.push_str(&format!("<p class=\"warning\">warning (SHOULD): {}</p>\n", html(w)));
    }
    // The attempt that did not pass, when there is one (a flaky case's failure); else the last.
    if let Some(r) = failed.or(c.result.as_deref()) {
        dialogue(out, r, c.status != Status::Passed);
    }
    out.push_str("</section>\n");
}

/// The facts the console's failure block prints, as a definition list.
fn failure_block(out: &mut String, c: &GradedCase, r: &CaseResult) {
    let Some(f) = &r.failure else {
        if let Some(why) = &c.reason {
            out.push_str(&format!("<dl class=\"failure\"><dt>reason</dt><dd>{}</dd></dl>\n", html(why)));
        }
        return;
    };
    let file = r.suite.source.path.display().to_string();
    let mut dl = String::from("<dl class=\"failure\">\n");
    let mut item = |term: &str, body: String| dl.push_str(&format!("<dt>{term}</dt><dd>{body}</dd>\n"));
    if let Some(premise) = r.premise() {
        item("n/a", format!("the program does not offer: {} (costs no points)", html(premise)));
    } else if c.required && f.premise.is_some() {
        item("required", html(c.reason.as_deref().unwrap_or_default()));
    } else if c.status == Status::Flaky {
        item("flaky", html(c.reason.as_deref().unwrap_or_default()));
    }
    if let Some(loc) = f.loc {
        let mut body = format!(
            "<code>{}:{}:{}</code> ({})",
            html(&file),
            loc.line,
            loc.col,
            html(f.keyword.unwrap_or("step"))
        );
        if let Some(line) = r.suite.source.text.lines().nth(loc.line.saturating_sub(1) as usize) {
            body.push_str(&format!("<pre>{}</pre>", html(line.trim())));
        }
        item("step", body);
    }
    if let Some(at) = f.at.as_deref().copied() {
        let mut body = format!("<code>{}:{}:{}</code>", html(&file), at.line, at.col);
        if let Some(snip) = crate::syntax::snippet(&r.suite.source, at, Some("this check failed")) {
            body.push_str(&format!("<pre>{}</pre>", html(&snip)));
        }
        item("at", body);
    }
    let case = r.case();
    if let Some(rule) = &f.rule {
        item("checks", html(rule));
    } else if let Some(rfc) = &case.rfc {
        item("checks", format!("{} — {}", html(rfc), html(&case.title)));
    }
    item(if r.premise().is_some() { "because" } else { "error" }, html(&f.message));
    for h in &f.hints {
        item("hint", html(h));
    }
    match (&f.expected, &f.got) {
        (Some(e), Some(g)) if e.contains('\n') || g.contains('\n') => {
            let mut diff = String::new();
            for change in similar::TextDiff::from_lines(e.as_str(), g.as_str()).iter_all_changes() {
                let (sign, class) = match change.tag() {
                    similar::ChangeTag::Delete => ("-", "del"),
                    similar::ChangeTag::Insert => ("+", "ins"),
                    similar::ChangeTag::Equal => (" ", "same"),
                };
                diff.push_str(&format!(
                    "<span class=\"{class}\">{sign} {}</span>\n",
                    html(change.value().trim_end_matches('\n'))
                ));
            }
            item(
                "diff",
                format!("<span class=\"expected\">- expected</span> <span class=\"got\">+ got</span><pre class=\"diff\">{diff}</pre>"),
            );
        }
        (e, g) => {
            if let Some(e) = e {
                item("expected", format!("<code class=\"expected\">{}</code>", html(e)));
            }
            if let Some(g) = g {
                item("got", format!("<code class=\"got\">{}</code>", html(g)));
            }
        }
    }
    dl.push_str("</dl>\n");
    out.push_str(&dl);
    if let Some(tail) = &r.stderr_tail {
        out.push_str(&format!(
            "<p><b>program output</b> (stderr, last lines, verbatim):</p>\n<pre class=\"program\">{}</pre>\n",
            html(tail)
        ));
    }
}

/// The ladder diagram (open for a case that did not pass) and the transcript under it.
fn dialogue(out: &mut String, r: &CaseResult, open: bool) {
    let Some(proto) = crate::proto::find(&r.suite.protocol) else {
        return;
    };
    if r.dialogue.events.is_empty() {
        return;
    }
    let mark = r.failure.as_ref().map(|f| FailureMark {
        t_us: f.t_us,
        label: format!(
            "{}{}",
            if r.premise().is_some() { "n/a: " } else { "failed: " },
            match f.loc {
                Some(l) => format!(
                    "{} at {}:{}:{}",
                    f.keyword.unwrap_or("step"),
                    r.suite.source.path.display(),
                    l.line,
                    l.col
                ),
                None => "the case".to_string(),
            }
        ),
        text: f.message.clone(),
    });
    let rows = ladder::rows(&r.dialogue, proto, mark.as_ref());
    let total = rows.len();
    let (rows, left_out) = ladder::cap(rows, ladder::MAX_ROWS);
    let svg = ladder::draw(&r.dialogue, &rows);
    out.push_str(&format!(
        "<details class=\"ladder\"{}><summary>dialogue: {} connection{}, {total} events{}</summary>\n<figure class=\"dialogue\">\n{svg}\n<figcaption>time runs down; hover an arrow for the whole message{}</figcaption>\n</figure>\n</details>\n",
        if open { " open" } else { "" },
        r.dialogue.connections.len(),
        if r.dialogue.connections.len() == 1 { "" } else { "s" },
        if left_out > 0 { format!(", {left_out} not drawn") } else { String::new() },
        if left_out > 0 { "; the transcript below has every event" } else { "" },
    ));
    if let (Some(chart), Some(table)) = (super::swarm::svg(&r.dialogue), super::swarm::table(&r.dialogue)) {
        out.push_str(&format!(
            "<details class=\"swarm\"{}><summary>swarm: which peer sent which piece, and whom the program unchoked</summary>\n<figure class=\"dialogue\">\n{chart}\n<figcaption>a tick per block a peer sent; green while the program had that peer unchoked</figcaption>\n</figure>\n<pre>{}</pre>\n</details>\n",
            if open { " open" } else { "" },
            html(&table)
        ));
    }
    if let (Some(line), Some(chart), Some(table)) = (
        super::figures::line(&r.dialogue),
        super::figures::svg(&r.dialogue),
        super::figures::table(&r.dialogue),
    ) {
        out.push_str(&format!(
            "<details class=\"figures\" open><summary>figures: {}</summary>\n<figure class=\"dialogue\">\n{chart}\n<figcaption>each line steps at the moments the actor measured it</figcaption>\n</figure>\n<pre>{}</pre>\n</details>\n",
            html(&line),
            html(&table)
        ));
    }
    let transcript = r.transcript(true);
    if !transcript.is_empty() {
        out.push_str(&format!(
            "<details class=\"transcript\"><summary>transcript</summary>\n<pre>{}</pre>\n</details>\n",
            html(&transcript)
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::dialogue::{ConnInfo, Dialogue, Event, EventKind};
    use crate::grade::assignment::Visibility;
    use crate::proto::Direction::{ClientToServer as C2S, ServerToClient as S2C};
    use crate::run::{Failure, Summary, Verdict};

    const SUITE: &str = "suite: t\nprotocol: line\nreference: tcp-upper\ncases:\n  - id: upper\n    title: replies uppercased\n    \
                         points: 2\n    steps:\n      - connect: c\n      - send: hi\n      - expect: HI\n  - id: other\n    title: secret title\n    \
                         steps:\n      - connect: c\n      - send: yo\n      - expect: YO\n";

    /// A run of two cases: `upper` failed against a program that answered with markup, `other` passed.
    fn sample() -> Grade {
        let suite = Arc::new(crate::suite::load_str(Path::new("suites/t.yaml"), SUITE.into()).unwrap());
        let conn = ConnInfo {
            name: "c".into(),
            harness_is_client: true,
            ..ConnInfo::test_tcp(false)
        };
        let data = |t_us, dir, b: &str| Event {
            t_us,
            conn: 0,
            kind: EventKind::Data {
                dir,
                bytes: b.as_bytes().to_vec(),
            },
        };
        let failed = CaseResult {
            suite: suite.clone(),
            index: 0,
            verdict: Verdict::Fail,
            points: 0.0,
            duration: Duration::from_millis(12),
            failure: Some(Failure {
                message: "expected \"HI\", got <script>alert(1)</script>".into(),
                loc: Some(suite.cases[0].steps[2].loc),
                keyword: Some("expect"),
                expected: Some("HI".into()),
                got: Some("<script>alert(1)</script>".into()),
                t_us: Some(500),
                ..Failure::default()
            }),
            dialogue: Dialogue {
                connections: vec![conn.clone()],
                events: vec![
                    Event {
                        t_us: 0,
                        conn: 0,
                        kind: EventKind::Open,
                    },
                    data(100, C2S, "hi\n"),
                    data(400, S2C, "<script>alert(1)</script>\n"),
                    Event {
                        t_us: 600,
                        conn: 0,
                        kind: EventKind::Closed { dir: C2S },
                    },
                ],
            },
            stderr_tail: Some("Traceback <img src=x onerror=alert(2)>\x1b[2J".into()),
            warnings: Vec::new(),
        };
        let passed = CaseResult {
            index: 1,
            verdict: Verdict::Pass,
            points: 1.0,
            failure: None,
            stderr_tail: None,
            dialogue: Dialogue {
                connections: vec![conn],
                events: vec![data(5, C2S, "yo\n"), data(9, S2C, "YO\n")],
            },
            ..failed.clone()
        };
        let summary = Summary {
            passed: 1,
            failed: 1,
            points: 1.0,
            max_points: 3.0,
            duration_ms: 40,
            ..Summary::default()
        };
        crate::grade::score::from_run(
            &[Arc::new(failed), Arc::new(passed)],
            &summary,
            "wirecheck run: t",
            "python3 x.py {port}",
        )
    }

    fn page(g: &Grade, audience: Audience) -> String {
        String::from_utf8(render(g, audience)).unwrap()
    }

    #[test]
    fn the_page_is_self_contained_and_nothing_the_program_sent_is_markup() {
        let p = page(&sample(), Audience::Staff);
        assert!(p.starts_with("<!DOCTYPE html>"));
        assert!(p.contains("default-src 'none'"));
        assert!(!p.contains("<script"), "no script, and none from the program");
        assert!(!p.contains("<img"), "{p}");
        for fetch in ["src=\"", "href=\"http", "url(", "@import"] {
            assert!(!p.contains(fetch), "{fetch}");
        }
        assert!(p.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            p.contains("&lt;img src=x onerror=alert(2)&gt;\\x1b[2J"),
            "stderr, escaped and controls shown"
        );
        assert!(!p.contains('\x1b'), "no raw control bytes");
    }

    #[test]
    fn the_summary_and_every_case_are_there_with_the_failure_block_and_ladders() {
        let p = page(&sample(), Audience::Staff);
        assert!(p.contains("<b>1</b> passed") && p.contains("<b>1</b> failed"), "{p}");
        assert!(p.contains("<b>1</b> of 3 points"), "{p}");
        assert!(p.contains("<code>t::upper</code>") && p.contains("<code>t::other</code>"));
        assert!(p.contains("<code>suites/t.yaml:11:9</code> (expect)"), "{p}");
        assert!(p.contains("<pre>- expect: HI</pre>"), "the step's line: {p}");
        assert!(p.contains("<code class=\"expected\">HI</code>"));
        // Two ladders: the failed case's with the failure marked, the passed one's without.
        assert_eq!(p.matches("<svg class=\"ladder\"").count(), 2);
        assert_eq!(p.matches("class=\"failure-mark\"").count(), 1);
        assert!(p.contains("failed: expect at suites/t.yaml:11:9"), "{p}");
        assert!(p.contains("<details class=\"ladder\" open>"), "the failed case's ladder is open");
        assert_eq!(p.matches("<g class=\"arrow ").count(), 5, "3 + 2 arrows");
    }

    #[test]
    fn hidden_cases_show_students_their_name_status_and_points_only() {
        let mut g = sample();
        for c in &mut g.cases {
            c.visibility = Visibility::Hidden;
        }
        let p = page(&g, Audience::Student);
        assert!(p.contains("<code>t::upper</code>") && p.contains("0/2 pts"), "{p}");
        assert!(p.contains("hidden case failed") && p.contains("hidden case passed"), "{p}");
        for secret in [
            "<svg",
            "alert",
            "secret title",
            "replies uppercased",
            "expect:",
            "transcript",
            "Traceback",
        ] {
            assert!(!p.contains(secret), "{secret} shows: {p}");
        }
        // Staff see it all.
        assert!(page(&g, Audience::Staff).contains("secret title"));
    }
}
