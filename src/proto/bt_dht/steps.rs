//! Structured KRPC steps (BEP 5): queries the harness sends a node, and checks of what it
//! answers or, in `saw:`, of what it asked the harness's nodes.
//!
//! ```yaml
//! - send: { ping: { t: aa } }                       # id: the harness's node id unless given
//! - send: { find_node: { t: fn, target: "80000000000000000000000000000000000000000" } }
//! - send: { get_peers: { t: gp, info_hash: "<40 hex>" } }
//! - send: { announce_peer: { t: ap, info_hash: "<40 hex>", port: 6001, token: "${tok}", implied_port: 1 } }
//! - send: { query: { q: frobnicate, t: x1 } }       # any method
//! #   every query also takes: t_hex (a binary transaction id), id (40 hex), args: { key: value }
//! #   (more arguments: text, or an integer), omit: [target, a, t, ro ...] (keys left out: of the
//! #   arguments, or `a`, `t` and `ro` themselves), extra: { v: "WC01" } (top-level keys).
//! #   Queries carry `ro: 1` (BEP 43, a read-only node: the harness answers no queries, so a
//! #   node must not take it into its routing table) unless `omit: [ro]`.
//! - expect:
//!     response:
//!       t: aa                                   # or t_hex; the id with id: "<40 hex>" or "${var}"
//!       nodes: { include: ["f8", "10@127.0.0.3"], exclude: ["50"], count: { max: 8 } }
//!       values: { include: ["127.0.0.1:6001"], exclude: [...], count: 1 }
//!       token: true                             # present (false: absent)
//!   capture: { tok: token, dut: id }           # token and id as hex
//! - expect: { error: { t: x1, code: 204 } }      # code: a number or a list of them
//!   or_silence: 1s                              # no answer within 1 s holds too
//!   retry: 500ms                                # an answer that does not hold yet: ask again
//!                                               # (the query re-sent) until the step's timeout
//! - saw: { actor: dht, query: { q: find_node } } # what a node under test asked the actor
//! ```
//! Node ids in `nodes` checks are hex prefixes of the 20-byte id, with `@HOST:PORT` (or `@HOST`)
//! when the address must match too.

use std::net::SocketAddrV4;

use super::codec::{self, Kind3, Krpc};
use crate::proto::bittorrent::bencode::{hex, unhex, Build};
use crate::proto::steps::mismatch;
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect, StructuredSend};
use crate::syntax::{Data, LoadCx, Loc, Node, Template};

/// The harness's own node id, when a query does not give one: 20 bytes of text, so transcripts
/// show it plainly.
pub const HARNESS_ID: &[u8; 20] = b"wirecheck-harness-01";

/// Keys of a structured KRPC send.
pub const SEND_KEYS: &[&str] = &["ping", "find_node", "get_peers", "announce_peer", "query"];
/// Keys of a structured KRPC expect.
pub const EXPECT_KEYS: &[&str] = &["response", "error", "query", "or_silence", "retry"];

/// The structured `send:`/`expect:` keys of KRPC.
pub static STEPS: Steps = Steps {
    send_keys: SEND_KEYS,
    expect_keys: EXPECT_KEYS,
    parse_send,
    parse_expect,
};

/// A value of `args:` or `extra:`.
#[derive(Debug)]
enum Arg {
    Int(i64),
    Text(Template),
}

/// A query to send.
#[derive(Debug)]
struct QuerySend {
    q: String,
    t: Template,
    t_hex: bool,
    id: Option<Template>,
    /// 20-byte arguments as hex (`target`, `info_hash`) and the token as hex.
    hex_args: Vec<(String, Template)>,
    int_args: Vec<(String, i64)>,
    args: Vec<(String, Arg)>,
    omit: Vec<String>,
    extra: Vec<(String, Arg)>,
}

fn decode_hex(s: &str, what: &str) -> Result<Vec<u8>, String> {
    unhex(s).ok_or_else(|| format!("{what} '{s}' is not hex (two digits a byte)"))
}

