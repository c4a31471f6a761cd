//! Capture decoding: every sample capture in fixtures/captures/ decodes, its transcript is
//! snapshotted, the awkward ones recover what they should, and damaged files fail cleanly.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wirecheck::capture::{self, file, Capture, FileError, Options};

mod common;
use common::pcap::{End, Ftp, Pcap};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/captures")
}

fn decode(name: &str) -> Capture {
    capture::decode_file(&dir().join(name), &Options::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Decodes an in-memory file; damage is an error here (what was decoded before it is dropped).
fn decode_bytes(bytes: Vec<u8>) -> Result<Capture, FileError> {
    let cap = capture::decode(file::from_reader(Box::new(Cursor::new(bytes)))?, &Options::default())?;
    match cap.damage {
        Some(e) => Err(e),
        None => Ok(cap),
    }
}

fn captures() -> Vec<String> {
    common::sample_captures()
}

#[test]
fn every_capture_decodes_and_matches_its_snapshot() {
    let names = captures();
    assert!(names.len() >= 20, "{names:?}");
    for name in names {
        let cap = decode(&name);
        assert!(!cap.conversations.is_empty(), "{name}: no conversation");
        insta::assert_snapshot!(name.trim_end_matches(".pcap").to_string(), cap.text());
    }
}

#[test]
fn every_capture_is_credited() {
    let credits = std::fs::read_to_string(dir().join("CREDITS.md")).unwrap();
    for name in captures() {
        assert!(credits.contains(&format!("| {name} |")), "{name} is missing from CREDITS.md");
    }
}

fn only(cap: &Capture) -> &capture::Conversation {
    assert_eq!(cap.conversations.len(), 1, "{}", cap.text());
    &cap.conversations[0]
}

#[test]
fn out_of_order_segments_give_both_exchanges_in_order() {
    let cap = decode("http-tcp-out-of-order.pcap");
    let t = only(&cap).transcript();
    let at = |s: &str| t.find(s).unwrap_or_else(|| panic!("{s} not in\n{t}"));
    let (get1, r401) = (at("C→S GET /Security/Digest/"), at("S→C HTTP/1.1 401 Unauthorized"));
    let get2 = get1 + 1 + t[get1 + 1..].find("C→S GET /Security/Digest/").expect("a second GET");
    let r200 = at("S→C HTTP/1.1 200 OK");
    assert!(get1 < r401 && r401 < get2 && get2 < r200, "{t}");
    assert!(!t.contains("gap:") && !t.contains("undecodable"), "{t}");
}

#[test]
fn reordered_handshake_still_opens_one_connection() {
    let cap = decode("http-tcp-handshake-reorder.pcap");
    let c = only(&cap);
    assert_eq!(c.client.port(), 59856);
    assert_eq!(c.server.port(), 80);
    let t = c.transcript();
    assert!(t.starts_with("c          open tcp"), "{t}");
    assert!(t.contains("C→S GET /download/CHANGES.bro-aux.txt HTTP/1.1"), "{t}");
    assert!(t.contains("body (Content-Length): 4705 bytes"), "{t}");
}

#[test]
fn fragmented_request_is_reassembled() {
    let cap = decode("http-ipv4-fragmented-request.pcap");
    let t = only(&cap).transcript();
    assert!(t.contains("C→S GET /convert_data.js?partner_id=29 HTTP/1.1"), "{t}");
    assert!(t.contains("If-None-Match:"), "the last fragment's header is there too:\n{t}");
    assert!(cap.warnings.is_empty(), "{:?}", cap.warnings);
}

#[test]
fn linux_sll_gives_dns_and_http() {
    let cap = decode("http-sll-with-dns.pcap");
    let dns: Vec<_> = cap.conversations.iter().filter(|c| c.protocol == "dns").collect();
    assert!(dns.len() >= 4, "{}", cap.text());
    assert!(dns[0].transcript().contains("daisy.ubuntu.com. 600 IN A 162.213.33.164"));
    let http: Vec<_> = cap.conversations.iter().filter(|c| c.protocol == "http").collect();
    assert_eq!(http.len(), 1);
    let t = http[0].transcript();
    assert!(t.contains("301 Moved Permanently") && t.contains("HTTP/1.1 200 OK"), "{t}");
}

/// A NetBIOS name query (RFC 1002 §4.2.12) for `WORKGROUP<1d>`: a DNS-like header, the name in
/// first-level encoding, type NB.
fn nbns_query() -> Vec<u8> {
    let mut name = *b"WORKGROUP      \x1d";
    name[15] = 0x1d;
    let mut p = vec![0x81, 0x02, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 32];
    p.extend(name.iter().flat_map(|b| [b'A' + (b >> 4), b'A' + (b & 0x0f)]));
    p.extend([0, 0, 0x20, 0, 1]);
    p
}

#[test]
fn netbios_name_service_is_not_decoded_as_dns() {
    let mut p = Pcap::new();
    p.udp(0.0, "10.0.0.5:137", "10.0.0.255:137", &nbns_query());
    p.udp(1.0, "10.0.0.6:54000", "10.0.0.7:137", &nbns_query());
    let cap = decode_bytes(p.bytes()).unwrap();
    assert_eq!(cap.conversations.len(), 2, "{}", cap.text());
    for c in &cap.conversations {
        assert_ne!(c.protocol, "dns", "{}", cap.text());
        assert!(!c.transcript().contains("QUESTION"), "{}", c.transcript());
    }
}

#[test]
fn tracker_announce_is_read_with_its_gzip_answer_decoded() {
    let cap = decode("bittorrent-tracker-announce.pcap");
    let c = only(&cap);
    assert_eq!(c.protocol, "bt-tracker", "port 6969 is the tracker's");
    let t = c.transcript();
    assert!(
        t.contains("C→S announce info_hash e4be9e4db876e3e3179778b03e906297be5c8dbe peer_id \"-DE13F0-VnpZRF8ZP9iv\" port 63448"),
        "{t}"
    );
    // The body is 397 bytes of gzip; inflated, it is the bencoded answer with 50 compact peers.
    let answer = t.lines().find(|l| l.contains("S→C 200 announce:")).unwrap_or_else(|| panic!("{t}"));
    assert!(answer.contains("interval 1800, complete 4499, incomplete 109"), "{answer}");
    let peers = answer.split(", peers ").nth(1).unwrap_or_default();
    assert_eq!(peers.split(' ').count(), 50, "{answer}");
    assert!(t.contains("Content-Encoding: gzip"), "{t}");
}

#[test]
fn linux_sll2_request_without_response() {
    let cap = decode("http-sll2-get-only.pcap");
    let c = only(&cap);
    assert_eq!(c.packets, 5);
    assert!(c.transcript().contains("C→S GET /testing HTTP/1.1"), "{}", c.transcript());
    assert!(!c.transcript().contains("S→C"), "{}", c.transcript());
}

#[test]
fn h2c_prior_knowledge_decodes_frame_by_frame_with_headers() {
    let cap = decode("http2-h2c-continuation-null.pcap");
    let c = only(&cap);
    assert_eq!(c.server.port(), 8080);
    assert_eq!(c.packets, 30);
    // The preface decides, not port 8080 (HTTP/1's).
    assert_eq!(c.protocol, "http2");
    let t = c.transcript();
    for line in [
        "C→S PREFACE PRI * HTTP/2.0",
        "C→S HEADERS stream=1 header block continues (35 bytes so far)",
        "C→S CONTINUATION stream=1 [END_HEADERS] :method: GET, :path: /tata, :scheme: http, :authority: 127.0.0.1:8080",
        "S→C HEADERS stream=1 [END_HEADERS] :status: 200",
        "S→C DATA stream=1 [END_STREAM] 13 bytes \"Hello, /tata\\n\"",
        "S→C SETTINGS [ACK]",
    ] {
        assert!(t.contains(line), "{line} not in\n{t}");
    }
    assert!(!t.contains("undecodable") && !t.contains("incomplete"), "{t}");
    let checked = capture::check::check(&cap, capture::check::Side::Server);
    assert!(!checked[0].failed(), "{:?}", checked[0].violations);
}

#[test]
fn h2c_upgrade_hands_over_to_http2_after_the_101() {
    let cap = decode_bytes(common::pcap::h2c_upgrade(true).bytes()).unwrap();
    let c = only(&cap);
    assert_eq!(c.protocol, "http");
    let t = c.transcript();
    insta::assert_snapshot!("h2c-upgrade", t);
    let at = |s: &str| t.find(s).unwrap_or_else(|| panic!("{s} not in\n{t}"));
    assert!(at("S→C HTTP/1.1 101 Switching Protocols") < at("S→C SETTINGS MAX_CONCURRENT_STREAMS=100"));
    assert!(at("C→S PREFACE PRI * HTTP/2.0") < at("S→C HEADERS stream=1 [END_HEADERS] :status: 200"));
    assert!(!t.contains("undecodable"), "{t}");
    let checked = capture::check::check(&cap, capture::check::Side::Both);
    assert!(checked[0].violations.is_empty(), "{:?}", checked[0].violations);
    // After the hand-over HTTP/2's rules judge: its first frame must be SETTINGS.
    let cap = decode_bytes(common::pcap::h2c_upgrade(false).bytes()).unwrap();
    let checked = capture::check::check(&cap, capture::check::Side::Server);
    let rules: Vec<&str> = checked[0].violations.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(rules, ["RFC 9113 §3.4"], "{:?}", checked[0].violations);
}

#[test]
fn websocket_upgrade_hands_over_to_websocket_frames_after_the_101() {
    let cap = decode_bytes(common::pcap::websocket_upgrade(true).bytes()).unwrap();
    let c = only(&cap);
    assert_eq!(c.protocol, "http");
    let t = c.transcript();
    insta::assert_snapshot!("websocket-upgrade", t);
    let at = |s: &str| t.find(s).unwrap_or_else(|| panic!("{s} not in\n{t}"));
    assert!(at("S→C HTTP/1.1 101 Switching Protocols") < at("C→S text \"Hello\" (masked)"));
    assert!(at("S→C text \"Hel\" (not final)") < at("S→C ping \"are you there\""));
    assert!(at("S→C continuation \"lo back\"") < at("C→S close 1000 \"bye\" (masked)"));
    assert!(!t.contains("undecodable"), "{t}");
    let checked = capture::check::check(&cap, capture::check::Side::Both);
    assert!(checked[0].violations.is_empty(), "{:?}", checked[0].violations);
    // A client that does not mask its frames breaks RFC 6455 §5.1, once per frame.
    let cap = decode_bytes(common::pcap::websocket_upgrade(false).bytes()).unwrap();
    let checked = capture::check::check(&cap, capture::check::Side::Client);
    let rules: Vec<&str> = checked[0].violations.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(rules, ["RFC 6455 §5.1"; 3], "{:?}", checked[0].violations);
}

#[test]
fn bittorrent_handshake_is_framed_as_the_peer_wire_on_any_port() {
    let cap = decode("bittorrent-peer-handshake.pcap");
    assert_eq!(cap.conversations.len(), 2, "{}", cap.text());
    let peer = &cap.conversations[0];
    // Port 26001 says nothing: the handshake's first 20 bytes decide.
    assert_eq!((peer.server.port(), peer.protocol.as_str()), (26001, "bittorrent"));
    let t = peer.transcript();
    assert!(
        t.contains("C→S handshake info_hash aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa peer_id \"\\xbb\\xbb")
            && t.contains("reserved 0000000000100005"),
        "{t}"
    );
    // The other connection is BitTorrent Sync's own handshake ("BSYNC\0"), not the peer wire.
    assert_ne!(cap.conversations[1].protocol, "bittorrent", "{}", cap.text());
    let checked = capture::check::check(&cap, capture::check::Side::Both);
    assert!(checked[0].violations.is_empty(), "{:?}", checked[0].violations);
}

/// A peer wire conversation written message by message, split across segments.
fn peer_wire(server_hash: u8) -> Pcap {
    use wirecheck::proto::bittorrent::steps::wire;
    use wirecheck::proto::bittorrent::{Block, PeerMessage};
    let hs = |h: u8, id: &[u8; 20]| PeerMessage::Handshake {
        reserved: [0; 8],
        info_hash: [h; 20],
        peer_id: *id,
    };
    let block = Block {
        index: 0,
        begin: 0,
        length: 4,
    };
    let mut pcap = Pcap::new();
    let c = pcap.connect(0.0, "10.0.0.1:41000", "10.0.0.2:51413");
    let client = [wire(&hs(0x11, b"-WC0001-000000000001")), wire(&PeerMessage::Interested)].concat();
    pcap.send(1.0, c, End::Client, &client[..30]);
    pcap.send(1.5, c, End::Client, &client[30..]);
    let server = [
        wire(&hs(server_hash, b"-XX0001-000000000002")),
        wire(&PeerMessage::Bitfield(vec![0x80])),
        wire(&PeerMessage::Unchoke),
    ]
    .concat();
    pcap.send(2.0, c, End::Server, &server);
    pcap.send(3.0, c, End::Client, &wire(&PeerMessage::Request(block)));
    let piece = |index: u32| PeerMessage::Piece {
        index,
        begin: 0,
        data: b"abcd".to_vec(),
    };
    let answer = [wire(&piece(0)), wire(&piece(1))].concat();
    pcap.send(4.0, c, End::Server, &answer[..7]);
    pcap.send(4.5, c, End::Server, &answer[7..]);
    pcap.close(5.0, c, End::Client);
    pcap.close(5.5, c, End::Server);
    pcap
}

#[test]
fn bittorrent_conversation_is_decoded_message_by_message_and_judged() {
    let cap = decode_bytes(peer_wire(0x11).bytes()).unwrap();
    let c = only(&cap);
    assert_eq!(c.protocol, "bittorrent");
    let t = c.transcript();
    let lines: Vec<&str> = t
        .lines()
        .filter(|l| l.contains('→'))
        .map(|l| l.trim_start_matches(|ch: char| ch != 'C' && ch != 'S'))
        .collect();
    assert_eq!(
        lines,
        [
            "C→S handshake info_hash 1111111111111111111111111111111111111111 peer_id \"-WC0001-000000000001\" reserved 0000000000000000",
            "C→S interested",
            "S→C handshake info_hash 1111111111111111111111111111111111111111 peer_id \"-XX0001-000000000002\" reserved 0000000000000000",
            "S→C bitfield 1 byte 10000000",
            "S→C unchoke",
            "C→S request 0 begin 0 len 4",
            "S→C piece 0 begin 0 len 4 (sha256 88d4266f…)",
            "S→C piece 1 begin 0 len 4 (sha256 88d4266f…)",
            "C→S close",
            "S→C close",
        ],
        "{t}"
    );
    let checked = capture::check::check(&cap, capture::check::Side::Both);
    use wirecheck::proto::Level;
    let found: Vec<(Level, &str)> = checked[0].violations.iter().map(|v| (v.level, v.rule.as_str())).collect();
    assert_eq!(found, [(Level::Should, "BEP 3")], "{:?}", checked[0].violations);
    assert!(checked[0].violations[0].text.contains("piece 1 begin 0 len 4 answers no request"));
    // A server that answers with another torrent's info-hash breaks BEP 3's MUST.
    let cap = decode_bytes(peer_wire(0x22).bytes()).unwrap();
    let checked = capture::check::check(&cap, capture::check::Side::Server);
    assert!(checked[0].failed(), "{:?}", checked[0].violations);
    assert!(
        checked[0].violations[0].text.contains("sever the connection"),
        "{:?}",
        checked[0].violations
    );
}

#[test]
fn h2c_with_port_override_is_raw() {
    let opts = Options::from_args(&["8080=datagram".into()]).unwrap();
    let cap = capture::decode_file(&dir().join("http2-h2c-continuation-null.pcap"), &opts).unwrap();
    assert_eq!(only(&cap).protocol, "datagram");
    assert!(only(&cap).transcript().contains("PRI * HTTP/2.0"));
    assert!(Options::from_args(&["8080=nope".into()]).is_err());
    assert!(Options::from_args(&["x=http".into()]).is_err());
}

#[test]
fn null_loopback_ipv6() {
    let cap = decode("http-null-loopback-ipv6.pcap");
    let c = only(&cap);
    assert_eq!(c.client.to_string(), "[::1]:55717");
    assert_eq!(c.server.to_string(), "[::1]:8000");
    let t = c.transcript();
    assert!(t.contains("C→S GET / HTTP/1.1") && t.contains("S→C HTTP/1.0 200 OK"), "{t}");
}

#[test]
fn raw_ip_ipv6_keepalive_has_three_exchanges() {
    let cap = decode("http-rawip-ipv6-keepalive.pcap");
    let t = only(&cap).transcript();
    for path in ["style1.css", "main.html", "header.css"] {
        assert!(t.contains(&format!("C→S GET /{path}")) || t.contains(path), "{path} missing:\n{t}");
    }
    assert_eq!(t.matches("S→C HTTP/1.1 200 OK").count(), 3, "{t}");
}

#[test]
fn three_stacked_vlan_tags() {
    let cap = decode("http-vlan-qinqinq.pcap");
    let t = only(&cap).transcript();
    assert!(
        t.contains("C→S GET /download/CHANGES.bro-aux.txt") && t.contains("S→C HTTP/1.1 200 OK"),
        "{t}"
    );
}

#[test]
fn identical_addresses_on_two_vlans_are_two_conversations() {
    let mut pcap = Pcap::new();
    let a = pcap.connect_on(0.0, "10.0.0.1:40000", "10.0.0.2:80", Some(10));
    let b = pcap.connect_on(0.5, "10.0.0.1:40000", "10.0.0.2:80", Some(20));
    pcap.send(1.0, a, End::Client, b"GET /ten HTTP/1.1\r\nHost: a\r\n\r\n");
    pcap.send(1.5, b, End::Client, b"GET /twenty HTTP/1.1\r\nHost: a\r\n\r\n");
    pcap.send(2.0, a, End::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    pcap.send(2.5, b, End::Server, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    let cap = decode_bytes(pcap.bytes()).unwrap();
    assert_eq!(cap.conversations.len(), 2, "{}", cap.text());
    let (ten, twenty) = (&cap.conversations[0], &cap.conversations[1]);
    assert!(ten.header().ends_with(", vlan 10"), "{}", ten.header());
    assert!(twenty.header().ends_with(", vlan 20"), "{}", twenty.header());
    let (t10, t20) = (ten.transcript(), twenty.transcript());
    assert!(
        t10.contains("GET /ten") && t10.contains("200 OK") && !t10.contains("twenty"),
        "{t10}"
    );
    assert!(t20.contains("GET /twenty") && t20.contains("404") && !t20.contains("/ten"), "{t20}");
}

#[test]
fn nflog_payload_attributes_are_read() {
    let mut pcap = Pcap::new();
    let c = pcap.connect(0.0, "10.0.0.1:40000", "10.0.0.2:80");
    pcap.send(1.0, c, End::Client, b"GET /logged HTTP/1.1\r\nHost: a\r\n\r\n");
    pcap.send(2.0, c, End::Server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    pcap.close(3.0, c, End::Client);
    pcap.close(3.0, c, End::Server);
    let nflog = decode_bytes(pcap.nflog_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nflog.text(), decode_bytes(pcap.bytes()).unwrap().text());
    assert!(nflog.text().contains("C→S GET /logged HTTP/1.1"), "{}", nflog.text());
}

/// A DNS message for `example.test. A`: the query, or a response with `answers` A records.
fn dns(answers: u16) -> Vec<u8> {
    let flags: u16 = if answers > 0 { 0x8180 } else { 0x0100 };
    let mut m = vec![0x12, 0x34];
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&answers.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(b"\x07example\x04test\x00\x00\x01\x00\x01");
    for i in 0..answers {
        // The name is a pointer to the question's; TTL 300; 4 bytes of address.
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, (i >> 8) as u8 + 2, i as u8]);
    }
    m
}

#[test]
fn ipv6_fragments_are_reassembled() {
    let (client, server) = ("[2001:db8::1]:53000", "[2001:db8::53]:53");
    let mut pcap = Pcap::new();
    pcap.udp6(0.0, client, server, &dns(0));
    // 100 answers: 1630 bytes of UDP payload, in four fragments arriving out of order, one twice.
    pcap.udp6_fragmented(1.0, server, client, &dns(100), 512, &[2, 0, 0, 3, 1]);
    pcap.udp6(2.0, client, server, &dns(0));
    pcap.udp6_fragmented(3.0, server, client, &dns(3), 512, &[]);
    let cap = decode_bytes(pcap.bytes()).unwrap();
    let t = only(&cap).transcript();
    assert!(!t.contains("undecodable") && !t.contains("datagram"), "{t}");
    assert!(t.contains("192.0.2.99") && t.contains("192.0.2.2"), "{t}");
    assert!(cap.warnings.is_empty(), "{:?}", cap.warnings);

    // Fragments that overlap with different bytes: the datagram is discarded (RFC 8200 §4.5).
    let mut pcap = Pcap::new();
    pcap.udp6(0.0, client, server, &dns(0));
    pcap.udp6_fragmented(1.0, server, client, &dns(100), 512, &[0, 1, 2]);
    pcap.udp6_fragmented(1.5, server, client, &dns(99), 256, &[3, 6]);
    let cap = decode_bytes(pcap.bytes()).unwrap();
    assert!(!only(&cap).transcript().contains("192.0.2."), "{}", cap.text());
    assert!(cap.warnings.iter().any(|w| w.contains("overlapping")), "{:?}", cap.warnings);
}

#[test]
fn snaplen_68_reports_truncation_and_cuts() {
    let cap = decode("smtp-snaplen68-truncated.pcap");
    let c = only(&cap);
    assert!(c.truncated);
    assert!(c.header().ends_with("truncated by the capture"), "{}", c.header());
    let t = c.transcript();
    assert!(t.contains("note: some packets were cut by the capture's snaplen"), "{t}");
    assert!(t.contains("S→C cut by the capture: 84 bytes not captured"), "{t}");
    assert!(!t.contains("undecodable"), "{t}");
}

/// Rewrites a pcap as a big-endian, nanosecond pcap.
fn to_nanosecond_big_endian(bytes: &[u8]) -> Vec<u8> {
    use pcap_file::pcap::{PcapHeader, PcapReader, PcapWriter};
    let mut rd = PcapReader::new(bytes).unwrap();
    let header = PcapHeader {
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        endianness: pcap_file::Endianness::Big,
        ..rd.header()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    while let Some(p) = rd.next_packet() {
        w.write_packet(&p.unwrap()).unwrap();
    }
    w.into_writer()
}

#[test]
fn nanosecond_big_endian_pcap_reads_the_same() {
    let bytes = std::fs::read(dir().join("http-vlan-qinqinq.pcap")).unwrap();
    let converted = to_nanosecond_big_endian(&bytes);
    assert_ne!(converted[..4], bytes[..4]);
    assert_eq!(decode_bytes(converted).unwrap().text(), decode("http-vlan-qinqinq.pcap").text());
}

#[test]
fn pcapng_with_two_link_types() {
    use pcap_file::pcap::PcapReader;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let files = ["http-null-loopback-ipv6.pcap", "http-sll2-get-only.pcap"];
    for name in files {
        let bytes = std::fs::read(dir().join(name)).unwrap();
        let rd = PcapReader::new(&bytes[..]).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock::new(rd.header().datalink, 65535))
            .unwrap();
    }
    for (iface, name) in files.iter().enumerate() {
        let bytes = std::fs::read(dir().join(name)).unwrap();
        let mut rd = PcapReader::new(&bytes[..]).unwrap();
        while let Some(p) = rd.next_packet() {
            let p = p.unwrap();
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: iface as u32,
                timestamp: p.timestamp,
                original_len: p.orig_len,
                data: p.data,
                options: vec![],
            })
            .unwrap();
        }
    }
    let cap = decode_bytes(w.into_inner()).unwrap();
    // The second file's packets come from interface 1, which their headers say.
    let second: String = decode(files[1])
        .conversations
        .iter()
        .map(|c| format!("== {}, interface 1\n{}", c.header(), c.transcript()))
        .collect();
    assert_eq!(cap.text(), decode(files[0]).text() + &second);
}

fn assert_clean_error(r: Result<Capture, FileError>, what: &str) {
    if let Err(e) = r {
        let msg = e.to_string();
        assert!(
            matches!(e, FileError::Packet { number, .. } if number >= 1) || matches!(e, FileError::Open(_)),
            "{what}: {msg}"
        );
        assert!(!msg.is_empty());
    }
}

#[test]
fn truncated_files_name_the_packet_and_never_panic() {
    let bytes = std::fs::read(dir().join("smtp-pipelining-null.pcap")).unwrap();
    // Inside the first record's data: packet 1.
    let e = decode_bytes(bytes[..24 + 16 + 10].to_vec()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "packet 1 (byte 24): the file ends inside this packet (truncated file), or its length field is corrupt"
    );
    // Inside a later record's header.
    let e = decode_bytes(bytes[..bytes.len() - 3].to_vec()).unwrap_err();
    assert!(matches!(e, FileError::Packet { number: 18, .. }), "{e}");
    assert!(decode_bytes(bytes[..10].to_vec()).is_err());
    for name in [
        "http-tcp-out-of-order.pcap",
        "http-ipv4-fragmented-request.pcap",
        "dns-udp-many-rrtypes.pcap",
    ] {
        let bytes = std::fs::read(dir().join(name)).unwrap();
        for cut in (0..bytes.len()).step_by(37) {
            assert_clean_error(decode_bytes(bytes[..cut].to_vec()), &format!("{name} cut at {cut}"));
        }
    }
}

#[test]
fn corrupt_bytes_give_errors_not_panics() {
    let bytes = std::fs::read(dir().join("http-tcp-out-of-order.pcap")).unwrap();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for round in 0..400 {
        let mut b = bytes.clone();
        for _ in 0..(1 + round % 8) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let at = 24 + (s as usize % (b.len() - 24));
            b[at] = (s >> 32) as u8;
        }
        assert_clean_error(decode_bytes(b), &format!("round {round}"));
    }
    // A malformed IPv4 header (IHL 1) in a packet the capture did not cut.
    let mut b = bytes.clone();
    b[24 + 16 + 14] = 0x41;
    let e = decode_bytes(b).unwrap_err();
    assert!(
        e.to_string().starts_with("packet 1 (byte 24): truncated or malformed IPv4 header"),
        "{e}"
    );
}

