//! Where the proxy may connect: loopback only unless the `allow` option says
//! otherwise. A reference proxy that connected anywhere would let whoever can
//! reach it (a student program under test, a suite) make requests into the
//! grading machine's network. The check is made on the addresses a name
//! resolves to, after resolution, and the proxy then connects to exactly
//! those addresses: numeric spellings (`2130706433`, `0x7f.1`) are judged by
//! the address they mean, and a name cannot resolve to one thing when checked
//! and another when used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The default `allow`: IPv4 and IPv6 loopback (IPv4-mapped addresses count as IPv4).
pub(super) const LOOPBACK: &str = "127.0.0.0/8,::1/128";

/// Address ranges the proxy may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Allow {
    ranges: Vec<(IpAddr, u8)>,
}

impl Allow {
    /// Parses a comma-separated list of CIDR ranges (`127.0.0.0/8`) or single addresses (`::1`).
    pub fn parse(text: &str) -> Result<Allow, String> {
        let why = || "expected comma-separated addresses or ranges such as 127.0.0.0/8,::1".to_owned();
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (address, bits) = match part.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (part, None),
            };
            let address: IpAddr = address.trim().parse().map_err(|_| why())?;
            let address = address.to_canonical();
            let width = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => width,
                Some(bits) => bits.trim().parse::<u8>().ok().filter(|&b| b <= width).ok_or_else(why)?,
            };
            ranges.push((address, bits));
        }
        if ranges.is_empty() {
            return Err(why());
        }
        Ok(Allow { ranges })
    }

    /// True if `address` (an IPv4-mapped IPv6 address as its IPv4 address) is in a range.
    pub fn permits(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.ranges.iter().any(|&(range, bits)| match (range, address) {
            (IpAddr::V4(range), IpAddr::V4(address)) => prefix_matches(&range.octets(), &address.octets(), bits),
            (IpAddr::V6(range), IpAddr::V6(address)) => prefix_matches(&range.octets(), &address.octets(), bits),
            _ => false,
        })
    }

    /// The reason given in a 403: what this proxy forwards to.
    pub fn describe(&self) -> String {
        if *self == Allow::loopback() {
            return "this reference proxy forwards only to loopback (127.0.0.0/8, ::1)".to_owned();
        }
        let ranges: Vec<String> = self.ranges.iter().map(|(address, bits)| format!("{address}/{bits}")).collect();
        format!("this reference proxy forwards only to {} (its allow option)", ranges.join(", "))
    }

    /// IPv4 and IPv6 loopback.
    pub fn loopback() -> Allow {
        Allow {
            ranges: vec![(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8), (IpAddr::V6(Ipv6Addr::LOCALHOST), 128)],
        }
    }
}

/// True if the first `bits` bits of `a` and `b` are equal.
fn prefix_matches(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_by_default() {
        let allow = Allow::parse(LOOPBACK).unwrap();
        assert_eq!(allow, Allow::loopback());
        for yes in ["127.0.0.1", "127.255.1.2", "::1", "::ffff:127.0.0.1"] {
            assert!(allow.permits(ip(yes)), "{yes}");
        }
        for no in [
            "10.0.0.1",
            "192.168.1.1",
            "0.0.0.0",
            "::",
            "8.8.8.8",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "fe80::1",
            "128.0.0.1",
        ] {
            assert!(!allow.permits(ip(no)), "{no}");
        }
    }

    #[test]
    fn ranges() {
        let allow = Allow::parse("10.1.0.0/16, 192.168.1.7, fd00::/8").unwrap();
        assert!(allow.permits(ip("10.1.200.3")));
        assert!(!allow.permits(ip("10.2.0.1")));
        assert!(allow.permits(ip("192.168.1.7")));
        assert!(!allow.permits(ip("192.168.1.8")));
        assert!(allow.permits(ip("fd12::1")));
        assert!(!allow.permits(ip("127.0.0.1")));
        assert!(Allow::parse("10.0.0.0/12").unwrap().permits(ip("10.15.0.1")));
        assert!(!Allow::parse("10.0.0.0/12").unwrap().permits(ip("10.16.0.1")));
        for bad in ["", "10.0.0.0/33", "::/129", "localhost", "10.0.0.0/x", ","] {
            assert!(Allow::parse(bad).is_err(), "{bad:?}");
        }
    }
}
