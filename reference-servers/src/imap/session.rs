//! One client's session: the states of RFC 9051 §3 and the commands valid
//! in each. Every handler queues its untagged responses on the connection
//! and returns the tagged one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::fault::{Fault, Faults};
use super::fetch;
use super::mailbox::{flag_list, Mailbox};
use super::message::{self, parse_date_time};
use super::parse::{Command, StatusItem};
use super::reply::{capabilities, server_bug, Reply};
use super::store::{children, mailbox_name, Entry, Flags, Refusal, Store, DELIMITER, INBOX};
use super::wire::{Conn, Gone};
use crate::tls::ServerTls;

/// A session's state and what it needs.
pub(super) struct Session {
    store: Arc<Store>,
    user: Option<String>,
    selected: Option<Mailbox>,
    /// Deliberate bugs (see `fault.rs`).
    faults: Faults,
    /// STARTTLS is configured (`tls=starttls`), and with it `require_tls`.
    starttls: Option<bool>,
    /// The connection speaks TLS.
    tls: bool,
}

/// A mailbox name as it goes into a response.
fn astring(name: &str) -> String {
    String::from_utf8_lossy(&message::astring(name.as_bytes())).into_owned()
}

/// LIST pattern matching (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the delimiter.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    // reachable[j]: the pattern so far can match name[..j].
    let mut reachable = vec![false; name.len() + 1];
    reachable[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        for j in 0..=name.len() {
            next[j] = match p {
                b'*' => reachable[j] || (j > 0 && next[j - 1]),
                b'%' => reachable[j] || (j > 0 && next[j - 1] && name[j - 1] != DELIMITER as u8),
                _ => j > 0 && reachable[j - 1] && name[j - 1] == p,
            };
        }
        reachable = next;
    }
    reachable[name.len()]
}

fn refusal(refusal: Refusal) -> Reply {
    Reply::No(match refusal {
        Refusal::NonExistent => "[NONEXISTENT] No such mailbox".to_owned(),
        Refusal::AlreadyExists => "[ALREADYEXISTS] Mailbox already exists".to_owned(),
        Refusal::HasChildren => "[HASCHILDREN] Mailbox has inferior mailboxes".to_owned(),
        Refusal::Cannot(why) => format!("[CANNOT] {why}"),
        Refusal::Io(e) => server_bug(&e),
    })
}

impl Session {
    /// A new, not yet authenticated session; `tls` says whether the connection speaks TLS already.
    pub(super) fn new(store: Arc<Store>, faults: Faults, config: Option<&ServerTls>, tls: bool) -> Session {
        Session {
            store,
            user: None,
            selected: None,
            faults,
            starttls: ServerTls::starttls(config).map(|tls| tls.require),
            tls,
        }
    }

    /// True once the connection speaks TLS.
    pub(super) fn tls(&self) -> bool {
        self.tls
    }

    /// After the handshake. RFC 3501 §6.2.1: "The server remains in the non-authenticated
    /// state, even if client credentials are supplied during the TLS negotiation."
    pub(super) fn secured(&mut self) {
        self.tls = true;
    }

    /// STARTTLS is offered: configured, and TLS not begun (or the fault `starttls-again`).
    fn offers_starttls(&self) -> bool {
        self.starttls.is_some() && (!self.tls || self.faults.has(Fault::StartTlsAgain))
    }

    /// LOGINDISABLED: `require_tls=yes` and TLS not begun.
    fn login_disabled(&self) -> bool {
        self.starttls == Some(true) && !self.tls
    }

    /// What CAPABILITY, the greeting and LOGIN's OK announce now.
    pub(super) fn capabilities(&self) -> String {
        capabilities(self.offers_starttls() && self.user.is_none(), self.login_disabled())
    }

