//! `ftp-client`: the client side of FTP (RFC 959), as K&R 2.3 draws it, done
//! right; the oracle for the `ftp-client` suite. Its command-line arguments:
//!
//! ```text
//! [--passive] get REMOTE LOCAL    download REMOTE, its exact bytes saved as LOCAL
//! [--passive] put LOCAL REMOTE    upload LOCAL as REMOTE
//! [--passive] ls [PATH]           print the LIST output, a line each
//! ```
//!
//! ```text
//! S: 220 ready
//! C: USER anonymous
//! S: 331 send your e-mail address
//! C: PASS guest@example.com
//! S: 230 logged in
//! C: TYPE I
//! S: 200 binary
//! C: EPRT |1|127.0.0.1|40211|        (PORT 127,0,0,1,157,19 if refused with 500 or 502)
//! S: 200 ok
//! C: RETR lines.txt
//! S: 150 opening                     (the server connects to port 40211, sends the file, closes)
//! S: 226 done
//! C: QUIT
//! S: 221 bye
//! ```
//!
//! The greeting comes before any command; a reply is read whole (lines until
//! the one with the first line's code and a space, RFC 959 §4.2), however the
//! server splits it; PASS goes only after a 331; get and put run in TYPE I;
//! active mode (the default) listens on the control connection's own address,
//! `--passive` connects where 229 or 227 says, the six numbers of a 227 found
//! anywhere in its text (RFC 1123 §4.1.2.6); the data connection is read
//! until the server closes it, then the 226 (or 250) is awaited; LOCAL is
//! written only after it (a relative LOCAL is relative to the current
//! directory: the harness's, since the client runs inside it). A refusal (4xx, 5xx or an unexpected code) still
//! ends with QUIT, and exit code 1; errors are printed as `error: ...`.
//!
//! Options: `timeout` (every wait, 5s), `max_file_size` (octets a download,
//! upload or listing may have, 16 MiB), `extended` (try EPSV and EPRT first,
//! RFC 2428, falling back to PASV and PORT on 500 or 502; default true) and
//! `fault`: deliberate bugs (comma-separated, none by default) that the suite's
//! proofs switch on, each the small change to this code that a client with
//! that bug would have (see `FAULTS`). With `tls_ca` (the PEM file of the CA
//! to trust) the control connection is implicit FTPS, TLS from its first byte
//! to the server `localhost`; data connections stay clear (RFC 4217 §9's
//! default without PROT).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{timeout, timeout_at, Instant};

use crate::tls::{self, ClientStream};
use crate::{parse_count, parse_duration, Error, OptionSet, Options};

/// The name suites and the CLI use for this client.
pub(crate) const NAME: &str = "ftp-client";
const OPTIONS: &[&str] = &["timeout", "max_file_size", "extended", "fault", tls::CA];

const USER: &str = "anonymous";
/// RFC 1635: anonymous FTP asks for an e-mail address as the password.
const PASSWORD: &str = "guest@example.com";

/// A reply line longer than this is not FTP.
const MAX_REPLY_LINE: usize = 4096;
/// Nor is a reply with more lines than this.
const MAX_REPLY_LINES: usize = 1000;
/// Preliminary replies (120, 1xx) tolerated before the one awaited.
const MAX_PRELIMINARY: usize = 8;
/// Bytes per read on a data connection.
const CHUNK: usize = 64 << 10;
/// What a textbook `recv(1024)` takes: the faults that read once read this much.
const RECV_SIZE: usize = 1024;

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `port-swapped`: PORT gives the listening port's two bytes in the wrong order (seen once EPRT is refused, or without `extended`).
    PortSwapped,
    /// `no-greeting-wait`: USER is sent at once, before the 220 arrives.
    NoGreetingWait,
    /// `no-type`: get and put never send TYPE I, so they run in the default TYPE A.
    NoType,
    /// `one-recv`: each reply is whatever one read returns, so a split or multi-line reply desynchronises it.
    OneRecv,
    /// `ignore-errors`: a 4xx or 5xx is taken for success (after a refused RETR it waits for data, writes what came, exits 0).
    IgnoreErrors,
    /// `no-quit`: the connection is closed without QUIT.
    NoQuit,
    /// `pasv-parens-only`: the numbers of a 227 are looked for only inside parentheses (seen once EPSV is refused, or without `extended`).
    PasvParensOnly,
    /// `no-fallback`: EPSV and EPRT only; a 500 or 502 to them ends the session.
    NoFallback,
    /// `read-once`: the data connection is read once instead of until the server closes it.
    ReadOnce,
    /// `no-226-wait`: the program ends as soon as the data connection closes, without reading the 226.
    No226Wait,
    /// `pass-always`: PASS is sent even after USER got 230.
    PassAlways,
    /// `wrong-host`: in active mode the data socket listens on every address, and PORT (or EPRT) names 0.0.0.0.
    WrongHost,
    /// `no-pass`: PASS is never sent, even when USER gets 331.
    NoPass,
    /// `first-line-only`: a multi-line reply ends at its first line (`230-`), so its other lines are read as the next replies.
    FirstLineOnly,
    /// `first-word`: a remote name is cut at its first space (`RETR with` for "with space.txt").
    FirstWord,
    /// `ls-no-path`: ls sends LIST without the path it was given.
    LsNoPath,
    /// `basename`: a remote path is cut to its last name (`RETR nested.txt` for pub/nested.txt).
    Basename,
}

