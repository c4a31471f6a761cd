//! The peer wire protocol (BEP 3): the handshake and the length-prefixed messages, as bytes in
//! and out, and one connection's reading and writing loop.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// The handshake's protocol string, with its length byte in front.
const PSTR: &[u8; 20] = b"\x13BitTorrent protocol";
/// A handshake's size: pstrlen, pstr, 8 reserved bytes, info-hash, peer id.
pub(super) const HANDSHAKE_LEN: usize = 68;
/// Every request asks for this much (the last block of a piece may be shorter); BEP 3's
/// implementations close connections that ask for more, so no one asks for more.
pub(super) const BLOCK: u32 = 16 * 1024;

/// How long a peer has to answer a connection with its handshake.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);
/// BEP 3: peers send keep-alives every two minutes; one silent for longer is gone.
const IDLE: Duration = Duration::from_secs(150);
/// A message whose length has arrived must follow within this.
const BODY_WAIT: Duration = Duration::from_secs(30);
/// A write the peer does not take within this means it is not reading.
const WRITE_WAIT: Duration = Duration::from_secs(30);
/// Keep-alive when nothing else went out for this long (BEP 3: every two minutes).
const KEEP_ALIVE: Duration = Duration::from_secs(90);

/// One message of the peer wire protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Msg {
    /// The length-zero message.
    KeepAlive,
    /// 0.
    Choke,
    /// 1.
    Unchoke,
    /// 2.
    Interested,
    /// 3.
    NotInterested,
    /// 4: a piece the sender has now.
    Have(u32),
    /// 5: the pieces the sender has, high bit of the first byte first.
    Bitfield(Vec<u8>),
    /// 6.
    Request { index: u32, begin: u32, length: u32 },
    /// 7: a block's bytes.
    Piece { index: u32, begin: u32, data: Vec<u8> },
    /// 8.
    Cancel { index: u32, begin: u32, length: u32 },
    /// Any other id (port, extension and fast-extension messages): nothing this client acts on.
    Other(u8),
}

impl Msg {
    /// The message as it goes on the wire, length prefix included.
    pub(super) fn encode(&self) -> Vec<u8> {
        let (id, payload): (u8, Vec<u8>) = match self {
            Msg::KeepAlive => return vec![0; 4],
            Msg::Choke => (0, Vec::new()),
            Msg::Unchoke => (1, Vec::new()),
            Msg::Interested => (2, Vec::new()),
            Msg::NotInterested => (3, Vec::new()),
            Msg::Have(index) => (4, index.to_be_bytes().to_vec()),
            Msg::Bitfield(bits) => (5, bits.clone()),
            Msg::Request { index, begin, length } => (6, triple(*index, *begin, *length)),
            Msg::Piece { index, begin, data } => {
                let mut payload = Vec::with_capacity(8 + data.len());
                payload.extend_from_slice(&index.to_be_bytes());
                payload.extend_from_slice(&begin.to_be_bytes());
                payload.extend_from_slice(data);
                (7, payload)
            }
            Msg::Cancel { index, begin, length } => (8, triple(*index, *begin, *length)),
            Msg::Other(id) => (*id, Vec::new()),
        };
        // Payloads are a block at most, so the length always fits.
        let length = u32::try_from(payload.len() + 1).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(payload.len() + 5);
        out.extend_from_slice(&length.to_be_bytes());
        out.push(id);
        out.extend_from_slice(&payload);
        out
    }

    /// The message with id `id` and this payload; a known id with a payload of the wrong size is
    /// refused (BEP 3 gives each its size).
    pub(super) fn decode(id: u8, payload: Vec<u8>) -> Result<Msg, String> {
        let fixed = |len: usize| match payload.len() == len {
            true => Ok(()),
            false => Err(format!("message {id} has {} payload bytes, not {len}", payload.len())),
        };
        Ok(match id {
            0 => fixed(0).map(|()| Msg::Choke)?,
            1 => fixed(0).map(|()| Msg::Unchoke)?,
            2 => fixed(0).map(|()| Msg::Interested)?,
            3 => fixed(0).map(|()| Msg::NotInterested)?,
            4 => fixed(4).map(|()| Msg::Have(be32(&payload, 0)))?,
            5 => Msg::Bitfield(payload),
            6 | 8 => {
                fixed(12)?;
                let (index, begin, length) = (be32(&payload, 0), be32(&payload, 4), be32(&payload, 8));
                match id {
                    6 => Msg::Request { index, begin, length },
                    _ => Msg::Cancel { index, begin, length },
                }
            }
            7 => {
                if payload.len() < 8 {
                    return Err(format!("piece message of {} payload bytes", payload.len()));
                }
                let (index, begin) = (be32(&payload, 0), be32(&payload, 4));
                let mut data = payload;
                data.drain(..8);
                Msg::Piece { index, begin, data }
            }
            other => Msg::Other(other),
        })
    }
}

