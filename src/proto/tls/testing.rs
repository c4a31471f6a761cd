//! TLS connections made in memory with rustls for tests: the records each side sent, in order,
//! and the key log rustls wrote for them.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, ServerConnection, SignatureScheme};

use crate::proto::Direction;

/// Collects the key log lines rustls writes.
#[derive(Debug, Default)]
struct Lines(Mutex<String>);

impl rustls::KeyLog for Lines {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = super::KeyLog::line(label, client_random, secret);
        self.0.lock().unwrap().push_str(&line);
    }
    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

/// Trusts any certificate: the test's own, made a moment ago.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A whole TLS session: what went each way (each chunk one `write_tls`), and the key log.
pub struct Session {
    /// The chunks of TLS bytes in the order they were sent.
    pub chunks: Vec<(Direction, Vec<u8>)>,
    /// The key log rustls wrote (NSS format).
    pub keylog: String,
}

/// Moves everything `from` has to send to `to`, recording it; returns what `to` read in clear.
fn pump(from: &mut rustls::Connection, to: &mut rustls::Connection, dir: Direction, chunks: &mut Vec<(Direction, Vec<u8>)>) -> Vec<u8> {
    let mut clear = Vec::new();
    while from.wants_write() {
        let mut out = Vec::new();
        from.write_tls(&mut out).unwrap();
        if out.is_empty() {
            break;
        }
        let mut rd = &out[..];
        while !rd.is_empty() {
            to.read_tls(&mut rd).unwrap();
            to.process_new_packets().unwrap();
            clear.extend(drain(to));
        }
        chunks.push((dir, out));
    }
    clear
}

/// Reads what arrived in clear on `c` (bounded by what was sent).
fn drain(c: &mut rustls::Connection) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.reader().read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    got
}

/// A session with `suite` on TLS 1.2 or 1.3 (by the suite), ALPN `alpn` offered and accepted,
/// where the client sends each of `client` and the server answers with the matching `server`;
/// then both send close_notify.
pub fn session(suite: rustls::SupportedCipherSuite, alpn: Option<&str>, client: &[&[u8]], server: &[&[u8]]) -> Session {
    session_updating(suite, alpn, client, server, false)
}

/// [`session`]; with `key_update`, both sides send a TLS 1.3 KeyUpdate before each exchange
/// after the first.
pub fn session_updating(
    suite: rustls::SupportedCipherSuite,
    alpn: Option<&str>,
    client: &[&[u8]],
    server: &[&[u8]],
    key_update: bool,
) -> Session {
    let cert = rcgen::generate_simple_self_signed(vec!["mail.example".to_string()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    // The project builds rustls with ring alone (aws-lc needs cmake); ring's provider is
    // deprecated for lacking post-quantum key exchange, which these tests do not need.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![suite];
    let provider = Arc::new(provider);
    let version = match suite {
        rustls::SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
        rustls::SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
    };
    let log = Arc::new(Lines::default());
    let mut sc = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    let mut cc = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    cc.key_log = log.clone();
    if let Some(a) = alpn {
        cc.alpn_protocols = vec![a.as_bytes().to_vec()];
        sc.alpn_protocols = vec![a.as_bytes().to_vec()];
    }
    // No tickets: the transcript stays the handshake and the data.
    sc.send_tls13_tickets = 0;
    let mut c: rustls::Connection = ClientConnection::new(Arc::new(cc), ServerName::try_from("mail.example").unwrap())
        .unwrap()
        .into();
    let mut s: rustls::Connection = ServerConnection::new(Arc::new(sc)).unwrap().into();
    let mut chunks = Vec::new();
    for _ in 0..10 {
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
        pump(&mut c, &mut s, Direction::ClientToServer, &mut chunks);
        pump(&mut s, &mut c, Direction::ServerToClient, &mut chunks);
    }
    assert!(!c.is_handshaking() && !s.is_handshaking(), "the in-memory handshake did not finish");
    for (i, msg) in client.iter().enumerate() {
        if key_update && i > 0 {
            c.refresh_traffic_keys().unwrap();
            s.refresh_traffic_keys().unwrap();
        }
        c.writer().write_all(msg).unwrap();
        assert_eq!(pump(&mut c, &mut s, Direction::ClientToServer, &mut chunks), *msg);
        if let Some(answer) = server.get(i) {
            s.writer().write_all(answer).unwrap();
            assert_eq!(pump(&mut s, &mut c, Direction::ServerToClient, &mut chunks), *answer);
        }
    }
    c.send_close_notify();
    pump(&mut c, &mut s, Direction::ClientToServer, &mut chunks);
    s.send_close_notify();
    pump(&mut s, &mut c, Direction::ServerToClient, &mut chunks);
    let keylog = log.0.lock().unwrap().clone();
    Session { chunks, keylog }
}
