//! TLS for the live side: a run's certificates, rustls configurations, a stream that is plain
//! or TLS and can turn into TLS in place (STARTTLS), and the key log a capture is decrypted with.
//!
//! A leaf: it names no protocol and no part of the runner, so the runner, the actors and the
//! capture writer can all use it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Why TLS could not be set up (a certificate, a key, a configuration).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Making the run's certificates failed.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// Writing the run's certificate files failed.
    #[error("cannot write the run's certificates: {0}")]
    Io(#[from] io::Error),
}

/// The host name the run's certificate is made for, and the server name (SNI) the harness asks
/// for unless told another.
pub const SERVER_NAME: &str = "localhost";

/// A certificate authority and a leaf certificate it signed for `localhost`, 127.0.0.1 and ::1,
/// made for one run and written as PEM files into a temporary folder that goes with it.
pub struct RunCerts {
    _dir: tempfile::TempDir,
    /// The CA certificate (PEM): what a client is told to trust (`{ca}`).
    pub ca: PathBuf,
    /// The leaf certificate chain (PEM): a server's `tls_cert`.
    pub cert: PathBuf,
    /// The leaf's private key (PEM, PKCS#8): a server's `tls_key`.
    pub key: PathBuf,
    ca_der: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for RunCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCerts").field("ca", &self.ca).finish_non_exhaustive()
    }
}

impl RunCerts {
    /// Makes a fresh CA and leaf (ECDSA P-256) and writes them, readable by anyone, since a
    /// program under test may run as another user.
    pub fn generate() -> Result<RunCerts, TlsError> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
        let g = |e: rcgen::Error| TlsError::Generate(e.to_string());
        let ca_key = KeyPair::generate().map_err(g)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(g)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "wirecheck run CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).map_err(g)?;
        let leaf_key = KeyPair::generate().map_err(g)?;
        let mut leaf_params = CertificateParams::new(vec![SERVER_NAME.to_string()]).map_err(g)?;
        leaf_params.distinguished_name.push(DnType::CommonName, SERVER_NAME);
        leaf_params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf_params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).map_err(g)?;

        let dir = tempfile::Builder::new().prefix("wirecheck-tls-").tempdir()?;
        let write = |name: &str, text: &str| -> io::Result<PathBuf> {
            let p = dir.path().join(name);
            std::fs::write(&p, text)?;
            set_mode(&p, 0o644)?;
            Ok(p)
        };
        let ca_path = write("ca.pem", &ca.pem())?;
        let cert_path = write("cert.pem", &leaf.pem())?;
        let key_path = write("key.pem", &leaf_key.serialize_pem())?;
        set_mode(dir.path(), 0o755)?;
        Ok(RunCerts {
            ca: ca_path,
            cert: cert_path,
            key: key_path,
            ca_der: ca.der().clone(),
            chain: vec![leaf.der().clone()],
            key_der: leaf_key.serialize_der(),
            _dir: dir,
        })
    }

    /// What a client that trusts this run's CA trusts.
    pub fn trust(&self) -> Trust {
        Trust::Roots(vec![self.ca_der.clone()])
    }

    /// A server configuration presenting the leaf, offering `alpn` (most preferred first),
    /// logging its secrets into `keylog` (a client program's own secrets are out of reach).
    pub fn server_config(&self, alpn: &[String], keylog: Arc<KeyLog>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let key = PrivateKeyDer::Pkcs8(self.key_der.clone().into());
        let mut c = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)?;
        c.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        c.key_log = keylog;
        Ok(Arc::new(c))
    }
}

fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// rustls with the `ring` provider: the one crypto library the harness builds with.
// rustls deprecates ring's provider for lacking post-quantum key exchange; aws-lc, which has it,
// needs a C build toolchain (cmake) a fresh grading machine may not have, and the harness's
// sessions protect nothing secret.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which servers a harness client believes.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Certificates chaining to these roots.
    Roots(Vec<CertificateDer<'static>>),
    /// Any certificate (`--insecure`): the handshake's signatures are still checked, the chain
    /// and the name are not.
    Anything,
}

