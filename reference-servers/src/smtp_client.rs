//! `smtp-client`: the textbook's "SMTP Mail Client" lab, done right.
//!
//! ```python
//! clientSocket.connect(mailserver)
//! recv = clientSocket.recv(1024).decode()        # expect 220
//! clientSocket.send('HELO Alice\r\n'.encode())   # expect 250
//! ... MAIL FROM, RCPT TO, DATA, the message, '\r\n.\r\n', QUIT
//! ```
//!
//! Unlike that sketch, a reply is read whole: lines until one whose fourth
//! character is a space (RFC 5321 §4.2.1), however the server splits it across
//! segments or lines; the message is sent with CRLF line endings and its
//! lines starting with "." are dot-stuffed (§4.5.2); any unexpected reply ends
//! the session politely (QUIT) with exit code 1; and every read is bounded by
//! `timeout`. Each reply line is printed as `S: <line>`.
//!
//! With `tls_ca` (the PEM file of the CA to trust) the session is SMTPS,
//! implicit TLS from the first byte (RFC 8314 §3.3), to the server `localhost`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::timeout;

use crate::tls::{self, ClientStream};
use crate::{parse_duration, Error, OptionSet, Options};

/// The name suites and the CLI use for this client.
pub(crate) const NAME: &str = "smtp-client";
const OPTIONS: &[&str] = &["message", "timeout", tls::CA];

/// The default message, relative to the current directory.
const DEFAULT_MESSAGE: &str = "fixtures/mail/outgoing.txt";
/// The repository's message, for a default message when run from elsewhere (e.g. `cargo test`).
const CHECKOUT_MESSAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/mail/outgoing.txt");
/// A bigger message file is a mistake, not a message.
const MAX_MESSAGE: u64 = 10 << 20;
/// A reply line longer than this is not SMTP (RFC 5321 §4.5.3.1.5 allows 512).
const MAX_REPLY_LINE: usize = 4096;
/// A reply with more lines than this is not SMTP either.
const MAX_REPLY_LINES: usize = 1000;

const HELO: &str = "HELO crepes.fr";
const MAIL_FROM: &str = "MAIL FROM:<alice@crepes.fr>";
const RCPT_TO: &str = "RCPT TO:<bob@hamburger.edu>";

/// Runs the client; 0 when the message was accepted and the session closed normally.
pub(crate) async fn run(server: SocketAddr, opts: &Options, out: UnboundedSender<String>) -> Result<i32, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let wait = opts.get("timeout", "10s", parse_duration)?;
    let message = match opts.given("message") {
        Some(path) => opts.parse("message", path, |p| read_message(Path::new(p)))?,
        None => read_message(Path::new(DEFAULT_MESSAGE))
            .or_else(|_| read_message(Path::new(CHECKOUT_MESSAGE)))
            .map_err(|why| Error::BadOption {
                server: NAME.to_owned(),
                key: "message".to_owned(),
                value: DEFAULT_MESSAGE.to_owned(),
                why,
            })?,
    };
    let tls = tls::client_options(&opts, &[])?;
    // A closed output channel only means nobody is listening any more.
    let print = |line: String| {
        let _ = out.send(line);
    };
    let stream = match ClientStream::connect(server, tls.as_ref(), wait).await {
        Ok(stream) => stream,
        Err(why) => {
            print(format!("error: {why}"));
            return Ok(1);
        }
    };
    let mut client = Client {
        stream,
        wait,
        buf: Vec::new(),
        print: &print,
    };
    match client.session(&message).await {
        Ok(()) => Ok(0),
        Err(Failure::Reply(reply)) => {
            print(format!("error: {reply}"));
            // RFC 5321 §4.1.1.10 / §3.8: end the session properly rather than just hanging up.
            if client.send(b"QUIT\r\n").await.is_ok() {
                let _ = client.reply().await;
            }
            Ok(1)
        }
        Err(Failure::Connection(why)) => {
            print(format!("error: {why}"));
            Ok(1)
        }
    }
}

