//! A scriptable upstream for what AuthServer cannot show: every UDP datagram (retransmissions,
//! ids, ports) and forged, mismatched or hostile replies. UDP queries are logged and answered by a
//! script; TCP queries are logged and proxied to a backend server, if any.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A datagram the fake sends back for one UDP query.
pub enum Out {
    /// Sent from the fake's own socket to the querier.
    Reply(Vec<u8>),
    /// Sent from a different local port (an off-path spoofer guessing the id).
    FromOtherPort(Vec<u8>),
}

pub type Script = Arc<dyn Fn(&Message) -> Vec<Out> + Send + Sync>;

/// A fake DNS server on 127.0.0.1 (same port for UDP and TCP). UDP queries are logged and answered
/// by a script; TCP queries are logged and proxied to a backend [`AuthServer`], if any.
pub struct Fake {
    pub addr: SocketAddr,
    udp_log: Arc<Mutex<Vec<(SocketAddr, Message)>>>,
    tcp_log: Arc<Mutex<Vec<Message>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fake {
    pub async fn start(script: Script, tcp_backend: Option<SocketAddr>) -> Fake {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let udp_log = Arc::new(Mutex::new(Vec::new()));
        let tcp_log = Arc::new(Mutex::new(Vec::new()));

        let log = udp_log.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                let Ok(msg) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                log.lock().unwrap().push((peer, msg.clone()));
                for out in script(&msg) {
                    match out {
                        Out::Reply(bytes) => {
                            let _ = udp.send_to(&bytes, peer).await;
                        }
                        Out::FromOtherPort(bytes) => {
                            let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                            let _ = other.send_to(&bytes, peer).await;
                        }
                    }
                }
            }
        });

        let log = tcp_log.clone();
        let tcp_task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = tcp.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    while let Ok(len) = conn.read_u16().await {
                        let mut query = vec![0u8; usize::from(len)];
                        if conn.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        if let Ok(msg) = Message::from_vec(&query) {
                            log.lock().unwrap().push(msg);
                        }
                        let Some(backend) = tcp_backend else { return };
                        let Ok(reply) = proxy_tcp(backend, &query).await else {
                            return;
                        };
                        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&reply);
                        if conn.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });

        Fake { addr, udp_log, tcp_log, tasks: vec![udp_task, tcp_task] }
    }

    pub fn udp_queries(&self) -> Vec<(SocketAddr, Message)> {
        self.udp_log.lock().unwrap().clone()
    }

    pub fn tcp_queries(&self) -> Vec<Message> {
        self.tcp_log.lock().unwrap().clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Sends one framed query to `backend` over TCP and returns the framed reply's payload.
pub async fn proxy_tcp(backend: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(backend).await?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).await?;
    let len = s.read_u16().await?;
    let mut reply = vec![0u8; usize::from(len)];
    s.read_exact(&mut reply).await?;
    Ok(reply)
}
