//! The commands of the selected state that work on messages: FETCH, STORE,
//! SEARCH and EXPUNGE (RFC 9051 §6.4), with or without UID.
//!
//! A message file that has disappeared since the session last looked (POP3
//! or another session removed it) is left out of FETCH and STORE responses,
//! and the command ends in `NO [EXPUNGEISSUED]`; it is reported expunged at
//! the next NOOP, CHECK or EXPUNGE, never in the middle of FETCH, STORE or
//! SEARCH, where RFC 9051 §7.5.1 forbids it.

use std::fs;
use std::time::SystemTime;

use super::fault::{Fault, Faults};
use super::mailbox::{flag_list, Mailbox};
use super::message::{astring, contains_ci, date_time, envelope, field, fields, header_fields, literal, split};
use super::parse::{FetchItem, SearchKey, Section, SeqNo, SeqSet, StoreMode};
use super::reply::{server_bug, Reply};
use super::store::{Entry, Expunged, Flags, Store};
use super::wire::{Conn, Gone};

/// The text of the NO for commands that met vanished messages.
const VANISHED: &str = "[EXPUNGEISSUED] Some messages were expunged by another session";

/// Indices of the messages `set` names, or the BAD for a message number that does not exist.
fn targets(mailbox: &Mailbox, uid: bool, set: &SeqSet, faults: Faults) -> Result<Vec<usize>, Reply> {
    // Fault uid-as-seq: a UID set is taken for message numbers.
    let uid = uid && !faults.has(Fault::UidAsSeq);
    let count = u32::try_from(mailbox.messages.len()).unwrap_or(u32::MAX);
    if !uid {
        // RFC 9051 §2.3.1.2: a message number beyond the mailbox (or `*` in an empty one) is a BAD.
        let too_high = match set.highest() {
            SeqNo::Star => count == 0,
            SeqNo::Number(n) => n > count,
        };
        if too_high {
            return Err(Reply::Bad("Invalid message sequence number".to_owned()));
        }
    }
    let max_uid = mailbox.max_uid();
    Ok((0..mailbox.messages.len())
        .filter(|&i| {
            let entry = &mailbox.messages[i];
            if uid {
                set.contains(entry.uid, max_uid)
            } else {
                set.contains(i as u32 + 1, count)
            }
        })
        .collect())
}

fn needs_contents(item: &FetchItem) -> bool {
    matches!(
        item,
        FetchItem::Envelope | FetchItem::Rfc822 | FetchItem::Rfc822Header | FetchItem::Rfc822Text | FetchItem::Body { .. }
    )
}

/// Items that set \Seen (RFC 9051 §6.4.5), unless the mailbox is read-only.
fn sets_seen(item: &FetchItem, faults: Faults) -> bool {
    match item {
        // Fault never-seen: nothing sets \Seen.
        _ if faults.has(Fault::NeverSeen) => false,
        // Fault peek-sets-seen: BODY.PEEK is taken for BODY.
        FetchItem::Body { .. } if faults.has(Fault::PeekSetsSeen) => true,
        _ => matches!(
            item,
            FetchItem::Rfc822 | FetchItem::Rfc822Text | FetchItem::Body { peek: false, .. }
        ),
    }
}

/// FETCH and UID FETCH.
pub(super) async fn fetch(
    store: &Store,
    mailbox: &mut Mailbox,
    conn: &mut Conn,
    uid: bool,
    set: &SeqSet,
    items: &[FetchItem],
    faults: Faults,
) -> Result<Reply, Gone> {
    let targets = match targets(mailbox, uid, set, faults) {
        Ok(targets) => targets,
        Err(reply) => return Ok(reply),
    };
    let mut wanted: Vec<FetchItem> = Vec::new();
    // UID FETCH always reports the UID (RFC 9051 §6.4.9).
    if uid && !items.contains(&FetchItem::Uid) {
        wanted.push(FetchItem::Uid);
    }
    for item in items {
        if !wanted.contains(item) {
            wanted.push(item.clone());
        }
    }
    let set_seen = !mailbox.read_only && wanted.iter().any(|item| sets_seen(item, faults));
    let mut vanished = false;
    for index in targets {
        let seq = index + 1;
        let entry = &mut mailbox.messages[index];
        let mut flags_changed = false;
        if set_seen && !entry.flags.contains(Flags::SEEN) {
            match store.set_flags(&mailbox.dir, &entry.unique, &entry.path, |f| f.union(Flags::SEEN)) {
                Ok(Some((path, flags))) => {
                    flags_changed = flags != entry.flags;
                    entry.path = path;
                    entry.flags = flags;
                }
                Ok(None) | Err(_) => {
                    vanished = true;
                    continue;
                }
            }
        }
        match fetch_one(store, &mailbox.dir, entry, &wanted, flags_changed, faults) {
            Some(response) => {
                conn.push(format!("* {seq} FETCH (").as_bytes());
                conn.push(&response);
                conn.push(b")\r\n");
            }
            None => vanished = true,
        }
        conn.flush_if_full().await?;
    }
    Ok(if vanished {
        Reply::No(VANISHED.to_owned())
    } else {
        Reply::Ok("FETCH completed".to_owned())
    })
}

