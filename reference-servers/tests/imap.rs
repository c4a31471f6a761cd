//! Loopback tests of the `imap` reference server, speaking raw IMAP over a
//! mail store that each test builds for itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use reference_servers::{start_server, Error, Options, RunningServer};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Upper bound for any single wait in these tests.
const LIMIT: Duration = Duration::from_secs(5);

const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ UNSELECT] wirecheck IMAP ready";
const TEA: &str = "1700000000.000001.wirecheck";
const LUNCH: &str = "1700000100.000002.wirecheck";
const TEA_MESSAGE: &[u8] = b"Received: from client.example (localhost [127.0.0.1])\r\n\tby wirecheck\r\n\
    From: Alice Liddell <alice@example.org>\r\nTo: bob@example.com\r\nSubject: Tea party\r\n\
    Date: Wed, 17 Jul 1996 02:44:25 -0700\r\nMessage-ID: <1@example.org>\r\n\r\nAre you coming to the tea party?\r\n";
const LUNCH_MESSAGE: &[u8] = b"From: carol@example.net\r\nTo: Bob <bob@example.com>\r\nSubject: Lunch\r\n\r\nLunch at noon.\r\n";
/// 17-Jul-1996 09:44:25 UTC, the INTERNALDATE given to the first message.
const TEA_TIME: u64 = 837_596_665;

fn opts(pairs: &[(&str, &str)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A store like the seed: bob with two new messages, alice with a seen one and an Archive mailbox.
fn make_store() -> TempDir {
    let store = tempfile::tempdir().expect("tempdir");
    let root = store.path();
    std::fs::write(root.join("passwd"), "bob:hungry\nalice:wonderland\n").expect("passwd");
    for dir in [
        "bob/cur",
        "bob/new",
        "bob/tmp",
        "alice/cur",
        "alice/new",
        "alice/tmp",
        "alice/.Archive/cur",
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    std::fs::write(root.join("bob/new").join(TEA), TEA_MESSAGE).expect("write");
    let tea = std::fs::File::options()
        .write(true)
        .open(root.join("bob/new").join(TEA))
        .expect("open");
    tea.set_modified(UNIX_EPOCH + Duration::from_secs(TEA_TIME)).expect("mtime");
    std::fs::write(root.join("bob/new").join(LUNCH), LUNCH_MESSAGE).expect("write");
    std::fs::write(root.join("alice/cur/1700035200.000003.wirecheck:2,S"), LUNCH_MESSAGE).expect("write");
    store
}

async fn try_start(pairs: &[(&str, &str)]) -> Result<RunningServer, Error> {
    let bind = SocketAddr::from(([127, 0, 0, 1], 0));
    timeout(LIMIT, start_server("imap", bind, &opts(pairs)))
        .await
        .expect("start_server timed out")
}

/// A server using `store` in place.
async fn start(store: &Path) -> RunningServer {
    let dir = store.display().to_string();
    try_start(&[("maildir", &dir)]).await.expect("start_server failed")
}

/// The single file in `dir` whose name starts with `unique`.
fn message_file(dir: &Path, unique: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut found = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(unique)));
    found.next()
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects and checks the greeting.
    async fn connect(server: &RunningServer) -> Client {
        let stream = timeout(LIMIT, TcpStream::connect(server.local_addr()))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut client = Client { stream, buf: Vec::new() };
        assert_eq!(client.line().await, GREETING);
        client
    }

    /// Connects, logs in as bob, and selects INBOX.
    async fn bob(server: &RunningServer) -> Client {
        let mut client = Client::connect(server).await;
        client.ok("l", "LOGIN bob hungry").await;
        client.ok("s", "SELECT INBOX").await;
        client
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        timeout(LIMIT, self.stream.write_all(bytes.as_ref()))
            .await
            .expect("write timed out")
            .expect("write");
    }

    async fn more(&mut self) -> usize {
        // Straight into the heap buffer: a big array here would sit in every future that awaits this one.
        self.buf.reserve(65536);
        timeout(LIMIT, self.stream.read_buf(&mut self.buf))
            .await
            .expect("no response in time")
            .unwrap_or(0)
    }

    /// One line, without its CRLF (which must be there).
    async fn line(&mut self) -> String {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.buf[..at].to_vec()).expect("ASCII line");
                self.buf.drain(..at + 2);
                return line;
            }
            assert!(
                self.more().await > 0,
                "closed before a whole line; have {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    async fn bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.more().await > 0, "closed inside a literal");
        }
        self.buf.drain(..n).collect()
    }

    /// One response: a line, with any literals it announces spliced in (as lossy text).
    async fn response(&mut self) -> String {
        let mut response = self.line().await;
        while let Some(size) = literal_size(&response) {
            let octets = self.bytes(size).await;
            response.push_str("\r\n");
            response.push_str(&String::from_utf8_lossy(&octets));
            response.push_str(&self.line().await);
        }
        response
    }

    /// Sends `tag command` and returns every response up to and including the tagged one.
    async fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n")).await;
        self.until(tag).await
    }

    async fn until(&mut self, tag: &str) -> Vec<String> {
        let mut responses = Vec::new();
        loop {
            let response = self.response().await;
            let done = response.starts_with(&format!("{tag} "));
            responses.push(response);
            if done {
                return responses;
            }
        }
    }

    /// Like `command`, asserting a tagged OK; returns the untagged responses.
    async fn ok(&mut self, tag: &str, command: &str) -> Vec<String> {
        let mut responses = self.command(tag, command).await;
        let last = responses.pop().unwrap_or_default();
        assert!(last.starts_with(&format!("{tag} OK")), "{command}: {last} after {responses:?}");
        responses
    }

    /// True once the server has closed without sending anything more.
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        let _ = timeout(LIMIT, self.stream.read_to_end(&mut rest))
            .await
            .expect("server did not close the connection");
        self.buf.is_empty() && rest.is_empty()
    }
}

