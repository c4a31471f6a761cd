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
    /// A packet (or block) could not be read.
    #[error("packet {number}: {reason}")]
    Packet {
        /// 1-based number of the packet that could not be read.
        number: u64,
        /// What went wrong.
        reason: String,
    },
}

enum Inner<R: Read> {
    Pcap(PcapReader<R>, u32, bool),
    PcapNg(PcapNgReader<R>),
}

/// Streams the packets of a pcap or pcapng file.
pub struct CaptureReader<R: Read> {
    inner: Inner<R>,
    number: u64,
    done: bool,
}

/// pcapng Section Header Block type (the same in both byte orders).
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];

/// Streams the packets of a pcap or pcapng file read through `R`.
pub type Reader = CaptureReader<std::io::Chain<std::io::Cursor<[u8; 4]>, Box<dyn Read>>>;

/// Opens a capture from any reader, choosing pcap or pcapng by the magic number.
pub fn from_reader(mut r: Box<dyn Read>) -> Result<Reader, FileError> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|_| FileError::Open("not a pcap or pcapng file: shorter than a file header".into()))?;
    let chained = std::io::Cursor::new(magic).chain(r);
    let inner = if magic == PCAPNG_MAGIC {
        Inner::PcapNg(PcapNgReader::new(chained).map_err(|e| FileError::Open(format!("bad pcapng section header: {e}")))?)
    } else if PCAP_MAGICS.contains(&magic) {
        let rd = PcapReader::new(chained).map_err(|e| FileError::Open(format!("bad pcap file header: {e}")))?;
        let h = rd.header();
        let nanos = h.ts_resolution == pcap_file::TsResolution::NanoSecond;
        Inner::Pcap(rd, u32::from(h.datalink), nanos)
    } else {
        return Err(FileError::Open(format!(
            "not a pcap or pcapng file (magic {:02x}{:02x}{:02x}{:02x})",
            magic[0], magic[1], magic[2], magic[3]
        )));
    };
    Ok(CaptureReader {
        inner,
        number: 0,
        done: false,
    })
}

/// Opens the capture file at `path`.
pub fn open(path: &Path) -> Result<Reader, FileError> {
    let f = File::open(path).map_err(|e| FileError::Open(format!("cannot open: {e}")))?;
    from_reader(Box::new(BufReader::new(f)))
}

impl<R: Read> CaptureReader<R> {
    fn fail(&mut self, reason: String) -> Option<Result<RawPacket, FileError>> {
        self.done = true;
        Some(Err(FileError::Packet {
            number: self.number + 1,
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
                self.number += 1;
                Some(Ok(RawPacket {
                    number: self.number,
                    ts: Duration::new(u64::from(p.ts_sec), frac),
                    interface: 0,
                    linktype: link,
                    orig_len: p.orig_len.max(p.incl_len),
                    data: p.data.into_owned(),
                }))
            }
            Inner::PcapNg(rd) => loop {
                let block = match rd.next_block()? {
                    Ok(b) => b,
                    Err(e) => return self.fail(reason(e)),
                };
                let (iface, ts, orig_len, data) = match block {
                    Block::EnhancedPacket(p) => (p.interface_id, p.timestamp, p.original_len, p.data.into_owned()),
                    Block::SimplePacket(p) => (0, Duration::ZERO, p.original_len, p.data.into_owned()),
                    Block::Packet(p) => (
                        u32::from(p.interface_id),
                        Duration::from_micros(p.timestamp),
                        p.original_len,
                        p.data.into_owned(),
                    ),
                    // Section headers, interface descriptions (the reader keeps them), statistics,
                    // name resolution and unknown blocks carry no packet.
                    _ => continue,
                };
                let Some(idb) = rd.interfaces().get(iface as usize) else {
                    return self.fail(format!(
                        "refers to interface {iface}, which no interface description block declares"
                    ));
                };
                let linktype = u32::from(idb.linktype);
                self.number += 1;
                return Some(Ok(RawPacket {
                    number: self.number,
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
