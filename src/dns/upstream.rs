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
//!
//! `tcp://` servers are asked over TCP only and `tls://` servers over TLS only; both, and the TCP
//! fallback of UDP servers, go through one reused, pipelined connection per server
//! ([`super::stream`]). A TLS server whose certificate fails the check is a failed server: its
//! query is never sent in clear text. With opportunistic TLS (`default_upstream_tls =
//! "opportunistic"`), a plain server is tried on port 853 first and asked in clear text only when
//! it does not speak TLS there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use hickory_proto::op::{Message, Query, ResponseCode};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

pub use super::exchange::{Bind, EDNS_PAYLOAD, QueryFlags, UpstreamError};
use super::exchange::{bind_interface, encode_query, matching_response};
use super::stream::{Dial, StreamPool};
use super::tls::{self, TlsContext};
use crate::clock::Stamp;
use crate::server_addr::{ServerAddr, Transport};

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

/// How a server is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// UDP first, its stream (TCP) on truncation or silence.
    Udp,
    /// Its stream only (`tcp://`, `tls://`).
    Stream,
}

/// What one server has shown; read by `status`.
#[derive(Debug)]
pub struct ServerState {
    addr: SocketAddr,
    kind: Kind,
    /// The server's stream: TCP or TLS for stream servers, the TCP fallback of UDP servers.
    stream: StreamPool,
    /// Opportunistic TLS on port 853, tried before clear text (default upstream only).
    tls_first: Option<StreamPool>,
    /// Until when opportunistic TLS is known not to work with this server.
    tls_down_until_ms: AtomicU64,
    prefer_tcp_until_ms: AtomicU64,
    answers_udp: AtomicU64,
    answers_tcp: AtomicU64,
    failures: AtomicU64,
    last_failure_ms: AtomicU64,
}

/// How a server is being asked now, for `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// UDP, TCP on truncation.
    Udp,
    /// UDP stayed silent lately but TCP answered: TCP first for a while.
    TcpFirst,
    /// TCP only (`tcp://`).
    Tcp,
    /// TLS only, certificate checked (`tls://`).
    Tls,
    /// Opportunistic TLS on port 853, working.
    TlsOpportunistic,
    /// Opportunistic TLS failed lately: clear text for a while.
    UdpTlsUnavailable,
}

/// One server at one moment (what `status` shows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerReport {
    pub addr: SocketAddr,
    pub asked: Asked,
    /// For TLS: the name the certificate is checked against (or the address it must carry).
    pub tls_name: Option<String>,
    pub answers_udp: u64,
    /// Answers over a stream: TCP or TLS.
    pub answers_tcp: u64,
    pub failures: u64,
    /// Stream connections opened (TCP or TLS; at most one open at a time).
    pub connections: u64,
    /// TLS handshakes that resumed an earlier session.
    pub tls_resumed: u64,
}

/// How long opportunistic TLS is not tried again after it failed with a server.
const TLS_RETRY_AFTER: Duration = Duration::from_secs(600);

/// TLS for one set of servers: which CAs are trusted, and whether plain servers are tried over
/// opportunistic TLS first.
#[derive(Clone, Debug)]
pub struct UpstreamTls {
    pub context: Arc<TlsContext>,
    pub opportunistic: bool,
}

impl Default for UpstreamTls {
    fn default() -> Self {
        Self { context: TlsContext::shared_system(), opportunistic: false }
    }
}

impl ServerState {
    /// An answer that came over a stream (TCP or TLS): counted, then judged by its rcode.
    fn streamed(&self, m: Message) -> Result<Message, UpstreamError> {
        self.answers_tcp.fetch_add(1, Ordering::Relaxed);
        accept(self.addr, m)
    }

