//! A .torrent file (BEP 3 metainfo): what the client needs of it, and the info-hash, the SHA-1 of
//! the info dictionary's bytes exactly as they are in the file.

use bendy::decoding::{Decoder, Object};
use sha1::{Digest, Sha1};

/// Bencode nests no deeper than this in a torrent or a tracker's reply; deeper is an error, never
/// a deep recursion.
pub(super) const MAX_DEPTH: usize = 32;
/// The whole download is kept in memory until it is written: at most this many bytes.
pub(super) const MAX_TOTAL: u64 = 64 << 20;
/// A multi-file torrent of more files than this is refused.
const MAX_FILES: usize = 10_000;
/// Path components of one file.
const MAX_PATH_PARTS: usize = 64;

/// One file of the torrent: where it goes under the output folder, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileEntry {
    /// Path components under the torrent's name (a multi-file torrent's folder); empty for a
    /// single-file torrent, whose file is the name.
    pub(super) path: Vec<String>,
    /// Bytes.
    pub(super) length: u64,
}

/// A parsed torrent.
#[derive(Debug, Clone)]
pub(super) struct Torrent {
    /// The tracker's URL.
    pub(super) announce: String,
    /// SHA-1 of the info dictionary's bytes.
    pub(super) info_hash: [u8; 20],
    /// The file's name (single file) or the folder's (multi-file).
    pub(super) name: String,
    /// Bytes per piece (the last may be shorter).
    pub(super) piece_length: u64,
    /// Each piece's SHA-1.
    pub(super) hashes: Vec<[u8; 20]>,
    /// The files, in the order their bytes follow each other.
    pub(super) files: Vec<FileEntry>,
    /// Sum of the files' lengths.
    pub(super) total: u64,
}

impl Torrent {
    /// Number of pieces.
    pub(super) fn pieces(&self) -> usize {
        self.hashes.len()
    }

    /// Byte offset of piece `index` in the whole.
    pub(super) fn piece_offset(&self, index: usize) -> u64 {
        index as u64 * self.piece_length
    }

    /// Length of piece `index` (all but the last are `piece_length`).
    pub(super) fn piece_len(&self, index: usize) -> u64 {
        let start = self.piece_offset(index);
        self.total.saturating_sub(start).min(self.piece_length)
    }
}

/// Parses a torrent file's bytes.
pub(super) fn parse(bytes: &[u8]) -> Result<Torrent, String> {
    let bad = |e: bendy::decoding::Error| format!("not a torrent file: {e}");
    let mut decoder = Decoder::new(bytes).with_max_depth(MAX_DEPTH);
    let top = decoder.next_object().map_err(bad)?.ok_or("an empty file")?;
    let Object::Dict(mut top) = top else {
        return Err("not a torrent file: not a dictionary".to_owned());
    };
    let mut announce = None;
    let mut info_raw = None;
    while let Some((key, value)) = top.next_pair().map_err(bad)? {
        match (key, value) {
            (b"announce", Object::Bytes(url)) => announce = Some(utf8(url, "announce")?),
            (b"info", Object::Dict(info)) => info_raw = Some(info.into_raw().map_err(bad)?),
            (b"announce" | b"info", _) => return Err(format!("`{}` has the wrong type", String::from_utf8_lossy(key))),
            // Anything else (comment, created by, announce-list ...) is not needed.
            _ => {}
        }
    }
    let announce = announce.ok_or("the torrent has no `announce`")?;
    let info_raw = info_raw.ok_or("the torrent has no `info` dictionary")?;
    let info_hash: [u8; 20] = Sha1::digest(info_raw).into();
    parse_info(info_raw, announce, info_hash)
}

fn parse_info(raw: &[u8], announce: String, info_hash: [u8; 20]) -> Result<Torrent, String> {
    let bad = |e: bendy::decoding::Error| format!("bad info dictionary: {e}");
    let mut decoder = Decoder::new(raw).with_max_depth(MAX_DEPTH);
    let Some(Object::Dict(mut info)) = decoder.next_object().map_err(bad)? else {
        return Err("bad info dictionary".to_owned());
    };
    let (mut name, mut piece_length, mut pieces, mut length, mut files) = (None, None, None, None, None);
    while let Some((key, value)) = info.next_pair().map_err(bad)? {
        match (key, value) {
            (b"name", Object::Bytes(v)) => name = Some(path_part(v, "name")?),
            (b"piece length", Object::Integer(v)) => piece_length = Some(int(v, "piece length")?),
            (b"pieces", Object::Bytes(v)) => pieces = Some(v),
            (b"length", Object::Integer(v)) => length = Some(int(v, "length")?),
            (b"files", Object::List(mut list)) => {
                let mut entries = Vec::new();
                while let Some(item) = list.next_object().map_err(bad)? {
                    if entries.len() == MAX_FILES {
                        return Err(format!("more than {MAX_FILES} files"));
                    }
                    let Object::Dict(file) = item else {
                        return Err("a `files` entry is not a dictionary".to_owned());
                    };
                    entries.push(file_entry(file)?);
                }
                files = Some(entries);
            }
            (b"name" | b"piece length" | b"pieces" | b"length" | b"files", _) => {
                return Err(format!("`{}` has the wrong type", String::from_utf8_lossy(key)))
            }
            _ => {}
        }
    }
    let name = name.ok_or("the info dictionary has no `name`")?;
    let piece_length = piece_length.filter(|&n| n > 0).ok_or("no positive `piece length`")?;
    let pieces = pieces.ok_or("the info dictionary has no `pieces`")?;
    let files = match (length, files) {
        (Some(length), None) => vec![FileEntry { path: Vec::new(), length }],
        (None, Some(files)) if !files.is_empty() => files,
        _ => return Err("the info dictionary needs exactly one of `length` and `files`".to_owned()),
    };
    let total = files
        .iter()
        .try_fold(0u64, |sum, f| sum.checked_add(f.length))
        .ok_or("lengths overflow")?;
    if total == 0 || total > MAX_TOTAL {
        return Err(format!("a torrent of {total} bytes (1 to {MAX_TOTAL} taken)"));
    }
    if pieces.len() % 20 != 0 {
        return Err(format!("`pieces` is {} bytes, not a multiple of 20", pieces.len()));
    }
    let hashes: Vec<[u8; 20]> = pieces
        .chunks_exact(20)
        .map(|h| {
            let mut out = [0u8; 20];
            out.copy_from_slice(h);
            out
        })
        .collect();
    let expected = total.div_ceil(piece_length);
    if hashes.len() as u64 != expected {
        return Err(format!("{} piece hashes for {expected} pieces", hashes.len()));
    }
    Ok(Torrent {
        announce,
        info_hash,
        name,
        piece_length,
        hashes,
        files,
        total,
    })
}

