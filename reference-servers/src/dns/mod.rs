//! The DNS servers of the textbook's section 2.4: `dns`, an authoritative
//! server for zone files (RFC 1035), and `dns-resolver`, a recursive resolver
//! that starts at a root server and follows referrals (RFC 1034 §5.3.3), the
//! "iterated query" of the slides:
//!
//! ```text
//! requesting host ──► local DNS server ──► root ──► TLD ──► authoritative
//!        (recursive, RD=1)               (iterated: "I don't know, ask this server")
//! ```
//!
//! What both share lives here: reading a query off the wire without trusting
//! it, building the response header, fitting a response into the size the
//! client can take (RFC 1035 §4.2.1, RFC 6891), and serving UDP and TCP on one
//! port (RFC 7766: 2-byte length framing, several queries per connection;
//! connections within `guard`'s `max_connections` and `line_timeout`).
//!
//! Reading a query:
//! - fewer than 2 octets, or QR=1 (a response: answering it could start a
//!   loop between two servers): dropped;
//! - 2 to 11 octets (a header that is cut short): FORMERR with the id;
//! - an opcode other than QUERY: NOTIMP, header only (RFC 1035 §4.1.1);
//! - anything the parser rejects (bad labels, compression pointers that do not
//!   point backwards, counts beyond the bytes, two OPT records, trailing octets)
//!   or a question count other than 1: FORMERR, header only;
//! - an OPT with EDNS version > 0: BADVERS with an OPT of version 0 (RFC 6891 §6.1.3).
//!
//! The message parser is `hickory-proto`'s; its decoding runs under
//! `catch_unwind`, so that even a panic in a third-party parser on hostile
//! input costs one FORMERR, not the server.

pub(crate) mod auth;
pub(crate) mod resolver;
mod zone;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::guard::{self, Limits, Stream};

/// The UDP payload size we advertise in our OPT records (RFC 6891 §6.2.5; the
/// value of DNS Flag Day 2020, which avoids IP fragmentation).
pub(crate) const EDNS_PAYLOAD: u16 = 1232;
/// The UDP message limit without EDNS (RFC 1035 §4.2.1).
pub(crate) const CLASSIC_UDP_LIMIT: usize = 512;
/// The largest DNS message a 2-byte TCP length prefix can announce.
pub(crate) const TCP_LIMIT: usize = 65535;
/// Big enough for any UDP datagram.
const MAX_DATAGRAM: usize = 65535;
/// UDP queries being answered at once (they matter for the resolver, whose
/// answers take round trips); while all are busy, datagrams wait in the
/// socket's receive buffer, and the kernel drops what does not fit.
const MAX_UDP_IN_FLIGHT: usize = 256;
/// Attempts at finding a port free for both UDP and TCP when asked for port 0.
const BIND_ATTEMPTS: usize = 8;

/// The number of labels of `name`, the root not counted (`Name::num_labels` does not count a leading `*`).
pub(crate) fn label_count(name: &Name) -> usize {
    name.iter().len()
}

/// A well-formed query with exactly one question.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The whole message as received.
    pub message: Message,
    /// Its question, with the case of the name as received.
    pub query: Query,
}

impl Request {
    /// The largest UDP response this client takes: its EDNS payload size
    /// (at least 512), or 512 without EDNS.
    pub fn udp_limit(&self) -> usize {
        match self.message.extensions() {
            Some(edns) => usize::from(edns.max_payload()).max(CLASSIC_UDP_LIMIT),
            None => CLASSIC_UDP_LIMIT,
        }
    }

    /// A response to this request: id and RD copied, the question echoed,
    /// an OPT record if the query had one (DO bit copied, RFC 3225 §3).
    pub fn response(&self, rcode: ResponseCode) -> Message {
        let mut response = header_response(self.message.id(), OpCode::Query, self.message.recursion_desired(), rcode);
        response.set_checking_disabled(self.message.checking_disabled());
        response.add_query(self.query.clone());
        if let Some(theirs) = self.message.extensions() {
            let mut ours = Edns::new();
            ours.set_max_payload(EDNS_PAYLOAD)
                .set_version(0)
                .set_dnssec_ok(theirs.flags().dnssec_ok);
            response.set_edns(ours);
        }
        response
    }
}

/// What to do with the octets of one incoming message.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A query to answer.
    Query(Request),
    /// An error response that needs nothing but the header (FORMERR, NOTIMP, BADVERS).
    Reply(Message),
    /// Nothing to answer: too short to carry an id, or a response (QR=1).
    Drop,
}

