//! Connections a case opens: TCP streams and UDP sockets, every read bounded in time and size.

use std::collections::VecDeque;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::tls::Stream;
use tokio::time::Instant;

use crate::dialogue::{EventKind, Recorder};
use crate::proto::{escape_bytes, Codec, CodecError, Direction, Frame, Framer, Message, Protocol};

/// Most unread bytes a connection may hold; a target that sends more without a message floods.
pub const MAX_BUFFERED: usize = 16 << 20;

/// Why nothing (or not enough, or something unwanted) arrived.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The deadline passed; `partial` is what had arrived.
    #[error("timed out; had received {}", shown(partial))]
    Timeout {
        /// Unframed bytes received so far.
        partial: Vec<u8>,
    },
    /// The peer closed (FIN or reset) first.
    #[error(
        "the target {}; had received {}",
        if *reset { "reset the connection" } else { "closed the connection" },
        shown(partial)
    )]
    Closed {
        /// Unframed bytes received before the close.
        partial: Vec<u8>,
        /// It was a reset, not an orderly close.
        reset: bool,
    },
    /// Over `MAX_BUFFERED` bytes without a complete message.
    #[error("the target sent over {} MiB without a complete message", MAX_BUFFERED >> 20)]
    Flood,
    /// Bytes the codec cannot frame.
    #[error("malformed data: {0}")]
    Malformed(#[source] CodecError),
    /// A datagram the codec wants more of: a datagram is all there is.
    #[error("malformed data: incomplete datagram")]
    IncompleteDatagram,
    /// `expect: closed` on UDP, which has no connection to close (the linter rejects it).
    #[error("UDP has no connection to close; use silence")]
    NoConnection,
    /// Silence was expected, but unread bytes were already waiting.
    #[error("expected silence, but \"{}\" was already waiting", escape_bytes(.0, 200))]
    AlreadyWaiting(Vec<u8>),
    /// Silence was expected, but bytes arrived.
    #[error("expected silence, but received \"{}\"", escape_bytes(.0, 200))]
    NotSilent(Vec<u8>),
    /// Silence was expected, but a datagram arrived (shown as its protocol renders it).
    #[error("expected silence, but received a datagram: {0}")]
    DatagramNotSilent(String),
    /// A UDP send got ICMP port unreachable back: nothing listens there.
    #[error("ICMP port unreachable: nothing is listening on that UDP port")]
    Unreachable,
    /// Another socket error.
    #[error("socket error: {0}")]
    Io(#[source] std::io::Error),
}

/// Why bytes could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A `shutdown` step already sent our FIN.
    #[error("this connection was already shut down for writing")]
    ShutDown,
    /// The deadline passed with bytes still unsent.
    #[error("could not write {len} bytes in time: the target is not reading")]
    Stalled {
        /// How many bytes the step sends.
        len: usize,
    },
    /// The peer went away (reset, or closed and then reset our data).
    #[error(
        "write failed: {source}: the target closed the connection before reading everything{}",
        if said.is_empty() { String::new() } else { format!("; it had sent \"{}\"", escape_bytes(said, 300)) }
    )]
    PeerGone {
        /// The write's error.
        #[source]
        source: std::io::Error,
        /// What the target had sent before it went away: usually the reason.
        said: Vec<u8>,
    },
    /// A harness-side UDP listener has no peer to reply to yet.
    #[error("nothing has been received on this UDP socket yet, so there is no one to reply to")]
    NoPeer,
    /// A UDP send got ICMP port unreachable back: nothing listens there.
    #[error("ICMP port unreachable: nothing is listening on that UDP port")]
    Unreachable,
    /// Another socket error.
    #[error("send failed: {0}")]
    Io(#[source] std::io::Error),
}

/// A QUIC connection's read error as the steps know it.
fn recv_error(e: super::quic::QuicError) -> RecvError {
    use super::quic::QuicError as Q;
    match e {
        Q::Timeout(partial) => RecvError::Timeout { partial },
        Q::Closed(partial) => RecvError::Closed { partial, reset: false },
        Q::Flood => RecvError::Flood,
        Q::Malformed(e) => RecvError::Malformed(e),
        Q::AlreadyWaiting(b) => RecvError::AlreadyWaiting(b),
        Q::NotSilent(b) => RecvError::NotSilent(b),
        other => RecvError::Io(std::io::Error::other(format!("{other:?}"))),
    }
}