    /// RFC 3501 §6.2.1 STARTTLS, up to its tagged OK.
    fn starttls(&self) -> Reply {
        if self.starttls.is_none() {
            Reply::Bad("Unknown command".to_owned())
        } else if self.user.is_some() {
            // A command of the not authenticated state (RFC 3501 §6.2).
            Reply::Bad("STARTTLS is only valid before LOGIN".to_owned())
        } else if self.tls && !self.faults.has(Fault::StartTlsAgain) {
            Reply::Bad("TLS is already active".to_owned())
        } else {
            Reply::StartTls("Begin TLS negotiation now".to_owned())
        }
    }

    /// Runs `command`, queuing its untagged responses on `conn`.
    pub(super) async fn execute(&mut self, conn: &mut Conn, command: Command) -> Result<Reply, Gone> {
        use Command as C;
        // Fault no-auth-check: nothing needs a login (the user is then "", the store's root).
        let needs_user = !self.faults.has(Fault::NoAuthCheck)
            && !matches!(
                command,
                C::Capability | C::Noop | C::Logout | C::Login(..) | C::StartTls | C::Authenticate
            );
        let needs_mailbox = matches!(
            command,
            C::Check | C::Close | C::Unselect | C::Expunge | C::Fetch { .. } | C::Store { .. } | C::Search { .. }
        );
        let user = match (&self.user, needs_user) {
            (None, true) => return Ok(Reply::Bad("Log in first".to_owned())),
            (Some(_), false) if matches!(command, C::Login(..)) => return Ok(Reply::Bad("Already logged in".to_owned())),
            (user, _) => user.clone().unwrap_or_default(),
        };
        if needs_mailbox {
            return self.in_mailbox(conn, command).await;
        }
        Ok(match command {
            C::Capability => {
                conn.line(&format!("* CAPABILITY {}", self.capabilities()));
                Reply::Ok("CAPABILITY completed".to_owned())
            }
            C::StartTls => self.starttls(),
            // RFC 3501 §6.2.3: a server "MUST implement a configuration in which it does NOT
            // permit any plaintext password mechanisms, unless either the STARTTLS command has been
            // negotiated or some other mechanism that protects the session from password snooping
            // has been provided"; with LOGINDISABLED "the server will respond with a tagged NO
            // response to any attempt to use the LOGIN command even if the user name and password
            // are valid" (RFC 2595 §3.2). AUTHENTICATE has no other mechanism to offer.
            C::Authenticate if self.login_disabled() => Reply::No("[PRIVACYREQUIRED] Authentication is disabled until STARTTLS".to_owned()),
            C::Authenticate => Reply::Bad("Unknown command".to_owned()),
            C::Login(..) if self.login_disabled() && !self.faults.has(Fault::LoginInClear) => {
                Reply::No("[PRIVACYREQUIRED] LOGIN is disabled until STARTTLS".to_owned())
            }
            C::Noop => self.refresh(conn, None).unwrap_or_else(|| Reply::Ok("NOOP completed".to_owned())),
            C::Logout => Reply::Bye("wirecheck IMAP logging out".to_owned(), Some("LOGOUT completed".to_owned())),
            C::Login(user, password) => self.login(&user, &password),
            C::List(reference, pattern) => self.list(conn, &user, &reference, &pattern),
            C::Create(name) => match mailbox_name(&name) {
                Ok(name) => self
                    .store
                    .create(&user, &name)
                    .map_or_else(refusal, |()| Reply::Ok("CREATE completed".to_owned())),
                Err(why) => Reply::No(format!("[CANNOT] {why}")),
            },
            C::Delete(name) => match mailbox_name(&name) {
                Ok(name) => self
                    .store
                    .delete(&user, &name)
                    .map_or_else(refusal, |()| Reply::Ok("DELETE completed".to_owned())),
                Err(_) => refusal(Refusal::NonExistent),
            },
            C::Rename(from, to) => match (mailbox_name(&from), mailbox_name(&to)) {
                (Err(_), _) => refusal(Refusal::NonExistent),
                (_, Err(why)) => Reply::No(format!("[CANNOT] {why}")),
                (Ok(from), Ok(to)) => self
                    .store
                    .rename(&user, &from, &to)
                    .map_or_else(refusal, |()| Reply::Ok("RENAME completed".to_owned())),
            },
            C::Select { mailbox, read_only } => self.select(conn, &user, &mailbox, read_only),
            C::Status(mailbox, items) => self.status(conn, &user, &mailbox, &items),
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(conn, &user, &mailbox, flags, date.as_deref(), &message),
            _ => Reply::Bad("Unexpected command".to_owned()),
        })
    }

