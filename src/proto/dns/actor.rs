//! The DNS actor: an authoritative name server the harness plays from zone text, over UDP and
//! TCP, answering by RFC 1034 §4.3.2 (referrals with glue, CNAMEs, wildcards, NXDOMAIN and
//! NODATA with the SOA of RFC 2308 §3). A resolver under test may ask it anything, in any order,
//! as often as it likes; the case then judges what the stub got and what each server saw.
//!
//! Zone files hold one record per line with absolute names (`www.example.test. 300 IN A ...`),
//! `;` comments and blank lines; the first SOA names the zone's apex.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::text::parse_record;
use super::wire::{self, rtype, DnsMessage, Edns, Name, Question, RData, Record};
use crate::proto::common::actor::{ActorHandle, ActorKind, ActorLog, ActorSpec, Bound};
use crate::proto::{Direction, Transport};
use crate::syntax::{Data, LoadCx, Node};

/// RCODEs the actor sends.
const NOERROR: u16 = 0;
const FORMERR: u16 = 1;
const SERVFAIL: u16 = 2;
const NXDOMAIN: u16 = 3;
const REFUSED: u16 = 5;
/// The largest UDP answer without EDNS (RFC 1035 §4.2.1) and the largest it sends with EDNS (the
/// DNS flag day 2020 default, RFC 9715).
const UDP_PLAIN: usize = 512;
const UDP_EDNS: usize = 1232;
/// A TCP client that sends nothing for this long is dropped (RFC 7766 §6.2.3 lets a server close
/// idle connections).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How many CNAMEs the actor follows inside its own zones before it stops.
const MAX_CHAIN: usize = 8;

/// The `dns:` actor vocabulary.
pub static ACTOR: ActorKind = ActorKind {
    key: "dns",
    faults: &[
        ("silent", "receives every query and never answers (a dead server)"),
        (
            "truncate",
            "answers every UDP query with TC=1 and empty sections; TCP answers whole",
        ),
        (
            "refuse",
            "answers REFUSED to everything (a lame delegation: the server does not serve the zone)",
        ),
        ("servfail", "answers SERVFAIL to everything"),
        (
            "spoof",
            "before the first UDP answer to each question sends a forged one: the same id, another question, a wrong address",
        ),
    ],
    parse,
    options: None,
};

/// Zones served by one actor.
#[derive(Debug, Clone)]
struct Zones {
    zones: Vec<Zone>,
}

#[derive(Debug, Clone)]
struct Zone {
    apex: Name,
    soa: Record,
    /// Records by lower-cased owner name.
    nodes: HashMap<Name, Vec<Record>>,
}

fn parse(node: &Node, cx: &mut LoadCx) -> Option<Arc<dyn ActorSpec>> {
    let f = cx.fields(node, &["zones"], "a DNS actor")?;
    let Some(list) = f.get("zones") else {
        cx.err_help(
            node,
            "a DNS actor needs its zones",
            "e.g. dns: { zones: [../fixtures/dns/root.zone] }",
        );
        return None;
    };
    let items: Vec<&Node> = match &list.data {
        Data::Seq(s) => s.iter().collect(),
        _ => vec![list],
    };
    let mut zones = Vec::new();
    for item in items {
        let file = cx.fixture(item, "a zone file")?;
        let text = String::from_utf8_lossy(&file.bytes).into_owned();
        match zone_from_text(&text) {
            Ok(z) => zones.push(z),
            Err((line, why)) => {
                cx.err(item, format!("{} line {line}: {why}", file.display()));
                return None;
            }
        }
    }
    Some(Arc::new(Zones { zones }))
}

/// Removes a `;` comment that is not inside a quoted string.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn zone_from_text(text: &str) -> Result<Zone, (usize, String)> {
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = strip_comment(line).trim();
        if line.is_empty() {
            continue;
        }
        let spec = parse_record(line).map_err(|e| (i + 1, e))?;
        records.push(spec.rec);
    }
    let soa = records
        .iter()
        .find(|r| r.rtype == rtype::SOA)
        .cloned()
        .ok_or((1, "no SOA record: the first SOA names the zone's apex".to_string()))?;
    let apex = soa.name.lowercase();
    let mut nodes: HashMap<Name, Vec<Record>> = HashMap::new();
    for (i, r) in records.into_iter().enumerate() {
        if !is_below_or_at(&r.name, &apex) {
            return Err((i + 1, format!("{} is outside the zone {}", r.name, apex)));
        }
        nodes.entry(r.name.lowercase()).or_default().push(r);
    }
    Ok(Zone { apex, soa, nodes })
}