/// A QUIC connection's write error as the steps know it.
fn send_error(e: super::quic::QuicError) -> SendError {
    use super::quic::QuicError as Q;
    match e {
        Q::Stalled(len) => SendError::Stalled { len },
        Q::PeerGone(why) => SendError::PeerGone {
            source: std::io::Error::other(why),
            said: Vec::new(),
        },
        Q::Other(why) => SendError::Io(std::io::Error::other(why)),
        other => SendError::Io(std::io::Error::other(format!("{other:?}"))),
    }
}

/// Received bytes for a message: quoted and escaped, or "nothing".
fn shown(partial: &[u8]) -> String {
    if partial.is_empty() {
        "nothing".to_string()
    } else {
        format!("\"{}\"", escape_bytes(partial, 300))
    }
}

/// A TCP connection with its receive buffer and framing.
pub struct TcpConn {
    id: usize,
    stream: Stream,
    /// What arrived and is not read yet, with the codec that frames it.
    framer: Framer,
    /// The protocol the framer speaks.
    proto: &'static str,
    /// The protocol the last message read handed the connection to (an HTTP/1.1 101), if any.
    handed_to: Option<&'static str>,
    eof: bool,
    reset: bool,
    write_closed: bool,
    incoming: Direction,
    rec: Recorder,
    last_arrival: Instant,
}

/// A UDP socket: connected to the target, or a harness-side listener replying to its last peer.
pub struct UdpConn {
    id: usize,
    sock: UdpSocket,
    connected: bool,
    peer: Option<SocketAddr>,
    queue: VecDeque<(Vec<u8>, Instant)>,
    incoming: Direction,
    rec: Recorder,
    codec: Box<dyn Codec>,
    unreachable: bool,
    /// The last datagram sent, for `resend:`.
    last_sent: Option<Vec<u8>>,
    /// Sends go to `peer` whoever answered (a protocol whose answers come from other nodes).
    keep_peer: bool,
}

/// Either kind of connection.
pub enum Conn {
    /// TCP.
    Tcp(TcpConn),
    /// UDP.
    Udp(UdpConn),
    /// QUIC: its streams as one stream of records each way (`quic.rs`).
    Quic(Box<super::quic::QuicConn>),
}

impl TcpConn {
    /// Wraps a connected stream; `harness_is_client` sets which way is incoming.
    pub fn new(id: usize, stream: TcpStream, harness_is_client: bool, proto: &dyn Protocol, rec: Recorder) -> TcpConn {
        // Pieces of a split send must leave as separate segments.
        let _ = stream.set_nodelay(true);
        let incoming = if harness_is_client {
            Direction::ServerToClient
        } else {
            Direction::ClientToServer
        };
        TcpConn {
            id,
            stream: Stream::Plain(stream),
            framer: Framer::new(proto.codec_on(incoming, crate::proto::Transport::Tcp)),
            proto: proto.name(),
            handed_to: None,
            eof: false,
            reset: false,
            write_closed: false,
            incoming,
            rec,
            last_arrival: Instant::now(),
        }
    }