impl Trust {
    /// The roots in a PEM file (`--ca FILE`).
    pub fn from_pem_file(path: &Path) -> Result<Trust, TlsError> {
        let bad = |why: String| TlsError::Pem {
            path: path.to_path_buf(),
            why,
        };
        let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut roots = Vec::new();
        for c in CertificateDer::pem_slice_iter(&text) {
            roots.push(c.map_err(|e| bad(format!("not a PEM certificate: {e}")))?);
        }
        if roots.is_empty() {
            return Err(bad(
                "holds no certificate (a PEM file with -----BEGIN CERTIFICATE----- lines)".into()
            ));
        }
        Ok(Trust::Roots(roots))
    }
}

/// What a harness client offers and checks in a handshake.
#[derive(Clone)]
pub struct ClientTls {
    /// The configuration (trust, ALPN, key log).
    pub config: Arc<rustls::ClientConfig>,
    /// The server name sent (SNI) and checked against the certificate.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A client trusting `trust`, asking for `server_name`, offering `alpn`, logging its secrets
    /// into `keylog`.
    pub fn new(trust: &Trust, server_name: &str, alpn: &[String], keylog: Arc<KeyLog>) -> Result<ClientTls, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
        let mut config = match trust {
            Trust::Roots(roots) => {
                let mut store = rustls::RootCertStore::empty();
                for r in roots {
                    store.add(r.clone())?;
                }
                builder.with_root_certificates(store).with_no_client_auth()
            }
            Trust::Anything => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
                .with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        config.key_log = keylog;
        let server_name = ServerName::try_from(server_name.to_string()).map_err(|_| TlsError::Pem {
            path: PathBuf::from("--sni"),
            why: format!("'{server_name}' is not a host name or an address"),
        })?;
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// What one suite's run uses for TLS: whether every connection to the target is TLS (`--tls`),
/// the client it connects as, the server it listens as, the run's certificates and key log.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `--tls`: connections to the target and the program's connections to the harness are TLS
    /// from their first byte; otherwise TLS starts only where a case says `starttls`.
    pub on: bool,
    /// The harness as a TLS client.
    pub client: ClientTls,
    /// The harness as a TLS server (the run's leaf certificate).
    pub server: Arc<rustls::ServerConfig>,
    /// The run's certificates (`{ca}`, `{cert}`, `{key}`).
    pub certs: Arc<RunCerts>,
    /// Every secret of the run's handshakes.
    pub keylog: Arc<KeyLog>,
}

/// `--insecure`: every certificate is taken, but what the server signs must still verify with it.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The secrets of a run's handshakes in the `SSLKEYLOGFILE` (NSS key log) format, kept in memory
/// for a capture's Decryption Secrets Block and copied to a file when one is given.
#[derive(Debug, Default)]
pub struct KeyLog {
    lines: Mutex<String>,
    file: Option<Mutex<std::fs::File>>,
}

impl KeyLog {
    /// A key log kept in memory only.
    pub fn new() -> KeyLog {
        KeyLog::default()
    }

    /// A key log also appended to `path` as secrets come (the file is created if missing; what
    /// is in it stays).
    pub fn to_file(path: &Path) -> io::Result<KeyLog> {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(KeyLog {
            lines: Mutex::new(String::new()),
            file: Some(Mutex::new(f)),
        })
    }

    /// Every line so far.
    pub fn text(&self) -> String {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Where the log stands now, for [`KeyLog::text_from`].
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The lines logged since `mark`: a case's handshakes (and those of cases running beside it),
    /// so a case's capture carries its own secrets, not the whole run's.
    pub fn text_from(&self, mark: usize) -> String {
        let all = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        all.get(mark..).unwrap_or_default().to_string()
    }

    /// The lines of the handshakes whose client random is one of `randoms` (a case's own).
    pub fn text_for(&self, randoms: &[[u8; 32]]) -> String {
        let wanted: Vec<String> = randoms.iter().map(|r| hex(r)).collect();
        self.text()
            .lines()
            .filter(|l| l.split(' ').nth(1).is_some_and(|r| wanted.iter().any(|w| w == r)))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

impl rustls::KeyLog for KeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!("{label} {} {}\n", hex(client_random), hex(secret));
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).push_str(&line);
        if let Some(f) = &self.file {
            use std::io::Write;
            let _ = f.lock().unwrap_or_else(|e| e.into_inner()).write_all(line.as_bytes());
        }
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a finished handshake settled, for the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// `TLS 1.2` or `TLS 1.3`.
    pub version: String,
    /// The cipher suite's IANA name.
    pub cipher: String,
    /// The application protocol ALPN chose, if any.
    pub alpn: Option<String>,
    /// The server name the client asked for, if any.
    pub sni: Option<String>,
}

impl std::fmt::Display for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}", self.version, self.cipher)?;
        if let Some(a) = &self.alpn {
            write!(f, ", ALPN {a}")?;
        }
        if let Some(s) = &self.sni {
            write!(f, ", server name {s}")?;
        }
        Ok(())
    }
}

