//! Protocol plug-ins. Each protocol is a folder of the same four files:
//!
//! - `codec.rs`: sans-IO framing (bytes in; `Incomplete`, a message and the bytes used, or an error
//!   out) with the MUST/SHOULD findings a single message shows;
//! - `steps.rs`: the structured `send:`/`expect:` vocabulary suites use;
//! - `rules.rs`: passive rules over a whole conversation, for `wirecheck check`;
//! - `mod.rs`: the registry entry (name, transport, ports, first-bytes detection).
//!
//! What they all share is `common/`, in the same four files. The live runner, the transcript
//! renderer and the capture decoder all frame with the codec; nothing outside a protocol's folder
//! names it except the `PROTOCOLS` list below.

mod common;
pub use common::{actor, codec, rules, split, steps};

pub mod bittorrent;
pub mod bt_dht;
pub mod bt_tracker;
pub mod dash;
pub mod datagram;
pub mod dht_ring;
pub mod dns;
pub mod ftp;
pub mod http;
pub mod http2;
pub mod http3;
pub mod imap;
pub mod line;
pub mod pop3;
pub mod smtp;
pub mod tls;
pub mod websocket;

pub use codec::{
    escape_bytes, Codec, CodecError, Context, DataChannel, Direction, Exchange, Finding, Frame, Framer, Level, Message, SwarmEvent,
    Transfer, Transport,
};
pub use steps::{Mismatch, RenderCx, Steps, StructuredExpect, StructuredSend};
/// TLS secrets (an NSS key log), which captures, the live runner and QUIC share.
pub use tls::KeyLog;

