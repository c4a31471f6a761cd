//! IP fragment reassembly (IPv4, and IPv6's fragment header, RFC 8200 §4.5) with bounded memory:
//! at most `MAX_PENDING` datagrams under way, none longer than `MAX_DATAGRAM`, each given up
//! `TIMEOUT` of capture time after its first fragment.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

/// Datagrams being reassembled at once; the oldest is dropped beyond this.
pub const MAX_PENDING: usize = 256;
/// Largest datagram either version can reassemble (a 16-bit length).
const MAX_DATAGRAM: u32 = 65_535;
/// Capture time after its first fragment at which an unfinished datagram is given up: RFC 8200
/// §4.5's 60 seconds, which also bounds IPv4's (hosts use 15 to 60).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Source, destination, protocol and identification (IPv6's is 32 bits).
pub type Key = (IpAddr, IpAddr, u8, u32);

/// How overlapping fragments are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The first copy of each byte is kept (IPv4 hosts differ; this is the common choice).
    FirstWins,
    /// A fragment overlapping another with different bytes discards the whole datagram (RFC 8200
    /// §4.5); an exact copy (a duplicate in the capture) is ignored.
    Discard,
}

struct Partial {
    parts: BTreeMap<u32, Vec<u8>>,
    total: Option<u32>,
    count: usize,
    first_ts: Duration,
}

/// Collects fragments until a datagram is whole.
#[derive(Default)]
pub struct Defrag {
    pending: HashMap<Key, Partial>,
    /// Keys in the order their first fragment came (so also by `first_ts`).
    order: VecDeque<Key>,
    /// Datagrams dropped unfinished (evicted, timed out, or discarded for overlaps).
    pub dropped: usize,
    /// Of those, the ones discarded for overlapping fragments.
    pub overlapped: usize,
}

impl Defrag {
    /// Adds a fragment seen at `ts`; returns the whole payload, and how many fragments made it,
    /// once every byte has arrived.
    pub fn add(&mut self, key: Key, offset: u32, more: bool, data: &[u8], ts: Duration, overlap: Overlap) -> Option<(Vec<u8>, usize)> {
        self.expire(ts);
        let end = offset.checked_add(u32::try_from(data.len()).ok()?)?;
        if end > MAX_DATAGRAM {
            return None;
        }
        if !self.pending.contains_key(&key) {
            if self.pending.len() >= MAX_PENDING {
                if let Some(old) = self.order.pop_front() {
                    self.pending.remove(&old);
                    self.dropped += 1;
                }
            }
            self.order.push_back(key);
            self.pending.insert(
                key,
                Partial {
                    parts: BTreeMap::new(),
                    total: None,
                    count: 0,
                    first_ts: ts,
                },
            );
        }
        let p = self.pending.get_mut(&key)?;
        if overlap == Overlap::Discard && overlaps(p, offset, data) {
            self.forget(&key);
            self.dropped += 1;
            self.overlapped += 1;
            return None;
        }
        p.count += 1;
        if !more {
            p.total = Some(end);
        }
        // First copy wins.
        p.parts.entry(offset).or_insert_with(|| data.to_vec());
        let total = p.total?;
        let mut have = 0u32;
        for (&off, part) in &p.parts {
            if off > have {
                return None;
            }
            have = have.max(off + part.len() as u32);
        }
        if have < total {
            return None;
        }
        let p = self.forget(&key)?;
        let mut out = vec![0u8; total as usize];
        // Later offsets are written first so that earlier (first) copies win on overlaps.
        for (&off, part) in p.parts.iter().rev() {
            let start = off as usize;
            let n = part.len().min(out.len().saturating_sub(start));
            out[start..start + n].copy_from_slice(&part[..n]);
        }
        Some((out, p.count))
    }

    fn forget(&mut self, key: &Key) -> Option<Partial> {
        self.order.retain(|k| k != key);
        self.pending.remove(key)
    }

    /// Gives up the datagrams whose first fragment is older than `TIMEOUT` at `now`.
    fn expire(&mut self, now: Duration) {
        while let Some(k) = self.order.front() {
            let old = self.pending.get(k).is_none_or(|p| now.saturating_sub(p.first_ts) > TIMEOUT);
            if !old {
                break;
            }
            if let Some(k) = self.order.pop_front() {
                if self.pending.remove(&k).is_some() {
                    self.dropped += 1;
                }
            }
        }
    }

    /// Datagrams still incomplete.
    pub fn unfinished(&self) -> usize {
        self.pending.len()
    }
}

/// Whether `data` at `offset` overlaps a fragment of `p` other than an exact copy of itself.
fn overlaps(p: &Partial, offset: u32, data: &[u8]) -> bool {
    let end = offset + data.len() as u32;
    if p.parts.get(&offset).is_some_and(|d| d == data) {
        return false;
    }
    // Fragments are disjoint so far: only the one starting before `end` nearest to it, and
    // those starting inside, can meet this one.
    p.parts.range(..end).next_back().is_some_and(|(&o, d)| o + d.len() as u32 > offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_out_of_order_and_bounds_memory() {
        let a: IpAddr = [10, 0, 0, 1].into();
        let k = (a, a, 6, 7);
        let t = Duration::ZERO;
        let mut d = Defrag::default();
        assert_eq!(d.add(k, 8, false, b"world", t, Overlap::FirstWins), None);
        assert_eq!(
            d.add(k, 0, true, b"hello, w", t, Overlap::FirstWins),
            Some((b"hello, wworld".to_vec(), 2))
        );
        for i in 0..(MAX_PENDING as u32 + 10) {
            d.add((a, a, 6, i), 8, true, b"x", t, Overlap::FirstWins);
        }
        assert_eq!(d.unfinished(), MAX_PENDING);
        assert_eq!(d.dropped, 10);
        assert_eq!(d.add(k, 65_530, true, b"too long", t, Overlap::FirstWins), None);
    }

    #[test]
    fn unfinished_datagrams_time_out_in_capture_time() {
        let a: IpAddr = [10, 0, 0, 1].into();
        let k = (a, a, 17, 1);
        let mut d = Defrag::default();
        assert_eq!(d.add(k, 0, true, b"01234567", Duration::ZERO, Overlap::Discard), None);
        // The last fragment, after the timeout: its datagram was given up, so it starts anew.
        let late = TIMEOUT + Duration::from_secs(1);
        assert_eq!(d.add(k, 8, false, b"89", late, Overlap::Discard), None);
        assert_eq!((d.dropped, d.unfinished()), (1, 1));
    }

    #[test]
    fn ipv6_overlaps_discard_the_datagram_but_copies_do_not() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let k = (a, a, 17, 0x1234_5678);
        let t = Duration::ZERO;
        let mut d = Defrag::default();
        assert_eq!(d.add(k, 0, true, b"01234567", t, Overlap::Discard), None);
        assert_eq!(d.add(k, 0, true, b"01234567", t, Overlap::Discard), None);
        assert_eq!(d.add(k, 8, false, b"89", t, Overlap::Discard), Some((b"0123456789".to_vec(), 3)));
        assert_eq!(d.add(k, 0, true, b"01234567", t, Overlap::Discard), None);
        assert_eq!(d.add(k, 4, false, b"4567xy", t, Overlap::Discard), None);
        assert_eq!((d.dropped, d.overlapped, d.unfinished()), (1, 1, 0));
    }
}
