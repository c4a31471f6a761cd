//! Synthetic TCP captures: connections opened, bytes sent and closes at chosen times, written as
//! an Ethernet pcap file, for tests that need an order no real server shows.

use std::net::SocketAddrV4;
use std::time::Duration;

use etherparse::PacketBuilder;

/// One connection of a synthetic capture.
struct Conn {
    client: SocketAddrV4,
    server: SocketAddrV4,
    /// Next sequence number of the client, then of the server.
    seq: [u32; 2],
    /// 802.1Q tag its frames carry, if any.
    vlan: Option<u16>,
}

/// A capture under construction; times are milliseconds from its start.
#[derive(Default)]
pub struct Pcap {
    conns: Vec<Conn>,
    packets: Vec<(Duration, Vec<u8>)>,
    /// Original lengths of the packets a snap length cut, by their index in `packets`.
    cut: std::collections::HashMap<usize, u32>,
}

/// Which end sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The end that connected.
    Client,
    /// The end that listened.
    Server,
}

impl Pcap {
    /// An empty capture.
    pub fn new() -> Pcap {
        Pcap::default()
    }

    fn frame(&mut self, ms: f64, c: usize, from: End, flags: &str, payload: &[u8]) {
        let conn = &self.conns[c];
        let (src, dst, me) = match from {
            End::Client => (conn.client, conn.server, 0),
            End::Server => (conn.server, conn.client, 1),
        };
        let (seq, ack) = (conn.seq[me], conn.seq[1 - me]);
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = match conn.vlan {
            Some(id) => eth
                .single_vlan(etherparse::VlanId::try_new(id).expect("a VLAN id"))
                .ipv4(src.ip().octets(), dst.ip().octets(), 64),
            None => eth.ipv4(src.ip().octets(), dst.ip().octets(), 64),
        };
        let mut b = ip.tcp(src.port(), dst.port(), seq, 65535);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(ack);
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if !payload.is_empty() {
            b = b.psh();
        }
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).expect("a frame");
        let used = payload.len() as u32 + u32::from(flags.contains('S')) + u32::from(flags.contains('F'));
        self.conns[c].seq[me] = seq.wrapping_add(used);
        self.packets.push((Duration::from_micros((ms * 1000.0) as u64), out));
    }

    /// A connection from `client` to `server` (`"10.0.0.1:40000"`), its handshake at `ms`.
    pub fn connect(&mut self, ms: f64, client: &str, server: &str) -> usize {
        self.connect_on(ms, client, server, None)
    }

    /// A connection like [`Pcap::connect`]'s whose frames carry the 802.1Q tag `vlan`.
    pub fn connect_on(&mut self, ms: f64, client: &str, server: &str, vlan: Option<u16>) -> usize {
        self.conns.push(Conn {
            client: client.parse().expect("client address"),
            server: server.parse().expect("server address"),
            seq: [1000, 50_000],
            vlan,
        });
        let c = self.conns.len() - 1;
        self.frame(ms, c, End::Client, "S", b"");
        self.frame(ms, c, End::Server, "SA", b"");
        self.frame(ms, c, End::Client, "A", b"");
        c
    }

    /// `bytes` from one end of connection `c` at `ms`, acknowledged at once.
    pub fn send(&mut self, ms: f64, c: usize, from: End, bytes: &[u8]) {
        self.frame(ms, c, from, "A", bytes);
        let other = if from == End::Client { End::Server } else { End::Client };
        self.frame(ms, c, other, "A", b"");
    }

    /// A TCP keep-alive probe from one end of connection `c` at `ms`: one garbage byte one
    /// before its next sequence number, answered by a duplicate ACK.
    pub fn keep_alive(&mut self, ms: f64, c: usize, from: End) {
        let me = usize::from(from == End::Server);
        self.conns[c].seq[me] = self.conns[c].seq[me].wrapping_sub(1);
        self.frame(ms, c, from, "A", b"\0");
        // The probe's byte is not in the stream: the next byte keeps its sequence number.
        let other = if from == End::Client { End::Server } else { End::Client };
        self.frame(ms, c, other, "A", b"");
    }

    /// `bytes` from one end of connection `c` at `ms`, of which the capture kept the first
    /// `keep` (as a snap length does), acknowledged at once.
    pub fn send_cut(&mut self, ms: f64, c: usize, from: End, bytes: &[u8], keep: usize) {
        self.frame(ms, c, from, "A", bytes);
        let i = self.packets.len() - 1;
        let frame = &mut self.packets[i].1;
        self.cut.insert(i, frame.len() as u32);
        frame.truncate(frame.len() - (bytes.len() - keep));
        let other = if from == End::Client { End::Server } else { End::Client };
        self.frame(ms, c, other, "A", b"");
    }

    /// A FIN from one end of connection `c` at `ms`.
    pub fn close(&mut self, ms: f64, c: usize, from: End) {
        self.frame(ms, c, from, "FA", b"");
    }

    /// One UDP datagram from `from` to `to` (`"10.0.0.1:137"`) at `ms`.
    pub fn udp(&mut self, ms: f64, from: &str, to: &str, payload: &[u8]) {
        let (src, dst): (SocketAddrV4, SocketAddrV4) = (from.parse().expect("source"), to.parse().expect("destination"));
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.ip().octets(), dst.ip().octets(), 64)
            .udp(src.port(), dst.port());
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("a frame");
        self.packets.push((Duration::from_micros((ms * 1000.0) as u64), out));
    }

    /// A UDP datagram over IPv6 at `ms`, sent in fragments of at most `piece` bytes (a multiple
    /// of 8) in the order `order` gives (indices of the fragments; all of them when empty).
    pub fn udp6_fragmented(&mut self, ms: f64, src: &str, dst: &str, payload: &[u8], piece: usize, order: &[usize]) {
        let (src, dst): (std::net::SocketAddrV6, std::net::SocketAddrV6) =
            (src.parse().expect("source address"), dst.parse().expect("destination address"));
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(src.ip().octets(), dst.ip().octets(), 64)
            .udp(src.port(), dst.port());
        let mut whole = Vec::new();
        b.write(&mut whole, payload).expect("a frame");
        let (eth, ip, data) = (&whole[..14], &whole[14..54], &whole[54..]);
        let pieces: Vec<&[u8]> = data.chunks(piece).collect();
        let order: Vec<usize> = if order.is_empty() {
            (0..pieces.len()).collect()
        } else {
            order.to_vec()
        };
        for i in order {
            let more = i + 1 < pieces.len();
            let offset = (i * piece) as u16;
            let mut f = eth.to_vec();
            f.extend_from_slice(&ip[..4]);
            f.extend_from_slice(&((pieces[i].len() + 8) as u16).to_be_bytes());
            // Next header: the fragment header (44).
            f.push(44);
            f.extend_from_slice(&ip[7..]);
            f.extend_from_slice(&[17, 0]);
            f.extend_from_slice(&(offset | u16::from(more)).to_be_bytes());
            f.extend_from_slice(&0xdead_beefu32.to_be_bytes());
            f.extend_from_slice(pieces[i]);
            self.packets.push((Duration::from_micros((ms * 1000.0) as u64), f));
        }
    }

    /// A UDP datagram over IPv6 at `ms`, whole.
    pub fn udp6(&mut self, ms: f64, src: &str, dst: &str, payload: &[u8]) {
        let (src, dst): (std::net::SocketAddrV6, std::net::SocketAddrV6) =
            (src.parse().expect("source address"), dst.parse().expect("destination address"));
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(src.ip().octets(), dst.ip().octets(), 64)
            .udp(src.port(), dst.port());
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("a frame");
        self.packets.push((Duration::from_micros((ms * 1000.0) as u64), out));
    }

    /// A connection from `client` to `server` whose start the capture missed: no handshake, the
    /// first packets carry data.
    pub fn joined(&mut self, client: &str, server: &str) -> usize {
        self.conns.push(Conn {
            client: client.parse().expect("client address"),
            server: server.parse().expect("server address"),
            seq: [1000, 50_000],
            vlan: None,
        });
        self.conns.len() - 1
    }

    /// Unrelated UDP datagrams from `ms` on, one every 10 µs.
    pub fn noise(&mut self, ms: f64, count: usize) {
        for i in 0..count {
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 3], [2, 0, 0, 0, 0, 4])
                .ipv4([192, 0, 2, 7], [192, 0, 2, 8], 64)
                .udp(5000, 5001);
            let mut out = Vec::new();
            b.write(&mut out, b"noise").expect("a frame");
            self.packets
                .push((Duration::from_micros((ms * 1000.0) as u64 + i as u64 * 10), out));
        }
    }

    /// The capture as pcap bytes, packets in time order (those at the same time as added).
    pub fn bytes(&self) -> Vec<u8> {
        let packets = self.packets.iter().enumerate().map(|(i, (t, data))| {
            let orig = self.cut.get(&i).copied().unwrap_or(data.len() as u32);
            (*t, data.clone(), orig)
        });
        Self::write(pcap_file::DataLink::ETHERNET, packets)
    }

    /// The capture as Linux NFLOG messages (link type 239, attributes little-endian): each
    /// untagged frame's IP packet in a payload attribute, after a packet header and a prefix.
    pub fn nflog_bytes(&self) -> Vec<u8> {
        let tlv = |kind: u16, value: &[u8]| {
            let mut b = ((value.len() + 4) as u16).to_le_bytes().to_vec();
            b.extend_from_slice(&kind.to_le_bytes());
            b.extend_from_slice(value);
            b.resize(b.len().div_ceil(4) * 4, 0);
            b
        };
        let packets = self.packets.iter().map(|(t, frame)| {
            let family = if frame[12..14] == [0x86, 0xdd] { 10 } else { 2 };
            let mut b = vec![family, 0, 0, 7];
            b.extend(tlv(1, &[0x08, 0x00, 3, 0]));
            b.extend(tlv(10, b"wirecheck\0"));
            b.extend(tlv(9, &frame[14..]));
            let orig = b.len() as u32;
            (*t, b, orig)
        });
        Self::write(pcap_file::DataLink::from(239), packets)
    }

    fn write(datalink: pcap_file::DataLink, packets: impl Iterator<Item = (Duration, Vec<u8>, u32)>) -> Vec<u8> {
        use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
        let mut packets: Vec<(Duration, Vec<u8>, u32)> = packets.collect();
        packets.sort_by_key(|(t, ..)| *t);
        let header = PcapHeader {
            datalink,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(Vec::new(), header).expect("a pcap header");
        let start = Duration::from_secs(1_700_000_000);
        for (t, data, orig) in &packets {
            w.write_packet(&PcapPacket::new(start + *t, *orig, data)).expect("a packet");
        }
        w.into_writer()
    }
}

