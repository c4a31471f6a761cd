//! `dns-resolver`: a recursive resolver, the "local DNS server" of the slides,
//! which answers its clients' recursive queries (RD=1) by iterated queries
//! from the root down (RFC 1034 §5.3.3):
//!
//! 1. if the cache has the answer (or a CNAME, or a negative answer), use it;
//! 2. else start at the closest zone whose name servers are in the cache
//!    (the root, from the `root` option, when none is);
//! 3. ask one of that zone's name servers (RD=0, EDNS payload 1232, a random
//!    id, the answer checked against id and question; over TCP when the answer
//!    has TC=1); one that does not answer in `timeout`, or answers SERVFAIL,
//!    REFUSED or nonsense, is passed over for the next; every address is tried
//!    `1 + retries` times in turn before the client gets SERVFAIL;
//! 4. a referral (NS in authority for a zone below the one asked, above the
//!    name) makes its servers the next to ask: addresses from the glue, or,
//!    for a glueless delegation, from a resolution of their names of its own
//!    (at most 4 deep, never one already under way);
//! 5. an answer ends it, a CNAME restarts it at step 1 for the target (8 links
//!    at most), NXDOMAIN and NODATA end it with the SOA in authority.
//!
//! Clients get RA=1, AA=0, RD copied, the question echoed, and the SOA of a
//! negative answer in authority. A client query runs for at most 10 × `timeout`
//! and 64 upstream queries before it is SERVFAIL.
//!
//! The cache (RFC 1035 §7.4, RFC 2181 §5.4.1, RFC 2308 §5) keeps RRsets for
//! their TTL (the smallest of the set's, at most a week), answering with the
//! time left (rounded up); NXDOMAIN per name and NODATA per name and type for
//! min(SOA TTL, SOA MINIMUM) (at most 3 hours); referral NS sets and glue at a
//! lower trust that never replaces answer data and is never itself an answer
//! (RFC 2181 §5.4.1: it only tells where to ask). Only records within the zone of
//! the server that sent them are kept (bailiwick). At most 10 000 entries:
//! when full, expired entries go, and if that is not enough, everything.
//!
//! Choices where the RFCs leave room:
//! - a query with RD=0 is answered from the cache only (CNAMEs followed);
//!   what the cache does not have is REFUSED;
//! - the root zone's servers are always the one in the `root` option (no
//!   priming query, and a cached `. NS` does not replace it); every other
//!   name server is reached at its IPv4 address on `port`;
//! - qtype ANY is passed on as it is and never answered from the cache;
//!   AXFR/IXFR and classes other than IN are REFUSED.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use super::{bind_udp_and_tcp, label_count, serve, Handler, Pending, Reply, Request, Via, EDNS_PAYLOAD, TCP_LIMIT};
use crate::guard::{self, Limits};
use crate::{parse_count, parse_duration, Error, OptionSet, Options, RunningServer, Transport};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "dns-resolver";
const OPTIONS: &[&str] = &["root", "port", "timeout", "retries", "idle", guard::OPTIONS[0], guard::OPTIONS[1]];
/// CNAME links followed for one client query.
const MAX_CHAIN: usize = 8;
/// Referrals followed for one name.
const MAX_REFERRALS: usize = 16;
/// Nested resolutions of name server names (glueless delegations).
const MAX_DEPTH: usize = 4;
/// Upstream queries for one client query, nested resolutions included.
const QUERY_BUDGET: usize = 64;
/// A client query's time limit, in upstream timeouts.
const DEADLINE_TIMEOUTS: u32 = 10;
/// Cache entries (RRsets and negative answers).
const MAX_CACHE_ENTRIES: usize = 10_000;
/// The longest a positive answer is kept (RFC 8767 §4's suggestion).
const MAX_TTL: u32 = 7 * 24 * 3600;
/// The longest a negative answer is kept (RFC 2308 §5).
const MAX_NEGATIVE_TTL: u32 = 3 * 3600;

/// The resolver: where the root is, how to ask, and what it has learnt.
#[derive(Debug)]
struct Resolver {
    root: SocketAddr,
    port: u16,
    timeout: Duration,
    retries: u64,
    cache: Mutex<Cache>,
}

