//! TCP reassembly: one connection, both directions, in sequence order.
//!
//! Out-of-order segments wait (bounded) until the bytes before them arrive; retransmissions and
//! overlaps keep the first copy (a conflicting overlap is noted); bytes never seen become a gap.
//! Keep-alive and zero-window probes are told from data as Wireshark's TCP analysis tells them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::dialogue::EventKind;
use crate::proto::Direction;

use super::packet::TcpSegment;

/// Out-of-order bytes buffered per direction before the oldest hole is declared a gap.
pub const MAX_PENDING_BYTES: usize = 4 << 20;
/// What a buffered piece costs beyond its bytes (so that empty pieces count too).
const PIECE_OVERHEAD: usize = 64;
/// Delivered bytes kept per direction to check retransmissions against.
const RECENT: usize = 64 << 10;
/// Conflicting-overlap notes per direction.
const MAX_NOTES: usize = 5;

struct Piece {
    bytes: Vec<u8>,
    missing: u32,
    ts: Duration,
}

#[derive(Default)]
struct Half {
    /// Sequence number of the SYN, if one was seen.
    isn: Option<u32>,
    /// Sequence number of stream offset 0.
    base: Option<u32>,
    /// Bytes delivered in order (stream offset of the next byte).
    delivered: u64,
    pending: BTreeMap<u64, Piece>,
    pending_bytes: usize,
    recent: Vec<u8>,
    fin_at: Option<u64>,
    closed: bool,
    last_t: Duration,
    notes: usize,
    /// Stream offset just past the furthest byte seen (Wireshark's "next sequence number").
    high: u64,
    /// The last acknowledgment number this side sent: the peer's next expected byte.
    acked: Option<u32>,
    /// The last window this side advertised.
    window: Option<u16>,
    /// A zero-window probe held back: its byte is data only if the peer takes it.
    probe: Option<Piece>,
    /// Offset of the held probe.
    probe_at: u64,
    /// The event of this side's first byte when it came alone and set the stream's start: a
    /// keep-alive probe seen before any data looks like that until it is repeated.
    lone_first: Option<usize>,
}

impl Half {
    /// Stream offset of sequence number `seq`, near what was delivered (handles wrap-around);
    /// negative before the stream's first byte.
    fn offset(&self, seq: u32) -> i64 {
        let base = self.base.unwrap_or(seq);
        let expected = base.wrapping_add(self.delivered as u32);
        let delta = seq.wrapping_sub(expected) as i32 as i64;
        self.delivered as i64 + delta
    }
}

/// What a segment without SYN, FIN or RST is, beside data.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// Data (or a bare ACK).
    None,
    /// A keep-alive: 0 or 1 byte one before the next sequence number; its byte is not data.
    KeepAlive,
    /// One byte at the next sequence number while the peer's window is closed.
    ZeroWindow,
}

/// One TCP connection being reassembled.
pub struct TcpConn {
    halves: [Half; 2],
    /// Events so far, with capture times (non-decreasing per direction).
    pub events: Vec<(Duration, EventKind)>,
    opened: bool,
    reset: bool,
    mid_noted: bool,
}