    /// Runs a command of the selected state.
    async fn in_mailbox(&mut self, conn: &mut Conn, command: Command) -> Result<Reply, Gone> {
        use Command as C;
        let (store, faults) = (&self.store, self.faults);
        let Some(mailbox) = self.selected.as_mut() else {
            return Ok(Reply::Bad("Select a mailbox first".to_owned()));
        };
        Ok(match command {
            C::Close => {
                // Fault close-no-expunge: CLOSE only unselects.
                if !mailbox.read_only && !faults.has(Fault::CloseNoExpunge) {
                    fetch::expunge(store, mailbox, None, faults);
                }
                self.selected = None;
                Reply::Ok("CLOSE completed".to_owned())
            }
            C::Unselect => {
                self.selected = None;
                Reply::Ok("UNSELECT completed".to_owned())
            }
            C::Check => match self.refresh(conn, None) {
                Some(reply) => reply,
                None => Reply::Ok("CHECK completed".to_owned()),
            },
            C::Expunge if mailbox.read_only => Reply::No("Mailbox is read-only".to_owned()),
            C::Expunge => fetch::expunge(store, mailbox, Some(conn), faults),
            C::Fetch { uid, set, items } => fetch::fetch(store, mailbox, conn, uid, &set, &items, faults).await?,
            C::Store {
                uid,
                set,
                mode,
                silent,
                flags,
            } => fetch::store(store, mailbox, conn, uid, &set, mode, silent, flags, faults).await?,
            C::Search { uid, charset, key } => fetch::search(store, mailbox, conn, uid, charset.as_deref(), &key),
            _ => Reply::Bad("Unexpected command".to_owned()),
        })
    }

    fn login(&mut self, user: &[u8], password: &[u8]) -> Reply {
        // Fault any-password: the password is not checked.
        let check_password = !self.faults.has(Fault::AnyPassword);
        match self.store.authenticate(user, password, check_password) {
            Ok(Some(user)) => {
                self.user = Some(user);
                Reply::Ok(format!("[CAPABILITY {}] LOGIN completed", self.capabilities()))
            }
            Ok(None) => Reply::No("[AUTHENTICATIONFAILED] Invalid credentials".to_owned()),
            Err(e) => Reply::No(server_bug(&e)),
        }
    }

    fn list(&mut self, conn: &mut Conn, user: &str, reference: &[u8], pattern: &[u8]) -> Reply {
        if pattern.is_empty() {
            // RFC 9051 §6.3.9: an empty pattern asks for the delimiter and root.
            conn.line(&format!("* LIST (\\Noselect) \"{DELIMITER}\" \"\""));
            return Reply::Ok("LIST completed".to_owned());
        }
        let all = match self.store.list(user) {
            Ok(all) => all,
            Err(e) => return Reply::No(server_bug(&e)),
        };
        let pattern = [reference, pattern].concat();
        for name in &all {
            let hit = if name == INBOX {
                matches(&pattern.to_ascii_uppercase(), INBOX.as_bytes())
            } else {
                matches(&pattern, name.as_bytes())
            };
            if hit {
                let children = if children(&all, name).is_empty() {
                    "\\HasNoChildren"
                } else {
                    "\\HasChildren"
                };
                conn.line(&format!("* LIST ({children}) \"{DELIMITER}\" {}", astring(name)));
            }
        }
        Reply::Ok("LIST completed".to_owned())
    }

