//! `--dns HOST:PORT`: the player's own stub resolver (docs/dash.md "CDNs"; K&R §2.6.3). A host
//! name is asked of that one server over UDP: type A, class IN, a random id, RD set (RFC 1035
//! §4.1), and only a reply with the same id and question is read (RFC 5452 §9.1). The answer's
//! CNAME chain is followed to the A records of its end (RFC 1034 §3.6.2, §4.3.2); a chain that
//! ends without them makes it ask again for its end, at most `MAX_RESTARTS` times. Answers are
//! kept for their TTL.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// How long one query waits for its answer.
const TRY_WAIT: Duration = Duration::from_secs(1);
/// Queries sent for one question before the server is taken as silent.
const TRIES: usize = 3;
/// Questions asked again for a CNAME's target that the answer left without an address.
const MAX_RESTARTS: usize = 8;
/// The largest UDP answer read (RFC 1035 §4.2.1 says 512; a larger one is read whole anyway).
const MAX_UDP: usize = 4096;

/// The resolver: the server asked and the answers kept.
pub(super) struct Resolver {
    server: SocketAddr,
    /// `no-cname` fault: an answer that starts with a CNAME counts as no address.
    no_cname: bool,
    /// Lowercased host name → (when its answer runs out, its addresses in the answer's order).
    cache: HashMap<String, (Instant, Vec<Ipv4Addr>)>,
}

/// What one question's answer gave.
enum Answer {
    /// The chain's end had A records: them, and the smallest TTL on the way.
    Addresses(Vec<Ipv4Addr>, u32),
    /// The chain ended at this name without an address: ask again for it (TTL so far).
    AskAgain(Name, u32),
}

impl Resolver {
    /// A resolver asking `server`; `no_cname` is the fault of that name.
    pub(super) fn new(server: SocketAddr, no_cname: bool) -> Resolver {
        Resolver {
            server,
            no_cname,
            cache: HashMap::new(),
        }
    }

    /// The IPv4 addresses of `host`, in the answer's order; an error when it has none or the
    /// server does not answer.
    pub(super) async fn lookup(&mut self, host: &str) -> Result<Vec<Ipv4Addr>, String> {
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        let now = Instant::now();
        if let Some((until, addresses)) = self.cache.get(&key) {
            if *until > now {
                return Ok(addresses.clone());
            }
            self.cache.remove(&key);
        }
        let mut name = Name::from_ascii(host).map_err(|e| format!("{host}: not a host name: {e}"))?;
        name.set_fqdn(true);
        let mut ttl = u32::MAX;
        for _ in 0..=MAX_RESTARTS {
            match self.ask(host, &name).await? {
                Answer::Addresses(addresses, last_ttl) => {
                    let ttl = ttl.min(last_ttl);
                    self.cache
                        .insert(key, (now + Duration::from_secs(u64::from(ttl)), addresses.clone()));
                    return Ok(addresses);
                }
                Answer::AskAgain(target, chain_ttl) => {
                    ttl = ttl.min(chain_ttl);
                    name = target;
                }
            }
        }
        Err(format!("{host}: no address after {MAX_RESTARTS} CNAME targets asked again"))
    }

    /// One question about `name` (for `host`) and what its answer says.
    async fn ask(&self, host: &str, name: &Name) -> Result<Answer, String> {
        let response = self.exchange(name).await?;
        match response.response_code() {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => return Err(format!("{host} has no address (NXDOMAIN for {name})")),
            rcode => return Err(format!("{host}: the DNS server answered {rcode} for {name}")),
        }
        let answers = response.answers();
        if self.no_cname && answers.first().is_some_and(|r| r.record_type() == RecordType::CNAME) {
            return Err(format!("{host} has no address (a CNAME answer for {name})"));
        }
        let mut end = name.clone();
        let mut ttl = u32::MAX;
        // Each step consumes a CNAME of the answer, so the chain cannot loop forever.
        for _ in 0..=answers.len() {
            let next = answers.iter().find_map(|r| match r.data() {
                RData::CNAME(target) if r.name() == &end && r.dns_class() == DNSClass::IN => Some((target.0.clone(), r.ttl())),
                _ => None,
            });
            let Some((target, record_ttl)) = next else { break };
            ttl = ttl.min(record_ttl);
            end = target;
        }
        let mut addresses = Vec::new();
        for record in answers {
            if let RData::A(a) = record.data() {
                if record.name() == &end && record.dns_class() == DNSClass::IN {
                    ttl = ttl.min(record.ttl());
                    if !addresses.contains(&a.0) {
                        addresses.push(a.0);
                    }
                }
            }
        }
        if !addresses.is_empty() {
            return Ok(Answer::Addresses(addresses, ttl));
        }
        if &end != name {
            return Ok(Answer::AskAgain(end, ttl));
        }
        Err(format!("{host} has no address (no A record for {name})"))
    }

