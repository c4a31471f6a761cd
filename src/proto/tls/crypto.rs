//! Record protection for decrypting captures: the TLS 1.2 key block (RFC 5246 §6.3, the PRF of
//! §5) for the AEAD suites (AES-GCM, RFC 5288; ChaCha20-Poly1305, RFC 7905), and TLS 1.3's
//! traffic keys (RFC 8446 §7.1-§7.3, §5.2-§5.3). Everything goes through `ring`.

use ring::{aead, hkdf, hmac};

/// The hash a suite's PRF or HKDF uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
}

impl Hash {
    fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha384 => hmac::HMAC_SHA384,
        }
    }
    fn hkdf(self) -> hkdf::Algorithm {
        match self {
            Hash::Sha256 => hkdf::HKDF_SHA256,
            Hash::Sha384 => hkdf::HKDF_SHA384,
        }
    }
}

/// The AEAD a suite protects records with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    Chacha20,
}

impl Cipher {
    fn alg(self) -> &'static aead::Algorithm {
        match self {
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::Chacha20 => &aead::CHACHA20_POLY1305,
        }
    }
    fn key_len(self) -> usize {
        self.alg().key_len()
    }
    /// TLS 1.2's fixed IV: GCM's 4-byte salt (RFC 5288 §3), ChaCha's whole 12-byte IV (RFC 7905 §2).
    fn tls12_iv_len(self) -> usize {
        match self {
            Cipher::Chacha20 => 12,
            _ => 4,
        }
    }
}

/// What decrypting a suite needs: its AEAD and hash, if this decoder supports it.
pub fn suite_crypto(id: u16) -> Option<(Cipher, Hash)> {
    Some(match id {
        0x1301 => (Cipher::Aes128Gcm, Hash::Sha256),
        0x1302 => (Cipher::Aes256Gcm, Hash::Sha384),
        0x1303 => (Cipher::Chacha20, Hash::Sha256),
        0x009c | 0x009e | 0x00a0 | 0x00a2 | 0x00a4 | 0x00a6 | 0xc02b | 0xc02d | 0xc02f | 0xc031 => (Cipher::Aes128Gcm, Hash::Sha256),
        0x009d | 0x009f | 0x00a1 | 0x00a3 | 0x00a5 | 0x00a7 | 0xc02c | 0xc02e | 0xc030 | 0xc032 => (Cipher::Aes256Gcm, Hash::Sha384),
        0xcca8..=0xccae => (Cipher::Chacha20, Hash::Sha256),
        _ => return None,
    })
}

/// The TLS 1.2 PRF (RFC 5246 §5): P_hash(secret, label + seed), `len` bytes.
pub fn prf(hash: Hash, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let key = hmac::Key::new(hash.hmac(), secret);
    let mut label_seed = label.to_vec();
    label_seed.extend_from_slice(seed);
    let mut out = Vec::with_capacity(len + hash.len());
    // A(1) = HMAC(secret, seed), A(i) = HMAC(secret, A(i-1)).
    let mut a = hmac::sign(&key, &label_seed);
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(a.as_ref());
        ctx.update(&label_seed);
        out.extend_from_slice(ctx.sign().as_ref());
        a = hmac::sign(&key, a.as_ref());
    }
    out.truncate(len);
    out
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
pub fn expand_label(hash: Hash, secret: &[u8], label: &[u8], len: usize) -> Vec<u8> {
    let prk = hkdf::Prk::new_less_safe(hash.hkdf(), secret);
    let length = (len as u16).to_be_bytes();
    let label_len = [(6 + label.len()) as u8];
    let info: [&[u8]; 5] = [&length, &label_len, b"tls13 ", label, &[0]];
    let mut out = vec![0; len];
    // The lengths are a hash's or a key's: within HKDF's 255 × hash limit.
    if let Ok(okm) = prk.expand(&info, Len(len)) {
        let _ = okm.fill(&mut out);
    }
    out
}

/// How the nonce and additional data of a record are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// TLS 1.2 GCM: a 4-byte salt and the record's 8-byte explicit nonce.
    Tls12Explicit,
    /// TLS 1.2 ChaCha20: the IV XOR the sequence number, no explicit nonce.
    Tls12Xor,
    /// TLS 1.3: the IV XOR the sequence number; the record header is the additional data.
    Tls13,
}

/// One direction's record keys and sequence number.
pub struct Decrypter {
    key: aead::LessSafeKey,
    iv: Vec<u8>,
    seq: u64,
    mode: Mode,
    cipher: Cipher,
    hash: Hash,
    /// TLS 1.3: the traffic secret, for KeyUpdate.
    secret: Vec<u8>,
}

/// A record that did not decrypt: the keys are not this connection's, or the record was altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRecord;

