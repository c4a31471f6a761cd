//! Loopback tests of the `ftp` reference: control and data connections over
//! real sockets, against the fixtures in `fixtures/ftp` (or a temporary copy).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reference_servers::{start_server, Error, Options, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ftp")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture")
}

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn try_start(pairs: &[(&str, &str)]) -> Result<RunningServer, Error> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    timeout(LIMIT, start_server("ftp", loopback, &opts(pairs)))
        .await
        .expect("start_server timed out")
}

async fn start(pairs: &[(&str, &str)]) -> RunningServer {
    try_start(pairs).await.expect("start_server failed")
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects and reads the 220 greeting.
    async fn connect(addr: SocketAddr) -> Client {
        let stream = timeout(LIMIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        let mut client = Client { stream, buf: Vec::new() };
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        client
    }

    /// Connects and logs in as bob.
    async fn login(addr: SocketAddr) -> Client {
        let mut client = Client::connect(addr).await;
        client.expect("USER bob", "331 ").await;
        client.expect("PASS hungry", "230 ").await;
        client
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        timeout(LIMIT, self.stream.write_all(bytes.as_ref()))
            .await
            .expect("write timed out")
            .expect("write");
    }

    /// Sends one command line (CRLF appended).
    async fn cmd(&mut self, line: &str) {
        self.send(format!("{line}\r\n")).await;
    }

    async fn more(&mut self) -> usize {
        self.buf.reserve(65536);
        let read = self.stream.read_buf(&mut self.buf);
        timeout(LIMIT, read).await.expect("no reply in time").expect("read")
    }

    /// One CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
                return String::from_utf8(line).expect("utf-8 reply");
            }
            assert!(
                self.more().await > 0,
                "closed before a whole line; have {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// One whole reply: a line, or `NNN-` lines up to the `NNN ` line (RFC 959 §4.2), joined by CRLF.
    async fn reply(&mut self) -> String {
        let first = self.line().await;
        if first.len() < 4 || &first[3..4] != "-" {
            return first;
        }
        let end = format!("{} ", &first[..3]);
        let mut lines = vec![first];
        loop {
            let line = self.line().await;
            let last = line.starts_with(&end);
            lines.push(line);
            if last {
                return lines.join("\r\n");
            }
        }
    }

    /// Sends `line` and checks that the reply starts with `code`; returns the reply.
    async fn expect(&mut self, line: &str, code: &str) -> String {
        self.cmd(line).await;
        let reply = self.reply().await;
        assert!(reply.starts_with(code), "{line:?} got {reply:?}, wanted {code}");
        reply
    }

    /// PASV, and a connection to the port it names.
    async fn pasv(&mut self) -> TcpStream {
        let reply = self.expect("PASV", "227 ").await;
        let inside = reply.split('(').nth(1).and_then(|r| r.split(')').next()).expect("(h1,...,p2)");
        let n: Vec<u16> = inside.split(',').map(|x| x.parse().expect("number")).collect();
        assert_eq!(n.len(), 6, "{reply}");
        let ip = std::net::Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8);
        assert!(ip.is_loopback(), "{reply}");
        connect(SocketAddr::from((ip, n[4] * 256 + n[5]))).await
    }

    /// EPSV, and a connection to the port it names.
    async fn epsv(&mut self) -> TcpStream {
        let reply = self.expect("EPSV", "229 ").await;
        let port: u16 = reply
            .split("(|||")
            .nth(1)
            .and_then(|r| r.split("|)").next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {reply}"));
        let mut addr = self.stream.peer_addr().expect("peer");
        addr.set_port(port);
        connect(addr).await
    }

    /// `command` over a fresh passive connection: 150, the bytes, 226.
    async fn fetch(&mut self, command: &str) -> Vec<u8> {
        let mut data = self.pasv().await;
        self.expect(command, "150 ").await;
        let bytes = read_all(&mut data).await;
        let done = self.reply().await;
        assert!(done.starts_with("226 "), "{command}: {done}");
        bytes
    }

    /// Uploads `bytes` with `command` over a fresh passive connection.
    async fn upload(&mut self, command: &str, bytes: &[u8]) {
        let mut data = self.pasv().await;
        self.expect(command, "150 ").await;
        data.write_all(bytes).await.expect("upload");
        drop(data);
        let done = self.reply().await;
        assert!(done.starts_with("226 "), "{command}: {done}");
    }

    /// True once the server has closed the control connection.
    async fn closed(&mut self) -> bool {
        loop {
            match timeout(LIMIT, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(LIMIT, TcpStream::connect(addr))
        .await
        .expect("data connect timed out")
        .expect("data connect")
}

async fn read_all(data: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    timeout(LIMIT, data.read_to_end(&mut bytes))
        .await
        .expect("data in time")
        .expect("data read");
    bytes
}

/// Bare LF to CRLF, as TYPE A sends text.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read fixtures") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[tokio::test]
async fn login_and_the_commands_before_it() {
    let server = start(&[]).await;
    let mut c = Client::connect(server.local_addr()).await;
    for command in ["PWD", "LIST", "RETR lines.txt", "CWD pub", "PASV", "TYPE I", "SIZE lines.txt"] {
        c.expect(command, "530 ").await;
    }
    c.expect("SYST", "215 UNIX Type: L8").await;
    c.expect("NOOP", "200 ").await;
    c.expect("PASS hungry", "503 ").await;
    c.expect("USER bob", "331 ").await;
    c.expect("PASS wrong", "530 ").await;
    c.expect("PWD", "530 ").await;
    c.expect("USER nobody-here", "331 ").await;
    c.expect("PASS hungry", "530 ").await;
    c.expect("USER bob", "331 ").await;
    c.expect("PASS hungry", "230 ").await;
    c.expect("PWD", "257 \"/\"").await;
    c.expect("ACCT x", "202 ").await;
    c.expect("QUIT", "221 ").await;
    assert!(c.closed().await, "QUIT closes the connection");

    let mut anonymous = Client::connect(server.local_addr()).await;
    anonymous.expect("USER anonymous", "331 ").await;
    anonymous.expect("PASS guest@example.com", "230 ").await;
    assert_eq!(anonymous.fetch("RETR pub/nested.txt").await, crlf(&fixture("pub/nested.txt")));
}

#[tokio::test]
async fn three_failed_logins_close_the_connection() {
    let server = start(&[]).await;
    let mut c = Client::connect(server.local_addr()).await;
    for _ in 0..2 {
        c.expect("USER bob", "331 ").await;
        c.expect("PASS nope", "530 ").await;
    }
    c.expect("USER bob", "331 ").await;
    c.expect("PASS nope", "421 ").await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn a_users_file_replaces_the_seed_accounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    std::fs::write(&users, "# accounts\ncarol:secret\nguest:*\n").expect("write users");
    let server = start(&[("users", users.to_str().expect("utf-8"))]).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("USER bob", "331 ").await;
    c.expect("PASS hungry", "530 ").await;
    c.expect("USER guest", "331 ").await;
    c.expect("PASS anything", "230 ").await;
    c.expect("USER carol", "331 ").await;
    c.expect("PASS secret", "230 ").await;
}

#[tokio::test]
async fn passive_retr_sends_exact_bytes_in_type_i_and_crlf_text_in_type_a() {
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    let lines = fixture("lines.txt");
    let converted = crlf(&lines);
    assert_ne!(lines, converted, "the fixture has bare LFs");
    // RFC 959 §3.1.1.1: TYPE A is the default.
    assert_eq!(c.fetch("RETR lines.txt").await, converted);
    c.expect("SIZE lines.txt", &format!("213 {}", converted.len())).await;
    c.expect("TYPE I", "200 ").await;
    assert_eq!(c.fetch("RETR lines.txt").await, lines);
    c.expect("SIZE lines.txt", &format!("213 {}", lines.len())).await;
    let binary = fixture("binary.bin");
    assert_eq!(c.fetch("RETR binary.bin").await, binary);
    assert_eq!(c.fetch("RETR with space.txt").await, fixture("with space.txt"));
    c.expect("TYPE A", "200 ").await;
    assert_eq!(c.fetch("RETR /pub/nested.txt").await, crlf(&fixture("pub/nested.txt")));
}

#[tokio::test]
async fn the_fixture_binary_is_what_its_readme_says() {
    let mut expected: Vec<u8> = (0..=255).collect();
    let mut x: u32 = 0x2545_F491;
    while expected.len() < 40_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        expected.push((x >> 24) as u8);
    }
    assert!(fixture("binary.bin") == expected, "binary.bin differs from fixtures/ftp/README.md");
}

#[tokio::test]
async fn epsv_and_epsv_all() {
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("TYPE I", "200 ").await;
    let mut data = c.epsv().await;
    c.expect("RETR binary.bin", "150 ").await;
    assert_eq!(read_all(&mut data).await, fixture("binary.bin"));
    let done = c.reply().await;
    assert!(done.starts_with("226 "), "{done}");
    c.expect("EPSV 2", "522 ").await;
    c.expect("EPSV x", "501 ").await;
    c.expect("EPSV ALL", "200 ").await;
    c.expect("PASV", "503 ").await;
    c.expect("PORT 127,0,0,1,200,10", "503 ").await;
    let mut data = c.epsv().await;
    c.expect("NLST", "150 ").await;
    assert!(!read_all(&mut data).await.is_empty());
    let done = c.reply().await;
    assert!(done.starts_with("226 "), "{done}");
}

#[tokio::test]
async fn active_mode_connects_to_the_client() {
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("TYPE I", "200 ").await;
    for eprt in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        if eprt {
            c.expect(&format!("EPRT |1|127.0.0.1|{port}|"), "200 ").await;
        } else {
            c.expect(&format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff), "200 ").await;
        }
        c.expect("RETR binary.bin", "150 ").await;
        let (mut data, _) = timeout(LIMIT, listener.accept()).await.expect("server connects").expect("accept");
        assert_eq!(read_all(&mut data).await, fixture("binary.bin"));
        let done = c.reply().await;
        assert!(done.starts_with("226 "), "{done}");
    }
}

#[tokio::test]
async fn port_to_another_host_or_a_privileged_port_is_refused() {
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    // RFC 2577 §3: the bounce attack.
    c.expect("PORT 192,0,2,1,31,64", "504 ").await;
    c.expect("EPRT |1|192.0.2.1|8000|", "504 ").await;
    c.expect("EPRT |2|::1|8000|", "504 ").await;
    c.expect("PORT 127,0,0,1,0,25", "504 ").await;
    // The refused setup leaves none behind.
    c.expect("RETR lines.txt", "425 ").await;
    c.expect("PORT 127,0,0,1,300,1", "501 ").await;
    c.expect("PORT 127,0,0,1", "501 ").await;
    c.expect("EPRT |3|x|1|", "522 ").await;
    c.expect("EPRT |1|::1|8000|", "501 ").await;
    c.expect("EPRT garbage", "501 ").await;
}

#[tokio::test]
async fn list_and_nlst() {
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    let names = String::from_utf8(c.fetch("NLST").await).expect("utf-8");
    assert_eq!(names, "README.md\r\nbinary.bin\r\nlines.txt\r\npub\r\nwith space.txt\r\n");
    let listing = String::from_utf8(c.fetch("LIST").await).expect("utf-8");
    let lines: Vec<&str> = listing.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 5, "{listing}");
    let binary = lines.iter().find(|l| l.ends_with(" binary.bin")).expect("binary.bin listed");
    assert!(binary.starts_with("-rw"), "{binary}");
    assert!(binary.contains(" 40000 "), "{binary}");
    assert!(lines.iter().any(|l| l.starts_with('d') && l.ends_with(" pub")), "{listing}");
    let listing = String::from_utf8(c.fetch("LIST -la pub").await).expect("utf-8");
    assert!(listing.ends_with(" nested.txt\r\n"), "{listing}");
    assert_eq!(c.fetch("NLST pub").await, b"nested.txt\r\n");
    c.expect("LIST missing", "550 ").await;
}