/// Lines of an FTP control connection, one call per message.
pub struct Ftp<'p> {
    /// The capture.
    pub pcap: &'p mut Pcap,
    /// The control connection.
    pub conn: usize,
}

impl Ftp<'_> {
    /// A command line from the client at `ms`.
    pub fn cmd(&mut self, ms: f64, line: &str) {
        self.pcap.send(ms, self.conn, End::Client, format!("{line}\r\n").as_bytes());
    }

    /// A reply line from the server at `ms`.
    pub fn reply(&mut self, ms: f64, line: &str) {
        self.pcap.send(ms, self.conn, End::Server, format!("{line}\r\n").as_bytes());
    }
}

/// One HTTP/2 frame (RFC 9113 §4.1).
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut b = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    b.extend_from_slice(&stream.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// An HTTP/1.1 request upgraded to h2c (RFC 7540 §3.2) on port 80: the 101, then HTTP/2 both
/// ways, the response to the upgraded request on stream 1. With `settings_first` false the server's
/// first HTTP/2 frame is a WINDOW_UPDATE, breaking RFC 9113 §3.4.
pub fn h2c_upgrade(settings_first: bool) -> Pcap {
    let mut pcap = Pcap::new();
    let c = pcap.connect(0.0, "10.0.0.1:41000", "10.0.0.2:80");
    pcap.send(
        1.0,
        c,
        End::Client,
        b"GET /h2 HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n",
    );
    let mut server = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    let window = h2_frame(8, 0, 0, &1000u32.to_be_bytes());
    let settings = h2_frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]);
    if settings_first {
        server.extend(settings);
        server.extend(window);
    } else {
        server.extend(window);
        server.extend(settings);
    }
    pcap.send(2.0, c, End::Server, &server);
    let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    client.extend(h2_frame(4, 0, 0, b""));
    client.extend(h2_frame(4, 1, 0, b""));
    pcap.send(3.0, c, End::Client, &client);
    // :status: 200 is entry 8 of HPACK's static table.
    let mut reply = h2_frame(4, 1, 0, b"");
    reply.extend(h2_frame(1, 4, 1, &[0x88]));
    reply.extend(h2_frame(0, 1, 1, b"hello"));
    reply.extend(h2_frame(7, 0, 0, &[0; 8]));
    pcap.send(4.0, c, End::Server, &reply);
    pcap.close(5.0, c, End::Server);
    pcap.close(5.5, c, End::Client);
    pcap
}