/// Checks the options, binds UDP and TCP, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let Some(root) = opts.given("root") else {
        return Err(Error::BadOption {
            server: NAME.to_owned(),
            key: "root".to_owned(),
            value: String::new(),
            why: "required: the root server's address, IP:PORT such as 127.0.0.2:5353".to_owned(),
        });
    };
    let root = opts.parse("root", root, |text| {
        text.trim()
            .parse::<SocketAddr>()
            .map_err(|_| "expected the root server's address, IP:PORT such as 127.0.0.2:5353".to_owned())
    })?;
    let port = opts.get("port", &root.port().to_string(), |text| parse_count(text, 1, 65535))? as u16;
    let timeout = opts.get("timeout", "1s", parse_duration)?;
    let retries = opts.get("retries", "2", |text| parse_count(text, 0, 10))?;
    let idle = opts.get("idle", "10s", parse_duration)?;
    let limits = Limits::from_options(&opts)?;
    let (udp, tcp) = bind_udp_and_tcp(bind).await?;
    let local_addr = udp.local_addr()?;
    let resolver = Arc::new(Resolver {
        root,
        port,
        timeout,
        retries,
        cache: Mutex::new(Cache::default()),
    });
    Ok(RunningServer::spawn(
        local_addr,
        Transport::Udp,
        serve(udp, tcp, resolver, idle, limits),
    ))
}

impl Handler for Resolver {
    fn answer(self: Arc<Self>, request: Request, _peer: SocketAddr, _via: Via) -> Pending {
        Box::pin(async move { self.respond(&request).await })
    }
}

/// How a name resolved, for the client.
#[derive(Debug)]
struct Outcome {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authority: Vec<Record>,
}

impl Outcome {
    fn fail(rcode: ResponseCode) -> Self {
        Outcome {
            rcode,
            answers: Vec::new(),
            authority: Vec::new(),
        }
    }
}

/// What one step of a resolution found out about one name.
#[derive(Debug)]
enum Step {
    Answer(Vec<Record>),
    Cname(Record),
    NxDomain(Option<Record>),
    NoData(Option<Record>),
    Fail,
}

/// What one name server's response means.
#[derive(Debug)]
enum Classified {
    Found(Step),
    Referral(Servers),
    /// Not an answer we can use: ask another server.
    Lame,
}

/// The name servers of a zone, as far as they are known.
#[derive(Debug, Clone)]
struct Servers {
    zone: Name,
    names: Vec<Name>,
    addrs: Vec<SocketAddr>,
}

/// The limits of one client query, shared with the resolutions it starts.
#[derive(Debug)]
struct Context {
    /// Upstream queries left.
    budget: usize,
    /// Nested resolutions of name server names under way, innermost last.
    resolving: Vec<Name>,
    /// RD=0: the cache only.
    cache_only: bool,
}

/// The boxed future of a (possibly nested) resolution.
type Resolving<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>>;

