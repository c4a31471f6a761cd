//! Text a graded program controls (its stderr, the bytes it sent as quoted in a failure block or a
//! target error, its build output) made inert for each report format. A program must not be able
//! to forge a score line, hide the grader's own text (`<!--`), load a remote image, or move the
//! cursor of the terminal that shows its grade.
//!
//! The formats keep such text in one block, marked as the program's, and escape it there: markdown
//! in a code fence longer than any backtick run inside, XML without the characters XML 1.0 forbids,
//! TAP with no line a consumer could read as a test line, terminals without control sequences,
//! HTML (and the SVG inside it) as text with every character that could open markup an entity.

use std::borrow::Cow;

/// Control characters (ANSI escapes, lone carriage returns, C1 codes), bidirectional overrides and
/// the noncharacters XML forbids, written out as visible escapes; newlines and tabs stay.
pub fn visible_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A line ending written CRLF is a line ending; a lone CR could overwrite the line.
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        // Bidirectional overrides reorder what a reader sees (a fake score could read as real).
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        '\u{fffe}' | '\u{ffff}' => true,
        c => c.is_control(),
    }
}

/// A markdown code block holding `text` verbatim: the fence is longer than any run of backticks
/// inside, so nothing in it can close the block, and nothing inside is read as markdown or HTML.
pub fn md_code_block(text: &str) -> String {
    let text = visible_controls(text);
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}text\n{}\n{fence}", text.trim_end_matches('\n'))
}

/// Text for a markdown line or table cell, shown as written: punctuation that can open markdown
/// inside a line is backslash-escaped (`<`, `>` and `&` as HTML entities) and line breaks become
/// spaces, so it cannot start a heading, a link, an image, an HTML comment or a new table cell.
pub fn md_inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in visible_controls(s).chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\t' => out.push(' '),
            // `-`, `.`, `+` and `=` only matter at the start of a line, where this text never is.
            c if c.is_ascii_punctuation() && !matches!(c, '-' | '.' | '+' | '=' | ',' | '/' | '\'' | '"' | ';' | '?' | '%' | '@') => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text valid in an XML 1.0 document: control characters it forbids become visible escapes (the
/// XML writer escapes `<`, `>` and `&`, so `]]>` and `<!--` arrive as text).
pub fn xml_text(s: &str) -> String {
    visible_controls(s).into_owned()
}

/// Text for HTML element content or a quoted attribute value (also inside inline SVG): control
/// characters written out as in a terminal, then `&`, `<`, `>`, `"` and `'` as entities, so no
/// byte a program sent can open a tag, end an attribute or start a character reference.
pub fn html(s: &str) -> String {
    let s = visible_controls(s);
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One line of a TAP YAML block: a line the program wrote that a TAP consumer reading loosely
/// could take for a test line, a plan, a bail out or the end of the block gets a `| ` in front.
pub fn tap_line(l: &str) -> String {
    let l = visible_controls(l);
    let t = l.trim_start();
    let plan = t
        .strip_prefix("1..")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    let significant = ["ok", "not ok", "#", "Bail out!", "TAP version", "pragma", "...", "---"]
        .iter()
        .any(|p| t.starts_with(p));
    if plan || significant {
        format!("| {l}")
    } else {
        l.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_visible() {
        assert_eq!(
            visible_controls("a\x1b[2Jb\r\nc\rd\u{9b}e\u{202e}"),
            "a\\x1b[2Jb\nc\\rd\\x9be\\u{202e}"
        );
        assert!(matches!(visible_controls("plain\ttext\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn fence_outlasts_any_backtick_run() {
        let b = md_code_block("x\n````\n```\n~~~\n");
        assert!(b.starts_with("`````text\n"), "{b}");
        assert!(b.ends_with("\n`````"), "{b}");
    }

    #[test]
    fn inline_markdown_is_inert() {
        assert_eq!(
            md_inline("# ![x](http://e/i.png) <!-- |"),
            "\\# \\!\\[x\\]\\(http\\://e/i.png\\) &lt;\\!-- \\|"
        );
    }

    #[test]
    fn html_text_opens_no_markup() {
        assert_eq!(
            html("<script>alert('x')</script> & \"q\" &amp;"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot; &amp;amp;"
        );
        // Controls are written out before escaping: no raw escape byte or NUL reaches the page.
        assert_eq!(html("a\x1b[2J\x00<b>\u{202e}"), "a\\x1b[2J\\x00&lt;b&gt;\\u{202e}");
        assert_eq!(html("plain text\n"), "plain text\n");
    }

    #[test]
    fn tap_lines_that_look_like_tap_are_marked() {
        assert_eq!(tap_line("  ok 1 - fake"), "|   ok 1 - fake");
        assert_eq!(tap_line("Bail out!"), "| Bail out!");
        assert_eq!(tap_line("1..20"), "| 1..20");
        assert_eq!(tap_line("okay"), "| okay");
        assert_eq!(tap_line("error: x"), "error: x");
    }
}
