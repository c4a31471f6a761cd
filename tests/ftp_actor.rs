//! The FTP server actor against real FTP clients (Python's ftplib, curl), which send different
//! housekeeping commands in different orders, and its declaration as the suite loader reads it.
//! A client this machine lacks skips its part and says so.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::timeout;
use wirecheck::proto::actor::{ActorHandle, ActorLog, ActorSpec, Bound};
use wirecheck::proto::{Direction, Transport};
use wirecheck::syntax::{yaml, LoadCx, SourceFile};

/// How long one client run may take.
const CLIENT: Duration = Duration::from_secs(30);

/// Keeps the uploads handed over and who opened each data connection.
#[derive(Default)]
struct Log {
    next: AtomicUsize,
    stored: Mutex<Vec<(String, Vec<u8>)>>,
    data_opened_by_actor: Mutex<Vec<bool>>,
}

impl ActorLog for Log {
    fn open(&self, _: Transport, _: SocketAddr, _: SocketAddr) -> usize {
        self.next.fetch_add(1, Ordering::SeqCst)
    }
    fn data(&self, _: usize, _: Direction, _: &[u8]) {}
    fn closed(&self, _: usize) {}
    fn open_other(&self, _: Transport, _: SocketAddr, _: SocketAddr, protocol: &str, actor_connected: bool) -> usize {
        assert_eq!(protocol, wirecheck::proto::ftp::DATA);
        self.data_opened_by_actor.lock().unwrap().push(actor_connected);
        self.next.fetch_add(1, Ordering::SeqCst)
    }
    fn stored(&self, name: &str, bytes: &[u8]) {
        self.stored.lock().unwrap().push((name.into(), bytes.to_vec()));
    }
}

fn declared() -> Arc<dyn ActorSpec> {
    let text = "root: ../fixtures/ftp\n";
    let source = Arc::new(SourceFile {
        path: "suites/t.yaml".into(),
        text: text.into(),
    });
    let node = yaml::parse(text).unwrap();
    let mut cx = LoadCx::new(source);
    let spec = (wirecheck::proto::ftp::actor::ACTOR.parse)(&node, &mut cx);
    assert_eq!(cx.error_count(), 0);
    spec.unwrap()
}

async fn start(faults: &[&str]) -> (ActorHandle, SocketAddr, Arc<Log>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Log::default());
    let faults: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
    let bound = Bound {
        udp: None,
        tcp: Some(listener),
        tls: None,
    };
    (declared().start(bound, &faults, log.clone()), addr, log)
}

/// Runs `program` to its end within `CLIENT`: its status and output, or None when it is missing.
async fn run(program: &str, args: &[String]) -> Option<(bool, String)> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match timeout(CLIENT, child).await {
        Ok(Ok(out)) => {
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            Some((out.status.success(), text))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
        Ok(Err(e)) => panic!("{program}: {e}"),
        Err(_) => panic!("{program} did not finish within {CLIENT:?}"),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new("fixtures/ftp").join(name)).unwrap()
}

const FTPLIB: &str = r#"
import ftplib, io, sys
host, port, mode, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
f = ftplib.FTP()
f.connect(host, port, timeout=10)
f.login("bob", "hungry")
f.set_pasv(mode == "passive")
got = io.BytesIO()
f.retrbinary("RETR binary.bin", got.write)
open(out + "/got.bin", "wb").write(got.getvalue())
listing = []
f.retrlines("LIST", listing.append)
names = f.nlst()
f.storbinary("STOR up.bin", io.BytesIO(b"\x00\r\n\xff" * 100))
print("size", f.size("up.bin"))
f.cwd("pub")
print("pwd", f.pwd())
text = []
f.retrlines("RETR nested.txt", text.append)
f.quit()
print("listing", len(listing), "names", sorted(names), "text", text)
"#;