    /// Reads once more (until `deadline`): Ok(true) if bytes came, Ok(false) at EOF.
    async fn fill(&mut self, deadline: Instant) -> Result<bool, RecvError> {
        if self.eof {
            return Ok(false);
        }
        if self.framer.pending().len() > MAX_BUFFERED {
            return Err(RecvError::Flood);
        }
        let before = self.framer.pending().len();
        let buf = self.framer.buffer_mut();
        buf.reserve(64 * 1024);
        match tokio::time::timeout_at(deadline, self.stream.read_buf(buf)).await {
            Err(_) => Err(RecvError::Timeout {
                partial: self.framer.pending().to_vec(),
            }),
            Ok(Ok(0)) => {
                self.eof = true;
                self.rec.event(self.id, EventKind::Closed { dir: self.incoming });
                Ok(false)
            }
            Ok(Ok(_)) => {
                self.last_arrival = Instant::now();
                let bytes = self.framer.pending()[before..].to_vec();
                self.rec.event(self.id, EventKind::Data { dir: self.incoming, bytes });
                Ok(true)
            }
            Ok(Err(e)) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) => {
                self.eof = true;
                self.reset = true;
                self.rec.event(self.id, EventKind::Reset);
                Ok(false)
            }
            // Under TLS a close without close_notify (RFC 8446 §6.1) still ends the stream; the
            // protocol above judges whether it came mid-message, as for a plain FIN.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof && self.stream.is_tls() => {
                self.eof = true;
                self.rec.event(self.id, EventKind::Closed { dir: self.incoming });
                Ok(false)
            }
            Ok(Err(e)) if self.stream.is_tls() && e.kind() == std::io::ErrorKind::InvalidData => {
                Err(RecvError::Io(std::io::Error::other(format!("TLS failed on the connection: {e}"))))
            }
            Ok(Err(e)) => Err(RecvError::Io(e)),
        }
    }

    /// Turns the connection into TLS in place: the harness is the client when it opened the
    /// connection, the server when it accepted it. Nothing may be waiting unread: bytes a peer
    /// sent in clear before the handshake are not part of the protected session (RFC 3207 §4.2,
    /// RFC 2595 §4, RFC 3501 §6.2.1).
    pub async fn start_tls(&mut self, tls: &crate::tls::Setup, deadline: Instant) -> Result<crate::tls::Handshake, String> {
        if !self.framer.pending().is_empty() {
            return Err(format!(
                "the peer sent {} bytes in clear after agreeing to start TLS and before the handshake (\"{}\"): they must not be taken into the TLS session",
                self.framer.pending().len(),
                escape_bytes(self.framer.pending(), 120)
            ));
        }
        let r = if self.incoming == Direction::ServerToClient {
            self.stream.connect_tls(&tls.client, deadline).await
        } else {
            self.stream.accept_tls(tls.server.clone(), deadline).await
        };
        match r {
            Ok(h) => {
                self.rec.event(self.id, EventKind::Tls { text: h.to_string() });
                Ok(h)
            }
            Err(e) => {
                self.eof = true;
                self.rec.event(
                    self.id,
                    EventKind::Note {
                        text: "the TLS handshake did not finish".into(),
                    },
                );
                Err(e.to_string())
            }
        }
    }

    fn closed_err(&self) -> RecvError {
        RecvError::Closed {
            partial: self.framer.pending().to_vec(),
            reset: self.reset,
        }
    }
}

impl Conn {
    /// A UDP conversation on `sock`; `connected` when it was `connect`ed to the target.
    pub fn udp(id: usize, sock: UdpSocket, connected: bool, harness_is_client: bool, proto: &dyn Protocol, rec: Recorder) -> Conn {
        let incoming = if harness_is_client {
            Direction::ServerToClient
        } else {
            Direction::ClientToServer
        };
        Conn::Udp(UdpConn {
            id,
            sock,
            connected,
            peer: None,
            queue: VecDeque::new(),
            incoming,
            rec,
            codec: proto.codec_on(incoming, crate::proto::Transport::Udp),
            unreachable: false,
            last_sent: None,
            keep_peer: false,
        })
    }

    /// A UDP client socket that sends to `peer` and takes datagrams from any address: for a
    /// protocol whose requests are answered by another node than the one asked (a DHT's owner
    /// of a key answers the request's origin).
    pub fn udp_to(id: usize, sock: UdpSocket, peer: SocketAddr, proto: &dyn Protocol, rec: Recorder) -> Conn {
        let mut c = Conn::udp(id, sock, false, true, proto, rec);
        if let Conn::Udp(u) = &mut c {
            u.peer = Some(peer);
            u.keep_peer = true;
        }
        c
    }

