//! The bt-dht codec (KRPC) on UDP: any datagram is framed, never a panic (`wirecheck_fuzz::datagram`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wirecheck_fuzz::datagram("bt-dht", data));
