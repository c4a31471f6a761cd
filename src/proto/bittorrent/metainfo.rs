//! Metainfo files (`.torrent`, BEP 3): what a suite's `torrent:` key names and what the
//! harness's peers and tracker serve. The info-hash is the SHA-1 of the info dictionary's bytes as
//! they appear in the file, never of a re-encoding: a file whose info keys are not sorted has the
//! info-hash of its own bytes (clients that re-encode disagree, and the findings say so).

use sha1::{Digest, Sha1};

use super::bencode::{self, Value};

/// BitTorrent's block size: BEP 3 says current implementations use 2^14 bytes and close
/// connections that request more.
pub const BLOCK: u32 = 16384;

/// A file of a torrent, its path inside the torrent's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components (a single-file torrent: its name alone).
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
}

/// A parsed metainfo file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// `announce`: the tracker's URL.
    pub announce: String,
    /// `announce-list` tiers (BEP 12), when given.
    pub announce_list: Vec<Vec<String>>,
    /// SHA-1 of the info dictionary's bytes as they appear in the file.
    pub info_hash: [u8; 20],
    /// `info.name`: the file's name, or the folder's for a multi-file torrent.
    pub name: String,
    /// `info.piece length`.
    pub piece_length: u64,
    /// `info.pieces`, split in 20-byte SHA-1 hashes.
    pub pieces: Vec<[u8; 20]>,
    /// The files, in order (one for a single-file torrent).
    pub files: Vec<FileEntry>,
    /// Whether it is a multi-file torrent (`info.files`).
    pub multi: bool,
    /// Where the file breaks BEP 3's canonical bencode (unsorted keys ...), in words.
    pub findings: Vec<String>,
}

