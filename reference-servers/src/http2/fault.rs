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
    /// `strict-unknown`: frames of unknown types, unknown SETTINGS and flags a type does not
    /// define are taken for a PROTOCOL_ERROR (RFC 9113 §4.1, §5.5, §6.5.2 say ignore them).
    StrictUnknown,
    /// `no-padding`: a padded DATA or HEADERS frame is taken for a PROTOCOL_ERROR.
    NoPadding,
    /// `no-continuation`: a CONTINUATION frame is taken for a PROTOCOL_ERROR.
    NoContinuation,
    /// `no-priority`: a PRIORITY frame is taken for a PROTOCOL_ERROR.
    NoPriority,
    /// `no-ping-ack`: a PING is never answered.
    NoPingAck,
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
];

/// The faults switched on: one bit per `Fault`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Faults(u8);

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
