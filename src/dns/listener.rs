//! The loopback DNS listener: binds UDP and TCP on each listen address; UDP is served by our own
//! loop ([`super::udp`], with the cache-hit fast path), TCP by hickory-server. Only loopback
//! addresses are accepted: splitdns is a local stub, never an open resolver. Port 0 binds an
//! ephemeral port, the same one for UDP and TCP (useful for tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_server::Server;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handler::Handler;

/// Idle time after which a client's TCP connection is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Most UDP sockets (receive loops) per address.
const MAX_UDP_SOCKETS: usize = 8;

/// A running listener.
pub(crate) struct Listener {
    server: Server<Handler>,
    addrs: Vec<SocketAddr>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// One UDP socket per core this process may run on (its CPU affinity), so cached answers scale
/// with the cores; a single socket (no `SO_REUSEPORT`) on one core.
fn udp_sockets_per_address() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, MAX_UDP_SOCKETS)
}

impl Listener {
    /// Binds every address (UDP and TCP) and starts serving.
    pub(crate) async fn bind(listen: &[SocketAddr], handler: Handler) -> anyhow::Result<Self> {
        let mut server = Server::new(handler.clone());
        let mut addrs = Vec::new();
        let (cancel, tracker) = (CancellationToken::new(), TaskTracker::new());
        let per_address = udp_sockets_per_address();
        for addr in listen {
            if !addr.ip().is_loopback() {
                bail!(
                    "listen address {addr} is not a loopback address: splitdns answers only local \
                     clients; use 127.0.0.1, another 127.x.y.z address, or ::1"
                );
            }
            let (udp, tcp) = bind_pair(*addr, per_address).await?;
            let bound = tcp.local_addr()?;
            for socket in udp {
                tracker.spawn(super::udp::serve(Arc::new(socket), handler.clone(), tracker.clone(), cancel.clone()));
            }
            server.register_listener(tcp, TCP_IDLE, 32);
            addrs.push(bound);
        }
        Ok(Self { server, addrs, cancel, tracker })
    }

    /// The addresses actually bound (with real ports when 0 was asked for).
    pub(crate) fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops accepting queries and waits for the ones in progress.
    pub(crate) async fn shutdown(mut self) {
        self.cancel.cancel();
        self.tracker.close();
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!(error = %e, "listener shutdown");
        }
        self.tracker.wait().await;
    }
}

/// Binds `count` UDP sockets on `addr` (sharing the port with `SO_REUSEPORT` when more than one).
fn bind_udp(addr: SocketAddr, count: usize) -> std::io::Result<Vec<UdpSocket>> {
    let mut sockets = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if count > 1 {
            s.set_reuse_port(true)?;
        }
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let std: std::net::UdpSocket = s.into();
        // The first socket fixes the port (when 0 was asked for); the others join it.
        addr = std.local_addr()?;
        sockets.push(UdpSocket::from_std(std)?);
    }
    Ok(sockets)
}

async fn bind_pair(addr: SocketAddr, udp_count: usize) -> anyhow::Result<(Vec<UdpSocket>, TcpListener)> {
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
        let udp = match bind_udp(addr, udp_count) {
            Ok(s) => s,
            Err(e) => {
                let h = hint(&e);
                return Err(e).with_context(|| format!("cannot listen on {addr}/udp{h}"));
            }
        };
        let bound = udp.first().map(UdpSocket::local_addr).transpose()?.unwrap_or(addr);
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