#[tokio::test]
async fn folders_cwd_cdup_pwd() {
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("CWD pub", "250 ").await;
    c.expect("PWD", "257 \"/pub\"").await;
    assert_eq!(c.fetch("RETR nested.txt").await, crlf(&fixture("pub/nested.txt")));
    c.expect("CDUP", "250 ").await;
    c.expect("PWD", "257 \"/\"").await;
    c.expect("CWD lines.txt", "550 ").await;
    c.expect("CWD nowhere", "550 ").await;
    c.expect("CWD", "501 ").await;
    c.expect("XPWD", "257 \"/\"").await;
}

#[tokio::test]
async fn sizes_and_modification_times() {
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("TYPE I", "200 ").await;
    c.expect("SIZE binary.bin", "213 40000").await;
    c.expect("SIZE pub", "550 ").await;
    c.expect("SIZE missing", "550 ").await;
    let mdtm = c.expect("MDTM binary.bin", "213 ").await;
    let stamp = &mdtm[4..];
    assert_eq!(stamp.len(), 14, "{mdtm}");
    assert!(stamp.bytes().all(|b| b.is_ascii_digit()), "{mdtm}");
    assert!(stamp.as_bytes()[0] == b'1' || stamp.as_bytes()[0] == b'2', "{mdtm}");
    c.expect("MDTM missing", "550 ").await;
}

