//! Reading a `.torrent` file (BEP 3 metainfo): what the tracker and the seeder need of it.
//!
//! The info-hash is the SHA-1 of the info dictionary's bytes exactly as they stand in the file:
//! `bendy` hands out that byte span (`DictDecoder::into_raw`), so nothing is re-encoded. `bendy`
//! also refuses non-canonical bencode (unsorted keys, leading zeros): a reference server may be
//! that strict with the files it is given.

use std::io::Read;
use std::path::Path;

use bendy::decoding::{Decoder, Object};
use sha1::{Digest, Sha1};

/// The largest `.torrent` file read.
const MAX_TORRENT_FILE: u64 = 8 << 20;
/// Nesting deeper than this in a `.torrent` file is refused (a metainfo nests four levels).
const MAX_DEPTH: usize = 16;
/// The most files a multi-file torrent may list.
const MAX_FILES: usize = 10_000;

/// What a `.torrent` file says about its data.
#[derive(Debug, Clone)]
pub(super) struct Metainfo {
    /// SHA-1 of the info dictionary's bytes as in the file.
    pub info_hash: [u8; 20],
    /// `name`: the file's name (single-file) or the folder's (multi-file).
    pub name: String,
    /// `piece length`, in bytes (positive).
    pub piece_length: u64,
    /// The SHA-1 of each piece.
    pub pieces: Vec<[u8; 20]>,
    /// The files in torrent order; a single-file torrent has one, with an empty path.
    pub files: Vec<FileEntry>,
    /// The sum of the files' lengths (positive).
    pub total_length: u64,
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileEntry {
    /// Path components below the torrent's folder (empty for a single-file torrent).
    pub path: Vec<String>,
    /// Its length in bytes.
    pub length: u64,
}

impl Metainfo {
    /// How many pieces the torrent has.
    pub(super) fn piece_count(&self) -> usize {
        self.pieces.len()
    }

