//! The UDP side of the loopback listener: one receive loop per socket.
//!
//! Nearly every query a laptop sends is a repeat, so the loop first tries
//! [`Handler::answer_from_cache`], which answers a plain query from the cache's stored wire bytes
//! without building a message or a task. Everything else (misses, unusual or malformed packets)
//! is decoded by hickory-proto and answered by [`Handler::answer_packet`] in its own task, so a
//! slow upstream never holds up the loop. TCP is served by hickory-server (see
//! [`super::listener`]).
//!
//! On Linux the loop moves datagrams in batches (`recvmmsg`/`sendmmsg`, [`mmsg`]): under load one
//! system call carries many queries in and many answers out, which is most of what a cached
//! answer costs. Elsewhere it falls back to one datagram per call.
//!
//! With several cores the listener binds one socket per core on the same address
//! (`SO_REUSEPORT`), and the kernel spreads clients over them.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::handler::Handler;
use super::wire;

/// Largest datagram we read; a longer one is cut short and then fails to parse (FORMERR). Real
/// queries are far smaller (a name is at most 255 bytes).
const RECV_BUFFER: usize = 2048;

/// Serves one socket until `cancel` fires. Slow-path tasks are spawned on `tracker` so shutdown
/// can wait for them.
pub(crate) async fn serve(socket: Arc<UdpSocket>, handler: Handler, tracker: TaskTracker, cancel: CancellationToken) {
    #[cfg(target_os = "linux")]
    mmsg::serve(socket, handler, tracker, cancel).await;
    #[cfg(not(target_os = "linux"))]
    serve_one_by_one(socket, handler, tracker, cancel).await;
}

/// Hands a packet the cache could not answer to the full path, in its own task.
fn spawn_slow(packet: &[u8], src: SocketAddr, socket: &Arc<UdpSocket>, handler: &Handler, tracker: &TaskTracker) {
    let (packet, socket, handler) = (packet.to_vec(), socket.clone(), handler.clone());
    tracker.spawn(async move {
        if let Some(reply) = handler.answer_packet(&packet, src).await
            && let Err(e) = socket.send_to(&reply, src).await
        {
            debug!(%src, error = %e, "udp send");
        }
    });
}

/// The portable loop: one `recv_from` and one `send_to` per query.
#[cfg_attr(target_os = "linux", allow(dead_code))]
async fn serve_one_by_one(socket: Arc<UdpSocket>, handler: Handler, tracker: TaskTracker, cancel: CancellationToken) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut out = Vec::with_capacity(RECV_BUFFER);
    let mut lower = [0u8; wire::MAX_NAME];
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let (n, src) = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "udp receive");
                    continue;
                }
            },
        };
        let packet = &buf[..n];
        if src.ip().is_loopback() && handler.answer_from_cache(packet, &mut lower, &mut out) {
            if let Err(e) = socket.send_to(&out, src).await {
                debug!(%src, error = %e, "udp send");
            }
            continue;
        }
        spawn_slow(packet, src, &socket, &handler, &tracker);
    }
}

#[cfg(target_os = "linux")]
mod mmsg {
    //! Batched datagram I/O with `recvmmsg(2)`/`sendmmsg(2)`. The unsafe code is confined to
    //! [`Batch::recv`], [`send_batch`] and [`to_socket_addr`]: each builds the kernel's header
    //! arrays on its own stack, pointing into buffers it borrows for the duration of the call.

    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;
    use std::sync::Arc;

    use tokio::io::Interest;
    use tokio::net::UdpSocket;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;
    use tracing::debug;

    use super::{Handler, RECV_BUFFER, spawn_slow, wire};

    /// Datagrams per system call.
    const BATCH: usize = 16;

    /// Receive buffers and the addresses the datagrams came from.
    struct Batch {
        data: Vec<u8>,
        lens: [usize; BATCH],
        truncated: [bool; BATCH],
        addrs: [libc::sockaddr_storage; BATCH],
        addr_lens: [libc::socklen_t; BATCH],
    }

    impl Batch {
        fn new() -> Box<Self> {
            Box::new(Self {
                data: vec![0u8; BATCH * RECV_BUFFER],
                lens: [0; BATCH],
                truncated: [false; BATCH],
                // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
                addrs: unsafe { zeroed() },
                addr_lens: [0; BATCH],
            })
        }

