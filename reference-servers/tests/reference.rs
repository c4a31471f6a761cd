//! Loopback tests of every reference server and client through the public API.

use std::net::SocketAddr;
use std::time::Duration;

use reference_servers::{clients, run_client, servers, start_server, Error, Options, RunningServer, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout, Instant};

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn start(name: &str, pairs: &[(&str, &str)]) -> RunningServer {
    timeout(LIMIT, start_server(name, loopback(), &opts(pairs)))
        .await
        .expect("start_server timed out")
        .expect("start_server failed")
}

/// Sends `message` over a fresh connection, half-closes only if asked, and
/// returns everything the server sends before closing.
async fn tcp_exchange(server: SocketAddr, message: &[u8], half_close: bool) -> Vec<u8> {
    timeout(LIMIT, async {
        let mut stream = TcpStream::connect(server).await.expect("connect");
        stream.write_all(message).await.expect("write");
        if half_close {
            stream.shutdown().await.expect("shutdown");
        }
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.expect("read");
        reply
    })
    .await
    .expect("exchange timed out")
}

/// Reads until the server closes; `None` if it sent nothing (EOF or reset).
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut reply = Vec::new();
    let result = timeout(LIMIT, stream.read_to_end(&mut reply))
        .await
        .expect("server did not close the connection");
    match result {
        Ok(_) if !reply.is_empty() => Some(reply),
        _ => None,
    }
}

async fn udp_client() -> UdpSocket {
    UdpSocket::bind(loopback()).await.expect("bind client")
}

/// Receives one datagram, or `None` if none arrives within `wait`.
async fn udp_recv(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65535];
    match timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(buf[..len].to_vec()),
        Ok(Err(e)) => panic!("recv_from: {e}"),
        Err(_) => None,
    }
}

// ---------------------------------------------------------------- registry

