//! Raw datagrams have no structured vocabulary: suites send and expect them with the generic
//! `send:`/`expect:` keywords (text, `raw`, `hex`, `fill`, `size`).

use crate::proto::Steps;

/// The (empty) structured vocabulary of `datagram`.
pub struct DatagramSteps;

impl Steps for DatagramSteps {}
