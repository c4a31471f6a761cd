//! `http3`: an HTTP/3 origin server (RFC 9114) over QUIC (RFC 9000), the oracle the `http3`
//! suite runs against. QUIC is quinn's, HTTP/3 framing, QPACK and the control streams are the
//! `h3` crate's; this module decides what to answer (the `http2` server's `site.rs`: GET and HEAD
//! of the files under `root`, `POST /echo`, 404, 405).
//!
//! QUIC is always TLS 1.3 (RFC 9001): `tls_cert` (a PEM chain) and `tls_key` (a PEM private key)
//! are required, and ALPN is `h3` (RFC 9114 §3.1). A connection with no request open for `idle`
//! is shut down gracefully: GOAWAY on the control stream (RFC 9114 §5.2), then the connection is
//! closed with H3_NO_ERROR once the requests it may still take are done.
//!
//! Options: `root` (default `fixtures/www`), `idle` (default 10s), `tls_cert`, `tls_key`, `tls`
//! (only `implicit`, what a run's `--tls` gives every reference), and `fault` (`fault.rs`; the
//! faults that `h3` cannot have are served by `raw.rs`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use crate::http2::site::{self, Body, Reply, Resource, Site};
use crate::{parse_duration, Error, OptionSet, Options, RunningServer, Transport};

mod fault;
mod raw;

use fault::{Fault, Faults};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "http3";
const OPTIONS: &[&str] = &["root", "idle", "tls_cert", "tls_key", "tls", "fault"];

/// The default root, relative to the current directory.
const DEFAULT_ROOT: &str = "fixtures/www";
/// The repository's web root, for a default root when run from elsewhere (e.g. `cargo test`).
const CHECKOUT_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/www");

/// The application protocol of HTTP/3 over QUIC (RFC 9114 §3.1).
const ALPN: &[u8] = b"h3";
/// H3_NO_ERROR (RFC 9114 §8.1).
const H3_NO_ERROR: u32 = 0x100;
/// H3_REQUEST_REJECTED (RFC 9114 §8.1).
const H3_REQUEST_REJECTED: u64 = 0x10b;
/// Bytes of a body per DATA frame.
const CHUNK: usize = 16 << 10;
/// Where the `truncated-body` fault stops a body.
const TRUNCATED_AT: u64 = 64 << 10;
/// Request streams a client may have open at once (QUIC's MAX_STREAMS, RFC 9000 §4.6).
const MAX_REQUESTS: u32 = 128;
/// Unidirectional streams a client may open: its control and QPACK streams and a few more
/// (GREASE, reserved types) that are read and dropped.
const MAX_UNI: u32 = 16;
/// Connections served at once; later ones are refused by QUIC.
const MAX_CONNECTIONS: usize = 256;

/// What every connection of one server shares.
#[derive(Debug)]
struct Config {
    site: Site,
    idle: Duration,
    faults: Faults,
}