/// (command, bytes) of each data connection, in the capture's order; panics on one not attributed.
fn transfers(cap: &Capture) -> Vec<(String, u64, String)> {
    let control = cap
        .conversations
        .iter()
        .find(|c| c.protocol == "ftp")
        .expect("a control conversation");
    cap.conversations
        .iter()
        .filter(|c| c.number != control.number)
        .map(|c| {
            let of = c
                .data_of
                .as_ref()
                .unwrap_or_else(|| panic!("{} is not attributed:\n{}", c.header(), cap.text()));
            assert_eq!(of.control, control.number);
            assert_eq!(c.protocol, "ftp-data", "{}", c.header());
            let bytes = c
                .dialogue
                .events
                .iter()
                .map(|e| match &e.kind {
                    wirecheck::dialogue::EventKind::Data { bytes, .. } => bytes.len() as u64,
                    _ => 0,
                })
                .sum();
            (of.command.clone().unwrap_or_default(), bytes, of.announced.clone())
        })
        .collect()
}

#[test]
fn ftp_passive_download_ties_every_data_connection_to_its_command() {
    let cap = decode("ftp-passive-download.pcap");
    let got: Vec<(String, u64)> = transfers(&cap).into_iter().map(|(c, b, _)| (c, b)).collect();
    let want = [("NLST", 25), ("RETR index.html", 39), ("NLST", 25)];
    assert_eq!(got, want.map(|(c, b)| (c.to_string(), b)));
    let t = cap.text();
    assert!(
        t.contains("RETR index.html -> data 172.23.0.2:21008 <- 172.23.0.3:46274, 39 bytes, sha256 "),
        "{t}"
    );
}

