//! The reference set: for every public capture in `fixtures/captures/`, how many application
//! messages of each protocol each side sent, as tshark counts them and as wirecheck frames them,
//! stored in `fixtures/captures/tshark-counts.tsv` with the tshark command of each protocol.
//! Where the two differ, the row says why (tshark counts a multi-line reply line by line, a
//! TLS record that holds several handshake messages once, ...).
//!
//! `wirecheck_frames_the_stored_counts` checks wirecheck against the file (always);
//! `tshark_still_counts_the_stored_numbers` runs tshark again (installed by `ci/test`).
//! `WIRECHECK_BLESS=1 cargo test --test tshark_counts` rewrites both numbers, keeping the reasons.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use wirecheck::capture::{self, Options};
use wirecheck::dialogue::What;
use wirecheck::proto::Direction;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/captures")
}

fn table() -> PathBuf {
    dir().join("tshark-counts.tsv")
}

/// How tshark counts one protocol's messages: the dissector to decode the server's port as, and
/// the fields whose occurrences are messages, in packets from the client and from the server.
struct Spec {
    /// wirecheck's protocol name.
    proto: &'static str,
    /// tshark's dissector (`-d tcp.port==P,NAME`).
    dissector: &'static str,
    /// Fields counted in the client's packets.
    client: &'static [&'static str],
    /// Fields counted in the server's packets. `FIELD=VALUE` counts the occurrences with that
    /// value, in anyone's packets.
    server: &'static [&'static str],
}

/// What wirecheck frames that tshark does not count as a message of the protocol, whatever the
/// capture: SMTP's mail content after a 354 and the octets a BDAT announces (RFC 3030), which
/// tshark shows as message data, no command.
fn not_counted(proto: &str, summary: &str) -> bool {
    proto == "smtp" && (summary.starts_with("DATA content") || summary.contains(" bytes of message data]"))
}

const SPECS: &[Spec] = &[
    Spec {
        proto: "http",
        dissector: "http",
        client: &["http.request.method"],
        server: &["http.response.code"],
    },
    Spec {
        proto: "bt-tracker",
        dissector: "http",
        client: &["http.request.method"],
        server: &["http.response.code"],
    },
    Spec {
        proto: "smtp",
        dissector: "smtp",
        client: &["smtp.req.command"],
        server: &["smtp.response.code"],
    },
    Spec {
        proto: "pop3",
        dissector: "pop",
        client: &["pop.request.command"],
        server: &["pop.response.indicator"],
    },
    Spec {
        proto: "imap",
        dissector: "imap",
        client: &["imap.request.command"],
        server: &["imap.response.status"],
    },
    Spec {
        proto: "ftp",
        dissector: "ftp",
        client: &["ftp.request.command"],
        server: &["ftp.response.code"],
    },
    Spec {
        proto: "dns",
        dissector: "dns",
        // By the QR bit, not the port: mDNS sends from and to 5353.
        client: &["dns.flags.response=0"],
        server: &["dns.flags.response=1"],
    },
    Spec {
        proto: "http2",
        dissector: "http2",
        client: &["http2.magic", "http2.type"],
        server: &["http2.type"],
    },
    Spec {
        proto: "bittorrent",
        dissector: "bittorrent",
        client: &["bittorrent.protocol.name", "bittorrent.msg.type"],
        server: &["bittorrent.protocol.name", "bittorrent.msg.type"],
    },
    Spec {
        proto: "tls",
        dissector: "tls",
        client: &["tls.record.content_type"],
        server: &["tls.record.content_type"],
    },
    // QUIC packets (RFC 9000 §17), as many as a datagram coalesces; padding after them is one
    // for both (tshark: "padding data appended to the datagram").
    Spec {
        proto: "http3",
        dissector: "quic",
        client: &["quic"],
        server: &["quic"],
    },
    // One KRPC message per datagram (BEP 5); tshark's bt-dht is heuristic, so it is named.
    Spec {
        proto: "bt-dht",
        dissector: "bt-dht",
        client: &["bt-dht"],
        server: &["bt-dht"],
    },
    // After HTTP/1.1's 101 (RFC 6455): tshark follows the upgrade on the HTTP port by itself.
    Spec {
        proto: "websocket",
        dissector: "http",
        client: &["websocket.opcode"],
        server: &["websocket.opcode"],
    },
];

fn spec(proto: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.proto == proto)
}

/// One row: a capture's messages of one protocol to or from one server port, in one direction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    capture: String,
    proto: String,
    transport: String,
    port: u16,
    /// `client` or `server`: who sent them.
    from: &'static str,
}

#[derive(Debug, Clone)]
struct Row {
    tshark: usize,
    wirecheck: usize,
    reason: String,
}

fn captures() -> Vec<String> {
    common::sample_captures()
}

