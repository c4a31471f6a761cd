//! TLS for the reference servers and clients (rustls, `ring` provider): a server
//! configuration from PEM files, a client configuration that trusts one CA, and
//! connection types that are plain or TLS, the server's upgradable in place (STARTTLS).
//!
//! Options every TCP server takes (`OPTIONS`): `tls` = `implicit` (every connection is
//! TLS from its first byte: HTTPS, SMTPS, POP3S, IMAPS, implicit FTPS) or `starttls`
//! (SMTP, POP3 and IMAP only: offered on the plain connection), with `tls_cert` and
//! `tls_key`, the PEM files of the certificate chain and its private key. The mail
//! servers also take `require_tls=yes` (with `tls=starttls`): nothing that needs privacy
//! is done in clear text. The clients take `tls_ca`, the PEM file of the one CA they
//! trust, and name the server `localhost`.
//!
//! Every handshake is bounded (`handshake_limit`); one that fails or runs out of time
//! ends that connection without a word and never the server.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{Error, OptionSet};

/// The TLS options of every TCP server.
pub(crate) const OPTIONS: [&str; 3] = ["tls", "tls_cert", "tls_key"];
/// The option of the mail servers that refuses clear-text logins and mail before STARTTLS.
pub(crate) const REQUIRE: &str = "require_tls";
/// The option of the reference clients: the CA to trust.
pub(crate) const CA: &str = "tls_ca";
/// The name the clients ask for (SNI) and check the certificate against.
pub(crate) const SERVER_NAME: &str = "localhost";
/// The longest a handshake may take, whatever the server's own timeouts.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// A PEM file bigger than this is a mistake, not a certificate.
const MAX_PEM: u64 = 1 << 20;

/// The ALPN protocol ids the servers offer.
pub(crate) const H2: &[u8] = b"h2";
/// See `H2`.
pub(crate) const HTTP11: &[u8] = b"http/1.1";

/// How long a handshake may take on a server (or client) whose own wait is `wait`.
pub(crate) fn handshake_limit(wait: Duration) -> Duration {
    wait.min(HANDSHAKE_LIMIT)
}

/// When a server's connections speak TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// From the first byte.
    Implicit,
    /// After the client's STARTTLS (SMTP, IMAP) or STLS (POP3).
    StartTls,
}

/// A server's TLS, from its options.
#[derive(Clone)]
pub(crate) struct ServerTls {
    /// When connections speak it.
    pub(crate) mode: Mode,
    /// Performs the server's side of a handshake.
    pub(crate) acceptor: TlsAcceptor,
    /// `require_tls=yes`: nothing needing privacy is done before STARTTLS.
    pub(crate) require: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mode", &self.mode)
            .field("require", &self.require)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The acceptor, when every connection starts with a handshake.
    pub(crate) fn implicit(tls: Option<&ServerTls>) -> Option<TlsAcceptor> {
        tls.filter(|tls| tls.mode == Mode::Implicit).map(|tls| tls.acceptor.clone())
    }

    /// The configuration, when STARTTLS is offered.
    pub(crate) fn starttls(tls: Option<&ServerTls>) -> Option<&ServerTls> {
        tls.filter(|tls| tls.mode == Mode::StartTls)
    }
}

/// What a server can do with TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Implicit TLS only (every server but the mail servers).
    Implicit,
    /// Implicit TLS or STARTTLS, and `require_tls` (SMTP, POP3, IMAP).
    Mail,
}

/// Reads `tls`, `tls_cert`, `tls_key` (and, for `Offer::Mail`, `require_tls`) from `opts`;
/// `None` when `tls` is not given. `alpn` is what the server offers, most preferred first.
pub(crate) fn server_options(opts: &OptionSet<'_>, offer: Offer, alpn: &[&[u8]]) -> Result<Option<ServerTls>, Error> {
    let bad = |key: &str, value: &str, why: String| Error::BadOption {
        server: opts.who.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
        why,
    };
    let require = match (offer, opts.given(REQUIRE)) {
        (Offer::Mail, Some(value)) => opts.parse(REQUIRE, value, |v| match v.trim() {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err("expected yes or no".to_owned()),
        })?,
        _ => false,
    };
    let Some(mode) = opts.given("tls") else {
        for key in ["tls_cert", "tls_key"] {
            if let Some(value) = opts.given(key) {
                return Err(bad(key, value, "only used with tls=implicit or tls=starttls".to_owned()));
            }
        }
        if require {
            return Err(bad(REQUIRE, "yes", "needs tls=starttls".to_owned()));
        }
        return Ok(None);
    };
    let mode = match (mode.trim(), offer) {
        ("implicit", _) => Mode::Implicit,
        ("starttls", Offer::Mail) => Mode::StartTls,
        ("starttls", Offer::Implicit) => {
            return Err(bad(
                "tls",
                mode,
                "this server has no STARTTLS (only smtp, pop3 and imap do): expected implicit".to_owned(),
            ))
        }
        _ => {
            let expected = match offer {
                Offer::Implicit => "expected implicit",
                Offer::Mail => "expected implicit or starttls",
            };
            return Err(bad("tls", mode, expected.to_owned()));
        }
    };
    if require && mode != Mode::StartTls {
        return Err(bad(
            REQUIRE,
            "yes",
            "needs tls=starttls (an implicit-TLS port has no clear text to refuse)".to_owned(),
        ));
    }
    let mut files = Vec::new();
    for key in ["tls_cert", "tls_key"] {
        match opts.given(key) {
            Some(path) => files.push(path),
            None => return Err(bad(key, "", format!("tls={} needs {key}, the path of a PEM file", mode_name(mode)))),
        }
    }
    let certs = opts.parse("tls_cert", files[0], |path| read_certs(Path::new(path)))?;
    let key = opts.parse("tls_key", files[1], |path| read_key(Path::new(path)))?;
    let config = server_config(certs, key, alpn).map_err(|why| bad("tls_key", files[1], why))?;
    Ok(Some(ServerTls {
        mode,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        require,
    }))
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Implicit => "implicit",
        Mode::StartTls => "starttls",
    }
}

