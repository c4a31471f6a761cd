//! Deliberate bugs, switched on with the `fault` option (a comma-separated
//! list of names; none by default). Most cases of `suites/ftp.yaml` have no
//! buggy student sample to fail them, so `tests/faults.rs` runs each case
//! tagged `bug-<name>` against this server with fault `<name>` on, and checks
//! that the case fails: the names are those tags without `bug-`. Each fault
//! is the small change to the correct code that a server with that bug would
//! have; none is ever on in a real run.

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// `no-greeting`: no 220 when a client connects.
    NoGreeting,
    /// `no-password`: USER logs any name in at once with 230; no password is asked for.
    NoPassword,
    /// `quit-no-close`: QUIT gets 221 but the control connection stays open.
    QuitNoClose,
    /// `type-swapped`: TYPE A selects binary transfers and TYPE I ASCII ones.
    TypeSwapped,
    /// `basename-only`: a path names the file of its last name in the root; folders and the working folder are ignored.
    BasenameOnly,
    /// `split-on-spaces`: an argument with a space in it is 501 (the line split into words).
    SplitOnSpaces,
    /// `textbook-only`: only the textbook's commands are known; the others get 502.
    TextbookOnly,
    /// `list-ignores-path`: LIST and NLST list the working folder whatever they name.
    ListIgnoresPath,
    /// `list-folders-only`: LIST or NLST of a file is 550.
    ListFoldersOnly,
    /// `close-after-transfer`: the control connection is closed after a transfer's last reply.
    CloseAfterTransfer,
    /// `port-ignored`: PORT and EPRT get 200 but the data connection stays as it was.
    PortIgnored,
    /// `epsv-bare-port`: the 229 reply gives `(port)`, without the `|||` delimiters.
    EpsvBarePort,
    /// `epsv-all-ignored`: EPSV ALL gets 200, and PASV and PORT still work after it.
    EpsvAllIgnored,
    /// `rest-off-by-one`: after REST n, RETR starts at octet n+1.
    RestOffByOne,
    /// `rest-sticky`: a REST offset holds for every later transfer, not just the next.
    RestSticky,
    /// `size-ascii`: SIZE counts what a TYPE A transfer would send, in TYPE I too.
    SizeAscii,
    /// `errors-450`: every 550 (permanent) is sent as 450 (transient).
    Errors450,
    /// `appe-overwrites`: APPE writes from the start of an existing file and refuses a missing one.
    AppeOverwrites,
    /// `dele-ignored`: DELE answers 250 and deletes nothing.
    DeleIgnored,
    /// `rnfr-no-350`: RNFR answers 250, whether or not the file exists.
    RnfrNo350,
    /// `no-quotes`: the 257 replies of PWD and MKD give the path without its double quotes.
    NoQuotes,
    /// `rmd-rmtree`: RMD removes a folder with everything in it, and says 250 even if there was none.
    RmdRmtree,
    /// `stor-no-truncate`: STOR over a longer file leaves its tail in place.
    StorNoTruncate,
    /// `case-sensitive`: commands are recognised in upper case only.
    CaseSensitive,
    /// `no-530`: every command works before logging in.
    No530,
    /// `no-503`: PASS before USER is 530, RNTO without RNFR 550: neither says "bad sequence".
    No503,
    /// `unknown-200`: unknown and unimplemented commands, garbage too, get 200.
    Unknown200,
    /// `no-425`: a transfer with no PASV or PORT before it ends the session.
    No425,
    /// `no-syntax-errors`: USER without a name, a malformed PORT or EPRT, an unknown TYPE or MODE get success replies.
    NoSyntaxErrors,
    /// `traversal`: `..` may climb above the root, and an absolute path is the machine's own.
    Traversal,
    /// `bounce-allowed`: PORT and EPRT accept any host and any port (no RFC 2577 §3 checks).
    BounceAllowed,
    /// `crash-on-garbage`: a line that is not a command (too long, not text, no verb) ends the session.
    CrashOnGarbage,
    /// `one-recv`: whatever one read returns is a whole command.
    OneRecv,
    /// `crash-on-disconnect`: a client that leaves without QUIT stops the whole server.
    CrashOnDisconnect,
    /// `single-client`: one connection is served at a time.
    SingleClient,
}

/// Each fault's name: its suite tag without `bug-`.
pub(super) const FAULTS: &[(&str, Fault)] = &[
    ("no-greeting", Fault::NoGreeting),
    ("no-password", Fault::NoPassword),
    ("quit-no-close", Fault::QuitNoClose),
    ("type-swapped", Fault::TypeSwapped),
    ("basename-only", Fault::BasenameOnly),
    ("split-on-spaces", Fault::SplitOnSpaces),
    ("textbook-only", Fault::TextbookOnly),
    ("list-ignores-path", Fault::ListIgnoresPath),
    ("list-folders-only", Fault::ListFoldersOnly),
    ("close-after-transfer", Fault::CloseAfterTransfer),
    ("port-ignored", Fault::PortIgnored),
    ("epsv-bare-port", Fault::EpsvBarePort),
    ("epsv-all-ignored", Fault::EpsvAllIgnored),
    ("rest-off-by-one", Fault::RestOffByOne),
    ("rest-sticky", Fault::RestSticky),
    ("size-ascii", Fault::SizeAscii),
    ("errors-450", Fault::Errors450),
    ("appe-overwrites", Fault::AppeOverwrites),
    ("dele-ignored", Fault::DeleIgnored),
    ("rnfr-no-350", Fault::RnfrNo350),
    ("no-quotes", Fault::NoQuotes),
    ("rmd-rmtree", Fault::RmdRmtree),
    ("stor-no-truncate", Fault::StorNoTruncate),
    ("case-sensitive", Fault::CaseSensitive),
    ("no-530", Fault::No530),
    ("no-503", Fault::No503),
    ("unknown-200", Fault::Unknown200),
    ("no-425", Fault::No425),
    ("no-syntax-errors", Fault::NoSyntaxErrors),
    ("traversal", Fault::Traversal),
    ("bounce-allowed", Fault::BounceAllowed),
    ("crash-on-garbage", Fault::CrashOnGarbage),
    ("one-recv", Fault::OneRecv),
    ("crash-on-disconnect", Fault::CrashOnDisconnect),
    ("single-client", Fault::SingleClient),
];

/// The commands of the textbook's FTP session (K&R 2.3) and what a client needs around them.
pub(super) const TEXTBOOK: &[&str] = &[
    "USER", "PASS", "QUIT", "PWD", "CWD", "CDUP", "TYPE", "PASV", "PORT", "LIST", "RETR", "STOR",
];

/// The faults switched on: one bit per `Fault`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Faults(u64);

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
        let both = parse("traversal, no-530").unwrap();
        assert!(both.has(Fault::Traversal) && both.has(Fault::No530) && !both.has(Fault::OneRecv));
        let err = parse("no-530,nosuch").unwrap_err();
        assert!(err.contains("\"nosuch\"") && err.contains("single-client"), "{err}");
        for (i, (name, fault)) in FAULTS.iter().enumerate() {
            assert_eq!(*fault as usize, i, "{name}: FAULTS is in declaration order");
            assert!(parse(name).unwrap().has(*fault));
        }
    }
}
