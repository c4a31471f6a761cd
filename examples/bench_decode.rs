//! Capture decoding throughput and memory: generates a pcap of realistic loopback traffic (HTTP/1.1
//! keep-alive conversations with varied body sizes, h2c connections with many streams, SMTP
//! sessions, DNS over UDP; handshakes, FINs, delayed ACKs, some out-of-order and retransmitted
//! segments), decodes it to transcripts with `capture::decode_each` (streaming: each conversation
//! handed over when it ends), and prints MB/s and peak RSS; when `tshark` is on PATH, also
//! tshark's time on the same file and the ratio.
//!
//! ```text
//! cargo run --release --example bench_decode [-- [--mb N] [--mix all|http2] [--no-tshark] [FILE]]
//! ```
//!
//! FILE: an existing capture is decoded as it is (no generation, no self-check); a missing one is
//! generated there and kept. Without FILE the capture goes to a temporary directory. `--mb`: size
//! to generate, default 64. `--mix http2`: only h2c connections (prior knowledge: dozens of
//! streams each, their DATA frames interleaved, HPACK's dynamic table in use), with tshark made to
//! dissect HTTP/2 and decompress every header block, so both sides do the same work.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wirecheck::capture::{self, file, Options};
use wirecheck::dialogue::EventKind;

/// xorshift64*: deterministic traffic, so two runs measure the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
/// Ethernet MSS (the loopback's 65483 would make a few huge packets, less to measure per byte).
const MSS: usize = 1448;

/// One TCP packet of a conversation, not yet framed.
struct Pkt {
    from_client: bool,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: Vec<u8>,
}

/// A conversation's packets, in the order they go on the wire.
struct Conv {
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
    pkts: VecDeque<Pkt>,
}

/// Builds one TCP conversation: handshake, exchanges, FINs, with delayed ACKs, some segments
/// swapped (out of order) and some sent twice (retransmissions).
struct TcpBuilder<'r> {
    rng: &'r mut Rng,
    seq: [u32; 2],
    pkts: Vec<Pkt>,
}

impl TcpBuilder<'_> {
    fn new(rng: &mut Rng) -> TcpBuilder<'_> {
        let (c, s) = (rng.next() as u32, rng.next() as u32);
        let mut b = TcpBuilder {
            rng,
            seq: [c, s],
            pkts: Vec::new(),
        };
        b.control(true, SYN);
        b.control(false, SYN | ACK);
        b.control(true, ACK);
        b
    }

    fn control(&mut self, from_client: bool, flags: u8) {
        let (me, peer) = if from_client { (0, 1) } else { (1, 0) };
        self.pkts.push(Pkt {
            from_client,
            flags,
            seq: self.seq[me],
            ack: if flags & ACK != 0 { self.seq[peer] } else { 0 },
            payload: Vec::new(),
        });
        if flags & (SYN | FIN) != 0 {
            self.seq[me] = self.seq[me].wrapping_add(1);
        }
    }

    /// Sends `data` in MSS segments; the peer ACKs every second one.
    fn send(&mut self, from_client: bool, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let (me, peer) = if from_client { (0, 1) } else { (1, 0) };
        let first = self.pkts.len();
        for (i, chunk) in data.chunks(MSS).enumerate() {
            self.pkts.push(Pkt {
                from_client,
                flags: ACK | PSH,
                seq: self.seq[me],
                ack: self.seq[peer],
                payload: chunk.to_vec(),
            });
            self.seq[me] = self.seq[me].wrapping_add(chunk.len() as u32);
            if i % 2 == 1 {
                self.control(!from_client, ACK);
            }
        }
        let n = self.pkts.len();
        // Reordering and retransmission, as a loaded loopback shows them now and then.
        if n - first >= 3 && self.rng.chance(3) {
            let at = first + self.rng.below((n - first - 1) as u64) as usize;
            self.pkts.swap(at, at + 1);
        }
        if self.rng.chance(3) {
            let at = first + self.rng.below((n - first) as u64) as usize;
            let p = &self.pkts[at];
            let dup = Pkt {
                from_client: p.from_client,
                flags: p.flags,
                seq: p.seq,
                ack: p.ack,
                payload: p.payload.clone(),
            };
            let to = (at + 1 + self.rng.below(3) as usize).min(self.pkts.len());
            self.pkts.insert(to, dup);
        }
        self.control(!from_client, ACK);
    }

    fn close(mut self) -> VecDeque<Pkt> {
        self.control(true, FIN | ACK);
        self.control(false, FIN | ACK);
        self.control(true, ACK);
        self.pkts.into()
    }
}

