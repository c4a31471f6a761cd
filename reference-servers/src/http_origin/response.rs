//! Responses and how they go on the wire: always `HTTP/1.1` (RFC 9110 §2.5),
//! always delimited by Content-Length, never chunked.

use std::time::SystemTime;

use tokio::fs::File;
use tokio::io::AsyncReadExt;

use super::request::Conn;

/// Bytes read from a file per write.
const FILE_CHUNK: usize = 64 * 1024;

/// What follows the head.
#[derive(Debug)]
pub(super) enum Body {
    /// No content and no Content-Length: 204 and 304 (RFC 9110 §8.6).
    None,
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// An open file and the length promised in Content-Length.
    File(File, u64),
}

/// A response before the connection-level headers are added.
#[derive(Debug)]
pub(super) struct Response {
    /// The status code; the reason phrase comes from `reason`.
    pub status: u16,
    /// Header fields besides Date, Server, Connection and Content-Length, which `send` adds.
    pub fields: Vec<(&'static str, String)>,
    /// The content.
    pub body: Body,
}

impl Response {
    /// `status` with a one-line text/plain body naming it, like `404 Not Found\n`.
    pub(super) fn status(status: u16) -> Self {
        Response::text(status, format!("{status} {}\n", reason(status)))
    }

    /// `status` with a text/plain body.
    pub(super) fn text(status: u16, text: impl Into<String>) -> Self {
        Response {
            status,
            fields: vec![("Content-Type", "text/plain; charset=utf-8".to_owned())],
            body: Body::Bytes(text.into().into_bytes()),
        }
    }

    /// `status` with no body at all.
    pub(super) fn empty(status: u16) -> Self {
        Response {
            status,
            fields: Vec::new(),
            body: Body::None,
        }
    }

    /// Adds a header field.
    pub(super) fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.fields.push((name, value.into()));
        self
    }

    /// A client that sent a malformed target gets no second chance on this
    /// connection, like one whose head was malformed.
    pub(super) fn closes(&self) -> bool {
        self.status == 400
    }
}

/// The reason phrase of every status this server sends.
pub(super) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Sends `response`; with `head_only` (HEAD) the head is the same, body left out
/// (RFC 9110 §9.3.2). `connection` is the Connection field value, if any.
pub(super) async fn send(conn: &mut Conn, response: Response, head_only: bool, connection: Option<&str>) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nDate: {}\r\nServer: wirecheck-reference\r\n",
        response.status,
        reason(response.status),
        httpdate::fmt_http_date(SystemTime::now())
    );
    if let Some(connection) = connection {
        head.push_str(&format!("Connection: {connection}\r\n"));
    }
    for (name, value) in &response.fields {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let length = match &response.body {
        Body::None => None,
        Body::Bytes(bytes) => Some(bytes.len() as u64),
        Body::File(_, len) => Some(*len),
    };
    if let Some(length) = length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    match response.body {
        Body::Bytes(bytes) if !head_only => {
            out.extend_from_slice(&bytes);
            conn.write(&out).await
        }
        Body::File(file, len) if !head_only => {
            conn.write(&out).await?;
            send_file(conn, file, len).await
        }
        _ => conn.write(&out).await,
    }
}

/// Streams exactly `len` bytes of `file`; a file that shrank meanwhile is an
/// error, since Content-Length has already promised `len`.
async fn send_file(conn: &mut Conn, mut file: File, len: u64) -> std::io::Result<()> {
    let mut chunk = vec![0u8; FILE_CHUNK];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(FILE_CHUNK).min(FILE_CHUNK);
        let got = file.read(&mut chunk[..want]).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        conn.write(&chunk[..got]).await?;
        left -= got as u64;
    }
    Ok(())
}