/// Checks the options, binds, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "10s", parse_duration)?;
    let faults = opts.get("fault", "", fault::parse)?;
    // `tls=implicit` (a run's --tls) says what QUIC always is: TLS from the first packet.
    opts.get("tls", "implicit", |t| match t {
        "implicit" => Ok(()),
        _ => Err("QUIC is TLS from its first packet (RFC 9001): only implicit".to_owned()),
    })?;
    let root = match opts.given("root") {
        Some(root) => opts.parse("root", root, |r| directory(Path::new(r)))?,
        None => directory(Path::new(DEFAULT_ROOT))
            .or_else(|_| directory(Path::new(CHECKOUT_ROOT)))
            .map_err(|why| Error::BadOption {
                server: NAME.to_owned(),
                key: "root".to_owned(),
                value: DEFAULT_ROOT.to_owned(),
                why,
            })?,
    };
    let missing = |key: &str| Error::BadOption {
        server: NAME.to_owned(),
        key: key.to_owned(),
        value: String::new(),
        why: "required: QUIC is always TLS 1.3 (RFC 9001), so give a PEM file".to_owned(),
    };
    let cert = opts.given("tls_cert").ok_or_else(|| missing("tls_cert"))?;
    let key = opts.given("tls_key").ok_or_else(|| missing("tls_key"))?;
    let certs = opts.parse("tls_cert", cert, read_chain)?;
    let key = opts.parse("tls_key", key, read_key)?;
    let server_config = quic_config(certs, key).map_err(|why| Error::BadOption {
        server: NAME.to_owned(),
        key: "tls_key".to_owned(),
        value: opts.given("tls_key").unwrap_or_default().to_owned(),
        why,
    })?;
    let endpoint = quinn::Endpoint::server(server_config, bind)?;
    let local_addr = endpoint.local_addr()?;
    let config = Arc::new(Config {
        site: site::Site::new(root),
        idle,
        faults,
    });
    let server = async move {
        let mut conns = JoinSet::new();
        while let Some(incoming) = endpoint.accept().await {
            while conns.try_join_next().is_some() {}
            if conns.len() >= MAX_CONNECTIONS {
                incoming.refuse();
                continue;
            }
            let config = config.clone();
            conns.spawn(async move {
                // A handshake that fails (a client that does not trust us, no h3 in its ALPN) is
                // QUIC's to report to the client.
                if let Ok(conn) = incoming.await {
                    match config.faults.raw() {
                        true => raw::serve(conn, &config.faults).await,
                        false => serve(conn, config).await,
                    }
                }
            });
        }
    };
    Ok(RunningServer::spawn(local_addr, Transport::Udp, server))
}

/// `path` made canonical, if it is a directory.
fn directory(path: &Path) -> Result<std::path::PathBuf, String> {
    let canonical = path.canonicalize().map_err(|e| format!("expected a directory: {e}"))?;
    if !canonical.is_dir() {
        return Err("expected a directory".to_owned());
    }
    Ok(canonical)
}

fn read_chain(path: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("expected a PEM file of certificates: {e}"))?;
    match certs.is_empty() {
        true => Err("expected a PEM file of certificates: it holds none".to_owned()),
        false => Ok(certs),
    }
}

fn read_key(path: &str) -> Result<rustls::pki_types::PrivateKeyDer<'static>, String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_file(path).map_err(|e| format!("expected a PEM private key: {e}"))
}

