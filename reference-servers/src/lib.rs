//! Reference implementations of the socket programs in chapter 2 of Kurose &
//! Ross, *Computer Networking: A Top-Down Approach*: the oracle that
//! wirecheck's suites are checked against. Each server or client is a small
//! tokio program that reads like the textbook's Python, hardened only as far
//! as an oracle must be: reads are bounded, connections are bounded, garbage
//! input never panics, and every server binds to the address it is given and
//! reports the address it actually got.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinHandle;

mod bittorrent;
mod bt_client;
mod bt_dht;
mod dash_client;
mod dash_origin;
mod dht_ring;
mod faults;
mod ftp;
mod ftp_client;
mod guard;
mod http2;
mod http2_client;
mod http3;
mod http_origin;
mod http_proxy;
mod pinger_client;
mod socket_timeout;
mod tcp_upper;
mod tls;
mod udp_pinger;
mod udp_upper;

mod imap;
mod maildir;
mod pop3;
mod smtp;
mod smtp_client;

mod dns;

/// Options are string key/values from a suite file or the CLI (e.g. `"loss" => "0.3"`); unknown keys are an error.
pub type Options = BTreeMap<String, String>;

/// The transport a reference server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP listener.
    Tcp,
    /// A UDP socket.
    Udp,
}

/// Why a reference server or client could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No server has this name.
    #[error("unknown reference server `{name}` (known: {known})")]
    UnknownServer {
        /// The name asked for.
        name: String,
        /// Comma-separated names of the servers that exist.
        known: String,
    },
    /// No client has this name.
    #[error("unknown reference client `{name}` (known: {known})")]
    UnknownClient {
        /// The name asked for.
        name: String,
        /// Comma-separated names of the clients that exist.
        known: String,
    },
    /// An option has a value the server (or client) cannot use.
    #[error("{server}: bad value `{value}` for option `{key}`: {why}")]
    BadOption {
        /// The server (or client) the option was given to.
        server: String,
        /// The option's name.
        key: String,
        /// The rejected value.
        value: String,
        /// What a valid value looks like.
        why: String,
    },
    /// An option the server (or client) does not have.
    #[error("{server}: unknown option `{key}` (known: {known})")]
    UnknownOption {
        /// The server (or client) the option was given to.
        server: String,
        /// The option's name.
        key: String,
        /// Comma-separated names of its options, or `(none)`.
        known: String,
    },
    /// Command-line arguments a client cannot use.
    #[error("{client}: {why}")]
    BadArgs {
        /// The client the arguments were given to.
        client: String,
        /// What is wrong and what it takes.
        why: String,
    },
    /// Binding or otherwise setting up a socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

const SERVERS: &[(&str, &str)] = &[
    (tcp_upper::NAME, "TCPServer: uppercases one line per connection, then closes"),
    (udp_upper::NAME, "UDPServer: replies to each datagram with it uppercased"),
    (
        udp_pinger::NAME,
        "UDPPingerServer: echoes datagrams uppercased, dropping a seeded fraction",
    ),
    (
        socket_timeout::NAME,
        "socket timeouts: serial server that stops after N silent connections",
    ),
    (
        http_origin::NAME,
        "HTTP/1.1 origin server: static files, conditional GET, cookies, uploads",
    ),
    (
        http_proxy::NAME,
        "caching HTTP proxy (RFC 9111): absolute-form in, origin-form out, revalidation",
    ),
    (
        http2::NAME,
        "HTTP/2 origin (RFC 9113, h2c prior knowledge; HTTP/1.1 on the same port): files, interleaved streams, push",
    ),
    (
        http3::NAME,
        "HTTP/3 origin (RFC 9114) over QUIC with TLS 1.3 (tls_cert, tls_key required): files, many request streams, GOAWAY when idle",
    ),
    (
        smtp::NAME,
        "SMTP server (RFC 5321): delivers to local users of the mail store, no relaying",
    ),
    (
        pop3::NAME,
        "POP3 server (RFC 1939, CAPA): USER/PASS, STAT, LIST, RETR, TOP, UIDL, DELE over the mail store",
    ),
    (imap::NAME, "IMAP4rev1/rev2 server (RFC 3501/9051 subset) on the shared mail store"),
    (
        ftp::NAME,
        "FTP server (RFC 959, EPSV/EPRT, SIZE/MDTM/REST, FEAT) over a folder, confined to it",
    ),
    (dns::auth::NAME, "authoritative DNS server (RFC 1035) for the zone files given"),
    (
        dns::resolver::NAME,
        "recursive DNS resolver (RFC 1034 §5.3.3) from configurable root hints",
    ),
    (
        bittorrent::tracker::NAME,
        "BitTorrent tracker: HTTP announce/scrape (BEP 3, 23, 48) and UDP (BEP 15) on one port, for the torrents of a folder",
    ),
    (
        bittorrent::seeder::NAME,
        "BitTorrent seeder (BEP 3 peer wire): one torrent's data to many peers, 16 KiB blocks",
    ),
    (
        bt_dht::NAME,
        "BitTorrent DHT node (BEP 5, KRPC over UDP): ping, find_node, get_peers, announce_peer; bootstraps from `bootstrap`",
    ),
    (
        dht_ring::NAME,
        "circular DHT lab node (docs/dht-ring.md, JSON over UDP): routing with two successors and shortcuts, join, churn; `id` required",
    ),
    (
        dash_origin::NAME,
        "DASH lab origin (docs/dash.md): HTTP/1.1 files with byte ranges, CORS and persistent connections",
    ),
];

