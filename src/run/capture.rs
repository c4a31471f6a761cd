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
    /// The run's TLS secrets: each case's pcapng carries those of its handshakes in a Decryption
    /// Secrets Block, so the capture decodes (here and in Wireshark) as the sockets saw it.
    pub keylog: Arc<crate::tls::KeyLog>,
}

impl std::fmt::Debug for CaptureSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSink").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl CaptureSink {
    /// Takes the case's packets, writes them, decodes them and compares the result with the
    /// case's Dialogue; problems become warnings of the case (the target is not to blame).
    pub async fn finish_case(&self, start: std::time::Duration, keys_from: usize, result: &mut CaseResult) {
        let sink = self.clone();
        // A TLS connection to a port says what it carries (no ALPN for SMTP and the like): the key
        // log names it in a comment, which Wireshark skips and `decode` reads.
        let mut ports: Vec<(u16, String)> = dialogue_ports(&result.dialogue);
        ports.dedup();
        let mut secrets: String = ports
            .iter()
            .map(|(n, p)| crate::proto::tls::keylog::carried_comment(*n, p))
            .collect();
        secrets.push_str(&self.keylog.text_from(keys_from));
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
            let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
                live::write_pcapng_with_keys(
                    &path,
                    &packets,
                    &comments,
                    Some(&secrets).filter(|s| !s.is_empty()).map(|s| s.as_str()),
                )
            });
            if let Err(e) = written {
                warnings.push(format!("capture: cannot write {}: {e}", path.display()));
            }
            let keylog = match crate::proto::KeyLog::parse(&secrets) {
                Ok(k) if !k.is_empty() => Some(Arc::new(k)),
                _ => None,
            };
            let options = Options { ports, keylog };
            match crate::capture::decode(live::raw_packets(&packets), &options) {
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

/// The server port and protocol of each connection the harness had TLS on (a `tls:` event),
/// for decoding the capture: there the port says what the TLS carries.
fn dialogue_ports(d: &crate::dialogue::Dialogue) -> Vec<(u16, String)> {
    let secured: std::collections::HashSet<usize> = d
        .events
        .iter()
        .filter(|e| matches!(e.kind, crate::dialogue::EventKind::Tls { .. }))
        .map(|e| e.conn)
        .collect();
    let mut out: Vec<(u16, String)> = d
        .connections
        .iter()
        .filter(|c| secured.contains(&c.id))
        .filter_map(|c| {
            let server = if c.harness_is_client { c.peer } else { c.local };
            server.map(|a| (a.port(), c.protocol.clone()))
        })
        .collect();
    out.sort();
    out
}