/// A protocol: its framing, its defaults, its vocabulary and its rules.
pub trait Protocol: Send + Sync {
    /// Name used in suites (`protocol: line`).
    fn name(&self) -> &'static str;
    /// Default transport of `connect` and `listen`; most application protocols run over TCP.
    fn transport(&self) -> Transport {
        Transport::Tcp
    }
    /// The ALPN protocol ids (RFC 7301) that name this protocol over TLS, most preferred first;
    /// offered under `--tls`. Most protocols here have none and go by port.
    fn alpn(&self) -> &'static [&'static str] {
        &[]
    }
    /// Appended to each line of `send: [lines]`; the Internet's text protocols end lines in CRLF.
    fn line_ending(&self) -> &'static [u8] {
        b"\r\n"
    }
    /// A fresh decoder for one direction of one connection.
    fn codec(&self, dir: Direction) -> Box<dyn Codec>;
    /// A decoder for one direction of a connection over `transport` (DNS frames TCP with a length
    /// prefix and UDP by datagram); by default the same as `codec`.
    fn codec_on(&self, dir: Direction, _transport: Transport) -> Box<dyn Codec> {
        self.codec(dir)
    }
    /// The structured `send:`/`expect:` vocabulary (the protocol's `steps.rs`).
    fn steps(&self) -> &'static Steps;
    /// Rules over a whole conversation (every request answered once, reply ids matching their
    /// queries), for `wirecheck check`; per-message rules are the codec's findings.
    fn conversation_rules(&self, _conv: &[Exchange<'_>]) -> Vec<Finding> {
        Vec::new()
    }
    /// The same rules over a conversation whose start the capture missed
    /// (`Dialogue::joined_late`): a greeting and the replies to commands sent before it are not
    /// there to judge. By default the rules as they are.
    fn conversation_rules_from_middle(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        self.conversation_rules(conv)
    }
    /// Whether the server speaks first, with a greeting (SMTP, POP3, IMAP, FTP): a captured
    /// connection whose client spoke first is missing its greeting, so it is framed and judged
    /// as one the capture joined late.
    fn server_greets(&self) -> bool {
        false
    }
    /// Whether this message hands the connection over to another protocol (HTTP 101 Switching
    /// Protocols): what follows is not this protocol's to judge.
    fn switches_protocol(&self, _m: &Message) -> bool {
        false
    }
    /// The protocol that carries on after `m`, a message that switches protocols, when one in the
    /// registry frames it (HTTP/1.1's 101 to `Upgrade: h2c`: `http2`). Both directions are framed
    /// by its codecs from the byte after `m`, and judged by its rules.
    fn next_protocol(&self, _m: &Message) -> Option<&'static str> {
        None
    }
    /// Whether a request may be answered by another peer than the one asked (a DHT's owner of a
    /// key answers the request's origin): the harness's UDP client sockets then take datagrams
    /// from any address, not only from the one they send to.
    fn answers_from_elsewhere(&self) -> bool {
        false
    }
    /// Why `run --tls` does not apply to this protocol's suites, when it does not: a TCP protocol
    /// with no TLS of its own (the BitTorrent peer wire). UDP suites are refused for their transport.
    fn no_tls(&self) -> Option<&'static str> {
        None
    }
    /// Whether this protocol carries another one inside it, encrypted (TLS). A connection handed
    /// over to it (STARTTLS) is framed by its codec in a capture, which sees the records, and
    /// not in a live run's own record, which holds what the harness sent and read inside them.
    fn carries_others(&self) -> bool {
        false
    }
    /// For a protocol that carries others: what each side sent inside, given the connection's
    /// chunks in the order they went; each piece with the index of the chunk that completed it.
    /// An empty piece is that side's end of what it carries (TLS's close_notify), which may come
    /// well before its TCP FIN. None when it cannot be opened (no keys, or keys that do not fit).
    fn open(&self, _chunks: &[(Direction, &[u8])], _cx: &Context) -> Option<Vec<(usize, Direction, Vec<u8>)>> {
        None
    }
    /// The fixed bytes every client of this protocol opens a connection with (HTTP/2's connection
    /// preface): a conversation opening with them is this protocol whatever its port.
    fn preface(&self) -> Option<&'static [u8]> {
        None
    }
    /// Why the connection ends after `m`, a message read from the peer, if `m` says so (HTTP: a
    /// response with `Connection: close`, or HTTP/1.0 without keep-alive, RFC 9112 §9.3). The
    /// runner then sends nothing more on it (RFC 9112 §9.6: a client MUST NOT send further
    /// requests) and `expect: { open_unless_announced }` accepts the close.
    fn announces_close(&self, _m: &Message) -> Option<&'static str> {
        None
    }
    /// The actor the harness can play for this protocol (`actors:` in a suite), if any.
    fn actor(&self) -> Option<&'static actor::ActorKind> {
        None
    }
    /// For messages of sub-streams that may interleave in any order (HTTP/2's streams), the
    /// sub-stream a message (as its transcript line reads) belongs to: snapshots order messages
    /// by it, keeping each sub-stream's own order.
    fn interleaved_key(&self, _text: &str) -> Option<u32> {
        None
    }
    /// Two consecutive messages of one side (as their transcript lines read, the first maybe
    /// already merged) that snapshots show as one, because where one ends and the next begins
    /// is the sender's choice at the moment (HTTP/2's DATA frames of a stream, as large as flow
    /// control allowed when each was sent); None keeps them apart.
    fn snapshot_merge(&self, _first: &str, _next: &str) -> Option<String> {
        None
    }
    /// A message (as its transcript line reads, placeholders in) as snapshots show it: a part
    /// whose content is the peer's timing (the nodes a DHT node had learnt when it answered)
    /// shown by its shape only. By default the line as it is.
    fn snapshot_line(&self, text: &str) -> String {
        text.to_string()
    }
    /// Whether the harness's own messages, when one is sent again just as it was (a query asked
    /// again while the peer is still learning, `retry`), show once in snapshots: how many times
    /// it went out is the peer's timing. Off by default: a case that sends a message twice on
    /// purpose (a stub asking again to see a cache) keeps both.
    fn snapshot_dedup_sent(&self) -> bool {
        false
    }
    /// Whether a message (as its transcript line reads) is left out of snapshots: one whose
    /// presence depends on timing only, not on what the case asked (HTTP/3's QPACK streams,
    /// which a server opens whenever it likes, RFC 9204 §4.2).
    fn snapshot_skips(&self, _text: &str) -> bool {
        false
    }
    /// Whether a message (as its transcript line reads) of an actor's conversation is left out
    /// of snapshots: one that says what a program chose at random or by timing (which piece it
    /// asked a swarm's peer for, whom it unchoked), where the set of distinct messages varies.
    fn actor_snapshot_skips(&self, _text: &str) -> bool {
        false
    }
    /// A message in a few words, for an arrow of a report's ladder diagram (its tooltip has the
    /// whole summary): the summary's first line, unless that line says little (DNS's dig header).
    fn label(&self, m: &Message) -> String {
        m.summary.lines().next().unwrap_or_default().to_string()
    }
    /// What the data connections its control conversations open are called in a capture (FTP:
    /// `ftp-data`), for a protocol that opens any; they carry raw bytes, framed by no codec.
    fn data_protocol(&self) -> Option<&'static str> {
        None
    }
    /// The data connections a control conversation announced so far, in order, each with the
    /// command that used it (FTP: 227 and 229 replies, PORT and EPRT commands, then the next
    /// RETR, STOR, LIST ...).
    fn data_channels(&self, _control: &[Exchange<'_>]) -> Vec<DataChannel> {
        Vec::new()
    }
    /// Rules over a control conversation and what its data connections did (FTP: 150 before the
    /// data, 226 after the close), for `wirecheck check`. `times` holds each exchange's capture
    /// time, on the clock of the transfers' times.
    fn transfer_rules(&self, _control: &[Exchange<'_>], _times: &[u64], _transfers: &[Transfer]) -> Vec<Finding> {
        Vec::new()
    }
    /// What `m` means to a swarm picture (BitTorrent's piece and choke messages), for reports
    /// that draw which peer sent which piece when.
    fn swarm_event(&self, _m: &Message) -> Option<SwarmEvent> {
        None
    }
    /// Server ports this protocol is usually spoken on (capture decoding reads them first).
    fn ports(&self) -> &'static [u16] {
        &[]
    }
    /// Whether a conversation whose first bytes each way are `client` and `server` (either may
    /// be empty) looks like this protocol, when its port says nothing.
    fn detect(&self, _transport: Transport, _client: &[u8], _server: &[u8]) -> bool {
        false
    }
}

