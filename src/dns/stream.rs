//! Stream connections to one server, reused and pipelined: TCP (RFC 7766) and TLS (RFC 7858).
//!
//! A [`StreamPool`] keeps at most one open connection to its server. Every query that needs a
//! stream (a `tcp://` or `tls://` server, or a UDP server's truncated or unanswered query) is
//! written to that connection as soon as it comes, without waiting for earlier answers
//! (pipelining, RFC 7766 §6.2.1.1), under a random id unique on the connection; answers are matched
//! by id and question in whatever order they arrive.
//!
//! A connection closes when it has had nothing to do for [`IDLE`] (or the shorter time the server
//! asks for with EDNS TCP keepalive, RFC 7828 §3.3.2), when the server closes it, or when the pool
//! is dropped (the route's link went away). Queries still waiting on a connection the server
//! closed are sent again on a fresh one; a connection that closes before answering anything
//! counts against the query, which gives up after one such retry (the server is broken, not
//! merely done with that connection).
//!
//! Each connection runs two tasks: a reader that hands answers to their waiters, and a writer
//! that sends queued queries in batches and closes the connection when it is idle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::exchange::{Bind, QueryFlags, UpstreamError, answers, encode_query, tcp_connect};
use super::tls::TlsContext;

/// How long an unused connection stays open (RFC 7766 §6.2.3 suggests seconds, not minutes).
pub(crate) const IDLE: Duration = Duration::from_secs(10);

/// Sends of one query on connections that closed after answering others (servers that close
/// after each answer); bounded so a query cannot chase connections until its deadline.
const MAX_RESENDS: u32 = 8;

/// How a connection is opened.
pub(crate) enum Dial {
    /// Plain TCP.
    Tcp,
    /// TLS checked against the context's trusted CAs (`authenticate`), or encrypted only
    /// (opportunistic); `name` is what the certificate must carry.
    Tls { context: Arc<TlsContext>, name: ServerName<'static>, authenticate: bool },
}

/// The counters `status` shows for one server's streams.
#[derive(Debug, Default)]
pub(crate) struct StreamCounters {
    /// Connections opened (TCP connected, and for TLS the handshake done).
    pub opened: AtomicU64,
    /// TLS handshakes that resumed an earlier session.
    pub resumed: AtomicU64,
}

/// The connection to one server, opened when first needed.
pub(crate) struct StreamPool {
    server: SocketAddr,
    dial: Dial,
    bind: Bind,
    /// Bound on connecting (and the TLS handshake).
    connect_within: Duration,
    slot: tokio::sync::Mutex<Option<Arc<Conn>>>,
    /// Cancelled when the pool is dropped: closes its connection.
    closing: CancellationToken,
    pub counters: StreamCounters,
}

impl std::fmt::Debug for StreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamPool").field("server", &self.server).finish_non_exhaustive()
    }
}

impl Drop for StreamPool {
    fn drop(&mut self) {
        self.closing.cancel();
    }
}

impl StreamPool {
    pub(crate) fn new(server: SocketAddr, dial: Dial, bind: Bind, connect_within: Duration) -> Self {
        Self {
            server,
            dial,
            bind,
            connect_within,
            slot: tokio::sync::Mutex::new(None),
            closing: CancellationToken::new(),
            counters: StreamCounters::default(),
        }
    }