    /// The answer to an A question about `name`: `TRIES` queries, each with its own id, `TRY_WAIT`
    /// apart.
    async fn exchange(&self, name: &Name) -> Result<Message, String> {
        let local: SocketAddr = match self.server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await.map_err(|e| format!("DNS socket: {e}"))?;
        socket
            .connect(self.server)
            .await
            .map_err(|e| format!("DNS server {}: {e}", self.server))?;
        let mut buffer = vec![0u8; MAX_UDP];
        for _ in 0..TRIES {
            let mut query = Message::new();
            query
                .set_id(fastrand::u16(..))
                .set_message_type(MessageType::Query)
                .set_op_code(OpCode::Query)
                .set_recursion_desired(true);
            query.add_query(Query::query(name.clone(), RecordType::A));
            let bytes = query.to_vec().map_err(|e| format!("DNS query for {name}: {e}"))?;
            if socket.send(&bytes).await.is_err() {
                continue;
            }
            let deadline = Instant::now() + TRY_WAIT;
            loop {
                let len = match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
                    Ok(Ok(len)) => len,
                    // An ICMP port unreachable: this try is over, as a silent one would be.
                    Ok(Err(_)) => {
                        tokio::time::sleep_until(deadline).await;
                        break;
                    }
                    Err(_) => break,
                };
                if let Some(response) = parse_response(&buffer[..len], &query) {
                    return Ok(response);
                }
            }
        }
        Err(format!(
            "no answer from the DNS server {} about {name} ({TRIES} tries, {TRY_WAIT:?} each)",
            self.server
        ))
    }
}

