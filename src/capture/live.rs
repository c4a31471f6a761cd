//! Live capture on the loopback device while cases run (`wirecheck run --capture DIR`).
//!
//! One libpcap handle serves the whole run: cases run concurrently and a case's client ports are
//! only known once it has connected, so a per-case BPF filter cannot be written in advance.
//! Instead a thread keeps every TCP/UDP packet on `lo` (bounded), and when a case finishes its
//! packets are picked out by the address pairs of its connections. Before picking, a marker
//! datagram is sent through `lo` and awaited: once the thread has seen it, every packet the case
//! caused has been read too (the loopback delivers in order), so no sleep is needed.

use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::dialogue::Dialogue;
use crate::proto::Transport;

use super::file::RawPacket;
use super::packet;

/// The loopback device libpcap captures on.
pub const DEVICE: &str = "lo";
/// Loopback segments reach 64 KiB; a smaller snaplen would cut them.
const SNAPLEN: i32 = 262_144;
/// Packets kept at once; beyond this the oldest are dropped (and the run says so).
const MAX_BUFFERED_BYTES: usize = 512 * 1024 * 1024;
/// How long a marker may take to come round before the capture is declared lagging.
const SYNC_TIMEOUT: Duration = Duration::from_secs(3);
const MARKER: &[u8] = b"wirecheck capture sync ";

/// One packet seen on the loopback.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Capture time since the epoch.
    pub ts: Duration,
    /// Length on the wire.
    pub orig_len: u32,
    /// The frame (Ethernet: `lo` has link type EN10MB).
    pub data: Vec<u8>,
    /// Source and destination, when the packet is TCP or UDP over IP.
    ends: Option<(SocketAddr, SocketAddr)>,
}

#[derive(Default)]
struct Buffer {
    packets: VecDeque<Packet>,
    bytes: usize,
    dropped: u64,
    /// Highest marker number seen.
    marker: u64,
}

struct Shared {
    buf: Mutex<Buffer>,
    seen: Condvar,
    stop: AtomicBool,
    marker_addr: SocketAddr,
}

/// Why live capture is not available.
#[derive(Debug, thiserror::Error)]
#[error("cannot capture on '{DEVICE}': {0}")]
pub struct CaptureUnavailable(String);

