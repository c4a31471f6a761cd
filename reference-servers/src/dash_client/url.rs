//! URLs as the player needs them: RFC 3986 reference resolution (§5.2) for BaseURLs, segment
//! URLs and redirects' Location, and the host, port and request target of an http:// URL.

use std::fmt;

/// Longer references are refused: resolution is quadratic in the path's length, and no MPD of the
/// lab needs more.
const MAX_LEN: usize = 8 * 1024;

/// An absolute URL, as RFC 3986's components (Appendix B); a fragment is dropped, since it is
/// never sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Url {
    /// Lowercased (§3.1: schemes are case-insensitive).
    scheme: String,
    authority: Option<String>,
    path: String,
    query: Option<String>,
}

/// Where and what to ask for an http:// URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// Host name or address, without the brackets of an IPv6 literal.
    pub(super) host: String,
    /// 80 when the URL names none.
    pub(super) port: u16,
    /// The Host field's value: the authority without any userinfo (RFC 9110 §7.2).
    pub(super) host_field: String,
    /// The origin-form request target: the path (`/` when empty) and query (RFC 9112 §3.2.1).
    pub(super) target: String,
}

/// The five components of a URI reference, borrowed from its text.
struct Parts<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

/// Splits a reference as the regular expression of RFC 3986 Appendix B does.
fn split(text: &str) -> Parts<'_> {
    let (scheme, rest) = match text.find([':', '/', '?', '#']) {
        Some(at) if at > 0 && text.as_bytes()[at] == b':' => (Some(&text[..at]), &text[at + 1..]),
        _ => (None, text),
    };
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (rest, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => match after.find('/') {
            Some(at) => (Some(&after[..at]), &after[at..]),
            None => (Some(after), ""),
        },
        None => (None, rest),
    };
    Parts {
        scheme,
        authority,
        path,
        query,
    }
}

impl Url {
    /// Parses an absolute URL (one with a scheme).
    pub(super) fn parse(text: &str) -> Result<Url, String> {
        check(text)?;
        let parts = split(text);
        let Some(scheme) = parts.scheme else {
            return Err(format!("{text:?} is not an absolute URL"));
        };
        let scheme = valid_scheme(scheme).ok_or_else(|| format!("{text:?} has no valid scheme"))?;
        Ok(Url {
            scheme,
            authority: parts.authority.map(str::to_owned),
            path: remove_dot_segments(parts.path),
            query: parts.query.map(str::to_owned),
        })
    }

    /// The target of `reference` with this URL as its base (RFC 3986 §5.2.2, strict).
    pub(super) fn resolve(&self, reference: &str) -> Result<Url, String> {
        // Surrounding white space is the XML's layout, never the URL's (RFC 3986 Appendix C).
        let reference = reference.trim();
        check(reference)?;
        let r = split(reference);
        if let Some(scheme) = r.scheme {
            let scheme = valid_scheme(scheme).ok_or_else(|| format!("{reference:?} has no valid scheme"))?;
            return Ok(Url {
                scheme,
                authority: r.authority.map(str::to_owned),
                path: remove_dot_segments(r.path),
                query: r.query.map(str::to_owned),
            });
        }
        let (authority, path, query) = if let Some(authority) = r.authority {
            (Some(authority.to_owned()), remove_dot_segments(r.path), r.query.map(str::to_owned))
        } else if r.path.is_empty() {
            let query = r.query.map(str::to_owned).or_else(|| self.query.clone());
            (self.authority.clone(), self.path.clone(), query)
        } else if r.path.starts_with('/') {
            (self.authority.clone(), remove_dot_segments(r.path), r.query.map(str::to_owned))
        } else {
            let merged = self.merge(r.path);
            (self.authority.clone(), remove_dot_segments(&merged), r.query.map(str::to_owned))
        };
        Ok(Url {
            scheme: self.scheme.clone(),
            authority,
            path,
            query,
        })
    }

    /// §5.2.3: a relative path appended to the base's path up to its last `/`.
    fn merge(&self, path: &str) -> String {
        if self.authority.is_some() && self.path.is_empty() {
            return format!("/{path}");
        }
        match self.path.rfind('/') {
            Some(at) => format!("{}{path}", &self.path[..=at]),
            None => path.to_owned(),
        }
    }

    /// The authority as written (with any userinfo and port), for messages and grouping.
    pub(super) fn authority(&self) -> &str {
        self.authority.as_deref().unwrap_or("")
    }

