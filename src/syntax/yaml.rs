//! A YAML tree with a location on every node, built from saphyr's parser events (scalars kept as
//! written).
//!
//! The tree is built here, with an explicit stack, rather than by saphyr's loader: nesting is
//! checked against [`MAX_DEPTH`] as each collection opens, so a file nested thousands of levels
//! deep is a located error before anything recursive (conversion, dropping the tree, the suite
//! loader) could overflow the stack, and no second tree of the whole file is ever held.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span};

use super::source::Loc;

/// How deeply collections may nest; real suites and assignments use fewer than ten levels.
pub const MAX_DEPTH: usize = 128;

/// How many nodes aliases (`*name`) may copy in all, so a few lines cannot expand exponentially.
pub const MAX_ALIAS_NODES: usize = 100_000;

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

/// A collection being filled while its events arrive.
struct Open {
    start: Marker,
    anchor: usize,
    kind: OpenKind,
    /// Levels below this collection so far (0: only scalars), for anchors that aliases copy.
    height: usize,
    /// Nodes in it so far, itself included, for [`MAX_ALIAS_NODES`].
    size: usize,
}

enum OpenKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        seen: HashSet<(String, bool)>,
    },
}

/// A finished node with what an alias to it would add.
struct Built {
    node: Node,
    height: usize,
    size: usize,
}

/// Parses one YAML document; a syntax error, a duplicated key or nesting deeper than
/// [`MAX_DEPTH`] comes back with its location.
pub fn parse(text: &str) -> Result<Node, (Loc, String)> {
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: HashMap<usize, Built> = HashMap::new();
    let mut copied = 0usize;
    let mut doc: Option<Node> = None;
    let mut started = false;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| {
            let m = e.marker();
            // The scanner counts flow levels (`[[[`) in a byte and reads ahead of the events.
            let info = match e.info() {
                "recursion limit exceeded" => too_deep(),
                info => info.to_string(),
            };
            (loc(m.line(), m.col(), 1), info)
        })?;
        let built = match ev {
            Event::StreamStart | Event::Nothing => continue,
            Event::DocumentStart(_) => {
                started = true;
                continue;
            }
            // Only the first document counts, as before: what follows it is not read.
            Event::DocumentEnd | Event::StreamEnd => break,
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err((loc(span.start.line(), span.start.col(), 1), too_deep()));
                }
                let kind = if matches!(ev, Event::SequenceStart(..)) {
                    OpenKind::Seq(Vec::new())
                } else {
                    OpenKind::Map {
                        entries: Vec::new(),
                        key: None,
                        seen: HashSet::new(),
                    }
                };
                stack.push(Open {
                    start: span.start,
                    anchor,
                    kind,
                    height: 0,
                    size: 1,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = stack.pop() else { continue };
                let at = spanned(Span::new(open.start, span.start));
                let data = match open.kind {
                    OpenKind::Seq(items) => Data::Seq(items),
                    // A key without a value cannot come from the parser; it is dropped, not kept half.
                    OpenKind::Map { entries, .. } => Data::Map(entries),
                };
                let built = Built {
                    node: Node { data, loc: at },
                    height: open.height + 1,
                    size: open.size,
                };
                if open.anchor > 0 {
                    anchors.insert(open.anchor, clone_built(&built));
                }
                built
            }
            Event::Scalar(text, style, anchor, _) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                let data = if !quoted && matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL") {
                    Data::Null
                } else {
                    Data::Scalar {
                        text: text.into_owned(),
                        quoted,
                    }
                };
                let built = Built {
                    node: Node { data, loc: spanned(span) },
                    height: 0,
                    size: 1,
                };
                if anchor > 0 {
                    anchors.insert(anchor, clone_built(&built));
                }
                built
            }
            Event::Alias(id) => {
                let at = spanned(span);
                let Some(target) = anchors.get(&id) else {
                    return Err((at, "an alias to an anchor that is not defined before it".into()));
                };
                if stack.len() + target.height > MAX_DEPTH {
                    return Err((
                        at,
                        format!("this alias nests its anchor more than {MAX_DEPTH} levels deep; flatten the lists and mappings"),
                    ));
                }
                copied += target.size;
                if copied > MAX_ALIAS_NODES {
                    return Err((
                        at,
                        format!("aliases copy more than {MAX_ALIAS_NODES} values in all; write the values out or use fewer aliases"),
                    ));
                }
                let mut b = clone_built(target);
                b.node.loc = at;
                b
            }
        };
        match stack.last_mut() {
            None => doc = Some(built.node),
            Some(parent) => {
                parent.height = parent.height.max(built.height);
                parent.size += built.size;
                match &mut parent.kind {
                    OpenKind::Seq(items) => items.push(built.node),
                    OpenKind::Map { entries, key, seen } => match key.take() {
                        None => {
                            if let Data::Scalar { text, quoted } = &built.node.data {
                                if !seen.insert((text.clone(), *quoted)) {
                                    return Err((built.node.loc, "duplicated key in mapping".into()));
                                }
                            }
                            *key = Some(built.node);
                        }
                        Some(k) => entries.push((k, built.node)),
                    },
                }
            }
        }
    }
    match doc {
        Some(n) => Ok(n),
        None if started => Ok(Node {
            data: Data::Null,
            loc: loc(1, 0, 1),
        }),
        None => Err((loc(1, 0, 1), "the file is empty; a suite starts with 'suite: NAME'".into())),
    }
}

