//! The client's frames checked on their way to `h2`, for the connection errors whose code RFC 9113
//! names and `h2` reports as PROTOCOL_ERROR (a SETTINGS, PING, RST_STREAM, WINDOW_UPDATE or
//! PRIORITY frame of the wrong length, SETTINGS values out of range, an undecodable field block,
//! frames on a stream the client already ended). On the first one the check writes a GOAWAY with
//! the right code itself and ends the connection; `h2` sees the bytes before that frame only.

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
}

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
        }
    }

    /// Judges the new bytes; returns how many of them h2 may see, the error code of the frame
    /// that stops the connection, if one does, and the ranges of `new` a fault hides from h2.
    fn judge(&mut self, new: &[u8]) -> (usize, Option<u32>, Vec<(usize, usize)>) {
        let mut hidden = Vec::new();
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
                    return (new.len(), None, hidden);
                }
                break;
            }
            let (kind, flags) = (rest[3], rest[4]);
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
            let payload = rest[9..9 + len].to_vec();
            if let Some(code) = self.frame(kind, flags, stream, &payload) {
                // h2 sees everything before this frame (of a frame begun in an earlier read, it
                // has the start and never gets the rest).
                return (at.saturating_sub(before).min(new.len()), Some(code), hidden);
            }
            // The `no-ping-ack` fault: a PING h2 never sees is never answered (only one wholly
            // in this read can be taken out).
            if self.faults.has(Fault::NoPingAck) && kind == 6 && flags & 0x1 == 0 && at >= before {
                hidden.push((at - before, at - before + 9 + len));
            }
            at += 9 + len;
        }
        self.pending.drain(..at);
        (new.len(), None, hidden)
    }

    /// The connection error one frame makes, if any.
    fn frame(&mut self, kind: u8, flags: u8, stream: u32, p: &[u8]) -> Option<u32> {
        let len = p.len();
        if let Some(code) = self.fault(kind, flags, p) {
            return Some(code);
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
    fn fault(&self, kind: u8, flags: u8, p: &[u8]) -> Option<u32> {
        let defined: u8 = match kind {
            0 => 0x1 | 0x8,
            1 => 0x1 | 0x4 | 0x8 | 0x20,
            4 | 6 => 0x1,
            5 => 0x4 | 0x8,
            9 => 0x4,
            _ => 0,
        };
        let unknown_setting = kind == 4
            && p.chunks(6)
                .any(|s| s.len() == 6 && !(1..=9).contains(&u16::from_be_bytes([s[0], s[1]])));
        let bug = (self.faults.has(Fault::StrictUnknown) && (kind > 9 || flags & !defined != 0 || unknown_setting))
            || (self.faults.has(Fault::NoPadding) && matches!(kind, 0 | 1) && flags & 0x8 != 0)
            || (self.faults.has(Fault::NoContinuation) && kind == 9)
            || (self.faults.has(Fault::NoPriority) && (kind == 2 || kind == 1 && flags & 0x20 != 0));
        bug.then_some(PROTOCOL_ERROR)
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
        let (shown, stop, hidden) = this.judge(&new);
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
