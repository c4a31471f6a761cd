//! TLS has no structured vocabulary: suites run over TLS with `--tls`, and what they say is the
//! carried protocol's.

use crate::proto::Steps;

/// No structured vocabulary.
pub static STEPS: Steps = Steps::NONE;
