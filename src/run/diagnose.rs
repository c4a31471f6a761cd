//! Hints that name a failure's likely cause from what went over the wire, beyond the step that
//! noticed it: a server that reads once shows up as a short answer or a broken pipe, and the step
//! alone cannot say why.

use crate::dialogue::{Dialogue, EventKind};
use crate::proto::{Direction, Transport};

/// What the failing step says about itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Failed<'a> {
    /// What it expected to receive, when it says.
    pub expected: Option<&'a str>,
    /// It was a send that the program cut short by going away.
    pub send_cut_short: bool,
    /// The server under test exited cleanly (status 0) during the case.
    pub server_exited_cleanly: bool,
}

/// What a failed case's record suggests, each in plain words with the rule broken and the fix.
pub fn hints(d: &Dialogue, failed: Failed) -> Vec<String> {
    let mut out: Vec<String> = d
        .connections
        .iter()
        .filter(|c| c.transport == Transport::Tcp && !c.captured)
        .filter_map(|c| read_once(d, c.id, c.harness_is_client, &c.name, failed))
        .collect();
    out.extend(no_accept_loop(d, failed));
    out
}

/// A server that exited by itself, cleanly, after answering a connection: it has no loop around
/// `accept`.
fn no_accept_loop(d: &Dialogue, failed: Failed) -> Option<String> {
    if !failed.server_exited_cleanly {
        return None;
    }
    let answered = d
        .connections
        .iter()
        .filter(|c| c.harness_is_client && c.transport == Transport::Tcp)
        .filter(|c| {
            d.events.iter().any(|e| {
                e.conn == c.id
                    && matches!(
                        &e.kind,
                        EventKind::Data {
                            dir: Direction::ServerToClient,
                            ..
                        }
                    )
            })
        })
        .count();
    let connections = match answered {
        0 => return None,
        1 => "one connection".to_string(),
        n => format!("{n} connections"),
    };
    Some(format!(
        "the program exited by itself (status 0) after answering {connections}: a server keeps accepting connections \
         until it is stopped; put accept and the reply in a loop (the textbook's `while True:`, K&R 2.7.2)"
    ))
}

/// A program that answered a prefix of what it was sent and closed: it read once, as if one
/// `recv` returned a whole message.
fn read_once(d: &Dialogue, conn: usize, harness_is_client: bool, name: &str, failed: Failed) -> Option<String> {
    let to_target = if harness_is_client {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    };
    let (mut sent, mut answered, mut ended) = (Vec::new(), Vec::new(), false);
    for e in d.events.iter().filter(|e| e.conn == conn) {
        match &e.kind {
            EventKind::Data { dir, bytes } if *dir == to_target => sent.extend_from_slice(bytes),
            EventKind::Data { bytes, .. } => answered.extend_from_slice(bytes),
            EventKind::Closed { dir } if *dir != to_target => ended = true,
            EventKind::Reset => ended = true,
            _ => {}
        }
    }
    // Line endings are the message's frame, not its content: compare without them.
    let trim = |b: &[u8]| -> Vec<u8> {
        let b = b.strip_suffix(b"\n").unwrap_or(b);
        b.strip_suffix(b"\r").unwrap_or(b).to_vec()
    };
    let (answer, sent) = (trim(&answered), trim(&sent));
    let answer = answer.as_slice();
    let starts = |whole: &[u8]| whole.len() >= answer.len() && whole[..answer.len()].eq_ignore_ascii_case(answer);
    let prefix_of = |whole: &[u8]| whole.len() > answer.len() && starts(whole);
    // Sent more than it answered; or the step wanted more; or it went away while more was coming.
    let short = prefix_of(&sent) || failed.expected.is_some_and(|e| prefix_of(e.as_bytes())) || (failed.send_cut_short && starts(&sent));
    // A send the program cut short shows it went away even when its FIN was never read.
    if !(ended || failed.send_cut_short) || answer.is_empty() || !short {
        return None;
    }
    let first = match answer.len() {
        1 => "byte".to_string(),
        n => format!("{n} bytes"),
    };
    Some(format!(
        "on {name}, the program answered only the first {first} and closed the connection: it reads once, but TCP is a \
         byte stream (RFC 9293 §2.2) and one recv returns what has arrived so far (at most its buffer size), not a whole \
         message; keep reading until the message ends (a newline, or the client's close)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::{ConnInfo, Event};

    fn dialogue(events: Vec<EventKind>) -> Dialogue {
        Dialogue {
            connections: vec![ConnInfo::test_tcp(false)],
            events: events.into_iter().map(|kind| Event { t_us: 0, conn: 0, kind }).collect(),
        }
    }

    fn data(dir: Direction, b: &[u8]) -> EventKind {
        EventKind::Data { dir, bytes: b.to_vec() }
    }

    #[test]
    fn a_short_echo_then_a_close_is_a_read_once() {
        use Direction::*;
        let big = vec![b'a'; 4096];
        let d = dialogue(vec![
            data(ClientToServer, &big),
            data(ServerToClient, &[b'A'; 1024]),
            EventKind::Reset,
        ]);
        let h = hints(&d, Failed::default());
        assert_eq!(h.len(), 1);
        assert!(h[0].contains("first 1024 bytes") && h[0].contains("RFC 9293 §2.2"), "{h:?}");
        // Only what arrived before the close was sent on the wire: the step's expectation says the rest.
        let d = dialogue(vec![
            data(ClientToServer, b"hel"),
            data(ServerToClient, b"HEL"),
            EventKind::Closed { dir: ServerToClient },
        ]);
        let wanted = Failed {
            expected: Some("HELLO WORLD"),
            ..Failed::default()
        };
        assert_eq!(hints(&d, wanted).len(), 1);
        // Or a later piece of the message could not be sent at all.
        let cut = Failed {
            send_cut_short: true,
            ..Failed::default()
        };
        assert_eq!(hints(&d, cut).len(), 1);
        assert!(hints(&d, Failed::default()).is_empty());
    }

    #[test]
    fn a_server_that_exits_after_one_answer_has_no_accept_loop() {
        use Direction::*;
        let d = dialogue(vec![
            data(ClientToServer, b"one\n"),
            data(ServerToClient, b"ONE\n"),
            EventKind::Closed { dir: ServerToClient },
        ]);
        let exited = Failed {
            server_exited_cleanly: true,
            ..Failed::default()
        };
        let h = hints(&d, exited);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(
            h[0].contains("after answering one connection") && h[0].contains("while True"),
            "{h:?}"
        );
        assert!(hints(&d, Failed::default()).is_empty());
    }

    #[test]
    fn a_whole_answer_or_an_open_connection_is_no_read_once() {
        use Direction::*;
        let d = dialogue(vec![
            data(ClientToServer, b"hello\n"),
            data(ServerToClient, b"HELLO\n"),
            EventKind::Closed { dir: ServerToClient },
        ]);
        let whole = Failed {
            expected: Some("HELLO"),
            ..Failed::default()
        };
        assert!(hints(&d, whole).is_empty());
        let d = dialogue(vec![data(ClientToServer, b"hello world\n"), data(ServerToClient, b"HELLO")]);
        assert!(hints(&d, Failed::default()).is_empty());
        let d = dialogue(vec![
            data(ClientToServer, b"GET / HTTP/1.1\r\n\r\n"),
            data(ServerToClient, b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            EventKind::Closed { dir: ServerToClient },
        ]);
        assert!(hints(&d, Failed::default()).is_empty());
    }
}
