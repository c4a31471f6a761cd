//! The dns codec on UDP: any datagram is framed or refused, never a panic (`wirecheck_fuzz::datagram`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wirecheck_fuzz::datagram("dns", data));
