//! QUIC connections a case opens (`Transport::Quic`, the `http3` suite): quinn as the client,
//! TLS 1.3 with the ALPN the protocol names, every wait bounded by the step's deadline.
//!
//! A QUIC connection is a set of streams, and a case writes and reads them as one byte stream
//! each way: the QUIC frames that carry the streams (STREAM with offset and length, RESET_STREAM,
//! STOP_SENDING, CONNECTION_CLOSE; RFC 9000 §19), which the Dialogue records and the protocol's
//! codec frames per stream (`proto::http3::codec`). A send is such records, rendered by the
//! steps; this module opens the streams they name (in order: QUIC gives stream ids in sequence,
//! RFC 9000 §2.1), fills in each stream's offset, and writes. Tasks read every stream the server
//! writes and turn what arrives into records in the order it arrives; the connection's close
//! (an application's code or QUIC's) is the last record.
//!
//! TLS is the run's (`crate::tls::Setup`): what the client trusts (the run's authority, `--ca`,
//! `--insecure`), the server name and ALPN it asks for, and the key log its secrets go to; the
//! target gets the run's certificate (`{cert}` and `{key}`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::dialogue::{EventKind, Recorder};
use crate::proto::http3::codec::{self, parse_record, Record};
use crate::proto::{Direction, Framer, Message, Protocol};

/// Records a connection's readers may have queued before a step reads them (each up to
/// `READ_CHUNK` bytes): a server that sends more waits on QUIC's flow control.
const QUEUE: usize = 256;
/// Bytes asked of a stream per read.
const READ_CHUNK: usize = 64 << 10;
/// The harness's control stream: type 0x00, then SETTINGS QPACK_MAX_TABLE_CAPACITY 0 and
/// QPACK_BLOCKED_STREAMS 0 (RFC 9114 §6.2.1, RFC 9204 §5: no dynamic table, nothing blocked).
const CONTROL: &[u8] = &[0x00, 0x04, 0x04, 0x01, 0x00, 0x07, 0x00];
/// The client's control stream id (its first unidirectional stream, RFC 9000 §2.1).
const CONTROL_STREAM: u64 = 2;
/// Most unread bytes a connection may hold, as for TCP (`conn::MAX_BUFFERED`).
const MAX_BUFFERED: usize = 16 << 20;
/// H3_NO_ERROR, what the harness closes with (RFC 9114 §8.1).
const H3_NO_ERROR: u32 = 0x100;

/// Whether a step's connection speaks QUIC (its protocol's transport).
pub fn is_quic(proto: &dyn Protocol) -> bool {
    proto.transport() == crate::proto::Transport::Quic
}

/// Why a read or a write on a QUIC connection did not happen (`conn.rs` turns it into its
/// `RecvError` or `SendError`).
#[derive(Debug)]
pub enum QuicError {
    /// The deadline passed; what had arrived unframed.
    Timeout(Vec<u8>),
    /// The connection ended; what had arrived unframed.
    Closed(Vec<u8>),
    /// Over `MAX_BUFFERED` bytes without a whole message.
    Flood,
    /// Records the codec cannot frame.
    Malformed(crate::proto::CodecError),
    /// Silence was expected, but these were already waiting.
    AlreadyWaiting(Vec<u8>),
    /// Silence was expected, but these arrived.
    NotSilent(Vec<u8>),
    /// A write did not finish by the deadline.
    Stalled(usize),
    /// The server stopped the stream or the connection is gone.
    PeerGone(String),
    /// Anything else, said in a sentence.
    Other(String),
}

/// What arrives from the connection's tasks.
enum Item {
    /// A record of what the server sent.
    Record(Vec<u8>),
    /// The connection ended: nothing more comes.
    End,
}

/// A QUIC connection a case opened, as a stream of records each way.
pub struct QuicConn {
    id: usize,
    conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
    framer: Framer,
    rx: mpsc::Receiver<Item>,
    tx: mpsc::Sender<Item>,
    eof: bool,
    sends: HashMap<u64, quinn::SendStream>,
    offsets: HashMap<u64, u64>,
    /// The next client-initiated bidirectional and unidirectional stream ids.
    next_bidi: u64,
    next_uni: u64,
    sent_any: bool,
    tasks: tokio::task::JoinSet<()>,
    rec: Recorder,
    last_arrival: Instant,
}

