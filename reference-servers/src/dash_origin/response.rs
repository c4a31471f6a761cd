//! Responses and how they go on the wire: always `HTTP/1.1` (RFC 9110 §2.5), always delimited
//! by Content-Length (none only on 204, RFC 9110 §8.6), file content streamed in bounded chunks.

use std::io::SeekFrom;
use std::time::SystemTime;

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::request::Conn;

/// Bytes read from a file per write: what one response holds in memory at most.
const FILE_CHUNK: usize = 64 * 1024;

/// What follows the head.
#[derive(Debug)]
pub(super) enum Body {
    /// No content and no Content-Length: 204 (RFC 9110 §8.6).
    None,
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// `len` bytes of an open file from offset `start`; Content-Length says `announced`, which
    /// only the fault `wrong-length` makes differ from `len`.
    File {
        /// The open file.
        file: File,
        /// Where the content starts in it.
        start: u64,
        /// How many bytes are sent.
        len: u64,
        /// What Content-Length says.
        announced: u64,
    },
}

/// A response before the connection-level fields are added.
#[derive(Debug)]
pub(super) struct Response {
    /// The status code; the reason phrase comes from `reason`.
    pub status: u16,
    /// Header fields besides Date, Server, Connection and Content-Length, which `send` adds.
    pub fields: Vec<(&'static str, String)>,
    /// The content.
    pub body: Body,
    /// Close the connection after this response without having said so (the faults
    /// `wrong-length` and `closes-silently`).
    pub hangs_up: bool,
}

impl Response {
    /// `status` with a one-line text/plain body naming it, like `404 Not Found\n`.
    pub(super) fn status(status: u16) -> Self {
        Response {
            status,
            fields: vec![("Content-Type", "text/plain; charset=utf-8".to_owned())],
            body: Body::Bytes(format!("{status} {}\n", reason(status)).into_bytes()),
            hangs_up: false,
        }
    }

    /// `status` with no content and no Content-Length.
    pub(super) fn empty(status: u16) -> Self {
        Response {
            status,
            fields: Vec::new(),
            body: Body::None,
            hangs_up: false,
        }
    }

    /// Adds a header field.
    pub(super) fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.fields.push((name, value.into()));
        self
    }
}

/// The reason phrase of every status this server sends.
pub(super) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The head of `response` as sent: status line, Date, Server, `connection` (the Connection
/// field's value, if any), the response's fields, Content-Length, the empty line.
pub(super) fn head(response: &Response, connection: Option<&str>) -> String {
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
        Body::File { announced, .. } => Some(*announced),
    };
    if let Some(length) = length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Sends `response`, its content only `with_content` (not for HEAD, RFC 9110 §9.3.2, where the
/// head is still the one GET would have).
pub(super) async fn send(conn: &mut Conn, response: Response, with_content: bool, connection: Option<&str>) -> std::io::Result<()> {
    let mut out = head(&response, connection).into_bytes();
    match response.body {
        Body::Bytes(bytes) if with_content => {
            out.extend_from_slice(&bytes);
            conn.write(&out).await
        }
        Body::File { file, start, len, .. } if with_content => {
            conn.write(&out).await?;
            send_file(conn, file, start, len).await
        }
        _ => conn.write(&out).await,
    }
}

/// Streams exactly `len` bytes of `file` from `start`; a file that shrank meanwhile is an
/// error, since Content-Length has already promised them.
async fn send_file(conn: &mut Conn, mut file: File, start: u64, len: u64) -> std::io::Result<()> {
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await?;
    }
    let mut chunk = vec![0u8; usize::try_from(len).unwrap_or(FILE_CHUNK).min(FILE_CHUNK)];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(FILE_CHUNK).min(chunk.len());
        let got = file.read(&mut chunk[..want]).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        conn.write(&chunk[..got]).await?;
        left -= got as u64;
    }
    Ok(())
}