/// Whether `name` is `ancestor` or below it (names compared in lower case).
fn is_below_or_at(name: &Name, ancestor: &Name) -> bool {
    let (n, a) = (&name.labels, &ancestor.labels);
    n.len() >= a.len() && n[n.len() - a.len()..].iter().zip(a).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// The last `depth` labels of `name`.
fn suffix(name: &Name, depth: usize) -> Name {
    Name {
        labels: name.labels[name.labels.len() - depth..].to_vec(),
    }
    .lowercase()
}

/// What an answer is made of, before the header and the size limit are applied.
#[derive(Default)]
struct Answer {
    rcode: u16,
    aa: bool,
    answer: Vec<Record>,
    authority: Vec<Record>,
    additional: Vec<Record>,
}

impl Zone {
    fn get(&self, name: &Name, t: u16) -> Vec<Record> {
        self.nodes
            .get(&name.lowercase())
            .map(|rs| rs.iter().filter(|r| r.rtype == t).cloned().collect())
            .unwrap_or_default()
    }

    /// The SOA for a negative answer, its TTL the lesser of its own and MINIMUM (RFC 2308 §3).
    fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::Soa { minimum, .. } = soa.data {
            soa.ttl = soa.ttl.min(minimum);
        }
        soa
    }

    /// Whether some name of the zone is strictly below `name` (an empty non-terminal when `name`
    /// itself has no records: RFC 4592 §2.2.2).
    fn has_below(&self, name: &Name) -> bool {
        self.nodes
            .keys()
            .any(|n| n.labels.len() > name.labels.len() && is_below_or_at(n, name))
    }

    /// Addresses of `target` this zone holds (glue, or additional data for MX and NS targets).
    fn addresses(&self, target: &Name) -> Vec<Record> {
        let mut out = self.get(target, rtype::A);
        out.extend(self.get(target, rtype::AAAA));
        out
    }
}

impl Zones {
    /// The zone whose apex is the closest ancestor of `name`.
    fn zone_for(&self, name: &Name) -> Option<&Zone> {
        self.zones
            .iter()
            .filter(|z| is_below_or_at(name, &z.apex))
            .max_by_key(|z| z.apex.labels.len())
    }

