//! What FETCH and SEARCH need to know about a message's bytes: header and
//! text (RFC 5322 §2.1), header fields, the ENVELOPE structure (RFC 9051
//! §7.5.2) and dates in IMAP's `date-time` form.
//!
//! Nothing here decodes MIME: header values are used as they are in the file
//! (unfolded), which is what RFC 9051 asks of ENVELOPE.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// The header (with the empty line that ends it) and the text of `message`.
pub(super) fn split(message: &[u8]) -> (&[u8], &[u8]) {
    if message.starts_with(b"\r\n") {
        return message.split_at(2);
    }
    match find(message, b"\r\n\r\n") {
        Some(at) => message.split_at(at + 4),
        None => (message, &[]),
    }
}

/// The fields of `header`: (name, raw bytes of the whole field with its CRLF).
pub(super) fn fields(header: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < header.len() {
        let end = header[at..].iter().position(|&b| b == b'\n').map_or(header.len(), |i| at + i + 1);
        let next_continues = header.get(end).is_some_and(|&b| b == b' ' || b == b'\t');
        if !next_continues {
            let field = &header[start..end];
            if let Some(colon) = field.iter().position(|&b| b == b':') {
                fields.push((trim(&field[..colon]), field));
            }
            start = end;
        }
        at = end;
    }
    fields
}

/// The unfolded, trimmed value of the first field called `name`.
pub(super) fn field(header: &[u8], name: &str) -> Option<Vec<u8>> {
    let (_, raw) = fields(header).into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))?;
    let colon = raw.iter().position(|&b| b == b':')?;
    let value: Vec<u8> = raw[colon + 1..].iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect();
    Some(trim(&value).to_vec())
}

/// The raw fields of `header` whose names are (`not`: are not) in `names`, then the empty line (RFC 9051 §6.4.5).
pub(super) fn header_fields(header: &[u8], names: &[Vec<u8>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, raw) in fields(header) {
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) != not {
            out.extend_from_slice(raw);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The first index of `needle` in `haystack`.
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len().max(1)).position(|w| w == needle)
}

/// Case-insensitive (ASCII) substring test, as SEARCH wants (RFC 9051 §6.4.4).
pub(super) fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    // Bytes become chars one to one (Latin-1) so that std's linear-time
    // string search can be used on arbitrary bytes: a needle can only match
    // at a char boundary, so matches are the same as on the bytes.
    let widen = |bytes: &[u8]| -> String { bytes.iter().map(|b| char::from(b.to_ascii_lowercase())).collect() };
    widen(haystack).contains(&widen(needle))
}

/// `bytes` as an IMAP `nstring`: NIL, a quoted string, or a literal when quoting cannot carry it.
pub(super) fn nstring(bytes: Option<&[u8]>) -> Vec<u8> {
    match bytes {
        None => b"NIL".to_vec(),
        Some(bytes) => string(bytes),
    }
}

/// `bytes` as an IMAP `astring` in a response: an atom when it can be one, else a string.
pub(super) fn astring(bytes: &[u8]) -> Vec<u8> {
    let atom_char = |b: &u8| (0x21..0x7f).contains(b) && !b"(){%*\"\\]".contains(b);
    if !bytes.is_empty() && bytes.iter().all(atom_char) {
        bytes.to_vec()
    } else {
        string(bytes)
    }
}

/// `bytes` as an IMAP `string`: quoted if it is 7-bit text, else a literal.
pub(super) fn string(bytes: &[u8]) -> Vec<u8> {
    if bytes.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        let mut out = Vec::with_capacity(bytes.len() + 2);
        out.push(b'"');
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    } else {
        literal(bytes)
    }
}

/// `bytes` as an IMAP literal.
pub(super) fn literal(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{{{}}}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out
}

