//! The player's command line, and whole runs against a small origin over real sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn parses_command_lines() {
    let parsed = parse_args(&args(&["http://127.0.0.2:40123/video.mpd", "--buffer", "4"])).expect("args");
    assert_eq!(
        (parsed.mpd.to_string().as_str(), parsed.buffer),
        ("http://127.0.0.2:40123/video.mpd", 4.0)
    );
    let parsed = parse_args(&args(&["--buffer=0.5", "http://h/v.mpd"])).expect("args");
    assert_eq!((parsed.buffer, parsed.dns), (0.5, None));
    let parsed = parse_args(&args(&["http://h/v.mpd", "--dns", "127.0.0.1:5353", "--buffer", "1"])).expect("args");
    assert_eq!(parsed.dns, Some("127.0.0.1:5353".parse().expect("addr")));
    let parsed = parse_args(&args(&["http://h/v.mpd", "--dns=[::1]:53", "--buffer", "1"])).expect("args");
    assert_eq!(parsed.dns, Some("[::1]:53".parse().expect("addr")));
    for bad in [
        &[][..],
        &["http://h/v.mpd"],
        &["http://h/v.mpd", "--buffer"],
        &["http://h/v.mpd", "--buffer", "0"],
        &["http://h/v.mpd", "--buffer", "-1"],
        &["http://h/v.mpd", "--buffer", "NaN"],
        &["http://h/v.mpd", "--buffer", "1e9"],
        &["http://h/v.mpd", "--buffer", "4", "extra"],
        &["http://h/v.mpd", "--buffer", "4", "--verbose"],
        &["https://h/v.mpd", "--buffer", "4"],
        &["v.mpd", "--buffer", "4"],
        &["http://h/v.mpd", "--buffer", "4", "--dns"],
        &["http://h/v.mpd", "--buffer", "4", "--dns", "127.0.0.1"],
        &["http://h/v.mpd", "--buffer", "4", "--dns", "127.0.0.1:x"],
    ] {
        assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn parses_faults() {
    let faults = Faults::parse("out-of-order, no-host", FAULTS).expect("faults");
    assert!(faults.has(Fault::OutOfOrder) && faults.has(Fault::NoHost));
    assert!(!faults.has(Fault::PastEnd));
    assert!(Faults::parse("out-of-ordr", FAULTS).is_err());
    let faults = Faults::parse("ignores-dns,no-cname,first-address-only,host-is-address", FAULTS).expect("faults");
    assert!(faults.has(Fault::IgnoresDns) && faults.has(Fault::NoCname));
    assert!(faults.has(Fault::FirstAddressOnly) && faults.has(Fault::HostIsAddress));
}

/// What the origin serves at a path.
#[derive(Clone)]
enum Route {
    File(Vec<u8>),
    Redirect(&'static str),
}

/// A request as the origin saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
    host: Option<String>,
}

/// A small origin: files (ranges answered 206), redirects, 404 for the rest; keep-alive; bodies
/// written at `rate` bytes/s when given, from the `fast`th request on (counted from 0). It
/// accepts before this returns, so nothing waits for it.
async fn origin_paced(routes: HashMap<String, Route>, rate: Option<f64>, fast: usize) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    origin_on(listener, routes, rate, fast)
}

/// `origin_paced` on a listener already bound.
fn origin_on(listener: TcpListener, routes: HashMap<String, Route>, rate: Option<f64>, fast: usize) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let routes = Arc::new(routes);
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let (routes, seen) = (routes.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head: Vec<u8> = buf.drain(..at + 4).collect();
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut request = httparse::Request::new(&mut headers);
                    if !matches!(request.parse(&head), Ok(httparse::Status::Complete(_))) {
                        return;
                    }
                    let field = |name: &str| {
                        request
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).into_owned())
                    };
                    let path = request.path.unwrap_or("").to_owned();
                    let range = field("range");
                    let index = {
                        let mut seen = seen.lock().expect("log");
                        seen.push(Seen {
                            path: path.clone(),
                            range: range.clone(),
                            host: field("host"),
                        });
                        seen.len() - 1
                    };
                    let rate = rate.filter(|_| index >= fast);
                    let (head, body) = match routes.get(&path) {
                        Some(Route::Redirect(to)) => (
                            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"),
                            Vec::new(),
                        ),
                        Some(Route::File(bytes)) => {
                            match range
                                .as_deref()
                                .and_then(|r| r.strip_prefix("bytes="))
                                .and_then(|r| r.split_once('-'))
                            {
                                Some((first, last)) => {
                                    let first: usize = first.parse().unwrap_or(0);
                                    let last: usize = last.parse::<usize>().unwrap_or(usize::MAX).min(bytes.len() - 1);
                                    if first > last {
                                        (format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\n\r\n", bytes.len()), Vec::new())
                                    } else {
                                        let part = bytes[first..=last].to_vec();
                                        let head = format!(
                                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{last}/{}\r\nContent-Length: {}\r\n\r\n",
                                        bytes.len(),
                                        part.len()
                                    );
                                        (head, part)
                                    }
                                }
                                None => (format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", bytes.len()), bytes.clone()),
                            }
                        }
                        None => ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(), Vec::new()),
                    };
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    for piece in body.chunks(1024) {
                        // Paced as a link would be: a piece leaves once its time on the wire is up.
                        if let Some(rate) = rate {
                            tokio::time::sleep(Duration::from_secs_f64(piece.len() as f64 / rate)).await;
                        }
                        if stream.write_all(piece).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, log)
}

