//! Plain lines have no structured vocabulary: suites send and expect them with the generic
//! `send: [lines]`, `expect: { line | lines | regex }` keywords every protocol has.

use crate::proto::Steps;

/// The (empty) structured vocabulary of `line` and `line-crlf`.
pub struct LineSteps;

impl Steps for LineSteps {}
