//! Talking to upstream DNS servers: the public upstream and each link's internal servers.
//!
//! Every query gets a fresh, connected UDP socket (so the kernel picks a random source port and only
//! the server's address can answer) and a random message id; a response counts only if its id and
//! question match ours (RFC 5452 §9.1). A truncated answer is retried over TCP. A server that has not
//! answered UDP after one retransmission is also asked over TCP in parallel (the RFC 8229 §5.1 lesson
//! for networks that drop UDP), and a server that answered only over TCP is asked over TCP first for
//! a while. Servers are tried in order of health, the next one starting after a stagger delay or as
//! soon as the previous one fails. Sockets can be bound to a tunnel interface and source address, and
//! a failure to bind is an error, never a silent fallback to another route.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::ede;
use crate::clock::Stamp;

/// How long to wait for what. All of a query's attempts share one deadline, `total`.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Deadline for one client query across all servers and transports.
    pub total: Duration,
    /// Resend over UDP when a server has not answered after this long.
    pub udp_retry: Duration,
    /// Start TCP in parallel when UDP has not answered after this long.
    pub tcp_after: Duration,
    /// Start the next server after this long without an answer.
    pub stagger: Duration,
    /// How long a server that only answered over TCP is asked over TCP first.
    pub prefer_tcp_for: Duration,
}

impl Timing {
    /// Derives the retry schedule from the total deadline.
    pub fn from_total(total: Duration) -> Self {
        Self {
            total,
            udp_retry: total / 8,
            tcp_after: total / 4,
            stagger: total / 4,
            prefer_tcp_for: Duration::from_secs(600),
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self::from_total(Duration::from_secs(4))
    }
}

/// Where queries must leave from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bind {
    /// The tunnel interface, by name (for messages, and where no index is known).
    pub interface: Option<String>,
    /// The interface's index when the link came up: sockets are bound to it (SO_BINDTOIFINDEX),
    /// so a device that later reuses the name never carries the link's queries.
    pub ifindex: Option<u32>,
    pub source: Option<IpAddr>,
}

/// Binds `sock` to the link's interface: by index when known, else by name (Linux only).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_interface(sock: socket2::SockRef<'_>, bind: &Bind, server: SocketAddr) -> Result<(), UpstreamError> {
    let Some(iface) = &bind.interface else { return Ok(()) };
    let result = match bind.ifindex.and_then(std::num::NonZeroU32::new) {
        Some(index) if server.is_ipv4() => sock.bind_device_by_index_v4(Some(index)),
        Some(index) => sock.bind_device_by_index_v6(Some(index)),
        None => sock.bind_device(Some(iface.as_bytes())),
    };
    result.map_err(|e| UpstreamError::Bind {
        server,
        what: match bind.ifindex {
            Some(i) => format!("interface {iface} (index {i})"),
            None => format!("interface {iface}"),
        },
        error: e.to_string(),
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_interface(_sock: socket2::SockRef<'_>, bind: &Bind, server: SocketAddr) -> Result<(), UpstreamError> {
    match &bind.interface {
        None => Ok(()),
        Some(iface) => Err(UpstreamError::Bind {
            server,
            what: format!("interface {iface}"),
            error: "binding to an interface is only supported on Linux".into(),
        }),
    }
}

/// What one server has shown; read by `status`.
#[derive(Debug)]
pub struct ServerState {
    addr: SocketAddr,
    prefer_tcp_until_ms: AtomicU64,
    answers_udp: AtomicU64,
    answers_tcp: AtomicU64,
    failures: AtomicU64,
    last_failure_ms: AtomicU64,
}

/// One server at one moment (what `status` shows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerReport {
    pub addr: SocketAddr,
    /// Answered only over TCP lately: asked over TCP first for a while.
    pub tcp_first: bool,
    pub answers_udp: u64,
    pub answers_tcp: u64,
    pub failures: u64,
}

impl ServerState {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            prefer_tcp_until_ms: AtomicU64::new(0),
            answers_udp: AtomicU64::new(0),
            answers_tcp: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_failure_ms: AtomicU64::new(0),
        }
    }

    /// True while this server is known to answer only over TCP.
    pub fn prefers_tcp(&self, epoch: Stamp) -> bool {
        self.prefer_tcp_until_ms.load(Ordering::Relaxed) > millis(epoch)
    }

    fn recently_failed(&self, epoch: Stamp) -> bool {
        let last = self.last_failure_ms.load(Ordering::Relaxed);
        last != 0 && millis(epoch).saturating_sub(last) < 30_000
    }
}

