//! `Upgrade: h2c` (RFC 7540 §3.2): an HTTP/1.1 request that asks for HTTP/2 is answered with
//! `101 Switching Protocols`, and its response goes out as stream 1 of the HTTP/2 connection that
//! follows. RFC 9113 §3.1 deprecates the token, but it is how the textbook's era of clients and
//! tools (`nghttp -u`, `curl --http2`) start cleartext HTTP/2.
//!
//! `h2` starts a server connection only from the client's preface: it cannot take a request that
//! came in HTTP/1.1 as an implicit stream 1. So after the 101 the server reads the preface and
//! first SETTINGS frame the client must send (RFC 7540 §3.5), and hands `h2` the connection as if
//! the client had sent, right after that SETTINGS, a HEADERS frame on stream 1 carrying the
//! request with END_STREAM. The settings of the request's `HTTP2-Settings` go first in that
//! SETTINGS frame, so the client's own frame still overrides them and still gets the one ACK it
//! waits for (the 101 acknowledges the header's, §3.2.1). The HEADERS block is literals without
//! indexing: it must leave `h2`'s dynamic table as empty as the client's encoder believes it is.
//!
//! Only a request without a body is upgraded, and only one that says everything §3.2 asks
//! (`Upgrade: h2c`, `Connection: Upgrade, HTTP2-Settings`, exactly one `HTTP2-Settings` in
//! base64url); any other is answered in HTTP/1.1, as RFC 9110 §7.8 lets a server ignore Upgrade.

use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::{check, stream, Config, Rewind, PREFACE};
use crate::guard::Stream;

/// The 101 that switches (RFC 9110 §15.2.2: it names the protocol switched to).
const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
/// A frame header's length (RFC 9113 §4.1).
const FRAME_HEADER: usize = 9;
/// The largest frame a client may send before it has the server's SETTINGS (§4.2: the default
/// SETTINGS_MAX_FRAME_SIZE); the synthetic HEADERS must fit it too.
const MAX_FRAME: usize = 16_384;
/// Fields an HTTP/2 request must not carry (RFC 9113 §8.2.2), plus the upgrade's own.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "host",
];

/// What the request asks for, when it is an upgrade this server takes: the settings of its
/// `HTTP2-Settings` (a SETTINGS frame's payload) and the field block of stream 1.
#[derive(Debug)]
pub(super) struct Offer {
    settings: Vec<u8>,
    block: Vec<u8>,
}

/// The upgrade `method target` with `fields` asks for, if this server takes it (`body`: the
/// request's length).
pub(super) fn offered(method: &str, target: &str, fields: &[(String, Vec<u8>)], body: u64) -> Option<Offer> {
    let values = |name: &'static str| {
        fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    };
    let tokens = |name: &'static str| {
        values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let connection = tokens("connection");
    let upgrade_ok = tokens("upgrade").iter().any(|t| t == "h2c")
        && connection.iter().any(|t| t == "upgrade")
        && connection.iter().any(|t| t == "http2-settings");
    let mut settings_values = values("http2-settings");
    let (Some(encoded), None) = (settings_values.next(), settings_values.next()) else {
        return None;
    };
    if !upgrade_ok || body != 0 || !target.starts_with('/') {
        return None;
    }
    // token68 in base64url; senders usually leave out the padding (RFC 7540 §3.2.1).
    let trimmed = encoded.trim_ascii();
    let unpadded = trimmed
        .strip_suffix(b"==")
        .or_else(|| trimmed.strip_suffix(b"="))
        .unwrap_or(trimmed);
    let settings = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded).ok()?;
    if settings.len() % 6 != 0 {
        return None;
    }
    let host = values("host").next()?;
    let mut block = Vec::new();
    literal(&mut block, b":method", method.as_bytes());
    literal(&mut block, b":scheme", b"http");
    literal(&mut block, b":authority", host);
    literal(&mut block, b":path", target.as_bytes());
    for (name, value) in fields {
        let name = name.to_ascii_lowercase();
        let te_other = name == "te" && !value.trim_ascii().eq_ignore_ascii_case(b"trailers");
        if HOP_BY_HOP.contains(&name.as_str()) || connection.contains(&name) || te_other {
            continue;
        }
        literal(&mut block, name.as_bytes(), value);
    }
    (block.len() <= MAX_FRAME).then_some(Offer { settings, block })
}

/// One field as a literal without indexing with a new name (RFC 7541 §6.2.2), no Huffman.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    for s in [name, value] {
        integer(out, s.len(), 7);
        out.extend_from_slice(s);
    }
}