    /// RFC 1034 §4.3.2 for one question, following CNAMEs through the zones served here.
    fn resolve(&self, q: &Question) -> Answer {
        let mut out = Answer::default();
        let mut name = q.name.clone();
        for step in 0..MAX_CHAIN {
            let Some(zone) = self.zone_for(&name) else {
                // The first name is in no zone of this server: REFUSED (RFC 8906 §3.1.4); a CNAME
                // whose target is elsewhere is answered alone, the resolver follows it.
                if step == 0 {
                    out.rcode = REFUSED;
                }
                return out;
            };
            // A delegation on the way down from the apex: a referral (RFC 1034 §4.3.2 step 3b).
            for depth in zone.apex.labels.len() + 1..=name.labels.len() {
                let cut = suffix(&name, depth);
                let ns = zone.get(&cut, rtype::NS);
                if ns.is_empty() {
                    continue;
                }
                if step == 0 {
                    out.aa = false;
                }
                for r in &ns {
                    if let RData::Name(target) = &r.data {
                        if is_below_or_at(target, &cut) || is_below_or_at(target, &zone.apex) {
                            out.additional.extend(zone.addresses(target));
                        }
                    }
                }
                out.authority = ns;
                return out;
            }
            if step == 0 {
                out.aa = true;
            }
            let mut owner = name.clone();
            let mut rrs = zone.nodes.get(&name.lowercase()).cloned();
            if rrs.is_none() && !zone.has_below(&name) {
                // Wildcard at the closest encloser (RFC 4592 §3.3.1).
                let mut depth = name.labels.len() - 1;
                while depth > zone.apex.labels.len()
                    && !zone.nodes.contains_key(&suffix(&name, depth))
                    && !zone.has_below(&suffix(&name, depth))
                {
                    depth -= 1;
                }
                let mut wild = suffix(&name, depth);
                wild.labels.insert(0, b"*".to_vec());
                rrs = zone.nodes.get(&wild).map(|rs| {
                    rs.iter()
                        .map(|r| Record {
                            name: name.clone(),
                            ..r.clone()
                        })
                        .collect()
                });
                if rrs.is_none() {
                    out.rcode = NXDOMAIN;
                    out.authority = vec![zone.negative_soa()];
                    return out;
                }
                owner = name.clone();
            }
            let rrs = rrs.unwrap_or_default();
            let cname: Vec<Record> = rrs.iter().filter(|r| r.rtype == rtype::CNAME).cloned().collect();
            if q.qtype != rtype::CNAME && !cname.is_empty() {
                let RData::Name(target) = cname[0].data.clone() else { return out };
                out.answer.extend(cname.into_iter().map(|r| Record { name: owner.clone(), ..r }));
                name = target;
                continue;
            }
            let hits: Vec<Record> = rrs
                .into_iter()
                .filter(|r| r.rtype == q.qtype || q.qtype == rtype::ANY)
                .map(|r| Record { name: owner.clone(), ..r })
                .collect();
            if hits.is_empty() {
                out.authority = vec![zone.negative_soa()];
                return out;
            }
            for r in &hits {
                let target = match &r.data {
                    RData::Mx { exchange, .. } => Some(exchange),
                    RData::Name(t) if r.rtype == rtype::NS => Some(t),
                    RData::Srv { target, .. } => Some(target),
                    _ => None,
                };
                if let Some(t) = target {
                    out.additional.extend(zone.addresses(t));
                }
            }
            out.answer.extend(hits);
            return out;
        }
        out
    }

    /// The reply to `query` over `transport`, or None when the actor stays silent.
    fn reply(&self, query: &[u8], transport: Transport, faults: &Faults) -> Vec<Vec<u8>> {
        if faults.silent {
            return Vec::new();
        }
        let q = match wire::parse(query) {
            Ok(p) if !p.msg.qr => p.msg,
            Ok(_) => return Vec::new(), // a response: not for a server to answer
            Err(_) if query.len() >= wire::HEADER_LEN => {
                let mut m = DnsMessage {
                    id: u16::from_be_bytes([query[0], query[1]]),
                    qr: true,
                    rcode: FORMERR,
                    ..DnsMessage::default()
                };
                m.opcode = (query[2] >> 3) & 0x0f;
                return vec![wire::emit(&m)];
            }
            Err(_) => return Vec::new(),
        };
        let mut r = DnsMessage {
            id: q.id,
            qr: true,
            opcode: q.opcode,
            rd: q.rd,
            questions: q.questions.clone(),
            edns: q.edns.as_ref().map(|_| Edns::default()),
            ..DnsMessage::default()
        };
        match (q.opcode, q.questions.as_slice()) {
            (0, [_]) if faults.refuse => r.rcode = REFUSED,
            (0, [_]) if faults.servfail => r.rcode = SERVFAIL,
            (0, [question]) => {
                let a = self.resolve(question);
                r.rcode = a.rcode;
                r.aa = a.aa;
                r.answer = a.answer;
                r.authority = a.authority;
                r.additional = a.additional;
            }
            (0, _) => r.rcode = FORMERR,
            _ => r.rcode = 4, // NOTIMP (RFC 1035 §4.1.1)
        }
        let mut out = Vec::new();
        if transport == Transport::Udp {
            let limit = match &q.edns {
                Some(e) => (e.udp_size as usize).clamp(UDP_PLAIN, UDP_EDNS),
                None => UDP_PLAIN,
            };
            if faults.truncate || wire::emit(&r).len() > limit {
                // RFC 2181 §9: TC set, the sections that did not fit left out; the client asks
                // again over TCP.
                r.tc = true;
                r.answer.clear();
                r.authority.clear();
                r.additional.clear();
            }
            // Once per question: a resolver that drops the exchange after a forged reply and asks
            // again with a new id (RFC 5452 §9.1) then gets the real answer.
            let first = |q0: &Question| {
                let key = (q0.name.lowercase(), q0.qtype);
                faults.spoofed.lock().map(|mut s| s.insert(key)).unwrap_or(false)
            };
            if faults.spoof {
                if let Some(q0) = q.questions.first().filter(|q0| first(q0)) {
                    let mut forged = r.clone();
                    let mut other = q0.name.clone();
                    other.labels.insert(0, b"forged".to_vec());
                    forged.questions = vec![Question { name: other, ..q0.clone() }];
                    forged.aa = true;
                    forged.rcode = NOERROR;
                    forged.answer = vec![Record {
                        name: q0.name.clone(),
                        rtype: rtype::A,
                        class: wire::CLASS_IN,
                        ttl: 86400,
                        data: RData::A(std::net::Ipv4Addr::new(203, 0, 113, 66)),
                    }];
                    forged.tc = false;
                    out.push(wire::emit(&forged));
                }
            }
        }
        out.push(wire::emit(&r));
        out
    }
}