#[test]
fn ftp_passive_and_active_transfers_are_each_tied_to_their_command() {
    let cap = decode("ftp-mixed-pasv-port.pcap");
    let got = transfers(&cap);
    let want = [
        ("LIST", 342, "227 Entering Passive Mode (199,233,217,249,221,90)"),
        ("RETR robots.txt", 77, "227 Entering Passive Mode (199,233,217,249,221,91)"),
        ("LIST", 342, "PORT 141,142,220,235,131,46"),
        ("RETR robots.txt", 77, "PORT 141,142,220,235,147,203"),
    ];
    assert_eq!(got, want.map(|(c, b, a)| (c.to_string(), b, a.to_string())));
    // In active mode the server connects to the address the client's PORT gave.
    let active = cap
        .conversations
        .iter()
        .find(|c| c.server.port() == 147 * 256 + 203)
        .expect("the active RETR");
    assert_eq!(active.client.ip().to_string(), "199.233.217.249");
}

/// A PASV download of `ROBOTS` (77 bytes) whose data connection ends while the control connection
/// is still open, then one whose control connection ends first; noise between them lets the
/// streaming decoder hand each over as soon as it is over.
fn streamed_sessions() -> Pcap {
    const ROBOTS: &[u8] = b"User-agent: *\nDisallow: *.tgz\nDisallow: *.gz\nDisallow: *.tbz\nDisallow: *.bz2\n";
    let mut pcap = Pcap::new();
    for (i, control_first) in [false, true].into_iter().enumerate() {
        let t0 = i as f64 * 1000.0;
        let conn = pcap.connect(t0, &format!("10.0.0.1:{}", 40000 + i), "10.0.0.2:21");
        let mut ftp = Ftp { pcap: &mut pcap, conn };
        ftp.reply(t0 + 1.0, "220 ready");
        ftp.cmd(t0 + 2.0, "PASV");
        ftp.reply(t0 + 3.0, "227 Entering Passive Mode (10,0,0,2,117,49).");
        let data = ftp.pcap.connect(t0 + 4.0, &format!("10.0.0.1:{}", 41000 + i), "10.0.0.2:30001");
        ftp.cmd(t0 + 5.0, "RETR robots.txt");
        ftp.reply(t0 + 6.0, "150 Opening");
        ftp.pcap.send(t0 + 7.0, data, End::Server, ROBOTS);
        let close_data = |p: &mut Pcap, t: f64| {
            p.close(t, data, End::Server);
            p.close(t + 0.5, data, End::Client);
        };
        if !control_first {
            close_data(ftp.pcap, t0 + 8.0);
            ftp.pcap.noise(t0 + 10.0, 1100);
        }
        ftp.reply(t0 + 300.0, "226 Transfer complete.");
        ftp.cmd(t0 + 301.0, "QUIT");
        ftp.reply(t0 + 302.0, "221 bye");
        pcap.close(t0 + 303.0, conn, End::Server);
        pcap.close(t0 + 303.5, conn, End::Client);
        if control_first {
            pcap.noise(t0 + 310.0, 1100);
            close_data(&mut pcap, t0 + 400.0);
        }
    }
    pcap
}