/// `{n}` at the end of a response line.
fn literal_size(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    inner[inner.rfind('{')? + 1..].parse().ok()
}

fn uidvalidity(untagged: &[String]) -> u32 {
    let line = untagged.iter().find(|l| l.starts_with("* OK [UIDVALIDITY ")).expect("UIDVALIDITY");
    line["* OK [UIDVALIDITY ".len()..]
        .split(']')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("number")
}

// -------------------------------------------------------------- not authenticated

#[tokio::test]
async fn greeting_capability_and_login() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut client = Client::connect(&server).await;
    let caps = client.ok("a1", "CAPABILITY").await;
    assert_eq!(caps, ["* CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ UNSELECT"]);
    assert_eq!(client.ok("a2", "NOOP").await, Vec::<String>::new());
    assert_eq!(client.command("a3", "SELECT INBOX").await, ["a3 BAD Log in first"]);
    assert_eq!(
        client.command("a4", "LOGIN bob wrong").await,
        ["a4 NO [AUTHENTICATIONFAILED] Invalid credentials"]
    );
    assert_eq!(
        client.command("a5", "LOGIN ../bob hungry").await,
        ["a5 NO [AUTHENTICATIONFAILED] Invalid credentials"]
    );
    client.send("a6 login \"bob\" {6}\r\n").await;
    assert_eq!(
        client.line().await,
        "+ Ready for literal data",
        "a synchronizing literal gets a continuation"
    );
    client.send("hungry\r\n").await;
    assert_eq!(
        client.until("a6").await,
        ["a6 OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ UNSELECT] LOGIN completed"]
    );
    assert_eq!(client.command("a7", "LOGIN bob hungry").await, ["a7 BAD Already logged in"]);
    assert_eq!(client.command("a8", "FETCH 1 FLAGS").await, ["a8 BAD Select a mailbox first"]);
    server.shutdown().await;
}

