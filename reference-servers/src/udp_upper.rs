//! `udp-upper`: the textbook's UDPServer.
//!
//! ```python
//! while True:
//!     message, clientAddress = serverSocket.recvfrom(2048)
//!     modifiedMessage = message.decode().upper()
//!     serverSocket.sendto(modifiedMessage.encode(), clientAddress)
//! ```
//!
//! The receive buffer holds the largest possible datagram rather than 2048
//! bytes, so nothing is ever silently truncated.

use std::net::SocketAddr;

use tokio::net::UdpSocket;

use crate::{uppercase, Error, OptionSet, Options, RunningServer, Transport};

pub(crate) const NAME: &str = "udp-upper";
const OPTIONS: &[&str] = &[];

/// Big enough for any UDP payload.
pub(crate) const MAX_DATAGRAM: usize = 65535;

pub(crate) async fn start(bind: SocketAddr, opts: &Options) -> Result<RunningServer, Error> {
    OptionSet::new(NAME, OPTIONS, opts)?;
    let server_socket = UdpSocket::bind(bind).await?;
    let local_addr = server_socket.local_addr()?;
    Ok(RunningServer::spawn(local_addr, Transport::Udp, serve(server_socket)))
}

async fn serve(server_socket: UdpSocket) {
    let mut message = vec![0u8; MAX_DATAGRAM];
    loop {
        // Receive errors (e.g. an ICMP "port unreachable" for an earlier
        // reply, reported on some platforms) concern one peer, not the server.
        let Ok((len, client_address)) = server_socket.recv_from(&mut message).await else {
            continue;
        };
        let modified_message = uppercase(&message[..len]);
        // A reply that grew past the datagram limit cannot be sent; UDP
        // lets us just drop it.
        let _ = server_socket.send_to(&modified_message, client_address).await;
    }
}
