//! `wirecheck serve` runs a reference server that real tools can talk to.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `wirecheck serve ARGS` and returns it with the address it printed.
fn serve(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wirecheck"))
        .arg("serve")
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wirecheck serve starts");
    // The first line says where it listens; reading it is the readiness signal (no sleeping).
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let addr = line.split_whitespace().nth(3).unwrap_or("").to_string();
    (child, addr)
}

#[test]
fn dig_gets_an_answer_from_serve_dns() {
    if Command::new("dig").arg("-v").output().is_err() {
        panic!("dig is not installed: ci/test installs dnsutils; run it, or apt-get install dnsutils");
    }
    // Port 0: the server picks a port free on both UDP and TCP itself (a port picked here and
    // released could be taken by then).
    let (mut child, addr) = serve(&["dns", "--zone", "fixtures/dns/example.test.zone", "--port", "0"]);
    let addr: std::net::SocketAddr = addr.parse().unwrap_or_else(|_| panic!("serve printed no address: '{addr}'"));
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let port = addr.port();
    let start = Instant::now();
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "example.test", "A", "+time=2", "+tries=1"])
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let _ = child.kill();
    let _ = child.wait();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(text.contains("status: NOERROR"), "{text}");
    assert!(text.contains("flags: qr aa"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("example.test.") && l.ends_with("192.0.2.1")),
        "{text}"
    );
}

#[test]
fn serve_ftp_takes_root() {
    use std::io::{Read, Write};
    let (mut child, addr) = serve(&["ftp", "--root", "fixtures/ftp/pub", "--port", "0"]);
    let addr: std::net::SocketAddr = addr.parse().unwrap_or_else(|_| panic!("serve printed no address: '{addr}'"));
    let mut control = std::net::TcpStream::connect(addr).expect("connect");
    control.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut said = String::new();
    // Each reply is one short line: read until as many CRLFs as replies have arrived.
    let mut exchange = |command: &str, replies: usize| {
        if !command.is_empty() {
            control.write_all(format!("{command}\r\n").as_bytes()).expect("write");
        }
        while said.matches("\r\n").count() < replies {
            let mut buf = [0u8; 512];
            let n = control.read(&mut buf).expect("a reply in time");
            assert!(n > 0, "closed early: {said}");
            said.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    exchange("", 1);
    exchange("USER anonymous", 2);
    exchange("PASS guest@example.com", 3);
    exchange("TYPE I", 4);
    exchange("SIZE nested.txt", 5);
    let _ = child.kill();
    let _ = child.wait();
    let replies: Vec<&str> = said.split_terminator("\r\n").collect();
    assert!(replies[0].starts_with("220 "), "{said}");
    assert!(replies[2].starts_with("230 "), "{said}");
    assert_eq!(replies[4], "213 24", "the root given is served: {said}");
}
