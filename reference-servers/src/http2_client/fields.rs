//! Field lists: the request's, edited for the header faults on their way out, and the
//! response's, judged (RFC 9113 §8.1.1: a client MUST NOT accept a malformed response) and
//! tidied up for `h2` when the `accepts-malformed` fault takes it anyway.

use super::fault::{Fault, Faults};
use super::frame::Field;

/// Fields that are specific to one connection: HTTP/2 has none of them (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: &[&[u8]] = &[b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"];
/// Pseudo-header fields of requests (§8.3.1, RFC 8441 `:protocol`).
const REQUEST_PSEUDO: &[&[u8]] = &[b":method", b":scheme", b":authority", b":path", b":protocol"];

/// The request's fields as `h2` encoded them, changed by the header faults.
pub(super) fn edit_request(mut fields: Vec<Field>, faults: Faults) -> Vec<Field> {
    if faults.has(Fault::NoScheme) {
        fields.retain(|(name, _)| name != b":scheme");
    }
    if faults.has(Fault::UppercaseNames) {
        for (name, _) in fields.iter_mut().filter(|(name, _)| !name.starts_with(b":")) {
            *name = title_case(name);
        }
    }
    if faults.has(Fault::ConnectionHeader) {
        fields.push((b"connection".to_vec(), b"keep-alive".to_vec()));
    }
    if faults.has(Fault::PseudoAfterRegular) {
        if let Some(at) = fields.iter().position(|(name, _)| name == b":path") {
            let path = fields.remove(at);
            fields.push(path);
        }
    }
    fields
}

/// `user-agent` as `User-Agent`.
fn title_case(name: &[u8]) -> Vec<u8> {
    let mut up = true;
    name.iter()
        .map(|&b| {
            let out = if up { b.to_ascii_uppercase() } else { b };
            up = b == b'-';
            out
        })
        .collect()
}

/// What a field block of a response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// The first block on a stream: an informational or the final response head.
    Head,
    /// A block after the final head: trailers.
    Trailers,
}

/// A response block judged: the fields `h2` gets, the status, and what makes it malformed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Judged {
    /// The fields, tidied up: lowercase names, pseudo-headers first, only `:status`, no
    /// connection-specific fields, no values `h2` would refuse.
    pub(super) fields: Vec<Field>,
    /// The `:status`, if the head has a valid one.
    pub(super) status: Option<u16>,
    /// The content-length, if there is a valid one.
    pub(super) content_length: Option<u64>,
    /// Why the block is malformed (the first reason found), if it is.
    pub(super) malformed: Option<String>,
}

/// Judges a response block (RFC 9113 §8.1.1, §8.2, §8.3.2).
pub(super) fn judge_response(fields: &[Field], part: Part) -> Judged {
    let mut problems: Vec<String> = Vec::new();
    let mut status = None;
    let mut lengths = Vec::new();
    let mut pseudo = Vec::new();
    let mut regular = Vec::new();
    for (name, value) in fields {
        let shown = String::from_utf8_lossy(name);
        if value.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
            problems.push(format!("field `{shown}` has NUL, CR or LF in its value (§8.2.1)"));
            continue;
        }
        if padded(value) {
            problems.push(format!("field `{shown}` has whitespace around its value (§8.2.1)"));
        }
        if name.starts_with(b":") {
            if part == Part::Trailers {
                problems.push(format!("pseudo-header `{shown}` in trailers (§8.1)"));
            } else if !regular.is_empty() {
                problems.push(format!("pseudo-header `{shown}` after a regular field (§8.3)"));
            }
            if name != b":status" {
                if REQUEST_PSEUDO.contains(&name.as_slice()) {
                    problems.push(format!("request pseudo-header `{shown}` in a response (§8.3)"));
                } else {
                    problems.push(format!("unknown pseudo-header `{shown}` (§8.3)"));
                }
                continue;
            }
            if status.is_some() || !pseudo.is_empty() {
                problems.push("`:status` more than once (§8.3)".to_owned());
                continue;
            }
            match parse_status(value) {
                Some(code) => status = Some(code),
                None => problems.push(format!(
                    "`:status` is {:?}, not a 3-digit code (§8.3.2)",
                    String::from_utf8_lossy(value)
                )),
            }
            pseudo.push((name.clone(), value.clone()));
            continue;
        }
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            if name.iter().any(u8::is_ascii_uppercase) && name.iter().all(|&b| is_tchar(b.to_ascii_lowercase())) {
                problems.push(format!("uppercase field name `{shown}` (§8.2.1)"));
            } else {
                problems.push(format!("field name {shown:?} is not a token (§8.2.1)"));
                continue;
            }
        }
        let lower = name.to_ascii_lowercase();
        if CONNECTION_SPECIFIC.contains(&lower.as_slice()) {
            problems.push(format!("connection-specific field `{shown}` (§8.2.2)"));
            continue;
        }
        if lower == b"te" && value != b"trailers" {
            problems.push("`te` other than \"trailers\" (§8.2.2)".to_owned());
            continue;
        }
        if lower == b"content-length" {
            lengths.push(value.clone());
            continue;
        }
        regular.push((lower, value.clone()));
    }
    if part == Part::Head && status.is_none() && !problems.iter().any(|p| p.contains(":status")) {
        problems.push("no `:status` (§8.3.2)".to_owned());
    }
    if status == Some(101) {
        problems.push("101 Switching Protocols does not exist in HTTP/2 (§8.6)".to_owned());
    }
    let content_length = match lengths.as_slice() {
        [] => None,
        [one] => {
            let parsed = std::str::from_utf8(one)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
            match parsed.and_then(|s| s.parse::<u64>().ok()) {
                Some(n) => Some(n),
                None => {
                    problems.push(format!(
                        "content-length {:?} is not a number (RFC 9110 §8.6)",
                        String::from_utf8_lossy(one)
                    ));
                    None
                }
            }
        }
        _ => {
            problems.push("content-length more than once (RFC 9110 §8.6)".to_owned());
            None
        }
    };
    // What h2 gets: a head always has a status it can take, and never a content-length (this
    // side counts the DATA against it, and `accepts-malformed` wants no second judge).
    let mut tidy = Vec::new();
    if part == Part::Head {
        let code = status.filter(|c| *c != 101).unwrap_or(200);
        tidy.push((b":status".to_vec(), code.to_string().into_bytes()));
    }
    tidy.extend(
        regular
            .into_iter()
            .filter(|(name, value)| !padded(value) && name.iter().all(|&b| is_tchar(b))),
    );
    Judged {
        fields: tidy,
        status,
        content_length,
        malformed: problems.into_iter().next(),
    }
}

