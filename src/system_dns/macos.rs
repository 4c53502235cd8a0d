//! macOS mode: one `/etc/resolver/<domain>` file per split domain (resolver(5)), naming the agent
//! for the names under it; the system resolver asks its usual servers for everything else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::header;
use crate::domain::DomainName;

pub const MACOS_RESOLVER_DIR: &str = "/etc/resolver";

/// The resolver file for `domain`: (system path, contents).
pub(super) fn resolver_file(d: &DomainName, address: SocketAddr) -> (PathBuf, String) {
    let mut text = header(&format!("names under {d} go to the splitdns agent"));
    text.push_str(&format!("nameserver {}\n", address.ip()));
    if address.port() != 53 {
        text.push_str(&format!("port {}\n", address.port()));
    }
    (Path::new(MACOS_RESOLVER_DIR).join(d.as_str()), text)
}

/// Whether `path` is one [`resolver_file`] writes: in [`MACOS_RESOLVER_DIR`], named by a domain
/// name exactly as splitdns spells it (so no `..`, no subdirectory).
pub(super) fn is_resolver_file(p: &Path) -> bool {
    p.parent() == Some(Path::new(MACOS_RESOLVER_DIR))
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.parse::<DomainName>().is_ok_and(|d| d.as_str() == n))
}
