//! Structured steps of the circular DHT lab (`docs/dht-ring.md`): requests the harness sends a
//! node as a client (`from` and `origin` its own address on the connection), and checks of the
//! answers, or, in `saw:`, of what a node sent the ring the harness plays.
//!
//! ```yaml
//! - send: { ping: { tid: 1 } }
//! - send: { find_successor: { tid: 2, key: 13 } }          # origin: this connection, hops 0
//! - send: { get: { tid: 3, key: 9 } }
//! - send: { put: { tid: 4, key: 9, value: "Led Zeppelin IV" } }
//! - send: { successors: { tid: 5 } }
//! - send: { message: { type: frobnicate, tid: 6 } }      # any object (from added unless given)
//! - expect: { found: { tid: 2, node: 14, hops: { max: 3 } } }
//! - expect: { value: { tid: 3, value: "Led Zeppelin IV" } }   # value: null for none
//! - expect: { successors_reply: { predecessor: 3, successors: [5, 8] } }
//! - expect: { error: { tid: 6 } }
//!   retry: 300ms                                   # ask again until it holds (a ring settling)
//! - saw: { actor: ring, message: { type: find_successor, key: 1, tid: 2 }, host: 127.0.0.13 }
//! ```
//! Node fields (`node`, `predecessor`, `successors`) are checked by id; `hops` takes a number or
//! `{ min, max }`.

use std::time::Duration;

use serde_json::{Map, Value};

use super::codec::RingMsg;
use crate::proto::steps::mismatch;
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect, StructuredSend};
use crate::syntax::{Data, LoadCx, Loc, Node, Template};

/// The requests with a key of their own.
const REQUESTS: &[&str] = &["ping", "find_successor", "get", "put", "successors", "join", "notify"];
/// Keys of a structured send.
pub const SEND_KEYS: &[&str] = &["ping", "find_successor", "get", "put", "successors", "join", "notify", "message"];
/// The answers an expect names.
const ANSWERS: &[&str] = &["pong", "found", "value", "stored", "welcome", "ok", "successors_reply", "error"];
/// Keys of a structured expect.
pub const EXPECT_KEYS: &[&str] = &[
    "pong",
    "found",
    "value",
    "stored",
    "welcome",
    "ok",
    "successors_reply",
    "error",
    "message",
    "or_silence",
    "retry",
];

/// The structured `send:`/`expect:` keys of the lab.
pub static STEPS: Steps = Steps {
    send_keys: SEND_KEYS,
    expect_keys: EXPECT_KEYS,
    parse_send,
    parse_expect,
};

/// A YAML value turned into JSON: unquoted integers, `null`, `true` and `false` as JSON's,
/// everything else text (with `${var}`s rendered at run time).
#[derive(Debug)]
enum Json {
    Text(Template),
    Int(i64),
    Null,
    Bool(bool),
    List(Vec<Json>),
    Object(Vec<(String, Json)>),
}