/// The faults a case switched on for this actor.
#[derive(Debug, Default, Clone)]
struct Faults {
    silent: bool,
    truncate: bool,
    refuse: bool,
    servfail: bool,
    spoof: bool,
    /// Questions already answered with a forged reply first.
    spoofed: Arc<std::sync::Mutex<std::collections::HashSet<(Name, u16)>>>,
}

impl ActorSpec for Zones {
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp, Transport::Tcp]
    }

    fn well_known_port(&self) -> u16 {
        53
    }

    fn start(&self, sockets: Bound, faults: &[String], log: Arc<dyn ActorLog>) -> ActorHandle {
        let on = |f: &str| faults.iter().any(|x| x == f);
        let faults = Faults {
            silent: on("silent"),
            truncate: on("truncate"),
            refuse: on("refuse"),
            servfail: on("servfail"),
            spoof: on("spoof"),
            spoofed: Arc::default(),
        };
        let zones = Arc::new(self.clone());
        let mut tasks = Vec::new();
        if let Some(udp) = sockets.udp {
            tasks.push(tokio::spawn(serve_udp(udp, zones.clone(), faults.clone(), log.clone())));
        }
        if let Some(tcp) = sockets.tcp {
            tasks.push(tokio::spawn(serve_tcp(tcp, zones, faults, log)));
        }
        ActorHandle::new(tasks)
    }
}

async fn serve_udp(sock: tokio::net::UdpSocket, zones: Arc<Zones>, faults: Faults, log: Arc<dyn ActorLog>) {
    let Ok(local) = sock.local_addr() else { return };
    let mut peers: HashMap<SocketAddr, usize> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else { return };
        let conv = *peers.entry(from).or_insert_with(|| log.open(Transport::Udp, local, from));
        log.data(conv, Direction::ClientToServer, &buf[..n]);
        for out in zones.reply(&buf[..n], Transport::Udp, &faults) {
            if sock.send_to(&out, from).await.is_ok() {
                log.data(conv, Direction::ServerToClient, &out);
            }
        }
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, zones: Arc<Zones>, faults: Faults, log: Arc<dyn ActorLog>) {
    let Ok(local) = listener.local_addr() else { return };
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((mut stream, from)) = listener.accept().await else { return };
        let (zones, faults, log) = (zones.clone(), faults.clone(), log.clone());
        conns.spawn(async move {
            let conv = log.open(Transport::Tcp, local, from);
            loop {
                // RFC 1035 §4.2.2: a two-octet length, then the message.
                let mut len = [0u8; 2];
                let read = tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await;
                if !matches!(read, Ok(Ok(_))) {
                    break;
                }
                let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
                if !matches!(tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut msg)).await, Ok(Ok(_))) {
                    break;
                }
                let mut framed = len.to_vec();
                framed.extend_from_slice(&msg);
                log.data(conv, Direction::ClientToServer, &framed);
                for out in zones.reply(&msg, Transport::Tcp, &faults) {
                    let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&out);
                    if stream.write_all(&framed).await.is_err() {
                        break;
                    }
                    log.data(conv, Direction::ServerToClient, &framed);
                }
            }
            log.closed(conv);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(texts: &[&str]) -> Zones {
        Zones {
            zones: texts.iter().map(|t| zone_from_text(t).unwrap()).collect(),
        }
    }

    const EXAMPLE: &str = "example.test. 3600 IN SOA ns1.example.test. admin.example.test. 1 3600 600 86400 5