fn millis(epoch: Stamp) -> u64 {
    epoch.elapsed().as_millis() as u64 + 1
}

/// Why an upstream query produced no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream server is configured")]
    NoServers,
    #[error("no answer from {servers} within {after_ms} ms")]
    Timeout { servers: String, after_ms: u128 },
    #[error("{server} answered {rcode}")]
    Rcode { server: SocketAddr, rcode: ResponseCode },
    #[error("cannot send to {server}: {error}")]
    Network { server: SocketAddr, error: String },
    #[error("cannot bind the query socket for {server} ({what}): {error}")]
    Bind { server: SocketAddr, what: String, error: String },
    #[error("query abandoned: {0}")]
    Abandoned(String),
}

impl UpstreamError {
    /// The RFC 8914 extended error that tells the client why it got SERVFAIL.
    pub fn ede_code(&self) -> u16 {
        match self {
            UpstreamError::NoServers | UpstreamError::Timeout { .. } => ede::NO_REACHABLE_AUTHORITY,
            UpstreamError::Rcode { .. } => ede::NO_REACHABLE_AUTHORITY,
            UpstreamError::Network { .. } | UpstreamError::Bind { .. } => ede::NETWORK_ERROR,
            UpstreamError::Abandoned(_) => ede::OTHER,
        }
    }
}

/// The flags of the client's query that shape ours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueryFlags {
    pub dnssec_ok: bool,
    pub checking_disabled: bool,
}

/// A set of servers queried as one (a link's internal servers, or the public upstream).
#[derive(Debug)]
pub struct Upstream {
    servers: Vec<ServerState>,
    bind: Bind,
    timing: Timing,
    epoch: Stamp,
}

/// EDNS buffer size we offer upstream (DNS flag day 2020; tunnels have small MTUs).
pub const EDNS_PAYLOAD: u16 = 1232;
const MAX_TCP_MESSAGE: usize = 65535;

impl Upstream {
    pub fn new(servers: &[SocketAddr], bind: Bind, timing: Timing) -> Self {
        Self { servers: servers.iter().map(|a| ServerState::new(*a)).collect(), bind, timing, epoch: Stamp::now() }
    }

