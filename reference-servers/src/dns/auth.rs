//! `dns`: an authoritative name server (RFC 1035) for the zone files it is
//! given, over UDP and TCP on one port: the "authoritative DNS server" of the
//! slides, and the bottom of the `dns-resolver`'s hierarchy.
//!
//! | query | response |
//! |---|---|
//! | name and type in a zone | AA, the RRset (owner spelled as in the question) |
//! | name with a CNAME, type not CNAME | AA, the CNAME, then the chain followed while the target is in one of the zones |
//! | name exists, type does not | AA, NOERROR, no answer, SOA in authority (TTL min(SOA TTL, MINIMUM), RFC 2308 §3) |
//! | name does not exist | AA, NXDOMAIN, SOA in authority (RFC 2308 §2.1) |
//! | at or below a zone cut | no AA, NS in authority, their addresses from the zone (glue) in additional |
//! | below a wildcard's parent, not existing | AA, the wildcard's records with the question's name as owner (RFC 4592) |
//! | outside every zone, class not IN, AXFR/IXFR | REFUSED |
//!
//! Options: `zone=FILE` and/or `zones=DIR` (every `*.zone` in DIR; at least
//! one of the two), `idle` (TCP idle timeout, default 10s), and `log=FILE`,
//! which appends one line per query, `PEER udp|tcp QNAME QTYPE`: the tests
//! count from it the queries a resolver sent.
//!
//! Choices where the RFCs leave room:
//! - RA is never set, RD and CD are copied;
//! - positive answers carry no NS in authority (as BIND's minimal responses);
//!   answers with NS, MX or SRV records carry the targets' addresses from our
//!   zones in additional (RFC 1035 §3.3.9), left out without TC when they do
//!   not fit; glue of a referral is required: if it does not fit, TC;
//! - a CNAME chain stops at a name outside our zones, at a delegation, at a
//!   loop, or after 8 links; the rcode is that of the last name (RFC 6604);
//! - qtype ANY gets every RRset at the name.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::zone::{self, Lookup, Zone};
use super::{bind_udp_and_tcp, serve, Handler, Pending, Reply, Request, Via};
use crate::guard::{self, Limits};
use crate::{parse_duration, Error, OptionSet, Options, RunningServer, Transport};

/// The name suites and the CLI use for this server.
pub(crate) const NAME: &str = "dns";
const OPTIONS: &[&str] = &["zone", "zones", "idle", "log", guard::OPTIONS[0], guard::OPTIONS[1]];
/// CNAME links followed within our zones.
const MAX_CHAIN: usize = 8;

/// The zones, and where to log queries.
#[derive(Debug)]
struct Authority {
    zones: Vec<Zone>,
    log: Option<Mutex<File>>,
}

/// Checks the options, loads the zones, binds UDP and TCP, and starts serving.
pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let idle = opts.get("idle", "10s", parse_duration)?;
    let limits = Limits::from_options(&opts)?;
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(file) = opts.given("zone") {
        files.push(("zone", PathBuf::from(file)));
    }
    if let Some(dir) = opts.given("zones") {
        files.extend(opts.parse("zones", dir, zone_files)?.into_iter().map(|file| ("zones", file)));
    }
    if files.is_empty() {
        return Err(Error::BadOption {
            server: NAME.to_owned(),
            key: "zone".to_owned(),
            value: String::new(),
            why: "give the zones to serve: zone=FILE (one zone file) and/or zones=DIR (every *.zone file in DIR)".to_owned(),
        });
    }
    let mut zones: Vec<Zone> = Vec::new();
    for (key, file) in files {
        let value = file.display().to_string();
        let zone = opts.parse(key, &value, |_| zone::load(&file))?;
        if zones.iter().any(|known| known.origin() == zone.origin()) {
            return Err(Error::BadOption {
                server: NAME.to_owned(),
                key: key.to_owned(),
                value,
                why: format!("a second zone file for {}", zone.origin()),
            });
        }
        zones.push(zone);
    }
    let log = match opts.given("log") {
        None => None,
        Some(path) => Some(Mutex::new(opts.parse("log", path, |path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| format!("cannot open for appending: {err}"))
        })?)),
    };
    let (udp, tcp) = bind_udp_and_tcp(bind).await?;
    let local_addr = udp.local_addr()?;
    let authority = Arc::new(Authority { zones, log });
    Ok(RunningServer::spawn(
        local_addr,
        Transport::Udp,
        serve(udp, tcp, authority, idle, limits),
    ))
}

/// The `*.zone` files in `dir`, sorted by name.
fn zone_files(dir: &str) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|err| format!("cannot read the directory: {err}"))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "zone"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err("no *.zone files in it".to_owned());
    }
    Ok(files)
}

impl Handler for Authority {
    fn answer(self: Arc<Self>, request: Request, peer: SocketAddr, via: Via) -> Pending {
        self.log(peer, via, &request.query);
        let reply = self.respond(&request);
        Box::pin(std::future::ready(reply))
    }
}

impl Authority {
    /// Appends `PEER VIA QNAME QTYPE` to the log, if there is one.
    fn log(&self, peer: SocketAddr, via: Via, query: &Query) {
        let Some(log) = &self.log else {
            return;
        };
        let line = format!("{peer} {} {} {}\n", via.as_str(), query.name(), query.query_type());
        if let Ok(mut file) = log.lock() {
            let _ = file.write_all(line.as_bytes());
        }
    }