const CLIENTS: &[(&str, &str)] = &[
    (
        pinger_client::NAME,
        "UDPPingerClient: sends 10 pings, prints each reply and RTT or a timeout",
    ),
    (
        smtp_client::NAME,
        "SMTP mail client lab: HELO, MAIL, RCPT, DATA (dot-stuffed), QUIT; exit 1 on an unexpected reply",
    ),
    (
        ftp_client::NAME,
        "FTP client: [--passive] get REMOTE LOCAL | put LOCAL REMOTE | ls [PATH], anonymous, TYPE I, QUIT; exit 1 on a refusal",
    ),
    (
        http2_client::NAME,
        "HTTP/2 client (RFC 9113, h2c prior knowledge): get PATH LOCAL [PATH LOCAL ...] | post PATH FILE LOCAL, concurrent streams; exit 1 unless every response is 2xx",
    ),
    (
        bt_client::NAME,
        "BitTorrent client (BEP 3): TORRENT OUTDIR [--rechoke S] [--optimistic S]; rarest first, tit-for-tat, SHA-1 checked; exit 0 once the file is written",
    ),
    (
        dash_client::NAME,
        "DASH lab player (docs/dash.md): MPD_URL --buffer SECONDS; all four addressing schemes, BaseURL failover, throughput + BOLA adaptation; exit 0 once the last segment is downloaded",
    ),
];

/// (name, one-line description) of every server.
pub fn servers() -> &'static [(&'static str, &'static str)] {
    SERVERS
}

/// (name, one-line description) of every client.
pub fn clients() -> &'static [(&'static str, &'static str)] {
    CLIENTS
}

/// Starts server `name` bound to `bind`; it is accepting by the time this returns.
pub async fn start_server(name: &str, bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    match name {
        tcp_upper::NAME => tcp_upper::start(bind, opts).await,
        udp_upper::NAME => udp_upper::start(bind, opts).await,
        udp_pinger::NAME => udp_pinger::start(bind, opts).await,
        socket_timeout::NAME => socket_timeout::start(bind, opts).await,
        http_origin::NAME => http_origin::start(bind, opts).await,
        http_proxy::NAME => http_proxy::start(bind, opts).await,
        http2::NAME => http2::start(bind, opts).await,
        http3::NAME => http3::start(bind, opts).await,
        smtp::NAME => smtp::start(bind, opts).await,
        pop3::NAME => pop3::start(bind, opts).await,
        imap::NAME => imap::start(bind, opts).await,
        ftp::NAME => ftp::start(bind, opts).await,
        dns::auth::NAME => dns::auth::start(bind, opts).await,
        dns::resolver::NAME => dns::resolver::start(bind, opts).await,
        bittorrent::tracker::NAME => bittorrent::tracker::start(bind, opts).await,
        bittorrent::seeder::NAME => bittorrent::seeder::start(bind, opts).await,
        bt_dht::NAME => bt_dht::start(bind, opts).await,
        dht_ring::NAME => dht_ring::start(bind, opts).await,
        dash_origin::NAME => dash_origin::start(bind, opts).await,
        _ => Err(Error::UnknownServer {
            name: name.to_owned(),
            known: names(SERVERS),
        }),
    }
}

/// Runs reference client `name` against `server` with the command-line arguments `args` (a case's
/// `start: { args }`); each line it would print goes to `out` (without newline); returns its exit
/// code (0 ok).
pub async fn run_client(
    name: &str,
    server: SocketAddr,
    opts: &Options,
    args: &[String],
    out: tokio::sync::mpsc::UnboundedSender<String>,
) -> Result<i32, Error> {
    if !args.is_empty() && [pinger_client::NAME, smtp_client::NAME].contains(&name) {
        return Err(Error::BadArgs {
            client: name.to_owned(),
            why: "takes no arguments".into(),
        });
    }
    match name {
        pinger_client::NAME => pinger_client::run(server, opts, out).await,
        smtp_client::NAME => smtp_client::run(server, opts, out).await,
        ftp_client::NAME => ftp_client::run(server, opts, args, out).await,
        http2_client::NAME => http2_client::run(server, opts, args, out).await,
        bt_client::NAME => bt_client::run(server, opts, args, out).await,
        dash_client::NAME => dash_client::run(server, opts, args, out).await,
        _ => Err(Error::UnknownClient {
            name: name.to_owned(),
            known: names(CLIENTS),
        }),
    }
}

fn names(registry: &[(&str, &str)]) -> String {
    let names: Vec<&str> = registry.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}