/// Each fault's name, as the `fault` option takes it.
const FAULTS: &[(&str, Fault)] = &[
    ("port-swapped", Fault::PortSwapped),
    ("no-greeting-wait", Fault::NoGreetingWait),
    ("no-type", Fault::NoType),
    ("one-recv", Fault::OneRecv),
    ("ignore-errors", Fault::IgnoreErrors),
    ("no-quit", Fault::NoQuit),
    ("pasv-parens-only", Fault::PasvParensOnly),
    ("no-fallback", Fault::NoFallback),
    ("read-once", Fault::ReadOnce),
    ("no-226-wait", Fault::No226Wait),
    ("pass-always", Fault::PassAlways),
    ("wrong-host", Fault::WrongHost),
    ("no-pass", Fault::NoPass),
    ("first-line-only", Fault::FirstLineOnly),
    ("first-word", Fault::FirstWord),
    ("ls-no-path", Fault::LsNoPath),
    ("basename", Fault::Basename),
];

/// The faults switched on.
type Faults = crate::faults::Set<Fault>;

impl From<Fault> for u32 {
    fn from(f: Fault) -> u32 {
        f as u32
    }
}

/// Parses the `fault` option: fault names separated by commas.
fn parse_faults(text: &str) -> Result<Faults, String> {
    Faults::parse(text, FAULTS)
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Get { remote: String, local: PathBuf },
    Put { local: PathBuf, remote: String },
    Ls { path: Option<String> },
}

/// `[--passive] get REMOTE LOCAL | put LOCAL REMOTE | ls [PATH]`: whether passive, and the command.
fn parse_args(args: &[String]) -> Result<(bool, Command), String> {
    const USAGE: &str = "expected [--passive] get REMOTE LOCAL | put LOCAL REMOTE | ls [PATH]";
    let (passive, rest) = match args.split_first() {
        Some((first, rest)) if first == "--passive" => (true, rest),
        _ => (false, args),
    };
    // A remote path goes on the control connection: a CR or LF in it would be a second command.
    let remote = |path: &String| {
        if path.is_empty() || path.chars().any(char::is_control) {
            Err(format!("remote path {path:?} is empty or has control characters"))
        } else {
            Ok(path.clone())
        }
    };
    let local = |path: &String| match path.is_empty() {
        true => Err("empty local path".to_owned()),
        false => Ok(PathBuf::from(path)),
    };
    let command = match rest {
        [verb, from, to] if verb == "get" => Command::Get {
            remote: remote(from)?,
            local: local(to)?,
        },
        [verb, from, to] if verb == "put" => Command::Put {
            local: local(from)?,
            remote: remote(to)?,
        },
        [verb] if verb == "ls" => Command::Ls { path: None },
        [verb, path] if verb == "ls" => Command::Ls { path: Some(remote(path)?) },
        _ => return Err(USAGE.to_owned()),
    };
    Ok((passive, command))
}

/// Runs the client; 0 when the transfer succeeded and the session closed normally.
pub(crate) async fn run(server: SocketAddr, opts: &Options, args: &[String], out: UnboundedSender<String>) -> Result<i32, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let wait = opts.get("timeout", "5s", parse_duration)?;
    let max_size = opts.get("max_file_size", "16777216", |v| parse_count(v, 0, u64::MAX))?;
    let extended = opts.get("extended", "true", crate::ftp::parse_bool)?;
    let faults = opts.get("fault", "", parse_faults)?;
    let tls = tls::client_options(&opts, &[])?;
    let (passive, command) = parse_args(args).map_err(|why| Error::BadArgs {
        client: NAME.to_owned(),
        why,
    })?;
    // A closed output channel only means nobody is listening any more.
    let print = |line: String| {
        let _ = out.send(line);
    };
    // An upload that cannot be read is found before the server is bothered.
    let upload = match &command {
        Command::Put { local, .. } => match read_local(local, max_size) {
            Ok(bytes) => Some(bytes),
            Err(why) => {
                print(format!("error: {why}"));
                return Ok(1);
            }
        },
        _ => None,
    };
    let stream = match ClientStream::connect(server, tls.as_ref(), wait).await {
        Ok(stream) => stream,
        Err(why) => {
            print(format!("error: {why}"));
            return Ok(1);
        }
    };
    let (Ok(local), Ok(peer)) = (stream.tcp().local_addr(), stream.tcp().peer_addr()) else {
        print("error: the control connection has no address".to_owned());
        return Ok(1);
    };
    let mut client = Client {
        control: stream,
        local,
        peer,
        buf: Vec::new(),
        wait,
        max_size: usize::try_from(max_size).unwrap_or(usize::MAX),
        passive,
        extended,
        faults,
        print: &print,
    };
    match client.session(&command, upload.as_deref()).await {
        Ok(Ending::Quit) => client.quit().await.map(|()| 0).or_else(|failure| Ok(client.report(failure))),
        Ok(Ending::Gone) => Ok(0),
        Err(failure @ Failure::Broken(_)) => Ok(client.report(failure)),
        Err(failure) => {
            let code = client.report(failure);
            // RFC 959 §4.1.1: a refused command does not end the session; QUIT does.
            let _ = client.quit().await;
            Ok(code)
        }
    }
}

/// The file to upload, if it is a readable file of at most `max_size` octets.
fn read_local(path: &std::path::Path, max_size: u64) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    if meta.len() > max_size {
        return Err(format!("{shown} is over {max_size} octets"));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))
}

/// How a session that did its work ends.
enum Ending {
    /// With QUIT, as it should.
    Quit,
    /// The program has already let go of the connection (a fault).
    Gone,
}

/// Why the session ended early.
#[derive(Debug)]
enum Failure {
    /// The server refused or answered out of turn (its reply), or something local failed: QUIT follows.
    Refused(String),
    /// The control connection broke, timed out or carried something that is not FTP.
    Broken(String),
}

/// One whole reply.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// Every line, for the addresses inside a 227 or 229.
    fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The last line: the one a user is shown.
    fn last(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }
}

/// How the next data connection is made.
enum Data {
    /// Connected to the server's passive port.
    Passive(TcpStream),
    /// Listening for the server's connection.
    Active(TcpListener),
}

