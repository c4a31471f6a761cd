//! Deliberate bugs, switched on with the `fault` option (a comma-separated
//! list of names; none by default). The harness has no student IMAP servers
//! to prove its suite with, so `tests/faults.rs` runs each case of
//! `suites/imap.yaml` tagged `bug-<name>` against this server with fault
//! `<name>` on, and checks that the case fails: the names are those tags
//! without `bug-`. Each fault is the small change to the correct code that a
//! server with that bug would have; none is ever on in a real run.

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// `tag-echo`: every tagged completion carries the tag A001.
    TagEcho,
    /// `any-password`: LOGIN accepts a known user with any password.
    AnyPassword,
    /// `quoted-strings`: LOGIN splits its arguments at spaces, quotes kept.
    QuotedStrings,
    /// `no-continuation`: no '+' before a synchronizing literal.
    NoContinuation,
    /// `no-auth-check`: commands other than LOGIN work before LOGIN.
    NoAuthCheck,
    /// `logout-no-bye`: LOGOUT sends no untagged BYE.
    LogoutNoBye,
    /// `wrong-exists`: SELECT reports one message fewer in EXISTS.
    WrongExists,
    /// `examine-writes`: EXAMINE selects read-write, like SELECT.
    ExamineWrites,
    /// `size-lf`: RFC822.SIZE counts LF line ends, not CRLF.
    SizeLf,
    /// `dot-stuffing`: BODY literals are dot-stuffed as in POP3, their length with them.
    DotStuffing,
    /// `peek-sets-seen`: BODY.PEEK sets \Seen like BODY.
    PeekSetsSeen,
    /// `never-seen`: fetching a body never sets \Seen.
    NeverSeen,
    /// `silent-ignored`: STORE .SILENT still sends FETCH responses.
    SilentIgnored,
    /// `no-renumber`: EXPUNGE removes files but keeps their message numbers in use.
    NoRenumber,
    /// `expunge-numbers`: EXPUNGE responses give numbers from before the expunge.
    ExpungeNumbers,
    /// `close-no-expunge`: CLOSE does not expunge.
    CloseNoExpunge,
    /// `uid-as-seq`: UID commands read their set as message numbers.
    UidAsSeq,
    /// `uidvalidity-changes`: every SELECT or EXAMINE reports a new UIDVALIDITY.
    UidvalidityChanges,
    /// `one-recv`: whatever one read returns is a whole command.
    OneRecv,
    /// `one-line-per-recv`: only the first line of each read is used, the rest dropped.
    OneLinePerRecv,
    /// `case-sensitive`: command names are recognised in upper case only.
    CaseSensitive,
    /// `crash-on-garbage`: a line without a tag closes the connection instead of getting BAD.
    CrashOnGarbage,
    /// `single-client`: one connection is served at a time.
    SingleClient,
    /// `starttls-runs-pipelined`: commands that arrived in clear text after STARTTLS, before
    /// the handshake, are executed after it (the command injection of CVE-2011-0411).
    StartTlsRunsPipelined,
    /// `starttls-again`: STARTTLS is still in CAPABILITY after TLS began, and a second one is
    /// answered OK (the session then goes on without a second handshake).
    StartTlsAgain,
    /// `login-in-clear`: LOGINDISABLED is advertised (`require_tls=yes`) but LOGIN is accepted.
    LoginInClear,
}

/// Each fault's name: its suite tag without `bug-`.
const FAULTS: &[(&str, Fault)] = &[
    ("tag-echo", Fault::TagEcho),
    ("any-password", Fault::AnyPassword),
    ("quoted-strings", Fault::QuotedStrings),
    ("no-continuation", Fault::NoContinuation),
    ("no-auth-check", Fault::NoAuthCheck),
    ("logout-no-bye", Fault::LogoutNoBye),
    ("wrong-exists", Fault::WrongExists),
    ("examine-writes", Fault::ExamineWrites),
    ("size-lf", Fault::SizeLf),
    ("dot-stuffing", Fault::DotStuffing),
    ("peek-sets-seen", Fault::PeekSetsSeen),
    ("never-seen", Fault::NeverSeen),
    ("silent-ignored", Fault::SilentIgnored),
    ("no-renumber", Fault::NoRenumber),
    ("expunge-numbers", Fault::ExpungeNumbers),
    ("close-no-expunge", Fault::CloseNoExpunge),
    ("uid-as-seq", Fault::UidAsSeq),
    ("uidvalidity-changes", Fault::UidvalidityChanges),
    ("one-recv", Fault::OneRecv),
    ("one-line-per-recv", Fault::OneLinePerRecv),
    ("case-sensitive", Fault::CaseSensitive),
    ("crash-on-garbage", Fault::CrashOnGarbage),
    ("single-client", Fault::SingleClient),
    ("starttls-runs-pipelined", Fault::StartTlsRunsPipelined),
    ("starttls-again", Fault::StartTlsAgain),
    ("login-in-clear", Fault::LoginInClear),
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
    let names = crate::faults::parse_names(text, FAULTS)?;
    Ok(names.into_iter().fold(Faults::default(), Faults::with))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists() {
        assert_eq!(parse(""), Ok(Faults::default()));
        let both = parse("size-lf, tag-echo").unwrap();
        assert!(both.has(Fault::SizeLf) && both.has(Fault::TagEcho) && !both.has(Fault::NeverSeen));
        let err = parse("tag-echo,nosuch").unwrap_err();
        assert!(err.contains("\"nosuch\"") && err.contains("single-client"), "{err}");
        for (i, (name, fault)) in FAULTS.iter().enumerate() {
            assert_eq!(*fault as usize, i, "{name}: FAULTS is in declaration order");
            assert!(parse(name).unwrap().has(*fault));
        }
    }
}
