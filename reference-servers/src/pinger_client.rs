//! `udp-pinger` client: the UDPPingerClient the ping assignment asks for.
//!
//! ```python
//! clientSocket.settimeout(1)
//! for seq in range(1, 11):
//!     sent = time.time()
//!     clientSocket.sendto(f"Ping {seq} {sent}".encode(), server)
//!     try:
//!         reply, _ = clientSocket.recvfrom(1024)
//!         print(reply.decode())
//!         print(f"RTT: {time.time() - sent:.6f} s")
//!     except timeout:
//!         print("Request timed out")
//! ```
//!
//! Unlike that sketch, a reply to an earlier ping that arrives late is not
//! mistaken for the current one: only `PING <seq> ...` is accepted, and
//! anything else is ignored for the rest of the same timeout.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{timeout_at, Instant};

use crate::udp_upper::MAX_DATAGRAM;
use crate::{parse_count, parse_duration, Error, OptionSet, Options};

pub(crate) const NAME: &str = "udp-pinger";
const OPTIONS: &[&str] = &["count", "timeout"];

/// Keeps a mistyped `count` from running for hours.
const MAX_PINGS: u64 = 10_000;

pub(crate) async fn run(server: SocketAddr, opts: &Options, out: UnboundedSender<String>) -> Result<i32, Error> {
    let opts = OptionSet::new(NAME, OPTIONS, opts)?;
    let wait = opts.get("timeout", "1s", parse_duration)?;
    let count = opts.get("count", "10", |v| parse_count(v, 1, MAX_PINGS))?;
    // A closed output channel only means nobody is listening any more.
    let print = |line: String| {
        let _ = out.send(line);
    };

    let any_port = match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let client_socket = UdpSocket::bind(any_port).await?;
    let mut reply = vec![0u8; MAX_DATAGRAM];

    for seq in 1..=count {
        let message = format!("Ping {seq} {:.6}", seconds_since_epoch());
        let sent = Instant::now();
        if let Err(e) = client_socket.send_to(message.as_bytes(), server).await {
            print(format!("Error: {e}"));
            return Ok(1);
        }
        let expected = format!("PING {seq} ");
        match timeout_at(sent + wait, recv_reply(&client_socket, &expected, &mut reply)).await {
            Ok(Ok(text)) => {
                print(text);
                print(format!("RTT: {:.6} s", sent.elapsed().as_secs_f64()));
            }
            Ok(Err(e)) => {
                print(format!("Error: {e}"));
                return Ok(1);
            }
            Err(_) => print("Request timed out".to_owned()),
        }
    }
    Ok(0)
}

/// Waits for the reply that starts with `expected`, skipping anything else.
async fn recv_reply(client_socket: &UdpSocket, expected: &str, buf: &mut [u8]) -> std::io::Result<String> {
    loop {
        let (len, _from) = client_socket.recv_from(buf).await?;
        let text = String::from_utf8_lossy(&buf[..len]);
        if text.starts_with(expected) {
            return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
        }
    }
}

fn seconds_since_epoch() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64()
}
