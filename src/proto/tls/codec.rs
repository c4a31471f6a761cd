//! TLS framing (RFC 8446 §5, RFC 5246 §6.2): records in, one message per handshake message,
//! ChangeCipherSpec, alert and application data record out.
//!
//! The handshake is decoded for the transcript: the ClientHello's versions, SNI and ALPN list, the
//! ServerHello's version (`supported_versions` for TLS 1.3) and cipher suite, the ALPN protocol
//! chosen (ServerHello in TLS 1.2, EncryptedExtensions in TLS 1.3), the first certificate's
//! subject. With a key log (`Context::keys`) the records are decrypted: each direction's codec
//! reads the other direction's records too (`peer_sent`), for the randoms, the suite and the
//! inner protocol's `peer_sent`, and frames the plaintext with the protocol TLS carries (by
//! ALPN, by port, or the one the connection began in before STARTTLS). Without keys, protected
//! records are shown by their size.

use std::collections::VecDeque;
use std::sync::Arc;

use super::crypto::{self, Decrypter};
use super::keylog::Label;
use crate::proto::codec::Context;
use crate::proto::{escape_bytes, Codec, CodecError, Direction, Finding, Frame, Framer, Level, Message, Protocol, Transport};

/// RFC 8446 §5.1: a plaintext record's fragment is at most 2^14 bytes.
pub const MAX_PLAINTEXT: usize = 1 << 14;
/// RFC 8446 §5.2: a protected record is at most 2^14 + 256 bytes (TLS 1.2 allowed 2^14 + 2048,
/// RFC 5246 §6.2.3, which is where framing gives up).
pub const MAX_CIPHERTEXT_13: usize = (1 << 14) + 256;
const MAX_CIPHERTEXT_12: usize = (1 << 14) + 2048;
/// Handshake bytes held while a handshake message spans records (a certificate chain).
const MAX_HANDSHAKE: usize = 1 << 18;
/// The other direction's bytes held while waiting for whole records.
const MAX_PEER_BUFFER: usize = MAX_CIPHERTEXT_12 + 5;
/// Decrypted bytes the inner protocol's framer may hold.
const MAX_INNER: usize = 16 << 20;

/// What a TLS message is, for rules over a conversation.
#[derive(Debug, Clone)]
pub struct TlsMessage {
    /// The record's content type (20 ChangeCipherSpec, 21 alert, 22 handshake, 23 application data).
    pub content_type: u8,
    /// The handshake message type, for handshake messages.
    pub handshake: Option<u8>,
    /// The protocol its decrypted application data is framed with, once known.
    pub inner: Option<&'static str>,
    /// Whether the connection began in `inner` before STARTTLS (no new greeting comes).
    pub resumed: bool,
}

impl TlsMessage {
    /// The TLS form of a message this codec framed (none for the inner protocol's messages).
    pub fn of(m: &Message) -> Option<&TlsMessage> {
        m.detail.as_ref().and_then(|d| d.downcast_ref::<TlsMessage>())
    }
}

/// Protocol version names.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v if v & 0x0f0f == 0x0a0a => "GREASE".into(),
        v => format!("0x{v:04x}"),
    }
}

/// The IANA name of a cipher suite (the TLS Cipher Suites registry), or its number.
pub fn suite_name(id: u16) -> String {
    let name = match id {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x0004 => "TLS_RSA_WITH_RC4_128_MD5",
        0x0005 => "TLS_RSA_WITH_RC4_128_SHA",
        0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0033 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0x0039 => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
        0x003c => "TLS_RSA_WITH_AES_128_CBC_SHA256",
        0x003d => "TLS_RSA_WITH_AES_256_CBC_SHA256",
        0x0067 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
        0x006b => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0x00ff => "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
        0x5600 => "TLS_FALLBACK_SCSV",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc011 => "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        0xc012 => "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xc024 => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        0xc027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0xc028 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xccaa => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        _ => return format!("0x{id:04x}"),
    };
    name.into()
}

/// Handshake message names (RFC 8446 §4, RFC 5246 §7.4).
pub fn handshake_name(t: u8) -> String {
    let name = match t {
        0 => "HelloRequest",
        1 => "ClientHello",
        2 => "ServerHello",
        4 => "NewSessionTicket",
        5 => "EndOfEarlyData",
        8 => "EncryptedExtensions",
        11 => "Certificate",
        12 => "ServerKeyExchange",
        13 => "CertificateRequest",
        14 => "ServerHelloDone",
        15 => "CertificateVerify",
        16 => "ClientKeyExchange",
        20 => "Finished",
        22 => "CertificateStatus",
        24 => "KeyUpdate",
        254 => "MessageHash",
        t => return format!("handshake type {t}"),
    };
    name.into()
}

/// Alert descriptions (RFC 8446 §6, RFC 5246 §7.2).
pub fn alert_name(d: u8) -> String {
    let name = match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        d => return format!("alert {d}"),
    };
    name.into()
}

/// The random a ServerHello carries to say it is a HelloRetryRequest (RFC 8446 §4.1.3).
const HELLO_RETRY: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb,
    0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A cursor over handshake bytes; every read is bounds-checked.
struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.take(n)
    }
}

/// Extensions as (type, data).
fn extensions(b: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut r = Rd { b };
    let mut out = Vec::new();
    while !r.b.is_empty() {
        let t = r.u16()?;
        out.push((t, r.vec16()?));
    }
    Some(out)
}

fn alpn_list(b: &[u8]) -> Option<Vec<String>> {
    let mut r = Rd { b: Rd { b }.vec16()? };
    let mut out = Vec::new();
    while !r.b.is_empty() {
        out.push(String::from_utf8_lossy(r.vec8()?).into_owned());
    }
    Some(out)
}

fn sni(b: &[u8]) -> Option<String> {
    let mut r = Rd { b: Rd { b }.vec16()? };
    while !r.b.is_empty() {
        let t = r.u8()?;
        let name = r.vec16()?;
        if t == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    None
}

/// What the handshake told about the connection so far.
#[derive(Debug, Default, Clone)]
struct Session {
    client_random: Option<[u8; 32]>,
    server_random: Option<[u8; 32]>,
    /// The version the ServerHello selected.
    version: Option<u16>,
    suite: Option<u16>,
    alpn: Option<String>,
}

impl Session {
    fn tls13(&self) -> bool {
        self.version == Some(0x0304)
    }
}

/// A handshake message decoded: its summary, and what it teaches the session.
fn handshake(sess: &mut Session, t: u8, body: &[u8]) -> Option<String> {
    let mut r = Rd { b: body };
    let name = handshake_name(t);
    Some(match t {
        1 => {
            let legacy = r.u16()?;
            let random: [u8; 32] = r.take(32)?.try_into().ok()?;
            r.vec8()?;
            let suites = r.vec16()?.len() / 2;
            r.vec8()?;
            let exts = if r.b.is_empty() { Vec::new() } else { extensions(r.vec16()?)? };
            sess.client_random = Some(random);
            // In a fixed order, whatever the extensions' order.
            let (mut name_ind, mut alpn, mut versions) = (None, None, None);
            for (et, data) in exts {
                match et {
                    43 => {
                        let mut v = Rd { b: Rd { b: data }.vec8()? };
                        let mut names = Vec::new();
                        while let Some(x) = v.u16() {
                            if x & 0x0f0f != 0x0a0a {
                                names.push(version_name(x));
                            }
                        }
                        versions = Some(format!("supported {}", names.join(", ")));
                    }
                    0 => name_ind = Some(format!("SNI {}", sni(data)?)),
                    16 => alpn = Some(format!("ALPN [{}]", alpn_list(data)?.join(", "))),
                    _ => {}
                }
            }
            let mut parts = vec![format!("version {}", version_name(legacy))];
            parts.extend([name_ind, alpn, versions].into_iter().flatten());
            parts.push(format!("{suites} cipher suites"));
            format!("{name}: {}", parts.join("; "))
        }
        2 => {
            let legacy = r.u16()?;
            let random: [u8; 32] = r.take(32)?.try_into().ok()?;
            r.vec8()?;
            let suite = r.u16()?;
            r.u8()?;
            let exts = if r.b.is_empty() { Vec::new() } else { extensions(r.vec16()?)? };
            let mut version = legacy;
            let mut alpn = None;
            for (et, data) in exts {
                match et {
                    43 => version = Rd { b: data }.u16()?,
                    16 => alpn = alpn_list(data)?.into_iter().next(),
                    _ => {}
                }
            }
            let hrr = random == HELLO_RETRY;
            if !hrr {
                sess.server_random = Some(random);
                sess.version = Some(version);
                sess.suite = Some(suite);
                if alpn.is_some() {
                    sess.alpn = alpn.clone();
                }
            }
            let what = if hrr { "HelloRetryRequest" } else { "ServerHello" };
            let mut s = format!("{what}: {}, {}", version_name(version), suite_name(suite));
            if let Some(a) = alpn {
                s.push_str(&format!(", ALPN {a}"));
            }
            s
        }
        8 => {
            let mut s = name;
            for (et, data) in extensions(r.vec16()?)? {
                if et == 16 {
                    let a = alpn_list(data)?.into_iter().next()?;
                    s.push_str(&format!(": ALPN {a}"));
                    sess.alpn = Some(a);
                }
            }
            s
        }
        11 => {
            if sess.tls13() {
                r.vec8()?;
            }
            let mut list = Rd { b: r.vec24()? };
            let mut certs = Vec::new();
            while !list.b.is_empty() {
                certs.push(list.vec24()?);
                if sess.tls13() {
                    list.vec16()?;
                }
            }
            match certs.first() {
                None => format!("{name}: none"),
                Some(der) => {
                    let subject = match x509_parser::parse_x509_certificate(der) {
                        Ok((_, c)) => c.subject().to_string(),
                        Err(_) => "an unreadable certificate".into(),
                    };
                    let n = certs.len();
                    format!("{name}: {subject} ({n} certificate{})", if n == 1 { "" } else { "s" })
                }
            }
        }
        24 => {
            let req = match r.u8()? {
                0 => "update_not_requested",
                1 => "update_requested",
                _ => "a bad request_update",
            };
            format!("{name}: {req}")
        }
        _ => name,
    })
}

/// One record's meaning, as a direction's state machine reads it.
enum Seen {
    /// A whole handshake message: its type and summary.
    Handshake(u8, String),
    /// A handshake message that would not parse.
    BadHandshake(u8),
    ChangeCipherSpec,
    Alert(u8, u8),
    /// A protected record this decoder cannot open: its content type as sent, and its size.
    Protected(u8, usize),
    /// Decrypted application data.
    Plain(Vec<u8>),
    /// Something about decryption worth saying once.
    Note(String),
    Heartbeat(usize),
}

/// One direction's records: its handshake bytes, its keys.
struct Half {
    side: Direction,
    hs: Vec<u8>,
    dec: Option<Decrypter>,
    /// TLS 1.2: a ChangeCipherSpec came, so what follows is protected.
    protected: bool,
    /// Decryption was tried and failed or is impossible: say why once, then only sizes.
    given_up: bool,
    /// TLS 1.3 keys change after this record (Finished: the application secret; KeyUpdate).
    next_keys: Option<Option<Decrypter>>,
}

impl Half {
    fn new(side: Direction) -> Half {
        Half {
            side,
            hs: Vec::new(),
            dec: None,
            protected: false,
            given_up: false,
            next_keys: None,
        }
    }

    fn client(&self) -> bool {
        self.side == Direction::ClientToServer
    }

    /// TLS 1.3 keys for this side: the handshake secret, or the first application secret.
    fn keys13(&self, sess: &Session, cx: &Context, app: bool) -> Result<Decrypter, String> {
        let (keys, random, suite) = self.needs(sess, cx)?;
        let label = match (self.client(), app) {
            (true, false) => Label::ClientHandshake,
            (false, false) => Label::ServerHandshake,
            (true, true) => Label::ClientTraffic0,
            (false, true) => Label::ServerTraffic0,
        };
        let secret = keys
            .get(label, &random)
            .ok_or_else(|| format!("the key log has no {} for this connection's client random", label.as_str()))?;
        Decrypter::tls13(suite, secret).ok_or_else(|| format!("{} does not fit {}", label.as_str(), suite_name(suite)))
    }

    fn needs<'c>(&self, sess: &Session, cx: &'c Context) -> Result<(&'c super::KeyLog, [u8; 32], u16), String> {
        let keys = cx.keys.as_deref().ok_or_else(String::new)?;
        let random = sess
            .client_random
            .ok_or("the ClientHello was not seen: no client random to look the keys up by")?;
        let suite = sess.suite.ok_or("the ServerHello was not seen: the cipher suite is unknown")?;
        if crypto::suite_crypto(suite).is_none() {
            return Err(format!(
                "{} is not a suite this decoder decrypts (AES-GCM and ChaCha20-Poly1305 only)",
                suite_name(suite)
            ));
        }
        Ok((keys, random, suite))
    }

    /// Says why decryption stops, once (no key log at all is no news).
    fn give_up(&mut self, why: String, out: &mut Vec<Seen>) {
        if !self.given_up && !why.is_empty() {
            out.push(Seen::Note(format!("not decrypted: {why}")));
        }
        self.given_up = true;
    }

    /// Reads one record.
    fn record(&mut self, sess: &mut Session, cx: &Context, header: &[u8; 5], body: &[u8]) -> Vec<Seen> {
        let mut out = Vec::new();
        let ty = header[0];
        let encrypted = match ty {
            20 => false,
            23 => true,
            _ => self.protected,
        };
        if ty == 20 {
            // TLS 1.3 sends it only for middleboxes (RFC 8446 §D.4); in TLS 1.2 the keys change.
            if !sess.tls13() {
                self.protected = true;
                if !self.given_up && cx.keys.is_some() {
                    match self.keys12(sess, cx) {
                        Ok(d) => self.dec = Some(d),
                        Err(why) => self.give_up(why, &mut out),
                    }
                }
            }
            out.push(Seen::ChangeCipherSpec);
            return out;
        }
        if encrypted && sess.tls13() && self.dec.is_none() && !self.given_up && cx.keys.is_some() {
            match self.keys13(sess, cx, false) {
                Ok(d) => self.dec = Some(d),
                Err(why) => self.give_up(why, &mut out),
            }
        }
        let (ty, plain) = match (&mut self.dec, encrypted) {
            (Some(d), true) if !self.given_up => match d.open(header, body) {
                Ok(p) => p,
                Err(_) => {
                    self.give_up(
                        "a record did not decrypt: the key log's secrets are not this connection's".into(),
                        &mut out,
                    );
                    out.push(Seen::Protected(ty, body.len()));
                    return out;
                }
            },
            (_, true) => {
                out.push(Seen::Protected(ty, body.len()));
                return out;
            }
            (_, false) => (ty, body.to_vec()),
        };
        match ty {
            21 => {
                for a in plain.chunks(2) {
                    out.push(Seen::Alert(a[0], a.get(1).copied().unwrap_or(0)));
                }
            }
            22 => {
                self.hs.extend_from_slice(&plain);
                while self.hs.len() >= 4 {
                    let len = (usize::from(self.hs[1]) << 16) | (usize::from(self.hs[2]) << 8) | usize::from(self.hs[3]);
                    if self.hs.len() < 4 + len {
                        break;
                    }
                    let msg: Vec<u8> = self.hs.drain(..4 + len).collect();
                    let t = msg[0];
                    match handshake(sess, t, &msg[4..]) {
                        Some(s) => out.push(Seen::Handshake(t, s)),
                        None => out.push(Seen::BadHandshake(t)),
                    }
                    self.after_handshake(sess, cx, t, &msg[4..], &mut out);
                }
                if self.hs.len() > MAX_HANDSHAKE {
                    self.hs.clear();
                    out.push(Seen::Note(format!("a handshake message over {MAX_HANDSHAKE} bytes is not decoded")));
                }
            }
            23 => out.push(Seen::Plain(plain)),
            24 => out.push(Seen::Heartbeat(plain.len())),
            _ => out.push(Seen::Protected(ty, plain.len())),
        }
        if let Some(next) = self.next_keys.take() {
            self.dec = next;
        }
        out
    }

    fn keys12(&self, sess: &Session, cx: &Context) -> Result<Decrypter, String> {
        let (keys, random, suite) = self.needs(sess, cx)?;
        let master = keys
            .get(Label::ClientRandom, &random)
            .ok_or("the key log has no CLIENT_RANDOM for this connection's client random")?;
        let server = sess.server_random.ok_or("the ServerHello was not seen")?;
        let (c, s) =
            Decrypter::tls12(suite, master, &random, &server).ok_or_else(|| format!("{} keys cannot be made", suite_name(suite)))?;
        Ok(if self.client() { c } else { s })
    }

    /// TLS 1.3 key changes a handshake message makes, from the next record on.
    fn after_handshake(&mut self, sess: &Session, cx: &Context, t: u8, body: &[u8], out: &mut Vec<Seen>) {
        if !sess.tls13() || self.dec.is_none() {
            return;
        }
        match t {
            20 => match self.keys13(sess, cx, true) {
                Ok(d) => self.next_keys = Some(Some(d)),
                Err(why) => {
                    self.give_up(why, out);
                    self.next_keys = Some(None);
                }
            },
            24 if !body.is_empty() => {
                let next = self.dec.as_ref().and_then(|d| d.update(sess.suite.unwrap_or(0)));
                self.next_keys = Some(next);
            }
            _ => {}
        }
    }
}