fn handshake_of(common: &rustls::CommonState, sni: Option<String>) -> Handshake {
    let version = match common.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "TLS".to_string(),
    };
    let cipher = common
        .negotiated_cipher_suite()
        .map(|s| {
            suite_name(u16::from(s.suite()))
                .map(str::to_string)
                .unwrap_or_else(|| format!("{:?}", s.suite()))
        })
        .unwrap_or_default();
    let alpn = common.alpn_protocol().map(|a| String::from_utf8_lossy(a).into_owned());
    Handshake {
        version,
        cipher,
        alpn,
        sni,
    }
}

/// The IANA name of a TLS 1.2 or 1.3 AEAD cipher suite (the ones a key log can decrypt).
pub fn suite_name(id: u16) -> Option<&'static str> {
    Some(match id {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        _ => return None,
    })
}

/// A TCP stream, plain or under TLS as either side.
#[derive(Debug)]
pub enum Stream {
    /// No TLS (yet).
    Plain(TcpStream),
    /// The harness is the TLS client.
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// The harness is the TLS server.
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Only while a handshake has the stream; never seen from outside.
    Taken,
}

/// Why a handshake did not finish.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The deadline came first.
    #[error("the TLS handshake did not finish in time")]
    Timeout,
    /// TLS was already on.
    #[error("the connection is already under TLS")]
    Already,
    /// The handshake failed (a certificate, an alert, a close).
    #[error("the TLS handshake failed: {}", explain(.0))]
    Failed(io::Error),
}

/// A failed handshake in plain words, with what to do where it is clear.
fn explain(e: &io::Error) -> String {
    let text = e.to_string();
    if e.kind() == io::ErrorKind::UnexpectedEof || text.contains("eof") {
        return format!("the peer closed the connection in the middle of it ({text}); does it speak TLS on this port?");
    }
    if text.contains("corrupt message") || text.contains("InvalidContentType") || text.contains("MessageTooShort") {
        return format!(
            "what the peer sent is not TLS ({text}): it answers in plain text; a server under --tls must serve TLS from the first byte (start it with the run's {{cert}} and {{key}})"
        );
    }
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        return format!("{text}: the harness does not trust the server's certificate; give its CA with --ca FILE, or --insecure");
    }
    if text.contains("NotValidForName") {
        return format!("{text}: the certificate is not for the server name asked for; set it with --sni NAME");
    }
    text
}

impl Stream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Client(s) => Some(s.get_ref().0),
            Stream::Server(s) => Some(s.get_ref().0),
            Stream::Taken => None,
        }
    }

    /// Whether TLS is on.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Client(_) | Stream::Server(_))
    }

    /// Runs a client handshake on the plain stream, by `deadline`.
    pub async fn connect_tls(&mut self, tls: &ClientTls, deadline: Instant) -> Result<Handshake, HandshakeError> {
        let Stream::Plain(tcp) = std::mem::replace(self, Stream::Taken) else {
            return Err(HandshakeError::Already);
        };
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        let sni = match &tls.server_name {
            ServerName::DnsName(n) => Some(n.as_ref().to_string()),
            _ => None,
        };
        match tokio::time::timeout_at(deadline, connector.connect(tls.server_name.clone(), tcp)).await {
            Err(_) => Err(HandshakeError::Timeout),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Ok(Ok(s)) => {
                let h = handshake_of(s.get_ref().1, sni);
                *self = Stream::Client(Box::new(s));
                Ok(h)
            }
        }
    }

    /// Runs a server handshake on the plain stream, by `deadline`.
    pub async fn accept_tls(&mut self, config: Arc<rustls::ServerConfig>, deadline: Instant) -> Result<Handshake, HandshakeError> {
        let Stream::Plain(tcp) = std::mem::replace(self, Stream::Taken) else {
            return Err(HandshakeError::Already);
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
            Err(_) => Err(HandshakeError::Timeout),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Ok(Ok(s)) => {
                let conn = s.get_ref().1;
                let h = handshake_of(conn, conn.server_name().map(str::to_string));
                *self = Stream::Server(Box::new(s));
                Ok(h)
            }
        }
    }

    /// Queues a close_notify alert and writes what TLS has pending without waiting (a few bytes
    /// that fit the socket's buffer): RFC 8446 §6.1, each party MUST send close_notify before
    /// closing its write side. Plain streams have nothing to do.
    pub fn close_notify_now(&mut self) {
        fn flush<T>(tcp: &TcpStream, conn: &mut rustls::ConnectionCommon<T>) {
            struct NoWait<'a>(&'a TcpStream);
            impl io::Write for NoWait<'_> {
                fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                    self.0.try_write(b)
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            conn.send_close_notify();
            let mut w = NoWait(tcp);
            while conn.wants_write() {
                if conn.write_tls(&mut w).is_err() {
                    break;
                }
            }
        }
        match self {
            Stream::Client(s) => {
                let (t, c) = s.get_mut();
                flush(t, c);
            }
            Stream::Server(s) => {
                let (t, c) = s.get_mut();
                flush(t, c);
            }
            _ => {}
        }
    }

    /// The local address of the TCP socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().ok_or_else(taken)?.local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().ok_or_else(taken)?.peer_addr()
    }
}

