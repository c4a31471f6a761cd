//! Raw datagrams have no structured vocabulary: suites send and expect them with the generic
//! `send:`/`expect:` keywords (text, `raw`, `hex`, `fill`, `size`).

use crate::proto::Steps;

/// No structured vocabulary.
pub static STEPS: Steps = Steps::NONE;