fn file_entry(mut file: bendy::decoding::DictDecoder<'_, '_>) -> Result<FileEntry, String> {
    let bad = |e: bendy::decoding::Error| format!("bad `files` entry: {e}");
    let (mut length, mut path) = (None, None);
    while let Some((key, value)) = file.next_pair().map_err(bad)? {
        match (key, value) {
            (b"length", Object::Integer(v)) => length = Some(int(v, "length")?),
            (b"path", Object::List(mut list)) => {
                let mut parts = Vec::new();
                while let Some(part) = list.next_object().map_err(bad)? {
                    let Object::Bytes(part) = part else {
                        return Err("a `path` element is not a string".to_owned());
                    };
                    if parts.len() == MAX_PATH_PARTS {
                        return Err(format!("a path of more than {MAX_PATH_PARTS} parts"));
                    }
                    parts.push(path_part(part, "path")?);
                }
                path = Some(parts);
            }
            _ => {}
        }
    }
    let path = path.filter(|p| !p.is_empty()).ok_or("a `files` entry without a `path`")?;
    Ok(FileEntry {
        path,
        length: length.ok_or("a `files` entry without a `length`")?,
    })
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("`{what}` is not UTF-8"))
}

/// A name that is safe as one path component: the output must stay inside OUTDIR.
fn path_part(bytes: &[u8], what: &str) -> Result<String, String> {
    let part = utf8(bytes, what)?;
    let unsafe_part = part.is_empty() || part == "." || part == ".." || part.contains(['/', '\\', '\0']);
    match unsafe_part {
        true => Err(format!("`{what}` {part:?} is not a plain file name")),
        false => Ok(part),
    }
}

/// A non-negative bencoded integer.
fn int(text: &str, what: &str) -> Result<u64, String> {
    text.parse::<u64>().map_err(|_| format!("`{what}` is {text}, not a size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/bittorrent/");
        std::fs::read(format!("{path}{name}")).expect("fixture")
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn parses_the_fixtures() {
        let sample = parse(&fixture("sample.torrent")).expect("sample");
        assert_eq!(hex(&sample.info_hash), "978d8983bd506915a578f583b1e9a3ff32c1c7b2");
        assert_eq!((sample.name.as_str(), sample.total, sample.pieces()), ("sample.bin", 150_000, 5));
        assert_eq!(sample.piece_len(4), 18_928);
        assert_eq!(sample.announce, "http://127.0.0.1:6969/announce");
        let swarm = parse(&fixture("swarm.torrent")).expect("swarm");
        assert_eq!(hex(&swarm.info_hash), "59d7abb991f4aa70b30e43407cdfed730440d525");
        assert_eq!((swarm.pieces(), swarm.piece_length), (64, 16384));
        let multi = parse(&fixture("multi.torrent")).expect("multi");
        assert_eq!(hex(&multi.info_hash), "2175addea59de6998d3a0877a7b958d6bd662235");
        assert_eq!(multi.files.len(), 2);
        assert_eq!(multi.files[1].path, ["sub", "b.bin"]);
    }

    #[test]
    fn rejects_unsafe_names_and_bad_sizes() {
        let info = |body: &str| format!("d8:announce5:x:y/z4:infod{body}ee");
        let hashes = format!("6:pieces20:{}", "a".repeat(20));
        let cases = [
            info(&format!("6:lengthi10e4:name2:..12:piece lengthi16e{hashes}")),
            info(&format!("6:lengthi10e4:name3:a/b12:piece lengthi16e{hashes}")),
            info(&format!("6:lengthi0e4:name1:a12:piece lengthi16e{hashes}")),
            info(&format!("6:lengthi40e4:name1:a12:piece lengthi16e{hashes}")),
            info(&format!("6:lengthi10e4:name1:a12:piece lengthi0e{hashes}")),
            info(&format!("6:lengthi-1e4:name1:a12:piece lengthi16e{hashes}")),
            info(&format!("5:filesld6:lengthi1e4:pathl2:..eee4:name1:a12:piece lengthi16e{hashes}")),
        ];
        for case in cases {
            assert!(parse(case.as_bytes()).is_err(), "{case}");
        }
        let ok = info(&format!("6:lengthi10e4:name1:a12:piece lengthi16e{hashes}"));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn rejects_damaged_files_without_panicking() {
        let whole = fixture("sample.torrent");
        for cut in 0..whole.len() {
            assert!(parse(&whole[..cut]).is_err());
        }
        for at in (0..whole.len()).step_by(7) {
            let mut flipped = whole.clone();
            flipped[at] ^= 0x55;
            let _ = parse(&flipped);
        }
        let deep = format!("{}{}", "l".repeat(10_000), "e".repeat(10_000));
        assert!(parse(deep.as_bytes()).is_err());
    }
}
