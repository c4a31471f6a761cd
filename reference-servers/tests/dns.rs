//! Loopback tests of the `dns` (authoritative) and `dns-resolver` reference servers.
//!
//! The resolver's tests build a small DNS of their own: a root server on
//! 127.0.0.2, a `test.` TLD server on 127.0.0.3 and an authoritative server
//! for `example.test.` and friends on 127.0.0.4, all on one port (like port 53
//! in the real world), plus a name server on 127.0.0.5 that never answers.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use reference_servers::{start_server, Error, Options, RunningServer, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout, Instant};

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);
/// How long to wait for an answer that should not come.
const SILENCE: Duration = Duration::from_millis(300);

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/dns")
}

async fn start_at(name: &str, bind: SocketAddr, pairs: &[(&str, &str)]) -> Result<RunningServer, Error> {
    timeout(LIMIT, start_server(name, bind, &opts(pairs)))
        .await
        .expect("start_server timed out")
}

/// The `dns` server on the fixtures' zones, on 127.0.0.1.
async fn auth() -> RunningServer {
    let zones = fixtures();
    let server = start_at(
        "dns",
        ([127, 0, 0, 1], 0).into(),
        &[("zones", zones.to_str().unwrap()), ("idle", "1s")],
    )
    .await
    .unwrap();
    assert_eq!(server.transport(), Transport::Udp);
    server
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// A query for `qname`/`qtype`, RD=1, a random id.
fn query(qname: &str, qtype: RecordType) -> Message {
    let mut message = Message::new();
    message.set_id(fastrand::u16(..)).set_recursion_desired(true);
    message.add_query(Query::query(name(qname), qtype));
    message
}

fn with_edns(mut message: Message, payload: u16) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    message.set_edns(edns);
    message
}

/// Sends `bytes` in one datagram; the first datagram back, if one comes within `wait`.
async fn udp_raw(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((server.ip(), 0)).await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buffer = vec![0u8; 65535];
    let (len, _) = timeout(wait, socket.recv_from(&mut buffer)).await.ok()?.unwrap();
    buffer.truncate(len);
    Some(buffer)
}

/// Asks over UDP; the response, checked to be one to this query.
async fn ask(server: SocketAddr, message: &Message) -> Message {
    let bytes = udp_raw(server, &message.to_vec().unwrap(), LIMIT)
        .await
        .expect("no answer over UDP");
    check_response(&bytes, message)
}

/// Asks over TCP on a fresh connection.
async fn ask_tcp(server: SocketAddr, message: &Message) -> Message {
    let mut stream = timeout(LIMIT, TcpStream::connect(server)).await.unwrap().unwrap();
    write_framed(&mut stream, &message.to_vec().unwrap()).await;
    let bytes = read_framed(&mut stream).await.expect("no answer over TCP");
    check_response(&bytes, message)
}

async fn write_framed(stream: &mut TcpStream, bytes: &[u8]) {
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.unwrap();
}

/// One length-prefixed message, or None at EOF.
async fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    timeout(LIMIT, async {
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await.ok()?;
        let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut bytes).await.ok()?;
        Some(bytes)
    })
    .await
    .expect("TCP read timed out")
}

/// Parses a response and checks what every response to `query` must have:
/// QR=1, the id, opcode QUERY, and the question echoed octet for octet (case included).
fn check_response(bytes: &[u8], query: &Message) -> Message {
    let response = Message::from_vec(bytes).expect("a response that parses");
    assert_eq!(response.message_type(), MessageType::Response);
    assert_eq!(response.id(), query.id());
    assert_eq!(response.op_code(), OpCode::Query);
    assert_eq!(response.recursion_desired(), query.recursion_desired(), "RD copied");
    let question = &query.to_vec().unwrap()[12..];
    let question_len = question.len() - if query.extensions().is_some() { 11 } else { 0 };
    assert_eq!(&bytes[12..12 + question_len], &question[..question_len], "question echoed as sent");
    response
}

fn rdata(records: &[Record]) -> Vec<String> {
    records.iter().map(|record| record.data().to_string()).collect()
}

fn types(records: &[Record]) -> Vec<RecordType> {
    records.iter().map(Record::record_type).collect()
}

// ---------------------------------------------------------------- authoritative

