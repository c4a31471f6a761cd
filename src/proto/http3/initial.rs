//! A client's Initial packet opened (RFC 9001 §5): its keys come from the Destination Connection
//! ID the packet itself carries and a salt every QUIC version 1 endpoint knows (§5.2), so a
//! capture shows the frames inside without any key log: CRYPTO with the ClientHello's server
//! name and ALPN, PING, ACK, PADDING.

use ring::aead::{self, quic, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

use super::codec::varint;

/// The QUIC version 1 initial salt (RFC 9001 §5.2).
const INITIAL_SALT: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
];

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &hkdf::Prk, label: &str, len: usize) -> Vec<u8> {
    let full = format!("tls13 {label}");
    let info = [&(len as u16).to_be_bytes()[..], &[full.len() as u8], full.as_bytes(), &[0u8]];
    let mut out = vec![0u8; len];
    prk.expand(&info, Len(len))
        .and_then(|okm| okm.fill(&mut out))
        .expect("lengths within HKDF-SHA256's limit");
    out
}

/// One side's Initial packet keys: (key, iv, hp) from the client's `dcid` (RFC 9001 §5.2, §5.1).
fn initial_keys(dcid: &[u8], server: bool) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, &INITIAL_SALT).extract(dcid);
    let secret = expand_label(&initial, if server { "server in" } else { "client in" }, 32);
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &secret);
    (
        expand_label(&prk, "quic key", 16),
        expand_label(&prk, "quic iv", 12),
        expand_label(&prk, "quic hp", 16),
    )
}

/// Opens the client's Initial packet `packet` (its whole long header and payload), whose packet
/// number starts at `pn_at`; returns its packet number and plaintext frames, or why not.
pub fn open(packet: &[u8], dcid: &[u8], pn_at: usize) -> Result<(u64, Vec<u8>), String> {
    open_as(packet, dcid, pn_at, false)
}

/// [`open`] for either side's Initial: both sides' keys come from the Destination Connection ID
/// of the client's first Initial (`dcid`), the server's with its own label (RFC 9001 §5.2).
pub fn open_as(packet: &[u8], dcid: &[u8], pn_at: usize, server: bool) -> Result<(u64, Vec<u8>), String> {
    let (key, iv, hp) = initial_keys(dcid, server);
    let sample = packet
        .get(pn_at + 4..pn_at + 20)
        .ok_or("the packet is too short to sample (RFC 9001 §5.4.2)")?;
    let hp = quic::HeaderProtectionKey::new(&quic::AES_128, &hp).map_err(|_| "header protection key")?;
    let mask = hp.new_mask(sample).map_err(|_| "header protection mask")?;
    let mut header = packet[..pn_at].to_vec();
    header[0] ^= mask[0] & 0x0f;
    let pn_len = usize::from(header[0] & 0x03) + 1;
    let mut pn = 0u64;
    for i in 0..pn_len {
        let b = packet.get(pn_at + i).ok_or("the packet ends inside its packet number")? ^ mask[1 + i];
        header.push(b);
        pn = (pn << 8) | u64::from(b);
    }
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&iv);
    for (i, b) in pn.to_be_bytes().iter().enumerate() {
        nonce[4 + i] ^= b;
    }
    let key = LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &key).map_err(|_| "packet key")?);
    let mut body = packet[pn_at + pn_len..].to_vec();
    let plain = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&header[..]), &mut body)
        .map_err(|_| "it does not open with the Initial keys of that Destination Connection ID")?;
    Ok((pn, plain.to_vec()))
}

/// The ClientHello random in a client's first Initial, the datagram's first packet: what a key
/// log names the connection's secrets by (RFC 8446 §4.1.2), so a capture's writer can pick them.
pub fn client_random(d: &[u8]) -> Option<[u8; 32]> {
    if d.first()? & 0xf0 != 0xc0 || d.get(1..5)? != [0, 0, 0, 1] {
        return None;
    }
    let dcid_len = usize::from(*d.get(5)?);
    let dcid = d.get(6..6 + dcid_len)?;
    let mut p = 6 + dcid_len;
    p += 1 + usize::from(*d.get(p)?);
    let (token, next) = varint(d, p)?;
    p = next.checked_add(usize::try_from(token).ok()?)?;
    let (len, pn_at) = varint(d, p)?;
    let end = pn_at.checked_add(usize::try_from(len).ok()?)?;
    let (_, plain) = open(d.get(..end)?, dcid, pn_at).ok()?;
    let mut at = 0;
    while at < plain.len() {
        let (kind, next) = varint(&plain, at)?;
        match kind {
            0x00 | 0x01 => at = next,
            0x06 => {
                let (offset, a) = varint(&plain, next)?;
                let (len, b) = varint(&plain, a)?;
                let data = plain.get(b..b.checked_add(usize::try_from(len).ok()?)?)?;
                if offset == 0 && data.first() == Some(&1) {
                    return data.get(6..38)?.try_into().ok();
                }
                at = b + data.len();
            }
            _ => return None,
        }
    }
    None
}

