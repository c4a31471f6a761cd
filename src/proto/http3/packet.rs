//! QUIC packets as a capture holds them (RFC 9000 §17): what is readable without a key log. One
//! message per datagram, each of its coalesced packets on a line: long headers with their type,
//! version, connection ids, token and length; both sides' Initials opened (`initial.rs`: their
//! keys come from the client's first Destination Connection ID, which anyone on the path sees);
//! Version Negotiation with its versions; Retry; a short header (1-RTT) with its size, since its
//! connection id's length is the receiver's choice and its payload is protected; padding after
//! a datagram's packets.

use crate::proto::{Codec, CodecError, Frame, Message};

use super::codec::varint;

/// The version this decoder names (RFC 9000); others are shown by number.
const V1: u32 = 0x0000_0001;

/// What a framed datagram holds, for counting: its packets (padding after them as one).
#[derive(Debug, Clone, Copy)]
pub struct QuicDatagram {
    /// How many packets the datagram carries.
    pub packets: usize,
}

/// The codec of one side's captured QUIC datagrams.
#[derive(Default)]
pub struct PacketCodec {
    /// The server's side: its Initials open with the server's keys.
    server: bool,
    /// The Destination Connection ID both sides' Initial keys come from (RFC 9001 §5.2): the
    /// client's first Initial's, or its latest after a Retry; the server's side learns it from
    /// the client's datagrams.
    initial_dcid: Option<Vec<u8>>,
}

impl PacketCodec {
    /// The codec of the client's (`server` false) or the server's datagrams.
    pub fn new(server: bool) -> PacketCodec {
        PacketCodec {
            server,
            initial_dcid: None,
        }
    }
}

