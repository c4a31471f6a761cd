//! The selected mailbox as one session sees it, and how its messages' flags are written in
//! responses (both the session and the message commands in `fetch.rs` use them).

use std::path::PathBuf;

use super::store::Entry;

/// The selected mailbox, as this session sees it: message sequence numbers are indices + 1.
#[derive(Debug)]
pub(super) struct Mailbox {
    /// Its directory.
    pub(super) dir: PathBuf,
    /// Selected with EXAMINE.
    pub(super) read_only: bool,
    /// Its UIDVALIDITY.
    pub(super) validity: u32,
    /// The messages, by sequence number; `recent` is this session's \Recent.
    pub(super) messages: Vec<Entry>,
}

impl Mailbox {
    /// The UID of the last message, 0 if none: what `*` means in a UID set.
    pub(super) fn max_uid(&self) -> u32 {
        self.messages.last().map_or(0, |m| m.uid)
    }
}

/// The flag list of a message, `(\Seen \Recent)`: \Recent is there when it is recent for this session.
pub(super) fn flag_list(entry: &Entry) -> String {
    let mut names: Vec<&str> = entry.flags.names().collect();
    if entry.recent {
        names.push("\\Recent");
    }
    format!("({})", names.join(" "))
}
