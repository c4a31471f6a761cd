//! The mail store on disk, as `fixtures/mail/STORE-FORMAT.md` describes it:
//! `passwd`, one Maildir per mailbox (INBOX is the user's directory, other
//! mailboxes are Maildir++ folders `.Name`), flags in file names, and the
//! `wirecheck-uids` file that makes UIDs outlive a session.
//!
//! Every change to the files of a mailbox happens under one lock per store,
//! so two sessions of this server never assign the same UID twice or rename a
//! file from under each other. Other processes (the SMTP and POP3 servers)
//! only ever add files to `new/`, move them to `cur/` or delete them, and a
//! file that disappears is treated as expunged.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// The name of the one mailbox every user has (case-insensitive on input).
pub(super) const INBOX: &str = "INBOX";
/// The hierarchy delimiter, which is also Maildir++'s.
pub(super) const DELIMITER: char = '.';
/// The UID file in every mailbox directory.
const UIDS: &str = "wirecheck-uids";
/// Longest mailbox name accepted.
const MAX_NAME: usize = 255;
/// Longest user name accepted.
const MAX_USER: usize = 64;

/// The five system flags that outlive a session, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Flags(u8);

impl Flags {
    /// `\Answered`, Maildir `R`.
    pub(super) const ANSWERED: Flags = Flags(1);
    /// `\Flagged`, Maildir `F`.
    pub(super) const FLAGGED: Flags = Flags(2);
    /// `\Deleted`, Maildir `T`.
    pub(super) const DELETED: Flags = Flags(4);
    /// `\Seen`, Maildir `S`.
    pub(super) const SEEN: Flags = Flags(8);
    /// `\Draft`, Maildir `D`.
    pub(super) const DRAFT: Flags = Flags(16);

    /// IMAP name and Maildir letter of each flag, in the order FLAGS lists them.
    const TABLE: [(Flags, &'static str, char); 5] = [
        (Flags::ANSWERED, "\\Answered", 'R'),
        (Flags::FLAGGED, "\\Flagged", 'F'),
        (Flags::DELETED, "\\Deleted", 'T'),
        (Flags::SEEN, "\\Seen", 'S'),
        (Flags::DRAFT, "\\Draft", 'D'),
    ];

    /// True if every flag of `other` is set.
    pub(super) fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags of both.
    pub(super) fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// These flags without those of `other`.
    pub(super) fn minus(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// The flag called `name` (`\Seen`, any case).
    pub(super) fn from_name(name: &[u8]) -> Option<Flags> {
        Flags::TABLE
            .iter()
            .find(|(_, imap, _)| imap.as_bytes().eq_ignore_ascii_case(name))
            .map(|(flag, _, _)| *flag)
    }

    /// The IMAP names of the flags that are set.
    pub(super) fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::TABLE
            .into_iter()
            .filter(move |(flag, _, _)| self.contains(*flag))
            .map(|(_, name, _)| name)
    }

    /// Flags from the part of a `cur/` file name after `:2,`; unknown letters are dropped.
    fn from_maildir(info: &str) -> Flags {
        let mut flags = Flags::default();
        for (flag, _, letter) in Flags::TABLE {
            if info.contains(letter) {
                flags = flags.union(flag);
            }
        }
        flags
    }

    /// The Maildir letters, sorted as the store format requires.
    fn maildir(self) -> String {
        let mut letters: Vec<char> = Flags::TABLE
            .iter()
            .filter(|(flag, _, _)| self.contains(*flag))
            .map(|(_, _, letter)| *letter)
            .collect();
        letters.sort_unstable();
        letters.into_iter().collect()
    }
}

/// One message of a mailbox as the last scan found it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Its UID, unique within the mailbox for this UIDVALIDITY.
    pub(super) uid: u32,
    /// The `<unique>` part of its file name, which never changes.
    pub(super) unique: String,
    /// Where the file was.
    pub(super) path: PathBuf,
    /// Its permanent flags.
    pub(super) flags: Flags,
    /// Whether it was in `new/`, i.e. no session had seen it yet.
    pub(super) recent: bool,
}

/// A mailbox's UID state and messages in UID order.
#[derive(Debug)]
pub(super) struct Snapshot {
    /// The mailbox's UIDVALIDITY.
    pub(super) validity: u32,
    /// The UID the next new message will get.
    pub(super) next_uid: u32,
    /// The messages, by ascending UID.
    pub(super) messages: Vec<Entry>,
}

