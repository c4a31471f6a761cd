//! The tracker's state, which its HTTP and UDP sides share: the swarm of each torrent it knows
//! (peers by peer id, seeders and leechers, completed downloads), announces and scrapes over
//! them, and the deliberate bugs (`fault`) the harness proves its cases with.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Peers one torrent keeps at most.
pub(super) const MAX_PEERS: usize = 1000;
/// The default `numwant` (BEP 3 leaves it to the tracker; 50 is what the clients expect).
pub(super) const DEFAULT_NUMWANT: usize = 50;
/// Peers one answer gives at most, whatever `numwant` asks.
pub(super) const MAX_NUMWANT: usize = 200;
/// Unknown info-hashes the `no-failure-reason` fault keeps swarms for.
const MAX_STRANGERS: usize = 1024;

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// `no-failure-reason`: an unknown info-hash is served as if it were known.
    NoFailureReason,
    /// `wrong-torrent-peers`: peer lists mix the peers of every torrent.
    WrongTorrentPeers,
    /// `ignores-stopped`: `event=stopped` leaves the peer in the swarm.
    IgnoresStopped,
    /// `ignores-numwant`: every peer is given, whatever `numwant` asks.
    IgnoresNumwant,
    /// `unsorted-keys`: dictionary keys are written in reverse order.
    UnsortedKeys,
    /// `udp-wrong-transaction`: UDP replies carry the transaction id plus one.
    UdpWrongTransaction,
    /// `port-little-endian`: compact peers' ports are written least significant byte first.
    PortLittleEndian,
    /// `counts-nothing`: complete, incomplete, downloaded, seeders and leechers are always 0.
    CountsNothing,
    /// `no-param-check`: an announce whose info_hash is missing or not 20 bytes is not refused
    /// but answered as if it were a torrent with no peers.
    NoParamCheck,
}

/// Each fault's name, as the `fault` option takes it.
pub(super) const FAULTS: &[(&str, Fault)] = &[
    ("no-failure-reason", Fault::NoFailureReason),
    ("wrong-torrent-peers", Fault::WrongTorrentPeers),
    ("ignores-stopped", Fault::IgnoresStopped),
    ("ignores-numwant", Fault::IgnoresNumwant),
    ("unsorted-keys", Fault::UnsortedKeys),
    ("udp-wrong-transaction", Fault::UdpWrongTransaction),
    ("port-little-endian", Fault::PortLittleEndian),
    ("counts-nothing", Fault::CountsNothing),
    ("no-param-check", Fault::NoParamCheck),
];

/// The faults switched on.
pub(super) type Faults = crate::faults::Set<Fault>;

impl From<Fault> for u32 {
    fn from(f: Fault) -> u32 {
        f as u32
    }
}

/// A 20-byte info-hash or peer id.
pub(super) type Id = [u8; 20];

/// What an announce says it is doing (BEP 3 `event`, BEP 15's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// No event: one of the regular announces.
    None,
    /// The first announce.
    Started,
    /// The download finished.
    Completed,
    /// The peer is leaving.
    Stopped,
}

/// Which addresses a peer list may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// Both (HTTP: IPv4 in `peers`, IPv6 in `peers6` or in the dictionaries).
    Any,
    /// IPv4 only (a BEP 15 announce that came over IPv4).
    V4,
    /// IPv6 only (a BEP 15 announce that came over IPv6).
    V6,
}

/// One announce, from either transport.
#[derive(Debug, Clone)]
pub(super) struct Announce {
    pub info_hash: Id,
    pub peer_id: Id,
    pub port: u16,
    /// Bytes left to download; `None` when the request did not say.
    pub left: Option<u64>,
    pub event: Event,
    /// The address the peer asked to be listed under (a literal IP address), if any.
    pub ip: Option<IpAddr>,
    /// The request's source address.
    pub source: IpAddr,
    /// `numwant`, if given (and not negative).
    pub numwant: Option<usize>,
    pub family: Family,
}

/// A peer as a peer list gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PeerInfo {
    pub id: Id,
    pub ip: IpAddr,
    pub port: u16,
}

/// The answer to an announce.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub interval: u32,
    /// Seeders.
    pub complete: u64,
    /// Leechers.
    pub incomplete: u64,
    pub peers: Vec<PeerInfo>,
}

/// A torrent's counts, as a scrape gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Counts {
    pub complete: u64,
    pub downloaded: u64,
    pub incomplete: u64,
}

/// The failure reason for an info-hash the tracker does not know.
pub(super) const UNKNOWN_TORRENT: &str = "unknown torrent";