/// QUIC's server side: TLS 1.3 only with ring, ALPN h3, and the stream limits above.
fn quic_config(
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<quinn::ServerConfig, String> {
    // ring is the provider here (aws-lc needs cmake); its lack of post-quantum groups is fine.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the key does not go with the certificate: {e}"))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(MAX_REQUESTS.into())
        .max_concurrent_uni_streams(MAX_UNI.into())
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(30_000))));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Serves one connection with `h3` until the client closes it, a connection error, or `idle`.
async fn serve(conn: quinn::Connection, config: Arc<Config>) {
    let quic = conn.clone();
    // No GREASE (RFC 9114 §6.2.3, §7.2.8): its random values would make every transcript
    // differ; the harness's tolerance of GREASE is the codec's tests' to prove.
    let Ok(mut h3conn) = h3::server::builder()
        .send_grease(false)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await
    else {
        return;
    };
    let open = Arc::new(AtomicUsize::new(0));
    let mut requests = JoinSet::new();
    let mut seen = 0usize;
    let mut closing = false;
    loop {
        let accepted = match tokio::time::timeout(config.idle, h3conn.accept()).await {
            Ok(accepted) => accepted,
            Err(_) if open.load(Ordering::SeqCst) > 0 => continue,
            // Idle again after the GOAWAY: nothing more is coming.
            Err(_) if closing => break,
            Err(_) => {
                // RFC 9114 §5.2: a server that closes says so with GOAWAY first, naming the
                // first request stream it will not process; then it closes once idle.
                closing = true;
                if h3conn.shutdown(0).await.is_err() {
                    return;
                }
                continue;
            }
        };
        match accepted {
            Ok(Some(resolver)) => {
                seen += 1;
                let first = seen == 1;
                let config = config.clone();
                let open = open.clone();
                open.fetch_add(1, Ordering::SeqCst);
                requests.spawn(async move {
                    if let Ok((request, stream)) = resolver.resolve_request().await {
                        respond(request, stream, &config, first).await;
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
            // After GOAWAY, no more requests: done once those under way are answered.
            Ok(None) => break,
            // h3 closed the connection with the error code RFC 9114 names.
            Err(_) => return,
        }
    }
    let _ = tokio::time::timeout(config.idle, async { while requests.join_next().await.is_some() {} }).await;
    quic.close(H3_NO_ERROR.into(), b"");
    // Until the close went out: dropping the last handle would cut it short.
    let _ = tokio::time::timeout(Duration::from_secs(1), quic.closed()).await;
}

type Stream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// Answers one request: the site's reply, its body in DATA frames of `CHUNK` bytes.
async fn respond(request: http::Request<()>, mut stream: Stream, config: &Config, first: bool) {
    if !first && config.faults.has(Fault::FirstStreamOnly) {
        stream.stop_stream(h3::error::Code::from(H3_REQUEST_REJECTED));
        stream.stop_sending(h3::error::Code::from(H3_REQUEST_REJECTED));
        return;
    }
    let method = request.method().as_str().to_owned();
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut reply = match site::resource(&target) {
        Err(status) => Reply::status(status),
        Ok(Resource::Echo) if method == "POST" => match read_body(&mut stream).await {
            Some(body) => Reply::echo(body),
            None => Reply::status(413),
        },
        Ok(resource) => site::respond(&config.site, &method, resource).await,
    };
    if reply.status == 404 && config.faults.has(Fault::No404) {
        reply.status = 200;
    }
    let len = reply.len();
    let mut head = http::Response::builder()
        .status(reply.status)
        .header("date", httpdate::fmt_http_date(std::time::SystemTime::now()))
        .header("content-length", len.to_string());
    for (name, value) in &reply.fields {
        head = head.header(*name, value.as_str());
    }
    let Ok(head) = head.body(()) else { return };
    if stream.send_response(head).await.is_err() {
        return;
    }
    if method != "HEAD" || config.faults.has(Fault::HeadBody) {
        let limit = match config.faults.has(Fault::TruncatedBody) {
            true => TRUNCATED_AT,
            false => u64::MAX,
        };
        if send_body(&mut stream, reply.body, limit).await.is_err() {
            return;
        }
    }
    let _ = stream.finish().await;
}

/// The request body of `POST /echo`, or None past `site::MAX_ECHO` bytes.
async fn read_body(stream: &mut Stream) -> Option<Bytes> {
    use bytes::Buf;
    let mut body = Vec::new();
    while let Ok(Some(mut chunk)) = stream.recv_data().await {
        if body.len() + chunk.remaining() > site::MAX_ECHO as usize {
            return None;
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            body.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Some(Bytes::from(body))
}

async fn send_body(stream: &mut Stream, body: Body, limit: u64) -> Result<(), ()> {
    match body {
        Body::Bytes(bytes) => {
            let bytes = bytes.slice(..bytes.len().min(usize::try_from(limit).unwrap_or(usize::MAX)));
            for piece in bytes.chunks(CHUNK) {
                stream.send_data(Bytes::copy_from_slice(piece)).await.map_err(|_| ())?;
            }
        }
        Body::File(file, len) => {
            let mut rest = len.min(limit);
            let mut file = file.take(rest);
            let mut buf = vec![0u8; CHUNK];
            while rest > 0 {
                let n = file.read(&mut buf).await.map_err(|_| ())?;
                if n == 0 {
                    break;
                }
                rest -= n as u64;
                stream.send_data(Bytes::copy_from_slice(&buf[..n])).await.map_err(|_| ())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_to_start_without_a_certificate() {
        let err = start("127.0.0.1:0".parse().unwrap(), &Options::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_cert") && err.contains("RFC 9001"), "{err}");
    }

    #[tokio::test]
    async fn starts_with_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.path().join("c.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("k.pem"), cert.key_pair.serialize_pem()).unwrap();
        let opts = Options::from([
            ("tls_cert".to_owned(), dir.path().join("c.pem").display().to_string()),
            ("tls_key".to_owned(), dir.path().join("k.pem").display().to_string()),
        ]);
        let server = start("127.0.0.1:0".parse().unwrap(), &opts).await.unwrap();
        assert_eq!(server.transport(), Transport::Udp);
        server.shutdown().await;
    }
}