impl Resolver {
    /// The response to a client's query.
    async fn respond(&self, request: &Request) -> Reply {
        let query = &request.query;
        let outcome = if query.query_class() != DNSClass::IN || matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
            Outcome::fail(ResponseCode::Refused)
        } else {
            let mut context = Context {
                budget: QUERY_BUDGET,
                resolving: Vec::new(),
                cache_only: !request.message.recursion_desired(),
            };
            let resolving = self.resolve(query.name().clone(), query.query_type(), &mut context);
            timeout(self.timeout * DEADLINE_TIMEOUTS, resolving)
                .await
                .unwrap_or_else(|_| Outcome::fail(ResponseCode::ServFail))
        };
        let mut response = request.response(outcome.rcode);
        response.set_recursion_available(true);
        response.add_answers(outcome.answers);
        response.add_name_servers(outcome.authority);
        response.into()
    }

    /// Resolves `name`/`qtype`, following CNAMEs (RFC 1034 §5.3.3).
    fn resolve<'a>(&'a self, name: Name, qtype: RecordType, context: &'a mut Context) -> Resolving<'a> {
        Box::pin(async move {
            let mut chain: Vec<Record> = Vec::new();
            let mut name = name;
            let mut seen = vec![name.clone()];
            for _ in 0..=MAX_CHAIN {
                let cached = self
                    .cache
                    .lock()
                    .map(|cache| cache.step(&name, qtype, Instant::now()))
                    .unwrap_or(None);
                let step = match cached {
                    Some(step) => step,
                    None if context.cache_only => {
                        let rcode = if chain.is_empty() {
                            ResponseCode::Refused
                        } else {
                            ResponseCode::NoError
                        };
                        return Outcome {
                            rcode,
                            answers: chain,
                            authority: Vec::new(),
                        };
                    }
                    None => self.iterate(&name, qtype, context).await,
                };
                let (rcode, soa) = match step {
                    Step::Answer(records) => {
                        chain.extend(records);
                        (ResponseCode::NoError, None)
                    }
                    Step::Cname(record) => {
                        let Some(target) = record.data().as_cname().map(|cname| cname.0.clone()) else {
                            return Outcome::fail(ResponseCode::ServFail);
                        };
                        chain.push(record);
                        if seen.contains(&target) {
                            return Outcome::fail(ResponseCode::ServFail);
                        }
                        seen.push(target.clone());
                        name = target;
                        continue;
                    }
                    Step::NxDomain(soa) => (ResponseCode::NXDomain, soa),
                    Step::NoData(soa) => (ResponseCode::NoError, soa),
                    Step::Fail => return Outcome::fail(ResponseCode::ServFail),
                };
                return Outcome {
                    rcode,
                    answers: chain,
                    authority: soa.into_iter().collect(),
                };
            }
            Outcome::fail(ResponseCode::ServFail)
        })
    }

    /// Asks name servers about `name`, from the closest known zone down, until one knows.
    async fn iterate(&self, name: &Name, qtype: RecordType, context: &mut Context) -> Step {
        let mut servers = self.closest_servers(name);
        for _ in 0..MAX_REFERRALS {
            match self.ask_zone(&mut servers, name, qtype, context).await {
                Classified::Found(step) => return step,
                Classified::Referral(next) => servers = next,
                Classified::Lame => return Step::Fail,
            }
        }
        Step::Fail
    }

    /// The servers of the closest zone above `name` whose NS set is cached, else the root.
    fn closest_servers(&self, name: &Name) -> Servers {
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock() {
            for labels in (1..=label_count(name)).rev() {
                let zone = name.trim_to(labels);
                let Some(ns) = cache.records(&zone, RecordType::NS, now) else {
                    continue;
                };
                let names: Vec<Name> = ns
                    .iter()
                    .filter_map(|record| record.data().as_ns().map(|ns| ns.0.clone()))
                    .collect();
                let addrs = names.iter().flat_map(|ns| self.cached_addresses(&cache, ns, now)).collect();
                return Servers { zone, names, addrs };
            }
        }
        Servers {
            zone: Name::root(),
            names: Vec::new(),
            addrs: vec![self.root],
        }
    }

    /// The cached IPv4 addresses of name server `ns`, on `port`.
    fn cached_addresses(&self, cache: &Cache, ns: &Name, now: Instant) -> Vec<SocketAddr> {
        let records = cache.records(ns, RecordType::A, now).unwrap_or_default();
        records
            .iter()
            .filter_map(|record| record.data().as_a())
            .map(|a| SocketAddr::new(IpAddr::V4(a.0), self.port))
            .collect()
    }

    /// Asks the servers of one zone, each address in turn, `1 + retries` rounds,
    /// until one gives a response that means something.
    async fn ask_zone(&self, servers: &mut Servers, name: &Name, qtype: RecordType, context: &mut Context) -> Classified {
        if servers.addrs.is_empty() {
            servers.addrs = self.resolve_server_names(servers, context).await;
        }
        let mut lame: Vec<SocketAddr> = Vec::new();
        for _round in 0..=self.retries {
            let addrs: Vec<SocketAddr> = servers.addrs.iter().filter(|addr| !lame.contains(addr)).copied().collect();
            if addrs.is_empty() {
                break;
            }
            for addr in addrs {
                if context.budget == 0 {
                    return Classified::Lame;
                }
                context.budget -= 1;
                let Some(response) = self.exchange(addr, name, qtype).await else {
                    continue;
                };
                match self.classify(&response, &servers.zone, name, qtype) {
                    Classified::Lame => lame.push(addr),
                    meaningful => return meaningful,
                }
            }
        }
        Classified::Lame
    }

    /// A glueless delegation: the addresses of the first of its name servers
    /// whose name resolves (a separate resolution each).
    async fn resolve_server_names(&self, servers: &Servers, context: &mut Context) -> Vec<SocketAddr> {
        for ns in &servers.names {
            // A server named inside its own zone cannot be found without glue;
            // one already being looked for would be a loop.
            let inside = !servers.zone.is_root() && servers.zone.zone_of(ns);
            if inside || context.resolving.len() >= MAX_DEPTH || context.resolving.contains(ns) {
                continue;
            }
            context.resolving.push(ns.clone());
            let outcome = self.resolve(ns.clone(), RecordType::A, context).await;
            context.resolving.pop();
            let addrs: Vec<SocketAddr> = outcome
                .answers
                .iter()
                .filter_map(|record| record.data().as_a())
                .map(|a| SocketAddr::new(IpAddr::V4(a.0), self.port))
                .collect();
            if !addrs.is_empty() {
                return addrs;
            }
        }
        Vec::new()
    }

    /// What `response`, from a server of `zone`, says about `name`/`qtype`; caches what it may.
    fn classify(&self, response: &Message, zone: &Name, name: &Name, qtype: RecordType) -> Classified {
        let rcode = response.response_code();
        if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
            return Classified::Lame;
        }
        let now = Instant::now();
        let Ok(mut cache) = self.cache.lock() else {
            return Classified::Lame;
        };
        // Bailiwick: a server speaks only for names in its zone.
        let usable = |record: &&Record| zone.zone_of(record.name()) && record.dns_class() == DNSClass::IN && !is_empty_rdata(record);
        let answers: Vec<Record> = response.answers().iter().filter(usable).cloned().collect();
        cache.insert_section(&answers, Trust::Answer, now);
        let at_name = |rtype: RecordType| -> Vec<Record> {
            let matching = answers
                .iter()
                .filter(|record| record.name() == name && (rtype == RecordType::ANY || record.record_type() == rtype));
            matching.cloned().collect()
        };
        let found = at_name(qtype);
        if !found.is_empty() {
            return Classified::Found(Step::Answer(found));
        }
        if qtype != RecordType::CNAME {
            if let Some(cname) = at_name(RecordType::CNAME).into_iter().next() {
                return Classified::Found(Step::Cname(cname));
            }
        }
        let authority: Vec<&Record> = response.name_servers().iter().filter(usable).collect();
        let soa = authority
            .iter()
            .find(|record| record.record_type() == RecordType::SOA && record.name().zone_of(name))
            .map(|r| (*r).clone());
        if rcode == ResponseCode::NXDomain {
            if let Some(soa) = &soa {
                cache.insert_negative(name, None, soa, now);
            }
            return Classified::Found(Step::NxDomain(soa));
        }
        let ns: Vec<Record> = authority
            .iter()
            .filter(|record| record.record_type() == RecordType::NS)
            .map(|r| (*r).clone())
            .collect();
        if soa.is_none() && !ns.is_empty() {
            let cut = ns[0].name().clone();
            let below = label_count(&cut) > label_count(zone) && cut.zone_of(name) && ns.iter().all(|record| record.name() == &cut);
            if !below {
                return Classified::Lame; // an upward or sideways referral
            }
            cache.insert_section(&ns, Trust::Glue, now);
            let names: Vec<Name> = ns
                .iter()
                .filter_map(|record| record.data().as_ns().map(|ns| ns.0.clone()))
                .collect();
            let glue: Vec<Record> = response
                .additionals()
                .iter()
                .filter(usable)
                .filter(|record| record.record_type() == RecordType::A && names.contains(record.name()))
                .cloned()
                .collect();
            cache.insert_section(&glue, Trust::Glue, now);
            let mut addrs: Vec<SocketAddr> = Vec::new();
            for ns in &names {
                let from_glue = glue
                    .iter()
                    .filter(|record| record.name() == ns)
                    .filter_map(|record| record.data().as_a());
                let from_glue = from_glue.map(|a| SocketAddr::new(IpAddr::V4(a.0), self.port));
                for addr in from_glue.chain(self.cached_addresses(&cache, ns, now)) {
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
            }
            return Classified::Referral(Servers { zone: cut, names, addrs });
        }
        if soa.is_some() || response.authoritative() {
            if let Some(soa) = &soa {
                cache.insert_negative(name, Some(qtype), soa, now);
            }
            return Classified::Found(Step::NoData(soa));
        }
        Classified::Lame
    }

    /// One upstream query: over UDP, again over TCP if the answer is truncated.
    async fn exchange(&self, server: SocketAddr, name: &Name, qtype: RecordType) -> Option<Message> {
        let id = fastrand::u16(..);
        let mut query = Message::new();
        query
            .set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(false);
        query.add_query(Query::query(name.clone(), qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        query.set_edns(edns);
        let bytes = query.to_vec().ok()?;
        let response = self.exchange_udp(server, &bytes, &query).await?;
        if !response.truncated() {
            return Some(response);
        }
        self.exchange_tcp(server, &bytes, &query).await
    }

    async fn exchange_udp(&self, server: SocketAddr, bytes: &[u8], query: &Message) -> Option<Message> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await.ok()?;
        socket.connect(server).await.ok()?;
        socket.send(bytes).await.ok()?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut buffer = vec![0u8; usize::from(EDNS_PAYLOAD).max(4096)];
        loop {
            // A refused port (ICMP) shows up as an error here: no need to wait.
            let len = tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await.ok()?.ok()?;
            // Anything that is not the answer to this query (RFC 5452 §9.1) is ignored.
            if let Some(response) = parse_response(&buffer[..len], query) {
                return Some(response);
            }
        }
    }

    async fn exchange_tcp(&self, server: SocketAddr, bytes: &[u8], query: &Message) -> Option<Message> {
        let exchange = async {
            let mut stream = TcpStream::connect(server).await.ok()?;
            let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(bytes);
            stream.write_all(&framed).await.ok()?;
            let mut prefix = [0u8; 2];
            stream.read_exact(&mut prefix).await.ok()?;
            let mut message = vec![0u8; usize::from(u16::from_be_bytes(prefix)).min(TCP_LIMIT)];
            stream.read_exact(&mut message).await.ok()?;
            parse_response(&message, query)
        };
        timeout(self.timeout, exchange).await.ok()?
    }
}

