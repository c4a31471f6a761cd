//! The segment index box (`sidx`, ISO/IEC 14496-12 §8.16.3) that a SegmentBase's `@indexRange`
//! points at: it gives each segment's size and duration, so the player can ask for each one by
//! its byte range.

use super::mpd::ByteRange;

/// One segment of the file, as the index gives it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reference {
    /// Its bytes in the file.
    pub(super) range: ByteRange,
    /// Its duration in seconds.
    pub(super) duration: f64,
}

/// The references of the first `sidx` box in `bytes`, which are the file's bytes from
/// `file_offset` on (the start of the index range).
pub(super) fn parse(bytes: &[u8], file_offset: u64) -> Result<Vec<Reference>, String> {
    let mut at = 0usize;
    loop {
        let rest = &bytes[at..];
        if rest.len() < 8 {
            return Err("no sidx box in the index range".to_owned());
        }
        let size32 = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let kind = &rest[4..8];
        let (size, header) = match size32 {
            // A 64-bit size follows the type.
            1 => {
                let large = rest.get(8..16).ok_or("a box header cut short")?;
                let size = u64::from_be_bytes(large.try_into().map_err(|_| "a box header cut short")?);
                (usize::try_from(size).unwrap_or(usize::MAX), 16)
            }
            // The box runs to the end of the file.
            0 => (rest.len(), 8),
            n => (n as usize, 8),
        };
        if size < header {
            return Err(format!("a box of size {size}, smaller than its header"));
        }
        if kind == b"sidx" {
            let body = rest
                .get(header..size)
                .ok_or_else(|| format!("the sidx box ({size} bytes) does not fit in the index range ({} bytes)", rest.len()))?;
            let end_of_box = file_offset
                .checked_add((at + size) as u64)
                .ok_or("the sidx box ends past any file")?;
            return references(body, end_of_box);
        }
        // Boxes before it (e.g. `styp`) are skipped; one running past the range hides the sidx.
        at = at
            .checked_add(size)
            .filter(|&end| end <= bytes.len())
            .ok_or("no sidx box in the index range")?;
    }
}

/// The body of a `sidx` box after its size and type; `anchor` is the file offset of the first byte
/// after the box, which `first_offset` counts from.
fn references(body: &[u8], anchor: u64) -> Result<Vec<Reference>, String> {
    let mut r = Reader { bytes: body, at: 0 };
    let version = r.u8()?;
    r.skip(3)?; // flags
    let _reference_id = r.u32()?;
    let timescale = r.u32()?;
    if timescale == 0 {
        return Err("the sidx has timescale 0".to_owned());
    }
    let first_offset = match version {
        0 => {
            let _earliest_presentation_time = r.u32()?;
            u64::from(r.u32()?)
        }
        1 => {
            let _earliest_presentation_time = r.u64()?;
            r.u64()?
        }
        v => return Err(format!("sidx version {v} (only 0 and 1 exist)")),
    };
    r.skip(2)?; // reserved
    let count = r.u16()?;
    let mut offset = anchor.checked_add(first_offset).ok_or("the sidx's first_offset is past any file")?;
    let mut out = Vec::with_capacity(usize::from(count));
    for i in 0..count {
        let word = r.u32()?;
        let duration = r.u32()?;
        let _sap = r.u32()?;
        if word >> 31 == 1 {
            return Err(format!(
                "sidx reference {i} points at another sidx (a hierarchical index is not supported)"
            ));
        }
        let size = u64::from(word & 0x7fff_ffff);
        if size == 0 {
            return Err(format!("sidx reference {i} has size 0"));
        }
        let last = offset.checked_add(size - 1).ok_or("a sidx reference past any file")?;
        out.push(Reference {
            range: ByteRange { first: offset, last },
            duration: f64::from(duration) / f64::from(timescale),
        });
        offset = last + 1;
    }
    if out.is_empty() {
        return Err("the sidx has no references".to_owned());
    }
    Ok(out)
}