    fn new(server: &ServerAddr, bind: &Bind, timing: Timing, tls: &UpstreamTls) -> Self {
        let addr = server.addr;
        let pool = |dial, at| StreamPool::new(at, dial, bind.clone(), timing.total);
        let tls_dial = |name: Option<&str>, authenticate| {
            // The name was checked when the address was parsed; an address always makes a name.
            let name = tls::server_name(name, addr.ip())
                .unwrap_or_else(|_| rustls::pki_types::ServerName::IpAddress(addr.ip().into()));
            Dial::Tls { context: tls.context.clone(), name, authenticate }
        };
        let (kind, stream, tls_first) = match &server.transport {
            Transport::Udp => {
                let first = tls.opportunistic.then(|| {
                    let at = SocketAddr::new(addr.ip(), 853);
                    // Opportunistic: a short bound, so clear text is not delayed for long.
                    StreamPool::new(at, tls_dial(None, false), bind.clone(), timing.tcp_after)
                });
                (Kind::Udp, pool(Dial::Tcp, addr), first)
            }
            Transport::Tcp => (Kind::Stream, pool(Dial::Tcp, addr), None),
            Transport::Tls { name } => (Kind::Stream, pool(tls_dial(name.as_deref(), true), addr), None),
        };
        Self {
            addr,
            kind,
            stream,
            tls_first,
            tls_down_until_ms: AtomicU64::new(0),
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

    fn tls_down(&self, epoch: Stamp) -> bool {
        self.tls_down_until_ms.load(Ordering::Relaxed) > millis(epoch)
    }

    fn recently_failed(&self, epoch: Stamp) -> bool {
        let last = self.last_failure_ms.load(Ordering::Relaxed);
        last != 0 && millis(epoch).saturating_sub(last) < 30_000
    }

    fn report(&self, epoch: Stamp) -> ServerReport {
        let asked = match (self.kind, &self.tls_first) {
            (Kind::Stream, _) if self.stream.is_tls() => Asked::Tls,
            (Kind::Stream, _) => Asked::Tcp,
            (Kind::Udp, Some(_)) if self.tls_down(epoch) => Asked::UdpTlsUnavailable,
            (Kind::Udp, Some(_)) => Asked::TlsOpportunistic,
            (Kind::Udp, None) if self.prefers_tcp(epoch) => Asked::TcpFirst,
            (Kind::Udp, None) => Asked::Udp,
        };
        let streams = [Some(&self.stream), self.tls_first.as_ref()];
        let sum = |f: &dyn Fn(&StreamPool) -> u64| streams.iter().flatten().map(|p| f(p)).sum::<u64>();
        ServerReport {
            addr: self.addr,
            asked,
            tls_name: self.tls_first.as_ref().unwrap_or(&self.stream).tls_name(),
            answers_udp: self.answers_udp.load(Ordering::Relaxed),
            answers_tcp: self.answers_tcp.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            connections: sum(&|p| p.counters.opened.load(Ordering::Relaxed)),
            tls_resumed: sum(&|p| p.counters.resumed.load(Ordering::Relaxed)),
        }
    }
}

fn millis(epoch: Stamp) -> u64 {
    epoch.elapsed().as_millis() as u64 + 1
}

/// A set of servers queried as one (a link's internal servers, or the public upstream).
#[derive(Debug)]
pub struct Upstream {
    /// The servers as given, for comparing one upstream with the next.
    given: Vec<ServerAddr>,
    servers: Vec<ServerState>,
    bind: Bind,
    timing: Timing,
    epoch: Stamp,
}

impl Upstream {
    /// Servers spoken to as their addresses say, TLS checked against the system trust store.
    pub fn new(servers: &[ServerAddr], bind: Bind, timing: Timing) -> Self {
        Self::with_tls(servers, bind, timing, &UpstreamTls::default())
    }

    pub fn with_tls(servers: &[ServerAddr], bind: Bind, timing: Timing, tls: &UpstreamTls) -> Self {
        let given = servers.to_vec();
        let servers = servers.iter().map(|s| ServerState::new(s, &bind, timing, tls)).collect();
        Self { given, servers, bind, timing, epoch: Stamp::now() }
    }

    /// The servers as given.
    pub fn servers(&self) -> &[ServerAddr] {
        &self.given
    }

    /// Each server's state, read once.
    pub fn report(&self) -> Vec<ServerReport> {
        self.servers.iter().map(|s| s.report(self.epoch)).collect()
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
            Some(
                e @ (UpstreamError::Rcode { .. }
                | UpstreamError::Network { .. }
                | UpstreamError::Bind { .. }
                | UpstreamError::Tls { .. }),
            ) if running.is_empty() => e,
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
        if server.kind == Kind::Stream {
            let m = server.stream.exchange(query, flags).await?;
            return server.streamed(m);
        }
        if let Some(tls) = server.tls_first.as_ref().filter(|_| !server.tls_down(self.epoch)) {
            match tls.exchange(query, flags).await {
                Ok(m) => return server.streamed(m),
                // No TLS there (or not now): clear text, and no TLS attempts for a while.
                Err(e) => {
                    tracing::info!(server = %server.addr, error = %e, "opportunistic TLS failed; using clear text");
                    let until = millis(self.epoch) + TLS_RETRY_AFTER.as_millis() as u64;
                    server.tls_down_until_ms.store(until, Ordering::Relaxed);
                }
            }
        }
        if server.prefers_tcp(self.epoch) {
            match server.stream.exchange(query, flags).await {
                Ok(m) => return server.streamed(m),
                // TCP broke; try UDP again and forget the preference.
                Err(_) => server.prefer_tcp_until_ms.store(0, Ordering::Relaxed),
            }
        }
        let id: u16 = rand::random();
        let wire = encode_query(id, query, flags, false)
            .map_err(|e| UpstreamError::Network { server: server.addr, error: format!("cannot encode query: {e}") })?;
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
                        let m = server.stream.exchange(query, flags).await?;
                        return server.streamed(m);
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
                    tcp.set(Some(Box::pin(server.stream.exchange(query, flags))).into());
                }
                Some(r) = &mut tcp, if tcp_started && !tcp_failed => match r {
                    Ok(m) => {
                        // UDP stayed silent but TCP works: remember that for this server.
                        let until = millis(self.epoch) + self.timing.prefer_tcp_for.as_millis() as u64;
                        server.prefer_tcp_until_ms.store(until, Ordering::Relaxed);
                        return server.streamed(m);
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
}

/// NOERROR and NXDOMAIN are answers; anything else means "try another server".
fn accept(server: SocketAddr, msg: Message) -> Result<Message, UpstreamError> {
    match msg.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(msg),
        rcode => Err(UpstreamError::Rcode { server, rcode }),
    }
}
