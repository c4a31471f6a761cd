//! DASH over HTTP/1.1, sans-IO: the HTTP/1 codec frames every message; a response that carries
//! an MPD (`application/dash+xml`, or a body whose root element is `MPD`) is read as one, its
//! problems added as findings (ISO/IEC 23009-1's mandatory parts, a wrong media type) and its
//! shape added to the transcript. The message's detail stays the `HttpMessage`, so HTTP's
//! structured checks read it unchanged.

use std::sync::Arc;

use crate::proto::http::{HttpCodec, HttpMessage};
use crate::proto::{Codec, CodecError, Finding, Frame, Level, Message};

use super::mpd;

/// The media type of an MPD (ISO/IEC 23009-1 Annex C).
pub const MPD_TYPE: &str = "application/dash+xml";

/// Frames requests (client to server) or responses, reading MPDs in responses.
pub struct DashCodec {
    http: HttpCodec,
    request: bool,
}

impl DashCodec {
    /// A codec for requests (`request`) or responses.
    pub fn new(request: bool) -> DashCodec {
        DashCodec {
            http: HttpCodec::new(request),
            request,
        }
    }
}

/// The media type of a message, lower case, without parameters.
pub fn media_type(h: &HttpMessage) -> Option<String> {
    h.field("Content-Type")
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

/// Whether a response carries an MPD.
pub fn is_mpd(h: &HttpMessage) -> bool {
    media_type(h).as_deref() == Some(MPD_TYPE) || (h.status() == Some(200) && mpd::looks_like_mpd(&h.body))
}

/// A few lines on an MPD for the transcript, and its findings.
pub fn describe(body: &[u8]) -> (String, Vec<Finding>) {
    let text = String::from_utf8_lossy(body);
    match mpd::parse(&text) {
        Err(e) => (
            format!("\n  MPD: {e}"),
            vec![Finding {
                level: Level::Must,
                rule: "ISO/IEC 23009-1 §5.3.1",
                text: format!("the MPD does not parse: {e}"),
            }],
        ),
        Ok(m) => {
            let findings = mpd::check(&m);
            let mut s = format!(
                "\n  MPD: {}, {}, {} period{}",
                m.kind.as_deref().unwrap_or("static"),
                m.duration.as_deref().unwrap_or("no duration"),
                m.periods.len(),
                if m.periods.len() == 1 { "" } else { "s" }
            );
            for b in &m.base_urls {
                s.push_str(&format!("\n    BaseURL {}", b.url.trim()));
            }
            // The transcript shows the URLs relative to the MPD as written.
            if let Ok(tracks) = mpd::tracks(&m, "http://mpd.invalid/") {
                for t in tracks {
                    s.push_str(&format!(
                        "\n    {} {} bit/s: {}, {} segment{}",
                        t.id,
                        t.bandwidth,
                        t.addressing.name(),
                        t.media.len(),
                        if t.media.len() == 1 { "" } else { "s" }
                    ));
                }
            }
            (s, findings)
        }
    }
}

impl Codec for DashCodec {
    fn decode(&mut self, buf: &[u8], eof: bool) -> Result<Frame, CodecError> {
        let frame = self.http.decode(buf, eof)?;
        let Frame::Message(mut m, used) = frame else {
            return Ok(frame);
        };
        if self.request {
            return Ok(Frame::Message(m, used));
        }
        let Some(h) = m.detail.as_ref().and_then(|d| d.downcast_ref::<HttpMessage>()).cloned() else {
            return Ok(Frame::Message(m, used));
        };
        if is_mpd(&h) && !h.body.is_empty() {
            let (text, findings) = describe(&h.body);
            m.summary.push_str(&text);
            m.findings.extend(findings);
            if h.status() == Some(200) && media_type(&h).as_deref() != Some(MPD_TYPE) {
                m.findings.push(Finding {
                    level: Level::Must,
                    rule: "ISO/IEC 23009-1 Annex C",
                    text: format!(
                        "an MPD served as {}; its media type is {MPD_TYPE} (the type Annex C registers, which \
                         players and browsers go by)",
                        media_type(&h).unwrap_or_else(|| "no Content-Type".into())
                    ),
                });
            }
        }
        Ok(Frame::Message(
            Message {
                detail: Some(Arc::new(h)),
                ..m
            },
            used,
        ))
    }

    fn peer_sent(&mut self, bytes: &[u8]) {
        self.http.peer_sent(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MPD: &str = include_str!("../../../fixtures/dash/testsrc/video.mpd");

    fn response(ct: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn one(c: &mut DashCodec, b: &[u8]) -> (Message, usize) {
        match c.decode(b, false).unwrap() {
            Frame::Message(m, n) => (m, n),
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn parses_an_mpd_response() {
        let mut c = DashCodec::new(false);
        c.peer_sent(b"GET /video.mpd HTTP/1.1\r\nHost: h\r\n\r\n");
        let b = response("application/dash+xml", MPD);
        let (m, used) = one(&mut c, &b);
        assert_eq!(used, b.len());
        assert!(m.findings.is_empty(), "{:?}", m.findings);
        assert!(m.summary.contains("MPD: static, PT16.0S, 1 period"), "{}", m.summary);
        assert!(m.summary.contains("3 320000 bit/s: template-number, 16 segments"), "{}", m.summary);
        assert!(m.detail.unwrap().downcast_ref::<HttpMessage>().is_some());
    }

    #[test]
    fn rejects_an_mpd_with_the_wrong_type() {
        let mut c = DashCodec::new(false);
        c.peer_sent(b"GET /video.mpd HTTP/1.1\r\nHost: h\r\n\r\n");
        let (m, _) = one(&mut c, &response("text/xml", MPD));
        assert!(m.findings.iter().any(|f| f.rule.contains("Annex C") && f.text.contains("text/xml")));
    }

    #[test]
    fn rejects_a_broken_mpd() {
        let mut c = DashCodec::new(false);
        c.peer_sent(b"GET /video.mpd HTTP/1.1\r\nHost: h\r\n\r\n");
        let (m, _) = one(&mut c, &response("application/dash+xml", "<MPD><Period>"));
        assert!(m.findings.iter().any(|f| f.text.contains("does not parse")), "{:?}", m.findings);
    }

    #[test]
    fn incomplete_until_the_body_ends() {
        let mut c = DashCodec::new(false);
        c.peer_sent(b"GET /video.mpd HTTP/1.1\r\nHost: h\r\n\r\n");
        let b = response("application/dash+xml", MPD);
        assert!(matches!(c.decode(&b[..b.len() - 1], false).unwrap(), Frame::Incomplete));
    }

    #[test]
    fn round_trip_segments_stay_http() {
        let mut c = DashCodec::new(true);
        let (m, _) = one(&mut c, b"GET /seg-0-1.m4s HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\n\r\n");
        assert_eq!(m.text, "GET /seg-0-1.m4s HTTP/1.1");
    }
}