#[derive(Debug)]
struct Peer {
    id: Id,
    ip: IpAddr,
    port: u16,
    seeder: bool,
    seen: Instant,
}

#[derive(Debug, Default)]
struct Swarm {
    /// In the order they joined.
    peers: Vec<Peer>,
    downloaded: u64,
}

impl Swarm {
    fn counts(&self) -> Counts {
        let complete = self.peers.iter().filter(|peer| peer.seeder).count() as u64;
        Counts {
            complete,
            downloaded: self.downloaded,
            incomplete: self.peers.len() as u64 - complete,
        }
    }
}

/// The swarms, shared by both transports.
#[derive(Debug)]
pub(super) struct Tracker {
    /// By info-hash; a BTreeMap so that the `wrong-torrent-peers` fault's mix is in a stable order.
    swarms: Mutex<BTreeMap<Id, Swarm>>,
    interval: u32,
    faults: Faults,
}

impl Tracker {
    /// A tracker that knows the torrents `hashes`.
    pub(super) fn new(hashes: &[Id], interval: u32, faults: Faults) -> Tracker {
        let swarms = hashes.iter().map(|hash| (*hash, Swarm::default())).collect();
        Tracker {
            swarms: Mutex::new(swarms),
            interval,
            faults,
        }
    }

    /// Whether `fault` is on.
    pub(super) fn has(&self, fault: Fault) -> bool {
        self.faults.has(fault)
    }

    /// The announce interval, in seconds.
    pub(super) fn interval(&self) -> u32 {
        self.interval
    }

    fn swarms(&self) -> MutexGuard<'_, BTreeMap<Id, Swarm>> {
        // Plain data, consistent after every statement: a panic elsewhere cannot have broken it.
        self.swarms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `announce` and answers it, or gives the failure reason.
    pub(super) fn announce(&self, announce: &Announce) -> Result<Reply, &'static str> {
        let now = Instant::now();
        let forget_before = now.checked_sub(Duration::from_secs(2 * u64::from(self.interval)));
        let mut swarms = self.swarms();
        let strangers_allowed = self.has(Fault::NoFailureReason) && swarms.len() < MAX_STRANGERS;
        let swarm = match swarms.entry(announce.info_hash) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(_) if !strangers_allowed => return Err(UNKNOWN_TORRENT),
            Entry::Vacant(stranger) => stranger.insert(Swarm::default()),
        };
        if let Some(before) = forget_before {
            swarm.peers.retain(|peer| peer.seen >= before);
        }
        let ip = announce.ip.unwrap_or(announce.source);
        let ip = ip.to_canonical();
        let known = swarm.peers.iter().position(|peer| peer.id == announce.peer_id);
        if announce.event == Event::Stopped && !self.has(Fault::IgnoresStopped) {
            if let Some(at) = known {
                swarm.peers.remove(at);
            }
        } else {
            let peer = Peer {
                id: announce.peer_id,
                ip,
                port: announce.port,
                seeder: announce.left == Some(0),
                seen: now,
            };
            match known {
                Some(at) => swarm.peers[at] = peer,
                None => {
                    if swarm.peers.len() >= MAX_PEERS {
                        if let Some(oldest) = (0..swarm.peers.len()).min_by_key(|&at| swarm.peers[at].seen) {
                            swarm.peers.remove(oldest);
                        }
                    }
                    swarm.peers.push(peer);
                }
            }
            if announce.event == Event::Completed {
                swarm.downloaded += 1;
            }
        }
        let counts = if self.has(Fault::CountsNothing) {
            Counts::default()
        } else {
            swarm.counts()
        };
        let want = if self.has(Fault::IgnoresNumwant) {
            usize::MAX
        } else {
            announce.numwant.unwrap_or(DEFAULT_NUMWANT).min(MAX_NUMWANT)
        };
        let fits = |peer: &&Peer| {
            peer.id != announce.peer_id
                && match announce.family {
                    Family::Any => true,
                    Family::V4 => peer.ip.is_ipv4(),
                    Family::V6 => peer.ip.is_ipv6(),
                }
        };
        let listed: Vec<&Peer> = if self.has(Fault::WrongTorrentPeers) {
            swarms
                .values()
                .flat_map(|swarm| swarm.peers.iter())
                .filter(fits)
                .take(want)
                .collect()
        } else {
            swarm.peers.iter().filter(fits).take(want).collect()
        };
        let peers = listed
            .into_iter()
            .map(|peer| PeerInfo {
                id: peer.id,
                ip: peer.ip,
                port: peer.port,
            })
            .collect();
        Ok(Reply {
            interval: self.interval,
            complete: counts.complete,
            incomplete: counts.incomplete,
            peers,
        })
    }

    /// The counts of each torrent of `hashes` (every known torrent when it is empty, BEP 48's
    /// full scrape); unknown ones are left out, or counted as empty with `keep_unknown`.
    pub(super) fn scrape(&self, hashes: &[Id], keep_unknown: bool) -> Vec<(Id, Counts)> {
        let swarms = self.swarms();
        let keep_unknown = keep_unknown || self.has(Fault::NoFailureReason);
        let counts = |swarm: &Swarm| {
            if self.has(Fault::CountsNothing) {
                Counts::default()
            } else {
                swarm.counts()
            }
        };
        if hashes.is_empty() {
            return swarms.iter().map(|(hash, swarm)| (*hash, counts(swarm))).collect();
        }
        hashes
            .iter()
            .filter_map(|hash| match swarms.get(hash) {
                Some(swarm) => Some((*hash, counts(swarm))),
                None => keep_unknown.then(|| (*hash, Counts::default())),
            })
            .collect()
    }
}