/// Why a mailbox operation failed (each maps to a NO response code).
#[derive(Debug)]
pub(super) enum Refusal {
    /// No mailbox has that name.
    NonExistent,
    /// A mailbox already has that name.
    AlreadyExists,
    /// The mailbox has inferior mailboxes.
    HasChildren,
    /// The name or operation is not allowed here.
    Cannot(&'static str),
    /// The file system said no.
    Io(io::Error),
}

impl From<io::Error> for Refusal {
    fn from(error: io::Error) -> Self {
        Refusal::Io(error)
    }
}

/// What `expunge` did with one message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Expunged {
    /// It had `\Deleted` and is gone now.
    Removed,
    /// Someone else removed it already.
    Vanished,
    /// It stays.
    Kept,
}

/// The store, shared by all sessions of one server.
#[derive(Debug)]
pub(super) struct Store {
    root: PathBuf,
    lock: Mutex<()>,
}

impl Store {
    /// A store rooted at `root` (which must exist).
    pub(super) fn new(root: PathBuf) -> Store {
        Store {
            root,
            lock: Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded data is (); a panic elsewhere cannot have corrupted it.
        self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The user's name if `passwd` lists this user with this password; creates their INBOX if missing.
    /// `check_password` is false only for the deliberate bug `any-password` (see `fault.rs`).
    pub(super) fn authenticate(&self, user: &[u8], password: &[u8], check_password: bool) -> io::Result<Option<String>> {
        let Some(user) = std::str::from_utf8(user).ok().filter(|u| valid_user(u)) else {
            return Ok(None);
        };
        let passwd = match fs::read(self.root.join("passwd")) {
            Ok(passwd) => passwd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let known = passwd.split(|&b| b == b'\n').any(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':');
            colon.is_some_and(|at| &line[..at] == user.as_bytes() && (!check_password || &line[at + 1..] == password))
        });
        if !known {
            return Ok(None);
        }
        let home = self.root.join(user);
        if fs::symlink_metadata(&home).is_ok_and(|m| !m.is_dir()) {
            // A symlink or file where the INBOX should be could lead outside the store.
            return Ok(None);
        }
        let _guard = self.lock();
        make_maildir(&home)?;
        Ok(Some(user.to_owned()))
    }

    /// The directory of mailbox `name` (a name `mailbox_name` accepted) of `user`.
    pub(super) fn dir(&self, user: &str, name: &str) -> PathBuf {
        let home = self.root.join(user);
        if name == INBOX {
            home
        } else {
            home.join(format!("{DELIMITER}{name}"))
        }
    }

    /// True if `user` has a mailbox called `name`.
    pub(super) fn exists(&self, user: &str, name: &str) -> bool {
        is_real_dir(&self.dir(user, name))
    }

    /// Every mailbox of `user`: INBOX first, then the others sorted.
    pub(super) fn list(&self, user: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.root.join(user))? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let Ok(file_name) = entry.file_name().into_string() else { continue };
            if let Some(name) = file_name.strip_prefix(DELIMITER) {
                if mailbox_name(name.as_bytes()).is_ok_and(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        names.insert(0, INBOX.to_owned());
        Ok(names)
    }

    /// Creates mailbox `name` and any missing superiors (RFC 9051 §6.3.4).
    pub(super) fn create(&self, user: &str, name: &str) -> Result<(), Refusal> {
        if name == INBOX || self.exists(user, name) {
            return Err(Refusal::AlreadyExists);
        }
        let _guard = self.lock();
        self.create_locked(user, name)
    }

    fn create_locked(&self, user: &str, name: &str) -> Result<(), Refusal> {
        let mut prefix = String::new();
        for part in name.split(DELIMITER) {
            if !prefix.is_empty() {
                prefix.push(DELIMITER);
            }
            prefix.push_str(part);
            let dir = self.dir(user, &prefix);
            if !is_real_dir(&dir) {
                fs::create_dir(&dir)?;
                make_maildir(&dir)?;
                // Writing the UID file now fixes the UIDVALIDITY of this incarnation of the name.
                sync_locked(&dir, false)?;
            }
        }
        Ok(())
    }

    /// Deletes mailbox `name` with its messages; INBOX and mailboxes with inferiors cannot be deleted.
    pub(super) fn delete(&self, user: &str, name: &str) -> Result<(), Refusal> {
        if name == INBOX {
            return Err(Refusal::Cannot("INBOX cannot be deleted"));
        }
        let _guard = self.lock();
        if !self.exists(user, name) {
            return Err(Refusal::NonExistent);
        }
        if !children(&self.list(user)?, name).is_empty() {
            return Err(Refusal::HasChildren);
        }
        fs::remove_dir_all(self.dir(user, name))?;
        Ok(())
    }

    /// Renames `from` and its inferiors to `to`; renaming INBOX moves its messages instead (RFC 9051 §6.3.6).
    pub(super) fn rename(&self, user: &str, from: &str, to: &str) -> Result<(), Refusal> {
        let _guard = self.lock();
        if !self.exists(user, from) {
            return Err(Refusal::NonExistent);
        }
        if to == INBOX || self.exists(user, to) {
            return Err(Refusal::AlreadyExists);
        }
        if to.strip_prefix(from).is_some_and(|rest| rest.starts_with(DELIMITER)) {
            return Err(Refusal::Cannot("a mailbox cannot be moved under itself"));
        }
        self.create_locked(user, to)?;
        let target = self.dir(user, to);
        if from == INBOX {
            let inbox = self.dir(user, INBOX);
            for sub in ["cur", "new"] {
                for entry in fs::read_dir(inbox.join(sub))? {
                    let entry = entry?;
                    if entry.file_type()?.is_file() {
                        fs::rename(entry.path(), target.join(sub).join(entry.file_name()))?;
                    }
                }
            }
            return Ok(());
        }
        // The directory just made for `to` is replaced by the one being renamed, UID file and all.
        fs::remove_dir_all(&target)?;
        let all = self.list(user)?;
        fs::rename(self.dir(user, from), &target)?;
        for child in children(&all, from) {
            let renamed = format!("{to}{}", &child[from.len()..]);
            fs::rename(self.dir(user, &child), self.dir(user, &renamed))?;
        }
        Ok(())
    }

    /// Scans the mailbox in `dir`, assigning UIDs to new messages; with `take_new`, moves `new/` to `cur/`.
    pub(super) fn sync(&self, dir: &Path, take_new: bool) -> io::Result<Snapshot> {
        let _guard = self.lock();
        sync_locked(dir, take_new)
    }

    /// Adds a message to the mailbox in `dir` with `flags` and, if given, `date` as its INTERNALDATE.
    /// Returns (UIDVALIDITY, UID).
    pub(super) fn append(&self, dir: &Path, flags: Flags, date: Option<SystemTime>, message: &[u8]) -> io::Result<(u32, u32)> {
        let _guard = self.lock();
        make_maildir(dir)?;
        let taken: HashSet<String> = scan(dir)?.into_iter().map(|found| found.unique).collect();
        let (unique, file) = loop {
            let unique = new_unique();
            if taken.contains(&unique) {
                continue;
            }
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join("tmp").join(&unique))
            {
                Ok(file) => break (unique, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let tmp = dir.join("tmp").join(&unique);
        let written = io::Write::write_all(&mut &file, message).and_then(|()| match date {
            Some(date) => file.set_modified(date),
            None => Ok(()),
        });
        drop(file);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, dir.join("cur").join(format!("{unique}:2,{}", flags.maildir())))?;
        let snapshot = sync_locked(dir, false)?;
        let uid = snapshot.messages.iter().find(|m| m.unique == unique).map_or(0, |m| m.uid);
        Ok((snapshot.validity, uid))
    }

    /// Finds message `unique` (last seen at `hint`) and gives it the flags `change` makes of its current ones.
    /// Returns its new path and flags, or `None` if it is gone.
    pub(super) fn set_flags(
        &self,
        dir: &Path,
        unique: &str,
        hint: &Path,
        change: impl FnOnce(Flags) -> Flags,
    ) -> io::Result<Option<(PathBuf, Flags)>> {
        let _guard = self.lock();
        let Some((path, flags)) = locate(dir, unique, hint) else {
            return Ok(None);
        };
        let flags = change(flags);
        let target = dir.join("cur").join(format!("{unique}:2,{}", flags.maildir()));
        if target != path {
            match fs::rename(&path, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some((target, flags)))
    }

    /// The current path of message `unique` (last seen at `hint`), if it still exists.
    pub(super) fn locate(&self, dir: &Path, unique: &str, hint: &Path) -> Option<PathBuf> {
        let _guard = self.lock();
        locate(dir, unique, hint).map(|(path, _)| path)
    }

    /// Removes message `unique` if it has `\Deleted`.
    pub(super) fn expunge(&self, dir: &Path, unique: &str, hint: &Path) -> io::Result<Expunged> {
        let _guard = self.lock();
        let Some((path, flags)) = locate(dir, unique, hint) else {
            return Ok(Expunged::Vanished);
        };
        if !flags.contains(Flags::DELETED) {
            return Ok(Expunged::Kept);
        }
        match fs::remove_file(path) {
            Ok(()) => Ok(Expunged::Removed),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Expunged::Vanished),
            Err(e) => Err(e),
        }
    }
}

/// `raw` as a mailbox name: `INBOX` in any case becomes `INBOX`; a trailing
/// delimiter is dropped (RFC 9051 §6.3.4). Only printable ASCII (modified
/// UTF-7 is ASCII) without `/`, `\`, `*` or `%` is allowed, in non-empty
/// levels, and nothing below INBOX: these keep every name a single,
/// unambiguous directory name inside the user's directory.
pub(super) fn mailbox_name(raw: &[u8]) -> Result<String, &'static str> {
    let raw = raw.strip_suffix(&[DELIMITER as u8]).filter(|r| !r.is_empty()).unwrap_or(raw);
    if raw.eq_ignore_ascii_case(INBOX.as_bytes()) {
        return Ok(INBOX.to_owned());
    }
    if raw.is_empty() || raw.len() > MAX_NAME {
        return Err("mailbox names have 1 to 255 characters");
    }
    if raw.iter().any(|&b| !(0x20..0x7f).contains(&b) || b"/\\*%".contains(&b)) {
        return Err("mailbox names are printable ASCII without / \\ * %");
    }
    let mut levels = raw.split(|&b| b == DELIMITER as u8);
    if levels.clone().any(<[u8]>::is_empty) {
        return Err("mailbox names have no empty levels");
    }
    if levels.next().is_some_and(|first| first.eq_ignore_ascii_case(INBOX.as_bytes())) {
        return Err("mailboxes below INBOX are not supported");
    }
    // Checked above: printable ASCII.
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// The mailboxes in `all` below `name`.
pub(super) fn children(all: &[String], name: &str) -> Vec<String> {
    all.iter()
        .filter(|other| other.strip_prefix(name).is_some_and(|rest| rest.starts_with(DELIMITER)))
        .cloned()
        .collect()
}

/// User names become directory names, so they are kept to a safe alphabet.
fn valid_user(user: &str) -> bool {
    (1..=MAX_USER).contains(&user.len()) && !user.starts_with('.') && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A directory, not a symlink to one (which could lead outside the store).
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Creates `cur/`, `new/` and `tmp/` as needed; refuses symlinked ones, through which renames could leave the store.
fn make_maildir(dir: &Path) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        let sub = dir.join(sub);
        fs::create_dir_all(&sub)?;
        if !is_real_dir(&sub) {
            return Err(io::Error::other(format!("{} is not a plain directory", sub.display())));
        }
    }
    Ok(())
}

/// `<unix-seconds>.<6-digit counter>.wirecheck`, so names sort in delivery order.
fn new_unique() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    format!("{}.{counter:06}.wirecheck", unix_now())
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A UIDVALIDITY above `previous` and above every one this process handed out:
/// a mailbox deleted and created again within a second must not get the same one.
fn new_validity(previous: u32) -> u32 {
    static LAST: AtomicU32 = AtomicU32::new(0);
    let now = u32::try_from(unix_now()).unwrap_or(u32::MAX);
    let mut chosen = 0;
    let _ = LAST.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
        chosen = now.max(last.saturating_add(1)).max(previous.saturating_add(1)).max(1);
        Some(chosen)
    });
    chosen
}

