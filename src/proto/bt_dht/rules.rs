//! KRPC's conversation rule (BEP 5): a response or an error carries the transaction id of a
//! query the other side sent ("the response ... with the same transaction ID"), or the querier
//! cannot match it and drops it. Either side may query: DHT nodes are peers, so each direction
//! is judged against what the other asked. What one message shows alone (its shape, its id, its
//! compact nodes) is the codec's.

use super::codec::{show, Kind3, Krpc};
use crate::proto::{Direction, Exchange, Finding, Level};

/// Findings over one KRPC conversation (a pair of UDP addresses).
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    let mut asked: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let side = |d: Direction| usize::from(d == Direction::ServerToClient);
    let mut out = Vec::new();
    for ex in conv {
        let Exchange::Message(dir, m) = ex else { continue };
        let Some(k) = m.detail.as_ref().and_then(|d| d.downcast_ref::<Krpc>()) else {
            continue;
        };
        let Some(t) = &k.t else { continue };
        match &k.kind {
            Kind3::Query(_) => asked[side(*dir)].push(t.clone()),
            Kind3::Response | Kind3::Error(..) => {
                let other = &asked[side(dir.opposite())];
                if !other.contains(t) {
                    out.push(Finding {
                        level: Level::Must,
                        rule: super::codec::BEP5,
                        text: format!(
                            "{} with transaction id {} answers no query the other side sent: the answer carries its query's t",
                            if k.kind == Kind3::Response { "a response" } else { "an error" },
                            show(t)
                        ),
                    });
                }
            }
            Kind3::Other(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Codec, Frame, Message};

    fn m(b: &[u8]) -> Message {
        match super::super::codec::KrpcCodec.decode(b, false).unwrap() {
            Frame::Message(m, _) => m,
            Frame::Incomplete => unreachable!(),
        }
    }

    #[test]
    fn an_answer_must_carry_a_query_of_the_other_side() {
        let q = m(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
        let good = m(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
        let bad = m(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:zz1:y1:re");
        let conv = [
            Exchange::Message(Direction::ClientToServer, &q),
            Exchange::Message(Direction::ServerToClient, &good),
        ];
        assert!(conversation(&conv).is_empty());
        let conv = [
            Exchange::Message(Direction::ClientToServer, &q),
            Exchange::Message(Direction::ServerToClient, &bad),
        ];
        assert!(conversation(&conv)[0].text.contains("\"zz\""));
        // A node answers only the other side's queries, not its own.
        let conv = [
            Exchange::Message(Direction::ClientToServer, &q),
            Exchange::Message(Direction::ClientToServer, &good),
        ];
        assert_eq!(conversation(&conv).len(), 1);
    }
}
