//! Loopback tests of the mail servers (`smtp`, `pop3`) and the `smtp-client`,
//! each against a private copy of the seed store (`fixtures/mail/store`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reference_servers::{clients, run_client, servers, start_server, Error, Options, RunningServer};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);

const MSG1: &str = "1700000000.000001.wirecheck";
const MSG2: &str = "1700000100.000002.wirecheck";

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/mail/store")
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read seed") {
        let entry = entry.expect("seed entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A private copy of the seed store, for a server started with `maildir`.
fn store() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&seed(), dir.path());
    dir
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

async fn start(name: &str, pairs: &[(&str, &str)]) -> RunningServer {
    try_start(name, pairs).await.expect("start_server failed")
}

/// Starts `name` on a fresh copy of the seed store, which the test can inspect.
async fn start_on_store(name: &str, extra: &[(&str, &str)]) -> (RunningServer, TempDir) {
    let dir = store();
    let root = dir.path().to_str().expect("utf-8 temp path").to_owned();
    let mut pairs = vec![("maildir", root.as_str())];
    pairs.extend_from_slice(extra);
    (start(name, &pairs).await, dir)
}

/// The messages in `user`'s INBOX (`new/` and `cur/`), sorted by name, with their contents.
fn inbox(store: &Path, user: &str) -> Vec<(String, Vec<u8>)> {
    let mut messages = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(store.join(user).join(sub)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            messages.push((name, std::fs::read(entry.path()).expect("read message")));
        }
    }
    messages.sort();
    messages
}

/// The messages in `user`'s INBOX that the seed store does not have.
fn delivered(store: &Path, user: &str) -> Vec<Vec<u8>> {
    let seeded: Vec<String> = inbox(&seed(), user).into_iter().map(|(name, _)| name).collect();
    inbox(store, user)
        .into_iter()
        .filter(|(name, _)| !seeded.contains(name))
        .map(|(_, content)| content)
        .collect()
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = timeout(LIMIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Client { stream, buf: Vec::new() }
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

    /// A whole SMTP reply: its lines.
    async fn reply(&mut self) -> Vec<String> {
        let mut lines = vec![self.line().await];
        while lines.last().is_some_and(|l| l.as_bytes().get(3) == Some(&b'-')) {
            lines.push(self.line().await);
        }
        lines
    }

    /// A single-line reply (asserting it is one).
    async fn reply1(&mut self) -> String {
        let mut lines = self.reply().await;
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines.remove(0)
    }

    /// Sends `command` and returns its single-line reply.
    async fn ask(&mut self, command: &str) -> String {
        self.cmd(command).await;
        self.reply1().await
    }

    /// The body of a POP3 multi-line response, still byte-stuffed, up to and excluding CRLF.CRLF.
    async fn multi(&mut self) -> Vec<u8> {
        loop {
            if self.buf.starts_with(b".\r\n") {
                self.buf.drain(..3);
                return Vec::new();
            }
            if let Some(end) = self.buf.windows(5).position(|w| w == b"\r\n.\r\n") {
                let body: Vec<u8> = self.buf.drain(..end + 5).take(end + 2).collect();
                return body;
            }
            assert!(self.more().await > 0, "closed inside a multi-line response");
        }
    }

    /// True once the server has closed the connection (after anything still buffered).
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        let read = timeout(LIMIT, self.stream.read_to_end(&mut rest))
            .await
            .expect("server did not close");
        read.is_err() || rest.is_empty()
    }
}

/// Removes POP3 byte-stuffing.
fn unstuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

async fn smtp_hello(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    assert_eq!(c.reply1().await, "220 hamburger.edu ESMTP wirecheck");
    assert_eq!(
        c.ask("HELO crepes.fr").await,
        "250 hamburger.edu Hello crepes.fr, pleased to meet you"
    );
    c
}

/// MAIL, RCPT bob, DATA, `body` (already stuffed and terminated), asserting the reply to it.
async fn smtp_send(c: &mut Client, body: &[u8], expect: &str) {
    assert!(c.ask("MAIL FROM:<alice@crepes.fr>").await.starts_with("250 "));
    assert!(c.ask("RCPT TO:<bob@hamburger.edu>").await.starts_with("250 "));
    assert!(c.ask("DATA").await.starts_with("354 "));
    c.send(body).await;
    assert_eq!(c.reply1().await, expect);
}

#[tokio::test]
async fn registered() {
    assert!(servers().iter().any(|(name, _)| *name == "smtp"));
    assert!(servers().iter().any(|(name, _)| *name == "pop3"));
    assert!(clients().iter().any(|(name, _)| *name == "smtp-client"));
    // The default seed is found from the crate directory too, and every server starts on it.
    for name in ["smtp", "pop3"] {
        start(name, &[]).await.shutdown().await;
        let err = try_start(name, &[("sede", "x")]).await.err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("unknown option `sede`")), "{name}");
        let seed = seed();
        let seed = seed.to_str().expect("utf-8");
        let both = try_start(name, &[("seed", seed), ("maildir", seed)]).await;
        assert!(matches!(both, Err(Error::BadOption { .. })), "{name}: seed and maildir together");
    }
    assert!(matches!(try_start("smtp", &[("with", "ftp")]).await, Err(Error::BadOption { .. })));
    assert!(matches!(
        try_start("smtp", &[("max_size", "0")]).await,
        Err(Error::BadOption { .. })
    ));
}