#[test]
fn streaming_decode_ties_data_connections_handed_over_before_or_after_their_control() {
    let bytes = streamed_sessions().bytes();
    let mut order = Vec::new();
    let packets = file::from_reader(Box::new(Cursor::new(bytes.clone()))).unwrap();
    capture::decode_each(packets, &Options::default(), |c| {
        order.push((c.number, c.data_of.clone().and_then(|of| of.command.map(|cmd| (of.control, cmd)))))
    })
    .unwrap();
    let data: Vec<_> = order.iter().filter(|(_, of)| of.is_some()).collect();
    assert_eq!(
        data,
        [
            &(2, Some((1, "RETR robots.txt".to_string()))),
            &(5, Some((4, "RETR robots.txt".to_string())))
        ],
        "{order:?}"
    );
    let pos = |n: usize| order.iter().position(|(m, _)| *m == n).unwrap();
    assert!(
        pos(2) < pos(1),
        "the first data connection is handed over before its control: {order:?}"
    );
    assert!(pos(4) < pos(5), "the second after its control: {order:?}");
    let cap = decode_bytes(bytes).unwrap();
    for n in [2, 5] {
        let t = cap.conversations.iter().find(|c| c.number == n).unwrap().transcript();
        assert!(t.contains("RETR robots.txt -> data 10.0.0.2:30001 <- 10.0.0.1:4100"), "{t}");
        assert!(t.contains(", 77 bytes, sha256 "), "{t}");
    }
}

