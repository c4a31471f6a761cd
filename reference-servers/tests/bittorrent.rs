//! Loopback tests of the `bt-tracker` and `bt-seeder` references: raw HTTP, BEP 15 datagrams
//! and peer wire messages over real sockets, against the torrents in `fixtures/bittorrent`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bendy::decoding::{Decoder, FromBencode};
use bendy::value::Value;
use reference_servers::{start_server, Error, Options, RunningServer, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);
/// How long to wait for something that should not come.
const SILENCE: Duration = Duration::from_millis(300);

const SAMPLE: &str = "978d8983bd506915a578f583b1e9a3ff32c1c7b2";
const MULTI: &str = "2175addea59de6998d3a0877a7b958d6bd662235";
const UNKNOWN: &str = "00112233445566778899aabbccddeeff00112233";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bittorrent")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture")
}

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn try_start(name: &str, pairs: &[(&str, &str)]) -> Result<RunningServer, Error> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    timeout(LIMIT, start_server(name, loopback, &opts(pairs)))
        .await
        .expect("start_server timed out")
}

fn unhex(text: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (at, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * at..2 * at + 2], 16).unwrap();
    }
    out
}

fn peer_id(n: u32) -> String {
    format!("-WC0001-{n:012}")
}

// ------------------------------------------------------------------------------------------
// The tracker over HTTP

async fn tracker(fault: &str) -> RunningServer {
    let dir = fixtures();
    let mut pairs = vec![("torrents", dir.to_str().unwrap())];
    if !fault.is_empty() {
        pairs.push(("fault", fault));
    }
    let server = try_start("bt-tracker", &pairs).await.expect("bt-tracker starts");
    assert_eq!(server.transport(), Transport::Tcp);
    server
}

/// Every byte escaped, as clients do for binary values.
fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// An announce target for torrent `hash` by peer `n` listening on `port`.
fn announce(hash: &str, n: u32, port: u16, extra: &str) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=150000{extra}",
        escape(&unhex(hash)),
        peer_id(n)
    )
}

struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one response (framed by its Content-Length) from `stream`, after what `buffer` holds.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Response {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buffer[..end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("Content-Length");
            if buffer.len() >= end + 4 + length {
                let body = buffer[end + 4..end + 4 + length].to_vec();
                buffer.drain(..end + 4 + length);
                let status = head[9..12].parse().unwrap();
                return Response { status, head, body };
            }
        }
        let n = timeout(LIMIT, stream.read(&mut chunk)).await.expect("response in time").unwrap();
        assert!(n > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(buffer));
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// `GET target` over a connection of its own.
async fn get(server: &RunningServer, target: &str) -> Response {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: tracker.test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let response = read_response(&mut stream, &mut Vec::new()).await;
    assert!(response.head.contains("Content-Type: text/plain"), "{}", response.head);
    response
}

/// The bencoded body of a 200, decoded (which also checks that its keys are sorted).
async fn bencoded(server: &RunningServer, target: &str) -> Value<'static> {
    let response = get(server, target).await;
    assert_eq!(response.status, 200, "{}", response.head);
    decode(&response.body).unwrap_or_else(|err| panic!("not canonical bencode ({err}): {:?}", String::from_utf8_lossy(&response.body)))
}

/// One whole bencoded value, decoded strictly (sorted keys, no leading zeros, nothing after it).
fn decode(bytes: &[u8]) -> Result<Value<'static>, String> {
    let mut decoder = Decoder::new(bytes).with_max_depth(8);
    let value = match decoder.next_object().map_err(|err| err.to_string())? {
        Some(object) => Value::decode_bencode_object(object).map_err(|err| err.to_string())?.into_owned(),
        None => return Err("empty".to_owned()),
    };
    let rest = decoder.next_object().map(|object| object.is_none());
    if !matches!(rest, Ok(true)) {
        return Err("bytes after the value".to_owned());
    }
    Ok(value)
}

fn field<'v>(value: &'v Value<'static>, key: &str) -> Option<&'v Value<'static>> {
    match value {
        Value::Dict(dict) => dict.get(key.as_bytes()),
        _ => None,
    }
}

fn int(value: &Value<'static>, key: &str) -> i64 {
    match field(value, key) {
        Some(Value::Integer(n)) => *n,
        other => panic!("{key}: {other:?} in {value:?}"),
    }
}

fn bytes<'v>(value: &'v Value<'static>, key: &str) -> &'v [u8] {
    match field(value, key) {
        Some(Value::Bytes(bytes)) => bytes,
        other => panic!("{key}: {other:?} in {value:?}"),
    }
}

fn failure(value: &Value<'static>) -> Option<String> {
    field(value, "failure reason").map(|_| String::from_utf8_lossy(bytes(value, "failure reason")).into_owned())
}

