//! Key log files in the NSS format (`SSLKEYLOGFILE`): one secret per line, `LABEL <client random
//! hex> <secret hex>`. TLS 1.2 needs `CLIENT_RANDOM` (the master secret); TLS 1.3 the handshake
//! and first application traffic secrets of each side. QUIC's packet protection derives from the
//! same TLS 1.3 secrets, so its decoder reads the same log.
//!
//! Lines starting with `#` and blank lines are comments; labels this decoder has no use for
//! (`CLIENT_EARLY_TRAFFIC_SECRET`, `EXPORTER_SECRET`, `RSA`, ...) are skipped.

use std::collections::HashMap;

/// The secrets a key log names, by label and client random.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLog {
    secrets: HashMap<(Label, [u8; 32]), Vec<u8>>,
    /// What TLS on a server port carries, from `# wirecheck: port N carries PROTO` comments (a
    /// live capture's key log says so for protocols with no ALPN id and no port of their own).
    carried: Vec<(u16, String)>,
}

/// The comment a key log names what a port's TLS carries with: `# wirecheck: port 2525 carries smtp`.
pub fn carried_comment(port: u16, protocol: &str) -> String {
    format!("# wirecheck: port {port} carries {protocol}\n")
}

/// A secret's label, the kind of key it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// TLS 1.2 (and earlier): the 48-byte master secret.
    ClientRandom,
    /// TLS 1.3 `CLIENT_HANDSHAKE_TRAFFIC_SECRET`.
    ClientHandshake,
    /// TLS 1.3 `SERVER_HANDSHAKE_TRAFFIC_SECRET`.
    ServerHandshake,
    /// TLS 1.3 `CLIENT_TRAFFIC_SECRET_0`.
    ClientTraffic0,
    /// TLS 1.3 `SERVER_TRAFFIC_SECRET_0`.
    ServerTraffic0,
    /// TLS 1.3 `CLIENT_EARLY_TRAFFIC_SECRET` (0-RTT; QUIC's early packets).
    ClientEarly,
}

impl Label {
    /// The label as a key log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::ClientRandom => "CLIENT_RANDOM",
            Label::ClientHandshake => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            Label::ServerHandshake => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            Label::ClientTraffic0 => "CLIENT_TRAFFIC_SECRET_0",
            Label::ServerTraffic0 => "SERVER_TRAFFIC_SECRET_0",
            Label::ClientEarly => "CLIENT_EARLY_TRAFFIC_SECRET",
        }
    }

    fn parse(s: &str) -> Option<Label> {
        [
            Label::ClientRandom,
            Label::ClientHandshake,
            Label::ServerHandshake,
            Label::ClientTraffic0,
            Label::ServerTraffic0,
            Label::ClientEarly,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// A key log line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key log line {line}: {reason}")]
pub struct KeyLogError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Longest secret accepted (SHA-384's output is 48 bytes; a key log line with more is no secret).
const MAX_SECRET: usize = 64;

impl KeyLog {
    /// Reads a key log's text; a line that is not `LABEL <64 hex digits> <hex secret>` (for a
    /// label this decoder uses) is an error naming its line.
    /// What TLS on server port `port` carries, if the key log says.
    pub fn carried_on(&self, port: u16) -> Option<&str> {
        self.carried.iter().find(|(n, _)| *n == port).map(|(_, p)| p.as_str())
    }

    /// Parses a key log; comments are skipped, except those naming what a port carries.
    pub fn parse(text: &str) -> Result<KeyLog, KeyLogError> {
        let mut log = KeyLog::default();
        log.extend(text)?;
        Ok(log)
    }

    /// Adds the secrets of another key log's text (a capture file may hold several).
    pub fn extend(&mut self, text: &str) -> Result<(), KeyLogError> {
        for (i, raw) in text.lines().enumerate() {
            let l = raw.trim();
            if let Some((port, proto)) = l
                .strip_prefix("# wirecheck: port ")
                .and_then(|r| r.split_once(" carries "))
                .and_then(|(n, p)| Some((n.parse::<u16>().ok()?, p.trim())))
            {
                if crate::proto::find(proto).is_some() && !self.carried.iter().any(|(n, _)| *n == port) {
                    self.carried.push((port, proto.to_string()));
                }
                continue;
            }
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let err = |reason: String| KeyLogError { line: i + 1, reason };
            let mut parts = l.split_ascii_whitespace();
            let (Some(label), Some(random), Some(secret), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                return Err(err(format!(
                    "expected 'LABEL CLIENT_RANDOM SECRET', got \"{}\"",
                    crate::proto::escape_bytes(l.as_bytes(), 80)
                )));
            };
            let Some(label) = Label::parse(label) else { continue };
            let random: [u8; 32] = hex(random)
                .and_then(|r| r.try_into().ok())
                .ok_or_else(|| err(format!("the client random of {} is not 32 bytes of hex", label.as_str())))?;
            let secret = hex(secret)
                .filter(|s| !s.is_empty() && s.len() <= MAX_SECRET)
                .ok_or_else(|| err(format!("the secret of {} is not hex of at most {MAX_SECRET} bytes", label.as_str())))?;
            if label == Label::ClientRandom && secret.len() != 48 {
                return Err(err(format!("a CLIENT_RANDOM master secret is 48 bytes, not {}", secret.len())));
            }
            self.secrets.insert((label, random), secret);
        }
        Ok(())
    }

    /// The secret labelled `label` for the connection whose ClientHello carried `client_random`.
    pub fn get(&self, label: Label, client_random: &[u8; 32]) -> Option<&[u8]> {
        self.secrets.get(&(label, *client_random)).map(Vec::as_slice)
    }

    /// One key log line, as an NSS key log (and rustls's `KeyLog`) writes it.
    pub fn line(label: &str, client_random: &[u8], secret: &[u8]) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        format!("{label} {} {}\n", hex(client_random), hex(secret))
    }

    /// How many secrets it holds.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "0102030405060708091011121314151617181920212223242526272829303132";

    #[test]
    fn parses_labels_skipping_comments_and_unknown_labels() {
        let text = format!(
            "# a comment\n\nCLIENT_RANDOM {R} {}\nEXPORTER_SECRET {R} aa\nSERVER_TRAFFIC_SECRET_0 {R} {}\n",
            "ab".repeat(48),
            "cd".repeat(32)
        );
        let log = KeyLog::parse(&text).unwrap();
        assert_eq!(log.len(), 2);
        let r: [u8; 32] = hex(R).unwrap().try_into().unwrap();
        assert_eq!(log.get(Label::ClientRandom, &r), Some(&[0xab; 48][..]));
        assert_eq!(log.get(Label::ServerTraffic0, &r), Some(&[0xcd; 32][..]));
        assert_eq!(log.get(Label::ClientTraffic0, &r), None);
        let again = KeyLog::parse(&KeyLog::line("CLIENT_RANDOM", &r, &[0xab; 48])).unwrap();
        assert_eq!(again.get(Label::ClientRandom, &r), Some(&[0xab; 48][..]));
    }

    #[test]
    fn rejects_a_bad_line_with_its_number() {
        let e = KeyLog::parse(&format!("# ok\nCLIENT_RANDOM {R} {}\nCLIENT_RANDOM zz 00\n", "00".repeat(48))).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("client random"), "{e}");
        let e = KeyLog::parse("CLIENT_RANDOM only-two").unwrap_err();
        assert_eq!(e.line, 1);
        let e = KeyLog::parse(&format!("CLIENT_RANDOM {R} {}", "00".repeat(32))).unwrap_err();
        assert!(e.reason.contains("48 bytes"), "{e}");
    }
}
