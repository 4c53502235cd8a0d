//! Tunnel interfaces that vanish take their links with them.
//!
//! A VPN client that is killed (a crash, `kill -9`, an OOM) runs no down hook, but its tunnel
//! device disappears with the process. The daemon listens on rtnetlink for RTM_DELLINK (the
//! kernel's own notice, no polling) and tears down every link bound to that interface index, with
//! all four RFC 8598 §5 effects, as if the down hook had run. A link whose interface only goes down
//! (not away) stays: its servers may come back.
//!
//! Linux only; elsewhere nothing is watched and links leave only by a down event.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::agent::Agent;

/// Starts watching for removed interfaces until `stop` fires.
#[cfg(target_os = "linux")]
pub(crate) fn watch(agent: Arc<Agent>, stop: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    use futures_util::StreamExt;
    use netlink_packet_core::NetlinkPayload;
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_sys::{AsyncSocket, SocketAddr};
    use tracing::{debug, info, warn};

    let (mut connection, _handle, mut messages) = rtnetlink::new_connection()?;
    connection.socket_mut().socket_mut().bind(&SocketAddr::new(0, rtnetlink::constants::RTMGRP_LINK))?;
    let conn_stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = connection => warn!("rtnetlink connection ended: vanished tunnels are no longer noticed"),
            _ = conn_stop.cancelled() => {}
        }
    });
    Ok(tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => break,
                m = messages.next() => m,
            };
            let Some((message, _)) = message else {
                warn!("rtnetlink stream ended: vanished tunnels are no longer noticed");
                break;
            };
            if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) = message.payload {
                let index = link.header.index;
                debug!(index, "interface removed");
                let gone = agent.interface_gone(index);
                if !gone.is_empty() {
                    info!(index, links = ?gone, "tunnel interface removed: its links are torn down");
                }
            }
        }
    }))
}

/// Elsewhere: nothing to watch.
#[cfg(not(target_os = "linux"))]
pub fn watch(_agent: Arc<Agent>, stop: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    Ok(tokio::spawn(async move { stop.cancelled().await }))
}