/// The peers of an announce answer as `ip:port`, compact or not.
fn peers(value: &Value<'static>) -> Vec<String> {
    match field(value, "peers") {
        Some(Value::Bytes(compact)) => {
            assert_eq!(compact.len() % 6, 0);
            compact
                .chunks(6)
                .map(|p| format!("{}.{}.{}.{}:{}", p[0], p[1], p[2], p[3], u16::from_be_bytes([p[4], p[5]])))
                .collect()
        }
        Some(Value::List(list)) => list
            .iter()
            .map(|peer| format!("{}:{}", String::from_utf8_lossy(bytes(peer, "ip")), int(peer, "port")))
            .collect(),
        other => panic!("peers: {other:?}"),
    }
}

#[tokio::test]
async fn tracker_announces_compact_and_as_dictionaries() {
    let server = tracker("").await;
    let first = bencoded(&server, &announce(SAMPLE, 1, 6001, "&event=started&compact=1")).await;
    assert_eq!(failure(&first), None);
    assert_eq!(int(&first, "interval"), 1800);
    assert_eq!((int(&first, "complete"), int(&first, "incomplete")), (0, 1));
    assert_eq!(bytes(&first, "peers"), b"", "the only peer is the requester");

    let second = bencoded(&server, &announce(SAMPLE, 2, 6002, "&event=started&compact=1")).await;
    assert_eq!(
        bytes(&second, "peers"),
        [127, 0, 0, 1, 0x17, 0x71],
        "BEP 23: 4 address bytes, port big-endian"
    );
    assert_eq!(int(&second, "incomplete"), 2);

    let dicts = bencoded(&server, &announce(SAMPLE, 2, 6002, "&compact=0")).await;
    let Some(Value::List(list)) = field(&dicts, "peers") else {
        panic!("compact=0 gives a list: {dicts:?}");
    };
    assert_eq!(list.len(), 1);
    assert_eq!(bytes(&list[0], "ip"), b"127.0.0.1");
    assert_eq!(bytes(&list[0], "peer id"), peer_id(1).as_bytes());
    assert_eq!(int(&list[0], "port"), 6001);

    let absent = bencoded(&server, &announce(SAMPLE, 1, 6001, "")).await;
    assert_eq!(
        peers(&absent),
        ["127.0.0.1:6002"],
        "no compact: dictionaries, and peer 1 sees peer 2"
    );
    assert!(matches!(field(&absent, "peers"), Some(Value::List(_))));
}

#[tokio::test]
async fn tracker_stopped_removes_and_torrents_are_kept_apart() {
    let server = tracker("").await;
    bencoded(&server, &announce(SAMPLE, 1, 6001, "&compact=1")).await;
    bencoded(&server, &announce(MULTI, 3, 6003, "&compact=1")).await;
    let seen = bencoded(&server, &announce(SAMPLE, 2, 6002, "&compact=1")).await;
    assert_eq!(peers(&seen), ["127.0.0.1:6001"], "the multi torrent's peer is not listed");
    bencoded(&server, &announce(SAMPLE, 1, 6001, "&event=stopped&compact=1")).await;
    let after = bencoded(&server, &announce(SAMPLE, 2, 6002, "&compact=1")).await;
    assert!(peers(&after).is_empty(), "{after:?}");
    assert_eq!((int(&after, "complete"), int(&after, "incomplete")), (0, 1));
}

#[tokio::test]
async fn tracker_fails_unknown_torrents_and_bad_parameters() {
    let server = tracker("").await;
    let unknown = bencoded(&server, &announce(UNKNOWN, 1, 6001, "")).await;
    assert_eq!(failure(&unknown).as_deref(), Some("unknown torrent"));
    assert_eq!(field(&unknown, "peers"), None);
    let full = announce(SAMPLE, 1, 6001, "");
    let hash = format!("info_hash={}&", escape(&unhex(SAMPLE)));
    for (target, says) in [
        (full.replace(&hash, ""), "info_hash"),
        (full.replace(&hash, "info_hash=%97%8D&"), "info_hash"),
        (full.replace(&format!("peer_id={}&", peer_id(1)), ""), "peer_id"),
        (full.replace(&peer_id(1), "-WC0001-"), "peer_id"),
        (full.replace("port=6001&", ""), "port"),
        (full.replace("port=6001", "port=http"), "port"),
    ] {
        let answer = bencoded(&server, &target).await;
        let reason = failure(&answer).unwrap_or_else(|| panic!("{target}: no failure reason in {answer:?}"));
        assert!(reason.contains(says), "{target}: {reason}");
    }
}