/// A running capture of the loopback device.
pub struct LiveCapture {
    shared: Arc<Shared>,
    marker: UdpSocket,
    next_marker: AtomicU64,
    /// Start times of cases still running (a multiset): older packets can be forgotten.
    running: Mutex<BTreeMap<Duration, usize>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

impl LiveCapture {
    /// Opens `lo` (needs root or CAP_NET_RAW) and starts reading packets.
    pub fn start() -> Result<LiveCapture, CaptureUnavailable> {
        let err = |e: pcap::Error| CaptureUnavailable(e.to_string());
        let cap = pcap::Capture::from_device(DEVICE)
            .map_err(err)?
            .immediate_mode(true)
            .snaplen(SNAPLEN)
            .buffer_size(32 * 1024 * 1024)
            // A bounded read lets the thread notice `stop` on a quiet link.
            .timeout(100)
            .open()
            .map_err(|e| {
                let hint = if matches!(&e, pcap::Error::PcapError(m) if m.contains("ermission")) {
                    " (capturing needs root or CAP_NET_RAW; the run goes on from the sockets' own record)"
                } else {
                    ""
                };
                CaptureUnavailable(format!("{e}{hint}"))
            })?;
        if cap.get_datalink() != pcap::Linktype::ETHERNET {
            return Err(CaptureUnavailable(format!("unexpected link type {:?}", cap.get_datalink())));
        }
        let mut cap = cap;
        cap.filter("tcp or udp", true).map_err(err)?;
        let marker = UdpSocket::bind("127.0.0.1:0").map_err(|e| CaptureUnavailable(format!("marker socket: {e}")))?;
        let marker_addr = marker.local_addr().map_err(|e| CaptureUnavailable(e.to_string()))?;
        marker
            .set_read_timeout(Some(Duration::from_millis(10)))
            .map_err(|e| CaptureUnavailable(e.to_string()))?;
        let shared = Arc::new(Shared {
            buf: Mutex::new(Buffer::default()),
            seen: Condvar::new(),
            stop: AtomicBool::new(false),
            marker_addr,
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wirecheck-capture".into())
            .spawn(move || read_loop(cap, &s))
            .map_err(|e| CaptureUnavailable(format!("capture thread: {e}")))?;
        let live = LiveCapture {
            shared,
            marker,
            next_marker: AtomicU64::new(1),
            running: Mutex::new(BTreeMap::new()),
            thread: Some(thread),
        };
        // The handle is open once the first marker comes round: packets from here on are seen.
        if !live.sync() {
            return Err(CaptureUnavailable("no packet came through the loopback capture".into()));
        }
        Ok(live)
    }

    /// A case starts now: its packets are kept until `finish_case`.
    pub fn begin_case(&self) -> Duration {
        let t = now();
        *lock(&self.running).entry(t).or_default() += 1;
        t
    }

    /// The packets of the case that began at `start` and recorded `dialogue`, in capture order;
    /// the bool says whether the capture kept up (false: packets may be missing).
    pub fn finish_case(&self, start: Duration, dialogue: &Dialogue) -> (Vec<Packet>, bool) {
        let synced = self.sync();
        let pairs = pairs(dialogue);
        let mut buf = lock(&self.shared.buf);
        // Loopback timestamps come from the same clock, but allow for the capture stamping a
        // packet a little before `now()` returned at the case's start.
        let from = start.saturating_sub(Duration::from_millis(5));
        let mine: Vec<Packet> = buf
            .packets
            .iter()
            .filter(|p| p.ts >= from && p.ends.is_some_and(|(a, b)| pairs.iter().any(|m| m.matches(a, b))))
            .cloned()
            .collect();
        let complete = synced && buf.dropped == 0;
        {
            let mut running = lock(&self.running);
            if let Some(n) = running.get_mut(&start) {
                *n -= 1;
                if *n == 0 {
                    running.remove(&start);
                }
            }
            // Nothing older than the oldest running case can belong to anyone any more.
            let keep_from = running
                .keys()
                .next()
                .copied()
                .unwrap_or_else(now)
                .saturating_sub(Duration::from_millis(5));
            while buf.packets.front().is_some_and(|p| p.ts < keep_from) {
                let p = buf.packets.pop_front().expect("front exists");
                buf.bytes -= p.data.len();
            }
        }
        (mine, complete)
    }

    /// Sends a marker through the loopback and waits (bounded) until the thread has read it.
    fn sync(&self) -> bool {
        let n = self.next_marker.fetch_add(1, Ordering::Relaxed);
        let mut msg = MARKER.to_vec();
        msg.extend_from_slice(&n.to_be_bytes());
        if self.marker.send_to(&msg, self.shared.marker_addr).is_err() {
            return false;
        }
        // Our own datagram lands in our receive queue too; read it so the queue never fills.
        let mut sink = [0u8; 64];
        let _ = self.marker.recv(&mut sink);
        let deadline = std::time::Instant::now() + SYNC_TIMEOUT;
        let mut buf = lock(&self.shared.buf);
        while buf.marker < n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            buf = self.shared.seen.wait_timeout(buf, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // The read timeout (100 ms) wakes the thread; a marker wakes it at once.
        let _ = self.marker.send_to(MARKER, self.shared.marker_addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_loop(mut cap: pcap::Capture<pcap::Active>, s: &Shared) {
    while !s.stop.load(Ordering::Relaxed) {
        let p = match cap.next_packet() {
            Ok(p) => p,
            Err(pcap::Error::TimeoutExpired) => continue,
            Err(_) => break,
        };
        let ts = Duration::from_secs(p.header.ts.tv_sec as u64) + Duration::from_micros(p.header.ts.tv_usec as u64);
        let data = p.data.to_vec();
        let orig_len = p.header.len;
        let ends = ends(&data);
        if let Some(n) = ends.and_then(|(_, dst)| marker_number(&data, dst, s.marker_addr)) {
            let mut buf = lock(&s.buf);
            buf.marker = buf.marker.max(n);
            s.seen.notify_all();
            continue;
        }
        let mut buf = lock(&s.buf);
        buf.bytes += data.len();
        buf.packets.push_back(Packet { ts, orig_len, data, ends });
        while buf.bytes > MAX_BUFFERED_BYTES {
            let Some(old) = buf.packets.pop_front() else { break };
            buf.bytes -= old.data.len();
            buf.dropped += 1;
        }
    }
}

/// The marker number of a datagram sent to the marker socket.
fn marker_number(frame: &[u8], dst: SocketAddr, marker: SocketAddr) -> Option<u64> {
    if dst != marker {
        return None;
    }
    let at = frame.windows(MARKER.len()).position(|w| w == MARKER)? + MARKER.len();
    let n = frame.get(at..at + 8)?;
    Some(u64::from_be_bytes(n.try_into().ok()?))
}

/// Source and destination of a TCP or UDP frame.
fn ends(frame: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let packet::Link::Ip(ip) = packet::link(packet::LINK_ETHERNET, frame).ok()? else {
        return None;
    };
    let ip = packet::ip(ip).ok()?;
    if ip.fragment.is_some_and(|f| f.offset > 0) || !matches!(ip.proto, 6 | 17) {
        return None;
    }
    let p = ip.payload.get(..4)?;
    Some((
        SocketAddr::new(ip.src, u16::from_be_bytes([p[0], p[1]])),
        SocketAddr::new(ip.dst, u16::from_be_bytes([p[2], p[3]])),
    ))
}

/// Which packets belong to a connection of the dialogue.
#[derive(Debug, Clone, Copy)]
enum Pair {
    /// Both ends known.
    Exact(SocketAddr, SocketAddr),
    /// Only one end known (a refused connect, a UDP socket that never sent).
    Either(SocketAddr),
}

impl Pair {
    fn matches(self, a: SocketAddr, b: SocketAddr) -> bool {
        match self {
            Pair::Exact(x, y) => (a == x && b == y) || (a == y && b == x),
            Pair::Either(x) => a == x || b == x,
        }
    }
}

fn pairs(d: &Dialogue) -> Vec<Pair> {
    d.connections
        .iter()
        .filter_map(|c| match (c.local, c.peer, c.transport) {
            (Some(l), Some(p), _) => Some(Pair::Exact(l, p)),
            // An unconnected UDP socket talks to whoever writes to it.
            (Some(l), None, Transport::Udp) => Some(Pair::Either(l)),
            (None, Some(p), _) => Some(Pair::Either(p)),
            _ => None,
        })
        .collect()
}

/// The packets as a capture file would give them.
pub fn raw_packets(packets: &[Packet]) -> impl Iterator<Item = Result<RawPacket, super::FileError>> + '_ {
    packets.iter().enumerate().map(|(i, p)| {
        Ok(RawPacket {
            number: i as u64 + 1,
            offset: 0,
            ts: p.ts,
            interface: 0,
            linktype: packet::LINK_ETHERNET,
            orig_len: p.orig_len,
            data: p.data.clone(),
        })
    })
}

/// Writes `packets` as a pcapng file (one Ethernet interface, `comments[i]` on packet i when set).
pub fn write_pcapng(path: &Path, packets: &[Packet], comments: &BTreeMap<usize, String>) -> std::io::Result<()> {
    write_pcapng_with_keys(path, packets, comments, None)
}

/// A pcapng Decryption Secrets Block holding `keylog` (NSS key log text), in the section's byte
/// order: Wireshark decrypts the packets after it.
fn secrets_block(keylog: &str, big: bool) -> pcap_file::pcapng::blocks::unknown::UnknownBlock<'static> {
    let word = |n: u32| if big { n.to_be_bytes() } else { n.to_le_bytes() };
    let mut body = word(super::file::DSB_TLS_KEY_LOG).to_vec();
    body.extend_from_slice(&word(keylog.len() as u32));
    body.extend_from_slice(keylog.as_bytes());
    // The writer pads the block to 4 bytes, which is the secrets' padding too.
    pcap_file::pcapng::blocks::unknown::UnknownBlock {
        type_: super::file::DSB_BLOCK,
        length: 0,
        value: std::borrow::Cow::Owned(body),
    }
}

/// [`write_pcapng`] with a TLS key log (`SSLKEYLOGFILE` text) written before the packets as a
/// Decryption Secrets Block, so the capture opens decrypted in Wireshark and in `decode`.
pub fn write_pcapng_with_keys(
    path: &Path,
    packets: &[Packet],
    comments: &BTreeMap<usize, String>,
    keylog: Option<&str>,
) -> std::io::Result<()> {
    use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
    use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
    use pcap_file::pcapng::PcapNgWriter;
    use std::borrow::Cow;
    let io = |e: pcap_file::PcapError| std::io::Error::other(e.to_string());
    let tmp = path.with_extension("pcapng.part");
    let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    let mut w = PcapNgWriter::new(file).map_err(io)?;
    // pcap-file writes an enhanced packet's timestamp in nanoseconds: the interface must say so
    // (if_tsresol 9), or readers take them for the default microseconds.
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: pcap_file::DataLink::ETHERNET,
        snaplen: SNAPLEN as u32,
        options: vec![InterfaceDescriptionOption::IfTsResol(9)],
    })
    .map_err(io)?;
    if let Some(k) = keylog.filter(|k| !k.is_empty()) {
        let big = w.section().endianness == pcap_file::Endianness::Big;
        w.write_pcapng_block(secrets_block(k, big)).map_err(io)?;
    }
    for (i, p) in packets.iter().enumerate() {
        let options = comments
            .get(&i)
            .map(|c| vec![EnhancedPacketOption::Comment(Cow::Borrowed(c.as_str()))])
            .unwrap_or_default();
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: p.ts,
            original_len: p.orig_len,
            data: Cow::Borrowed(&p.data),
            options,
        })
        .map_err(io)?;
    }
    let mut file = w.into_inner();
    std::io::Write::flush(&mut file)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tls::testing;
    use crate::proto::Direction;