/// A record header: content type, version, length.
fn header(buf: &[u8]) -> Result<Option<([u8; 5], usize)>, CodecError> {
    let Some(h) = buf.get(..5) else { return Ok(None) };
    let h: [u8; 5] = h.try_into().expect("five bytes");
    if !(20..=24).contains(&h[0]) || h[1] != 3 || h[2] > 4 {
        return Err(CodecError {
            offset: 0,
            reason: format!(
                "not a TLS record: content type {}, version {:02x}{:02x} (RFC 8446 §5.1)",
                h[0], h[1], h[2]
            ),
        });
    }
    let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
    if len > MAX_CIPHERTEXT_12 {
        return Err(CodecError {
            offset: 3,
            reason: format!("a record of {len} bytes, over the 2^14 + 2048 any TLS version allows (RFC 5246 §6.2.3)"),
        });
    }
    Ok(Some((h, len)))
}

/// Frames one direction of a TLS connection.
pub struct TlsCodec {
    dir: Direction,
    cx: Context,
    sess: Session,
    own: Half,
    peer: Half,
    /// The other direction's bytes not yet whole records.
    peer_buf: Vec<u8>,
    /// The peer's stream could not be followed (not TLS): what it sent is no longer read.
    peer_lost: bool,
    /// Bytes at the start of the buffer already read into `queue` or held in a partial
    /// handshake or inner message, not yet reported as used.
    owed: usize,
    queue: VecDeque<Message>,
    /// The inner protocol's framer for this direction, once decrypted data came.
    inner: Option<(&'static dyn Protocol, Framer)>,
    /// The inner protocol could not be told (no ALPN, port or earlier protocol).
    no_inner: bool,
    /// The transcript said which protocol the decrypted data is framed with.
    announced: bool,
}

impl TlsCodec {
    /// A codec for records sent `dir`.
    pub fn new(dir: Direction) -> TlsCodec {
        TlsCodec {
            dir,
            cx: Context::default(),
            sess: Session::default(),
            own: Half::new(dir),
            peer: Half::new(dir.opposite()),
            peer_buf: Vec::new(),
            peer_lost: false,
            owed: 0,
            queue: VecDeque::new(),
            inner: None,
            no_inner: false,
            announced: false,
        }
    }