    fn select(&mut self, conn: &mut Conn, user: &str, mailbox: &[u8], read_only: bool) -> Reply {
        // A failed SELECT also leaves no mailbox selected (RFC 9051 §6.3.2).
        self.selected = None;
        // Fault examine-writes: EXAMINE is SELECT.
        let read_only = read_only && !self.faults.has(Fault::ExamineWrites);
        let Some(name) = mailbox_name(mailbox).ok().filter(|name| self.store.exists(user, name)) else {
            return refusal(Refusal::NonExistent);
        };
        let dir = self.store.dir(user, &name);
        let snapshot = match self.store.sync(&dir, !read_only) {
            Ok(snapshot) => snapshot,
            Err(e) => return Reply::No(server_bug(&e)),
        };
        let messages = snapshot.messages;
        // Fault wrong-exists: the count is one short (the last message's index, not the number).
        let exists = if self.faults.has(Fault::WrongExists) {
            messages.len().saturating_sub(1)
        } else {
            messages.len()
        };
        conn.line(&format!("* {exists} EXISTS"));
        conn.line(&format!("* {} RECENT", messages.iter().filter(|m| m.recent).count()));
        conn.line("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
        if read_only {
            conn.line("* OK [PERMANENTFLAGS ()] No permanent flags permitted");
        } else {
            conn.line("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)] Limited");
        }
        if let Some(first) = messages.iter().position(|m| !m.flags.contains(Flags::SEEN)) {
            conn.line(&format!("* OK [UNSEEN {}] First unseen message", first + 1));
        }
        // Fault uidvalidity-changes: a new UIDVALIDITY each time, as if UIDs were assigned per session.
        let validity = if self.faults.has(Fault::UidvalidityChanges) {
            static SELECTS: AtomicU32 = AtomicU32::new(1);
            snapshot.validity.wrapping_add(SELECTS.fetch_add(1, Ordering::Relaxed)).max(1)
        } else {
            snapshot.validity
        };
        conn.line(&format!("* OK [UIDVALIDITY {validity}] UIDs valid"));
        conn.line(&format!("* OK [UIDNEXT {}] Predicted next UID", snapshot.next_uid));
        self.selected = Some(Mailbox {
            dir,
            read_only,
            validity: snapshot.validity,
            messages,
        });
        Reply::Ok(
            if read_only {
                "[READ-ONLY] EXAMINE completed"
            } else {
                "[READ-WRITE] SELECT completed"
            }
            .to_owned(),
        )
    }

    fn status(&mut self, conn: &mut Conn, user: &str, mailbox: &[u8], items: &[StatusItem]) -> Reply {
        let Some(name) = mailbox_name(mailbox).ok().filter(|name| self.store.exists(user, name)) else {
            return refusal(Refusal::NonExistent);
        };
        let snapshot = match self.store.sync(&self.store.dir(user, &name), false) {
            Ok(snapshot) => snapshot,
            Err(e) => return Reply::No(server_bug(&e)),
        };
        let count = |keep: fn(&Entry) -> bool| snapshot.messages.iter().filter(|m| keep(m)).count();
        let values: Vec<String> = items
            .iter()
            .map(|item| match item {
                StatusItem::Messages => format!("MESSAGES {}", snapshot.messages.len()),
                StatusItem::UidNext => format!("UIDNEXT {}", snapshot.next_uid),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", snapshot.validity),
                StatusItem::Unseen => format!("UNSEEN {}", count(|m| !m.flags.contains(Flags::SEEN))),
                StatusItem::Recent => format!("RECENT {}", count(|m| m.recent)),
            })
            .collect();
        conn.line(&format!("* STATUS {} ({})", astring(&name), values.join(" ")));
        Reply::Ok("STATUS completed".to_owned())
    }

    fn append(&mut self, conn: &mut Conn, user: &str, mailbox: &[u8], flags: Flags, date: Option<&[u8]>, message: &[u8]) -> Reply {
        let date = match date.map(parse_date_time) {
            Some(None) => return Reply::Bad("Invalid date-time".to_owned()),
            Some(Some(date)) => Some(date),
            None => None,
        };
        let name = match mailbox_name(mailbox) {
            Ok(name) if self.store.exists(user, &name) => name,
            Ok(_) => return Reply::No("[TRYCREATE] No such mailbox".to_owned()),
            Err(why) => return Reply::No(format!("[CANNOT] {why}")),
        };
        let dir = self.store.dir(user, &name);
        let (validity, uid) = match self.store.append(&dir, flags, date, message) {
            Ok(appended) => appended,
            Err(e) => return Reply::No(server_bug(&e)),
        };
        // RFC 9051 §6.3.12: appending to the selected mailbox is announced with EXISTS.
        if self.selected.as_ref().is_some_and(|m| m.dir == dir) {
            if let Some(reply) = self.refresh(conn, Some(uid)) {
                return reply;
            }
        }
        Reply::Ok(format!("[APPENDUID {validity} {uid}] APPEND completed"))
    }

    /// Brings the selected mailbox up to date and reports changes (EXPUNGE, FETCH FLAGS, EXISTS, RECENT).
    /// The message with UID `appended`, if any, is recent for this session. `Some` ends the session.
    fn refresh(&mut self, conn: &mut Conn, appended: Option<u32>) -> Option<Reply> {
        let mailbox = self.selected.as_mut()?;
        let snapshot = match self.store.sync(&mailbox.dir, !mailbox.read_only) {
            Ok(snapshot) => snapshot,
            // Nothing to report now; the command itself still succeeded.
            Err(_) => return None,
        };
        if snapshot.validity != mailbox.validity {
            // Our UIDs mean nothing any more, and UIDVALIDITY cannot change mid-session.
            self.selected = None;
            return Some(Reply::Bye("[UNAVAILABLE] Mailbox UIDVALIDITY changed".to_owned(), None));
        }
        let mut now: HashMap<u32, Entry> = snapshot.messages.into_iter().map(|m| (m.uid, m)).collect();
        let mut seq = 0;
        while seq < mailbox.messages.len() {
            if now.contains_key(&mailbox.messages[seq].uid) {
                seq += 1;
            } else {
                conn.line(&format!("* {} EXPUNGE", seq + 1));
                mailbox.messages.remove(seq);
            }
        }
        for (seq, message) in mailbox.messages.iter_mut().enumerate() {
            let Some(current) = now.remove(&message.uid) else { continue };
            message.path = current.path;
            if current.flags != message.flags {
                message.flags = current.flags;
                conn.line(&format!("* {} FETCH (FLAGS {})", seq + 1, flag_list(message)));
            }
        }
        // New messages always have higher UIDs than the ones this session knows.
        let max_uid = mailbox.max_uid();
        let mut added: Vec<Entry> = now.into_values().filter(|m| m.uid > max_uid).collect();
        if added.is_empty() {
            return None;
        }
        added.sort_by_key(|m| m.uid);
        for mut message in added {
            message.recent |= Some(message.uid) == appended;
            mailbox.messages.push(message);
        }
        conn.line(&format!("* {} EXISTS", mailbox.messages.len()));
        conn.line(&format!("* {} RECENT", mailbox.messages.iter().filter(|m| m.recent).count()));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(matches(b"*", b"a.b"));
        assert!(matches(b"%", b"ab") && !matches(b"%", b"a.b"));
        assert!(matches(b"a.%", b"a.b") && !matches(b"a.%", b"a.b.c") && matches(b"a.*", b"a.b.c"));
        assert!(matches(b"A*c", b"Abbbc") && !matches(b"A*c", b"Abbbd"));
        assert!(!matches(b"", b"a") && matches(b"*", b""));
        let long = format!("{}b", "*a".repeat(4000));
        assert!(!matches(long.as_bytes(), "a".repeat(255).as_bytes()));
    }

    #[test]
    fn names_in_responses() {
        assert_eq!(astring("INBOX"), "INBOX");
        assert_eq!(astring("My Mail"), "\"My Mail\"");
        assert_eq!(astring("a\"b"), "\"a\\\"b\"");
    }
}