struct Client<'p> {
    control: ClientStream,
    local: SocketAddr,
    peer: SocketAddr,
    buf: Vec<u8>,
    wait: Duration,
    max_size: usize,
    passive: bool,
    extended: bool,
    faults: Faults,
    print: &'p (dyn Fn(String) + Sync),
}

impl Client<'_> {
    async fn session(&mut self, command: &Command, upload: Option<&[u8]>) -> Result<Ending, Failure> {
        if self.faults.has(Fault::NoGreetingWait) {
            self.send(&format!("USER {USER}")).await?;
            self.greeting().await?;
            self.login_reply().await?;
        } else {
            self.greeting().await?;
            self.send(&format!("USER {USER}")).await?;
            self.login_reply().await?;
        }
        if matches!(command, Command::Get { .. } | Command::Put { .. }) && !self.faults.has(Fault::NoType) {
            self.send("TYPE I").await?;
            let reply = self.reply().await?;
            self.check(&reply, "TYPE I", |code| code == 200)?;
        }
        let data = self.data().await?;
        match command {
            Command::Get { remote, local } => {
                let (bytes, ending) = self.transfer(&format!("RETR {}", self.name(remote)), data, None).await?;
                tokio::fs::write(local, &bytes)
                    .await
                    .map_err(|e| Failure::Refused(format!("cannot write {}: {e}", local.display())))?;
                Ok(ending)
            }
            Command::Put { remote, .. } => {
                let (_, ending) = self.transfer(&format!("STOR {}", self.name(remote)), data, upload).await?;
                Ok(ending)
            }
            Command::Ls { path } => {
                let path = path.as_ref().filter(|_| !self.faults.has(Fault::LsNoPath));
                let command = path.map_or_else(|| "LIST".to_owned(), |path| format!("LIST {path}"));
                let (listing, ending) = self.transfer(&command, data, None).await?;
                let listing = listing.strip_suffix(b"\n").unwrap_or(&listing);
                if !listing.is_empty() {
                    for line in listing.split(|&b| b == b'\n') {
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        (self.print)(String::from_utf8_lossy(line).into_owned());
                    }
                }
                Ok(ending)
            }
        }
    }

    /// A remote name as sent: whole, or cut by the `basename` and `first-word` faults.
    fn name<'n>(&self, remote: &'n str) -> &'n str {
        let remote = match self.faults.has(Fault::Basename) {
            true => remote.rsplit('/').next().unwrap_or(remote),
            false => remote,
        };
        match self.faults.has(Fault::FirstWord) {
            true => remote.split(' ').next().unwrap_or(remote),
            false => remote,
        }
    }

    /// Waits for 220, past any 120 ("ready in nnn minutes", RFC 959 §4.2).
    async fn greeting(&mut self) -> Result<(), Failure> {
        for _ in 0..MAX_PRELIMINARY {
            let reply = self.reply().await?;
            if reply.code != 120 {
                return self.check(&reply, "the connection", |code| code == 220);
            }
        }
        Err(Failure::Broken(format!("no 220 after {MAX_PRELIMINARY} replies of 120")))
    }

    /// The reply to USER, and PASS only if it asks for a password.
    async fn login_reply(&mut self) -> Result<(), Failure> {
        let reply = self.reply().await?;
        match reply.code {
            230 if !self.faults.has(Fault::PassAlways) => Ok(()),
            230 => {
                self.send(&format!("PASS {PASSWORD}")).await?;
                let reply = self.reply().await?;
                self.check(&reply, "PASS", |code| code == 230 || code == 202)
            }
            331 if self.faults.has(Fault::NoPass) => Ok(()),
            331 => {
                self.send(&format!("PASS {PASSWORD}")).await?;
                let reply = self.reply().await?;
                // 202: the password was superfluous, which is still a login.
                self.check(&reply, "PASS", |code| code == 230 || code == 202)
            }
            _ => self.check(&reply, "USER", |_| false),
        }
    }

    /// Sets up the next data connection: passive (EPSV, else PASV) or active (EPRT, else PORT).
    async fn data(&mut self) -> Result<Data, Failure> {
        let fallback = |code: u16, faults: Faults| (code == 500 || code == 502) && !faults.has(Fault::NoFallback);
        if self.passive {
            let mut target = None;
            if self.extended {
                self.send("EPSV").await?;
                let reply = self.reply().await?;
                if reply.code == 229 {
                    let port = parse_epsv(&reply.text())
                        .ok_or_else(|| Failure::Refused(format!("no port in the reply to EPSV: {}", reply.last())))?;
                    // RFC 2428 §3: the data connection goes to the host of the control connection.
                    target = Some(SocketAddr::new(self.peer.ip(), port));
                } else if !fallback(reply.code, self.faults) {
                    self.check(&reply, "EPSV", |_| false)?;
                }
            }
            let target = match target {
                Some(target) => target,
                None => {
                    self.send("PASV").await?;
                    let reply = self.reply().await?;
                    self.check(&reply, "PASV", |code| code == 227)?;
                    let parens = self.faults.has(Fault::PasvParensOnly);
                    parse_pasv(&reply.text(), parens)
                        .ok_or_else(|| Failure::Refused(format!("no address in the reply to PASV: {}", reply.last())))?
                }
            };
            return match timeout(self.wait, TcpStream::connect(target)).await {
                Ok(Ok(stream)) => Ok(Data::Passive(stream)),
                Ok(Err(e)) => Err(Failure::Refused(format!("cannot open the data connection to {target}: {e}"))),
                Err(_) => Err(Failure::Refused(format!("no data connection to {target} within {:?}", self.wait))),
            };
        }
        let own = self.local.ip().to_canonical();
        // The fault's classic cause: listening on every address and announcing what getsockname() says.
        let bind = match (self.faults.has(Fault::WrongHost), own) {
            (true, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (true, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            (false, ip) => ip,
        };
        let listener = TcpListener::bind((bind, 0))
            .await
            .map_err(|e| Failure::Refused(format!("cannot listen for the data connection: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Failure::Refused(format!("cannot listen for the data connection: {e}")))?
            .port();
        if self.extended {
            let family = if bind.is_ipv4() { 1 } else { 2 };
            self.send(&format!("EPRT |{family}|{bind}|{port}|")).await?;
            let reply = self.reply().await?;
            if reply.code == 200 || !fallback(reply.code, self.faults) {
                self.check(&reply, "EPRT", |code| code == 200)?;
                return Ok(Data::Active(listener));
            }
        }
        let IpAddr::V4(v4) = bind else {
            return Err(Failure::Refused(
                "PORT cannot name an IPv6 address, and EPRT was refused".to_owned(),
            ));
        };
        let [h1, h2, h3, h4] = v4.octets();
        let [p1, p2] = port.to_be_bytes();
        let (p1, p2) = if self.faults.has(Fault::PortSwapped) { (p2, p1) } else { (p1, p2) };
        self.send(&format!("PORT {h1},{h2},{h3},{h4},{p1},{p2}")).await?;
        let reply = self.reply().await?;
        self.check(&reply, "PORT", |code| code == 200)?;
        Ok(Data::Active(listener))
    }

    /// Sends `command` (RETR, STOR or LIST), moves the data, and awaits the completion reply;
    /// returns what was downloaded.
    async fn transfer(&mut self, command: &str, data: Data, upload: Option<&[u8]>) -> Result<(Vec<u8>, Ending), Failure> {
        self.send(command).await?;
        let verb = command.split(' ').next().unwrap_or(command);
        let reply = self.reply().await?;
        let started = reply.code / 100 == 1;
        self.check(&reply, verb, |code| code == 125 || code == 150)?;
        let (stream, early) = match data {
            Data::Passive(stream) => (Some(stream), None),
            Data::Active(listener) => self.accept(&listener, verb).await?,
        };
        let Some(mut stream) = stream else {
            if self.faults.has(Fault::IgnoreErrors) {
                return Ok((Vec::new(), Ending::Quit));
            }
            return Err(Failure::Refused(format!("the server did not connect within {:?}", self.wait)));
        };
        let bytes = match upload {
            Some(bytes) => {
                self.upload(&mut stream, bytes).await?;
                Vec::new()
            }
            None => self.download(&mut stream).await?,
        };
        drop(stream);
        if self.faults.has(Fault::No226Wait) {
            return Ok((bytes, Ending::Gone));
        }
        if !started {
            // Only `ignore-errors` gets here: after a refusal no completion reply is coming.
            return Ok((bytes, Ending::Quit));
        }
        let reply = match early {
            Some(reply) => reply,
            None => self.reply().await?,
        };
        self.check(&reply, verb, |code| code == 226 || code == 250)?;
        Ok((bytes, Ending::Quit))
    }

    /// The server's connection to the active data port, from the server's own host (RFC 2577 §3's
    /// concern seen from the client), or `None` when none came in time; with it, a reply that
    /// arrived meanwhile. The control connection is watched too, so that a 425 ends the wait, and
    /// a 226 sent before the connection was accepted (a small file, a fast server) is kept.
    async fn accept(&mut self, listener: &TcpListener, verb: &str) -> Result<(Option<TcpStream>, Option<Reply>), Failure> {
        let deadline = Instant::now() + self.wait;
        let mut early = None;
        loop {
            let control_ready = early.is_none() && self.buf.contains(&b'\n');
            let event = match control_ready {
                true => Ok(None),
                false => {
                    let watch = early.is_none();
                    timeout_at(deadline, async {
                        tokio::select! {
                            biased;
                            accepted = listener.accept() => Some(accepted),
                            // Cancel-safe: only readiness is awaited here, the reply is read below.
                            _ = self.control.readable(), if watch => None,
                        }
                    })
                    .await
                }
            };
            match event {
                Ok(Some(Ok((stream, from)))) if from.ip().to_canonical() == self.peer.ip().to_canonical() => {
                    return Ok((Some(stream), early));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(Failure::Refused(format!("cannot accept the data connection: {e}"))),
                Ok(None) => {
                    let reply = self.reply().await?;
                    if reply.code >= 400 {
                        self.check(&reply, verb, |_| false)?;
                        return Ok((None, None));
                    }
                    early = Some(reply);
                }
                Err(_) => return Ok((None, early)),
            }
        }
    }

    /// Sends `bytes`, then closes the sending side: the end of the file (RFC 959 §3.4, stream mode).
    async fn upload(&self, stream: &mut TcpStream, bytes: &[u8]) -> Result<(), Failure> {
        for piece in bytes.chunks(CHUNK) {
            match timeout(self.wait, stream.write_all(piece)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Failure::Refused(format!("the upload failed: {e}"))),
                Err(_) => return Err(Failure::Refused(format!("the server took no data for {:?}", self.wait))),
            }
        }
        match timeout(self.wait, stream.shutdown()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Refused(format!("the upload failed: {e}"))),
            Err(_) => Err(Failure::Refused(format!("the server took no data for {:?}", self.wait))),
        }
    }

    /// Everything the server sends on the data connection until it closes it, at most `max_size`.
    async fn download(&self, stream: &mut TcpStream) -> Result<Vec<u8>, Failure> {
        let mut bytes = Vec::new();
        if self.faults.has(Fault::ReadOnce) {
            let mut chunk = vec![0; RECV_SIZE];
            let n = match timeout(self.wait, stream.read(&mut chunk)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(Failure::Refused(format!("cannot receive the data: {e}"))),
                Err(_) => 0,
            };
            bytes.extend_from_slice(&chunk[..n]);
            return Ok(bytes);
        }
        loop {
            if bytes.len() > self.max_size {
                return Err(Failure::Refused(format!("the data is over {} octets", self.max_size)));
            }
            bytes.reserve(CHUNK);
            match timeout(self.wait, stream.read_buf(&mut bytes)).await {
                Ok(Ok(0)) => return Ok(bytes),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Failure::Refused(format!("cannot receive the data: {e}"))),
                Err(_) if self.faults.has(Fault::IgnoreErrors) => return Ok(bytes),
                Err(_) => return Err(Failure::Refused(format!("the data connection was silent for {:?}", self.wait))),
            }
        }
    }

    /// QUIT, then 221 (unless the `no-quit` fault drops the connection instead).
    async fn quit(&mut self) -> Result<(), Failure> {
        if self.faults.has(Fault::NoQuit) {
            return Ok(());
        }
        self.send("QUIT").await?;
        let reply = self.reply().await?;
        self.check(&reply, "QUIT", |code| code == 221)
    }

    /// Prints why the session failed; the exit code.
    fn report(&self, failure: Failure) -> i32 {
        match failure {
            // The fault's client takes any ending, a closed connection included, for success.
            _ if self.faults.has(Fault::IgnoreErrors) => 0,
            Failure::Refused(why) | Failure::Broken(why) => {
                (self.print)(format!("error: {why}"));
                1
            }
        }
    }

    /// Ok if `ok` accepts the reply's code (or the `ignore-errors` fault looks away).
    fn check(&self, reply: &Reply, what: &str, ok: impl Fn(u16) -> bool) -> Result<(), Failure> {
        if ok(reply.code) || self.faults.has(Fault::IgnoreErrors) {
            return Ok(());
        }
        Err(Failure::Refused(format!("the server answered {what} with: {}", reply.last())))
    }

    async fn send(&mut self, command: &str) -> Result<(), Failure> {
        let line = format!("{command}\r\n");
        match timeout(self.wait, self.control.write_all(line.as_bytes())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Broken(format!("cannot send: {e}"))),
            Err(_) => Err(Failure::Broken(format!("could not send within {:?}", self.wait))),
        }
    }

    /// One whole reply: from `ddd-` up to the line `ddd ` with the same code (RFC 959 §4.2).
    async fn reply(&mut self) -> Result<Reply, Failure> {
        if self.faults.has(Fault::OneRecv) {
            return self.one_recv().await;
        }
        let first = self.line().await?;
        let code = reply_code(&first).ok_or_else(|| Failure::Broken(format!("not an FTP reply: {first:?}")))?;
        let mut lines = vec![first];
        if lines[0].as_bytes().get(3) != Some(&b'-') || self.faults.has(Fault::FirstLineOnly) {
            return Ok(Reply { code, lines });
        }
        let end = format!("{code:03} ");
        let bare = format!("{code:03}");
        while lines.len() < MAX_REPLY_LINES {
            let line = self.line().await?;
            let done = line.starts_with(&end) || line == bare;
            lines.push(line);
            if done {
                return Ok(Reply { code, lines });
            }
        }
        Err(Failure::Broken(format!("a reply of more than {MAX_REPLY_LINES} lines")))
    }

    /// The `one-recv` fault: a reply is what one read brings.
    async fn one_recv(&mut self) -> Result<Reply, Failure> {
        let mut chunk = vec![0; RECV_SIZE];
        let n = match timeout(self.wait, self.control.read(&mut chunk)).await {
            Ok(Ok(0)) => return Err(Failure::Broken("the server closed the connection".to_owned())),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(Failure::Broken(format!("cannot receive: {e}"))),
            Err(_) => return Err(Failure::Broken(format!("no reply within {:?}", self.wait))),
        };
        let text = String::from_utf8_lossy(&chunk[..n]);
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let first = lines.first().map_or("", String::as_str);
        let code = reply_code(first).ok_or_else(|| Failure::Broken(format!("not an FTP reply: {first:?}")))?;
        Ok(Reply { code, lines })
    }

    /// One reply line without its CRLF (a bare LF is tolerated), each read bounded by `timeout`.
    async fn line(&mut self) -> Result<String, Failure> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                let text = raw.strip_suffix(b"\n").unwrap_or(&raw);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                return Ok(String::from_utf8_lossy(text).into_owned());
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(Failure::Broken(format!("a reply line longer than {MAX_REPLY_LINE} octets")));
            }
            self.buf.reserve(4096);
            match timeout(self.wait, self.control.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) => return Err(Failure::Broken("the server closed the connection".to_owned())),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Failure::Broken(format!("cannot receive: {e}"))),
                Err(_) => return Err(Failure::Broken(format!("no reply within {:?}", self.wait))),
            }
        }
    }
}

