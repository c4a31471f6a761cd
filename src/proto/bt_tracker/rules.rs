//! The tracker's conversation rules: what the BEPs require of a whole conversation, and no more.
//!
//! Over HTTP, BEP 3 has the tracker answer each announce with a bencoded dictionary (HTTP/1.1
//! gives one final response per request, RFC 9112 §9.3.2): more answers than requests, or a
//! tracker that closes with announces or scrapes unanswered, break it. Over UDP, BEP 15 has a
//! reply carry the transaction id of the request it answers ("the transaction ID ... must
//! match"), and the action of that request or 3 (error): a client discards anything else. Each
//! single message's rules (canonical bencode, compact peers, lengths) are the codec's findings.

use super::codec::{Ask, Tracker, Udp};
use crate::proto::{Direction, Exchange, Finding, Level, Message};

fn tracker(m: &Message) -> Option<&Tracker> {
    m.detail.as_ref()?.downcast_ref::<Tracker>()
}

fn must(rule: &'static str, text: String) -> Finding {
    Finding {
        level: Level::Must,
        rule,
        text,
    }
}

/// Findings over one tracker conversation, HTTP or UDP.
pub fn conversation(conv: &[Exchange<'_>]) -> Vec<Finding> {
    rules(conv, false)
}

/// The same over a TCP conversation whose start the capture missed: answers to requests sent
/// before it are not held against the tracker.
pub fn from_middle(conv: &[Exchange<'_>]) -> Vec<Finding> {
    rules(conv, true)
}

fn rules(conv: &[Exchange<'_>], late: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    // HTTP: requests framed or not (a malformed one may still be answered), the announces and
    // scrapes among them, and the final responses.
    let (mut requests, mut finals): (Vec<bool>, Vec<String>) = (Vec::new(), Vec::new());
    let mut asked_at_close = None;
    let mut client_closed = false;
    // UDP: the requests the client sent, by transaction id and action.
    let mut sent: Vec<(u32, u32)> = Vec::new();
    for ex in conv {
        match ex {
            Exchange::Message(Direction::ClientToServer, m) => match tracker(m) {
                Some(Tracker::Udp(u)) => sent.push((u.msg.transaction(), u.msg.action())),
                Some(Tracker::Request(r)) => requests.push(r.ask != Ask::Other),
                _ => requests.push(false),
            },
            Exchange::Unframed(Direction::ClientToServer) => requests.push(false),
            Exchange::Message(Direction::ServerToClient, m) => match tracker(m) {
                Some(Tracker::Udp(u)) => {
                    if let Some(f) = udp_reply(&u.msg, &sent) {
                        out.push(f);
                    }
                }
                Some(Tracker::Response(r)) => {
                    let status = r.http.status().unwrap_or(0);
                    // 1xx responses are interim: the request still gets its final one.
                    if !(100..200).contains(&status) || status == 101 {
                        finals.push(m.text.clone());
                    }
                }
                _ => {}
            },
            Exchange::Closed(Direction::ClientToServer) => client_closed = true,
            Exchange::Closed(Direction::ServerToClient) if !client_closed && asked_at_close.is_none() => {
                asked_at_close = Some((requests.len(), finals.len()));
            }
            _ => {}
        }
    }
    let n = requests.len();
    if finals.len() > n && !late {
        out.push(must(
            "RFC 9112 §9.3.2",
            format!("{} answers to {n} request(s): \"{}\" answers none", finals.len(), finals[n]),
        ));
    }
    // Requests are answered in order: those after the last answer went unanswered.
    if let Some((asked, answered)) = asked_at_close {
        let unanswered = requests.get(answered..asked).unwrap_or_default();
        let tracker_asks = unanswered.iter().filter(|a| **a).count();
        if tracker_asks > 0 {
            out.push(must(
                "BEP 3",
                format!(
                    "the tracker closed the connection with {tracker_asks} announce or scrape request(s) unanswered: it \
                     answers each with a bencoded dictionary (a refusal too, with 'failure reason')"
                ),
            ));
        }
    }
    out
}

/// The finding a UDP reply breaks, given the requests sent before it.
fn udp_reply(reply: &Udp, sent: &[(u32, u32)]) -> Option<Finding> {
    let tid = reply.transaction();
    let actions: Vec<u32> = sent.iter().filter(|(t, _)| *t == tid).map(|(_, a)| *a).collect();
    if actions.is_empty() {
        let ids: Vec<String> = sent.iter().map(|(t, _)| format!("{t:#x}")).collect();
        return Some(must(
            "BEP 15",
            format!(
                "reply transaction id {tid:#x} matches no request sent on this conversation (ids sent: {}): the transaction \
                 id of a reply must match its request's",
                if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
            ),
        ));
    }
    let action = reply.action();
    (action != 3 && !actions.contains(&action)).then(|| {
        must(
            "BEP 15",
            format!(
                "a reply with action {action} to a request with action {} (transaction id {tid:#x}): a reply has its \
                 request's action, or 3 (error)",
                actions[actions.len() - 1]
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::codec::{HttpTrackerCodec, UdpTrackerCodec, CONNECT_MAGIC};
    use super::*;
    use crate::proto::{Codec, Frame};

    fn framed(c: &mut dyn Codec, b: &[u8]) -> Message {
        match c.decode(b, true).unwrap() {
            Frame::Message(m, _) => m,
            Frame::Incomplete => panic!(),
        }
    }

    #[test]
    fn udp_replies_answer_a_request_with_its_transaction_and_action() {
        let c2s = |u: Udp| framed(&mut UdpTrackerCodec::new(Direction::ClientToServer), &u.encode());
        let s2c = |u: Udp| framed(&mut UdpTrackerCodec::new(Direction::ServerToClient), &u.encode());
        let connect = c2s(Udp::Connect {
            protocol_id: CONNECT_MAGIC,
            transaction: 7,
        });
        let good = s2c(Udp::Connected {
            transaction: 7,
            connection: 1,
        });
        let error = s2c(Udp::Error {
            transaction: 7,
            message: "no".into(),
        });
        let stranger = s2c(Udp::Connected {
            transaction: 8,
            connection: 1,
        });
        let wrong_action = s2c(Udp::Scraped {
            transaction: 7,
            files: vec![],
        });
        let run = |reply: &Message| {
            conversation(&[
                Exchange::Message(Direction::ClientToServer, &connect),
                Exchange::Message(Direction::ServerToClient, reply),
            ])
        };
        assert!(run(&good).is_empty());
        assert!(run(&error).is_empty());
        let f = run(&stranger);
        assert!(
            f[0].text.contains("0x8 matches no request sent") && f[0].text.contains("0x7"),
            "{f:?}"
        );
        let f = run(&wrong_action);
        assert!(f[0].text.contains("action 2 to a request with action 0"), "{f:?}");
    }

    #[test]
    fn every_http_announce_gets_one_answer() {
        let req = b"GET /announce?info_hash=a HTTP/1.1\r\n\r\n";
        let request = framed(&mut HttpTrackerCodec::new(Direction::ClientToServer), req);
        let mut c = HttpTrackerCodec::new(Direction::ServerToClient);
        c.peer_sent(req);
        let answer = framed(&mut c, b"HTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\nd14:failure reason4:nopee");
        let c2s = Exchange::Message(Direction::ClientToServer, &request);
        let s2c = Exchange::Message(Direction::ServerToClient, &answer);
        let closed = Exchange::Closed(Direction::ServerToClient);
        assert!(conversation(&[c2s, s2c, closed]).is_empty());
        let f = conversation(&[c2s, s2c, s2c]);
        assert_eq!(f[0].rule, "RFC 9112 §9.3.2");
        assert!(
            from_middle(&[s2c, c2s, s2c]).is_empty(),
            "the first answers a request sent before the capture"
        );
        let f = conversation(&[c2s, s2c, c2s, closed]);
        assert!(
            f[0].text
                .contains("closed the connection with 1 announce or scrape request(s) unanswered"),
            "{f:?}"
        );
        // The client hanging up first is not the tracker's doing.
        assert!(conversation(&[c2s, Exchange::Closed(Direction::ClientToServer), closed]).is_empty());
    }
}
