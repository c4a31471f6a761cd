//! A YAML tree with a location on every node, built with saphyr (scalars kept as written).

use saphyr::{MarkedYaml, YamlData, YamlLoader};
use saphyr_parser::Parser;

use super::source::Loc;

/// A YAML node and where it starts.
#[derive(Debug, Clone)]
pub struct Node {
    /// The value.
    pub data: Data,
    /// Its location.
    pub loc: Loc,
}

/// A YAML value; scalars keep their text so `send: 1.0` stays `1.0`.
#[derive(Debug, Clone)]
pub enum Data {
    /// `~`, `null` or nothing.
    Null,
    /// Any scalar, as written (quoted tells a string from a keyword).
    Scalar {
        /// The text after YAML unescaping.
        text: String,
        /// Whether it was quoted (so `"closed"` is a line, `closed` a keyword).
        quoted: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Node, Node)>),
}

/// Parses one YAML document; a syntax error comes back with its location.
pub fn parse(text: &str) -> Result<Node, (Loc, String)> {
    let mut parser = Parser::new_from_str(text);
    let mut loader: YamlLoader<MarkedYaml> = YamlLoader::default();
    loader.early_parse(false);
    let scan = |e: &saphyr::ScanError| {
        let m = e.marker();
        (loc(m.line(), m.col(), 1), e.info().to_string())
    };
    parser.load(&mut loader, false).map_err(|e| scan(&e))?;
    if let Some(e) = loader.error() {
        return Err(scan(e));
    }
    let docs = loader.into_documents();
    match docs.into_iter().next() {
        Some(doc) => Ok(convert(&doc)),
        None => Err((loc(1, 0, 1), "the file is empty; a suite starts with 'suite: NAME'".into())),
    }
}

fn loc(line: usize, col0: usize, len: usize) -> Loc {
    Loc {
        line: line as u32,
        col: col0 as u32 + 1,
        len: len as u32,
    }
}

fn convert(y: &MarkedYaml) -> Node {
    let start = y.span.start;
    let one_line = y.span.end.line() == start.line();
    let len = if one_line { y.span.len().max(1) } else { 1 };
    let at = loc(start.line(), start.col(), len);
    let data = match &y.data {
        YamlData::Representation(text, style, _) => {
            let quoted = !matches!(style, saphyr_parser::ScalarStyle::Plain);
            if !quoted && matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL") {
                Data::Null
            } else {
                Data::Scalar {
                    text: text.to_string(),
                    quoted,
                }
            }
        }
        YamlData::Value(v) => Data::Scalar {
            text: format!("{v:?}"),
            quoted: false,
        },
        YamlData::Sequence(items) => Data::Seq(items.iter().map(convert).collect()),
        YamlData::Mapping(map) => Data::Map(map.iter().map(|(k, v)| (convert(k), convert(v))).collect()),
        YamlData::Tagged(_, inner) => return convert(inner),
        YamlData::Alias(_) | YamlData::BadValue => Data::Null,
    };
    Node { data, loc: at }
}

impl Node {
    /// The scalar text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.data {
            Data::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is an unquoted scalar equal to `word`.
    pub fn is_keyword(&self, word: &str) -> bool {
        matches!(&self.data, Data::Scalar { text, quoted: false } if text == word)
    }

    /// A short name of the node's kind for messages.
    pub fn kind(&self) -> &'static str {
        match self.data {
            Data::Null => "nothing",
            Data::Scalar { .. } => "a value",
            Data::Seq(_) => "a list",
            Data::Map(_) => "a mapping",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_scalars_as_written_with_locations() {
        let n = parse("a: 1.0\nb:\n  - \"x\"\n  - ~\n").unwrap();
        let Data::Map(m) = &n.data else { panic!() };
        assert_eq!(m[0].0.as_str(), Some("a"));
        assert_eq!(m[0].1.as_str(), Some("1.0"));
        assert_eq!((m[0].1.loc.line, m[0].1.loc.col), (1, 4));
        let Data::Seq(s) = &m[1].1.data else { panic!() };
        assert!(matches!(&s[0].data, Data::Scalar { quoted: true, .. }));
        assert!(matches!(s[1].data, Data::Null));
        assert_eq!((s[0].loc.line, s[0].loc.col), (3, 5));
    }

    #[test]
    fn syntax_errors_have_locations() {
        let (at, msg) = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(at.line >= 1, "{msg}");
        let (at, msg) = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(at.line, 2, "{msg}");
    }
}
