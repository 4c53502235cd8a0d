//! Real authoritative DNS servers (hickory-server) on 127.0.0.1 for integration tests.
//!
//! Every [`AuthServer`] binds its own ephemeral port (the same number for UDP and TCP), keeps
//! its own query log and stops when dropped, so tests can run in parallel.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::{LowerName, Name, RecordType};
use hickory_proto::serialize::txt::Parser;
use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// Transport a query arrived over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Plain UDP.
    Udp,
    /// TCP with 2-byte length framing.
    Tcp,
    /// DNS over TLS (RFC 7858); only the servers of `dot.rs` log this.
    Tls,
}

/// One query as received by an [`AuthServer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedQuery {
    /// Lowercase query name without the trailing dot (`"www.corp.example"`; the root is `""`).
    pub name: String,
    /// Query type.
    pub qtype: RecordType,
    /// Transport the query came over.
    pub proto: Proto,
    /// EDNS DO bit (false when the query had no OPT record).
    pub do_bit: bool,
    /// Header CD bit.
    pub cd: bool,
    /// Source port of the client (the daemon's upstream socket).
    pub src_port: u16,
    /// Source address of the client.
    pub src_ip: std::net::IpAddr,
    /// DNS message id.
    pub id: u16,
}

/// What the UDP side of an [`AuthServer`] does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UdpMode {
    /// Serve queries normally.
    #[default]
    Answer,
    /// Keep the port bound but never read or answer (simulates packet loss / a dead server).
    Blackhole,
}

/// Where an [`AuthServer`] listens.
enum Bind {
    /// 127.0.0.1, an ephemeral port.
    Ephemeral,
    /// Port 53 of a random 127.53.x.y.
    Port53,
    /// Exactly this address.
    At(SocketAddr),
}

/// Behaviour knobs for [`AuthServer::start_with`].
#[derive(Clone, Debug)]
pub struct AuthOptions {
    /// UDP behaviour (default: answer).
    pub udp: UdpMode,
    /// Listen on TCP as well (default: true). If false, TCP connections are refused.
    pub tcp: bool,
    /// Sleep this long before answering each query (the query is logged on arrival).
    pub delay: Option<Duration>,
    /// Answer REFUSED to every query.
    pub refuse_all: bool,
    /// Answer every UDP query with TC=1 and no records; TCP answers normally.
    pub truncate_udp: bool,
    /// The address to listen on (default 127.0.0.1), e.g. an address of a test's tun device.
    pub ip: Option<std::net::IpAddr>,
    /// The port to listen on (default: an ephemeral one).
    pub port: Option<u16>,
}

impl Default for AuthOptions {
    fn default() -> Self {
        Self {
            udp: UdpMode::Answer,
            tcp: true,
            delay: None,
            refuse_all: false,
            truncate_udp: false,
            ip: None,
            port: None,
        }
    }
}

/// An authoritative DNS server on 127.0.0.1 (same port for UDP and TCP) that logs every query.
pub struct AuthServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<LoggedQuery>>>,
    server: Option<Server<CountingHandler>>,
    /// Bound but never read in [`UdpMode::Blackhole`].
    _blackhole: Option<UdpSocket>,
}

impl AuthServer {
    /// Starts a normal server for `zones`: `(origin, zone file text)`, e.g. `("corp.example.", zone(..))`.
    pub async fn start(zones: &[(&str, &str)]) -> AuthServer {
        Self::start_with(AuthOptions::default(), zones).await
    }

    /// Starts a server for `zones` on port 53 of a fresh random 127.x.y.z address, for hooks whose
    /// VPN clients pass server addresses without a port (strongSwan, libreswan, NetworkManager).
    /// Needs root or CAP_NET_BIND_SERVICE, as CI has.
    pub async fn start_on_port_53(zones: &[(&str, &str)]) -> AuthServer {
        Self::start_inner(AuthOptions::default(), zones, Bind::Port53).await
    }

    /// Starts a server for `zones` on `addr` (UDP and TCP), e.g. `0.0.0.0:53` inside a network
    /// namespace of the test's own. Panics if it cannot bind.
    pub async fn start_on(addr: SocketAddr, zones: &[(&str, &str)]) -> AuthServer {
        Self::start_inner(AuthOptions::default(), zones, Bind::At(addr)).await
    }