fn arg_value(a: &Arg, cx: &RenderCx) -> Result<Build, String> {
    Ok(match a {
        Arg::Int(i) => Build::Int(*i),
        Arg::Text(t) => Build::Bytes(t.render(cx.vars)?.into_bytes()),
    })
}

impl StructuredSend for QuerySend {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        let t = self.t.render(cx.vars)?;
        let t = if self.t_hex { decode_hex(&t, "t_hex")? } else { t.into_bytes() };
        let id = match &self.id {
            Some(id) => decode_hex(&id.render(cx.vars)?, "id")?,
            None => HARNESS_ID.to_vec(),
        };
        let mut a: Vec<(Vec<u8>, Build)> = vec![(b"id".to_vec(), Build::Bytes(id))];
        for (k, v) in &self.hex_args {
            a.push((k.as_bytes().to_vec(), Build::Bytes(decode_hex(&v.render(cx.vars)?, k)?)));
        }
        for (k, v) in &self.int_args {
            a.push((k.as_bytes().to_vec(), Build::Int(*v)));
        }
        for (k, v) in &self.args {
            a.push((k.as_bytes().to_vec(), arg_value(v, cx)?));
        }
        a.retain(|(k, _)| !self.omit.iter().any(|o| o.as_bytes() == k.as_slice()));
        let mut top: Vec<(Vec<u8>, Build)> = vec![
            (b"t".to_vec(), Build::Bytes(t)),
            (b"y".to_vec(), Build::text("q")),
            (b"q".to_vec(), Build::text(&self.q)),
            (b"a".to_vec(), Build::Dict(a)),
            // BEP 43: a node that answers no queries (the harness's sockets) says so, and is
            // then not put into the routing tables of the nodes it asks.
            (b"ro".to_vec(), Build::Int(1)),
        ];
        for (k, v) in &self.extra {
            top.push((k.as_bytes().to_vec(), arg_value(v, cx)?));
        }
        top.retain(|(k, _)| {
            !self
                .omit
                .iter()
                .any(|o| o.as_bytes() == k.as_slice() && [&b"a"[..], b"t", b"ro"].contains(&k.as_slice()))
        });
        Ok(Build::Dict(top).encode())
    }

    fn templates(&self) -> Vec<&Template> {
        let mut t: Vec<&Template> = vec![&self.t];
        t.extend(self.id.iter());
        t.extend(self.hex_args.iter().map(|(_, v)| v));
        for (_, a) in self.args.iter().chain(&self.extra) {
            if let Arg::Text(x) = a {
                t.push(x);
            }
        }
        t
    }
}

/// A literal hex value must be 40 digits (a 20-byte id) where `twenty` says so.
fn hex_template(node: &Node, what: &str, twenty: bool, cx: &mut LoadCx) -> Option<Template> {
    let t = cx.template(node, what)?;
    if let Some(lit) = t.as_literal() {
        let ok = unhex(lit).is_some_and(|b| !twenty || b.len() == 20);
        if !ok {
            let need = if twenty {
                "40 hex digits (20 bytes)"
            } else {
                "hex, two digits a byte"
            };
            cx.err_help(
                node,
                format!("{what} must be {need}"),
                format!("e.g. {what}: \"{}\"", "ab".repeat(20)),
            );
            return None;
        }
    }
    Some(t)
}

fn args_map(node: &Node, what: &str, cx: &mut LoadCx) -> Option<Vec<(String, Arg)>> {
    let pairs = cx.mapping(
        node,
        &format!("{what} must be a mapping"),
        format!("e.g. {what}: {{ v: \"WC01\" }}"),
    )?;
    let mut out = Vec::new();
    for (k, v) in pairs {
        let key = cx.string(k, "a key")?;
        let value = match &v.data {
            Data::Scalar { text, quoted: false } if text.parse::<i64>().is_ok() => Arg::Int(text.parse().ok()?),
            _ => Arg::Text(cx.template(v, &key)?),
        };
        out.push((key, value));
    }
    Some(out)
}

