//! The loopback DNS listener: binds UDP and TCP on each listen address and serves them with
//! hickory-server. Only loopback addresses are accepted: splitdns is a local stub, never an open
//! resolver. Port 0 binds an ephemeral port, the same one for UDP and TCP (useful for tests).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

use super::handler::Handler;

/// Idle time after which a client's TCP connection is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// A running listener.
pub struct Listener {
    server: Server<Handler>,
    addrs: Vec<SocketAddr>,
}

impl Listener {
    /// Binds every address (UDP and TCP) and starts serving.
    pub async fn bind(listen: &[SocketAddr], handler: Handler) -> anyhow::Result<Self> {
        let mut server = Server::new(handler);
        let mut addrs = Vec::new();
        for addr in listen {
            if !addr.ip().is_loopback() {
                bail!(
                    "listen address {addr} is not a loopback address: splitdns answers only local \
                     clients; use 127.0.0.1, another 127.x.y.z address, or ::1"
                );
            }
            let (udp, tcp) = bind_pair(*addr).await?;
            let bound = udp.local_addr()?;
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE, 32);
            addrs.push(bound);
        }
        Ok(Self { server, addrs })
    }

    /// The addresses actually bound (with real ports when 0 was asked for).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops accepting queries and waits for the ones in progress.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!(error = %e, "listener shutdown");
        }
    }
}

async fn bind_pair(addr: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let hint = |e: &std::io::Error| -> &'static str {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE: run under the packaged systemd \
                 unit, or `sudo setcap cap_net_bind_service=+ep $(command -v splitdns)`)"
            }
            std::io::ErrorKind::AddrInUse => {
                " (another DNS server already listens there; pick another address with --listen)"
            }
            _ => "",
        }
    };
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = match UdpSocket::bind(addr).await {
            Ok(s) => s,
            Err(e) => {
                let h = hint(&e);
                return Err(e).with_context(|| format!("cannot listen on {addr}/udp{h}"));
            }
        };
        let bound = udp.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => {
                let h = hint(&e);
                return Err(e).with_context(|| format!("cannot listen on {bound}/tcp{h}"));
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port")))
        .with_context(|| format!("cannot find a free port for UDP and TCP on {}", addr.ip()))
}
