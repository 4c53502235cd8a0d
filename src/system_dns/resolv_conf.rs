//! resolv.conf: where the system's is, and the `nameserver` lines of one (resolv.conf(5)).
//!
//! The one reader of the format: `enable` and detection take the addresses ([`nameservers`]), the
//! daemon's default upstream takes the servers it may forward to ([`read_resolv_conf`]). Only
//! `nameserver` lines count; their first word after `nameserver` is the address.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::Root;
use super::files::{Current, inspect};
use super::resolved::RESOLVED_STUB;

/// The system resolver's configuration.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The address word of each `nameserver` line, in order (repeats and malformed words included).
fn nameserver_words(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        words.next()
    })
}

/// One address word as an address. An IPv6 zone (fe80::1%eth0) is dropped: a zone name cannot be
/// represented in a SocketAddr here.
fn parse_address(word: &str) -> Option<IpAddr> {
    word.split('%').next().unwrap_or(word).parse::<IpAddr>().ok()
}

/// The nameserver addresses of resolv.conf text (an IPv6 zone is dropped).
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for ip in nameserver_words(text).filter_map(parse_address) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// The nameservers of a resolv.conf, minus the agent's own listen addresses and systemd-resolved's
/// stub (so it never forwards to itself, directly or through resolved). Returns the servers and
/// notes worth logging.
pub fn read_resolv_conf(path: &Path, own: &[SocketAddr]) -> (Vec<SocketAddr>, Vec<String>) {
    let mut notes = Vec::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            notes.push(format!("cannot read {}: {e}; no default upstream until it appears", path.display()));
            return (vec![], notes);
        }
    };
    let mut servers = Vec::new();
    for word in nameserver_words(&text) {
        let Some(ip) = parse_address(word) else {
            notes.push(format!("{}: ignoring nameserver {word:?}", path.display()));
            continue;
        };
        let addr = SocketAddr::new(ip, 53);
        if own.iter().any(|l| *l == addr || (l.port() == 53 && l.ip().is_unspecified())) {
            notes.push(format!("{}: skipping nameserver {ip}: that is splitdns itself", path.display()));
            continue;
        }
        if ip == RESOLVED_STUB {
            // systemd-resolved's stub forwards to whatever resolved is told, which may be us.
            notes.push(format!(
                "{}: skipping nameserver {ip}: systemd-resolved's stub, never an upstream",
                path.display()
            ));
            continue;
        }
        if !servers.contains(&addr) {
            servers.push(addr);
        }
    }
    (servers, notes)
}

/// The text of the resolv.conf a system path leads to (following symbolic links inside the root).
pub(super) fn resolv_text(root: &Root, path: &Path) -> Option<String> {
    let mut sys = path.to_path_buf();
    for _ in 0..8 {
        match inspect(&root.path(&sys)).ok()? {
            Current::File { bytes, .. } => return Some(String::from_utf8_lossy(&bytes).into_owned()),
            Current::Symlink(t) => {
                // Keep a system path: strip the root again after joining.
                let host = root.follow(&sys, &t);
                sys = Path::new("/").join(host.strip_prefix(root.dir()).ok()?);
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_parse() {
        let t =
            "# c\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 192.0.2.1\nsearch a\n";
        assert_eq!(nameservers(t), vec!["192.0.2.1".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]);
    }

    #[test]
    fn resolv_conf_skips_self() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolv.conf");
        std::fs::write(
            &p,
            "# x\nnameserver 127.0.0.1\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver bogus\n\
             nameserver 127.0.0.53\nsearch a\n",
        )
        .unwrap();
        let (s, notes) = read_resolv_conf(&p, &["127.0.0.1:53".parse().unwrap()]);
        assert_eq!(s, vec!["192.0.2.1:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()]);
        assert_eq!(notes.len(), 3, "self, bogus and the resolved stub: {notes:?}");
        // A listener on another port is not "us" for port 53.
        let (s, _) = read_resolv_conf(&p, &["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(s.len(), 3);
    }
}