/// The inside of one FETCH response, or `None` if the message's file is gone.
fn fetch_one(
    store: &Store,
    dir: &std::path::Path,
    entry: &mut Entry,
    wanted: &[FetchItem],
    flags_changed: bool,
    faults: Faults,
) -> Option<Vec<u8>> {
    let needs_file = wanted
        .iter()
        .any(|item| needs_contents(item) || matches!(item, FetchItem::Size | FetchItem::InternalDate));
    let mut contents = Vec::new();
    let (mut size, mut modified) = (0, SystemTime::UNIX_EPOCH);
    if needs_file {
        let path = store.locate(dir, &entry.unique, &entry.path)?;
        let metadata = fs::metadata(&path).ok()?;
        size = metadata.len();
        modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if wanted.iter().any(needs_contents) {
            contents = fs::read(&path).ok()?;
            size = contents.len() as u64;
        }
        if faults.has(Fault::SizeLf) {
            // The fault: the size the message would have with LF line ends.
            size -= fs::read(&path).ok()?.windows(2).filter(|pair| pair == b"\r\n").count() as u64;
        }
        entry.path = path;
    }
    let (header, text) = split(&contents);
    let mut out: Vec<u8> = Vec::new();
    let mut add = |name: &str, value: &[u8]| {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(value);
    };
    for item in wanted {
        match item {
            FetchItem::Uid => add("UID", entry.uid.to_string().as_bytes()),
            FetchItem::Flags => add("FLAGS", flag_list(entry).as_bytes()),
            FetchItem::Size => add("RFC822.SIZE", size.to_string().as_bytes()),
            FetchItem::InternalDate => add("INTERNALDATE", date_time(modified).as_bytes()),
            FetchItem::Envelope => add("ENVELOPE", &envelope(header)),
            FetchItem::Rfc822 => add("RFC822", &literal(&contents)),
            FetchItem::Rfc822Header => add("RFC822.HEADER", &literal(header)),
            FetchItem::Rfc822Text => add("RFC822.TEXT", &literal(text)),
            FetchItem::Body { section, partial, .. } => {
                let part = match section {
                    Section::Full => contents.clone(),
                    Section::Header => header.to_vec(),
                    Section::Text => text.to_vec(),
                    Section::Fields { not, names } => header_fields(header, names, *not),
                };
                let (name, data) = body_item(section, *partial, &part);
                if faults.has(Fault::DotStuffing) {
                    // The fault: dot-stuffed as a POP3 server would, the literal's length counting the extra dots.
                    add(&name, &literal(&dot_stuffed(data)));
                    continue;
                }
                add(&name, &literal(data));
            }
        }
    }
    // RFC 9051 §6.4.5: when fetching sets \Seen, the new flags are part of the response.
    if flags_changed && !wanted.contains(&FetchItem::Flags) {
        add("FLAGS", flag_list(entry).as_bytes());
    }
    Some(out)
}

