//! The command grammar (RFC 9051 §9, RFC 3501 §9) for the commands this
//! server knows. Input is one whole command as it came over the wire, CRLF
//! removed, with each literal's `{n}` or `{n+}`, CRLF and n octets in place:
//! the reader has already collected the literals, so parsing never waits.

use super::fault::{Fault, Faults};
use super::store::Flags;

/// Why a command was rejected; the text goes into the tagged BAD.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Bad(pub(super) String);

type Parsed<T> = Result<T, Bad>;

fn bad<T>(why: impl Into<String>) -> Parsed<T> {
    Err(Bad(why.into()))
}

/// A parsed command.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Command {
    /// CAPABILITY
    Capability,
    /// NOOP
    Noop,
    /// LOGOUT
    Logout,
    /// LOGIN user password
    Login(Vec<u8>, Vec<u8>),
    /// STARTTLS
    StartTls,
    /// AUTHENTICATE mechanism ... (only ever refused: no SASL mechanism is offered)
    Authenticate,
    /// LIST reference pattern
    List(Vec<u8>, Vec<u8>),
    /// CREATE mailbox
    Create(Vec<u8>),
    /// DELETE mailbox
    Delete(Vec<u8>),
    /// RENAME from to
    Rename(Vec<u8>, Vec<u8>),
    /// SELECT mailbox (or EXAMINE, when read-only)
    Select {
        /// The mailbox.
        mailbox: Vec<u8>,
        /// True for EXAMINE.
        read_only: bool,
    },
    /// STATUS mailbox (items)
    Status(Vec<u8>, Vec<StatusItem>),
    /// APPEND mailbox [(flags)] [date-time] literal
    Append {
        /// The mailbox.
        mailbox: Vec<u8>,
        /// The flags to set.
        flags: Flags,
        /// The date-time text, if given.
        date: Option<Vec<u8>>,
        /// The message.
        message: Vec<u8>,
    },
    /// CHECK
    Check,
    /// CLOSE
    Close,
    /// UNSELECT (RFC 3691)
    Unselect,
    /// EXPUNGE
    Expunge,
    /// [UID] FETCH set items
    Fetch {
        /// UID FETCH.
        uid: bool,
        /// The messages.
        set: SeqSet,
        /// What to return, in request order.
        items: Vec<FetchItem>,
    },
    /// [UID] STORE set [+|-]FLAGS[.SILENT] flags
    Store {
        /// UID STORE.
        uid: bool,
        /// The messages.
        set: SeqSet,
        /// Replace, add or remove.
        mode: StoreMode,
        /// No FETCH responses.
        silent: bool,
        /// The flags.
        flags: Flags,
    },
    /// [UID] SEARCH [CHARSET c] keys
    Search {
        /// UID SEARCH.
        uid: bool,
        /// The CHARSET argument, if given.
        charset: Option<Vec<u8>>,
        /// All keys, ANDed.
        key: SearchKey,
    },
}

/// A STATUS data item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatusItem {
    /// MESSAGES
    Messages,
    /// UIDNEXT
    UidNext,
    /// UIDVALIDITY
    UidValidity,
    /// UNSEEN
    Unseen,
    /// RECENT
    Recent,
}

/// How STORE combines the given flags with the message's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoreMode {
    /// FLAGS
    Replace,
    /// +FLAGS
    Add,
    /// -FLAGS
    Remove,
}

/// One end of a sequence range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SeqNo {
    /// A number.
    Number(u32),
    /// `*`: the largest number in use.
    Star,
}

/// A sequence set: ranges, each inclusive and in either order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeqSet(pub(super) Vec<(SeqNo, SeqNo)>);

impl SeqSet {
    /// True if `n` is in the set, with `*` standing for `largest` (0 if none).
    pub(super) fn contains(&self, n: u32, largest: u32) -> bool {
        let value = |s: SeqNo| match s {
            SeqNo::Number(v) => v,
            SeqNo::Star => largest,
        };
        self.0.iter().any(|&(a, b)| {
            let (a, b) = (value(a), value(b));
            (a.min(b)..=a.max(b)).contains(&n)
        })
    }