fn too_deep() -> String {
    format!("nested more than {MAX_DEPTH} levels deep; no suite or assignment needs this many, so flatten the lists and mappings")
}

fn clone_built(b: &Built) -> Built {
    Built {
        node: b.node.clone(),
        height: b.height,
        size: b.size,
    }
}

/// A node's location: its start, and its length when it fits on one line.
fn spanned(span: Span) -> Loc {
    let start = span.start;
    let one_line = span.end.line() == start.line();
    let len = if one_line { span.len().max(1) } else { 1 };
    loc(start.line(), start.col(), len)
}

fn loc(line: usize, col0: usize, len: usize) -> Loc {
    Loc {
        line: line as u32,
        col: col0 as u32 + 1,
        len: len as u32,
    }
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
    fn nesting_past_the_limit_is_a_located_error() {
        let deep = format!("a: {}{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        let (at, msg) = parse(&deep).unwrap_err();
        assert_eq!((at.line, at.col), (1, 4 + MAX_DEPTH as u32 - 1), "{msg}");
        assert!(msg.contains("nested more than 128 levels"), "{msg}");
        let ok = format!("{}{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn aliases_copy_their_anchor_within_bounds() {
        let n = parse("a: &x [1, {b: 2}]\nc: *x\n").unwrap();
        let Data::Map(m) = &n.data else { panic!() };
        assert!(matches!(&m[1].1.data, Data::Seq(s) if s.len() == 2));
        assert_eq!(m[1].1.loc.line, 2);
        // Each level doubles the copies: a few lines would expand past memory.
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
        }
        let (at, msg) = parse(&bomb).unwrap_err();
        assert!(msg.contains("aliases copy more than"), "{msg}");
        assert!(at.line > 1, "{msg}");
        // An anchor nested deep, aliased deep, nests deeper than either.
        let half = MAX_DEPTH / 2 + 1;
        let chain = format!(
            "a: &x {}{}\nb: {}*x{}\n",
            "[".repeat(half),
            "]".repeat(half),
            "[".repeat(half),
            "]".repeat(half)
        );
        let (_, msg) = parse(&chain).unwrap_err();
        assert!(msg.contains("this alias nests its anchor"), "{msg}");
    }

    #[test]
    fn syntax_errors_have_locations() {
        let (at, msg) = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(at.line >= 1, "{msg}");
        let (at, msg) = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(at.line, 2, "{msg}");
    }
}