    /// The length of piece `index` (the last one may be short), if there is such a piece.
    pub(super) fn piece_len(&self, index: u64) -> Option<u64> {
        let count = u64::try_from(self.pieces.len()).ok()?;
        if index >= count {
            return None;
        }
        let start = index.checked_mul(self.piece_length)?;
        Some(self.piece_length.min(self.total_length - start))
    }
}

/// Reads and parses the `.torrent` file at `path`.
pub(super) fn load(path: &Path) -> Result<Metainfo, String> {
    let file = std::fs::File::open(path).map_err(|err| format!("cannot open {}: {err}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_TORRENT_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    if bytes.len() as u64 > MAX_TORRENT_FILE {
        return Err(format!("{}: larger than {MAX_TORRENT_FILE} bytes", path.display()));
    }
    parse(&bytes).map_err(|why| format!("{}: {why}", path.display()))
}

fn bad(what: &str) -> impl Fn(bendy::decoding::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// Parses a `.torrent` file's bytes.
pub(super) fn parse(bytes: &[u8]) -> Result<Metainfo, String> {
    let mut decoder = Decoder::new(bytes).with_max_depth(MAX_DEPTH);
    let info_raw = {
        let top = decoder.next_object().map_err(bad("not bencode"))?;
        let Some(Object::Dict(mut top)) = top else {
            return Err("not a bencoded dictionary".to_owned());
        };
        let mut info_raw = None;
        while let Some((key, value)) = top.next_pair().map_err(bad("not bencode"))? {
            if key == b"info" {
                let Object::Dict(info) = value else {
                    return Err("`info` is not a dictionary".to_owned());
                };
                info_raw = Some(info.into_raw().map_err(bad("info"))?);
            }
        }
        info_raw.ok_or("no `info` dictionary")?
    };
    if !matches!(decoder.next_object(), Ok(None)) {
        return Err("bytes after the metainfo dictionary".to_owned());
    }
    let mut meta = parse_info(info_raw)?;
    meta.info_hash = Sha1::digest(info_raw).into();
    Ok(meta)
}

fn parse_info(raw: &[u8]) -> Result<Metainfo, String> {
    let mut decoder = Decoder::new(raw).with_max_depth(MAX_DEPTH);
    let Ok(Some(Object::Dict(mut info))) = decoder.next_object() else {
        return Err("`info` is not a dictionary".to_owned());
    };
    let (mut name, mut piece_length, mut pieces, mut length, mut files) = (None, None, None, None, None);
    while let Some((key, value)) = info.next_pair().map_err(bad("info"))? {
        match key {
            b"name" => name = Some(component(value, "name")?),
            b"piece length" => piece_length = Some(integer(value, "piece length")?),
            b"pieces" => pieces = Some(value.try_into_bytes().map_err(bad("pieces"))?),
            b"length" => length = Some(integer(value, "length")?),
            b"files" => files = Some(file_list(value)?),
            _ => {}
        }
    }
    let name = name.ok_or("no `name` in info")?;
    let piece_length = piece_length.filter(|&n| n > 0).ok_or("no positive `piece length` in info")?;
    let pieces = pieces.ok_or("no `pieces` in info")?;
    if pieces.len() % 20 != 0 {
        return Err("`pieces` is not a whole number of 20-byte hashes".to_owned());
    }
    let pieces: Vec<[u8; 20]> = pieces.chunks_exact(20).filter_map(|hash| <[u8; 20]>::try_from(hash).ok()).collect();
    let files = match (length, files) {
        (Some(length), None) => vec![FileEntry { path: Vec::new(), length }],
        (None, Some(files)) => files,
        _ => return Err("info needs exactly one of `length` and `files`".to_owned()),
    };
    let total_length = files
        .iter()
        .try_fold(0u64, |sum, file| sum.checked_add(file.length))
        .filter(|&total| total > 0)
        .ok_or("the files' lengths add up to nothing (or overflow)")?;
    if total_length.div_ceil(piece_length) != pieces.len() as u64 {
        return Err(format!(
            "{} piece hashes for {total_length} bytes in pieces of {piece_length}",
            pieces.len()
        ));
    }
    Ok(Metainfo {
        info_hash: [0; 20],
        name,
        piece_length,
        pieces,
        files,
        total_length,
    })
}

fn integer(value: Object<'_, '_>, what: &str) -> Result<u64, String> {
    let text = value.try_into_integer().map_err(bad(what))?;
    text.parse::<u64>().map_err(|_| format!("`{what}` is not a non-negative integer"))
}

/// A file or folder name: one path component that stays inside the folder it is joined to.
fn component(value: Object<'_, '_>, what: &str) -> Result<String, String> {
    let bytes = value.try_into_bytes().map_err(bad(what))?;
    let text = std::str::from_utf8(bytes).map_err(|_| format!("`{what}` is not UTF-8"))?;
    if text.is_empty() || text == "." || text == ".." || text.contains(['/', '\\', '\0']) {
        return Err(format!("`{what}` {text:?} is not a plain file name"));
    }
    Ok(text.to_owned())
}

fn file_list(value: Object<'_, '_>) -> Result<Vec<FileEntry>, String> {
    let mut list = value.try_into_list().map_err(bad("files"))?;
    let mut files = Vec::new();
    while let Some(item) = list.next_object().map_err(bad("files"))? {
        if files.len() == MAX_FILES {
            return Err(format!("more than {MAX_FILES} files"));
        }
        let mut entry = item.try_into_dictionary().map_err(bad("files"))?;
        let (mut length, mut path) = (None, None);
        while let Some((key, value)) = entry.next_pair().map_err(bad("files"))? {
            match key {
                b"length" => length = Some(integer(value, "length")?),
                b"path" => {
                    let mut parts = value.try_into_list().map_err(bad("path"))?;
                    let mut components = Vec::new();
                    while let Some(part) = parts.next_object().map_err(bad("path"))? {
                        components.push(component(part, "path")?);
                    }
                    path = Some(components);
                }
                _ => {}
            }
        }
        let length = length.ok_or("a file without `length`")?;
        let path = path.filter(|path| !path.is_empty()).ok_or("a file without a `path`")?;
        files.push(FileEntry { path, length });
    }
    if files.is_empty() {
        return Err("`files` is empty".to_owned());
    }
    Ok(files)
}

/// Lower-case hex of `bytes`, for messages.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bittorrent").join(name)
    }

    #[test]
    fn parses_the_single_file_fixture() {
        let meta = load(&fixture("sample.torrent")).unwrap();
        assert_eq!(hex(&meta.info_hash), "978d8983bd506915a578f583b1e9a3ff32c1c7b2");
        assert_eq!(meta.name, "sample.bin");
        assert!(meta.files[0].path.is_empty());
        assert_eq!((meta.piece_length, meta.piece_count(), meta.total_length), (32768, 5, 150_000));
        assert_eq!(meta.piece_len(4), Some(18_928));
        assert_eq!(meta.piece_len(5), None);
    }

    #[test]
    fn parses_the_multi_file_fixture() {
        let meta = load(&fixture("multi.torrent")).unwrap();
        assert_eq!(hex(&meta.info_hash), "2175addea59de6998d3a0877a7b958d6bd662235");
        let paths: Vec<String> = meta.files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(paths, ["a.txt", "sub/b.bin"]);
        assert_eq!(meta.total_length, 48_890);
    }

    #[test]
    fn rejects_bad_metainfo() {
        let piece = "x".repeat(20);
        let ok = format!("d4:infod6:lengthi5e4:name1:a12:piece lengthi4e6:pieces40:{piece}{piece}ee");
        assert!(parse(ok.as_bytes()).is_ok());
        for bad in [
            String::new(),
            "i3e".to_owned(),
            format!("{ok}x"),
            ok.replace("1:a", "2:.."),
            ok.replace("i5e", "i9e"),
            ok.replace("6:lengthi5e", ""),
            ok.replace("i4e", "i0e"),
            // Keys out of order.
            ok.replace("6:lengthi5e4:name1:a", "4:name1:a6:lengthi5e"),
            "d4:infod".to_owned(),
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn rejects_paths_that_leave_the_folder() {
        let piece = "x".repeat(20);
        let with_path = |path: &str| format!("d4:infod5:filesld6:lengthi3e4:path{path}ee4:name1:m12:piece lengthi4e6:pieces20:{piece}ee");
        assert!(parse(with_path("l1:a1:be").as_bytes()).is_ok());
        for path in ["l2:..e", "le", "l3:a/be", "l0:e"] {
            assert!(parse(with_path(path).as_bytes()).is_err(), "{path}");
        }
    }
}