    /// Ethernet frames of one TCP connection 10.0.0.1:40000 → 10.0.0.2:`port` carrying `chunks`.
    fn tcp_packets(port: u16, chunks: &[(Direction, Vec<u8>)]) -> Vec<Packet> {
        let mut seq = [1000u32, 5000u32];
        let mut out = Vec::new();
        let mut t = Duration::from_secs(1_800_000_000);
        let mut frame = |from: usize, flags: &str, payload: &[u8], seq: &mut [u32; 2]| {
            let (src, dst, sp, dp) = match from {
                0 => ([10, 0, 0, 1], [10, 0, 0, 2], 40000, port),
                _ => ([10, 0, 0, 2], [10, 0, 0, 1], port, 40000),
            };
            let mut b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4(src, dst, 64)
                .tcp(sp, dp, seq[from], 65535);
            if flags.contains('S') {
                b = b.syn();
            }
            if flags.contains('A') {
                b = b.ack(seq[1 - from]);
            }
            if flags.contains('F') {
                b = b.fin();
            }
            let mut data = Vec::new();
            b.write(&mut data, payload).unwrap();
            seq[from] = seq[from].wrapping_add(payload.len() as u32 + u32::from(flags.contains('S')) + u32::from(flags.contains('F')));
            t += Duration::from_millis(1);
            out.push(Packet {
                ts: t,
                orig_len: data.len() as u32,
                ends: ends(&data),
                data,
            });
        };
        frame(0, "S", b"", &mut seq);
        frame(1, "SA", b"", &mut seq);
        frame(0, "A", b"", &mut seq);
        for (dir, bytes) in chunks {
            let from = usize::from(*dir == Direction::ServerToClient);
            for piece in bytes.chunks(1400) {
                frame(from, "A", piece, &mut seq);
            }
        }
        frame(0, "FA", b"", &mut seq);
        frame(1, "FA", b"", &mut seq);
        frame(0, "A", b"", &mut seq);
        out
    }