impl Drop for QuicConn {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Opens a QUIC connection to `addr` as the run's TLS client (its trust, server name, ALPN and
/// key log, TLS 1.3 as QUIC requires, RFC 9001 §4.2); the handshake is done by `deadline`.
pub async fn connect(addr: SocketAddr, tls: &crate::tls::Setup, deadline: Instant) -> Result<(quinn::Endpoint, quinn::Connection), String> {
    let mut config = (*tls.client.config).clone();
    if config.alpn_protocols.is_empty() {
        return Err("QUIC needs an application protocol (ALPN, RFC 9001 §8.1): give --alpn".into());
    }
    // 0-RTT would replay a case's first flight; a case's bytes go once.
    config.enable_early_data = false;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(|e| format!("TLS for QUIC: {e}"))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(30_000))));
    // The server's streams: its control and QPACK streams, and pushes it may not open.
    transport.max_concurrent_uni_streams(16u32.into());
    transport.max_concurrent_bidi_streams(0u32.into());
    client.transport_config(Arc::new(transport));
    let bind: SocketAddr = if addr.is_ipv6() { "[::1]:0" } else { "127.0.0.1:0" }
        .parse()
        .expect("a literal address");
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| format!("cannot open a UDP socket for QUIC: {e}"))?;
    endpoint.set_default_client_config(client);
    let name = tls.client.server_name.to_str().into_owned();
    let connecting = endpoint
        .connect(addr, &name)
        .map_err(|e| format!("cannot start QUIC to {addr}: {e}"))?;
    match tokio::time::timeout_at(deadline, connecting).await {
        Err(_) => Err(format!(
            "the QUIC handshake with {addr} did not finish in time (nothing answers on UDP there, or it does not speak QUIC version 1)"
        )),
        Ok(Err(e)) => Err(format!("the QUIC handshake with {addr} failed: {e}{}", handshake_hint(&e))),
        Ok(Ok(conn)) => Ok((endpoint, conn)),
    }
}

/// What a failed handshake usually means.
fn handshake_hint(e: &quinn::ConnectionError) -> &'static str {
    match e {
        quinn::ConnectionError::ConnectionClosed(c) if u64::from(c.error_code) == 0x178 => {
            " (TLS no_application_protocol: the server does not offer ALPN h3, RFC 9114 §3.1)"
        }
        quinn::ConnectionError::ConnectionClosed(c) if (0x100..0x200).contains(&u64::from(c.error_code)) => {
            " (a TLS alert: does the server use the certificate it was given, {cert} and {key}?)"
        }
        quinn::ConnectionError::TransportError(_) => " (the harness refused the server's certificate or its handshake)",
        _ => "",
    }
}