/// The response name of a BODY item (`BODY[HEADER]<0>`) and the octets it carries.
fn body_item<'a>(section: &Section, partial: Option<(u32, u32)>, part: &'a [u8]) -> (String, &'a [u8]) {
    let spec = match section {
        Section::Full => String::new(),
        Section::Header => "HEADER".to_owned(),
        Section::Text => "TEXT".to_owned(),
        Section::Fields { not, names } => {
            let names: Vec<String> = names.iter().map(|n| String::from_utf8_lossy(&astring(n)).into_owned()).collect();
            format!("HEADER.FIELDS{} ({})", if *not { ".NOT" } else { "" }, names.join(" "))
        }
    };
    match partial {
        None => (format!("BODY[{spec}]"), part),
        Some((offset, length)) => {
            let start = (offset as usize).min(part.len());
            let end = start.saturating_add(length as usize).min(part.len());
            // RFC 9051 §6.4.5: the response gives only the origin octet.
            (format!("BODY[{spec}]<{offset}>"), &part[start..end])
        }
    }
}

/// `data` with a "." added before every line that starts with one (for the fault `dot-stuffing`).
fn dot_stuffed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, &byte) in data.iter().enumerate() {
        if byte == b'.' && (i == 0 || data[i - 1] == b'\n') {
            out.push(b'.');
        }
        out.push(byte);
    }
    out
}

/// STORE and UID STORE.
#[allow(clippy::too_many_arguments)] // one per part of the command
pub(super) async fn store(
    store: &Store,
    mailbox: &mut Mailbox,
    conn: &mut Conn,
    uid: bool,
    set: &SeqSet,
    mode: StoreMode,
    silent: bool,
    flags: Flags,
    faults: Faults,
) -> Result<Reply, Gone> {
    if mailbox.read_only {
        return Ok(Reply::No("Mailbox is read-only".to_owned()));
    }
    let targets = match targets(mailbox, uid, set, faults) {
        Ok(targets) => targets,
        Err(reply) => return Ok(reply),
    };
    let change = |current: Flags| match mode {
        StoreMode::Replace => flags,
        StoreMode::Add => current.union(flags),
        StoreMode::Remove => current.minus(flags),
    };
    let mut vanished = false;
    for index in targets {
        let entry = &mut mailbox.messages[index];
        match store.set_flags(&mailbox.dir, &entry.unique, &entry.path, change) {
            Ok(Some((path, new))) => {
                entry.path = path;
                entry.flags = new;
            }
            Ok(None) => {
                vanished = true;
                continue;
            }
            Err(e) => return Ok(Reply::No(server_bug(&e))),
        }
        // Fault silent-ignored: .SILENT makes no difference.
        if !silent || faults.has(Fault::SilentIgnored) {
            let uid_item = if uid { format!("UID {} ", entry.uid) } else { String::new() };
            conn.line(&format!("* {} FETCH ({uid_item}FLAGS {})", index + 1, flag_list(entry)));
            conn.flush_if_full().await?;
        }
    }
    Ok(if vanished {
        Reply::No(VANISHED.to_owned())
    } else {
        Reply::Ok("STORE completed".to_owned())
    })
}

/// EXPUNGE, or the silent expunge of CLOSE when `conn` is `None`. Numbers are
/// reported as they shift, in ascending order (each EXPUNGE renumbers the
/// messages after it), as in RFC 9051's example.
pub(super) fn expunge(store: &Store, mailbox: &mut Mailbox, mut conn: Option<&mut Conn>, faults: Faults) -> Reply {
    let mut index = 0;
    let mut removed = 0;
    let mut failure = None;
    while index < mailbox.messages.len() {
        let entry = &mailbox.messages[index];
        match store.expunge(&mailbox.dir, &entry.unique, &entry.path) {
            Ok(Expunged::Removed | Expunged::Vanished) => {
                if let Some(conn) = conn.as_deref_mut() {
                    // Fault expunge-numbers: the number the message had before this EXPUNGE began.
                    let number = if faults.has(Fault::ExpungeNumbers) {
                        index + removed + 1
                    } else {
                        index + 1
                    };
                    conn.line(&format!("* {number} EXPUNGE"));
                }
                if faults.has(Fault::NoRenumber) {
                    // The fault: the file is gone but its message keeps its number, and the ones after it theirs.
                    index += 1;
                    continue;
                }
                mailbox.messages.remove(index);
                removed += 1;
            }
            Ok(Expunged::Kept) => index += 1,
            Err(e) => {
                failure.get_or_insert(e);
                index += 1;
            }
        }
    }
    match failure {
        Some(e) => Reply::No(server_bug(&e)),
        None => Reply::Ok("EXPUNGE completed".to_owned()),
    }
}

