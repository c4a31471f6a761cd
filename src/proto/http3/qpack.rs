//! QPACK field sections (RFC 9204 §4.5) as far as a peer may use them with the harness: the
//! static table (Appendix A) and literals, Huffman-coded or not (RFC 7541 §5.2, the code table of
//! `http2::hpack`). The harness advertises SETTINGS_QPACK_MAX_TABLE_CAPACITY 0, so a section that
//! refers to the dynamic table is an error the decoder names (RFC 9204 §2.2.3, §4.5.1.1), never a
//! table it keeps. Encoding writes literals with literal names, without Huffman: always valid,
//! with no table to keep.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::proto::http2::hpack::{integer, HUFFMAN};

/// The static table (RFC 9204 Appendix A).
pub const STATIC: [(&str, &str); 99] = [
    (":authority", ""),
    (":path", "/"),
    ("age", "0"),
    ("content-disposition", ""),
    ("content-length", "0"),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("referer", ""),
    ("set-cookie", ""),
    (":method", "CONNECT"),
    (":method", "DELETE"),
    (":method", "GET"),
    (":method", "HEAD"),
    (":method", "OPTIONS"),
    (":method", "POST"),
    (":method", "PUT"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "103"),
    (":status", "200"),
    (":status", "304"),
    (":status", "404"),
    (":status", "503"),
    ("accept", "*/*"),
    ("accept", "application/dns-message"),
    ("accept-encoding", "gzip, deflate, br"),
    ("accept-ranges", "bytes"),
    ("access-control-allow-headers", "cache-control"),
    ("access-control-allow-headers", "content-type"),
    ("access-control-allow-origin", "*"),
    ("cache-control", "max-age=0"),
    ("cache-control", "max-age=2592000"),
    ("cache-control", "max-age=604800"),
    ("cache-control", "no-cache"),
    ("cache-control", "no-store"),
    ("cache-control", "public, max-age=31536000"),
    ("content-encoding", "br"),
    ("content-encoding", "gzip"),
    ("content-type", "application/dns-message"),
    ("content-type", "application/javascript"),
    ("content-type", "application/json"),
    ("content-type", "application/x-www-form-urlencoded"),
    ("content-type", "image/gif"),
    ("content-type", "image/jpeg"),
    ("content-type", "image/png"),
    ("content-type", "text/css"),
    ("content-type", "text/html; charset=utf-8"),
    ("content-type", "text/plain"),
    ("content-type", "text/plain;charset=utf-8"),
    ("range", "bytes=0-"),
    ("strict-transport-security", "max-age=31536000"),
    ("strict-transport-security", "max-age=31536000; includesubdomains"),
    ("strict-transport-security", "max-age=31536000; includesubdomains; preload"),
    ("vary", "accept-encoding"),
    ("vary", "origin"),
    ("x-content-type-options", "nosniff"),
    ("x-xss-protection", "1; mode=block"),
    (":status", "100"),
    (":status", "204"),
    (":status", "206"),
    (":status", "302"),
    (":status", "400"),
    (":status", "403"),
    (":status", "421"),
    (":status", "425"),
    (":status", "500"),
    ("accept-language", ""),
    ("access-control-allow-credentials", "FALSE"),
    ("access-control-allow-credentials", "TRUE"),
    ("access-control-allow-headers", "*"),
    ("access-control-allow-methods", "get"),
    ("access-control-allow-methods", "get, post, options"),
    ("access-control-allow-methods", "options"),
    ("access-control-expose-headers", "content-length"),
    ("access-control-request-headers", "content-type"),
    ("access-control-request-method", "get"),
    ("access-control-request-method", "post"),
    ("alt-svc", "clear"),
    ("authorization", ""),
    ("content-security-policy", "script-src 'none'; object-src 'none'; base-uri 'none'"),
    ("early-data", "1"),
    ("expect-ct", ""),
    ("forwarded", ""),
    ("if-range", ""),
    ("origin", ""),
    ("purpose", "prefetch"),
    ("server", ""),
    ("timing-allow-origin", "*"),
    ("upgrade-insecure-requests", "1"),
    ("user-agent", ""),
    ("x-forwarded-for", ""),
    ("x-frame-options", "deny"),
    ("x-frame-options", "sameorigin"),
];

