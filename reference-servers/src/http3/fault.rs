//! Deliberate bugs, switched on with the `fault` option (a comma-separated list of names; none by
//! default), for proving that an `http3` case fails a server with that bug. Where `h3` decides an
//! error itself, the bug lives in the raw engine (`raw.rs`): a server written on quinn alone that
//! gets that one part of RFC 9114 wrong.

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// `no-settings`: the control stream is opened but carries no SETTINGS frame (RFC 9114
    /// §6.2.1: SETTINGS MUST be its first frame). Raw engine.
    NoSettings,
    /// `ignores-control-streams`: the client's unidirectional streams are read and dropped:
    /// nothing wrong on a control stream (no SETTINGS first, a second one, its close, a frame not
    /// allowed there) is ever a connection error. Raw engine.
    IgnoresControlStreams,
    /// `ignores-frame-errors`: a request stream is answered whatever frames it carries (DATA
    /// before HEADERS, HTTP/2's reserved types, a PUSH_PROMISE, a frame cut by the stream's
    /// end). Raw engine.
    IgnoresFrameErrors,
    /// `rejects-unknown`: a frame or a unidirectional stream of a type the server does not know
    /// closes the connection (RFC 9114 §7.2.8 and §6.2 say ignore them). Raw engine.
    RejectsUnknown,
    /// `wrong-code`: errors on the control streams are detected, but the connection is closed
    /// with H3_INTERNAL_ERROR instead of the code RFC 9114 names. Raw engine.
    WrongCode,
    /// `head-body`: a HEAD request is answered with the body, as GET.
    HeadBody,
    /// `no-404`: a file that is not there is answered 200 (with the 404 page's text).
    No404,
    /// `first-stream-only`: a connection's first request is answered, later ones are rejected
    /// (the stream reset with H3_REQUEST_REJECTED) unanswered.
    FirstStreamOnly,
    /// `truncated-body`: a response body stops after 64 KiB, the stream finished as if complete.
    TruncatedBody,
}

/// Each fault's name.
pub(super) const FAULTS: &[(&str, Fault)] = &[
    ("no-settings", Fault::NoSettings),
    ("ignores-control-streams", Fault::IgnoresControlStreams),
    ("ignores-frame-errors", Fault::IgnoresFrameErrors),
    ("rejects-unknown", Fault::RejectsUnknown),
    ("wrong-code", Fault::WrongCode),
    ("head-body", Fault::HeadBody),
    ("no-404", Fault::No404),
    ("first-stream-only", Fault::FirstStreamOnly),
    ("truncated-body", Fault::TruncatedBody),
];

/// The faults that need the raw engine: `h3` gets these parts right by itself.
const RAW: &[Fault] = &[
    Fault::NoSettings,
    Fault::IgnoresControlStreams,
    Fault::IgnoresFrameErrors,
    Fault::RejectsUnknown,
    Fault::WrongCode,
];

/// The faults switched on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Faults(Vec<Fault>);

impl Faults {
    /// True if `fault` is on.
    pub(super) fn has(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }

    /// Whether the connections are served by the raw engine.
    pub(super) fn raw(&self) -> bool {
        self.0.iter().any(|f| RAW.contains(f))
    }
}

/// Parses the `fault` option: fault names separated by commas (spaces around them allowed).
pub(super) fn parse(text: &str) -> Result<Faults, String> {
    crate::faults::parse_names(text, FAULTS).map(Faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists() {
        assert_eq!(parse(""), Ok(Faults::default()));
        let both = parse("no-404 , wrong-code").unwrap();
        assert!(both.has(Fault::No404) && both.has(Fault::WrongCode) && both.raw());
        assert!(!parse("no-404").unwrap().raw());
        let err = parse("no-404,nosuch").unwrap_err();
        assert!(
            err.contains("\"nosuch\"") && err.contains("no-settings, ignores-control-streams"),
            "{err}"
        );
    }
}