/// SEARCH and UID SEARCH.
pub(super) fn search(store: &Store, mailbox: &Mailbox, conn: &mut Conn, uid: bool, charset: Option<&[u8]>, key: &SearchKey) -> Reply {
    if let Some(charset) = charset {
        if !charset.eq_ignore_ascii_case(b"US-ASCII") && !charset.eq_ignore_ascii_case(b"UTF-8") {
            return Reply::No("[BADCHARSET (US-ASCII UTF-8)] Unsupported charset".to_owned());
        }
    }
    let count = u32::try_from(mailbox.messages.len()).unwrap_or(u32::MAX);
    let max_uid = mailbox.max_uid();
    let mut found = String::from("* SEARCH");
    for (index, entry) in mailbox.messages.iter().enumerate() {
        let mut candidate = Candidate {
            store,
            mailbox,
            entry,
            seq: index as u32 + 1,
            count,
            max_uid,
            contents: None,
        };
        if candidate.matches(key) {
            found.push(' ');
            found.push_str(&if uid { entry.uid } else { index as u32 + 1 }.to_string());
        }
    }
    conn.line(&found);
    Reply::Ok("SEARCH completed".to_owned())
}

/// One message being tested against SEARCH keys; its file is read at most once, and only if a key needs it.
struct Candidate<'a> {
    store: &'a Store,
    mailbox: &'a Mailbox,
    entry: &'a Entry,
    seq: u32,
    count: u32,
    max_uid: u32,
    contents: Option<Option<Vec<u8>>>,
}

impl Candidate<'_> {
    fn contents(&mut self) -> Option<&[u8]> {
        if self.contents.is_none() {
            let path = self.store.locate(&self.mailbox.dir, &self.entry.unique, &self.entry.path);
            self.contents = Some(path.and_then(|path| fs::read(path).ok()));
        }
        self.contents.as_ref().and_then(|c| c.as_deref())
    }

    fn matches(&mut self, key: &SearchKey) -> bool {
        let flags = self.entry.flags;
        match key {
            SearchKey::And(keys) => keys.iter().all(|key| self.matches(key)),
            SearchKey::Or(left, right) => self.matches(left) || self.matches(right),
            SearchKey::Not(key) => !self.matches(key),
            SearchKey::Flags(wanted) => flags.contains(*wanted),
            SearchKey::NotFlag(unwanted) => !flags.contains(*unwanted),
            SearchKey::Recent => self.entry.recent,
            SearchKey::New => self.entry.recent && !flags.contains(Flags::SEEN),
            SearchKey::Old => !self.entry.recent,
            SearchKey::Keyword => false,
            SearchKey::Unkeyword => true,
            SearchKey::Uid(set) => set.contains(self.entry.uid, self.max_uid),
            SearchKey::Seq(set) => set.contains(self.seq, self.count),
            SearchKey::Larger(n) => self.contents().is_some_and(|c| c.len() as u64 > u64::from(*n)),
            SearchKey::Smaller(n) => self.contents().is_some_and(|c| (c.len() as u64) < u64::from(*n)),
            SearchKey::Text(needle) => self.contents().is_some_and(|c| contains_ci(c, needle)),
            SearchKey::Body(needle) => self.contents().is_some_and(|c| contains_ci(split(c).1, needle)),
            SearchKey::Header(name, needle) => self.contents().is_some_and(|c| {
                let (header, _) = split(c);
                let Ok(name) = std::str::from_utf8(name) else { return false };
                // Every field of that name counts, not just the first.
                fields(header)
                    .into_iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                    .any(|(_, raw)| field(raw, name).is_some_and(|value| contains_ci(&value, needle)))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_bodies() {
        let (name, data) = body_item(&Section::Full, Some((2, 3)), b"abcdefg");
        assert_eq!((name.as_str(), data), ("BODY[]<2>", &b"cde"[..]));
        let (name, data) = body_item(&Section::Text, Some((10, 3)), b"abc");
        assert_eq!((name.as_str(), data), ("BODY[TEXT]<10>", &b""[..]));
        let section = Section::Fields {
            not: true,
            names: vec![b"From".to_vec()],
        };
        assert_eq!(body_item(&section, None, b"").0, "BODY[HEADER.FIELDS.NOT (From)]");
    }
}
