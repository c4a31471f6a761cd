//! HTTP/1's conversation rules, and where HTTP/1 stops being the protocol on a connection.

use super::parse;
use crate::proto::{Direction, Exchange, Finding, Level, Message};

/// Whether this message hands the connection over to another protocol.
pub fn switches_protocol(m: &Message) -> bool {
    // 101 Switching Protocols (RFC 9110 §15.2.2), or the HTTP/2 preface a client with prior
    // knowledge opens with (RFC 9113 §3.4), met here only when a conversation opening with it was
    // framed as HTTP/1 on purpose: HTTP/2 frames follow.
    m.text == "PRI * HTTP/2.0"
        || m.detail
            .as_ref()
            .and_then(|d| d.downcast_ref::<parse::HttpMessage>())
            .and_then(|h| h.status())
            == Some(101)
}

/// The protocol a 101 response hands the connection to, when the registry frames it: `h2c` is
/// HTTP/2 over cleartext TCP (RFC 7540 §3.2; RFC 9113 §3.1 keeps the token's meaning),
/// `websocket` RFC 6455 (§4.2.2: the 101 carries `Upgrade: websocket`).
pub fn next_protocol(m: &Message) -> Option<&'static str> {
    let h = m.detail.as_ref()?.downcast_ref::<parse::HttpMessage>()?;
    if h.status() != Some(101) {
        return None;
    }
    if h.has_token("Upgrade", "h2c") {
        Some("http2")
    } else if h.has_token("Upgrade", "websocket") {
        Some("websocket")
    } else {
        None
    }
}

/// Why a response ends its connection, if it does (RFC 9112 §9.3): it lists `close` in
/// Connection, or it is HTTP/1.0 without `keep-alive`. Requests and interim responses never do.
pub fn announces_close(m: &Message) -> Option<&'static str> {
    let h = m.detail.as_ref()?.downcast_ref::<parse::HttpMessage>()?;
    let status = h.status()?;
    if (100..200).contains(&status) && status != 101 {
        return None;
    }
    if h.has_token("Connection", "close") {
        Some("the response says Connection: close, RFC 9112 §9.6")
    } else if h.version < (1, 1) && !h.has_token("Connection", "keep-alive") {
        Some("an HTTP/1.0 response without keep-alive ends its connection, RFC 9112 §9.3")
    } else {
        None
    }
}

/// Findings over one HTTP/1 conversation: one final response per request (RFC 9110 §15,
/// RFC 9112 §9.3.2); a server closing with requests unanswered is a SHOULD (RFC 9112 §9.6).
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    // Totals, not running counts: a request head answered before its body (an error, or
    // 100-continue refused) only frames once the body or the close arrives.
    let (mut requests, mut finals) = (0usize, Vec::new());
    let (mut client_closed, mut server_closed_early) = (false, None);
    for ex in conv {
        match ex {
            // A malformed or unfinished request may still be answered (400, 405, 413 ...).
            Exchange::Message(Direction::ClientToServer, _) | Exchange::Unframed(Direction::ClientToServer) => requests += 1,
            Exchange::Message(Direction::ServerToClient, m) => {
                let status = m
                    .detail
                    .as_ref()
                    .and_then(|d| d.downcast_ref::<parse::HttpMessage>())
                    .and_then(|h| h.status());
                // 1xx responses are interim: the request still gets its final one.
                if status.is_some_and(|s| !(100..200).contains(&s) || s == 101) {
                    finals.push(m.text.clone());
                }
            }
            Exchange::Closed(Direction::ClientToServer) => client_closed = true,
            Exchange::Closed(Direction::ServerToClient) if !client_closed && server_closed_early.is_none() => {
                server_closed_early = Some((requests, finals.len()));
            }
            _ => {}
        }
    }
    if finals.len() > requests {
        out.push(Finding {
            level: Level::Must,
            rule: "RFC 9110 §15, RFC 9112 §9.3.2",
            text: format!(
                "{} final responses to {requests} request(s): \"{}\" answers none",
                finals.len(),
                finals[requests]
            ),
        });
    }
    if let Some((asked, answered)) = server_closed_early.filter(|(a, n)| n < a) {
        out.push(Finding {
            level: Level::Should,
            rule: "RFC 9112 §9.6",
            text: format!("the server closed with {} of {asked} request(s) unanswered", asked - answered),
        });
    }
    out
}