fn hex(b: &[u8]) -> String {
    match b.is_empty() {
        true => "-".into(),
        false => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn version_name(v: u32) -> String {
    match v {
        V1 => "v1".into(),
        0x6b33_43cf => "v2".into(),
        v if v & 0x0f0f_0f0f == 0x0a0a_0a0a => format!("0x{v:08x} (reserved, RFC 9000 §15)"),
        v => format!("0x{v:08x}"),
    }
}

/// Reads one packet at `at`: its line and where the next one starts (None: the rest of the
/// datagram is this packet). `keys` is the side's Initial keys' connection id, when known, and
/// learns a client Initial's own.
/// `before` is the Destination Connection ID of the datagram's packet before this one, if any:
/// packets coalesced in a datagram share it (RFC 9000 §12.2), so bytes after a long header that
/// do not name it are padding, as a client pads its first datagram to 1200 bytes (§14.1).
fn packet(d: &[u8], at: usize, before: Option<&[u8]>, keys: &mut Keys<'_>) -> Result<(String, Option<usize>), String> {
    let first = d[at];
    if first & 0x80 == 0 {
        let rest = d.len() - at;
        return Ok(match before {
            Some(id) if !d[at + 1..].starts_with(id) => (
                format!("{rest} bytes of padding after the packets (no packet of this connection, RFC 9000 §12.2)"),
                None,
            ),
            _ => (format!("1-RTT (short header) {rest} bytes, protected"), None),
        });
    }
    let cut = |what: &str| format!("the long header ends inside its {what}");
    let version = u32::from_be_bytes(d.get(at + 1..at + 5).ok_or_else(|| cut("version"))?.try_into().expect("4 bytes"));
    let mut p = at + 5;
    let cid = |p: &mut usize, what: &str| -> Result<Vec<u8>, String> {
        let len = usize::from(*d.get(*p).ok_or_else(|| cut(what))?);
        let id = d.get(*p + 1..*p + 1 + len).ok_or_else(|| cut(what))?.to_vec();
        *p += 1 + len;
        Ok(id)
    };
    let dcid = cid(&mut p, "destination connection id")?;
    let scid = cid(&mut p, "source connection id")?;
    let ids = format!("dcid={} scid={}", hex(&dcid), hex(&scid));
    if version == 0 {
        let versions: Vec<String> = d[p..]
            .chunks(4)
            .map(|c| match <[u8; 4]>::try_from(c) {
                Ok(v) => version_name(u32::from_be_bytes(v)),
                Err(_) => format!("{} stray bytes", c.len()),
            })
            .collect();
        return Ok((format!("Version Negotiation {ids} versions: {}", versions.join(" ")), None));
    }
    if version != V1 {
        return Ok((
            format!("long header, version {} {ids}, {} bytes", version_name(version), d.len() - at),
            None,
        ));
    }
    let kind = match (first >> 4) & 0x3 {
        0 => "Initial",
        1 => "0-RTT",
        2 => "Handshake",
        _ => {
            return Ok((
                format!("Retry {ids} token {} bytes, integrity tag", (d.len() - p).saturating_sub(16)),
                None,
            ))
        }
    };
    let mut token = String::new();
    if kind == "Initial" {
        let (len, next) = varint(d, p).ok_or_else(|| cut("token length"))?;
        p = next + usize::try_from(len).map_err(|_| cut("token"))?;
        if p > d.len() {
            return Err(cut("token"));
        }
        token = format!(" token={len}");
    }
    let (len, next) = varint(d, p).ok_or_else(|| cut("length"))?;
    let end = next
        .checked_add(usize::try_from(len).unwrap_or(usize::MAX))
        .filter(|e| *e <= d.len());
    let Some(end) = end else {
        return Err(format!("the {kind} packet's length ({len}) runs past the datagram"));
    };
    let opened = match kind {
        "Initial" => keys.open(&d[at..end], &dcid, next - at),
        _ => None,
    };
    let line = match opened {
        Some((pn, plain)) => format!(
            "{kind} {} {ids}{token} length={len} pn={pn}: {}",
            version_name(version),
            super::initial::frames(&plain)
        ),
        None => format!("{kind} {} {ids}{token} length={len}, protected", version_name(version)),
    };
    Ok((line, (end < d.len()).then_some(end)))
}

/// Where one side's Initial keys come from while a datagram is read.
struct Keys<'a> {
    server: bool,
    dcid: &'a mut Option<Vec<u8>>,
}

impl Keys<'_> {
    /// Opens an Initial whose header names `dcid`: a client's first (or first after a Retry)
    /// with keys of its own DCID, which the side then keeps; any other with the kept one.
    fn open(&mut self, packet: &[u8], dcid: &[u8], pn_at: usize) -> Option<(u64, Vec<u8>)> {
        use super::initial::open_as;
        if let Some(kept) = self.dcid.as_deref() {
            if let Ok(opened) = open_as(packet, kept, pn_at, self.server) {
                return Some(opened);
            }
        }
        if self.server {
            return None;
        }
        let opened = open_as(packet, dcid, pn_at, false).ok()?;
        *self.dcid = Some(dcid.to_vec());
        Some(opened)
    }
}

impl Codec for PacketCodec {
    /// The server's side learns the connection id its Initial keys come from: a client Initial
    /// that opens with its own DCID's keys (the first, or the first after a Retry) names it.
    fn peer_sent(&mut self, bytes: &[u8]) {
        if !self.server || !looks_like_quic(bytes) || (bytes[0] >> 4) & 0x3 != 0 {
            return;
        }
        let mut learned = None;
        let mut keys = Keys {
            server: false,
            dcid: &mut learned,
        };
        if packet(bytes, 0, None, &mut keys).is_ok() {
            if let Some(dcid) = learned {
                self.initial_dcid = Some(dcid);
            }
        }
    }

