//! The BitTorrent servers of the textbook's section 2.5 (P2P file distribution):
//!
//! ```text
//!  peer ──announce (HTTP GET or BEP 15 UDP)──► tracker: "who else has this torrent?"
//!  peer ◄──────────── the other peers ───────── tracker
//!  peer ──handshake, interested, request──► seeder: chunks (pieces) of the file
//! ```
//!
//! - `bt-tracker` (`tracker`): the HTTP tracker of BEP 3 (with BEP 23 compact peer lists and
//!   BEP 48 scrape) on TCP, and the UDP tracker of BEP 15 on the UDP socket of the same port;
//! - `bt-seeder` (`seeder`): one torrent's data served over the peer wire protocol of BEP 3.
//!
//! Both read `.torrent` files (`metainfo`) and write bencode (`bencode`). Neither shares code
//! with the harness's BitTorrent codec: a misreading of the BEPs cannot hide on both sides.

mod bencode;
mod metainfo;
pub(crate) mod seeder;
mod swarm;
pub(crate) mod tracker;
mod tracker_http;
mod tracker_udp;
