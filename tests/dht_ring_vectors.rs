//! The examples of `docs/dht-ring.md` are test vectors: each is a JSON line between the
//! `vectors:begin` and `vectors:end` markers. Every message in them must read as the lab's
//! message without a finding (what the harness's codec requires of a node), and every vector must
//! be one the reference node replays (`reference-servers`' dht_ring tests send each `recv` to it
//! and compare what it sends with `send`).

use wirecheck::proto::{self, Direction, Frame, Level};

fn vectors() -> Vec<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dht-ring.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let begin = text.find("<!-- vectors:begin").expect("the vectors' begin marker");
    let end = text.find("<!-- vectors:end -->").expect("the vectors' end marker");
    text[begin..end]
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn every_vector_message_is_a_lab_message_without_findings() {
    let ring = proto::find("dht-ring").unwrap();
    let all = vectors();
    assert!(all.len() >= 10, "{} vectors", all.len());
    for v in &all {
        let name = v["vector"].as_str().unwrap();
        let mut messages = vec![v["recv"].clone()];
        for s in v["send"].as_array().unwrap() {
            assert!(
                s["to"].as_str().is_some_and(|t| t.parse::<std::net::SocketAddr>().is_ok()),
                "{name}: to"
            );
            messages.push(s["msg"].clone());
        }
        for m in messages {
            let bytes = serde_json::to_vec(&m).unwrap();
            let Frame::Message(msg, used) = ring.codec(Direction::ClientToServer).decode(&bytes, false).unwrap() else {
                panic!("{name}: a datagram frames whole")
            };
            assert_eq!(used, bytes.len());
            let must: Vec<_> = msg.findings.iter().filter(|f| f.level == Level::Must).collect();
            assert!(must.is_empty(), "{name}: {} has findings {must:?}", msg.summary);
        }
    }
}