/// The frames of an opened Initial packet, in a line (RFC 9000 §19).
pub fn frames(p: &[u8]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut at = 0;
    while at < p.len() {
        let Some((kind, next)) = varint(p, at) else { break };
        at = next;
        match kind {
            0x00 => {
                let start = at - 1;
                while at < p.len() && p[at] == 0 {
                    at += 1;
                }
                out.push(format!("PADDING {}", at - start));
            }
            0x01 => out.push("PING".into()),
            0x02 | 0x03 => {
                let mut nums = Vec::new();
                for _ in 0..4 {
                    let Some((v, next)) = varint(p, at) else {
                        return finish(out, "a cut ACK");
                    };
                    nums.push(v);
                    at = next;
                }
                for _ in 0..nums[2] * 2 {
                    let Some((_, next)) = varint(p, at) else {
                        return finish(out, "a cut ACK");
                    };
                    at = next;
                }
                if kind == 0x03 {
                    for _ in 0..3 {
                        let Some((_, next)) = varint(p, at) else {
                            return finish(out, "a cut ACK");
                        };
                        at = next;
                    }
                }
                out.push(format!("ACK largest={}", nums[0]));
            }
            0x06 => {
                let (Some((offset, a)), _) = (varint(p, at), ()) else {
                    return finish(out, "a cut CRYPTO");
                };
                let Some((len, b)) = varint(p, a) else {
                    return finish(out, "a cut CRYPTO");
                };
                let Some(data) = p.get(b..b + len as usize) else {
                    return finish(out, "a cut CRYPTO");
                };
                at = b + len as usize;
                let hello = match (offset, data.first()) {
                    (0, Some(1)) => client_hello(data),
                    (0, Some(2)) => " (ServerHello)".into(),
                    _ => String::new(),
                };
                out.push(format!("CRYPTO {offset}+{len}{hello}"));
            }
            0x1c | 0x1d => {
                out.push("CONNECTION_CLOSE".into());
                break;
            }
            other => return finish(out, &format!("frame type 0x{other:x}")),
        }
    }
    out.join(", ")
}

fn finish(mut out: Vec<String>, what: &str) -> String {
    out.push(format!("{what} (not read further)"));
    out.join(", ")
}

/// What a ClientHello at the start of the CRYPTO stream names: the server (SNI, RFC 6066 §3) and
/// the application protocols (ALPN, RFC 7301).
fn client_hello(d: &[u8]) -> String {
    let read = || -> Option<String> {
        if *d.first()? != 1 {
            return None;
        }
        let mut p = 4 + 2 + 32;
        p += 1 + usize::from(*d.get(p)?);
        p += 2 + usize::from(u16::from_be_bytes([*d.get(p)?, *d.get(p + 1)?]));
        p += 1 + usize::from(*d.get(p)?);
        let ext_end = p + 2 + usize::from(u16::from_be_bytes([*d.get(p)?, *d.get(p + 1)?]));
        p += 2;
        let (mut sni, mut alpn) = (None, Vec::new());
        while p + 4 <= ext_end.min(d.len()) {
            let kind = u16::from_be_bytes([d[p], d[p + 1]]);
            let len = usize::from(u16::from_be_bytes([d[p + 2], d[p + 3]]));
            let body = d.get(p + 4..p + 4 + len)?;
            match kind {
                0 => {
                    let n = usize::from(u16::from_be_bytes([*body.get(3)?, *body.get(4)?]));
                    sni = Some(String::from_utf8_lossy(body.get(5..5 + n)?).into_owned());
                }
                16 => {
                    let mut q = 2;
                    while q < body.len() {
                        let n = usize::from(body[q]);
                        alpn.push(String::from_utf8_lossy(body.get(q + 1..q + 1 + n)?).into_owned());
                        q += 1 + n;
                    }
                }
                _ => {}
            }
            p += 4 + len;
        }
        Some(format!(
            " (ClientHello, server name {}, ALPN {})",
            sni.as_deref().unwrap_or("none"),
            if alpn.is_empty() { "none".to_string() } else { alpn.join(" ") }
        ))
    };
    read().unwrap_or_else(|| " (a ClientHello cut short, or in pieces)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9001 Appendix A.1: both sides' Initial keys for the client's DCID 0x8394c8f03e515708.
    #[test]
    fn parses_the_rfc_9001_appendix_a_keys() {
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let (key, iv, hp) = initial_keys(&dcid, false);
        assert_eq!(hex(&key), "1f369613dd76d5467730efcbe3b1a22d");
        assert_eq!(hex(&iv), "fa044b2f42a3fd3b46fb255c");
        assert_eq!(hex(&hp), "9f50449e04a0e810283a1e9933adedd2");
        let (key, iv, hp) = initial_keys(&dcid, true);
        assert_eq!(hex(&key), "cf3a5331653c364c88f0f379b6067e37");
        assert_eq!(hex(&iv), "0ac1493ca1905853b0bba03e");
        assert_eq!(hex(&hp), "c206b8d9b9f0f37644430b490eeaa314");
    }

    #[test]
    fn parses_frames_and_a_client_hello() {
        let mut hello = vec![1, 0, 0, 0, 3, 3];
        hello.extend([0u8; 32]);
        hello.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
        let mut ext = vec![0, 0, 0, 14, 0, 12, 0, 0, 9];
        ext.extend(b"localhost");
        ext.extend([0, 16, 0, 5, 0, 3, 2, b'h', b'3']);
        hello.extend((ext.len() as u16).to_be_bytes());
        hello.extend(ext);
        let mut p = vec![0x06, 0x00];
        super::super::codec::put_varint(&mut p, hello.len() as u64);
        p.extend(&hello);
        p.extend([0x01, 0, 0, 0]);
        assert_eq!(
            frames(&p),
            "CRYPTO 0+74 (ClientHello, server name localhost, ALPN h3), PING, PADDING 3"
        );
    }
}