#[tokio::test]
async fn python_ftplib_downloads_lists_and_uploads_in_both_modes() {
    for (mode, faults) in [
        ("passive", vec![]),
        ("active", vec![]),
        ("passive", vec!["multiline", "pasv-bare"]),
        ("active", vec!["multiline"]),
    ] {
        let (_h, addr, log) = start(&faults).await;
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = [
            "-c",
            FTPLIB,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            mode,
            &dir.path().display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let Some((ok, out)) = run("python3", &args).await else {
            eprintln!("skipped: python3 is not installed");
            return;
        };
        assert!(ok, "{mode} {faults:?}: {out}");
        assert_eq!(std::fs::read(dir.path().join("got.bin")).unwrap(), fixture("binary.bin"));
        assert!(out.contains("size 400") && out.contains("pwd /pub"), "{out}");
        assert!(out.contains("'binary.bin'") && out.contains("'with space.txt'"), "{out}");
        let stored = log.stored.lock().unwrap().clone();
        assert_eq!(stored, vec![("up.bin".to_string(), b"\x00\r\n\xff".repeat(100))]);
        let by_actor = log.data_opened_by_actor.lock().unwrap().clone();
        assert!(
            !by_actor.is_empty() && by_actor.iter().all(|a| *a == (mode == "active")),
            "{by_actor:?}"
        );
    }
}

#[tokio::test]
async fn curl_downloads_lists_and_uploads_with_and_without_extended_commands() {
    for (active, faults) in [
        (false, vec![]),
        (true, vec![]),
        (false, vec!["no-extended"]),
        (true, vec!["no-extended"]),
    ] {
        let (_h, addr, log) = start(&faults).await;
        let dir = tempfile::tempdir().unwrap();
        let base = format!("ftp://bob:hungry@{addr}");
        let mut common: Vec<String> = vec!["-sS".into(), "--max-time".into(), "20".into()];
        if active {
            common.extend(["--ftp-port".to_string(), "127.0.0.1".to_string()]);
        }
        let got = dir.path().join("got.bin");
        let mut args = common.clone();
        args.extend(["-o".to_string(), got.display().to_string(), format!("{base}/binary.bin")]);
        let Some((ok, out)) = run("curl", &args).await else {
            eprintln!("skipped: curl is not installed");
            return;
        };
        assert!(ok, "{faults:?} active={active}: {out}");
        assert_eq!(std::fs::read(&got).unwrap(), fixture("binary.bin"));
        let mut args = common.clone();
        args.push(format!("{base}/pub/"));
        let (ok, out) = run("curl", &args).await.unwrap();
        assert!(ok && out.contains(" nested.txt"), "{out}");
        let up = dir.path().join("up.txt");
        std::fs::write(&up, b"line one\nline two\n").unwrap();
        let mut args = common.clone();
        args.extend(["-T".to_string(), up.display().to_string(), format!("{base}/up.txt")]);
        let (ok, out) = run("curl", &args).await.unwrap();
        assert!(ok, "{out}");
        let stored = log.stored.lock().unwrap().clone();
        assert_eq!(stored, vec![("up.txt".to_string(), b"line one\nline two\n".to_vec())]);
        let by_actor = log.data_opened_by_actor.lock().unwrap().clone();
        assert!(by_actor.len() == 3 && by_actor.iter().all(|a| *a == active), "{by_actor:?}");
    }
}

#[test]
fn the_loader_takes_the_declaration_and_names_the_faults_it_knows() {
    let suite = |faults: &str| {
        format!(
            "suite: t\nprotocol: ftp\nrole: client\nactors:\n  - name: srv\n    ftp: {{ root: ../fixtures/ftp }}\n\
             cases:\n  - id: c\n    steps:\n      - serve: {{ actors: [srv], faults: {{ srv: [{faults}] }} }}\n"
        )
    };
    let errors = |text: String| match wirecheck::suite::load_str(Path::new("suites/t.yaml"), text) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    };
    let bad = errors(suite("split, bogus"));
    assert!(bad.contains("no fault 'bogus' for a ftp actor"), "{bad}");
    for known in ["multiline", "split", "slow-greeting", "close-early", "pasv-bare"] {
        assert!(bad.contains(known), "{known} in {bad}");
    }
    let good = errors(suite("split, slow-data"));
    assert!(!good.contains("fault") && !good.contains("ftp:"), "{good}");
    let missing = errors(suite("split").replace("../fixtures/ftp", "../fixtures/none"));
    assert!(missing.contains("no folder"), "{missing}");
}
