//! The client's frames checked on their way to `h2`, for the connection errors whose code RFC 9113
//! names and `h2` reports as PROTOCOL_ERROR (a SETTINGS, PING, RST_STREAM, WINDOW_UPDATE or
//! PRIORITY frame of the wrong length, SETTINGS values out of range, an undecodable field block,
//! frames on a stream the client already ended), and the ones `h2` lets through (a first frame
//! other than SETTINGS, a GOAWAY too short, a dynamic table size update out of place or over the
//! limit). On the first one the check writes a GOAWAY with the right code itself and ends the
//! connection; `h2` sees the bytes before that frame only.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::fault::{Fault, Faults};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;
/// Field blocks kept while they span CONTINUATION frames; a longer one is left to h2's limits.
const MAX_BLOCK: usize = 1 << 20;
/// Streams remembered as ended by the client; the oldest are forgotten past this.
const MAX_ENDED: usize = 4096;
/// SETTINGS_HEADER_TABLE_SIZE of this server: h2 keeps the initial value (RFC 9113 §6.5.2).
const HEADER_TABLE_SIZE: usize = 4096;
/// The largest flow-control window (RFC 9113 §6.9.1).
const MAX_WINDOW: u64 = 0x7fff_ffff;

const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const STREAM_CLOSED: u32 = 0x5;
const FRAME_SIZE_ERROR: u32 = 0x6;
const COMPRESSION_ERROR: u32 = 0x9;

/// A connection's input, checked frame by frame.
pub(super) struct FrameCheck<S> {
    inner: S,
    /// Bytes of the input not yet judged (a frame under way).
    pending: Vec<u8>,
    preface_left: usize,
    decoder: fluke_hpack::Decoder<'static>,
    block: Vec<u8>,
    ended: std::collections::VecDeque<u32>,
    last_stream: u32,
    /// The GOAWAY being written, and how much of it went.
    goaway: Option<(Vec<u8>, usize)>,
    /// The parser bugs of the `fault` option that live here.
    faults: Faults,
    /// Non-ACK SETTINGS frames received (the first must come first, RFC 9113 §3.4).
    settings: usize,
    /// The connection window as the client's increments make it (fault `limits-off-by-one`).
    window: u64,
}

/// What a judged read lets through: how many of the new bytes h2 may see, the error code of
/// the frame that stops the connection, if one does, the ranges of the new bytes a fault hides
/// from h2, and the bytes a fault changes (offset, new value).
type Judged = (usize, Option<u32>, Vec<(usize, usize)>, Vec<(usize, u8)>);

impl<S> FrameCheck<S> {
    /// Checks the input of `inner`, which starts with the client's preface.
    pub(super) fn new(inner: S, faults: Faults) -> Self {
        FrameCheck {
            inner,
            pending: Vec::new(),
            preface_left: PREFACE_LEN,
            decoder: fluke_hpack::Decoder::new(),
            block: Vec::new(),
            ended: std::collections::VecDeque::new(),
            last_stream: 0,
            goaway: None,
            faults,
            settings: 0,
            window: 65_535,
        }
    }

    /// Judges the new bytes (see `Judged`).
    fn judge(&mut self, new: &[u8]) -> Judged {
        let mut hidden = Vec::new();
        let mut patched = Vec::new();
        let before = self.pending.len();
        self.pending.extend_from_slice(new);
        let mut at = 0;
        if self.preface_left > 0 {
            let n = self.preface_left.min(self.pending.len());
            self.preface_left -= n;
            at = n;
        }
        loop {
            let rest = &self.pending[at..];
            if rest.len() < 9 {
                break;
            }
            let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            // A frame over the default maximum is h2's to refuse (it names FRAME_SIZE_ERROR).
            if len > 16_384 || rest.len() < 9 + len {
                if len > 16_384 {
                    // Nothing after it is judged: h2 ends the connection on it.
                    self.pending.clear();
                    return (new.len(), None, hidden, patched);
                }
                break;
            }
            let (kind, flags) = (rest[3], rest[4]);
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
            let reserved = rest[5] & 0x80 != 0;
            let payload = rest[9..9 + len].to_vec();
            let first_settings = self.settings == 0;
            if let Some(code) = self.frame(kind, flags, stream, reserved, &payload) {
                // h2 sees everything before this frame (of a frame begun in an earlier read, it
                // has the start and never gets the rest).
                return (at.saturating_sub(before).min(new.len()), Some(code), hidden, patched);
            }
            // Faults that change a frame h2 sees; only a frame wholly in this read can be changed.
            if at >= before {
                let start = at - before;
                if self.faults.has(Fault::PingAckAnswered) && kind == 6 && flags & 0x1 != 0 {
                    patched.push((start + 4, flags & !0x1));
                }
                if self.faults.has(Fault::IgnoresWindowChanges) && kind == 4 && flags & 0x1 == 0 && !first_settings {
                    for (i, s) in payload.chunks(6).enumerate() {
                        if s[..2] == [0, 4] {
                            // An identifier h2 does not know, and so ignores.
                            patched.push((start + 9 + 6 * i, 0xf0));
                        }
                    }
                }
            }
            // The `no-ping-ack` fault: a PING h2 never sees is never answered (only one wholly
            // in this read can be taken out).
            if self.faults.has(Fault::NoPingAck) && kind == 6 && flags & 0x1 == 0 && at >= before {
                hidden.push((at - before, at - before + 9 + len));
            }
            at += 9 + len;
        }
        self.pending.drain(..at);
        (new.len(), None, hidden, patched)
    }

