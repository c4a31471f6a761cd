//! The closing handshake (RFC 6455 §5.5.1): after its Close frame a side sends no more data
//! frames, and a side that received a Close answers it with one before it closes the TCP
//! connection.

use super::codec::{WsFrame, CLOSE};
use crate::proto::{Direction, Exchange, Finding, Level};

fn frame(m: &crate::proto::Message) -> Option<&WsFrame> {
    m.detail.as_ref()?.downcast_ref::<WsFrame>()
}

fn side(d: Direction) -> &'static str {
    match d {
        Direction::ClientToServer => "the client",
        Direction::ServerToClient => "the server",
    }
}

/// Findings over one WebSocket conversation.
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    let (mut sent_close, mut got_close) = ([false; 2], [false; 2]);
    let idx = |d: Direction| usize::from(d == Direction::ServerToClient);
    let other = |d: Direction| match d {
        Direction::ClientToServer => Direction::ServerToClient,
        Direction::ServerToClient => Direction::ClientToServer,
    };
    for e in conv {
        match *e {
            Exchange::Message(d, m) => {
                let Some(f) = frame(m) else { continue };
                if f.opcode == CLOSE {
                    sent_close[idx(d)] = true;
                    got_close[idx(other(d))] = true;
                } else if !f.is_control() && sent_close[idx(d)] {
                    out.push(Finding {
                        level: Level::Must,
                        rule: "RFC 6455 §5.5.1",
                        text: format!(
                            "{} sent a data frame after its Close frame: \"The application MUST NOT send any more data frames after sending a Close frame\"",
                            side(d)
                        ),
                    });
                }
            }
            Exchange::Closed(d) => {
                if got_close[idx(d)] && !sent_close[idx(d)] {
                    out.push(Finding {
                        level: Level::Must,
                        rule: "RFC 6455 §5.5.1",
                        text: format!(
                            "{} closed the connection without answering the Close frame it got: \"the endpoint MUST send a Close frame in response\"",
                            side(d)
                        ),
                    });
                }
            }
            Exchange::Unframed(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Codec, Frame, Message};

    fn msg(dir: Direction, f: WsFrame) -> Message {
        let mut codec = super::super::WebSocketCodec::new(dir);
        match codec.decode(&f.encode(), true).expect("decodes") {
            Frame::Message(m, _) => m,
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    fn f(opcode: u8, mask: bool, payload: &[u8]) -> WsFrame {
        WsFrame {
            fin: true,
            rsv: 0,
            opcode,
            mask: mask.then_some([1, 2, 3, 4]),
            payload: payload.to_vec(),
        }
    }

    use Direction::{ClientToServer as C, ServerToClient as S};

    #[test]
    fn a_clean_closing_handshake_breaks_no_rule() {
        let ms = [
            msg(C, f(1, true, b"hi")),
            msg(S, f(1, false, b"hi")),
            msg(C, f(CLOSE, true, b"\x03\xe8")),
            msg(S, f(CLOSE, false, b"\x03\xe8")),
        ];
        let conv: Vec<Exchange> = ms
            .iter()
            .enumerate()
            .map(|(i, m)| Exchange::Message(if i % 2 == 0 { C } else { S }, m))
            .chain([Exchange::Closed(S), Exchange::Closed(C)])
            .collect();
        assert!(conversation(&conv).is_empty(), "{:?}", conversation(&conv));
    }

    #[test]
    fn data_after_close_and_an_unanswered_close_are_findings() {
        let (close, text) = (msg(C, f(CLOSE, true, b"")), msg(C, f(1, true, b"late")));
        let conv = [Exchange::Message(C, &close), Exchange::Message(C, &text), Exchange::Closed(S)];
        let rules: Vec<&str> = conversation(&conv).iter().map(|f| f.rule).collect();
        assert_eq!(rules, ["RFC 6455 §5.5.1", "RFC 6455 §5.5.1"]);
        // A ping after the close is a control frame: allowed.
        let ping = msg(C, f(0x9, true, b""));
        let conv = [Exchange::Message(C, &close), Exchange::Message(C, &ping)];
        assert!(conversation(&conv).is_empty());
    }
}