    /// Writes all of `bytes` (one datagram for UDP).
    pub async fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), SendError> {
        match self {
            Conn::Quic(q) => q.send(bytes, deadline).await.map_err(send_error),
            Conn::Tcp(c) => {
                if c.write_closed {
                    return Err(SendError::ShutDown);
                }
                let out = c.incoming_opposite();
                // Written piece by piece, so what reached the socket is recorded even when the peer
                // goes (or stops reading) part way: a flood a server cuts short, as the wire has it.
                // TLS may keep the last records of a write for a later flush (tokio-rustls
                // returns once the plaintext is taken): flushing puts them on the wire now.
                let mut written = 0;
                let write = async {
                    while written < bytes.len() {
                        match c.stream.write(&bytes[written..]).await? {
                            0 => return Err(std::io::ErrorKind::WriteZero.into()),
                            n => written += n,
                        }
                    }
                    c.stream.flush().await
                };
                let r = tokio::time::timeout_at(deadline, write).await;
                if written > 0 {
                    c.framer.peer_sent(&bytes[..written]);
                    c.rec.event(
                        c.id,
                        EventKind::Data {
                            dir: out,
                            bytes: bytes[..written].to_vec(),
                        },
                    );
                }
                match r {
                    Err(_) => Err(SendError::Stalled { len: bytes.len() }),
                    Ok(Err(source)) => {
                        let _ = c.fill(Instant::now() + std::time::Duration::from_millis(100)).await;
                        Err(SendError::PeerGone {
                            source,
                            said: c.framer.pending().to_vec(),
                        })
                    }
                    Ok(Ok(())) => Ok(()),
                }
            }
            Conn::Udp(u) => {
                let out = u.incoming.opposite();
                let r = if u.connected {
                    u.sock.send(bytes).await
                } else if let Some(peer) = u.peer {
                    u.sock.send_to(bytes, peer).await
                } else {
                    return Err(SendError::NoPeer);
                };
                match r {
                    Ok(_) => {
                        u.last_sent = Some(bytes.to_vec());
                        u.codec.peer_sent(bytes);
                        u.rec.event(
                            u.id,
                            EventKind::Data {
                                dir: out,
                                bytes: bytes.to_vec(),
                            },
                        );
                        Ok(())
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        u.unreachable = true;
                        Err(SendError::Unreachable)
                    }
                    Err(e) => Err(SendError::Io(e)),
                }
            }
        }
    }

    /// Sends the last datagram again (an expectation that asks again, `retry`); nothing on a
    /// connection that has sent none, or on TCP, where a repeat would be another request.
    pub async fn resend_last(&mut self, deadline: Instant) -> Result<(), SendError> {
        let last = match self {
            Conn::Udp(u) => u.last_sent.clone(),
            Conn::Tcp(_) | Conn::Quic(_) => None,
        };
        match last {
            Some(d) => self.send(&d, deadline).await,
            None => Ok(()),
        }
    }

    /// The next framed message, sending the last datagram again every `every` while none comes
    /// (a stub resolver's retransmission, RFC 1035 §4.2.1); TCP ignores `every`.
    pub async fn message_resending(
        &mut self,
        deadline: Instant,
        every: Option<std::time::Duration>,
    ) -> Result<(Message, Instant), RecvError> {
        let Some(every) = every.filter(|_| matches!(self, Conn::Udp(_))) else {
            return self.message(deadline).await;
        };
        loop {
            let until = deadline.min(Instant::now() + every);
            match self.message(until).await {
                Err(RecvError::Timeout { .. }) if until < deadline => {
                    let last = match self {
                        Conn::Udp(u) => u.last_sent.clone(),
                        Conn::Tcp(_) | Conn::Quic(_) => None,
                    };
                    if let Some(d) = last {
                        self.send(&d, deadline)
                            .await
                            .map_err(|e| RecvError::Io(std::io::Error::other(e.to_string())))?;
                    }
                }
                r => return r,
            }
        }
    }

    /// The next framed message and when its last byte arrived.
    pub async fn message(&mut self, deadline: Instant) -> Result<(Message, Instant), RecvError> {
        match self {
            Conn::Quic(q) => q.message(deadline).await.map_err(recv_error),
            Conn::Tcp(c) => loop {
                match c.framer.next(c.eof) {
                    Ok(Some(m)) => {
                        c.handed_to = crate::proto::find(c.proto).and_then(|p| p.next_protocol(&m));
                        return Ok((m, c.last_arrival));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(RecvError::Malformed(e)),
                }
                if c.eof {
                    return Err(c.closed_err());
                }
                c.fill(deadline).await?;
            },
            Conn::Udp(u) => {
                let (d, at) = u.datagram(deadline).await?;
                match u.codec.decode(&d, true) {
                    Ok(Frame::Message(m, _)) => Ok((m, at)),
                    Ok(Frame::Incomplete) => Err(RecvError::IncompleteDatagram),
                    Err(e) => Err(RecvError::Malformed(e)),
                }
            }
        }
    }

    /// Turns a TCP connection into TLS in place (`starttls:`, or `--tls` right after it opened).
    pub async fn start_tls(&mut self, tls: &crate::tls::Setup, deadline: Instant) -> Result<crate::tls::Handshake, String> {
        match self {
            Conn::Tcp(c) => c.start_tls(tls, deadline).await,
            Conn::Udp(_) => Err("TLS runs over TCP only; this connection is UDP".into()),
            Conn::Quic(_) => Err("a QUIC connection is TLS from its first packet (RFC 9001)".into()),
        }
    }

    /// Carries on in protocol `to` after the message just read handed the connection over to it
    /// (`switch:`): what is pending and all that follows is framed by its codec.
    pub fn switch(&mut self, to: &str) -> Result<(), String> {
        let Conn::Tcp(c) = self else {
            return Err("switch: only a TCP connection changes protocols".into());
        };
        if c.handed_to != Some(to) {
            let last = match c.handed_to {
                Some(other) => format!("the last message read hands it to {other}"),
                None => "no message read so far hands it over (for HTTP/2: an HTTP/1.1 101 Switching Protocols with Upgrade: h2c, RFC 9110 §15.2.2)".into(),
            };
            return Err(format!(
                "the connection was not handed over to {to}: {last}; expect that message in the step before"
            ));
        }
        let next = crate::proto::find(to).ok_or_else(|| format!("switch: no protocol named {to}"))?;
        c.framer.switch(next.codec_on(c.incoming, crate::proto::Transport::Tcp));
        c.proto = next.name();
        c.handed_to = None;
        Ok(())
    }

    /// Exactly `n` bytes (TCP), or the next datagram (UDP); fewer if the peer closes first.
    pub async fn bytes(&mut self, n: usize, deadline: Instant) -> Result<Vec<u8>, RecvError> {
        match self {
            Conn::Tcp(c) => {
                while c.framer.pending().len() < n {
                    if !c.fill(deadline).await? {
                        return Err(c.closed_err());
                    }
                }
                Ok(c.framer.take(n))
            }
            Conn::Udp(u) => u.datagram(deadline).await.map(|(d, _)| d),
            Conn::Quic(_) => Err(RecvError::Io(std::io::Error::other(
                "raw bytes are not read from a QUIC connection: expect a frame, a response or a close",
            ))),
        }
    }

    /// Ok once the peer has closed with nothing unread; Err(bytes) if data arrived instead.
    pub async fn closed(&mut self, deadline: Instant) -> Result<Result<(), Vec<u8>>, RecvError> {
        match self {
            Conn::Tcp(c) => {
                if !c.framer.pending().is_empty() {
                    return Ok(Err(c.framer.pending().to_vec()));
                }
                if c.fill(deadline).await? {
                    Ok(Err(c.framer.pending().to_vec()))
                } else {
                    Ok(Ok(()))
                }
            }
            Conn::Udp(_) => Err(RecvError::NoConnection),
            Conn::Quic(q) => q.closed(deadline).await.map_err(recv_error),
        }
    }

    /// Waits out `until`: Ok if nothing arrived and the connection stayed open.
    pub async fn silence(&mut self, until: Instant) -> Result<(), RecvError> {
        match self {
            Conn::Tcp(c) => {
                if !c.framer.pending().is_empty() {
                    return Err(RecvError::AlreadyWaiting(c.framer.pending().to_vec()));
                }
                match c.fill(until).await {
                    Err(RecvError::Timeout { .. }) => Ok(()),
                    Ok(true) => Err(RecvError::NotSilent(c.framer.pending().to_vec())),
                    Ok(false) => Err(c.closed_err()),
                    Err(e) => Err(e),
                }
            }
            Conn::Udp(u) => match u.datagram(until).await {
                Err(RecvError::Timeout { .. }) => Ok(()),
                Ok((d, _)) => {
                    // Show it as its protocol renders it (a DNS query dig-style), not as raw bytes.
                    let shown = match u.codec.decode(&d, true) {
                        Ok(Frame::Message(m, _)) => m.summary,
                        _ => format!("\"{}\"", escape_bytes(&d, 200)),
                    };
                    Err(RecvError::DatagramNotSilent(shown))
                }
                Err(e) => Err(e),
            },
            Conn::Quic(q) => q.silence(until).await.map_err(recv_error),
        }
    }

    /// Closes our side, recording what goes on the wire: our FIN (unless a shutdown already
    /// sent it), or a reset when bytes the harness never read are waiting (the kernel then
    /// aborts the connection instead of closing it, RFC 9293 §3.6.1).
    pub fn close(mut self) {
        if let Conn::Quic(q) = self {
            q.close();
            return;
        }
        if let Conn::Tcp(c) = &mut self {
            use nix::sys::socket::{recv, MsgFlags};
            use std::os::fd::AsRawFd;
            let mut probe = [0u8; 1];
            let unread = c.stream.tcp().is_some_and(|t| {
                matches!(
                    recv(t.as_raw_fd(), &mut probe, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT),
                    Ok(n) if n > 0
                )
            });
            if !c.write_closed {
                c.stream.close_notify_now();
            }
            if unread && !c.reset {
                c.rec.event(c.id, EventKind::Reset);
            } else if !c.write_closed {
                c.rec.event(
                    c.id,
                    EventKind::Closed {
                        dir: c.incoming_opposite(),
                    },
                );
            }
        }
    }

    /// UDP only: the datagrams that have arrived but no step read, taken without waiting (at most
    /// 8) and recorded. A reply the program sent to the wrong one of the case's ports waits here.
    pub fn take_unread(&mut self) -> Vec<Vec<u8>> {
        let Conn::Udp(u) = self else { return Vec::new() };
        let mut out: Vec<Vec<u8>> = u.queue.drain(..).map(|(d, _)| d).collect();
        let mut buf = vec![0u8; 65536];
        while out.len() < 8 {
            match u.sock.try_recv_from(&mut buf) {
                Ok((n, _)) => {
                    let d = buf[..n].to_vec();
                    u.rec.event(
                        u.id,
                        EventKind::Data {
                            dir: u.incoming,
                            bytes: d.clone(),
                        },
                    );
                    out.push(d);
                }
                Err(_) => break,
            }
        }
        out
    }

    /// The local address of a UDP socket the harness sends requests from as a client (where a
    /// reply is expected); None for TCP and for the harness's own servers.
    pub fn udp_client_local(&self) -> Option<SocketAddr> {
        match self {
            Conn::Udp(u) if u.connected => u.sock.local_addr().ok(),
            _ => None,
        }
    }

    /// Half-closes: our FIN goes out, we can still read.
    pub async fn shutdown(&mut self) {
        if let Conn::Quic(q) = self {
            q.shutdown();
        }
        if let Conn::Tcp(c) = self {
            if !c.write_closed {
                let _ = c.stream.shutdown().await;
                c.write_closed = true;
                let dir = c.incoming_opposite();
                c.rec.event(c.id, EventKind::Closed { dir });
            }
        }
    }
}

impl TcpConn {
    fn incoming_opposite(&self) -> Direction {
        self.incoming.opposite()
    }
}

impl UdpConn {
    async fn datagram(&mut self, deadline: Instant) -> Result<(Vec<u8>, Instant), RecvError> {
        if let Some(d) = self.queue.pop_front() {
            return Ok(d);
        }
        if self.unreachable {
            return Err(RecvError::Unreachable);
        }
        let mut buf = vec![0u8; 65536];
        match tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await {
            Err(_) => Err(RecvError::Timeout { partial: Vec::new() }),
            Ok(Ok((n, from))) => {
                if !self.connected && !self.keep_peer {
                    self.peer = Some(from);
                }
                let d = buf[..n].to_vec();
                self.rec.event(
                    self.id,
                    EventKind::Data {
                        dir: self.incoming,
                        bytes: d.clone(),
                    },
                );
                Ok((d, Instant::now()))
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                self.unreachable = true;
                Err(RecvError::Unreachable)
            }
            Ok(Err(e)) => Err(RecvError::Io(e)),
        }
    }
}
