//! The circular DHT lab's messages (`docs/dht-ring.md`): one JSON object per UDP datagram, with
//! a `type`, an integer transaction id `tid` and the sending node `from`.
//!
//! JSON comes from serde_json. Every datagram frames as one message: one that is not the lab's
//! gets a MUST finding naming what is missing, so a case fails with the reason.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::proto::{escape_bytes, Codec, CodecError, Finding, Frame, Level, Message};

/// The rule every finding here cites.
pub const LAB: &str = "dht-ring lab (docs/dht-ring.md)";
/// The largest datagram the lab allows.
pub const MAX_DATAGRAM: usize = 1400;

/// A lab message: its JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct RingMsg {
    /// The object as it came.
    pub obj: Map<String, Value>,
}

/// A node as messages describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// Its identifier (None for a client that is no node).
    pub id: Option<u64>,
    /// Where it listens, `IP:PORT`.
    pub addr: String,
}

impl NodeRef {
    /// Reads `{"id": N, "addr": "IP:PORT"}`.
    pub fn read(v: &Value) -> Option<NodeRef> {
        let o = v.as_object()?;
        let id = match o.get("id")? {
            Value::Null => None,
            n => Some(n.as_u64()?),
        };
        Some(NodeRef {
            id,
            addr: o.get("addr")?.as_str()?.to_string(),
        })
    }

    /// As a message writes it.
    pub fn json(&self) -> Value {
        serde_json::json!({ "id": self.id, "addr": self.addr })
    }

    fn text(&self) -> String {
        match self.id {
            Some(id) => format!("{id}@{}", self.addr),
            None => format!("client@{}", self.addr),
        }
    }
}

impl RingMsg {
    /// Its `type`.
    pub fn kind(&self) -> &str {
        self.obj.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// Its transaction id.
    pub fn tid(&self) -> Option<u64> {
        self.obj.get("tid").and_then(Value::as_u64)
    }

    /// An integer field.
    pub fn int(&self, key: &str) -> Option<u64> {
        self.obj.get(key).and_then(Value::as_u64)
    }

    /// A node field (`from`, `node`, `predecessor`).
    pub fn node(&self, key: &str) -> Option<NodeRef> {
        self.obj.get(key).and_then(NodeRef::read)
    }

    /// The `successors` list.
    pub fn successors(&self) -> Option<Vec<NodeRef>> {
        self.obj.get("successors")?.as_array()?.iter().map(NodeRef::read).collect()
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.obj.get(key).and_then(Value::as_str)
    }
}

fn must(text: impl Into<String>) -> Finding {
    Finding {
        level: Level::Must,
        rule: LAB,
        text: text.into(),
    }
}

/// The fields each type carries besides `type`, `tid` and `from`.
pub fn fields_of(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "ping" | "pong" | "successors" | "ok" => &[],
        "find_successor" | "get" | "join" => &["key", "origin", "hops"],
        "put" => &["key", "value", "origin", "hops"],
        "notify" => &[],
        "found" => &["key", "node", "hops"],
        "value" => &["key", "value", "hops"],
        "stored" => &["key", "hops"],
        "welcome" => &["predecessor", "successors", "items"],
        "successors_reply" => &["predecessor", "successors"],
        "error" => &["error"],
        _ => return None,
    })
}

/// Reads one datagram: the object, or why it is none.
pub fn parse(b: &[u8]) -> Result<(RingMsg, Vec<Finding>), String> {
    let v: Value = serde_json::from_slice(b).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("JSON, but not an object".into());
    };
    let m = RingMsg { obj };
    let mut findings = Vec::new();
    if b.len() > MAX_DATAGRAM {
        findings.push(must(format!("{} bytes, over the lab's {MAX_DATAGRAM}", b.len())));
    }
    if m.tid().is_none() {
        findings.push(must("no integer `tid`: every message carries its transaction id"));
    }
    match m.obj.get("from") {
        Some(f) if NodeRef::read(f).is_some() => {}
        _ => findings.push(must(
            "no `from` of the form {\"id\": N, \"addr\": \"IP:PORT\"}: every message names the node that sent it",
        )),
    }
    let kind = m.obj.get("type").and_then(Value::as_str);
    if kind.is_none() {
        findings.push(must("no `type` string"));
    }
    // An unknown type is the receiver's to refuse (an `error`), not a broken message.
    if let Some((kind, fields)) = kind.and_then(|k| Some((k, fields_of(k)?))) {
        let missing: Vec<&str> = fields.iter().copied().filter(|f| !m.obj.contains_key(*f)).collect();
        if !missing.is_empty() {
            findings.push(must(format!("a `{kind}` without {}", missing.join(", "))));
        }
        for key in ["node", "predecessor"] {
            if let Some(v) = m.obj.get(key) {
                if !v.is_null() && NodeRef::read(v).is_none() {
                    findings.push(must(format!(
                        "`{key}` is not a node ({{\"id\": N, \"addr\": \"IP:PORT\"}}) or null"
                    )));
                }
            }
        }
        if m.obj.contains_key("successors") && m.successors().is_none_or(|s| s.len() != 2) {
            findings.push(must("`successors` is not a list of two nodes"));
        }
    }
    Ok((m, findings))
}