    #[test]
    fn a_pcapng_carries_its_key_log_in_a_decryption_secrets_block_read_back_by_decode() {
        let get: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: mail.example\r\n\r\n";
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        let s = testing::session(rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384, None, &[get], &[ok]);
        // Port 443 says what TLS carries when ALPN does not.
        let packets = tcp_packets(443, &s.chunks);
        let dir = tempfile::tempdir().unwrap();
        let (with, without) = (dir.path().join("with.pcapng"), dir.path().join("without.pcapng"));
        write_pcapng_with_keys(&with, &packets, &BTreeMap::new(), Some(&s.keylog)).unwrap();
        write_pcapng(&without, &packets, &BTreeMap::new()).unwrap();
        let opts = crate::capture::Options::default();
        let cap = crate::capture::decode_file(&with, &opts).unwrap();
        let t = cap.text();
        assert!(t.contains("(tls)"), "{t}");
        assert!(
            t.contains("C→S GET /index.html HTTP/1.1") && t.contains("S→C HTTP/1.1 200 OK"),
            "{t}"
        );
        assert!(cap.warnings.is_empty(), "{:?}", cap.warnings);
        let checked = crate::capture::check::check(&cap, crate::capture::check::Side::Both);
        assert!(checked.iter().all(|c| !c.failed()), "{checked:?}");
        // The same packets without the block: records by size; with --keylog: decrypted again.
        let t = crate::capture::decode_file(&without, &opts).unwrap().text();
        assert!(t.contains("TLS application data, ") && !t.contains("GET /"), "{t}");
        let keyed = crate::capture::Options {
            keylog: Some(std::sync::Arc::new(crate::proto::tls::KeyLog::parse(&s.keylog).unwrap())),
            ..Default::default()
        };
        let t = crate::capture::decode_file(&without, &keyed).unwrap().text();
        assert!(t.contains("C→S GET /index.html HTTP/1.1"), "{t}");
        // On a port that names nothing and with no ALPN, `--port N=http` says what TLS carries.
        let other = dir.path().join("other.pcapng");
        write_pcapng_with_keys(&other, &tcp_packets(8443, &s.chunks), &BTreeMap::new(), Some(&s.keylog)).unwrap();
        let t = crate::capture::decode_file(&other, &opts).unwrap().text();
        assert!(
            t.contains("TLS application data, 48 bytes (decrypted)") && !t.contains("C→S GET"),
            "{t}"
        );
        let said = crate::capture::Options::from_args(&["8443=http".to_string()]).unwrap();
        let t = crate::capture::decode_file(&other, &said).unwrap().text();
        assert!(t.contains("(tls)") && t.contains("C→S GET /index.html HTTP/1.1"), "{t}");
        // A live run recorded what went inside TLS: its capture, opened with the keys, shows the same.
        let mut info = crate::dialogue::ConnInfo::test_tcp(false);
        info.protocol = "http".into();
        info.local = Some("10.0.0.1:40000".parse().unwrap());
        info.peer = Some("10.0.0.2:443".parse().unwrap());
        let ev = |t_us, kind| crate::dialogue::Event { t_us, conn: 0, kind };
        let data = |dir, b: &[u8]| crate::dialogue::EventKind::Data { dir, bytes: b.to_vec() };
        let live = Dialogue {
            connections: vec![info],
            events: vec![
                ev(0, crate::dialogue::EventKind::Open),
                ev(1, data(Direction::ClientToServer, get)),
                ev(2, data(Direction::ServerToClient, ok)),
                ev(
                    3,
                    crate::dialogue::EventKind::Closed {
                        dir: Direction::ClientToServer,
                    },
                ),
                ev(
                    4,
                    crate::dialogue::EventKind::Closed {
                        dir: Direction::ServerToClient,
                    },
                ),
            ],
        };
        let cap = crate::capture::decode_file(&with, &opts).unwrap();
        assert_eq!(crate::capture::compare::compare(&live, &cap), []);
        let cap = crate::capture::decode_file(&without, &opts).unwrap();
        assert!(!crate::capture::compare::compare(&live, &cap).is_empty());
        // The block comes before the first packet, where Wireshark needs it.
        let bytes = std::fs::read(&with).unwrap();
        let at = |ty: u32| {
            let mut pos = 0;
            while pos + 8 <= bytes.len() {
                let t = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap());
                if t == ty {
                    return Some(pos);
                }
                pos += u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
            }
            None
        };
        assert!(at(super::super::file::DSB_BLOCK).unwrap() < at(6).unwrap());
    }
}