impl QuicConn {
    /// Wraps an established connection; what the server sends is read from now on.
    pub fn new(id: usize, endpoint: quinn::Endpoint, conn: quinn::Connection, proto: &dyn Protocol, rec: Recorder) -> QuicConn {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut tasks = tokio::task::JoinSet::new();
        {
            let (conn, tx) = (conn.clone(), tx.clone());
            tasks.spawn(async move {
                let mut readers = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        uni = conn.accept_uni() => match uni {
                            Ok(recv) => {
                                readers.spawn(read_stream(recv, tx.clone()));
                            }
                            Err(_) => break,
                        },
                        // HTTP/3 has no server-initiated bidirectional streams (RFC 9114 §6.1):
                        // what one carries is recorded, for the codec to name.
                        bi = conn.accept_bi() => match bi {
                            Ok((_, recv)) => {
                                readers.spawn(read_stream(recv, tx.clone()));
                            }
                            Err(_) => break,
                        },
                    }
                }
                // Until the readers are done with what arrived before the end.
                while readers.join_next().await.is_some() {}
            });
        }
        {
            let (conn, tx) = (conn.clone(), tx.clone());
            tasks.spawn(async move {
                let record = match conn.closed().await {
                    quinn::ConnectionError::ApplicationClosed(c) => Some(codec::close_record(true, c.error_code.into_inner(), &c.reason)),
                    quinn::ConnectionError::ConnectionClosed(c) => Some(codec::close_record(false, u64::from(c.error_code), &c.reason)),
                    _ => None,
                };
                // Streams read before the close come first: give the readers a moment's turn.
                tokio::task::yield_now().await;
                if let Some(r) = record {
                    let _ = tx.send(Item::Record(r)).await;
                }
                let _ = tx.send(Item::End).await;
            });
        }
        QuicConn {
            id,
            conn,
            _endpoint: endpoint,
            framer: Framer::new(proto.codec(Direction::ServerToClient)),
            rx,
            tx,
            eof: false,
            sends: HashMap::new(),
            offsets: HashMap::new(),
            next_bidi: 0,
            next_uni: 2,
            sent_any: false,
            tasks,
            rec,
            last_arrival: Instant::now(),
        }
    }

    /// Waits (until `deadline`) for the server's SETTINGS on its control stream, which RFC 9114
    /// §6.2.1 says it sends at the beginning of the connection: what arrives stays for the steps
    /// to read, and a transcript holds the server's SETTINGS whatever the case waited for. A
    /// server that sends none is the steps' to judge; only the wait ends.
    pub async fn settle(&mut self, deadline: Instant) {
        let mut look = Framer::new(Box::new(codec::Http3Codec::new(false)));
        let mut seen = 0;
        loop {
            let pending = self.framer.pending();
            look.push(&pending[seen.min(pending.len())..]);
            seen = pending.len();
            while let Ok(Some(m)) = look.next(false) {
                let settings = m
                    .detail
                    .as_ref()
                    .and_then(|d| d.downcast_ref::<codec::H3Message>())
                    .is_some_and(|d| d.stream.is_some_and(|s| s % 4 == 3) && d.frame().is_some_and(|f| f.kind == 0x4));
                if settings {
                    return;
                }
            }
            if !matches!(self.fill(deadline).await, Ok(true)) {
                return;
            }
        }
    }

    /// The stream `id`'s sending half, opening streams up to it as QUIC numbers them.
    async fn stream(&mut self, id: u64, deadline: Instant) -> Result<&mut quinn::SendStream, QuicError> {
        if !self.sends.contains_key(&id) {
            if id % 2 == 1 {
                return Err(QuicError::Other(format!(
                    "stream {id} is the server's (odd ids are server-initiated, RFC 9000 §2.1): the harness cannot write it"
                )));
            }
            let uni = id & 2 != 0;
            let next = if uni { self.next_uni } else { self.next_bidi };
            if id < next {
                return Err(QuicError::Other(format!(
                    "stream {id} was already finished or reset by this case: QUIC never reuses a stream id (RFC 9000 §2.1)"
                )));
            }
            while (if uni { self.next_uni } else { self.next_bidi }) <= id {
                let opened = match uni {
                    true => tokio::time::timeout_at(deadline, self.conn.open_uni())
                        .await
                        .map(|r| r.map(|s| (s, None))),
                    false => tokio::time::timeout_at(deadline, self.conn.open_bi())
                        .await
                        .map(|r| r.map(|(s, r)| (s, Some(r)))),
                };
                let (send, recv) = match opened {
                    Err(_) => {
                        return Err(QuicError::Other(format!(
                            "the server allows no more streams (QUIC's MAX_STREAMS, RFC 9000 §4.6): stream {id} could not be opened in time"
                        )))
                    }
                    Ok(Err(e)) => return Err(QuicError::PeerGone(format!("cannot open stream {id}: the connection is gone: {e}"))),
                    Ok(Ok(pair)) => pair,
                };
                let got = u64::from(send.id());
                if let Some(recv) = recv {
                    self.tasks.spawn(read_stream(recv, self.tx.clone()));
                }
                // STOP_SENDING from the server: a record, when it comes.
                let (stopped, tx) = (send.stopped(), self.tx.clone());
                self.tasks.spawn(async move {
                    if let Ok(Some(code)) = stopped.await {
                        let _ = tx
                            .send(Item::Record(codec::abort_record(codec::STOP_SENDING, got, code.into_inner(), 0)))
                            .await;
                    }
                });
                self.sends.insert(got, send);
                match uni {
                    true => self.next_uni = got + 4,
                    false => self.next_bidi = got + 4,
                }
            }
        }
        self.sends
            .get_mut(&id)
            .ok_or_else(|| QuicError::Other(format!("stream {id} is not open")))
    }

    /// Writes the records in `bytes`: each stream's data at its next offset, FIN, reset.
    pub async fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), QuicError> {
        let mut records = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            match parse_record(bytes, at) {
                Ok(Some((r, next))) => {
                    records.push(r);
                    at = next;
                }
                _ => {
                    return Err(QuicError::Other(
                        "on a QUIC connection a send names its stream: send: { stream: 0, bytes: \"...\" }".into(),
                    ))
                }
            }
        }
        if !std::mem::replace(&mut self.sent_any, true)
            && !records
                .iter()
                .any(|r| matches!(r, Record::Stream { id, .. } if *id == CONTROL_STREAM))
        {
            let control = codec::stream_record(CONTROL_STREAM, 0, CONTROL, false);
            records.insert(0, parse_record(&control, 0).ok().flatten().map(|(r, _)| r).expect("a valid record"));
            return self.write_records(&records, &control, bytes, deadline).await;
        }
        self.write_records(&records, &[], bytes, deadline).await
    }

    async fn write_records(&mut self, records: &[Record], first: &[u8], rest: &[u8], deadline: Instant) -> Result<(), QuicError> {
        for (i, r) in records.iter().enumerate() {
            // The control record inserted first is in `first`; the others index `rest`.
            let src = if !first.is_empty() && i == 0 { first } else { rest };
            match r {
                Record::Stream { id, start, end, fin, .. } => {
                    let data = &src[*start..*end];
                    let offset = *self.offsets.get(id).unwrap_or(&0);
                    let stream = self.stream(*id, deadline).await?;
                    if !data.is_empty() {
                        match tokio::time::timeout_at(deadline, stream.write_all(data)).await {
                            Err(_) => return Err(QuicError::Stalled(data.len())),
                            Ok(Err(e)) => return Err(write_failed(*id, e)),
                            Ok(Ok(())) => {}
                        }
                    }
                    if *fin {
                        let _ = stream.finish();
                    }
                    self.offsets.insert(*id, offset + data.len() as u64);
                    let record = codec::stream_record(*id, offset, data, *fin);
                    self.framer.peer_sent(&record);
                    self.rec.event(
                        self.id,
                        EventKind::Data {
                            dir: Direction::ClientToServer,
                            bytes: record,
                        },
                    );
                }
                Record::Abort { reset, id, code } => {
                    let code = quinn::VarInt::from_u64(*code).unwrap_or(quinn::VarInt::MAX);
                    let offset = *self.offsets.get(id).unwrap_or(&0);
                    if *reset {
                        let stream = self.stream(*id, deadline).await?;
                        let _ = stream.reset(code);
                    }
                    let kind = if *reset { codec::RESET_STREAM } else { codec::STOP_SENDING };
                    let record = codec::abort_record(kind, *id, code.into_inner(), offset);
                    self.rec.event(
                        self.id,
                        EventKind::Data {
                            dir: Direction::ClientToServer,
                            bytes: record,
                        },
                    );
                }
                Record::Close { code, reason, .. } => {
                    let code = quinn::VarInt::from_u64(*code).unwrap_or(quinn::VarInt::MAX);
                    self.conn.close(code, reason.as_bytes());
                    self.rec.event(
                        self.id,
                        EventKind::Data {
                            dir: Direction::ClientToServer,
                            bytes: codec::close_record(true, code.into_inner(), reason.as_bytes()),
                        },
                    );
                }
            }
        }
        Ok(())
    }
}

