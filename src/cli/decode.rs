//! `wirecheck decode`: the transcript of every conversation in a capture file.

use std::io::Write;
use std::path::PathBuf;

use super::load;

/// Arguments of `wirecheck decode`.
#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// The capture file (pcap or pcapng).
    pub capture: PathBuf,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Frame conversations on port N with protocol PROTO (repeatable), e.g. 8888=http.
    #[arg(long = "port", value_name = "N=PROTO")]
    pub ports: Vec<String>,
    /// Decrypt TLS with this key log (SSLKEYLOGFILE format), besides the secrets the capture
    /// itself holds (pcapng Decryption Secrets Blocks).
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
}

/// `wirecheck decode`: exit 0, 2 for bad `--port`s or a file that is no capture, or 4 when the
/// file is damaged (everything before the damage is printed first).
pub fn decode(args: DecodeArgs) -> i32 {
    let cap = match load::capture_options(&args.ports, args.keylog.as_deref()).and_then(|opts| load::capture(&args.capture, &opts)) {
        Ok(c) => c,
        Err(e) => return e.report(),
    };
    let mut out = std::io::stdout().lock();
    if args.format == "json" {
        let doc: Vec<_> = cap
            .conversations
            .iter()
            .map(|c| {
                serde_json::json!({
                    "transport": c.transport, "client": c.client.to_string(), "server": c.server.to_string(),
                    "protocol": c.protocol, "packets": c.packets, "truncated": c.truncated, "start_us": c.start_us,
                    "data_of": c.data_of, "dialogue": c.dialogue, "transcript": c.transcript(),
                })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        drop(out);
        return load::damage_status(&args.capture, &cap, 0);
    }
    for c in &cap.conversations {
        // A closed pipe (`| head`) ends the output quietly.
        if write!(out, "== {}\n{}", c.header(), c.transcript()).is_err() {
            return 0;
        }
    }
    let _ = out.flush();
    drop(out);
    load::damage_status(&args.capture, &cap, 0)
}
