//! Errors in suite files, rendered `path:line:col: message` with the source line and a caret.

use std::fmt;
use std::sync::Arc;

use super::source::{Loc, SourceFile};

/// One problem in a suite file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// The file.
    pub source: Arc<SourceFile>,
    /// Where.
    pub loc: Loc,
    /// What is wrong.
    pub message: String,
    /// What to do about it ("did you mean 'expect'?").
    pub help: Option<String>,
}

/// All problems found in one or more suite files (loading reports every one it can).
#[derive(Debug, thiserror::Error)]
pub struct SuiteErrors(pub Vec<Diagnostic>);

/// The most problems shown at once: a generated file can have one per case, and each snippet
/// looks its line up in the file.
const MAX_SHOWN: usize = 50;

impl fmt::Display for SuiteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().take(MAX_SHOWN).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() > MAX_SHOWN {
            writeln!(
                f,
                "\n... and {} more errors not shown; fix these first and load again",
                self.0.len() - MAX_SHOWN
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.source.path.display();
        let Loc { line, col, .. } = self.loc;
        if line == 0 {
            // About the whole file (unreadable, too large): there is no line to point at.
            writeln!(f, "{path}: error: {}", self.message)?;
        } else {
            writeln!(f, "{path}:{line}:{col}: error: {}", self.message)?;
        }
        match snippet(&self.source, self.loc, self.help.as_deref()) {
            Some(s) => f.write_str(&s),
            None => match &self.help {
                Some(h) => writeln!(f, "  help: {h}"),
                None => Ok(()),
            },
        }
    }
}

/// The most characters of a source line a snippet shows.
const MAX_SNIPPET: usize = 120;

/// The source line at `loc` with a gutter and carets under the marked text (and `note` after
/// them): the one rendering of a place in a suite file, for load errors and run failures alike.
pub fn snippet(source: &SourceFile, loc: Loc, note: Option<&str>) -> Option<String> {
    let Loc { line, col, len } = loc;
    let text = source.text.lines().nth(line.checked_sub(1)? as usize)?;
    let gutter = line.to_string().len();
    let text = text.replace('\t', " ");
    // A generated or minified file can have a line of megabytes: show the part around the mark.
    let chars: Vec<char> = text.chars().collect();
    let at = (col.saturating_sub(1) as usize).min(chars.len());
    let (text, at) = if chars.len() > MAX_SNIPPET {
        let start = at.saturating_sub(MAX_SNIPPET / 2);
        let end = (start + MAX_SNIPPET).min(chars.len());
        let lead = if start > 0 { "…" } else { "" };
        let trail = if end < chars.len() { "…" } else { "" };
        let part: String = chars[start..end].iter().collect();
        (format!("{lead}{part}{trail}"), at - start + lead.chars().count())
    } else {
        (text, at)
    };
    let pad = " ".repeat(at);
    let carets = "^".repeat(len.max(1) as usize);
    let tail = note.map(|n| format!(" {n}")).unwrap_or_default();
    Some(format!("{:gutter$} |\n{line} | {text}\n{:gutter$} | {pad}{carets}{tail}\n", "", ""))
}

/// The closest of `known` to `got`, phrased as a suggestion, if any is close enough.
pub fn did_you_mean<'a>(got: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let best = known
        .into_iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(got, k), k))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    (best.0 >= 0.5).then(|| format!("did you mean '{}'?", best.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_caret_and_help() {
        let source = Arc::new(SourceFile {
            path: "suites/x.yaml".into(),
            text: "cases:\n  - steps:\n      - expcet: HI\n".into(),
        });
        let d = Diagnostic {
            source,
            loc: Loc { line: 3, col: 9, len: 6 },
            message: "unknown step 'expcet'".into(),
            help: did_you_mean("expcet", ["send", "expect", "connect"]),
        };
        let text = d.to_string();
        assert!(text.starts_with("suites/x.yaml:3:9: error: unknown step 'expcet'\n"), "{text}");
        assert!(text.contains("3 |       - expcet: HI\n"), "{text}");
        assert!(text.contains("  |         ^^^^^^ did you mean 'expect'?"), "{text}");
    }

    #[test]
    fn no_suggestion_for_unrelated_words() {
        assert_eq!(did_you_mean("zzzzzz", ["send", "expect"]), None);
    }
}