    /// The protocol decrypted data is framed with: the one the connection began in (STARTTLS),
    /// the ALPN protocol, else the port's.
    fn inner_protocol(&self) -> Option<&'static dyn Protocol> {
        if let Some(p) = self.cx.carried.or(self.cx.inside).and_then(crate::proto::find) {
            return Some(p);
        }
        if let Some(a) = &self.sess.alpn {
            return match a.as_str() {
                "h2" => crate::proto::find("http2"),
                "http/1.1" | "http/1.0" => crate::proto::find("http"),
                "smtp" => crate::proto::find("smtp"),
                "imap" => crate::proto::find("imap"),
                "pop3" => crate::proto::find("pop3"),
                "ftp" => crate::proto::find("ftp"),
                _ => None,
            };
        }
        let port = self.cx.server_port?;
        if let Some(p) = self.cx.keys.as_ref().and_then(|k| k.carried_on(port)) {
            return crate::proto::find(p);
        }
        super::inner_by_port(port).and_then(crate::proto::find)
    }

    fn inner(&mut self) -> Option<&mut Framer> {
        if self.inner.is_none() && !self.no_inner {
            match self.inner_protocol() {
                Some(p) => {
                    let mut codec = p.codec_on(self.dir, Transport::Tcp);
                    if self.cx.carried.is_some() {
                        // After STARTTLS the conversation goes on: no new greeting comes.
                        codec.joined_late();
                    }
                    self.inner = Some((p, Framer::new(codec)));
                }
                None => self.no_inner = true,
            }
        }
        self.inner.as_mut().map(|(_, f)| f)
    }

