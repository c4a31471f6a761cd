//! Node ids, distances, compact node info and the routing table of BEP 5.
//!
//! The table is BEP 5's list of buckets over the id space, kept in the equivalent form of one
//! bucket per length of the prefix a node id shares with ours: bucket `i` (all but the last)
//! holds the nodes sharing exactly `i` leading bits, the last bucket every node sharing at least
//! as many, which is the range our own id falls in. Splitting that last bucket is BEP 5's split
//! of the full bucket whose range holds our id; every other full bucket turns newcomers away.

use std::cmp::Ordering;
use std::net::{Ipv4Addr, SocketAddrV4};

/// A node id or info-hash: 160 bits, most significant byte first.
pub(super) type Id = [u8; 20];

/// K: the size of a bucket and of a `nodes` answer (BEP 5: "currently eight").
pub(super) const K: usize = 8;
/// Bytes of one compact node info: id, IPv4 address, port.
pub(super) const NODE_INFO: usize = 26;
/// The most buckets a table can have: a node sharing all 160 bits would be ourselves.
const MAX_BUCKETS: usize = 160;

/// How "closest" is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Metric {
    /// XOR of the ids read as an unsigned integer: Kademlia's, and BEP 5's.
    Xor,
    /// The absolute difference of the ids as unsigned integers: the `numeric-distance` fault.
    Numeric,
}

impl Metric {
    /// The distance from `a` to `b`, comparable as bytes (big-endian).
    pub(super) fn distance(self, a: &Id, b: &Id) -> Id {
        match self {
            Metric::Xor => std::array::from_fn(|i| a[i] ^ b[i]),
            Metric::Numeric => match a.cmp(b) {
                Ordering::Less => subtract(b, a),
                _ => subtract(a, b),
            },
        }
    }
}

/// `big - small`, both 160-bit unsigned integers with `big >= small`.
fn subtract(big: &Id, small: &Id) -> Id {
    let mut out = [0u8; 20];
    let mut borrow = 0i16;
    for i in (0..20).rev() {
        let mut digit = i16::from(big[i]) - i16::from(small[i]) - borrow;
        borrow = i16::from(digit < 0);
        if digit < 0 {
            digit += 256;
        }
        out[i] = u8::try_from(digit).unwrap_or(0);
    }
    out
}

/// The number of leading bits `a` and `b` share.
fn shared_prefix(a: &Id, b: &Id) -> usize {
    let first_difference = a.iter().zip(b).position(|(x, y)| x != y);
    match first_difference {
        Some(i) => i * 8 + (a[i] ^ b[i]).leading_zeros() as usize,
        None => 160,
    }
}

/// A node: its id and where it listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Contact {
    /// Its 20-byte id.
    pub(super) id: Id,
    /// Its IPv4 address and port (compact node info has room for no other).
    pub(super) addr: SocketAddrV4,
}

impl Contact {
    /// Appends the 26-byte compact node info of this node to `out`.
    pub(super) fn write_compact(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.addr.ip().octets());
        out.extend_from_slice(&self.addr.port().to_be_bytes());
    }

    /// The nodes of a compact `nodes` string; a short tail (not a whole 26 bytes) is ignored,
    /// and so are entries with port 0, where nothing can be listening.
    pub(super) fn read_compact(nodes: &[u8]) -> Vec<Contact> {
        let entries = nodes.chunks_exact(NODE_INFO);
        entries.filter_map(Contact::from_compact).collect()
    }

    fn from_compact(entry: &[u8]) -> Option<Contact> {
        let id: Id = entry.get(..20)?.try_into().ok()?;
        let ip: [u8; 4] = entry.get(20..24)?.try_into().ok()?;
        let port = u16::from_be_bytes(entry.get(24..26)?.try_into().ok()?);
        (port != 0).then(|| Contact {
            id,
            addr: SocketAddrV4::new(Ipv4Addr::from(ip), port),
        })
    }
}

/// The routing table: good nodes only, in buckets of at most K.
#[derive(Debug)]
pub(super) struct Table {
    own: Id,
    buckets: Vec<Vec<Contact>>,
}

impl Table {
    /// An empty table around our id `own`: one bucket covering the whole space.
    pub(super) fn new(own: Id) -> Table {
        Table {
            own,
            buckets: vec![Vec::new()],
        }
    }

    /// True when the table knows no node.
    pub(super) fn is_empty(&self) -> bool {
        self.buckets.iter().all(Vec::is_empty)
    }