/// Text a page or a mail body is made of (the codecs render text differently from binary).
fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
        "tempor",
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        out.extend_from_slice(if rng.chance(8) { b"\r\n" } else { b" " });
    }
    out.truncate(len);
    out
}

/// A body size: mostly small pages, some images, a few downloads.
fn body_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=59 => 200 + rng.below(8_000) as usize,
        60..=94 => 8_000 + rng.below(60_000) as usize,
        _ => 100_000 + rng.below(400_000) as usize,
    }
}

fn http(rng: &mut Rng, client: ([u8; 4], u16), n: u64) -> Conv {
    let mut b = TcpBuilder::new(rng);
    let requests = 1 + b.rng.below(8);
    for r in 0..requests {
        let req = format!("GET /site{n}/page{r}.html HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n");
        b.send(true, req.as_bytes());
        let size = body_size(b.rng);
        let body = text(b.rng, size);
        let resp = if b.rng.chance(10) {
            // Chunked, in 16 KiB chunks.
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in body.chunks(16 << 10) {
                r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                r.extend_from_slice(c);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        } else {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            [head.as_bytes(), &body].concat()
        };
        b.send(false, &resp);
    }
    Conv {
        client,
        server: ([127, 0, 0, 1], 80),
        pkts: b.close(),
    }
}

fn smtp(rng: &mut Rng, client: ([u8; 4], u16), n: u64) -> Conv {
    let mut b = TcpBuilder::new(rng);
    let len = 500 + b.rng.below(20_000) as usize;
    let mut body = text(b.rng, len);
    // Lines must not start with a dot (no dot-stuffing to do) and the message ends with CRLF.
    body.retain(|&c| c != b'.');
    body.extend_from_slice(b"\r\n.\r\n");
    let steps: [(bool, Vec<u8>); 13] = [
        (false, b"220 localhost ESMTP bench\r\n".to_vec()),
        (true, b"EHLO client.local\r\n".to_vec()),
        (
            false,
            b"250-localhost\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n".to_vec(),
        ),
        (true, format!("MAIL FROM:<user{n}@example.org>\r\n").into_bytes()),
        (false, b"250 2.1.0 Ok\r\n".to_vec()),
        (true, b"RCPT TO:<bob@example.com>\r\n".to_vec()),
        (false, b"250 2.1.5 Ok\r\n".to_vec()),
        (true, b"DATA\r\n".to_vec()),
        (false, b"354 End data with <CR><LF>.<CR><LF>\r\n".to_vec()),
        (true, [format!("Subject: message {n}\r\n\r\n").as_bytes(), &body].concat()),
        (false, b"250 2.0.0 Ok: queued\r\n".to_vec()),
        (true, b"QUIT\r\n".to_vec()),
        (false, b"221 2.0.0 Bye\r\n".to_vec()),
    ];
    for (from_client, data) in steps {
        b.send(from_client, &data);
    }
    Conv {
        client,
        server: ([127, 0, 0, 1], 25),
        pkts: b.close(),
    }
}

const H2_PORT: u16 = 8080;

/// One HTTP/2 frame: 9-octet header and payload (RFC 9113 §4.1).
fn h2_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An h2c connection with prior knowledge: prefaces and SETTINGS, then batches of up to 8
/// concurrent GETs whose responses' DATA frames (16 KiB, the default SETTINGS_MAX_FRAME_SIZE) take
/// turns, as a multiplexing server sends them. Both sides encode with HPACK's dynamic table: the
/// custom fields are inserted once and indexed after. The client's windows are opened wide first,
/// so the flow control the frames obey is the one a real client grants.
fn http2(rng: &mut Rng, client: ([u8; 4], u16), n: u64, headers: &mut u64) -> Conv {
    const DATA: u8 = 0;
    const HEADERS: u8 = 1;
    const SETTINGS: u8 = 4;
    const GOAWAY: u8 = 7;
    const WINDOW_UPDATE: u8 = 8;
    const END_STREAM: u8 = 1;
    const END_HEADERS: u8 = 4;
    const ACK_FLAG: u8 = 1;
    let mut b = TcpBuilder::new(rng);
    let (mut enc_c, mut enc_s) = (fluke_hpack::Encoder::new(), fluke_hpack::Encoder::new());
    let mut c = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // INITIAL_WINDOW_SIZE 2^24 per stream, and the connection's window opened by 2^30.
    h2_frame(&mut c, SETTINGS, 0, 0, &[0, 4, 1, 0, 0, 0]);
    h2_frame(&mut c, WINDOW_UPDATE, 0, 0, &(1u32 << 30).to_be_bytes());
    b.send(true, &c);
    let mut s = Vec::new();
    h2_frame(&mut s, SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    h2_frame(&mut s, SETTINGS, ACK_FLAG, 0, &[]);
    b.send(false, &s);
    let mut c = Vec::new();
    h2_frame(&mut c, SETTINGS, ACK_FLAG, 0, &[]);
    b.send(true, &c);
    let mut stream = 1u32;
    for _ in 0..1 + b.rng.below(6) {
        let batch = 1 + b.rng.below(8) as usize;
        let mut c = Vec::new();
        let mut bodies = Vec::new();
        for r in 0..batch {
            let path = format!("/site{n}/asset{}.js", stream + r as u32 * 2);
            let fields: [(&[u8], &[u8]); 6] = [
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"localhost:8080"),
                (b":path", path.as_bytes()),
                (b"user-agent", b"bench/1.0"),
                (b"x-bench-client", b"wirecheck bench decode"),
            ];
            let block = enc_c.encode(fields.iter().copied());
            h2_frame(&mut c, HEADERS, END_STREAM | END_HEADERS, stream + r as u32 * 2, &block);
            let size = body_size(b.rng).min(200_000);
            bodies.push((stream + r as u32 * 2, text(b.rng, size), 0usize));
        }
        b.send(true, &c);
        let mut s = Vec::new();
        for (id, body, _) in &bodies {
            let len = body.len().to_string();
            let fields: [(&[u8], &[u8]); 4] = [
                (b":status", b"200"),
                (b"content-type", b"application/javascript"),
                (b"content-length", len.as_bytes()),
                (b"x-bench-server", b"wirecheck bench origin"),
            ];
            let block = enc_s.encode(fields.iter().copied());
            h2_frame(&mut s, HEADERS, END_HEADERS, *id, &block);
        }
        // Round robin over the open streams, one frame each per turn.
        while bodies.iter().any(|(_, body, at)| *at < body.len()) {
            for (id, body, at) in bodies.iter_mut().filter(|(_, body, at)| *at < body.len()) {
                let end = (*at + 16_384).min(body.len());
                let flags = if end == body.len() { END_STREAM } else { 0 };
                h2_frame(&mut s, DATA, flags, *id, &body[*at..end]);
                *at = end;
            }
            if s.len() > 64 << 10 {
                b.send(false, &std::mem::take(&mut s));
            }
        }
        b.send(false, &s);
        stream += 2 * batch as u32;
        *headers += 2 * batch as u64;
    }
    let mut c = Vec::new();
    let mut goaway = 0u32.to_be_bytes().to_vec();
    goaway.extend_from_slice(&[0, 0, 0, 0]);
    h2_frame(&mut c, GOAWAY, 0, 0, &goaway);
    b.send(true, &c);
    Conv {
        client,
        server: ([127, 0, 0, 1], H2_PORT),
        pkts: b.close(),
    }
}

/// A DNS query for `hostN.example.com. A` and its answer, wire format.
fn dns(n: u64, id: u16) -> (Vec<u8>, Vec<u8>) {
    let mut name = Vec::new();
    for label in [format!("host{n}"), "example".into(), "com".into()] {
        name.push(label.len() as u8);
        name.extend_from_slice(label.as_bytes());
    }
    name.push(0);
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&name);
    q.extend_from_slice(&[0, 1, 0, 1]);
    let mut r = id.to_be_bytes().to_vec();
    r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    r.extend_from_slice(&name);
    r.extend_from_slice(&[0, 1, 0, 1]);
    // The answer's name points back at the question's (offset 12).
    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 10, 0, (n >> 8) as u8, n as u8]);
    (q, r)
}