/// Parses `send: { ping | find_node | get_peers | announce_peer | query: {...} }`.
pub fn parse_send(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
    let f = cx.fields(node, SEND_KEYS, "a KRPC query")?;
    let (key, body) = cx.one_of(
        node,
        &f,
        SEND_KEYS,
        "a KRPC send is one of",
        "e.g. send: { ping: { t: aa } } or send: { query: { q: frobnicate, t: x1 } }",
    )?;
    let empty = Node {
        data: Data::Map(Vec::new()),
        loc: body.loc,
    };
    let body = if matches!(body.data, Data::Null) { &empty } else { body };
    let mut known = vec!["t", "t_hex", "id", "args", "omit", "extra"];
    match key {
        "find_node" => known.push("target"),
        "get_peers" => known.push("info_hash"),
        "announce_peer" => known.extend(["info_hash", "port", "token", "implied_port"]),
        "query" => known.extend(["q", "target", "info_hash", "token", "port", "implied_port"]),
        _ => {}
    }
    let b = cx.fields(body, &known, &format!("a {key} query"))?;
    let q = match key {
        "query" => match b.get("q") {
            Some(n) => cx.string(n, "q")?,
            None => {
                cx.err_help(body, "a query needs its method name", "e.g. query: { q: frobnicate, t: x1 }");
                return None;
            }
        },
        m => m.to_string(),
    };
    let (t, t_hex) = match (b.get("t"), b.get("t_hex")) {
        (Some(_), Some(n)) => {
            cx.err(n, "t and t_hex both give the transaction id: keep one");
            return None;
        }
        (Some(n), None) => (cx.template(n, "t")?, false),
        (None, Some(n)) => (hex_template(n, "t_hex", false, cx)?, true),
        (None, None) => (Template::literal("aa"), false),
    };
    let id = cx.optional(&b, "id", |cx, n| hex_template(n, "id", true, cx))?;
    let mut hex_args = Vec::new();
    for k in ["target", "info_hash"] {
        if let Some(n) = b.get(k) {
            hex_args.push((k.to_string(), hex_template(n, k, true, cx)?));
        }
    }
    if let Some(n) = b.get("token") {
        hex_args.push(("token".into(), hex_template(n, "token", false, cx)?));
    }
    let mut int_args = Vec::new();
    for k in ["port", "implied_port"] {
        if let Some(n) = b.get(k) {
            int_args.push((k.to_string(), cx.number::<i64>(n, k)?));
        }
    }
    // The method's own arguments are what BEP 5 requires of it: a case leaves one out with `omit`.
    let required: &[&str] = match key {
        "find_node" => &["target"],
        "get_peers" => &["info_hash"],
        "announce_peer" => &["info_hash", "token"],
        _ => &[],
    };
    let omit: Vec<String> = match b.get("omit") {
        Some(n) => match &n.data {
            Data::Seq(items) => items.iter().map(|i| cx.string(i, "a key to leave out")).collect::<Option<_>>()?,
            _ => vec![cx.string(n, "a key to leave out")?],
        },
        None => Vec::new(),
    };
    for r in required {
        if b.get(r).is_none() && !omit.iter().any(|o| o == r) {
            cx.err_help(
                body,
                format!("{key} needs {r}"),
                format!("BEP 5: {key} carries {r}; leave it out on purpose with omit: [{r}]"),
            );
            return None;
        }
    }
    if key == "announce_peer" && b.get("port").is_none() && b.get("implied_port").is_none() && !omit.iter().any(|o| o == "port") {
        cx.err_help(body, "announce_peer needs port (or implied_port: 1)", "e.g. port: 6001");
        return None;
    }
    let args = match b.get("args") {
        Some(n) => args_map(n, "args", cx)?,
        None => Vec::new(),
    };
    let extra = match b.get("extra") {
        Some(n) => args_map(n, "extra", cx)?,
        None => Vec::new(),
    };
    Some(Box::new(QuerySend {
        q,
        t,
        t_hex,
        id,
        hex_args,
        int_args,
        args,
        omit,
        extra,
    }))
}

/// How many of something: exactly, or within bounds.
#[derive(Debug, Clone, Copy)]
struct Count {
    min: usize,
    max: Option<usize>,
}

