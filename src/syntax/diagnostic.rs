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

impl fmt::Display for SuiteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.source.path.display();
        let Loc { line, col, len } = self.loc;
        writeln!(f, "{path}:{line}:{col}: error: {}", self.message)?;
        if let Some(text) = self.source.text.lines().nth(line.saturating_sub(1) as usize) {
            let gutter = line.to_string().len();
            let text = text.replace('\t', " ");
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{line} | {text}")?;
            let pad = " ".repeat(col.saturating_sub(1) as usize);
            let carets = "^".repeat(len.max(1) as usize);
            match &self.help {
                Some(h) => writeln!(f, "{:gutter$} | {pad}{carets} {h}", "")?,
                None => writeln!(f, "{:gutter$} | {pad}{carets}", "")?,
            }
        } else if let Some(h) = &self.help {
            writeln!(f, "  help: {h}")?;
        }
        Ok(())
    }
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
