//! `wirecheck check`: passive rules find the seeded violations and pass clean captures; with
//! `--suite/--case` the verdict is the live one; `--snapshot` compares transcripts.

mod common;
use common::*;

fn seeded(name: &str) -> String {
    format!("fixtures/captures/seeded/{name}.pcapng")
}

fn check(args: &[&str]) -> (i32, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let (out, _) = wirecheck(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn passive_rules_find_each_seeded_violation() {
    for (file, rule) in [
        ("http-head-with-body", "MUST http message syntax"),
        ("smtp-ehlo-no-dash", "MUST RFC 5321 §4.2"),
        ("pop3-no-stuffing", "MUST pop3 message syntax"),
        ("dns-wrong-id", "MUST RFC 1035 §4.1.1: response id"),
    ] {
        let (code, out) = check(&[&seeded(file)]);
        assert_eq!(code, 1, "{file} should break a rule:\n{out}");
        assert!(out.contains(rule), "{file}: no '{rule}' in:\n{out}");
    }
}

#[test]
fn passive_rules_pass_clean_captures() {
    for file in ["http-clean-keep-alive", "smtp-clean"] {
        let (code, out) = check(&[&seeded(file)]);
        assert_eq!(code, 0, "{file} should be clean:\n{out}");
        assert!(out.contains("0 breaking a MUST"), "{out}");
    }
    // The public sample captures hold real implementations' traffic (h2c included: what follows
    // the HTTP/2 preface is not HTTP/1's to judge): judged on both sides, they break no MUST but
    // those CREDITS.md lists as really there, each with its RFC section.
    let credits = std::fs::read_to_string(root().join("fixtures/captures/CREDITS.md")).unwrap();
    let listed: Vec<(String, String)> = credits
        .split("## Violations that are really there")
        .nth(1)
        .expect("CREDITS.md lists the violations that are really there")
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            (cols.len() > 3 && cols[1].ends_with(".pcap")).then(|| (cols[1].to_string(), cols[2].to_string()))
        })
        .collect();
    assert!(!listed.is_empty(), "no violation listed in CREDITS.md");
    for e in std::fs::read_dir(root().join("fixtures/captures")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let (code, out) = check(&[path.to_str().unwrap(), "--side", "both"]);
            let found: Vec<&str> = out.lines().map(str::trim).filter(|l| l.starts_with("MUST ")).collect();
            let expected: Vec<&String> = listed.iter().filter(|(f, _)| *f == name).map(|(_, r)| r).collect();
            assert_eq!(code, if expected.is_empty() { 0 } else { 1 }, "{name}:\n{out}");
            assert_eq!(
                found.len(),
                expected.len(),
                "{name}: found {found:?}, CREDITS.md lists {expected:?}"
            );
            for rule in expected {
                assert!(found.iter().any(|f| f.starts_with(rule.as_str())), "{name}: no '{rule}' in:\n{out}");
            }
        }
    }
}

#[test]
fn http2_after_an_h2c_upgrade_is_judged_by_http2_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (settings_first, code) in [(true, 0), (false, 1)] {
        let path = dir.path().join(format!("h2c-{settings_first}.pcap"));
        std::fs::write(&path, common::pcap::h2c_upgrade(settings_first).bytes()).unwrap();
        let (got, out) = check(&[path.to_str().unwrap(), "--side", "both"]);
        assert_eq!(got, code, "{out}");
        assert_eq!(out.contains("MUST RFC 9113 §3.4"), code == 1, "{out}");
    }
}

