//! Link and network layers: from a captured frame to an IP packet, and from an IP payload to a
//! TCP segment or UDP datagram. Cut packets (small snaplen) are decoded as far as they go.

use std::net::IpAddr;

use etherparse::{IpNumber, LaxIpSlice};

/// What is wrong with a packet.
pub type PacketError = String;

/// The link types understood.
pub const LINK_NULL: u32 = 0;
/// Ethernet.
pub const LINK_ETHERNET: u32 = 1;
/// LINKTYPE_RAW.
pub const LINK_RAW: u32 = 101;
/// OpenBSD loopback (like NULL, network byte order).
pub const LINK_LOOP: u32 = 108;
/// Linux cooked capture v1.
pub const LINK_SLL: u32 = 113;
/// Raw IPv4.
pub const LINK_IPV4: u32 = 228;
/// Raw IPv6.
pub const LINK_IPV6: u32 = 229;
/// Linux cooked capture v2.
pub const LINK_SLL2: u32 = 276;
/// Linux netfilter log messages (NFLOG): a header, then type-length-value attributes.
pub const LINK_NFLOG: u32 = 239;

/// The NFLOG attribute that carries the packet, network header first (NFULA_PAYLOAD).
const NFULA_PAYLOAD: u16 = 9;

/// The network-layer bytes of a frame, or why there are none.
#[derive(Debug, PartialEq, Eq)]
pub enum Link<'a> {
    /// An IPv4 or IPv6 packet (maybe cut short).
    Ip(&'a [u8]),
    /// Something else (ARP, LLDP, …), skipped.
    NotIp,
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn by_ethertype(t: u16, rest: &[u8]) -> Link<'_> {
    match t {
        ETH_IPV4 | ETH_IPV6 => Link::Ip(rest),
        _ => Link::NotIp,
    }
}

/// Whether [`link`] understands `linktype`.
pub fn supported(linktype: u32) -> bool {
    matches!(
        linktype,
        LINK_ETHERNET | LINK_NULL | LINK_LOOP | LINK_RAW | LINK_IPV4 | LINK_IPV6 | LINK_SLL | LINK_SLL2 | LINK_NFLOG
    )
}

/// VLAN ids kept per frame, outermost first; tags deeper than this are not told apart.
pub const MAX_VLANS: usize = 8;

/// Strips the link header of `linktype` from `data`.
pub fn link(linktype: u32, data: &[u8]) -> Result<Link<'_>, PacketError> {
    link_tagged(linktype, data).map(|(l, _)| l)
}

/// Strips the link header of `linktype` from `data`, with the VLAN ids of its 802.1Q tags,
/// outermost first: the same addresses on two VLANs are two networks.
pub fn link_tagged(linktype: u32, data: &[u8]) -> Result<(Link<'_>, Vec<u16>), PacketError> {
    let mut vlans = Vec::new();
    let l = match linktype {
        LINK_ETHERNET => {
            let mut t = be16(data, 12).ok_or("truncated Ethernet header")?;
            let mut at = 14;
            // 802.1Q / QinQ: any number of stacked tags.
            while ETH_VLAN.contains(&t) {
                let tci = be16(data, at).ok_or("truncated 802.1Q tag")?;
                if vlans.len() < MAX_VLANS {
                    vlans.push(tci & 0x0fff);
                }
                t = be16(data, at + 2).ok_or("truncated 802.1Q tag")?;
                at += 4;
            }
            by_ethertype(t, &data[at..])
        }
        LINK_NULL | LINK_LOOP => {
            let h: [u8; 4] = data.get(..4).ok_or("truncated loopback header")?.try_into().unwrap_or_default();
            // NULL stores the address family in the capturing host's byte order (LOOP: network).
            let fam = if linktype == LINK_LOOP || (h[0] == 0 && h[1] == 0) {
                u32::from_be_bytes(h)
            } else {
                u32::from_le_bytes(h)
            };
            match fam {
                // AF_INET; AF_INET6 differs by OS (BSD 24, FreeBSD 28, macOS 30, Linux 10).
                2 | 10 | 24 | 28 | 30 => Link::Ip(&data[4..]),
                _ => Link::NotIp,
            }
        }
        LINK_RAW | LINK_IPV4 | LINK_IPV6 => Link::Ip(data),
        LINK_SLL => {
            let t = be16(data, 14).ok_or("truncated Linux SLL header")?;
            by_ethertype(t, &data[16..])
        }
        LINK_SLL2 => {
            let t = be16(data, 0).ok_or("truncated Linux SLL2 header")?;
            if data.len() < 20 {
                return Err("truncated Linux SLL2 header".into());
            }
            by_ethertype(t, &data[20..])
        }
        LINK_NFLOG => nflog(data)?,
        other => return Err(format!("link type {other} is not supported")),
    };
    Ok((l, vlans))
}

