//! What every upstream transport shares: where a query leaves from ([`Bind`]), how our query is
//! written ([`encode_query`]) and how an answer is recognised as ours ([`matching_response`]), the
//! TCP connect that streams start from, and why a query produced no answer ([`UpstreamError`]).
//!
//! [`super::upstream`] (server choice, UDP) and [`super::stream`] (TCP and TLS connections) both
//! build on this file; it knows neither of them.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use tokio::net::{TcpSocket, TcpStream};

use super::ede;

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
pub(super) fn bind_interface(sock: socket2::SockRef<'_>, bind: &Bind, server: SocketAddr) -> Result<(), UpstreamError> {
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
pub(super) fn bind_interface(
    _sock: socket2::SockRef<'_>,
    bind: &Bind,
    server: SocketAddr,
) -> Result<(), UpstreamError> {
    match &bind.interface {
        None => Ok(()),
        Some(iface) => Err(UpstreamError::Bind {
            server,
            what: format!("interface {iface}"),
            error: "binding to an interface is only supported on Linux".into(),
        }),
    }
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
    /// The TLS handshake failed (the certificate did not check out, or no TLS spoken): the
    /// query was not sent, and never goes in clear text instead.
    #[error("TLS with {server} (certificate name {name}) failed: {error}; nothing was sent in clear text")]
    Tls { server: SocketAddr, name: String, error: String },
    #[error("query abandoned: {0}")]
    Abandoned(String),
}

impl UpstreamError {
    /// The RFC 8914 extended error that tells the client why it got SERVFAIL.
    pub fn ede_code(&self) -> u16 {
        match self {
            UpstreamError::NoServers | UpstreamError::Timeout { .. } => ede::NO_REACHABLE_AUTHORITY,
            UpstreamError::Rcode { .. } => ede::NO_REACHABLE_AUTHORITY,
            UpstreamError::Network { .. } | UpstreamError::Bind { .. } | UpstreamError::Tls { .. } => {
                ede::NETWORK_ERROR
            }
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

/// EDNS buffer size we offer upstream (DNS flag day 2020; tunnels have small MTUs).
pub const EDNS_PAYLOAD: u16 = 1232;

/// A TCP connection to `server`, leaving from the link's interface and source address.
pub(super) async fn tcp_connect(server: SocketAddr, bind: &Bind) -> Result<TcpStream, UpstreamError> {
    let net_err = |e: std::io::Error| UpstreamError::Network { server, error: format!("tcp: {e}") };
    let sock = match server {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(net_err)?;
    bind_interface(socket2::SockRef::from(&sock), bind, server)?;
    if let Some(src) = bind.source {
        sock.bind(SocketAddr::new(src, 0)).map_err(|e| UpstreamError::Bind {
            server,
            what: format!("source {src}"),
            error: e.to_string(),
        })?;
    }
    sock.connect(server).await.map_err(net_err)
}

/// Builds our query: random id, RD, EDNS with our buffer size, DO and CD as the client asked. On a
/// stream, it also carries an empty EDNS TCP keepalive option, so the server tells us how long it
/// keeps the connection (RFC 7828 §3.2.1).
pub fn encode_query(
    id: u16,
    query: &Query,
    flags: QueryFlags,
    stream: bool,
) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.metadata.checking_disabled = flags.checking_disabled;
    msg.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    edns.set_dnssec_ok(flags.dnssec_ok);
    if stream {
        edns.options_mut().insert(EdnsOption::Unknown(EdnsCode::Keepalive.into(), Vec::new()));
    }
    msg.set_edns(edns);
    msg.to_vec()
}

/// Parses `bytes` and returns it only if it is a response to our id and question.
pub fn matching_response(bytes: &[u8], id: u16, query: &Query) -> Option<Message> {
    let msg = Message::from_vec(bytes).ok()?;
    (msg.metadata.id == id && answers(&msg, query)).then_some(msg)
}

/// True if `msg` is a response to `query` (same single question; the caller checks the id).
pub(super) fn answers(msg: &Message, query: &Query) -> bool {
    let Some(q) = msg.queries.first() else { return false };
    msg.metadata.message_type == MessageType::Response
        && msg.queries.len() == 1
        && q.query_type() == query.query_type()
        && q.query_class() == query.query_class()
        && q.name() == query.name()
}
