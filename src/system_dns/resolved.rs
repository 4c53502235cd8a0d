//! systemd-resolved: where its files are, its stub address, and splitdns's drop-in.
//!
//! Resolved mode (`/etc/resolv.conf` is resolved's stub, 127.0.0.53): a drop-in [`RESOLVED_DROPIN`]
//! with `DNS=<agent>` and `Domains=~.`, so resolved sends every name to the agent;
//! `/etc/resolv.conf` is left alone. Also when NetworkManager feeds resolved
//! (`dns=systemd-resolved`). The daemon follows resolved's list of the real servers,
//! [`RESOLVED_RESOLV_CONF`].

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::header;
use crate::server_addr::ServerAddr;

/// systemd-resolved's runtime directory: present while it runs.
pub const RESOLVED_RUN_DIR: &str = "/run/systemd/resolve";
/// systemd-resolved's list of the real upstream servers (non-stub resolv.conf).
pub const RESOLVED_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";
/// resolved's drop-in directory in /etc (`enable` may create it, and /etc/systemd above it).
pub(super) const RESOLVED_CONF_D: &str = "/etc/systemd/resolved.conf.d";
/// Named to sort after other drop-ins, so its `DNS=` reset clears servers they add.
pub const RESOLVED_DROPIN: &str = "/etc/systemd/resolved.conf.d/zz-splitdns.conf";
/// systemd-resolved's stub listener: named in a resolv.conf, it means "ask resolved", never a real
/// upstream (resolved may forward to the agent).
pub const RESOLVED_STUB: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 53));

/// How the target of a `/etc/resolv.conf` link to resolved's stub ends: the stub file resolved
/// writes (`/run/systemd/resolve/stub-resolv.conf`), or the static one systemd ships
/// (`/usr/lib/systemd/resolv.conf`).
const STUB_LINK_ENDS: [&str; 2] = ["systemd/resolve/stub-resolv.conf", "lib/systemd/resolv.conf"];
/// How the target of a link to [`RESOLVED_RESOLV_CONF`] ends.
const SERVERS_LINK_END: &str = "systemd/resolve/resolv.conf";

/// Whether a `/etc/resolv.conf` link to `target` points at resolved's stub.
pub(super) fn is_stub_link(target: &Path) -> bool {
    let t = target.to_string_lossy();
    STUB_LINK_ENDS.iter().any(|s| t.ends_with(s))
}

/// Whether a `/etc/resolv.conf` link to `target` points at any of resolved's files: its stub, or
/// its list of the real servers.
pub(super) fn links_to_resolved(target: &Path) -> bool {
    is_stub_link(target) || target.to_string_lossy().ends_with(SERVERS_LINK_END)
}

/// The drop-in's contents: every name to the agent at `address`.
pub(super) fn resolved_dropin_text(address: SocketAddr) -> String {
    // Empty assignments reset servers and domains set by resolved.conf or earlier drop-ins:
    // without them resolved could fail over to another server behind the agent's back.
    format!(
        "{}[Resolve]\nDNS=\nDNS={}\nDomains=\nDomains=~.\n",
        header("systemd-resolved sends every name to the splitdns agent"),
        ServerAddr::plain(address)
    )
}
