//! The UDP side of the loopback listener: one receive loop per socket.
//!
//! Nearly every query a laptop sends is a repeat, so the loop first tries
//! [`Handler::answer_from_cache`], which answers a plain query from the cache's stored wire bytes
//! without building a message or a task (the cost of a cached answer is then mostly the two system
//! calls). Everything else (misses, unusual or malformed packets) is decoded by hickory-proto and
//! answered by [`Handler::answer_packet`] in its own task, so a slow upstream never holds up the
//! loop. TCP is served by hickory-server (see [`super::listener`]).
//!
//! With several cores the listener binds one socket per core on the same address
//! (`SO_REUSEPORT`), and the kernel spreads clients over them.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::handler::Handler;
use super::wire;

/// Largest datagram we read; bigger ones are cut short and then fail to parse (FORMERR).
const RECV_BUFFER: usize = 4096;

/// Serves one socket until `cancel` fires. Slow-path tasks are spawned on `tracker` so shutdown
/// can wait for them.
pub async fn serve(socket: Arc<UdpSocket>, handler: Handler, tracker: TaskTracker, cancel: CancellationToken) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut out = Vec::with_capacity(RECV_BUFFER);
    let mut lower = [0u8; wire::MAX_NAME];
    loop {
        let (n, src) = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
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
        let (packet, socket, handler) = (packet.to_vec(), socket.clone(), handler.clone());
        tracker.spawn(async move {
            if let Some(reply) = handler.answer_packet(&packet, src).await
                && let Err(e) = socket.send_to(&reply, src).await
            {
                debug!(%src, error = %e, "udp send");
            }
        });
    }
}
