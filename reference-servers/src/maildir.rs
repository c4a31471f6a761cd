//! The mail store the SMTP and POP3 servers share (`fixtures/mail/STORE-FORMAT.md`).
//!
//! ```text
//! <store>/passwd            user:password per line
//! <store>/<user>/{cur,new,tmp}/
//! <store>/<user>/.<Name>/{cur,new,tmp}/
//! ```
//!
//! Only names listed in `passwd` that look like plain login names become
//! paths, and no path component is ever followed through a symlink, so a
//! client (or an odd store given with `maildir`) cannot make a server write
//! outside the store.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::{Error, OptionSet};

/// The default seed, relative to the current directory.
const DEFAULT_SEED: &str = "fixtures/mail/store";
/// The repository's seed, for a default seed when run from elsewhere (e.g. `cargo test`).
const CHECKOUT_SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/mail/store");
/// A passwd file larger than this is not a passwd file.
const MAX_PASSWD: u64 = 1 << 20;
/// Longer login names are refused; they would only make long paths.
const MAX_USER: usize = 64;
/// Whole messages are read into memory to be served; a bigger file is left alone.
pub(crate) const MAX_MESSAGE_FILE: u64 = 256 << 20;

/// A mail store on disk. Cheap to clone; every clone names the same directory.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    root: Arc<PathBuf>,
}

/// One message file in a mailbox.
#[derive(Debug, Clone)]
pub(crate) struct MessageFile {
    /// The `<unique>` part of the file name (POP3's UIDL).
    pub(crate) unique: String,
    /// The file itself.
    pub(crate) path: PathBuf,
    /// Its size in octets, which is the message's size.
    pub(crate) size: u64,
}

/// Opens the store the options ask for: `maildir` in place, or a temporary
/// copy of `seed` (default `fixtures/mail/store`). The `TempDir`, if any,
/// must live as long as the server: dropping it removes the copy.
pub(crate) fn open(opts: &OptionSet<'_>) -> Result<(Store, Option<TempDir>), Error> {
    let (root, temporary) = match (opts.given("maildir"), opts.given("seed")) {
        (Some(dir), Some(_)) => {
            return Err(Error::BadOption {
                server: opts.who.to_owned(),
                key: "maildir".to_owned(),
                value: dir.to_owned(),
                why: "`maildir` (use a store in place) and `seed` (copy one) cannot be combined".to_owned(),
            })
        }
        (Some(dir), None) => (opts.parse("maildir", dir, store_root)?, None),
        (None, seed) => {
            let seed = match seed {
                Some(seed) => opts.parse("seed", seed, store_root)?,
                None => store_root(DEFAULT_SEED)
                    .or_else(|_| store_root(CHECKOUT_SEED))
                    .map_err(|why| Error::BadOption {
                        server: opts.who.to_owned(),
                        key: "seed".to_owned(),
                        value: DEFAULT_SEED.to_owned(),
                        why,
                    })?,
            };
            let temporary = tempfile::Builder::new().prefix("wirecheck-mail-").tempdir()?;
            copy_tree(&seed, temporary.path())?;
            (temporary.path().canonicalize()?, Some(temporary))
        }
    };
    let store = Store { root: Arc::new(root) };
    store.create_missing_dirs()?;
    Ok((store, temporary))
}

/// `dir` made canonical, if it is a directory with a `passwd` file.
fn store_root(dir: &str) -> Result<PathBuf, String> {
    let root = Path::new(dir)
        .canonicalize()
        .map_err(|e| format!("expected a mail store directory: {e}"))?;
    if !root.is_dir() {
        return Err("expected a mail store directory".to_owned());
    }
    if !root.join("passwd").is_file() {
        return Err("expected a mail store directory with a `passwd` file".to_owned());
    }
    Ok(root)
}

/// Copies directories and regular files; symlinks and anything else stay behind.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            fs::create_dir(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