/// The ENVELOPE of a message with this header (RFC 9051 §7.5.2).
pub(super) fn envelope(header: &[u8]) -> Vec<u8> {
    let value = |name: &str| field(header, name);
    let addresses = |name: &str| value(name).map(|v| parse_addresses(&v)).filter(|a| !a.is_empty());
    let from = addresses("From");
    // "If the Sender or Reply-To header lines are absent in the [RFC5322]
    // header, or are present but empty, the server sets the corresponding
    // member of the envelope to be the same value as the from member."
    let sender = addresses("Sender").or_else(|| from.clone());
    let reply_to = addresses("Reply-To").or_else(|| from.clone());
    let mut out = b"(".to_vec();
    out.extend(nstring(value("Date").as_deref()));
    out.push(b' ');
    out.extend(nstring(value("Subject").as_deref()));
    for list in [&from, &sender, &reply_to, &addresses("To"), &addresses("Cc"), &addresses("Bcc")] {
        out.push(b' ');
        out.extend(address_list(list.as_deref()));
    }
    out.push(b' ');
    out.extend(nstring(value("In-Reply-To").as_deref()));
    out.push(b' ');
    out.extend(nstring(value("Message-ID").as_deref()));
    out.push(b')');
    out
}

/// One member of an envelope address list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// A mailbox: display name, local part, domain.
    Mailbox(Option<Vec<u8>>, Vec<u8>, Vec<u8>),
    /// The start of a group, with its name.
    GroupStart(Vec<u8>),
    /// The end of a group.
    GroupEnd,
}

fn address_list(list: Option<&[Address]>) -> Vec<u8> {
    let Some(list) = list else { return b"NIL".to_vec() };
    let mut out = b"(".to_vec();
    for address in list {
        out.push(b'(');
        match address {
            Address::Mailbox(name, local, domain) => {
                out.extend(nstring(name.as_deref()));
                out.extend_from_slice(b" NIL ");
                out.extend(string(local));
                out.push(b' ');
                out.extend(string(domain));
            }
            // RFC 9051 §7.5.2: a group is marked by a NIL host name.
            Address::GroupStart(name) => {
                out.extend_from_slice(b"NIL NIL ");
                out.extend(string(name));
                out.extend_from_slice(b" NIL");
            }
            Address::GroupEnd => out.extend_from_slice(b"NIL NIL NIL NIL"),
        }
        out.push(b')');
    }
    out.push(b')');
    out
}

/// A lexical token of an address header (RFC 5322 §3.4); comments are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(Vec<u8>),
    Special(u8),
}

fn tokens(value: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < value.len() {
        match value[at] {
            b' ' | b'\t' | b'\r' | b'\n' => at += 1,
            b'(' => {
                let mut depth = 0usize;
                while at < value.len() {
                    match value[at] {
                        b'\\' => at += 1,
                        b'(' => depth += 1,
                        b')' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                    at += 1;
                    if depth == 0 {
                        break;
                    }
                }
            }
            b'"' => {
                let mut word = Vec::new();
                at += 1;
                while at < value.len() && value[at] != b'"' {
                    if value[at] == b'\\' && at + 1 < value.len() {
                        at += 1;
                    }
                    word.push(value[at]);
                    at += 1;
                }
                at += 1;
                out.push(Token::Word(word));
            }
            special @ (b'<' | b'>' | b'@' | b',' | b';' | b':') => {
                out.push(Token::Special(special));
                at += 1;
            }
            _ => {
                let start = at;
                while at < value.len() && !b" \t\r\n()\"<>@,;:".contains(&value[at]) {
                    at += 1;
                }
                out.push(Token::Word(value[start..at].to_vec()));
            }
        }
    }
    out
}

/// The addresses of an address-list header value, groups included; unparsable members are skipped.
fn parse_addresses(value: &[u8]) -> Vec<Address> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let (mut in_angle, mut in_group) = (false, false);
    for token in tokens(value) {
        match token {
            Token::Special(b'<') => {
                in_angle = true;
                current.push(token);
            }
            Token::Special(b'>') => {
                in_angle = false;
                current.push(token);
            }
            Token::Special(b':') if !in_angle && !in_group => {
                out.push(Address::GroupStart(phrase(&current)));
                current.clear();
                in_group = true;
            }
            Token::Special(b';') if !in_angle && in_group => {
                out.extend(mailbox(&current));
                current.clear();
                out.push(Address::GroupEnd);
                in_group = false;
            }
            Token::Special(b',') if !in_angle => {
                out.extend(mailbox(&current));
                current.clear();
            }
            _ => current.push(token),
        }
    }
    out.extend(mailbox(&current));
    if in_group {
        out.push(Address::GroupEnd);
    }
    out
}

