//! The dht-ring lab's codec (JSON) on UDP: any datagram is framed, never a panic (`wirecheck_fuzz::datagram`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| wirecheck_fuzz::datagram("dht-ring", data));