/// The code of a reply's first line: three digits, then a space, a hyphen or nothing.
fn reply_code(line: &str) -> Option<u16> {
    let bytes = line.as_bytes();
    let digits = bytes.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !matches!(bytes.get(3), None | Some(b' ' | b'-')) {
        return None;
    }
    line[..3].parse().ok()
}

/// The port of a 229 reply: `(|||port|)`, with any delimiter (RFC 2428 §3).
fn parse_epsv(text: &str) -> Option<u16> {
    let inside = &text[text.find('(')? + 1..];
    let inside = &inside[..inside.find(')')?];
    let delimiter = inside.chars().next()?;
    let fields: Vec<&str> = inside.split(delimiter).collect();
    match fields[..] {
        ["", "", "", port, ""] => port.parse().ok().filter(|&port| port != 0),
        _ => None,
    }
}

/// The address of a 227 reply: the first six comma-separated numbers in it, wherever they are
/// (RFC 1123 §4.1.2.6); with `parens_only` (the fault), only inside parentheses.
fn parse_pasv(text: &str, parens_only: bool) -> Option<SocketAddr> {
    let text = match parens_only {
        true => {
            let inside = &text[text.find('(')? + 1..];
            &inside[..inside.find(')')?]
        }
        // The code itself is not the first number.
        false => text.get(4..)?,
    };
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if bytes[start].is_ascii_digit() && (start == 0 || !bytes[start - 1].is_ascii_digit()) {
            if let Some(addr) = six_numbers(&text[start..]) {
                return Some(addr);
            }
        }
        start += 1;
    }
    None
}