/// How many peers are in the swarms: for tests.
#[cfg(test)]
impl Tracker {
    fn peer_count(&self, hash: &Id) -> usize {
        self.swarms().get(hash).map_or(0, |swarm| swarm.peers.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: Id = [0xaa; 20];
    const B: Id = [0xbb; 20];

    fn announce(peer: u8, hash: Id, port: u16) -> Announce {
        Announce {
            info_hash: hash,
            peer_id: [peer; 20],
            port,
            left: Some(100),
            event: Event::Started,
            ip: None,
            source: IpAddr::V4(Ipv4Addr::LOCALHOST),
            numwant: None,
            family: Family::Any,
        }
    }

    fn tracker(faults: &str) -> Tracker {
        Tracker::new(&[A, B], 1800, Faults::parse(faults, FAULTS).unwrap())
    }

    #[test]
    fn peers_see_each_other_and_stopped_leaves() {
        let tracker = tracker("");
        assert!(tracker.announce(&announce(1, A, 6001)).unwrap().peers.is_empty());
        let reply = tracker.announce(&announce(2, A, 6002)).unwrap();
        assert_eq!(reply.peers.len(), 1);
        assert_eq!((reply.peers[0].id, reply.peers[0].port), ([1; 20], 6001));
        assert_eq!((reply.complete, reply.incomplete), (0, 2));
        let mut stopped = announce(1, A, 6001);
        stopped.event = Event::Stopped;
        tracker.announce(&stopped).unwrap();
        assert_eq!(tracker.peer_count(&A), 1);
        assert!(tracker.announce(&announce(2, A, 6002)).unwrap().peers.is_empty());
    }

    #[test]
    fn unknown_torrents_fail() {
        assert_eq!(tracker("").announce(&announce(1, [7; 20], 1)).unwrap_err(), UNKNOWN_TORRENT);
        assert!(tracker("no-failure-reason").announce(&announce(1, [7; 20], 1)).is_ok());
    }

    #[test]
    fn numwant_and_torrents_are_kept_apart() {
        let tracker = tracker("");
        for peer in 1..=5 {
            tracker.announce(&announce(peer, A, 6000 + u16::from(peer))).unwrap();
        }
        tracker.announce(&announce(9, B, 7000)).unwrap();
        let mut few = announce(6, A, 6006);
        few.numwant = Some(2);
        let ports: Vec<u16> = tracker.announce(&few).unwrap().peers.iter().map(|p| p.port).collect();
        assert_eq!(ports, [6001, 6002]);
        let reply = tracker.announce(&announce(9, B, 7000)).unwrap();
        assert!(reply.peers.is_empty(), "B's only peer is the requester");
    }

    #[test]
    fn completed_counts_a_download_and_left_zero_is_a_seeder() {
        let tracker = tracker("");
        let mut done = announce(1, A, 6001);
        done.event = Event::Completed;
        done.left = Some(0);
        let reply = tracker.announce(&done).unwrap();
        assert_eq!((reply.complete, reply.incomplete), (1, 0));
        let counts = tracker.scrape(&[A, [7; 20]], false);
        assert_eq!(
            counts,
            [(
                A,
                Counts {
                    complete: 1,
                    downloaded: 1,
                    incomplete: 0
                }
            )]
        );
        assert_eq!(tracker.scrape(&[], false).len(), 2, "a full scrape lists every torrent");
    }
}
