//! Rules over a whole HTTP/3 connection for `wirecheck check`: each request stream the client
//! finished got a response or a reset before the connection ended (RFC 9114 §4.1: a response
//! completes the exchange; an unfinished one is reset or the connection closed), unless a GOAWAY
//! or a close came first. The rules one frame shows are the codec's findings.

use super::codec::{H3Kind, H3Message};
use crate::proto::{Direction, Exchange, Finding, Level};

fn detail(m: &crate::proto::Message) -> Option<&H3Message> {
    m.detail.as_ref()?.downcast_ref::<H3Message>()
}

/// The connection's findings.
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    let mut asked = Vec::new();
    let mut answered = Vec::new();
    let mut ended_early = false;
    for ex in conv {
        let Exchange::Message(dir, m) = ex else { continue };
        let Some(d) = detail(m) else { continue };
        match (dir, &d.kind, d.stream) {
            (Direction::ClientToServer, H3Kind::End(Some(_)), Some(s)) => asked.push(s),
            (Direction::ServerToClient, H3Kind::End(_) | H3Kind::Abort { .. }, Some(s)) => answered.push(s),
            (Direction::ServerToClient, H3Kind::Frame(f), _) if f.kind == 0x7 => ended_early = true,
            (_, H3Kind::Close { .. }, _) => ended_early = true,
            (Direction::ClientToServer, H3Kind::Abort { reset: true, .. }, Some(s)) => answered.push(s),
            _ => {}
        }
    }
    if ended_early {
        return Vec::new();
    }
    asked
        .into_iter()
        .filter(|s| !answered.contains(s))
        .map(|s| Finding {
            level: Level::Should,
            rule: "RFC 9114 §4.1",
            text: format!("request stream {s} was finished by the client and never answered, reset, or cut by a GOAWAY"),
        })
        .collect()
}
