//! The UDP tracker protocol (BEP 15): a connect that gets a connection id, then an announce that
//! carries it. Each request is sent again when no answer with its transaction id comes (once a
//! second, then two, then four: BEP 15's 15 s steps, shortened for loopback), all within the
//! announce's bound.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{timeout, timeout_at, Instant};

use super::tracker::{Announce, AnnounceError, Reply, NUMWANT};

/// BEP 15's magic protocol id of a connect request.
const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Sends of one request before giving up.
const TRIES: u32 = 3;
/// Peers taken from one reply.
const MAX_PEERS: usize = 200;
/// The longest datagram read.
const MAX_DATAGRAM: usize = 2048;

/// Announces to the `udp://host:port[/...]` tracker of `a`, all within `wait`.
pub(super) async fn announce(a: &Announce, wait: Duration) -> Result<Reply, AnnounceError> {
    let broken = AnnounceError::Broken;
    let authority = a
        .url
        .strip_prefix("udp://")
        .map(|rest| rest.split(['/', '?']).next().unwrap_or(rest))
        .filter(|auth| !auth.is_empty() && !auth.chars().any(|c| c.is_control() || c == ' '))
        .ok_or_else(|| broken(format!("bad announce URL {:?}", a.url)))?;
    let exchange = async {
        let addr = tokio::net::lookup_host(authority)
            .await
            .map_err(|e| format!("{authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority}: no address"))?;
        let local: SocketAddr = match addr.ip() {
            IpAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
            IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(local).await.map_err(|e| format!("udp: {e}"))?;
        sock.connect(addr).await.map_err(|e| format!("udp {addr}: {e}"))?;

        let tid = fastrand::u32(..);
        let mut connect = Vec::with_capacity(16);
        connect.extend(PROTOCOL_ID.to_be_bytes());
        connect.extend(0u32.to_be_bytes());
        connect.extend(tid.to_be_bytes());
        let reply = request(&sock, &connect, tid).await?;
        let connection = match action(&reply) {
            0 if reply.len() >= 16 => u64::from_be_bytes(reply[8..16].try_into().unwrap_or_default()),
            3 => return Ok(Err(error_message(&reply))),
            n => return Err(format!("a connect answered with action {n} in {} bytes", reply.len())),
        };

        let tid = fastrand::u32(..);
        let event: u32 = match a.event {
            Some("completed") => 1,
            Some("started") => 2,
            Some("stopped") => 3,
            _ => 0,
        };
        let mut ann = Vec::with_capacity(98);
        ann.extend(connection.to_be_bytes());
        ann.extend(1u32.to_be_bytes());
        ann.extend(tid.to_be_bytes());
        ann.extend(a.info_hash);
        ann.extend(a.peer_id);
        ann.extend(a.downloaded.to_be_bytes());
        ann.extend(a.left.to_be_bytes());
        ann.extend(a.uploaded.to_be_bytes());
        ann.extend(event.to_be_bytes());
        ann.extend(0u32.to_be_bytes()); // ip: the sender's
        ann.extend(fastrand::u32(..).to_be_bytes()); // key
        ann.extend(NUMWANT.to_be_bytes());
        ann.extend(a.port.to_be_bytes());
        let reply = request(&sock, &ann, tid).await?;
        // BEP 15: peers are 6-byte IPv4 entries, or 18-byte IPv6 ones when the announce went over IPv6.
        let v6 = addr.is_ipv6();
        let entry = if v6 { 18 } else { 6 };
        match action(&reply) {
            1 if reply.len() >= 20 => {
                let interval = u32::from_be_bytes(reply[8..12].try_into().unwrap_or_default());
                let peers = reply[20..]
                    .chunks_exact(entry)
                    .take(MAX_PEERS)
                    .map(|e| {
                        let (ip, port) = e.split_at(entry - 2);
                        let ip = match v6 {
                            true => IpAddr::from(<[u8; 16]>::try_from(ip).unwrap_or_default()),
                            false => IpAddr::from(<[u8; 4]>::try_from(ip).unwrap_or_default()),
                        };
                        SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]]))
                    })
                    .collect();
                Ok(Ok(Reply {
                    interval: Some(u64::from(interval)),
                    peers,
                }))
            }
            3 => Ok(Err(error_message(&reply))),
            n => Err(format!("an announce answered with action {n} in {} bytes", reply.len())),
        }
    };
    match timeout(wait, exchange).await {
        Err(_) => Err(broken(format!("no answer from {authority} within {wait:?}"))),
        Ok(Err(why)) => Err(broken(why)),
        Ok(Ok(Err(reason))) => Err(AnnounceError::Failure(reason)),
        Ok(Ok(Ok(reply))) => Ok(reply),
    }
}

/// Sends `req` until a datagram with transaction id `tid` comes back; others are stale and skipped.
async fn request(sock: &UdpSocket, req: &[u8], tid: u32) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    for n in 0..TRIES {
        sock.send(req).await.map_err(|e| format!("udp send: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(1 << n);
        loop {
            match timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(format!("udp receive: {e}")),
                Ok(Ok(len)) if len >= 8 && buf[4..8] == tid.to_be_bytes() => return Ok(buf[..len].to_vec()),
                Ok(Ok(_)) => {}
            }
        }
    }
    Err(format!("no answer after {TRIES} tries"))
}

fn action(reply: &[u8]) -> u32 {
    u32::from_be_bytes(reply[..4].try_into().unwrap_or_default())
}

/// An error reply's message (BEP 15: action 3, then a string to the datagram's end).
fn error_message(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply.get(8..).unwrap_or_default()).into_owned()
}