/// `bytes` as the response to `query`: same id, QR=1, opcode QUERY, the same one question.
fn parse_response(bytes: &[u8], query: &Message) -> Option<Message> {
    let response = std::panic::catch_unwind(|| Message::from_vec(bytes)).ok()?.ok()?;
    let asked = query.queries().first()?;
    let same_question = match response.queries() {
        [echoed] => {
            echoed.name() == asked.name() && echoed.query_type() == asked.query_type() && echoed.query_class() == asked.query_class()
        }
        _ => false,
    };
    let ok = response.id() == query.id() && response.message_type() == MessageType::Response && response.op_code() == OpCode::Query;
    (ok && same_question).then_some(response)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME};
    use hickory_proto::rr::Record;
    use std::sync::{Arc, Mutex};

    /// What the test server answers for a name.
    #[derive(Clone)]
    pub(crate) enum Zone {
        /// These records (owner, CNAME target or address).
        Records(Vec<(&'static str, Entry)>),
        /// NXDOMAIN.
        NxDomain,
        /// A reply with another id (to be ignored) before the real one.
        Spoofed(Vec<(&'static str, Entry)>),
    }

    #[derive(Clone, Copy)]
    pub(crate) enum Entry {
        Cname(&'static str),
        A(Ipv4Addr),
    }

    fn name(text: &str) -> Name {
        let mut name = Name::from_ascii(text).expect("name");
        name.set_fqdn(true);
        name
    }

    fn records(entries: &[(&'static str, Entry)]) -> Vec<Record> {
        entries
            .iter()
            .map(|(owner, entry)| {
                let rdata = match entry {
                    Entry::Cname(target) => RData::CNAME(CNAME(name(target))),
                    Entry::A(a) => RData::A(A(*a)),
                };
                Record::from_rdata(name(owner), 60, rdata)
            })
            .collect()
    }

    /// A UDP DNS server on loopback answering from `zones` (by lowercased name without the final
    /// dot; NOERROR with no answer for the rest), and the names it was asked, in order. It is
    /// bound before this returns.
    pub(crate) async fn dns_server(zones: Vec<(&'static str, Zone)>) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let zones: HashMap<&str, Zone> = zones.into_iter().collect();
        let log = Arc::new(Mutex::new(Vec::new()));
        let asked = log.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..len]) else { continue };
                let Some(question) = query.queries().first().cloned() else {
                    continue;
                };
                assert!(query.recursion_desired() && question.query_type() == RecordType::A);
                let qname = question.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
                asked.lock().expect("log").push(qname.clone());
                let mut reply = Message::new();
                reply
                    .set_id(query.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(OpCode::Query)
                    .set_recursion_desired(true)
                    .set_recursion_available(true);
                reply.add_query(question);
                match zones.get(qname.as_str()) {
                    Some(Zone::NxDomain) => {
                        reply.set_response_code(ResponseCode::NXDomain);
                    }
                    Some(Zone::Records(entries)) => {
                        reply.add_answers(records(entries));
                    }
                    Some(Zone::Spoofed(entries)) => {
                        let mut spoof = reply.clone();
                        spoof.set_id(query.id().wrapping_add(1));
                        spoof.add_answers(records(&[(entries[0].0, Entry::A(Ipv4Addr::new(127, 0, 0, 66)))]));
                        let _ = socket.send_to(&spoof.to_vec().expect("spoof"), from).await;
                        reply.add_answers(records(entries));
                    }
                    None => {}
                }
                let _ = socket.send_to(&reply.to_vec().expect("reply"), from).await;
            }
        });
        (addr, log)
    }

    pub(crate) const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;
    /// A loopback address where nothing listens.
    pub(crate) const DEAD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

    /// The lab's names: a CNAME chain to two A records, a CNAME-only answer whose target is
    /// asked again, NXDOMAIN.
    pub(crate) fn lab_zones() -> Vec<(&'static str, Zone)> {
        vec![
            (
                "video.netcinema.test",
                Zone::Records(vec![
                    ("video.netcinema.test", Entry::Cname("edge.netcinema.test")),
                    ("edge.netcinema.test", Entry::Cname("a1105.kingcdn.test")),
                    ("a1105.kingcdn.test", Entry::A(DEAD)),
                    ("a1105.kingcdn.test", Entry::A(LOCAL)),
                ]),
            ),
            (
                "cdn.netcinema.test",
                Zone::Records(vec![("cdn.netcinema.test", Entry::Cname("node.kingcdn.test"))]),
            ),
            ("node.kingcdn.test", Zone::Records(vec![("node.kingcdn.test", Entry::A(LOCAL))])),
            ("gone.test", Zone::NxDomain),
            ("spoofed.test", Zone::Spoofed(vec![("spoofed.test", Entry::A(LOCAL))])),
        ]
    }

    #[tokio::test]
    async fn chains_restarts_nxdomain_and_the_cache() {
        let (server, asked) = dns_server(lab_zones()).await;
        let mut resolver = Resolver::new(server, false);
        assert_eq!(resolver.lookup("Video.NetCinema.test").await, Ok(vec![DEAD, LOCAL]));
        assert_eq!(resolver.lookup("video.netcinema.test").await, Ok(vec![DEAD, LOCAL]), "cached");
        assert_eq!(resolver.lookup("cdn.netcinema.test").await, Ok(vec![LOCAL]));
        let err = resolver.lookup("gone.test").await.expect_err("NXDOMAIN");
        assert!(err.contains("no address"), "{err}");
        let err = resolver.lookup("empty.test").await.expect_err("no A");
        assert!(err.contains("no address"), "{err}");
        assert_eq!(resolver.lookup("spoofed.test").await, Ok(vec![LOCAL]), "the other id is ignored");
        assert_eq!(
            *asked.lock().expect("log"),
            [
                "video.netcinema.test",
                "cdn.netcinema.test",
                "node.kingcdn.test",
                "gone.test",
                "empty.test",
                "spoofed.test"
            ]
        );
        // `no-cname`: a chain is not followed, a CNAME-only answer not asked again.
        let mut resolver = Resolver::new(server, true);
        assert!(resolver.lookup("video.netcinema.test").await.is_err());
        assert!(resolver.lookup("cdn.netcinema.test").await.is_err());
        assert_eq!(resolver.lookup("node.kingcdn.test").await, Ok(vec![LOCAL]));
    }
}