#[tokio::test]
async fn smtp_the_slides_session() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    let mut c = Client::connect(server.local_addr()).await;
    let script = [
        ("", "220 hamburger.edu ESMTP wirecheck"),
        ("HELO crepes.fr", "250 hamburger.edu Hello crepes.fr, pleased to meet you"),
        ("MAIL FROM: <alice@crepes.fr>", "250 alice@crepes.fr... Sender ok"),
        ("RCPT TO: <bob@hamburger.edu>", "250 bob@hamburger.edu ... Recipient ok"),
        ("DATA", "354 Enter mail, end with \".\" on a line by itself"),
        (
            "Do you like ketchup?\r\nHow about pickles?\r\n.",
            "250 Message accepted for delivery",
        ),
        ("QUIT", "221 hamburger.edu closing connection"),
    ];
    for (command, reply) in script {
        if !command.is_empty() {
            c.cmd(command).await;
        }
        assert_eq!(c.reply1().await, reply, "after {command:?}");
    }
    assert!(c.closed().await);
    let messages = delivered(dir.path(), "bob");
    assert_eq!(messages.len(), 1);
    let text = String::from_utf8(messages[0].clone()).expect("utf-8");
    let (received, rest) = text.split_once("\r\n").expect("a first line");
    assert!(
        received.starts_with("Received: from crepes.fr ([127.0.0.1]) by hamburger.edu with SMTP; "),
        "{received}"
    );
    assert!(received.ends_with(" +0000"), "{received}");
    assert_eq!(rest, "Do you like ketchup?\r\nHow about pickles?\r\n");
    // Delivered to new/, nowhere else; the seed messages are untouched.
    assert_eq!(inbox(dir.path(), "bob").len(), 3);
    assert!(delivered(dir.path(), "alice").is_empty());
    assert!(std::fs::read_dir(dir.path().join("bob/tmp")).expect("tmp").next().is_none());
}

#[tokio::test]
async fn smtp_ehlo_is_multiline() {
    let server = start("smtp", &[("max_size", "2000000")]).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.reply1().await;
    c.cmd("ehlo crepes.fr").await;
    assert_eq!(
        c.reply().await,
        [
            "250-hamburger.edu greets crepes.fr",
            "250-SIZE 2000000",
            "250-8BITMIME",
            "250-PIPELINING",
            "250 HELP"
        ]
    );
    assert_eq!(
        c.ask("mail from:<alice@crepes.fr> SIZE=1000 BODY=8BITMIME").await,
        "250 alice@crepes.fr... Sender ok"
    );
    assert_eq!(c.ask("RSET").await, "250 OK");
    assert_eq!(
        c.ask("MAIL FROM:<> SIZE=2000001").await,
        "552 Message size exceeds fixed maximum message size"
    );
    assert_eq!(c.ask("MAIL FROM:<> SIZE=big").await, "501 Syntax: SIZE=<octets>");
    assert_eq!(
        c.ask("MAIL FROM:<> BODY=BINARYMIME").await,
        "501 Syntax: BODY=7BIT or BODY=8BITMIME"
    );
    assert_eq!(c.ask("MAIL FROM:<> SMTPUTF8").await, "555 Unsupported parameter SMTPUTF8");
    assert_eq!(c.ask("MAIL FROM:<>").await, "250 <>... Sender ok");
    // After HELO there are no extensions, so no parameters either.
    c.ask("HELO crepes.fr").await;
    assert_eq!(c.ask("MAIL FROM:<alice@crepes.fr> SIZE=10").await, "555 SIZE=10 needs EHLO");
}

#[tokio::test]
async fn smtp_several_recipients_each_get_a_copy() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    let mut c = smtp_hello(server.local_addr()).await;
    assert_eq!(c.ask("MAIL FROM:<alice@crepes.fr>").await, "250 alice@crepes.fr... Sender ok");
    assert_eq!(c.ask("RCPT TO:<bob@hamburger.edu>").await, "250 bob@hamburger.edu ... Recipient ok");
    assert_eq!(
        c.ask("RCPT TO:<Alice@HAMBURGER.EDU>").await,
        "250 Alice@HAMBURGER.EDU ... Recipient ok"
    );
    assert_eq!(c.ask("RCPT TO:<bob@hamburger.edu>").await, "250 bob@hamburger.edu ... Recipient ok");
    assert_eq!(
        c.ask("RCPT TO:<carol@hamburger.edu>").await,
        "550 carol@hamburger.edu... User unknown"
    );
    assert_eq!(c.ask("RCPT TO:<bob@crepes.fr>").await, "550 bob@crepes.fr... Relaying denied");
    assert_eq!(c.ask("RCPT TO:<bob>").await, "550 bob... Domain required");
    assert_eq!(c.ask("RCPT TO:<Postmaster>").await, "250 Postmaster ... Recipient ok");
    assert_eq!(c.ask("RCPT TO:bob@hamburger.edu").await, "501 Syntax: RCPT TO:<address>");
    assert_eq!(
        c.ask("RCPT TO:<bob@hamburger.edu> NOTIFY=NEVER").await,
        "555 Unsupported parameter NOTIFY=NEVER"
    );
    assert!(c.ask("DATA").await.starts_with("354"));
    c.send("Subject: to both\r\n\r\nhi\r\n.\r\n").await;
    assert_eq!(c.reply1().await, "250 Message accepted for delivery");
    // One copy per account, however many times it was named (postmaster is bob).
    assert_eq!(delivered(dir.path(), "bob").len(), 1);
    assert_eq!(delivered(dir.path(), "alice").len(), 1);
    assert!(delivered(dir.path(), "alice")[0].ends_with(b"\r\nSubject: to both\r\n\r\nhi\r\n"));
}

