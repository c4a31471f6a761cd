//! TLS in the reference servers and clients: every TCP server's implicit-TLS port carries the
//! same dialogue as in clear text; SMTP, POP3 and IMAP offer STARTTLS only before TLS, go on over
//! TLS after it, and never run what a client pipelined behind it (each fault switch is caught,
//! proving the checks can fail); `require_tls` refuses what needs privacy in clear text; the
//! reference clients speak TLS with `tls_ca`; and bad options are errors.
//!
//! A CA and a leaf certificate for `localhost` and 127.0.0.1 are made per test with rcgen.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reference_servers::{run_client, start_server, Error, Options, RunningServer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1, as PEM files.
struct Pki {
    _dir: TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "wirecheck test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    leaf.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).expect("leaf certificate");
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        cert: write("cert.pem", leaf_cert.pem()),
        key: write("key.pem", leaf_key.serialize_pem()),
        _dir: dir,
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

impl Pki {
    /// The server options for `tls=<mode>` with this certificate, plus `extra`.
    fn opts(&self, mode: &str, extra: &[(&str, &str)]) -> Options {
        let mut opts = opts(extra);
        opts.insert("tls".to_owned(), mode.to_owned());
        opts.insert("tls_cert".to_owned(), path(&self.cert).to_owned());
        opts.insert("tls_key".to_owned(), path(&self.key).to_owned());
        opts
    }

    /// A client that trusts this CA alone and offers `alpn`.
    fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.ca)
            .expect("CA file")
            .collect::<Result<_, _>>()
            .expect("CA PEM");
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store.add(root).expect("CA certificate");
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(store)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

// The ring provider, as the servers use; deprecated only for lacking post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn try_start(name: &str, opts: &Options) -> Result<RunningServer, Error> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    timeout(LIMIT, start_server(name, loopback, opts))
        .await
        .expect("start_server timed out")
}

