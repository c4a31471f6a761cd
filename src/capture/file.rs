//! Reading pcap and pcapng files packet by packet (pcap-file 2.x), whichever the magic number says.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

/// One captured packet, as the file stores it.
#[derive(Debug, Clone)]
pub struct RawPacket {
    /// 1-based number of the packet in the file.
    pub number: u64,
    /// Byte offset in the file of its record (pcap) or block (pcapng).
    pub offset: u64,
    /// Capture time since the epoch.
    pub ts: Duration,
    /// pcapng interface id (0 in pcap files): the same addresses on two interfaces are two networks.
    pub interface: u32,
    /// Link type (LINKTYPE_* number) of the interface it was captured on.
    pub linktype: u32,
    /// Length on the wire (more than `data.len()` when the snaplen cut it).
    pub orig_len: u32,
    /// The captured bytes, link header first.
    pub data: Vec<u8>,
}

/// A file that cannot be read, with the packet where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened or is not a capture.
    #[error("{0}")]
    Open(String),
    /// A packet (or block) could not be read or decoded: the file is damaged there.
    #[error("packet {number} (byte {offset}): {reason}")]
    Packet {
        /// 1-based number of the packet that could not be read.
        number: u64,
        /// Byte offset in the file where its record (pcap) or block (pcapng) starts.
        offset: u64,
        /// What went wrong.
        reason: String,
    },
}

enum Inner<R: Read> {
    Pcap(PcapReader<R>, u32, bool),
    PcapNg(PcapNgReader<R>),
}

/// The key log texts of a pcapng file's Decryption Secrets Blocks read so far, shared with
/// whoever decodes its packets: a block comes before the packets it decrypts.
pub type Secrets = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// pcapng Decryption Secrets Block type, and its secrets type for a TLS key log ("TLSK").
pub const DSB_BLOCK: u32 = 0x0000_000A;
/// The secrets type of a TLS key log in a Decryption Secrets Block.
pub const DSB_TLS_KEY_LOG: u32 = 0x544c_534b;

/// Streams the packets of a pcap or pcapng file.
pub struct CaptureReader<R: Read> {
    inner: Inner<R>,
    secrets: Secrets,
    number: u64,
    /// Byte offset of the next record or block.
    offset: u64,
    done: bool,
}

/// Length of a pcap file header, before the first record.
const PCAP_HEADER: u64 = 24;
/// Length of a pcap record header, before its bytes.
const PCAP_RECORD_HEADER: u64 = 16;

/// pcapng Section Header Block type (the same in both byte orders).
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];

/// A pcapng timestamp in its interface's units as time since the epoch: `if_tsresol` (RFC draft
/// pcapng §4.2: a power of 10, or of 2 with the high bit set; 10^-6 when absent) and
/// `if_tsoffset` (seconds added to every timestamp).
fn pcapng_time(units: u64, options: &[pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption]) -> Duration {
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption as Opt;
    let mut resol = 6u8;
    let mut offset = 0i64;
    for o in options {
        match o {
            Opt::IfTsResol(r) => resol = *r,
            Opt::IfTsOffset(o) => offset = *o as i64,
            _ => {}
        }
    }
    let units = u128::from(units);
    let nanos: u128 = if resol & 0x80 != 0 {
        // 2^-n seconds per unit.
        let n = u32::from(resol & 0x7f).min(127);
        (units * 1_000_000_000) >> n
    } else if resol <= 9 {
        units * 10u128.pow(u32::from(9 - resol))
    } else {
        units / 10u128.pow(u32::from(resol.min(38) - 9))
    };
    let secs = (nanos / 1_000_000_000) as i128 + i128::from(offset);
    Duration::new(secs.clamp(0, i128::from(u64::MAX)) as u64, (nanos % 1_000_000_000) as u32)
}

/// Streams the packets of a pcap or pcapng file read through `R`.
pub type Reader = CaptureReader<std::io::Chain<std::io::Cursor<Vec<u8>>, Box<dyn Read>>>;

/// Opens a capture from any reader, choosing pcap or pcapng by the magic number.
pub fn from_reader(mut r: Box<dyn Read>) -> Result<Reader, FileError> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|_| FileError::Open("not a pcap or pcapng file: shorter than a file header".into()))?;
    // A section header's length and byte-order magic: where the first block after it starts.
    let mut head = magic.to_vec();
    if magic == PCAPNG_MAGIC {
        let _ = (&mut r).take(8).read_to_end(&mut head);
    }
    let first = match head.get(4..12) {
        Some(h) if h[4..8] == [0x4d, 0x3c, 0x2b, 0x1a] => u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]])),
        Some(h) => u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]])),
        None => 0,
    };
    let chained = std::io::Cursor::new(head).chain(r);
    let (inner, offset) = if magic == PCAPNG_MAGIC {
        let rd = PcapNgReader::new(chained).map_err(|e| FileError::Open(format!("bad pcapng section header: {e}")))?;
        (Inner::PcapNg(rd), first)
    } else if PCAP_MAGICS.contains(&magic) {
        let rd = PcapReader::new(chained).map_err(|e| FileError::Open(format!("bad pcap file header: {e}")))?;
        let h = rd.header();
        let nanos = h.ts_resolution == pcap_file::TsResolution::NanoSecond;
        (Inner::Pcap(rd, u32::from(h.datalink), nanos), PCAP_HEADER)
    } else {
        return Err(FileError::Open(format!(
            "not a pcap or pcapng file (magic {:02x}{:02x}{:02x}{:02x})",
            magic[0], magic[1], magic[2], magic[3]
        )));
    };
    Ok(CaptureReader {
        inner,
        secrets: Secrets::default(),
        number: 0,
        offset,
        done: false,
    })
}

