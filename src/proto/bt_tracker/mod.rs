//! BitTorrent trackers: the HTTP tracker (BEP 3, BEP 23 compact peers, BEP 48 scrape) over TCP,
//! framed by the HTTP/1 codec with each message read as an announce or a scrape, and the UDP
//! tracker (BEP 15) over UDP. Bencode and metainfo files come from `bittorrent`.

pub mod actor;
pub mod codec;
pub mod rules;
pub mod steps;

use crate::proto::{Codec, Direction, Exchange, Finding, Message, Protocol, Steps, Transport};
pub use codec::{Answer, Ask, HttpTrackerCodec, Tracker, Udp, UdpTrackerCodec};

/// The `bt-tracker` protocol.
pub struct BtTracker;

impl Protocol for BtTracker {
    fn name(&self) -> &'static str {
        "bt-tracker"
    }
    fn no_tls(&self) -> Option<&'static str> {
        Some("a tracker suite speaks HTTP and UDP (BEP 15) on one port, and BEP 15 has no TLS")
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        self.codec_on(dir, Transport::Tcp)
    }
    fn codec_on(&self, dir: Direction, transport: Transport) -> Box<dyn Codec> {
        match transport {
            Transport::Udp => Box::new(UdpTrackerCodec::new(dir)),
            Transport::Tcp | Transport::Quic => Box::new(HttpTrackerCodec::new(dir)),
        }
    }
    fn steps(&self) -> &'static Steps {
        &steps::STEPS
    }
    fn actor(&self) -> Option<&'static crate::proto::actor::ActorKind> {
        Some(&actor::ACTOR)
    }
    /// A client announces with the counts it has at the time (uploaded, downloaded, left), from
    /// a port of its choosing, as often as its timing makes; the answers name the case's ports.
    fn actor_snapshot_skips(&self, _text: &str) -> bool {
        true
    }
    fn conversation_rules(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::conversation(conv)
    }
    fn conversation_rules_from_middle(&self, conv: &[Exchange<'_>]) -> Vec<Finding> {
        rules::from_middle(conv)
    }
    /// As HTTP/1 (RFC 9112 §9.3): `Connection: close`, or HTTP/1.0 without keep-alive, which
    /// trackers often answer in.
    fn announces_close(&self, m: &Message) -> Option<&'static str> {
        let Some(Tracker::Response(r)) = m.detail.as_ref()?.downcast_ref::<Tracker>() else {
            return None;
        };
        let h = &r.http;
        let status = h.status()?;
        if (100..200).contains(&status) && status != 101 {
            None
        } else if h.has_token("Connection", "close") {
            Some("the response says Connection: close, RFC 9112 §9.6")
        } else if h.version < (1, 1) && !h.has_token("Connection", "keep-alive") {
            Some("an HTTP/1.0 response without keep-alive ends its connection, RFC 9112 §9.3")
        } else {
            None
        }
    }
    /// What was asked or answered in a few words: an announce by its event and port, an answer
    /// by its peers, a UDP datagram by its kind.
    fn label(&self, m: &Message) -> String {
        let first = || m.summary.lines().next().unwrap_or_default().to_string();
        let Some(t) = m.detail.as_ref().and_then(|d| d.downcast_ref::<Tracker>()) else {
            return first();
        };
        let count = |n: usize| format!("{n} peer{}", if n == 1 { "" } else { "s" });
        match t {
            Tracker::Request(r) if r.ask == Ask::Announce => {
                let mut s = "announce".to_string();
                for p in ["event", "port"] {
                    if let Some(v) = r.param(p) {
                        s.push_str(&format!(" {p} {}", String::from_utf8_lossy(v)));
                    }
                }
                s
            }
            Tracker::Request(r) if r.ask == Ask::Scrape => {
                let n = r.params.iter().filter(|(k, _)| k == "info_hash").count();
                format!("scrape {n} torrent{}", if n == 1 { "" } else { "s" })
            }
            Tracker::Response(r) => match &r.answer {
                Answer::Announce(a) => format!("{} announce: {}", r.http.status().unwrap_or(0), count(a.peers.len())),
                Answer::Scrape(f) => format!(
                    "{} scrape: {} file{}",
                    r.http.status().unwrap_or(0),
                    f.len(),
                    if f.len() == 1 { "" } else { "s" }
                ),
                _ => first(),
            },
            Tracker::Udp(u) => match &u.msg {
                Udp::Announce(a) => format!("announce event {} port {}", codec::event_name(a.event), a.port),
                Udp::Announced { peers, .. } => format!("announced: {}", count(peers.len())),
                Udp::Scrape { info_hashes, .. } => format!("scrape {} torrents", info_hashes.len()),
                Udp::Scraped { files, .. } => format!("scraped {} torrents", files.len()),
                _ => first(),
            },
            _ => first(),
        }
    }
    fn ports(&self) -> &'static [u16] {
        &[6969]
    }
    fn detect(&self, transport: Transport, client: &[u8], _server: &[u8]) -> bool {
        match transport {
            Transport::Tcp => client.starts_with(b"GET /announce?") || client.starts_with(b"GET /scrape?"),
            Transport::Udp => client.len() >= 16 && client[..8] == codec::CONNECT_MAGIC.to_be_bytes(),
            Transport::Quic => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_tracker_requests_before_http() {
        let id = |t, c: &[u8]| crate::proto::identify(t, Some(c), Some(b""), Some(c)).name();
        assert_eq!(id(Transport::Tcp, b"GET /announce?info_hash=%00 HTTP/1.1\r\n"), "bt-tracker");
        assert_eq!(id(Transport::Tcp, b"GET /scrape?info_hash=%00 HTTP/1.1\r\n"), "bt-tracker");
        assert_eq!(id(Transport::Tcp, b"GET /announcements HTTP/1.1\r\n"), "http");
        let connect = Udp::Connect {
            protocol_id: codec::CONNECT_MAGIC,
            transaction: 1,
        }
        .encode();
        assert_eq!(id(Transport::Udp, &connect), "bt-tracker");
        assert_eq!(id(Transport::Udp, &connect[..15]), "datagram");
        assert_eq!(crate::proto::by_port(6969).map(|p| p.name()), Some("bt-tracker"));
    }
}
