//! `udp-pinger`: the UDPPingerServer from the chapter 2 ping assignment.
//!
//! ```python
//! while True:
//!     rand = random.randint(0, 10)
//!     message, address = serverSocket.recvfrom(1024)
//!     message = message.upper()
//!     if rand < 4:
//!         continue
//!     serverSocket.sendto(message, address)
//! ```
//!
//! The simulated packet loss is seeded (or given as an explicit list of
//! datagram numbers) so that a run can be repeated exactly.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

use crate::udp_upper::MAX_DATAGRAM;
use crate::{parse_count, uppercase, Error, OptionSet, Options, RunningServer, Transport};

pub(crate) const NAME: &str = "udp-pinger";
const OPTIONS: &[&str] = &["drop", "loss", "seed"];

/// Decides which datagrams the server pretends were lost.
enum Loss {
    /// Each datagram is dropped with probability `fraction`.
    Random { rng: fastrand::Rng, fraction: f64 },
    /// Exactly these (1-based) datagram numbers are dropped.
    Listed(BTreeSet<u64>),
}

impl Loss {
    fn drops(&mut self, number: u64) -> bool {
        match self {
            Loss::Random { rng, fraction } => rng.f64() < *fraction,
            Loss::Listed(numbers) => numbers.contains(&number),
        }
    }
}

pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    // Validate every option even when `drop` makes the others irrelevant,
    // so a typo is never silently accepted.
    let fraction = opts.get("loss", "0.3", parse_fraction)?;
    let seed = opts.get("seed", "1", |v| parse_count(v, 0, u64::MAX))?;
    let loss = match opts.given("drop") {
        Some(list) => Loss::Listed(opts.parse("drop", list, parse_numbers)?),
        None => Loss::Random {
            rng: fastrand::Rng::with_seed(seed),
            fraction,
        },
    };
    let server_socket = UdpSocket::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    Ok(RunningServer::spawn(local_addr, Transport::Udp, serve(server_socket, loss)))
}

async fn serve(server_socket: UdpSocket, mut loss: Loss) {
    let mut message = vec![0u8; MAX_DATAGRAM];
    let mut received: u64 = 0;
    loop {
        let Ok((len, address)) = server_socket.recv_from(&mut message).await else {
            continue; // see udp_upper: a receive error concerns one peer only
        };
        received += 1;
        let reply = uppercase(&message[..len]);
        if loss.drops(received) {
            continue;
        }
        let _ = server_socket.send_to(&reply, address).await;
    }
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err("expected a fraction from 0 to 1, such as 0.3".to_owned()),
    }
}

/// Parses `3,7` into {3, 7}; an empty list means "drop nothing".
fn parse_numbers(text: &str) -> Result<BTreeSet<u64>, String> {
    if text.trim().is_empty() {
        return Ok(BTreeSet::new());
    }
    text.split(',')
        .map(|n| parse_count(n, 1, u64::MAX))
        .collect::<Result<_, _>>()
        .map_err(|_| "expected comma-separated datagram numbers (from 1), such as 3,7".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_lists() {
        assert_eq!(parse_numbers("3,7"), Ok(BTreeSet::from([3, 7])));
        assert_eq!(parse_numbers(" 7, 3 ,3"), Ok(BTreeSet::from([3, 7])));
        assert_eq!(parse_numbers(""), Ok(BTreeSet::new()));
        for bad in ["0", "3,,7", "3;7", "-1", "x"] {
            assert!(parse_numbers(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn fractions() {
        assert_eq!(parse_fraction("0.3"), Ok(0.3));
        assert_eq!(parse_fraction("1"), Ok(1.0));
        for bad in ["-0.1", "1.01", "NaN", "lots"] {
            assert!(parse_fraction(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