/// Unique names go into the UID file, one per line, so they must be plain.
fn valid_unique(unique: &str) -> bool {
    !unique.is_empty() && !unique.starts_with('.') && unique.bytes().all(|b| b.is_ascii_graphic())
}

/// A message file found by `scan`.
struct Found {
    unique: String,
    path: PathBuf,
    flags: Flags,
    in_new: bool,
}

/// The messages in `cur/` and `new/`; anything that is not a plain file with a plain name is ignored.
fn scan(dir: &Path) -> io::Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for (sub, in_new) in [("cur", false), ("new", true)] {
        let entries = match fs::read_dir(dir.join(sub)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let Ok(name) = entry.file_name().into_string() else { continue };
            let (unique, info) = match name.split_once(':') {
                Some((unique, info)) => (unique, info.strip_prefix("2,").unwrap_or("")),
                None => (name.as_str(), ""),
            };
            if !valid_unique(unique) || !seen.insert(unique.to_owned()) {
                continue;
            }
            found.push(Found {
                unique: unique.to_owned(),
                path: entry.path(),
                flags: if in_new { Flags::default() } else { Flags::from_maildir(info) },
                in_new,
            });
        }
    }
    Ok(found)
}

/// Message `unique`'s path and flags: at `hint` if it is still there, else wherever a scan finds it.
fn locate(dir: &Path, unique: &str, hint: &Path) -> Option<(PathBuf, Flags)> {
    let hinted = hint
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.split(':').next() == Some(unique));
    if hinted && fs::symlink_metadata(hint).is_ok_and(|m| m.is_file()) {
        let in_new = hint.parent().and_then(Path::file_name).is_some_and(|sub| sub == "new");
        let name = hint.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let info = name.split_once(":2,").map_or("", |(_, info)| info);
        let flags = if in_new { Flags::default() } else { Flags::from_maildir(info) };
        return Some((hint.to_owned(), flags));
    }
    let found = scan(dir).ok()?.into_iter().find(|found| found.unique == unique)?;
    Some((found.path, found.flags))
}