/// Why a field section does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QpackError {
    /// What is wrong, with the rule.
    pub reason: String,
    /// It refers to the dynamic table (which the harness allowed no room for).
    pub dynamic: bool,
}

fn err(reason: impl Into<String>) -> QpackError {
    QpackError {
        reason: reason.into(),
        dynamic: false,
    }
}

fn dynamic(what: &str) -> QpackError {
    QpackError {
        reason: format!(
            "{what} refers to the dynamic table, which has no room: SETTINGS_QPACK_MAX_TABLE_CAPACITY is 0 \
             (RFC 9204 §3.2.3; a decoder MUST treat it as a connection error QPACK_DECOMPRESSION_FAILED, §2.2.3)"
        ),
        dynamic: true,
    }
}

/// Decodes a field section (RFC 9204 §4.5) into name/value pairs, in order.
pub fn decode(section: &[u8]) -> Result<Vec<(String, String)>, QpackError> {
    let (ric, at) = int(section, 0, 8)?;
    if ric != 0 {
        return Err(dynamic("the section's Required Insert Count is not 0: it"));
    }
    let (_base, mut at) = int(section, at, 7)?;
    let mut out = Vec::new();
    while at < section.len() {
        let b = section[at];
        if b & 0x80 != 0 {
            // Indexed field line (§4.5.2): T is the 0x40 bit.
            if b & 0x40 == 0 {
                return Err(dynamic("an indexed field line"));
            }
            let (i, next) = int(section, at, 6)?;
            let (n, v) = entry(i)?;
            out.push((n.to_owned(), v.to_owned()));
            at = next;
        } else if b & 0x40 != 0 {
            // Literal field line with name reference (§4.5.4): N 0x20, T 0x10.
            if b & 0x10 == 0 {
                return Err(dynamic("a literal field line's name reference"));
            }
            let (i, next) = int(section, at, 4)?;
            let (n, _) = entry(i)?;
            let (value, next) = string(section, next, 7)?;
            out.push((n.to_owned(), value));
            at = next;
        } else if b & 0x20 != 0 {
            // Literal field line with literal name (§4.5.6): N 0x10, H 0x08, 3-bit length.
            let (name, next) = string(section, at, 3)?;
            let (value, next) = string(section, next, 7)?;
            out.push((name, value));
            at = next;
        } else if b & 0x10 != 0 {
            return Err(dynamic("an indexed field line with post-base index"));
        } else {
            return Err(dynamic("a literal field line with post-base name reference"));
        }
    }
    Ok(out)
}

fn entry(i: u64) -> Result<(&'static str, &'static str), QpackError> {
    usize::try_from(i).ok().and_then(|i| STATIC.get(i)).copied().ok_or_else(|| {
        err(format!(
            "static table index {i} is past the table's 99 entries (RFC 9204 Appendix A)"
        ))
    })
}

/// An integer with an `n`-bit prefix at `at` (RFC 9204 §4.1.1, RFC 7541 §5.1).
fn int(b: &[u8], at: usize, n: u32) -> Result<(u64, usize), QpackError> {
    let cut = || err("the field section ends inside an integer");
    let first = *b.get(at).ok_or_else(cut)?;
    let max = (1u64 << n) - 1;
    let mut v = u64::from(first) & max;
    let mut at = at + 1;
    if v < max {
        return Ok((v, at));
    }
    let mut shift = 0u32;
    loop {
        let byte = *b.get(at).ok_or_else(cut)?;
        at += 1;
        if shift > 56 {
            return Err(err("an integer past 62 bits"));
        }
        v += u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok((v, at));
        }
    }
}

/// A string literal whose length has an `n`-bit prefix, the Huffman flag the bit above it.
fn string(b: &[u8], at: usize, n: u32) -> Result<(String, usize), QpackError> {
    let huffman = b.get(at).is_some_and(|first| first & (1 << n) != 0);
    let (len, at) = int(b, at, n)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| at.checked_add(len))
        .filter(|end| *end <= b.len())
        .ok_or_else(|| err(format!("a string of {len} octets runs past the field section")))?;
    let raw = &b[at..end];
    let bytes = match huffman {
        true => huffman_decode(raw).map_err(err)?,
        false => raw.to_vec(),
    };
    Ok((String::from_utf8_lossy(&bytes).into_owned(), end))
}