/// The IP packet of an NFLOG message: its payload attribute, when the header's address family
/// is IPv4 or IPv6.
fn nflog(data: &[u8]) -> Result<Link<'_>, PacketError> {
    let family = *data.first().ok_or("truncated NFLOG header")?;
    if data.len() < 4 {
        return Err("truncated NFLOG header".into());
    }
    // AF_INET and Linux's AF_INET6: NFLOG is Linux's.
    if family != 2 && family != 10 {
        return Ok(Link::NotIp);
    }
    // Attribute lengths and types are in the capturing host's byte order; every type is
    // below 256, which tells the order from the first attribute's type.
    let little = *data.get(7).ok_or("truncated NFLOG attribute")? == 0;
    let read16 = |at: usize| {
        let b = [*data.get(at)?, *data.get(at + 1)?];
        Some(if little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    };
    let mut at = 4;
    while at < data.len() {
        let (Some(len), Some(kind)) = (read16(at), read16(at + 2)) else {
            return Err("truncated NFLOG attribute".into());
        };
        let len = usize::from(len);
        if len < 4 {
            return Err(format!("NFLOG attribute length {len} is below 4"));
        }
        if kind == NFULA_PAYLOAD {
            // A payload cut by the snaplen ends where the captured bytes do.
            let end = (at + len).min(data.len());
            return Ok(Link::Ip(&data[at + 4..end]));
        }
        // Attributes are padded to 4 bytes.
        at += len.div_ceil(4) * 4;
    }
    Ok(Link::NotIp)
}

/// The fragment fields of a packet (IPv4's header, or IPv6's fragment header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Identification (16 bits in IPv4, 32 in IPv6).
    pub id: u32,
    /// Offset of this fragment's payload in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
}

/// An IP packet's addresses and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Protocol number of the payload (6 TCP, 17 UDP).
    pub proto: u8,
    /// The payload as captured.
    pub payload: &'a [u8],
    /// How long the header says the payload is (more than `payload.len()` when cut).
    pub claimed_len: usize,
    /// Fragment fields, when this is a fragment.
    pub fragment: Option<Fragment>,
}

/// Parses an IPv4 or IPv6 packet, tolerating a cut payload.
pub fn ip(data: &[u8]) -> Result<IpPacket<'_>, PacketError> {
    let version = data.first().map(|b| b >> 4);
    let (slice, _ext_err) = LaxIpSlice::from_slice(data).map_err(|e| match version {
        Some(4) => format!("truncated or malformed IPv4 header ({e})"),
        Some(6) => format!("truncated or malformed IPv6 header ({e})"),
        _ => format!("not an IP packet ({e})"),
    })?;
    let payload = slice.payload();
    let (claimed_len, fragment) = match &slice {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            let hl = usize::from(h.ihl()) * 4;
            let claimed = usize::from(h.total_len()).saturating_sub(hl);
            let frag = (h.more_fragments() || h.fragments_offset().value() != 0).then(|| Fragment {
                id: u32::from(h.identification()),
                offset: u32::from(h.fragments_offset().value()) * 8,
                more: h.more_fragments(),
            });
            (claimed, frag)
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            let ext = v6.extensions().slice().len();
            // An atomic fragment (offset 0, no more) needs no reassembly (RFC 8200 §4.5).
            let frag = payload
                .fragmented
                .then(|| {
                    v6.extensions().clone().into_iter().find_map(|e| match e {
                        etherparse::Ipv6ExtensionSlice::Fragment(f) => Some(Fragment {
                            id: f.identification(),
                            offset: u32::from(f.fragment_offset().value()) * 8,
                            more: f.more_fragments(),
                        }),
                        _ => None,
                    })
                })
                .flatten();
            (usize::from(h.payload_length()).saturating_sub(ext), frag)
        }
    };
    let claimed_len = if payload.incomplete {
        claimed_len.max(payload.payload.len())
    } else {
        payload.payload.len()
    };
    Ok(IpPacket {
        src: slice.source_addr(),
        dst: slice.destination_addr(),
        proto: payload.ip_number.0,
        payload: payload.payload,
        claimed_len,
        fragment,
    })
}

/// A TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful with `ack`).
    pub ack_no: u32,
    /// Receive window as sent, unscaled (0 means closed whatever the scale).
    pub window: u16,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// The payload bytes captured.
    pub payload: Vec<u8>,
    /// Payload bytes the packet carried that the capture cut off.
    pub missing: u32,
}

/// A UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The payload captured.
    pub payload: Vec<u8>,
    /// Whether the capture cut it.
    pub truncated: bool,
    /// Payload bytes the capture cut off (as far as the headers tell).
    pub missing: u32,
}

/// The transport layer of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Tcp(TcpSegment),
    /// UDP.
    Udp(UdpDatagram),
    /// Another protocol (ICMP, …), skipped.
    Other,
}