/// The message file with CRLF line endings and dot-stuffing, followed by the
/// terminating ".": exactly the bytes to send after the 354.
fn read_message(path: &Path) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the message file: {e}"))?
        .len();
    if size > MAX_MESSAGE {
        return Err(format!("the message file is over {MAX_MESSAGE} bytes"));
    }
    let text = std::fs::read(path).map_err(|e| format!("cannot read the message file: {e}"))?;
    let text = text.strip_suffix(b"\n").unwrap_or(&text);
    let mut data = Vec::with_capacity(text.len() + text.len() / 32 + 8);
    if !text.is_empty() {
        for line in text.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
            data.extend_from_slice(b"\r\n");
        }
    }
    data.extend_from_slice(b".\r\n");
    Ok(data)
}

/// Why the session ended early.
enum Failure {
    /// The server answered with a code the client did not expect (the reply's last line).
    Reply(String),
    /// The connection broke, timed out, or carried something that is not an SMTP reply.
    Connection(String),
}

struct Client<'p> {
    stream: ClientStream,
    wait: Duration,
    buf: Vec<u8>,
    print: &'p (dyn Fn(String) + Sync),
}

impl Client<'_> {
    async fn session(&mut self, message: &[u8]) -> Result<(), Failure> {
        self.expect(&[220]).await?;
        // RFC 5321 §4.3.2: 251 (not local, will forward) is a success for RCPT too.
        for (command, codes) in [(HELO, &[250][..]), (MAIL_FROM, &[250]), (RCPT_TO, &[250, 251]), ("DATA", &[354])] {
            self.send(format!("{command}\r\n").as_bytes()).await?;
            self.expect(codes).await?;
        }
        self.send(message).await?;
        self.expect(&[250]).await?;
        self.send(b"QUIT\r\n").await?;
        self.expect(&[221]).await
    }

    async fn expect(&mut self, codes: &[u16]) -> Result<(), Failure> {
        let (got, last) = self.reply().await?;
        if codes.contains(&got) {
            Ok(())
        } else {
            Err(Failure::Reply(last))
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        match timeout(self.wait, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Connection(format!("cannot send: {e}"))),
            Err(_) => Err(Failure::Connection(format!("could not send within {:?}", self.wait))),
        }
    }

    /// Reads one whole reply, printing each line; returns its code and last line.
    async fn reply(&mut self) -> Result<(u16, String), Failure> {
        for _ in 0..MAX_REPLY_LINES {
            let line = self.line().await?;
            (self.print)(format!("S: {line}"));
            let code = line.get(..3).filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
            let Some(code) = code.and_then(|c| c.parse::<u16>().ok()) else {
                return Err(Failure::Connection(format!("not an SMTP reply: {line:?}")));
            };
            match line.as_bytes().get(3) {
                None | Some(b' ') => return Ok((code, line)),
                Some(b'-') => continue,
                Some(_) => return Err(Failure::Connection(format!("not an SMTP reply: {line:?}"))),
            }
        }
        Err(Failure::Connection(format!("a reply of more than {MAX_REPLY_LINES} lines")))
    }

    /// One reply line without its CRLF (a bare LF is tolerated), each read bounded by `timeout`.
    async fn line(&mut self) -> Result<String, Failure> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                let text = raw.strip_suffix(b"\n").unwrap_or(&raw);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                return Ok(String::from_utf8_lossy(text).into_owned());
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(Failure::Connection(format!("a reply line longer than {MAX_REPLY_LINE} bytes")));
            }
            self.buf.reserve(4096);
            match timeout(self.wait, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) => return Err(Failure::Connection("the server closed the connection".to_owned())),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Failure::Connection(format!("cannot receive: {e}"))),
                Err(_) => return Err(Failure::Connection(format!("no reply within {:?}", self.wait))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_crlf_and_dot_stuffed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.txt");
        std::fs::write(&path, "Subject: x\n\n.a\r\n..\nb\n").expect("write");
        assert_eq!(read_message(&path).expect("read"), b"Subject: x\r\n\r\n..a\r\n...\r\nb\r\n.\r\n");
        std::fs::write(&path, "").expect("write");
        assert_eq!(read_message(&path).expect("read"), b".\r\n");
    }
}