impl Count {
    fn holds(&self, n: usize) -> bool {
        n >= self.min && self.max.is_none_or(|m| n <= m)
    }

    fn text(&self) -> String {
        match self.max {
            Some(m) if m == self.min => format!("{m}"),
            Some(m) if self.min == 0 => format!("at most {m}"),
            Some(m) => format!("{} to {m}", self.min),
            None => format!("at least {}", self.min),
        }
    }
}

fn count(node: &Node, cx: &mut LoadCx) -> Option<Count> {
    if let Some(n) = node.as_str().and_then(|s| s.parse::<usize>().ok()) {
        return Some(Count { min: n, max: Some(n) });
    }
    let f = cx.fields(node, &["min", "max"], "a count")?;
    Some(Count {
        min: cx.optional(&f, "min", |cx, n| cx.number(n, "min"))?.unwrap_or(0),
        max: cx.optional(&f, "max", |cx, n| cx.number(n, "max"))?,
    })
}

/// `include`, `exclude` and `count` over a list (nodes or peers).
#[derive(Debug, Default)]
struct ListCheck {
    include: Vec<Template>,
    exclude: Vec<Template>,
    count: Option<Count>,
    loc: Option<Loc>,
}

fn list_check(node: &Node, what: &str, cx: &mut LoadCx) -> Option<ListCheck> {
    let f = cx.fields(node, &["include", "exclude", "count"], what)?;
    let items = |cx: &mut LoadCx, k: &str| -> Option<Vec<Template>> {
        match f.get(k) {
            Some(Node {
                data: Data::Seq(items), ..
            }) => items.iter().map(|i| cx.template(i, k)).collect(),
            Some(n) => Some(vec![cx.template(n, k)?]),
            None => Some(Vec::new()),
        }
    };
    Some(ListCheck {
        include: items(cx, "include")?,
        exclude: items(cx, "exclude")?,
        count: cx.optional(&f, "count", |cx, n| count(n, cx))?,
        loc: Some(node.loc),
    })
}

/// What one expect wants of a message.
#[derive(Debug)]
enum Want {
    Response {
        nodes: Option<ListCheck>,
        values: Option<ListCheck>,
        token: Option<bool>,
    },
    Error {
        codes: Vec<i64>,
    },
    /// A query the node under test sent (in `saw:`), of this method when given.
    Query {
        q: Option<String>,
    },
}

#[derive(Debug)]
struct KrpcExpect {
    want: Want,
    t: Option<(Template, bool)>,
    id: Option<Template>,
    captures: Vec<(String, String)>,
    or_silence: Option<std::time::Duration>,
    /// Ask again this long after an answer that does not hold yet (a node still learning).
    retry: Option<std::time::Duration>,
    loc: Loc,
}

const CAPTURE_PATHS: &[&str] = &["token", "id", "t"];