/// pcapng timestamps are in the units each interface declares (`if_tsresol`; microseconds when it
/// says nothing) and pcap ones in the file's: the same packets captured by dumpcap and rewritten by
/// editcap read the same times as capinfos gives for them (fixtures/captures/CREDITS.md).
#[test]
fn timestamps_follow_each_format_s_units() {
    // 2026-12-06 21:13:03 UTC.
    const FIRST: u64 = 1_796_591_583;
    let times = |name: &str| -> Vec<Duration> {
        file::open(&dir().join("formats").join(name))
            .unwrap()
            .map(|p| p.unwrap().ts)
            .collect()
    };
    let ns = times("http-dumpcap-ns.pcapng");
    assert_eq!(ns.len(), 24);
    assert_eq!(ns[0], Duration::new(FIRST, 788_788_581));
    assert_eq!(ns[23] - ns[0], Duration::from_nanos(14_423_369));
    assert_eq!(times("http-dumpcap-ns.pcap"), ns);
    let us = times("http-dumpcap-us.pcapng");
    assert_eq!(us[0], Duration::new(FIRST, 788_788_000));
    assert_eq!(us[23] - us[0], Duration::from_micros(14_423));
    for (a, b) in us.iter().zip(&ns) {
        assert!(*b - *a < Duration::from_micros(1), "{a:?} vs {b:?}");
    }
}

