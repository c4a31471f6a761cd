//! What the DASH origin actor did in one case: every request with when it arrived and when its
//! last byte was written, the link's schedule and the layout that says what each path was. The
//! actor writes it; `judge.rs` reads it for `saw:` and the figures reports show.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::media::{Layout, Presentation, What};

/// One request as the actor served it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The host it came to.
    pub host: IpAddr,
    /// The request target's path.
    pub path: String,
    /// Its Host field, as sent.
    pub host_field: Option<String>,
    /// The method.
    pub method: String,
    /// The byte range asked for, when one.
    pub range: Option<(u64, u64)>,
    /// What it was for.
    pub what: What,
    /// The status answered (0: none).
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// When the request arrived, from the actor's start.
    pub at: Duration,
    /// When its last byte was written (None: never completed).
    pub done: Option<Duration>,
}

/// What the actor did in one case: what `saw:` judgements read.
#[derive(Debug)]
pub struct Record {
    /// The presentation.
    pub presentation: Arc<Presentation>,
    /// The case's layout (what each path is).
    pub layout: Layout,
    /// The link's schedule: (from, bit/s) with `from` measured from the link's start.
    pub schedule: Vec<(Duration, u64)>,
    /// When the link started (the first request), from the actor's start.
    pub link_start: Option<Duration>,
    /// Every request, in the order they arrived.
    pub deliveries: Vec<Delivery>,
}

impl Record {
    /// The bit rate the link offered at `t` (from the actor's start); None when unlimited.
    pub fn offered(&self, t: Duration) -> Option<u64> {
        let start = self.link_start.unwrap_or_default();
        let rel = t.saturating_sub(start);
        self.schedule.iter().rev().find(|(from, _)| *from <= rel).map(|s| s.1)
    }

    /// When the rate changes, from the actor's start: (at, from rate, to rate).
    pub fn changes(&self) -> Vec<(Duration, u64, u64)> {
        let start = self.link_start.unwrap_or_default();
        self.schedule.windows(2).map(|w| (start + w[1].0, w[0].1, w[1].1)).collect()
    }
}