/// `bytes` as the response to `query`: same id, QR=1, opcode QUERY, the same question.
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

/// A record with no RDATA (hickory's reading of RDLENGTH 0): nothing to keep.
fn is_empty_rdata(record: &Record) -> bool {
    matches!(record.data(), RData::Update0(_))
}

/// How far cached data is believed (RFC 2181 §5.4.1, much simplified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Trust {
    /// From a referral: NS sets and glue.
    Glue,
    /// From the answer section of a server of the zone.
    Answer,
}

#[derive(Debug, Clone)]
enum Cached {
    Records(Vec<Record>),
    /// NODATA (RFC 2308 §2.2), with the SOA that came with it.
    NoData(Record),
    /// NXDOMAIN (RFC 2308 §2.1), with the SOA that came with it.
    NxDomain(Record),
}

#[derive(Debug, Clone)]
struct Entry {
    data: Cached,
    expires: Instant,
    trust: Trust,
}

/// RRsets by (name, type); NXDOMAIN under (name, ANY). Names compare case-insensitively.
#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<(Name, RecordType), Entry>,
}

impl Cache {
    /// The unexpired entry for `name`/`rtype`.
    fn get(&self, name: &Name, rtype: RecordType, now: Instant) -> Option<&Entry> {
        self.entries.get(&(name.clone(), rtype)).filter(|entry| entry.expires > now)
    }