#[tokio::test]
async fn smtp_recipient_limit() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    for user in 0..100 {
        let mut passwd = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("passwd"))
            .expect("passwd");
        std::io::Write::write_all(&mut passwd, format!("user{user}:pw\n").as_bytes()).expect("append");
    }
    let mut c = smtp_hello(server.local_addr()).await;
    c.ask("MAIL FROM:<alice@crepes.fr>").await;
    let mut commands = String::new();
    for user in 0..100 {
        commands.push_str(&format!("RCPT TO:<user{user}@hamburger.edu>\r\n"));
    }
    commands.push_str("RCPT TO:<bob@hamburger.edu>\r\n");
    c.send(commands).await;
    for _ in 0..100 {
        assert!(c.reply1().await.starts_with("250 "));
    }
    assert_eq!(c.reply1().await, "452 Too many recipients");
}

#[tokio::test]
async fn smtp_commands_out_of_sequence_and_syntax_errors() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.reply1().await;
    assert_eq!(c.ask("MAIL FROM:<alice@crepes.fr>").await, "503 Send HELO or EHLO first");
    assert_eq!(c.ask("RCPT TO:<bob@hamburger.edu>").await, "503 Need MAIL before RCPT");
    assert_eq!(c.ask("DATA").await, "503 Need MAIL before DATA");
    assert_eq!(c.ask("NOOP").await, "250 OK");
    assert_eq!(c.ask("VRFY bob").await, "250 <bob@hamburger.edu>");
    assert_eq!(c.ask("VRFY <alice@hamburger.edu>").await, "250 <alice@hamburger.edu>");
    assert_eq!(c.ask("VRFY carol").await, "550 User unknown");
    assert_eq!(c.ask("VRFY").await, "501 Syntax: VRFY <user>");
    assert!(c.ask("HELP").await.starts_with("214 "));
    assert_eq!(c.ask("EXPN staff").await, "502 Command not implemented");
    assert_eq!(c.ask("HELO").await, "501 Syntax: HELO hostname");
    assert_eq!(
        c.ask("helo crepes.fr").await,
        "250 hamburger.edu Hello crepes.fr, pleased to meet you"
    );
    assert_eq!(c.ask("MAIL FROM:alice@crepes.fr").await, "501 Syntax: MAIL FROM:<address>");
    assert_eq!(c.ask("MAIL FROM:<alice@crepes.fr").await, "501 Syntax: MAIL FROM:<address>");
    assert_eq!(c.ask("MAIL TO:<alice@crepes.fr>").await, "501 Syntax: MAIL FROM:<address>");
    assert_eq!(c.ask("MAIL FROM:<alice>").await, "501 Syntax: MAIL FROM:<address>");
    assert_eq!(c.ask("MAIL").await, "501 Syntax: MAIL FROM:<address>");
    assert_eq!(c.ask("MAIL FROM:<alice@crepes.fr>").await, "250 alice@crepes.fr... Sender ok");
    assert_eq!(c.ask("MAIL FROM:<alice@crepes.fr>").await, "503 Sender already specified");
    assert_eq!(c.ask("DATA").await, "503 Need RCPT before DATA");
    assert_eq!(c.ask("RSET now").await, "501 Syntax: RSET");
    assert_eq!(c.ask("RSET").await, "250 OK");
    assert_eq!(c.ask("RCPT TO:<bob@hamburger.edu>").await, "503 Need MAIL before RCPT");
    assert_eq!(c.ask("XYZZY").await, "500 Command unrecognized");
    assert_eq!(c.ask(&"NOOP ".repeat(200)).await, "500 Line too long");
    assert_eq!(c.ask("QUIT now").await, "501 Syntax: QUIT");
    // Garbage, NULs and invalid UTF-8 are just unrecognized commands.
    c.send(b"\x00\xff\xfe garbage\r\n\x16\x03\x01\x02\x00\r\n").await;
    assert_eq!(c.reply1().await, "500 Command unrecognized");
    assert_eq!(c.reply1().await, "500 Command unrecognized");
    // A bare LF ends a command line too.
    c.send("NOOP\n").await;
    assert_eq!(c.reply1().await, "250 OK");
    assert_eq!(c.ask("QUIT").await, "221 hamburger.edu closing connection");
    assert!(c.closed().await);
    assert!(delivered(dir.path(), "bob").is_empty());
}