    /// Starts a server for `zones` with the given behaviour. Panics on bad zone text or bind failure.
    pub async fn start_with(opts: AuthOptions, zones: &[(&str, &str)]) -> AuthServer {
        Self::start_inner(opts, zones, Bind::Ephemeral).await
    }

    async fn start_inner(opts: AuthOptions, zones: &[(&str, &str)], bind: Bind) -> AuthServer {
        let catalog = catalog(zones);
        let ip = opts.ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        let (udp, tcp) = match (bind, opts.port) {
            (Bind::Ephemeral, None) => bind_pair(ip, opts.tcp).await,
            (Bind::Ephemeral, Some(port)) => bind_exact(SocketAddr::new(ip, port), opts.tcp).await,
            (Bind::Port53, _) => bind_fixed_port(53).await,
            (Bind::At(addr), _) => bind_exact(addr, opts.tcp).await,
        };
        let addr = udp.local_addr().expect("udp local addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut server = Server::new(CountingHandler { catalog, log: log.clone(), opts: opts.clone() });
        let blackhole = match opts.udp {
            UdpMode::Answer => {
                server.register_socket(udp);
                None
            }
            UdpMode::Blackhole => Some(udp),
        };
        if let Some(tcp) = tcp {
            server.register_listener(tcp, Duration::from_secs(10), 32);
        }
        AuthServer { addr, log, server: Some(server), _blackhole: blackhole }
    }

    /// The address it listens on (`127.0.0.1:<port>` unless started elsewhere), valid for both UDP
    /// and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Snapshot of all queries received so far, in arrival order (one entry per question;
    /// packets hickory rejects before the handler, e.g. shorter than a header, are not logged).
    pub fn queries(&self) -> Vec<LoggedQuery> {
        self.lock().clone()
    }

    /// Number of queries received so far.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Number of queries for `domain` or a name below it (whole labels, case-insensitive):
    /// `count_under("corp.example")` counts `www.corp.example` but not `othercorp.example`.
    pub fn count_under(&self, domain: &str) -> usize {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.lock().iter().filter(|q| is_under(&q.name, &domain)).count()
    }

    /// Clears the query log.
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// Shuts the server down and waits (up to 2 s) for its tasks to finish.
    pub async fn stop(mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), server.shutdown_gracefully()).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<LoggedQuery>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        // Cancelling stops the accept loops; dropping the Server's JoinSet aborts the rest.
        if let Some(server) = self.server.take() {
            server.shutdown_token().cancel();
        }
    }
}

/// Builds zone file text for `origin` (e.g. `"corp.example."`): `$TTL 60`, a SOA (serial 1,
/// negative TTL 60) and an NS record, followed by the caller's `records` (relative host lines
/// such as `"www 60 IN A 10.1.0.1"`; leading whitespace on each line is stripped, so indented
/// literals do not turn into zone-file continuation lines).
pub fn zone(origin: &str, records: &str) -> String {
    let o = if origin.ends_with('.') { origin.to_string() } else { format!("{origin}.") };
    let records: Vec<&str> = records.lines().map(str::trim).collect();
    let records = records.join("\n");
    format!(
        "$ORIGIN {o}\n$TTL 60\n\
         @ 3600 IN SOA ns1.{o} hostmaster.{o} 1 3600 600 86400 60\n\
         @ 3600 IN NS ns1.{o}\n\
         {records}\n"
    )
}

/// An authoritative catalog of in-memory zones, `(origin, zone file text)` as for
/// [`AuthServer::start`] (shared with the DNS-over-TLS servers of `dot.rs`). Panics on bad zone text.
pub fn catalog(zones: &[(&str, &str)]) -> Catalog {
    let mut catalog = Catalog::new();
    for (name, text) in zones {
        let origin = Name::from_ascii(name).expect("zone origin is a valid name");
        let (_, records) = Parser::new(*text, None, Some(origin.clone()))
            .parse()
            .unwrap_or_else(|e| panic!("zone file for {name} does not parse: {e}"));
        let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
            origin.clone(),
            records,
            ZoneType::Primary,
            AxfrPolicy::Deny,
            None,
        )
        .unwrap_or_else(|e| panic!("zone {origin} is invalid: {e}"));
        catalog.upsert(LowerName::from(&origin), vec![Arc::new(handler)]);
    }
    catalog
}

/// True if `name` equals `domain` or ends with `.domain` (both lowercase, no trailing dot).
pub fn is_under(name: &str, domain: &str) -> bool {
    domain.is_empty() || name == domain || name.strip_suffix(domain).is_some_and(|head| head.ends_with('.'))
}

