//! Runner overhead: a 10,000-exchange echo dialogue through wirecheck's runner vs a hand-written
//! tokio client, against the same in-process echo server, in the same process.
//!
//! `cargo run --release --example bench_overhead [EXCHANGES]` prints both times and the ratio.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use wirecheck::run::{run_one, RunOptions, SuiteTarget, TargetSpec, Verdict};

/// A line echo server: the baseline and the runner talk to the same one.
async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if w.write_all(format!("{l}\n").as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// What a person would write by hand: send a line, read the echo, compare.
async fn baseline(addr: std::net::SocketAddr, n: usize) -> Duration {
    let start = Instant::now();
    let s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let (r, mut w) = s.into_split();
    let mut lines = BufReader::new(r).lines();
    for i in 1..=n {
        let msg = format!("message number {i}");
        w.write_all(format!("{msg}\n").as_bytes()).await.expect("write");
        let got = tokio::time::timeout(Duration::from_secs(2), lines.next_line())
            .await
            .expect("in time")
            .expect("read")
            .expect("line");
        assert_eq!(got, msg);
    }
    start.elapsed()
}

async fn through_runner(addr: std::net::SocketAddr, n: usize) -> Duration {
    let text = format!(
        "suite: bench\nprotocol: line\ncases:\n  - id: echo\n    steps:\n      - connect: c\n      - repeat:\n          times: {n}\n          steps:\n            - send: 'message number ${{i}}'\n            - expect: 'message number ${{i}}'\n"
    );
    let suite = Arc::new(wirecheck::suite::load_str(Path::new("bench.yaml"), text).expect("suite loads"));
    let opts = RunOptions::default();
    let target = SuiteTarget::new(suite.clone(), TargetSpec::Addr(addr), Duration::from_secs(5));
    let start = Instant::now();
    let (result, _) = run_one(&target, suite, 0, &opts).await;
    let took = start.elapsed();
    assert_eq!(result.verdict, Verdict::Pass, "{:?}", result.failure);
    assert_eq!(result.dialogue.events.len(), 2 * n + 2, "every exchange recorded");
    took
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let addr = echo_server().await;
        // Warm up both paths (connection setup, allocator), then take the best of 3 rounds each.
        baseline(addr, 500).await;
        through_runner(addr, 500).await;
        let mut base = Duration::MAX;
        let mut ours = Duration::MAX;
        for _ in 0..3 {
            base = base.min(baseline(addr, n).await);
            ours = ours.min(through_runner(addr, n).await);
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!("exchanges:          {n}");
        println!(
            "hand-written tokio: {:>8.1} ms ({:.1} µs/exchange)",
            base.as_secs_f64() * 1e3,
            per(base)
        );
        println!(
            "wirecheck runner:   {:>8.1} ms ({:.1} µs/exchange)",
            ours.as_secs_f64() * 1e3,
            per(ours)
        );
        println!("ratio:              {:.2} (target ≤ 1.30)", ours.as_secs_f64() / base.as_secs_f64());
    });
}
