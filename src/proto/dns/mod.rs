//! DNS (RFC 1035, RFC 6891 EDNS0, RFC 7766 over TCP): the codec, dig-like renderings, and
//! structured `send: { query | response }` / `expect: { rcode, flags, answer, ... }` for suites.

pub mod actor;
pub mod codec;
pub mod rules;
pub mod steps;
pub mod text;
pub mod wire;

use crate::proto::{Codec, Direction, Exchange, Finding, Frame, Protocol, Steps, Transport};
pub use codec::{for_transport, DnsCodec, DnsFrame};
pub use wire::{DnsMessage, Edns, Name, Question, RData, Record};

/// The `dns` protocol.
pub struct Dns;

impl Protocol for Dns {
    fn name(&self) -> &'static str {
        "dns"
    }
    fn transport(&self) -> Transport {
        Transport::Udp
    }
    fn line_ending(&self) -> &'static [u8] {
        b""
    }
    fn codec(&self, dir: Direction) -> Box<dyn Codec> {
        self.codec_on(dir, Transport::Udp)
    }
    fn codec_on(&self, dir: Direction, transport: Transport) -> Box<dyn Codec> {
        Box::new(DnsCodec::new(dir, transport))
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
    /// A query by its question, a response by its status and first answer (or the server it
    /// refers to): dig's header line, the summary's first, says neither.
    fn label(&self, m: &crate::proto::Message) -> String {
        let Some(f) = m.detail.as_ref().and_then(|d| d.downcast_ref::<DnsFrame>()) else {
            return m.summary.lines().next().unwrap_or_default().to_string();
        };
        let msg = &f.msg;
        let question = msg
            .questions
            .first()
            .map(|q| format!("{} {}", q.name, wire::type_name(q.qtype)))
            .unwrap_or_default();
        if !msg.qr {
            return format!("query {question}");
        }
        let truncated = if msg.tc { " (TC)" } else { "" };
        let more = |n: usize| if n > 1 { format!(" +{}", n - 1) } else { String::new() };
        let what = match (msg.answer.first(), msg.authority.first()) {
            (Some(a), _) => format!("{} {}{}", wire::type_name(a.rtype), text::rdata_text(a), more(msg.answer.len())),
            (None, Some(ns)) if ns.rtype == wire::rtype::NS => format!("referral to {}{}", text::rdata_text(ns), more(msg.authority.len())),
            _ => "no answer".into(),
        };
        format!("{}{truncated}: {what}", text::rcode_name(msg.rcode))
    }
    fn ports(&self) -> &'static [u16] {
        &[53]
    }
    fn detect(&self, transport: Transport, client: &[u8], _server: &[u8]) -> bool {
        // A query header (QR clear, one question) that the codec frames as a whole message.
        let is_query = client.len() >= 12 && u16::from_be_bytes([client[2], client[3]]) & wire::QR.mask == 0 && client[4..6] == [0, 1];
        transport == Transport::Udp
            && is_query
            && !is_netbios(client)
            && matches!(
                DnsCodec::new(Direction::ClientToServer, Transport::Udp).decode(client, true),
                Ok(Frame::Message(..))
            )
    }
}

/// NetBIOS name service type NB (RFC 1002 §4.2.1.3); in DNS 0x20 is NIMLOC, hardly ever asked.
const NBNS_NB: u16 = 0x20;
/// NetBIOS name service type NBSTAT; in DNS 0x21 is SRV, so the name must decide too.
const NBNS_NBSTAT: u16 = 0x21;

/// Whether `packet`, which has a DNS-like header, is NetBIOS name service (RFC 1002, UDP 137):
/// its questions ask for NB or NBSTAT of names in NetBIOS first-level encoding (RFC 1001 §14.1:
/// the 16-byte NetBIOS name as 32 letters 'A' to 'P', one per half-byte, then an optional scope).
/// Its header and names parse as DNS, so only this tells the two apart.
pub fn is_netbios(packet: &[u8]) -> bool {
    let Ok(parsed) = wire::parse(packet) else { return false };
    let qs = &parsed.msg.questions;
    let encoded = |l: &[u8]| l.len() == 32 && l.iter().all(|b| (b'A'..=b'P').contains(b));
    !qs.is_empty()
        && qs
            .iter()
            .all(|q| [NBNS_NB, NBNS_NBSTAT].contains(&q.qtype) && q.name.labels.first().is_some_and(|l| encoded(l)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NetBIOS name query (RFC 1002 §4.2.12) for `name` padded to 15 bytes plus `suffix`.
    fn nbns_query(name: &str, suffix: u8, qtype: u16) -> Vec<u8> {
        let mut nb = [b' '; 16];
        nb[..name.len()].copy_from_slice(name.as_bytes());
        nb[15] = suffix;
        let mut p = vec![0x12, 0x34, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 32];
        p.extend(nb.iter().flat_map(|b| [b'A' + (b >> 4), b'A' + (b & 0x0f)]));
        p.push(0);
        p.extend(qtype.to_be_bytes());
        p.extend([0, 1]);
        p
    }

    #[test]
    fn detection_refuses_netbios_name_service_queries() {
        let nb = nbns_query("WORKGROUP", 0x1d, NBNS_NB);
        assert!(is_netbios(&nb));
        assert!(!Dns.detect(Transport::Udp, &nb, b""));
        let stat = nbns_query("*", 0, NBNS_NBSTAT);
        assert!(!Dns.detect(Transport::Udp, &stat, b""));
        assert_eq!(
            crate::proto::identify(Transport::Udp, Some(&nb), None, Some(&nb)).name(),
            "datagram"
        );
        assert!(crate::proto::by_port(137).is_none_or(|p| p.name() != "dns"));
    }

    #[test]
    fn detection_keeps_dns_queries_even_of_srv_or_long_labels() {
        let mut q = nbns_query("WORKGROUP", 0x1d, 1);
        assert!(Dns.detect(Transport::Udp, &q, b""), "type A of an odd name is DNS");
        // SRV is 0x21 too: a lowercase or non-'A'..'P' label is a DNS name.
        let n = q.len();
        q[n - 4..n - 2].copy_from_slice(&NBNS_NBSTAT.to_be_bytes());
        q[13] = b'a';
        assert!(Dns.detect(Transport::Udp, &q, b""));
    }
}