    fn decode(&mut self, buf: &[u8], _eof: bool) -> Result<Frame, CodecError> {
        if buf.is_empty() {
            return Ok(Frame::Incomplete);
        }
        let mut lines = Vec::new();
        let mut at = Some(0);
        let mut keys = Keys {
            server: self.server,
            dcid: &mut self.initial_dcid,
        };
        while let Some(p) = at {
            let before = (p > 0).then(|| long_header_dcid(buf)).flatten();
            let (line, next) = packet(buf, p, before, &mut keys).map_err(|reason| CodecError { offset: p, reason })?;
            lines.push(line);
            at = next;
        }
        let text = format!("QUIC {}", lines.join("; "));
        let summary = match lines.len() {
            1 => text.clone(),
            _ => format!("QUIC datagram, {} packets\n{}", lines.len(), lines.join("\n")),
        };
        let mut m = Message::plain(text, summary);
        m.detail = Some(std::sync::Arc::new(QuicDatagram { packets: lines.len() }));
        Ok(Frame::Message(m, buf.len()))
    }
}

/// The Destination Connection ID of the long-header packet a datagram opens with.
fn long_header_dcid(d: &[u8]) -> Option<&[u8]> {
    let len = usize::from(*d.get(5)?);
    (d.first()? & 0x80 != 0).then_some(())?;
    d.get(6..6 + len)
}

/// Whether a datagram opens like a QUIC version 1 long header (RFC 9000 §17.2: the form and
/// fixed bits set, then the version).
pub fn looks_like_quic(d: &[u8]) -> bool {
    d.len() >= 7 && d[0] & 0xc0 == 0xc0 && d.get(1..5) == Some(&V1.to_be_bytes()[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initial(dcid: &[u8], scid: &[u8], payload: usize) -> Vec<u8> {
        let mut d = vec![0xc3, 0, 0, 0, 1, dcid.len() as u8];
        d.extend_from_slice(dcid);
        d.push(scid.len() as u8);
        d.extend_from_slice(scid);
        d.push(0); // no token
        super::super::codec::put_varint(&mut d, payload as u64);
        d.extend(std::iter::repeat_n(0xaa, payload));
        d
    }

    #[test]
    fn parses_coalesced_long_headers() {
        let mut d = initial(&[1, 2, 3, 4], &[9], 20);
        let mut hs = vec![0xe0, 0, 0, 0, 1, 4, 1, 2, 3, 4, 0];
        super::super::codec::put_varint(&mut hs, 4);
        hs.extend([0; 4]);
        d.extend(hs);
        let padded = [d.clone(), vec![0; 6]].concat();
        d.extend([0x40, 1, 2, 3, 4, 5]);
        let Frame::Message(m, used) = PacketCodec::default().decode(&d, true).unwrap() else {
            panic!()
        };
        assert_eq!(used, d.len());
        assert_eq!(
            m.summary,
            "QUIC datagram, 3 packets\nInitial v1 dcid=01020304 scid=09 token=0 length=20, protected\n\
             Handshake v1 dcid=01020304 scid=- length=4, protected\n1-RTT (short header) 6 bytes, protected"
        );
        assert!(looks_like_quic(&d));
        // Bytes after the packets that name no connection id of theirs are padding (§12.2, §14.1).
        let Frame::Message(m, _) = PacketCodec::default().decode(&padded, true).unwrap() else {
            panic!()
        };
        assert!(
            m.summary
                .ends_with("\n6 bytes of padding after the packets (no packet of this connection, RFC 9000 §12.2)"),
            "{}",
            m.summary
        );
    }

    #[test]
    fn parses_version_negotiation() {
        let d = [0x80, 0, 0, 0, 0, 1, 5, 1, 6, 0, 0, 0, 1, 0x1a, 0x2a, 0x3a, 0x4a];
        let Frame::Message(m, _) = PacketCodec::default().decode(&d, true).unwrap() else {
            panic!()
        };
        assert_eq!(
            m.text,
            "QUIC Version Negotiation dcid=05 scid=06 versions: v1 0x1a2a3a4a (reserved, RFC 9000 §15)"
        );
    }

    #[test]
    fn rejects_cut_headers() {
        let d = initial(&[1; 8], &[2; 8], 30);
        let e = PacketCodec::default().decode(&d[..d.len() - 5], true).unwrap_err();
        assert!(e.reason.contains("runs past"), "{e}");
        assert!(PacketCodec::default()
            .decode(&[0xc0, 0, 0], true)
            .unwrap_err()
            .reason
            .contains("version"));
    }
}