/// Parses the transport header of an IP payload; `claimed_len` is how long the IP header says
/// the payload is. Ok(None): the transport header itself was cut by the capture.
pub fn transport(proto: u8, payload: &[u8], claimed_len: usize) -> Result<Option<Transport>, PacketError> {
    let cut = claimed_len > payload.len();
    match IpNumber(proto) {
        IpNumber::TCP => {
            // Ports, sequence number and flags are in the first 14 bytes; a header cut after
            // them (options lost to the snaplen) still says what the segment did.
            if payload.len() < if cut { 14 } else { 20 } {
                return if cut { Ok(None) } else { Err("truncated TCP header".into()) };
            }
            let off = usize::from(payload[12] >> 4) * 4;
            if off < 20 {
                return Err(format!("TCP data offset {off} is below 20"));
            }
            if payload.len() < off && !cut {
                return Err("truncated TCP options".into());
            }
            let flags = payload[13];
            let seq = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
            let ack_no = u32::from_be_bytes([payload[8], payload[9], payload[10], payload[11]]);
            // The window follows the flags: a header cut right after them lost it.
            let window = be16(payload, 14).unwrap_or(u16::MAX);
            let data = payload.get(off..).unwrap_or_default().to_vec();
            let total = claimed_len.saturating_sub(off);
            let missing = u32::try_from(total.saturating_sub(data.len())).unwrap_or(u32::MAX);
            Ok(Some(Transport::Tcp(TcpSegment {
                sport: u16::from_be_bytes([payload[0], payload[1]]),
                dport: u16::from_be_bytes([payload[2], payload[3]]),
                seq,
                ack_no,
                window,
                syn: flags & 0x02 != 0,
                ack: flags & 0x10 != 0,
                fin: flags & 0x01 != 0,
                rst: flags & 0x04 != 0,
                payload: data,
                missing,
            })))
        }
        IpNumber::UDP => {
            if payload.len() < 8 {
                return if cut { Ok(None) } else { Err("truncated UDP header".into()) };
            }
            let ulen = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
            let end = if (8..=payload.len()).contains(&ulen) { ulen } else { payload.len() };
            Ok(Some(Transport::Udp(UdpDatagram {
                sport: u16::from_be_bytes([payload[0], payload[1]]),
                dport: u16::from_be_bytes([payload[2], payload[3]]),
                payload: payload[8..end].to_vec(),
                truncated: cut || ulen > payload.len(),
                missing: u32::try_from(claimed_len.max(ulen).saturating_sub(payload.len())).unwrap_or(u32::MAX),
            })))
        }
        _ => Ok(Some(Transport::Other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator (no extra dependency).
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let len = (xorshift(&mut s) % 120) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| xorshift(&mut s) as u8).collect();
            // Make many of them look like IP to get past the first check.
            if len > 0 && xorshift(&mut s) % 2 == 0 {
                data[0] = if xorshift(&mut s) % 2 == 0 { 0x45 } else { 0x60 };
            }
            for lt in [LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_SLL, LINK_SLL2, LINK_IPV4, LINK_NFLOG, 999] {
                if let Ok(Link::Ip(b)) = link(lt, &data) {
                    if let Ok(p) = ip(b) {
                        let _ = transport(p.proto, p.payload, p.claimed_len);
                    }
                }
            }
            let _ = transport(6, &data, len + (xorshift(&mut s) % 50) as usize);
            let _ = transport(17, &data, len);
        }
    }

    #[test]
    fn stacked_vlan_tags_are_skipped() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0, 30, 0x81, 0x00, 0, 20, 0x08, 0x00, 0x45]);
        assert_eq!(link(LINK_ETHERNET, &f), Ok(Link::Ip(&[0x45][..])));
        assert_eq!(link_tagged(LINK_ETHERNET, &f), Ok((Link::Ip(&[0x45][..]), vec![30, 20])));
    }

    #[test]
    fn nflog_payload_in_either_byte_order() {
        let ip = [0x45, 0, 0, 20];
        // Big-endian attributes: a 5-byte prefix (padded to 8), then the payload.
        let mut be = vec![2, 0, 0, 1, 0, 9, 0, 10, b'p', b'r', b'e', 0, 0, 0, 0, 0];
        be.extend_from_slice(&[0, 8, 0, 9]);
        be.extend_from_slice(&ip);
        assert_eq!(link(LINK_NFLOG, &be), Ok(Link::Ip(&ip[..])));
        let le = [10, 0, 0, 1, 8, 0, 9, 0, 0x60, 0, 0, 0];
        assert_eq!(link(LINK_NFLOG, &le), Ok(Link::Ip(&[0x60, 0, 0, 0][..])));
        // Not an IP family, and no payload attribute: nothing to decode.
        assert_eq!(link(LINK_NFLOG, &[7, 0, 0, 1, 8, 0, 9, 0, 1, 2, 3, 4]), Ok(Link::NotIp));
        assert_eq!(link(LINK_NFLOG, &[2, 0, 0, 1, 8, 0, 1, 0, 1, 2, 3, 4]), Ok(Link::NotIp));
    }
}