/// Reads one message from `bytes` without trusting any of it (see the module documentation).
pub(crate) fn decode(bytes: &[u8]) -> Incoming {
    if bytes.len() < 2 {
        return Incoming::Drop;
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    if bytes.len() < 12 {
        return Incoming::Reply(header_response(id, OpCode::Query, false, ResponseCode::FormErr));
    }
    let (flags, rd) = (bytes[2], bytes[2] & 0x01 != 0);
    if flags & 0x80 != 0 {
        return Incoming::Drop;
    }
    let op_code = OpCode::from_u8((flags >> 3) & 0x0f);
    if op_code != OpCode::Query {
        return Incoming::Reply(header_response(id, op_code, rd, ResponseCode::NotImp));
    }
    let formerr = || Incoming::Reply(header_response(id, OpCode::Query, rd, ResponseCode::FormErr));
    let parsed = std::panic::catch_unwind(|| {
        let mut decoder = BinDecoder::new(bytes);
        let message = Message::read(&mut decoder)?;
        Ok::<_, hickory_proto::ProtoError>((message, decoder.index()))
    });
    let Ok(Ok((message, used))) = parsed else {
        return formerr();
    };
    // Octets after the last section: the counts do not describe the message.
    if used != bytes.len() || message.queries().len() != 1 {
        return formerr();
    }
    let query = message.queries()[0].clone();
    if let Some(edns) = message.extensions() {
        if edns.version() > 0 {
            let mut response = header_response(id, OpCode::Query, rd, ResponseCode::BADVERS);
            response.add_query(query);
            let mut ours = Edns::new();
            ours.set_max_payload(EDNS_PAYLOAD).set_version(0);
            response.set_edns(ours);
            return Incoming::Reply(response);
        }
    }
    Incoming::Query(Request { message, query })
}

/// A response header: QR=1, `id`, `op_code` and RD as in the query, everything else clear.
pub(crate) fn header_response(id: u16, op_code: OpCode, rd: bool, rcode: ResponseCode) -> Message {
    let mut response = Message::new();
    response
        .set_id(id)
        .set_message_type(MessageType::Response)
        .set_op_code(op_code)
        .set_recursion_desired(rd)
        .set_response_code(rcode);
    response
}

/// A response, and the records that may be left out of it when it does not fit.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Everything that must be in the response (the additional section holds
    /// only required records, such as the glue of a referral).
    pub message: Message,
    /// Additional records that help but are not needed (RFC 1035 §3.3.9: the
    /// address of an MX exchange): left out, without TC, when they do not fit.
    pub optional: Vec<Record>,
}

impl From<Message> for Reply {
    fn from(message: Message) -> Self {
        Reply {
            message,
            optional: Vec::new(),
        }
    }
}

/// Encodes `reply` in at most `limit` octets: with its optional records if
/// they fit, else without them, else truncated (RFC 2181 §9: TC=1 and the
/// answer, authority and additional sections emptied; the question and OPT stay).
pub(crate) fn encode(reply: Reply, limit: usize) -> Option<Vec<u8>> {
    let Reply { message, optional } = reply;
    if !optional.is_empty() {
        let mut full = message.clone();
        full.add_additionals(optional);
        if let Ok(bytes) = full.to_vec() {
            if bytes.len() <= limit {
                return Some(bytes);
            }
        }
    }
    match message.to_vec() {
        Ok(bytes) if bytes.len() <= limit => Some(bytes),
        Ok(_) => message.truncate().to_vec().ok().filter(|bytes| bytes.len() <= limit),
        // A record that cannot be encoded is a bug in our data (or cache): say so.
        Err(_) => {
            let mut failed = message.truncate();
            failed.set_truncated(false).set_response_code(ResponseCode::ServFail);
            failed.to_vec().ok()
        }
    }
}

/// Which transport a query came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Udp,
    Tcp,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Udp => "udp",
            Via::Tcp => "tcp",
        }
    }
}

/// A response being worked out.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// What a DNS server does with a well-formed query.
pub(crate) trait Handler: Send + Sync + 'static {
    /// The response to `request`, which came from `peer` over `via`.
    fn answer(self: Arc<Self>, request: Request, peer: SocketAddr, via: Via) -> Pending;
}

/// Binds UDP to `bind`, then TCP to the same address and port. With port 0 the
/// port UDP got may be taken for TCP: then it tries again with a new UDP port.
pub(crate) async fn bind_udp_and_tcp(bind: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut attempt = 1;
    loop {
        let udp = UdpSocket::bind(bind).await?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(err) if bind.port() != 0 || attempt == BIND_ATTEMPTS => return Err(err),
            Err(_) => attempt += 1,
        }
    }
}

/// Serves `handler` on both sockets until aborted; TCP connections within `limits` (see `guard`).
pub(crate) async fn serve<H: Handler>(udp: UdpSocket, tcp: TcpListener, handler: Arc<H>, idle: Duration, limits: Limits) {
    tokio::join!(serve_udp(udp, handler.clone()), serve_tcp(tcp, handler, idle, limits));
}

