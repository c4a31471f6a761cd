//! The origin side: reading the absolute-form target (RFC 9112 §3.2.2) and
//! one request/response exchange per origin connection.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::{lookup_host, TcpStream};
use tokio::time::{timeout_at, Instant};

use super::allow::Allow;
use super::message::{
    end_to_end, field, parse_response_head, response_framing, write_head, Conn, ReadError, Request, Response, MAX_BODY, TRANSFER_LIMIT,
};
use super::VIA_NAME;
use crate::guard::Stream;

/// Where an absolute-form request goes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Target {
    /// Host to connect to: a name, an IPv4 address, or an IPv6 address without brackets.
    host: String,
    /// TCP port (80 unless given).
    port: u16,
    /// The Host field value: the URI's authority as written.
    authority: String,
    /// origin-form: absolute path and query.
    path: String,
}

impl Target {
    /// Reads `target` of a request with `method`; on failure, the status code and why.
    pub fn parse(method: &str, target: &str) -> Result<Target, (u16, &'static str)> {
        if method == "CONNECT" {
            return Err((501, "CONNECT (tunnelling) is not supported"));
        }
        if target.starts_with('/') {
            return Err((400, "a proxy needs the absolute URI (absolute-form, RFC 9112 section 3.2.2)"));
        }
        let Some((scheme, rest)) = target.split_once("://") else {
            return Err((400, "request-target is not an absolute http URI"));
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err((501, "https is not supported (it needs CONNECT)"));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err((400, "only http URIs are supported"));
        }
        // The fragment is never sent (RFC 9110 §4.2.1); strip it if a client did.
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err((400, "userinfo in an http URI is not allowed (RFC 9110 section 4.2.4)"));
        }
        let (host, port) = split_host_port(authority).ok_or((400, "bad host or port in the URI"))?;
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        let authority = match authority.strip_suffix(':') {
            Some(bare) => bare.to_owned(),
            None => authority.to_owned(),
        };
        Ok(Target {
            host: host.to_owned(),
            port,
            authority,
            path,
        })
    }

    /// The cache key: the URI normalized (RFC 9110 §4.2.3) with the port always written out.
    pub fn cache_key(&self) -> String {
        let host = self.host.to_ascii_lowercase();
        if host.contains(':') {
            format!("http://[{host}]:{}{}", self.port, self.path)
        } else {
            format!("http://{host}:{}{}", self.port, self.path)
        }
    }
}

/// `host[:port]` or `[v6][:port]` → (host without brackets, port).
fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return None;
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let name_char = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        if host.is_empty() || !host.bytes().all(name_char) {
            return None;
        }
        (host, port)
    };
    let port = match port {
        None | Some("") => 80,
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => digits.parse().ok().filter(|&p| p != 0)?,
        Some(_) => return None,
    };
    Some((host, port))
}

/// A response from the origin and when it was asked for and arrived (for the age of §4.2.3).
#[derive(Debug)]
pub(super) struct Exchange {
    /// The response, hop-by-hop fields removed, a Date added if it had none.
    pub response: Response,
    /// When the request was about to be sent.
    pub request_time: SystemTime,
    /// When the response head arrived.
    pub response_time: SystemTime,
}

/// Why the origin gave no usable response.
#[derive(Debug)]
pub(super) enum Gateway {
    /// Could not connect (refused, unresolvable...).
    Unreachable(String),
    /// The target is not somewhere this proxy forwards to: why, for a 403.
    Forbidden(String),
    /// No response head, or not the whole body, in time.
    Timeout,
    /// The origin's response is not HTTP or was cut short.
    Bad(&'static str),
}

/// Sends `request` (plus the `conditions` header fields) to `target` over a
/// new connection and reads the response; the connect, the request and the
/// response head must all fit in `wait`. The target's addresses must all be
/// ones `allow` permits, or nothing is sent.
pub(super) async fn exchange(
    target: &Target,
    request: &Request,
    conditions: &[(&str, Vec<u8>)],
    wait: Duration,
    allow: &Allow,
) -> Result<Exchange, Gateway> {
    let deadline = Instant::now() + wait;
    let request_time = SystemTime::now();
    let addresses = match timeout_at(deadline, lookup_host((target.host.as_str(), target.port))).await {
        Ok(Ok(addresses)) => addresses.collect::<Vec<_>>(),
        Ok(Err(e)) => return Err(Gateway::Unreachable(format!("{}:{}: {e}", target.host, target.port))),
        Err(_) => return Err(Gateway::Timeout),
    };
    // Every address must pass, not just one: which one a connect would use is
    // up to the resolver's order, and a name half pointing elsewhere is refused whole.
    if let Some(outside) = addresses.iter().find(|address| !allow.permits(address.ip())) {
        let named = if target.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip == outside.ip()) {
            format!("{} is not one of them", outside.ip())
        } else {
            format!("{} is {}, which is not one of them", target.host, outside.ip())
        };
        return Err(Gateway::Forbidden(format!("{}; {named}", allow.describe())));
    }
    // Connecting to the addresses just checked, not to the name: resolving
    // it again could give an address that was never checked.
    let stream = match timeout_at(deadline, TcpStream::connect(&addresses[..])).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(Gateway::Unreachable(format!("{}:{}: {e}", target.host, target.port))),
        Err(_) => return Err(Gateway::Timeout),
    };
    let mut origin = Conn::new(Stream::plain(stream), wait);
    // A failed write is not the end: the origin may have answered early
    // (e.g. 413) and closed; reading tells.
    if let Err(ReadError::Timeout) = origin.send(&origin_form(request, target, conditions), deadline).await {
        return Err(Gateway::Timeout);
    }
    let mut head = read_final_head(&mut origin, deadline).await?;
    let response_time = SystemTime::now();
    let framing = response_framing(&request.method, head.status, &head.headers).map_err(gateway)?;
    let body = origin
        .read_body(framing, Instant::now() + TRANSFER_LIMIT, MAX_BODY)
        .await
        .map_err(gateway)?;
    head.headers = end_to_end(&head.headers);
    if field(&head.headers, "date").is_none() {
        // RFC 9110 §6.6.1: a recipient with a clock adds the Date it received the response at.
        head.headers
            .push(("Date".to_owned(), httpdate::fmt_http_date(response_time).into_bytes()));
    }
    head.body = Arc::from(body);
    Ok(Exchange {
        response: head,
        request_time,
        response_time,
    })
}

