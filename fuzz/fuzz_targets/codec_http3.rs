//! The HTTP/3 codec over the QUIC frames a live run records per connection (STREAM with offset
//! and length, RESET_STREAM, STOP_SENDING, CONNECTION_CLOSE): cut anywhere, a stream frames as
//! it does whole (`wirecheck_fuzz::stream`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wirecheck_fuzz::stream("http3", data));