fn idx(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl Default for TcpConn {
    fn default() -> Self {
        TcpConn::new()
    }
}

impl TcpConn {
    /// A connection nothing has been seen of.
    pub fn new() -> TcpConn {
        TcpConn {
            halves: [Half::default(), Half::default()],
            events: Vec::new(),
            opened: false,
            reset: false,
            mid_noted: false,
        }
    }

    /// Whether a SYN from the client with this sequence number would start a new connection
    /// on the same addresses (rather than repeat or complete this one).
    pub fn is_new_syn(&self, seq: u32) -> bool {
        let c = &self.halves[0];
        match c.isn {
            Some(isn) => isn != seq,
            None => self.is_used(),
        }
    }

    /// Whether any byte, FIN or RST was seen.
    pub fn is_used(&self) -> bool {
        self.reset
            || self
                .halves
                .iter()
                .any(|h| h.delivered > 0 || !h.pending.is_empty() || h.closed || h.fin_at.is_some())
    }

    /// Whether a SYN (or SYN-ACK) was seen.
    pub fn syn_seen(&self) -> bool {
        self.opened
    }

    /// Whether either side has finished (RST, or FIN from both).
    pub fn is_finished(&self) -> bool {
        self.reset || self.halves.iter().all(|h| h.closed)
    }

    fn push(&mut self, dir: Option<Direction>, ts: Duration, kind: EventKind) {
        let t = match dir {
            Some(d) => {
                let h = &mut self.halves[idx(d)];
                h.last_t = h.last_t.max(ts);
                h.last_t
            }
            None => ts,
        };
        // Adjacent gaps (or cuts) of one direction read better as one.
        match (&kind, self.events.last_mut()) {
            (EventKind::Gap { dir: d, len }, Some((_, EventKind::Gap { dir: pd, len: plen })))
            | (EventKind::Cut { dir: d, len }, Some((_, EventKind::Cut { dir: pd, len: plen })))
                if pd == d =>
            {
                *plen += len;
                return;
            }
            _ => {}
        }
        self.events.push((t, kind));
    }

    /// Adds a segment sent in direction `dir` at time `ts`.
    pub fn segment(&mut self, dir: Direction, seg: &TcpSegment, ts: Duration) {
        let i = idx(dir);
        if seg.syn {
            if !self.opened {
                self.opened = true;
                self.push(None, ts, EventKind::Open);
            }
            let h = &mut self.halves[i];
            if h.isn.is_none() && h.delivered == 0 && h.pending.is_empty() {
                h.isn = Some(seg.seq);
                h.base = Some(seg.seq.wrapping_add(1));
            }
        }
        if seg.ack && !seg.rst {
            let h = &mut self.halves[i];
            h.acked = Some(seg.ack_no);
            h.window = Some(seg.window);
            self.settle_probe(dir.opposite(), ts);
        }
        let data_seq = if seg.syn { seg.seq.wrapping_add(1) } else { seg.seq };
        let len = seg.payload.len() as u64 + u64::from(seg.missing);
        match self.probe(dir, seg, data_seq, len) {
            Probe::KeepAlive => return,
            Probe::ZeroWindow => {
                let h = &mut self.halves[i];
                h.probe_at = h.offset(data_seq) as u64;
                h.probe = Some(Piece {
                    bytes: seg.payload.clone(),
                    missing: seg.missing,
                    ts,
                });
                return;
            }
            Probe::None => {}
        }
        if self.halves[i].base.is_none() {
            if len == 0 && !seg.fin {
                if seg.rst && !self.reset {
                    self.reset = true;
                    // A reset answering a SYN, from a side that never sent one: nothing listened.
                    let refused = self.halves[1 - i].isn.is_some() && self.halves[1 - i].delivered == 0;
                    self.push(None, ts, if refused { EventKind::Refused } else { EventKind::Reset });
                }
                return;
            }
            self.halves[i].base = Some(data_seq);
            if !self.opened && !self.mid_noted {
                self.mid_noted = true;
                self.push(
                    None,
                    ts,
                    EventKind::Note {
                        text: "capture starts mid-connection (no SYN seen)".into(),
                    },
                );
            }
        }
        let first = self.halves[i].base == Some(data_seq) && self.halves[i].high == 0 && !self.opened;
        let off = self.halves[i].offset(data_seq);
        // Bytes before the stream's start (a SYN's sequence number) are no data.
        let before = off.min(0).unsigned_abs();
        let off = off.max(0) as u64;
        if seg.fin && self.halves[i].fin_at.is_none() {
            self.halves[i].fin_at = Some(off + len.saturating_sub(before));
        }
        if len > before {
            if let Some(p) = self.halves[i].probe.take() {
                // The probe's byte is data when the sender goes on after it, not over it.
                if off == self.halves[i].probe_at + 1 {
                    let at = self.halves[i].probe_at;
                    self.place(dir, at, p.bytes, p.missing, p.ts);
                }
            }
            let h = &mut self.halves[i];
            h.high = h.high.max(off + len - before);
            let skip = (before as usize).min(seg.payload.len());
            let missing = seg.missing - u32::try_from(before - skip as u64).unwrap_or(seg.missing);
            let mark = self.events.len();
            self.place(dir, off, seg.payload[skip..].to_vec(), missing, ts);
            if first && len == 1 && self.events.len() == mark + 1 {
                self.halves[i].lone_first = Some(mark);
            }
        }
        self.check_fin(dir, ts);
        if seg.rst && !self.reset {
            self.reset = true;
            self.flush(ts);
            self.push(None, ts, EventKind::Reset);
        }
    }

    /// Whether a segment is a keep-alive or zero-window probe (Wireshark's rules: a keep-alive
    /// carries 0 or 1 byte one before the sender's next sequence number; a zero-window probe 1
    /// byte at it while the peer's window is 0). The next sequence number is what the sender
    /// sent furthest; before it sent anything the capture shows, the peer's acknowledgment (a
    /// capture that starts on an idle connection).
    fn probe(&mut self, dir: Direction, seg: &TcpSegment, data_seq: u32, len: u64) -> Probe {
        let i = idx(dir);
        if seg.syn || seg.fin || seg.rst || len > 1 {
            return Probe::None;
        }
        let peer_acked = self.halves[1 - i].acked;
        let peer_closed = self.halves[1 - i].window == Some(0);
        let h = &mut self.halves[i];
        if h.base.is_none() {
            // The data after it starts the stream, at the peer's acknowledgment.
            return if peer_acked == Some(data_seq.wrapping_add(1)) {
                Probe::KeepAlive
            } else {
                Probe::None
            };
        }
        let off = h.offset(data_seq);
        if off + 1 == h.high as i64 {
            if let Some(at) = h.lone_first.take().filter(|_| h.delivered == 1 && h.high == 1) {
                // The lone first byte was an earlier probe of the same kind: it leaves the stream,
                // which starts after it.
                h.base = h.base.map(|b| b.wrapping_add(1));
                h.delivered = 0;
                h.high = 0;
                h.recent.clear();
                let text = format!("{} keep-alive probe (not data)", dir.arrow());
                self.events[at].1 = EventKind::Note { text };
            }
            return Probe::KeepAlive;
        }
        if len == 1 && off == h.high as i64 && peer_closed {
            return Probe::ZeroWindow;
        }
        Probe::None
    }

    /// A held zero-window probe of `dir` becomes data once the peer acknowledges its byte.
    fn settle_probe(&mut self, dir: Direction, ts: Duration) {
        let i = idx(dir);
        let h = &self.halves[i];
        let taken = match (h.probe.as_ref(), self.halves[1 - i].acked) {
            (Some(_), Some(a)) => h.offset(a) > h.probe_at as i64,
            _ => false,
        };
        if taken {
            let h = &mut self.halves[i];
            let p = h.probe.take().expect("checked above");
            let at = h.probe_at;
            h.high = h.high.max(at + p.bytes.len() as u64 + u64::from(p.missing));
            self.place(dir, at, p.bytes, p.missing, ts.max(p.ts));
        }
    }

    fn check_fin(&mut self, dir: Direction, ts: Duration) {
        let h = &mut self.halves[idx(dir)];
        if !h.closed && h.fin_at.is_some_and(|f| f <= h.delivered) {
            h.closed = true;
            self.push(Some(dir), ts, EventKind::Closed { dir });
        }
    }

    /// Places bytes at stream offset `off`: delivered now if they are next, else buffered.
    fn place(&mut self, dir: Direction, off: u64, bytes: Vec<u8>, missing: u32, ts: Duration) {
        let i = idx(dir);
        let h = &mut self.halves[i];
        if off > h.delivered {
            match h.pending.get_mut(&off) {
                None => {
                    h.pending_bytes += bytes.len() + PIECE_OVERHEAD;
                    h.pending.insert(off, Piece { bytes, missing, ts });
                }
                // Another copy at the same offset: the first copy's bytes are kept, but a longer
                // copy (a retransmission that coalesces segments) brings bytes beyond it, which
                // would otherwise be lost for good.
                Some(p) => {
                    let end = (p.bytes.len() as u64 + u64::from(p.missing)).max(bytes.len() as u64 + u64::from(missing));
                    if bytes.len() > p.bytes.len() {
                        h.pending_bytes += bytes.len() - p.bytes.len();
                        p.bytes.extend_from_slice(&bytes[p.bytes.len()..]);
                    }
                    // Cut bytes are always a piece's tail: what the merged bytes do not reach.
                    p.missing = u32::try_from(end - p.bytes.len() as u64).unwrap_or(u32::MAX);
                }
            }
            if self.halves[i].pending_bytes > MAX_PENDING_BYTES {
                self.skip_to_pending(dir, ts);
            }
            return;
        }
        self.deliver(dir, off, bytes, missing, ts);
        self.drain(dir);
    }

    /// Declares the hole before the first buffered piece a gap and goes on from there.
    fn skip_to_pending(&mut self, dir: Direction, ts: Duration) {
        let h = &mut self.halves[idx(dir)];
        let Some((&first, _)) = h.pending.first_key_value() else { return };
        if first > h.delivered {
            let len = first - h.delivered;
            h.delivered = first;
            // `recent` ends where the gap starts: kept, it would be checked against the wrong
            // stream offsets (a copy of gap bytes would "differ" from bytes before the gap).
            h.recent.clear();
            self.push(Some(dir), ts, EventKind::Gap { dir, len });
        }
        self.drain(dir);
    }

    fn drain(&mut self, dir: Direction) {
        let i = idx(dir);
        loop {
            let h = &mut self.halves[i];
            let Some(entry) = h.pending.first_entry() else { break };
            if *entry.key() > h.delivered {
                break;
            }
            let (off, p) = entry.remove_entry();
            h.pending_bytes -= p.bytes.len() + PIECE_OVERHEAD;
            self.deliver(dir, off, p.bytes, p.missing, p.ts);
        }
    }

    /// Delivers the part of a piece at `off` (≤ delivered) beyond what was already delivered.
    fn deliver(&mut self, dir: Direction, off: u64, bytes: Vec<u8>, missing: u32, ts: Duration) {
        let i = idx(dir);
        let h = &mut self.halves[i];
        let end = off + bytes.len() as u64 + u64::from(missing);
        if end <= h.delivered {
            self.compare(dir, off, &bytes, ts);
            return;
        }
        let skip = (h.delivered - off) as usize;
        self.compare(dir, off, &bytes[..skip.min(bytes.len())], ts);
        let h = &mut self.halves[i];
        let (new, gap) = if skip <= bytes.len() {
            // In-order segments (skip 0) are the common case: their bytes move, not copied.
            let mut new = bytes;
            new.drain(..skip);
            (new, u64::from(missing))
        } else {
            (Vec::new(), u64::from(missing) - (skip - bytes.len()) as u64)
        };
        h.delivered = end;
        if !new.is_empty() {
            h.recent.extend_from_slice(&new);
            if h.recent.len() > RECENT {
                let cut = h.recent.len() - RECENT;
                h.recent.drain(..cut);
            }
            self.push(Some(dir), ts, EventKind::Data { dir, bytes: new });
        }
        if gap > 0 {
            // Bytes cut by the capture's snaplen: the stream history no longer matches `recent`.
            self.halves[i].recent.clear();
            self.push(Some(dir), ts, EventKind::Cut { dir, len: gap });
        }
    }

    /// Checks a retransmitted copy against the bytes delivered first.
    fn compare(&mut self, dir: Direction, off: u64, bytes: &[u8], ts: Duration) {
        let h = &mut self.halves[idx(dir)];
        let recent_start = h.delivered - h.recent.len() as u64;
        let mut conflict = None;
        for (k, b) in bytes.iter().enumerate() {
            let at = off + k as u64;
            if at >= recent_start && at < h.delivered && h.recent[(at - recent_start) as usize] != *b {
                conflict = Some(at);
                break;
            }
        }
        if let Some(at) = conflict {
            if h.notes < MAX_NOTES {
                h.notes += 1;
                let text = format!(
                    "{} retransmission differs from the first copy at stream byte {at} (first copy kept)",
                    dir.arrow()
                );
                self.push(Some(dir), ts, EventKind::Note { text });
            }
        }
    }

    /// End of the capture (or a reset): buffered pieces are delivered with gaps before them.
    pub fn flush(&mut self, ts: Duration) {
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            while !self.halves[idx(dir)].pending.is_empty() {
                self.skip_to_pending(dir, ts);
            }
            let h = &mut self.halves[idx(dir)];
            if let Some(f) = h.fin_at {
                if !h.closed && f > h.delivered {
                    let len = f - h.delivered;
                    h.delivered = f;
                    h.recent.clear();
                    self.push(Some(dir), ts, EventKind::Gap { dir, len });
                }
            }
            self.check_fin(dir, ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    fn seg(seq: u32, data: &[u8], syn: bool, fin: bool) -> TcpSegment {
        TcpSegment {
            sport: 1,
            dport: 2,
            seq,
            ack_no: 0,
            window: 65535,
            syn,
            ack: !syn,
            fin,
            rst: false,
            payload: data.to_vec(),
            missing: 0,
        }
    }

    fn text(c: &TcpConn) -> Vec<String> {
        c.events
            .iter()
            .map(|(_, e)| match e {
                EventKind::Data { dir, bytes } => format!("{} {}", dir.arrow(), String::from_utf8_lossy(bytes)),
                EventKind::Gap { dir, len } => format!("{} gap {len}", dir.arrow()),
                EventKind::Cut { dir, len } => format!("{} cut {len}", dir.arrow()),
                EventKind::Closed { dir } => format!("{} fin", dir.arrow()),
                EventKind::Note { text } => format!("note {text}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn reorders_dedups_and_marks_gaps() {
        let t = Duration::ZERO;
        let mut c = TcpConn::new();
        c.segment(ClientToServer, &seg(u32::MAX - 2, b"", true, false), t);
        c.segment(ClientToServer, &seg((u32::MAX - 1).wrapping_add(5), b"world", false, false), t); // wraps around
        c.segment(ClientToServer, &seg(u32::MAX - 1, b"hello", false, false), t);
        c.segment(ClientToServer, &seg(u32::MAX - 1, b"hellX", false, false), t); // conflicting copy
        c.segment(ClientToServer, &seg(20, b"late", false, true), t); // a hole before it
        c.flush(t);
        assert_eq!(
            text(&c),
            [
                "Open",
                "C→S hello",
                "C→S world",
                "note C→S retransmission differs from the first copy at stream byte 4 (first copy kept)",
                "C→S gap 12",
                "C→S late",
                "C→S fin"
            ]
        );
    }

    #[test]
    fn random_segments_never_panic() {
        let mut s = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..300 {
            let mut c = TcpConn::new();
            let base = next() as u32;
            for _ in 0..60 {
                let r = next();
                let dir = if r & 1 == 0 { ClientToServer } else { ServerToClient };
                let len = (r >> 8) as usize % 40;
                let mut sg = seg(base.wrapping_add((r >> 16) as u32 % 300), &vec![b'x'; len], r & 2 != 0, r & 4 != 0);
                sg.rst = r % 97 == 0;
                sg.ack = r & 8 != 0;
                sg.missing = if r % 13 == 0 { (r >> 40) as u32 % 100 } else { 0 };
                c.segment(dir, &sg, Duration::from_micros(r % 1000));
                let _ = c.is_new_syn(r as u32);
            }
            c.flush(Duration::from_secs(1));
        }
    }

    #[test]
    fn bytes_after_a_gap_are_not_compared_with_bytes_before_it() {
        let t = Duration::ZERO;
        let mut c = TcpConn::new();
        c.segment(ClientToServer, &seg(99, b"", true, false), t);
        c.segment(ClientToServer, &seg(100, b"abc", false, false), t);
        c.segment(ClientToServer, &seg(110, b"xyz", false, false), t);
        // The reset declares bytes 3..10 a gap; a late copy of gap bytes has nothing to differ
        // from (before the fix it was compared with "abc" and reported as conflicting).
        let mut rst = seg(113, b"", false, false);
        rst.rst = true;
        c.segment(ClientToServer, &rst, t);
        c.segment(ClientToServer, &seg(107, b"QQQ", false, false), t);
        c.segment(ClientToServer, &seg(110, b"xyW", false, false), t);
        assert_eq!(
            text(&c),
            [
                "Open",
                "C→S abc",
                "C→S gap 7",
                "C→S xyz",
                "Reset",
                "note C→S retransmission differs from the first copy at stream byte 12 (first copy kept)"
            ]
        );
    }

    #[test]
    fn a_longer_copy_of_a_waiting_segment_is_not_lost() {
        let t = Duration::ZERO;
        let mut c = TcpConn::new();
        c.segment(ClientToServer, &seg(99, b"", true, false), t);
        // Bytes 10..15 wait for 0..10; then a retransmission repacketizes 10..30 (as TSO or a
        // coalescing retransmit does), then 0..10 arrives: nothing is missing.
        c.segment(ClientToServer, &seg(110, b"KLMNO", false, false), t);
        c.segment(ClientToServer, &seg(110, b"KLMNOPQRSTUVWXYZ0123", false, true), t);
        c.segment(ClientToServer, &seg(100, b"ABCDEFGHIJ", false, false), t);
        c.flush(t);
        assert_eq!(text(&c), ["Open", "C→S ABCDEFGHIJ", "C→S KLMNOPQRSTUVWXYZ0123", "C→S fin"]);
    }

    #[test]
    fn mid_connection_start_still_yields_data() {
        let t = Duration::ZERO;
        let mut c = TcpConn::new();
        c.segment(ServerToClient, &seg(1000, b"abc", false, false), t);
        c.segment(ServerToClient, &seg(1003, b"def", false, false), t);
        assert_eq!(text(&c)[1..], ["S→C abc", "S→C def"]);
        assert!(c.is_new_syn(5));
    }

    fn acking(seq: u32, ack_no: u32, window: u16) -> TcpSegment {
        TcpSegment {
            ack_no,
            window,
            ..seg(seq, b"", false, false)
        }
    }

    #[test]
    fn keep_alive_probes_are_not_data() {
        let t = Duration::ZERO;
        // After the handshake: a probe at the ISN (one before the first byte), answered by a
        // duplicate ACK, then the request.
        let mut c = TcpConn::new();
        c.segment(ClientToServer, &seg(99, b"", true, false), t);
        c.segment(
            ServerToClient,
            &TcpSegment {
                ack_no: 100,
                ..seg(499, b"", true, false)
            },
            t,
        );
        c.segment(ClientToServer, &seg(99, b"\0", false, false), t);
        c.segment(ServerToClient, &acking(500, 100, 65535), t);
        c.segment(ClientToServer, &seg(100, b"GET /", false, false), t);
        // Between requests: a probe repeating the last byte sent.
        c.segment(ClientToServer, &seg(104, b"\0", false, false), t);
        c.segment(ClientToServer, &seg(105, b"x", false, false), t);
        assert_eq!(text(&c), ["Open", "C→S GET /", "C→S x"]);

        // A capture that starts on an idle connection: the peer's ACK tells where data starts.
        let mut c = TcpConn::new();
        c.segment(ServerToClient, &acking(500, 100, 65535), t);
        c.segment(ClientToServer, &seg(99, b"\0", false, false), t);
        c.segment(ServerToClient, &acking(500, 100, 65535), t);
        c.segment(ClientToServer, &seg(100, b"GET /", false, false), t);
        assert_eq!(text(&c)[1..], ["C→S GET /"]);

        // Its first probe before any ACK: taken for data until a second probe repeats it.
        let mut c = TcpConn::new();
        c.segment(ClientToServer, &seg(99, b"\0", false, false), t);
        c.segment(ClientToServer, &seg(99, b"\0", false, false), t);
        c.segment(ClientToServer, &seg(100, b"GET /", false, false), t);
        assert_eq!(text(&c)[1..], ["note C→S keep-alive probe (not data)", "C→S GET /"]);
    }

    #[test]
    fn zero_window_probe_bytes_are_delivered_once() {
        let t = Duration::ZERO;
        let mut c = TcpConn::new();
        c.segment(ClientToServer, &seg(99, b"", true, false), t);
        c.segment(ClientToServer, &seg(100, b"abc", false, false), t);
        // The server's window closes; the client probes with the next byte, which is refused
        // (the ACK stays at 103) and later sent again with what follows.
        c.segment(ServerToClient, &acking(500, 103, 0), t);
        c.segment(ClientToServer, &seg(103, b"d", false, false), t);
        c.segment(ServerToClient, &acking(500, 103, 0), t);
        c.segment(ClientToServer, &seg(103, b"d", false, false), t);
        c.segment(ServerToClient, &acking(500, 103, 1000), t);
        c.segment(ClientToServer, &seg(103, b"def", false, false), t);
        assert_eq!(text(&c), ["Open", "C→S abc", "C→S def"]);

        // A probe the receiver takes (its ACK moves past it) is data.
        let mut c = TcpConn::new();
        c.segment(ClientToServer, &seg(99, b"", true, false), t);
        c.segment(ClientToServer, &seg(100, b"abc", false, false), t);
        c.segment(ServerToClient, &acking(500, 103, 0), t);
        c.segment(ClientToServer, &seg(103, b"d", false, false), t);
        c.segment(ServerToClient, &acking(500, 104, 0), t);
        c.segment(ClientToServer, &seg(104, b"ef", false, false), t);
        assert_eq!(text(&c), ["Open", "C→S abc", "C→S d", "C→S ef"]);
    }
}