static PROTOCOLS: &[&dyn Protocol] = &[
    &line::Line,
    &line::LineCrlf,
    &datagram::Datagram,
    // Before HTTP: a tracker's GET /announce is HTTP/1 too, and detection takes the first that claims it.
    &bt_tracker::BtTracker,
    // Before HTTP too: a request for an MPD opens a DASH conversation.
    &dash::Dash,
    &http::Http,
    &http2::Http2,
    &http3::Http3,
    &smtp::Smtp,
    &pop3::Pop3,
    &imap::Imap,
    &dns::Dns,
    &ftp::Ftp,
    &tls::Tls,
    &bittorrent::BitTorrent,
    &bt_dht::BtDht,
    &dht_ring::DhtRing,
    &websocket::WebSocket,
];

/// Every protocol, for `protocol:` lookups and suggestions.
pub fn all() -> &'static [&'static dyn Protocol] {
    PROTOCOLS
}

/// The protocol called `name`.
pub fn find(name: &str) -> Option<&'static dyn Protocol> {
    PROTOCOLS.iter().copied().find(|p| p.name() == name)
}

/// The protocol called `name`, or raw datagrams when there is none: framing bytes as they came
/// is always possible, so a transcript never fails for an unknown name.
pub fn find_or_raw(name: &str) -> &'static dyn Protocol {
    find(name).unwrap_or(&datagram::Datagram)
}

/// Whether `name` is some protocol's data connections (`ftp-data`): raw bytes, framed by no codec.
pub fn is_data_protocol(name: &str) -> bool {
    PROTOCOLS.iter().any(|p| p.data_protocol() == Some(name))
}