    /// The largest explicit number, or `*` when there is a `*`: what must exist for a message-number set to be valid.
    pub(super) fn highest(&self) -> SeqNo {
        let mut highest = SeqNo::Number(0);
        for &(a, b) in &self.0 {
            for s in [a, b] {
                highest = match (highest, s) {
                    (SeqNo::Star, _) | (_, SeqNo::Star) => SeqNo::Star,
                    (SeqNo::Number(h), SeqNo::Number(v)) => SeqNo::Number(h.max(v)),
                };
            }
        }
        highest
    }
}

/// A FETCH data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FetchItem {
    /// ENVELOPE
    Envelope,
    /// FLAGS
    Flags,
    /// INTERNALDATE
    InternalDate,
    /// RFC822.SIZE
    Size,
    /// UID
    Uid,
    /// RFC822 (= BODY[], sets \Seen)
    Rfc822,
    /// RFC822.HEADER (= BODY.PEEK[HEADER])
    Rfc822Header,
    /// RFC822.TEXT (= BODY[TEXT], sets \Seen)
    Rfc822Text,
    /// BODY[section]<partial> or BODY.PEEK[...]
    Body {
        /// The part of the message.
        section: Section,
        /// BODY.PEEK: leave \Seen alone.
        peek: bool,
        /// `<offset.length>`.
        partial: Option<(u32, u32)>,
    },
}

/// A body section specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Section {
    /// `[]`: the whole message.
    Full,
    /// `[HEADER]`
    Header,
    /// `[TEXT]`
    Text,
    /// `[HEADER.FIELDS (...)]` or, with `not`, `[HEADER.FIELDS.NOT (...)]`.
    Fields {
        /// HEADER.FIELDS.NOT
        not: bool,
        /// The field names, as given.
        names: Vec<Vec<u8>>,
    },
}

/// A SEARCH key (RFC 9051 §6.4.4), without the date keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SearchKey {
    /// All of these (a parenthesised list, or the whole command).
    And(Vec<SearchKey>),
    /// Either.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// Not.
    Not(Box<SearchKey>),
    /// Messages with all these flags (ALL is the empty set).
    Flags(Flags),
    /// Messages without this flag.
    NotFlag(Flags),
    /// RECENT
    Recent,
    /// NEW = RECENT UNSEEN
    New,
    /// OLD = NOT RECENT
    Old,
    /// KEYWORD k: keywords are never stored, so nothing matches.
    Keyword,
    /// UNKEYWORD k: everything matches.
    Unkeyword,
    /// FROM, TO, CC, BCC, SUBJECT, HEADER: field name and substring.
    Header(Vec<u8>, Vec<u8>),
    /// BODY s
    Body(Vec<u8>),
    /// TEXT s
    Text(Vec<u8>),
    /// LARGER n
    Larger(u32),
    /// SMALLER n
    Smaller(u32),
    /// UID set
    Uid(SeqSet),
    /// A message sequence set.
    Seq(SeqSet),
}

/// Deepest nesting of parentheses, NOT and OR in SEARCH; keeps recursion bounded.
const MAX_DEPTH: usize = 32;

/// A tag: 1*<any ASTRING-CHAR except "+">.
pub(super) fn is_tag(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_astring_char(b) && b != b'+')
}

fn is_atom_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !b"(){%*\"\\]".contains(&b)
}

fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

fn is_list_char(b: u8) -> bool {
    is_atom_char(b) || b"%*]".contains(&b)
}

