//! wirecheck: a conformance test harness for the Internet's application-layer protocols.
//!
//! Suites (`suite`) script dialogues; the runner (`run`) plays them over real sockets against a
//! target and records a [`dialogue::Dialogue`]; protocol codecs (`proto`) frame the bytes;
//! reporters (`report`) turn case results into console, JSON and JUnit output.

pub mod capture;
pub mod dialogue;
pub mod proto;
pub mod report;
pub mod run;
pub mod suite;