/// The `ring` provider, named explicitly so no process-wide default is needed.
// Deprecated since rustls 0.23.48 for lacking post-quantum key exchange, which only the
// aws-lc provider has; aws-lc needs cmake to build, and loopback tests need no such thing.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration for `certs` (leaf first) and `key`, offering `alpn`.
fn server_config(certs: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the key does not fit the certificate or is not usable: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|id| id.to_vec()).collect();
    // No resumption is offered: tickets would only be records a capture has to explain.
    config.send_tls13_tickets = 0;
    Ok(config)
}

fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?.len();
    if size > MAX_PEM {
        return Err(format!("larger than {MAX_PEM} bytes: not a PEM file"));
    }
    std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
}

/// Every certificate of a PEM file, at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the file".to_owned());
    }
    Ok(certs)
}

/// The (first) private key of a PEM file: PKCS#8, PKCS#1 or SEC1.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("no usable PEM private key: {e}"))
}

/// Reads the `tls_ca` option of a client: a connector that trusts that CA alone and
/// offers `alpn`; `None` when the option is not given (plain TCP).
pub(crate) fn client_options(opts: &OptionSet<'_>, alpn: &[&[u8]]) -> Result<Option<TlsConnector>, Error> {
    let Some(path) = opts.given(CA) else {
        return Ok(None);
    };
    let config = opts.parse(CA, path, |path| client_config(Path::new(path), alpn))?;
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

/// A client configuration trusting the CA certificates in the PEM file `ca`.
pub(crate) fn client_config(ca: &Path, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots.add(cert).map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|id| id.to_vec()).collect();
    Ok(config)
}

/// A server's connection: clear text until (and unless) it is upgraded.
pub(crate) enum Layer<S> {
    /// Clear text.
    Plain(S),
    /// TLS over the connection.
    Tls(Box<tokio_rustls::server::TlsStream<S>>),
    /// A handshake failed: the connection is of no more use.
    Gone,
}

impl<S> Layer<S> {
    /// The connection underneath, unless a handshake failed.
    pub(crate) fn get_ref(&self) -> Option<&S> {
        match self {
            Layer::Plain(inner) => Some(inner),
            Layer::Tls(tls) => Some(tls.get_ref().0),
            Layer::Gone => None,
        }
    }

    /// True once the connection speaks TLS.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Layer::Tls(_))
    }

    /// The protocol ALPN settled on, if any.
    pub(crate) fn alpn(&self) -> Option<&[u8]> {
        match self {
            Layer::Tls(tls) => tls.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Layer<S> {
    /// The server's side of a handshake, within `within`. What was read before it and not
    /// used is the caller's to discard: only bytes that arrive after the handshake are TLS.
    pub(crate) async fn upgrade(&mut self, acceptor: &TlsAcceptor, within: Duration) -> io::Result<()> {
        let Layer::Plain(inner) = std::mem::replace(self, Layer::Gone) else {
            return Err(io::Error::other("the connection is not in clear text"));
        };
        match timeout(within, acceptor.accept(inner)).await {
            Ok(Ok(tls)) => {
                *self = Layer::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the TLS handshake failed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Layer<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Layer::Plain(inner) => Pin::new(inner).poll_read(cx, buf),
            Layer::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            Layer::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Layer<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Layer::Plain(inner) => Pin::new(inner).poll_write(cx, buf),
            Layer::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            Layer::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Layer::Plain(inner) => Pin::new(inner).poll_flush(cx),
            Layer::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Layer::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Layer::Plain(inner) => Pin::new(inner).poll_shutdown(cx),
            Layer::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Layer::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// A client's connection: TCP, or TLS over it from the first byte.
pub(crate) enum ClientStream {
    /// Clear text.
    Plain(TcpStream),
    /// TLS.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl ClientStream {
    /// Connects to `server` and, with `tls`, performs the handshake (as `localhost`); the
    /// whole is bounded by `within`.
    pub(crate) async fn connect(
        server: std::net::SocketAddr,
        tls: Option<&TlsConnector>,
        within: Duration,
    ) -> Result<ClientStream, String> {
        let tcp = match timeout(within, TcpStream::connect(server)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(format!("cannot connect to {server}: {e}")),
            Err(_) => return Err(format!("no connection to {server} within {within:?}")),
        };
        let Some(connector) = tls else {
            return Ok(ClientStream::Plain(tcp));
        };
        let name = ServerName::try_from(SERVER_NAME).map_err(|e| e.to_string())?;
        match timeout(handshake_limit(within), connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok(ClientStream::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(format!("TLS handshake with {server} failed: {e}")),
            Err(_) => Err(format!("no TLS handshake with {server} within {within:?}")),
        }
    }

    /// The TCP connection underneath.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(tcp) => tcp,
            ClientStream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// The protocol ALPN settled on, if any.
    pub(crate) fn alpn(&self) -> Option<&[u8]> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(tls) => tls.get_ref().1.alpn_protocol(),
        }
    }

    /// Waits until a read would find something: clear text TLS already decrypted, or bytes
    /// on the socket (which may be only part of a record: the read then waits for the rest).
    pub(crate) async fn readable(&mut self) -> io::Result<()> {
        if let ClientStream::Tls(tls) = self {
            let state = tls.get_mut().1.process_new_packets().map_err(io::Error::other)?;
            if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
                return Ok(());
            }
        }
        self.tcp().readable().await
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            ClientStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
