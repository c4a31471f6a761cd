//! Deliberate bugs of the `http2-client` reference, switched on with its `fault` option (a
//! comma-separated list of names; none by default), for proving that a case of the
//! `http2-client` suite fails a client with that bug. Each is the small change a client with
//! that bug would have; most are played by the relay (`relay.rs`), a few by the requests
//! (`mod.rs`).

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// `no-preface`: the connection starts with SETTINGS, without the client preface (RFC 9113 §3.4).
    NoPreface,
    /// `settings-not-first`: a PING goes before the client's SETTINGS (§3.4: SETTINGS MUST be first).
    SettingsNotFirst,
    /// `no-settings-ack`: the server's SETTINGS are never acknowledged (§6.5.3).
    NoSettingsAck,
    /// `no-ping-ack`: a PING is never answered (§6.7).
    NoPingAck,
    /// `even-stream-ids`: requests go on even stream ids, the server's (§5.1.1).
    EvenStreamIds,
    /// `reused-stream-id`: the second request reuses stream 1 (§5.1.1: ids only grow).
    ReusedStreamId,
    /// `uppercase-names`: request field names with capitals, `User-Agent` (§8.2.1).
    UppercaseNames,
    /// `connection-header`: requests carry `connection: keep-alive` (§8.2.2).
    ConnectionHeader,
    /// `no-scheme`: requests lack `:scheme` (§8.3.1).
    NoScheme,
    /// `pseudo-after-regular`: `:path` comes after the regular fields (§8.3).
    PseudoAfterRegular,
    /// `ignore-flow-control`: uploads go out whole, beyond the server's windows (§5.2, §6.9.1).
    IgnoreFlowControl,
    /// `big-frames`: DATA frames larger than the server's SETTINGS_MAX_FRAME_SIZE (§4.2).
    BigFrames,
    /// `no-window-update`: WINDOW_UPDATE is never sent, so a download past the first window stalls (§6.9).
    NoWindowUpdate,
    /// `no-end-stream`: a GET's HEADERS lack END_STREAM, so the request never ends (§8.1).
    NoEndStream,
    /// `ignores-status`: any status counts as success, a 404 too.
    IgnoresStatus,
    /// `accepts-malformed`: malformed responses are taken as they come, tidied up (§8.1.1: MUST NOT).
    AcceptsMalformed,
    /// `lenient`: a frame of the server that is a connection error is dropped (a first frame that
    /// is not SETTINGS is taken as it comes), and the connection goes on (§5.4.1).
    Lenient,
    /// `wrong-error-code`: every connection error is GOAWAY with a specific code the RFC does not
    /// name for it (FLOW_CONTROL_ERROR, or FRAME_SIZE_ERROR for a flow-control error).
    WrongErrorCode,
    /// `accepts-push`: a PUSH_PROMISE after SETTINGS_ENABLE_PUSH=0 is ignored, not a PROTOCOL_ERROR (§6.6).
    AcceptsPush,
    /// `discards-on-reset`: a complete response followed by RST_STREAM NO_ERROR is thrown away (§8.1: MUST NOT).
    DiscardsOnReset,
    /// `ignores-max-streams`: more streams at once than the server's SETTINGS_MAX_CONCURRENT_STREAMS (§5.1.2).
    IgnoresMaxStreams,
    /// `one-connection-per-request`: every request opens a connection of its own, HTTP/1.0's way.
    OneConnectionPerRequest,
    /// `no-padding`: a PADDED DATA or HEADERS frame is read as if unpadded: the pad length and
    /// the padding are taken for content or field block (§6.1, §6.2).
    NoPadding,
    /// `no-continuation`: a CONTINUATION frame is a PROTOCOL_ERROR (§6.10 allows them).
    NoContinuation,
    /// `no-huffman`: a Huffman-coded string in a field block is a COMPRESSION_ERROR (RFC 7541 §5.2).
    NoHuffman,
    /// `no-dynamic-table`: a literal with incremental indexing, or an index past the static table,
    /// is a COMPRESSION_ERROR (RFC 7541 §2.3.2, §6.2.1).
    NoDynamicTable,
    /// `no-size-update`: a dynamic table size update is a COMPRESSION_ERROR (RFC 7541 §6.3).
    NoSizeUpdate,
    /// `strict-unknown`: unknown frame types and SETTINGS, undefined flags and the reserved bit
    /// are a PROTOCOL_ERROR (§4.1, §5.5, §6.5.2 say ignore them).
    StrictUnknown,
    /// `no-priority`: a PRIORITY frame is a PROTOCOL_ERROR (§6.3: deprecated, still legal).
    NoPriority,
    /// `final-1xx`: an informational response is taken for the final one, so the real one after
    /// it is refused (RFC 9110 §15.2).
    Final1xx,
    /// `no-trailers`: a trailer section (HEADERS after the body) is a stream error (§8.1 allows it).
    NoTrailers,
    /// `goaway-fails`: any GOAWAY of the server, NO_ERROR too, fails every request on the
    /// connection, answered or not (§6.8: streams up to its last stream id go on).
    GoawayFails,
    /// `first-data-only`: only a response's first DATA frame is kept.
    FirstDataOnly,
}