impl Decrypter {
    /// TLS 1.2: the client's and the server's decrypters from the master secret (RFC 5246 §6.3).
    pub fn tls12(suite: u16, master: &[u8], client_random: &[u8; 32], server_random: &[u8; 32]) -> Option<(Decrypter, Decrypter)> {
        let (cipher, hash) = suite_crypto(suite)?;
        if (0x1301..=0x1303).contains(&suite) {
            return None;
        }
        let (k, iv) = (cipher.key_len(), cipher.tls12_iv_len());
        let mut seed = server_random.to_vec();
        seed.extend_from_slice(client_random);
        let block = prf(hash, master, b"key expansion", &seed, 2 * k + 2 * iv);
        let (ck, rest) = block.split_at(k);
        let (sk, rest) = rest.split_at(k);
        let (civ, siv) = rest.split_at(iv);
        let mode = match cipher {
            Cipher::Chacha20 => Mode::Tls12Xor,
            _ => Mode::Tls12Explicit,
        };
        let make = |key: &[u8], iv: &[u8]| -> Option<Decrypter> {
            Some(Decrypter {
                key: aead::LessSafeKey::new(aead::UnboundKey::new(cipher.alg(), key).ok()?),
                iv: iv.to_vec(),
                seq: 0,
                mode,
                cipher,
                hash,
                secret: Vec::new(),
            })
        };
        Some((make(ck, civ)?, make(sk, siv)?))
    }

    /// TLS 1.3: a decrypter from a traffic secret (RFC 8446 §7.3).
    pub fn tls13(suite: u16, secret: &[u8]) -> Option<Decrypter> {
        let (cipher, hash) = suite_crypto(suite)?;
        if !(0x1301..=0x1303).contains(&suite) || secret.len() != hash.len() {
            return None;
        }
        let key = expand_label(hash, secret, b"key", cipher.key_len());
        let iv = expand_label(hash, secret, b"iv", 12);
        Some(Decrypter {
            key: aead::LessSafeKey::new(aead::UnboundKey::new(cipher.alg(), &key).ok()?),
            iv,
            seq: 0,
            mode: Mode::Tls13,
            cipher,
            hash,
            secret: secret.to_vec(),
        })
    }

    /// TLS 1.3 KeyUpdate: the next generation of this direction's traffic secret (RFC 8446 §7.2).
    pub fn update(&self, suite: u16) -> Option<Decrypter> {
        let next = expand_label(self.hash, &self.secret, b"traffic upd", self.hash.len());
        Decrypter::tls13(suite, &next)
    }

    fn xor_nonce(&self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n.copy_from_slice(&self.iv[..12]);
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    /// Decrypts one record (`header` its 5 bytes as sent, `body` its fragment): the content type
    /// and the plaintext. TLS 1.3's inner type is read after its zero padding.
    pub fn open(&mut self, header: &[u8; 5], body: &[u8]) -> Result<(u8, Vec<u8>), BadRecord> {
        let tag = self.cipher.alg().tag_len();
        let (nonce, cipher_text, aad): ([u8; 12], &[u8], Vec<u8>) = match self.mode {
            Mode::Tls13 => (self.xor_nonce(), body, header.to_vec()),
            Mode::Tls12Explicit | Mode::Tls12Xor => {
                let explicit = if self.mode == Mode::Tls12Explicit { 8 } else { 0 };
                if body.len() < explicit + tag {
                    return Err(BadRecord);
                }
                let nonce = match self.mode {
                    Mode::Tls12Explicit => {
                        let mut n = [0u8; 12];
                        n[..4].copy_from_slice(&self.iv[..4]);
                        n[4..].copy_from_slice(&body[..8]);
                        n
                    }
                    _ => self.xor_nonce(),
                };
                // RFC 5246 §6.2.3.3: seq_num + type + version + the plaintext's length.
                let mut aad = self.seq.to_be_bytes().to_vec();
                aad.extend_from_slice(&header[..3]);
                aad.extend_from_slice(&((body.len() - explicit - tag) as u16).to_be_bytes());
                (nonce, &body[explicit..], aad)
            }
        };
        if cipher_text.len() < tag {
            return Err(BadRecord);
        }
        let mut buf = cipher_text.to_vec();
        let plain = self
            .key
            .open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad), &mut buf)
            .map_err(|_| BadRecord)?;
        let n = plain.len();
        buf.truncate(n);
        self.seq += 1;
        match self.mode {
            Mode::Tls13 => {
                // RFC 8446 §5.4: the content type is the last non-zero byte.
                let Some(at) = buf.iter().rposition(|&b| b != 0) else {
                    return Err(BadRecord);
                };
                let ty = buf[at];
                buf.truncate(at);
                Ok((ty, buf))
            }
            _ => Ok((header[0], buf)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn parses_the_tls12_prf_test_vector() {
        // The SHA-256 PRF vector published for TLS 1.2 implementers (mailing list, 2009).
        let out = prf(
            Hash::Sha256,
            &unhex("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35"),
            b"test label",
            &unhex("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c"),
            100,
        );
        assert_eq!(out[..16], unhex("e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53")[..],);
    }

    #[test]
    fn parses_rfc8448_server_handshake_keys() {
        // RFC 8448 §3 (simple 1-RTT handshake): the server handshake traffic secret and its key and IV.
        let secret = unhex("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38");
        assert_eq!(
            expand_label(Hash::Sha256, &secret, b"key", 16),
            unhex("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc")
        );
        assert_eq!(
            expand_label(Hash::Sha256, &secret, b"iv", 12),
            unhex("5d 31 3e b2 67 12 76 ee 13 00 0b 30")
        );
    }
}
