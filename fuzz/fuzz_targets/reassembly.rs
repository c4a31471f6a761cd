//! The TCP reassembler driven with segments of fuzzed sequence numbers, flags and payloads.
//!
//! Two modes, chosen by the input:
//! - truth: each direction sends slices of a known byte stream (reordered, duplicated, dropped,
//!   cut by a "snaplen", sequence numbers wrapping around), after its SYN. The output must be
//!   that stream: every Data byte where the stream has it, Gaps exactly where no copy arrived,
//!   no "retransmission differs" note (all copies agree), Closed exactly when a FIN was sent.
//! - chaos: anything (random sequence numbers, SYN/FIN/RST anywhere, huge `missing`); the
//!   reassembler must not panic and its output must stay sane (per-direction times in order,
//!   no empty Data, never more bytes out than went in).

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wirecheck::capture::packet::TcpSegment;
use wirecheck::capture::tcp::TcpConn;
use wirecheck::dialogue::EventKind;
use wirecheck::proto::Direction;

#[derive(Arbitrary, Debug)]
struct Input {
    truth: bool,
    isn: [u32; 2],
    streams: [Vec<u8>; 2],
    segs: Vec<Seg>,
}

#[derive(Arbitrary, Debug)]
struct Seg {
    server: bool,
    /// truth: stream offset (mod the stream length + 1); chaos: added to the direction's ISN.
    at: u32,
    len: u16,
    missing: u32,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    payload: Vec<u8>,
    /// Time step in milliseconds; negative steps model captures out of time order.
    dt: i16,
}

const DIRS: [Direction; 2] = [Direction::ClientToServer, Direction::ServerToClient];

fn segment(seq: u32, syn: bool, ack: bool, fin: bool, rst: bool, payload: Vec<u8>, missing: u32) -> TcpSegment {
    TcpSegment {
        sport: 40000,
        dport: 80,
        seq,
        ack_no: 0,
        window: u16::MAX,
        syn,
        ack,
        fin,
        rst,
        payload,
        missing,
    }
}