impl Store {
    /// The store's directory (canonical).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The accounts in `passwd`, in file order. Lines that are not
    /// `name:password` with a plain name are skipped.
    pub(crate) fn accounts(&self) -> io::Result<Vec<(String, String)>> {
        let path = self.root.join("passwd");
        if fs::metadata(&path)?.len() > MAX_PASSWD {
            return Err(io::Error::other("passwd is too large"));
        }
        let text = fs::read_to_string(path)?;
        let accounts = text
            .lines()
            .filter_map(|line| line.trim_end_matches('\r').split_once(':'))
            .filter(|(user, _)| is_plain_name(user))
            .map(|(user, password)| (user.to_owned(), password.to_owned()))
            .collect();
        Ok(accounts)
    }

    /// The account `name` refers to (login names are matched ignoring ASCII case).
    pub(crate) fn account(&self, name: &str) -> Option<String> {
        let accounts = self.accounts().ok()?;
        accounts
            .into_iter()
            .map(|(user, _)| user)
            .find(|user| user.eq_ignore_ascii_case(name))
    }

    /// The account whose mail goes to `postmaster`: the store has no alias
    /// file, so it is the first account in `passwd` (bob in the seed).
    pub(crate) fn postmaster(&self) -> Option<String> {
        self.accounts().ok()?.into_iter().next().map(|(user, _)| user)
    }

    /// True if `user` exists and `password` is theirs (names compared exactly, like a login).
    pub(crate) fn check_password(&self, user: &str, password: &str) -> bool {
        let Ok(accounts) = self.accounts() else { return false };
        accounts.iter().any(|(u, p)| u == user && p == password)
    }

    /// Makes `cur/ new/ tmp/` for every account's INBOX and every `.Name`
    /// mailbox that exists, since git does not keep empty directories.
    fn create_missing_dirs(&self) -> io::Result<()> {
        for (user, _) in self.accounts()? {
            let inbox = self.root.join(&user);
            if !make_real_dir(&inbox)? {
                continue;
            }
            make_maildir(&inbox)?;
            for entry in fs::read_dir(&inbox)? {
                let entry = entry?;
                let name = entry.file_name();
                let is_mailbox = name.to_str().is_some_and(|n| n.starts_with('.') && n.len() > 1 && n != "..");
                if is_mailbox && entry.file_type()?.is_dir() {
                    make_maildir(&entry.path())?;
                }
            }
        }
        Ok(())
    }