#[tokio::test]
async fn every_record_type_of_the_zones() {
    let server = auth().await;
    let addr = server.local_addr();
    let cases: &[(&str, RecordType, &[&str])] = &[
        ("example.test.", RecordType::A, &["192.0.2.1"]),
        ("example.test.", RecordType::AAAA, &["2001:db8::1"]),
        ("example.test.", RecordType::NS, &["ns1.example.test.", "ns2.example.test."]),
        (
            "example.test.",
            RecordType::MX,
            &["10 mail.example.test.", "20 mail2.example.test."],
        ),
        ("example.test.", RecordType::TXT, &["v=spf1 -all"]),
        (
            "example.test.",
            RecordType::SOA,
            &["ns1.example.test. hostmaster.example.test. 2026112101 7200 900 1209600 300"],
        ),
        ("ns1.example.test.", RecordType::A, &["192.0.2.53"]),
        ("ns2.example.test.", RecordType::A, &["192.0.2.54"]),
        ("www.example.test.", RecordType::A, &["192.0.2.80", "192.0.2.81"]),
        ("mail.example.test.", RecordType::A, &["192.0.2.25"]),
        ("mail2.example.test.", RecordType::A, &["192.0.2.26"]),
        ("alias.example.test.", RecordType::CNAME, &["www.example.test."]),
        ("_sip._tcp.example.test.", RecordType::SRV, &["10 60 5060 sip.example.test."]),
        ("sip.example.test.", RecordType::A, &["192.0.2.60"]),
        ("empty.example.test.", RecordType::TXT, &["only txt here"]),
        ("1.2.0.192.in-addr.arpa.", RecordType::PTR, &["example.test."]),
        ("80.2.0.192.in-addr.arpa.", RecordType::PTR, &["www.example.test."]),
        ("25.2.0.192.in-addr.arpa.", RecordType::PTR, &["mail.example.test."]),
        ("networkutopia.com.", RecordType::NS, &["dns1.networkutopia.com."]),
        ("dns1.networkutopia.com.", RecordType::A, &["212.212.212.1"]),
        ("www.networkutopia.com.", RecordType::A, &["212.212.212.2"]),
        ("networkutopia.com.", RecordType::MX, &["10 mail.networkutopia.com."]),
        ("mail.networkutopia.com.", RecordType::A, &["212.212.212.3"]),
    ];
    for (qname, qtype, expected) in cases {
        let query = query(qname, *qtype);
        let response = ask(addr, &query).await;
        assert_eq!(response.response_code(), ResponseCode::NoError, "{qname} {qtype}");
        assert!(response.authoritative(), "{qname} {qtype}: AA");
        assert!(!response.recursion_available(), "{qname} {qtype}: RA");
        assert_eq!(rdata(response.answers()), *expected, "{qname} {qtype}");
        assert!(response
            .answers()
            .iter()
            .all(|r| r.name() == &name(qname) && r.dns_class() == DNSClass::IN));
    }
    // TTLs: $TTL, and the explicit 300 of www.
    assert_eq!(
        ask(addr, &query("mail.example.test.", RecordType::A)).await.answers()[0].ttl(),
        3600
    );
    assert!(ask(addr, &query("www.example.test.", RecordType::A))
        .await
        .answers()
        .iter()
        .all(|r| r.ttl() == 300));
    // The addresses of MX exchanges come along in additional (RFC 1035 §3.3.9).
    let mx = ask(addr, &query("example.test.", RecordType::MX)).await;
    assert_eq!(rdata(mx.additionals()), ["192.0.2.25", "192.0.2.26"]);
    let big = ask_tcp(addr, &query("big.example.test.", RecordType::TXT)).await;
    assert_eq!(big.answers().len(), 20);
    assert!(rdata(big.answers()).iter().all(|text| text.len() == 60));
    server.shutdown().await;
}

#[tokio::test]
async fn nxdomain_and_nodata_carry_the_soa() {
    let server = auth().await;
    let addr = server.local_addr();
    let nx = ask(addr, &query("nope.example.test.", RecordType::A)).await;
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert!(nx.authoritative());
    assert!(nx.answers().is_empty());
    assert_eq!(types(nx.name_servers()), [RecordType::SOA]);
    assert_eq!(nx.name_servers()[0].name(), &name("example.test."));
    assert_eq!(nx.name_servers()[0].ttl(), 300, "min(SOA TTL, MINIMUM)");
    for (qname, qtype) in [
        ("empty.example.test.", RecordType::A),
        ("www.example.test.", RecordType::AAAA),
        ("_tcp.example.test.", RecordType::A), // an empty non-terminal exists
        ("networkutopia.com.", RecordType::A),
    ] {
        let nodata = ask(addr, &query(qname, qtype)).await;
        assert_eq!(nodata.response_code(), ResponseCode::NoError, "{qname}");
        assert!(nodata.authoritative());
        assert!(nodata.answers().is_empty(), "{qname}");
        assert_eq!(types(nodata.name_servers()), [RecordType::SOA], "{qname}");
    }
    let nx = ask(addr, &query("nope.networkutopia.com.", RecordType::MX)).await;
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert_eq!(nx.name_servers()[0].name(), &name("networkutopia.com."));
    server.shutdown().await;
}