    /// The zone `name` belongs to: the one with the longest origin above it.
    fn zone_for(&self, name: &Name) -> Option<&Zone> {
        self.zones
            .iter()
            .filter(|zone| zone.origin().zone_of(name))
            .max_by_key(|zone| super::label_count(zone.origin()))
    }

    /// The response to a well-formed query (see the table in the module documentation).
    fn respond(&self, request: &Request) -> Reply {
        let query = &request.query;
        let qtype = query.query_type();
        let refused = || request.response(ResponseCode::Refused).into();
        if query.query_class() != DNSClass::IN || matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return refused();
        }
        let Some(mut zone) = self.zone_for(query.name()) else {
            return refused();
        };
        let mut response = request.response(ResponseCode::NoError);
        response.set_authoritative(true);
        let mut optional = Vec::new();
        // The owner the records get: the question's spelling first, then each CNAME's target.
        let mut name = query.name().clone();
        let mut seen = vec![name.clone()];
        for step in 0..MAX_CHAIN {
            match zone.lookup(&name, qtype) {
                Lookup::Records(records) => {
                    let records: Vec<Record> = records.into_iter().map(|record| with_owner(record, &name)).collect();
                    optional = self.additional_for(&records);
                    response.add_answers(records);
                }
                Lookup::Cname(record) => {
                    response.add_answer(with_owner(record, &name));
                    let Some(target) = record.data().as_cname().map(|cname| cname.0.clone()) else {
                        break;
                    };
                    match self.zone_for(&target) {
                        Some(next) if !seen.contains(&target) => {
                            (zone, name) = (next, target);
                            seen.push(name.clone());
                            continue;
                        }
                        _ => {}
                    }
                }
                Lookup::NoData => {
                    response.add_name_server(zone.negative_soa());
                }
                Lookup::NxDomain => {
                    response.set_response_code(ResponseCode::NXDomain);
                    response.add_name_server(zone.negative_soa());
                }
                Lookup::Referral { ns, glue } => {
                    // Within a chain, the CNAMEs so far are the answer.
                    if step == 0 {
                        response.set_authoritative(false);
                        response.add_name_servers(ns.iter().cloned());
                        response.add_additionals(glue.into_iter().cloned());
                    }
                }
            }
            break;
        }
        Reply {
            message: response,
            optional,
        }
    }

    /// RFC 1035 §3.3.9, §3.3.11, RFC 2782: the addresses of the name servers,
    /// mail exchanges and service targets in `answers`, where our zones have them.
    fn additional_for(&self, answers: &[Record]) -> Vec<Record> {
        let mut targets: Vec<&Name> = Vec::new();
        for record in answers {
            let target = match record.data() {
                RData::NS(ns) => &ns.0,
                RData::MX(mx) => mx.exchange(),
                RData::SRV(srv) => srv.target(),
                _ => continue,
            };
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        let mut additional = Vec::new();
        for target in targets {
            if let Some(zone) = self.zone_for(target).filter(|zone| !zone.is_delegated(target)) {
                additional.extend(zone.addresses(target).into_iter().cloned());
            }
        }
        additional
    }
}

/// `record` with `owner` as its name (the question's spelling, or the name a wildcard matched).
fn with_owner(record: &Record, owner: &Name) -> Record {
    let mut record = record.clone();
    record.set_name(owner.clone());
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{decode, Incoming};
    use hickory_proto::op::Message;

    fn authority() -> Authority {
        let zones = zone_files(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/dns"))
            .unwrap()
            .iter()
            .map(|file| zone::load(file).unwrap())
            .collect();
        Authority { zones, log: None }
    }

    fn ask(authority: &Authority, name: &str, qtype: RecordType) -> Message {
        let mut message = Message::new();
        message.set_id(7).add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        let Incoming::Query(request) = decode(&message.to_vec().unwrap()) else {
            panic!("not a query");
        };
        authority.respond(&request).message
    }

    #[test]
    fn answers() {
        let authority = authority();
        let chain = ask(&authority, "Chain.Example.Test.", RecordType::A);
        let owners: Vec<String> = chain
            .answers()
            .iter()
            .map(|r| format!("{} {}", r.name(), r.record_type()))
            .collect();
        assert_eq!(
            owners,
            [
                "Chain.Example.Test. CNAME",
                "alias.example.test. CNAME",
                "www.example.test. A",
                "www.example.test. A"
            ]
        );
        assert!(chain.authoritative());
        let referral = ask(&authority, "x.sub.example.test.", RecordType::A);
        assert!(!referral.authoritative());
        assert_eq!(referral.name_servers().len(), 1);
        assert_eq!(referral.additionals().len(), 1);
        assert_eq!(
            ask(&authority, "nope.example.test.", RecordType::A).response_code(),
            ResponseCode::NXDomain
        );
        assert_eq!(
            ask(&authority, "www.example.com.", RecordType::A).response_code(),
            ResponseCode::Refused
        );
        let ptr = ask(&authority, "80.2.0.192.in-addr.arpa.", RecordType::PTR);
        assert_eq!(ptr.answers()[0].data().as_ptr().unwrap().0.to_ascii(), "www.example.test.");
    }
}