    /// True for TLS pools.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.dial, Dial::Tls { .. })
    }

    /// The name a TLS server's certificate is checked against, as text.
    pub(crate) fn tls_name(&self) -> Option<String> {
        match &self.dial {
            Dial::Tls { name, .. } => Some(name.to_str().into_owned()),
            Dial::Tcp => None,
        }
    }

    /// Asks `query` over this server's connection, opening one if needed.
    pub(crate) async fn exchange(&self, query: &Query, flags: QueryFlags) -> Result<Message, UpstreamError> {
        let mut fruitless = 0;
        let mut resends = 0;
        loop {
            let conn = self.connection().await?;
            match conn.ask(query, flags).await {
                Ok(msg) => return Ok(msg),
                // Closed between handing it out and asking: not this query's fault.
                Err(Asked::Stale) => continue,
                Err(Asked::Encode(e)) => {
                    return Err(UpstreamError::Network {
                        server: self.server,
                        error: format!("cannot encode query: {e}"),
                    });
                }
                Err(Asked::Closed { answered }) => {
                    resends += 1;
                    if !answered {
                        fruitless += 1;
                    }
                    if fruitless > 1 || resends > MAX_RESENDS {
                        return Err(UpstreamError::Network {
                            server: self.server,
                            error: "the connection closed before the answer came".into(),
                        });
                    }
                }
            }
        }
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<Arc<Conn>, UpstreamError> {
        let mut slot = self.slot.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| c.is_open()) {
            return Ok(conn.clone());
        }
        *slot = None;
        let conn = match tokio::time::timeout(self.connect_within, self.connect()).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(UpstreamError::Network {
                    server: self.server,
                    error: format!("no connection within {} ms", self.connect_within.as_millis()),
                });
            }
        };
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self) -> Result<Arc<Conn>, UpstreamError> {
        let tcp = tcp_connect(self.server, &self.bind).await?;
        // Small queries, pipelined: do not wait to coalesce them.
        let _ = tcp.set_nodelay(true);
        let quickack = quick_ack_handle(&tcp);
        let closed = self.closing.child_token();
        let conn = match &self.dial {
            Dial::Tcp => Conn::start(tcp, closed, quickack),
            Dial::Tls { context, name, authenticate } => {
                let config = if *authenticate {
                    context.strict_config().map_err(|error| self.tls_error(error))?
                } else {
                    context.opportunistic_config()
                };
                let connector = tokio_rustls::TlsConnector::from(config);
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| self.tls_error(describe(&e)))?;
                if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                    self.counters.resumed.fetch_add(1, Ordering::Relaxed);
                }
                Conn::start(tls, closed, quickack)
            }
        };
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    fn tls_error(&self, error: String) -> UpstreamError {
        UpstreamError::Tls { server: self.server, name: self.tls_name().unwrap_or_default(), error }
    }
}

/// A TLS failure in words: rustls's reason when there is one (e.g. the certificate's problem).
fn describe(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            "the certificate is signed by a CA that is not trusted (see tls_ca_file)".into()
        }
        Some(rustls::Error::InvalidCertificate(why)) => why.to_string(),
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

/// Why a query got no answer from a connection.
enum Asked {
    /// The connection was already closed; ask again on another.
    Stale,
    /// The connection closed while the query waited; `answered`: it had answered something.
    Closed {
        answered: bool,
    },
    Encode(hickory_proto::ProtoError),
}

struct Waiter {
    query: Query,
    /// Tells apart two waiters that got the same id one after the other.
    ticket: u64,
    reply: oneshot::Sender<Message>,
}

struct ConnState {
    open: bool,
    waiting: HashMap<u16, Waiter>,
    last_activity: Instant,
    idle_after: Duration,
    next_ticket: u64,
}

/// One open connection.
struct Conn {
    queue: mpsc::UnboundedSender<Vec<u8>>,
    state: Mutex<ConnState>,
    /// Cancelled when the connection closes (or the pool is dropped).
    closed: CancellationToken,
    /// Woken when the last waiter is answered, so the writer starts the idle timer.
    became_idle: Notify,
    answered: AtomicBool,
}

impl Conn {
    fn start<S>(stream: S, closed: CancellationToken, quickack: Option<socket2::Socket>) -> Arc<Conn>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (reader, writer) = tokio::io::split(stream);
        let (queue, queued) = mpsc::unbounded_channel();
        let conn = Arc::new(Conn {
            queue,
            state: Mutex::new(ConnState {
                open: true,
                waiting: HashMap::new(),
                last_activity: Instant::now(),
                idle_after: IDLE,
                next_ticket: 0,
            }),
            closed,
            became_idle: Notify::new(),
            answered: AtomicBool::new(false),
        });
        tokio::spawn(read_loop(conn.clone(), BufReader::new(reader), quickack));
        tokio::spawn(write_loop(conn.clone(), writer, queued));
        conn
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_open(&self) -> bool {
        self.lock().open
    }

