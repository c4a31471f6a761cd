//! HTTP/2 has no structured vocabulary yet: suites send frames as `raw`/`hex` bytes and expect
//! them with the generic keywords, matched against each frame's one-line rendering. Structured
//! frames (HEADERS with fields encoded by HPACK, DATA, SETTINGS ...) come next.

use crate::proto::Steps;

/// No structured vocabulary.
pub static STEPS: Steps = Steps::NONE;
