//! A minimal raw DNS client (hickory-proto messages over plain tokio sockets) for poking at the
//! daemon and at test servers without any resolver library in between.

use std::io::{Error, ErrorKind};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Per-query options for [`udp`] / [`tcp`].
#[derive(Clone, Debug)]
pub struct Q {
    /// EDNS DO bit. Setting it forces an OPT record even if `edns` is false.
    pub do_bit: bool,
    /// Header CD (checking disabled) bit.
    pub cd: bool,
    /// Header AD bit.
    pub ad: bool,
    /// Send an OPT record (payload size 1232). Default true.
    pub edns: bool,
    /// Overall deadline for the exchange. Default 5 s.
    pub timeout: Duration,
}

impl Default for Q {
    fn default() -> Self {
        Self { do_bit: false, cd: false, ad: false, edns: true, timeout: Duration::from_secs(5) }
    }
}

/// Sends one query (random id, RD=1) over UDP and returns the decoded response.
/// Errors: `TimedOut` if nothing arrives in time, `InvalidData` for an undecodable reply, a
/// reply with the wrong id, or one that is not a response.
pub async fn udp(server: SocketAddr, name: &str, qtype: RecordType, q: &Q) -> std::io::Result<Message> {
    let request = build(name, qtype, q)?;
    let bytes = encode(&request)?;
    let exchange = async {
        let sock = UdpSocket::bind(local_any(server)).await?;
        sock.connect(server).await?;
        sock.send(&bytes).await?;
        let mut buf = vec![0u8; 65535];
        let n = sock.recv(&mut buf).await?;
        check(&request, &buf[..n])
    };
    with_timeout(q.timeout, exchange).await
}

/// Same as [`udp`] over TCP (one connection per query, 2-byte length prefix).
pub async fn tcp(server: SocketAddr, name: &str, qtype: RecordType, q: &Q) -> std::io::Result<Message> {
    let request = build(name, qtype, q)?;
    let bytes = encode(&request)?;
    let len = u16::try_from(bytes.len()).map_err(|_| Error::other("query too long"))?;
    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await?;
        check(&request, &buf)
    };
    with_timeout(q.timeout, exchange).await
}

/// Sends arbitrary bytes to `server` over UDP and returns the first datagram that comes back
/// within `wait`, or `None` (for malformed-packet tests).
pub async fn send_raw_udp(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(local_any(server)).await.ok()?;
    sock.connect(server).await.ok()?;
    sock.send(bytes).await.ok()?;
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(wait, sock.recv(&mut buf)).await.ok()?.ok()?;
    buf.truncate(n);
    Some(buf)
}

/// The RFC 8914 Extended DNS Error (EDNS option 15) of `msg`, as `(info code, extra text)`.
/// hickory 0.26 has no EDE type, so it arrives as `EdnsOption::Unknown(15, bytes)`.
pub fn ede(msg: &Message) -> Option<(u16, String)> {
    msg.edns.as_ref()?.options().options.iter().find_map(|(_, opt)| match opt {
        EdnsOption::Unknown(15, data) if data.len() >= 2 => {
            Some((u16::from_be_bytes([data[0], data[1]]), String::from_utf8_lossy(&data[2..]).into_owned()))
        }
        _ => None,
    })
}

/// All IPv4 addresses in the answer section, in order.
pub fn a_addrs(msg: &Message) -> Vec<Ipv4Addr> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// All IPv6 addresses in the answer section, in order.
pub fn aaaa_addrs(msg: &Message) -> Vec<Ipv6Addr> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// The response code of `msg`.
pub fn rcode(msg: &Message) -> ResponseCode {
    msg.metadata.response_code
}

fn build(name: &str, qtype: RecordType, q: &Q) -> std::io::Result<Message> {
    let mut qname =
        Name::from_ascii(name).map_err(|e| Error::new(ErrorKind::InvalidInput, format!("bad name {name:?}: {e}")))?;
    qname.set_fqdn(true);
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.metadata.checking_disabled = q.cd;
    msg.metadata.authentic_data = q.ad;
    msg.add_query(Query::query(qname, qtype));
    if q.edns || q.do_bit {
        let mut edns = Edns::new();
        edns.set_max_payload(1232).set_dnssec_ok(q.do_bit);
        msg.set_edns(edns);
    }
    Ok(msg)
}

fn encode(msg: &Message) -> std::io::Result<Vec<u8>> {
    msg.to_vec().map_err(|e| Error::new(ErrorKind::InvalidInput, format!("encode: {e}")))
}

fn check(request: &Message, bytes: &[u8]) -> std::io::Result<Message> {
    let bad = |what: String| Error::new(ErrorKind::InvalidData, what);
    let msg = Message::from_vec(bytes).map_err(|e| bad(format!("undecodable reply: {e}")))?;
    if msg.metadata.id != request.metadata.id {
        return Err(bad(format!("reply id {} != query id {}", msg.metadata.id, request.metadata.id)));
    }
    if msg.metadata.message_type != MessageType::Response {
        return Err(bad("reply has QR=0".into()));
    }
    Ok(msg)
}

fn local_any(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

async fn with_timeout<T>(limit: Duration, fut: impl Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| Error::new(ErrorKind::TimedOut, format!("no reply within {limit:?}")))?
}