/// Each fault's name, as the `fault` option takes it.
pub(super) const FAULTS: &[(&str, Fault)] = &[
    ("no-preface", Fault::NoPreface),
    ("settings-not-first", Fault::SettingsNotFirst),
    ("no-settings-ack", Fault::NoSettingsAck),
    ("no-ping-ack", Fault::NoPingAck),
    ("even-stream-ids", Fault::EvenStreamIds),
    ("reused-stream-id", Fault::ReusedStreamId),
    ("uppercase-names", Fault::UppercaseNames),
    ("connection-header", Fault::ConnectionHeader),
    ("no-scheme", Fault::NoScheme),
    ("pseudo-after-regular", Fault::PseudoAfterRegular),
    ("ignore-flow-control", Fault::IgnoreFlowControl),
    ("big-frames", Fault::BigFrames),
    ("no-window-update", Fault::NoWindowUpdate),
    ("no-end-stream", Fault::NoEndStream),
    ("ignores-status", Fault::IgnoresStatus),
    ("accepts-malformed", Fault::AcceptsMalformed),
    ("lenient", Fault::Lenient),
    ("wrong-error-code", Fault::WrongErrorCode),
    ("accepts-push", Fault::AcceptsPush),
    ("discards-on-reset", Fault::DiscardsOnReset),
    ("ignores-max-streams", Fault::IgnoresMaxStreams),
    ("one-connection-per-request", Fault::OneConnectionPerRequest),
    ("no-padding", Fault::NoPadding),
    ("no-continuation", Fault::NoContinuation),
    ("no-huffman", Fault::NoHuffman),
    ("no-dynamic-table", Fault::NoDynamicTable),
    ("no-size-update", Fault::NoSizeUpdate),
    ("strict-unknown", Fault::StrictUnknown),
    ("no-priority", Fault::NoPriority),
    ("final-1xx", Fault::Final1xx),
    ("no-trailers", Fault::NoTrailers),
    ("goaway-fails", Fault::GoawayFails),
    ("first-data-only", Fault::FirstDataOnly),
];

/// The faults switched on: one bit per `Fault`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Faults(u64);

impl Faults {
    /// True if `fault` is on.
    pub(super) fn has(self, fault: Fault) -> bool {
        self.0 & (1 << fault as u64) != 0
    }
}

/// Parses the `fault` option: fault names separated by commas (spaces around them allowed).
pub(super) fn parse(text: &str) -> Result<Faults, String> {
    let names = crate::faults::parse_names(text, FAULTS)?;
    Ok(Faults(names.into_iter().fold(0, |bits, fault| bits | 1 << fault as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists() {
        assert_eq!(parse(""), Ok(Faults::default()));
        let both = parse("lenient , big-frames").unwrap();
        assert!(both.has(Fault::Lenient) && both.has(Fault::BigFrames));
        assert!(!parse("lenient").unwrap().has(Fault::BigFrames));
        let err = parse("lenient,nosuch").unwrap_err();
        assert!(
            err.contains("\"nosuch\"") && err.contains("no-preface, settings-not-first"),
            "{err}"
        );
        for (i, (name, fault)) in FAULTS.iter().enumerate() {
            assert_eq!(*fault as usize, i, "{name}: FAULTS is in declaration order");
            assert!(parse(name).unwrap().has(*fault));
        }
    }
}