async fn serve_udp<H: Handler>(socket: UdpSocket, handler: Arc<H>) {
    let socket = Arc::new(socket);
    let slots = Arc::new(Semaphore::new(MAX_UDP_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        // Receive errors (an ICMP "port unreachable" for an earlier reply) concern one peer.
        let Ok((len, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let request = match decode(&buffer[..len]) {
            Incoming::Drop => continue,
            Incoming::Reply(message) => {
                if let Some(bytes) = encode(message.into(), CLASSIC_UDP_LIMIT) {
                    let _ = socket.send_to(&bytes, peer).await;
                }
                continue;
            }
            Incoming::Query(request) => request,
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // unreachable: the semaphore is never closed
        };
        let limit = request.udp_limit();
        let pending = handler.clone().answer(request, peer, Via::Udp);
        let socket = socket.clone();
        tasks.spawn(async move {
            if let Some(bytes) = encode(pending.await, limit) {
                let _ = socket.send_to(&bytes, peer).await;
            }
            drop(slot);
        });
        while tasks.try_join_next().is_some() {}
    }
}

/// DNS has no words for "goodbye": RFC 7766 §6.2.3 lets a server close a
/// connection (idle, or to free resources) and the client retries.
async fn serve_tcp<H: Handler>(listener: TcpListener, handler: Arc<H>, idle: Duration, limits: Limits) {
    guard::serve(listener, limits, guard::silent(), move |stream, peer| {
        serve_connection(stream, peer, handler.clone(), idle)
    })
    .await;
}

/// One TCP connection: length-prefixed queries, answered one after the other
/// in the order they came (RFC 7766 §6.2.1.1 allows that), until the client
/// closes, sends a message cut short, or is silent for `idle`.
async fn serve_connection<H: Handler>(mut stream: Stream, peer: SocketAddr, handler: Arc<H>, idle: Duration) {
    let mut message = vec![0u8; TCP_LIMIT];
    loop {
        let mut prefix = [0u8; 2];
        match timeout(idle, stream.read_exact(&mut prefix)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let len = usize::from(u16::from_be_bytes(prefix));
        match timeout(idle, stream.read_exact(&mut message[..len])).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let reply = match decode(&message[..len]) {
            Incoming::Drop => continue,
            Incoming::Reply(message) => message.into(),
            Incoming::Query(request) => handler.clone().answer(request, peer, Via::Tcp).await,
        };
        let Some(bytes) = encode(reply, TCP_LIMIT) else {
            continue;
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        framed.extend_from_slice(&bytes);
        match timeout(idle, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RecordType;

    fn query_bytes() -> Vec<u8> {
        let mut message = Message::new();
        message.set_id(0x1234).set_recursion_desired(true);
        message.add_query(Query::query(Name::from_ascii("www.Example.test.").unwrap(), RecordType::A));
        message.to_vec().unwrap()
    }

    fn rcode_of(incoming: &Incoming) -> Option<ResponseCode> {
        match incoming {
            Incoming::Reply(message) => Some(message.response_code()),
            _ => None,
        }
    }

    #[test]
    fn well_formed_query() {
        let Incoming::Query(request) = decode(&query_bytes()) else {
            panic!("expected a query");
        };
        assert_eq!(request.query.name().to_ascii(), "www.Example.test.");
        assert_eq!(request.udp_limit(), 512);
    }

    #[test]
    fn malformed_queries() {
        let good = query_bytes();
        assert!(matches!(decode(&[]), Incoming::Drop));
        assert!(matches!(decode(&[0x12]), Incoming::Drop));
        assert_eq!(rcode_of(&decode(&good[..5])), Some(ResponseCode::FormErr));
        // Counts beyond the bytes.
        assert_eq!(rcode_of(&decode(&good[..good.len() - 1])), Some(ResponseCode::FormErr));
        // Trailing octets.
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(rcode_of(&decode(&trailing)), Some(ResponseCode::FormErr));
        // QR=1.
        let mut response = good.clone();
        response[2] |= 0x80;
        assert!(matches!(decode(&response), Incoming::Drop));
        // Opcode STATUS.
        let mut status = good.clone();
        status[2] = (status[2] & 0x87) | (2 << 3);
        assert_eq!(rcode_of(&decode(&status)), Some(ResponseCode::NotImp));
        // A name that points at itself.
        let mut looped = good[..12].to_vec();
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(rcode_of(&decode(&looped)), Some(ResponseCode::FormErr));
        // Two questions.
        let mut two = Message::new();
        two.add_query(Query::query(Name::from_ascii("a.").unwrap(), RecordType::A));
        two.add_query(Query::query(Name::from_ascii("b.").unwrap(), RecordType::A));
        assert_eq!(rcode_of(&decode(&two.to_vec().unwrap())), Some(ResponseCode::FormErr));
    }

    /// Random and mutated messages: `decode` must return, whatever it gets.
    #[test]
    fn no_panic_on_garbage() {
        let good = query_bytes();
        let mut rng = fastrand::Rng::with_seed(1035);
        for round in 0..20_000 {
            let bytes = if round % 2 == 0 {
                let len = rng.usize(0..80);
                (0..len).map(|_| rng.u8(..)).collect::<Vec<u8>>()
            } else {
                let mut bytes = good.clone();
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..bytes.len());
                    bytes[at] = rng.u8(..);
                }
                bytes.truncate(rng.usize(2..=bytes.len()));
                bytes
            };
            if let Incoming::Reply(message) = decode(&bytes) {
                assert!(encode(message.into(), CLASSIC_UDP_LIMIT).is_some());
            }
        }
    }
}
