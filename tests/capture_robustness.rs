//! The capture decoder never panics: every sample capture, truncated at many offsets, with bytes
//! flipped (deterministic PRNG), with corrupt record lengths and with the wrong link type, decodes
//! to Ok or to an error; truncation errors name the exact packet the file ends in.
//!
//! The stable-toolchain counterpart of the cargo-fuzz targets in `fuzz/` (CI has no nightly).

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use wirecheck::capture::{self, file, Capture, FileError, Options};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/captures")
}

/// Every sample capture, (name, bytes), sorted by name.
fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    assert!(v.len() >= 20, "sample captures missing: {}", v.len());
    v
}

/// Decodes an in-memory file and renders every transcript (the codecs see the reassembled bytes
/// too); a panic anywhere is turned into a test failure that names the input.
fn decode(bytes: &[u8], what: &dyn Fn() -> String) -> Result<Capture, FileError> {
    let opts = Options::default();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let cap = capture::decode(file::from_reader(Box::new(Cursor::new(bytes.to_vec())))?, &opts)?;
        let _ = cap.text();
        // Damage is an error here; `damaged_files_keep_what_came_before` looks at what was decoded.
        match cap.damage {
            Some(e) => Err(e),
            None => Ok(cap),
        }
    }));
    match r {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("decoder panicked on {}: {msg}", what())
        }
    }
}

/// Where each record of a capture starts, and where the last one ends.
struct Layout {
    /// Bytes before the first record (pcap global header; pcapng blocks before the first packet).
    header: usize,
    /// (start, end) of each packet record, in order; packet n is `records[n - 1]`.
    records: Vec<(usize, usize)>,
    /// Whether the file is pcapng.
    ng: bool,
}

fn u32_at(b: &[u8], at: usize, big: bool) -> u32 {
    let w: [u8; 4] = b[at..at + 4].try_into().unwrap();
    if big {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

/// Walks the records of a well-formed pcap or pcapng file (independently of the decoder).
fn layout(b: &[u8]) -> Layout {
    if b[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        let big = b[8..12] == [0x1a, 0x2b, 0x3c, 0x4d];
        let (mut at, mut records, mut header) = (0, Vec::new(), None);
        while at < b.len() {
            let (kind, len) = (u32_at(b, at, big), u32_at(b, at + 4, big) as usize);
            // Enhanced, simple and obsolete packet blocks are packets; the rest are not.
            if matches!(kind, 2 | 3 | 6) {
                header.get_or_insert(at);
                records.push((at, at + len));
            }
            at += len;
        }
        assert_eq!(at, b.len());
        return Layout {
            header: header.unwrap_or(b.len()),
            records,
            ng: true,
        };
    }
    let big = matches!(b[..4], [0xa1, 0xb2, ..]);
    let (mut at, mut records) = (24, Vec::new());
    while at < b.len() {
        let end = at + 16 + u32_at(b, at + 8, big) as usize;
        records.push((at, end));
        at = end;
    }
    assert_eq!(at, b.len());
    Layout {
        header: 24,
        records,
        ng: false,
    }
}

/// A pcap rewritten as pcapng (section header, one interface, enhanced packet blocks).
fn to_pcapng(bytes: &[u8]) -> Vec<u8> {
    use pcap_file::pcap::PcapReader;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    let mut rd = PcapReader::new(bytes).unwrap();
    let nanos = rd.header().ts_resolution == pcap_file::TsResolution::NanoSecond;
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    // pcap-file writes enhanced packet timestamps in nanoseconds: if_tsresol 9 says so.
    let mut idb = InterfaceDescriptionBlock::new(rd.header().datalink, 65535);
    idb.options
        .push(pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption::IfTsResol(9));
    w.write_pcapng_block(idb).unwrap();
    while let Some(p) = rd.next_raw_packet() {
        let p = p.unwrap();
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: std::time::Duration::new(u64::from(p.ts_sec), if nanos { p.ts_frac } else { p.ts_frac * 1000 }),
            original_len: p.orig_len,
            data: p.data,
            options: vec![],
        })
        .unwrap();
    }
    w.into_inner()
}

/// Splits n evenly into at most `k` picks (always the first and last).
fn spread(n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    let mut v: Vec<usize> = (0..k).map(|i| i * (n - 1) / (k - 1)).collect();
    v.dedup();
    v
}

