//! DNS over TLS (RFC 7858) fixtures: a test PKI, DoT servers on loopback that answer real zones
//! (and misbehaving ones), a DoT client, and a clear-text sniffer.
//!
//! - [`Pki`]: a CA of its own (made with rcgen, written to a temp dir as `ca.pem`) that issues
//!   leaf certificates; [`Pki::dot_test`] is the usual one (`dot.test`, 127.0.0.1 and ::1). A second
//!   `Pki::new()` is an unrelated CA, for "unknown CA" tests.
//! - [`DotServer`]: a real TLS listener (tokio-rustls) on loopback answering from the same
//!   in-memory catalog as [`AuthServer`](super::auth::AuthServer) (zones from
//!   [`zone`](super::auth::zone)). It logs every query it is handed (transport [`Proto::Tls`]) and
//!   counts accepted TCP connections, completed and resumed handshakes and connections open now.
//!   [`DotMode`] makes it misbehave: close after each answer, answer in reverse order, or never
//!   answer.
//! - [`DotClient`]: a rustls client connection that sends pipelined queries and reads answers in
//!   the order they come.
//! - [`Sniffer`]: plain UDP/TCP sockets that record anything sent to them, bound beside a DoT
//!   server to prove that nothing falls back to clear text.
//!
//! Everything here uses real sockets on loopback and stops when dropped.

use std::io::{Error, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{Catalog, MessageResponse};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

use super::auth::{LoggedQuery, Proto, catalog, is_under, log_request_as};

/// The name the usual test certificate carries.
pub const DOT_NAME: &str = "dot.test";

/// The rustls crypto provider of these fixtures (ring, as hickory uses here).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// True when the tests run as root (binding port 53 or 853 needs it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A fresh random loopback address 127.85.x.y (not 127.0.0.1, nor the 127.53.x.y of
/// `AuthServer::start_on_port_53`), so that a test can own well-known ports on it.
pub fn dedicated_ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 85, rand::random::<u8>(), rand::random::<u8>().clamp(2, 254)))
}

// ---------------------------------------------------------------------------------------------
// PKI
// ---------------------------------------------------------------------------------------------

/// A test certificate authority, with its certificate written to `ca.pem` in a temp dir.
pub struct Pki {
    dir: tempfile::TempDir,
    ca_file: PathBuf,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate chain (leaf first) and its private key, for a TLS server.
#[derive(Clone)]
pub struct Identity {
    /// The leaf certificate, then the CA that issued it.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 DER of the leaf's key.
    key: Vec<u8>,
    /// The leaf's certificate as PEM.
    pub cert_pem: String,
}

impl Identity {
    /// A rustls server config presenting this identity (TLS 1.2 and 1.3, ALPN `dot`).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .expect("test certificate and key match");
        config.alpn_protocols = vec![b"dot".to_vec()];
        Arc::new(config)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    /// A new CA (ECDSA P-256) named `splitdns test CA <n>`; each call makes an unrelated one.
    pub fn new() -> Pki {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("splitdns test CA {:08x}", rand::random::<u32>()));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).expect("self-sign CA");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_file = dir.path().join("ca.pem");
        let ca_pem = cert.pem();
        std::fs::write(&ca_file, &ca_pem).expect("write ca.pem");
        Pki { ca_file, ca_der: cert.der().clone(), ca_pem, issuer: Issuer::new(params, key), dir }
    }

    /// Path of the CA certificate (PEM), for `--tls-ca-file` / `tls_ca_file`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// [`Pki::ca_file`] as a string, for command lines.
    pub fn ca_arg(&self) -> String {
        self.ca_file.to_str().expect("temp path is UTF-8").to_string()
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The temp dir that holds `ca.pem` (and anything a test writes beside it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate issued by this CA for `names` (DNS names) and `ips` (IP address
    /// SANs), with its own fresh key.
    pub fn leaf(&self, names: &[&str], ips: &[IpAddr]) -> Identity {
        let key = KeyPair::generate().expect("generate leaf key");
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("leaf names are valid");
        params.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().map_or_else(|| "ip-only".to_string(), |n| n.to_string()));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Identity {
            chain: vec![cert.der().clone(), self.ca_der.clone()],
            key: key.serialize_der(),
            cert_pem: cert.pem(),
        }
    }

    /// The usual leaf: `dot.test`, with IP SANs 127.0.0.1 and ::1.
    pub fn dot_test(&self) -> Identity {
        self.leaf(&[DOT_NAME], &[IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)])
    }

    /// A rustls client config that trusts only this CA (ALPN `dot`).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("CA certificate parses");
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"dot".to_vec()];
        Arc::new(config)
    }
}