#[tokio::test]
async fn smtp_refuses_oversized_messages_and_long_lines_after_reading_them() {
    let (server, dir) = start_on_store("smtp", &[("max_size", "100")]).await;
    let mut c = smtp_hello(server.local_addr()).await;
    smtp_send(
        &mut c,
        format!("{}\r\n.\r\n", "x".repeat(99)).as_bytes(),
        "552 Message size exceeds fixed maximum message size",
    )
    .await;
    smtp_send(&mut c, b"short\r\n.\r\n", "250 Message accepted for delivery").await;
    let (server2, dir2) = start_on_store("smtp", &[]).await;
    let mut c2 = smtp_hello(server2.local_addr()).await;
    smtp_send(
        &mut c2,
        format!("{}\r\nnext\r\n.\r\n", "y".repeat(999)).as_bytes(),
        "500 Line too long",
    )
    .await;
    // 998 octets and CRLF is the longest line allowed.
    smtp_send(
        &mut c2,
        format!("{}\r\n.\r\n", "z".repeat(998)).as_bytes(),
        "250 Message accepted for delivery",
    )
    .await;
    let kept = delivered(dir.path(), "bob");
    assert_eq!(kept.len(), 1);
    assert!(kept[0].ends_with(b"\r\nshort\r\n"));
    let kept = delivered(dir2.path(), "bob");
    assert_eq!(kept.len(), 1);
    assert!(kept[0].ends_with(format!("\r\n{}\r\n", "z".repeat(998)).as_bytes()));
}

#[tokio::test]
async fn smtp_dot_unstuffing_round_trip() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    let mut c = smtp_hello(server.local_addr()).await;
    let original = "Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nmid.dle\r\n. space\r\n";
    let mut stuffed = String::new();
    for line in original.split_inclusive("\r\n") {
        if line.starts_with('.') {
            stuffed.push('.');
        }
        stuffed.push_str(line);
    }
    stuffed.push_str(".\r\n");
    smtp_send(&mut c, stuffed.as_bytes(), "250 Message accepted for delivery").await;
    let kept = delivered(dir.path(), "bob");
    let text = String::from_utf8(kept[0].clone()).expect("utf-8");
    assert_eq!(text.split_once("\r\n").expect("received").1, original);
}

#[tokio::test]
async fn smtp_end_of_data_split_across_writes() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    let mut c = smtp_hello(server.local_addr()).await;
    assert!(c.ask("MAIL FROM:<alice@crepes.fr>").await.starts_with("250"));
    assert!(c.ask("RCPT TO:<bob@hamburger.edu>").await.starts_with("250"));
    assert!(c.ask("DATA").await.starts_with("354"));
    // Neither a bare LF nor "." inside a line ends the message; only CRLF.CRLF does.
    for piece in ["first\n.\nstill", " first\r", "\n", ".", "x\r\nlast\r", "\n.", "\r", "\n"] {
        c.send(piece).await;
        c.stream.flush().await.expect("flush");
    }
    assert_eq!(c.reply1().await, "250 Message accepted for delivery");
    let kept = delivered(dir.path(), "bob");
    assert_eq!(kept.len(), 1);
    let text = String::from_utf8(kept[0].clone()).expect("utf-8");
    assert_eq!(
        text.split_once("\r\n").expect("received").1,
        "first\n.\nstill first\r\nx\r\nlast\r\n"
    );
}

#[tokio::test]
async fn smtp_one_megabyte_message() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    let mut c = smtp_hello(server.local_addr()).await;
    let line = format!("{}\r\n", "0123456789".repeat(7));
    let body = line.repeat((1 << 20) / line.len() + 1);
    smtp_send(&mut c, format!("{body}.\r\n").as_bytes(), "250 Message accepted for delivery").await;
    let kept = delivered(dir.path(), "bob");
    assert!(body.len() > 1 << 20);
    assert!(kept[0].ends_with(body.as_bytes()));
    assert!(kept[0].len() < body.len() + 200);
}

#[tokio::test]
async fn smtp_pipelined_commands_are_answered_in_order() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.reply1().await;
    c.send("EHLO crepes.fr\r\nMAIL FROM:<alice@crepes.fr>\r\nRCPT TO:<nobody@hamburger.edu>\r\nRCPT TO:<bob@hamburger.edu>\r\nDATA\r\n")
        .await;
    assert_eq!(c.reply().await.len(), 5);
    assert_eq!(c.reply1().await, "250 alice@crepes.fr... Sender ok");
    assert_eq!(c.reply1().await, "550 nobody@hamburger.edu... User unknown");
    assert_eq!(c.reply1().await, "250 bob@hamburger.edu ... Recipient ok");
    assert!(c.reply1().await.starts_with("354 "));
    c.send("Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<alice@crepes.fr>\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        .await;
    assert_eq!(c.reply1().await, "250 Message accepted for delivery");
    assert_eq!(c.reply1().await, "250 alice@crepes.fr... Sender ok");
    assert_eq!(c.reply1().await, "250 OK");
    assert_eq!(c.reply1().await, "250 OK");
    assert_eq!(c.reply1().await, "221 hamburger.edu closing connection");
    assert!(c.closed().await);
    let kept = delivered(dir.path(), "bob");
    assert_eq!(kept.len(), 1);
    assert!(kept[0].starts_with(b"Received: from crepes.fr ([127.0.0.1]) by hamburger.edu with ESMTP; "));
}