/// Words joined by single spaces.
fn phrase(tokens: &[Token]) -> Vec<u8> {
    let words: Vec<&[u8]> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.as_slice()),
            Token::Special(_) => None,
        })
        .collect();
    words.join(&b' ')
}

/// `name <local@domain>` or `local@domain`.
fn mailbox(tokens: &[Token]) -> Option<Address> {
    let (name, spec) = match tokens.iter().position(|t| *t == Token::Special(b'<')) {
        Some(open) => {
            let close = tokens.iter().rposition(|t| *t == Token::Special(b'>')).filter(|&c| c > open)?;
            let mut inner = &tokens[open + 1..close];
            // An obsolete source route, `<@a,@b:user@host>`, is dropped.
            if let Some(colon) = inner.iter().position(|t| *t == Token::Special(b':')) {
                inner = &inner[colon + 1..];
            }
            let name = phrase(&tokens[..open]);
            (Some(name).filter(|n| !n.is_empty()), inner)
        }
        None => (None, tokens),
    };
    let at = spec.iter().rposition(|t| *t == Token::Special(b'@'));
    let (local, domain) = match at {
        Some(at) => (concat(&spec[..at]), concat(&spec[at + 1..])),
        None => (concat(spec), Vec::new()),
    };
    if local.is_empty() {
        return None;
    }
    Some(Address::Mailbox(name, local, domain))
}

/// Words run together, as in an addr-spec, where white space between words is not part of the address.
fn concat(tokens: &[Token]) -> Vec<u8> {
    let mut out = Vec::new();
    for token in tokens {
        if let Token::Word(word) = token {
            out.extend_from_slice(word);
        }
    }
    out
}