    fn tls_message(&self, ty: u8, hs: Option<u8>, text: String, findings: Vec<Finding>) -> Message {
        let detail = TlsMessage {
            content_type: ty,
            handshake: hs,
            inner: self.inner.as_ref().map(|(p, _)| p.name()),
            resumed: self.cx.carried.is_some(),
        };
        Message {
            summary: text.clone(),
            text,
            findings,
            detail: Some(Arc::new(detail)),
        }
    }

    /// Turns what one of this direction's records meant into messages.
    fn show(&mut self, seen: Vec<Seen>, findings: &mut Vec<Finding>) {
        for s in seen {
            let mut f = std::mem::take(findings);
            let m = match s {
                Seen::Handshake(t, text) => self.tls_message(22, Some(t), format!("TLS {text}"), f),
                Seen::BadHandshake(t) => {
                    f.push(Finding {
                        level: Level::Must,
                        rule: "RFC 8446 §4",
                        text: format!("a {} that does not parse", handshake_name(t)),
                    });
                    self.tls_message(22, Some(t), format!("TLS {} (malformed)", handshake_name(t)), f)
                }
                Seen::ChangeCipherSpec => self.tls_message(20, None, "TLS ChangeCipherSpec".into(), f),
                Seen::Alert(level, d) => {
                    let level = match level {
                        1 => "warning".to_string(),
                        2 => "fatal".to_string(),
                        l => format!("level {l}"),
                    };
                    self.tls_message(21, None, format!("TLS alert: {level} {}", alert_name(d)), f)
                }
                Seen::Protected(ty, n) => {
                    let what = match ty {
                        21 => "encrypted alert",
                        22 => "encrypted handshake message",
                        _ => "application data",
                    };
                    self.tls_message(ty, None, format!("TLS {what}, {n} bytes"), f)
                }
                Seen::Heartbeat(n) => self.tls_message(24, None, format!("TLS heartbeat, {n} bytes"), f),
                Seen::Note(text) => self.tls_message(0, None, format!("TLS note: {text}"), f),
                Seen::Plain(bytes) => {
                    *findings = f;
                    self.plain(&bytes, findings);
                    continue;
                }
            };
            self.queue.push_back(m);
        }
    }

    /// Decrypted application data: framed by the inner protocol, or shown as bytes.
    fn plain(&mut self, bytes: &[u8], findings: &mut Vec<Finding>) {
        let Some(framer) = self.inner() else {
            let m = self.tls_message(
                23,
                None,
                format!(
                    "TLS application data, {} bytes (decrypted): \"{}\"",
                    bytes.len(),
                    escape_bytes(bytes, 200)
                ),
                std::mem::take(findings),
            );
            self.queue.push_back(m);
            return;
        };
        framer.push(bytes);
        if !std::mem::replace(&mut self.announced, true) {
            let name = self.inner.as_ref().map_or("", |(p, _)| p.name());
            let m = self.tls_message(23, None, format!("TLS decrypted: {name} inside"), Vec::new());
            self.queue.push_back(m);
        }
        self.frame_inner(false);
        if let Some(f) = self.queue.back_mut() {
            f.findings.append(findings);
        }
    }

    fn frame_inner(&mut self, eof: bool) {
        let Some((p, framer)) = self.inner.as_mut() else { return };
        loop {
            match framer.next(eof) {
                Ok(Some(m)) => self.queue.push_back(m),
                Ok(None) => break,
                Err(e) => {
                    let held = framer.take_all();
                    let name = p.name();
                    self.queue.push_back(Message {
                        text: format!("undecodable {name} inside TLS"),
                        summary: format!("undecodable {name} inside TLS ({e}): \"{}\"", escape_bytes(&held, 200)),
                        findings: vec![Finding {
                            level: Level::Must,
                            rule: "message syntax inside TLS",
                            text: format!("the decrypted {name} bytes cannot be framed: {e}"),
                        }],
                        detail: None,
                    });
                    break;
                }
            }
        }
        if framer.pending().len() > MAX_INNER {
            framer.take_all();
        }
    }