#[tokio::test]
async fn rest_restarts_a_retr() {
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("TYPE I", "200 ").await;
    c.expect("REST 30000", "350 ").await;
    assert_eq!(c.fetch("RETR binary.bin").await, fixture("binary.bin")[30_000..]);
    // Used once: the next RETR starts at 0 again.
    assert_eq!(c.fetch("RETR binary.bin").await, fixture("binary.bin"));
    c.expect("REST x", "501 ").await;
}

#[tokio::test]
async fn feat_help_stat_and_the_one_letter_commands() {
    let server = start(&[]).await;
    let mut c = Client::connect(server.local_addr()).await;
    let feat = c.expect("FEAT", "211-").await;
    let lines: Vec<&str> = feat.split("\r\n").collect();
    assert_eq!(lines.last(), Some(&"211 End"), "{feat}");
    // RFC 2389 §3.2: each feature line starts with one space.
    let features: Vec<&str> = lines[1..lines.len() - 1].to_vec();
    for feature in ["SIZE", "MDTM", "REST STREAM", "EPSV", "UTF8"] {
        assert!(features.contains(&format!(" {feature}").as_str()), "{feat}");
    }
    assert!(features.iter().all(|l| l.starts_with(' ') && !l.starts_with("  ")), "{feat}");
    c.expect("OPTS UTF8 ON", "200 ").await;
    c.expect("OPTS MODE Z", "501 ").await;
    let help = c.expect("HELP", "214-").await;
    assert!(help.ends_with("\r\n214 Help OK") && help.contains("RETR"), "{help}");
    c.expect("USER bob", "331 ").await;
    c.expect("PASS hungry", "230 ").await;
    let stat = c.expect("STAT", "211-").await;
    assert!(stat.ends_with("211 End of status"), "{stat}");
    let stat = c.expect("STAT lines.txt", "213-").await;
    assert!(stat.contains(" lines.txt\r\n213 "), "{stat}");
    let stat = c.expect("STAT pub", "212-").await;
    assert!(stat.contains(" nested.txt\r\n212 "), "{stat}");
    c.expect("MODE S", "200 ").await;
    c.expect("MODE B", "504 ").await;
    c.expect("MODE", "501 ").await;
    c.expect("STRU F", "200 ").await;
    c.expect("STRU R", "504 ").await;
    c.expect("TYPE E", "504 ").await;
    c.expect("TYPE L 8", "504 ").await;
    c.expect("TYPE X", "501 ").await;
    c.expect("TYPE a", "200 ").await;
    c.expect("ALLO 10", "202 ").await;
    c.expect("STOU", "502 ").await;
    c.expect("SITE CHMOD 777 x", "502 ").await;
    c.expect("XYZZ", "500 ").await;
    c.expect("RETR", "501 ").await;
    c.expect("ABOR", "226 ").await;
}