/// Public captures of STARTTLS (zeek's traces): the plaintext part is the mail protocol's, every
/// byte after the go-ahead is TLS, shown as records, never framed as commands or judged.
#[test]
fn starttls_captures_show_the_plaintext_part_then_tls_records() {
    let cases = [
        ("smtp-starttls-tls12.pcap", "C→S \"STARTTLS\"", "S→C 220 2.0.0 Ready to start TLS"),
        ("pop3-stls-tls12.pcap", "C→S \"STLS\"", "S→C +OK Begin TLS negotiation now"),
        ("imap-starttls-tls12.pcap", "C→S . STARTTLS", "S→C . OK Begin TLS negotiation now"),
    ];
    for (name, command, go_ahead) in cases {
        let cap = decode(name);
        let t = only(&cap).transcript();
        let (before, after) = t.split_once(go_ahead).unwrap_or_else(|| panic!("{name}:\n{t}"));
        assert!(before.contains(command), "{name}:\n{t}");
        for line in after.lines().skip(1) {
            let rest = line.get(7..).unwrap_or_default();
            let text = ["C→S ", "S→C ", "    "].iter().find_map(|a| rest.strip_prefix(a)).unwrap_or(rest);
            let ok = text.starts_with("TLS ") || matches!(text, "close" | "reset") || line.starts_with("             ");
            assert!(ok, "{name}: not TLS after the go-ahead: {line}\n{t}");
        }
        for part in [
            "TLS ClientHello: version TLS 1.2",
            "TLS ServerHello: TLS 1.2, TLS_",
            "TLS Certificate: ",
            "TLS application data, ",
        ] {
            assert!(after.contains(part), "{name}: no {part}\n{t}");
        }
        assert!(!t.contains("undecodable"), "{name}:\n{t}");
        let checked = capture::check::check(&cap, capture::check::Side::Both);
        assert!(
            checked
                .iter()
                .all(|c| c.violations.iter().all(|v| v.level != wirecheck::proto::Level::Must)),
            "{name}: {checked:?}"
        );
    }
}

