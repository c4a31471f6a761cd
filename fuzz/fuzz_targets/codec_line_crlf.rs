//! The line-crlf codec (text lines of protocols nothing else claims): one side cut into pieces frames as it does whole (`wirecheck_fuzz::stream`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wirecheck_fuzz::stream("line-crlf", data));
