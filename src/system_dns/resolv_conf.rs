//! resolv.conf: where the system's is, and the `nameserver` lines of one (resolv.conf(5)).

use std::net::IpAddr;
use std::path::Path;

use super::Root;
use super::files::{Current, inspect};

pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The nameserver addresses of resolv.conf text (an IPv6 zone is dropped).
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(word) = words.next() else { continue };
        if let Ok(ip) = word.split('%').next().unwrap_or(word).parse::<IpAddr>()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
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
}
