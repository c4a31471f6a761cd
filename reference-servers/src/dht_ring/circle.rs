//! The identifier circle: clockwise intervals and distances, and node descriptions as JSON.

use std::net::SocketAddr;

use serde_json::{json, Value};

/// An identifier (of a node or a key) in `[0, 2^m - 1]`; m is at most 16.
pub(super) type Id = u32;

/// The circle of `2^bits` identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Circle {
    bits: u32,
}

impl Circle {
    /// The circle of m = `bits` (1 to 16).
    pub(super) fn new(bits: u32) -> Circle {
        Circle { bits }
    }

    /// m.
    pub(super) fn bits(self) -> u32 {
        self.bits
    }

    /// The largest identifier, `2^m - 1`.
    pub(super) fn max(self) -> Id {
        (1 << self.bits) - 1
    }

    /// `n` as an identifier, if it is one.
    pub(super) fn id(self, n: u64) -> Option<Id> {
        Id::try_from(n).ok().filter(|&id| id <= self.max())
    }

    /// How far `to` is from `from` going clockwise.
    pub(super) fn distance(self, from: Id, to: Id) -> Id {
        to.wrapping_sub(from) & self.max()
    }

    /// `(n + 2^i) mod 2^m`: the key shortcut `i` of node `n` is the owner of.
    pub(super) fn shortcut_key(self, n: Id, i: u32) -> Id {
        n.wrapping_add(1 << i) & self.max()
    }
}

/// Whether `k` is in `(a, b]`, clockwise; `(a, a]` is the whole circle.
pub(super) fn open_closed(a: Id, k: Id, b: Id) -> bool {
    if a < b {
        a < k && k <= b
    } else {
        k > a || k <= b
    }
}

/// Whether `k` is in `(a, b)`, clockwise; `(a, a)` is the whole circle but `a`.
pub(super) fn open_open(a: Id, k: Id, b: Id) -> bool {
    if a < b {
        a < k && k < b
    } else {
        k > a || k < b
    }
}

/// Whether `k` is in `[a, b)`, clockwise (the `off-by-one-owner` fault's intervals).
pub(super) fn closed_open(a: Id, k: Id, b: Id) -> bool {
    if a < b {
        a <= k && k < b
    } else {
        k >= a || k < b
    }
}

/// A node: its identifier and its UDP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Peer {
    pub(super) id: Id,
    pub(super) addr: SocketAddr,
}

impl Peer {
    /// `{"id": N, "addr": "IP:PORT"}`.
    pub(super) fn to_json(self) -> Value {
        json!({"id": self.id, "addr": self.addr.to_string()})
    }

    /// A node description, or why `value` is not one.
    pub(super) fn from_json(value: &Value, circle: Circle) -> Result<Peer, String> {
        let object = value.as_object().ok_or("is not an object {\"id\": N, \"addr\": \"IP:PORT\"}")?;
        let id = object.get("id").ok_or("has no id")?;
        let id = id
            .as_u64()
            .and_then(|n| circle.id(n))
            .ok_or_else(|| format!("has an id that is not an integer in [0, {}]", circle.max()))?;
        let addr = object.get("addr").ok_or("has no addr")?;
        let addr = addr
            .as_str()
            .and_then(parse_addr)
            .ok_or("has an addr that is not a string \"IP:PORT\"")?;
        Ok(Peer { id, addr })
    }
}

/// `"IP:PORT"` (an IPv4 or bracketed IPv6 address and a port other than 0).
pub(super) fn parse_addr(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().filter(|addr| addr.port() != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_wrap() {
        assert!(open_closed(3, 4, 4) && !open_closed(3, 3, 4) && !open_closed(3, 5, 4));
        assert!(open_closed(14, 15, 1) && open_closed(14, 0, 1) && open_closed(14, 1, 1) && !open_closed(14, 14, 1));
        assert!((0..16).all(|k| open_closed(5, k, 5)), "(a, a] is the whole circle");
        assert!((0..16).all(|k| open_open(5, k, 5) == (k != 5)), "(a, a) is the circle but a");
        assert!(open_open(12, 14, 1) && !open_open(12, 1, 1) && !open_open(12, 12, 1));
        assert!(closed_open(3, 3, 4) && !closed_open(3, 4, 4) && closed_open(14, 14, 1) && !closed_open(14, 1, 1));
    }

    #[test]
    fn distances_and_shortcuts() {
        let circle = Circle::new(4);
        assert_eq!(circle.distance(4, 12), 8);
        assert_eq!(circle.distance(12, 1), 5);
        assert_eq!(circle.distance(4, 4), 0);
        assert_eq!((0..4).map(|i| circle.shortcut_key(14, i)).collect::<Vec<_>>(), [15, 0, 2, 6]);
        assert_eq!(circle.id(15), Some(15));
        assert_eq!(circle.id(16), None);
    }

    #[test]
    fn node_descriptions() {
        let circle = Circle::new(4);
        let peer = Peer::from_json(&json!({"id": 4, "addr": "127.0.0.1:7004"}), circle).expect("a node");
        assert_eq!(peer.to_json(), json!({"id": 4, "addr": "127.0.0.1:7004"}));
        for bad in [
            json!(null),
            json!({"id": 16, "addr": "127.0.0.1:7004"}),
            json!({"id": -1, "addr": "127.0.0.1:7004"}),
            json!({"id": "4", "addr": "127.0.0.1:7004"}),
            json!({"id": 4, "addr": "localhost:7004"}),
            json!({"id": 4, "addr": "127.0.0.1:0"}),
            json!({"id": 4}),
        ] {
            assert!(Peer::from_json(&bad, circle).is_err(), "{bad}");
        }
    }
}
