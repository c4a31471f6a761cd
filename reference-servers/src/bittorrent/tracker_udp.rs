//! The UDP side of `bt-tracker`: BEP 15, on the UDP socket of the HTTP tracker's port.
//!
//! ```text
//! connect   client: 0x41727101980 (u64), action 0, transaction   → 0, transaction, connection id
//! announce  client: connection id, 1, transaction, info_hash, peer_id, downloaded, left, uploaded,
//!                   event, ip, key, num_want, port                → 1, transaction, interval,
//!                                                                   leechers, seeders, peers
//! scrape    client: connection id, 2, transaction, info_hash...  → 2, transaction,
//!                                                                   (seeders, completed, leechers)...
//! error                                                           → 3, transaction, message
//! ```
//!
//! All integers big-endian. A connection id is random, bound to the address it was given to, and
//! good for `CONNECTION_LIFETIME` (two minutes, as BEP 15 asks). A datagram shorter than 16
//! bytes is ignored; a connect with the wrong protocol id, an unknown or expired connection id,
//! an unknown action, an announce shorter than 98 bytes, a scrape without an info-hash, and an
//! unknown torrent in an announce each get an error (action 3) with the transaction id. A
//! scrape's unknown torrents count zeros, since its answer is positional. Peers in an answer are
//! of the request's address family (6-byte IPv4 or 18-byte IPv6 entries), at most
//! `PEER_BYTES` bytes of them so that the answer fits one unfragmented datagram.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::swarm::{Announce, Event, Family, Fault, Id, Tracker};

/// The largest datagram read; longer ones are cut to this (a scrape of 101 hashes fits).
const MAX_DATAGRAM: usize = 2048;
/// The magic constant of a connect request.
const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// How long a connection id is accepted after it was handed out.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Connection ids remembered at once; past it the oldest is forgotten.
const MAX_CONNECTION_IDS: usize = 65_536;
/// The most peer bytes in one announce answer (200 IPv4 peers, 66 IPv6 ones).
const PEER_BYTES: usize = 1200;
/// The size of an announce request, extensions (BEP 41) not counted.
const ANNOUNCE_LEN: usize = 98;

const CONNECT: u32 = 0;
const ANNOUNCE: u32 = 1;
const SCRAPE: u32 = 2;
const ERROR: u32 = 3;