    /// Closes the connection: no new queries, and every waiter is told (their senders drop).
    fn close(&self) {
        let waiting = {
            let mut state = self.lock();
            state.open = false;
            std::mem::take(&mut state.waiting)
        };
        drop(waiting);
        self.closed.cancel();
    }

    async fn ask(&self, query: &Query, flags: QueryFlags) -> Result<Message, Asked> {
        let (reply, answer) = oneshot::channel();
        let (id, ticket) = {
            let mut state = self.lock();
            if !state.open {
                return Err(Asked::Stale);
            }
            let id = loop {
                let id: u16 = rand::random();
                if !state.waiting.contains_key(&id) {
                    break id;
                }
            };
            state.next_ticket += 1;
            let ticket = state.next_ticket;
            state.waiting.insert(id, Waiter { query: query.clone(), ticket, reply });
            (id, ticket)
        };
        // Whatever happens next (answer, close, or the caller giving up), the waiter goes.
        let _forget = Forget { conn: self, id, ticket };
        let wire = encode_query(id, query, flags, true).map_err(Asked::Encode)?;
        if self.queue.send(wire).is_err() {
            return Err(Asked::Closed { answered: self.answered.load(Ordering::Relaxed) });
        }
        answer.await.map_err(|_| Asked::Closed { answered: self.answered.load(Ordering::Relaxed) })
    }

    /// Hands `bytes` to the query it answers, if any is waiting for it.
    fn deliver(&self, bytes: &[u8]) {
        let Ok(msg) = Message::from_vec(bytes) else { return };
        let keepalive = server_keepalive(&msg);
        let mut state = self.lock();
        let id = msg.metadata.id;
        let matches = state.waiting.get(&id).is_some_and(|w| answers(&msg, &w.query));
        if let Some(idle) = keepalive {
            state.idle_after = idle.min(IDLE);
        }
        if !matches {
            return;
        }
        state.last_activity = Instant::now();
        if let Some(waiter) = state.waiting.remove(&id) {
            self.answered.store(true, Ordering::Relaxed);
            let _ = waiter.reply.send(msg);
        }
        if state.waiting.is_empty() {
            self.became_idle.notify_one();
        }
    }
}

/// Removes a query's waiter from its connection when the query stops waiting.
struct Forget<'a> {
    conn: &'a Conn,
    id: u16,
    ticket: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut state = self.conn.lock();
        if state.waiting.get(&self.id).is_some_and(|w| w.ticket == self.ticket) {
            state.waiting.remove(&self.id);
            if state.waiting.is_empty() {
                self.conn.became_idle.notify_one();
            }
        }
    }
}

/// The idle time the server asks for with EDNS TCP keepalive (RFC 7828: units of 100 ms).
fn server_keepalive(msg: &Message) -> Option<Duration> {
    let edns = msg.edns.as_ref()?;
    match edns.options().get(EdnsCode::Keepalive)? {
        EdnsOption::Unknown(_, data) if data.len() == 2 => {
            Some(Duration::from_millis(u64::from(u16::from_be_bytes([data[0], data[1]])) * 100))
        }
        _ => None,
    }
}

/// A second handle on the connection's socket (a duplicated descriptor), to ask for an immediate
/// ACK after each answer.
///
/// Why: a server that leaves Nagle's algorithm on (Unbound's TLS listener does) holds its next small
/// answer until the previous one is acknowledged, and Linux delays our ACK until we have something
/// to send: each answer then waits for the next query on the connection. Measured through the
/// bench's Unbound DoT front at 500 q/s: p50 4.1 ms with delayed ACKs, 0.5 ms with TCP_QUICKACK
/// set again after every answer (the kernel clears it by itself).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn quick_ack_handle(tcp: &tokio::net::TcpStream) -> Option<socket2::Socket> {
    use std::os::fd::AsFd;
    tcp.as_fd().try_clone_to_owned().ok().map(socket2::Socket::from)
}

/// Elsewhere there is no TCP_QUICKACK: no second descriptor either.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn quick_ack_handle(_tcp: &tokio::net::TcpStream) -> Option<socket2::Socket> {
    None
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let len = reader.read_u16().await? as usize;
    buf.resize(len, 0);
    reader.read_exact(buf).await?;
    Ok(())
}

