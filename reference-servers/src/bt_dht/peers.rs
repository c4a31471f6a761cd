//! What `get_peers` and `announce_peer` share: the tokens a node hands out and the peers
//! announced to it.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sha1::{Digest, Sha1};
use tokio::time::Instant;

use super::table::Id;

/// How long one secret is used for new tokens; its tokens stay good for one period more, so
/// a token is accepted for five to ten minutes (BEP 5: "up to ten minutes old").
pub(super) const SECRET_PERIOD: Duration = Duration::from_secs(300);
/// Bytes of a token: BEP 5 leaves the length to the node, and eight is what most nodes send.
pub(super) const TOKEN_LEN: usize = 8;
/// Info-hashes the store keeps; a new one past this drops the one announced to longest ago.
pub(super) const MAX_TORRENTS: usize = 1000;
/// Peers kept per info-hash; a new one past this drops the oldest announce.
pub(super) const MAX_PEERS: usize = 100;

/// The secrets tokens are made from: a token is the first bytes of SHA-1(secret || querier's
/// IP address), so that only the address it was given to can use it.
#[derive(Debug)]
pub(super) struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    /// When `current` was made.
    since: Instant,
    /// The `token-any-ip` fault: the address is left out of the hash.
    any_ip: bool,
}

impl Tokens {
    /// Fresh secrets at `now`.
    pub(super) fn new(now: Instant, any_ip: bool) -> Tokens {
        Tokens {
            current: secret(),
            previous: secret(),
            since: now,
            any_ip,
        }
    }

    /// The token for `ip` under the current secret.
    pub(super) fn make(&mut self, ip: IpAddr, now: Instant) -> Vec<u8> {
        self.rotate(now);
        self.token(&self.current, ip)
    }

    /// Whether `token` was handed to `ip` under the current or the previous secret.
    pub(super) fn accepts(&mut self, token: &[u8], ip: IpAddr, now: Instant) -> bool {
        self.rotate(now);
        token == self.token(&self.current, ip) || token == self.token(&self.previous, ip)
    }

    /// Moves to a new secret for every whole period gone by; done when used rather than on a
    /// timer, which gives the same tokens with nothing to wake up for.
    fn rotate(&mut self, now: Instant) {
        let periods = now.saturating_duration_since(self.since).as_secs() / SECRET_PERIOD.as_secs();
        if periods == 0 {
            return;
        }
        self.previous = if periods == 1 { self.current } else { secret() };
        self.current = secret();
        self.since += SECRET_PERIOD * u32::try_from(periods).unwrap_or(u32::MAX);
    }

    fn token(&self, secret: &[u8], ip: IpAddr) -> Vec<u8> {
        let mut hash = Sha1::new();
        hash.update(secret);
        if !self.any_ip {
            match ip {
                IpAddr::V4(v4) => hash.update(v4.octets()),
                IpAddr::V6(v6) => hash.update(v6.octets()),
            }
        }
        hash.finalize()[..TOKEN_LEN].to_vec()
    }
}

fn secret() -> [u8; 16] {
    std::array::from_fn(|_| fastrand::u8(..))
}

/// The peers announced per info-hash, each list in announce order (oldest first).
#[derive(Debug, Default)]
pub(super) struct Store {
    torrents: HashMap<Id, Swarm>,
    /// Counts announces, to tell which info-hash was announced to longest ago.
    clock: u64,
}

/// The peers of one info-hash and when it was last announced to (by `Store::clock`).
#[derive(Debug, Default)]
struct Swarm {
    peers: VecDeque<SocketAddr>,
    last_announce: u64,
}

impl Store {
    /// Records `peer` for `info_hash`; a peer announced again moves to the newest place.
    pub(super) fn announce(&mut self, info_hash: Id, peer: SocketAddr) {
        self.clock += 1;
        if !self.torrents.contains_key(&info_hash) && self.torrents.len() >= MAX_TORRENTS {
            let oldest = self
                .torrents
                .iter()
                .min_by_key(|(_, swarm)| swarm.last_announce)
                .map(|(hash, _)| *hash);
            if let Some(oldest) = oldest {
                self.torrents.remove(&oldest);
            }
        }
        let swarm = self.torrents.entry(info_hash).or_default();
        swarm.last_announce = self.clock;
        swarm.peers.retain(|known| *known != peer);
        if swarm.peers.len() >= MAX_PEERS {
            swarm.peers.pop_front();
        }
        swarm.peers.push_back(peer);
    }

    /// The peers of `info_hash`, oldest announce first; empty when none.
    pub(super) fn peers(&self, info_hash: &Id) -> Vec<SocketAddr> {
        self.torrents
            .get(info_hash)
            .map(|swarm| swarm.peers.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// A peer's compact info: IPv4 address and port (6 bytes), or IPv6 address and port (18 bytes,
/// BEP 32) for a peer that announced over IPv6.
pub(super) fn compact_peer(peer: SocketAddr) -> Vec<u8> {
    let mut out = match peer.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    out.extend_from_slice(&peer.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn tokens_are_per_address_and_last_two_periods() {
        let start = Instant::now();
        let mut tokens = Tokens::new(start, false);
        let token = tokens.make(A, start);
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(tokens.accepts(&token, A, start));
        assert!(!tokens.accepts(&token, B, start));
        assert!(tokens.accepts(&token, A, start + SECRET_PERIOD + Duration::from_secs(1)));
        assert!(!tokens.accepts(&token, A, start + SECRET_PERIOD * 2 + Duration::from_secs(1)));
        let mut shared = Tokens::new(start, true);
        let token = shared.make(A, start);
        assert!(shared.accepts(&token, B, start));
    }

    #[test]
    fn store_replaces_and_bounds() {
        let mut store = Store::default();
        let hash = [7u8; 20];
        let peer = SocketAddr::new(A, 6881);
        store.announce(hash, peer);
        store.announce(hash, SocketAddr::new(B, 6881));
        store.announce(hash, peer);
        assert_eq!(store.peers(&hash), vec![SocketAddr::new(B, 6881), peer]);
        for port in 1..=(MAX_PEERS as u16 + 5) {
            store.announce(hash, SocketAddr::new(A, port));
        }
        assert_eq!(store.peers(&hash).len(), MAX_PEERS);
        for n in 0..=MAX_TORRENTS {
            let mut other = [0u8; 20];
            other[..8].copy_from_slice(&(n as u64).to_be_bytes());
            store.announce(other, peer);
        }
        assert_eq!(store.torrents.len(), MAX_TORRENTS);
        assert!(store.peers(&hash).is_empty(), "the torrent announced to longest ago went");
        assert_eq!(compact_peer(peer), [127, 0, 0, 1, 0x1a, 0xe1]);
    }
}