/// wirecheck's counts: every framed message of every conversation whose protocol tshark can
/// count, TLS records (after STARTTLS too) counted as `tls`.
fn wirecheck_counts(name: &str) -> BTreeMap<Key, usize> {
    let cap = capture::decode_file(&dir().join(name), &Options::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut out = BTreeMap::new();
    for conv in &cap.conversations {
        if spec(&conv.protocol).is_none() {
            continue;
        }
        // Both sides get a row, none framed or not (a capture cut to its headers has none).
        for from in ["client", "server"] {
            let key = Key {
                capture: name.to_string(),
                proto: conv.protocol.clone(),
                transport: format!("{:?}", conv.transport).to_lowercase(),
                port: conv.server.port(),
                from,
            };
            out.entry(key).or_insert(0);
        }
        let proto = wirecheck::proto::find_or_raw(&conv.protocol);
        for f in conv.dialogue.frames_with(proto, &conv.context()) {
            let (What::Message(m), Some(dir)) = (&f.what, f.dir) else {
                continue;
            };
            let websocket = m.detail.as_ref().is_some_and(|d| d.is::<wirecheck::proto::websocket::WsFrame>());
            let carried = if m.summary.starts_with("TLS ") {
                "tls"
            } else if websocket {
                "websocket"
            } else {
                conv.protocol.as_str()
            };
            if not_counted(carried, &m.summary) {
                continue;
            }
            let from = match dir {
                Direction::ClientToServer => "client",
                Direction::ServerToClient => "server",
            };
            let key = Key {
                capture: name.to_string(),
                proto: carried.to_string(),
                transport: format!("{:?}", conv.transport).to_lowercase(),
                port: conv.server.port(),
                from,
            };
            let quic = m
                .detail
                .as_ref()
                .and_then(|d| d.downcast_ref::<wirecheck::proto::http3::packet::QuicDatagram>());
            *out.entry(key).or_default() += quic.map_or(1, |q| q.packets);
        }
    }
    out
}

/// The tshark command that counts `proto` on `port` of `name`.
/// The field names of `spec`, each once (`FIELD=VALUE` as its field).
fn fields_of(spec: &Spec) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for f in spec.client.iter().chain(spec.server) {
        let name = f.split('=').next().unwrap_or(f);
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn tshark_args(name: &str, spec: &Spec, transport: &str, port: u16) -> Vec<String> {
    let mut args = vec![
        "-r".to_string(),
        dir().join(name).display().to_string(),
        "-2".into(),
        // Without it tshark's TCP reassembly drops segments that come out of order.
        "-o".into(),
        "tcp.reassemble_out_of_order:TRUE".into(),
        "-d".into(),
        format!("{transport}.port=={port},{}", spec.dissector),
        "-Y".into(),
        format!("{transport}.port=={port}"),
        "-T".into(),
        "fields".into(),
        "-e".into(),
        format!("{transport}.srcport"),
    ];
    for f in fields_of(spec) {
        args.push("-e".into());
        args.push(f.into());
    }
    args.extend(["-E", "occurrence=a", "-E", "aggregator=|"].map(String::from));
    args
}

/// The same, as a line of the table's header (the file name as `FILE`, the port as `PORT`).
fn tshark_template(spec: &Spec) -> String {
    let args = tshark_args("FILE", spec, "TRANSPORT", 0);
    let line = format!("tshark {}", args.join(" "));
    line.replace(&dir().join("FILE").display().to_string(), "FILE")
        .replace("TRANSPORT.port==0", "TRANSPORT.port==PORT")
}

/// tshark's counts of (client, server) messages.
fn tshark_counts(name: &str, spec: &Spec, transport: &str, port: u16) -> (usize, usize) {
    let out = Command::new("tshark")
        .args(tshark_args(name, spec, transport, port))
        .output()
        .expect("tshark runs");
    assert!(out.status.success(), "tshark on {name}: {}", String::from_utf8_lossy(&out.stderr));
    let fields = fields_of(spec);
    // (field, value wanted) per side.
    let side = |list: &[&'static str]| -> Vec<(&'static str, Option<&'static str>)> {
        list.iter()
            .map(|f| match f.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (*f, None),
            })
            .collect()
    };
    let (wants_client, wants_server) = (side(spec.client), side(spec.server));
    let (mut client, mut server) = (0, 0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let from_server = cols.first().and_then(|p| p.parse::<u16>().ok()) == Some(port);
        for (i, f) in fields.iter().enumerate() {
            let values: Vec<&str> = cols
                .get(i + 1)
                .map_or(Vec::new(), |v| v.split('|').filter(|s| !s.is_empty()).collect());
            for (wants, count, ours) in [
                (&wants_client, &mut client, !from_server),
                (&wants_server, &mut server, from_server),
            ] {
                for (name, value) in wants.iter() {
                    if name != f {
                        continue;
                    }
                    *count += match value {
                        Some(v) => values.iter().filter(|x| *x == v).count(),
                        None if ours => values.len(),
                        None => 0,
                    };
                }
            }
        }
    }
    (client, server)
}

fn read_table() -> BTreeMap<Key, Row> {
    let text = std::fs::read_to_string(table()).unwrap_or_default();
    let mut rows = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 7, "tshark-counts.tsv:{}: expected 7 or 8 columns: {line}", i + 1);
        let from = match cols[4] {
            "client" => "client",
            "server" => "server",
            other => panic!("tshark-counts.tsv:{}: '{other}' is neither client nor server", i + 1),
        };
        let key = Key {
            capture: cols[0].into(),
            proto: cols[1].into(),
            transport: cols[2].into(),
            port: cols[3].parse().unwrap_or_else(|_| panic!("tshark-counts.tsv:{}: port", i + 1)),
            from,
        };
        let row = Row {
            tshark: cols[5]
                .parse()
                .unwrap_or_else(|_| panic!("tshark-counts.tsv:{}: tshark count", i + 1)),
            wirecheck: cols[6]
                .parse()
                .unwrap_or_else(|_| panic!("tshark-counts.tsv:{}: wirecheck count", i + 1)),
            reason: cols.get(7).unwrap_or(&"").trim().to_string(),
        };
        rows.insert(key, row);
    }
    rows
}