/// Every cut: at a record boundary the packets before it decode; inside record n the error is
/// `packet n: … truncated …`; inside the file header it is an Open error.
fn check_truncations(name: &str, bytes: &[u8]) {
    let lay = layout(bytes);
    assert!(!lay.records.is_empty(), "{name}: no packets");
    let mut cuts: Vec<usize> = vec![0, 1, 3, 4, 5, 12, 23, lay.header];
    for i in spread(lay.records.len(), 14) {
        let (start, end) = lay.records[i];
        // Just after the start, inside the record header, at the header/data border, in the data,
        // one byte short of the end.
        cuts.extend([
            start + 1,
            start + 8,
            start + 15,
            start + 16,
            start + 17,
            (start + end) / 2,
            end - 1,
            end,
        ]);
    }
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts.into_iter().filter(|&c| c <= bytes.len()) {
        let r = decode(&bytes[..cut], &|| format!("{name} cut at {cut}"));
        let boundary = lay.records.iter().position(|&(_, end)| end == cut).map(|i| i + 1);
        let inside = lay.records.iter().position(|&(s, e)| s < cut && cut < e).map(|i| i + 1);
        match r {
            Ok(cap) => {
                // Before the first packet (pcapng: between blocks that hold none) nothing is read.
                let n = if cut <= lay.header { 0 } else { boundary.unwrap_or(usize::MAX) };
                assert_eq!(cap.packets as usize, n, "{name} cut at {cut}: decoded instead of failing");
            }
            Err(e @ FileError::Open(_)) => {
                // Only a cut inside the file header (pcapng: the section header block) may fail
                // as a whole file.
                let limit = if lay.ng { 28 } else { 24 };
                assert!(cut < limit, "{name} cut at {cut}: {e}");
            }
            Err(FileError::Packet { number, ref reason, .. }) => {
                let msg = format!("packet {number}: {reason}");
                // pcapng: a cut in the interface block before packet 1 is reported as packet 1.
                let want = inside.or(if cut < lay.header { Some(1) } else { None });
                assert_eq!(Some(number as usize), want, "{name} cut at {cut}: {msg}");
                assert!(reason.contains("truncated"), "{name} cut at {cut}: {msg}");
            }
        }
    }
}

#[test]
fn truncated_pcap_and_pcapng_files_name_the_packet() {
    for (i, (name, bytes)) in fixtures().iter().enumerate() {
        check_truncations(name, bytes);
        // A third of them as pcapng too (the conversion costs a decode's worth of time).
        if i % 3 == 0 {
            check_truncations(&format!("{name} as pcapng"), &to_pcapng(bytes));
        }
    }
}

/// xorshift64: deterministic, no dependency, good enough to pick bytes to damage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn assert_sane(r: &Result<Capture, FileError>, records: usize, what: &str) {
    match r {
        Ok(cap) => assert!(cap.packets >= cap.skipped, "{what}"),
        Err(FileError::Open(m)) => assert!(!m.is_empty(), "{what}"),
        Err(FileError::Packet { number, reason, .. }) => {
            // Damage cannot create records, so the failing one exists or is the one after the last.
            assert!((1..=records as u64 + 1).contains(number), "{what}: packet {number}: {reason}");
            assert!(!reason.is_empty(), "{what}");
        }
    }
}

#[test]
fn flipped_bytes_decode_or_fail_cleanly() {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    for (name, bytes) in fixtures() {
        let lay = layout(&bytes);
        // Fewer rounds for the big files: the runtime stays a few seconds in a debug build.
        let rounds = (4_000_000 / bytes.len()).clamp(6, 60);
        for round in 0..rounds {
            let mut b = bytes.clone();
            let (start, end) = lay.records[rng.below(lay.records.len())];
            for _ in 0..1 + rng.below(6) {
                let at = match rng.below(4) {
                    // Anywhere in the file (record headers, payloads).
                    0 => rng.below(b.len()),
                    // In the headers of one packet: link, IP and TCP/UDP live in the first 80
                    // bytes of its data, where a flip changes how the rest is read.
                    1 | 2 => (start + 16 + rng.below(80)).min(end - 1),
                    // The global header (link type, snaplen, byte order).
                    _ => rng.below(lay.header.min(24)),
                };
                b[at] = rng.next() as u8;
            }
            let r = decode(&b, &|| format!("{name} round {round}"));
            assert_sane(&r, lay.records.len(), &format!("{name} round {round}"));
        }
    }
}

