//! systemd-resolved: where its files are, its stub address, and splitdns's drop-in.
//!
//! Resolved mode (`/etc/resolv.conf` is resolved's stub, 127.0.0.53): a drop-in [`RESOLVED_DROPIN`]
//! with `DNS=<agent>` and `Domains=~.`, so resolved sends every name to the agent;
//! `/etc/resolv.conf` is left alone. Also when NetworkManager feeds resolved
//! (`dns=systemd-resolved`). The daemon follows resolved's list of the real servers,
//! [`RESOLVED_RESOLV_CONF`].

use std::net::{IpAddr, SocketAddr};

use super::header;
use crate::state::ServerAddr;

/// systemd-resolved's runtime directory: present while it runs.
pub const RESOLVED_RUN_DIR: &str = "/run/systemd/resolve";
/// systemd-resolved's list of the real upstream servers (non-stub resolv.conf).
pub const RESOLVED_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";
/// Named to sort after other drop-ins, so its `DNS=` reset clears servers they add.
pub const RESOLVED_DROPIN: &str = "/etc/systemd/resolved.conf.d/zz-splitdns.conf";
/// systemd-resolved's stub listener: named in a resolv.conf, it means "ask resolved", never a real
/// upstream (resolved may forward to the agent).
pub const RESOLVED_STUB: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 53));

/// The drop-in's contents: every name to the agent at `address`.
pub(super) fn resolved_dropin_text(address: SocketAddr) -> String {
    // Empty assignments reset servers and domains set by resolved.conf or earlier drop-ins:
    // without them resolved could fail over to another server behind the agent's back.
    format!(
        "{}[Resolve]\nDNS=\nDNS={}\nDomains=\nDomains=~.\n",
        header("systemd-resolved sends every name to the splitdns agent"),
        ServerAddr(address)
    )
}