#[tokio::test]
async fn smtp_disconnect_mid_data_delivers_nothing_of_that_transaction() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    let mut c = smtp_hello(server.local_addr()).await;
    smtp_send(&mut c, b"Subject: one\r\n\r\nkept\r\n.\r\n", "250 Message accepted for delivery").await;
    assert!(c.ask("MAIL FROM:<alice@crepes.fr>").await.starts_with("250"));
    assert!(c.ask("RCPT TO:<bob@hamburger.edu>").await.starts_with("250"));
    assert!(c.ask("DATA").await.starts_with("354"));
    c.send("Subject: two\r\n\r\nlost\r\n").await;
    drop(c);
    // Another whole session afterwards: a server that delivered on EOF would
    // have done so by the time this one is through.
    let mut c = smtp_hello(server.local_addr()).await;
    smtp_send(
        &mut c,
        b"Subject: three\r\n\r\nkept too\r\n.\r\n",
        "250 Message accepted for delivery",
    )
    .await;
    assert_eq!(c.ask("QUIT").await, "221 hamburger.edu closing connection");
    let kept = delivered(dir.path(), "bob");
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|m| !String::from_utf8_lossy(m).contains("lost")));
}

#[tokio::test]
async fn smtp_greeting_delay_and_idle_timeout() {
    let server = start("smtp", &[("greeting_delay", "300ms"), ("idle", "300ms")]).await;
    let began = Instant::now();
    let mut c = Client::connect(server.local_addr()).await;
    assert_eq!(c.reply1().await, "220 hamburger.edu ESMTP wirecheck");
    assert!(began.elapsed() >= Duration::from_millis(300));
    assert_eq!(c.reply1().await, "421 hamburger.edu Idle timeout, closing connection");
    assert!(c.closed().await);
}

#[tokio::test]
async fn smtp_domain_option() {
    let server = start("smtp", &[("domain", "crepes.fr")]).await;
    let mut c = Client::connect(server.local_addr()).await;
    assert_eq!(c.reply1().await, "220 crepes.fr ESMTP wirecheck");
    c.ask("HELO hamburger.edu").await;
    c.ask("MAIL FROM:<bob@hamburger.edu>").await;
    assert_eq!(c.ask("RCPT TO:<alice@crepes.fr>").await, "250 alice@crepes.fr ... Recipient ok");
    assert_eq!(
        c.ask("RCPT TO:<alice@hamburger.edu>").await,
        "550 alice@hamburger.edu... Relaying denied"
    );
}

async fn pop3_login(addr: SocketAddr, user: &str, password: &str) -> Client {
    let mut c = Client::connect(addr).await;
    assert_eq!(c.line().await, "+OK POP3 server ready");
    assert_eq!(c.ask(&format!("USER {user}")).await, "+OK");
    assert_eq!(c.ask(&format!("PASS {password}")).await, "+OK user successfully logged on");
    c
}

/// Logs in, retrying while an ended session's lock is still being released.
async fn pop3_login_when_unlocked(addr: SocketAddr) -> Client {
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut c = Client::connect(addr).await;
        c.line().await;
        c.ask("USER bob").await;
        match c.ask("PASS hungry").await.as_str() {
            "+OK user successfully logged on" => return c,
            "-ERR maildrop already locked" if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
            other => panic!("login: {other}"),
        }
    }
}

#[tokio::test]
async fn pop3_the_slides_session() {
    let (server, dir) = start_on_store("pop3", &[]).await;
    let seeded = inbox(dir.path(), "bob");
    let mut c = Client::connect(server.local_addr()).await;
    assert_eq!(c.line().await, "+OK POP3 server ready");
    assert_eq!(c.ask("user bob").await, "+OK");
    assert_eq!(c.ask("pass hungry").await, "+OK user successfully logged on");
    assert_eq!(c.ask("list").await, "+OK 2 messages (1410 octets)");
    assert_eq!(c.multi().await, b"1 498\r\n2 912\r\n");
    assert_eq!(c.ask("retr 1").await, "+OK 498 octets");
    assert_eq!(c.multi().await, seeded[0].1);
    assert_eq!(c.ask("dele 1").await, "+OK message 1 deleted");
    assert_eq!(c.ask("retr 2").await, "+OK 912 octets");
    assert_eq!(unstuff(&c.multi().await), seeded[1].1);
    assert_eq!(c.ask("dele 2").await, "+OK message 2 deleted");
    assert_eq!(c.ask("quit").await, "+OK POP3 server signing off");
    assert!(c.closed().await);
    assert!(inbox(dir.path(), "bob").is_empty());
    assert_eq!(inbox(dir.path(), "alice").len(), 1);
}