    /// Reads the other direction's whole records: the handshake teaches the session, and its
    /// decrypted data is what the inner protocol's codec learns through `peer_sent`.
    fn read_peer(&mut self) {
        let mut pos = 0;
        while !self.peer_lost {
            let (h, len) = match header(&self.peer_buf[pos..]) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(_) => {
                    self.peer_lost = true;
                    break;
                }
            };
            let Some(body) = self.peer_buf.get(pos + 5..pos + 5 + len) else {
                break;
            };
            let body = body.to_vec();
            pos += 5 + len;
            for s in self.peer.record(&mut self.sess, &self.cx, &h, &body) {
                if let Seen::Plain(b) = s {
                    if let Some(f) = self.inner() {
                        f.peer_sent(&b);
                    }
                }
            }
        }
        self.peer_buf.drain(..pos);
        if self.peer_lost || self.peer_buf.len() > MAX_PEER_BUFFER {
            self.peer_buf.clear();
        }
    }

    /// Hands out the next queued message, reporting bytes used: one per message while more
    /// are queued (a record holds at least one byte per message it yields), the rest with the last.
    fn pop(&mut self) -> Option<Frame> {
        let m = self.queue.pop_front()?;
        let used = if self.queue.is_empty() { self.owed } else { 1.min(self.owed) };
        self.owed -= used;
        Some(Frame::Message(m, used.max(1)))
    }
}

impl TlsCodec {
    /// The next message of this direction (see [`Codec::decode`]).
    fn next_frame(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        loop {
            if !self.queue.is_empty() {
                // More queued messages than owed bytes cannot happen (see `pop`), but a message
                // must use a byte: the last ones wait for the next record.
                if self.owed > 0 {
                    return Ok(self.pop().expect("queued"));
                }
            }
            let rest = &buf[self.owed.min(buf.len())..];
            let (h, len) = match header(rest) {
                Ok(Some(x)) => x,
                Ok(None) => {
                    if !eof || (rest.is_empty() && self.owed == 0) {
                        return Ok(Frame::Incomplete);
                    }
                    if !rest.is_empty() {
                        return Err(CodecError {
                            offset: buf.len(),
                            reason: "the connection closed in the middle of a TLS record".into(),
                        });
                    }
                    // Whole records whose content is still partial: the inner protocol's last
                    // message may end at the close.
                    self.frame_inner(true);
                    if let Some(f) = self.pop() {
                        return Ok(f);
                    }
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: "the connection closed in the middle of a message inside TLS".into(),
                    });
                }
                Err(e) => {
                    return Err(CodecError {
                        offset: self.owed + e.offset,
                        reason: e.reason,
                    })
                }
            };
            let Some(body) = rest.get(5..5 + len) else {
                if eof {
                    return Err(CodecError {
                        offset: buf.len(),
                        reason: format!("the connection closed in the middle of a TLS record ({len} bytes announced)"),
                    });
                }
                return Ok(Frame::Incomplete);
            };
            let mut findings = Vec::new();
            let protected = h[0] == 23 || (self.own.protected && h[0] != 20);
            if !protected && len > MAX_PLAINTEXT {
                findings.push(Finding {
                    level: Level::Must,
                    rule: "RFC 8446 §5.1",
                    text: format!("a plaintext record of {len} bytes; the limit is 2^14 (16384)"),
                });
            } else if protected && self.sess.tls13() && len > MAX_CIPHERTEXT_13 {
                findings.push(Finding {
                    level: Level::Must,
                    rule: "RFC 8446 §5.2",
                    text: format!("a protected record of {len} bytes; the limit is 2^14 + 256 (16640)"),
                });
            }
            if len == 0 && h[0] != 23 {
                findings.push(Finding {
                    level: Level::Must,
                    rule: "RFC 8446 §5.1",
                    text: "a zero-length handshake, alert or ChangeCipherSpec record".into(),
                });
            }
            let seen = self.own.record(&mut self.sess, &self.cx, &h, body);
            self.owed += 5 + len;
            self.show(seen, &mut findings);
            if !findings.is_empty() {
                // A record whose content is still partial (a handshake message spanning records)
                // has its findings shown on their own.
                let m = self.tls_message(h[0], None, format!("TLS record, {len} bytes"), findings);
                self.queue.push_back(m);
            }
            if let Some(f) = self.pop() {
                return Ok(f);
            }
        }
    }
}

impl Codec for TlsCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let r = self.next_frame(buf, eof);
        if r.is_err() {
            // The framer drops what it holds after an error: nothing held is owed any more.
            self.owed = 0;
            self.queue.clear();
        }
        r
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        if self.peer_lost {
            return;
        }
        self.peer_buf.extend_from_slice(bytes);
        self.read_peer();
    }

    fn context(&mut self, cx: &Context) {
        self.cx = cx.clone();
    }
}