/// Parses `expect: { response | error | query: {...}, or_silence, capture }`.
pub fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let mut keys = EXPECT_KEYS.to_vec();
    keys.push("capture");
    let f = cx.fields(node, &keys, "a KRPC expect")?;
    let (key, body) = cx.one_of(
        node,
        &f,
        &["response", "error", "query"],
        "a KRPC expect reads one message:",
        "e.g. expect: { response: { t: aa } } or expect: { error: { code: 203 } }",
    )?;
    let empty = Node {
        data: Data::Map(Vec::new()),
        loc: body.loc,
    };
    let body = if matches!(body.data, Data::Null) { &empty } else { body };
    let known: &[&str] = match key {
        "response" => &["t", "t_hex", "id", "nodes", "values", "token"],
        "error" => &["t", "t_hex", "code"],
        _ => &["q", "t", "t_hex"],
    };
    let b = cx.fields(body, known, &format!("a KRPC {key} check"))?;
    let t = match (b.get("t"), b.get("t_hex")) {
        (Some(_), Some(n)) => {
            cx.err(n, "t and t_hex both give the transaction id: keep one");
            return None;
        }
        (Some(n), None) => Some((cx.template(n, "t")?, false)),
        (None, Some(n)) => Some((hex_template(n, "t_hex", false, cx)?, true)),
        (None, None) => None,
    };
    let want = match key {
        "response" => Want::Response {
            nodes: cx.optional(&b, "nodes", |cx, n| list_check(n, "a nodes check", cx))?,
            values: cx.optional(&b, "values", |cx, n| list_check(n, "a values check", cx))?,
            token: cx.optional(&b, "token", |cx, n| cx.boolean(n, "token (true: present, false: absent)"))?,
        },
        "error" => Want::Error {
            codes: match b.get("code") {
                Some(Node {
                    data: Data::Seq(items), ..
                }) => items.iter().map(|i| cx.number(i, "code")).collect::<Option<_>>()?,
                Some(n) => vec![cx.number(n, "code")?],
                None => Vec::new(),
            },
        },
        _ => Want::Query {
            q: cx.optional(&b, "q", |cx, n| cx.string(n, "q"))?,
        },
    };
    let id = cx.optional(&b, "id", |cx, n| hex_template(n, "id", true, cx))?;
    let captures = match f.get("capture") {
        Some(c) => {
            let pairs = cx.mapping(c, "capture must be a mapping of variable to path", "e.g. capture: { tok: token }")?;
            let mut out = Vec::new();
            for (k, v) in pairs {
                let var = cx.string(k, "a variable name")?;
                let path = cx.string(v, "a capture path")?;
                if !CAPTURE_PATHS.contains(&path.as_str()) {
                    cx.err_help(
                        v,
                        format!("'{path}' is not a capture path"),
                        format!("capture paths: {}", CAPTURE_PATHS.join(", ")),
                    );
                    return None;
                }
                out.push((var, path));
            }
            out
        }
        None => Vec::new(),
    };
    let or_silence = cx.optional(&f, "or_silence", |cx, n| cx.duration(n, "or_silence"))?;
    let retry = cx.optional(&f, "retry", |cx, n| cx.duration(n, "retry"))?;
    Some(Box::new(KrpcExpect {
        want,
        t,
        id,
        captures,
        or_silence,
        retry,
        loc: node.loc,
    }))
}

/// An entry of a list a check reads (a node of `nodes`, a peer of `values`).
trait Listed {
    /// Whether this is the entry a check names.
    fn matches(&self, want: &str) -> bool;
    /// The entry in a failure.
    fn show(&self) -> String;
}

impl Listed for codec::NodeInfo {
    /// A hex prefix of its id, and its address after `@`.
    fn matches(&self, want: &str) -> bool {
        let (id, addr) = match want.split_once('@') {
            Some((i, a)) => (i, Some(a)),
            None => (want, None),
        };
        let id_ok = hex(&self.id).starts_with(&id.to_ascii_lowercase());
        let addr_ok = match addr {
            None => true,
            Some(a) if a.contains(':') => self.addr.to_string() == a,
            Some(a) => self.addr.ip().to_string() == a,
        };
        id_ok && addr_ok
    }

    fn show(&self) -> String {
        format!("{}@{}", hex(&self.id).chars().take(8).collect::<String>(), self.addr)
    }
}

impl Listed for SocketAddrV4 {
    fn matches(&self, want: &str) -> bool {
        self.to_string() == want
    }

    fn show(&self) -> String {
        self.to_string()
    }
}

impl KrpcExpect {
    fn fail(&self, message: impl Into<String>, msg: &Message) -> Mismatch {
        mismatch(message, self.describe(), msg).at(self.loc)
    }

