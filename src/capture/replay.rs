//! Plays the server side of captured conversations back to a live client (`check --suite`).
//!
//! A suite case judges a server by what it sent in answer to what it was sent. To judge a
//! capture with the same code, this stands in for the server: the k-th connection the harness
//! opens is answered with the k-th captured conversation's server bytes, each piece sent once as
//! many client bytes have arrived as had arrived on the wire before it. The harness then runs
//! the case's steps unchanged, so the verdict is the one `wirecheck run` gives for those bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::dialogue::EventKind;
use crate::proto::Direction;
use crate::proto::Transport;

use super::Conversation;

/// How long the replay waits for client bytes the capture says came before the next reply.
/// The harness may send other bytes than the captured client did (a fresh date, another
/// length); past this the reply goes out anyway and the case's own expectations decide.
const CLIENT_WAIT: Duration = Duration::from_secs(2);
/// Most bytes buffered from a client per connection.
const MAX_READ: usize = 16 << 20;
/// How long the replay waits for a client to close when the capture shows it closing next
/// (usually when its case ends, after any `silence` the case waits out).
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// One step of a conversation's script, from the server's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Wait until the client has sent this many bytes in all (TCP) or one more datagram (UDP).
    Await(usize),
    /// Send these bytes (one datagram for UDP).
    Send(Vec<u8>),
    /// Wait until the client has closed its side (it did, on the wire, before what follows).
    AwaitClose,
    /// Close the sending side (FIN).
    Shutdown,
    /// Abort the connection (RST).
    Reset,
}

fn script(conv: &Conversation) -> Vec<Step> {
    let mut out = Vec::new();
    let mut received = 0usize;
    for e in &conv.dialogue.events {
        match &e.kind {
            EventKind::Data {
                dir: Direction::ClientToServer,
                bytes,
            } => {
                received += if conv.transport == Transport::Udp { 1 } else { bytes.len() };
                out.push(Step::Await(received));
            }
            EventKind::Data {
                dir: Direction::ServerToClient,
                bytes,
            } => out.push(Step::Send(bytes.clone())),
            EventKind::Closed {
                dir: Direction::ServerToClient,
            } => out.push(Step::Shutdown),
            EventKind::Closed {
                dir: Direction::ClientToServer,
            } => out.push(Step::AwaitClose),
            EventKind::Reset => out.push(Step::Reset),
            _ => {}
        }
    }
    out
}

/// The conversations a replay serves: those to the busiest server port of `transport` (or
/// `port`), over either transport (DNS answers on UDP and TCP alike), in the order they started.
pub fn pick(convs: &[Conversation], transport: Transport, port: Option<u16>) -> Vec<Conversation> {
    let busiest = |only: Option<Transport>| {
        let mut count: HashMap<u16, usize> = HashMap::new();
        for c in convs.iter().filter(|c| only.is_none_or(|t| c.transport == t)) {
            *count.entry(c.server.port()).or_default() += 1;
        }
        count.into_iter().max_by_key(|(p, n)| (*n, u16::MAX - p)).map(|(p, _)| p)
    };
    let port = port.or_else(|| busiest(Some(transport))).or_else(|| busiest(None));
    let mut out: Vec<Conversation> = convs.iter().filter(|c| Some(c.server.port()) == port).cloned().collect();
    out.sort_by_key(|c| c.start_us);
    out
}