#[tokio::test]
async fn registry_lists_everything() {
    let names: Vec<&str> = servers().iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "tcp-upper",
            "udp-upper",
            "udp-pinger",
            "socket-timeout",
            "http",
            "http-proxy",
            "http2",
            "http3",
            "smtp",
            "pop3",
            "imap",
            "ftp",
            "dns",
            "dns-resolver",
            "bt-tracker",
            "bt-seeder",
            "bt-dht",
            "dht-ring",
            "dash-origin"
        ]
    );
    let names: Vec<&str> = clients().iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "udp-pinger",
            "smtp-client",
            "ftp-client",
            "http2-client",
            "bt-client",
            "dash-client"
        ]
    );
    let zones = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/dns");
    // HTTP/3 is always TLS: a self-signed certificate for it.
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (cert_path, key_path) = (cert_path.to_str().unwrap(), key_path.to_str().unwrap());
    for (name, _) in servers() {
        // Every server starts with its defaults, except those that cannot have one: zones to serve, a root to ask, a ring node's id.
        let needs: &[(&str, &str)] = match *name {
            "dns" => &[("zones", zones)],
            "dns-resolver" => &[("root", "127.0.0.1:9")],
            "http3" => &[("tls_cert", cert_path), ("tls_key", key_path)],
            "dht-ring" => &[("id", "1")],
            "bt-seeder" => &[(
                "torrent",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/bittorrent/sample.torrent"),
            )],
            _ => &[],
        };
        let server = start(name, needs).await;
        assert_ne!(server.local_addr().port(), 0);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn unknown_names_and_options_are_errors() {
    let none = Options::new();
    let err = start_server("tcp-uper", loopback(), &none).await.err();
    assert!(matches!(err, Some(Error::UnknownServer { .. })), "{err:?}");

    let err = start_server("udp-upper", loopback(), &opts(&[("loss", "0.3")])).await.err();
    assert!(matches!(err, Some(Error::UnknownOption { .. })), "{err:?}");

    for (server, key, value) in [
        ("tcp-upper", "idle", "30"),
        ("udp-pinger", "loss", "1.5"),
        ("udp-pinger", "seed", "-1"),
        ("udp-pinger", "drop", "0,3"),
        ("socket-timeout", "timeout", "0s"),
        ("socket-timeout", "strikes", "0"),
    ] {
        let err = start_server(server, loopback(), &opts(&[(key, value)])).await.err();
        assert!(
            matches!(&err, Some(Error::BadOption { key: k, .. }) if k == key),
            "{server} {key}={value}: {err:?}"
        );
    }

    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let err = run_client("tcp-upper", loopback(), &none, &[], tx.clone()).await.err();
    assert!(matches!(err, Some(Error::UnknownClient { .. })), "{err:?}");
    let err = run_client("udp-pinger", loopback(), &opts(&[("loss", "1")]), &[], tx).await.err();
    assert!(matches!(err, Some(Error::UnknownOption { .. })), "{err:?}");
}

// --------------------------------------------------------------- tcp-upper

#[tokio::test]
async fn tcp_upper_replies_with_the_uppercased_line() {
    let server = start("tcp-upper", &[]).await;
    assert_eq!(server.transport(), Transport::Tcp);
    let addr = server.local_addr();

    // No half-close: the server must answer on the newline alone.
    assert_eq!(tcp_exchange(addr, b"hello world\n", false).await, b"HELLO WORLD\n");
    assert_eq!(
        tcp_exchange(addr, "héllo wörld\n".as_bytes(), false).await,
        "HÉLLO WÖRLD\n".as_bytes()
    );
    // Not UTF-8: ASCII letters only.
    assert_eq!(tcp_exchange(addr, b"ab\xffc\n", false).await, b"AB\xffC\n");
    // Only the first line is answered.
    assert_eq!(tcp_exchange(addr, b"one\ntwo\n", false).await, b"ONE\n");
    // EOF without a newline still gets a reply, without a newline.
    assert_eq!(tcp_exchange(addr, b"no newline", true).await, b"NO NEWLINE");
    // Nothing at all: closed without a reply.
    assert_eq!(tcp_exchange(addr, b"", true).await, b"");
    assert!(!server.is_finished());
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_upper_waits_for_the_whole_line() {
    let server = start("tcp-upper", &[]).await;
    let reply = timeout(LIMIT, async {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        stream.write_all(b"split ").await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        stream.write_all(b"message\n").await.unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.unwrap();
        reply
    })
    .await
    .expect("timed out");
    assert_eq!(reply, b"SPLIT MESSAGE\n");
}

#[tokio::test]
async fn tcp_upper_handles_a_64k_line() {
    let server = start("tcp-upper", &[]).await;
    let mut message = b"abcdefghijklmnop".repeat(64 * 1024 / 16);
    message.push(b'\n');
    let reply = tcp_exchange(server.local_addr(), &message, false).await;
    assert_eq!(reply, message.to_ascii_uppercase());
}

#[tokio::test]
async fn tcp_upper_closes_oversized_lines_without_reply() {
    let server = start("tcp-upper", &[]).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut read_half, mut write_half) = stream.split();
    let garbage = vec![b'x'; (1 << 20) + 4096];
    // The server may close mid-write, so the write is allowed to fail.
    let write = async {
        let _ = write_half.write_all(&garbage).await;
    };
    let read = async {
        let mut reply = Vec::new();
        let _ = read_half.read_to_end(&mut reply).await;
        reply
    };
    let ((), reply) = timeout(LIMIT, async { tokio::join!(write, read) })
        .await
        .expect("server did not close");
    assert!(reply.is_empty(), "got {} bytes", reply.len());
}

#[tokio::test]
async fn tcp_upper_serves_ten_clients_at_once() {
    let server = start("tcp-upper", &[]).await;
    let addr = server.local_addr();
    // Open all ten connections and send half a line on each before finishing
    // any, so they really are in progress at the same time.
    let mut streams = Vec::new();
    for i in 0..10 {
        let mut stream = timeout(LIMIT, TcpStream::connect(addr)).await.unwrap().unwrap();
        stream.write_all(format!("client {i} ").as_bytes()).await.unwrap();
        streams.push(stream);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut stream) in streams.into_iter().enumerate() {
        tasks.spawn(async move {
            stream.write_all(b"says hi\n").await.unwrap();
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await.unwrap();
            (i, reply)
        });
    }
    let results = timeout(LIMIT, tasks.join_all()).await.expect("timed out");
    assert_eq!(results.len(), 10);
    for (i, reply) in results {
        assert_eq!(reply, format!("CLIENT {i} SAYS HI\n").as_bytes());
    }
}

#[tokio::test]
async fn tcp_upper_closes_idle_connections() {
    let server = start("tcp-upper", &[("idle", "200ms")]).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(b"no end in sight").await.unwrap();
    let started = Instant::now();
    assert_eq!(read_until_closed(&mut stream).await, None);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn tcp_upper_stops_listening_on_shutdown_and_drop() {
    let server = start("tcp-upper", &[]).await;
    let addr = server.local_addr();
    server.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());

    let server = start("tcp-upper", &[]).await;
    let addr = server.local_addr();
    drop(server);
    // The abort takes effect at the runtime's next turn; give it a few.
    let refused = timeout(LIMIT, async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(refused.is_ok(), "dropped server still accepts connections");
}

// --------------------------------------------------------------- udp-upper

#[tokio::test]
async fn udp_upper_replies_uppercased() {
    let server = start("udp-upper", &[]).await;
    assert_eq!(server.transport(), Transport::Udp);
    let client = udp_client().await;
    for (message, expected) in [
        (&b"hello udp"[..], &b"HELLO UDP"[..]),
        ("héllo wörld".as_bytes(), "HÉLLO WÖRLD".as_bytes()),
        (b"ab\xffc", b"AB\xffC"),
        (b"", b""),
    ] {
        client.send_to(message, server.local_addr()).await.unwrap();
        assert_eq!(udp_recv(&client, LIMIT).await.as_deref(), Some(expected));
    }
}

#[tokio::test]
async fn udp_upper_handles_a_60000_byte_datagram() {
    let server = start("udp-upper", &[]).await;
    let client = udp_client().await;
    let message = b"0123456789abcdef".repeat(3750);
    assert_eq!(message.len(), 60000);
    client.send_to(&message, server.local_addr()).await.unwrap();
    let reply = udp_recv(&client, LIMIT).await.expect("no reply");
    assert_eq!(reply, message.to_ascii_uppercase());
}

// -------------------------------------------------------------- udp-pinger

/// Sends `count` numbered datagrams back to back and returns the numbers
/// that got a reply, once no reply has come for a while.
async fn replied_numbers(server: SocketAddr, count: u32) -> Vec<u32> {
    let client = udp_client().await;
    for n in 1..=count {
        client.send_to(format!("msg {n}").as_bytes(), server).await.unwrap();
    }
    let mut replied = Vec::new();
    while let Some(reply) = udp_recv(&client, Duration::from_millis(300)).await {
        let text = String::from_utf8(reply).unwrap();
        let n = text.strip_prefix("MSG ").expect("uppercased reply");
        replied.push(n.parse().unwrap());
    }
    replied.sort_unstable();
    replied
}

#[tokio::test]
async fn udp_pinger_drops_the_listed_datagrams() {
    let server = start("udp-pinger", &[("drop", "3,7")]).await;
    let replied = replied_numbers(server.local_addr(), 10).await;
    assert_eq!(replied, [1, 2, 4, 5, 6, 8, 9, 10]);
}

#[tokio::test]
async fn udp_pinger_seeded_loss_is_repeatable() {
    let loss = [("loss", "0.5"), ("seed", "42")];
    let first = start("udp-pinger", &loss).await;
    let second = start("udp-pinger", &loss).await;
    let (a, b) = tokio::join!(replied_numbers(first.local_addr(), 20), replied_numbers(second.local_addr(), 20));
    assert_eq!(a, b);

    // And it is the documented pattern: datagram n is dropped iff the
    // n-th draw from a generator seeded with `seed` is below `loss`.
    let mut rng = fastrand::Rng::with_seed(42);
    let expected: Vec<u32> = (1..=20).filter(|_| rng.f64() >= 0.5).collect();
    assert_eq!(a, expected);
    assert!(!a.is_empty() && a.len() < 20, "seed 42 should drop some");

    let none_lost = start("udp-pinger", &[("loss", "0")]).await;
    let all: Vec<u32> = (1..=5).collect();
    assert_eq!(replied_numbers(none_lost.local_addr(), 5).await, all);
}

// ---------------------------------------------------------- socket-timeout

#[tokio::test]
async fn socket_timeout_sends_the_hunter() {
    let server = start("socket-timeout", &[("timeout", "200ms")]).await;
    let addr = server.local_addr();
    assert_eq!(tcp_exchange(addr, b"wolf at the north field\n", false).await, b"hunter sent\n");
    // No newline and no EOF: what arrived before the timeout still counts.
    let started = Instant::now();
    assert_eq!(tcp_exchange(addr, b"wolf", false).await, b"hunter sent\n");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(!server.is_finished());
}

#[tokio::test]
async fn socket_timeout_stops_after_three_silent_connections() {
    let server = start("socket-timeout", &[("timeout", "200ms")]).await;
    let addr = server.local_addr();
    for strike in 1..=3 {
        assert!(!server.is_finished(), "finished before strike {strike}");
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        assert_eq!(read_until_closed(&mut stream).await, None);
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(150) && elapsed < Duration::from_secs(2),
            "strike {strike} closed after {elapsed:?}"
        );
    }
    let finished = timeout(LIMIT, async {
        while !server.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(finished.is_ok(), "server still running after 3 strikes");
    let connect = timeout(LIMIT, TcpStream::connect(addr)).await.unwrap();
    assert!(connect.is_err(), "connect after 3 strikes should be refused");
}

#[tokio::test]
async fn socket_timeout_eof_is_not_a_strike() {
    let server = start("socket-timeout", &[("timeout", "200ms"), ("strikes", "1")]).await;
    let addr = server.local_addr();
    for _ in 0..2 {
        assert_eq!(tcp_exchange(addr, b"", true).await, b"");
    }
    assert_eq!(tcp_exchange(addr, b"wolf!\n", false).await, b"hunter sent\n");
    assert!(!server.is_finished());
}

#[tokio::test]
async fn socket_timeout_serves_one_connection_at_a_time() {
    let server = start("socket-timeout", &[("timeout", "300ms")]).await;
    let addr = server.local_addr();
    let started = Instant::now();
    let _silent = TcpStream::connect(addr).await.unwrap();
    // The second client speaks at once, but is only heard after the first
    // one's timeout.
    assert_eq!(tcp_exchange(addr, b"wolf!\n", false).await, b"hunter sent\n");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

// -------------------------------------------------------- udp-pinger client

async fn run_pinger(server: SocketAddr, pairs: &[(&str, &str)]) -> (i32, Vec<String>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let code = timeout(LIMIT, run_client("udp-pinger", server, &opts(pairs), &[], tx))
        .await
        .expect("client timed out")
        .expect("client failed to start");
    let mut lines = Vec::new();
    while let Ok(line) = rx.try_recv() {
        lines.push(line);
    }
    (code, lines)
}

#[tokio::test]
async fn pinger_client_reports_rtts_and_timeouts() {
    let server = start("udp-pinger", &[("drop", "2")]).await;
    let (code, lines) = run_pinger(server.local_addr(), &[("timeout", "200ms")]).await;
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 9 * 2 + 1, "{lines:#?}");
    let rtts = lines.iter().filter(|l| l.starts_with("RTT: ")).count();
    let timeouts = lines.iter().filter(|l| *l == "Request timed out").count();
    assert_eq!((rtts, timeouts), (9, 1), "{lines:#?}");
    assert!(lines[0].starts_with("PING 1 "), "{lines:#?}");
    assert_eq!(lines[2], "Request timed out");
    assert!(lines[3].starts_with("PING 3 "), "{lines:#?}");

    // Each reply is the uppercased `Ping <seq> <time>` and each RTT has 6 decimals.
    let parts: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(parts.len(), 3);
    let sent: f64 = parts[2].parse().unwrap();
    assert!(sent > 1.6e9, "{sent}");
    let rtt = lines[1].strip_prefix("RTT: ").unwrap();
    let rtt = rtt.strip_suffix(" s").unwrap();
    assert_eq!(rtt.split('.').nth(1).map(str::len), Some(6), "{rtt}");
}

#[tokio::test]
async fn pinger_client_ignores_late_replies() {
    // A hand-made server that answers ping 1 only after the client gave up
    // on it, then answers ping 2 at once.
    let server = udp_client().await;
    let addr = server.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        let (len, client) = server.recv_from(&mut buf).await.unwrap();
        let first = String::from_utf8_lossy(&buf[..len]).to_uppercase();
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.send_to(first.as_bytes(), client).await.unwrap();
        let (len, client) = server.recv_from(&mut buf).await.unwrap();
        let second = String::from_utf8_lossy(&buf[..len]).to_uppercase();
        server.send_to(second.as_bytes(), client).await.unwrap();
    });
    let (code, lines) = run_pinger(addr, &[("timeout", "200ms"), ("count", "2")]).await;
    timeout(LIMIT, fake).await.unwrap().unwrap();
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0], "Request timed out");
    assert!(lines[1].starts_with("PING 2 "), "{lines:#?}");
    assert!(lines[2].starts_with("RTT: "), "{lines:#?}");
}