#[tokio::test]
async fn logout_says_bye_then_ok_then_closes() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut client = Client::connect(&server).await;
    assert_eq!(
        client.command("z", "LOGOUT").await,
        ["* BYE wirecheck IMAP logging out", "z OK LOGOUT completed"]
    );
    assert!(client.closed().await);
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_gets_bad_and_the_session_survives() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut client = Client::connect(&server).await;
    assert_eq!(client.command("a1", "FROBNICATE").await, ["a1 BAD Unknown command"]);
    client.send("\r\n").await;
    assert!(client.line().await.starts_with("* BAD "), "an empty line has no tag");
    client.send("NOOP\r\n").await;
    assert!(client.line().await.starts_with("* BAD "), "a line without a tag");
    client.send("+x NOOP\r\n").await;
    assert!(client.line().await.starts_with("* BAD "), "+ is not a tag character");
    client.send(b"\x00\xff\x01garbage \x7f{\r\n").await;
    assert!(client.line().await.starts_with("* BAD "));
    assert!(client.command("a2", "LOGIN bob").await[0].starts_with("a2 BAD "));
    assert!(client.command("a3", "NOOP extra").await[0].starts_with("a3 BAD "));
    client.send("a4 NOOP\n").await;
    assert_eq!(client.line().await, "a4 BAD Lines must end with CRLF");
    client.send(format!("a5 LOGIN {}\r\n", "x".repeat(10_000))).await;
    assert_eq!(client.line().await, "a5 BAD Line too long");
    assert_eq!(
        client.command("a6", "APPEND INBOX {20000000}").await,
        ["a6 BAD [TOOBIG] Literal too large"]
    );
    assert!(client.ok("a7", "LOGIN bob hungry").await.is_empty());
    assert!(client.command("a8", "FETCH 1 BODY[]").await[0].starts_with("a8 BAD "));
    let select = client.ok("a9", "SELECT INBOX").await;
    assert!(select.contains(&"* 2 EXISTS".to_owned()));
    for (tag, bad) in [
        ("b1", "FETCH 3 FLAGS"),
        ("b2", "FETCH 0 FLAGS"),
        ("b3", "FETCH 1 FULL"),
        ("b4", "FETCH 1 (FLAGS"),
        ("b5", "STORE 1 FLAGS (\\*)"),
        ("b6", "SEARCH SINCE 1-Jan-2000"),
        ("b7", "UID COPY 1 Archive"),
    ] {
        let reply = client.command(tag, bad).await;
        assert!(reply.len() == 1 && reply[0].starts_with(&format!("{tag} BAD ")), "{bad}: {reply:?}");
    }
    // A LITERAL+ literal over the limit is already on its way: BAD, BYE, close.
    client.send("c1 APPEND INBOX {20000000+}\r\n").await;
    assert_eq!(client.line().await, "c1 BAD [TOOBIG] Literal too large");
    assert!(client.line().await.starts_with("* BYE "));
    assert!(client.closed().await);
    server.shutdown().await;
}