    /// The INBOX of `user`, if it is a real directory inside the store.
    fn inbox(&self, user: &str) -> io::Result<PathBuf> {
        if !is_plain_name(user) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a user name"));
        }
        let inbox = self.root.join(user);
        if !make_real_dir(&inbox)? {
            return Err(io::Error::other(format!("{} is not a directory", inbox.display())));
        }
        make_maildir(&inbox)?;
        Ok(inbox)
    }

    /// Delivers `message` to `user`'s INBOX the Maildir way: written whole
    /// to `tmp/`, then linked into `new/` (a link, unlike a rename, fails
    /// rather than replaces if another server picked the same name).
    /// Returns the new message's `<unique>`.
    pub(crate) fn deliver(&self, user: &str, message: &[u8]) -> io::Result<String> {
        let inbox = self.inbox(user)?;
        loop {
            let unique = unique_name();
            let tmp = inbox.join("tmp").join(&unique);
            let new = inbox.join("new").join(&unique);
            if self.in_cur(&inbox, &unique)? {
                continue;
            }
            let mut file = match fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            let written = file.write_all(message).and_then(|()| file.sync_all());
            drop(file);
            let linked = written.and_then(|()| fs::hard_link(&tmp, &new));
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => return Ok(unique),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn in_cur(&self, inbox: &Path, unique: &str) -> io::Result<bool> {
        for entry in fs::read_dir(inbox.join("cur"))? {
            if entry?.file_name().to_str().is_some_and(|name| unique_of(name) == unique) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The messages in `user`'s INBOX (`new/` and `cur/` together), in
    /// delivery order, which is the order of their `<unique>` names.
    pub(crate) fn list_inbox(&self, user: &str) -> io::Result<Vec<MessageFile>> {
        let inbox = self.inbox(user)?;
        let mut messages = Vec::new();
        for sub in ["new", "cur"] {
            for entry in fs::read_dir(inbox.join(sub))? {
                let entry = entry?;
                // `file_type` does not follow symlinks: a symlink is not a message.
                if !entry.file_type()?.is_file() {
                    continue;
                }
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let unique = unique_of(&name);
                if !is_message_name(unique) {
                    continue;
                }
                let size = entry.metadata()?.len();
                messages.push(MessageFile {
                    unique: unique.to_owned(),
                    path: entry.path(),
                    size,
                });
            }
        }
        messages.sort_by(|a, b| a.unique.cmp(&b.unique));
        Ok(messages)
    }
}

/// The `<unique>` part of a file name in `new/` or `cur/` (before `:2,FLAGS`).
fn unique_of(name: &str) -> &str {
    name.split_once(':').map_or(name, |(unique, _info)| unique)
}

/// A name POP3 can use as a unique-id (RFC 1939 §7: 1 to 70 characters
/// 0x21..=0x7E); dot files are Maildir's "ignore me".
fn is_message_name(unique: &str) -> bool {
    !unique.is_empty() && unique.len() <= 70 && !unique.starts_with('.') && unique.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// A login name that is safe as one path component.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Creates `dir` if missing; false (and nothing created) if it exists but is
/// not a real directory, e.g. a symlink that could lead out of the store.
fn make_real_dir(dir: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(dir) {
        Ok(meta) => Ok(meta.is_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(fs::symlink_metadata(dir)?.is_dir()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Makes sure `cur/ new/ tmp/` exist under `mailbox`, all real directories.
fn make_maildir(mailbox: &Path) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        if !make_real_dir(&mailbox.join(sub))? {
            return Err(io::Error::other(format!("{} is not a directory", mailbox.join(sub).display())));
        }
    }
    Ok(())
}

/// `<unix-seconds>.<6-digit counter>.wirecheck`: sorting names sorts by
/// delivery time, and by delivery order within a second.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    format!("{seconds}.{counter:06}.wirecheck")
}

/// Maildrops locked by a POP3 session of this process: (store root, user).
static LOCKS: Mutex<Option<HashSet<(PathBuf, String)>>> = Mutex::new(None);

/// An exclusive lock on one user's maildrop (RFC 1939 §4), released on drop.
#[derive(Debug)]
pub(crate) struct MaildropLock {
    key: (PathBuf, String),
}

impl Store {
    /// Locks `user`'s maildrop, or `None` if another session holds it.
    pub(crate) fn lock(&self, user: &str) -> Option<MaildropLock> {
        let key = (self.root.to_path_buf(), user.to_owned());
        // A poisoned lock only means a panic elsewhere; the set is still consistent.
        let mut locks = LOCKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let inserted = locks.get_or_insert_with(HashSet::new).insert(key.clone());
        // Built only on success: a `MaildropLock` dropped here would unlock someone else's maildrop.
        inserted.then(|| MaildropLock { key })
    }
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        let mut locks = LOCKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(set) = locks.as_mut() {
            set.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_plain_name("bob"));
        assert!(!is_plain_name("../bob"));
        assert!(!is_plain_name(".Archive"));
        assert!(!is_plain_name("a/b"));
        assert!(!is_plain_name(""));
        assert_eq!(unique_of("1.000001.wirecheck:2,S"), "1.000001.wirecheck");
        assert!(is_message_name("1700000000.000001.wirecheck"));
        assert!(!is_message_name(".keep"));
        let name = unique_name();
        let parts: Vec<&str> = name.split('.').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert_eq!(parts[1].len(), 6, "{name}");
    }
}
