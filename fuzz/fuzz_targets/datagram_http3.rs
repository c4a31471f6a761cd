//! A captured QUIC datagram (RFC 9000 §17): coalesced long headers, Initials opened with the
//! keys of their connection id, short headers, padding: framed or refused, never a panic
//! (`wirecheck_fuzz::datagram`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wirecheck_fuzz::datagram("http3", data));