/// `time` as an IMAP `date-time` in UTC: `"17-Jul-1996 02:44:25 +0000"` (day padded with a space).
pub(super) fn date_time(time: SystemTime) -> String {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "\"{day:>2}-{}-{year:04} {:02}:{:02}:{:02} +0000\"",
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Parses the contents of an IMAP `date-time` (`17-Jul-1996 02:44:25 -0700`, RFC 9051 §9).
pub(super) fn parse_date_time(text: &[u8]) -> Option<SystemTime> {
    // Byte offsets, not str slicing: the text is whatever the client sent.
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = text.get(from..to)?;
        let digits = digits.strip_prefix(b" ").filter(|_| from == 0).unwrap_or(digits);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let separators = [(2, b'-'), (6, b'-'), (11, b' '), (14, b':'), (17, b':'), (20, b' ')];
    if text.len() != 26 || separators.iter().any(|&(at, c)| text[at] != c) {
        return None;
    }
    let month = MONTHS.iter().position(|m| m.as_bytes().eq_ignore_ascii_case(&text[3..6]))? as i64 + 1;
    let (day, year) = (number(0, 2)?, number(7, 11)?);
    let (hour, minute, second) = (number(12, 14)?, number(15, 17)?, number(18, 20)?);
    let sign = match text[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (zone_h, zone_m) = (number(22, 24)?, number(24, 26)?);
    if !(1..=days_in_month(year, month)).contains(&day) || hour > 23 || minute > 59 || second > 60 || zone_m > 59 {
        return None;
    }
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let utc = local - sign * (zone_h * 3600 + zone_m * 60);
    Some(if utc >= 0 {
        UNIX_EPOCH + Duration::from_secs(utc as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(utc.unsigned_abs())
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms: days since 1970-01-01 <-> proleptic Gregorian dates.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"Received: from x\r\n  by y\r\nFrom: \"Bob Q. Public\" <bob@example.com>\r\n\
        To: alice@example.org (Alice), Team: carol@x.org, \"d e\"@y.org;\r\nSubject: Hi \"there\"\r\n\
        Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nBody line\r\n";

    #[test]
    fn header_and_text() {
        let (header, text) = split(MESSAGE);
        assert!(header.ends_with(b"\r\n\r\n"));
        assert_eq!(text, b"Body line\r\n");
        assert_eq!(split(b"\r\nbody"), (&b"\r\n"[..], &b"body"[..]));
        assert_eq!(split(b"A: b\r\n"), (&b"A: b\r\n"[..], &b""[..]));
        assert_eq!(field(header, "received").as_deref(), Some(&b"from x  by y"[..]));
        assert_eq!(
            header_fields(header, &[b"SUBJECT".to_vec()], false),
            b"Subject: Hi \"there\"\r\n\r\n"
        );
    }

    #[test]
    fn envelope_of_a_message() {
        let (header, _) = split(MESSAGE);
        let envelope = String::from_utf8(envelope(header)).expect("ascii");
        let from = "((\"Bob Q. Public\" NIL \"bob\" \"example.com\"))";
        assert_eq!(
            envelope,
            format!(
                "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Hi \\\"there\\\"\" {from} {from} {from} \
                 ((NIL NIL \"alice\" \"example.org\")(NIL NIL \"Team\" NIL)(NIL NIL \"carol\" \"x.org\")\
                 (NIL NIL \"d e\" \"y.org\")(NIL NIL NIL NIL)) NIL NIL NIL NIL)"
            )
        );
        assert_eq!(envelope_of(b"\r\n"), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    }

    fn envelope_of(header: &[u8]) -> String {
        String::from_utf8(envelope(header)).expect("ascii")
    }

    #[test]
    fn strings() {
        assert_eq!(string(b"a\"b\\c"), b"\"a\\\"b\\\\c\"");
        assert_eq!(string(b"caf\xc3\xa9"), b"{5}\r\ncaf\xc3\xa9");
        assert_eq!(astring(b"INBOX"), b"INBOX");
        assert_eq!(astring(b"My Mail"), b"\"My Mail\"");
        assert_eq!(astring(b"a]"), b"\"a]\"");
        assert!(contains_ci(b"Hello W\xf6rld", b"o w\xf6"));
        assert!(!contains_ci(b"abc", b"abd"));
        assert!(contains_ci(b"abc", b""));
    }

    #[test]
    fn dates() {
        let t = parse_date_time(b"17-Jul-1996 02:44:25 -0700").expect("date");
        assert_eq!(date_time(t), "\"17-Jul-1996 09:44:25 +0000\"");
        let t = parse_date_time(b" 1-Mar-2000 00:00:00 +0000").expect("date");
        assert_eq!(date_time(t), "\" 1-Mar-2000 00:00:00 +0000\"");
        assert_eq!(date_time(UNIX_EPOCH), "\" 1-Jan-1970 00:00:00 +0000\"");
        assert!(parse_date_time("01-Jan-2001 00:00:00 +00é".as_bytes()).is_none());
        for bad in [
            &b"30-Feb-2001 00:00:00 +0000"[..],
            b"1-Jan-2001 00:00:00 +0000",
            b"01-Foo-2001 00:00:00 +0000",
            b"01-Jan-2001 24:00:00 +0000",
            b" 1-Jan-2001 00:00:00 + 100",
        ] {
            assert!(parse_date_time(bad).is_none(), "{bad:?}");
        }
    }
}