// `quickack` is only used where TCP_QUICKACK exists (elsewhere it is always `None`).
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(unused_variables))]
async fn read_loop<R: AsyncRead + Unpin>(conn: Arc<Conn>, mut reader: R, quickack: Option<socket2::Socket>) {
    let mut buf = Vec::with_capacity(1024);
    loop {
        tokio::select! {
            _ = conn.closed.cancelled() => break,
            r = read_frame(&mut reader, &mut buf) => match r {
                Ok(()) => {
                    #[cfg(any(target_os = "linux", target_os = "android"))]
                    if let Some(s) = &quickack {
                        let _ = s.set_tcp_quickack(true);
                    }
                    conn.deliver(&buf)
                }
                Err(_) => break,
            },
        }
    }
    conn.close();
}

async fn write_loop<W: AsyncWrite + Unpin>(
    conn: Arc<Conn>,
    mut writer: W,
    mut queued: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut batch = Vec::with_capacity(4096);
    loop {
        let idle_at = {
            let state = conn.lock();
            state.waiting.is_empty().then(|| state.last_activity + state.idle_after)
        };
        tokio::select! {
            _ = conn.closed.cancelled() => break,
            frame = queued.recv() => {
                let Some(first) = frame else { break };
                // Every waiting query in one write, each behind its two-octet length (RFC 1035 §4.2.2).
                batch.clear();
                for query in std::iter::once(first).chain(std::iter::from_fn(|| queued.try_recv().ok())) {
                    batch.extend_from_slice(&(query.len() as u16).to_be_bytes());
                    batch.extend_from_slice(&query);
                }
                if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
                    break;
                }
            }
            _ = conn.became_idle.notified() => {}
            _ = tokio::time::sleep_until(idle_at.unwrap_or_else(Instant::now)), if idle_at.is_some() => {
                let mut state = conn.lock();
                if state.waiting.is_empty() && state.last_activity.elapsed() >= state.idle_after {
                    // Closed under the lock, so no query slips onto a connection about to go.
                    state.open = false;
                    break;
                }
            }
        }
    }
    conn.close();
    // Tell the server (TLS close_notify, then FIN); it may already be gone.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, ResponseCode};
    use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};
    use tokio::net::TcpListener;

    /// A TCP server that reads `batch` queries, answers them in reverse order (each name gets an
    /// address from its first label's number), then closes the connection.
    async fn reversing_server(batch: usize) -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let mut queries = Vec::new();
                let mut buf = Vec::new();
                while queries.len() < batch && read_frame(&mut s, &mut buf).await.is_ok() {
                    queries.push(Message::from_vec(&buf).unwrap());
                }
                for q in queries.into_iter().rev() {
                    let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
                    r.metadata.response_code = ResponseCode::NoError;
                    let question = q.queries[0].clone();
                    let n: u8 =
                        question.name().to_string().trim_start_matches('h').split('.').next().unwrap().parse().unwrap();
                    r.add_query(question.clone());
                    r.add_answer(Record::from_rdata(question.name().clone(), 60, RData::A(A::new(10, 0, 0, n))));
                    let wire = r.to_vec().unwrap();
                    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&wire);
                    s.write_all(&framed).await.unwrap();
                }
                // Closes after the batch, as a server that is done with a connection may.
            }
        });
        (addr, accepted)
    }

    fn query(n: u8) -> Query {
        Query::query(Name::from_ascii(format!("h{n}.test.")).unwrap(), RecordType::A)
    }

    fn address(m: &Message) -> String {
        m.answers[0].data.to_string()
    }

    #[tokio::test]
    async fn pipelined_answers_out_of_order_reach_their_own_queries() {
        let (addr, accepted) = reversing_server(3).await;
        let pool = Arc::new(StreamPool::new(addr, Dial::Tcp, Bind::default(), Duration::from_secs(2)));
        let asks = (1..=3u8).map(|n| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.exchange(&query(n), QueryFlags::default()).await })
        });
        let answers: Vec<String> =
            futures_util::future::join_all(asks).await.into_iter().map(|r| address(&r.unwrap().unwrap())).collect();
        assert_eq!(answers, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!((accepted.load(Ordering::Relaxed), pool.counters.opened.load(Ordering::Relaxed)), (1, 1));
        // The server closed that connection; the next query gets a fresh one.
        let (q4, q5, q6) = (query(4), query(5), query(6));
        let (one, two, three) = tokio::join!(
            pool.exchange(&q4, QueryFlags::default()),
            pool.exchange(&q5, QueryFlags::default()),
            pool.exchange(&q6, QueryFlags::default()),
        );
        assert_eq!([one, two, three].map(|r| address(&r.unwrap())), ["10.0.0.4", "10.0.0.5", "10.0.0.6"]);
        assert_eq!(pool.counters.opened.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_server_that_closes_after_each_answer_is_still_served() {
        let (addr, accepted) = reversing_server(1).await;
        let pool = StreamPool::new(addr, Dial::Tcp, Bind::default(), Duration::from_secs(2));
        for n in 1..=5u8 {
            let m = pool.exchange(&query(n), QueryFlags::default()).await.unwrap();
            assert_eq!(address(&m), format!("10.0.0.{n}"));
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn a_connection_that_never_answers_is_retried_once_then_fails() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            // Reads the query, closes without a word.
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let mut buf = Vec::new();
                let _ = read_frame(&mut s, &mut buf).await;
            }
        });
        let pool = StreamPool::new(addr, Dial::Tcp, Bind::default(), Duration::from_secs(2));
        let e = pool.exchange(&query(1), QueryFlags::default()).await.unwrap_err();
        assert!(e.to_string().contains("closed before the answer"), "{e}");
        assert_eq!(accepted.load(Ordering::Relaxed), 2, "one retry on a fresh connection");
    }

    #[tokio::test]
    async fn dropping_the_pool_closes_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (closed_tx, closed_rx) = oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            // Never answers; sees the client's FIN when the pool goes.
            let _ = read_frame(&mut s, &mut buf).await;
            let _ = read_frame(&mut s, &mut buf).await;
            let _ = closed_tx.send(());
        });
        let pool = Arc::new(StreamPool::new(addr, Dial::Tcp, Bind::default(), Duration::from_secs(2)));
        let asking = tokio::spawn({
            let pool = pool.clone();
            async move { pool.exchange(&query(1), QueryFlags::default()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        asking.abort();
        drop(pool);
        tokio::time::timeout(Duration::from_secs(2), closed_rx).await.expect("connection closed").unwrap();
    }

    #[tokio::test]
    async fn the_servers_keepalive_shortens_the_idle_time() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (closed_tx, closed_rx) = oneshot::channel();
        let (sent_keepalive_tx, sent_keepalive_rx) = oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            read_frame(&mut s, &mut buf).await.unwrap();
            let q = Message::from_vec(&buf).unwrap();
            let asked = q.edns.as_ref().is_some_and(|e| e.options().get(EdnsCode::Keepalive).is_some());
            let _ = sent_keepalive_tx.send(asked);
            let mut r = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
            r.add_query(q.queries[0].clone());
            let mut edns = hickory_proto::op::Edns::new();
            // 2 × 100 ms.
            edns.options_mut().insert(EdnsOption::Unknown(11, vec![0, 2]));
            r.set_edns(edns);
            let wire = r.to_vec().unwrap();
            let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&wire);
            s.write_all(&framed).await.unwrap();
            let started = Instant::now();
            let _ = read_frame(&mut s, &mut buf).await; // EOF when the client closes
            let _ = closed_tx.send(started.elapsed());
        });
        let pool = StreamPool::new(addr, Dial::Tcp, Bind::default(), Duration::from_secs(2));
        pool.exchange(&query(1), QueryFlags::default()).await.unwrap();
        assert!(sent_keepalive_rx.await.unwrap(), "stream queries carry an empty keepalive option");
        let after =
            tokio::time::timeout(Duration::from_secs(5), closed_rx).await.expect("closed well before 10 s").unwrap();
        assert!(after < Duration::from_secs(5), "{after:?}");
    }
}