    /// The records for `name`/`rtype`, with the TTL they have left.
    fn records(&self, name: &Name, rtype: RecordType, now: Instant) -> Option<Vec<Record>> {
        let entry = self.get(name, rtype, now)?;
        match &entry.data {
            Cached::Records(records) => Some(records.iter().map(|record| with_ttl_left(record, entry.expires, now)).collect()),
            _ => None,
        }
    }

    /// What the cache says about `name`/`qtype`, if anything.
    fn step(&self, name: &Name, qtype: RecordType, now: Instant) -> Option<Step> {
        if let Some(entry) = self.get(name, RecordType::ANY, now) {
            if let Cached::NxDomain(soa) = &entry.data {
                return Some(Step::NxDomain(Some(with_ttl_left(soa, entry.expires, now))));
            }
        }
        // RFC 2181 §5.4.1: referral data (glue) helps find servers but is never an answer.
        let answer = |rtype: RecordType| self.get(name, rtype, now).filter(|entry| entry.trust == Trust::Answer);
        if qtype != RecordType::ANY {
            if let Some(entry) = answer(qtype) {
                return Some(match &entry.data {
                    Cached::Records(_) => Step::Answer(self.records(name, qtype, now)?),
                    Cached::NoData(soa) | Cached::NxDomain(soa) => Step::NoData(Some(with_ttl_left(soa, entry.expires, now))),
                });
            }
        }
        if qtype != RecordType::CNAME && answer(RecordType::CNAME).is_some() {
            return self.records(name, RecordType::CNAME, now)?.into_iter().next().map(Step::Cname);
        }
        None
    }

