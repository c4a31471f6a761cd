//! Arbitrary bytes as a whole capture file: the reader, link/IP/transport parsing, IPv4
//! defragmentation, TCP reassembly and the transcript rendering must return Ok or Err, never
//! panic, and a packet-level error must name a packet (1-based).

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use wirecheck::capture::{self, file, FileError, Options};

fuzz_target!(|data: &[u8]| {
    // The same entry point `decode_file` uses, through an in-memory reader instead of a path.
    let packets = match file::from_reader(Box::new(Cursor::new(data.to_vec()))) {
        Ok(p) => p,
        Err(e) => {
            assert!(matches!(e, FileError::Open(_)), "opening can only fail with Open: {e:?}");
            return;
        }
    };
    // A port override too, so that conversations on unknown ports are framed by a codec as well.
    let opts = Options::from_args(&["9999=http".to_string()]).expect("valid option");
    match capture::decode(packets, &opts) {
        Ok(cap) => {
            // Rendering frames the reassembled bytes with the protocol codecs: that must hold too.
            let text = cap.text();
            assert!(cap.conversations.is_empty() || !text.is_empty());
            assert!(cap.packets >= cap.skipped);
            if let Some(FileError::Packet { number, reason, .. }) = &cap.damage {
                assert!(*number >= 1, "packet numbers are 1-based");
                assert!(!reason.is_empty());
            }
        }
        Err(FileError::Packet { .. }) => panic!("damage is reported in the capture, not as an error"),
        Err(FileError::Open(e)) => panic!("Open error after the header was read: {e}"),
    }
});