/// An origin at one pace throughout.
async fn origin(routes: HashMap<String, Route>, rate: Option<f64>) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    origin_paced(routes, rate, 0).await
}

/// Runs the player to its end: (exit code, lines printed).
async fn play(mpd: &str, buffer: &str, fault: &str) -> (i32, Vec<String>) {
    play_args(&[mpd, "--buffer", buffer], fault).await
}

/// Runs the player with these arguments to its end: (exit code, lines printed).
async fn play_args(words: &[&str], fault: &str) -> (i32, Vec<String>) {
    let mut opts = Options::new();
    if !fault.is_empty() {
        opts.insert("fault".to_owned(), fault.to_owned());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let unused: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let code = tokio::time::timeout(Duration::from_secs(30), run(unused, &opts, &args(words), tx))
        .await
        .expect("the player ends")
        .expect("it starts");
    let mut lines = Vec::new();
    while let Ok(line) = rx.try_recv() {
        lines.push(line);
    }
    (code, lines)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../fixtures/dash/testsrc/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

/// The fixture's media under a short SegmentTemplate presentation: 6 segments of 0.25 s (the
/// files are the fixture's 1 s ones; only the MPD says how long they play).
async fn template_origin(rate: Option<f64>) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let mpd = r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1.5S">
  <Period>
    <AdaptationSet contentType="video">
      <SegmentTemplate timescale="1000" duration="250" startNumber="3" initialization="init-$RepresentationID$.m4s" media="seg-$RepresentationID$-$Number%02d$.m4s"/>
      <Representation id="0" bandwidth="40000"/>
      <Representation id="3" bandwidth="320000"/>
    </AdaptationSet>
  </Period>
</MPD>"#;
    let mut routes = HashMap::from([("/v/video.mpd".to_owned(), Route::File(mpd.as_bytes().to_vec()))]);
    for rep in ["0", "3"] {
        routes.insert(format!("/v/init-{rep}.m4s"), Route::File(fixture(&format!("init-{rep}.m4s"))));
        for n in 3..=8 {
            routes.insert(
                format!("/v/seg-{rep}-{n:02}.m4s"),
                Route::File(fixture(&format!("seg-{rep}-{}.m4s", n - 2))),
            );
        }
    }
    origin(routes, rate).await
}

/// The positions (the template's numbers) of the media requests, and the representations whose
/// initialization was asked for before each one's first media request.
fn media_numbers(log: &[Seen]) -> Vec<u32> {
    let mut inits = Vec::new();
    let mut numbers = Vec::new();
    for seen in log {
        let name = seen.path.trim_start_matches("/v/");
        if let Some(rep) = name.strip_prefix("init-") {
            inits.push(rep.trim_end_matches(".m4s").to_owned());
        } else if let Some(rest) = name.strip_prefix("seg-") {
            let (rep, number) = rest.trim_end_matches(".m4s").split_once('-').expect("seg-R-N");
            assert!(inits.iter().any(|i| i == rep), "media of {rep} before its initialization: {log:?}");
            numbers.push(number.parse().expect("number"));
        }
    }
    numbers
}

#[tokio::test]
async fn plays_a_template_presentation_in_order() {
    // 400 kB/s: even the top representation's segments arrive in well under their 0.25 s.
    let (addr, log) = template_origin(Some(400_000.0)).await;
    let (code, lines) = play(&format!("http://{addr}/v/video.mpd"), "0.5", "").await;
    assert_eq!(code, 0, "{lines:#?}");
    let log = log.lock().expect("log").clone();
    assert_eq!(log[0].path, "/v/video.mpd");
    assert!(log.iter().all(|s| s.host.as_deref() == Some(addr.to_string().as_str())), "{log:?}");
    assert_eq!(media_numbers(&log), [3, 4, 5, 6, 7, 8], "{log:?}");
    assert!(log.iter().any(|s| s.path == "/v/seg-0-03.m4s"), "the first at the lowest: {log:?}");
    assert!(log.iter().any(|s| s.path.starts_with("/v/seg-3-")), "then higher: {log:?}");
    assert_eq!(
        log.iter().filter(|s| s.path.starts_with("/v/init-")).count(),
        2,
        "each init once: {log:?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("segment 6/6 rep 3")), "{lines:#?}");
    assert!(lines.last().is_some_and(|l| l.starts_with("done: 6 segments")), "{lines:#?}");
}

#[tokio::test]
async fn faults_change_the_requests() {
    let (addr, log) = template_origin(None).await;
    let mpd = format!("http://{addr}/v/video.mpd");
    let (code, lines) = play(&mpd, "0.5", "out-of-order,skips-segment,no-init,past-end,no-host").await;
    assert_eq!(code, 0, "past-end's 404 is ignored: {lines:#?}");
    let seen = std::mem::take(&mut *log.lock().expect("log"));
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert!(!paths.iter().any(|p| p.contains("init-")), "{paths:?}");
    let numbers: Vec<&str> = paths.iter().filter_map(|p| p.strip_prefix("/v/seg-")).map(|p| &p[2..]).collect();
    assert_eq!(numbers, ["03.m4s", "04.m4s", "06.m4s", "05.m4s", "08.m4s", "09.m4s"], "{paths:?}");
    assert!(seen.iter().all(|s| s.host.is_none()));
}

#[tokio::test]
async fn a_segment_base_with_failover_and_a_302() {
    // One file: 100 bytes of header, the sidx, four segments of 0.25 s.
    let sizes = [3000u32, 2500, 2800, 2600];
    let refs: Vec<(u32, u32)> = sizes.iter().map(|&s| (s, 250)).collect();
    let index = sidx::build(1, 1000, 0, &refs);
    let mut file = vec![7u8; 100];
    file.extend_from_slice(&index);
    let first_media = file.len();
    for (i, &size) in sizes.iter().enumerate() {
        file.extend(std::iter::repeat_n(i as u8, size as usize));
    }
    let index_range = format!("100-{}", first_media - 1);
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead_port = dead.local_addr().expect("addr").port();
    drop(dead);
    let mpd = format!(
        r#"<MPD type="static" mediaPresentationDuration="PT1S">
          <BaseURL>http://127.0.0.1:{dead_port}/media/</BaseURL>
          <BaseURL>/media/</BaseURL>
          <Period><AdaptationSet mimeType="video/mp4">
            <Representation id="only" bandwidth="100000"><BaseURL>od.mp4</BaseURL>
              <SegmentBase indexRange="{index_range}"><Initialization range="0-99"/></SegmentBase>
            </Representation>
          </AdaptationSet></Period></MPD>"#
    );
    let routes = HashMap::from([
        ("/od.mpd".to_owned(), Route::File(mpd.into_bytes())),
        ("/media/od.mp4".to_owned(), Route::Redirect("../real/od.mp4")),
        ("/real/od.mp4".to_owned(), Route::File(file)),
    ]);
    let (addr, log) = origin(routes, None).await;
    let (code, lines) = play(&format!("http://{addr}/od.mpd"), "0.5", "").await;
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with("failed:") && l.contains(&dead_port.to_string())),
        "{lines:#?}"
    );
    let seen: Vec<(String, Option<String>)> = log.lock().expect("log").iter().map(|s| (s.path.clone(), s.range.clone())).collect();
    let mut expected = vec![("/od.mpd".to_owned(), None)];
    let mut at = first_media;
    let mut ranges = vec!["bytes=0-99".to_owned(), format!("bytes={index_range}")];
    for size in sizes {
        ranges.push(format!("bytes={at}-{}", at + size as usize - 1));
        at += size as usize;
    }
    for range in ranges {
        // Every request goes to the MPD's URL first: a 302 is not remembered.
        expected.push(("/media/od.mp4".to_owned(), Some(range.clone())));
        expected.push(("/real/od.mp4".to_owned(), Some(range)));
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn follows_302_forever_keeps_the_target() {
    let mpd = r#"<MPD type="static" mediaPresentationDuration="PT0.5S"><Period><AdaptationSet>
        <Representation id="r" bandwidth="1000"><SegmentList duration="1" timescale="4">
          <SegmentURL media="a.m4s"/><SegmentURL media="b.m4s"/></SegmentList></Representation>
        </AdaptationSet></Period></MPD>"#;
    let routes = HashMap::from([
        ("/m.mpd".to_owned(), Route::File(mpd.as_bytes().to_vec())),
        ("/a.m4s".to_owned(), Route::Redirect("/x/a.m4s")),
        ("/b.m4s".to_owned(), Route::Redirect("/x/b.m4s")),
        ("/x/a.m4s".to_owned(), Route::File(vec![1; 100])),
        ("/x/b.m4s".to_owned(), Route::File(vec![2; 100])),
    ]);
    let (addr, log) = origin(routes, None).await;
    let (code, _) = play(&format!("http://{addr}/m.mpd"), "1", "follows-302-forever").await;
    assert_eq!(code, 0);
    let paths: Vec<String> = log.lock().expect("log").iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/m.mpd", "/a.m4s", "/x/a.m4s", "/x/b.m4s"]);
}

#[tokio::test]
async fn fatal_errors_exit_1() {
    let mpd = r#"<MPD type="static" mediaPresentationDuration="PT1S"><Period><AdaptationSet>
        <Representation id="r" bandwidth="1000"><SegmentTemplate duration="1" media="gone-$Number$.m4s"/></Representation>
        </AdaptationSet></Period></MPD>"#;
    let routes = HashMap::from([("/m.mpd".to_owned(), Route::File(mpd.as_bytes().to_vec()))]);
    let (addr, _log) = origin(routes, None).await;
    let (code, lines) = play(&format!("http://{addr}/nothing.mpd"), "1", "").await;
    assert_eq!(code, 1);
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("error: cannot read the MPD") && l.contains("404")),
        "{lines:#?}"
    );
    let (code, lines) = play(&format!("http://{addr}/m.mpd"), "1", "").await;
    assert_eq!(code, 1);
    assert!(
        lines.last().is_some_and(|l| l.starts_with("error: segment 1") && l.contains("404")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_slow_download_is_abandoned_for_a_lower_representation() {
    // Synthetic segments of @bandwidth x 0.25 s / 8 bytes; the origin is fast for the MPD, the
    // two inits and the first 3 media requests, then 20 kB/s (160 kbit/s): a top segment (10 kB)
    // would take 0.5 s, twice what it plays, and the bottom one fits.
    let mpd = r#"<MPD type="static" mediaPresentationDuration="PT2S"><Period><AdaptationSet contentType="video">
        <SegmentTemplate timescale="1000" duration="250" initialization="i-$Bandwidth$" media="s-$Bandwidth$-$Number$"/>
        <Representation id="lo" bandwidth="40000"/><Representation id="hi" bandwidth="320000"/>
        </AdaptationSet></Period></MPD>"#;
    let mut routes = HashMap::from([("/m.mpd".to_owned(), Route::File(mpd.as_bytes().to_vec()))]);
    for bandwidth in [40000usize, 320000] {
        routes.insert(format!("/i-{bandwidth}"), Route::File(vec![0; 100]));
        for n in 1..=8 {
            routes.insert(format!("/s-{bandwidth}-{n}"), Route::File(vec![n as u8; bandwidth / 32]));
        }
    }
    let (addr, log) = origin_paced(routes, Some(20_000.0), 6).await;
    let (code, lines) = play(&format!("http://{addr}/m.mpd"), "0.5", "").await;
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("abandoned segment") && l.ends_with("asking rep lo")),
        "{lines:#?}"
    );
    let media: Vec<(u32, u32)> = log
        .lock()
        .expect("log")
        .iter()
        .filter_map(|s| s.path.strip_prefix("/s-"))
        .filter_map(|p| p.split_once('-'))
        .map(|(b, n)| (b.parse().expect("bandwidth"), n.parse().expect("number")))
        .collect();
    // Each position once, except the abandoned one: asked at the top, then at the bottom.
    let abandoned: Vec<usize> = (1..media.len()).filter(|&i| media[i].1 == media[i - 1].1).collect();
    assert_eq!(abandoned.len(), 1, "{media:?}");
    let i = abandoned[0];
    assert_eq!((media[i - 1].0, media[i].0), (320000, 40000), "{media:?}");
    let mut positions: Vec<u32> = media.iter().map(|m| m.1).collect();
    positions.dedup();
    assert_eq!(positions, (1..=8).collect::<Vec<_>>(), "{media:?}");
}

/// The CDN setup of docs/dash.md: the MPD at `video.netcinema.test` (a CNAME chain to
/// 127.0.0.9, where nothing listens, then 127.0.0.1), its BaseURLs `gone.test` (NXDOMAIN) then
/// `cdn.netcinema.test` (a CNAME-only answer; its target asked again); one origin on 127.0.0.1
/// serves everything. (origin port, its log, DNS server, names asked of it.)
async fn cdn_lab() -> (u16, Arc<Mutex<Vec<Seen>>>, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mpd = format!(
        r#"<MPD type="static" mediaPresentationDuration="PT0.5S">
          <BaseURL>http://gone.test:{port}/m/</BaseURL>
          <BaseURL>http://cdn.netcinema.test:{port}/m/</BaseURL>
          <Period><AdaptationSet><Representation id="r" bandwidth="1000"><SegmentList duration="1" timescale="4">
          <SegmentURL media="a.m4s"/><SegmentURL media="b.m4s"/></SegmentList></Representation>
          </AdaptationSet></Period></MPD>"#
    );
    let routes = HashMap::from([
        ("/v.mpd".to_owned(), Route::File(mpd.into_bytes())),
        ("/m/a.m4s".to_owned(), Route::File(vec![1; 100])),
        ("/m/b.m4s".to_owned(), Route::File(vec![2; 100])),
    ]);
    let (_, log) = origin_on(listener, routes, None, 0);
    let (dns, asked) = dns::tests::dns_server(dns::tests::lab_zones()).await;
    (port, log, dns, asked)
}

/// Plays the CDN lab's MPD through its DNS server with `fault`.
async fn play_cdn(port: u16, dns: SocketAddr, fault: &str) -> (i32, Vec<String>) {
    let mpd = format!("http://video.netcinema.test:{port}/v.mpd");
    play_args(&[&mpd, "--buffer", "1", "--dns", &dns.to_string()], fault).await
}

#[tokio::test]
async fn names_resolve_through_dns_with_failover_and_host() {
    let (port, log, dns, asked) = cdn_lab().await;
    let (code, lines) = play_cdn(port, dns, "").await;
    assert_eq!(code, 0, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("failed:") && l.contains("gone.test") && l.contains("no address")),
        "NXDOMAIN: the next BaseURL: {lines:#?}"
    );
    let seen: Vec<(String, Option<String>)> = log.lock().expect("log").iter().map(|s| (s.path.clone(), s.host.clone())).collect();
    let cdn = Some(format!("cdn.netcinema.test:{port}"));
    assert_eq!(
        seen,
        [
            ("/v.mpd".to_owned(), Some(format!("video.netcinema.test:{port}"))),
            ("/m/a.m4s".to_owned(), cdn.clone()),
            ("/m/b.m4s".to_owned(), cdn),
        ],
        "127.0.0.9 refused, 127.0.0.1 answered; Host is the URL's"
    );
    // Each name asked once (kept for its TTL), the CNAME-only answer's target asked again.
    assert_eq!(
        *asked.lock().expect("log"),
        ["video.netcinema.test", "gone.test", "cdn.netcinema.test", "node.kingcdn.test"]
    );
}

#[tokio::test]
async fn dns_faults_change_what_happens() {
    let (port, log, dns, asked) = cdn_lab().await;
    // host-is-address: the same requests, each Host the address it went to.
    let (code, lines) = play_cdn(port, dns, "host-is-address").await;
    assert_eq!(code, 0, "{lines:#?}");
    let hosts: Vec<Option<String>> = std::mem::take(&mut *log.lock().expect("log")).into_iter().map(|s| s.host).collect();
    assert_eq!(hosts, vec![Some(format!("127.0.0.1:{port}")); 3]);
    // first-address-only: 127.0.0.9 refuses and 127.0.0.1 is never tried.
    let (code, lines) = play_cdn(port, dns, "first-address-only").await;
    assert_eq!(code, 1, "{lines:#?}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("error: cannot read the MPD") && l.contains("127.0.0.9")),
        "{lines:#?}"
    );
    // no-cname: the chain's first record is a CNAME, so the name has no address.
    let (code, lines) = play_cdn(port, dns, "no-cname").await;
    assert_eq!(code, 1, "{lines:#?}");
    assert!(lines.last().is_some_and(|l| l.contains("no address")), "{lines:#?}");
    assert!(log.lock().expect("log").is_empty());
    // ignores-dns: the system's resolver does not know the name; the DNS server is never asked.
    asked.lock().expect("log").clear();
    let (code, lines) = play_cdn(port, dns, "ignores-dns").await;
    assert_eq!(code, 1, "{lines:#?}");
    assert!(asked.lock().expect("log").is_empty());
    assert!(log.lock().expect("log").is_empty());
}