        /// One `recvmmsg` without waiting; returns how many datagrams arrived.
        fn recv(&mut self, fd: i32) -> io::Result<usize> {
            // SAFETY: iovec and mmsghdr are plain old data; all-zero is valid (null pointers,
            // zero lengths) and every field the kernel reads is set below.
            let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
            let mut hdr: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
            for (i, chunk) in self.data.chunks_exact_mut(RECV_BUFFER).enumerate() {
                iov[i] = libc::iovec { iov_base: chunk.as_mut_ptr().cast(), iov_len: RECV_BUFFER };
                hdr[i].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
                hdr[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                hdr[i].msg_hdr.msg_iov = &mut iov[i];
                hdr[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: `hdr` holds BATCH valid headers whose buffers (`self.data` chunks, `iov`,
            // `self.addrs`) outlive the call and are not otherwise borrowed during it.
            let n = unsafe {
                libc::recvmmsg(fd, hdr.as_mut_ptr(), BATCH as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            for (i, h) in hdr.iter().take(n).enumerate() {
                self.lens[i] = (h.msg_len as usize).min(RECV_BUFFER);
                self.truncated[i] = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                self.addr_lens[i] = h.msg_hdr.msg_namelen;
            }
            Ok(n)
        }

        fn packet(&self, i: usize) -> &[u8] {
            &self.data[i * RECV_BUFFER..i * RECV_BUFFER + self.lens[i]]
        }
    }

    /// The address a datagram came from.
    fn to_socket_addr(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        match i32::from(ss.ss_family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the kernel wrote a sockaddr_in here (family AF_INET, length checked);
                // sockaddr_storage is large and aligned enough for it.
                let sin = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for AF_INET6 and sockaddr_in6.
                let sin6 = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// One `sendmmsg` of `outs[..]` to `to[..]` without waiting; returns how many were sent.
    fn send_batch(fd: i32, outs: &[Vec<u8>], to: &[(libc::sockaddr_storage, libc::socklen_t)]) -> io::Result<usize> {
        let count = outs.len().min(to.len()).min(BATCH);
        // SAFETY: plain old data, as in `Batch::recv`.
        let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdr: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..count {
            iov[i] = libc::iovec { iov_base: outs[i].as_ptr() as *mut libc::c_void, iov_len: outs[i].len() };
            hdr[i].msg_hdr.msg_name = (&to[i].0 as *const libc::sockaddr_storage) as *mut libc::c_void;
            hdr[i].msg_hdr.msg_namelen = to[i].1;
            hdr[i].msg_hdr.msg_iov = &mut iov[i];
            hdr[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `count` valid headers; the kernel only reads the buffers and addresses, which
        // outlive the call.
        let n = unsafe { libc::sendmmsg(fd, hdr.as_mut_ptr(), count as libc::c_uint, libc::MSG_DONTWAIT) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// Sends every answer, waiting for buffer space if the socket is full. A datagram the kernel
    /// refuses outright is dropped (the client retries), never retried forever.
    async fn flush(socket: &UdpSocket, outs: &[Vec<u8>], to: &[(libc::sockaddr_storage, libc::socklen_t)]) {
        let fd = socket.as_raw_fd();
        let mut done = 0;
        while done < outs.len() {
            match socket.try_io(Interest::WRITABLE, || send_batch(fd, &outs[done..], &to[done..])) {
                Ok(n) => done += n.max(1),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if socket.writable().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    debug!(error = %e, "udp send");
                    done += 1;
                }
            }
        }
    }

    pub(super) async fn serve(
        socket: Arc<UdpSocket>,
        handler: Handler,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) {
        let fd = socket.as_raw_fd();
        let mut batch = Batch::new();
        let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::new()).collect();
        let mut to: Vec<(libc::sockaddr_storage, libc::socklen_t)> = Vec::with_capacity(BATCH);
        let mut lower = [0u8; wire::MAX_NAME];
        let cancelled = cancel.cancelled();
        tokio::pin!(cancelled);
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => break,
                r = socket.readable() => if let Err(e) = r {
                    debug!(error = %e, "udp readiness");
                    break;
                },
            }
            // Drain the socket: each round is one receive and at most one send call.
            loop {
                let n = match socket.try_io(Interest::READABLE, || batch.recv(fd)) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        debug!(error = %e, "udp receive");
                        break;
                    }
                };
                to.clear();
                for i in 0..n {
                    let Some(src) = to_socket_addr(&batch.addrs[i], batch.addr_lens[i]) else { continue };
                    let packet = batch.packet(i);
                    let out = &mut outs[to.len()];
                    if !batch.truncated[i]
                        && src.ip().is_loopback()
                        && handler.answer_from_cache(packet, &mut lower, out)
                    {
                        to.push((batch.addrs[i], batch.addr_lens[i]));
                    } else {
                        spawn_slow(packet, src, &socket, &handler, &tracker);
                    }
                }
                flush(&socket, &outs[..to.len()], &to).await;
                if n < BATCH {
                    break;
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn socket_addresses_round_trip() {
            for addr in ["127.0.0.1:5353", "[::1]:53", "[fe80::1%2]:853"] {
                let addr: SocketAddr = addr.parse().unwrap();
                let sa = socket2::SockAddr::from(addr);
                // SAFETY (test): copy socket2's storage bytes into libc's type of the same layout.
                let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        sa.as_ptr().cast::<u8>(),
                        (&mut ss as *mut libc::sockaddr_storage).cast::<u8>(),
                        sa.len() as usize,
                    );
                }
                assert_eq!(to_socket_addr(&ss, sa.len()), Some(addr));
                assert_eq!(to_socket_addr(&ss, 2), None, "a short length is refused");
            }
        }
    }
}