/// One line for a message: its type, tid and sender, then its fields in a fixed order.
pub fn line(m: &RingMsg) -> String {
    let mut s = format!("{} tid={}", m.kind(), m.tid().map_or("-".into(), |t| t.to_string()));
    if let Some(f) = m.node("from") {
        s.push_str(&format!(" from={}", f.text()));
    }
    for (key, v) in &m.obj {
        if matches!(key.as_str(), "type" | "tid" | "from") {
            continue;
        }
        let text = match (key.as_str(), v) {
            ("node" | "predecessor" | "successor", v) if NodeRef::read(v).is_some() => {
                NodeRef::read(v).map(|n| n.text()).unwrap_or_default()
            }
            ("successors", Value::Array(list)) => {
                let nodes: Vec<String> = list.iter().map(|n| NodeRef::read(n).map_or(n.to_string(), |n| n.text())).collect();
                format!("[{}]", nodes.join(" "))
            }
            (_, v) => v.to_string(),
        };
        s.push_str(&format!(" {key}={text}"));
    }
    s
}

/// Frames each datagram as one lab message.
#[derive(Debug, Default)]
pub struct RingCodec;

impl Codec for RingCodec {
    fn decode(&mut self, buf: &[u8], _eof: bool) -> Result<Frame, CodecError> {
        let message = match parse(buf) {
            Ok((m, findings)) => {
                let text = line(&m);
                Message {
                    text: text.clone(),
                    summary: text,
                    findings,
                    detail: Some(Arc::new(m)),
                }
            }
            Err(why) => {
                let text = format!("datagram {} bytes \"{}\"", buf.len(), escape_bytes(buf, 120));
                Message {
                    text: text.clone(),
                    summary: text,
                    findings: vec![must(format!("not a lab message ({why}): every message is one JSON object"))],
                    detail: None,
                }
            }
        };
        Ok(Frame::Message(message, buf.len()))
    }
}

/// Whether `k` is in the clockwise interval `(a, b]` (`(a, b)` without `right`) of a circle of
/// `size` identifiers; `(a, a]` is the whole circle.
pub fn between(k: u64, a: u64, b: u64, right: bool, size: u64) -> bool {
    let (k, a, b) = (k % size, a % size, b % size);
    if a == b {
        return right || k != a;
    }
    let d = |x: u64| (x + size - a) % size;
    let (dk, db) = (d(k), d(b));
    dk > 0 && (dk < db || (right && dk == db))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(b: &[u8]) -> Message {
        match RingCodec.decode(b, false).unwrap() {
            Frame::Message(m, _) => m,
            Frame::Incomplete => unreachable!(),
        }
    }

    #[test]
    fn reads_the_labs_messages_and_names_what_is_missing() {
        let m = frame(
            br#"{"type":"found","tid":2,"from":{"id":4,"addr":"127.0.0.1:7004"},"key":4,"node":{"id":4,"addr":"127.0.0.1:7004"},"hops":0}"#,
        );
        assert!(m.findings.is_empty(), "{:?}", m.findings);
        assert_eq!(m.summary, "found tid=2 from=4@127.0.0.1:7004 hops=0 key=4 node=4@127.0.0.1:7004");
        let m = frame(br#"{"type":"found","from":{"id":4,"addr":"x"}}"#);
        let t: Vec<String> = m.findings.iter().map(|f| f.text.clone()).collect();
        assert!(
            t.iter().any(|f| f.contains("no integer `tid`")) && t.iter().any(|f| f.contains("without key, node, hops")),
            "{t:?}"
        );
        let m = frame(b"hello");
        assert!(m.findings[0].text.contains("not a lab message"));
        let m = frame(
            br#"{"type":"successors_reply","tid":1,"from":{"id":4,"addr":"a"},"predecessor":null,"successors":[{"id":5,"addr":"b"}]}"#,
        );
        assert!(m.findings.iter().any(|f| f.text.contains("two nodes")));
    }

    #[test]
    fn intervals_wrap_around_the_circle() {
        // The textbook: peers 1,3,4,5,8,10,12,14 (n = 4): key 13 -> 14, key 15 -> 1.
        assert!(between(13, 12, 14, true, 16));
        assert!(between(15, 14, 1, true, 16));
        assert!(between(0, 14, 1, true, 16));
        assert!(!between(14, 14, 1, true, 16));
        assert!(between(1, 14, 1, true, 16) && !between(1, 14, 1, false, 16));
        assert!(between(7, 3, 3, true, 16) && between(3, 3, 3, true, 16) && !between(3, 3, 3, false, 16));
    }
}