fn write_table(rows: &BTreeMap<Key, Row>) {
    let mut text = String::from(
        "# Application messages per capture, protocol, server port and sender: as tshark 4.0 counts them\n\
         # and as wirecheck frames them (tests/tshark_counts.rs). A reason is required where they differ.\n\
         # tshark counts the occurrences of these fields in the packets of each side:\n",
    );
    for s in SPECS {
        text.push_str(&format!("#   {}: {}\n", s.proto, tshark_template(s)));
    }
    text.push_str("# capture\tprotocol\ttransport\tport\tsender\ttshark\twirecheck\treason\n");
    for (k, r) in rows {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            k.capture, k.proto, k.transport, k.port, k.from, r.tshark, r.wirecheck, r.reason
        ));
    }
    std::fs::write(table(), text).unwrap();
}

fn bless() -> bool {
    std::env::var_os("WIRECHECK_BLESS").is_some()
}

#[test]
fn wirecheck_frames_the_stored_counts() {
    let mut stored = read_table();
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for name in captures() {
        for (key, n) in wirecheck_counts(&name) {
            seen.insert(key, n);
        }
    }
    if bless() {
        let old = stored.clone();
        stored.clear();
        for (key, n) in &seen {
            let spec = spec(&key.proto).expect("a counted protocol");
            let (c, s) = tshark_counts(&key.capture, spec, &key.transport, key.port);
            let reason = old.get(key).map(|r| r.reason.clone()).unwrap_or_default();
            let tshark = if key.from == "client" { c } else { s };
            stored.insert(
                key.clone(),
                Row {
                    tshark,
                    wirecheck: *n,
                    reason,
                },
            );
        }
        write_table(&stored);
    }
    for (key, n) in &seen {
        match stored.get(key) {
            None => problems.push(format!("{key:?}: wirecheck frames {n}, and the table has no row (bless to add it)")),
            Some(r) if r.wirecheck != *n => problems.push(format!("{key:?}: wirecheck frames {n}, the table says {}", r.wirecheck)),
            Some(_) => {}
        }
    }
    for (key, r) in &stored {
        if !seen.contains_key(key) {
            problems.push(format!("{key:?}: in the table, but wirecheck frames no such message"));
        }
        if r.tshark != r.wirecheck && r.reason.is_empty() {
            problems.push(format!(
                "{key:?}: tshark counts {}, wirecheck {}, and the row gives no reason",
                r.tshark, r.wirecheck
            ));
        }
    }
    let agree = stored.values().filter(|r| r.tshark == r.wirecheck).count();
    eprintln!("{agree} of {} rows agree with tshark; the others give their reason", stored.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn tshark_still_counts_the_stored_numbers() {
    if !common::peer_installed("tshark", "tshark") {
        return;
    }
    let stored = read_table();
    assert!(!stored.is_empty(), "the table is empty");
    let mut problems = Vec::new();
    let mut asked: BTreeMap<(String, String, String, u16), (usize, usize)> = BTreeMap::new();
    for (key, r) in &stored {
        let spec = spec(&key.proto).unwrap_or_else(|| panic!("{key:?}: no tshark field for {}", key.proto));
        let (c, s) = *asked
            .entry((key.capture.clone(), key.proto.clone(), key.transport.clone(), key.port))
            .or_insert_with(|| tshark_counts(&key.capture, spec, &key.transport, key.port));
        let now = if key.from == "client" { c } else { s };
        if now != r.tshark {
            problems.push(format!("{key:?}: tshark now counts {now}, the table says {}", r.tshark));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