#[tokio::test]
async fn cname_chains_and_targets_outside() {
    let server = auth().await;
    let addr = server.local_addr();
    let chain = ask(addr, &query("chain.example.test.", RecordType::A)).await;
    let owners: Vec<String> = chain
        .answers()
        .iter()
        .map(|r| format!("{} {} {}", r.name(), r.record_type(), r.data()))
        .collect();
    assert_eq!(
        owners,
        [
            "chain.example.test. CNAME alias.example.test.",
            "alias.example.test. CNAME www.example.test.",
            "www.example.test. A 192.0.2.80",
            "www.example.test. A 192.0.2.81",
        ]
    );
    assert!(chain.authoritative());
    let outside = ask(addr, &query("outside.example.test.", RecordType::A)).await;
    assert_eq!(outside.response_code(), ResponseCode::NoError);
    assert_eq!(rdata(outside.answers()), ["www.other.test."]);
    assert!(outside.name_servers().is_empty());
    // Asking for the CNAME itself gets just the CNAME.
    let cname = ask(addr, &query("chain.example.test.", RecordType::CNAME)).await;
    assert_eq!(rdata(cname.answers()), ["alias.example.test."]);
    server.shutdown().await;
}

#[tokio::test]
async fn delegation_gives_a_referral_with_glue() {
    let server = auth().await;
    let addr = server.local_addr();
    for qname in [
        "sub.example.test.",
        "www.sub.example.test.",
        "ns.sub.example.test.",
        "a.b.sub.example.test.",
    ] {
        let referral = ask(addr, &query(qname, RecordType::A)).await;
        assert_eq!(referral.response_code(), ResponseCode::NoError, "{qname}");
        assert!(!referral.authoritative(), "{qname}: a referral is not authoritative");
        assert!(referral.answers().is_empty());
        assert_eq!(types(referral.name_servers()), [RecordType::NS]);
        assert_eq!(referral.name_servers()[0].name(), &name("sub.example.test."));
        assert_eq!(rdata(referral.name_servers()), ["ns.sub.example.test."]);
        assert_eq!(rdata(referral.additionals()), ["192.0.2.153"]);
        assert_eq!(referral.additionals()[0].name(), &name("ns.sub.example.test."));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn wildcards_per_rfc_4592() {
    let server = auth().await;
    let addr = server.local_addr();
    for qname in ["x.wild.example.test.", "a.b.wild.example.test.", "X.Wild.Example.Test."] {
        let response = ask(addr, &query(qname, RecordType::A)).await;
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert!(response.authoritative());
        assert_eq!(rdata(response.answers()), ["192.0.2.99"], "{qname}");
        assert_eq!(response.answers()[0].name().to_ascii(), qname, "the owner is the name asked for");
    }
    // `wild` itself exists (it has a child), without records: NODATA, not the wildcard.
    let wild = ask(addr, &query("wild.example.test.", RecordType::A)).await;
    assert_eq!(wild.response_code(), ResponseCode::NoError);
    assert!(wild.answers().is_empty());
    assert_eq!(types(wild.name_servers()), [RecordType::SOA]);
    // The wildcard has no TXT: NODATA for a name it matches.
    let txt = ask(addr, &query("x.wild.example.test.", RecordType::TXT)).await;
    assert_eq!(txt.response_code(), ResponseCode::NoError);
    assert!(txt.answers().is_empty());
    // No wildcard at the apex: other names do not exist.
    let nx = ask(addr, &query("x.nowild.example.test.", RecordType::A)).await;
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    server.shutdown().await;
}

#[tokio::test]
async fn case_is_echoed_and_ignored_in_matching() {
    let server = auth().await;
    let addr = server.local_addr();
    let mut q = query("wWw.ExAmPlE.TeSt.", RecordType::A);
    q.set_recursion_desired(false);
    let bytes = udp_raw(addr, &q.to_vec().unwrap(), LIMIT).await.unwrap();
    let response = check_response(&bytes, &q);
    assert_eq!(rdata(response.answers()), ["192.0.2.80", "192.0.2.81"]);
    assert!(bytes.windows(12).any(|w| w == b"\x03wWw\x07ExAmPlE"), "question octets as sent");
    server.shutdown().await;
}

#[tokio::test]
async fn refused_outside_the_zones_and_notimp_for_other_opcodes() {
    let server = auth().await;
    let addr = server.local_addr();
    for qname in ["www.example.com.", "test.", "."] {
        let response = ask(addr, &query(qname, RecordType::A)).await;
        assert_eq!(response.response_code(), ResponseCode::Refused, "{qname}");
        assert!(!response.authoritative());
        assert!(response.answers().is_empty());
    }
    let mut chaos = query("version.bind.", RecordType::TXT);
    chaos.queries_mut()[0].set_query_class(DNSClass::CH);
    assert_eq!(ask(addr, &chaos).await.response_code(), ResponseCode::Refused);
    let axfr = ask_tcp(addr, &query("example.test.", RecordType::AXFR)).await;
    assert_eq!(axfr.response_code(), ResponseCode::Refused);
    for opcode in [OpCode::Status, OpCode::Notify, OpCode::Update] {
        let mut q = query("example.test.", RecordType::SOA);
        q.set_op_code(opcode);
        let bytes = udp_raw(addr, &q.to_vec().unwrap(), LIMIT).await.expect("NOTIMP");
        let response = Message::from_vec(&bytes).unwrap();
        assert_eq!(response.id(), q.id());
        assert_eq!(response.message_type(), MessageType::Response);
        assert_eq!(response.response_code(), ResponseCode::NotImp, "{opcode:?}");
        assert_eq!(response.op_code(), opcode);
    }
    server.shutdown().await;
}

/// The rcode of the response to `bytes`, or None if there was none.
async fn rcode_for(server: SocketAddr, bytes: &[u8]) -> Option<(u16, u8)> {
    let reply = udp_raw(server, bytes, SILENCE).await?;
    assert!(reply.len() >= 12 && reply[2] & 0x80 != 0, "a response: {reply:?}");
    Some((u16::from_be_bytes([reply[0], reply[1]]), reply[3] & 0x0f))
}

#[tokio::test]
async fn malformed_queries_get_formerr_or_nothing() {
    let server = auth().await;
    let addr = server.local_addr();
    let good = query("www.example.test.", RecordType::A);
    let id = good.id();
    let bytes = good.to_vec().unwrap();
    const FORMERR: u8 = 1;
    // A header cut short.
    assert_eq!(rcode_for(addr, &bytes[..7]).await, Some((id, FORMERR)));
    // One octet: not even an id.
    assert_eq!(rcode_for(addr, &bytes[..1]).await, None);
    // Counts beyond the bytes: QDCOUNT 2 with one question, ANCOUNT 1 with no answer.
    let mut counts = bytes.clone();
    counts[5] = 2;
    assert_eq!(rcode_for(addr, &counts).await, Some((id, FORMERR)));
    let mut counts = bytes.clone();
    counts[7] = 1;
    assert_eq!(rcode_for(addr, &counts).await, Some((id, FORMERR)));
    // QDCOUNT 0.
    let mut none = bytes[..12].to_vec();
    none[5] = 0;
    assert_eq!(rcode_for(addr, &none).await, Some((id, FORMERR)));
    // A compression pointer to itself, and two pointing at each other.
    let mut looped = bytes[..12].to_vec();
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(rcode_for(addr, &looped).await, Some((id, FORMERR)));
    let mut pair = bytes[..12].to_vec();
    pair.extend_from_slice(&[1, b'a', 0xc0, 16, 0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(rcode_for(addr, &pair).await, Some((id, FORMERR)));
    // A label longer than 63 octets (length octet 0x40: a reserved label type).
    let mut long = bytes[..12].to_vec();
    long.push(0x40);
    long.extend_from_slice(&[b'a'; 64]);
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(rcode_for(addr, &long).await, Some((id, FORMERR)));
    // Two questions.
    let mut two = good.clone();
    two.add_query(Query::query(name("mail.example.test."), RecordType::A));
    assert_eq!(rcode_for(addr, &two.to_vec().unwrap()).await, Some((id, FORMERR)));
    // Octets after the message.
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"junk");
    assert_eq!(rcode_for(addr, &trailing).await, Some((id, FORMERR)));
    // QR=1: a response is never answered.
    let mut response = bytes.clone();
    response[2] |= 0x80;
    assert_eq!(rcode_for(addr, &response).await, None);
    // The server is still there.
    assert_eq!(ask(addr, &good).await.answers().len(), 2);
    server.shutdown().await;
}

/// Sends a query for `name` A and waits (bounded) for its answer, checking that every reply
/// received on the way (to earlier garbage) is a well-formed response.
async fn answered_among_replies(socket: &UdpSocket, addr: std::net::SocketAddr, name: &str) {
    let probe = query(name, RecordType::A);
    socket.send_to(&probe.to_vec().unwrap(), addr).await.unwrap();
    let mut buffer = vec![0u8; 65535];
    let deadline = Instant::now() + LIMIT;
    loop {
        let (len, _) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer))
            .await
            .expect("the server stopped answering")
            .unwrap();
        let reply = &buffer[..len];
        assert!(len >= 12 && reply[2] & 0x80 != 0, "every reply is a response");
        let parsed = Message::from_vec(reply).expect("every reply parses");
        if parsed.id() == probe.id() && parsed.answers().len() == 1 {
            return;
        }
    }
}

#[tokio::test]
async fn random_garbage_never_kills_the_server() {
    let server = auth().await;
    let addr = server.local_addr();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let good = query("www.example.test.", RecordType::A).to_vec().unwrap();
    let mut rng = fastrand::Rng::with_seed(4592);
    for round in 0..400 {
        let garbage: Vec<u8> = if round % 2 == 0 {
            (0..rng.usize(0..600)).map(|_| rng.u8(..)).collect()
        } else {
            let mut bytes = good.clone();
            for _ in 0..rng.usize(1..5) {
                let at = rng.usize(..bytes.len());
                bytes[at] = rng.u8(..);
            }
            bytes.truncate(rng.usize(1..=bytes.len()));
            bytes
        };
        socket.send_to(&garbage, addr).await.unwrap();
        // Every 50 datagrams a real query must be answered: that paces the flood (no datagram is
        // lost to a full buffer) and shows the server is still alive, without sleeping.
        if round % 50 == 49 {
            answered_among_replies(&socket, addr, "mail.example.test.").await;
        }
    }
    answered_among_replies(&socket, addr, "mail.example.test.").await;
    // And over TCP: garbage frames, then a query on the same connection.
    let probe = query("mail.example.test.", RecordType::A);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for _ in 0..20 {
        let garbage: Vec<u8> = (0..rng.usize(2..100)).map(|_| rng.u8(..) & 0x7f).collect();
        write_framed(&mut stream, &garbage).await;
    }
    write_framed(&mut stream, &probe.to_vec().unwrap()).await;
    loop {
        let reply = read_framed(&mut stream).await.expect("the connection stays open");
        let message = Message::from_vec(&reply).expect("every reply parses");
        if message.id() == probe.id() && message.answers().len() == 1 {
            break;
        }
    }
    assert!(!server.is_finished());
    server.shutdown().await;
}

#[tokio::test]
async fn edns_opt_is_echoed_and_sets_the_udp_limit() {
    let server = auth().await;
    let addr = server.local_addr();
    let plain = ask(addr, &query("www.example.test.", RecordType::A)).await;
    assert!(plain.extensions().is_none(), "no OPT without one in the query");
    let with = ask(addr, &with_edns(query("www.example.test.", RecordType::A), 4096)).await;
    let edns = with.extensions().as_ref().expect("OPT echoed");
    assert_eq!(edns.max_payload(), 1232);
    assert_eq!(edns.version(), 0);
    // EDNS version 1: BADVERS (RFC 6891 §6.1.3), with an OPT of version 0.
    let mut v1 = with_edns(query("www.example.test.", RecordType::A), 1232);
    v1.extensions_mut().as_mut().unwrap().set_version(1);
    let badvers = ask(addr, &v1).await;
    assert_eq!(u16::from(badvers.response_code()), 16, "BADVERS");
    assert_eq!(badvers.extensions().as_ref().unwrap().version(), 0);

    // 20 TXT of 60 octets: ~1500 octets. Without EDNS, 512: TC and no answer.
    let big = query("big.example.test.", RecordType::TXT);
    let bytes = udp_raw(addr, &big.to_vec().unwrap(), LIMIT).await.unwrap();
    assert!(bytes.len() <= 512);
    let truncated = check_response(&bytes, &big);
    assert!(truncated.truncated());
    assert!(truncated.answers().is_empty());
    assert!(truncated.authoritative());
    // EDNS 1232 is not enough either; 4096 is.
    let small = with_edns(query("big.example.test.", RecordType::TXT), 1232);
    let bytes = udp_raw(addr, &small.to_vec().unwrap(), LIMIT).await.unwrap();
    assert!(bytes.len() <= 1232);
    assert!(check_response(&bytes, &small).truncated());
    let large = ask(addr, &with_edns(query("big.example.test.", RecordType::TXT), 4096)).await;
    assert!(!large.truncated());
    assert_eq!(large.answers().len(), 20);
    // TCP: the whole answer.
    let full = ask_tcp(addr, &big).await;
    assert!(!full.truncated());
    assert_eq!(full.answers().len(), 20);
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_several_queries_per_connection_and_split_prefixes() {
    let server = auth().await;
    let addr = server.local_addr();
    let first = query("www.example.test.", RecordType::A);
    let second = query("example.test.", RecordType::MX);
    // Two queries in one write: two answers, in order.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut both = Vec::new();
    for q in [&first, &second] {
        let bytes = q.to_vec().unwrap();
        both.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        both.extend_from_slice(&bytes);
    }
    stream.write_all(&both).await.unwrap();
    let one = check_response(&read_framed(&mut stream).await.unwrap(), &first);
    let two = check_response(&read_framed(&mut stream).await.unwrap(), &second);
    assert_eq!(one.answers().len(), 2);
    assert_eq!(two.answers().len(), 2);
    // The length prefix split across writes, and the message in pieces.
    let third = query("mail.example.test.", RecordType::A);
    let bytes = third.to_vec().unwrap();
    let prefix = (bytes.len() as u16).to_be_bytes();
    for piece in [&prefix[..1], &prefix[1..], &bytes[..5], &bytes[5..]] {
        stream.write_all(piece).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let three = check_response(&read_framed(&mut stream).await.unwrap(), &third);
    assert_eq!(rdata(three.answers()), ["192.0.2.25"]);
    // Idle (1s here): the server closes.
    let started = Instant::now();
    assert!(read_framed(&mut stream).await.is_none());
    assert!(started.elapsed() >= Duration::from_millis(800));
    server.shutdown().await;
}

#[tokio::test]
async fn options_are_checked() {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let err = start_at("dns", any, &[]).await.err();
    assert!(matches!(&err, Some(Error::BadOption { key, .. }) if key == "zone"), "{err:?}");
    let err = start_at("dns", any, &[("zonefile", "x")]).await.err();
    assert!(matches!(&err, Some(Error::UnknownOption { .. })), "{err:?}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.zone");
    std::fs::write(&bad, "$ORIGIN bad.\n$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\nwww A 300.1.2.3\n").unwrap();
    let err = start_at("dns", any, &[("zone", bad.to_str().unwrap())])
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("bad.zone:4:") && err.contains("IPv4"), "{err}");
    let err = start_at("dns", any, &[("zones", dir.path().join("none").to_str().unwrap())])
        .await
        .err();
    assert!(matches!(&err, Some(Error::BadOption { key, .. }) if key == "zones"), "{err:?}");
    let err = start_at("dns-resolver", any, &[]).await.err();
    assert!(matches!(&err, Some(Error::BadOption { key, .. }) if key == "root"), "{err:?}");
    let err = start_at("dns-resolver", any, &[("root", "a.root-servers.net")]).await.err();
    assert!(matches!(&err, Some(Error::BadOption { key, .. }) if key == "root"), "{err:?}");
    // One zone file by itself; UDP and TCP on the same port.
    let zone = fixtures().join("networkutopia.com.zone");
    let server = start_at("dns", any, &[("zone", zone.to_str().unwrap())]).await.unwrap();
    let addr = server.local_addr();
    assert_eq!(
        rdata(ask(addr, &query("www.networkutopia.com.", RecordType::A)).await.answers()),
        ["212.212.212.2"]
    );
    assert_eq!(
        rdata(ask_tcp(addr, &query("www.networkutopia.com.", RecordType::A)).await.answers()),
        ["212.212.212.2"]
    );
    assert_eq!(
        ask(addr, &query("www.example.test.", RecordType::A)).await.response_code(),
        ResponseCode::Refused
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------- resolver

const ROOT_ZONE: &str = "\
$ORIGIN .
$TTL 3600
@           SOA   ns.root. hostmaster.root. 1 7200 900 1209600 60
            NS    ns.root.
ns.root.    A     127.0.0.2
test.       NS    ns1.test.     ; 127.0.0.5 never answers: tried first, then skipped
test.       NS    ns2.test.
ns1.test.   A     127.0.0.5
ns2.test.   A     127.0.0.3
";

const TLD_ZONE: &str = "\
$ORIGIN test.
$TTL 3600
@           SOA   ns2 hostmaster 1 7200 900 1209600 60
            NS    ns1
            NS    ns2
ns1         A     127.0.0.5
ns2         A     127.0.0.3
example     NS    ns.example
ns.example  A     127.0.0.4
other       NS    ns.example
glueless    NS    ns.other      ; no glue: ns.other.test is in other.test
dead        NS    ns.dead
ns.dead     A     127.0.0.5
";

const OTHER_ZONE: &str = "\
$ORIGIN other.test.
$TTL 3600
@           SOA   ns.example.test. hostmaster 1 7200 900 1209600 60
            NS    ns.example.test.
ns          A     127.0.0.4
www         A     192.0.2.90
";

const GLUELESS_ZONE: &str = "\
$ORIGIN glueless.test.
$TTL 3600
@           SOA   ns.other.test. hostmaster 1 7200 900 1209600 60
            NS    ns.other.test.
www         A     192.0.2.70
";

fn example_zone() -> String {
    let mut zone = String::from(
        "\
$ORIGIN example.test.
$TTL 3600
@           SOA   ns hostmaster 1 7200 900 1209600 60
            NS    ns
ns          A     127.0.0.4
www     300 A     192.0.2.80
short     1 A     192.0.2.1
alias       CNAME www.other.test.
",
    );
    for i in 0..20 {
        zone.push_str(&format!("big TXT \"{i:02} {}\"\n", "x".repeat(57)));
    }
    zone
}

/// The test DNS, and a resolver in front of it.
struct Hierarchy {
    dir: tempfile::TempDir,
    _servers: Vec<RunningServer>,
    resolver: RunningServer,
    /// Datagrams that reached the name server that never answers.
    blackholed: Arc<AtomicUsize>,
    _blackhole: tokio::task::JoinHandle<()>,
}

impl Hierarchy {
    /// The queries the server `which` ("root", "tld", "auth") has logged that contain `needle`.
    fn queries(&self, which: &str, needle: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join(format!("{which}.log"))).unwrap_or_default();
        log.lines().filter(|line| line.contains(needle)).count()
    }

    fn total(&self) -> usize {
        ["root", "tld", "auth"].iter().map(|which| self.queries(which, " ")).sum()
    }

    fn resolver(&self) -> SocketAddr {
        self.resolver.local_addr()
    }
}

async fn hierarchy() -> Hierarchy {
    let dir = tempfile::tempdir().unwrap();
    let write = |sub: &str, file: &str, text: &str| {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        std::fs::write(dir.path().join(sub).join(file), text).unwrap();
    };
    write("root", "root.zone", ROOT_ZONE);
    write("tld", "test.zone", TLD_ZONE);
    write("auth", "example.test.zone", &example_zone());
    write("auth", "other.test.zone", OTHER_ZONE);
    write("auth", "glueless.test.zone", GLUELESS_ZONE);
    let server_opts = |which: &str| {
        let zones = dir.path().join(which).to_str().unwrap().to_owned();
        let log = dir.path().join(format!("{which}.log")).to_str().unwrap().to_owned();
        [("zones".to_owned(), zones), ("log".to_owned(), log)]
    };
    let ip = |last: u8| IpAddr::from([127, 0, 0, last]);
    // The three servers share a port: try a few, in case one is taken on .3, .4 or .5.
    for _ in 0..5 {
        let root_opts = server_opts("root");
        let root_pairs: Vec<(&str, &str)> = root_opts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let root = start_at("dns", SocketAddr::new(ip(2), 0), &root_pairs).await.unwrap();
        let port = root.local_addr().port();
        let mut servers = vec![root];
        for (which, last) in [("tld", 3), ("auth", 4)] {
            let o = server_opts(which);
            let pairs: Vec<(&str, &str)> = o.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if let Ok(server) = start_at("dns", SocketAddr::new(ip(last), port), &pairs).await {
                servers.push(server);
            }
        }
        let Ok(blackhole) = UdpSocket::bind(SocketAddr::new(ip(5), port)).await else {
            continue;
        };
        if servers.len() < 3 {
            continue;
        }
        let blackholed = Arc::new(AtomicUsize::new(0));
        let counter = blackholed.clone();
        let blackhole = tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            while blackhole.recv_from(&mut buffer).await.is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        let root = format!("127.0.0.2:{port}");
        let resolver_opts = [("root", root.as_str()), ("timeout", "300ms"), ("retries", "2")];
        let resolver = start_at("dns-resolver", ([127, 0, 0, 1], 0).into(), &resolver_opts).await.unwrap();
        return Hierarchy {
            dir,
            _servers: servers,
            resolver,
            blackholed,
            _blackhole: blackhole,
        };
    }
    panic!("no port free on 127.0.0.2 to 127.0.0.5");
}

/// Checks what every resolver response has: RA=1, AA=0.
async fn resolve(addr: SocketAddr, message: &Message) -> Message {
    let response = ask(addr, message).await;
    assert!(response.recursion_available(), "RA");
    assert!(!response.authoritative(), "AA");
    response
}

#[tokio::test]
async fn resolver_follows_referrals_and_caches() {
    let h = hierarchy().await;
    let started = Instant::now();
    let response = resolve(h.resolver(), &query("www.example.test.", RecordType::A)).await;
    assert_eq!(response.response_code(), ResponseCode::NoError);
    assert_eq!(rdata(response.answers()), ["192.0.2.80"]);
    assert_eq!(response.answers()[0].ttl(), 300);
    // Root, then the TLD (after the silent ns1.test), then the zone's server; no RD upstream.
    assert_eq!(h.queries("root", "www.example.test. A"), 1);
    assert_eq!(h.queries("tld", "www.example.test. A"), 1);
    assert_eq!(h.queries("auth", "www.example.test. A"), 1);
    assert_eq!(h.blackholed.load(Ordering::SeqCst), 1, "the dead NS was tried once");
    assert!(started.elapsed() >= Duration::from_millis(300), "and waited for");
    // The same question again: from the cache, nothing upstream.
    let before = h.total();
    let again = resolve(h.resolver(), &query("www.example.test.", RecordType::A)).await;
    assert_eq!(rdata(again.answers()), ["192.0.2.80"]);
    assert_eq!(h.total(), before, "answered from the cache");
    // The referral was cached too: another name in the zone goes straight to its server.
    let ns = resolve(h.resolver(), &query("ns.example.test.", RecordType::A)).await;
    assert_eq!(rdata(ns.answers()), ["127.0.0.4"]);
    assert_eq!(h.total(), before + 1);
    assert_eq!(h.queries("auth", "ns.example.test. A"), 1);
    // TTLs count down in the cache.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = resolve(h.resolver(), &query("www.example.test.", RecordType::A)).await;
    assert!(
        later.answers()[0].ttl() < 300 && later.answers()[0].ttl() >= 297,
        "{}",
        later.answers()[0].ttl()
    );
    // RD=0: the cache only.
    let mut cached = query("www.example.test.", RecordType::A);
    cached.set_recursion_desired(false);
    assert_eq!(rdata(resolve(h.resolver(), &cached).await.answers()), ["192.0.2.80"]);
    let mut uncached = query("nothere.example.test.", RecordType::A);
    uncached.set_recursion_desired(false);
    assert_eq!(resolve(h.resolver(), &uncached).await.response_code(), ResponseCode::Refused);
    assert_eq!(h.total(), before + 1);
}

#[tokio::test]
async fn resolver_ttl_expiry_asks_again() {
    let h = hierarchy().await;
    let q = query("short.example.test.", RecordType::A);
    assert_eq!(rdata(resolve(h.resolver(), &q).await.answers()), ["192.0.2.1"]);
    assert_eq!(rdata(resolve(h.resolver(), &q).await.answers()), ["192.0.2.1"]);
    assert_eq!(h.queries("auth", "short.example.test. A"), 1, "the second from the cache");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rdata(resolve(h.resolver(), &q).await.answers()), ["192.0.2.1"]);
    assert_eq!(h.queries("auth", "short.example.test. A"), 2, "expired: asked again");
    assert_eq!(h.queries("root", "short"), 1, "the referrals are still cached");
}

#[tokio::test]
async fn resolver_passes_nxdomain_back_and_caches_it() {
    let h = hierarchy().await;
    let q = query("nope.example.test.", RecordType::A);
    let nx = resolve(h.resolver(), &q).await;
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert!(nx.answers().is_empty());
    assert_eq!(types(nx.name_servers()), [RecordType::SOA]);
    assert_eq!(nx.name_servers()[0].name(), &name("example.test."));
    assert!(nx.name_servers()[0].ttl() <= 60, "negative TTL: min(SOA TTL, MINIMUM)");
    let before = h.total();
    // Cached per name (RFC 2308 §5): another type for the same name too.
    assert_eq!(resolve(h.resolver(), &q).await.response_code(), ResponseCode::NXDomain);
    assert_eq!(
        resolve(h.resolver(), &query("nope.example.test.", RecordType::MX))
            .await
            .response_code(),
        ResponseCode::NXDomain
    );
    assert_eq!(h.total(), before);
    // NODATA: cached per name and type.
    let nodata = resolve(h.resolver(), &query("www.example.test.", RecordType::TXT)).await;
    assert_eq!(nodata.response_code(), ResponseCode::NoError);
    assert!(nodata.answers().is_empty());
    assert_eq!(types(nodata.name_servers()), [RecordType::SOA]);
    let before = h.total();
    assert!(resolve(h.resolver(), &query("www.example.test.", RecordType::TXT))
        .await
        .answers()
        .is_empty());
    assert_eq!(h.total(), before);
}

#[tokio::test]
async fn resolver_follows_cnames_into_other_zones_and_glueless_delegations() {
    let h = hierarchy().await;
    let alias = resolve(h.resolver(), &query("alias.example.test.", RecordType::A)).await;
    assert_eq!(alias.response_code(), ResponseCode::NoError);
    let chain: Vec<String> = alias.answers().iter().map(|r| format!("{} {}", r.name(), r.data())).collect();
    assert_eq!(chain, ["alias.example.test. www.other.test.", "www.other.test. 192.0.2.90"]);
    // www.other.test came from a resolution of its own, through the TLD, not
    // from the example.test server's additional data (out of its bailiwick).
    assert_eq!(h.queries("tld", "www.other.test. A"), 1);
    assert_eq!(h.queries("auth", "www.other.test. A"), 1);
    // Glueless: the TLD names ns.other.test without an address; the resolver looks it up first.
    let glueless = resolve(h.resolver(), &query("www.glueless.test.", RecordType::A)).await;
    assert_eq!(rdata(glueless.answers()), ["192.0.2.70"]);
    assert_eq!(h.queries("auth", "ns.other.test. A"), 1);
    assert_eq!(h.queries("auth", "www.glueless.test. A"), 1);
}

#[tokio::test]
async fn resolver_skips_dead_servers_and_fails_when_all_are() {
    let h = hierarchy().await;
    let started = Instant::now();
    let dead = resolve(h.resolver(), &query("www.dead.test.", RecordType::A)).await;
    assert_eq!(dead.response_code(), ResponseCode::ServFail);
    // ns1.test once (then ns2.test answered), ns.dead.test three times (1 + retries).
    assert_eq!(h.blackholed.load(Ordering::SeqCst), 4);
    assert!(started.elapsed() >= Duration::from_millis(1200));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn resolver_retries_truncated_answers_over_tcp() {
    let h = hierarchy().await;
    let q = query("big.example.test.", RecordType::TXT);
    let full = ask_tcp(h.resolver(), &q).await;
    assert!(full.recursion_available());
    assert_eq!(full.answers().len(), 20);
    assert_eq!(h.queries("auth", "udp big.example.test. TXT"), 1, "first over UDP");
    assert_eq!(h.queries("auth", "tcp big.example.test. TXT"), 1, "then over TCP");
    // A client over UDP without EDNS gets TC=1 from the resolver too, from the cache.
    let bytes = udp_raw(h.resolver(), &q.to_vec().unwrap(), LIMIT).await.unwrap();
    assert!(bytes.len() <= 512);
    assert!(check_response(&bytes, &q).truncated());
    assert_eq!(h.queries("auth", "big.example.test."), 2);
    // The records are as the zone has them.
    assert!(full
        .answers()
        .iter()
        .all(|r| matches!(r.data(), RData::TXT(_)) && r.name() == &name("big.example.test.")));
}