fuzz_target!(|input: Input| {
    let mut c = TcpConn::new();
    let mut t: i64 = 1_000_000;
    let mut fed = [0u64; 2];
    let streams: [&[u8]; 2] = [
        &input.streams[0][..input.streams[0].len().min(4096)],
        &input.streams[1][..input.streams[1].len().min(4096)],
    ];
    let mut started = [false; 2];
    let mut fin_sent = [false; 2];
    // Directions where some copy was cut by the "snaplen": what it lacked is a gap for good, even
    // if a whole copy comes later (that is what a cut capture means), so coverage says nothing.
    let mut cut = [false; 2];
    // Stream ranges some copy carried in full (truth mode).
    let mut covered: [Vec<(usize, usize)>; 2] = [Vec::new(), Vec::new()];
    for s in input.segs.iter().take(512) {
        t = (t + i64::from(s.dt) * 1000).max(0);
        let ts = Duration::from_micros(t as u64);
        let d = usize::from(s.server);
        let dir = DIRS[d];
        let isn = input.isn[d];
        if input.truth {
            if !started[d] {
                started[d] = true;
                c.segment(dir, &segment(isn, true, d == 1, false, false, Vec::new(), 0), ts);
            }
            let stream = streams[d];
            let off = (s.at as usize) % (stream.len() + 1);
            let len = usize::from(s.len).min(stream.len() - off);
            let missing = (s.missing as usize).min(len);
            let fin = s.fin && off + len == stream.len();
            fin_sent[d] |= fin;
            cut[d] |= missing > 0;
            // A repeated SYN (retransmitted handshake) carries no data and must change nothing.
            if s.syn {
                c.segment(dir, &segment(isn, true, s.ack, false, false, Vec::new(), 0), ts);
            }
            let payload = stream[off..off + len - missing].to_vec();
            fed[d] += payload.len() as u64;
            covered[d].push((off, off + len - missing));
            c.segment(
                dir,
                &segment(
                    isn.wrapping_add(1).wrapping_add(off as u32),
                    false,
                    true,
                    fin,
                    false,
                    payload,
                    missing as u32,
                ),
                ts,
            );
        } else {
            let mut payload = s.payload.clone();
            payload.truncate(usize::from(s.len));
            fed[d] += payload.len() as u64;
            // Keep `missing` mostly small so that later segments still land near the stream.
            let missing = if s.missing & 0x8000_0000 != 0 {
                s.missing
            } else {
                s.missing % 2048
            };
            let seq = isn.wrapping_add(s.at);
            c.segment(dir, &segment(seq, s.syn, s.ack, s.fin, s.rst, payload, missing), ts);
            let _ = (c.is_new_syn(s.at), c.is_used(), c.syn_seen(), c.is_finished());
        }
    }
    c.flush(Duration::from_micros(t as u64));

    let mut last = [Duration::ZERO; 2];
    let mut out = [0u64; 2];
    let mut pos = [0usize; 2];
    let mut gaps = [0usize; 2];
    let mut closed = [false; 2];
    for (ts, e) in &c.events {
        let per_dir = match e {
            EventKind::Data { dir, .. } | EventKind::Gap { dir, .. } | EventKind::Cut { dir, .. } | EventKind::Closed { dir } => Some(*dir),
            _ => None,
        };
        if let Some(dir) = per_dir {
            let d = DIRS.iter().position(|x| *x == dir).unwrap();
            assert!(*ts >= last[d], "times go back in {dir:?}: {:?}", c.events);
            last[d] = *ts;
        }
        match e {
            EventKind::Data { dir, bytes } => {
                assert!(!bytes.is_empty(), "empty Data event");
                let d = DIRS.iter().position(|x| x == dir).unwrap();
                out[d] += bytes.len() as u64;
                if input.truth {
                    let want = streams[d].get(pos[d]..pos[d] + bytes.len());
                    assert_eq!(want, Some(&bytes[..]), "{dir:?} at stream byte {}", pos[d]);
                    pos[d] += bytes.len();
                }
            }
            // Bytes the "snaplen" cut are a Cut, counted like a gap.
            EventKind::Gap { dir, len } | EventKind::Cut { dir, len } => {
                assert!(*len > 0, "empty Gap or Cut event");
                let d = DIRS.iter().position(|x| x == dir).unwrap();
                gaps[d] += 1;
                pos[d] += *len as usize;
            }
            EventKind::Closed { dir } => {
                let d = DIRS.iter().position(|x| x == dir).unwrap();
                assert!(!closed[d], "{dir:?} closed twice");
                closed[d] = true;
            }
            EventKind::Note { text } if input.truth => panic!("unexpected note with consistent copies: {text}"),
            _ => {}
        }
    }
    for d in 0..2 {
        assert!(out[d] <= fed[d], "{} bytes out of {} in", out[d], fed[d]);
        if !input.truth {
            continue;
        }
        let len = streams[d].len();
        assert!(pos[d] <= len, "{:?} output runs past the stream: {} > {len}", DIRS[d], pos[d]);
        assert_eq!(closed[d], fin_sent[d], "{:?}: Closed iff a FIN was sent", DIRS[d]);
        if fin_sent[d] {
            assert_eq!(pos[d], len, "{:?}: a FIN accounts for every byte before it", DIRS[d]);
        }
        // Every byte carried by some copy: no gap, the whole stream (as far as the copies went).
        covered[d].sort_unstable();
        let mut reach = 0;
        for &(a, b) in &covered[d] {
            if a > reach {
                break;
            }
            reach = reach.max(b);
        }
        if reach == len && started[d] && !cut[d] {
            assert_eq!(gaps[d], 0, "{:?}: every byte arrived, yet a gap: {:?}", DIRS[d], c.events);
            assert_eq!(pos[d], len);
        }
    }
});