/// A write's error, with what it means for the case.
fn write_failed(id: u64, e: quinn::WriteError) -> QuicError {
    match e {
        quinn::WriteError::Stopped(code) => QuicError::PeerGone(format!(
            "the server stopped reading stream {id} (STOP_SENDING {})",
            codec::name_of(codec::ERRORS, code.into_inner())
        )),
        quinn::WriteError::ConnectionLost(c) => QuicError::PeerGone(format!("the connection is gone: {c}")),
        other => QuicError::Other(other.to_string()),
    }
}

impl QuicConn {
    /// Takes one item from the readers (until `deadline`): Ok(true) if bytes came, Ok(false) at the end.
    async fn fill(&mut self, deadline: Instant) -> Result<bool, QuicError> {
        if self.eof {
            return Ok(false);
        }
        if self.framer.pending().len() > MAX_BUFFERED {
            return Err(QuicError::Flood);
        }
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Err(_) => Err(QuicError::Timeout(self.framer.pending().to_vec())),
            Ok(Some(Item::Record(r))) => {
                self.last_arrival = Instant::now();
                self.framer.push(&r);
                self.rec.event(
                    self.id,
                    EventKind::Data {
                        dir: Direction::ServerToClient,
                        bytes: r,
                    },
                );
                Ok(true)
            }
            Ok(Some(Item::End)) | Ok(None) => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    fn closed_err(&self) -> QuicError {
        QuicError::Closed(self.framer.pending().to_vec())
    }

    /// The next framed message and when its last byte arrived.
    pub async fn message(&mut self, deadline: Instant) -> Result<(Message, Instant), QuicError> {
        loop {
            match self.framer.next(self.eof) {
                Ok(Some(m)) => return Ok((m, self.last_arrival)),
                Ok(None) => {}
                Err(e) => return Err(QuicError::Malformed(e)),
            }
            if self.eof {
                return Err(self.closed_err());
            }
            self.fill(deadline).await?;
        }
    }

    /// Ok once the connection ended with nothing unread; Err(bytes) if records arrived instead.
    pub async fn closed(&mut self, deadline: Instant) -> Result<Result<(), Vec<u8>>, QuicError> {
        if !self.framer.pending().is_empty() {
            return Ok(Err(self.framer.pending().to_vec()));
        }
        match self.fill(deadline).await? {
            true => Ok(Err(self.framer.pending().to_vec())),
            false => Ok(Ok(())),
        }
    }

    /// Waits out `until`: Ok if nothing arrived and the connection stayed open.
    pub async fn silence(&mut self, until: Instant) -> Result<(), QuicError> {
        if !self.framer.pending().is_empty() {
            return Err(QuicError::AlreadyWaiting(self.framer.pending().to_vec()));
        }
        match self.fill(until).await {
            Err(QuicError::Timeout(_)) => Ok(()),
            Ok(true) => Err(QuicError::NotSilent(self.framer.pending().to_vec())),
            Ok(false) => Err(self.closed_err()),
            Err(e) => Err(e),
        }
    }

    /// Finishes the harness's streams (the case's `shutdown`): every stream it wrote gets its FIN.
    pub fn shutdown(&mut self) {
        let ids: Vec<u64> = self.sends.keys().copied().collect();
        for id in ids {
            if let Some(s) = self.sends.get_mut(&id) {
                if s.finish().is_ok() {
                    let offset = *self.offsets.get(&id).unwrap_or(&0);
                    let record = codec::stream_record(id, offset, b"", true);
                    self.rec.event(
                        self.id,
                        EventKind::Data {
                            dir: Direction::ClientToServer,
                            bytes: record,
                        },
                    );
                }
            }
        }
    }

    /// Closes the connection with H3_NO_ERROR, recorded, unless it has ended already.
    pub fn close(mut self) {
        // What arrived and no step read is still part of the dialogue (the server's control
        // stream behind a response): taken without waiting.
        while let Ok(Item::Record(r)) = self.rx.try_recv() {
            self.rec.event(
                self.id,
                EventKind::Data {
                    dir: Direction::ServerToClient,
                    bytes: r,
                },
            );
        }
        if self.eof || self.conn.close_reason().is_some() {
            return;
        }
        self.conn.close(H3_NO_ERROR.into(), b"");
        self.rec.event(
            self.id,
            EventKind::Data {
                dir: Direction::ClientToServer,
                bytes: codec::close_record(true, u64::from(H3_NO_ERROR), b""),
            },
        );
        // The endpoint sends the close as it drops; give it a moment's turn first.
        let endpoint = self._endpoint.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_millis(200), endpoint.wait_idle()).await;
        });
    }
}

/// Reads one stream of the server's to its end, as records.
async fn read_stream(mut recv: quinn::RecvStream, tx: mpsc::Sender<Item>) {
    let id = u64::from(recv.id());
    let mut offset = 0u64;
    loop {
        match recv.read_chunk(READ_CHUNK, true).await {
            Ok(Some(chunk)) => {
                offset = chunk.offset + chunk.bytes.len() as u64;
                let r = codec::stream_record(id, chunk.offset, &chunk.bytes, false);
                if tx.send(Item::Record(r)).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                let _ = tx.send(Item::Record(codec::stream_record(id, offset, b"", true))).await;
                return;
            }
            Err(quinn::ReadError::Reset(code)) => {
                let r = codec::abort_record(codec::RESET_STREAM, id, code.into_inner(), offset);
                let _ = tx.send(Item::Record(r)).await;
                return;
            }
            Err(_) => return,
        }
    }
}
