//! IPv4 fragment reassembly with bounded memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

/// Datagrams being reassembled at once; the oldest is dropped beyond this.
pub const MAX_PENDING: usize = 256;
/// Largest IPv4 datagram.
const MAX_DATAGRAM: u32 = 65_535;

type Key = (IpAddr, IpAddr, u8, u16);

#[derive(Default)]
struct Partial {
    parts: BTreeMap<u32, Vec<u8>>,
    total: Option<u32>,
    count: usize,
}

/// Collects fragments until a datagram is whole.
#[derive(Default)]
pub struct Defrag {
    pending: HashMap<Key, Partial>,
    order: VecDeque<Key>,
    /// Datagrams dropped unfinished (evicted or left at the end).
    pub dropped: usize,
}

impl Defrag {
    /// Adds a fragment; returns the whole payload, and how many fragments made it, once every
    /// byte has arrived.
    pub fn add(&mut self, key: (IpAddr, IpAddr, u8, u16), offset: u32, more: bool, data: &[u8]) -> Option<(Vec<u8>, usize)> {
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
        }
        let p = self.pending.entry(key).or_default();
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
        let p = self.pending.remove(&key)?;
        self.order.retain(|k| *k != key);
        let mut out = vec![0u8; total as usize];
        // Later offsets are written first so that earlier (first) copies win on overlaps.
        for (&off, part) in p.parts.iter().rev() {
            let start = off as usize;
            let n = part.len().min(out.len().saturating_sub(start));
            out[start..start + n].copy_from_slice(&part[..n]);
        }
        Some((out, p.count))
    }

    /// Datagrams still incomplete.
    pub fn unfinished(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_out_of_order_and_bounds_memory() {
        let a: IpAddr = [10, 0, 0, 1].into();
        let k = (a, a, 6, 7);
        let mut d = Defrag::default();
        assert_eq!(d.add(k, 8, false, b"world"), None);
        assert_eq!(d.add(k, 0, true, b"hello, w"), Some((b"hello, wworld".to_vec(), 2)));
        for i in 0..(MAX_PENDING as u16 + 10) {
            d.add((a, a, 6, i), 8, true, b"x");
        }
        assert_eq!(d.unfinished(), MAX_PENDING);
        assert_eq!(d.dropped, 10);
        assert_eq!(d.add(k, 65_530, true, b"too long"), None);
    }
}