    /// The connection error one frame makes, if any.
    fn frame(&mut self, kind: u8, flags: u8, stream: u32, reserved: bool, p: &[u8]) -> Option<u32> {
        let len = p.len();
        if let Some(code) = self.fault(kind, flags, stream, reserved, p) {
            return Some(code);
        }
        // The client's preface ends with a SETTINGS frame (RFC 9113 §3.4).
        if self.settings == 0 && (kind != 4 || flags & 0x1 != 0) {
            return Some(PROTOCOL_ERROR);
        }
        match kind {
            // DATA, HEADERS: a stream the client ended is closed to them (RFC 9113 §5.1).
            0 | 1 if self.ended.contains(&stream) => return Some(STREAM_CLOSED),
            _ => {}
        }
        match kind {
            0 => self.end(stream, flags),
            1 => {
                if stream % 2 == 1 {
                    self.last_stream = self.last_stream.max(stream);
                }
                let mut body = p;
                if flags & 0x8 != 0 {
                    let pad = *body.first()? as usize;
                    body = body.get(1..body.len().checked_sub(pad)?)?;
                }
                if flags & 0x20 != 0 {
                    body = body.get(5..)?;
                }
                self.block.clear();
                self.block.extend_from_slice(body);
                if flags & 0x4 != 0 {
                    if let Some(code) = self.decode() {
                        return Some(code);
                    }
                }
                self.end(stream, flags);
            }
            2 if len != 5 => return Some(FRAME_SIZE_ERROR),
            3 if len != 4 => return Some(FRAME_SIZE_ERROR),
            4 => {
                if stream != 0 {
                    return Some(PROTOCOL_ERROR);
                }
                if flags & 0x1 != 0 && len != 0 || len % 6 != 0 {
                    return Some(FRAME_SIZE_ERROR);
                }
                if flags & 0x1 == 0 {
                    self.settings += 1;
                }
                for s in p.chunks(6) {
                    let id = u16::from_be_bytes([s[0], s[1]]);
                    let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                    match id {
                        2 if v > 1 => return Some(PROTOCOL_ERROR),
                        4 if v > 0x7fff_ffff => return Some(FLOW_CONTROL_ERROR),
                        5 if !(16_384..=16_777_215).contains(&v) => return Some(PROTOCOL_ERROR),
                        _ => {}
                    }
                }
            }
            6 if len != 8 => return Some(FRAME_SIZE_ERROR),
            6 if stream != 0 => return Some(PROTOCOL_ERROR),
            // Last-Stream-ID and Error Code are mandatory (RFC 9113 §4.2, §6.8).
            7 if len < 8 => return Some(FRAME_SIZE_ERROR),
            8 if len != 4 => return Some(FRAME_SIZE_ERROR),
            9 => {
                if self.block.len() + len <= MAX_BLOCK {
                    self.block.extend_from_slice(p);
                }
                if flags & 0x4 != 0 {
                    return self.decode();
                }
            }
            _ => {}
        }
        None
    }