#[tokio::test]
async fn retr_without_a_data_connection_is_425() {
    let server = start(&[("data_timeout", "300ms")]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("RETR lines.txt", "425 ").await;
    c.expect("RETR missing.txt", "550 ").await;
    // PASV, but the client never connects: 150, then 425 when the wait ends.
    c.expect("PASV", "227 ").await;
    c.expect("RETR lines.txt", "150 ").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("425 "), "{reply}");
    c.expect("NOOP", "200 ").await;
}

#[tokio::test]
async fn a_read_only_server_refuses_changes() {
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    for command in [
        "STOR new.txt",
        "APPE lines.txt",
        "DELE lines.txt",
        "MKD new",
        "RMD pub",
        "RNFR lines.txt",
    ] {
        c.expect(command, "550 ").await;
    }
    assert!(fixtures().join("lines.txt").is_file());
}

#[tokio::test]
async fn uploads_folders_and_renames_on_a_writable_copy() {
    let server = start(&[("writable", "true")]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("TYPE I", "200 ").await;
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    c.upload("STOR upload.bin", &payload).await;
    c.expect("SIZE upload.bin", "213 100000").await;
    assert_eq!(c.fetch("RETR upload.bin").await, payload);
    c.upload("APPE upload.bin", b"tail").await;
    c.expect("SIZE upload.bin", "213 100004").await;
    c.expect("REST 10", "350 ").await;
    c.upload("STOR upload.bin", b"XY").await;
    let stored = c.fetch("RETR upload.bin").await;
    assert_eq!(&stored[8..14], [payload[8], payload[9], b'X', b'Y', payload[12], payload[13]]);
    assert_eq!(stored.len(), 100_004);

    // TYPE A: CRLF arrives, LF is stored (and sent back as CRLF).
    c.expect("TYPE A", "200 ").await;
    c.upload("STOR text.txt", b"one\r\ntwo\r\n").await;
    c.expect("TYPE I", "200 ").await;
    assert_eq!(c.fetch("RETR text.txt").await, b"one\ntwo\n");

    c.expect("MKD made", "257 \"/made\" ").await;
    c.expect("MKD made", "550 ").await;
    c.expect("CWD made", "250 ").await;
    c.upload("STOR inner.txt", b"inner").await;
    c.expect("CDUP", "250 ").await;
    c.expect("RMD made", "550 ").await;
    c.expect("RNTO anything", "503 ").await;
    c.expect("RNFR made/inner.txt", "350 ").await;
    c.expect("RNTO lines.txt", "553 ").await;
    c.expect("RNFR made/inner.txt", "350 ").await;
    c.expect("NOOP", "200 ").await;
    c.expect("RNTO moved.txt", "503 ").await;
    c.expect("RNFR made/inner.txt", "350 ").await;
    c.expect("RNTO moved.txt", "250 ").await;
    assert_eq!(c.fetch("RETR moved.txt").await, b"inner");
    c.expect("RMD made", "250 ").await;
    c.expect("DELE moved.txt", "250 ").await;
    c.expect("DELE moved.txt", "550 ").await;
    c.expect("DELE pub", "550 ").await;
    c.expect("STOR pub", "553 ").await;
    // The fixtures themselves never change.
    c.expect("DELE lines.txt", "250 ").await;
    assert!(fixtures().join("lines.txt").is_file());
    assert!(!fixtures().join("upload.bin").exists());
}

#[tokio::test]
async fn uploads_over_max_file_size_are_552_and_dropped() {
    let server = start(&[("writable", "true"), ("max_file_size", "1000")]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("TYPE I", "200 ").await;
    let mut data = c.pasv().await;
    c.expect("STOR big.bin", "150 ").await;
    // The server may stop reading and close before all of it is written.
    let _ = timeout(LIMIT, data.write_all(&[7u8; 5000])).await;
    drop(data);
    let reply = c.reply().await;
    assert!(reply.starts_with("552 "), "{reply}");
    c.expect("SIZE big.bin", "550 ").await;
    c.upload("STOR small.bin", &[1u8; 1000]).await;
    c.expect("SIZE small.bin", "213 1000").await;
}

#[tokio::test]
async fn abor_stops_an_upload_with_426_then_226() {
    let server = start(&[("writable", "true")]).await;
    let mut c = Client::login(server.local_addr()).await;
    let _data = c.pasv().await;
    c.expect("STOR slow.bin", "150 ").await;
    c.send(b"\xff\xf4\xff\xf2ABOR\r\n").await;
    let aborted = c.reply().await;
    assert!(aborted.starts_with("426 "), "{aborted}");
    let done = c.reply().await;
    assert!(done.starts_with("226 "), "{done}");
    c.expect("NOOP", "200 ").await;
}

#[tokio::test]
async fn abor_stops_a_download_the_client_stopped_reading() {
    let server = start(&[("writable", "true"), ("max_file_size", "67108864")]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("TYPE I", "200 ").await;
    // More than the kernel buffers on both sides hold, so the download is still running.
    let big = vec![0x5au8; 16 << 20];
    c.upload("STOR big.bin", &big).await;
    let mut data = c.pasv().await;
    c.expect("RETR big.bin", "150 ").await;
    // The first bytes show the transfer is under way; the rest stay unread, so it cannot finish.
    let mut first = [0u8; 1];
    timeout(Duration::from_secs(5), data.read_exact(&mut first))
        .await
        .expect("data in time")
        .expect("read");
    c.cmd("ABOR").await;
    let aborted = c.reply().await;
    assert!(aborted.starts_with("426 "), "{aborted}");
    let done = c.reply().await;
    assert!(done.starts_with("226 "), "{done}");
    c.expect("SIZE big.bin", "213 16777216").await;
}

#[tokio::test]
async fn abor_ends_the_wait_for_a_data_connection() {
    // The default data_timeout (10 s) is longer than any wait here: only ABOR can end it.
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("PASV", "227 ").await;
    c.expect("RETR lines.txt", "150 ").await;
    c.cmd("ABOR").await;
    let aborted = c.reply().await;
    assert!(aborted.starts_with("426 "), "{aborted}");
    let done = c.reply().await;
    assert!(done.starts_with("226 "), "{done}");
}

#[tokio::test]
async fn commands_sent_during_a_transfer_are_answered_after_it() {
    let server = start(&[("writable", "true")]).await;
    let mut c = Client::login(server.local_addr()).await;
    let mut data = c.pasv().await;
    c.expect("STOR later.txt", "150 ").await;
    c.cmd("PWD").await;
    data.write_all(b"x").await.expect("upload");
    drop(data);
    let done = c.reply().await;
    assert!(done.starts_with("226 "), "{done}");
    let pwd = c.reply().await;
    assert!(pwd.starts_with("257 \"/\""), "{pwd}");
}

#[tokio::test]
async fn paths_never_leave_the_root() {
    let server = start(&[]).await;
    let mut c = Client::login(server.local_addr()).await;
    for command in [
        "RETR ../../etc/passwd",
        "RETR /../etc/passwd",
        "RETR pub/../../secret.txt",
        "SIZE ../secret.txt",
    ] {
        c.expect(command, "550 ").await;
    }
    c.expect("RETR /etc/passwd", "550 ").await;
    c.expect("CWD /..", "550 ").await;
    c.expect("CWD ..", "550 ").await;
    c.expect("CDUP", "550 ").await;
    c.expect("PWD", "257 \"/\"").await;
    c.expect("LIST ..", "550 ").await;
    c.expect("CWD pub/../..", "550 ").await;
    c.expect("CWD /pub/..", "250 ").await;
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_out_of_the_root_are_not_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixtures(), dir.path());
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret.txt"), "secret").expect("secret");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).expect("symlink");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), dir.path().join("secret.txt")).expect("symlink");
    std::os::unix::fs::symlink(outside.path().join("nothing"), dir.path().join("dangling")).expect("symlink");
    std::os::unix::fs::symlink("lines.txt", dir.path().join("alias.txt")).expect("symlink");
    let server = start(&[("root", dir.path().to_str().expect("utf-8"))]).await;
    let mut c = Client::login(server.local_addr()).await;
    c.expect("TYPE I", "200 ").await;
    for command in [
        "RETR secret.txt",
        "RETR out/secret.txt",
        "CWD out",
        "SIZE secret.txt",
        "RETR dangling",
        "LIST out",
    ] {
        c.expect(command, "550 ").await;
    }
    let names = String::from_utf8(c.fetch("NLST").await).expect("utf-8");
    assert!(
        !names.contains("secret") && !names.contains("out") && !names.contains("dangling"),
        "{names}"
    );
    assert!(names.contains("alias.txt"), "a link inside the root is served: {names}");
    assert_eq!(c.fetch("RETR alias.txt").await, fixture("lines.txt"));
}

#[tokio::test]
async fn garbage_and_long_lines_are_answered_and_survived() {
    let server = start(&[]).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.send(b"\x00\x01\x02\xff\xfe binary\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("500 "), "{reply}");
    c.send(format!("NOOP {}\r\n", "x".repeat(10_000))).await;
    let reply = c.reply().await;
    assert!(reply.starts_with("500 "), "{reply}");
    c.expect("", "500 ").await;
    c.send(b"USER \xff\xfe\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("501 "), "{reply}");
    c.send(b"MKD a\rb\x00c\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("501 "), "{reply}");
    c.send(b"NOOP\nNOOP\r\n").await;
    assert!(c.reply().await.starts_with("200 "));
    assert!(c.reply().await.starts_with("200 "));
    c.expect("USER bob", "331 ").await;
    c.expect("PASS hungry", "230 ").await;
}

#[tokio::test]
async fn an_idle_session_gets_421_and_is_closed() {
    let server = start(&[("idle", "300ms")]).await;
    let mut c = Client::connect(server.local_addr()).await;
    let reply = c.reply().await;
    assert!(reply.starts_with("421 "), "{reply}");
    assert!(c.closed().await);
}

#[tokio::test]
async fn bad_options_are_refused() {
    for (key, value) in [
        ("writable", "yes"),
        ("pasv_ports", "80-90"),
        ("root", "/nonexistent/folder"),
        ("idle", "0s"),
        ("users", "/nonexistent/users"),
    ] {
        let result = try_start(&[(key, value)]).await;
        assert!(matches!(result, Err(Error::BadOption { .. })), "{key}={value}");
    }
    assert!(matches!(try_start(&[("rooot", "x")]).await, Err(Error::UnknownOption { .. })));
}

#[tokio::test]
async fn pasv_ports_come_from_the_range() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = listener.local_addr().expect("addr").port();
    drop(listener);
    let range = format!("{base}-{base}");
    let server = start(&[("pasv_ports", range.as_str())]).await;
    let mut c = Client::login(server.local_addr()).await;
    let data = c.pasv().await;
    assert_eq!(data.peer_addr().expect("peer").port(), base);
}

/// Runs `program args` with a deadline; `None` (and a message) if it is not installed.
async fn run_tool(program: &str, args: &[&str]) -> Option<std::process::Output> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).kill_on_drop(true);
    match timeout(Duration::from_secs(20), command.output()).await {
        Ok(Ok(output)) => Some(output),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: {program} is not installed");
            None
        }
        Ok(Err(e)) => panic!("{program}: {e}"),
        Err(_) => panic!("{program} did not finish in time"),
    }
}

#[tokio::test]
async fn curl_downloads_lists_and_uploads() {
    let server = start(&[("writable", "true")]).await;
    let base = format!("ftp://127.0.0.1:{}", server.local_addr().port());
    let Some(out) = run_tool("curl", &["-sS", "--max-time", "10", &format!("{base}/binary.bin")]).await else {
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == fixture("binary.bin"), "curl's binary.bin differs");
    let out = run_tool(
        "curl",
        &["-sS", "--max-time", "10", "--user", "bob:hungry", &format!("{base}/pub/")],
    )
    .await
    .expect("curl");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("nested.txt"), "{listing}");
    let active = run_tool(
        "curl",
        &["-sS", "--max-time", "10", "-P", "127.0.0.1", &format!("{base}/lines.txt")],
    )
    .await
    .expect("curl");
    assert!(active.stdout == fixture("lines.txt"), "{}", String::from_utf8_lossy(&active.stderr));
    let dir = tempfile::tempdir().expect("tempdir");
    let upload = dir.path().join("up.txt");
    std::fs::write(&upload, "uploaded by curl\n").expect("write");
    let out = run_tool(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "-T",
            upload.to_str().expect("utf-8"),
            &format!("{base}/pub/"),
        ],
    )
    .await
    .expect("curl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run_tool("curl", &["-sS", "--max-time", "10", &format!("{base}/pub/up.txt")])
        .await
        .expect("curl");
    assert_eq!(out.stdout, b"uploaded by curl\n");
}