/// Parses everything after `tag SP`, with the parsing `faults` (see `fault.rs`).
pub(super) fn command(input: &[u8], faults: Faults) -> Parsed<Command> {
    let mut p = Parser { input, at: 0 };
    // Fault case-sensitive: the name is not upper-cased, so only upper-case names are known.
    let name = if faults.has(Fault::CaseSensitive) {
        p.atom()?.to_vec()
    } else {
        p.atom()?.to_ascii_uppercase()
    };
    let command = match name.as_slice() {
        b"CAPABILITY" => Command::Capability,
        b"NOOP" => Command::Noop,
        b"LOGOUT" => Command::Logout,
        b"STARTTLS" => Command::StartTls,
        b"AUTHENTICATE" => {
            // Whatever follows: the answer does not depend on it.
            p.at = input.len();
            Command::Authenticate
        }
        b"CHECK" => Command::Check,
        b"CLOSE" => Command::Close,
        b"UNSELECT" => Command::Unselect,
        b"EXPUNGE" => Command::Expunge,
        b"LOGIN" if faults.has(Fault::QuotedStrings) => {
            // The fault: arguments split at spaces, so quotes (and literals) stay in them.
            let word = |p: &mut Parser<'_>| Ok(p.take_while(|b| b != b' ').to_vec());
            let user = p.sp_then(word)?;
            Command::Login(user, p.sp_then(word)?)
        }
        b"LOGIN" => {
            let user = p.sp_then(Parser::astring)?;
            Command::Login(user, p.sp_then(Parser::astring)?)
        }
        b"LIST" => {
            p.sp()?;
            if p.peek() == Some(b'(') {
                return bad("LIST selection options are not supported");
            }
            let reference = p.astring()?;
            Command::List(reference, p.sp_then(Parser::list_mailbox)?)
        }
        b"CREATE" => Command::Create(p.sp_then(Parser::astring)?),
        b"DELETE" => Command::Delete(p.sp_then(Parser::astring)?),
        b"RENAME" => {
            let from = p.sp_then(Parser::astring)?;
            Command::Rename(from, p.sp_then(Parser::astring)?)
        }
        b"SELECT" | b"EXAMINE" => Command::Select {
            mailbox: p.sp_then(Parser::astring)?,
            read_only: name == b"EXAMINE",
        },
        b"STATUS" => {
            let mailbox = p.sp_then(Parser::astring)?;
            p.sp()?;
            Command::Status(mailbox, p.status_items()?)
        }
        b"APPEND" => p.append()?,
        b"FETCH" => p.fetch(false)?,
        b"STORE" => p.store(false)?,
        b"SEARCH" => p.search(false)?,
        b"UID" => {
            p.sp()?;
            match p.atom()?.to_ascii_uppercase().as_slice() {
                b"FETCH" => p.fetch(true)?,
                b"STORE" => p.store(true)?,
                b"SEARCH" => p.search(true)?,
                _ => return bad("UID FETCH, UID STORE and UID SEARCH are supported"),
            }
        }
        _ => return bad("Unknown command"),
    };
    if p.at != input.len() {
        return bad(format!(
            "Unexpected characters at the end of the {}",
            String::from_utf8_lossy(&name)
        ));
    }
    Ok(command)
}

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Parsed<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            bad(format!("Expected '{}'", char::from(byte)))
        }
    }

    fn sp(&mut self) -> Parsed<()> {
        if self.peek() == Some(b' ') {
            self.at += 1;
            Ok(())
        } else {
            bad("Expected a single space between arguments")
        }
    }

    fn sp_then<T>(&mut self, then: impl FnOnce(&mut Self) -> Parsed<T>) -> Parsed<T> {
        self.sp()?;
        then(self)
    }

    fn take_while(&mut self, ok: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(&ok) {
            self.at += 1;
        }
        &self.input[start..self.at]
    }

    fn atom(&mut self) -> Parsed<&'a [u8]> {
        match self.take_while(is_atom_char) {
            [] => bad("Expected an atom"),
            atom => Ok(atom),
        }
    }

    /// A keyword of letters, digits and dots, upper-cased (fetch and search item names).
    fn keyword(&mut self) -> Parsed<Vec<u8>> {
        match self.take_while(|b| b.is_ascii_alphanumeric() || b == b'.') {
            [] => bad("Expected a keyword"),
            word => Ok(word.to_ascii_uppercase()),
        }
    }

    fn number(&mut self) -> Parsed<u32> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .map_or_else(|| bad("Expected a number (0 to 4294967295)"), Ok)
    }

    fn nz_number(&mut self) -> Parsed<u32> {
        if self.peek() == Some(b'0') {
            return bad("Expected a non-zero number");
        }
        self.number()
    }

    fn astring(&mut self) -> Parsed<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => match self.take_while(is_astring_char) {
                [] => bad("Expected an atom, a quoted string or a literal"),
                atom => Ok(atom.to_vec()),
            },
        }
    }

    fn string(&mut self) -> Parsed<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => bad("Expected a quoted string or a literal"),
        }
    }

    fn quoted(&mut self) -> Parsed<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(b @ (b'"' | b'\\')) => out.push(b),
                        _ => return bad("Only \\\" and \\\\ may be escaped in a quoted string"),
                    }
                }
                None | Some(b'\0' | b'\r' | b'\n') => return bad("Unterminated quoted string"),
                Some(b) => out.push(b),
            }
            self.at += 1;
        }
    }

    /// `{n}` or `{n+}`, CRLF, n octets: the reader guarantees the octets are there.
    fn literal(&mut self) -> Parsed<Vec<u8>> {
        self.expect(b'{')?;
        let n = self.number()? as usize;
        if self.peek() == Some(b'+') {
            self.at += 1;
        }
        self.expect(b'}')?;
        if !self.input[self.at..].starts_with(b"\r\n") {
            return bad("A literal's size must end the line");
        }
        self.at += 2;
        match self.input.get(self.at..self.at + n) {
            Some(octets) => {
                self.at += n;
                Ok(octets.to_vec())
            }
            None => bad("Literal shorter than announced"),
        }
    }

    fn list_mailbox(&mut self) -> Parsed<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => match self.take_while(is_list_char) {
                [] => bad("Expected a mailbox pattern"),
                pattern => Ok(pattern.to_vec()),
            },
        }
    }

    fn seq_number(&mut self) -> Parsed<SeqNo> {
        if self.peek() == Some(b'*') {
            self.at += 1;
            return Ok(SeqNo::Star);
        }
        self.nz_number().map(SeqNo::Number)
    }

    fn seq_set(&mut self) -> Parsed<SeqSet> {
        let mut ranges = Vec::new();
        loop {
            let first = self.seq_number()?;
            let last = if self.peek() == Some(b':') {
                self.at += 1;
                self.seq_number()?
            } else {
                first
            };
            ranges.push((first, last));
            if self.peek() != Some(b',') {
                return Ok(SeqSet(ranges));
            }
            self.at += 1;
        }
    }

    /// `(` item *(SP item) `)` with at least one item.
    fn list_of<T>(&mut self, mut item: impl FnMut(&mut Self) -> Parsed<T>) -> Parsed<Vec<T>> {
        self.expect(b'(')?;
        let mut items = vec![item(self)?];
        while self.peek() == Some(b' ') {
            self.at += 1;
            items.push(item(self)?);
        }
        self.expect(b')')?;
        Ok(items)
    }

    fn status_items(&mut self) -> Parsed<Vec<StatusItem>> {
        self.list_of(|p| match p.atom()?.to_ascii_uppercase().as_slice() {
            b"MESSAGES" => Ok(StatusItem::Messages),
            b"UIDNEXT" => Ok(StatusItem::UidNext),
            b"UIDVALIDITY" => Ok(StatusItem::UidValidity),
            b"UNSEEN" => Ok(StatusItem::Unseen),
            b"RECENT" => Ok(StatusItem::Recent),
            _ => bad("STATUS items are MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN and RECENT"),
        })
    }

    /// A flag; keywords and unknown `\` flags parse but are not kept, since the store cannot keep them.
    fn flag(&mut self) -> Parsed<Flags> {
        let backslash = self.peek() == Some(b'\\');
        if backslash {
            self.at += 1;
        }
        let atom = self.atom()?;
        if !backslash {
            return Ok(Flags::default());
        }
        let mut name = b"\\".to_vec();
        name.extend_from_slice(atom);
        Ok(Flags::from_name(&name).unwrap_or_default())
    }

    /// `(` [flag *(SP flag)] `)`
    fn flag_list(&mut self) -> Parsed<Flags> {
        if self.input[self.at..].starts_with(b"()") {
            self.at += 2;
            return Ok(Flags::default());
        }
        let flags = self.list_of(Parser::flag)?;
        Ok(flags.into_iter().fold(Flags::default(), Flags::union))
    }

    fn append(&mut self) -> Parsed<Command> {
        let mailbox = self.sp_then(Parser::astring)?;
        self.sp()?;
        let mut flags = Flags::default();
        if self.peek() == Some(b'(') {
            flags = self.flag_list()?;
            self.sp()?;
        }
        let mut date = None;
        if self.peek() == Some(b'"') {
            date = Some(self.quoted()?);
            self.sp()?;
        }
        if self.peek() != Some(b'{') {
            return bad("APPEND needs the message as a literal");
        }
        let message = self.literal()?;
        Ok(Command::Append {
            mailbox,
            flags,
            date,
            message,
        })
    }

    fn fetch(&mut self, uid: bool) -> Parsed<Command> {
        let set = self.sp_then(Parser::seq_set)?;
        self.sp()?;
        let items = if self.peek() == Some(b'(') {
            self.list_of(Parser::fetch_item)?
        } else {
            let start = self.at;
            match self.keyword()?.as_slice() {
                b"ALL" => vec![FetchItem::Flags, FetchItem::InternalDate, FetchItem::Size, FetchItem::Envelope],
                b"FAST" => vec![FetchItem::Flags, FetchItem::InternalDate, FetchItem::Size],
                b"FULL" => return bad("FETCH FULL is not supported (it includes BODY)"),
                _ => {
                    self.at = start;
                    vec![self.fetch_item()?]
                }
            }
        };
        Ok(Command::Fetch { uid, set, items })
    }

    fn fetch_item(&mut self) -> Parsed<FetchItem> {
        let name = self.keyword()?;
        let item = match name.as_slice() {
            b"ENVELOPE" => FetchItem::Envelope,
            b"FLAGS" => FetchItem::Flags,
            b"INTERNALDATE" => FetchItem::InternalDate,
            b"RFC822.SIZE" => FetchItem::Size,
            b"UID" => FetchItem::Uid,
            b"RFC822" => FetchItem::Rfc822,
            b"RFC822.HEADER" => FetchItem::Rfc822Header,
            b"RFC822.TEXT" => FetchItem::Rfc822Text,
            b"BODY" | b"BODY.PEEK" if self.peek() == Some(b'[') => {
                let section = self.section()?;
                let partial = if self.peek() == Some(b'<') {
                    self.at += 1;
                    let offset = self.number()?;
                    self.expect(b'.')?;
                    let length = self.nz_number()?;
                    self.expect(b'>')?;
                    Some((offset, length))
                } else {
                    None
                };
                FetchItem::Body {
                    section,
                    peek: name == b"BODY.PEEK",
                    partial,
                }
            }
            b"BODY" | b"BODYSTRUCTURE" => return bad("BODY and BODYSTRUCTURE are not supported"),
            _ => return bad(format!("Unknown FETCH item {}", String::from_utf8_lossy(&name))),
        };
        Ok(item)
    }

    fn section(&mut self) -> Parsed<Section> {
        self.expect(b'[')?;
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Section::Full);
        }
        let section = match self.keyword()?.as_slice() {
            b"HEADER" => Section::Header,
            b"TEXT" => Section::Text,
            fields @ (b"HEADER.FIELDS" | b"HEADER.FIELDS.NOT") => {
                let not = fields == b"HEADER.FIELDS.NOT";
                self.sp()?;
                Section::Fields {
                    not,
                    names: self.list_of(Parser::astring)?,
                }
            }
            _ => return bad("Sections are [], [HEADER], [TEXT], [HEADER.FIELDS (...)] and [HEADER.FIELDS.NOT (...)]"),
        };
        self.expect(b']')?;
        Ok(section)
    }

    fn store(&mut self, uid: bool) -> Parsed<Command> {
        let set = self.sp_then(Parser::seq_set)?;
        self.sp()?;
        let mode = match self.peek() {
            Some(b'+') => StoreMode::Add,
            Some(b'-') => StoreMode::Remove,
            _ => StoreMode::Replace,
        };
        if mode != StoreMode::Replace {
            self.at += 1;
        }
        let silent = match self.keyword()?.as_slice() {
            b"FLAGS" => false,
            b"FLAGS.SILENT" => true,
            _ => return bad("Expected FLAGS, +FLAGS or -FLAGS, optionally .SILENT"),
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut flags = self.flag()?;
            while self.peek() == Some(b' ') {
                self.at += 1;
                flags = flags.union(self.flag()?);
            }
            flags
        };
        Ok(Command::Store {
            uid,
            set,
            mode,
            silent,
            flags,
        })
    }

    fn search(&mut self, uid: bool) -> Parsed<Command> {
        self.sp()?;
        let mut charset = None;
        let start = self.at;
        if self.keyword().is_ok_and(|word| word == b"CHARSET") {
            charset = Some(self.sp_then(Parser::astring)?);
            self.sp()?;
        } else {
            self.at = start;
        }
        let mut keys = vec![self.search_key(0)?];
        while self.peek() == Some(b' ') {
            self.at += 1;
            keys.push(self.search_key(0)?);
        }
        Ok(Command::Search {
            uid,
            charset,
            key: SearchKey::And(keys),
        })
    }

    fn search_key(&mut self, depth: usize) -> Parsed<SearchKey> {
        if depth > MAX_DEPTH {
            return bad("SEARCH keys nested too deeply");
        }
        match self.peek() {
            Some(b'(') => return Ok(SearchKey::And(self.list_of(|p| p.search_key(depth + 1))?)),
            Some(b'*' | b'0'..=b'9') => return Ok(SearchKey::Seq(self.seq_set()?)),
            _ => {}
        }
        let name = self.keyword()?;
        let header = |p: &mut Self, field: &str| Ok(SearchKey::Header(field.as_bytes().to_vec(), p.sp_then(Parser::astring)?));
        let key = match name.as_slice() {
            b"ALL" => SearchKey::Flags(Flags::default()),
            b"ANSWERED" => SearchKey::Flags(Flags::ANSWERED),
            b"DELETED" => SearchKey::Flags(Flags::DELETED),
            b"DRAFT" => SearchKey::Flags(Flags::DRAFT),
            b"FLAGGED" => SearchKey::Flags(Flags::FLAGGED),
            b"SEEN" => SearchKey::Flags(Flags::SEEN),
            b"UNANSWERED" => SearchKey::NotFlag(Flags::ANSWERED),
            b"UNDELETED" => SearchKey::NotFlag(Flags::DELETED),
            b"UNDRAFT" => SearchKey::NotFlag(Flags::DRAFT),
            b"UNFLAGGED" => SearchKey::NotFlag(Flags::FLAGGED),
            b"UNSEEN" => SearchKey::NotFlag(Flags::SEEN),
            b"RECENT" => SearchKey::Recent,
            b"NEW" => SearchKey::New,
            b"OLD" => SearchKey::Old,
            b"KEYWORD" | b"UNKEYWORD" => {
                self.sp_then(Parser::atom)?;
                if name == b"KEYWORD" {
                    SearchKey::Keyword
                } else {
                    SearchKey::Unkeyword
                }
            }
            b"FROM" => header(self, "From")?,
            b"TO" => header(self, "To")?,
            b"CC" => header(self, "Cc")?,
            b"BCC" => header(self, "Bcc")?,
            b"SUBJECT" => header(self, "Subject")?,
            b"HEADER" => {
                let field = self.sp_then(Parser::astring)?;
                SearchKey::Header(field, self.sp_then(Parser::astring)?)
            }
            b"BODY" => SearchKey::Body(self.sp_then(Parser::astring)?),
            b"TEXT" => SearchKey::Text(self.sp_then(Parser::astring)?),
            b"LARGER" => SearchKey::Larger(self.sp_then(Parser::number)?),
            b"SMALLER" => SearchKey::Smaller(self.sp_then(Parser::number)?),
            b"UID" => SearchKey::Uid(self.sp_then(Parser::seq_set)?),
            b"NOT" => SearchKey::Not(Box::new(self.sp_then(|p| p.search_key(depth + 1))?)),
            b"OR" => {
                let left = self.sp_then(|p| p.search_key(depth + 1))?;
                let right = self.sp_then(|p| p.search_key(depth + 1))?;
                SearchKey::Or(Box::new(left), Box::new(right))
            }
            b"BEFORE" | b"ON" | b"SINCE" | b"SENTBEFORE" | b"SENTON" | b"SENTSINCE" => return bad("SEARCH by date is not supported"),
            _ => return bad(format!("Unknown SEARCH key {}", String::from_utf8_lossy(&name))),
        };
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Command {
        command(input.as_bytes(), Faults::default()).unwrap_or_else(|Bad(why)| panic!("{input:?}: {why}"))
    }

    #[test]
    fn strings_and_literals() {
        assert_eq!(ok("LOGIN bob hungry"), Command::Login(b"bob".to_vec(), b"hungry".to_vec()));
        assert_eq!(
            ok("login \"b\\\"o\\\\b\" {6}\r\nhungry"),
            Command::Login(b"b\"o\\b".to_vec(), b"hungry".to_vec())
        );
        assert_eq!(ok("LOGIN {3+}\r\nbob {0}\r\n"), Command::Login(b"bob".to_vec(), b"".to_vec()));
        for bad_input in [
            "LOGIN bob",
            "LOGIN  bob x",
            "LOGIN \"bob x",
            "LOGIN \"a\\b\" x",
            "LOGIN bob x y",
            "LOGIN {9}\r\nbob",
        ] {
            assert!(command(bad_input.as_bytes(), Faults::default()).is_err(), "{bad_input:?}");
        }
    }

    #[test]
    fn sequence_sets() {
        let Command::Fetch { set, .. } = ok("FETCH 1,3:4,6:* FLAGS") else {
            panic!()
        };
        assert!(set.contains(1, 9) && !set.contains(2, 9) && set.contains(4, 9) && set.contains(9, 9));
        assert_eq!(set.highest(), SeqNo::Star);
        let Command::Fetch { set, .. } = ok("FETCH 5:2 FLAGS") else {
            panic!()
        };
        assert!(set.contains(3, 1) && set.highest() == SeqNo::Number(5));
        for bad_input in ["FETCH 0 FLAGS", "FETCH 1: FLAGS", "FETCH 1,,2 FLAGS", "FETCH 99999999999 FLAGS"] {
            assert!(command(bad_input.as_bytes(), Faults::default()).is_err(), "{bad_input:?}");
        }
    }

    #[test]
    fn fetch_items() {
        let Command::Fetch { items, .. } = ok("FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.10> body[])") else {
            panic!()
        };
        assert_eq!(
            items,
            [
                FetchItem::Flags,
                FetchItem::Body {
                    section: Section::Fields {
                        not: false,
                        names: vec![b"From".to_vec(), b"To".to_vec()]
                    },
                    peek: true,
                    partial: Some((0, 10))
                },
                FetchItem::Body {
                    section: Section::Full,
                    peek: false,
                    partial: None
                },
            ]
        );
        assert_eq!(ok("FETCH 1 fast"), ok("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)"));
        for bad_input in [
            "FETCH 1 FULL",
            "FETCH 1 (ALL)",
            "FETCH 1 BODY",
            "FETCH 1 BODY[1]",
            "FETCH 1 ()",
            "FETCH 1 (FLAGS",
        ] {
            assert!(command(bad_input.as_bytes(), Faults::default()).is_err(), "{bad_input:?}");
        }
    }

    #[test]
    fn store_and_search() {
        assert_eq!(
            ok("UID STORE 1:* -FLAGS.SILENT (\\Seen \\Deleted $Junk)"),
            Command::Store {
                uid: true,
                set: SeqSet(vec![(SeqNo::Number(1), SeqNo::Star)]),
                mode: StoreMode::Remove,
                silent: true,
                flags: Flags::SEEN.union(Flags::DELETED)
            }
        );
        let Command::Search { key, charset, .. } = ok("SEARCH CHARSET UTF-8 OR FROM bob (SUBJECT \"hi there\" UNSEEN) 1:2") else {
            panic!()
        };
        assert_eq!(charset.as_deref(), Some(&b"UTF-8"[..]));
        let SearchKey::And(keys) = key else { panic!() };
        assert_eq!(keys.len(), 2);
        assert!(command(format!("SEARCH {}ALL", "NOT ".repeat(40)).as_bytes(), Faults::default()).is_err());
        assert!(command(b"SEARCH", Faults::default()).is_err());
    }

    #[test]
    fn tags() {
        assert!(is_tag(b"a1") && is_tag(b"A]") && !is_tag(b"a+") && !is_tag(b"*") && !is_tag(b"") && !is_tag(b"a{"));
    }

    #[test]
    fn garbage_never_panics() {
        let seeds: [&[u8]; 6] = [
            b"FETCH 1:*,2 (FLAGS BODY.PEEK[HEADER.FIELDS (A \"b\")]<1.2> UID)",
            b"UID STORE 1 +FLAGS.SILENT (\\Seen x)",
            b"SEARCH CHARSET UTF-8 OR (FROM {1+}\r\nx NOT 2:*) HEADER a \"b\"",
            b"APPEND x (\\Seen) \" 1-Jan-2000 00:00:00 +0000\" {3}\r\nabc",
            b"LIST \"\" %*",
            b"STATUS INBOX (MESSAGES UIDNEXT)",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let mut input = seeds[rng.usize(..seeds.len())].to_vec();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..=input.len());
                match rng.u8(..3) {
                    0 if at < input.len() => {
                        input.remove(at);
                    }
                    1 => input.insert(at, rng.u8(..)),
                    _ => input.insert(at, b"(){}[]<>\"\\ *:,.+0\r\n"[rng.usize(..17)]),
                }
            }
            let _ = command(&input, Faults::default());
            let _ = super::super::message::envelope(&input);
            let _ = super::super::message::parse_date_time(&input);
        }
    }
}