    /// Host, port and request target; only http:// URLs can be fetched.
    pub(super) fn target(&self) -> Result<Target, String> {
        if self.scheme != "http" {
            return Err(format!("{self}: only http:// URLs are supported"));
        }
        let authority = self.authority.as_deref().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, after)| after);
        let bad = || format!("{self}: bad host");
        let (host, port) = match host_port.strip_prefix('[') {
            // An IPv6 literal: [addr] or [addr]:port (§3.2.2).
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(bad)?;
                let port = match after {
                    "" | ":" => 80,
                    after => after.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(bad)?,
                };
                (host, port)
            }
            None => match host_port.rsplit_once(':') {
                Some((host, "")) => (host, 80),
                Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
                None => (host_port, 80),
            },
        };
        if host.is_empty() {
            return Err(bad());
        }
        let mut target = if self.path.is_empty() { "/".to_owned() } else { self.path.clone() };
        if let Some(query) = &self.query {
            target.push('?');
            target.push_str(query);
        }
        Ok(Target {
            host: host.to_owned(),
            port,
            host_field: host_port.to_owned(),
            target,
        })
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(authority) = &self.authority {
            write!(f, "//{authority}")?;
        }
        f.write_str(&self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

/// A space or control character would change the request line it ends up in, so such a URL is
/// refused rather than sent.
fn check(text: &str) -> Result<(), String> {
    if text.len() > MAX_LEN {
        return Err(format!("a URL of {} bytes (at most {MAX_LEN})", text.len()));
    }
    if text.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("{text:?} has a space or a control character"));
    }
    Ok(())
}

/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`, lowercased (§3.1).
fn valid_scheme(scheme: &str) -> Option<String> {
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (first_ok && rest_ok).then(|| scheme.to_ascii_lowercase())
}

/// §5.2.4, step by step as the RFC writes it.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    let pop = |output: &mut String| match output.rfind('/') {
        Some(at) => output.truncate(at),
        None => output.clear(),
    };
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../").or_else(|| input.strip_prefix("./")) {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop(&mut output);
        } else if input == "/.." {
            input = "/";
            pop(&mut output);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let from = usize::from(input.starts_with('/'));
            let end = input[from..].find('/').map_or(input.len(), |at| at + from);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(base: &str, reference: &str) -> String {
        Url::parse(base)
            .and_then(|b| b.resolve(reference))
            .map(|u| u.to_string())
            .unwrap_or_else(|e| e)
    }

    #[test]
    fn rfc_3986_normal_examples() {
        // §5.4.1 (fragments are dropped: they are never sent).
        let base = "http://a/b/c/d;p?q";
        for (reference, expected) in [
            ("g:h", "g:h"),
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            ("g?y#s", "http://a/b/c/g?y"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("g;x?y#s", "http://a/b/c/g;x?y"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
        ] {
            assert_eq!(resolve(base, reference), expected, "{reference:?}");
        }
    }

    #[test]
    fn rfc_3986_abnormal_examples() {
        // §5.4.2.
        let base = "http://a/b/c/d;p?q";
        for (reference, expected) in [
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
            ("g?y/../x", "http://a/b/c/g?y/../x"),
            ("http:g", "http:g"),
        ] {
            assert_eq!(resolve(base, reference), expected, "{reference:?}");
        }
    }

    #[test]
    fn base_urls_as_an_mpd_nests_them() {
        let mpd = Url::parse("http://127.0.0.2:40123/lab/video.mpd").expect("url");
        let period = mpd.resolve("media/").expect("period");
        assert_eq!(period.to_string(), "http://127.0.0.2:40123/lab/media/");
        let rep = period.resolve("  v1/ ").expect("rep");
        assert_eq!(
            rep.resolve("seg-1.m4s").expect("seg").to_string(),
            "http://127.0.0.2:40123/lab/media/v1/seg-1.m4s"
        );
        // A BaseURL without a trailing slash names a file: its last segment is replaced.
        assert_eq!(
            period.resolve("v1").expect("v1").resolve("s.m4s").expect("s").to_string(),
            "http://127.0.0.2:40123/lab/media/s.m4s"
        );
        assert_eq!(
            rep.resolve("http://127.0.0.3:9/x").expect("abs").to_string(),
            "http://127.0.0.3:9/x"
        );
        assert_eq!(
            Url::parse("http://h").expect("h").resolve("a").expect("a").to_string(),
            "http://h/a"
        );
    }

    #[test]
    fn targets() {
        let t = Url::parse("HTTP://user@127.0.0.2:8080/a/b?x=1#frag")
            .and_then(|u| u.target())
            .expect("target");
        assert_eq!(
            (t.host.as_str(), t.port, t.host_field.as_str(), t.target.as_str()),
            ("127.0.0.2", 8080, "127.0.0.2:8080", "/a/b?x=1")
        );
        let t = Url::parse("http://[::1]/").and_then(|u| u.target()).expect("v6");
        assert_eq!((t.host.as_str(), t.port, t.target.as_str()), ("::1", 80, "/"));
        let t = Url::parse("http://example.org?q").and_then(|u| u.target()).expect("no path");
        assert_eq!((t.port, t.target.as_str()), (80, "/?q"));
        for bad in ["https://a/", "http:///x", "http://a:99999/", "ftp://a/"] {
            assert!(Url::parse(bad).and_then(|u| u.target()).is_err(), "{bad}");
        }
        for bad in ["no-scheme/x", "http://a/b c", "1http://a/", "http://a/\r\nX: y"] {
            assert!(Url::parse(bad).is_err(), "{bad:?}");
        }
    }
}