/// The contents of a UID file: UIDVALIDITY, next UID and UID by unique name.
struct Uids {
    validity: u32,
    next_uid: u32,
    by_unique: HashMap<String, u32>,
}

/// Reads `dir`'s UID file; a missing or damaged one starts a new UIDVALIDITY (above the old one, if readable).
fn read_uids(dir: &Path) -> io::Result<(Uids, String)> {
    let text = match fs::read(dir.join(UIDS)) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    let numbers = |line: &str| -> Option<(u32, String)> {
        let (number, rest) = line.split_once(' ')?;
        Some((number.parse().ok()?, rest.to_owned()))
    };
    let header = lines.next().and_then(numbers);
    let (validity, next_uid) = match &header {
        Some((validity, next)) if *validity > 0 => match next.parse::<u32>() {
            Ok(next) if next > 0 => (*validity, next),
            _ => (new_validity(*validity), 1),
        },
        Some((validity, _)) => (new_validity(*validity), 1),
        None => (new_validity(0), 1),
    };
    let mut uids = Uids {
        validity,
        next_uid,
        by_unique: HashMap::new(),
    };
    if header.as_ref().is_some_and(|(v, _)| *v == validity) {
        let mut used = HashSet::new();
        for (uid, unique) in lines.filter_map(numbers) {
            if uid > 0 && used.insert(uid) {
                uids.by_unique.entry(unique).or_insert(uid);
                uids.next_uid = uids.next_uid.max(uid.saturating_add(1));
            }
        }
    }
    Ok((uids, text))
}