    /// Each server's state, read once.
    pub fn report(&self) -> Vec<ServerReport> {
        self.servers
            .iter()
            .map(|s| ServerReport {
                addr: s.addr,
                tcp_first: s.prefers_tcp(self.epoch),
                answers_udp: s.answers_udp.load(Ordering::Relaxed),
                answers_tcp: s.answers_tcp.load(Ordering::Relaxed),
                failures: s.failures.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The servers' addresses, in order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }

    pub fn bind(&self) -> &Bind {
        &self.bind
    }

    pub fn epoch(&self) -> Stamp {
        self.epoch
    }

    /// Asks the servers `query`, returning the first acceptable answer (NOERROR or NXDOMAIN).
    /// Returns early with [`UpstreamError::Abandoned`] when `cancel` fires.
    pub async fn query(
        &self,
        query: &Query,
        flags: QueryFlags,
        cancel: &CancellationToken,
        why_cancelled: impl Fn() -> String,
    ) -> Result<Message, UpstreamError> {
        if self.servers.is_empty() {
            return Err(UpstreamError::NoServers);
        }
        let started = Stamp::now();
        let deadline = tokio::time::Instant::now() + self.timing.total;
        // Healthy servers first, in configured order.
        let mut order: Vec<&ServerState> = self.servers.iter().collect();
        order.sort_by_key(|s| s.recently_failed(self.epoch));
        let mut pending = order.into_iter();
        let mut running = FuturesUnordered::new();
        let mut last_error: Option<UpstreamError> = None;
        if let Some(s) = pending.next() {
            running.push(self.ask_server(s, query, flags, deadline));
        }
        let mut next_start = tokio::time::Instant::now() + self.timing.stagger;
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(UpstreamError::Abandoned(why_cancelled())),
                Some(result) = running.next() => match result {
                    Ok(msg) => return Ok(msg),
                    Err(e) => {
                        last_error = Some(e);
                        if let Some(s) = pending.next() {
                            running.push(self.ask_server(s, query, flags, deadline));
                            next_start = tokio::time::Instant::now() + self.timing.stagger;
                        } else if running.is_empty() {
                            break;
                        }
                    }
                },
                _ = tokio::time::sleep_until(next_start), if pending.len() > 0 => {
                    if let Some(s) = pending.next() {
                        running.push(self.ask_server(s, query, flags, deadline));
                    }
                    next_start = tokio::time::Instant::now() + self.timing.stagger;
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        Err(match last_error {
            Some(e @ (UpstreamError::Rcode { .. } | UpstreamError::Network { .. } | UpstreamError::Bind { .. }))
                if running.is_empty() =>
            {
                e
            }
            _ => UpstreamError::Timeout {
                servers: self.servers.iter().map(|s| s.addr.to_string()).collect::<Vec<_>>().join(", "),
                after_ms: started.elapsed().as_millis(),
            },
        })
    }

    /// One server: UDP with a retransmission, TCP in parallel after `tcp_after`, TCP at once on
    /// truncation; TCP first if the server is known to need it.
    async fn ask_server(
        &self,
        server: &ServerState,
        query: &Query,
        flags: QueryFlags,
        deadline: tokio::time::Instant,
    ) -> Result<Message, UpstreamError> {
        let result = tokio::time::timeout_at(deadline, self.exchange(server, query, flags)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout {
                servers: server.addr.to_string(),
                after_ms: self.timing.total.as_millis(),
            }),
        };
        match &result {
            Ok(_) => server.last_failure_ms.store(0, Ordering::Relaxed),
            Err(_) => {
                server.failures.fetch_add(1, Ordering::Relaxed);
                server.last_failure_ms.store(millis(self.epoch), Ordering::Relaxed);
            }
        }
        result
    }

    async fn exchange(&self, server: &ServerState, query: &Query, flags: QueryFlags) -> Result<Message, UpstreamError> {
        let id: u16 = rand::random();
        let wire = encode_query(id, query, flags)
            .map_err(|e| UpstreamError::Network { server: server.addr, error: format!("cannot encode query: {e}") })?;
        if server.prefers_tcp(self.epoch) {
            match self.tcp(server.addr, &wire, id, query).await {
                Ok(m) => {
                    server.answers_tcp.fetch_add(1, Ordering::Relaxed);
                    return accept(server.addr, m);
                }
                // TCP broke; try UDP again and forget the preference.
                Err(_) => server.prefer_tcp_until_ms.store(0, Ordering::Relaxed),
            }
        }
        let sock = self.udp_socket(server.addr).await?;
        let net_err = |e: std::io::Error| UpstreamError::Network { server: server.addr, error: e.to_string() };
        sock.send(&wire).await.map_err(net_err)?;

        let retry = tokio::time::sleep(self.timing.udp_retry);
        let tcp_start = tokio::time::sleep(self.timing.tcp_after);
        tokio::pin!(retry, tcp_start);
        let mut retried = false;
        let mut tcp_started = false;
        let mut tcp_failed = false;
        let tcp = futures_util::future::OptionFuture::from(None);
        tokio::pin!(tcp);
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                r = sock.recv(&mut buf) => {
                    let n = r.map_err(net_err)?;
                    let Some(msg) = matching_response(&buf[..n], id, query) else { continue };
                    if msg.metadata.truncation {
                        let m = self.tcp(server.addr, &wire, id, query).await?;
                        server.answers_tcp.fetch_add(1, Ordering::Relaxed);
                        return accept(server.addr, m);
                    }
                    server.answers_udp.fetch_add(1, Ordering::Relaxed);
                    return accept(server.addr, msg);
                }
                _ = &mut retry, if !retried => {
                    retried = true;
                    sock.send(&wire).await.map_err(net_err)?;
                }
                _ = &mut tcp_start, if !tcp_started => {
                    tcp_started = true;
                    tcp.set(Some(Box::pin(self.tcp(server.addr, &wire, id, query))).into());
                }
                Some(r) = &mut tcp, if tcp_started && !tcp_failed => match r {
                    Ok(m) => {
                        // UDP stayed silent but TCP works: remember that for this server.
                        let until = millis(self.epoch) + self.timing.prefer_tcp_for.as_millis() as u64;
                        server.prefer_tcp_until_ms.store(until, Ordering::Relaxed);
                        server.answers_tcp.fetch_add(1, Ordering::Relaxed);
                        return accept(server.addr, m);
                    }
                    Err(_) => tcp_failed = true,
                },
            }
        }
    }

    async fn udp_socket(&self, server: SocketAddr) -> Result<UdpSocket, UpstreamError> {
        let local = self.local_addr(server);
        let bind_err = |what: String, e: std::io::Error| UpstreamError::Bind { server, what, error: e.to_string() };
        let sock = UdpSocket::bind(local).await.map_err(|e| bind_err(format!("source {}", local.ip()), e))?;
        bind_interface(socket2::SockRef::from(&sock), &self.bind, server)?;
        sock.connect(server).await.map_err(|e| UpstreamError::Network { server, error: e.to_string() })?;
        Ok(sock)
    }

    fn local_addr(&self, server: SocketAddr) -> SocketAddr {
        let ip = self.bind.source.unwrap_or(match server {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        SocketAddr::new(ip, 0)
    }

    async fn tcp(&self, server: SocketAddr, wire: &[u8], id: u16, query: &Query) -> Result<Message, UpstreamError> {
        let net_err = |e: std::io::Error| UpstreamError::Network { server, error: format!("tcp: {e}") };
        let bind_err = |what: String, e: std::io::Error| UpstreamError::Bind { server, what, error: e.to_string() };
        let sock = match server {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(net_err)?;
        bind_interface(socket2::SockRef::from(&sock), &self.bind, server)?;
        if let Some(src) = self.bind.source {
            sock.bind(SocketAddr::new(src, 0)).map_err(|e| bind_err(format!("source {src}"), e))?;
        }
        let mut stream = sock.connect(server).await.map_err(net_err)?;
        let mut framed = Vec::with_capacity(wire.len() + 2);
        framed.extend_from_slice(&(wire.len() as u16).to_be_bytes());
        framed.extend_from_slice(wire);
        stream.write_all(&framed).await.map_err(net_err)?;
        loop {
            let len = stream.read_u16().await.map_err(net_err)? as usize;
            let mut buf = vec![0u8; len.min(MAX_TCP_MESSAGE)];
            stream.read_exact(&mut buf).await.map_err(net_err)?;
            if let Some(msg) = matching_response(&buf, id, query) {
                return Ok(msg);
            }
        }
    }
}

/// Builds our query: random id, RD, EDNS with our buffer size, DO and CD as the client asked.
pub fn encode_query(id: u16, query: &Query, flags: QueryFlags) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.metadata.checking_disabled = flags.checking_disabled;
    msg.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    edns.set_dnssec_ok(flags.dnssec_ok);
    msg.set_edns(edns);
    msg.to_vec()
}

/// Parses `bytes` and returns it only if it is a response to our id and question.
pub fn matching_response(bytes: &[u8], id: u16, query: &Query) -> Option<Message> {
    let msg = Message::from_vec(bytes).ok()?;
    if msg.metadata.id != id || msg.metadata.message_type != MessageType::Response {
        return None;
    }
    let q = msg.queries.first()?;
    if msg.queries.len() != 1
        || q.query_type() != query.query_type()
        || q.query_class() != query.query_class()
        || q.name() != query.name()
    {
        return None;
    }
    Some(msg)
}

/// NOERROR and NXDOMAIN are answers; anything else means "try another server".
fn accept(server: SocketAddr, msg: Message) -> Result<Message, UpstreamError> {
    match msg.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(msg),
        rcode => Err(UpstreamError::Rcode { server, rcode }),
    }
}