#[tokio::test]
async fn a_command_split_byte_by_byte_is_one_command() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut client = Client::connect(&server).await;
    for &byte in b"a1 LOGIN {3+}\r\nbob \"hungry\"\r\n" {
        client.send([byte]).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(
        client.line().await,
        "a1 OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ UNSELECT] LOGIN completed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn idle_clients_are_logged_out() {
    let store = make_store();
    let dir = store.path().display().to_string();
    let server = try_start(&[("maildir", &dir), ("idle", "200ms")]).await.expect("start");
    let mut client = Client::connect(&server).await;
    assert_eq!(client.line().await, "* BYE Autologout; idle for too long");
    assert!(client.closed().await);
    server.shutdown().await;
}

#[tokio::test]
async fn options() {
    let err = try_start(&[("maildirs", "/tmp")]).await.err();
    assert!(matches!(err, Some(Error::UnknownOption { .. })), "{err:?}");
    let err = try_start(&[("maildir", "/tmp"), ("seed", "/tmp")]).await.err();
    assert!(matches!(err, Some(Error::BadOption { .. })), "{err:?}");
    let err = try_start(&[("maildir", "/nonexistent/wirecheck")]).await.err();
    assert!(matches!(err, Some(Error::BadOption { .. })), "{err:?}");
    let err = try_start(&[("idle", "soon")]).await.err();
    assert!(matches!(err, Some(Error::BadOption { .. })), "{err:?}");

    // A seeded server works on a copy: the seed is never modified.
    let seed = make_store();
    let dir = seed.path().display().to_string();
    let server = try_start(&[("seed", &dir)]).await.expect("start");
    let mut client = Client::bob(&server).await;
    client.ok("d", "STORE 1:* +FLAGS.SILENT (\\Deleted)").await;
    client.ok("e", "EXPUNGE").await;
    server.shutdown().await;
    assert!(seed.path().join("bob/new").join(TEA).is_file());
    assert!(message_file(&seed.path().join("bob/cur"), TEA).is_none());

    // The default seed is the repository's fixtures/mail/store.
    let server = try_start(&[]).await.expect("start with the default seed");
    let mut client = Client::connect(&server).await;
    client.ok("a", "LOGIN alice wonderland").await;
    let list = client.ok("b", "LIST \"\" *").await;
    assert!(list.contains(&"* LIST (\\HasNoChildren) \".\" Archive".to_owned()), "{list:?}");
    server.shutdown().await;
}

// ------------------------------------------------------------------- mailboxes

#[tokio::test]
async fn list_create_rename_delete_status() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut client = Client::connect(&server).await;
    client.ok("a", "LOGIN alice wonderland").await;
    assert_eq!(
        client.ok("b", "LIST \"\" \"*\"").await,
        ["* LIST (\\HasNoChildren) \".\" INBOX", "* LIST (\\HasNoChildren) \".\" Archive"]
    );
    assert_eq!(client.ok("c", "LIST \"\" \"\"").await, ["* LIST (\\Noselect) \".\" \"\""]);
    client.ok("d", "CREATE Work.2024").await;
    assert!(store.path().join("alice/.Work/cur").is_dir(), "superiors are created too");
    assert!(store.path().join("alice/.Work.2024/new").is_dir());
    assert_eq!(
        client.ok("e", "LIST \"\" %").await,
        [
            "* LIST (\\HasNoChildren) \".\" INBOX",
            "* LIST (\\HasNoChildren) \".\" Archive",
            "* LIST (\\HasChildren) \".\" Work"
        ]
    );
    assert_eq!(
        client.command("f", "CREATE Work").await,
        ["f NO [ALREADYEXISTS] Mailbox already exists"]
    );
    assert_eq!(
        client.command("g", "DELETE Work").await,
        ["g NO [HASCHILDREN] Mailbox has inferior mailboxes"]
    );
    assert_eq!(client.command("h", "DELETE INBOX").await, ["h NO [CANNOT] INBOX cannot be deleted"]);
    assert!(client.command("i", "CREATE ../etc").await[0].starts_with("i NO [CANNOT] "));
    assert!(client.command("j", "CREATE \"a/b\"").await[0].starts_with("j NO [CANNOT] "));
    client.ok("k", "RENAME Work Jobs").await;
    assert_eq!(
        client.ok("l", "LIST \"\" J*").await,
        ["* LIST (\\HasChildren) \".\" Jobs", "* LIST (\\HasNoChildren) \".\" Jobs.2024"]
    );
    assert_eq!(
        client.command("m", "RENAME Nope Other").await,
        ["m NO [NONEXISTENT] No such mailbox"]
    );
    assert_eq!(
        client.command("n", "RENAME Jobs Archive").await,
        ["n NO [ALREADYEXISTS] Mailbox already exists"]
    );
    let status = client
        .ok("o", "STATUS Jobs.2024 (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)")
        .await;
    let validity = status[0]
        .strip_prefix("* STATUS Jobs.2024 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ")
        .and_then(|rest| rest.strip_suffix(" UNSEEN 0 RECENT 0)"))
        .unwrap_or_else(|| panic!("{status:?}"));
    assert!(validity.parse::<u32>().is_ok_and(|v| v > 0));
    assert_eq!(
        client.ok("p", "STATUS inbox (UNSEEN MESSAGES)").await,
        ["* STATUS INBOX (UNSEEN 0 MESSAGES 1)"]
    );
    assert_eq!(
        client.command("q", "STATUS Nope (MESSAGES)").await,
        ["q NO [NONEXISTENT] No such mailbox"]
    );
    // Renaming INBOX moves its messages into a new mailbox and leaves INBOX empty.
    client.ok("r1", "RENAME INBOX Old").await;
    assert_eq!(
        client.ok("r2", "STATUS Old (MESSAGES UIDNEXT)").await,
        ["* STATUS Old (MESSAGES 1 UIDNEXT 2)"]
    );
    assert_eq!(client.ok("r3", "STATUS INBOX (MESSAGES)").await, ["* STATUS INBOX (MESSAGES 0)"]);
    client.ok("r4", "DELETE Old").await;
    client.ok("r", "DELETE Jobs.2024").await;
    client.ok("s", "DELETE Jobs").await;
    assert!(!store.path().join("alice/.Jobs").exists());
    assert_eq!(client.ok("t", "LIST \"\" *").await.len(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn select_and_examine() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut examiner = Client::connect(&server).await;
    examiner.ok("a", "LOGIN bob hungry").await;
    let examined = examiner.ok("b", "EXAMINE INBOX").await;
    assert_eq!(
        examined[0..3],
        [
            "* 2 EXISTS",
            "* 2 RECENT",
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
        ]
    );
    assert_eq!(examined[3], "* OK [PERMANENTFLAGS ()] No permanent flags permitted");
    assert!(store.path().join("bob/new").join(TEA).is_file(), "EXAMINE changes nothing");
    assert_eq!(
        examiner.command("c", "STORE 1 +FLAGS (\\Seen)").await,
        ["c NO Mailbox is read-only"]
    );

    let mut client = Client::connect(&server).await;
    client.ok("a", "LOGIN bob hungry").await;
    let mut selected = client.command("b", "SELECT INBOX").await;
    let tagged = selected.pop().unwrap_or_default();
    assert_eq!(tagged, "b OK [READ-WRITE] SELECT completed");
    let validity = uidvalidity(&selected);
    assert_eq!(
        selected,
        [
            "* 2 EXISTS".to_owned(),
            "* 2 RECENT".to_owned(),
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)".to_owned(),
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)] Limited".to_owned(),
            "* OK [UNSEEN 1] First unseen message".to_owned(),
            format!("* OK [UIDVALIDITY {validity}] UIDs valid"),
            "* OK [UIDNEXT 3] Predicted next UID".to_owned(),
        ]
    );
    assert!(
        store.path().join("bob/cur").join(format!("{TEA}:2,")).is_file(),
        "SELECT moves new/ to cur/"
    );
    assert!(std::fs::read_to_string(store.path().join("bob/wirecheck-uids"))
        .expect("uids")
        .starts_with(&format!("{validity} 3\n1 {TEA}\n2 {LUNCH}\n")));

    // Another session selecting now sees no \Recent: the first one took them.
    let mut other = Client::connect(&server).await;
    other.ok("a", "LOGIN bob hungry").await;
    let reselected = other.ok("b", "EXAMINE INBOX").await;
    assert_eq!(reselected[1], "* 0 RECENT");
    assert_eq!(uidvalidity(&reselected), validity);
    assert_eq!(client.command("c", "SELECT Nope").await, ["c NO [NONEXISTENT] No such mailbox"]);
    assert_eq!(
        client.command("d", "FETCH 1 FLAGS").await,
        ["d BAD Select a mailbox first"],
        "a failed SELECT deselects"
    );
    server.shutdown().await;
}