    fn check_list<T: Listed>(&self, what: &str, check: &ListCheck, items: &[T], msg: &Message, cx: &RenderCx) -> Result<(), Mismatch> {
        let at = |m: Mismatch| match check.loc {
            Some(l) => m.at(l),
            None => m,
        };
        let listed = || {
            let s: Vec<String> = items.iter().map(Listed::show).collect();
            if s.is_empty() {
                "none".to_string()
            } else {
                s.join(", ")
            }
        };
        for inc in &check.include {
            let w = inc.render(cx.vars).map_err(|e| self.fail(e, msg))?;
            if !items.iter().any(|i| i.matches(&w)) {
                return Err(at(self.fail(format!("{what} do not include {w} (they are: {})", listed()), msg)));
            }
        }
        for exc in &check.exclude {
            let w = exc.render(cx.vars).map_err(|e| self.fail(e, msg))?;
            if let Some(i) = items.iter().find(|i| i.matches(&w)) {
                return Err(at(self.fail(format!("{what} include {}, which the case rules out", i.show()), msg)));
            }
        }
        if let Some(c) = check.count {
            if !c.holds(items.len()) {
                return Err(at(self.fail(
                    format!(
                        "{} {what}, where the case expects {} (they are: {})",
                        items.len(),
                        c.text(),
                        listed()
                    ),
                    msg,
                )));
            }
        }
        Ok(())
    }

    fn check_t(&self, k: &Krpc, msg: &Message, cx: &RenderCx) -> Result<(), Mismatch> {
        let Some((t, is_hex)) = &self.t else { return Ok(()) };
        let want = t.render(cx.vars).map_err(|e| self.fail(e, msg))?;
        let want = if *is_hex {
            decode_hex(&want, "t_hex").map_err(|e| self.fail(e, msg))?
        } else {
            want.into_bytes()
        };
        if k.t.as_deref() != Some(&want[..]) {
            return Err(self.fail(
                format!(
                    "the transaction id is {}, not the query's {}: BEP 5, \"The transaction ID should be encoded as a short string of binary numbers\" and is echoed in the response",
                    k.t.as_deref().map_or("missing".into(), codec::show),
                    codec::show(&want)
                ),
                msg,
            ));
        }
        Ok(())
    }
}