fn taken() -> io::Error {
    io::Error::other("the stream is in a TLS handshake")
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Taken => Poll::Ready(Err(taken())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Taken => Poll::Ready(Err(taken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Taken => Poll::Ready(Err(taken())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Taken => Poll::Ready(Err(taken())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_trusting_the_run_ca_talks_to_a_server_with_its_leaf() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let certs = RunCerts::generate().unwrap();
        let server = certs.server_config(&["h2".into()], Arc::default()).unwrap();
        let keylog = Arc::new(KeyLog::new());
        let client = ClientTls::new(&certs.trust(), SERVER_NAME, &["h2".into()], keylog.clone()).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let srv = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let mut s = Stream::Plain(tcp);
            let h = s.accept_tls(server, deadline).await.unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&b.to_ascii_uppercase()).await.unwrap();
            s.shutdown().await.unwrap();
            h
        });
        let mut c = Stream::Plain(TcpStream::connect(addr).await.unwrap());
        let h = c.connect_tls(&client, deadline).await.unwrap();
        assert_eq!(h.version, "TLS 1.3");
        assert_eq!(h.alpn.as_deref(), Some("h2"));
        c.write_all(b"hello").await.unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"HELLO");
        assert_eq!(srv.await.unwrap().sni.as_deref(), Some("localhost"));
        assert!(keylog.text().contains("CLIENT_TRAFFIC_SECRET_0 "), "{}", keylog.text());
        let pem = std::fs::read_to_string(&certs.ca).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[tokio::test]
    async fn a_client_refuses_a_certificate_it_does_not_trust_unless_insecure() {
        let certs = RunCerts::generate().unwrap();
        let other = RunCerts::generate().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        for (trust, ok) in [(other.trust(), false), (Trust::Anything, true)] {
            let server = certs.server_config(&[], Arc::default()).unwrap();
            let client = ClientTls::new(&trust, SERVER_NAME, &[], Arc::new(KeyLog::new())).unwrap();
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let srv = tokio::spawn(async move {
                let (tcp, _) = l.accept().await.unwrap();
                let _ = Stream::Plain(tcp).accept_tls(server, deadline).await;
            });
            let mut c = Stream::Plain(TcpStream::connect(addr).await.unwrap());
            assert_eq!(c.connect_tls(&client, deadline).await.is_ok(), ok);
            srv.await.unwrap();
        }
    }

    #[test]
    fn a_key_log_keeps_only_the_lines_of_the_randoms_asked_for() {
        use rustls::KeyLog as _;
        let k = KeyLog::new();
        k.log("CLIENT_RANDOM", &[1; 32], &[2; 48]);
        k.log("CLIENT_RANDOM", &[3; 32], &[4; 48]);
        let t = k.text_for(&[[3; 32]]);
        assert_eq!(t.lines().count(), 1);
        assert!(t.starts_with(&format!("CLIENT_RANDOM {} ", "03".repeat(32))));
    }
}