/// How long `shutdown` waits for an aborted server task to be torn down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running reference server.
///
/// The server's main task owns its socket and its connection tasks, so
/// aborting that one task closes everything; dropping a `RunningServer` does
/// exactly that.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    transport: Transport,
    task: JoinHandle<()>,
    extra_addrs: Vec<(String, SocketAddr)>,
}

impl RunningServer {
    fn spawn(local_addr: SocketAddr, transport: Transport, server: impl Future<Output = ()> + Send + 'static) -> Self {
        Self::spawn_with_extras(local_addr, transport, Vec::new(), server)
    }

    /// Like `spawn`, for a server that also started other listeners (e.g. `smtp` with `with=pop3`).
    fn spawn_with_extras(
        local_addr: SocketAddr,
        transport: Transport,
        extra_addrs: Vec<(String, SocketAddr)>,
        server: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        RunningServer {
            local_addr,
            transport,
            task: tokio::spawn(server),
            extra_addrs,
        }
    }

    /// The address the server is actually bound to (with the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The transport the server speaks.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Other listeners this server started and stops with it, by name (e.g. `("pop3", addr)`); usually empty.
    pub fn extra_addrs(&self) -> &[(String, SocketAddr)] {
        &self.extra_addrs
    }

    /// True once the server has stopped by itself (e.g. socket-timeout after 3 strikes) or failed.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops accepting, aborts connection tasks, and waits (bounded) for the server task to end.
    pub async fn shutdown(mut self) {
        self.task.abort();
        // The join handle resolves only after the task's future (and with it
        // the socket and the connection JoinSet) has been dropped.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reply every "uppercase" server sends: Unicode uppercasing for UTF-8
/// (like Python's `str.upper()`), ASCII-only for anything else, so arbitrary
/// bytes still get an answer instead of an error.
fn uppercase(message: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(message) {
        Ok(text) => text.to_uppercase().into_bytes(),
        Err(_) => message.to_ascii_uppercase(),
    }
}

/// One server's (or client's) options, already checked for unknown keys.
struct OptionSet<'a> {
    who: &'static str,
    opts: &'a Options,
}

impl<'a> OptionSet<'a> {
    fn new(who: &'static str, known: &'static [&'static str], opts: &'a Options) -> Result<Self, Error> {
        if let Some(key) = opts.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(Error::UnknownOption {
                server: who.to_owned(),
                key: key.clone(),
                known: if known.is_empty() { "(none)".to_owned() } else { known.join(", ") },
            });
        }
        Ok(OptionSet { who, opts })
    }

    /// The raw value of `key`, if it was given.
    fn given(&self, key: &str) -> Option<&'a str> {
        self.opts.get(key).map(String::as_str)
    }

    /// Parses `key` (or `default` when it was not given) with `parse`.
    fn get<T>(&self, key: &str, default: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, Error> {
        let value = self.given(key).unwrap_or(default);
        self.parse(key, value, parse)
    }

    fn parse<T>(&self, key: &str, value: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, Error> {
        parse(value).map_err(|why| Error::BadOption {
            server: self.who.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
            why,
        })
    }
}

/// Parses a positive duration such as `10s`, `300ms`, `1.5s` or `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    const WHY: &str = "expected a positive duration such as 10s, 300ms, 1.5s or 2m";
    let text = text.trim();
    // "ms" must be tried before "s" and "m", which are its suffix and prefix.
    let (number, unit_seconds) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(WHY.to_owned());
    };
    let number: f64 = number.trim().parse().map_err(|_| WHY.to_owned())?;
    if !(number.is_finite() && number > 0.0) {
        return Err(WHY.to_owned());
    }
    Duration::try_from_secs_f64(number * unit_seconds).map_err(|_| WHY.to_owned())
}

/// Parses a whole number in `min..=max`.
fn parse_count(text: &str, min: u64, max: u64) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        for bad in ["", "10", "s", "0s", "-1s", "NaNs", "infs", "1e30m", "1 h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("3", 1, 10), Ok(3));
        assert!(parse_count("0", 1, 10).is_err());
        assert!(parse_count("11", 1, 10).is_err());
        assert!(parse_count("-1", 1, 10).is_err());
        assert!(parse_count("three", 1, 10).is_err());
    }

    #[test]
    fn uppercasing() {
        assert_eq!(uppercase(b"hello\n"), b"HELLO\n");
        assert_eq!(uppercase("héllo wörld".as_bytes()), "HÉLLO WÖRLD".as_bytes());
        assert_eq!(uppercase("straße".as_bytes()), "STRASSE".as_bytes());
        assert_eq!(uppercase(b"ab\xffc\xe9\n"), b"AB\xffC\xe9\n");
        assert_eq!(uppercase(b""), b"");
    }

    #[test]
    fn unknown_options_are_rejected() {
        let opts = Options::from([("los".to_owned(), "0.3".to_owned())]);
        let err = OptionSet::new("udp-pinger", &["loss", "seed"], &opts).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("udp-pinger: unknown option `los` (known: loss, seed)"));
    }
}