/// Big-endian fields of a box body; running out is an error, not a panic.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let field = self
            .bytes
            .get(self.at..self.at + N)
            .and_then(|b| <[u8; N]>::try_from(b).ok())
            .ok_or("the sidx box is cut short")?;
        self.at += N;
        Ok(field)
    }
    fn skip(&mut self, n: usize) -> Result<(), String> {
        match self.bytes.len() >= self.at + n {
            true => {
                self.at += n;
                Ok(())
            }
            false => Err("the sidx box is cut short".to_owned()),
        }
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take()?))
    }
}

/// A `sidx` box with these (size, duration) references, for tests here and in the player's.
#[cfg(test)]
pub(super) fn build(version: u8, timescale: u32, first_offset: u64, refs: &[(u32, u32)]) -> Vec<u8> {
    let mut body = vec![version, 0, 0, 0];
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&timescale.to_be_bytes());
    if version == 0 {
        body.extend_from_slice(&0u32.to_be_bytes());
        body.extend_from_slice(&(first_offset as u32).to_be_bytes());
    } else {
        body.extend_from_slice(&0u64.to_be_bytes());
        body.extend_from_slice(&first_offset.to_be_bytes());
    }
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&(refs.len() as u16).to_be_bytes());
    for &(size, duration) in refs {
        body.extend_from_slice(&size.to_be_bytes());
        body.extend_from_slice(&duration.to_be_bytes());
        body.extend_from_slice(&0x9000_0000u32.to_be_bytes());
    }
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(b"sidx");
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_0() {
        let sidx = build(0, 1000, 0, &[(100, 1000), (150, 500)]);
        assert_eq!(sidx.len(), 32 + 2 * 12);
        // The index range starts at 800: segments follow the box directly.
        let refs = parse(&sidx, 800).expect("sidx");
        let end = 800 + sidx.len() as u64;
        assert_eq!(
            refs,
            vec![
                Reference {
                    range: ByteRange {
                        first: end,
                        last: end + 99
                    },
                    duration: 1.0
                },
                Reference {
                    range: ByteRange {
                        first: end + 100,
                        last: end + 249
                    },
                    duration: 0.5
                },
            ]
        );
    }

    #[test]
    fn version_1_with_first_offset_and_a_box_before() {
        let mut bytes = vec![0, 0, 0, 12];
        bytes.extend_from_slice(b"styp");
        bytes.extend_from_slice(b"msdh");
        let sidx = build(1, 90000, 20, &[(4000, 90000)]);
        assert_eq!(sidx.len(), 40 + 12);
        bytes.extend_from_slice(&sidx);
        let refs = parse(&bytes, 0).expect("sidx");
        assert_eq!(
            refs[0].range,
            ByteRange {
                first: 64 + 20,
                last: 64 + 20 + 3999
            }
        );
        assert_eq!(refs[0].duration, 1.0);
    }

    #[test]
    fn bad_boxes_are_errors() {
        let good = build(0, 1000, 0, &[(100, 1000)]);
        assert!(parse(&good[..good.len() - 1], 0).is_err(), "cut short");
        assert!(parse(b"", 0).is_err());
        assert!(parse(&[0, 0, 0, 4, b'f', b'r', b'e', b'e'], 0).is_err(), "size below its header");
        let mut v2 = good.clone();
        v2[8] = 2;
        assert!(parse(&v2, 0).is_err(), "version 2");
        let mut zero_scale = good.clone();
        zero_scale[16..20].copy_from_slice(&0u32.to_be_bytes());
        assert!(parse(&zero_scale, 0).is_err(), "timescale 0");
        let hierarchical = build(0, 1000, 0, &[(0x8000_0000 | 100, 1000)]);
        assert!(parse(&hierarchical, 0).is_err(), "reference to a sidx");
        let mut huge = vec![0, 0, 0, 1];
        huge.extend_from_slice(b"moof");
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(parse(&huge, 0).is_err(), "a box larger than the range");
    }
}