#[tokio::test]
async fn pop3_authorization() {
    let server = start("pop3", &[]).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.line().await;
    assert_eq!(c.ask("PASS hungry").await, "-ERR USER first");
    assert_eq!(c.ask("USER bob").await, "+OK");
    assert_eq!(c.ask("PASS ketchup").await, "-ERR invalid password");
    // After a failure, USER is needed again.
    assert_eq!(c.ask("PASS hungry").await, "-ERR USER first");
    assert_eq!(c.ask("USER carol").await, "+OK");
    assert_eq!(c.ask("PASS hungry").await, "-ERR invalid password");
    assert_eq!(c.ask("USER").await, "-ERR usage: USER name");
    assert_eq!(c.ask("APOP bob c4c9334bac560ecc979e58001b3e22fb").await, "-ERR APOP not supported");
    for command in ["STAT", "LIST", "RETR 1", "TOP 1 0", "DELE 1", "NOOP", "RSET", "UIDL"] {
        assert_eq!(c.ask(command).await, "-ERR command not valid in this state", "{command}");
    }
    assert_eq!(c.ask("XYZZY").await, "-ERR unknown command");
    assert_eq!(c.ask(&"x".repeat(300)).await, "-ERR line too long");
    assert_eq!(c.ask("capa").await, "+OK Capability list follows");
    assert_eq!(
        c.multi().await,
        b"USER\r\nTOP\r\nUIDL\r\nPIPELINING\r\nIMPLEMENTATION wirecheck\r\n"
    );
    assert_eq!(c.ask("user alice").await, "+OK");
    assert_eq!(c.ask("pass wonderland").await, "+OK user successfully logged on");
    assert_eq!(c.ask("STAT").await, "+OK 1 328");
    assert_eq!(c.ask("USER bob").await, "-ERR command not valid in this state");
    assert_eq!(c.ask("PASS hungry").await, "-ERR command not valid in this state");
    assert_eq!(c.ask("CAPA").await, "+OK Capability list follows");
    c.multi().await;
    assert_eq!(c.ask("XYZZY").await, "-ERR unknown command");
    assert_eq!(c.ask("QUIT").await, "+OK POP3 server signing off");
    assert!(c.closed().await);
    // QUIT before logging in.
    let mut c = Client::connect(server.local_addr()).await;
    c.line().await;
    assert_eq!(c.ask("QUIT").await, "+OK POP3 server signing off");
    assert!(c.closed().await);
}

#[tokio::test]
async fn pop3_stat_list_retr_top_uidl() {
    let (server, dir) = start_on_store("pop3", &[]).await;
    let seeded = inbox(dir.path(), "bob");
    let mut c = pop3_login(server.local_addr(), "bob", "hungry").await;
    assert_eq!(c.ask("STAT").await, "+OK 2 1410");
    assert_eq!(c.ask("LIST 2").await, "+OK 2 912");
    assert_eq!(c.ask("LIST 3").await, "-ERR no such message");
    assert_eq!(c.ask("LIST 0").await, "-ERR no such message");
    assert_eq!(c.ask("LIST two").await, "-ERR invalid message number");
    assert_eq!(c.ask("LIST 1 2").await, "-ERR wrong number of arguments");
    assert_eq!(c.ask("RETR").await, "-ERR wrong number of arguments");
    assert_eq!(c.ask("RETR 2").await, "+OK 912 octets");
    let body = c.multi().await;
    let text = String::from_utf8(body.clone()).expect("utf-8");
    // The lone "." and the ".hidden" line come byte-stuffed.
    assert!(text.contains("\r\n..\r\n..hidden ingredient"), "{text}");
    assert_eq!(unstuff(&body), seeded[1].1);
    assert_eq!(c.ask("TOP 2 0").await, "+OK top of message follows");
    let top = c.multi().await;
    let headers_end = seeded[1].1.windows(4).position(|w| w == b"\r\n\r\n").expect("blank line") + 4;
    assert_eq!(top, &seeded[1].1[..headers_end]);
    assert_eq!(c.ask("TOP 2 3").await, "+OK top of message follows");
    assert!(String::from_utf8(c.multi().await)
        .expect("utf-8")
        .ends_with("\r\n\r\nBob,\r\n\r\nHere is the recipe you asked for. Two lines below start with a dot on\r\n"));
    assert_eq!(c.ask("TOP 2 1000").await, "+OK top of message follows");
    assert_eq!(unstuff(&c.multi().await), seeded[1].1);
    assert_eq!(c.ask("TOP 2").await, "-ERR wrong number of arguments");
    assert_eq!(c.ask("TOP 2 -1").await, "-ERR usage: TOP msg n, with n a number of lines");
    assert_eq!(c.ask("UIDL").await, "+OK unique-id listing follows");
    assert_eq!(c.multi().await, format!("1 {MSG1}\r\n2 {MSG2}\r\n").as_bytes());
    assert_eq!(c.ask("UIDL 2").await, format!("+OK 2 {MSG2}"));
    assert_eq!(c.ask("NOOP").await, "+OK");
    assert_eq!(c.ask("QUIT").await, "+OK POP3 server signing off");
    assert_eq!(inbox(dir.path(), "bob"), seeded, "reading changes nothing");
}

#[tokio::test]
async fn pop3_dele_and_rset() {
    let (server, dir) = start_on_store("pop3", &[]).await;
    let mut c = pop3_login(server.local_addr(), "bob", "hungry").await;
    assert_eq!(c.ask("DELE 1").await, "+OK message 1 deleted");
    assert_eq!(c.ask("DELE 1").await, "-ERR message 1 already deleted");
    assert_eq!(c.ask("RETR 1").await, "-ERR message 1 already deleted");
    assert_eq!(c.ask("LIST 1").await, "-ERR message 1 already deleted");
    assert_eq!(c.ask("STAT").await, "+OK 1 912");
    assert_eq!(c.ask("LIST").await, "+OK 1 messages (912 octets)");
    assert_eq!(c.multi().await, b"2 912\r\n");
    assert_eq!(c.ask("UIDL").await, "+OK unique-id listing follows");
    assert_eq!(c.multi().await, format!("2 {MSG2}\r\n").as_bytes());
    assert_eq!(c.ask("RSET").await, "+OK maildrop has 2 messages (1410 octets)");
    assert_eq!(c.ask("STAT").await, "+OK 2 1410");
    assert_eq!(c.ask("QUIT").await, "+OK POP3 server signing off");
    assert!(c.closed().await);
    assert_eq!(inbox(dir.path(), "bob").len(), 2);
}

