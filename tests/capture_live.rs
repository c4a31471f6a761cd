//! Every case of every suite, run against its reference with `--capture`: the packets libpcap saw
//! on the loopback decode to the same transcript the runner recorded from its sockets.

mod common;
use common::*;

/// One capture at a time: every test here captures the whole loopback, and a busy one makes the
/// others' packet picking and buffers harder than the run under test alone would.
static ONE_CAPTURE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn every_case_captured_matches_its_socket_transcript() {
    let _one = ONE_CAPTURE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let cap_dir = dir.path().join("captures");
    let cap = cap_dir.to_str().expect("utf-8 path");
    let (_, out, report) = run_json(&["--capture", cap]);
    if out.contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here (needs root or CAP_NET_RAW):\n{out}");
        return;
    }
    let cases = report["cases"].as_array().expect("cases");
    assert!(cases.len() > 300, "only {} cases ran", cases.len());
    let first = capture_problems(&report, &cap_dir);
    // A case whose capture differed, or that failed, is run again on its own: with 4 cases
    // captured at once on a busy machine, the kernel may order a close and the last bytes
    // differently from the run before, and a timing case may miss. What goes wrong again is real.
    let mut problems = Vec::new();
    if !first.is_empty() {
        let again_dir = dir.path().join("again");
        let again = again_dir.to_str().expect("utf-8 path");
        let mut args = vec!["--capture", again, "--jobs", "1"];
        for (id, _) in &first {
            args.extend(["--case", id.as_str()]);
        }
        let (_, again_out, report) = run_json(&args);
        let mut ids: Vec<&str> = first.iter().map(|(id, _)| id.as_str()).collect();
        ids.dedup();
        let ran = report["cases"].as_array().map_or(0, Vec::len);
        assert_eq!(ran, ids.len(), "the re-run ran {ran} of {ids:?}:\n{again_out}");
        let second = capture_problems(&report, &again_dir);
        problems = second.into_iter().map(|(_, p)| p).collect();
        eprintln!(
            "{} case(s) that failed or whose capture differed ran again; {} went wrong again:\n{}",
            first.len(),
            problems.len(),
            first.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
    // The files are real captures: they decode, and a connection of a known case is in them.
    let (out, _) = wirecheck(&["decode", &format!("{cap}/tcp-upper/exact-reply.pcapng")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("S→C \"HELLO WORLD\"") || text.contains("S→C"), "{text}");
}

/// The cases of a captured run that did not pass, whose capture file is missing, or whose
/// warnings name the capture: `suite::case`, and the problem.
fn capture_problems(report: &serde_json::Value, cap_dir: &std::path::Path) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for c in report["cases"].as_array().into_iter().flatten() {
        let (suite, case) = (c["suite"].as_str().unwrap_or(""), c["case"].as_str().unwrap_or(""));
        let id = format!("{suite}::{case}");
        if c["verdict"] != "pass" {
            let why = c["failure"]["message"].as_str().unwrap_or("");
            problems.push((id.clone(), format!("{id}: {} against its reference: {why}", c["verdict"])));
        }
        let file = cap_dir.join(suite).join(format!("{case}.pcapng"));
        if !file.is_file() {
            problems.push((id.clone(), format!("{id}: no capture file {}", file.display())));
        }
        for w in c["warnings"].as_array().into_iter().flatten() {
            let w = w.as_str().unwrap_or("");
            if w.contains("capture") {
                problems.push((id.clone(), format!("{id}: {w}")));
            }
        }
    }
    problems
}

#[test]
fn a_case_pcapng_names_the_case_and_the_failing_step() {
    let _one = ONE_CAPTURE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().to_str().expect("utf-8 path");
    let (out, _) = wirecheck(&[
        "run",
        "tcp-upper",
        "--case",
        "non-ascii",
        "--exec",
        "python3 fixtures/students/tcp_upper_ascii.py {port}",
        "--capture",
        cap,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here: {stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(1));
    let bytes = std::fs::read(dir.path().join("tcp-upper/non-ascii.pcapng")).expect("the case's capture");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("wirecheck: tcp-upper::non-ascii (Fail)"), "no case comment");
    assert!(text.contains("failed at suites/tcp-upper.yaml:"), "no failing-step comment");
}

/// A case's capture keeps its times: the packets fall within the run's wall-clock window, and the
/// time from the first packet to the last is the time from the case's first socket event to its
/// last, within 1 ms on a quiet machine (the pcapng says its units, so Wireshark reads the same).
#[test]
fn a_case_capture_has_the_case_s_times() {
    let _one = ONE_CAPTURE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().to_str().expect("utf-8 path");
    let before = std::time::SystemTime::now();
    let (code, out, report) = run_json(&["tcp-upper", "--case", "byte-by-byte", "--capture", cap]);
    let after = std::time::SystemTime::now();
    if out.contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here:\n{out}");
        return;
    }
    assert_eq!(code, 0, "{out}");
    let since_epoch = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap();
    let times: Vec<std::time::Duration> = wirecheck::capture::file::open(&dir.path().join("tcp-upper/byte-by-byte.pcapng"))
        .expect("the case's capture")
        .map(|p| p.expect("a packet").ts)
        .collect();
    let (first, last) = (times[0], times[times.len() - 1]);
    assert!(since_epoch(before) <= first && last <= since_epoch(after), "{first:?}..{last:?}");
    // The file read as any pcapng reader does: the first packet's raw timestamp in the units its
    // interface declares (if_tsresol, option 9; microseconds when absent).
    let bytes = std::fs::read(dir.path().join("tcp-upper/byte-by-byte.pcapng")).unwrap();
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let (mut at, mut resol, mut raw) = (0, 6u32, None);
    while at + 8 <= bytes.len() && raw.is_none() {
        let (kind, len) = (u32_at(at), u32_at(at + 4) as usize);
        if kind == 1 {
            let mut o = at + 16;
            while o + 4 <= at + len - 4 && u16::from_le_bytes([bytes[o], bytes[o + 1]]) != 0 {
                let (code, olen) = (
                    u16::from_le_bytes([bytes[o], bytes[o + 1]]),
                    u16::from_le_bytes([bytes[o + 2], bytes[o + 3]]),
                );
                if code == 9 {
                    resol = u32::from(bytes[o + 4]);
                }
                o += 4 + usize::from(olen).div_ceil(4) * 4;
            }
        } else if kind == 6 {
            raw = Some(u64::from(u32_at(at + 12)) << 32 | u64::from(u32_at(at + 16)));
        }
        at += len;
    }
    let seconds = raw.expect("an enhanced packet block") as f64 / 10f64.powi(resol as i32);
    assert!(
        (seconds - first.as_secs_f64()).abs() < 1e-3,
        "{seconds} s by if_tsresol {resol}, {first:?} read"
    );
    let events = report["cases"][0]["dialogue"]["events"].as_array().expect("events");
    let t = |e: &serde_json::Value| e["t_us"].as_i64().expect("t_us");
    let recorded = t(events.last().unwrap()) - t(&events[0]);
    let captured = (last - first).as_micros() as i64;
    assert!(recorded > 50_000, "byte-by-byte lasts a while: {recorded} µs");
    // Within 1 ms on a quiet machine; a loaded one (tests side by side) sends the last ACK a few
    // ms after the socket's close was recorded. The units this guards are off by 1000x.
    assert!(
        (captured - recorded).abs() < 5_000,
        "captured {captured} µs, recorded {recorded} µs"
    );
}

/// The first line of every message in a `decode` transcript, TLS's own records and the closes
/// (which side's FIN is seen first is timing) left out: what the protocol inside said, in order.
fn message_lines(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter(|l| (l.contains("C→S ") || l.contains("S→C ")) && !l.contains(" TLS ") && !l.ends_with(" close"))
        .map(|l| l.split_once(['→']).map_or(l, |(_, rest)| rest).to_string())
        .collect()
}

#[test]
fn a_tls_run_captured_opens_decrypted_in_tshark_and_decodes_as_in_plain_text() {
    let _one = ONE_CAPTURE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let (tls_dir, plain_dir) = (dir.path().join("tls"), dir.path().join("plain"));
    let (tls, plain) = (tls_dir.to_str().unwrap(), plain_dir.to_str().unwrap());
    let (code, out, report) = run_json(&[
        "http",
        "smtp",
        "--tls",
        "--capture",
        tls,
        "--case",
        "get-index",
        "--case",
        "seeds-session",
    ]);
    if out.contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here (needs root or CAP_NET_RAW):\n{out}");
        return;
    }
    assert_eq!(code, 0, "{out}");
    // The run's own check: each case's capture, decrypted with its key log block, is what the
    // sockets carried.
    for c in report["cases"].as_array().expect("cases") {
        let warnings: Vec<&str> = c["warnings"].as_array().into_iter().flatten().filter_map(|w| w.as_str()).collect();
        assert!(warnings.iter().all(|w| !w.contains("capture")), "{}: {warnings:?}", c["case"]);
    }
    let (code, out, _) = run_json(&["http", "smtp", "--capture", plain, "--case", "get-index", "--case", "seeds-session"]);
    assert_eq!(code, 0, "{out}");
    let http = tls_dir.join("http/get-index.pcapng");
    // Wireshark's own reading, from the Decryption Secrets Block alone.
    if peer_installed("tshark", "tshark") {
        let shown = std::process::Command::new("tshark")
            .args([
                "-r",
                http.to_str().unwrap(),
                "-Y",
                "http",
                "-T",
                "fields",
                "-e",
                "http.request.uri",
                "-e",
                "http.response.code",
            ])
            .output()
            .expect("tshark runs");
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.contains("/index.html") && shown.contains("200"), "tshark shows: {shown}");
    }
    for (suite, case) in [("http", "get-index"), ("smtp", "seeds-session")] {
        let decode = |d: &std::path::Path| {
            let (out, _) = wirecheck(&["decode", d.join(format!("{suite}/{case}.pcapng")).to_str().unwrap()]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let (over_tls, in_clear) = (decode(&tls_dir), decode(&plain_dir));
        assert!(over_tls.contains("TLS ClientHello"), "{over_tls}");
        let (a, b) = (message_lines(&over_tls), message_lines(&in_clear));
        assert!(!b.is_empty(), "{in_clear}");
        // Host and Date carry the run's own port and time; the messages are the same.
        let first_lines = |v: &[String]| v.iter().map(|l| l.split(':').next().unwrap_or("").to_string()).collect::<Vec<_>>();
        assert_eq!(first_lines(&a), first_lines(&b), "over TLS:\n{over_tls}\nin clear:\n{in_clear}");
    }
}

#[test]
fn every_tls_case_captured_matches_its_socket_transcript() {
    // Every TCP suite over TLS: each case's pcapng, decrypted with the key log block it carries,
    // shows what the sockets carried (the run checks each case and warns where it differs).
    let _one = ONE_CAPTURE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().join("captures");
    let mut args = vec!["--tls", "--capture", cap.to_str().unwrap()];
    args.extend_from_slice(TCP_SUITES);
    let (code, out, report) = run_json(&args);
    if out.contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here (needs root or CAP_NET_RAW):\n{out}");
        return;
    }
    assert_eq!(code, 0, "{out}");
    // A flood the server ends by closing (`dos` cases) is the exception: when the reset comes,
    // the socket cannot tell how many of the records TLS made of the last write left.
    let dos = cases_tagged("http2", "dos");
    let mut problems = Vec::new();
    for c in report["cases"].as_array().expect("cases") {
        if c["suite"] == "http2" && dos.iter().any(|d| c["case"] == d.as_str()) {
            continue;
        }
        for w in c["warnings"].as_array().into_iter().flatten().filter_map(|w| w.as_str()) {
            if w.contains("capture") {
                problems.push(format!("{}::{}: {w}", c["suite"], c["case"]));
            }
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

/// The ids of the cases of `suite` tagged `tag`.
fn cases_tagged(suite: &str, tag: &str) -> Vec<String> {
    let (out, _) = wirecheck(&["list", suite, "--tag", tag, "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list --format json");
    list[0]["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_quic_capture_shows_its_headers() {
    let _one = ONE_CAPTURE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().to_str().expect("utf-8 path");
    let (out, _) = wirecheck(&["run", "http3", "--case", "textbook-get", "--capture", cap]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if String::from_utf8_lossy(&out.stderr).contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("capture differs"), "{stdout}");
    let file = format!("{cap}/http3/textbook-get.pcapng");
    let (out, _) = wirecheck(&["decode", &file]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The client's first datagram: an Initial of QUIC version 1 (RFC 9000 §17.2.2); the rest is
    // protected without the keys.
    assert!(text.contains("(http3)") && text.contains("C→S QUIC Initial v1 dcid="), "{text}");
    assert!(text.contains("1-RTT (short header)"), "{text}");
    // The client's first Initial opens without a key log (RFC 9001 §5.2: keys from its DCID).
    assert!(
        text.contains("CRYPTO 0+") && text.contains("(ClientHello, server name localhost, ALPN h3)"),
        "{text}"
    );
    let (out, _) = wirecheck(&["check", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

/// A live QUIC run's `--keylog` holds its TLS secrets, with which Wireshark decrypts the capture
/// and reads the HTTP/3 frames (RFC 9001 §5: the packet keys come from those secrets).
#[test]
fn a_quic_capture_decrypts_with_the_run_s_key_log() {
    let _one = ONE_CAPTURE.lock().unwrap_or_else(|e| e.into_inner());
    if std::process::Command::new("tshark").arg("--version").output().is_err() {
        eprintln!("SKIPPED: tshark is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().join("cap");
    let keys = dir.path().join("keys.log");
    let (cap_s, keys_s) = (cap.to_str().expect("utf-8"), keys.to_str().expect("utf-8"));
    let (out, _) = wirecheck(&["run", "http3", "--case", "textbook-get", "--capture", cap_s, "--keylog", keys_s]);
    if String::from_utf8_lossy(&out.stderr).contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let log = std::fs::read_to_string(&keys).expect("the key log");
    assert!(
        log.contains("CLIENT_TRAFFIC_SECRET_0 ") && log.contains("SERVER_TRAFFIC_SECRET_0 "),
        "{log}"
    );
    let file = cap.join("http3/textbook-get.pcapng");
    // The secrets are the ones of the connection in the capture: its client's first Initial
    // names them by its ClientHello random.
    let capture = wirecheck::capture::decode_file(&file, &Default::default()).expect("the capture decodes");
    let first = capture.conversations[0]
        .dialogue
        .events
        .iter()
        .find_map(|e| match &e.kind {
            wirecheck::dialogue::EventKind::Data { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .expect("a datagram");
    let random = wirecheck::proto::http3::initial::client_random(&first).expect("the client's Initial opens");
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    assert!(log.contains(&format!("CLIENT_TRAFFIC_SECRET_0 {hex} ")), "{hex} not in {log}");
    let tshark = |args: &[&str]| {
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&file)
            .args(args)
            .output()
            .expect("tshark runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The reference's port is no well-known one: tell tshark it is QUIC.
    let port = tshark(&["-T", "fields", "-e", "udp.dstport"])
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let decoded = tshark(&[
        "-o",
        &format!("tls.keylog_file:{keys_s}"),
        "-d",
        &format!("udp.port=={port},quic"),
        "-Y",
        "http3",
    ]);
    assert!(decoded.contains("HEADERS") && decoded.contains("SETTINGS"), "{decoded}");
    // The pcapng carries the run's secrets itself (a Decryption Secrets Block): no key log file.
    let carried = tshark(&["-d", &format!("udp.port=={port},quic"), "-Y", "http3"]);
    assert!(carried.contains("HEADERS"), "{carried}");
}