impl StructuredExpect for KrpcExpect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let Some(k) = msg.detail.as_ref().and_then(|d| d.downcast_ref::<Krpc>()) else {
            return Err(self.fail("not a KRPC message (a bencoded dictionary)", msg));
        };
        match (&self.want, &k.kind) {
            (Want::Response { .. }, Kind3::Response) | (Want::Error { .. }, Kind3::Error(..)) | (Want::Query { .. }, Kind3::Query(_)) => {}
            (Want::Response { .. }, Kind3::Error(c, m)) => {
                return Err(self.fail(
                    format!(
                        "an error ({} {}) where a response was expected",
                        c.map_or("?".into(), |c| c.to_string()),
                        m.as_deref().unwrap_or("")
                    ),
                    msg,
                ))
            }
            (Want::Error { .. }, Kind3::Response) => {
                return Err(self.fail(
                    "a response where an error was expected: the node accepted what BEP 5 has it refuse",
                    msg,
                ))
            }
            _ => return Err(self.fail("another kind of message than expected", msg)),
        }
        self.check_t(k, msg, cx)?;
        if let Some(id) = &self.id {
            let want = id.render(cx.vars).map_err(|e| self.fail(e, msg))?;
            if k.bytes("id").map(hex).as_deref() != Some(want.to_ascii_lowercase().as_str()) {
                return Err(self.fail(
                    format!(
                        "the node id is {}, not {want}: a node keeps one id (BEP 5: \"Each node has a globally unique identifier known as the node ID\")",
                        k.bytes("id").map_or("missing".into(), hex)
                    ),
                    msg,
                ));
            }
        }
        match &self.want {
            Want::Response { nodes, values, token } => {
                if let Some(want) = token {
                    if k.bytes("token").is_some() != *want {
                        return Err(self.fail(
                            match want {
                                true => "no token: BEP 5, \"The return value for a query for peers includes an opaque value known as the token\"",
                                false => "a token where none was expected",
                            },
                            msg,
                        ));
                    }
                }
                if let Some(c) = nodes {
                    let Some(list) = k.nodes() else {
                        return Err(self.fail("no `nodes` in the response", msg));
                    };
                    self.check_list("the nodes", c, &list, msg, cx)?;
                }
                if let Some(c) = values {
                    let list: Vec<SocketAddrV4> = k.values().unwrap_or_default();
                    self.check_list("the peers (values)", c, &list, msg, cx)?;
                }
            }
            Want::Error { codes } => {
                if let Kind3::Error(code, text) = &k.kind {
                    if !codes.is_empty() && !code.is_some_and(|c| codes.contains(&c)) {
                        let want: Vec<String> = codes.iter().map(i64::to_string).collect();
                        return Err(self.fail(
                            format!(
                                "error {} {}, where BEP 5 names {} (201 generic, 202 server, 203 protocol: a malformed packet, invalid arguments or a bad token, 204 method unknown)",
                                code.map_or("?".into(), |c| c.to_string()),
                                text.as_deref().unwrap_or(""),
                                want.join(" or ")
                            ),
                            msg,
                        ));
                    }
                }
            }
            Want::Query { q } => {
                if let Some(q) = q {
                    if k.method() != Some(q.as_str()) {
                        return Err(self.fail(format!("a {} query, not {q}", k.method().unwrap_or("?")), msg));
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (var, path) in &self.captures {
            let v = match path.as_str() {
                "token" => k.bytes("token").map(hex),
                "id" => k.bytes("id").map(hex),
                _ => k.t.as_deref().map(hex),
            };
            match v {
                Some(v) => out.push((var.clone(), v)),
                None => return Err(self.fail(format!("nothing to capture into '{var}': the message has no {path}"), msg)),
            }
        }
        Ok(out)
    }

    fn templates(&self) -> Vec<&Template> {
        let mut t: Vec<&Template> = Vec::new();
        t.extend(self.t.iter().map(|(t, _)| t));
        t.extend(self.id.iter());
        if let Want::Response { nodes, values, .. } = &self.want {
            for c in nodes.iter().chain(values.iter()) {
                t.extend(c.include.iter().chain(&c.exclude));
            }
        }
        t
    }

    fn captures(&self) -> Vec<String> {
        self.captures.iter().map(|(v, _)| v.clone()).collect()
    }

    fn describe(&self) -> String {
        let mut s = match &self.want {
            Want::Response { nodes, values, token } => {
                let mut s = "a KRPC response".to_string();
                if token == &Some(true) {
                    s.push_str(" with a token");
                }
                for (what, c) in [("nodes", nodes), ("values", values)] {
                    if let Some(c) = c {
                        let inc: Vec<&str> = c.include.iter().filter_map(Template::as_literal).collect();
                        let exc: Vec<&str> = c.exclude.iter().filter_map(Template::as_literal).collect();
                        s.push_str(&format!(", {what}"));
                        if !inc.is_empty() {
                            s.push_str(&format!(" including {}", inc.join(" ")));
                        }
                        if !exc.is_empty() {
                            s.push_str(&format!(" without {}", exc.join(" ")));
                        }
                        if let Some(n) = c.count {
                            s.push_str(&format!(" ({} of them)", n.text()));
                        }
                    }
                }
                s
            }
            Want::Error { codes } if codes.is_empty() => "a KRPC error".to_string(),
            Want::Error { codes } => {
                let c: Vec<String> = codes.iter().map(i64::to_string).collect();
                format!("a KRPC error {}", c.join(" or "))
            }
            Want::Query { q } => format!("a {} query", q.as_deref().unwrap_or("KRPC")),
        };
        if let Some((t, _)) = &self.t {
            s.push_str(&format!(" (t {})", t.as_literal().unwrap_or("from a variable")));
        }
        if let Some(d) = self.or_silence {
            s.push_str(&format!(", or no answer within {d:?}"));
        }
        s
    }

    fn holds_after(&self) -> Option<std::time::Duration> {
        self.or_silence
    }

    fn retry(&self) -> Option<std::time::Duration> {
        self.retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::steps::testing;
    use crate::proto::{Codec, Frame, Transport};
    use crate::syntax::Vars;

    fn rcx(vars: &Vars) -> RenderCx<'_> {
        RenderCx {
            vars,
            base_dir: std::path::Path::new("."),
            transport: Transport::Udp,
            local: None,
        }
    }

    fn message(b: &[u8]) -> Message {
        match codec::KrpcCodec.decode(b, false).unwrap() {
            Frame::Message(m, _) => m,
            Frame::Incomplete => unreachable!(),
        }
    }

    #[test]
    fn sends_bep5_queries_in_canonical_bencode() {
        let vars = Vars::default();
        let s = testing::send(&STEPS, "ping: { t: aa, id: \"6162636465666768696a30313233343536373839\" }").unwrap();
        assert_eq!(
            s.render(&rcx(&vars)).unwrap(),
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:aa1:y1:qe"
        );
        let s = testing::send(
            &STEPS,
            "find_node: { t: fn, target: \"ffffffffffffffffffffffffffffffffffffffff\", omit: [id] }",
        )
        .unwrap();
        let out = s.render(&rcx(&vars)).unwrap();
        assert!(out.starts_with(b"d1:ad6:target20:\xff"), "{}", String::from_utf8_lossy(&out));
        let s = testing::send(&STEPS, "query: { q: frobnicate, t_hex: \"00ff\", omit: [a], extra: { v: WC01 } }").unwrap();
        assert_eq!(
            s.render(&rcx(&vars)).unwrap(),
            b"d1:q10:frobnicate2:roi1e1:t2:\x00\xff1:v4:WC011:y1:qe"
        );
    }

    #[test]
    fn refuses_queries_without_what_bep5_requires() {
        let e = testing::send(
            &STEPS,
            "announce_peer: { info_hash: \"ffffffffffffffffffffffffffffffffffffffff\", port: 1 }",
        )
        .unwrap_err();
        assert!(e.contains("announce_peer needs token"), "{e}");
        let e = testing::send(&STEPS, "find_node: { target: \"abcd\" }").unwrap_err();
        assert!(e.contains("40 hex digits"), "{e}");
    }

    #[test]
    fn checks_nodes_values_and_errors() {
        let mut vars = Vars::default();
        let mut nodes = Vec::new();
        for (first, host) in [(0x10u8, 3u8), (0xf8, 2)] {
            let mut id = [0u8; 20];
            id[0] = first;
            nodes.extend_from_slice(&id);
            nodes.extend_from_slice(&[127, 0, 0, host, 0x1a, 0xe1]);
        }
        let mut b = b"d1:rd2:id20:abcdefghij01234567895:nodes52:".to_vec();
        b.extend_from_slice(&nodes);
        b.extend_from_slice(b"5:token2:xye1:t2:fn1:y1:re");
        let m = message(&b);
        let e = testing::expect(
            &STEPS,
            "response: { t: fn, nodes: { include: [f8, \"10@127.0.0.3\"], count: { max: 8 } }, token: true }\ncapture: { tok: token }",
        )
        .unwrap();
        let got = e.check(&m, &rcx(&vars)).unwrap();
        assert_eq!(got, vec![("tok".to_string(), "7879".to_string())]);
        let e = testing::expect(&STEPS, "response: { nodes: { exclude: [f8] } }").unwrap();
        let why = e.check(&m, &rcx(&vars)).unwrap_err();
        assert!(why.message.contains("f8000000@127.0.0.2:6881"), "{}", why.message);
        vars.insert("t".into(), "zz".into());
        let e = testing::expect(&STEPS, "response: { t: \"${t}\" }").unwrap();
        assert!(e.check(&m, &rcx(&vars)).unwrap_err().message.contains("transaction id"));
        let err = message(b"d1:eli204e14:Method Unknowne1:t2:x11:y1:ee");
        let e = testing::expect(&STEPS, "error: { t: x1, code: [203, 204] }").unwrap();
        assert!(e.check(&err, &rcx(&vars)).is_ok());
        let e = testing::expect(&STEPS, "error: { code: 203 }\nor_silence: 1s").unwrap();
        assert!(e.check(&err, &rcx(&vars)).unwrap_err().message.contains("error 204"));
        assert_eq!(e.holds_after(), Some(std::time::Duration::from_secs(1)));
    }
}