/// A running replay server.
pub struct Replay {
    /// Where the harness connects.
    pub addr: SocketAddr,
    /// Connections (or UDP peers) that found no conversation left to replay.
    pub extra: Arc<Mutex<usize>>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for Replay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Replay {
    /// Starts serving `convs` (from [`pick`]) on 127.0.0.1, TCP and UDP on one port.
    pub async fn start(convs: Vec<Conversation>) -> std::io::Result<Replay> {
        let of = |t: Transport| -> Vec<Vec<Step>> { convs.iter().filter(|c| c.transport == t).map(script).collect() };
        let extra = Arc::new(Mutex::new(0));
        // The port must be free for both transports: retry the rare clash with another UDP user.
        let mut last = None;
        for _ in 0..20 {
            let l = TcpListener::bind("127.0.0.1:0").await?;
            let addr = l.local_addr()?;
            match UdpSocket::bind(addr).await {
                Ok(u) => {
                    let tcp = tokio::spawn(serve_tcp(l, of(Transport::Tcp), extra.clone()));
                    let udp = tokio::spawn(serve_udp(u, of(Transport::Udp), extra.clone()));
                    return Ok(Replay {
                        addr,
                        extra,
                        tasks: [tcp, udp],
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no port free on both TCP and UDP")))
    }
}

async fn serve_tcp(l: TcpListener, scripts: Vec<Vec<Step>>, extra: Arc<Mutex<usize>>) {
    let mut scripts = scripts.into_iter();
    while let Ok((stream, _)) = l.accept().await {
        match scripts.next() {
            Some(s) => {
                tokio::spawn(play_tcp(stream, s));
            }
            None => *extra.lock().unwrap_or_else(|e| e.into_inner()) += 1,
        }
    }
}

async fn play_tcp(mut stream: TcpStream, script: Vec<Step>) {
    let _ = stream.set_nodelay(true);
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut eof = false;
    for step in script {
        match step {
            Step::Await(n) => {
                let deadline = tokio::time::Instant::now() + CLIENT_WAIT;
                while got < n && !eof && got < MAX_READ {
                    match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => eof = true,
                        Ok(Ok(k)) => got += k,
                        Err(_) => break,
                    }
                }
            }
            Step::AwaitClose => {
                let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
                while !eof {
                    match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                        Ok(Ok(k)) if k > 0 => got += k,
                        Ok(_) => eof = true,
                        Err(_) => break,
                    }
                }
            }
            Step::Send(b) => {
                if stream.write_all(&b).await.is_err() {
                    return;
                }
            }
            Step::Shutdown => {
                let _ = stream.shutdown().await;
            }
            Step::Reset => {
                // A zero linger does not block on drop (the deprecation's worry): it sends RST.
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                return;
            }
        }
    }
    // Read on (bounded) so the client's last bytes are not answered by a reset.
    let deadline = tokio::time::Instant::now() + CLIENT_WAIT;
    while !eof {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(k)) if k > 0 => {}
            _ => eof = true,
        }
    }
}

async fn serve_udp(sock: UdpSocket, scripts: Vec<Vec<Step>>, extra: Arc<Mutex<usize>>) {
    // Each client address gets the next conversation; its script advances one datagram at a time.
    let mut scripts = scripts.into_iter();
    let mut peers: HashMap<SocketAddr, (Vec<Step>, usize, usize)> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let from = match sock.recv_from(&mut buf).await {
            Ok((_, from)) => from,
            // A datagram the replay sent to a client port already closed comes back as an ICMP
            // error on the next receive: that client is gone, the others are not.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        let (steps, at, got) = match peers.entry(from) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => match scripts.next() {
                Some(s) => v.insert((s, 0, 0)),
                None => {
                    *extra.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    continue;
                }
            },
        };
        *got += 1;
        while let Some(step) = steps.get(*at) {
            match step {
                Step::Await(n) if *got < *n => break,
                Step::Send(b) => {
                    let _ = sock.send_to(b, from).await;
                }
                _ => {}
            }
            *at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialogue::{ConnInfo, Dialogue, Event};

    fn conv(events: Vec<EventKind>) -> Conversation {
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:12000".parse().unwrap();
        Conversation {
            number: 1,
            transport: Transport::Tcp,
            client: a,
            server: b,
            scope: Default::default(),
            protocol: "line".into(),
            packets: 0,
            truncated: false,
            start_us: 0,
            data_of: None,
            keys: None,
            inside: None,
            dialogue: Dialogue {
                connections: vec![ConnInfo {
                    local: Some(a),
                    peer: Some(b),
                    ..ConnInfo::test_tcp(true)
                }],
                events: events
                    .into_iter()
                    .enumerate()
                    .map(|(i, kind)| Event {
                        t_us: i as u64,
                        conn: 0,
                        kind,
                    })
                    .collect(),
            },
        }
    }

    fn data(dir: Direction, b: &[u8]) -> EventKind {
        EventKind::Data { dir, bytes: b.to_vec() }
    }

    #[tokio::test]
    async fn replays_the_server_side_after_the_client_bytes() {
        let c = conv(vec![
            EventKind::Open,
            data(Direction::ClientToServer, b"hel"),
            data(Direction::ClientToServer, b"lo\n"),
            data(Direction::ServerToClient, b"HELLO\n"),
            EventKind::Closed {
                dir: Direction::ServerToClient,
            },
        ]);
        assert_eq!(
            script(&c),
            vec![Step::Await(3), Step::Await(6), Step::Send(b"HELLO\n".to_vec()), Step::Shutdown]
        );
        let r = Replay::start(vec![c]).await.unwrap();
        let mut s = TcpStream::connect(r.addr).await.unwrap();
        s.write_all(b"hello\n").await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"HELLO\n");
        // A second connection finds nothing left to replay.
        let _ = TcpStream::connect(r.addr).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while *r.extra.lock().unwrap() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    }
}