// ---------------------------------------------------------------------------------------------
// DoT server
// ---------------------------------------------------------------------------------------------

/// How a [`DotServer`] treats each connection once the TLS handshake is done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DotMode {
    /// Answer every query, in the order received, on the connection it came on (pipelining
    /// welcome); keep the connection open until the client closes it or 30 s pass idle.
    #[default]
    Answer,
    /// Answer the first query, then close the connection (TLS close_notify, then FIN); any
    /// further query already sent on it is read by no one.
    CloseAfterEach,
    /// Collect queries until `batch` have arrived or `wait` has passed since the first of the
    /// batch, then answer them newest first. [`DotServer::reordered`] counts batches of two or
    /// more that went out reversed.
    Reverse { batch: usize, wait: Duration },
    /// Complete the handshake, read and log queries, never answer; hold the connection open.
    Silent,
}

/// Where and how a [`DotServer`] runs.
#[derive(Clone, Debug, Default)]
pub struct DotOptions {
    /// Behaviour per connection.
    pub mode: DotMode,
    /// Address to listen on (default 127.0.0.1).
    pub ip: Option<IpAddr>,
    /// Port to listen on (default: an ephemeral one). 853 needs root.
    pub port: Option<u16>,
}

/// Counters shared by a server's tasks.
#[derive(Default)]
struct Shared {
    log: Mutex<Vec<LoggedQuery>>,
    /// TCP connections accepted.
    connections: AtomicUsize,
    /// TLS handshakes completed.
    handshakes: AtomicUsize,
    /// Of those, resumed sessions.
    resumed: AtomicUsize,
    /// Handshakes that failed or timed out (a client that rejected the certificate shows here).
    failed_handshakes: AtomicUsize,
    /// Connections open now (handshake done, not yet closed by either side).
    open: AtomicUsize,
    /// Batches answered in reverse order ([`DotMode::Reverse`]).
    reordered: AtomicUsize,
    /// Answers written.
    answers: AtomicUsize,
}

/// A DNS-over-TLS server on loopback; stops when dropped.
pub struct DotServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl DotServer {
    /// Serves `zones` (as for `AuthServer::start`) over TLS on 127.0.0.1, an ephemeral port,
    /// presenting `identity`.
    pub async fn start(identity: &Identity, zones: &[(&str, &str)]) -> DotServer {
        Self::start_with(DotOptions::default(), identity, zones).await
    }