#[test]
fn corrupt_record_length_names_that_packet() {
    for (name, bytes) in fixtures() {
        let lay = layout(&bytes);
        let big = matches!(bytes[..4], [0xa1, 0xb2, ..]);
        for k in spread(lay.records.len(), 4) {
            let (start, _) = lay.records[k];
            // Beyond the file, beyond the reader's buffer, the largest: all must stop at packet k+1
            // (the reader does not allocate what a corrupt length claims).
            for len in [u32::MAX, 0x7fff_ffff, 8_000_001, bytes.len() as u32] {
                let mut b = bytes.clone();
                let field = if big { len.to_be_bytes() } else { len.to_le_bytes() };
                b[start + 8..start + 12].copy_from_slice(&field);
                let what = format!("{name}: packet {} length {len:#x}", k + 1);
                match decode(&b, &|| what.clone()) {
                    Err(FileError::Packet { number, reason, offset }) => {
                        assert_eq!(number as usize, k + 1, "{what}: {reason}");
                        assert_eq!(offset as usize, start, "{what}: {reason}");
                        assert!(reason.contains("length field is corrupt"), "{what}: {reason}");
                    }
                    other => panic!("{what}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn every_capture_read_with_every_link_type() {
    // Frames decoded as another link type than they were captured with: every parser sees
    // headers where it expects something else.
    let links = [0u32, 1, 101, 108, 113, 228, 229, 239, 276];
    for (name, bytes) in fixtures() {
        let lay = layout(&bytes);
        let big = matches!(bytes[..4], [0xa1, 0xb2, ..]);
        for lt in links {
            let mut b = bytes.clone();
            b[20..24].copy_from_slice(&if big { lt.to_be_bytes() } else { lt.to_le_bytes() });
            let what = format!("{name} as link type {lt}");
            let r = decode(&b, &|| what.clone());
            assert_sane(&r, lay.records.len(), &what);
        }
        // An unsupported link type is an error for the first packet, cut by the snaplen or not:
        // not a panic, not a silent skip.
        let mut b = bytes.clone();
        b[20..24].copy_from_slice(&if big { 147u32.to_be_bytes() } else { 147u32.to_le_bytes() });
        let r = decode(&b, &|| format!("{name} as link type 147"));
        if !lay.records.is_empty() {
            let first = lay.records[0].0;
            assert_eq!(
                r.unwrap_err().to_string(),
                format!("packet 1 (byte {first}): link type 147 is not supported"),
                "{name}"
            );
        }
    }
}

/// Each direction's bytes of a conversation, up to its first gap or cut (after one, a shorter
/// decode may hold bytes a longer one placed elsewhere).
fn streams(c: &capture::Conversation) -> [Vec<u8>; 2] {
    use wirecheck::dialogue::EventKind;
    use wirecheck::proto::Direction;
    let mut out = [Vec::new(), Vec::new()];
    let mut open = [true, true];
    for e in &c.dialogue.events {
        match &e.kind {
            EventKind::Data { dir, bytes } if open[usize::from(*dir == Direction::ServerToClient)] => {
                out[usize::from(*dir == Direction::ServerToClient)].extend_from_slice(bytes)
            }
            EventKind::Gap { dir, .. } | EventKind::Cut { dir, .. } => open[usize::from(*dir == Direction::ServerToClient)] = false,
            _ => {}
        }
    }
    out
}

#[test]
fn damaged_files_keep_what_came_before() {
    for (i, (name, bytes)) in fixtures().into_iter().enumerate() {
        check_damage(&name, &bytes);
        if i % 3 == 0 {
            check_damage(&format!("{name} as pcapng"), &to_pcapng(&bytes));
        }
    }
}

/// Cuts inside several records of a file: the damage names the record (number and offset), and
/// every conversation holds what the whole file's does up to the cut.
fn check_damage(name: &str, bytes: &[u8]) {
    let opts = Options::default();
    let read = |b: &[u8]| capture::decode(file::from_reader(Box::new(Cursor::new(b.to_vec()))).unwrap(), &opts).unwrap();
    {
        let lay = layout(bytes);
        let full = read(bytes);
        assert!(full.damage.is_none(), "{name}: {:?}", full.damage);
        for k in spread(lay.records.len(), 5) {
            let (start, end) = lay.records[k];
            for cut in [start + 3, (start + end) / 2] {
                let what = format!("{name} cut at {cut} (in packet {})", k + 1);
                let cap = catch_unwind(AssertUnwindSafe(|| read(&bytes[..cut]))).unwrap_or_else(|_| panic!("{what}: panicked"));
                match &cap.damage {
                    Some(FileError::Packet { number, offset, reason }) => {
                        assert_eq!((*number as usize, *offset as usize), (k + 1, start), "{what}: {reason}");
                    }
                    other => panic!("{what}: {other:?}"),
                }
                assert_eq!(cap.packets as usize, k, "{what}");
                // (The packets before may all be fragments of one datagram, or not IP.)
                assert!(cap.conversations.len() <= full.conversations.len(), "{what}");
                assert!(cap.conversations.iter().all(|c| !c.transcript().is_empty()), "{what}");
                // Every conversation holds what the whole file's does, up to the cut.
                for c in &cap.conversations {
                    let whole = full
                        .conversations
                        .iter()
                        .find(|f| f.number == c.number)
                        .unwrap_or_else(|| panic!("{what}: {}", c.header()));
                    assert_eq!(
                        (c.client, c.server, c.transport),
                        (whole.client, whole.server, whole.transport),
                        "{what}"
                    );
                    let (got, want) = (streams(c), streams(whole));
                    for d in 0..2 {
                        assert!(want[d].starts_with(&got[d]), "{what}: {} direction {d} is no prefix", c.header());
                    }
                }
            }
        }
    }
}
