//! The http2 codec: cut anywhere, a stream frames as it does whole (`wirecheck_fuzz::stream`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wirecheck_fuzz::stream("http2", data));
