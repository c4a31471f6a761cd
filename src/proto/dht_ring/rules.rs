//! The lab's conversation rule (docs/dht-ring.md): an answer carries the `tid` of a request the
//! other side sent. Answers to a routed request go to its origin from whichever node answered
//! it, so only pings, `successors` and `notify`, answered by the node asked, are paired here.

use super::codec::RingMsg;
use crate::proto::{Direction, Exchange, Finding, Level};

/// Findings over one conversation (a pair of UDP addresses).
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    let mut asked: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let side = |d: Direction| usize::from(d == Direction::ServerToClient);
    let mut out = Vec::new();
    for ex in conv {
        let Exchange::Message(dir, m) = ex else { continue };
        let Some(r) = m.detail.as_ref().and_then(|d| d.downcast_ref::<RingMsg>()) else {
            continue;
        };
        let Some(tid) = r.tid() else { continue };
        match r.kind() {
            "ping" | "successors" | "notify" => asked[side(*dir)].push(tid),
            "pong" | "successors_reply" | "ok" if !asked[side(dir.opposite())].contains(&tid) => out.push(Finding {
                level: Level::Must,
                rule: super::codec::LAB,
                text: format!(
                    "a `{}` with tid {tid} answers no request the other side sent: an answer carries its request's tid",
                    r.kind()
                ),
            }),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Codec, Frame, Message};

    fn m(b: &[u8]) -> Message {
        match super::super::codec::RingCodec.decode(b, false).unwrap() {
            Frame::Message(m, _) => m,
            Frame::Incomplete => unreachable!(),
        }
    }

    #[test]
    fn a_pong_carries_its_pings_tid() {
        let ping = m(br#"{"type":"ping","tid":1,"from":{"id":null,"addr":"a"}}"#);
        let good = m(br#"{"type":"pong","tid":1,"from":{"id":4,"addr":"b"}}"#);
        let bad = m(br#"{"type":"pong","tid":2,"from":{"id":4,"addr":"b"}}"#);
        let conv = [
            Exchange::Message(Direction::ClientToServer, &ping),
            Exchange::Message(Direction::ServerToClient, &good),
        ];
        assert!(conversation(&conv).is_empty());
        let conv = [
            Exchange::Message(Direction::ClientToServer, &ping),
            Exchange::Message(Direction::ServerToClient, &bad),
        ];
        assert!(conversation(&conv)[0].text.contains("tid 2"));
    }
}