fn json(node: &Node, cx: &mut LoadCx) -> Option<Json> {
    Some(match &node.data {
        Data::Null => Json::Null,
        Data::Scalar { text, quoted: false } if text.parse::<i64>().is_ok() => Json::Int(text.parse().ok()?),
        Data::Scalar { text, quoted: false } if text == "null" => Json::Null,
        Data::Scalar { text, quoted: false } if text == "true" || text == "false" => Json::Bool(text == "true"),
        Data::Scalar { .. } => Json::Text(cx.template(node, "a value")?),
        Data::Seq(items) => Json::List(items.iter().map(|i| json(i, cx)).collect::<Option<_>>()?),
        Data::Map(pairs) => Json::Object(
            pairs
                .iter()
                .map(|(k, v)| Some((cx.string(k, "a key")?, json(v, cx)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

impl Json {
    fn render(&self, cx: &RenderCx) -> Result<Value, String> {
        Ok(match self {
            Json::Text(t) => {
                let s = t.render(cx.vars)?;
                // A `${var}` holding a number (a captured key) is sent as one.
                match (t.as_literal(), s.parse::<i64>()) {
                    (None, Ok(n)) => Value::from(n),
                    _ => Value::String(s),
                }
            }
            Json::Int(i) => Value::from(*i),
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::List(l) => Value::Array(l.iter().map(|j| j.render(cx)).collect::<Result<_, _>>()?),
            Json::Object(o) => {
                let mut m = Map::new();
                for (k, v) in o {
                    m.insert(k.clone(), v.render(cx)?);
                }
                Value::Object(m)
            }
        })
    }

    fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            Json::Text(t) => out.push(t),
            Json::List(l) => l.iter().for_each(|j| j.templates(out)),
            Json::Object(o) => o.iter().for_each(|(_, j)| j.templates(out)),
            _ => {}
        }
    }
}

/// A request to send: its type and fields.
#[derive(Debug)]
struct RingSend {
    kind: Option<String>,
    fields: Vec<(String, Json)>,
}

impl StructuredSend for RingSend {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        let local = cx.local.map(|a| a.to_string());
        let mut m = Map::new();
        if let Some(k) = &self.kind {
            m.insert("type".into(), Value::String(k.clone()));
            m.insert("tid".into(), Value::from(1));
            // What the lab has a client send with every routed request: itself as the origin.
            if matches!(k.as_str(), "find_successor" | "get" | "put" | "join") {
                m.insert("origin".into(), local.clone().map_or(Value::Null, Value::String));
                m.insert("hops".into(), Value::from(0));
            }
        }
        m.insert("from".into(), serde_json::json!({ "id": null, "addr": local }));
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.render(cx)?);
        }
        serde_json::to_vec(&Value::Object(m)).map_err(|e| e.to_string())
    }

    fn templates(&self) -> Vec<&Template> {
        let mut out = Vec::new();
        self.fields.iter().for_each(|(_, j)| j.templates(&mut out));
        out
    }
}

fn fields(body: &Node, what: &str, cx: &mut LoadCx) -> Option<Vec<(String, Json)>> {
    match &body.data {
        Data::Null => Some(Vec::new()),
        Data::Map(pairs) => pairs.iter().map(|(k, v)| Some((cx.string(k, "a field")?, json(v, cx)?))).collect(),
        _ => {
            cx.err_help(
                body,
                format!("{what} takes a mapping of fields"),
                "e.g. find_successor: { tid: 2, key: 13 }",
            );
            None
        }
    }
}

/// Parses `send: { ping | find_successor | get | put | successors | join | notify | message: {...} }`.
pub fn parse_send(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
    let f = cx.fields(node, SEND_KEYS, "a dht-ring request")?;
    let (key, body) = cx.one_of(
        node,
        &f,
        SEND_KEYS,
        "a dht-ring send is one of",
        "e.g. send: { find_successor: { tid: 2, key: 13 } }",
    )?;
    let fields = fields(body, key, cx)?;
    let kind = REQUESTS.contains(&key).then(|| key.to_string());
    if kind.is_none() && !fields.iter().any(|(k, _)| k == "type") {
        cx.err_help(body, "a message needs its type", "e.g. message: { type: frobnicate, tid: 6 }");
        return None;
    }
    Some(Box::new(RingSend { kind, fields }))
}

/// A check of one field.
#[derive(Debug)]
enum Want {
    /// Equal to this JSON (a node field compares ids).
    Is(Json),
    /// An integer within bounds.
    Range(Option<u64>, Option<u64>),
}

#[derive(Debug)]
struct RingExpect {
    /// The answer's type; None in `message:` (the check names it, or any).
    kind: Option<String>,
    checks: Vec<(String, Want, Loc)>,
    or_silence: Option<Duration>,
    retry: Option<Duration>,
    loc: Loc,
}

fn want(node: &Node, cx: &mut LoadCx) -> Option<Want> {
    if let Data::Map(pairs) = &node.data {
        if !pairs.is_empty() && pairs.iter().all(|(k, _)| matches!(k.as_str(), Some("min" | "max"))) {
            let f = cx.fields(node, &["min", "max"], "a range")?;
            return Some(Want::Range(
                cx.optional(&f, "min", |cx, n| cx.number(n, "min"))?,
                cx.optional(&f, "max", |cx, n| cx.number(n, "max"))?,
            ));
        }
    }
    Some(Want::Is(json(node, cx)?))
}

/// Parses `expect: { found | value | ... | message: {...}, or_silence, retry }`.
pub fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let f = cx.fields(node, EXPECT_KEYS, "a dht-ring expect")?;
    let mut forms: Vec<&'static str> = ANSWERS.to_vec();
    forms.push("message");
    let (key, body) = cx.one_of(
        node,
        &f,
        &forms,
        "a dht-ring expect reads one message:",
        "e.g. expect: { found: { tid: 2, node: 14 } }",
    )?;
    let mut checks = Vec::new();
    match &body.data {
        Data::Null => {}
        Data::Map(pairs) => {
            for (k, v) in pairs {
                checks.push((cx.string(k, "a field")?, want(v, cx)?, k.loc));
            }
        }
        _ => {
            cx.err_help(body, format!("{key} takes a mapping of fields"), "e.g. found: { tid: 2, node: 14 }");
            return None;
        }
    }
    Some(Box::new(RingExpect {
        kind: (key != "message").then(|| key.to_string()),
        checks,
        or_silence: cx.optional(&f, "or_silence", |cx, n| cx.duration(n, "or_silence"))?,
        retry: cx.optional(&f, "retry", |cx, n| cx.duration(n, "retry"))?,
        loc: node.loc,
    }))
}

/// A field as a check compares it: a node by its id, a list of nodes by theirs.
fn comparable(key: &str, v: &Value) -> Value {
    let id = |n: &Value| n.as_object().and_then(|o| o.get("id")).cloned().unwrap_or_else(|| n.clone());
    match (key, v) {
        ("node" | "predecessor" | "from" | "successor", Value::Object(_)) => id(v),
        ("successors", Value::Array(list)) => Value::Array(list.iter().map(id).collect()),
        _ => v.clone(),
    }
}

/// A node's id or a key written as text in a suite (`"${k}"`) compares as the number it is.
fn loosen(v: Value) -> Value {
    match v {
        Value::String(s) if s.parse::<i64>().is_ok() => s.parse::<i64>().map(Value::from).unwrap_or(Value::String(s)),
        Value::Array(l) => Value::Array(l.into_iter().map(loosen).collect()),
        v => v,
    }
}

impl StructuredExpect for RingExpect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let fail = |m: String, at: Loc| mismatch(m, self.describe(), msg).at(at);
        let Some(r) = msg.detail.as_ref().and_then(|d| d.downcast_ref::<RingMsg>()) else {
            return Err(fail("not a lab message (a JSON object)".into(), self.loc));
        };
        if let Some(k) = &self.kind {
            if r.kind() != k {
                let why = match r.kind() {
                    "error" => format!("an error ({}) where {k} was expected", r.str("error").unwrap_or("no sentence")),
                    other => format!("a `{other}` where a `{k}` was expected"),
                };
                return Err(fail(why, self.loc));
            }
        }
        for (key, want, at) in &self.checks {
            let got = r.obj.get(key).map(|v| comparable(key, v));
            match want {
                Want::Range(lo, hi) => {
                    let n = got.as_ref().and_then(Value::as_u64);
                    let ok = n.is_some_and(|n| lo.is_none_or(|l| n >= l) && hi.is_none_or(|h| n <= h));
                    if !ok {
                        let bounds = match (lo, hi) {
                            (Some(l), Some(h)) => format!("{l} to {h}"),
                            (None, Some(h)) => format!("at most {h}"),
                            (Some(l), None) => format!("at least {l}"),
                            (None, None) => "a number".into(),
                        };
                        return Err(fail(
                            format!(
                                "`{key}` is {}, where the case expects {bounds}",
                                got.map_or("missing".into(), |v| v.to_string())
                            ),
                            *at,
                        ));
                    }
                }
                Want::Is(j) => {
                    let want = loosen(j.render(cx).map_err(|e| fail(e, *at))?);
                    if got.as_ref() != Some(&want) {
                        return Err(fail(
                            format!("`{key}` is {}, not {want}", got.map_or("missing".into(), |v| v.to_string())),
                            *at,
                        ));
                    }
                }
            }
        }
        Ok(Vec::new())
    }

    fn templates(&self) -> Vec<&Template> {
        let mut out = Vec::new();
        for (_, w, _) in &self.checks {
            if let Want::Is(j) = w {
                j.templates(&mut out);
            }
        }
        out
    }

    fn captures(&self) -> Vec<String> {
        Vec::new()
    }

    fn describe(&self) -> String {
        let fields: Vec<String> = self
            .checks
            .iter()
            .map(|(k, w, _)| match w {
                Want::Is(Json::Int(i)) => format!("{k} {i}"),
                Want::Is(Json::Null) => format!("{k} null"),
                Want::Is(Json::Text(t)) => format!("{k} {}", t.as_literal().unwrap_or("(a variable)")),
                Want::Is(_) => format!("{k} as written"),
                Want::Range(lo, hi) => format!(
                    "{k} in {}..{}",
                    lo.map_or(String::new(), |l| l.to_string()),
                    hi.map_or(String::new(), |h| h.to_string())
                ),
            })
            .collect();
        let mut s = format!("a `{}`", self.kind.as_deref().unwrap_or("message"));
        if !fields.is_empty() {
            s.push_str(&format!(" with {}", fields.join(", ")));
        }
        if let Some(d) = self.or_silence {
            s.push_str(&format!(", or no answer within {d:?}"));
        }
        s
    }

    fn holds_after(&self) -> Option<Duration> {
        self.or_silence
    }

    fn retry(&self) -> Option<Duration> {
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
            local: Some("127.0.0.1:9000".parse().unwrap()),
        }
    }

    #[test]
    fn sends_requests_from_the_connection_as_their_origin() {
        let vars = Vars::default();
        let s = testing::send(&STEPS, "find_successor: { tid: 2, key: 13 }").unwrap();
        let v: Value = serde_json::from_slice(&s.render(&rcx(&vars)).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "find_successor", "tid": 2, "key": 13, "origin": "127.0.0.1:9000", "hops": 0,
                               "from": {"id": null, "addr": "127.0.0.1:9000"}})
        );
        assert!(testing::send(&STEPS, "message: { tid: 1 }").unwrap_err().contains("needs its type"));
    }

    #[test]
    fn checks_answers_by_node_ids_and_ranges() {
        let vars = Vars::default();
        let b = br#"{"type":"found","tid":2,"from":{"id":12,"addr":"a"},"key":13,"node":{"id":14,"addr":"b"},"hops":2}"#;
        let Frame::Message(m, _) = super::super::codec::RingCodec.decode(b, false).unwrap() else {
            unreachable!()
        };
        let e = testing::expect(&STEPS, "found: { tid: 2, node: 14, hops: { max: 3 } }").unwrap();
        assert!(e.check(&m, &rcx(&vars)).is_ok());
        let e = testing::expect(&STEPS, "found: { node: 1 }").unwrap();
        assert!(e.check(&m, &rcx(&vars)).unwrap_err().message.contains("`node` is 14, not 1"));
        let e = testing::expect(&STEPS, "found: { hops: { max: 1 } }").unwrap();
        assert!(e.check(&m, &rcx(&vars)).unwrap_err().message.contains("at most 1"));
        let e = testing::expect(&STEPS, "value: {}").unwrap();
        assert!(e.check(&m, &rcx(&vars)).unwrap_err().message.contains("a `found` where a `value`"));
    }
}