/// Binds UDP on an ephemeral port and, if wanted, TCP on the same port (retrying on collisions).
pub async fn bind_pair(ip: std::net::IpAddr, want_tcp: bool) -> (UdpSocket, Option<TcpListener>) {
    for _ in 0..20 {
        let udp = UdpSocket::bind((ip, 0)).await.expect("bind udp");
        if !want_tcp {
            return (udp, None);
        }
        let port = udp.local_addr().expect("udp local addr").port();
        if let Ok(tcp) = TcpListener::bind((ip, port)).await {
            return (udp, Some(tcp));
        }
    }
    panic!("could not bind UDP and TCP on the same port");
}

/// Appends one [`LoggedQuery`] per question of `request` to `log` (shared by the test servers);
/// returns the request's transport and DO bit.
pub fn log_request(log: &Mutex<Vec<LoggedQuery>>, request: &Request) -> (Proto, bool) {
    let proto = match request.protocol() {
        Protocol::Udp => Proto::Udp,
        _ => Proto::Tcp,
    };
    log_request_as(log, request, proto)
}

/// [`log_request`] with the transport given by the caller (the DNS-over-TLS servers of `dot.rs`
/// hand hickory their queries as TCP ones, and log them as [`Proto::Tls`]).
pub fn log_request_as(log: &Mutex<Vec<LoggedQuery>>, request: &Request, proto: Proto) -> (Proto, bool) {
    let do_bit = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    for q in request.queries.queries() {
        log.push(LoggedQuery {
            name: q.name().to_string().trim_end_matches('.').to_ascii_lowercase(),
            qtype: q.query_type(),
            proto,
            do_bit,
            cd: request.metadata.checking_disabled,
            src_port: request.src().port(),
            src_ip: request.src().ip(),
            id: request.metadata.id,
        });
    }
    (proto, do_bit)
}

/// Binds UDP (and TCP if wanted) on exactly `addr`, waiting up to 2 s for a previous server's
/// sockets to close.
pub async fn bind_exact(addr: std::net::SocketAddr, want_tcp: bool) -> (UdpSocket, Option<TcpListener>) {
    let mut last = None;
    for _ in 0..100 {
        match UdpSocket::bind(addr).await {
            Ok(udp) if !want_tcp => return (udp, None),
            Ok(udp) => match TcpListener::bind(addr).await {
                Ok(tcp) => return (udp, Some(tcp)),
                Err(e) => last = Some(e),
            },
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("cannot bind {addr}: {last:?}");
}

/// Binds UDP and TCP on `port` of a random 127.x.y.z address (retrying on collisions).
pub async fn bind_fixed_port(port: u16) -> (UdpSocket, Option<TcpListener>) {
    let mut last = None;
    for _ in 0..20 {
        let ip = std::net::Ipv4Addr::new(127, 53, rand::random::<u8>(), rand::random::<u8>().max(1));
        match UdpSocket::bind((ip, port)).await {
            Ok(udp) => match TcpListener::bind((ip, port)).await {
                Ok(tcp) => return (udp, Some(tcp)),
                Err(e) => last = Some(e),
            },
            Err(e) => last = Some(e),
        }
    }
    panic!("cannot bind port {port} on 127.53.x.y (this test needs root or CAP_NET_BIND_SERVICE): {last:?}");
}

/// Logs each query, applies the [`AuthOptions`] and delegates to the catalog.
struct CountingHandler {
    catalog: Catalog,
    log: Arc<Mutex<Vec<LoggedQuery>>>,
    opts: AuthOptions,
}

#[async_trait::async_trait]
impl RequestHandler for CountingHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let (proto, _) = log_request(&self.log, request);

        if let Some(delay) = self.opts.delay {
            tokio::time::sleep(delay).await;
        }

        let truncate = self.opts.truncate_udp && proto == Proto::Udp;
        if !self.opts.refuse_all && !truncate {
            return self.catalog.handle_request::<R, T>(request, response_handle).await;
        }

        let mut metadata = Metadata::response_from_request(&request.metadata);
        if self.opts.refuse_all {
            metadata.response_code = ResponseCode::Refused;
        } else {
            metadata.authoritative = true;
            metadata.truncation = true;
        }
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_dnssec_ok(req.flags().dnssec_ok).set_max_payload(req.max_payload());
            e
        });
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build_no_records(metadata);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => {
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
            }
        }
    }
}