/// One WebSocket frame (RFC 6455 §5.2) with a payload under 126 bytes, masked with `mask` when given.
pub fn ws_frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126, "short frames only");
    let mut b = vec![
        (u8::from(fin) << 7) | opcode,
        payload.len() as u8 | if mask.is_some() { 0x80 } else { 0 },
    ];
    match mask {
        Some(k) => {
            b.extend_from_slice(&k);
            b.extend(payload.iter().enumerate().map(|(i, x)| x ^ k[i % 4]));
        }
        None => b.extend_from_slice(payload),
    }
    b
}

/// An HTTP/1.1 request upgraded to WebSocket (RFC 6455 §4) on port 80: the 101, a text message
/// each way, a ping and its pong, and the closing handshake. With `client_masks` false the
/// client's frames go unmasked, breaking §5.1.
pub fn websocket_upgrade(client_masks: bool) -> Pcap {
    let mut pcap = Pcap::new();
    let c = pcap.connect(0.0, "10.0.0.1:41001", "10.0.0.2:80");
    pcap.send(
        1.0,
        c,
        End::Client,
        b"GET /chat HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    pcap.send(
        2.0,
        c,
        End::Server,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    );
    let key = client_masks.then_some([0x37, 0xfa, 0x21, 0x3d]);
    pcap.send(3.0, c, End::Client, &ws_frame(true, 0x1, key, b"Hello"));
    let mut reply = ws_frame(false, 0x1, None, b"Hel");
    reply.extend(ws_frame(true, 0x9, None, b"are you there"));
    reply.extend(ws_frame(true, 0x0, None, b"lo back"));
    pcap.send(4.0, c, End::Server, &reply);
    pcap.send(5.0, c, End::Client, &ws_frame(true, 0xA, key, b"are you there"));
    pcap.send(6.0, c, End::Client, &ws_frame(true, 0x8, key, b"\x03\xe8bye"));
    pcap.send(7.0, c, End::Server, &ws_frame(true, 0x8, None, b"\x03\xe8"));
    pcap.close(8.0, c, End::Server);
    pcap.close(8.5, c, End::Client);
    pcap
}