fn triple(a: u32, b: u32, c: u32) -> Vec<u8> {
    [a, b, c].iter().flat_map(|n| n.to_be_bytes()).collect()
}

/// The big-endian u32 at `at` (callers have checked the length; zero otherwise).
fn be32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

/// Our handshake: no extension bits (so peers must not send extension messages).
pub(super) fn handshake(info_hash: &[u8; 20], peer_id: &[u8; 20]) -> [u8; HANDSHAKE_LEN] {
    let mut out = [0u8; HANDSHAKE_LEN];
    out[..20].copy_from_slice(PSTR);
    out[28..48].copy_from_slice(info_hash);
    out[48..].copy_from_slice(peer_id);
    out
}

/// The info-hash and peer id of a peer's handshake, if it is one.
pub(super) fn parse_handshake(bytes: &[u8; HANDSHAKE_LEN]) -> Result<([u8; 20], [u8; 20]), String> {
    if bytes[..20] != PSTR[..] {
        return Err("the handshake does not start with \\x13BitTorrent protocol".to_owned());
    }
    let mut info_hash = [0u8; 20];
    let mut peer_id = [0u8; 20];
    info_hash.copy_from_slice(&bytes[28..48]);
    peer_id.copy_from_slice(&bytes[48..]);
    Ok((info_hash, peer_id))
}

/// What a connection tells the swarm.
#[derive(Debug)]
pub(super) enum Event {
    /// Handshakes done both ways; messages for the peer go into `tx`.
    Joined { id: u64, peer_id: [u8; 20], tx: mpsc::Sender<Msg> },
    /// A message from the peer (keep-alives are not passed on).
    Message { id: u64, msg: Msg },
    /// The connection is over (before or after joining).
    Left { id: u64 },
}

/// Messages waiting to go to one peer; a peer that lets this many pile up is not reading.
pub(super) const OUTBOX: usize = 256;

/// Which side opened the connection.
pub(super) enum Opened {
    /// We connect to the peer's address.
    ByUs(SocketAddr),
    /// The peer connected to our listener.
    ByPeer(TcpStream),
}

/// One connection from start to end: handshake (ours first when we opened it, the peer's first
/// when it did, BEP 3), then messages both ways until either side ends it. Every wait is bounded;
/// `max_message` caps a message's length.
pub(super) async fn connection(
    id: u64,
    opened: Opened,
    info_hash: [u8; 20],
    our_id: [u8; 20],
    max_message: usize,
    events: mpsc::Sender<Event>,
    trust_any_hash: bool,
) {
    // Why a connection ended is not reported: the swarm treats every ending alike.
    if let Ok((stream, peer_id)) = connect_and_greet(opened, &info_hash, &our_id, trust_any_hash).await {
        let (tx, rx) = mpsc::channel(OUTBOX);
        if events.send(Event::Joined { id, peer_id, tx }).await.is_err() {
            return;
        }
        let (read, write) = stream.into_split();
        tokio::select! {
            _ = read_loop(id, read, max_message, &events) => {}
            _ = write_loop(write, rx) => {}
        }
    }
    let _ = events.send(Event::Left { id }).await;
}

async fn connect_and_greet(
    opened: Opened,
    info_hash: &[u8; 20],
    our_id: &[u8; 20],
    trust_any_hash: bool,
) -> Result<(TcpStream, [u8; 20]), String> {
    let ours = handshake(info_hash, our_id);
    // The `trusts-any-hash` fault: the peer's info-hash is taken as ours.
    let check = |theirs: &[u8; HANDSHAKE_LEN]| match trust_any_hash {
        true => parse_handshake(theirs).map(|(_, peer_id)| peer_id),
        false => check_info_hash(theirs, info_hash),
    };
    let mut theirs = [0u8; HANDSHAKE_LEN];
    let greet = async {
        match opened {
            Opened::ByUs(addr) => {
                let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
                stream.write_all(&ours).await.map_err(|e| format!("handshake: {e}"))?;
                stream.read_exact(&mut theirs).await.map_err(|e| format!("handshake: {e}"))?;
                check(&theirs).map(|peer_id| (stream, peer_id))
            }
            Opened::ByPeer(mut stream) => {
                stream.read_exact(&mut theirs).await.map_err(|e| format!("handshake: {e}"))?;
                // BEP 3: the side that accepted answers only for a torrent it serves.
                let peer_id = check(&theirs)?;
                stream.write_all(&ours).await.map_err(|e| format!("handshake: {e}"))?;
                Ok((stream, peer_id))
            }
        }
    };
    timeout(HANDSHAKE_WAIT, greet)
        .await
        .map_err(|_| format!("no handshake within {HANDSHAKE_WAIT:?}"))?
}

