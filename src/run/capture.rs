//! `--capture DIR`: each case's packets saved as a pcapng and checked against the sockets' record.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::capture::live::{self, LiveCapture};
use crate::capture::{compare, Options};

use super::result::CaseResult;

/// Where captures go and the capture that feeds them.
#[derive(Clone)]
pub struct CaptureSink {
    /// `DIR`: cases are written to `DIR/<suite>/<case>.pcapng`.
    pub dir: PathBuf,
    /// The running capture of the loopback.
    pub live: Arc<LiveCapture>,
}

impl std::fmt::Debug for CaptureSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSink").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl CaptureSink {
    /// Takes the case's packets, writes them, decodes them and compares the result with the
    /// case's Dialogue; problems become warnings of the case (the target is not to blame).
    pub async fn finish_case(&self, start: std::time::Duration, result: &mut CaseResult) {
        let sink = self.clone();
        let dialogue = result.dialogue.clone();
        let path = self.dir.join(&result.suite.name).join(format!("{}.pcapng", result.case().id));
        let mut comments = BTreeMap::new();
        comments.insert(0, format!("wirecheck: {} ({:?})", result.name(), result.verdict));
        if let Some(f) = &result.failure {
            let file = result.suite.source.path.display();
            let at = f.loc.map(|l| format!("{file}:{}:{}: ", l.line, l.col)).unwrap_or_default();
            let what = match result.premise() {
                Some(p) => format!("n/a (the program does not offer {p}) at"),
                None => "failed at".into(),
            };
            comments.insert(usize::MAX, format!("wirecheck: {what} {at}{}", f.message));
        }
        // Waiting for the capture thread and writing the file block: keep them off the runtime.
        let warnings = tokio::task::spawn_blocking(move || {
            let (packets, complete) = sink.live.finish_case(start, &dialogue);
            let mut warnings = Vec::new();
            if !complete {
                warnings.push("capture: the loopback capture fell behind; this case's packets may be incomplete".to_string());
            }
            if let Some(c) = comments.remove(&usize::MAX) {
                comments.insert(packets.len().saturating_sub(1), c);
            }
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| live::write_pcapng(&path, &packets, &comments));
            if let Err(e) = written {
                warnings.push(format!("capture: cannot write {}: {e}", path.display()));
            }
            match crate::capture::decode(live::raw_packets(&packets), &Options::default()) {
                // These packets are in no file yet: the damage's byte offset means nothing here.
                Ok(crate::capture::Capture {
                    damage: Some(crate::capture::FileError::Packet { number, reason, .. }),
                    ..
                }) => warnings.push(format!("capture: cannot decode this case's packets: packet {number}: {reason}")),
                Ok(cap) if complete => warnings.extend(
                    compare::compare(&dialogue, &cap)
                        .into_iter()
                        .map(|m| format!("capture differs from the sockets: {m}")),
                ),
                Ok(_) => {}
                Err(e) => warnings.push(format!("capture: cannot decode this case's packets: {e}")),
            }
            warnings
        })
        .await
        .unwrap_or_else(|e| vec![format!("capture: {e}")]);
        result.warnings.extend(warnings);
    }
}
