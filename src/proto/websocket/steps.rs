//! No structured vocabulary yet: WebSocket is met only after an HTTP/1.1 upgrade, which captures
//! and transcripts frame; a suite that speaks it would add frames to send and expect here.

use crate::proto::Steps;

/// No structured vocabulary.
pub static STEPS: Steps = Steps::NONE;
