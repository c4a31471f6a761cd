//! Plain lines have no structured vocabulary: suites send and expect them with the generic
//! `send: [lines]`, `expect: { line | lines | regex }` keywords every protocol has.

use crate::proto::Steps;

/// No structured vocabulary.
pub static STEPS: Steps = Steps::NONE;
