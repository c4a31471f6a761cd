//! wirecheck: a conformance test harness for the Internet's application-layer protocols.
//!
//! Suites (`suite`) script dialogues; the runner (`run`) plays them over real sockets against a
//! target and records a [`dialogue::Dialogue`]; protocol codecs (`proto`) frame the bytes;
//! reporters (`report`) turn case results into console, JSON and JUnit output; `grade` scores
//! submissions against assignment files and writes reports for grading platforms; `cli` resolves
//! and runs each command of the `wirecheck` binary.

pub mod capture;
pub mod cli;
pub mod dialogue;
pub mod grade;
pub mod proto;
pub mod report;
pub mod run;
pub mod suite;
pub mod syntax;
pub mod tls;
