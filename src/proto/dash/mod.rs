//! MPEG-DASH (ISO/IEC 23009-1) over HTTP/1.1, as K&R 2.6.2 teaches streaming: the HTTP/1 codec
//! with MPDs read in responses (`codec.rs`, `mpd.rs`), HTTP's steps with MPD and file checks
//! (`steps.rs`), and the origin actor a player under test streams from (`actor.rs`: the
//! presentation of `media.rs` under any addressing scheme, a bandwidth schedule, failing hosts),
//! whose record `judge.rs` judges (order, addressing, adaptation, stalls) and turns into QoE
//! figures. The lab's rules are `docs/dash.md`.

pub mod actor;
pub mod codec;
pub mod judge;
pub mod media;
pub mod mpd;
pub mod record;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Message, Protocol, Steps, Transport};
pub use codec::DashCodec;

/// The `dash` protocol.
pub struct Dash;

impl Protocol for Dash {
    fn name(&self) -> &'static str {
        "dash"
    }
    fn alpn(&self) -> &'static [&'static str] {
        &["http/1.1"]
    }
    fn no_tls(&self) -> Option<&'static str> {
        Some("the DASH lab (docs/dash.md) is HTTP/1.1 over clear TCP: its origin actor, reference origin and player speak no TLS yet")
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        Box::new(DashCodec::new(dir == Direction::ClientToServer))
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn actor(&self) -> Option<&'static crate::proto::actor::ActorKind> {
        Some(&actor::ACTOR)
    }
    /// Which segments a player asks for, and when, follows its throughput estimates: the origin's
    /// conversations differ from run to run; the judgements say what matters.
    fn actor_snapshot_skips(&self, _text: &str) -> bool {
        true
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation(conv)
    }
    fn announces_close(&self, m: &Message) -> Option<&'static str> {
        crate::proto::http::rules::announces_close(m)
    }
    fn label(&self, m: &Message) -> String {
        let first = m.summary.lines().next().unwrap_or_default().to_string();
        match m.summary.lines().find(|l| l.trim_start().starts_with("MPD: ")) {
            Some(mpd) => format!("{first} ({})", mpd.trim()),
            None => first,
        }
    }
    /// A request for an MPD (a `.mpd` target) is where a DASH conversation shows itself.
    fn detect(&self, transport: Transport, client: &[u8], _server: &[u8]) -> bool {
        let line = client.iter().position(|&b| b == b'\n').map_or(client, |n| &client[..n]);
        let line = String::from_utf8_lossy(line);
        let mut words = line.split(' ');
        let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next()) else {
            return false;
        };
        transport == Transport::Tcp
            && matches!(method, "GET" | "HEAD")
            && target.split(['?', '#']).next().is_some_and(|p| p.ends_with(".mpd"))
            && version.starts_with("HTTP/1.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_an_mpd_request_before_http() {
        let id = |c: &[u8]| crate::proto::identify(Transport::Tcp, Some(c), Some(b""), Some(c)).name();
        assert_eq!(id(b"GET /v/video.mpd HTTP/1.1\r\nHost: h\r\n\r\n"), "dash");
        assert_eq!(id(b"GET /v/video.mpd?x=1 HTTP/1.1\r\n"), "dash");
        assert_eq!(id(b"GET /index.html HTTP/1.1\r\n"), "http");
    }
}
