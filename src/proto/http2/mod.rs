//! HTTP/2 (RFC 9113) with HPACK (RFC 7541): a connection opened with the client's preface, or
//! handed over by HTTP/1.1's `Upgrade: h2c` and `101 Switching Protocols`; one message per frame.

pub mod actor;
pub mod codec;
pub mod hpack;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Protocol, Steps, Transport};
pub use codec::{render, Block, Body, H2Frame, Http2Codec, Kind, PREFACE};

/// The `http2` protocol.
pub struct Http2;

impl Protocol for Http2 {
    fn name(&self) -> &'static str {
        "http2"
    }
    // RFC 9113 §3.2: HTTP/2 over TLS is "h2", chosen by ALPN.
    fn alpn(&self) -> &'static [&'static str] {
        &["h2"]
    }
    fn line_ending(&self) -> &'static [u8] {
        b""
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        Box::new(Http2Codec::new(dir == Direction::ClientToServer))
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn actor(&self) -> Option<&'static crate::proto::actor::ActorKind> {
        Some(&actor::ACTOR)
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation(conv)
    }
    fn interleaved_key(&self, text: &str) -> Option<u32> {
        let rest = &text[text.find(" stream=")? + 8..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    }
    fn snapshot_merge(&self, first: &str, next: &str) -> Option<String> {
        let (a, b) = (data_frame(first)?, data_frame(next)?);
        (a.0 == b.0 && !a.1).then(|| {
            let end = if b.1 { "[END_STREAM] " } else { "" };
            format!("DATA stream={} {end}{} bytes in DATA frames", a.0, a.2 + b.2)
        })
    }
    fn preface(&self) -> Option<&'static [u8]> {
        Some(PREFACE)
    }
    fn detect(&self, transport: Transport, client: &[u8], _server: &[u8]) -> bool {
        // The first line is enough: a capture's first segment may stop before the rest.
        let line = b"PRI * HTTP/2.0\r\n";
        transport == Transport::Tcp && client.len() >= line.len() && PREFACE.starts_with(&client[..client.len().min(PREFACE.len())])
    }
}

/// A DATA frame's transcript line (or a merged run of them): its stream, whether it ends the
/// stream, and its bytes.
fn data_frame(text: &str) -> Option<(u32, bool, u64)> {
    let rest = text.strip_prefix("DATA stream=")?;
    let (stream, rest) = rest.split_once(' ')?;
    let (end, rest) = match rest.strip_prefix('[') {
        Some(flags) => {
            let (flags, rest) = flags.split_once("] ")?;
            (flags.split('|').any(|f| f.trim() == "END_STREAM"), rest)
        }
        None => (false, rest),
    };
    let (bytes, rest) = rest.split_once(' ')?;
    rest.starts_with("bytes").then_some(())?;
    Some((stream.parse().ok()?, end, bytes.parse().ok()?))
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    #[test]
    fn data_frames_of_a_stream_merge_in_snapshots() {
        let p = Http2;
        let a = "DATA stream=1 16384 bytes \"abc\"";
        let b = "DATA stream=1 [END_STREAM] 5089 bytes \"xyz\"";
        let merged = p.snapshot_merge(a, "DATA stream=1 16383 bytes \"def\"").unwrap();
        assert_eq!(merged, "DATA stream=1 32767 bytes in DATA frames");
        assert_eq!(
            p.snapshot_merge(&merged, b).unwrap(),
            "DATA stream=1 [END_STREAM] 37856 bytes in DATA frames"
        );
        // Another stream, an ended stream, another frame type: apart.
        assert_eq!(p.snapshot_merge(a, "DATA stream=3 10 bytes \"x\""), None);
        assert_eq!(p.snapshot_merge(b, a), None);
        assert_eq!(p.snapshot_merge(a, "HEADERS stream=1 [END_HEADERS] :status: 200"), None);
    }
}