/// Decodes a Huffman-coded string (RFC 7541 §5.2): padding is at most 7 bits, all ones, and EOS
/// never appears.
pub fn huffman_decode(bytes: &[u8]) -> Result<Vec<u8>, String> {
    static CODES: OnceLock<HashMap<(u8, u32), u16>> = OnceLock::new();
    let codes = CODES.get_or_init(|| {
        HUFFMAN
            .iter()
            .enumerate()
            .map(|(sym, &(code, len))| ((len, code), sym as u16))
            .collect()
    });
    let mut out = Vec::new();
    let (mut code, mut len) = (0u32, 0u8);
    for &byte in bytes {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            if let Some(&sym) = codes.get(&(len, code)) {
                if sym == 256 {
                    return Err("a Huffman string holds EOS (RFC 7541 §5.2: a decoding error)".into());
                }
                out.push(sym as u8);
                (code, len) = (0, 0);
            } else if len > 30 {
                return Err("a Huffman string holds no valid code".into());
            }
        }
    }
    if len > 7 || code != (1u32 << len) - 1 {
        return Err("a Huffman string's padding is longer than 7 bits or not all ones (RFC 7541 §5.2)".into());
    }
    Ok(out)
}

/// A field section of `fields` as literals with literal names, no Huffman, no table (RFC 9204
/// §4.5.6), after a prefix of Required Insert Count 0 and Base 0.
pub fn encode(fields: &[(String, String)]) -> Vec<u8> {
    let mut out = vec![0x00, 0x00];
    for (name, value) in fields {
        integer(&mut out, 0x20, 3, name.len());
        out.extend_from_slice(name.as_bytes());
        integer(&mut out, 0x00, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn round_trip_literals() {
        let fields = pairs(&[(":method", "GET"), (":path", "/index.html"), ("x-long", &"v".repeat(300))]);
        assert_eq!(decode(&encode(&fields)).unwrap(), fields);
    }

    #[test]
    fn parses_static_references_and_huffman() {
        // :status 200 indexed (25), content-type with static name 44 and a literal value,
        // and a Huffman-coded literal name and value.
        let mut s = vec![0x00, 0x00, 0xd9, 0x5f, 0x1d, 0x03];
        s.extend_from_slice(b"x/y");
        let name = crate::proto::http2::hpack::huffman(b"abc");
        s.push(0x28 | name.len() as u8);
        s.extend_from_slice(&name);
        let value = crate::proto::http2::hpack::huffman(b"hello");
        s.push(0x80 | value.len() as u8);
        s.extend_from_slice(&value);
        let got = decode(&s).unwrap();
        assert_eq!(got, pairs(&[(":status", "200"), ("content-type", "x/y"), ("abc", "hello")]));
        assert_eq!(
            huffman_decode(&crate::proto::http2::hpack::huffman(b"www.example.com")).unwrap(),
            b"www.example.com"
        );
    }

    #[test]
    fn rejects_dynamic_references_and_bad_huffman() {
        assert!(decode(&[0x02, 0x00, 0xd9]).unwrap_err().dynamic);
        assert!(decode(&[0x00, 0x00, 0x80]).unwrap_err().dynamic);
        assert!(decode(&[0x00, 0x00, 0x10]).unwrap_err().dynamic);
        assert!(decode(&[0x00, 0x00, 0x00]).unwrap_err().dynamic);
        assert!(decode(&[0x00, 0x00, 0xff, 0x40]).unwrap_err().reason.contains("static table index"));
        assert!(decode(&[0x00, 0x00, 0x5f, 0x1d, 0x05, b'a'])
            .unwrap_err()
            .reason
            .contains("runs past"));
        assert!(huffman_decode(&[0x00]).is_err(), "padding of zeros");
        assert!(huffman_decode(&[0xff, 0xff, 0xff, 0xff]).is_err(), "EOS");
    }
}