/// The protocol whose client preface `client` (a conversation's first client bytes) opens with.
pub fn by_preface(client: &[u8]) -> Option<&'static dyn Protocol> {
    PROTOCOLS
        .iter()
        .copied()
        .find(|p| p.preface().is_some_and(|pre| client.starts_with(pre)))
}

/// The protocol carrying others (TLS) that a conversation opening with `client` speaks, if any.
pub fn carrier(transport: Transport, client: &[u8]) -> Option<&'static dyn Protocol> {
    PROTOCOLS
        .iter()
        .copied()
        .find(|p| p.carries_others() && p.detect(transport, client, &[]))
}

/// The protocol that takes the connection over after `m`, which `proto` framed (see
/// [`Protocol::next_protocol`]).
pub fn hands_over(proto: &dyn Protocol, m: &Message) -> Option<&'static dyn Protocol> {
    proto.next_protocol(m).and_then(find)
}

/// The protocol usually spoken on a server port.
pub fn by_port(port: u16) -> Option<&'static dyn Protocol> {
    PROTOCOLS.iter().copied().find(|p| p.ports().contains(&port))
}

/// The protocol a conversation's first bytes each way look like; when none claims them, text
/// lines over TCP (`line-crlf` if the first bytes hold a CRLF) or else raw datagrams.
pub fn identify(transport: Transport, client: Option<&[u8]>, server: Option<&[u8]>, first: Option<&[u8]>) -> &'static dyn Protocol {
    let (c, s) = (client.unwrap_or_default(), server.unwrap_or_default());
    if let Some(p) = PROTOCOLS.iter().copied().find(|p| p.detect(transport, c, s)) {
        return p;
    }
    match (transport, first) {
        (Transport::Tcp, Some(b)) if line::looks_like_text(b) => {
            if b.windows(2).any(|w| w == b"\r\n") {
                &line::LineCrlf
            } else {
                &line::Line
            }
        }
        _ => &datagram::Datagram,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_finds_protocols() {
        assert_eq!(find("line").unwrap().transport(), Transport::Tcp);
        assert_eq!(find("datagram").unwrap().transport(), Transport::Udp);
        assert!(find("nope").is_none());
    }

    #[test]
    fn names_and_ports_are_unique() {
        let mut names: Vec<_> = all().iter().map(|p| p.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all().len());
        let mut ports: Vec<u16> = all().iter().flat_map(|p| p.ports().iter().copied()).collect();
        let n = ports.len();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), n, "a port claimed by two protocols");
    }

    #[test]
    fn identifies_by_first_bytes_then_falls_back_to_lines_or_datagrams() {
        let id = |t, c: &[u8], s: &[u8]| identify(t, Some(c), Some(s), Some(if c.is_empty() { s } else { c })).name();
        assert_eq!(id(Transport::Tcp, b"GET / HTTP/1.1\r\n", b""), "http");
        assert_eq!(id(Transport::Tcp, b"EHLO x\r\n", b"220 hi\r\n"), "smtp");
        assert_eq!(id(Transport::Tcp, b"", b"+OK ready\r\n"), "pop3");
        assert_eq!(id(Transport::Tcp, b"", b"* OK ready\r\n"), "imap");
        assert_eq!(id(Transport::Tcp, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b""), "http2");
        assert_eq!(
            by_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04").map(|p| p.name()),
            Some("http2")
        );
        assert!(by_preface(b"GET / HTTP/1.1\r\n").is_none());
        assert_eq!(id(Transport::Tcp, b"hello\r\n", b""), "line-crlf");
        assert_eq!(id(Transport::Tcp, b"hello\n", b""), "line");
        assert_eq!(id(Transport::Tcp, b"\x00\x01", b""), "datagram");
        assert_eq!(id(Transport::Tcp, b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", b""), "tls");
        assert_eq!(id(Transport::Udp, b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", b""), "datagram");
        assert_eq!(id(Transport::Udp, b"ping", b""), "datagram");
    }
}