    /// Like [`DotServer::start`], with a mode and address. Panics if it cannot bind (waiting up
    /// to 2 s for a previous server's fixed port to be free).
    pub async fn start_with(opts: DotOptions, identity: &Identity, zones: &[(&str, &str)]) -> DotServer {
        let ip = opts.ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let addr = SocketAddr::new(ip, opts.port.unwrap_or(0));
        let mut last = None;
        let mut listener = None;
        for _ in 0..100 {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let listener = listener.unwrap_or_else(|| panic!("cannot bind DoT listener on {addr}: {last:?}"));
        Self::serve(listener, opts.mode, identity, zones)
    }

    /// Serves on an already bound listener (e.g. one whose port was chosen to suit a sniffer).
    pub fn serve(listener: TcpListener, mode: DotMode, identity: &Identity, zones: &[(&str, &str)]) -> DotServer {
        let addr = listener.local_addr().expect("listener address");
        let shared = Arc::new(Shared::default());
        let cancel = CancellationToken::new();
        let acceptor = TlsAcceptor::from(identity.server_config());
        let catalog = Arc::new(catalog(zones));
        tokio::spawn(accept_loop(listener, acceptor, catalog, shared.clone(), mode, cancel.clone()));
        DotServer { addr, shared, cancel }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `tls://ADDR:PORT#NAME` for this server, e.g. `tls://127.0.0.1:40853#dot.test`.
    pub fn url(&self, name: &str) -> String {
        format!("tls://{}#{name}", self.addr)
    }

    /// Snapshot of all queries received so far, in arrival order (proto [`Proto::Tls`]).
    pub fn queries(&self) -> Vec<LoggedQuery> {
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Number of queries received so far.
    pub fn count(&self) -> usize {
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Number of queries for `domain` or below (whole labels), as `AuthServer::count_under`.
    pub fn count_under(&self, domain: &str) -> usize {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|q| is_under(&q.name, &domain)).count()
    }

    /// TCP connections accepted so far (whether or not the handshake then succeeded).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// Completed handshakes that resumed an earlier session.
    pub fn resumed(&self) -> usize {
        self.shared.resumed.load(Ordering::SeqCst)
    }

    /// Handshakes that failed (the client rejected the certificate, or spoke no TLS) or timed out.
    pub fn failed_handshakes(&self) -> usize {
        self.shared.failed_handshakes.load(Ordering::SeqCst)
    }

    /// Connections open now (handshake done, not yet closed).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Batches of two or more answered in reverse order ([`DotMode::Reverse`]).
    pub fn reordered(&self) -> usize {
        self.shared.reordered.load(Ordering::SeqCst)
    }

    /// Answers written so far.
    pub fn answers(&self) -> usize {
        self.shared.answers.load(Ordering::SeqCst)
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for DotServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    catalog: Arc<Catalog>,
    shared: Arc<Shared>,
    mode: DotMode,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let (acceptor, catalog, shared, conn_cancel) =
            (acceptor.clone(), catalog.clone(), shared.clone(), cancel.clone());
        tokio::spawn(async move {
            conn_cancel.run_until_cancelled(serve_conn(tcp, peer, acceptor, catalog, shared, mode)).await;
        });
    }
}

/// Decrements the open-connection count when a connection's task ends, however it ends.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve_conn(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    catalog: Arc<Catalog>,
    shared: Arc<Shared>,
    mode: DotMode,
) {
    let tls = match tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => {
            shared.failed_handshakes.fetch_add(1, Ordering::SeqCst);
            return;
        }
    };
    shared.handshakes.fetch_add(1, Ordering::SeqCst);
    if tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed) {
        shared.resumed.fetch_add(1, Ordering::SeqCst);
    }
    shared.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(shared.clone());

    let (rd, mut wr) = tokio::io::split(tls);
    // A reader task turns the stream into whole frames, so that waiting on them can time out
    // without losing half a frame; its channel closes at EOF or on an error.
    let (tx, mut frames) = mpsc::unbounded_channel::<Vec<u8>>();
    let reader = tokio::spawn(read_frames(rd, tx));
    let _reader = AbortOnDrop(reader);
    let idle = Duration::from_secs(30);

    // Parses and logs a frame; None for something that is not a DNS query.
    let take = |frame: Vec<u8>| -> Option<Request> {
        let request = Request::from_bytes(frame, peer, Protocol::Tcp).ok()?;
        log_request_as(&shared.log, &request, Proto::Tls);
        Some(request)
    };