    /// Caches the RRsets in `records` (one section of a response).
    fn insert_section(&mut self, records: &[Record], trust: Trust, now: Instant) {
        let mut sets: Vec<((Name, RecordType), Vec<Record>)> = Vec::new();
        for record in records {
            let key = (record.name().clone(), record.record_type());
            match sets.iter_mut().find(|(known, _)| *known == key) {
                Some((_, set)) => set.push(record.clone()),
                None => sets.push((key, vec![record.clone()])),
            }
        }
        for (key, set) in sets {
            // RFC 2181 §5.2: one TTL per RRset; §8: TTLs with the top bit set are 0.
            let ttl = set
                .iter()
                .map(|record| if record.ttl() > i32::MAX as u32 { 0 } else { record.ttl() })
                .min()
                .unwrap_or(0);
            let ttl = ttl.min(MAX_TTL);
            if ttl == 0 {
                continue; // RFC 1035 §3.2.1: use once, do not cache
            }
            if let Some(known) = self.get(&key.0, key.1, now) {
                if known.trust > trust {
                    continue;
                }
            }
            let set = set
                .into_iter()
                .map(|mut record| {
                    record.set_ttl(ttl);
                    record
                })
                .collect();
            self.insert(key, Cached::Records(set), ttl, trust, now);
        }
    }

    /// Caches NXDOMAIN (`rtype` None) or NODATA for `name`, for as long as `soa` says (RFC 2308 §5).
    fn insert_negative(&mut self, name: &Name, rtype: Option<RecordType>, soa: &Record, now: Instant) {
        let minimum = soa.data().as_soa().map_or(0, |data| data.minimum());
        let ttl = soa.ttl().min(minimum).min(MAX_NEGATIVE_TTL);
        if ttl == 0 {
            return;
        }
        let mut soa = soa.clone();
        soa.set_ttl(ttl);
        let (rtype, data) = match rtype {
            None => (RecordType::ANY, Cached::NxDomain(soa)),
            Some(rtype) => (rtype, Cached::NoData(soa)),
        };
        self.insert((name.clone(), rtype), data, ttl, Trust::Answer, now);
    }

    fn insert(&mut self, key: (Name, RecordType), data: Cached, ttl: u32, trust: Trust, now: Instant) {
        if self.entries.len() >= MAX_CACHE_ENTRIES {
            self.entries.retain(|_, entry| entry.expires > now);
            if self.entries.len() >= MAX_CACHE_ENTRIES {
                self.entries.clear();
            }
        }
        let expires = now + Duration::from_secs(u64::from(ttl));
        self.entries.insert(key, Entry { data, expires, trust });
    }
}

/// `record` with the TTL it has left at `now`, rounded up to whole seconds.
fn with_ttl_left(record: &Record, expires: Instant, now: Instant) -> Record {
    let left = expires.saturating_duration_since(now).as_millis().div_ceil(1000);
    let mut record = record.clone();
    record.set_ttl(u32::try_from(left).unwrap_or(u32::MAX).min(record.ttl()));
    record
}