#[tokio::test]
async fn pop3_quit_removes_deleted_and_a_drop_removes_nothing() {
    let (server, dir) = start_on_store("pop3", &[]).await;
    let mut c = pop3_login(server.local_addr(), "bob", "hungry").await;
    assert_eq!(c.ask("DELE 2").await, "+OK message 2 deleted");
    drop(c);
    // Logging in again means the dropped session is over, lock and all.
    let mut c = pop3_login_when_unlocked(server.local_addr()).await;
    assert_eq!(c.ask("STAT").await, "+OK 2 1410");
    assert_eq!(inbox(dir.path(), "bob").len(), 2);
    assert_eq!(c.ask("DELE 2").await, "+OK message 2 deleted");
    assert_eq!(c.ask("QUIT").await, "+OK POP3 server signing off");
    let left = inbox(dir.path(), "bob");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, MSG1);
    // The lock is released before the reply to QUIT.
    let mut c = pop3_login(server.local_addr(), "bob", "hungry").await;
    assert_eq!(c.ask("STAT").await, "+OK 1 498");
}

#[tokio::test]
async fn pop3_maildrop_lock() {
    let server = start("pop3", &[]).await;
    let mut first = pop3_login(server.local_addr(), "bob", "hungry").await;
    let mut second = Client::connect(server.local_addr()).await;
    second.line().await;
    second.ask("USER bob").await;
    assert_eq!(second.ask("PASS hungry").await, "-ERR maildrop already locked");
    // Other users are not affected; and the locked-out session is back in AUTHORIZATION.
    assert_eq!(second.ask("STAT").await, "-ERR command not valid in this state");
    second.ask("USER alice").await;
    assert_eq!(second.ask("PASS wonderland").await, "+OK user successfully logged on");
    assert_eq!(first.ask("QUIT").await, "+OK POP3 server signing off");
    let mut third = pop3_login(server.local_addr(), "bob", "hungry").await;
    assert_eq!(third.ask("STAT").await, "+OK 2 1410");
    // Locks are per store: another server on another copy is independent.
    let other = start("pop3", &[]).await;
    pop3_login(other.local_addr(), "bob", "hungry").await;
}

#[tokio::test]
async fn pop3_pipelined_commands() {
    let server = start("pop3", &[]).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.line().await;
    c.send("USER bob\r\nPASS hungry\r\nSTAT\r\nLIST\r\nUIDL 1\r\nQUIT\r\n").await;
    assert_eq!(c.line().await, "+OK");
    assert_eq!(c.line().await, "+OK user successfully logged on");
    assert_eq!(c.line().await, "+OK 2 1410");
    assert_eq!(c.line().await, "+OK 2 messages (1410 octets)");
    assert_eq!(c.multi().await, b"1 498\r\n2 912\r\n");
    assert_eq!(c.line().await, format!("+OK 1 {MSG1}"));
    assert_eq!(c.line().await, "+OK POP3 server signing off");
    assert!(c.closed().await);
}