fn sync_locked(dir: &Path, take_new: bool) -> io::Result<Snapshot> {
    make_maildir(dir)?;
    let mut found = scan(dir)?;
    if take_new {
        let mut gone = HashSet::new();
        for message in found.iter_mut().filter(|m| m.in_new) {
            let to = dir.join("cur").join(format!("{}:2,", message.unique));
            match fs::rename(&message.path, &to) {
                Ok(()) => message.path = to,
                // Taken by another process (a POP3 session) since the scan: it will be found next time.
                Err(_) => {
                    gone.insert(message.unique.clone());
                }
            }
        }
        found.retain(|m| !gone.contains(&m.unique));
    }
    let (mut uids, old_text) = read_uids(dir)?;
    let (mut known, mut fresh): (Vec<Found>, Vec<Found>) = found.into_iter().partition(|m| uids.by_unique.contains_key(&m.unique));
    if uids.next_uid.checked_add(u32::try_from(fresh.len()).unwrap_or(u32::MAX)).is_none() {
        // UIDs ran out: start over with a new UIDVALIDITY.
        uids = Uids {
            validity: new_validity(uids.validity),
            next_uid: 1,
            by_unique: HashMap::new(),
        };
        fresh.append(&mut known);
    }
    fresh.sort_by(|a, b| a.unique.cmp(&b.unique));
    let mut messages: Vec<Entry> = Vec::with_capacity(known.len() + fresh.len());
    for message in known {
        let uid = uids.by_unique[&message.unique];
        messages.push(entry(uid, message));
    }
    messages.sort_by_key(|m| m.uid);
    for message in fresh {
        messages.push(entry(uids.next_uid, message));
        uids.next_uid += 1;
    }
    let mut text = format!("{} {}\n", uids.validity, uids.next_uid);
    for message in &messages {
        text.push_str(&format!("{} {}\n", message.uid, message.unique));
    }
    if text != old_text {
        // Write-then-rename: a crash never leaves a half-written UID file.
        let partial = dir.join(format!("{UIDS}.new"));
        fs::write(&partial, &text)?;
        fs::rename(&partial, dir.join(UIDS))?;
    }
    Ok(Snapshot {
        validity: uids.validity,
        next_uid: uids.next_uid,
        messages,
    })
}

