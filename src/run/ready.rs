//! Readiness without a probe connection: watch the kernel's socket tables for the target's socket.
//!
//! A probe that connects would crash the textbook web server (an empty request) or use up a
//! server without an accept loop, so on Linux we look for a socket bound to the port in
//! `/proc/net/{tcp,tcp6,udp,udp6}` whose inode one of the target's processes holds open.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::proto::Transport;

/// A bound socket found in the kernel's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundSocket {
    /// The address it is bound to.
    pub local: SocketAddr,
    /// Its inode (what `/proc/PID/fd/N` links to as `socket:[inode]`).
    pub inode: u64,
}

/// Sockets bound to `port`: listening TCP sockets, or any UDP socket.
pub fn bound_sockets(port: u16, transport: Transport) -> Vec<BoundSocket> {
    all_bound(transport).into_iter().filter(|s| s.local.port() == port).collect()
}

/// Every listening TCP socket, or every bound UDP socket.
fn all_bound(transport: Transport) -> Vec<BoundSocket> {
    let (files, state) = match transport {
        Transport::Tcp => (["/proc/net/tcp", "/proc/net/tcp6"], "0A"),
        Transport::Udp | Transport::Quic => (["/proc/net/udp", "/proc/net/udp6"], "07"),
    };
    let mut out = Vec::new();
    for f in files {
        if let Ok(text) = std::fs::read_to_string(f) {
            out.extend(parse_table(&text, state));
        }
    }
    out
}

/// The ports process group `pgid` listens on (TCP) or has bound (UDP), sorted: when a program
/// never opens the port it was given, this says where it listens instead.
pub fn ports_of(pgid: i32, transport: Transport) -> Vec<u16> {
    let held = socket_inodes(&group_members(pgid));
    let mut ports: Vec<u16> = all_bound(transport)
        .into_iter()
        .filter(|s| held.contains(&s.inode))
        .map(|s| s.local.port())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Parses a `/proc/net/{tcp,udp}[6]` table, keeping rows in `state`.
pub fn parse_table(text: &str, state: &str) -> Vec<BoundSocket> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != state {
                return None;
            }
            let local = parse_addr(cols[1])?;
            let inode = cols[9].parse().ok()?;
            Some(BoundSocket { local, inode })
        })
        .collect()
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints each 32-bit word of the address in host (little-endian) order.
    let words: Option<Vec<u32>> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok())
        .collect();
    let words = words?;
    let ip = match words.len() {
        1 => IpAddr::V4(Ipv4Addr::from(words[0].to_le_bytes())),
        4 => {
            let mut b = [0u8; 16];
            for (i, w) in words.iter().enumerate() {
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // Fields after the command (which may contain spaces) start after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                return false;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.len() > 3 && f[0] != "Z" && f[2].parse() == Ok(pgid)
        })
        .collect()
}

/// Socket inodes held open by `pids`.
fn socket_inodes(pids: &[i32]) -> HashSet<u64> {
    let mut out = HashSet::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let l = link.to_string_lossy();
                if let Some(n) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    if let Ok(n) = n.parse() {
                        out.insert(n);
                    }
                }
            }
        }
    }
    out
}

/// Where to reach the target if process group `pgid` has a socket bound to `port`.
pub fn ready_addr(pgid: i32, port: u16, transport: Transport) -> Option<SocketAddr> {
    let bound = bound_sockets(port, transport);
    if bound.is_empty() {
        return None;
    }
    let held = socket_inodes(&group_members(pgid));
    let s = bound.iter().find(|s| held.contains(&s.inode))?;
    Some(connect_addr(s.local))
}

/// The address to connect to for a socket bound to `local` (wildcards become loopback).
pub fn connect_addr(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// Whether this OS has socket tables to watch.
pub fn supported() -> bool {
    std::path::Path::new("/proc/net/tcp").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_rows() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F91 00000000:0000 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        let rows = parse_table(v4, "0A");
        assert_eq!(
            rows,
            vec![BoundSocket {
                local: "127.0.0.1:8080".parse().unwrap(),
                inode: 12345
            }]
        );
        let v6 = "header\n   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0 777\n";
        assert_eq!(parse_table(v6, "0A")[0].local, "[::1]:80".parse().unwrap());
    }

    #[test]
    fn finds_our_own_listener() {
        if !supported() {
            return;
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = nix::unistd::getpgrp().as_raw();
        assert_eq!(ready_addr(me, port, Transport::Tcp), Some(l.local_addr().unwrap()));
        assert_eq!(ready_addr(me, port, Transport::Udp), None);
    }
}
