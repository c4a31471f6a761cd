//! The Range request field (RFC 9110 §14.1-14.2): its syntax, and what it selects of a
//! representation of a given length.

/// Most range-specs read from one field; a longer list is treated as not a range request at all.
const MAX_SPECS: usize = 100;

/// What a Range field selects, once read against the representation's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Selection {
    /// The whole representation, 200: no valid bytes Range, or several ranges (RFC 9110 §14.2 lets
    /// a server ignore Range, so this is the simple answer to a multi-range request).
    Whole,
    /// One satisfiable range, bytes `first..=last` (both inclusive, within the length): 206.
    Part {
        /// The first byte's offset.
        first: u64,
        /// The last byte's offset, already clamped to the length.
        last: u64,
    },
    /// None of the ranges is satisfiable: 416 (RFC 9110 §15.5.17).
    Unsatisfiable,
}

/// One range-spec as written (RFC 9110 §14.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-pos "-" [ last-pos ]`.
    Int { first: u64, last: Option<u64> },
    /// `"-" suffix-length`: the last so many bytes.
    Suffix(u64),
}

impl Spec {
    /// The bytes this spec selects of `len`, or `None` if it is unsatisfiable (RFC 9110 §14.1.1).
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            Spec::Int { first, last } if first < len => Some((first, last.map_or(len - 1, |last| last.min(len - 1)))),
            Spec::Suffix(n) if n > 0 && len > 0 => Some((len - n.min(len), len - 1)),
            _ => None,
        }
    }

    /// Satisfiable by RFC 9110 §14.1.1's letter, which makes a non-empty suffix of an empty
    /// representation satisfiable even though there is no byte to send.
    fn satisfiable(self, len: u64) -> bool {
        match self {
            Spec::Int { first, .. } => first < len,
            Spec::Suffix(n) => n > 0,
        }
    }
}

/// What the Range field `value` selects of a representation of `len` bytes. Anything that is not
/// a syntactically valid `bytes` range-set is ignored (RFC 9110 §14.2), selecting the whole.
pub(super) fn select(value: &[u8], len: u64) -> Selection {
    let Some(specs) = parse(value) else {
        return Selection::Whole;
    };
    if !specs.iter().any(|spec| spec.satisfiable(len)) {
        return Selection::Unsatisfiable;
    }
    match specs[..] {
        // A suffix of an empty file is satisfiable yet has no bytes: the (empty) whole answers it.
        [spec] => spec
            .resolve(len)
            .map_or(Selection::Whole, |(first, last)| Selection::Part { first, last }),
        _ => Selection::Whole,
    }
}

/// The range-specs of a `bytes` Range value; `None` for another unit or invalid syntax.
fn parse(value: &[u8]) -> Option<Vec<Spec>> {
    let value = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    let (unit, set) = value.split_once('=')?;
    // Range units are case-insensitive (RFC 9110 §14.1).
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    // RFC 9110 §5.6.1.2: empty list members are allowed and ignored.
    for member in set.split(',').map(|m| m.trim_matches([' ', '\t'])).filter(|m| !m.is_empty()) {
        if specs.len() == MAX_SPECS {
            return None;
        }
        let (first, last) = member.split_once('-')?;
        let spec = match (number(first), number(last)) {
            (Some(first), None) if last.is_empty() => Spec::Int { first, last: None },
            (Some(first), Some(last)) if last >= first => Spec::Int { first, last: Some(last) },
            (None, Some(n)) if first.is_empty() => Spec::Suffix(n),
            _ => return None,
        };
        specs.push(spec);
    }
    (!specs.is_empty()).then_some(specs)
}

/// `1*DIGIT`; a number too large for 64 bits is taken as the largest (it is past any file's end).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.bytes()
            .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .unwrap_or(u64::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(first: u64, last: u64) -> Selection {
        Selection::Part { first, last }
    }

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(select(b"bytes=0-99", 1000), part(0, 99));
        assert_eq!(select(b"bytes=0-0", 1000), part(0, 0));
        assert_eq!(select(b"bytes=500-", 1000), part(500, 999));
        assert_eq!(select(b"bytes=-100", 1000), part(900, 999));
        assert_eq!(select(b"bytes=999-999", 1000), part(999, 999));
        assert_eq!(select(b"Bytes=1-2", 1000), part(1, 2), "the unit is case-insensitive");
        assert_eq!(select(b" bytes=1-2 ", 1000), part(1, 2));
        assert_eq!(select(b"bytes= 1-2 ,", 1000), part(1, 2), "empty list members are ignored");
    }

    #[test]
    fn past_the_end_clamps() {
        assert_eq!(select(b"bytes=900-5000", 1000), part(900, 999));
        assert_eq!(select(b"bytes=-5000", 1000), part(0, 999));
        assert_eq!(select(b"bytes=0-99999999999999999999999", 1000), part(0, 999));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(select(b"bytes=1000-", 1000), Selection::Unsatisfiable);
        assert_eq!(select(b"bytes=1000-2000", 1000), Selection::Unsatisfiable);
        assert_eq!(select(b"bytes=-0", 1000), Selection::Unsatisfiable);
        assert_eq!(select(b"bytes=99999999999999999999999-", 1000), Selection::Unsatisfiable);
        assert_eq!(select(b"bytes=0-", 0), Selection::Unsatisfiable);
        assert_eq!(select(b"bytes=1000-,2000-", 1000), Selection::Unsatisfiable);
        assert_eq!(select(b"bytes=-1", 0), Selection::Whole, "satisfiable, but no byte to send");
    }

    #[test]
    fn invalid_syntax_is_ignored() {
        for bad in [
            &b""[..],
            b"bytes",
            b"bytes=",
            b"bytes=,",
            b"bytes=5-2",
            b"bytes=abc",
            b"bytes=1",
            b"bytes=-",
            b"bytes=--1",
            b"bytes=1-2-3",
            b"bytes=+1-2",
            b"bytes=0x1-2",
            b"bytes =0-1",
            b"bytes=0-1;x",
            b"items=0-1",
            b"0-1",
            b"bytes 0-1",
            b"bytes=0-1,5-2",
            b"bytes=\xff-1",
        ] {
            assert_eq!(select(bad, 1000), Selection::Whole, "{:?}", String::from_utf8_lossy(bad));
        }
        let many = format!("bytes={}", vec!["1-2"; MAX_SPECS + 1].join(","));
        assert_eq!(select(many.as_bytes(), 1000), Selection::Whole);
    }

    #[test]
    fn several_ranges_get_the_whole() {
        assert_eq!(select(b"bytes=0-1,5-9", 1000), Selection::Whole);
        assert_eq!(select(b"bytes=0-1, 2000-", 1000), Selection::Whole, "one satisfiable is enough");
    }
}
