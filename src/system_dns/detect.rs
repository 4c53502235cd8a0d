//! Who manages `/etc/resolv.conf`, and so which [`Mode`] this system calls for.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::files::{Current, inspect};
use super::network_manager::{NetworkManager, network_manager};
use super::resolv_conf::{RESOLV_CONF, nameservers, resolv_text};
use super::resolved::{RESOLVED_RUN_DIR, RESOLVED_STUB, is_stub_link};
use super::{Mode, Root};

/// Who writes `/etc/resolv.conf` (or would rewrite the regular file `enable` writes there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Manager {
    NetworkManager,
    SystemdResolved,
    /// Debian's resolvconf: `/etc/resolv.conf` links into its run directory. It writes only there,
    /// so it leaves the file `enable` puts in place of the link alone.
    Resolvconf,
    /// openresolv (`/etc/resolvconf.conf` and its `resolvconf`): writes `/etc/resolv.conf` itself
    /// whenever a client calls it.
    Openresolv,
    Macos,
    /// Nothing known: a DHCP client may still write it.
    None,
}

impl fmt::Display for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Manager::NetworkManager => "NetworkManager",
            Manager::SystemdResolved => "systemd-resolved",
            Manager::Resolvconf => "resolvconf",
            Manager::Openresolv => "openresolv",
            Manager::Macos => "macOS",
            Manager::None => "none detected",
        })
    }
}

/// The mode this system calls for, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub mode: Mode,
    pub why: String,
    /// Who manages `/etc/resolv.conf`.
    pub manager: Manager,
    /// NetworkManager's configuration, when it is present (whoever manages resolv.conf).
    pub network_manager: Option<NetworkManager>,
}

/// Which resolvconf writes `/etc/resolv.conf`, if one does (never systemd's `resolvconf`, which is
/// resolvectl).
fn resolvconf(root: &Root, current: &Current) -> Option<(Manager, String)> {
    if let Current::Symlink(t) = current
        && t.parent().is_some_and(|d| d.ends_with("resolvconf") || d.ends_with("resolvconf/run"))
    {
        return Some((
            Manager::Resolvconf,
            format!("{RESOLV_CONF} links into resolvconf's directory ({})", t.display()),
        ));
    }
    let binary = ["/sbin/resolvconf", "/usr/sbin/resolvconf"].into_iter().find(|b| match inspect(&root.path(b)) {
        Ok(Current::File { .. }) => true,
        Ok(Current::Symlink(t)) => !t.to_string_lossy().contains("resolvectl"),
        _ => false,
    })?;
    root.path("/etc/resolvconf.conf")
        .is_file()
        .then(|| (Manager::Openresolv, format!("openresolv ({binary} and /etc/resolvconf.conf) writes {RESOLV_CONF}")))
}

/// Which mode this system calls for. macOS is chosen by the build target. splitdns's own
/// NetworkManager drop-in is left out: this is what the system calls for without splitdns.
pub fn detect(root: &Root) -> Detection {
    if cfg!(target_os = "macos") {
        return Detection {
            mode: Mode::Macos,
            why: "macOS: one /etc/resolver file per split domain".into(),
            manager: Manager::Macos,
            network_manager: None,
        };
    }
    let nm = network_manager(root);
    let running = root.path(RESOLVED_RUN_DIR).is_dir();
    let current = inspect(&root.path(RESOLV_CONF)).unwrap_or(Current::Other);
    let stub_link = matches!(&current, Current::Symlink(t) if is_stub_link(t));
    let servers = resolv_text(root, Path::new(RESOLV_CONF)).map(|t| nameservers(&t)).unwrap_or_default();
    let stub_servers = !servers.is_empty() && servers.iter().all(|s| *s == RESOLVED_STUB);
    let what = match &current {
        Current::Symlink(t) => format!("{RESOLV_CONF} → {}", t.display()),
        Current::Absent => format!("{RESOLV_CONF} does not exist"),
        _ => RESOLV_CONF.to_string(),
    };
    let (mode, manager, why) = if (stub_link || stub_servers) && running {
        let why = format!("{what} is systemd-resolved's stub ({RESOLVED_STUB}) and {RESOLVED_RUN_DIR} exists");
        (Mode::Resolved, Manager::SystemdResolved, why)
    } else if let Some(n) = nm.as_ref().filter(|n| n.would_rewrite_a_file()) {
        let why = format!(
            "NetworkManager rewrites {RESOLV_CONF} at every connection change ({}): a drop-in stops that, \
             or it would undo the rewrite",
            n.brief()
        );
        (Mode::NetworkManager, Manager::NetworkManager, why)
    } else {
        let mut why = if stub_link || stub_servers {
            format!("{what} names systemd-resolved's stub, but {RESOLVED_RUN_DIR} does not exist (not running)")
        } else {
            format!("{what} is not systemd-resolved's stub")
        };
        if let Some(n) = &nm {
            why.push_str(&format!("; NetworkManager leaves it alone ({})", n.brief()));
        }
        let (manager, whose) = resolvconf(root, &current).unwrap_or((Manager::None, String::new()));
        if !whose.is_empty() {
            why.push_str(&format!("; {whose}"));
        }
        (Mode::Plain, manager, why)
    };
    Detection { mode, why, manager, network_manager: nm }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::system_dns::{EnableRequest, plan_enable};

    fn req(mode: Option<Mode>, addr: &str) -> EnableRequest {
        EnableRequest { mode, address: addr.parse().unwrap(), domains: vec![] }
    }

    #[test]
    fn plain_refuses_a_port_and_detects_stub_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        fs::create_dir_all(root.path("/etc")).unwrap();
        fs::write(root.path(RESOLV_CONF), "nameserver 127.0.0.53\n").unwrap();
        assert_eq!(detect(&root).mode, Mode::Plain, "resolved not running");
        fs::create_dir_all(root.path(RESOLVED_RUN_DIR)).unwrap();
        assert_eq!(detect(&root).mode, Mode::Resolved);
        let e = plan_enable(&root, &req(Some(Mode::Plain), "127.0.0.1:5353")).unwrap_err();
        assert!(e.to_string().contains("cannot name a port"), "{e}");
    }
}
