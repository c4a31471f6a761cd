//! The peer wire's rules over a whole connection, for `wirecheck check`: both handshakes carry
//! the same info-hash, and a piece answers a block its receiver requested.
//!
//! They are few because BEP 3 leaves most of a conversation to each peer: messages of the two
//! sides cross on the wire (a piece may arrive after its cancel, or after a choke: "It's
//! possible for an unexpected piece to arrive if choke and unchoke messages are sent in quick
//! succession"), and the fast extension (BEP 6) lets a choked peer be served its allowed fast
//! pieces, so pieces sent to a choked peer are not judged. What one message shows on its own
//! (payload lengths, a late bitfield) is the codec's.

use std::collections::BTreeSet;

use super::bencode::hex;
use super::codec::{Block, PeerMessage};
use crate::proto::{Direction, Exchange, Finding, Level, Message};

/// Requests remembered per side; past this the unsolicited-piece rule stops judging rather than
/// forget a request and blame a piece that answered it.
const MAX_REQUESTS: usize = 1 << 16;

fn peer(m: &Message) -> Option<&PeerMessage> {
    m.detail.as_ref()?.downcast_ref::<PeerMessage>()
}

/// Findings over one peer wire connection.
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    let side = |d: Direction| usize::from(d == Direction::ServerToClient);
    let mut out = Vec::new();
    let mut hashes: [Option<[u8; 20]>; 2] = [None, None];
    // Per side: the blocks it requested; `full` once more than MAX_REQUESTS came.
    let mut requested: [BTreeSet<Block>; 2] = [BTreeSet::new(), BTreeSet::new()];
    let mut full = [false; 2];
    for ex in conv {
        let Exchange::Message(dir, m) = ex else { continue };
        let Some(pm) = peer(m) else { continue };
        let (me, them) = (side(*dir), 1 - side(*dir));
        match pm {
            PeerMessage::Handshake { info_hash, .. } => {
                if let Some(other) = hashes[them].filter(|h| h != info_hash) {
                    out.push(Finding {
                        level: Level::Must,
                        rule: "BEP 3",
                        text: format!(
                            "{} the handshake's info-hash {} differs from the other side's {}: \"If both sides don't send the same value, they sever the connection.\"",
                            dir.arrow(),
                            hex(info_hash),
                            hex(&other)
                        ),
                    });
                }
                hashes[me] = Some(*info_hash);
            }
            PeerMessage::Request(b) if !full[me] => {
                requested[me].insert(*b);
                full[me] = requested[me].len() > MAX_REQUESTS;
            }
            PeerMessage::Piece { index, begin, data } if !full[them] => {
                let b = Block {
                    index: *index,
                    begin: *begin,
                    length: data.len() as u32,
                };
                if !requested[them].contains(&b) {
                    out.push(Finding {
                        level: Level::Should,
                        rule: "BEP 3",
                        text: format!(
                            "{} piece {index} begin {begin} len {} answers no request the other side sent: \"'piece' messages ... are correlated with request messages implicitly\"",
                            dir.arrow(),
                            data.len()
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::codec::PeerCodec;
    use super::super::steps::wire;
    use super::*;
    use crate::proto::Framer;

    fn hs(hash: u8) -> PeerMessage {
        PeerMessage::Handshake {
            reserved: [0; 8],
            info_hash: [hash; 20],
            peer_id: [b'p'; 20],
        }
    }

    /// Frames each side's messages and lays them out in the order given.
    fn judge(script: &[(Direction, PeerMessage)]) -> Vec<Finding> {
        let mut framers = [Framer::new(Box::new(PeerCodec::new())), Framer::new(Box::new(PeerCodec::new()))];
        let mut msgs = Vec::new();
        for (d, m) in script {
            let f = &mut framers[usize::from(*d == Direction::ServerToClient)];
            f.push(&wire(m));
            msgs.push((*d, f.next(false).unwrap().unwrap()));
        }
        let conv: Vec<Exchange> = msgs.iter().map(|(d, m)| Exchange::Message(*d, m)).collect();
        conversation(&conv)
    }

    use Direction::{ClientToServer as C, ServerToClient as S};

    fn block(index: u32) -> Block {
        Block {
            index,
            begin: 0,
            length: 3,
        }
    }

    fn piece(index: u32) -> PeerMessage {
        PeerMessage::Piece {
            index,
            begin: 0,
            data: b"abc".to_vec(),
        }
    }

    #[test]
    fn parses_a_clean_exchange_without_findings() {
        let f = judge(&[
            (C, hs(1)),
            (S, hs(1)),
            (C, PeerMessage::Interested),
            (S, PeerMessage::Unchoke),
            (C, PeerMessage::Request(block(0))),
            (C, PeerMessage::Cancel(block(0))),
            (S, piece(0)),
        ]);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn rejects_handshakes_of_two_torrents() {
        let f = judge(&[(C, hs(1)), (S, hs(2))]);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].rule, f[0].level), ("BEP 3", Level::Must));
        assert!(f[0].text.starts_with("S→C the handshake's info-hash 0202"), "{}", f[0].text);
        assert!(f[0].text.contains("sever the connection"));
    }

    #[test]
    fn rejects_a_piece_nobody_requested_with_a_should() {
        let f = judge(&[
            (C, hs(1)),
            (S, hs(1)),
            (C, PeerMessage::Request(block(0))),
            (S, piece(1)),
            (S, piece(0)),
            // A side's own requests do not make the pieces it sends solicited.
            (S, PeerMessage::Request(block(2))),
            (S, piece(2)),
        ]);
        let texts: Vec<&str> = f.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(f.len(), 2, "{texts:?}");
        assert!(f.iter().all(|f| f.level == Level::Should));
        assert!(texts[0].starts_with("S→C piece 1 begin 0 len 3 answers no request"), "{texts:?}");
        assert!(texts[1].starts_with("S→C piece 2"), "{texts:?}");
    }
}