example.test. 3600 IN NS ns1.example.test.
ns1.example.test. 3600 IN A 127.0.0.4
www.example.test. 300 IN A 192.0.2.80 ; the web server
alias.example.test. 300 IN CNAME www.example.test.
*.wild.example.test. 60 IN A 192.0.2.7
sub.example.test. 3600 IN NS ns.sub.example.test.
ns.sub.example.test. 3600 IN A 127.0.0.9
a.b.ent.example.test. 60 IN TXT \"x;y\"
";

    fn ask(z: &Zones, name: &str, t: u16) -> Answer {
        z.resolve(&Question {
            name: super::super::text::parse_name(name).unwrap(),
            qtype: t,
            qclass: 1,
        })
    }

    #[test]
    fn parses_a_zone_with_comments_and_quoted_semicolons() {
        let z = zone_from_text(EXAMPLE).unwrap();
        assert_eq!(z.apex.to_string(), "example.test.");
        assert_eq!(z.nodes.len(), 8);
        assert!(zone_from_text("www.example.test. 300 IN A 192.0.2.1\n").is_err(), "no SOA");
    }

    #[test]
    fn answers_referrals_cnames_wildcards_and_negatives() {
        let z = zones(&[EXAMPLE]);
        let a = ask(&z, "WWW.example.test", rtype::A);
        assert!(a.aa && a.rcode == NOERROR && a.answer.len() == 1);
        let a = ask(&z, "alias.example.test", rtype::A);
        assert_eq!(a.answer.len(), 2, "the CNAME, then www's A");
        let a = ask(&z, "x.y.wild.example.test", rtype::A);
        assert_eq!(a.answer[0].name.to_string(), "x.y.wild.example.test.");
        let a = ask(&z, "host.sub.example.test", rtype::A);
        assert!(
            !a.aa && a.answer.is_empty() && a.authority.len() == 1 && a.additional.len() == 1,
            "a referral with glue"
        );
        let a = ask(&z, "nope.example.test", rtype::A);
        assert_eq!(
            (a.rcode, a.authority[0].ttl),
            (NXDOMAIN, 5),
            "NXDOMAIN with the SOA at min(TTL, MINIMUM)"
        );
        let a = ask(&z, "b.ent.example.test", rtype::A);
        assert_eq!((a.rcode, a.answer.len()), (NOERROR, 0), "an empty non-terminal is NODATA");
        let a = ask(&z, "www.other.test", rtype::A);
        assert_eq!(a.rcode, REFUSED);
    }

    #[test]
    fn truncates_udp_answers_over_512_octets_without_edns() {
        let mut text = EXAMPLE.to_string();
        for i in 0..40 {
            text.push_str(&format!(
                "big.example.test. 60 IN TXT \"record number {i} with some padding text\"\n"
            ));
        }
        let z = zones(&[&text]);
        let q = DnsMessage {
            id: 9,
            questions: vec![Question {
                name: super::super::text::parse_name("big.example.test").unwrap(),
                qtype: rtype::TXT,
                qclass: 1,
            }],
            ..DnsMessage::default()
        };
        let udp = z.reply(&wire::emit(&q), Transport::Udp, &Faults::default());
        let m = wire::parse(&udp[0]).unwrap().msg;
        assert!(m.tc && m.answer.is_empty() && udp[0].len() <= UDP_PLAIN);
        let tcp = z.reply(&wire::emit(&q), Transport::Tcp, &Faults::default());
        assert_eq!(wire::parse(&tcp[0]).unwrap().msg.answer.len(), 40);
    }
}