fn entry(uid: u32, found: Found) -> Entry {
    Entry {
        uid,
        unique: found.unique,
        path: found.path,
        flags: found.flags,
        recent: found.in_new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildir_letters_round_trip() {
        let flags = Flags::SEEN.union(Flags::ANSWERED).union(Flags::DELETED);
        assert_eq!(flags.maildir(), "RST");
        assert_eq!(Flags::from_maildir("RST"), flags);
        assert_eq!(Flags::DRAFT.union(Flags::FLAGGED).maildir(), "DF");
        assert_eq!(flags.names().collect::<Vec<_>>(), ["\\Answered", "\\Deleted", "\\Seen"]);
        assert_eq!(Flags::from_name(b"\\sEEn"), Some(Flags::SEEN));
        assert_eq!(Flags::from_name(b"\\Recent"), None);
    }

    #[test]
    fn mailbox_names() {
        assert_eq!(mailbox_name(b"inbox").as_deref(), Ok("INBOX"));
        assert_eq!(mailbox_name(b"Archive.2024").as_deref(), Ok("Archive.2024"));
        assert_eq!(mailbox_name(b"Drafts.").as_deref(), Ok("Drafts"));
        for bad in [
            &b""[..],
            b".",
            b"a..b",
            b".a",
            b"a/b",
            b"../x",
            b"a*",
            b"INBOX.x",
            b"caf\xc3\xa9",
            b"a\r\nb",
        ] {
            assert!(mailbox_name(bad).is_err(), "{bad:?}");
        }
        let all = ["INBOX", "a", "a.b", "ab"].map(String::from);
        assert_eq!(children(&all, "a"), ["a.b"]);
    }

    #[test]
    fn uids_persist_and_damage_gets_a_new_validity() {
        let dir = tempfile::tempdir().expect("tempdir");
        make_maildir(dir.path()).expect("maildir");
        fs::write(dir.path().join("new/1.000001.wirecheck"), b"a").expect("write");
        fs::write(dir.path().join("cur/1.000000.wirecheck:2,S"), b"b").expect("write");
        let first = sync_locked(dir.path(), true).expect("sync");
        let uids: Vec<_> = first.messages.iter().map(|m| (m.uid, m.unique.as_str(), m.recent)).collect();
        assert_eq!(uids, [(1, "1.000000.wirecheck", false), (2, "1.000001.wirecheck", true)]);
        assert!(dir.path().join("cur/1.000001.wirecheck:2,").is_file());
        let again = sync_locked(dir.path(), true).expect("sync");
        assert_eq!((again.validity, again.next_uid), (first.validity, 3));
        assert!(again.messages.iter().all(|m| !m.recent));
        fs::write(dir.path().join(UIDS), b"garbage\n").expect("write");
        let fresh = sync_locked(dir.path(), true).expect("sync");
        assert_ne!(fresh.validity, first.validity);
    }

    #[test]
    fn symlinked_maildir_folders_are_refused() {
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("1.000000.wirecheck"), b"secret").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("new")).expect("symlink");
        assert!(sync_locked(dir.path(), true).is_err());
        assert!(outside.path().join("1.000000.wirecheck").is_file(), "nothing was moved out of it");
    }
}