    /// What a parser with one of the `fault` option's bugs makes of a legal frame.
    fn fault(&mut self, kind: u8, flags: u8, stream: u32, reserved: bool, p: &[u8]) -> Option<u32> {
        let defined: u8 = match kind {
            0 => 0x1 | 0x8,
            1 => 0x1 | 0x4 | 0x8 | 0x20,
            4 | 6 => 0x1,
            5 => 0x4 | 0x8,
            9 => 0x4,
            _ => 0,
        };
        let settings = || {
            p.chunks(6)
                .filter(|s| s.len() == 6)
                .map(|s| (u16::from_be_bytes([s[0], s[1]]), u32::from_be_bytes([s[2], s[3], s[4], s[5]])))
        };
        let code = |at: usize| p.get(at..at + 4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        let strict = kind > 9
            || flags & !defined != 0
            || reserved
            || kind == 4 && settings().any(|(id, _)| !(1..=6).contains(&id))
            || kind == 8 && p.first().is_some_and(|b| b & 0x80 != 0)
            || kind == 3 && code(0).is_some_and(|c| c > 0xd)
            || kind == 7 && code(4).is_some_and(|c| c > 0xd);
        let bug = (self.faults.has(Fault::StrictUnknown) && strict)
            || (self.faults.has(Fault::NoPadding) && matches!(kind, 0 | 1) && flags & 0x8 != 0)
            || (self.faults.has(Fault::NoContinuation) && kind == 9)
            || (self.faults.has(Fault::NoPriority) && (kind == 2 || kind == 1 && flags & 0x20 != 0))
            || (self.faults.has(Fault::NoTrailers) && kind == 1 && stream % 2 == 1 && stream <= self.last_stream)
            || (self.faults.has(Fault::BodiesRefused) && kind == 0);
        if bug {
            return Some(PROTOCOL_ERROR);
        }
        if self.faults.has(Fault::LimitsOffByOne) {
            if p.len() == 16_384 {
                return Some(FRAME_SIZE_ERROR);
            }
            if kind == 1 && stream == 0x7fff_ffff {
                return Some(PROTOCOL_ERROR);
            }
            if kind == 4 && settings().any(|s| s == (5, 16_777_215)) {
                return Some(PROTOCOL_ERROR);
            }
            if kind == 4 && settings().any(|s| s == (4, 0x7fff_ffff)) {
                return Some(FLOW_CONTROL_ERROR);
            }
            if kind == 8 && stream == 0 {
                self.window += u64::from(code(0).unwrap_or(0) & 0x7fff_ffff);
                if self.window == MAX_WINDOW {
                    return Some(FLOW_CONTROL_ERROR);
                }
            }
        }
        None
    }

    /// Remembers a stream the client ended (END_STREAM).
    fn end(&mut self, stream: u32, flags: u8) {
        if flags & 0x1 != 0 && stream != 0 {
            if self.ended.len() >= MAX_ENDED {
                self.ended.pop_front();
            }
            self.ended.push_back(stream);
        }
    }

    /// Decodes the field block just completed, as h2 will, so the dynamic table stays the
    /// same on both; a block that does not decode is a COMPRESSION_ERROR (RFC 9113 §4.3).
    fn decode(&mut self) -> Option<u32> {
        let block = std::mem::take(&mut self.block);
        let shape = Shape::of(&block);
        let bug = shape.misplaced_update
            || shape.largest_update > HEADER_TABLE_SIZE
            || (self.faults.has(Fault::LiteralsOnly) && shape.indexed)
            || (self.faults.has(Fault::NoDynamicTable) && shape.dynamic)
            || (self.faults.has(Fault::NoNeverIndexed) && shape.never_indexed)
            || (self.faults.has(Fault::NoHuffman) && shape.huffman)
            || (self.faults.has(Fault::NoSizeUpdate) && shape.size_update);
        if bug {
            return Some(COMPRESSION_ERROR);
        }
        let decoder = &mut self.decoder;
        // The crate panics on some malformed blocks (a cut integer): that is a decoding error too.
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decoder.decode(&block).is_ok())).unwrap_or(false);
        (!ok).then_some(COMPRESSION_ERROR)
    }

    fn goaway_frame(&self, code: u32) -> Vec<u8> {
        let mut f = vec![0, 0, 8, 7, 0, 0, 0, 0, 0];
        f.extend_from_slice(&self.last_stream.to_be_bytes());
        f.extend_from_slice(&code.to_be_bytes());
        f
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for FrameCheck<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((frame, sent)) = &mut this.goaway {
            while *sent < frame.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &frame[*sent..]) {
                    Poll::Ready(Ok(0)) => break,
                    Poll::Ready(Ok(n)) => *sent += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            return Poll::Ready(Err(io::Error::other("connection error: GOAWAY sent")));
        }
        let start = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let new = buf.filled()[start..].to_vec();
        let (shown, stop, hidden, patched) = this.judge(&new);
        let mut new = new;
        if !patched.is_empty() {
            for (at, byte) in patched {
                new[at] = byte;
            }
            buf.set_filled(start);
            buf.put_slice(&new);
        }
        if !hidden.is_empty() {
            let mut kept = Vec::with_capacity(new.len());
            let mut from = 0;
            for (a, b) in hidden {
                kept.extend_from_slice(&new[from..a]);
                from = b;
            }
            kept.extend_from_slice(&new[from..]);
            buf.set_filled(start);
            buf.put_slice(&kept);
        }
        if let Some(code) = stop {
            buf.set_filled(start + shown);
            this.goaway = Some((this.goaway_frame(code), 0));
            // h2 reads what came before the frame now; the GOAWAY goes on the next read.
            cx.waker().wake_by_ref();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameCheck<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The representations a field block uses (RFC 7541 §6), read without decoding it: what the
/// checks and faults of `decode` need. A block cut short is read as far as it goes; decoding it
/// finds the error.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    /// An indexed field or a literal with an indexed name (static or dynamic table).
    indexed: bool,
    /// A literal with incremental indexing, or an index past the static table.
    dynamic: bool,
    /// A literal never indexed.
    never_indexed: bool,
    /// A Huffman-coded string.
    huffman: bool,
    /// A dynamic table size update.
    size_update: bool,
    /// A size update after a field line (RFC 7541 §4.2: it MUST come first).
    misplaced_update: bool,
    /// The largest size a size update asks for.
    largest_update: usize,
}

/// Entries of the static table (RFC 7541 Appendix A).
const STATIC_ENTRIES: usize = 61;

impl Shape {
    fn of(block: &[u8]) -> Shape {
        let mut shape = Shape::default();
        let mut at = 0;
        let mut fields = false;
        while let Some(&b) = block.get(at) {
            let (prefix, literal) = match b {
                _ if b & 0x80 != 0 => (7, false),
                _ if b & 0xc0 == 0x40 => (6, true),
                _ if b & 0xe0 == 0x20 => (5, false),
                _ => (4, true),
            };
            let Some(index) = int(block, &mut at, prefix) else { break };
            if prefix == 5 {
                shape.size_update = true;
                shape.misplaced_update |= fields;
                shape.largest_update = shape.largest_update.max(index);
                continue;
            }
            fields = true;
            shape.indexed |= index > 0;
            shape.dynamic |= index > STATIC_ENTRIES || prefix == 6;
            shape.never_indexed |= prefix == 4 && b & 0x10 != 0;
            if literal {
                let strings = if index == 0 { 2 } else { 1 };
                for _ in 0..strings {
                    let Some(&h) = block.get(at) else { return shape };
                    shape.huffman |= h & 0x80 != 0;
                    let Some(len) = int(block, &mut at, 7) else { return shape };
                    at = at.saturating_add(len);
                }
            }
        }
        shape
    }
}

/// An HPACK integer with a `prefix`-bit prefix at `at` (RFC 7541 §5.1), moving `at` past it;
/// `None` if the block ends inside it or it is too large to mean anything.
fn int(block: &[u8], at: &mut usize, prefix: u32) -> Option<usize> {
    let max = (1usize << prefix) - 1;
    let mut value = usize::from(*block.get(*at)?) & max;
    *at += 1;
    if value < max {
        return Some(value);
    }
    for shift in (0..28).step_by(7) {
        let b = *block.get(*at)?;
        *at += 1;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_field_blocks() {
        // GET, http, /index.html, :authority localhost as a literal with an indexed name.
        let plain = [0x82, 0x86, 0x85, 0x01, 0x01, b'a'];
        assert_eq!(
            Shape::of(&plain),
            Shape {
                indexed: true,
                ..Shape::default()
            }
        );
        let new_name = [0x00, 0x01, b'x', 0x01, b'y'];
        assert_eq!(Shape::of(&new_name), Shape::default());
        let incremental = [0x40, 0x01, b'x', 0x81, 0x1f];
        let s = Shape::of(&incremental);
        assert!(s.dynamic && s.huffman && !s.indexed);
        let never = [0x11, 0x01, b'a'];
        assert!(Shape::of(&never).never_indexed);
        assert!(Shape::of(&[0xbe]).dynamic);
        let updates = [0x20, 0x3f, 0xe1, 0x1f, 0x82];
        let s = Shape::of(&updates);
        assert!(s.size_update && !s.misplaced_update && s.largest_update == 4096);
        assert!(Shape::of(&[0x82, 0x20]).misplaced_update);
        // Cut short: read as far as it goes.
        assert!(Shape::of(&[0x00, 0x05, b'a']) == Shape::default());
    }
}