    /// Offers `contact` to the table; true if it was added. Our own id, a node already known
    /// (by id) and a newcomer for a full bucket that cannot split are turned away.
    pub(super) fn insert(&mut self, contact: Contact) -> bool {
        if contact.id == self.own || self.buckets.iter().flatten().any(|known| known.id == contact.id) {
            return false;
        }
        let shared = shared_prefix(&self.own, &contact.id);
        loop {
            let last = self.buckets.len() - 1;
            let index = shared.min(last);
            if self.buckets[index].len() < K {
                self.buckets[index].push(contact);
                return true;
            }
            if index != last || self.buckets.len() >= MAX_BUCKETS {
                return false;
            }
            // The full bucket holds our id's range: split it in two halves and try again.
            let own = self.own;
            let (stay, go): (Vec<Contact>, Vec<Contact>) =
                self.buckets[last].iter().partition(|known| shared_prefix(&own, &known.id) == last);
            self.buckets[last] = stay;
            self.buckets.push(go);
        }
    }

    /// The `count` known nodes closest to `target` by `metric`, closest first.
    pub(super) fn closest(&self, target: &Id, count: usize, metric: Metric) -> Vec<Contact> {
        let mut all: Vec<Contact> = self.buckets.iter().flatten().copied().collect();
        all.sort_by_key(|contact| metric.distance(&contact.id, target));
        all.truncate(count);
        all
    }

    /// Every known node.
    #[cfg(test)]
    fn all(&self) -> Vec<Contact> {
        self.buckets.iter().flatten().copied().collect()
    }
}

/// The compact `nodes` string of `contacts`.
pub(super) fn compact(contacts: &[Contact]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contacts.len() * NODE_INFO);
    contacts.iter().for_each(|contact| contact.write_compact(&mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8, last: u8) -> Id {
        let mut id = [0u8; 20];
        id[0] = first;
        id[19] = last;
        id
    }

    fn contact(id: Id) -> Contact {
        Contact {
            id,
            addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6881),
        }
    }

    #[test]
    fn distances() {
        let (a, b) = (id(0x80, 0), id(0x7f, 0xff));
        assert_eq!(Metric::Xor.distance(&a, &b)[0], 0xff);
        let numeric = Metric::Numeric.distance(&a, &b);
        assert_eq!(numeric, Metric::Numeric.distance(&b, &a));
        assert_eq!(numeric[0], 0);
        assert_eq!(numeric[18..], [0xff, 0x01]);
        assert_eq!(shared_prefix(&a, &b), 0);
        assert_eq!(shared_prefix(&id(0x80, 0), &id(0x81, 0)), 7);
        assert_eq!(shared_prefix(&a, &a), 160);
    }

    #[test]
    fn compact_round_trip() {
        let node = Contact {
            id: id(1, 2),
            addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 0x1ae1),
        };
        let bytes = compact(&[node, node]);
        assert_eq!(bytes.len(), 52);
        assert_eq!(bytes[20..26], [10, 0, 0, 1, 0x1a, 0xe1]);
        let mut with_tail = bytes.clone();
        with_tail.extend_from_slice(b"short");
        assert_eq!(Contact::read_compact(&with_tail), vec![node, node]);
    }

    #[test]
    fn only_the_bucket_holding_our_id_splits() {
        let own = id(0x00, 0);
        let mut table = Table::new(own);
        assert!(!table.insert(contact(own)), "never ourselves");
        // Eight far nodes fill the first bucket; the ninth splits it (our id is in range).
        for i in 0..8 {
            assert!(table.insert(contact(id(0x80 | i, 0))));
        }
        assert!(table.insert(contact(id(0x40, 0))));
        assert_eq!(table.buckets.len(), 2);
        // The far half is full and does not hold our id: newcomers there are discarded.
        assert!(!table.insert(contact(id(0xf0, 1))));
        assert!(!table.insert(contact(id(0x80, 0))), "already known");
        // The near half still takes nodes, splitting as it fills.
        for i in 1..=8 {
            assert!(table.insert(contact(id(0x00, i))));
        }
        assert_eq!(table.all().len(), 17);
        let closest = table.closest(&id(0x00, 0), 3, Metric::Xor);
        assert_eq!(closest.iter().map(|c| c.id[19]).collect::<Vec<_>>(), [1, 2, 3]);
    }
}