impl Metainfo {
    /// Parses a metainfo file's bytes; the error says what is missing or wrong.
    pub fn parse(bytes: &[u8]) -> Result<Metainfo, String> {
        let (root, notes) = bencode::decode(bytes).map_err(|e| format!("not bencode: {e}"))?;
        let findings = notes.iter().map(|n| format!("byte {}: {}", n.offset, n.what)).collect();
        let info = root.get("info").ok_or("no info dictionary")?;
        if info.dict().is_none() {
            return Err("info is not a dictionary".into());
        }
        let info_hash: [u8; 20] = Sha1::digest(&bytes[info.start..info.end]).into();
        let text = |v: &Value, what: &str| v.str().map(str::to_string).ok_or(format!("{what} is not text"));
        let announce = match root.get("announce") {
            Some(a) => text(a, "announce")?,
            None => String::new(),
        };
        let announce_list = root
            .get("announce-list")
            .and_then(Value::list)
            .map(|tiers| {
                tiers
                    .iter()
                    .filter_map(|t| {
                        t.list()
                            .map(|urls| urls.iter().filter_map(|u| u.str().map(str::to_string)).collect())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let name = text(info.get("name").ok_or("no info.name")?, "info.name")?;
        let piece_length = info
            .get("piece length")
            .and_then(Value::int)
            .filter(|&n| n > 0)
            .ok_or("no positive info.piece length")? as u64;
        let raw = info.get("pieces").and_then(Value::bytes).ok_or("no info.pieces")?;
        if raw.len() % 20 != 0 {
            return Err(format!("info.pieces is {} bytes, not a multiple of 20", raw.len()));
        }
        let pieces: Vec<[u8; 20]> = raw.chunks(20).map(|c| c.try_into().unwrap_or([0; 20])).collect();
        let length = |v: &Value| v.get("length").and_then(Value::int).filter(|&n| n >= 0).map(|n| n as u64);
        let (files, multi) = match (info.get("length"), info.get("files").and_then(Value::list)) {
            (Some(_), None) => (
                vec![FileEntry {
                    path: vec![name.clone()],
                    length: length(info).ok_or("info.length is not a length")?,
                }],
                false,
            ),
            (None, Some(list)) => {
                let mut files = Vec::new();
                for f in list {
                    let path = f
                        .get("path")
                        .and_then(Value::list)
                        .map(|p| p.iter().map(|c| c.str().map(str::to_string)).collect::<Option<Vec<_>>>())
                        .and_then(|p| p.filter(|p| !p.is_empty()))
                        .ok_or("a file without a text path")?;
                    files.push(FileEntry {
                        path,
                        length: length(f).ok_or("a file without a length")?,
                    });
                }
                (files, true)
            }
            _ => return Err("info has neither length nor files (or both)".into()),
        };
        let m = Metainfo {
            announce,
            announce_list,
            info_hash,
            name,
            piece_length,
            pieces,
            files,
            multi,
            findings,
        };
        let expected = m.total_length().div_ceil(m.piece_length);
        if expected != m.pieces.len() as u64 {
            return Err(format!(
                "{} piece hashes for {} bytes in pieces of {}: {expected} expected",
                m.pieces.len(),
                m.total_length(),
                m.piece_length
            ));
        }
        Ok(m)
    }

    /// The info-hash in lowercase hex.
    pub fn info_hash_hex(&self) -> String {
        bencode::hex(&self.info_hash)
    }

    /// The length of every file together.
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }

    /// How many pieces.
    pub fn piece_count(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// The length of piece `index` (the last one may be short), or None past the end.
    pub fn piece_len(&self, index: u32) -> Option<u64> {
        let start = u64::from(index).checked_mul(self.piece_length)?;
        let total = self.total_length();
        (u64::from(index) < self.pieces.len() as u64).then(|| (total - start).min(self.piece_length))
    }

    /// Whether `data`, the bytes of piece `index`, hash to its SHA-1 in the torrent.
    pub fn verifies(&self, index: u32, data: &[u8]) -> bool {
        let digest: [u8; 20] = Sha1::digest(data).into();
        self.pieces.get(index as usize) == Some(&digest)
    }

    /// The block `begin..begin+length` of piece `index` from `content` (every file's bytes one
    /// after the other), or why it is outside the torrent.
    pub fn block<'a>(&self, content: &'a [u8], index: u32, begin: u32, length: u32) -> Result<&'a [u8], String> {
        let plen = self
            .piece_len(index)
            .ok_or(format!("piece {index} is past the last ({})", self.pieces.len().saturating_sub(1)))?;
        if u64::from(begin) + u64::from(length) > plen {
            return Err(format!(
                "begin {begin} + length {length} is past the end of piece {index} ({plen} bytes)"
            ));
        }
        let start = u64::from(index) * self.piece_length + u64::from(begin);
        let (s, e) = (start as usize, (start + u64::from(length)) as usize);
        content
            .get(s..e)
            .ok_or(format!("the content holds {} bytes, not {}", content.len(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/fixtures/bittorrent/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn parses_a_single_file_torrent_and_its_info_hash() {
        let m = Metainfo::parse(&fixture("sample.torrent")).unwrap();
        assert_eq!(m.info_hash_hex(), "978d8983bd506915a578f583b1e9a3ff32c1c7b2");
        assert_eq!(
            (m.name.as_str(), m.piece_length, m.piece_count(), m.multi),
            ("sample.bin", 32768, 5, false)
        );
        assert_eq!(m.announce, "http://127.0.0.1:6969/announce");
        assert_eq!((m.piece_len(3), m.piece_len(4), m.piece_len(5)), (Some(32768), Some(18928), None));
        let data = fixture("sample.bin");
        for i in 0..5 {
            let len = m.piece_len(i).unwrap() as u32;
            assert!(m.verifies(i, m.block(&data, i, 0, len).unwrap()), "piece {i}");
        }
        assert!(m.findings.is_empty());
        assert!(m.block(&data, 4, 16384, 16384).unwrap_err().contains("past the end of piece 4"));
        assert!(m.block(&data, 5, 0, 1).unwrap_err().contains("past the last"));
    }

    #[test]
    fn parses_a_multi_file_torrent() {
        let m = Metainfo::parse(&fixture("multi.torrent")).unwrap();
        assert_eq!(m.info_hash_hex(), "2175addea59de6998d3a0877a7b958d6bd662235");
        assert!(m.multi);
        assert_eq!(m.files[1].path, ["sub", "b.bin"]);
        let content = [fixture("multi/a.txt"), fixture("multi/sub/b.bin")].concat();
        assert_eq!(m.total_length(), content.len() as u64);
        let last = m.piece_count() - 1;
        assert!(m.verifies(last, m.block(&content, last, 0, m.piece_len(last).unwrap() as u32).unwrap()));
    }

    #[test]
    fn hashes_the_info_bytes_as_they_appear_even_unsorted() {
        let info = b"d6:lengthi3e4:name1:x6:pieces20:aaaaaaaaaaaaaaaaaaaa12:piece lengthi4ee";
        let file = [&b"d4:info"[..], info, b"e"].concat();
        let m = Metainfo::parse(&file).unwrap();
        let own: [u8; 20] = Sha1::digest(info).into();
        assert_eq!(m.info_hash, own);
        assert!(m.findings[0].contains("sorted"), "{:?}", m.findings);
    }

    #[test]
    fn rejects_torrents_missing_what_a_peer_needs() {
        assert!(Metainfo::parse(b"d4:infodee").unwrap_err().contains("name"));
        assert!(Metainfo::parse(b"d4:infod4:name1:x12:piece lengthi4e6:pieces3:abc6:lengthi1eee")
            .unwrap_err()
            .contains("multiple of 20"));
        assert!(
            Metainfo::parse(b"d4:infod6:lengthi9e4:name1:x12:piece lengthi4e6:pieces20:aaaaaaaaaaaaaaaaaaaaee")
                .unwrap_err()
                .contains("3 expected")
        );
        assert!(Metainfo::parse(b"i1e").unwrap_err().contains("no info"));
    }
}
