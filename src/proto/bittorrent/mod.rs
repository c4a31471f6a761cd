//! BitTorrent (BEP 3): bencode and metainfo files; the peer wire protocol follows.

pub mod bencode;
pub mod metainfo;