#[tokio::test]
async fn tracker_honors_numwant_and_literal_ip() {
    let server = tracker("").await;
    for n in 1..=3 {
        bencoded(&server, &announce(SAMPLE, n, 6000 + n as u16, "&compact=1")).await;
    }
    let one = bencoded(&server, &announce(SAMPLE, 9, 6009, "&compact=1&numwant=1")).await;
    assert_eq!(peers(&one).len(), 1);
    let all = bencoded(&server, &announce(SAMPLE, 9, 6009, "&compact=1")).await;
    assert_eq!(peers(&all).len(), 3);

    bencoded(&server, &announce(MULTI, 1, 7001, "&ip=10.1.2.3")).await;
    bencoded(&server, &announce(MULTI, 2, 7002, "&ip=peer.example")).await;
    let listed = bencoded(&server, &announce(MULTI, 3, 7003, "")).await;
    assert_eq!(peers(&listed), ["10.1.2.3:7001", "127.0.0.1:7002"]);
}

#[tokio::test]
async fn tracker_scrapes_counts() {
    let server = tracker("").await;
    bencoded(&server, &announce(SAMPLE, 1, 6001, "&event=started")).await;
    bencoded(
        &server,
        &announce(SAMPLE, 1, 6001, "&event=completed").replace("left=150000", "left=0"),
    )
    .await;
    bencoded(&server, &announce(SAMPLE, 2, 6002, "&event=started")).await;
    let target = format!(
        "/scrape?info_hash={}&info_hash={}&info_hash={}",
        escape(&unhex(SAMPLE)),
        escape(&unhex(MULTI)),
        escape(&unhex(UNKNOWN))
    );
    let scrape = bencoded(&server, &target).await;
    let Some(Value::Dict(files)) = field(&scrape, "files") else {
        panic!("files: {scrape:?}");
    };
    let keys: Vec<&[u8]> = files.keys().map(|k| &k[..]).collect();
    assert_eq!(keys, [&unhex(MULTI)[..], &unhex(SAMPLE)[..]], "unknown hashes are left out");
    let sample = &files[&unhex(SAMPLE)[..]];
    assert_eq!(
        (int(sample, "complete"), int(sample, "downloaded"), int(sample, "incomplete")),
        (1, 1, 1)
    );
    let multi = &files[&unhex(MULTI)[..]];
    assert_eq!(
        (int(multi, "complete"), int(multi, "downloaded"), int(multi, "incomplete")),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn tracker_speaks_http() {
    let server = tracker("").await;
    assert_eq!(get(&server, "/").await.status, 404);
    assert_eq!(get(&server, "/announce.php").await.status, 404);

    // HTTP/1.0: answered, then closed.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let request = format!("GET {} HTTP/1.0\r\n\r\n", announce(SAMPLE, 1, 6001, ""));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    let response = read_response(&mut stream, &mut buffer).await;
    assert_eq!(response.status, 200);
    assert!(response.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", response.head);
    assert_eq!(timeout(LIMIT, stream.read(&mut [0u8; 16])).await.unwrap().unwrap(), 0);

    // HTTP/1.1: two requests on one connection, the second pipelined.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let one = format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", announce(SAMPLE, 1, 6001, ""));
    let two = format!("GET /scrape?info_hash={} HTTP/1.1\r\nHost: t\r\n\r\n", escape(&unhex(SAMPLE)));
    stream.write_all(format!("{one}{two}").as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    assert_eq!(read_response(&mut stream, &mut buffer).await.status, 200);
    let scrape = read_response(&mut stream, &mut buffer).await;
    assert!(
        scrape.body.starts_with(b"d5:filesd20:"),
        "{:?}",
        String::from_utf8_lossy(&scrape.body)
    );

    // Without Host, and with a body: 400.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(b"GET /scrape HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut stream, &mut Vec::new()).await.status, 400);
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(b"POST /announce HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    assert_eq!(read_response(&mut stream, &mut Vec::new()).await.status, 405);

    // A head over 8 KiB: 431.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let long = format!("GET /announce?{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    let _ = stream.write_all(long.as_bytes()).await;
    assert_eq!(read_response(&mut stream, &mut Vec::new()).await.status, 431);
}

#[tokio::test]
async fn tracker_options_are_checked() {
    assert!(matches!(
        try_start("bt-tracker", &[("peers", "3")]).await,
        Err(Error::UnknownOption { .. })
    ));
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    assert!(matches!(
        try_start("bt-tracker", &[("torrents", dir)]).await,
        Err(Error::BadOption { .. })
    ));
    let fixtures = fixtures();
    let fixtures = fixtures.to_str().unwrap();
    for (key, value) in [("interval", "0"), ("fault", "no-such-fault")] {
        let result = try_start("bt-tracker", &[("torrents", fixtures), (key, value)]).await;
        assert!(matches!(result, Err(Error::BadOption { .. })), "{key}={value}");
    }
    let server = try_start("bt-tracker", &[("torrents", fixtures), ("interval", "60")])
        .await
        .unwrap();
    assert_eq!(int(&bencoded(&server, &announce(SAMPLE, 1, 6001, "")).await, "interval"), 60);
}

// ------------------------------------------------------------------------------------------
// The tracker over UDP (BEP 15)

const PROTOCOL_ID: u64 = 0x41727101980;

struct Udp {
    socket: UdpSocket,
    server: SocketAddr,
}

impl Udp {
    async fn new(server: &RunningServer) -> Udp {
        Udp {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server: server.local_addr(),
        }
    }

    async fn ask(&self, datagram: &[u8]) -> Option<Vec<u8>> {
        self.socket.send_to(datagram, self.server).await.unwrap();
        let mut buffer = vec![0u8; 4096];
        let wait = timeout(SILENCE * 3, self.socket.recv_from(&mut buffer)).await.ok()?;
        buffer.truncate(wait.unwrap().0);
        Some(buffer)
    }

    async fn connect(&self, transaction: u32) -> u64 {
        let reply = self.ask(&connect(transaction)).await.expect("connected");
        assert_eq!(reply.len(), 16);
        assert_eq!((word(&reply, 0), word(&reply, 4)), (0, transaction));
        u64::from_be_bytes(reply[8..16].try_into().unwrap())
    }
}

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn connect(transaction: u32) -> Vec<u8> {
    let mut out = PROTOCOL_ID.to_be_bytes().to_vec();
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&transaction.to_be_bytes());
    out
}

fn udp_announce(connection: u64, transaction: u32, hash: &str, n: u32, left: u64, event: u32, port: u16) -> Vec<u8> {
    let mut out = connection.to_be_bytes().to_vec();
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&transaction.to_be_bytes());
    out.extend_from_slice(&unhex(hash));
    out.extend_from_slice(peer_id(n).as_bytes());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&left.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&event.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // ip: the source's
    out.extend_from_slice(&7u32.to_be_bytes()); // key
    out.extend_from_slice(&(-1i32).to_be_bytes()); // num_want: the default
    out.extend_from_slice(&port.to_be_bytes());
    out
}

fn udp_scrape(connection: u64, transaction: u32, hashes: &[&str]) -> Vec<u8> {
    let mut out = connection.to_be_bytes().to_vec();
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(&transaction.to_be_bytes());
    for hash in hashes {
        out.extend_from_slice(&unhex(hash));
    }
    out
}

#[tokio::test]
async fn udp_tracker_connects_announces_and_scrapes() {
    let server = tracker("").await;
    let udp = Udp::new(&server).await;
    let cid = udp.connect(0x1234).await;

    let first = udp.ask(&udp_announce(cid, 1, SAMPLE, 1, 150_000, 2, 6001)).await.unwrap();
    assert_eq!((word(&first, 0), word(&first, 4), word(&first, 8)), (1, 1, 1800));
    assert_eq!((word(&first, 12), word(&first, 16)), (1, 0), "leechers 1, seeders 0");
    assert_eq!(first.len(), 20, "no other peer yet");

    let second = udp.ask(&udp_announce(cid, 2, SAMPLE, 2, 0, 2, 6002)).await.unwrap();
    assert_eq!((word(&second, 12), word(&second, 16)), (1, 1));
    assert_eq!(&second[20..], [127, 0, 0, 1, 0x17, 0x71]);

    // The HTTP side sees the same swarm.
    let http = bencoded(&server, &announce(SAMPLE, 3, 6003, "&compact=1")).await;
    assert_eq!(peers(&http), ["127.0.0.1:6001", "127.0.0.1:6002"]);

    udp.ask(&udp_announce(cid, 3, SAMPLE, 2, 0, 1, 6002)).await.unwrap();
    let scraped = udp.ask(&udp_scrape(cid, 4, &[SAMPLE, MULTI])).await.unwrap();
    assert_eq!((word(&scraped, 0), word(&scraped, 4)), (2, 4));
    let counts: Vec<u32> = (8..scraped.len()).step_by(4).map(|at| word(&scraped, at)).collect();
    assert_eq!(counts, [1, 1, 2, 0, 0, 0], "seeders, completed, leechers per hash");

    let unknown = udp.ask(&udp_announce(cid, 5, UNKNOWN, 1, 1, 0, 6001)).await.unwrap();
    assert_eq!((word(&unknown, 0), word(&unknown, 4)), (3, 5));
    assert_eq!(&unknown[8..], b"unknown torrent");
}

#[tokio::test]
async fn udp_tracker_refuses_wrong_connection_ids_and_ignores_runts() {
    let server = tracker("").await;
    let udp = Udp::new(&server).await;
    let cid = udp.connect(1).await;
    let wrong = udp.ask(&udp_announce(cid ^ 1, 77, SAMPLE, 1, 1, 0, 6001)).await.unwrap();
    assert_eq!((word(&wrong, 0), word(&wrong, 4)), (3, 77));
    let scrape = udp.ask(&udp_scrape(cid.wrapping_add(1), 78, &[SAMPLE])).await.unwrap();
    assert_eq!((word(&scrape, 0), word(&scrape, 4)), (3, 78));
    assert_eq!(udp.ask(&connect(9)[..15]).await, None, "under 16 bytes: no answer");
    let mut bad_magic = connect(10);
    bad_magic[7] ^= 1;
    let refused = udp.ask(&bad_magic).await.unwrap();
    assert_eq!((word(&refused, 0), word(&refused, 4)), (3, 10));
    // Another socket (another port, same address) may use the id; the connection still works.
    let ok = udp.ask(&udp_announce(cid, 79, SAMPLE, 1, 1, 0, 6001)).await.unwrap();
    assert_eq!(word(&ok, 0), 1);
}

// ------------------------------------------------------------------------------------------
// The tracker's faults

#[tokio::test]
async fn fault_no_failure_reason() {
    let server = tracker("no-failure-reason").await;
    let answer = bencoded(&server, &announce(UNKNOWN, 1, 6001, "")).await;
    assert_eq!(failure(&answer), None);
    assert_eq!(int(&answer, "interval"), 1800);
}

#[tokio::test]
async fn fault_wrong_torrent_peers() {
    let server = tracker("wrong-torrent-peers").await;
    bencoded(&server, &announce(MULTI, 3, 6003, "")).await;
    let answer = bencoded(&server, &announce(SAMPLE, 1, 6001, "&compact=1")).await;
    assert_eq!(peers(&answer), ["127.0.0.1:6003"]);
}

#[tokio::test]
async fn fault_ignores_stopped() {
    let server = tracker("ignores-stopped").await;
    bencoded(&server, &announce(SAMPLE, 1, 6001, "")).await;
    bencoded(&server, &announce(SAMPLE, 1, 6001, "&event=stopped")).await;
    let answer = bencoded(&server, &announce(SAMPLE, 2, 6002, "&compact=1")).await;
    assert_eq!(peers(&answer), ["127.0.0.1:6001"]);
}

#[tokio::test]
async fn fault_ignores_numwant() {
    let server = tracker("ignores-numwant").await;
    for n in 1..=3 {
        bencoded(&server, &announce(SAMPLE, n, 6000 + n as u16, "")).await;
    }
    let answer = bencoded(&server, &announce(SAMPLE, 9, 6009, "&compact=1&numwant=1")).await;
    assert_eq!(peers(&answer).len(), 3);
}

#[tokio::test]
async fn fault_unsorted_keys() {
    let server = tracker("unsorted-keys").await;
    let response = get(&server, &announce(SAMPLE, 1, 6001, "&compact=1")).await;
    assert!(
        response.body.starts_with(b"d5:peers0:8:interval"),
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert!(decode(&response.body).is_err(), "a strict decoder refuses it");
}

#[tokio::test]
async fn fault_udp_wrong_transaction() {
    let server = tracker("udp-wrong-transaction").await;
    let udp = Udp::new(&server).await;
    let reply = udp.ask(&connect(0x1234)).await.unwrap();
    assert_eq!(word(&reply, 4), 0x1235);
}

#[tokio::test]
async fn fault_port_little_endian() {
    let server = tracker("port-little-endian").await;
    bencoded(&server, &announce(SAMPLE, 1, 6001, "")).await;
    let answer = bencoded(&server, &announce(SAMPLE, 2, 6002, "&compact=1")).await;
    assert_eq!(bytes(&answer, "peers"), [127, 0, 0, 1, 0x71, 0x17]);
}

#[tokio::test]
async fn fault_counts_nothing() {
    let server = tracker("counts-nothing").await;
    bencoded(
        &server,
        &announce(SAMPLE, 1, 6001, "&event=completed").replace("left=150000", "left=0"),
    )
    .await;
    let answer = bencoded(&server, &announce(SAMPLE, 2, 6002, "")).await;
    assert_eq!((int(&answer, "complete"), int(&answer, "incomplete")), (0, 0));
    let scrape = bencoded(&server, &format!("/scrape?info_hash={}", escape(&unhex(SAMPLE)))).await;
    let Some(Value::Dict(files)) = field(&scrape, "files") else {
        panic!("{scrape:?}");
    };
    let sample = files.values().next().unwrap();
    assert_eq!((int(sample, "complete"), int(sample, "downloaded")), (0, 0));
}

#[tokio::test]
async fn fault_no_param_check() {
    let server = tracker("no-param-check").await;
    let answer = bencoded(&server, "/announce?peer_id=-WC0001-000000000001&port=6001&left=1").await;
    assert!(field(&answer, "failure reason").is_none(), "{answer:?}");
    assert_eq!(peers(&answer), Vec::<String>::new());
}

// ------------------------------------------------------------------------------------------
// The seeder

async fn seeder(torrent: &str, fault: &str) -> RunningServer {
    let torrent = fixtures().join(torrent);
    let mut pairs = vec![("torrent", torrent.to_str().unwrap())];
    if !fault.is_empty() {
        pairs.push(("fault", fault));
    }
    try_start("bt-seeder", &pairs).await.expect("bt-seeder starts")
}

fn handshake(hash: &[u8; 20]) -> Vec<u8> {
    let mut out = vec![19];
    out.extend_from_slice(b"BitTorrent protocol");
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(hash);
    out.extend_from_slice(peer_id(1).as_bytes());
    out
}

fn message(id: u8, words: &[u32]) -> Vec<u8> {
    let mut out = (1 + 4 * words.len() as u32).to_be_bytes().to_vec();
    out.push(id);
    for word in words {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out
}

const INTERESTED: u8 = 2;
const REQUEST: u8 = 6;
const CANCEL: u8 = 8;

struct Peer {
    stream: TcpStream,
}

impl Peer {
    /// Connects and exchanges handshakes for `hash`; returns the seeder's handshake.
    async fn connect(server: &RunningServer, hash: &[u8; 20]) -> (Peer, Vec<u8>) {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        stream.write_all(&handshake(hash)).await.unwrap();
        let mut theirs = vec![0u8; 68];
        timeout(LIMIT, stream.read_exact(&mut theirs))
            .await
            .expect("handshake in time")
            .unwrap();
        (Peer { stream }, theirs)
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next message: `None` for a keep-alive, else its id and payload.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut length = [0u8; 4];
        timeout(LIMIT, self.stream.read_exact(&mut length))
            .await
            .expect("a message in time")
            .expect("a message");
        let length = u32::from_be_bytes(length) as usize;
        if length == 0 {
            return None;
        }
        let mut body = vec![0u8; length];
        timeout(LIMIT, self.stream.read_exact(&mut body)).await.unwrap().unwrap();
        let payload = body.split_off(1);
        Some((body[0], payload))
    }

    /// A piece message's block: (index, begin, data).
    async fn piece(&mut self) -> (u32, u32, Vec<u8>) {
        let (id, payload) = self.next().await.expect("not a keep-alive");
        assert_eq!(id, 7, "a piece message");
        (word(&payload, 0), word(&payload, 4), payload[8..].to_vec())
    }

    /// Interested, then the unchoke, past the bitfield.
    async fn unchoked(&mut self) {
        self.send(&message(INTERESTED, &[])).await;
        loop {
            match self.next().await {
                Some((1, payload)) => return assert!(payload.is_empty()),
                Some((5, _)) | None => {}
                other => panic!("expected unchoke, got {other:?}"),
            }
        }
    }

    /// True if the seeder closes the connection (FIN or reset) within `LIMIT`, after any bytes.
    async fn closed(&mut self) -> bool {
        let mut sink = [0u8; 65536];
        loop {
            match timeout(LIMIT, self.stream.read(&mut sink)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    /// True if nothing arrives for `SILENCE`.
    async fn silent(&mut self) -> bool {
        let mut one = [0u8; 1];
        timeout(SILENCE, self.stream.read(&mut one)).await.is_err()
    }
}

#[tokio::test]
async fn seeder_handshakes_and_sends_its_bitfield() {
    let server = seeder("sample.torrent", "").await;
    let (mut peer, theirs) = Peer::connect(&server, &unhex(SAMPLE)).await;
    assert_eq!(&theirs[..20], b"\x13BitTorrent protocol");
    assert_eq!(&theirs[20..28], [0; 8], "no extensions");
    assert_eq!(&theirs[28..48], unhex(SAMPLE));
    assert!(
        theirs[48..56] == *b"-WR0001-" && theirs[56..].iter().all(u8::is_ascii_digit),
        "{theirs:?}"
    );
    assert_eq!(peer.next().await, Some((5, vec![0b1111_1000])), "5 pieces, 3 spare bits zero");
    assert!(peer.silent().await, "choked until interested");
    peer.unchoked().await;
}

#[tokio::test]
async fn seeder_closes_on_another_info_hash_or_protocol() {
    let server = seeder("sample.torrent", "").await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(&handshake(&unhex(MULTI))).await.unwrap();
    let mut buffer = [0u8; 68];
    assert!(matches!(timeout(LIMIT, stream.read(&mut buffer)).await.unwrap(), Ok(0) | Err(_)));
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut wrong = handshake(&unhex(SAMPLE));
    wrong[1] = b'b';
    stream.write_all(&wrong).await.unwrap();
    assert!(matches!(timeout(LIMIT, stream.read(&mut buffer)).await.unwrap(), Ok(0) | Err(_)));
}

#[tokio::test]
async fn seeder_serves_exact_blocks_including_the_short_last_one() {
    let data = fixture("sample.bin");
    let server = seeder("sample.torrent", "").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    peer.unchoked().await;
    peer.send(&message(REQUEST, &[0, 0, 16384])).await;
    assert_eq!(peer.piece().await, (0, 0, data[..16384].to_vec()));
    peer.send(&message(REQUEST, &[2, 16384, 16384])).await;
    assert_eq!(peer.piece().await, (2, 16384, data[2 * 32768 + 16384..3 * 32768].to_vec()));
    // Piece 4 is 18,928 bytes: a full block, then 2,544.
    peer.send(&message(REQUEST, &[4, 0, 16384])).await;
    peer.send(&message(REQUEST, &[4, 16384, 2544])).await;
    assert_eq!(peer.piece().await, (4, 0, data[4 * 32768..4 * 32768 + 16384].to_vec()));
    assert_eq!(peer.piece().await, (4, 16384, data[4 * 32768 + 16384..].to_vec()));
    // A keep-alive and unknown messages are read past.
    peer.send(&[0, 0, 0, 0]).await;
    peer.send(&[0, 0, 0, 3, 99, 1, 2]).await;
    peer.send(&message(4, &[3])).await;
    peer.send(&message(REQUEST, &[1, 100, 10])).await;
    assert_eq!(peer.piece().await, (1, 100, data[32768 + 100..32768 + 110].to_vec()));
}

#[tokio::test]
async fn seeder_cancel_drops_a_queued_request() {
    let data = fixture("sample.bin");
    let server = seeder("sample.torrent", "").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    peer.unchoked().await;
    let mut burst = message(REQUEST, &[1, 0, 16384]);
    burst.extend_from_slice(&message(CANCEL, &[1, 0, 16384]));
    burst.extend_from_slice(&message(REQUEST, &[3, 0, 100]));
    peer.send(&burst).await;
    assert_eq!(peer.piece().await, (3, 0, data[3 * 32768..3 * 32768 + 100].to_vec()));
    assert!(peer.silent().await, "the cancelled block never comes");
}

#[tokio::test]
async fn seeder_drops_requests_while_choked() {
    let server = seeder("sample.torrent", "").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    assert_eq!(peer.next().await.map(|m| m.0), Some(5));
    peer.send(&message(REQUEST, &[0, 0, 16384])).await;
    assert!(peer.silent().await);
    peer.unchoked().await;
    assert!(peer.silent().await, "the choked request was dropped, not queued");
}

#[tokio::test]
async fn seeder_closes_on_bad_requests() {
    let server = seeder("sample.torrent", "").await;
    for (words, why) in [
        ([0, 0, 16385], "over 16 KiB"),
        ([0, 0, 0], "length 0"),
        ([5, 0, 100], "no piece 5"),
        ([4, 16384, 16384], "past the end of the last piece"),
        ([0, 32000, 1000], "past the end of piece 0"),
    ] {
        let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
        peer.unchoked().await;
        peer.send(&message(REQUEST, &words)).await;
        assert!(peer.closed().await, "{why}");
    }
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    peer.send(&((1u32 << 20) + 14).to_be_bytes()).await;
    assert!(peer.closed().await, "a message over 1 MiB + 13");
}

#[tokio::test]
async fn seeder_serves_a_multi_file_torrent_to_many_peers() {
    let mut data = fixture("multi/a.txt");
    data.extend_from_slice(&fixture("multi/sub/b.bin"));
    let server = seeder("multi.torrent", "").await;
    let mut peers = Vec::new();
    for _ in 0..6 {
        let (mut peer, _) = Peer::connect(&server, &unhex(MULTI)).await;
        peer.unchoked().await;
        peers.push(peer);
    }
    for peer in &mut peers {
        // Piece 1 spans a.txt's end and b.bin's start.
        peer.send(&message(REQUEST, &[1, 0, 16384])).await;
    }
    for peer in &mut peers {
        assert_eq!(peer.piece().await, (1, 0, data[16384..32768].to_vec()));
    }
}

#[tokio::test]
async fn seeder_options_are_checked() {
    assert!(matches!(try_start("bt-seeder", &[]).await, Err(Error::BadOption { .. })));
    let torrent = fixtures().join("multi.torrent");
    let torrent = torrent.to_str().unwrap();
    let result = try_start("bt-seeder", &[("torrent", torrent), ("wat", "1")]).await;
    assert!(matches!(result, Err(Error::UnknownOption { .. })));
    // The data is looked for under DIR/multi/: here it is missing.
    let inner = fixtures().join("multi");
    let result = try_start("bt-seeder", &[("torrent", torrent), ("dir", inner.to_str().unwrap())]).await;
    assert!(matches!(result, Err(Error::BadOption { .. })));
    // Data that does not match the hashes is refused.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sample.bin"), vec![0u8; 150_000]).unwrap();
    let sample = fixtures().join("sample.torrent");
    let result = try_start(
        "bt-seeder",
        &[("torrent", sample.to_str().unwrap()), ("dir", dir.path().to_str().unwrap())],
    )
    .await;
    assert!(matches!(result, Err(Error::BadOption { .. })));
}

// ------------------------------------------------------------------------------------------
// The seeder's faults

#[tokio::test]
async fn fault_spare_bits_set() {
    let server = seeder("sample.torrent", "spare-bits-set").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    assert_eq!(peer.next().await, Some((5, vec![0xff])));
}

#[tokio::test]
async fn fault_off_by_one_index() {
    let data = fixture("sample.bin");
    let server = seeder("sample.torrent", "off-by-one-index").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    peer.unchoked().await;
    peer.send(&message(REQUEST, &[0, 0, 16384])).await;
    assert_eq!(peer.piece().await, (0, 0, data[32768..32768 + 16384].to_vec()));
}

#[tokio::test]
async fn fault_never_unchokes() {
    let server = seeder("sample.torrent", "never-unchokes").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    assert_eq!(peer.next().await.map(|m| m.0), Some(5));
    peer.send(&message(INTERESTED, &[])).await;
    assert!(peer.silent().await);
}

#[tokio::test]
async fn fault_truncates_big_requests() {
    let data = fixture("sample.bin");
    let server = seeder("sample.torrent", "truncates-big-requests").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    peer.unchoked().await;
    peer.send(&message(REQUEST, &[1, 0, 32768])).await;
    assert_eq!(peer.piece().await, (1, 0, data[32768..32768 + 16384].to_vec()));
}

#[tokio::test]
async fn fault_accepts_any_info_hash() {
    let server = seeder("sample.torrent", "accepts-any-info-hash").await;
    let (_, theirs) = Peer::connect(&server, &unhex(MULTI)).await;
    assert_eq!(&theirs[28..48], unhex(MULTI));
}

#[tokio::test]
async fn fault_corrupt_piece() {
    let data = fixture("sample.bin");
    let server = seeder("sample.torrent", "corrupt-piece").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    peer.unchoked().await;
    peer.send(&message(REQUEST, &[0, 0, 16384])).await;
    assert_eq!(peer.piece().await.2, data[..16384], "piece 0 is intact");
    peer.send(&message(REQUEST, &[1, 0, 16384])).await;
    let block = peer.piece().await.2;
    assert_eq!(block[0], data[32768] ^ 0xff);
    assert_eq!(block[1..], data[32769..32768 + 16384]);
}

#[tokio::test]
async fn fault_no_range_check() {
    let data = fixture("sample.bin");
    let server = seeder("sample.torrent", "no-range-check").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    peer.unchoked().await;
    peer.send(&message(REQUEST, &[4, 16384, 16384])).await;
    let (_, _, block) = peer.piece().await;
    assert_eq!(block.len(), 16384);
    assert_eq!(block[..2544], data[4 * 32768 + 16384..]);
    assert!(block[2544..].iter().all(|&b| b == 0));
    peer.send(&message(REQUEST, &[9, 0, 4])).await;
    assert_eq!(peer.piece().await, (9, 0, vec![0; 4]));
}

#[tokio::test]
async fn fault_no_bitfield() {
    let server = seeder("sample.torrent", "no-bitfield").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    peer.send(&message(INTERESTED, &[])).await;
    assert_eq!(peer.next().await, Some((1, Vec::new())), "the unchoke comes first: no bitfield");
}

#[tokio::test]
async fn fault_closes_on_keepalive() {
    let server = seeder("sample.torrent", "").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    peer.send(&[0, 0, 0, 0]).await;
    assert!(!peer.closed_soon().await, "a keep-alive is tolerated");
    let server = seeder("sample.torrent", "closes-on-keepalive").await;
    let (mut peer, _) = Peer::connect(&server, &unhex(SAMPLE)).await;
    peer.send(&[0, 0, 0, 0]).await;
    assert!(peer.closed().await);
}

#[tokio::test]
async fn fault_ignores_pstr_and_wrong_info_hash() {
    let server = seeder("sample.torrent", "ignores-pstr").await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut hello = handshake(&unhex(SAMPLE));
    hello[19] = b'X';
    stream.write_all(&hello).await.unwrap();
    let mut theirs = [0u8; 68];
    timeout(LIMIT, stream.read_exact(&mut theirs)).await.unwrap().unwrap();
    assert_eq!(&theirs[..20], b"\x13BitTorrent protocol");
    let server = seeder("sample.torrent", "wrong-info-hash").await;
    let (_, theirs) = Peer::connect(&server, &unhex(SAMPLE)).await;
    let reversed: Vec<u8> = unhex(SAMPLE).iter().rev().copied().collect();
    assert_eq!(&theirs[28..48], reversed.as_slice());
}

impl Peer {
    /// True if the connection is closed within `SILENCE` (bytes before the close are skipped).
    async fn closed_soon(&mut self) -> bool {
        let mut sink = [0u8; 4096];
        loop {
            match timeout(SILENCE, self.stream.read(&mut sink)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}