    match mode {
        DotMode::Answer => {
            while let Ok(Some(frame)) = tokio::time::timeout(idle, frames.recv()).await {
                let Some(request) = take(frame) else { continue };
                let Some(reply) = answer(&catalog, &request).await else { continue };
                if write_frame(&mut wr, &reply).await.is_err() {
                    return;
                }
                shared.answers.fetch_add(1, Ordering::SeqCst);
            }
            let _ = wr.shutdown().await;
        }
        DotMode::CloseAfterEach => {
            // The first frame that is a query gets its answer; then the connection closes.
            while let Ok(Some(frame)) = tokio::time::timeout(idle, frames.recv()).await {
                if let Some(request) = take(frame) {
                    if let Some(reply) = answer(&catalog, &request).await
                        && write_frame(&mut wr, &reply).await.is_ok()
                    {
                        shared.answers.fetch_add(1, Ordering::SeqCst);
                    }
                    break;
                }
            }
            let _ = wr.shutdown().await;
        }
        DotMode::Reverse { batch, wait } => {
            let batch = batch.max(1);
            'conn: loop {
                let Ok(Some(first)) = tokio::time::timeout(idle, frames.recv()).await else { break };
                let mut pending: Vec<Request> = take(first).into_iter().collect();
                let deadline = tokio::time::Instant::now() + wait;
                let mut eof = false;
                while pending.len() < batch {
                    match tokio::time::timeout_at(deadline, frames.recv()).await {
                        Ok(Some(frame)) => pending.extend(take(frame)),
                        Ok(None) => {
                            eof = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if pending.len() > 1 {
                    shared.reordered.fetch_add(1, Ordering::SeqCst);
                }
                for request in pending.iter().rev() {
                    let Some(reply) = answer(&catalog, request).await else { continue };
                    if write_frame(&mut wr, &reply).await.is_err() {
                        break 'conn;
                    }
                    shared.answers.fetch_add(1, Ordering::SeqCst);
                }
                if eof {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        }
        DotMode::Silent => {
            // Read (and log) until the client goes away; hold the write half open meanwhile.
            while let Some(frame) = frames.recv().await {
                let _ = take(frame);
            }
            drop(wr);
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn read_frames(mut rd: impl AsyncRead + Unpin, tx: mpsc::UnboundedSender<Vec<u8>>) {
    while let Ok(Some(frame)) = read_frame(&mut rd).await {
        if tx.send(frame).is_err() {
            return;
        }
    }
}

/// Reads one length-prefixed DNS message; `Ok(None)` at a clean EOF before the length.
pub async fn read_frame(rd: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    rd.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

/// Writes one length-prefixed DNS message (in one write, then flushes).
pub async fn write_frame(wr: &mut (impl AsyncWrite + Unpin), msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| Error::other("message too long"))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    wr.write_all(&framed).await?;
    wr.flush().await
}

/// The catalog's answer to `request`, encoded.
async fn answer(catalog: &Catalog, request: &Request) -> Option<Vec<u8>> {
    let capture = Capture::default();
    catalog.handle_request::<Capture, TokioTime>(request, capture.clone()).await;
    capture.0.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// A response handler that keeps the encoded response instead of sending it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        let info = response.destructive_emit(&mut encoder)?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        Ok(info)
    }
}

// ---------------------------------------------------------------------------------------------
// DoT client
// ---------------------------------------------------------------------------------------------

/// One DNS-over-TLS client connection: queries may be pipelined with [`DotClient::send`] and
/// answers read with [`DotClient::recv`] in the order the server sends them.
pub struct DotClient {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
}

impl DotClient {
    /// Connects to `addr` and completes a handshake that checks the certificate for `name` (a DNS
    /// name, or an IP address as text) against `config`'s roots. Errors (connection refused,
    /// certificate rejected, timeout after 5 s) come back as `io::Error`.
    pub async fn connect(addr: SocketAddr, name: &str, config: Arc<ClientConfig>) -> std::io::Result<DotClient> {
        let server_name =
            ServerName::try_from(name.to_string()).map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?;
        let connect = async {
            let tcp = TcpStream::connect(addr).await?;
            TlsConnector::from(config).connect(server_name, tcp).await
        };
        let stream = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| Error::new(ErrorKind::TimedOut, "TLS handshake timed out"))??;
        Ok(DotClient { stream })
    }

    /// Whether the handshake resumed an earlier session (clients sharing a `ClientConfig` share
    /// its session cache).
    pub fn resumed(&self) -> bool {
        self.stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// Sends a query for `name`/`qtype` (random id, RD=1, EDNS) without waiting; returns its id.
    pub async fn send(&mut self, name: &str, qtype: RecordType) -> std::io::Result<u16> {
        let mut qname = Name::from_ascii(name).map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?;
        qname.set_fqdn(true);
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(qname, qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        msg.set_edns(edns);
        let bytes = msg.to_vec().map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?;
        write_frame(&mut self.stream, &bytes).await?;
        Ok(msg.metadata.id)
    }

    /// Reads the next answer (within `wait`). `UnexpectedEof` when the server closed the
    /// connection, `TimedOut` when nothing came.
    pub async fn recv(&mut self, wait: Duration) -> std::io::Result<Message> {
        let frame = tokio::time::timeout(wait, read_frame(&mut self.stream))
            .await
            .map_err(|_| Error::new(ErrorKind::TimedOut, format!("no answer within {wait:?}")))??
            .ok_or_else(|| Error::new(ErrorKind::UnexpectedEof, "server closed the connection"))?;
        let msg = Message::from_vec(&frame).map_err(|e| Error::new(ErrorKind::InvalidData, e.to_string()))?;
        if msg.metadata.message_type != MessageType::Response {
            return Err(Error::new(ErrorKind::InvalidData, "reply has QR=0"));
        }
        Ok(msg)
    }

    /// Sends one query and reads one answer, which must carry the query's id.
    pub async fn query(&mut self, name: &str, qtype: RecordType) -> std::io::Result<Message> {
        let id = self.send(name, qtype).await?;
        let msg = self.recv(Duration::from_secs(5)).await?;
        if msg.metadata.id != id {
            return Err(Error::new(ErrorKind::InvalidData, format!("reply id {} != query id {id}", msg.metadata.id)));
        }
        Ok(msg)
    }
}

/// One query over a fresh DoT connection to `addr`, checking the certificate for `name`.
pub async fn query(
    addr: SocketAddr,
    name: &str,
    config: Arc<ClientConfig>,
    qname: &str,
    qtype: RecordType,
) -> std::io::Result<Message> {
    DotClient::connect(addr, name, config).await?.query(qname, qtype).await
}

// ---------------------------------------------------------------------------------------------
// Sniffer
// ---------------------------------------------------------------------------------------------

/// Something a [`Sniffer`] received.
#[derive(Clone, Debug)]
pub struct Sniffed {
    /// [`Proto::Udp`] or [`Proto::Tcp`].
    pub proto: Proto,
    /// The sniffer's address it arrived at.
    pub local: SocketAddr,
    /// Who sent it.
    pub peer: SocketAddr,
    /// A UDP datagram, or everything read on one TCP connection (empty if the peer connected
    /// and sent nothing: the connection attempt is recorded all the same).
    pub bytes: Vec<u8>,
}

impl Sniffed {
    /// The DNS message it holds, if any (the TCP length prefix skipped).
    pub fn message(&self) -> Option<Message> {
        match self.proto {
            Proto::Udp => Message::from_vec(&self.bytes).ok(),
            _ => Message::from_vec(self.bytes.get(2..)?).ok(),
        }
    }
}

/// Plain UDP sockets and TCP listeners that answer nothing and record everything sent to them.
pub struct Sniffer {
    seen: Arc<Mutex<Vec<Sniffed>>>,
    watching: Vec<(Proto, SocketAddr)>,
    cancel: CancellationToken,
}

impl Sniffer {
    /// Listens on each of `udp` (UDP) and `tcp` (TCP). Panics if any cannot be bound.
    pub async fn start(udp: &[SocketAddr], tcp: &[SocketAddr]) -> Sniffer {
        let mut udp_socks = Vec::new();
        for &addr in udp {
            udp_socks
                .push(UdpSocket::bind(addr).await.unwrap_or_else(|e| panic!("sniffer: cannot bind UDP {addr}: {e}")));
        }
        let mut listeners = Vec::new();
        for &addr in tcp {
            listeners
                .push(TcpListener::bind(addr).await.unwrap_or_else(|e| panic!("sniffer: cannot bind TCP {addr}: {e}")));
        }
        Self::from_sockets(udp_socks, listeners)
    }

    /// Sniffs on sockets the caller has bound.
    pub fn from_sockets(udp: Vec<UdpSocket>, tcp: Vec<TcpListener>) -> Sniffer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let mut watching = Vec::new();
        for sock in udp {
            watching.push((Proto::Udp, sock.local_addr().expect("local addr")));
            tokio::spawn(cancel.clone().run_until_cancelled_owned(sniff_udp(sock, seen.clone())));
        }
        for l in tcp {
            watching.push((Proto::Tcp, l.local_addr().expect("local addr")));
            tokio::spawn(cancel.clone().run_until_cancelled_owned(sniff_tcp(l, seen.clone(), cancel.clone())));
        }
        Sniffer { seen, watching, cancel }
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Sniffed> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Number of datagrams and TCP connections received so far.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// What it listens on, e.g. `udp 127.85.3.4:40853, udp 127.85.3.4:53, tcp 127.85.3.4:53`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .watching
            .iter()
            .map(|(p, a)| format!("{} {a}", if *p == Proto::Udp { "udp" } else { "tcp" }))
            .collect();
        parts.join(", ")
    }

    /// Whether it listens on port 53 (only when running as root).
    pub fn watches_port_53(&self) -> bool {
        self.watching.iter().any(|(_, a)| a.port() == 53)
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn sniff_udp(sock: UdpSocket, seen: Arc<Mutex<Vec<Sniffed>>>) {
    let local = sock.local_addr().expect("local addr");
    let mut buf = vec![0u8; 65535];
    loop {
        // ICMP errors from an earlier send surface as recv errors; keep listening.
        if let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(Sniffed {
                proto: Proto::Udp,
                local,
                peer,
                bytes: buf[..n].to_vec(),
            });
        }
    }
}

async fn sniff_tcp(listener: TcpListener, seen: Arc<Mutex<Vec<Sniffed>>>, cancel: CancellationToken) {
    let local = listener.local_addr().expect("local addr");
    loop {
        let Ok((mut conn, peer)) = listener.accept().await else { continue };
        let index = {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.push(Sniffed { proto: Proto::Tcp, local, peer, bytes: Vec::new() });
            seen.len() - 1
        };
        let seen = seen.clone();
        tokio::spawn(cancel.clone().run_until_cancelled_owned(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap_or_else(|e| e.into_inner())[index].bytes.extend_from_slice(&buf[..n]);
            }
        }));
    }
}

/// A DoT server on a [`dedicated_ip`] and an ephemeral port, with a [`Sniffer`] on the same
/// address: UDP on the DoT port, and (when root) UDP and TCP on port 53. Whatever the daemon sends
/// in clear text to that server's address, on its port or the plain DNS one, the sniffer sees.
pub async fn dot_with_sniffer(mode: DotMode, identity: &Identity, zones: &[(&str, &str)]) -> (DotServer, Sniffer) {
    for _ in 0..20 {
        let ip = dedicated_ip();
        let Ok(listener) = TcpListener::bind((ip, 0)).await else { continue };
        let port = listener.local_addr().expect("listener address").port();
        let Ok(udp) = UdpSocket::bind((ip, port)).await else { continue };
        let mut udp = vec![udp];
        let mut tcp = Vec::new();
        if is_root() {
            let Ok(u53) = UdpSocket::bind((ip, 53)).await else { continue };
            let Ok(t53) = TcpListener::bind((ip, 53)).await else { continue };
            udp.push(u53);
            tcp.push(t53);
        }
        let sniffer = Sniffer::from_sockets(udp, tcp);
        let server = DotServer::serve(listener, mode, identity, zones);
        return (server, sniffer);
    }
    panic!("no free 127.85.x.y address for a DoT server and its sniffer");
}
