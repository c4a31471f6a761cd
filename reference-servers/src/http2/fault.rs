//! Deliberate bugs, switched on with the `fault` option (a comma-separated
//! list of names; none by default), for proving that an HTTP/2 suite's case
//! fails a server with that bug. Only bugs a server built on `h2` can really
//! have are here: h2 itself keeps the framing, HPACK and flow control right.

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// `one-at-a-time`: streams are served strictly one after another, in the order they
    /// arrived, each from its request to its last DATA frame: a large object holds up the small
    /// ones requested after it (head-of-line blocking), and a stream's request body is not read
    /// until the streams before it are done.
    OneAtATime,
    /// `no-push`: with `push=true`, nothing is pushed all the same.
    NoPush,
    /// `first-stream-only`: a connection's first request is answered, later ones are reset
    /// unanswered (one request per connection, as an HTTP/1.0 server thinks).
    FirstStreamOnly,
    /// `strict-unknown`: frames of unknown types, SETTINGS other than RFC 7540's six, flags a
    /// type does not define, a reserved bit set, and error codes past RFC 9113's are taken for a
    /// PROTOCOL_ERROR (RFC 9113 §4.1, §5.5, §6.5.2, §7 say ignore them).
    StrictUnknown,
    /// `no-padding`: a padded DATA or HEADERS frame is taken for a PROTOCOL_ERROR.
    NoPadding,
    /// `no-continuation`: a CONTINUATION frame is taken for a PROTOCOL_ERROR.
    NoContinuation,
    /// `no-priority`: a PRIORITY frame is taken for a PROTOCOL_ERROR.
    NoPriority,
    /// `no-ping-ack`: a PING is never answered.
    NoPingAck,
    /// `limits-off-by-one`: the upper limits are taken as exclusive: a frame of exactly 16384
    /// octets, SETTINGS_MAX_FRAME_SIZE 2^24-1, SETTINGS_INITIAL_WINDOW_SIZE 2^31-1, a connection
    /// window brought to exactly 2^31-1 (counting the client's increments) and stream 2^31-1 are
    /// each an error.
    LimitsOffByOne,
    /// `no-trailers`: a second HEADERS frame on a stream (trailers) is taken for a PROTOCOL_ERROR.
    NoTrailers,
    /// `bodies-refused`: a DATA frame from the client is taken for a PROTOCOL_ERROR (as if only
    /// servers sent content).
    BodiesRefused,
    /// `ping-ack-answered`: a PING that carries ACK is answered as if it had none.
    PingAckAnswered,
    /// `ignores-window-changes`: SETTINGS_INITIAL_WINDOW_SIZE counts only in the client's first
    /// SETTINGS frame: a later change is not applied to any stream.
    IgnoresWindowChanges,
    /// `literals-only`: the HPACK decoder knows literals with new names only: a field block
    /// that refers to any table entry (an indexed field or an indexed name) is a COMPRESSION_ERROR.
    LiteralsOnly,
    /// `no-dynamic-table`: a field block that adds to the dynamic table (incremental indexing)
    /// or refers to an entry of it is a COMPRESSION_ERROR.
    NoDynamicTable,
    /// `no-never-indexed`: a literal never indexed (RFC 7541 §6.2.3) is a COMPRESSION_ERROR.
    NoNeverIndexed,
    /// `no-huffman`: a Huffman-coded string (RFC 7541 §5.2) is a COMPRESSION_ERROR.
    NoHuffman,
    /// `no-size-update`: a dynamic table size update (RFC 7541 §6.3) is a COMPRESSION_ERROR.
    NoSizeUpdate,
    /// `strict-fields`: a request with a te field (even "trailers") or a priority field
    /// (RFC 9218) is reset with PROTOCOL_ERROR.
    StrictFields,
    /// `head-body`: a HEAD request is answered with the body, as GET.
    HeadBody,
    /// `no-404`: a file that is not there is answered 200 (with the 404 page's text).
    No404,
    /// `one-connection`: one connection is served at a time: the others wait until it ends.
    OneConnection,
    /// `upgrade-forgets-request`: after the 101 to `Upgrade: h2c` the connection is HTTP/2, but
    /// the request that asked for it is never answered on stream 1 (RFC 7540 §3.2).
    UpgradeForgetsRequest,
}

/// Each fault's name.
pub(super) const FAULTS: &[(&str, Fault)] = &[
    ("one-at-a-time", Fault::OneAtATime),
    ("no-push", Fault::NoPush),
    ("first-stream-only", Fault::FirstStreamOnly),
    ("strict-unknown", Fault::StrictUnknown),
    ("no-padding", Fault::NoPadding),
    ("no-continuation", Fault::NoContinuation),
    ("no-priority", Fault::NoPriority),
    ("no-ping-ack", Fault::NoPingAck),
    ("limits-off-by-one", Fault::LimitsOffByOne),
    ("no-trailers", Fault::NoTrailers),
    ("bodies-refused", Fault::BodiesRefused),
    ("ping-ack-answered", Fault::PingAckAnswered),
    ("ignores-window-changes", Fault::IgnoresWindowChanges),
    ("literals-only", Fault::LiteralsOnly),
    ("no-dynamic-table", Fault::NoDynamicTable),
    ("no-never-indexed", Fault::NoNeverIndexed),
    ("no-huffman", Fault::NoHuffman),
    ("no-size-update", Fault::NoSizeUpdate),
    ("strict-fields", Fault::StrictFields),
    ("head-body", Fault::HeadBody),
    ("no-404", Fault::No404),
    ("one-connection", Fault::OneConnection),
    ("upgrade-forgets-request", Fault::UpgradeForgetsRequest),
];

/// The faults switched on: one bit per `Fault`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Faults(u32);

impl Faults {
    /// True if `fault` is on.
    pub(super) fn has(self, fault: Fault) -> bool {
        self.0 & (1 << fault as u32) != 0
    }

    fn with(self, fault: Fault) -> Faults {
        Faults(self.0 | 1 << fault as u32)
    }
}

/// Parses the `fault` option: fault names separated by commas (spaces around them allowed).
pub(super) fn parse(text: &str) -> Result<Faults, String> {
    let mut faults = Faults::default();
    for name in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
        match FAULTS.iter().find(|(known, _)| *known == name) {
            Some(&(_, fault)) => faults = faults.with(fault),
            None => {
                let known: Vec<&str> = FAULTS.iter().map(|(known, _)| *known).collect();
                return Err(format!("unknown fault {name:?}; the faults are {}", known.join(", ")));
            }
        }
    }
    Ok(faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists() {
        assert_eq!(parse(""), Ok(Faults::default()));
        let both = parse("no-push , one-at-a-time").unwrap();
        assert!(both.has(Fault::NoPush) && both.has(Fault::OneAtATime));
        assert!(!parse("no-push").unwrap().has(Fault::OneAtATime));
        let err = parse("no-push,nosuch").unwrap_err();
        assert!(
            err.contains("\"nosuch\"") && err.contains("one-at-a-time, no-push, first-stream-only"),
            "{err}"
        );
        for (i, (name, fault)) in FAULTS.iter().enumerate() {
            assert_eq!(*fault as usize, i, "{name}: FAULTS is in declaration order");
            assert!(parse(name).unwrap().has(*fault));
        }
    }
}
