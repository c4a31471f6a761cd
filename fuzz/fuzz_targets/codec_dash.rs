//! The dash codec (HTTP/1 with MPDs read in responses): cut anywhere, a stream frames as it does
//! whole (`wirecheck_fuzz::stream`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wirecheck_fuzz::stream("dash", data));