/// True if the value starts or ends with a space or tab.
fn padded(value: &[u8]) -> bool {
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    value.first().is_some_and(blank) || value.last().is_some_and(blank)
}

/// A 3-digit status code (RFC 9110 §15).
fn parse_status(value: &[u8]) -> Option<u16> {
    if value.len() != 3 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code: u16 = std::str::from_utf8(value).ok()?.parse().ok()?;
    (100..=999).contains(&code).then_some(code)
}

/// A character of a token, as a lowercase field name has them (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Vec<Field> {
        list.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn request_faults() {
        let h2 = fields(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "a:1"),
            (":path", "/"),
            ("user-agent", "x"),
        ]);
        assert_eq!(edit_request(h2.clone(), Faults::default()), h2);
        let f = |name| super::super::fault::parse(name).unwrap();
        let names = |list: Vec<Field>| list.into_iter().map(|(n, _)| String::from_utf8(n).unwrap()).collect::<Vec<_>>();
        assert_eq!(
            names(edit_request(h2.clone(), f("no-scheme"))),
            [":method", ":authority", ":path", "user-agent"]
        );
        assert_eq!(
            names(edit_request(h2.clone(), f("uppercase-names"))),
            [":method", ":scheme", ":authority", ":path", "User-Agent"]
        );
        assert_eq!(
            names(edit_request(h2.clone(), f("pseudo-after-regular"))),
            [":method", ":scheme", ":authority", "user-agent", ":path"]
        );
        assert_eq!(
            edit_request(h2, f("connection-header")).last().unwrap(),
            &(b"connection".to_vec(), b"keep-alive".to_vec())
        );
    }

    #[test]
    fn well_formed_responses() {
        let ok = judge_response(
            &fields(&[(":status", "200"), ("content-length", "5"), ("content-type", "text/plain")]),
            Part::Head,
        );
        assert_eq!(ok.malformed, None);
        assert_eq!((ok.status, ok.content_length), (Some(200), Some(5)));
        assert_eq!(ok.fields, fields(&[(":status", "200"), ("content-type", "text/plain")]));
        assert_eq!(judge_response(&fields(&[("x-checksum", "1")]), Part::Trailers).malformed, None);
    }

    #[test]
    fn malformed_responses() {
        // (fields, part, what the reason must say)
        type Case = (&'static [(&'static str, &'static str)], Part, &'static str);
        let cases: &[Case] = &[
            (&[(":status", "200"), ("Content-Type", "text/plain")], Part::Head, "uppercase"),
            (
                &[(":status", "200"), ("connection", "keep-alive")],
                Part::Head,
                "connection-specific",
            ),
            (
                &[(":status", "200"), ("transfer-encoding", "chunked")],
                Part::Head,
                "connection-specific",
            ),
            (&[("content-type", "text/plain")], Part::Head, "no `:status`"),
            (&[(":status", "200"), (":status", "200")], Part::Head, "more than once"),
            (&[(":status", "200"), (":path", "/")], Part::Head, "request pseudo-header"),
            (&[(":status", "200"), (":foo", "x")], Part::Head, "unknown pseudo-header"),
            (&[("date", "x"), (":status", "200")], Part::Head, "after a regular field"),
            (&[(":status", "2000")], Part::Head, "not a 3-digit"),
            (&[(":status", "200"), ("content-length", "x")], Part::Head, "not a number"),
            (
                &[(":status", "200"), ("content-length", "1"), ("content-length", "1")],
                Part::Head,
                "more than once",
            ),
            (&[(":status", "200"), ("x", "a\nb")], Part::Head, "CR or LF"),
            (&[(":status", "200"), ("x", " a")], Part::Head, "whitespace"),
            (&[(":status", "200")], Part::Trailers, "in trailers"),
            (&[(":status", "101")], Part::Head, "101"),
        ];
        for (list, part, why) in cases {
            let judged = judge_response(&fields(list), *part);
            let got = judged.malformed.unwrap_or_default();
            assert!(got.contains(why), "{list:?}: {got:?} should say {why:?}");
            assert!(judged.fields.iter().all(|(n, _)| n == b":status" || !n.starts_with(b":")));
            assert!(judged.fields.iter().all(|(n, _)| !n.iter().any(u8::is_ascii_uppercase)));
        }
    }
}