async fn start(name: &str, opts: &Options) -> RunningServer {
    try_start(name, opts).await.unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A client connection, clear text or TLS, read line by line.
struct Conn {
    plain: Option<TcpStream>,
    tls: Option<Box<TlsStream<TcpStream>>>,
    buf: Vec<u8>,
}

impl Conn {
    async fn plain(addr: SocketAddr) -> Conn {
        let tcp = timeout(LIMIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Conn {
            plain: Some(tcp),
            tls: None,
            buf: Vec::new(),
        }
    }

    async fn tls(addr: SocketAddr, connector: &TlsConnector) -> Conn {
        let mut conn = Conn::plain(addr).await;
        conn.upgrade(connector).await;
        conn
    }

    /// The client's side of a handshake on this connection (STARTTLS); nothing may be waiting unread.
    async fn upgrade(&mut self, connector: &TlsConnector) {
        assert!(
            self.buf.is_empty(),
            "bytes before the handshake: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let tcp = self.plain.take().expect("a clear-text connection");
        let name = ServerName::try_from("localhost").expect("name");
        let tls = timeout(LIMIT, connector.connect(name, tcp))
            .await
            .expect("handshake timed out")
            .expect("handshake");
        self.tls = Some(Box::new(tls));
    }

    fn alpn(&self) -> Option<Vec<u8>> {
        self.tls
            .as_ref()
            .and_then(|tls| tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        let written = match (&mut self.plain, &mut self.tls) {
            (Some(tcp), _) => timeout(LIMIT, tcp.write_all(bytes)).await,
            (_, Some(tls)) => timeout(LIMIT, async { tls.write_all(bytes).await.and(tls.flush().await) }).await,
            _ => unreachable!(),
        };
        written.expect("send timed out").expect("send");
    }

    /// Reads more into the buffer; 0 at the end (or a reset).
    async fn more(&mut self) -> usize {
        let mut chunk = vec![0; 16 << 10];
        let read = match (&mut self.plain, &mut self.tls) {
            (Some(tcp), _) => timeout(LIMIT, tcp.read(&mut chunk)).await,
            (_, Some(tls)) => timeout(LIMIT, tls.read(&mut chunk)).await,
            _ => unreachable!(),
        };
        let n = read.expect("read timed out").unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// One line without its CRLF.
    async fn line(&mut self) -> String {
        loop {
            if let Some(lf) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=lf).collect();
                return String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned();
            }
            assert!(
                self.more().await > 0,
                "closed before a whole line: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// An SMTP reply: its lines up to the one with a space after the code.
    async fn reply(&mut self) -> Vec<String> {
        let mut lines = vec![self.line().await];
        while lines.last().is_some_and(|l| l.as_bytes().get(3) == Some(&b'-')) {
            lines.push(self.line().await);
        }
        lines
    }

    async fn command(&mut self, line: &str) -> Vec<String> {
        self.send(format!("{line}\r\n")).await;
        self.reply().await
    }

    /// A POP3 single-line response.
    async fn pop(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n")).await;
        self.line().await
    }

    /// An FTP reply: its lines up to the one with the first line's code and a space.
    async fn ftp(&mut self, line: &str) -> Vec<String> {
        if !line.is_empty() {
            self.send(format!("{line}\r\n")).await;
        }
        let mut lines = vec![self.line().await];
        if lines[0].as_bytes().get(3) == Some(&b'-') {
            let end = format!("{} ", &lines[0][..3]);
            while !lines.last().is_some_and(|l| l.starts_with(&end)) {
                lines.push(self.line().await);
            }
        }
        lines
    }

    /// A POP3 multi-line response up to its ".".
    async fn multi(&mut self, line: &str) -> Vec<String> {
        self.send(format!("{line}\r\n")).await;
        let mut lines = vec![self.line().await];
        if lines[0].starts_with("+OK") {
            loop {
                let line = self.line().await;
                if line == "." {
                    break;
                }
                lines.push(line);
            }
        }
        lines
    }

    /// IMAP responses up to the tagged one.
    async fn until(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    async fn imap(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n")).await;
        self.until(tag).await
    }

    /// True if the server closes (or resets) the connection within the limit.
    async fn closed(&mut self) -> bool {
        loop {
            if self.more().await == 0 {
                return true;
            }
        }
    }
}

fn first(reply: &[String]) -> &str {
    reply.first().map_or("", String::as_str)
}

fn last(reply: &[String]) -> &str {
    reply.last().map_or("", String::as_str)
}

// ---- implicit TLS: the same dialogue as in clear text ----

#[tokio::test]
async fn tcp_upper_over_tls() {
    let pki = pki();
    let server = start("tcp-upper", &pki.opts("implicit", &[])).await;
    let mut conn = Conn::tls(server.local_addr(), &pki.connector(&[])).await;
    conn.send("hello over tls\n").await;
    assert_eq!(conn.line().await, "HELLO OVER TLS");
}

#[tokio::test]
async fn socket_timeout_over_tls() {
    let pki = pki();
    let server = start("socket-timeout", &pki.opts("implicit", &[])).await;
    let mut conn = Conn::tls(server.local_addr(), &pki.connector(&[])).await;
    conn.send("wolf at the north gate\n").await;
    assert_eq!(conn.line().await, "hunter sent");
}

fn www(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/www").join(name)).expect("fixture")
}

/// An HTTP/1.1 response read to its close: the head and the body.
async fn http11(conn: &mut Conn, request: &str) -> (String, Vec<u8>) {
    conn.send(request).await;
    while conn.more().await > 0 {}
    let all = std::mem::take(&mut conn.buf);
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
    (String::from_utf8_lossy(&all[..end]).into_owned(), all[end..].to_vec())
}

#[tokio::test]
async fn https_origin_serves_files_with_alpn_http11() {
    let pki = pki();
    let server = start("http", &pki.opts("implicit", &[])).await;
    let mut conn = Conn::tls(server.local_addr(), &pki.connector(&[b"h2", b"http/1.1"])).await;
    assert_eq!(conn.alpn().as_deref(), Some(&b"http/1.1"[..]), "the origin speaks HTTP/1.1 only");
    let (head, body) = http11(
        &mut conn,
        "GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, www("index.html"));
}

#[tokio::test]
async fn proxy_port_speaks_tls_and_its_upstream_stays_plain() {
    let pki = pki();
    let origin = start("http", &Options::new()).await;
    let proxy = start("http-proxy", &pki.opts("implicit", &[])).await;
    let mut conn = Conn::tls(proxy.local_addr(), &pki.connector(&[b"http/1.1"])).await;
    let request = format!(
        "GET http://{0}/notes.txt HTTP/1.1\r\nHost: {0}\r\nConnection: close\r\n\r\n",
        origin.local_addr()
    );
    let (head, body) = http11(&mut conn, &request).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, www("notes.txt"));
}

#[tokio::test]
async fn http2_over_tls_with_alpn_h2() {
    let pki = pki();
    let server = start("http2", &pki.opts("implicit", &[])).await;
    let conn = Conn::tls(server.local_addr(), &pki.connector(&[b"h2", b"http/1.1"])).await;
    assert_eq!(conn.alpn().as_deref(), Some(&b"h2"[..]), "h2 is the server's first choice");
    let tls = conn.tls.expect("tls");
    let (mut send, driver) = timeout(LIMIT, h2::client::handshake(tls))
        .await
        .expect("h2 handshake timed out")
        .expect("h2 handshake");
    tokio::spawn(driver);
    let request = http::Request::get("https://localhost/index.html").body(()).expect("request");
    let (response, _) = send.send_request(request, true).expect("send");
    let response = timeout(LIMIT, response).await.expect("response timed out").expect("response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = timeout(LIMIT, body.data()).await.expect("body timed out") {
        let chunk: Bytes = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, www("index.html"));
}

#[tokio::test]
async fn http2_over_tls_serves_http11_when_alpn_says_so_or_says_nothing() {
    let pki = pki();
    let server = start("http2", &pki.opts("implicit", &[])).await;
    for alpn in [&[&b"http/1.1"[..]][..], &[]] {
        let mut conn = Conn::tls(server.local_addr(), &pki.connector(alpn)).await;
        let (head, body) = http11(&mut conn, "GET /notes.txt HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 "), "{alpn:?}: {head}");
        assert_eq!(body, www("notes.txt"));
    }
    // Over TLS an h2c upgrade is not taken (RFC 9113 §3.1): the request is answered in HTTP/1.1.
    let mut conn = Conn::tls(server.local_addr(), &pki.connector(&[b"http/1.1"])).await;
    let (head, _) = http11(
        &mut conn,
        "GET /notes.txt HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
}

#[tokio::test]
async fn http2_over_tls_with_h2_chosen_needs_the_preface() {
    let pki = pki();
    let server = start("http2", &pki.opts("implicit", &[])).await;
    let mut conn = Conn::tls(server.local_addr(), &pki.connector(&[b"h2"])).await;
    conn.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    while conn.more().await > 0 {}
    // RFC 9113 §3.4: GOAWAY (type 7) with PROTOCOL_ERROR (1).
    assert_eq!(conn.buf, [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
}

#[tokio::test]
async fn smtps_delivers_like_smtp() {
    let pki = pki();
    let server = start("smtp", &pki.opts("implicit", &[])).await;
    let mut conn = Conn::tls(server.local_addr(), &pki.connector(&[])).await;
    assert!(first(&conn.reply().await).starts_with("220 "));
    let ehlo = conn.command("EHLO crepes.fr").await;
    assert!(
        !ehlo.iter().any(|l| l.contains("STARTTLS")),
        "implicit TLS offers no STARTTLS: {ehlo:?}"
    );
    assert_eq!(conn.command("STARTTLS").await, ["503 TLS already active"]);
    mail_transaction(&mut conn).await;
}

/// MAIL, RCPT, DATA and the message, accepted; then QUIT.
async fn mail_transaction(conn: &mut Conn) {
    assert!(first(&conn.command("MAIL FROM:<alice@crepes.fr>").await).starts_with("250 "));
    assert!(first(&conn.command("RCPT TO:<bob@hamburger.edu>").await).starts_with("250 "));
    assert!(first(&conn.command("DATA").await).starts_with("354 "));
    assert!(first(&conn.command("Subject: over TLS\r\n\r\nhello\r\n.").await).starts_with("250 "));
    assert!(first(&conn.command("QUIT").await).starts_with("221 "));
}

#[tokio::test]
async fn pop3s_and_imaps_and_the_bundled_listeners() {
    let pki = pki();
    let pop3 = start("pop3", &pki.opts("implicit", &[])).await;
    pop3_login(&mut Conn::tls(pop3.local_addr(), &pki.connector(&[])).await).await;
    let imap = start("imap", &pki.opts("implicit", &[])).await;
    imap_login(&mut Conn::tls(imap.local_addr(), &pki.connector(&[])).await).await;
    // `with=pop3,imap` hands them the same TLS.
    let smtp = start("smtp", &pki.opts("implicit", &[("with", "pop3,imap")])).await;
    for (name, addr) in smtp.extra_addrs() {
        let mut conn = Conn::tls(*addr, &pki.connector(&[])).await;
        match name.as_str() {
            "pop3" => pop3_login(&mut conn).await,
            _ => imap_login(&mut conn).await,
        }
    }
    assert_eq!(smtp.extra_addrs().len(), 2);
}

async fn pop3_login(conn: &mut Conn) {
    assert!(conn.line().await.starts_with("+OK"));
    let capa = conn.multi("CAPA").await;
    assert!(!capa.contains(&"STLS".to_owned()), "{capa:?}");
    assert_eq!(conn.pop("USER bob").await, "+OK");
    assert_eq!(conn.pop("PASS hungry").await, "+OK user successfully logged on");
    assert!(conn.pop("STAT").await.starts_with("+OK 2 "));
    assert_eq!(conn.pop("QUIT").await, "+OK POP3 server signing off");
}

async fn imap_login(conn: &mut Conn) {
    let greeting = conn.line().await;
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1") && !greeting.contains("STARTTLS"),
        "{greeting}"
    );
    assert!(last(&conn.imap("a", "LOGIN bob hungry").await).starts_with("a OK"));
    let select = conn.imap("b", "SELECT INBOX").await;
    assert!(select.contains(&"* 2 EXISTS".to_owned()), "{select:?}");
    assert!(last(&conn.imap("c", "LOGOUT").await).starts_with("c OK"));
}

#[tokio::test]
async fn implicit_ftps_control_over_tls_and_clear_data() {
    let pki = pki();
    let server = start("ftp", &pki.opts("implicit", &[])).await;
    let mut conn = Conn::tls(server.local_addr(), &pki.connector(&[])).await;
    assert!(first(&conn.ftp("").await).starts_with("220 "));
    assert!(first(&conn.ftp("USER anonymous").await).starts_with("331 "));
    assert!(first(&conn.ftp("PASS guest").await).starts_with("230 "));
    let feat = conn.ftp("FEAT").await;
    assert!(feat.contains(&" PBSZ".to_owned()) && feat.contains(&" PROT".to_owned()), "{feat:?}");
    assert!(first(&conn.ftp("PROT C").await).starts_with("503 "), "PROT before PBSZ");
    assert_eq!(conn.ftp("PBSZ 0").await, ["200 PBSZ=0"]);
    assert!(first(&conn.ftp("PROT C").await).starts_with("200 "));
    assert!(first(&conn.ftp("PROT P").await).starts_with("536 "), "only clear data here");
    assert!(first(&conn.ftp("TYPE I").await).starts_with("200 "));
    let epsv = first(&conn.ftp("EPSV").await).to_owned();
    let port: u16 = epsv
        .trim_end_matches(')')
        .trim_end_matches('|')
        .rsplit('|')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{epsv}"));
    let mut data = timeout(LIMIT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("data timed out")
        .expect("data");
    assert!(first(&conn.ftp("RETR lines.txt").await).starts_with("150 "));
    let mut got = Vec::new();
    timeout(LIMIT, data.read_to_end(&mut got))
        .await
        .expect("data timed out")
        .expect("data");
    let want = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ftp/lines.txt")).expect("fixture");
    assert_eq!(got, want, "the data connection is clear text");
    assert!(first(&conn.ftp("").await).starts_with("226 "));
}

#[tokio::test]
async fn a_failed_handshake_closes_that_connection_and_not_the_server() {
    let pki = pki();
    let server = start("smtp", &pki.opts("implicit", &[])).await;
    let mut garbage = Conn::plain(server.local_addr()).await;
    garbage.send("EHLO not-tls\r\n").await;
    assert!(garbage.closed().await, "a client that does not speak TLS is closed");
    assert!(!String::from_utf8_lossy(&garbage.buf).contains("220"), "no clear-text greeting");
    let other = self::pki();
    let name = ServerName::try_from("localhost").expect("name");
    let tcp = TcpStream::connect(server.local_addr()).await.expect("connect");
    let refused = timeout(LIMIT, other.connector(&[]).connect(name, tcp))
        .await
        .expect("handshake timed out");
    assert!(refused.is_err(), "a client trusting another CA fails its handshake");
    let mut conn = Conn::tls(server.local_addr(), &pki.connector(&[])).await;
    assert!(first(&conn.reply().await).starts_with("220 "), "the server goes on");
    assert!(!server.is_finished());
}

#[tokio::test]
async fn a_client_silent_before_its_handshake_makes_room_at_the_cap() {
    let pki = pki();
    let server = start("tcp-upper", &pki.opts("implicit", &[("max_connections", "1")])).await;
    let mut silent = Conn::plain(server.local_addr()).await;
    // The silent connection is taken for one waiting for its client once the server has tried
    // to read its ClientHello; until then a newcomer is turned away, so it tries again.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let served = loop {
        assert!(tokio::time::Instant::now() < deadline, "no room was made for a TLS client");
        let tcp = TcpStream::connect(server.local_addr()).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        if let Ok(Ok(tls)) = timeout(LIMIT, pki.connector(&[]).connect(name, tcp)).await {
            let mut conn = Conn {
                plain: None,
                tls: Some(Box::new(tls)),
                buf: Vec::new(),
            };
            conn.send("made room\n").await;
            break conn.line().await;
        }
    };
    assert_eq!(served, "MADE ROOM");
    assert!(silent.closed().await, "the silent one was closed to make room");
}

// ---- SMTP STARTTLS (RFC 3207) ----

async fn smtp_plain(server: &RunningServer) -> Conn {
    let mut conn = Conn::plain(server.local_addr()).await;
    assert!(first(&conn.reply().await).starts_with("220 "));
    conn
}

fn has_starttls(ehlo: &[String]) -> bool {
    ehlo.iter().any(|l| l.get(4..) == Some("STARTTLS"))
}

#[tokio::test]
async fn smtp_starttls_is_offered_before_tls_only_and_resets_the_session() {
    let pki = pki();
    let server = start("smtp", &pki.opts("starttls", &[])).await;
    let mut conn = smtp_plain(&server).await;
    assert!(has_starttls(&conn.command("EHLO crepes.fr").await));
    assert_eq!(conn.command("STARTTLS now").await, ["501 Syntax error (no parameters allowed)"]);
    assert!(first(&conn.command("STARTTLS").await).starts_with("220 "));
    conn.upgrade(&pki.connector(&[])).await;
    // RFC 3207 §4.2: the EHLO from before is forgotten, and STARTTLS is offered no more.
    assert!(first(&conn.command("MAIL FROM:<alice@crepes.fr>").await).starts_with("503 "));
    let ehlo = conn.command("EHLO crepes.fr").await;
    assert!(first(&ehlo).starts_with("250") && !has_starttls(&ehlo), "{ehlo:?}");
    assert_eq!(conn.command("STARTTLS").await, ["503 TLS already active"]);
    mail_transaction(&mut conn).await;
}

#[tokio::test]
async fn smtp_without_tls_has_no_starttls() {
    let server = start("smtp", &Options::new()).await;
    let mut conn = smtp_plain(&server).await;
    assert!(!has_starttls(&conn.command("EHLO crepes.fr").await));
    assert_eq!(conn.command("STARTTLS").await, ["502 Command not implemented"]);
}

/// Sends STARTTLS with HELP pipelined behind it in the same write, upgrades, sends NOOP, and
/// returns the first reply that came over TLS: NOOP's unless HELP was run.
async fn smtp_pipelined(pki: &Pki, server: &RunningServer) -> Vec<String> {
    let mut conn = smtp_plain(server).await;
    assert!(has_starttls(&conn.command("EHLO crepes.fr").await));
    conn.send("STARTTLS\r\nHELP\r\n").await;
    assert!(first(&conn.reply().await).starts_with("220 "));
    conn.upgrade(&pki.connector(&[])).await;
    conn.command("NOOP").await
}

#[tokio::test]
async fn smtp_commands_pipelined_after_starttls_are_not_run() {
    let pki = pki();
    let good = start("smtp", &pki.opts("starttls", &[])).await;
    assert_eq!(smtp_pipelined(&pki, &good).await, ["250 OK"]);
    let faulty = start("smtp", &pki.opts("starttls", &[("fault", "starttls-runs-pipelined")])).await;
    assert!(
        first(&smtp_pipelined(&pki, &faulty).await).starts_with("214 "),
        "the fault runs HELP over TLS"
    );
}

#[tokio::test]
async fn smtp_starttls_faults_are_visible() {
    let pki = pki();
    let again = start("smtp", &pki.opts("starttls", &[("fault", "starttls-again")])).await;
    let mut conn = smtp_plain(&again).await;
    conn.command("EHLO crepes.fr").await;
    conn.command("STARTTLS").await;
    conn.upgrade(&pki.connector(&[])).await;
    assert!(
        has_starttls(&conn.command("EHLO crepes.fr").await),
        "the fault offers STARTTLS again"
    );
    assert!(first(&conn.command("STARTTLS").await).starts_with("220 "));

    let keeps = start("smtp", &pki.opts("starttls", &[("fault", "starttls-keeps-ehlo")])).await;
    let mut conn = smtp_plain(&keeps).await;
    conn.command("EHLO crepes.fr").await;
    conn.command("STARTTLS").await;
    conn.upgrade(&pki.connector(&[])).await;
    assert!(
        first(&conn.command("MAIL FROM:<alice@crepes.fr>").await).starts_with("250 "),
        "the fault keeps EHLO"
    );
}

#[tokio::test]
async fn smtp_require_tls_refuses_mail_in_clear_text() {
    let pki = pki();
    let server = start("smtp", &pki.opts("starttls", &[("require_tls", "yes")])).await;
    let mut conn = smtp_plain(&server).await;
    assert!(has_starttls(&conn.command("EHLO crepes.fr").await));
    for command in [
        "MAIL FROM:<alice@crepes.fr>",
        "RCPT TO:<bob@hamburger.edu>",
        "DATA",
        "HELO crepes.fr",
        "RSET",
    ] {
        assert_eq!(
            conn.command(command).await,
            ["530 Must issue a STARTTLS command first"],
            "{command}"
        );
    }
    assert_eq!(conn.command("NOOP").await, ["250 OK"]);
    assert!(first(&conn.command("STARTTLS").await).starts_with("220 "));
    conn.upgrade(&pki.connector(&[])).await;
    conn.command("EHLO crepes.fr").await;
    mail_transaction(&mut conn).await;
}

// ---- POP3 STLS (RFC 2595 §4) ----

async fn pop3_plain(server: &RunningServer) -> Conn {
    let mut conn = Conn::plain(server.local_addr()).await;
    assert!(conn.line().await.starts_with("+OK"));
    conn
}

fn offers_stls(capa: &[String]) -> bool {
    capa.iter().any(|l| l == "STLS")
}

#[tokio::test]
async fn pop3_stls_is_offered_before_tls_only() {
    let pki = pki();
    let server = start("pop3", &pki.opts("starttls", &[])).await;
    let mut conn = pop3_plain(&server).await;
    assert!(offers_stls(&conn.multi("CAPA").await));
    assert!(conn.pop("STLS now").await.starts_with("-ERR"));
    assert!(conn.pop("STLS").await.starts_with("+OK"));
    conn.upgrade(&pki.connector(&[])).await;
    assert!(!offers_stls(&conn.multi("CAPA").await));
    assert!(conn.pop("STLS").await.starts_with("-ERR"));
    pop3_login_after_greeting(&mut conn).await;
}

async fn pop3_login_after_greeting(conn: &mut Conn) {
    assert_eq!(conn.pop("USER bob").await, "+OK");
    assert_eq!(conn.pop("PASS hungry").await, "+OK user successfully logged on");
    assert!(conn.pop("STAT").await.starts_with("+OK 2 "));
}

#[tokio::test]
async fn pop3_stls_only_in_authorization_state() {
    let pki = pki();
    let server = start("pop3", &pki.opts("starttls", &[])).await;
    let mut conn = pop3_plain(&server).await;
    pop3_login_after_greeting(&mut conn).await;
    assert!(!offers_stls(&conn.multi("CAPA").await), "STLS is for the AUTHORIZATION state");
    assert_eq!(conn.pop("STLS").await, "-ERR command not valid in this state");
    let faulty = start("pop3", &pki.opts("starttls", &[("fault", "stls-after-login")])).await;
    let mut conn = pop3_plain(&faulty).await;
    pop3_login_after_greeting(&mut conn).await;
    assert!(conn.pop("STLS").await.starts_with("+OK"), "the fault takes STLS in TRANSACTION");
}

async fn pop3_pipelined(pki: &Pki, server: &RunningServer) -> String {
    let mut conn = pop3_plain(server).await;
    conn.send("STLS\r\nXYZZY\r\n").await;
    assert!(conn.line().await.starts_with("+OK"));
    conn.upgrade(&pki.connector(&[])).await;
    conn.send("CAPA\r\n").await;
    conn.line().await
}

#[tokio::test]
async fn pop3_commands_pipelined_after_stls_are_not_run() {
    let pki = pki();
    let good = start("pop3", &pki.opts("starttls", &[])).await;
    assert_eq!(pop3_pipelined(&pki, &good).await, "+OK Capability list follows");
    let faulty = start("pop3", &pki.opts("starttls", &[("fault", "starttls-runs-pipelined")])).await;
    assert_eq!(
        pop3_pipelined(&pki, &faulty).await,
        "-ERR unknown command",
        "the fault runs XYZZY over TLS"
    );
}

#[tokio::test]
async fn pop3_starttls_again_fault() {
    let pki = pki();
    let server = start("pop3", &pki.opts("starttls", &[("fault", "starttls-again")])).await;
    let mut conn = pop3_plain(&server).await;
    assert!(conn.pop("STLS").await.starts_with("+OK"));
    conn.upgrade(&pki.connector(&[])).await;
    assert!(offers_stls(&conn.multi("CAPA").await), "the fault offers STLS again");
    assert!(conn.pop("STLS").await.starts_with("+OK"));
}

#[tokio::test]
async fn pop3_require_tls_refuses_logins_in_clear_text() {
    let pki = pki();
    let server = start("pop3", &pki.opts("starttls", &[("require_tls", "yes")])).await;
    let mut conn = pop3_plain(&server).await;
    let capa = conn.multi("CAPA").await;
    assert!(offers_stls(&capa) && !capa.contains(&"USER".to_owned()), "{capa:?}");
    for command in ["USER bob", "PASS hungry", "APOP bob 0123456789abcdef0123456789abcdef"] {
        assert!(conn.pop(command).await.starts_with("-ERR"), "{command}");
    }
    assert!(conn.pop("STLS").await.starts_with("+OK"));
    conn.upgrade(&pki.connector(&[])).await;
    assert!(conn.multi("CAPA").await.contains(&"USER".to_owned()));
    pop3_login_after_greeting(&mut conn).await;
}

// ---- IMAP STARTTLS (RFC 3501 §6.2.1, RFC 9051 §6.2.1) ----

async fn imap_plain(server: &RunningServer) -> (Conn, String) {
    let mut conn = Conn::plain(server.local_addr()).await;
    let greeting = conn.line().await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    (conn, greeting)
}

fn capability(lines: &[String]) -> String {
    lines.iter().find(|l| l.starts_with("* CAPABILITY ")).cloned().unwrap_or_default()
}

#[tokio::test]
async fn imap_starttls_is_offered_before_tls_only() {
    let pki = pki();
    let server = start("imap", &pki.opts("starttls", &[])).await;
    let (mut conn, greeting) = imap_plain(&server).await;
    assert!(greeting.contains(" STARTTLS") && !greeting.contains("LOGINDISABLED"), "{greeting}");
    assert!(capability(&conn.imap("a", "CAPABILITY").await).contains(" STARTTLS"));
    assert!(last(&conn.imap("b", "STARTTLS now").await).starts_with("b BAD"));
    assert!(last(&conn.imap("c", "STARTTLS").await).starts_with("c OK"));
    conn.upgrade(&pki.connector(&[])).await;
    let caps = capability(&conn.imap("d", "CAPABILITY").await);
    assert!(caps.starts_with("* CAPABILITY IMAP4rev1") && !caps.contains("STARTTLS"), "{caps}");
    assert!(last(&conn.imap("e", "STARTTLS").await).starts_with("e BAD"));
    let login = conn.imap("f", "LOGIN bob hungry").await;
    assert!(last(&login).starts_with("f OK") && !last(&login).contains("STARTTLS"), "{login:?}");
    let select = conn.imap("g", "SELECT INBOX").await;
    assert!(select.contains(&"* 2 EXISTS".to_owned()), "{select:?}");
}

#[tokio::test]
async fn imap_without_tls_has_no_starttls() {
    let server = start("imap", &Options::new()).await;
    let (mut conn, greeting) = imap_plain(&server).await;
    assert!(!greeting.contains("STARTTLS"));
    assert!(last(&conn.imap("a", "STARTTLS").await).starts_with("a BAD"));
    assert!(last(&conn.imap("b", "LOGIN bob hungry").await).starts_with("b OK"));
}

async fn imap_pipelined(pki: &Pki, server: &RunningServer) -> Vec<String> {
    let (mut conn, _) = imap_plain(server).await;
    conn.send("s STARTTLS\r\nx CAPABILITY\r\n").await;
    assert!(last(&conn.until("s").await).starts_with("s OK"));
    conn.upgrade(&pki.connector(&[])).await;
    conn.imap("n", "NOOP").await
}

#[tokio::test]
async fn imap_commands_pipelined_after_starttls_are_not_run() {
    let pki = pki();
    let good = start("imap", &pki.opts("starttls", &[])).await;
    let lines = imap_pipelined(&pki, &good).await;
    assert!(!lines.iter().any(|l| l.starts_with("x ")), "{lines:?}");
    let faulty = start("imap", &pki.opts("starttls", &[("fault", "starttls-runs-pipelined")])).await;
    let lines = imap_pipelined(&pki, &faulty).await;
    assert!(
        lines.iter().any(|l| l.starts_with("x OK")),
        "the fault runs CAPABILITY over TLS: {lines:?}"
    );
}

#[tokio::test]
async fn imap_starttls_again_fault() {
    let pki = pki();
    let server = start("imap", &pki.opts("starttls", &[("fault", "starttls-again")])).await;
    let (mut conn, _) = imap_plain(&server).await;
    conn.imap("a", "STARTTLS").await;
    conn.upgrade(&pki.connector(&[])).await;
    assert!(capability(&conn.imap("b", "CAPABILITY").await).contains(" STARTTLS"));
    assert!(last(&conn.imap("c", "STARTTLS").await).starts_with("c OK"));
}

#[tokio::test]
async fn imap_require_tls_disables_login_in_clear_text() {
    let pki = pki();
    let server = start("imap", &pki.opts("starttls", &[("require_tls", "yes")])).await;
    let (mut conn, greeting) = imap_plain(&server).await;
    assert!(greeting.contains(" STARTTLS") && greeting.contains(" LOGINDISABLED"), "{greeting}");
    assert!(capability(&conn.imap("a", "CAPABILITY").await).contains(" LOGINDISABLED"));
    assert!(last(&conn.imap("b", "LOGIN bob hungry").await).starts_with("b NO [PRIVACYREQUIRED]"));
    assert!(last(&conn.imap("c", "AUTHENTICATE PLAIN").await).starts_with("c NO"));
    assert!(last(&conn.imap("d", "SELECT INBOX").await).starts_with("d BAD"));
    assert!(last(&conn.imap("e", "STARTTLS").await).starts_with("e OK"));
    conn.upgrade(&pki.connector(&[])).await;
    let caps = capability(&conn.imap("f", "CAPABILITY").await);
    assert!(!caps.contains("LOGINDISABLED") && !caps.contains("STARTTLS"), "{caps}");
    assert!(last(&conn.imap("g", "LOGIN bob hungry").await).starts_with("g OK"));

    let faulty = start(
        "imap",
        &pki.opts("starttls", &[("require_tls", "yes"), ("fault", "login-in-clear")]),
    )
    .await;
    let (mut conn, greeting) = imap_plain(&faulty).await;
    assert!(greeting.contains(" LOGINDISABLED"));
    assert!(
        last(&conn.imap("a", "LOGIN bob hungry").await).starts_with("a OK"),
        "the fault logs in in clear text"
    );
}

// ---- the reference clients ----

async fn client(name: &str, server: SocketAddr, pairs: &[(&str, &str)], args: &[&str]) -> (i32, Vec<String>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let code = timeout(Duration::from_secs(15), run_client(name, server, &opts(pairs), &args, tx))
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
async fn smtp_client_speaks_smtps_with_tls_ca() {
    let pki = pki();
    let server = start("smtp", &pki.opts("implicit", &[])).await;
    let (code, lines) = client("smtp-client", server.local_addr(), &[("tls_ca", path(&pki.ca))], &[]).await;
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(lines.last().map(String::as_str), Some("S: 221 hamburger.edu closing connection"));
    let other = self::pki();
    let (code, lines) = client("smtp-client", server.local_addr(), &[("tls_ca", path(&other.ca))], &[]).await;
    assert_eq!(code, 1);
    assert!(lines.iter().any(|l| l.contains("TLS handshake")), "{lines:#?}");
}

#[tokio::test]
async fn ftp_client_gets_a_file_over_implicit_ftps() {
    let pki = pki();
    let server = start("ftp", &pki.opts("implicit", &[])).await;
    let out = tempfile::tempdir().expect("tempdir");
    let local = out.path().join("lines.txt");
    for passive in [false, true] {
        let mut args = vec!["get", "lines.txt", path(&local)];
        if passive {
            args.insert(0, "--passive");
        }
        let (code, lines) = client("ftp-client", server.local_addr(), &[("tls_ca", path(&pki.ca))], &args).await;
        assert_eq!(code, 0, "passive {passive}: {lines:#?}");
        let want = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ftp/lines.txt")).expect("fixture");
        assert_eq!(std::fs::read(&local).expect("downloaded"), want);
    }
}

#[tokio::test]
async fn http2_client_over_tls_keeps_its_relay_and_faults() {
    let pki = pki();
    let server = start("http2", &pki.opts("implicit", &[])).await;
    let out = tempfile::tempdir().expect("tempdir");
    let local = out.path().join("index.html");
    let ca = ("tls_ca", path(&pki.ca));
    let (code, lines) = client("http2-client", server.local_addr(), &[ca], &["get", "/index.html", path(&local)]).await;
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(std::fs::read(&local).expect("downloaded"), www("index.html"));
    // The relay sits above TLS: its faults still reach the server, which refuses this one.
    let (code, lines) = client(
        "http2-client",
        server.local_addr(),
        &[ca, ("fault", "no-preface")],
        &["get", "/index.html", path(&local)],
    )
    .await;
    assert_eq!(code, 1, "{lines:#?}");
    // A server that chooses no protocol is not spoken HTTP/2 to (RFC 9113 §3.2) ...
    let no_alpn = start("tcp-upper", &pki.opts("implicit", &[])).await;
    let (code, lines) = client("http2-client", no_alpn.local_addr(), &[ca], &["get", "/index.html", path(&local)]).await;
    assert_eq!(code, 1);
    assert!(lines.iter().any(|l| l.contains("did not choose h2")), "{lines:#?}");
    // ... and one that offers only HTTP/1.1 refuses the handshake (RFC 7301 §3.2).
    let origin = start("http", &pki.opts("implicit", &[])).await;
    let (code, lines) = client("http2-client", origin.local_addr(), &[ca], &["get", "/index.html", path(&local)]).await;
    assert_eq!(code, 1);
    assert!(lines.iter().any(|l| l.contains("TLS handshake")), "{lines:#?}");
}

// ---- bad options ----

fn bad_key(result: Result<RunningServer, Error>) -> String {
    match result {
        Err(Error::BadOption { key, .. }) => key,
        Err(other) => panic!("not a BadOption: {other}"),
        Ok(_) => panic!("started"),
    }
}

#[tokio::test]
async fn tls_options_are_checked() {
    let pki = pki();
    for name in [
        "tcp-upper",
        "socket-timeout",
        "http",
        "http-proxy",
        "http2",
        "smtp",
        "pop3",
        "imap",
        "ftp",
    ] {
        let missing_cert = opts(&[("tls", "implicit"), ("tls_key", path(&pki.key))]);
        assert_eq!(bad_key(try_start(name, &missing_cert).await), "tls_cert", "{name}");
        let missing_key = opts(&[("tls", "implicit"), ("tls_cert", path(&pki.cert))]);
        assert_eq!(bad_key(try_start(name, &missing_key).await), "tls_key", "{name}");
        assert_eq!(bad_key(try_start(name, &pki.opts("sometimes", &[])).await), "tls", "{name}");
        assert_eq!(
            bad_key(try_start(name, &opts(&[("tls_cert", path(&pki.cert))])).await),
            "tls_cert",
            "{name}"
        );
        let not_pem = pki.opts("implicit", &[]);
        let mut not_pem = not_pem;
        not_pem.insert("tls_cert".to_owned(), path(&pki.key).to_owned());
        assert_eq!(
            bad_key(try_start(name, &not_pem).await),
            "tls_cert",
            "{name}: a key is not a certificate"
        );
        let mail = ["smtp", "pop3", "imap"].contains(&name);
        match try_start(name, &pki.opts("starttls", &[])).await {
            Ok(_) => assert!(mail, "{name} has no STARTTLS"),
            Err(Error::BadOption { key, why, .. }) => {
                assert!(!mail && key == "tls" && why.contains("STARTTLS"), "{name}: {key}: {why}")
            }
            Err(e) => panic!("{name}: {e}"),
        }
        let require = try_start(name, &pki.opts("starttls", &[("require_tls", "yes")])).await;
        match (mail, require) {
            (true, Ok(_)) => {}
            (false, Err(Error::UnknownOption { key, .. })) => assert_eq!(key, "require_tls"),
            (_, other) => panic!("{name}: {other:?}"),
        }
        if mail {
            let implicit = pki.opts("implicit", &[("require_tls", "yes")]);
            assert_eq!(bad_key(try_start(name, &implicit).await), "require_tls", "{name}");
            assert_eq!(
                bad_key(try_start(name, &opts(&[("require_tls", "yes")])).await),
                "require_tls",
                "{name}"
            );
            assert_eq!(
                bad_key(try_start(name, &pki.opts("starttls", &[("require_tls", "maybe")])).await),
                "require_tls"
            );
        }
    }
    let unknown = try_start("smtp", &opts(&[("tls_ca", "x")])).await;
    assert!(matches!(unknown, Err(Error::UnknownOption { .. })), "{unknown:?}");
    let fault = try_start("pop3", &opts(&[("fault", "nosuch")])).await;
    match fault {
        Err(Error::BadOption { why, .. }) => assert!(why.contains("stls-after-login"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn client_tls_ca_is_checked() {
    let server = start("smtp", &Options::new()).await;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    for name in ["smtp-client", "ftp-client", "http2-client"] {
        let args: Vec<String> = match name {
            "smtp-client" => Vec::new(),
            _ => vec!["get".into(), "/x".into(), "x".into()],
        };
        let result = run_client(
            name,
            server.local_addr(),
            &opts(&[("tls_ca", "/nonexistent/ca.pem")]),
            &args,
            tx.clone(),
        )
        .await;
        match result {
            Err(Error::BadOption { key, .. }) => assert_eq!(key, "tls_ca", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}