#[tokio::test]
async fn python_ftplib_talks_to_it() {
    let server = start(&[("writable", "true")]).await;
    let script = r#"
import ftplib, io, sys
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=10)
ftp.login("bob", "hungry")
data = io.BytesIO()
ftp.retrbinary("RETR binary.bin", data.write)
print("binary", len(data.getvalue()), data.getvalue() == open(sys.argv[2], "rb").read())
print("nlst", sorted(ftp.nlst()))
ftp.cwd("pub")
print("pwd", ftp.pwd())
ftp.storbinary("STOR py.bin", io.BytesIO(b"\x00\r\n\xff" * 1000))
print("size", ftp.size("py.bin"))
ftp.set_pasv(False)
lines = []
ftp.retrlines("RETR nested.txt", lines.append)
print("lines", lines)
ftp.rename("py.bin", "renamed.bin")
ftp.delete("renamed.bin")
ftp.quit()
print("done")
"#;
    let port = server.local_addr().port().to_string();
    let binary = fixtures().join("binary.bin");
    let Some(out) = run_tool("python3", &["-c", script, &port, binary.to_str().expect("utf-8")]).await else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout,
        "binary 40000 True\n\
         nlst ['README.md', 'binary.bin', 'lines.txt', 'pub', 'with space.txt']\n\
         pwd /pub\n\
         size 4000\n\
         lines ['A file one folder down.']\n\
         done\n"
    );
}