/// Writes pcap records (Ethernet, as Linux captures its loopback) as they are made.
struct PcapOut {
    w: BufWriter<File>,
    ts_us: u64,
    ip_id: u16,
    bytes: u64,
    packets: u64,
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

impl PcapOut {
    fn create(path: &Path) -> std::io::Result<PcapOut> {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
        // Microsecond little-endian pcap, snaplen 262144, LINKTYPE_ETHERNET.
        w.write_all(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0])?;
        Ok(PcapOut {
            w,
            ts_us: 1_700_000_000_000_000,
            ip_id: 0,
            bytes: 24,
            packets: 0,
        })
    }

    fn ip(&mut self, proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8], rng: &mut Rng) -> std::io::Result<()> {
        let mut f = Vec::with_capacity(14 + 20 + l4.len());
        f.extend_from_slice(&[0; 12]);
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        self.ip_id = self.ip_id.wrapping_add(1);
        let mut h = [0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(l4);
        self.ts_us += 1 + rng.below(40);
        let (sec, usec) = ((self.ts_us / 1_000_000) as u32, (self.ts_us % 1_000_000) as u32);
        let len = f.len() as u32;
        for v in [sec, usec, len, len] {
            self.w.write_all(&v.to_le_bytes())?;
        }
        self.w.write_all(&f)?;
        self.bytes += 16 + u64::from(len);
        self.packets += 1;
        Ok(())
    }

    fn tcp(&mut self, c: &Conv, p: &Pkt, rng: &mut Rng) -> std::io::Result<()> {
        let ((sa, sp), (da, dp)) = if p.from_client {
            (c.client, c.server)
        } else {
            (c.server, c.client)
        };
        let mut t = Vec::with_capacity(20 + p.payload.len());
        t.extend_from_slice(&sp.to_be_bytes());
        t.extend_from_slice(&dp.to_be_bytes());
        t.extend_from_slice(&p.seq.to_be_bytes());
        t.extend_from_slice(&p.ack.to_be_bytes());
        // Checksum left 0: nobody checks it on a capture (tshark does not by default either).
        t.extend_from_slice(&[0x50, p.flags, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend_from_slice(&p.payload);
        self.ip(6, sa, da, &t, rng)
    }

    fn udp(&mut self, src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8], rng: &mut Rng) -> std::io::Result<()> {
        let mut u = Vec::with_capacity(8 + payload.len());
        u.extend_from_slice(&src.1.to_be_bytes());
        u.extend_from_slice(&dst.1.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        self.ip(17, src.0, dst.0, &u, rng)
    }
}

/// What the generator made, to check the decoder's output against.
#[derive(Default, Debug)]
struct Made {
    http: u64,
    http2: u64,
    /// HEADERS frames in the h2c connections (requests and responses).
    h2_headers: u64,
    smtp: u64,
    dns: u64,
    packets: u64,
    bytes: u64,
}

/// Generates at least `target` bytes of traffic, 24 TCP conversations interleaved at a time;
/// `only_http2`: h2c connections alone.
fn generate(path: &Path, target: u64, only_http2: bool) -> std::io::Result<Made> {
    let mut rng = Rng(0x0bad_5eed_1234_5678);
    let mut out = PcapOut::create(path)?;
    let mut active: Vec<Conv> = Vec::new();
    let mut made = Made::default();
    let mut port: u16 = 20_000;
    let mut next_port = || {
        port = if port >= 60_000 { 20_000 } else { port + 1 };
        port
    };
    loop {
        let filling = out.bytes < target;
        while filling && active.len() < 24 {
            let n = made.http + made.http2 + made.smtp + made.dns;
            let client = ([127, 0, 0, 1], next_port());
            match if only_http2 { 0 } else { 1 + rng.below(99) } {
                0..=19 => {
                    made.http2 += 1;
                    active.push(http2(&mut rng, client, n, &mut made.h2_headers));
                }
                20..=79 => {
                    made.http += 1;
                    active.push(http(&mut rng, client, n));
                }
                80..=89 => {
                    made.smtp += 1;
                    active.push(smtp(&mut rng, client, n));
                }
                _ => {
                    made.dns += 1;
                    let (q, r) = dns(n, rng.next() as u16);
                    let server = ([127, 0, 0, 53], 53);
                    out.udp(client, server, &q, &mut rng)?;
                    out.udp(server, client, &r, &mut rng)?;
                }
            }
        }
        if active.is_empty() {
            break;
        }
        let i = rng.below(active.len() as u64) as usize;
        // A few packets of one conversation at a time, as a busy host interleaves them.
        for _ in 0..1 + rng.below(4) {
            match active[i].pkts.pop_front() {
                Some(p) => out.tcp(&active[i], &p, &mut rng)?,
                None => break,
            }
        }
        if active[i].pkts.is_empty() {
            active.swap_remove(i);
        }
    }
    out.w.flush()?;
    made.packets = out.packets;
    made.bytes = out.bytes;
    Ok(made)
}

/// `VmHWM` / `VmRSS` of this process in MiB (Linux).
fn mem(field: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak RSS so that each phase reports its own (Linux ≥ 4.0: `5` into clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1} MiB"))
}

fn rate(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Runs tshark with `args` on `file`, its standard output counted and dropped; None if it failed.
fn tshark(file: &Path, args: &[&str]) -> Option<(Duration, u64)> {
    let start = Instant::now();
    let mut child = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let n = std::io::copy(&mut child.stdout.take()?, &mut std::io::sink()).ok()?;
    let ok = child.wait().ok()?.success();
    ok.then(|| (start.elapsed(), n))
}

fn main() {
    let mut mb: u64 = 64;
    let mut path: Option<PathBuf> = None;
    let mut use_tshark = true;
    let mut only_http2 = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mb" => mb = args.next().and_then(|v| v.parse().ok()).expect("--mb N"),
            "--no-tshark" => use_tshark = false,
            "--mix" => match args.next().as_deref() {
                Some("all") => only_http2 = false,
                Some("http2") => only_http2 = true,
                _ => {
                    eprintln!("--mix takes all or http2");
                    std::process::exit(2);
                }
            },
            "-h" | "--help" => {
                println!("usage: bench_decode [--mb N] [--mix all|http2] [--no-tshark] [FILE]");
                return;
            }
            _ => path = Some(PathBuf::from(a)),
        }
    }
    let tmp = tempfile::tempdir().expect("temporary directory");
    let path = path.unwrap_or_else(|| tmp.path().join("bench.pcap"));
    let made = if path.exists() {
        println!("using {} as it is", path.display());
        None
    } else {
        let start = Instant::now();
        let made = generate(&path, mb << 20, only_http2).expect("generate the capture");
        println!(
            "generated {}: {} packets, {} HTTP/1.1 + {} h2c + {} SMTP + {} DNS conversations, in {:.1?}",
            path.display(),
            made.packets,
            made.http,
            made.http2,
            made.smtp,
            made.dns,
            start.elapsed()
        );
        Some(made)
    };
    let size = std::fs::metadata(&path).expect("capture").len();
    println!("file: {:.1} MB ({size} bytes)", size as f64 / 1e6);

    // 1. Reading alone: what pcap parsing costs, and the reader's own memory.
    reset_peak();
    let before = mem("VmRSS:");
    let start = Instant::now();
    let mut n = 0u64;
    for p in file::open(&path).expect("open") {
        n += p.expect("read").data.len() as u64;
    }
    let read = start.elapsed();
    println!(
        "read packets:  {:>8.2?}  {:>7.1} MB/s  peak RSS {} (RSS before {}; {n} captured bytes)",
        read,
        rate(size, read),
        mib(mem("VmHWM:")),
        mib(before)
    );

    // 2. Decode (read, strip headers, reassemble every connection), streaming: each conversation
    //    is handed over when it is over and dropped, so memory follows what is open, not the file.
    #[derive(Default)]
    struct Tally {
        convs: u64,
        payload: u64,
        gaps: usize,
        text: usize,
        h2_headers: u64,
        by_proto: std::collections::HashMap<String, u64>,
    }
    let decode_with = |render: bool| {
        let mut t = Tally::default();
        let cap = capture::decode_each(file::open(&path).expect("open"), &Options::default(), |c| {
            t.convs += 1;
            *t.by_proto.entry(c.protocol.clone()).or_default() += 1;
            for e in &c.dialogue.events {
                match &e.kind {
                    EventKind::Data { bytes, .. } => t.payload += bytes.len() as u64,
                    EventKind::Gap { .. } => t.gaps += 1,
                    _ => {}
                }
            }
            if render {
                let transcript = c.transcript();
                if c.protocol == "http2" {
                    t.h2_headers += transcript.lines().filter(|l| l.contains(" HEADERS stream=")).count() as u64;
                }
                t.text += c.header().len() + transcript.len();
            }
        })
        .expect("decode");
        (cap, t)
    };
    reset_peak();
    let start = Instant::now();
    let (_, t) = decode_with(false);
    let decode = start.elapsed();
    println!(
        "decode:        {:>8.2?}  {:>7.1} MB/s  peak RSS {} ({} conversations, {:.1} MB of payload, streamed)",
        decode,
        rate(size, decode),
        mib(mem("VmHWM:")),
        t.convs,
        t.payload as f64 / 1e6
    );

    // 3. Decode and render every transcript, one conversation at a time.
    reset_peak();
    let start = Instant::now();
    let (cap, t) = decode_with(true);
    let total = start.elapsed();
    println!(
        "decode + transcripts: {:>8.2?}  {:>7.1} MB/s  peak RSS {} ({:.1} MB of text)",
        total,
        rate(size, total),
        mib(mem("VmHWM:")),
        t.text as f64 / 1e6
    );

    // The generator knows what is in the file: the decoder must find exactly that, whole.
    if let Some(made) = made {
        let count = |p: &str| t.by_proto.get(p).copied().unwrap_or(0);
        let ok = (count("http"), count("http2"), count("smtp"), count("dns"), cap.packets)
            == (made.http, made.http2, made.smtp, made.dns, made.packets)
            && t.h2_headers == made.h2_headers
            && t.gaps == 0
            && cap.warnings.is_empty();
        if !ok {
            eprintln!(
                "MISMATCH: decoded {} http, {} http2 ({} HEADERS), {} smtp, {} dns, {} packets, {} gaps, warnings {:?}; generated {made:?}",
                count("http"),
                count("http2"),
                t.h2_headers,
                count("smtp"),
                count("dns"),
                cap.packets,
                t.gaps,
                &cap.warnings[..cap.warnings.len().min(5)]
            );
            std::process::exit(1);
        }
        println!(
            "check: every generated conversation decoded whole (no gaps, no warnings; {} h2c HEADERS frames with their fields)",
            made.h2_headers
        );
    }

    // 4. tshark on the same file, when installed.
    if !use_tshark {
        return;
    }
    if Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        println!("tshark: not on PATH, no comparison");
        return;
    }
    // Comparable work: dissect every packet, track every TCP stream and print every payload byte
    // (hex) with its stream index. `-z follow,tcp` would be closer in output but takes one stream
    // per -z argument (thousands here); `-z conv,tcp` is also run, as the cheapest full pass
    // (dissection and stream tracking, no payload output): a lower bound on tshark's time.
    let fields = [
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "tcp.seq",
        "-e",
        "tcp.payload",
        "-e",
        "udp.payload",
    ];
    match tshark(&path, &fields) {
        Some((t, out)) => println!(
            "tshark -T fields -e tcp.stream -e tcp.seq -e tcp.payload -e udp.payload: {:.2?} ({:.1} MB/s, {:.1} MB out); \
             tshark / wirecheck (decode + transcripts) = {:.1}x",
            t,
            rate(size, t),
            out as f64 / 1e6,
            t.as_secs_f64() / total.as_secs_f64()
        ),
        None => println!("tshark -T fields failed"),
    }
    // HTTP/2 as tshark decodes it: frames dissected and every header block decompressed (its
    // dynamic table kept per connection), as the transcripts do. h2c on port 8080 is named with
    // -d, since its heuristic dissector is off by default.
    let h2 = [
        "-d",
        "tcp.port==8080,http2",
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "http2.streamid",
        "-e",
        "http2.type",
        "-e",
        "http2.header.name",
        "-e",
        "http2.header.value",
        "-e",
        "http2.length",
    ];
    match tshark(&path, &h2) {
        Some((t, out)) => println!(
            "tshark -d tcp.port==8080,http2 -T fields (HTTP/2 frames and decompressed headers): {:.2?} ({:.1} MB/s, {:.1} MB out); \
             tshark / wirecheck (decode + transcripts) = {:.1}x",
            t,
            rate(size, t),
            out as f64 / 1e6,
            t.as_secs_f64() / total.as_secs_f64()
        ),
        None => println!("tshark with the HTTP/2 fields failed"),
    }
    match tshark(&path, &["-q", "-z", "conv,tcp"]) {
        Some((t, _)) => println!(
            "tshark -q -z conv,tcp: {:.2?} ({:.1} MB/s); tshark / wirecheck (decode + transcripts) = {:.1}x",
            t,
            rate(size, t),
            t.as_secs_f64() / total.as_secs_f64()
        ),
        None => println!("tshark -z conv,tcp failed"),
    }
}