#[tokio::test]
async fn smtp_with_pop3_same_bytes_out() {
    let (server, dir) = start_on_store("smtp", &[("with", "pop3")]).await;
    let [(name, pop3)] = server.extra_addrs() else {
        panic!("one bundled server expected: {:?}", server.extra_addrs());
    };
    assert_eq!(name, "pop3");
    let mut c = smtp_hello(server.local_addr()).await;
    let message = "From: alice@crepes.fr\r\nTo: bob@hamburger.edu\r\nSubject: round trip\r\n\r\n.starts with a dot\r\n\r\nend\r\n";
    let stuffed = message.replace("\r\n.", "\r\n..");
    smtp_send(&mut c, format!("{stuffed}.\r\n").as_bytes(), "250 Message accepted for delivery").await;
    let stored = delivered(dir.path(), "bob").remove(0);
    let mut p = pop3_login(*pop3, "bob", "hungry").await;
    assert_eq!(p.ask("LIST 3").await, format!("+OK 3 {}", stored.len()));
    assert_eq!(p.ask("RETR 3").await, format!("+OK {} octets", stored.len()));
    let retrieved = unstuff(&p.multi().await);
    assert_eq!(retrieved, stored);
    assert!(String::from_utf8(retrieved).expect("utf-8").ends_with(message));
    assert_eq!(p.ask("DELE 3").await, "+OK message 3 deleted");
    assert_eq!(p.ask("QUIT").await, "+OK POP3 server signing off");
    assert_eq!(inbox(dir.path(), "bob").len(), 2);
    // Stopping the SMTP server stops the bundled POP3 server too.
    let pop3 = *pop3;
    server.shutdown().await;
    let refused = timeout(LIMIT, async {
        loop {
            match TcpStream::connect(pop3).await {
                Err(_) => return,
                Ok(mut s) => {
                    let mut byte = [0u8; 64];
                    if matches!(s.read(&mut byte).await, Ok(0) | Err(_)) {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    refused.await.expect("the bundled pop3 server kept running");
}

async fn client_run(server: SocketAddr, pairs: &[(&str, &str)]) -> (i32, Vec<String>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let code = timeout(LIMIT, run_client("smtp-client", server, &opts(pairs), &[], tx))
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
async fn client_sends_the_outgoing_message() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    let (code, lines) = client_run(server.local_addr(), &[]).await;
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(
        lines,
        [
            "S: 220 hamburger.edu ESMTP wirecheck",
            "S: 250 hamburger.edu Hello crepes.fr, pleased to meet you",
            "S: 250 alice@crepes.fr... Sender ok",
            "S: 250 bob@hamburger.edu ... Recipient ok",
            "S: 354 Enter mail, end with \".\" on a line by itself",
            "S: 250 Message accepted for delivery",
            "S: 221 hamburger.edu closing connection",
        ]
    );
    let outgoing = std::fs::read_to_string(seed().join("../outgoing.txt")).expect("outgoing.txt");
    let stored = String::from_utf8(delivered(dir.path(), "bob").remove(0)).expect("utf-8");
    let (_received, stored) = stored.split_once("\r\n").expect("received");
    assert_eq!(stored, outgoing.replace('\n', "\r\n"));
    assert!(stored.contains("\r\n.this line starts with a dot") && stored.contains("\r\n..\r\n"));
}

#[tokio::test]
async fn client_message_option_and_bad_options() {
    let (server, dir) = start_on_store("smtp", &[]).await;
    let file = dir.path().join("message.txt");
    std::fs::write(&file, "Subject: custom\r\n\r\n.\r\n").expect("write");
    let (code, _) = client_run(server.local_addr(), &[("message", file.to_str().expect("utf-8"))]).await;
    assert_eq!(code, 0);
    assert!(delivered(dir.path(), "bob")[0].ends_with(b"\r\nSubject: custom\r\n\r\n.\r\n"));
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let missing = run_client(
        "smtp-client",
        server.local_addr(),
        &opts(&[("message", "/nonexistent/m.txt")]),
        &[],
        tx.clone(),
    )
    .await;
    assert!(matches!(missing, Err(Error::BadOption { .. })));
    let unknown = run_client("smtp-client", server.local_addr(), &opts(&[("to", "x")]), &[], tx).await;
    assert!(matches!(unknown, Err(Error::UnknownOption { .. })));
}

/// A scripted server: multi-line replies split mid-line across writes, then 550 to RCPT.
#[tokio::test]
async fn client_stops_at_an_unexpected_reply() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let script = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut c = Client { stream, buf: Vec::new() };
        for piece in ["220-hamburger.edu wel", "come\r\n220 ", "ready\r\n"] {
            c.send(piece).await;
            c.stream.flush().await.expect("flush");
        }
        let mut heard = Vec::new();
        for reply in [
            "250-hamburger.edu\r\n250 HELP\r\n",
            "250 ok\r\n",
            "550 no such user here\r\n",
            "221 bye\r\n",
        ] {
            heard.push(c.line().await);
            c.send(reply).await;
        }
        heard
    });
    let (code, lines) = client_run(addr, &[("timeout", "2s")]).await;
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        [
            "S: 220-hamburger.edu welcome",
            "S: 220 ready",
            "S: 250-hamburger.edu",
            "S: 250 HELP",
            "S: 250 ok",
            "S: 550 no such user here",
            "error: 550 no such user here",
            "S: 221 bye",
        ]
    );
    let heard = timeout(LIMIT, script).await.expect("script timed out").expect("script");
    assert_eq!(
        heard,
        [
            "HELO crepes.fr",
            "MAIL FROM:<alice@crepes.fr>",
            "RCPT TO:<bob@hamburger.edu>",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn client_gives_up_on_a_silent_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let began = Instant::now();
    let (code, lines) = client_run(addr, &[("timeout", "200ms")]).await;
    assert_eq!(code, 1);
    assert!(lines.last().is_some_and(|l| l.starts_with("error: no reply within")), "{lines:?}");
    assert!(began.elapsed() < Duration::from_secs(2));
    drop(listener);
}

#[tokio::test]
async fn servers_never_follow_a_symlink_out_of_the_store() {
    let dir = store();
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::remove_dir_all(dir.path().join("bob")).expect("remove bob");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("bob")).expect("symlink");
    let root = dir.path().to_str().expect("utf-8");
    let server = start("smtp", &[("maildir", root), ("with", "pop3")]).await;
    let mut c = smtp_hello(server.local_addr()).await;
    smtp_send(
        &mut c,
        b"Subject: x\r\n\r\ny\r\n.\r\n",
        "451 Requested action aborted: local error in processing",
    )
    .await;
    let pop3 = server.extra_addrs()[0].1;
    let mut p = Client::connect(pop3).await;
    p.line().await;
    p.ask("USER bob").await;
    assert_eq!(p.ask("PASS hungry").await, "-ERR unable to open maildrop");
    // Garbage is an unknown command, not a reason to stop.
    p.send(b"\x00\xff\xfe\r\n").await;
    assert_eq!(p.line().await, "-ERR unknown command");
    assert!(
        std::fs::read_dir(outside.path()).expect("outside").next().is_none(),
        "wrote outside the store"
    );
}