/// Skips interim 1xx responses: the client's `100-continue` was answered by the proxy already.
async fn read_final_head(origin: &mut Conn, deadline: Instant) -> Result<Response, Gateway> {
    loop {
        let head = match origin.read_head(deadline, parse_response_head).await {
            Ok(Some(head)) => head,
            Ok(None) => return Err(Gateway::Bad("the origin closed the connection without a response")),
            Err(e) => return Err(gateway(e)),
        };
        match head.status {
            // Upgrade was not forwarded, so switching protocols is a protocol error.
            101 => return Err(Gateway::Bad("unexpected 101 Switching Protocols")),
            100..=199 => continue,
            _ => return Ok(head),
        }
    }
}

fn gateway(error: ReadError) -> Gateway {
    match error {
        ReadError::Timeout => Gateway::Timeout,
        ReadError::Closed => Gateway::Bad("the origin closed the connection mid-response"),
        ReadError::TooLarge => Gateway::Bad("the origin's response head or body is too large"),
        ReadError::Malformed(why) => Gateway::Bad(why),
        ReadError::UnknownCoding => Gateway::Bad("the origin used a transfer coding other than chunked"),
    }
}

/// The request in origin-form: Host from the URI, end-to-end fields,
/// `conditions`, Via, a Content-Length for the (de-chunked) body, and
/// `Connection: close` since each origin connection carries one exchange.
fn origin_form(request: &Request, target: &Target, conditions: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let fields = end_to_end(&request.headers);
    let passed = fields
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length"))
        .map(|(name, value)| (name.as_str(), value.as_slice()));
    let via = format!("1.{} {VIA_NAME}", request.minor);
    let length = request.body.as_ref().map(|body| body.len().to_string());
    let mut out = Vec::new();
    write_head(
        &mut out,
        &format!("{} {} HTTP/1.1", request.method, target.path),
        std::iter::once(("Host", target.authority.as_bytes()))
            .chain(passed)
            .chain(conditions.iter().map(|(name, value)| (*name, value.as_slice())))
            .chain([("Via", via.as_bytes())])
            .chain(length.iter().map(|n| ("Content-Length", n.as_bytes())))
            .chain([("Connection", &b"close"[..])]),
    );
    out.extend_from_slice(b"\r\n");
    if let Some(body) = &request.body {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, port: u16, authority: &str, path: &str) -> Target {
        Target {
            host: host.into(),
            port,
            authority: authority.into(),
            path: path.into(),
        }
    }

    #[test]
    fn absolute_form_targets() {
        let t = Target::parse("GET", "http://127.0.0.1:8080/path?q=1").unwrap();
        assert_eq!(t, target("127.0.0.1", 8080, "127.0.0.1:8080", "/path?q=1"));
        assert_eq!(t.cache_key(), "http://127.0.0.1:8080/path?q=1");
        let t = Target::parse("GET", "HTTP://Example.COM").unwrap();
        assert_eq!(t, target("Example.COM", 80, "Example.COM", "/"));
        assert_eq!(t.cache_key(), "http://example.com:80/");
        assert_eq!(Target::parse("GET", "http://h:?x#frag").unwrap(), target("h", 80, "h", "/?x"));
        let t = Target::parse("GET", "http://[::1]:81/a").unwrap();
        assert_eq!(t, target("::1", 81, "[::1]:81", "/a"));
        assert_eq!(t.cache_key(), "http://[::1]:81/a");
    }

    #[test]
    fn rejected_targets() {
        for (method, uri, status) in [
            ("GET", "/path", 400),
            ("GET", "*", 400),
            ("GET", "https://h/", 501),
            ("CONNECT", "h:443", 501),
            ("GET", "ftp://h/", 400),
            ("GET", "http:///x", 400),
            ("GET", "http://u:p@h/", 400),
            ("GET", "http://h:0/", 400),
            ("GET", "http://h:65536/", 400),
            ("GET", "http://h:8x/", 400),
            ("GET", "http://h:1:2/", 400),
            ("GET", "http://[zz]/", 400),
            ("GET", "http://[::1]x/", 400),
            ("GET", "http://h%20x/", 400),
        ] {
            assert_eq!(Target::parse(method, uri).err().map(|e| e.0), Some(status), "{uri}");
        }
    }

    #[test]
    fn origin_form_request() {
        let request = Request {
            method: "POST".into(),
            target: "http://h:81/x".into(),
            minor: 0,
            headers: vec![
                ("Host".into(), b"other".to_vec()),
                ("Connection".into(), b"keep-alive".to_vec()),
                ("Transfer-Encoding".into(), b"chunked".to_vec()),
                ("X-A".into(), b"1".to_vec()),
            ],
            body: Some(b"abc".to_vec()),
        };
        let t = Target::parse("POST", &request.target).unwrap();
        let bytes = origin_form(&request, &t, &[("If-None-Match", b"\"v\"".to_vec())]);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "POST /x HTTP/1.1\r\nHost: h:81\r\nX-A: 1\r\nIf-None-Match: \"v\"\r\nVia: 1.0 wirecheck-proxy\r\n\
             Content-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
    }
}
