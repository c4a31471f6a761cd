//! DASH's conversation rules are HTTP/1's (one response per request, in order, RFC 9112 §9.3):
//! what DASH adds is in the messages (an MPD's findings, in the codec) and in what a player
//! asks across connections, which only the origin actor sees (`judge.rs`).

use crate::proto::{Exchange, Finding};

/// HTTP/1's rules over one connection.
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    crate::proto::http::rules::conversation(conv)
}