/// What each side sent inside a TLS connection, decrypted with `cx.keys`: pieces of plaintext
/// with the index of the chunk (of `chunks`, the connection's bytes in the order they went) whose
/// bytes completed their record. None without keys, or when a record does not decrypt.
pub fn plaintext(chunks: &[(Direction, &[u8])], cx: &Context) -> Option<Vec<(usize, Direction, Vec<u8>)>> {
    cx.keys.as_ref()?;
    let mut sess = Session::default();
    let mut halves = [Half::new(Direction::ClientToServer), Half::new(Direction::ServerToClient)];
    let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut out = Vec::new();
    for (i, (dir, bytes)) in chunks.iter().enumerate() {
        let side = usize::from(*dir == Direction::ServerToClient);
        bufs[side].extend_from_slice(bytes);
        let mut pos = 0;
        while let Some((h, len)) = header(&bufs[side][pos..]).ok()? {
            let Some(body) = bufs[side].get(pos + 5..pos + 5 + len) else {
                break;
            };
            let body = body.to_vec();
            pos += 5 + len;
            for s in halves[side].record(&mut sess, cx, &h, &body) {
                match s {
                    Seen::Plain(p) if !p.is_empty() => out.push((i, *dir, p)),
                    // close_notify (RFC 8446 §6.1): this side sends no more data.
                    Seen::Alert(_, 0) => out.push((i, *dir, Vec::new())),
                    Seen::Note(_) => return None,
                    _ => {}
                }
            }
        }
        bufs[side].drain(..pos);
        if bufs[side].len() > MAX_PEER_BUFFER {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of type `ty` around `body`.
    pub fn record(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ty, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn hs(t: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![t];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(body);
        m
    }

    fn ext(t: u16, data: &[u8]) -> Vec<u8> {
        let mut e = t.to_be_bytes().to_vec();
        e.extend_from_slice(&(data.len() as u16).to_be_bytes());
        e.extend_from_slice(data);
        e
    }

    fn client_hello() -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(0);
        b.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2f]);
        b.extend_from_slice(&[1, 0]);
        let mut exts = Vec::new();
        let name = b"mail.example";
        let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        exts.extend(ext(0, &sni));
        exts.extend(ext(16, &[0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1']));
        exts.extend(ext(43, &[4, 0x03, 0x04, 0x03, 0x03]));
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend(exts);
        hs(1, &b)
    }

    fn texts(dir: Direction, buf: &[u8]) -> Vec<String> {
        let mut f = Framer::new(Box::new(TlsCodec::new(dir)));
        f.push(buf);
        let mut out = Vec::new();
        while let Ok(Some(m)) = f.next(false) {
            out.push(m.summary);
        }
        out
    }

    #[test]
    fn parses_a_client_hello_with_sni_alpn_and_versions() {
        let t = texts(Direction::ClientToServer, &record(22, &client_hello()));
        assert_eq!(
            t,
            ["TLS ClientHello: version TLS 1.2; SNI mail.example; ALPN [h2, http/1.1]; supported TLS 1.3, TLS 1.2; 2 cipher suites"]
        );
    }

    #[test]
    fn parses_server_hello_alerts_ccs_and_protected_records_one_message_each() {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[9; 32]);
        b.push(0);
        b.extend_from_slice(&[0xc0, 0x2f, 0]);
        let mut bytes = record(22, &[hs(2, &b), hs(14, &[])].concat());
        bytes.extend(record(20, &[1]));
        bytes.extend(record(22, &[0; 40]));
        bytes.extend(record(23, &[0; 30]));
        bytes.extend(record(21, &[2, 40]));
        let t = texts(Direction::ServerToClient, &bytes);
        assert_eq!(
            t,
            [
                "TLS ServerHello: TLS 1.2, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS ServerHelloDone",
                "TLS ChangeCipherSpec",
                "TLS encrypted handshake message, 40 bytes",
                "TLS application data, 30 bytes",
                "TLS encrypted alert, 2 bytes",
            ]
        );
    }

    #[test]
    fn parses_a_handshake_message_spanning_records() {
        let ch = client_hello();
        let (a, b) = ch.split_at(20);
        let bytes = [record(22, a), record(22, b)].concat();
        let t = texts(Direction::ClientToServer, &bytes);
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(t[0].starts_with("TLS ClientHello"), "{t:?}");
    }

    #[test]
    fn incomplete_records_wait_and_a_close_inside_one_is_an_error() {
        let bytes = record(23, &[0; 30]);
        let mut c = TlsCodec::new(Direction::ClientToServer);
        assert!(matches!(c.decode(&bytes[..3], false), Ok(Frame::Incomplete)));
        assert!(matches!(c.decode(&bytes[..20], false), Ok(Frame::Incomplete)));
        let e = c.decode(&bytes[..20], true).unwrap_err();
        assert!(e.reason.contains("middle of a TLS record"), "{e}");
        assert!(matches!(c.decode(&bytes, false), Ok(Frame::Message(_, 35))));
    }

    #[test]
    fn rejects_bytes_that_are_not_records_and_flags_oversized_ones() {
        let mut c = TlsCodec::new(Direction::ClientToServer);
        let e = c.decode(b"EHLO x\r\n", false).unwrap_err();
        assert!(e.reason.contains("not a TLS record"), "{e}");
        let mut big = vec![22, 3, 3];
        big.extend_from_slice(&((1u16 << 14) + 1).to_be_bytes());
        big.extend(std::iter::repeat_n(0, (1 << 14) + 1));
        let mut c = TlsCodec::new(Direction::ClientToServer);
        let Ok(Frame::Message(m, _)) = c.decode(&big, false) else {
            panic!()
        };
        assert_eq!(m.findings[0].rule, "RFC 8446 §5.1", "{:?}", m);
        // Half a handshake message, then bytes that are no record: the error drops what was
        // held, and framing starts again on what comes next.
        let mut f = Framer::new(Box::new(TlsCodec::new(Direction::ClientToServer)));
        f.push(&record(22, &client_hello()[..10]));
        assert!(f.next(false).unwrap().is_none());
        f.push(b"garbage");
        assert!(f.next(false).is_err());
        f.take_all();
        f.push(&record(21, &[1, 0]));
        assert_eq!(f.next(false).unwrap().unwrap().summary, "TLS alert: warning close_notify");
        let mut c = TlsCodec::new(Direction::ClientToServer);
        let mut huge = vec![23, 3, 3];
        huge.extend_from_slice(&((1u16 << 14) + 2049).to_be_bytes());
        assert!(c.decode(&huge, false).unwrap_err().reason.contains("2^14 + 2048"));
    }

    #[test]
    fn round_trip_names_alerts_versions_and_suites() {
        assert_eq!(alert_name(0), "close_notify");
        assert_eq!(alert_name(120), "no_application_protocol");
        assert_eq!(version_name(0x0304), "TLS 1.3");
        assert_eq!(suite_name(0x1303), "TLS_CHACHA20_POLY1305_SHA256");
        assert_eq!(suite_name(0xabcd), "0xabcd");
        let t = texts(Direction::ServerToClient, &[record(21, &[1, 0]), record(21, &[2, 70])].concat());
        assert_eq!(t, ["TLS alert: warning close_notify", "TLS alert: fatal protocol_version"]);
    }

    fn frame_in_pieces(dir: Direction, bytes: &[u8], piece: usize) -> Vec<String> {
        let mut f = Framer::new(Box::new(TlsCodec::new(dir)));
        let mut out = Vec::new();
        for p in bytes.chunks(piece.max(1)) {
            f.push(p);
            while let Ok(Some(m)) = f.next(false) {
                out.push(m.summary);
            }
        }
        while let Ok(Some(m)) = f.next(true) {
            out.push(m.summary);
        }
        out
    }

    #[test]
    fn round_trip_a_session_frames_the_same_in_any_pieces() {
        let s = crate::proto::tls::testing::session(
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            Some("h2"),
            &[b"ping"],
            &[b"pong"],
        );
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let bytes: Vec<u8> = s.chunks.iter().filter(|(d, _)| *d == dir).flat_map(|(_, b)| b.clone()).collect();
            let whole = frame_in_pieces(dir, &bytes, bytes.len());
            assert!(whole.len() >= 3, "{whole:?}");
            for piece in [1, 2, 3, 5, 7, 64, 1000] {
                assert_eq!(frame_in_pieces(dir, &bytes, piece), whole, "pieces of {piece}");
            }
        }
    }

    #[test]
    fn plaintext_ends_each_side_at_its_close_notify() {
        for suite in [
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ] {
            let s = crate::proto::tls::testing::session(suite, None, &[b"ping"], &[b"pong"]);
            let keys = crate::proto::KeyLog::parse(&s.keylog).unwrap();
            let cx = Context {
                keys: Some(std::sync::Arc::new(keys)),
                ..Context::default()
            };
            let chunks: Vec<(Direction, &[u8])> = s.chunks.iter().map(|(d, b)| (*d, b.as_slice())).collect();
            let pieces: Vec<(Direction, Vec<u8>)> = plaintext(&chunks, &cx).unwrap().into_iter().map(|(_, d, b)| (d, b)).collect();
            assert_eq!(
                pieces,
                vec![
                    (Direction::ClientToServer, b"ping".to_vec()),
                    (Direction::ServerToClient, b"pong".to_vec()),
                    (Direction::ClientToServer, Vec::new()),
                    (Direction::ServerToClient, Vec::new()),
                ],
                "{suite:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn rejects_or_frames_any_bytes_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600), piece in 1usize..64) {
            // Mostly valid headers, so the handshake parsers see arbitrary bodies.
            let mut b = bytes;
            if b.len() > 5 {
                b[0] = 22 + b[0] % 2;
                b[1] = 3;
                b[2] %= 5;
            }
            for dir in [Direction::ClientToServer, Direction::ServerToClient] {
                let mut c = TlsCodec::new(dir);
                c.peer_sent(&b);
                let mut f = Framer::new(Box::new(c));
                for p in b.chunks(piece) {
                    f.push(p);
                    while let Ok(Some(_)) = f.next(false) {}
                }
                while let Ok(Some(_)) = f.next(true) {}
            }
        }
    }
}
