//! Plain mode: `/etc/resolv.conf` saved byte for byte (or, for a symbolic link, its target), then
//! rewritten to `nameserver <agent>` plus the original's `search`/`domain`/`options` lines. For a
//! file nobody rewrites, one NetworkManager is told to leave alone, or one resolvconf manages (it
//! writes only into its own directory). NetworkManager mode writes the same file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::detect::{Detection, Manager};
use super::resolv_conf::{RESOLV_CONF, resolv_text};
use super::{Root, header};

/// `/etc/resolv.conf` naming the agent, with the original's search list and options (taken from the
/// file as it is now: ours keeps them).
pub(super) fn plain_resolv_conf(root: &Root, address: SocketAddr) -> (PathBuf, String) {
    let mut text = header("this system asks the splitdns agent");
    text.push_str(&format!("nameserver {}\n", address.ip()));
    for line in resolv_text(root, Path::new(RESOLV_CONF)).unwrap_or_default().lines() {
        let first = line.split_whitespace().next();
        if matches!(first, Some("search" | "domain" | "options")) {
            text.push_str(line.trim_end());
            text.push('\n');
        }
    }
    (RESOLV_CONF.into(), text)
}

/// A warning when a plain rewrite of `/etc/resolv.conf` will be undone by whoever manages it.
pub(super) fn plain_will_not_stick(detection: &Detection) -> Option<String> {
    match detection.manager {
        Manager::NetworkManager => Some(format!(
            "NetworkManager manages {RESOLV_CONF} and will rewrite it at its next connection change, so split \
             names would leak to the network's DNS: run `splitdns system-dns disable`, then `splitdns system-dns \
             enable` without --mode (the NetworkManager mode)"
        )),
        Manager::Openresolv => Some(format!(
            "openresolv rewrites {RESOLV_CONF} whenever a network client calls `resolvconf`; `splitdns system-dns \
             status` shows when it has (drift), and `enable` re-points it"
        )),
        _ => None,
    }
}
