//! DNS's conversation rules: responses answer queries.

use super::DnsFrame;
use crate::proto::{Direction, Exchange, Finding, Level};

/// Findings over one DNS conversation: a server's message has QR set and answers a query id
/// sent on the same conversation (RFC 1035 §4.1.1).
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut asked: Vec<u16> = Vec::new();
    for ex in conv {
        let Exchange::Message(dir, m) = ex else { continue };
        let Some(f) = m.detail.as_ref().and_then(|d| d.downcast_ref::<DnsFrame>()) else {
            continue;
        };
        match dir {
            Direction::ClientToServer => asked.push(f.msg.id),
            Direction::ServerToClient => {
                if !f.msg.qr {
                    out.push(Finding {
                        level: Level::Must,
                        rule: "RFC 1035 §4.1.1",
                        text: format!("a message from the server has QR=0 (id {})", f.msg.id),
                    });
                }
                if !asked.contains(&f.msg.id) {
                    out.push(Finding {
                        level: Level::Must,
                        rule: "RFC 1035 §4.1.1",
                        text: format!(
                            "response id {} matches no query sent on this conversation (ids sent: {asked:?})",
                            f.msg.id
                        ),
                    });
                }
            }
        }
    }
    out
}
