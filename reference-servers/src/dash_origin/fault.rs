//! Deliberate bugs, switched on with the `fault` option (a comma-separated list of names; none by
//! default), for proving that a `dash-server` case fails an origin with that bug. Each is the
//! small change to the correct code that a student's origin with that bug would have.

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// `wrong-content-type`: an MPD is served as `text/xml`, not `application/dash+xml` (DASH Annex C).
    WrongContentType,
    /// `broken-ranges`: Range is ignored, every GET is 200 with the whole file, though `Accept-Ranges: bytes` promises ranges.
    BrokenRanges,
    /// `range-off-by-one`: last-byte-pos taken as exclusive: a 206 has one byte less than its Content-Range says (RFC 9110 §14.1.2).
    RangeOffByOne,
    /// `no-416`: an unsatisfiable range is answered 200 with the whole file, not 416 (RFC 9110 §15.5.17).
    No416,
    /// `head-body`: HEAD is answered with the content too (RFC 9110 §9.3.2).
    HeadBody,
    /// `no-head`: HEAD is 405 (RFC 9110 §9.1: a general-purpose server must support it).
    NoHead,
    /// `no-cors`: no Access-Control-* field on any response (Fetch standard, CORS protocol).
    NoCors,
    /// `no-preflight`: OPTIONS is 405, so a browser's preflight for Range fails (Fetch standard, CORS-preflight fetch).
    NoPreflight,
    /// `no-expose`: Allow-Origin without Access-Control-Expose-Headers: a page cannot read Content-Range (Fetch standard).
    NoExpose,
    /// `wrong-length`: a GET of an `.m4s` or `.mp4` announces one byte more than it sends, then closes (RFC 9112 §6.3).
    WrongLength,
    /// `no-404`: a missing file is 200 with an empty body, not 404 (RFC 9110 §15.5.5).
    No404,
    /// `closes-silently`: every response is followed by a close it did not announce with `Connection: close` (RFC 9112 §9.6).
    ClosesSilently,
    /// `traversal`: `..` in a path is followed, so files outside the root are served (the spec: nothing outside FOLDER).
    Traversal,
    /// `no-accept-ranges`: ranges work but no response says `Accept-Ranges: bytes` (docs/dash.md asks for it).
    NoAcceptRanges,
    /// `any-unit`: a Range in any unit is read as bytes, where RFC 9110 §14.2 says an unknown unit MUST be ignored.
    AnyUnit,
    /// `no-suffix`: a suffix range (`bytes=-N`, RFC 9110 §14.1.3) is not understood: 200 with the whole file.
    NoSuffix,
    /// `no-clamp`: a last-pos past the end makes the range unsatisfiable (416), where RFC 9110 §14.1.2 takes it as the end.
    NoClamp,
    /// `text-mode`: files are read as text, every LF sent as CR LF (a file opened in text mode), so no file comes back as it is.
    TextMode,
}

/// Each fault's name, as the `fault` option takes it.
pub(super) const FAULTS: &[(&str, Fault)] = &[
    ("wrong-content-type", Fault::WrongContentType),
    ("broken-ranges", Fault::BrokenRanges),
    ("range-off-by-one", Fault::RangeOffByOne),
    ("no-416", Fault::No416),
    ("head-body", Fault::HeadBody),
    ("no-head", Fault::NoHead),
    ("no-cors", Fault::NoCors),
    ("no-preflight", Fault::NoPreflight),
    ("no-expose", Fault::NoExpose),
    ("wrong-length", Fault::WrongLength),
    ("no-404", Fault::No404),
    ("closes-silently", Fault::ClosesSilently),
    ("traversal", Fault::Traversal),
    ("no-accept-ranges", Fault::NoAcceptRanges),
    ("any-unit", Fault::AnyUnit),
    ("no-suffix", Fault::NoSuffix),
    ("no-clamp", Fault::NoClamp),
    ("text-mode", Fault::TextMode),
];

/// The faults switched on.
pub(super) type Faults = crate::faults::Set<Fault>;

impl From<Fault> for u32 {
    fn from(f: Fault) -> u32 {
        f as u32
    }
}

/// Parses the `fault` option: fault names separated by commas.
pub(super) fn parse(text: &str) -> Result<Faults, String> {
    Faults::parse(text, FAULTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists() {
        assert_eq!(parse(""), Ok(Faults::default()));
        let both = parse("no-cors, traversal").unwrap();
        assert!(both.has(Fault::NoCors) && both.has(Fault::Traversal) && !both.has(Fault::No404));
        let err = parse("no-cors,nosuch").unwrap_err();
        assert!(err.contains("\"nosuch\"") && err.contains("wrong-length"), "{err}");
        for (name, fault) in FAULTS {
            let one = parse(name).unwrap();
            assert!(one.has(*fault), "{name}");
            assert_eq!(FAULTS.iter().filter(|(_, f)| one.has(*f)).count(), 1, "{name}");
        }
    }
}