// -------------------------------------------------------------------- messages

#[tokio::test]
async fn fetch_attributes_and_bodies() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut client = Client::bob(&server).await;
    let fetched = client.ok("a", "FETCH 1 (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE)").await;
    assert_eq!(
        fetched,
        [format!(
            "* 1 FETCH (FLAGS (\\Recent) UID 1 RFC822.SIZE {} INTERNALDATE \"17-Jul-1996 09:44:25 +0000\" \
             ENVELOPE (\"Wed, 17 Jul 1996 02:44:25 -0700\" \"Tea party\" \
             ((\"Alice Liddell\" NIL \"alice\" \"example.org\")) ((\"Alice Liddell\" NIL \"alice\" \"example.org\")) \
             ((\"Alice Liddell\" NIL \"alice\" \"example.org\")) ((NIL NIL \"bob\" \"example.com\")) NIL NIL NIL \"<1@example.org>\"))",
            TEA_MESSAGE.len()
        )]
    );
    assert_eq!(
        client.ok("b", "FETCH 2 FAST").await,
        [format!(
            "* 2 FETCH (FLAGS (\\Recent) INTERNALDATE {} RFC822.SIZE {})",
            internaldate(&store.path().join("bob/cur").join(format!("{LUNCH}:2,"))),
            LUNCH_MESSAGE.len()
        )]
    );

    // BODY[] is a literal of exactly the file's bytes; reading it raw checks the framing.
    client.send("c FETCH 1 BODY.PEEK[]\r\n").await;
    assert_eq!(client.line().await, format!("* 1 FETCH (BODY[] {{{}}}", TEA_MESSAGE.len()));
    let file = std::fs::read(message_file(&store.path().join("bob/cur"), TEA).expect("file")).expect("read");
    assert_eq!(client.bytes(TEA_MESSAGE.len()).await, file);
    assert_eq!(client.line().await, ")");
    assert_eq!(client.line().await, "c OK FETCH completed");

    let header = client.ok("d", "FETCH 2 BODY.PEEK[HEADER]").await;
    let (head, _) = std::str::from_utf8(LUNCH_MESSAGE)
        .expect("ascii")
        .split_once("\r\n\r\n")
        .expect("blank line");
    assert_eq!(
        header,
        [format!("* 2 FETCH (BODY[HEADER] {{{}}}\r\n{head}\r\n\r\n)", head.len() + 4)]
    );
    assert_eq!(
        client.ok("e", "FETCH 2 FLAGS").await,
        ["* 2 FETCH (FLAGS (\\Recent))"],
        "PEEK leaves \\Seen alone"
    );
    assert_eq!(
        client.ok("f", "FETCH 2 BODY[TEXT]").await,
        ["* 2 FETCH (BODY[TEXT] {16}\r\nLunch at noon.\r\n FLAGS (\\Seen \\Recent))"]
    );
    assert!(
        store.path().join("bob/cur").join(format!("{LUNCH}:2,S")).is_file(),
        "\\Seen is in the file name"
    );
    assert_eq!(
        client.ok("g", "FETCH 2 BODY[TEXT]").await,
        ["* 2 FETCH (BODY[TEXT] {16}\r\nLunch at noon.\r\n)"],
        "no FLAGS when nothing changed"
    );
    assert_eq!(
        client
            .ok("h", "FETCH 2 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[]<0.4>)")
            .await,
        ["* 2 FETCH (BODY[HEADER.FIELDS (Subject)] {18}\r\nSubject: Lunch\r\n\r\n BODY[]<0> {4}\r\nFrom)"]
    );
    assert_eq!(
        client.ok("i", "FETCH 1:* RFC822.HEADER").await.len(),
        2,
        "RFC822.HEADER for each message"
    );
    server.shutdown().await;
}