/// Answers datagrams on `socket` until aborted.
pub(super) async fn serve(socket: UdpSocket, tracker: Arc<Tracker>) {
    let mut ids = ConnectionIds::default();
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        // Receive errors (an ICMP "port unreachable" for an earlier reply) concern one peer.
        let Ok((len, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        if let Some(reply) = answer(&tracker, &mut ids, &buffer[..len], peer, Instant::now()) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// The connection ids handed out and not yet expired.
#[derive(Debug, Default)]
struct ConnectionIds {
    /// Each id's owner and expiry.
    issued: HashMap<u64, (IpAddr, Instant)>,
    /// Ids in the order they were issued, which is also the order they expire in.
    order: VecDeque<u64>,
}

impl ConnectionIds {
    fn issue(&mut self, owner: IpAddr, now: Instant) -> u64 {
        while let Some(&oldest) = self.order.front() {
            let expired = self.issued.get(&oldest).is_none_or(|&(_, expires)| expires <= now);
            if !expired && self.issued.len() < MAX_CONNECTION_IDS {
                break;
            }
            self.order.pop_front();
            self.issued.remove(&oldest);
        }
        let id = loop {
            let id = fastrand::u64(..);
            if id != PROTOCOL_ID && !self.issued.contains_key(&id) {
                break id;
            }
        };
        self.issued.insert(id, (owner.to_canonical(), now + CONNECTION_LIFETIME));
        self.order.push_back(id);
        id
    }

    fn valid(&self, id: u64, owner: IpAddr, now: Instant) -> bool {
        matches!(self.issued.get(&id), Some(&(ip, expires)) if ip == owner.to_canonical() && now < expires)
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_be_bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes)
}

fn id_at(bytes: &[u8], at: usize) -> Option<Id> {
    bytes.get(at..at + 20).and_then(|b| b.try_into().ok())
}

fn header(action: u32, transaction: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&action.to_be_bytes());
    out.extend_from_slice(&transaction.to_be_bytes());
    out
}

fn error(transaction: u32, message: &str) -> Vec<u8> {
    let mut out = header(ERROR, transaction);
    out.extend_from_slice(message.as_bytes());
    out
}

fn count(n: u64) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

/// The answer to one datagram from `peer`, if it gets one.
fn answer(tracker: &Tracker, ids: &mut ConnectionIds, bytes: &[u8], peer: SocketAddr, now: Instant) -> Option<Vec<u8>> {
    if bytes.len() < 16 {
        return None;
    }
    let (connection, action, transaction) = (u64_at(bytes, 0), u32_at(bytes, 8), u32_at(bytes, 12));
    let transaction = if tracker.has(Fault::UdpWrongTransaction) {
        transaction.wrapping_add(1)
    } else {
        transaction
    };
    if action == CONNECT {
        if connection != PROTOCOL_ID {
            return Some(error(transaction, "not a connect request: wrong protocol id"));
        }
        let mut out = header(CONNECT, transaction);
        out.extend_from_slice(&ids.issue(peer.ip(), now).to_be_bytes());
        return Some(out);
    }
    if !ids.valid(connection, peer.ip(), now) {
        return Some(error(transaction, "unknown or expired connection id"));
    }
    Some(match action {
        ANNOUNCE => announce(tracker, bytes, peer, transaction),
        SCRAPE => scrape(tracker, bytes, transaction),
        _ => error(transaction, "unknown action"),
    })
}

fn announce(tracker: &Tracker, bytes: &[u8], peer: SocketAddr, transaction: u32) -> Vec<u8> {
    let (Some(info_hash), Some(peer_id)) = (id_at(bytes, 16), id_at(bytes, 36)) else {
        return error(transaction, "announce too short");
    };
    if bytes.len() < ANNOUNCE_LEN {
        return error(transaction, "announce too short");
    }
    let port = u16::from_be_bytes([bytes[96], bytes[97]]);
    if port == 0 {
        return error(transaction, "invalid port: 0");
    }
    let source = peer.ip().to_canonical();
    let (family, entry) = if source.is_ipv4() { (Family::V4, 6) } else { (Family::V6, 18) };
    let event = match u32_at(bytes, 80) {
        1 => Event::Completed,
        2 => Event::Started,
        3 => Event::Stopped,
        _ => Event::None,
    };
    let ip = match u32_at(bytes, 84) {
        0 => None,
        ip => Some(IpAddr::V4(Ipv4Addr::from(ip))),
    };
    let numwant = usize::try_from(i32::from_be_bytes([bytes[92], bytes[93], bytes[94], bytes[95]])).ok();
    let request = Announce {
        info_hash,
        peer_id,
        port,
        left: Some(u64_at(bytes, 64)),
        event,
        ip,
        source,
        numwant,
        family,
    };
    let reply = match tracker.announce(&request) {
        Ok(reply) => reply,
        Err(reason) => return error(transaction, reason),
    };
    let mut out = header(ANNOUNCE, transaction);
    out.extend_from_slice(&reply.interval.to_be_bytes());
    out.extend_from_slice(&count(reply.incomplete));
    out.extend_from_slice(&count(reply.complete));
    let little_endian = tracker.has(Fault::PortLittleEndian);
    for peer in reply.peers.iter().take(PEER_BYTES / entry) {
        match peer.ip {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
        }
        let port = if little_endian {
            peer.port.to_le_bytes()
        } else {
            peer.port.to_be_bytes()
        };
        out.extend_from_slice(&port);
    }
    out
}

fn scrape(tracker: &Tracker, bytes: &[u8], transaction: u32) -> Vec<u8> {
    let hashes: Vec<Id> = bytes[16..].chunks_exact(20).filter_map(|hash| hash.try_into().ok()).collect();
    if hashes.is_empty() {
        return error(transaction, "scrape without an info_hash");
    }
    let mut out = header(SCRAPE, transaction);
    for (_, counts) in tracker.scrape(&hashes, true) {
        out.extend_from_slice(&count(counts.complete));
        out.extend_from_slice(&count(counts.downloaded));
        out.extend_from_slice(&count(counts.incomplete));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bittorrent::swarm::Faults;

    fn peer(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 6881))
    }

    fn connect(transaction: u32) -> Vec<u8> {
        let mut out = PROTOCOL_ID.to_be_bytes().to_vec();
        out.extend_from_slice(&CONNECT.to_be_bytes());
        out.extend_from_slice(&transaction.to_be_bytes());
        out
    }

    #[test]
    fn connection_ids_expire_and_belong_to_their_address() {
        let tracker = Tracker::new(&[[1; 20]], 1800, Faults::default());
        let mut ids = ConnectionIds::default();
        let now = Instant::now();
        let reply = answer(&tracker, &mut ids, &connect(0x1234), peer(1), now).unwrap();
        assert_eq!(&reply[..8], &[0, 0, 0, 0, 0, 0, 0x12, 0x34]);
        let id = u64_at(&reply, 8);
        assert!(ids.valid(id, peer(1).ip(), now + Duration::from_secs(119)));
        assert!(!ids.valid(id, peer(1).ip(), now + CONNECTION_LIFETIME));
        assert!(!ids.valid(id, peer(2).ip(), now));
        assert_eq!(answer(&tracker, &mut ids, &connect(1)[..15], peer(1), now), None);
    }

    #[test]
    fn rejects_a_wrong_protocol_id_and_unknown_actions() {
        let tracker = Tracker::new(&[[1; 20]], 1800, Faults::default());
        let mut ids = ConnectionIds::default();
        let now = Instant::now();
        let mut wrong = connect(7);
        wrong[0] = 1;
        let reply = answer(&tracker, &mut ids, &wrong, peer(1), now).unwrap();
        assert_eq!(u32_at(&reply, 0), ERROR);
        assert_eq!(u32_at(&reply, 4), 7);
        let id = u64_at(&answer(&tracker, &mut ids, &connect(8), peer(1), now).unwrap(), 8);
        let mut odd = id.to_be_bytes().to_vec();
        odd.extend_from_slice(&9u32.to_be_bytes());
        odd.extend_from_slice(&5u32.to_be_bytes());
        let reply = answer(&tracker, &mut ids, &odd, peer(1), now).unwrap();
        assert_eq!((u32_at(&reply, 0), u32_at(&reply, 4)), (ERROR, 5));
    }
}