/// Opens the capture file at `path`.
pub fn open(path: &Path) -> Result<Reader, FileError> {
    let f = File::open(path).map_err(|e| FileError::Open(format!("cannot open: {e}")))?;
    from_reader(Box::new(BufReader::new(f)))
}

impl<R: Read> CaptureReader<R> {
    /// The TLS key logs its Decryption Secrets Blocks carry, filled as the file is read.
    pub fn secrets(&self) -> Secrets {
        self.secrets.clone()
    }

    fn fail(&mut self, reason: String) -> Option<Result<RawPacket, FileError>> {
        self.done = true;
        Some(Err(FileError::Packet {
            number: self.number + 1,
            offset: self.offset,
            reason,
        }))
    }
}

fn reason(e: pcap_file::PcapError) -> String {
    match e {
        pcap_file::PcapError::IncompleteBuffer => "the file ends inside this packet (truncated file)".into(),
        pcap_file::PcapError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file ends inside this packet (truncated file), or its length field is corrupt".into()
        }
        e => e.to_string(),
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<RawPacket, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match &mut self.inner {
            Inner::Pcap(rd, link, nanos) => {
                let (link, nanos) = (*link, *nanos);
                // The raw record: pcap-file's checked one rejects orig_len > snaplen, which
                // captures taken with a small snaplen always have.
                let p = match rd.next_raw_packet()? {
                    Ok(p) => pcap_file::pcap::RawPcapPacket {
                        data: std::borrow::Cow::Owned(p.data.into_owned()),
                        ..p
                    },
                    Err(e) => return self.fail(reason(e)),
                };
                let frac = if nanos { p.ts_frac } else { p.ts_frac.saturating_mul(1000) };
                if frac >= 1_000_000_000 {
                    return self.fail(format!("bad timestamp fraction {}", p.ts_frac));
                }
                let offset = self.offset;
                self.offset += PCAP_RECORD_HEADER + u64::from(p.incl_len);
                self.number += 1;
                Some(Ok(RawPacket {
                    number: self.number,
                    offset,
                    ts: Duration::new(u64::from(p.ts_sec), frac),
                    interface: 0,
                    linktype: link,
                    orig_len: p.orig_len.max(p.incl_len),
                    data: p.data.into_owned(),
                }))
            }
            Inner::PcapNg(rd) => loop {
                // A block is read in its section's byte order (a new section header's own order
                // is found by the parser from its magic).
                let big = rd.section().endianness == pcap_file::Endianness::Big;
                let raw = match rd.next_raw_block()? {
                    Ok(b) => b,
                    Err(e) => return self.fail(reason(e)),
                };
                let len = u64::from(raw.initial_len);
                let block = match big {
                    true => raw.try_into_block::<byteorder_slice::BigEndian>(),
                    false => raw.try_into_block::<byteorder_slice::LittleEndian>(),
                };
                let block = match block {
                    Ok(b) => b,
                    Err(e) => return self.fail(reason(e)),
                };
                let offset = self.offset;
                self.offset += len;
                // pcap-file hands an enhanced packet's timestamp over as if its units were
                // nanoseconds; they are the interface's `if_tsresol` (microseconds by default).
                let (iface, units, orig_len, data) = match block {
                    Block::EnhancedPacket(p) => (
                        p.interface_id,
                        Some(p.timestamp.as_nanos() as u64),
                        p.original_len,
                        p.data.into_owned(),
                    ),
                    Block::SimplePacket(p) => (0, None, p.original_len, p.data.into_owned()),
                    Block::Packet(p) => (u32::from(p.interface_id), Some(p.timestamp), p.original_len, p.data.into_owned()),
                    Block::Unknown(u) if u.type_ == DSB_BLOCK => {
                        // Secrets type, length, the secrets, padding, options.
                        let word = |b: &[u8]| {
                            let w: [u8; 4] = b.try_into().unwrap_or_default();
                            if big {
                                u32::from_be_bytes(w)
                            } else {
                                u32::from_le_bytes(w)
                            }
                        };
                        let (Some(kind), Some(len)) = (u.value.get(..4), u.value.get(4..8)) else {
                            continue;
                        };
                        let Some(data) = u.value.get(8..8 + word(len) as usize) else {
                            return self.fail("a decryption secrets block's length runs past its end".into());
                        };
                        if word(kind) == DSB_TLS_KEY_LOG {
                            let text = String::from_utf8_lossy(data).into_owned();
                            self.secrets.lock().unwrap_or_else(|e| e.into_inner()).push(text);
                        }
                        continue;
                    }
                    // Section headers, interface descriptions (the reader keeps them), statistics,
                    // name resolution and unknown blocks carry no packet.
                    _ => continue,
                };
                let Some(idb) = rd.interfaces().get(iface as usize) else {
                    self.offset = offset;
                    return self.fail(format!(
                        "refers to interface {iface}, which no interface description block declares"
                    ));
                };
                let linktype = u32::from(idb.linktype);
                let ts = units.map_or(Duration::ZERO, |u| pcapng_time(u, &idb.options));
                self.number += 1;
                return Some(Ok(RawPacket {
                    number: self.number,
                    offset,
                    ts,
                    interface: iface,
                    linktype,
                    orig_len,
                    data,
                }));
            },
        }
    }
}