/// `h1,h2,h3,h4,p1,p2` at the start of `text`, each from 0 to 255.
fn six_numbers(text: &str) -> Option<SocketAddr> {
    let mut numbers = [0u8; 6];
    let mut rest = text;
    for (i, number) in numbers.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.trim_start().strip_prefix(',')?.trim_start();
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 3 {
            return None;
        }
        *number = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
    }
    let [h1, h2, h3, h4, p1, p2] = numbers;
    Some(SocketAddr::from(([h1, h2, h3, h4], u16::from_be_bytes([p1, p2]))))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, BufReader};

    #[test]
    fn faults_and_arguments() {
        assert_eq!(parse_faults(""), Ok(Faults::default()));
        let both = parse_faults("no-type, one-recv").expect("known faults");
        assert!(both.has(Fault::NoType) && both.has(Fault::OneRecv) && !both.has(Fault::NoQuit));
        assert!(parse_faults("no-type,nosuch").unwrap_err().contains("\"nosuch\""));
        for (i, (name, fault)) in FAULTS.iter().enumerate() {
            assert_eq!(*fault as usize, i, "{name}: FAULTS is in declaration order");
        }
        let args = |words: &[&str]| parse_args(&words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>());
        assert_eq!(
            args(&["--passive", "get", "a b", "out"]),
            Ok((
                true,
                Command::Get {
                    remote: "a b".into(),
                    local: "out".into()
                }
            ))
        );
        assert_eq!(args(&["ls"]), Ok((false, Command::Ls { path: None })));
        for bad in [
            &["get", "x"][..],
            &["ls", "a", "b"],
            &[],
            &["--passive"],
            &["get", "x\r\nDELE y", "out"],
            &["del", "x"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reply_addresses() {
        let at = |port: u16| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(parse_pasv("227 Entering Passive Mode (127,0,0,1,195,80)", false), at(50000));
        assert_eq!(parse_pasv("227 Entering Passive Mode 127,0,0,1,195,80", false), at(50000));
        assert_eq!(parse_pasv("227 =127,0,0,1,4,1 ok", false), at(1025));
        assert_eq!(parse_pasv("227 Entering Passive Mode 127,0,0,1,195,80", true), None);
        assert_eq!(parse_pasv("227 (127,0,0,1,195,80)", true), at(50000));
        assert_eq!(parse_pasv("227 ok (1,2,3) 127, 0, 0, 1, 4, 1", false), at(1025));
        assert_eq!(parse_pasv("227 (127,0,0,1,256,1)", false), None);
        assert_eq!(parse_epsv("229 Entering Extended Passive Mode (|||6446|)"), Some(6446));
        assert_eq!(parse_epsv("229 ok (!!!6446!)"), Some(6446));
        assert_eq!(parse_epsv("229 ok (|1|127.0.0.1|6446|)"), None);
        assert_eq!(reply_code("226 done"), Some(226));
        assert_eq!(reply_code("226-more"), Some(226));
        assert_eq!(reply_code("226"), Some(226));
        assert_eq!(reply_code("22x ok"), None);
        assert_eq!(reply_code("2260 ok"), None);
    }

    /// How the test server behaves.
    #[derive(Clone, Default)]
    struct Script {
        /// USER alone logs in (230).
        user_230: bool,
        /// EPSV and EPRT get 502, as from a server without RFC 2428.
        no_extended: bool,
        /// 227 without parentheses.
        bare_227: bool,
        /// Every reply is sent in two writes, split mid-line, and the greeting is multi-line.
        split: bool,
        /// The 226 goes with the 150, before the data connection: what a client sees when a fast
        /// server's reply overtakes the connection it has not accepted yet.
        eager: bool,
    }

    /// What the test server saw: the commands, and an upload.
    #[derive(Default)]
    struct Seen {
        commands: Vec<String>,
        upload: Option<Vec<u8>>,
    }

    /// The one file the test server has.
    const FILE: &[u8] = b"line one\r\nline two\n\x00\xff\r\n";

    /// A small FTP server for one session, to drive the client through what the reference server
    /// never does (split replies, no EPSV, 227 without parentheses, 230 to USER).
    async fn serve(script: Script) -> (SocketAddr, Arc<Mutex<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let log = seen.clone();
        tokio::spawn(async move {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let _ = timeout(Duration::from_secs(10), session(stream, peer, script, log)).await;
        });
        (addr, seen)
    }

    async fn say(stream: &mut tokio::net::tcp::OwnedWriteHalf, split: bool, text: &str) {
        let text = format!("{text}\r\n");
        if split {
            let (a, b) = text.split_at(text.len() / 2);
            let _ = stream.write_all(a.as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = stream.write_all(b.as_bytes()).await;
        } else {
            let _ = stream.write_all(text.as_bytes()).await;
        }
    }

    async fn session(stream: TcpStream, peer: SocketAddr, script: Script, seen: Arc<Mutex<Seen>>) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let split = script.split;
        if split {
            say(&mut write, true, "220-Welcome\r\n220-to the\r\n220 test server").await;
        } else {
            say(&mut write, false, "220 test server").await;
        }
        let mut passive: Option<TcpListener> = None;
        let mut active: Option<SocketAddr> = None;
        while let Ok(Some(line)) = lines.next_line().await {
            seen.lock().expect("lock").commands.push(line.clone());
            let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
            let reply = match verb {
                "USER" if script.user_230 => "230 in".to_owned(),
                "USER" => "331 password please".to_owned(),
                "PASS" => "230 in".to_owned(),
                "TYPE" => "200 ok".to_owned(),
                "EPSV" | "EPRT" if script.no_extended => "502 no".to_owned(),
                "EPSV" | "PASV" => {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    let port = listener.local_addr().expect("addr").port();
                    passive = Some(listener);
                    match (verb, script.bare_227) {
                        ("EPSV", _) => format!("229 Entering Extended Passive Mode (|||{port}|)"),
                        (_, false) => format!("227 Entering Passive Mode (127,0,0,1,{},{})", port >> 8, port & 0xff),
                        (_, true) => format!("227 Entering Passive Mode 127,0,0,1,{},{}", port >> 8, port & 0xff),
                    }
                }
                "EPRT" => {
                    let port = arg.trim_end_matches('|').rsplit('|').next().and_then(|p| p.parse().ok());
                    active = port.map(|port| SocketAddr::new(peer.ip(), port));
                    "200 ok".to_owned()
                }
                "PORT" => {
                    let n: Vec<u16> = arg.split(',').filter_map(|n| n.parse().ok()).collect();
                    active = (n.len() == 6 && n[..4] == [127, 0, 0, 1]).then(|| SocketAddr::new(peer.ip(), n[4] * 256 + n[5]));
                    "200 ok".to_owned()
                }
                "RETR" | "LIST" | "STOR" => {
                    if verb == "RETR" && arg != "file.bin" {
                        say(&mut write, split, "550 No such file").await;
                        continue;
                    }
                    say(
                        &mut write,
                        split,
                        if script.eager { "150 opening\r\n226 done" } else { "150 opening" },
                    )
                    .await;
                    let data = match (passive.take(), active.take()) {
                        (Some(listener), _) => timeout(Duration::from_secs(2), listener.accept())
                            .await
                            .ok()
                            .and_then(Result::ok)
                            .map(|(s, _)| s),
                        (None, Some(to)) => timeout(Duration::from_secs(2), TcpStream::connect(to))
                            .await
                            .ok()
                            .and_then(Result::ok),
                        _ => None,
                    };
                    let Some(mut data) = data else {
                        say(&mut write, split, "425 no data connection").await;
                        continue;
                    };
                    match verb {
                        "RETR" => {
                            let _ = data.write_all(FILE).await;
                        }
                        "LIST" => {
                            let _ = data
                                .write_all(b"-rw-r--r-- 1 ftp ftp 26 Jan 1 00:00 file.bin\r\ndrwxr-xr-x 2 ftp ftp 0 Jan 1 00:00 pub\r\n")
                                .await;
                        }
                        _ => {
                            let mut upload = Vec::new();
                            let _ = data.read_to_end(&mut upload).await;
                            seen.lock().expect("lock").upload = Some(upload);
                        }
                    }
                    drop(data);
                    if script.eager {
                        continue;
                    }
                    "226 done".to_owned()
                }
                "QUIT" => {
                    say(&mut write, split, "221 bye").await;
                    return;
                }
                _ => "502 not here".to_owned(),
            };
            say(&mut write, split, &reply).await;
        }
    }

    /// Runs the client against `server`; its exit code and printed lines.
    async fn client(server: SocketAddr, fault: &str, args: &[&str]) -> (i32, Vec<String>) {
        let mut opts = Options::from([("timeout".to_owned(), "1s".to_owned())]);
        if !fault.is_empty() {
            opts.insert("fault".to_owned(), fault.to_owned());
        }
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let code = timeout(Duration::from_secs(10), run(server, &opts, &args, tx))
            .await
            .expect("the client ends")
            .expect("the client starts");
        let mut lines = Vec::new();
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        (code, lines)
    }

    fn commands(seen: &Mutex<Seen>) -> Vec<String> {
        seen.lock().expect("lock").commands.clone()
    }

    #[tokio::test]
    async fn downloads_in_both_modes_with_split_replies() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (passive, no_extended) in [(false, false), (true, false), (false, true), (true, true)] {
            let local = dir.path().join(format!("got-{passive}-{no_extended}"));
            let local = local.to_str().expect("utf-8");
            let (addr, seen) = serve(Script {
                split: true,
                no_extended,
                ..Script::default()
            })
            .await;
            let args: &[&str] = if passive {
                &["--passive", "get", "file.bin", local]
            } else {
                &["get", "file.bin", local]
            };
            let (code, lines) = client(addr, "", args).await;
            assert_eq!((code, lines), (0, vec![]), "passive {passive}, no EPSV/EPRT {no_extended}");
            assert_eq!(std::fs::read(local).expect("saved"), FILE);
            let commands = commands(&seen);
            let verbs: Vec<&str> = commands.iter().map(|c| c.split(' ').next().unwrap_or("")).collect();
            let setup: &[&str] = match (passive, no_extended) {
                (false, false) => &["EPRT"],
                (true, false) => &["EPSV"],
                (false, true) => &["EPRT", "PORT"],
                (true, true) => &["EPSV", "PASV"],
            };
            let expected: Vec<&str> = ["USER", "PASS", "TYPE"]
                .into_iter()
                .chain(setup.iter().copied())
                .chain(["RETR", "QUIT"])
                .collect();
            assert_eq!(verbs, expected);
            assert_eq!(commands[..3], ["USER anonymous", "PASS guest@example.com", "TYPE I"]);
        }
    }

    #[tokio::test]
    async fn refusals_end_with_quit_and_exit_1() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().join("missing");
        let local = local.to_str().expect("utf-8");
        let (addr, seen) = serve(Script::default()).await;
        let (code, lines) = client(addr, "", &["--passive", "get", "nosuch", local]).await;
        assert_eq!(code, 1);
        assert!(lines[0].starts_with("error: ") && lines[0].contains("550"), "{lines:?}");
        assert_eq!(commands(&seen).last().map(String::as_str), Some("QUIT"));
        assert!(!std::path::Path::new(local).exists());

        let (addr, _) = serve(Script::default()).await;
        assert_eq!(
            client(addr, "ignore-errors", &["--passive", "get", "nosuch", local]).await,
            (0, vec![])
        );
        assert_eq!(std::fs::read(local).expect("saved"), b"");
    }

    #[tokio::test]
    async fn uploads_and_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().join("up");
        std::fs::write(&local, FILE).expect("write");
        let (addr, seen) = serve(Script {
            user_230: true,
            ..Script::default()
        })
        .await;
        assert_eq!(
            client(addr, "", &["put", local.to_str().expect("utf-8"), "up.bin"]).await,
            (0, vec![])
        );
        assert_eq!(seen.lock().expect("lock").upload.as_deref(), Some(FILE));
        assert!(!commands(&seen).iter().any(|c| c.starts_with("PASS")), "230 to USER needs no PASS");

        let (addr, seen) = serve(Script::default()).await;
        let (code, lines) = client(addr, "", &["--passive", "ls", "/"]).await;
        assert_eq!(code, 0);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("file.bin") && lines[1].ends_with("pub"), "{lines:?}");
        assert!(commands(&seen).contains(&"LIST /".to_owned()));
    }

    #[tokio::test]
    async fn faults_show() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().join("got");
        let local = local.to_str().expect("utf-8");
        let textbook = Script {
            no_extended: true,
            bare_227: true,
            ..Script::default()
        };
        let (addr, _) = serve(textbook.clone()).await;
        assert_eq!(
            client(addr, "", &["--passive", "get", "file.bin", local]).await.0,
            0,
            "227 without parentheses"
        );
        for (fault, passive) in [
            ("pasv-parens-only", true),
            ("no-fallback", true),
            ("no-fallback", false),
            ("port-swapped", false),
        ] {
            let (addr, _) = serve(textbook.clone()).await;
            let args: &[&str] = if passive {
                &["--passive", "get", "file.bin", local]
            } else {
                &["get", "file.bin", local]
            };
            assert_eq!(client(addr, fault, args).await.0, 1, "{fault}");
        }
        let (addr, seen) = serve(Script::default()).await;
        assert_eq!(client(addr, "no-type,no-quit", &["get", "file.bin", local]).await.0, 0);
        assert!(!commands(&seen).iter().any(|c| c.starts_with("TYPE") || c == "QUIT"));
        let (addr, seen) = serve(Script {
            user_230: true,
            ..Script::default()
        })
        .await;
        assert_eq!(client(addr, "pass-always", &["ls"]).await.0, 0);
        assert_eq!(commands(&seen)[1], "PASS guest@example.com");
        let (addr, _) = serve(Script {
            split: true,
            ..Script::default()
        })
        .await;
        assert_eq!(client(addr, "one-recv", &["ls"]).await.0, 1, "a split greeting desynchronises it");
    }

    #[tokio::test]
    async fn a_226_before_the_active_connection_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().join("got");
        let local = local.to_str().expect("utf-8");
        let (addr, seen) = serve(Script {
            eager: true,
            ..Script::default()
        })
        .await;
        assert_eq!(client(addr, "", &["get", "file.bin", local]).await, (0, vec![]));
        assert_eq!(std::fs::read(local).expect("saved"), FILE);
        assert_eq!(commands(&seen).last().map(String::as_str), Some("QUIT"));
    }

    #[tokio::test]
    async fn against_the_reference_server() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/ftp");
        let opts = Options::from([("root".to_owned(), root.to_owned()), ("writable".to_owned(), "true".to_owned())]);
        let server = crate::ftp::start(SocketAddr::from(([127, 0, 0, 1], 0)), &opts)
            .await
            .expect("ftp starts");
        let addr = server.local_addr();
        let dir = tempfile::tempdir().expect("tempdir");
        let got = dir.path().join("got");
        let got = got.to_str().expect("utf-8");
        let binary = std::fs::read(format!("{root}/binary.bin")).expect("fixture");
        for mode in [&[][..], &["--passive"]] {
            let args: Vec<&str> = mode.iter().copied().chain(["get", "binary.bin", got]).collect();
            assert_eq!(client(addr, "", &args).await, (0, vec![]), "{mode:?}");
            assert_eq!(std::fs::read(got).expect("saved"), binary);
            let args: Vec<&str> = mode.iter().copied().chain(["put", got, "pub/up.bin"]).collect();
            assert_eq!(client(addr, "", &args).await, (0, vec![]), "{mode:?}");
            let args: Vec<&str> = mode.iter().copied().chain(["ls", "pub"]).collect();
            let (code, lines) = client(addr, "", &args).await;
            assert_eq!(code, 0);
            assert!(
                lines.iter().any(|l| l.ends_with(" up.bin")) && lines.iter().any(|l| l.ends_with(" nested.txt")),
                "{lines:?}"
            );
        }
        let lines = std::fs::read(format!("{root}/lines.txt")).expect("fixture");
        assert_eq!(client(addr, "no-greeting-wait", &["get", "lines.txt", got]).await.0, 0);
        assert_eq!(std::fs::read(got).expect("saved"), lines, "TYPE I keeps the bare LF");
        assert_eq!(client(addr, "no-type", &["get", "lines.txt", got]).await.0, 0);
        assert_ne!(std::fs::read(got).expect("saved"), lines, "TYPE A adds a CR");
        let (code, out) = client(addr, "wrong-host", &["get", "lines.txt", got]).await;
        assert!(code == 1 && out[0].contains("504"), "{out:?}");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn bad_options_and_arguments() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let opts = Options::from([("fault".to_owned(), "nosuch".to_owned())]);
        assert!(matches!(
            run(addr, &opts, &["ls".to_owned()], tx.clone()).await,
            Err(Error::BadOption { .. })
        ));
        assert!(matches!(run(addr, &Options::new(), &[], tx).await, Err(Error::BadArgs { .. })));
    }
}