fn internaldate(path: &Path) -> String {
    let secs = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Only needs to work for now-ish dates; cross-checked against the server's own formatter.
    let date = civil(days as i64);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "\"{:>2}-{}-{} {:02}:{:02}:{:02} +0000\"",
        date.2,
        MONTHS[date.1 as usize - 1],
        date.0,
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[tokio::test]
async fn store_and_expunge() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut client = Client::bob(&server).await;
    assert_eq!(
        client.ok("a", "STORE 1 +FLAGS (\\Deleted)").await,
        ["* 1 FETCH (FLAGS (\\Deleted \\Recent))"]
    );
    assert!(store.path().join("bob/cur").join(format!("{TEA}:2,T")).is_file());
    assert!(client.ok("b", "STORE 2 +FLAGS.SILENT (\\Flagged \\Seen)").await.is_empty());
    assert!(store.path().join("bob/cur").join(format!("{LUNCH}:2,FS")).is_file());
    assert_eq!(
        client.ok("c", "STORE 2 -FLAGS (\\Seen $Keyword)").await,
        ["* 2 FETCH (FLAGS (\\Flagged \\Recent))"]
    );
    assert_eq!(
        client.ok("d", "STORE 2 FLAGS \\Answered \\Draft").await,
        ["* 2 FETCH (FLAGS (\\Answered \\Draft \\Recent))"]
    );
    assert_eq!(client.ok("e", "SEARCH DELETED").await, ["* SEARCH 1"]);
    assert_eq!(client.ok("f", "EXPUNGE").await, ["* 1 EXPUNGE"]);
    assert!(message_file(&store.path().join("bob/cur"), TEA).is_none(), "the file is gone");
    assert_eq!(client.ok("g", "FETCH 1 UID").await, ["* 1 FETCH (UID 2)"]);
    assert_eq!(
        client.ok("h", "UID STORE 2 +FLAGS (\\Deleted)").await,
        ["* 1 FETCH (UID 2 FLAGS (\\Answered \\Deleted \\Draft \\Recent))"]
    );
    client.ok("i", "CLOSE").await;
    assert!(message_file(&store.path().join("bob/cur"), LUNCH).is_none(), "CLOSE expunges");
    assert_eq!(client.command("j", "FETCH 1 UID").await, ["j BAD Select a mailbox first"]);
    let reselected = client.ok("k", "SELECT INBOX").await;
    assert_eq!(reselected[0], "* 0 EXISTS");
    assert!(
        reselected.contains(&"* OK [UIDNEXT 3] Predicted next UID".to_owned()),
        "UIDs are not reused"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn expunge_numbers_shift() {
    let store = make_store();
    for n in 3..=5 {
        let name = format!("1700000200.00000{n}.wirecheck");
        std::fs::write(store.path().join("bob/new").join(name), LUNCH_MESSAGE).expect("write");
    }
    let server = start(store.path()).await;
    let mut client = Client::bob(&server).await;
    client.ok("a", "STORE 2:3,5 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(client.ok("b", "EXPUNGE").await, ["* 2 EXPUNGE", "* 2 EXPUNGE", "* 3 EXPUNGE"]);
    assert_eq!(client.ok("c", "UID SEARCH ALL").await, ["* SEARCH 1 4"]);
    server.shutdown().await;
}

#[tokio::test]
async fn search_and_uid_commands() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut client = Client::bob(&server).await;
    assert_eq!(client.ok("a", "SEARCH UNSEEN").await, ["* SEARCH 1 2"]);
    client.ok("b", "STORE 1 +FLAGS.SILENT (\\Seen)").await;
    assert_eq!(client.ok("c", "SEARCH UNSEEN").await, ["* SEARCH 2"]);
    assert_eq!(client.ok("d", "SEARCH SEEN").await, ["* SEARCH 1"]);
    assert_eq!(client.ok("e", "SEARCH FROM alice").await, ["* SEARCH 1"]);
    assert_eq!(client.ok("f", "SEARCH FROM \"CAROL@example\"").await, ["* SEARCH 2"]);
    assert_eq!(client.ok("g", "SEARCH SUBJECT tea").await, ["* SEARCH 1"]);
    assert_eq!(client.ok("h", "SEARCH SUBJECT lunch UNSEEN").await, ["* SEARCH 2"]);
    assert_eq!(client.ok("i", "SEARCH SUBJECT lunch SEEN").await, ["* SEARCH"]);
    assert_eq!(client.ok("j", "SEARCH ALL").await, ["* SEARCH 1 2"]);
    assert_eq!(client.ok("k", "SEARCH OR DELETED NOT 1").await, ["* SEARCH 2"]);
    assert_eq!(client.ok("l", "SEARCH CHARSET UTF-8 BODY NOON").await, ["* SEARCH 2"]);
    assert_eq!(
        client.command("m", "SEARCH CHARSET KOI8-R ALL").await,
        ["m NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset"]
    );
    assert_eq!(client.ok("n", "UID SEARCH UNSEEN").await, ["* SEARCH 2"]);
    assert_eq!(client.ok("o", "UID SEARCH UID 2:*").await, ["* SEARCH 2"]);
    assert_eq!(client.ok("p", "UID FETCH 2 FLAGS").await, ["* 2 FETCH (UID 2 FLAGS (\\Recent))"]);
    assert_eq!(
        client.ok("q", "UID FETCH 1:* (UID RFC822.SIZE)").await,
        [
            format!("* 1 FETCH (UID 1 RFC822.SIZE {})", TEA_MESSAGE.len()),
            format!("* 2 FETCH (UID 2 RFC822.SIZE {})", LUNCH_MESSAGE.len())
        ]
    );
    assert!(
        client.ok("r", "UID FETCH 7:9 FLAGS").await.is_empty(),
        "UIDs that do not exist are skipped"
    );
    assert_eq!(
        client.ok("s", "UID FETCH 9:* UID").await,
        ["* 2 FETCH (UID 2)"],
        "n:* includes the last UID"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn append_with_both_kinds_of_literal() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut client = Client::connect(&server).await;
    client.ok("a", "LOGIN bob hungry").await;
    let message = b"From: dave@example.com\r\nSubject: Appended\r\n\r\nHello\r\n";
    client.send(format!("b APPEND INBOX (\\Seen) {{{}}}\r\n", message.len())).await;
    assert_eq!(client.line().await, "+ Ready for literal data");
    client.send(message).await;
    client.send("\r\n").await;
    let appended = client.until("b").await;
    let validity: u32 = appended[0]
        .strip_prefix("b OK [APPENDUID ")
        .and_then(|rest| rest.strip_suffix(" 3] APPEND completed"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{appended:?}"));

    // LITERAL+: everything at once, and no continuation comes back.
    let mut plus = format!("c APPEND INBOX \"17-Jul-1996 02:44:25 -0700\" {{{}+}}\r\n", message.len()).into_bytes();
    plus.extend_from_slice(message);
    plus.extend_from_slice(b"\r\n");
    client.send(plus).await;
    assert_eq!(client.line().await, format!("c OK [APPENDUID {validity} 4] APPEND completed"));
    assert_eq!(
        client
            .command(
                "d",
                &format!("APPEND Nope {{{}+}}\r\n{}", message.len(), std::str::from_utf8(message).unwrap())
            )
            .await,
        ["d NO [TRYCREATE] No such mailbox"]
    );
    assert!(client.command("e", "APPEND INBOX \"31-Feb-1996 02:44:25 -0700\" {1+}\r\nx").await[0].starts_with("e BAD "));

    let selected = client.ok("f", "SELECT INBOX").await;
    assert_eq!(selected[0..2], ["* 4 EXISTS", "* 2 RECENT"]);
    assert_eq!(
        client.ok("g", "UID FETCH 3:4 (FLAGS INTERNALDATE)").await[1],
        "* 4 FETCH (UID 4 FLAGS () INTERNALDATE \"17-Jul-1996 09:44:25 +0000\")"
    );
    assert_eq!(client.ok("h", "FETCH 3 FLAGS").await, ["* 3 FETCH (FLAGS (\\Seen))"]);

    // Appending to the selected mailbox announces the new message at once.
    assert_eq!(
        client
            .command(
                "i",
                &format!("APPEND INBOX {{{}+}}\r\n{}", message.len(), std::str::from_utf8(message).unwrap())
            )
            .await,
        [
            "* 5 EXISTS".to_owned(),
            "* 3 RECENT".to_owned(),
            format!("i OK [APPENDUID {validity} 5] APPEND completed")
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn uidvalidity_is_stable_across_server_instances() {
    let store = make_store();
    let first = {
        let server = start(store.path()).await;
        let mut client = Client::connect(&server).await;
        client.ok("a", "LOGIN bob hungry").await;
        let selected = client.ok("b", "SELECT INBOX").await;
        let fetched = client.ok("c", "FETCH 1:* UID").await;
        server.shutdown().await;
        (uidvalidity(&selected), fetched)
    };
    let server = start(store.path()).await;
    let mut client = Client::connect(&server).await;
    client.ok("a", "LOGIN bob hungry").await;
    let selected = client.ok("b", "SELECT INBOX").await;
    assert_eq!(uidvalidity(&selected), first.0);
    assert!(selected.contains(&"* OK [UIDNEXT 3] Predicted next UID".to_owned()));
    assert_eq!(client.ok("c", "FETCH 1:* UID").await, first.1);
    server.shutdown().await;
}

#[tokio::test]
async fn delivery_into_new_shows_up() {
    let store = make_store();
    let server = start(store.path()).await;
    let mut client = Client::bob(&server).await;
    let deliver = |unique: &str| {
        // As SMTP delivers: write into tmp/, then rename into new/.
        let tmp = store.path().join("bob/tmp").join(unique);
        std::fs::write(&tmp, b"From: eve@example.com\r\nSubject: Delivered\r\n\r\nHi\r\n").expect("write");
        std::fs::rename(&tmp, store.path().join("bob/new").join(unique)).expect("rename");
    };
    deliver("1800000000.000009.wirecheck");
    assert_eq!(client.ok("a", "NOOP").await, ["* 3 EXISTS", "* 3 RECENT"]);
    assert_eq!(client.ok("b", "FETCH 3 (UID FLAGS)").await, ["* 3 FETCH (UID 3 FLAGS (\\Recent))"]);
    deliver("1800000000.000010.wirecheck");
    let mut fresh = Client::connect(&server).await;
    fresh.ok("a", "LOGIN bob hungry").await;
    let selected = fresh.ok("b", "SELECT INBOX").await;
    assert_eq!(selected[0..2], ["* 4 EXISTS", "* 1 RECENT"]);
    assert_eq!(fresh.ok("c", "SEARCH RECENT").await, ["* SEARCH 4"]);

    // Changes by the other session reach this one at NOOP: flags, then expunges.
    fresh.ok("d", "STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    assert_eq!(
        client.ok("c", "NOOP").await,
        ["* 1 FETCH (FLAGS (\\Flagged \\Recent))", "* 4 EXISTS", "* 3 RECENT"]
    );
    fresh.ok("e", "STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    fresh.ok("f", "EXPUNGE").await;
    assert_eq!(
        client.command("d", "FETCH 2 RFC822.SIZE").await,
        ["d NO [EXPUNGEISSUED] Some messages were expunged by another session"]
    );
    assert_eq!(client.ok("e", "NOOP").await, ["* 2 EXPUNGE"]);
    server.shutdown().await;
}