#[test]
fn keep_alive_probes_are_not_part_of_the_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut pcap = common::pcap::Pcap::new();
    let c = pcap.connect(0.0, "10.0.0.1:41000", "10.0.0.2:80");
    use common::pcap::End;
    pcap.keep_alive(1.0, c, End::Client);
    pcap.send(2.0, c, End::Client, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    pcap.send(3.0, c, End::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    pcap.keep_alive(4.0, c, End::Client);
    pcap.keep_alive(5.0, c, End::Server);
    pcap.send(6.0, c, End::Client, b"GET /b HTTP/1.1\r\nHost: a.test\r\n\r\n");
    pcap.send(7.0, c, End::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    pcap.close(8.0, c, End::Client);
    pcap.close(8.0, c, End::Server);
    let path = dir.path().join("keep-alive.pcap");
    std::fs::write(&path, pcap.bytes()).unwrap();
    let (code, out) = check(&[path.to_str().unwrap(), "--side", "both"]);
    assert_eq!(code, 0, "{out}");
    let (out, _) = wirecheck(&["decode", path.to_str().unwrap()]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(!t.contains("\\x00") && t.matches("200 OK").count() == 2, "{t}");
}

#[test]
fn bytes_cut_by_the_snap_length_are_no_violation() {
    use common::pcap::End;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut pcap = common::pcap::Pcap::new();
    let c = pcap.connect(0.0, "10.0.0.1:41000", "10.0.0.2:80");
    pcap.send(1.0, c, End::Client, b"GET /a HTTP/1.1\r\nHost: a.test\r\n\r\n");
    // The response's head is cut after 20 bytes; its body comes in the next packet, whole.
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n";
    pcap.send_cut(2.0, c, End::Server, head, 20);
    pcap.send(2.1, c, End::Server, b"0123456789");
    pcap.send(3.0, c, End::Client, b"GET /b HTTP/1.1\r\nHost: a.test\r\n\r\n");
    pcap.send(4.0, c, End::Server, b"HTTP/1.1 204 No Content\r\n\r\n");
    // A last response cut in its head, then the server closes.
    pcap.send(5.0, c, End::Client, b"GET /c HTTP/1.1\r\nHost: a.test\r\n\r\n");
    pcap.send_cut(6.0, c, End::Server, head, 30);
    pcap.close(7.0, c, End::Server);
    pcap.close(7.0, c, End::Client);
    let path = dir.path().join("cut.pcap");
    std::fs::write(&path, pcap.bytes()).unwrap();
    let (code, out) = check(&[path.to_str().unwrap(), "--side", "both"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.lines().any(|l| l.trim_start().starts_with("MUST")), "{out}");
    let (out, _) = wirecheck(&["decode", path.to_str().unwrap()]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("S→C cut by the capture: 45 bytes not captured, after 20 bytes of a message"),
        "{t}"
    );
    assert!(t.contains("S→C not framed after the cut: 10 bytes"), "{t}");
    assert!(t.contains("S→C HTTP/1.1 204 No Content"), "{t}");
}

#[test]
fn snaplen_68_capture_breaks_no_must() {
    let path = root().join("fixtures/captures/smtp-snaplen68-truncated.pcap");
    let (code, out) = check(&[path.to_str().unwrap(), "--side", "both"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.lines().any(|l| l.trim_start().starts_with("MUST")), "{out}");
    let (out, _) = wirecheck(&["decode", path.to_str().unwrap()]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("cut by the capture: 84 bytes not captured") && !t.contains("gap:"),
        "{t}"
    );
}

#[test]
fn json_output_lists_violations() {
    let (code, out) = check(&[&seeded("dns-wrong-id"), "--format", "json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["failed"], 1);
    assert_eq!(v["conversations"][0]["violations"][0]["level"], "must");
}

#[test]
fn suite_case_verdicts_of_seeded_captures_are_the_live_ones() {
    for (file, suite, case, live) in [
        ("http-head-with-body", "http", "head-no-body", 1),
        ("smtp-ehlo-no-dash", "smtp", "ehlo-multiline", 1),
        ("pop3-no-stuffing", "pop3", "retr-byte-stuffed", 1),
        ("dns-wrong-id", "dns-auth", "id-echoed", 1),
        ("http-clean-keep-alive", "http", "keep-alive-two", 0),
        ("smtp-clean", "smtp", "ehlo-multiline", 0),
    ] {
        let (code, out) = check(&[&seeded(file), "--suite", suite, "--case", case]);
        assert_eq!(code, live, "{file} against {suite}::{case}:\n{out}");
    }
}

/// Runs `suite` live against `cmd` with capture on, then checks every case's capture offline.
fn agrees_with_live(suite: &str, cmd: &str, tags: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cap = dir.path().to_str().expect("utf-8");
    let mut args = vec![suite, "--exec", cmd, "--capture", cap];
    for t in tags {
        args.extend_from_slice(&["--tag", t]);
    }
    let (_, out, report) = run_json(&args);
    if out.contains("warning: --capture:") {
        eprintln!("SKIPPED: capturing is not permitted here:\n{out}");
        return;
    }
    let cases = report["cases"].as_array().expect("cases");
    assert!(cases.len() > 5, "{out}");
    let mut differ = Vec::new();
    let (mut pass, mut fail) = (0, 0);
    for c in cases {
        let id = c["case"].as_str().unwrap_or("");
        let live = match c["verdict"].as_str() {
            Some("pass") => 0,
            Some("fail") => 1,
            _ => continue,
        };
        if live == 0 {
            pass += 1
        } else {
            fail += 1
        }
        let file = format!("{cap}/{suite}/{id}.pcapng");
        let (code, text) = check(&[&file, "--suite", suite, "--case", id]);
        if code != live {
            differ.push(format!("{id}: live {live}, from the capture {code}\n{text}"));
        }
    }
    assert!(
        pass > 0 && fail > 0,
        "the sample should pass some cases and fail others ({pass} passed, {fail} failed)"
    );
    assert!(differ.is_empty(), "{} case(s) disagree:\n{}", differ.len(), differ.join("\n"));
}

#[test]
fn every_smtp_case_checked_from_its_capture_agrees_with_the_live_run() {
    agrees_with_live("smtp", "python3 fixtures/students/smtp_server_ehlo_no_dash.py {port}", &[]);
}

#[test]
fn every_basic_dns_case_checked_from_its_capture_agrees_with_the_live_run() {
    agrees_with_live(
        "dns-auth",
        "python3 fixtures/students/dns_auth_wrong_id.py {port} fixtures/dns/example.test.zone",
        &["basic"],
    );
}

#[test]
fn snapshot_compares_transcripts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snap = dir.path().join("smtp.txt");
    let (out, _) = wirecheck(&["decode", &seeded("smtp-clean")]);
    std::fs::write(&snap, &out.stdout).unwrap();
    let snap_s = snap.to_str().unwrap();
    let (code, text) = check(&[&seeded("smtp-clean"), "--snapshot", snap_s]);
    assert_eq!(code, 0, "{text}");
    let changed = String::from_utf8_lossy(&out.stdout).replace("250", "251");
    std::fs::write(&snap, changed).unwrap();
    let (code, text) = check(&[&seeded("smtp-clean"), "--snapshot", snap_s]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("-") && text.contains("+"), "no diff in:\n{text}");
    let (code, text) = check(&[&seeded("smtp-clean"), "--snapshot", "/nonexistent/x.txt"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("wirecheck decode"), "no hint in:\n{text}");
}

#[test]
fn suites_whose_target_connects_back_are_refused() {
    let (code, text) = check(&[&seeded("http-clean-keep-alive"), "--suite", "http-proxy", "--case", "via-added"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("cannot be replayed"), "{text}");
}

use common::pcap::{End, Ftp, Pcap};

/// A PASV session: login, PASV (port 30001), the data connection opened, then `transfer` (from
/// 10 ms, with the control connection and the data connection), then QUIT at 200 ms.
fn pasv_session(transfer: impl FnOnce(&mut Ftp, usize)) -> Pcap {
    let mut pcap = Pcap::new();
    let conn = pcap.connect(0.0, "10.0.0.1:40000", "10.0.0.2:21");
    let mut ftp = Ftp { pcap: &mut pcap, conn };
    ftp.reply(1.0, "220 ready");
    ftp.cmd(2.0, "USER anonymous");
    ftp.reply(3.0, "331 password");
    ftp.cmd(4.0, "PASS guest@example.com");
    ftp.reply(5.0, "230 in");
    ftp.cmd(6.0, "PASV");
    ftp.reply(7.0, "227 Entering Passive Mode (10,0,0,2,117,49).");
    let data = ftp.pcap.connect(8.0, "10.0.0.1:40001", "10.0.0.2:30001");
    transfer(&mut ftp, data);
    ftp.cmd(200.0, "QUIT");
    ftp.reply(201.0, "221 bye");
    pcap.close(202.0, conn, End::Server);
    pcap.close(202.5, conn, End::Client);
    pcap
}

const ROBOTS: &[u8] = b"User-agent: *\nDisallow: *.tgz\nDisallow: *.gz\nDisallow: *.tbz\nDisallow: *.bz2\n";

/// `check` of a synthetic capture: its exit status and output.
fn check_pcap(pcap: &Pcap) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("session.pcap");
    std::fs::write(&path, pcap.bytes()).expect("written");
    check(&[path.to_str().expect("utf-8")])
}

#[test]
fn public_ftp_captures_pass_every_ftp_rule_with_their_data_connections_attributed() {
    for file in ["ftp-passive-download", "ftp-mixed-pasv-port"] {
        let (code, out) = check(&[&format!("fixtures/captures/{file}.pcap")]);
        assert_eq!(code, 0, "{file}:\n{out}");
        let finding = |l: &str| l.trim_start().starts_with("MUST ") || l.trim_start().starts_with("SHOULD ");
        assert!(!out.lines().any(finding), "{file}:\n{out}");
        assert!(out.contains("(ftp-data)") && !out.contains("(line"), "{file}:\n{out}");
    }
}

#[test]
fn a_clean_synthetic_ftp_transfer_passes_and_each_order_violation_is_a_finding() {
    let clean = pasv_session(|ftp, data| {
        ftp.cmd(10.0, "RETR robots.txt");
        ftp.reply(11.0, "150 Opening BINARY mode data connection for robots.txt (77 bytes).");
        ftp.pcap.send(12.0, data, End::Server, ROBOTS);
        ftp.pcap.close(13.0, data, End::Server);
        ftp.pcap.close(13.5, data, End::Client);
        ftp.reply(14.0, "226 Transfer complete.");
    });
    let (code, out) = check_pcap(&clean);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(ftp-data)"), "{out}");

    let early_226 = pasv_session(|ftp, data| {
        ftp.cmd(10.0, "RETR robots.txt");
        ftp.reply(11.0, "150 Opening");
        ftp.pcap.send(12.0, data, End::Server, ROBOTS);
        ftp.reply(14.0, "226 Transfer complete.");
        ftp.pcap.close(100.0, data, End::Server);
        ftp.pcap.close(100.5, data, End::Client);
    });
    let (code, out) = check_pcap(&early_226);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("MUST RFC 959 §5.4: RETR robots.txt: 226 came 86.0 ms before the data connection (conversation 2) closed"),
        "{out}"
    );

    let no_150 = pasv_session(|ftp, data| {
        ftp.cmd(10.0, "RETR robots.txt");
        ftp.pcap.send(12.0, data, End::Server, ROBOTS);
        ftp.pcap.close(13.0, data, End::Server);
        ftp.pcap.close(13.5, data, End::Client);
        ftp.reply(14.0, "226 Transfer complete.");
    });
    let (code, out) = check_pcap(&no_150);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "MUST RFC 959 §5.4: RETR robots.txt: data flowed on the data connection (conversation 2) with no 150 or 125 reply before it"
        ),
        "{out}"
    );

    let late_150 = pasv_session(|ftp, data| {
        ftp.cmd(10.0, "RETR robots.txt");
        ftp.pcap.send(12.0, data, End::Server, ROBOTS);
        ftp.reply(40.0, "150 Opening");
        ftp.pcap.close(41.0, data, End::Server);
        ftp.pcap.close(41.5, data, End::Client);
        ftp.reply(42.0, "226 Transfer complete.");
    });
    let (code, out) = check_pcap(&late_150);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("data flowed on the data connection (conversation 2) 28.0 ms before the 150 reply"),
        "{out}"
    );

    let bytes_after_425 = pasv_session(|ftp, data| {
        ftp.cmd(10.0, "RETR robots.txt");
        ftp.pcap.send(12.0, data, End::Server, ROBOTS);
        ftp.pcap.close(13.0, data, End::Server);
        ftp.pcap.close(13.5, data, End::Client);
        ftp.reply(14.0, "425 Can't open data connection.");
    });
    let (code, out) = check_pcap(&bytes_after_425);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("RETR robots.txt: 425 (can't open data connection), yet the data connection (conversation 2) carried 77 bytes"),
        "{out}"
    );

    let abort_answered_226 = pasv_session(|ftp, data| {
        ftp.cmd(10.0, "RETR big.bin");
        ftp.reply(11.0, "150 Opening");
        ftp.pcap.send(12.0, data, End::Server, &[7; 1000]);
        ftp.cmd(20.0, "ABOR");
        ftp.pcap.close(21.0, data, End::Server);
        ftp.pcap.close(21.5, data, End::Client);
        ftp.reply(22.0, "226 Transfer complete.");
        ftp.reply(23.0, "226 ABOR command successful.");
    });
    let (code, out) = check_pcap(&abort_answered_226);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("MUST RFC 959 §4.1.3: RETR big.bin: ABOR came while the data connection (conversation 2) was open, yet the transfer was answered 226"),
        "{out}"
    );
    let abort_answered_426 = pasv_session(|ftp, data| {
        ftp.cmd(10.0, "RETR big.bin");
        ftp.reply(11.0, "150 Opening");
        ftp.pcap.send(12.0, data, End::Server, &[7; 1000]);
        ftp.cmd(20.0, "ABOR");
        ftp.pcap.close(21.0, data, End::Server);
        ftp.pcap.close(21.5, data, End::Client);
        ftp.reply(22.0, "426 Connection closed; transfer aborted.");
        ftp.reply(23.0, "226 ABOR command successful.");
    });
    let (code, out) = check_pcap(&abort_answered_426);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_transfer_answered_without_its_data_connection_is_a_finding() {
    let pcap = pasv_session(|ftp, data| {
        ftp.cmd(10.0, "RETR robots.txt");
        ftp.reply(11.0, "150 Opening");
        ftp.pcap.send(12.0, data, End::Server, ROBOTS);
        ftp.pcap.close(13.0, data, End::Server);
        ftp.pcap.close(13.5, data, End::Client);
        ftp.reply(14.0, "226 Transfer complete.");
        ftp.cmd(20.0, "PASV");
        ftp.reply(21.0, "227 Entering Passive Mode (10,0,0,2,117,50).");
        ftp.cmd(22.0, "LIST");
        ftp.reply(23.0, "150 Here comes the listing.");
        ftp.reply(24.0, "226 Directory send OK.");
    });
    let (code, out) = check_pcap(&pcap);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("LIST: answered 150, but no data connection came to port 30002 (announced by \"227 Entering Passive Mode (10,0,0,2,117,50).\"): without one the reply is 425"),
        "{out}"
    );
}

/// A TCP session with a server on `port`: each message sent 1 ms after the one before, then both
/// ends close. `joined`: the capture starts after the handshake (no SYN), as if it began mid-way.
fn session(port: u16, joined: bool, msgs: &[(End, &[u8])]) -> Pcap {
    let mut p = Pcap::new();
    let (client, server) = ("10.0.0.1:40000", format!("10.0.0.2:{port}"));
    let c = match joined {
        true => p.joined(client, &server),
        false => p.connect(0.0, client, &server),
    };
    for (i, (from, bytes)) in msgs.iter().enumerate() {
        p.send(1.0 + i as f64, c, *from, bytes);
    }
    let end = 2.0 + msgs.len() as f64;
    p.close(end, c, End::Client);
    p.close(end, c, End::Server);
    p
}

/// `wirecheck decode` of a synthetic capture.
fn decode_pcap(pcap: &Pcap) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("session.pcap");
    std::fs::write(&path, pcap.bytes()).expect("written");
    let (out, _) = wirecheck(&["decode", path.to_str().expect("utf-8")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bdat_chunks_are_message_data_and_get_one_reply_per_bdat() {
    use End::{Client as C, Server as S};
    let chunked = |second_reply: &'static [u8]| {
        let mut msgs: Vec<(End, &[u8])> = vec![
            (S, b"220 mx.test ESMTP\r\n"),
            (C, b"EHLO c.test\r\n"),
            (S, b"250-mx.test\r\n250 CHUNKING\r\n"),
            (C, b"MAIL FROM:<a@c.test>\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"RCPT TO:<b@mx.test>\r\n"),
            (S, b"250 ok\r\n"),
            // Three lines of data and one cut in the middle: none of them is a command.
            (C, b"BDAT 34\r\nSubject: chunks\r\n\r\nfirst line\r\nsec"),
            (S, b"250 34 octets\r\n"),
            (C, b"BDAT 8 LAST\r\nond\r\nQ\r\n"),
        ];
        msgs.extend([(S, second_reply), (C, b"QUIT\r\n"), (S, b"221 bye\r\n")]);
        session(25, false, &msgs)
    };
    let clean = chunked(b"250 queued\r\n");
    let t = decode_pcap(&clean);
    assert!(t.contains("C→S \"BDAT 34\""), "{t}");
    assert!(t.contains("C→S [34 bytes of message data]: \"Subject: chunks"), "{t}");
    assert!(t.contains("C→S [8 bytes of message data]: \"ond\\r\\nQ\\r\\n\""), "{t}");
    assert!(!t.contains("\"first line\""), "a chunk's line framed as a command:\n{t}");
    let (code, out) = check_pcap(&clean);
    assert_eq!(code, 0, "{out}");
    // Two replies to the last BDAT: the second answers nothing.
    let (code, out) = check_pcap(&chunked(b"250 queued\r\n250 again\r\n"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("RFC 5321 §4.2") && out.contains("250 again"), "{out}");
}

#[test]
fn content_sent_before_the_354_is_content_and_a_client_finding() {
    use End::{Client as C, Server as S};
    let mail = |early: bool| {
        let mut msgs: Vec<(End, &[u8])> = vec![
            (S, b"220 mx.test ESMTP\r\n"),
            (C, b"EHLO c.test\r\n"),
            (S, b"250-mx.test\r\n250 PIPELINING\r\n"),
            (C, b"MAIL FROM:<a@c.test>\r\nRCPT TO:<b@mx.test>\r\nDATA\r\n"),
        ];
        let content: &[u8] = b"Subject: early\r\n\r\nQUIT is only text\r\n.\r\n";
        if early {
            msgs.extend([(C, content), (S, &b"250 ok\r\n250 ok\r\n354 go on\r\n"[..])]);
        } else {
            msgs.extend([(S, &b"250 ok\r\n250 ok\r\n354 go on\r\n"[..]), (C, content)]);
        }
        let end: [(End, &[u8]); 3] = [(S, b"250 queued\r\n"), (C, b"QUIT\r\n"), (S, b"221 bye\r\n")];
        msgs.extend(end);
        session(25, false, &msgs)
    };
    for early in [true, false] {
        let p = mail(early);
        let t = decode_pcap(&p);
        assert!(t.contains("C→S DATA content, 3 lines"), "{t}");
        assert!(!t.contains("\"QUIT is only text\""), "{t}");
        // The server answered every command once either way.
        let (code, out) = check_pcap(&p);
        assert_eq!(code, 0, "{out}");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("session.pcap");
        std::fs::write(&path, p.bytes()).expect("written");
        let (code, out) = check(&[path.to_str().expect("utf-8"), "--side", "client"]);
        assert_eq!(code, i32::from(early), "{out}");
        assert_eq!(out.contains("MUST RFC 5321 §4.3.1, RFC 2920 §3.1"), early, "{out}");
    }
}

#[test]
fn conversations_captured_after_their_greeting_pair_replies_by_kind() {
    use End::{Client as C, Server as S};
    // POP3 from after the greeting, then from between STAT and its reply.
    let pop3: [(End, &[u8]); 12] = [
        (C, b"USER bob\r\n"),
        (S, b"+OK\r\n"),
        (C, b"PASS hungry\r\n"),
        (S, b"+OK 2 messages\r\n"),
        (C, b"STAT\r\n"),
        (S, b"+OK 2 320\r\n"),
        (C, b"LIST\r\n"),
        (S, b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"),
        (C, b"RETR 1\r\n"),
        (S, b"+OK 120 octets\r\nSubject: hi\r\n\r\n..dot\r\n.\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"+OK bye\r\n"),
    ];
    // Joined after the greeting, joined between STAT and its reply, and from the handshake with
    // no greeting at all (the client speaks first).
    for (joined, from) in [(true, 0), (true, 5), (false, 0)] {
        let p = session(110, joined, &pop3[from..]);
        let t = decode_pcap(&p);
        assert!(t.contains("(2 lines, 14 bytes): \"1 120\\r\\n2 200\\r\\n\""), "{t}");
        assert!(t.contains("\"Subject: hi\\r\\n\\r\\n.dot\\r\\n\""), "{t}");
        let (code, out) = check_pcap(&p);
        assert_eq!(code, 0, "POP3 from message {from}:\n{out}");
    }
    // SMTP from after the greeting, then from between MAIL and its reply.
    let smtp: [(End, &[u8]); 13] = [
        (C, b"EHLO c.test\r\n"),
        (S, b"250-mx.test\r\n250 8BITMIME\r\n"),
        (C, b"MAIL FROM:<a@c.test>\r\n"),
        (S, b"250 ok\r\n"),
        (C, b"RCPT TO:<b@mx.test>\r\n"),
        (S, b"250 ok\r\n"),
        (C, b"DATA\r\n"),
        (S, b"354 go on\r\n"),
        (C, b"Subject: late\r\n\r\nhi\r\n.\r\n"),
        (S, b"250 queued\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 bye\r\n"),
        (S, b"221 and again\r\n"),
    ];
    for (joined, from) in [(true, 0), (true, 3), (false, 0)] {
        let p = session(25, joined, &smtp[from..12]);
        assert!(decode_pcap(&p).contains("C→S DATA content, 3 lines"));
        let (code, out) = check_pcap(&p);
        assert_eq!(code, 0, "SMTP from message {from}:\n{out}");
    }
    // Once replies and commands are paired again, an extra reply is still a finding.
    let (code, out) = check_pcap(&session(25, true, &smtp[3..]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MUST RFC 5321 §4.2") && out.contains("221 and again"), "{out}");
}

/// A public POP3 capture whose server never greets (the client's CAPA comes first, after the
/// handshake): the +OK is CAPA's, its capability lines its body, not a greeting and garbage.
#[test]
fn a_pop3_conversation_without_its_greeting_pairs_each_reply_with_its_command() {
    let (out, _) = wirecheck(&["decode", "fixtures/captures/pop3-no-greeting-xoauth2.pcap"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("S→C +OK Capability list follows\n             (8 lines, 103 bytes)"),
        "{text}"
    );
    assert!(
        text.contains("C→S \"UIDL\"\nc      S→C +OK\n             (1 lines, 20 bytes)"),
        "{text}"
    );
    assert!(!text.contains("undecodable"), "{text}");
}

/// Redis answers `+OK` as a POP3 server does, to a client speaking RESP: detection that only
/// guessed took the conversation for POP3 and judged it by POP3's rules.
#[test]
fn a_redis_conversation_answered_ok_is_not_taken_for_pop3() {
    let (out, _) = wirecheck(&["decode", "fixtures/captures/redis-resp-ok-not-pop3.pcap"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(":6379 (line-crlf)"), "{text}");
    assert!(!text.contains("(pop3)"), "{text}");
}