/// An HPACK integer with an `n`-bit prefix whose other bits are 0 (RFC 7541 §5.1).
fn integer(out: &mut Vec<u8>, mut value: usize, n: u32) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(value as u8);
        return;
    }
    out.push(max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Sends the 101 and serves the connection as HTTP/2, the request as stream 1; `rest` is what
/// arrived after the request's head.
pub(super) async fn switch(mut stream: Stream, offer: Offer, mut rest: Vec<u8>, config: &Arc<Config>) {
    if !matches!(timeout(config.idle, stream.write_all(SWITCHING)).await, Ok(Ok(()))) {
        return;
    }
    // From here the connection is HTTP/2, idle time and stream limits are `stream.rs`'s.
    stream.untimed();
    let first_frame = loop {
        if let Some(len) = first_frame_len(&rest) {
            break len;
        }
        let mut more = vec![0; 4096];
        match timeout(config.idle, stream.read(&mut more)).await {
            Ok(Ok(n)) if n > 0 => rest.extend_from_slice(&more[..n]),
            _ => return,
        }
    };
    let synthetic = match first_frame {
        // The preface and a SETTINGS frame: stream 1 goes in right after it.
        Some(len) => {
            let (settings, after) = rest[PREFACE.len()..].split_at(len);
            let mut payload = offer.settings;
            payload.extend_from_slice(&settings[FRAME_HEADER..]);
            let mut bytes = PREFACE.to_vec();
            frame(&mut bytes, 0x4, 0, 0, &payload);
            // HEADERS, END_STREAM | END_HEADERS: the request is whole (it had no body).
            if !config.faults.has(super::fault::Fault::UpgradeForgetsRequest) {
                frame(&mut bytes, 0x1, 0x1 | 0x4, 1, &offer.block);
            }
            bytes.extend_from_slice(after);
            bytes
        }
        // Not what RFC 7540 §3.5 requires after a 101: h2 and the check answer it as they
        // answer any bad start of a connection.
        None => rest,
    };
    stream::serve(check::FrameCheck::new(Rewind::new(synthetic, stream), config.faults), config).await;
}

/// Whether `buf` holds the client's preface and its first frame: `Some(Some(len))` when that
/// frame is a SETTINGS of `len` bytes with its header, `Some(None)` when the bytes are not a
/// preface and a SETTINGS frame, `None` while more are needed.
fn first_frame_len(buf: &[u8]) -> Option<Option<usize>> {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        return Some(None);
    }
    let frame = buf.get(PREFACE.len()..PREFACE.len() + FRAME_HEADER)?;
    let len = u32::from_be_bytes([0, frame[0], frame[1], frame[2]]) as usize;
    let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
    // A SETTINGS without ACK on stream 0, of a size a client may send before it has the
    // server's: anything else is left for the check to refuse.
    if frame[3] != 0x4 || frame[4] & 0x1 != 0 || stream != 0 || len > MAX_FRAME {
        return Some(None);
    }
    (buf.len() >= PREFACE.len() + FRAME_HEADER + len).then_some(Some(FRAME_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    const ASKS: &[(&str, &str)] = &[
        ("Host", "localhost:8080"),
        ("Connection", "Upgrade, HTTP2-Settings"),
        ("Upgrade", "h2c"),
        ("HTTP2-Settings", "AAMAAABk"),
        ("User-Agent", "t/1"),
    ];

    #[test]
    fn takes_a_complete_offer() {
        let offer = offered("GET", "/index.html", &fields(ASKS), 0).expect("upgrade");
        // SETTINGS_MAX_CONCURRENT_STREAMS = 100.
        assert_eq!(offer.settings, [0, 3, 0, 0, 0, 100]);
        let mut decoder = fluke_hpack::Decoder::new();
        let decoded = decoder.decode(&offer.block).expect("decodes");
        let names: Vec<_> = decoded
            .iter()
            .map(|(n, v)| format!("{}={}", String::from_utf8_lossy(n), String::from_utf8_lossy(v)))
            .collect();
        assert_eq!(
            names,
            [
                ":method=GET",
                ":scheme=http",
                ":authority=localhost:8080",
                ":path=/index.html",
                "user-agent=t/1"
            ]
        );
        // Nothing was put in the dynamic table the client's encoder does not know of.
        assert!(decoder.decode(&[0xbe]).is_err(), "index 62 must be out of range");
    }

    #[test]
    fn ignores_incomplete_offers() {
        let without = |name: &str| fields(&ASKS.iter().copied().filter(|(n, _)| *n != name).collect::<Vec<_>>());
        assert!(offered("GET", "/", &without("HTTP2-Settings"), 0).is_none());
        assert!(offered("GET", "/", &without("Upgrade"), 0).is_none());
        let mut twice = fields(ASKS);
        twice.push(("HTTP2-Settings".into(), b"AAMAAABk".to_vec()));
        assert!(offered("GET", "/", &twice, 0).is_none(), "RFC 7540 §3.2.1: not with two");
        let mut no_option = fields(ASKS);
        no_option[1].1 = b"Upgrade".to_vec();
        assert!(
            offered("GET", "/", &no_option, 0).is_none(),
            "HTTP2-Settings must be a connection option"
        );
        assert!(offered("POST", "/echo", &fields(ASKS), 5).is_none(), "a body is not taken over");
        let mut bad = fields(ASKS);
        bad[3].1 = b"AAMAAA".to_vec();
        assert!(offered("GET", "/", &bad, 0).is_none(), "4 octets are no setting");
    }

    #[test]
    fn integers() {
        let mut out = Vec::new();
        integer(&mut out, 1337, 5);
        assert_eq!(out, [31, 154, 10]);
        out.clear();
        integer(&mut out, 127, 7);
        assert_eq!(out, [127, 0]);
    }

    #[test]
    fn first_frames() {
        let mut buf = PREFACE.to_vec();
        assert_eq!(first_frame_len(&buf), None);
        frame(&mut buf, 0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        assert_eq!(first_frame_len(&buf[..buf.len() - 1]), None);
        assert_eq!(first_frame_len(&buf), Some(Some(15)));
        assert_eq!(first_frame_len(b"GET / HTTP/1.1\r\n"), Some(None));
        let mut ping = PREFACE.to_vec();
        frame(&mut ping, 0x6, 0, 0, &[0; 8]);
        assert_eq!(first_frame_len(&ping), Some(None));
    }
}