/// A public TLS 1.2 capture (an HTTPS request to heise.de, zeek's trace) decrypted with its key
/// log: the HTTP inside as if in clear, judged by HTTP's rules; without the key, records by size.
#[test]
fn a_public_tls12_capture_decrypts_with_its_key_log() {
    let text = std::fs::read_to_string(dir().join("tls12-https-decryption.keylog")).unwrap();
    let opts = Options {
        keylog: Some(std::sync::Arc::new(wirecheck::proto::KeyLog::parse(&text).unwrap())),
        ..Options::default()
    };
    let cap = capture::decode_file(&dir().join("tls12-https-decryption.pcap"), &opts).unwrap();
    let t = only(&cap).transcript();
    for part in [
        "TLS ClientHello: version TLS 1.2; SNI heise.de; ALPN [h2, http/1.1]; supported TLS 1.3, TLS 1.2; 1 cipher suites",
        "TLS ServerHello: TLS 1.2, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, ALPN http/1.1",
        "TLS Certificate: CN=heise.de (2 certificates)",
        "C→S TLS Finished",
        "C→S GET / HTTP/1.1",
        "S→C HTTP/1.1 301 Moved Permanently",
        "Location: https://www.heise.de/",
        "C→S TLS alert: warning close_notify",
    ] {
        assert!(t.contains(part), "no {part}:\n{t}");
    }
    let checked = capture::check::check(&cap, capture::check::Side::Both);
    assert!(checked[0].messages > 12 && !checked[0].failed(), "{checked:?}");
    let plain = decode("tls12-https-decryption.pcap");
    assert!(!only(&plain).transcript().contains("GET /"));
}