fn check_info_hash(theirs: &[u8; HANDSHAKE_LEN], info_hash: &[u8; 20]) -> Result<[u8; 20], String> {
    let (their_hash, peer_id) = parse_handshake(theirs)?;
    match &their_hash == info_hash {
        true => Ok(peer_id),
        false => Err("the handshake is for another torrent".to_owned()),
    }
}

/// Reads messages until the peer goes, breaks the framing or falls silent; returns why.
async fn read_loop(id: u64, mut read: OwnedReadHalf, max_message: usize, events: &mpsc::Sender<Event>) -> String {
    loop {
        let mut len = [0u8; 4];
        match timeout(IDLE, read.read_exact(&mut len)).await {
            Err(_) => return format!("silent for {IDLE:?}"),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return "closed".to_owned(),
            Ok(Err(e)) => return format!("read: {e}"),
            Ok(Ok(_)) => {}
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            continue;
        }
        if len > max_message {
            return format!("a message of {len} bytes (at most {max_message} expected)");
        }
        let mut body = vec![0u8; len];
        match timeout(BODY_WAIT, read.read_exact(&mut body)).await {
            Err(_) => return format!("a message of {len} bytes not complete within {BODY_WAIT:?}"),
            Ok(Err(e)) => return format!("read: {e}"),
            Ok(Ok(_)) => {}
        }
        let id_byte = body.remove(0);
        let msg = match Msg::decode(id_byte, body) {
            Ok(msg) => msg,
            Err(why) => return why,
        };
        if events.send(Event::Message { id, msg }).await.is_err() {
            return "the client is done".to_owned();
        }
    }
}

/// Writes what the swarm queues; a keep-alive after a quiet spell. Ends when the swarm drops the
/// queue (the connection then closes) or the peer stops taking bytes.
async fn write_loop(mut write: OwnedWriteHalf, mut rx: mpsc::Receiver<Msg>) -> String {
    loop {
        let msg = match timeout(KEEP_ALIVE, rx.recv()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => {
                let _ = timeout(WRITE_WAIT, write.shutdown()).await;
                return "closed by us".to_owned();
            }
            Err(_) => Msg::KeepAlive,
        };
        match timeout(WRITE_WAIT, write.write_all(&msg.encode())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return format!("write: {e}"),
            Err(_) => return format!("the peer took nothing for {WRITE_WAIT:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_messages() {
        let all = [
            Msg::Choke,
            Msg::Unchoke,
            Msg::Interested,
            Msg::NotInterested,
            Msg::Have(7),
            Msg::Bitfield(vec![0xf8]),
            Msg::Request {
                index: 1,
                begin: 16384,
                length: 16384,
            },
            Msg::Piece {
                index: 2,
                begin: 0,
                data: vec![1, 2, 3],
            },
            Msg::Cancel {
                index: 3,
                begin: 0,
                length: 100,
            },
        ];
        for msg in all {
            let bytes = msg.encode();
            let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            assert_eq!(len, bytes.len() - 4);
            assert_eq!(Msg::decode(bytes[4], bytes[5..].to_vec()), Ok(msg));
        }
        assert_eq!(Msg::KeepAlive.encode(), [0, 0, 0, 0]);
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert!(Msg::decode(4, vec![0, 0, 1]).is_err());
        assert!(Msg::decode(0, vec![0]).is_err());
        assert!(Msg::decode(6, vec![0; 11]).is_err());
        assert!(Msg::decode(7, vec![0; 7]).is_err());
        assert_eq!(Msg::decode(9, vec![0x1a, 0xe1]), Ok(Msg::Other(9)));
    }

    #[test]
    fn parses_handshakes() {
        let hash = [7u8; 20];
        let id = *b"-WR0001-abcdefghijkl";
        let ours = handshake(&hash, &id);
        assert_eq!(parse_handshake(&ours), Ok((hash, id)));
        assert!(check_info_hash(&ours, &[8u8; 20]).is_err());
        let mut bad = ours;
        bad[0] = 18;
        assert!(parse_handshake(&bad).is_err());
    }
}
