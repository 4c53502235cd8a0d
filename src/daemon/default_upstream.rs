//! The live default upstream: which file holds the system's real DNS servers, and following it.
//!
//! A laptop changes networks all day; the servers DHCP hands out at home are unreachable in a café.
//! Unless `upstream` is set in the config, the daemon follows the first of these that applies,
//! watched with notify (no polling), so a network change reaches the default upstream within the
//! watcher's settle time:
//!
//! 1. NetworkManager's `/run/NetworkManager/no-stub-resolv.conf` (the real servers, also when
//!    NetworkManager runs a local stub or no longer writes `/etc/resolv.conf`);
//! 2. systemd-resolved's `/run/systemd/resolve/resolv.conf` (its upstream servers);
//! 3. `/etc/resolv.conf`, when it does not point at the agent (or at resolved's stub);
//! 4. the servers `splitdns system-dns enable` saved, only when no live source exists.
//!
//! `resolv_conf` in the config names the one file to follow instead. The agent's own addresses and
//! 127.0.0.53 are never upstreams. A source that lists nothing usable keeps the last good servers
//! in force (the agent says so in `status`).
//!
//! The same watch keeps an eye on what `system-dns enable` changed: if `/etc/resolv.conf` (or the
//! drop-in) no longer points at the agent, a warning is logged and `status` shows it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{Settings, UpstreamSource};
use crate::server_addr::ServerAddr;
use crate::system_dns::{self, Root};

use crate::system_dns::{NM_CONF_DROPIN, NM_NO_STUB_RESOLV_CONF};

/// What the default upstream follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Follow {
    /// `upstream` in the config: nothing to follow.
    Fixed(Vec<ServerAddr>),
    /// `resolv_conf` in the config: this one file.
    File(PathBuf),
    /// The system's sources, under this root.
    System(Root),
}

/// The servers a source gave, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pick {
    pub servers: Vec<ServerAddr>,
    /// The file (and whose it is), or `configuration`.
    pub source: String,
    /// Lines worth logging once (skipped entries, a missing file).
    pub notes: Vec<String>,
}

impl Follow {
    pub(crate) fn from_settings(settings: &Settings) -> Follow {
        match &settings.upstream {
            UpstreamSource::Configured(servers) => Follow::Fixed(servers.clone()),
            UpstreamSource::File(path) => Follow::File(path.clone()),
            UpstreamSource::System => Follow::System(Root::new(&settings.system_root)),
        }
    }

    /// The files whose changes matter (host paths): the sources, and what `system-dns` wrote.
    pub(crate) fn watched_files(&self, root: &Root) -> Vec<PathBuf> {
        let mut files = match self {
            Follow::Fixed(_) => vec![],
            Follow::File(p) => vec![p.clone()],
            Follow::System(root) => system_sources().iter().map(|(p, _)| root.path(p)).collect(),
        };
        // Every `system-dns enable` or `disable` rewrites one of these, so the manifest itself (in
        // /var/lib, where other programs write all day) need not be watched.
        for p in [system_dns::RESOLV_CONF, system_dns::RESOLVED_DROPIN, NM_CONF_DROPIN] {
            files.push(root.path(p));
        }
        files.sort();
        files.dedup();
        files
    }

    /// The servers to use now. `own` are the agent's listen addresses.
    pub(crate) fn pick(&self, own: &[SocketAddr]) -> Pick {
        match self {
            Follow::Fixed(servers) => Pick { servers: servers.clone(), source: "configuration".into(), notes: vec![] },
            Follow::File(path) => read(path, path.display().to_string(), own),
            Follow::System(root) => pick_system(root, own),
        }
    }
}

/// The system's sources in order, with whose they are.
fn system_sources() -> [(&'static str, &'static str); 4] {
    [
        (NM_NO_STUB_RESOLV_CONF, "NetworkManager"),
        (system_dns::RESOLVED_RESOLV_CONF, "systemd-resolved"),
        (system_dns::RESOLV_CONF, "the system resolver configuration"),
        (system_dns::UPSTREAM_FILE, "saved by `splitdns system-dns enable`; no live source exists"),
    ]
}

fn read(host: &Path, source: String, own: &[SocketAddr]) -> Pick {
    let (servers, notes) = system_dns::read_resolv_conf(host, own);
    Pick { servers: servers.into_iter().map(ServerAddr::plain).collect(), source, notes }
}

/// The first system source that applies (see the module docs).
fn pick_system(root: &Root, own: &[SocketAddr]) -> Pick {
    let mut passed_over = Vec::new();
    for (path, whose) in system_sources() {
        let host = root.path(path);
        if !host.is_file() {
            continue;
        }
        let pick = read(&host, format!("{path} ({whose})"), own);
        if path == system_dns::RESOLV_CONF && pick.servers.is_empty() {
            // It names the agent (system-dns is enabled) or resolved's stub, or nothing at all.
            passed_over.push(format!("{path} names no server but the agent or a local stub"));
            continue;
        }
        return pick;
    }
    passed_over.push("none of NetworkManager's, systemd-resolved's or the system's resolv.conf lists a server".into());
    Pick { servers: vec![], source: "none".into(), notes: passed_over }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Root, path: &str, text: &str) {
        let p = root.path(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn ips(p: &Pick) -> Vec<String> {
        p.servers.iter().map(|s| s.addr.ip().to_string()).collect()
    }

    #[test]
    fn the_first_source_that_applies_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let follow = Follow::System(root.clone());
        let own: Vec<SocketAddr> = vec!["127.0.0.1:53".parse().unwrap()];
        assert!(follow.pick(&own).servers.is_empty(), "nothing exists yet");

        // system-dns enabled on a plain system: resolv.conf names the agent, the saved copy applies.
        write(&root, system_dns::RESOLV_CONF, "nameserver 127.0.0.1\n");
        write(&root, system_dns::UPSTREAM_FILE, "nameserver 192.0.2.9\n");
        let p = follow.pick(&own);
        assert_eq!(ips(&p), ["192.0.2.9"]);
        assert!(p.source.contains("saved by"), "{}", p.source);

        // A resolv.conf rewritten by someone else (DHCP) is live: it wins over the saved copy.
        write(&root, system_dns::RESOLV_CONF, "nameserver 192.0.2.1\n");
        assert_eq!(ips(&follow.pick(&own)), ["192.0.2.1"]);
        // Behind resolved's stub, resolved's own file.
        write(&root, system_dns::RESOLV_CONF, "nameserver 127.0.0.53\n");
        write(&root, system_dns::RESOLVED_RESOLV_CONF, "nameserver 192.0.2.2\nnameserver 127.0.0.1\n");
        let p = follow.pick(&own);
        assert_eq!(ips(&p), ["192.0.2.2"], "the agent's own address is never an upstream");
        assert!(p.source.contains("systemd-resolved"), "{}", p.source);
        // NetworkManager's no-stub file first of all; empty still applies (last good stays).
        write(&root, NM_NO_STUB_RESOLV_CONF, "nameserver 192.0.2.3\n");
        assert_eq!(ips(&follow.pick(&own)), ["192.0.2.3"]);
        write(&root, NM_NO_STUB_RESOLV_CONF, "# no connection\n");
        let p = follow.pick(&own);
        assert!(p.servers.is_empty() && p.source.contains("NetworkManager"), "{p:?}");
    }

    #[test]
    fn an_explicit_file_is_the_only_source_and_fixed_servers_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.conf");
        std::fs::write(&file, "nameserver 192.0.2.7\n").unwrap();
        let follow = Follow::File(file.clone());
        assert_eq!(ips(&follow.pick(&[])), ["192.0.2.7"]);
        let root = Root::new(dir.path());
        assert!(follow.watched_files(&root).contains(&file));
        let fixed = Follow::Fixed(vec!["192.0.2.8:53".parse().unwrap()]);
        assert_eq!(fixed.pick(&[]).source, "configuration");
        assert!(!fixed.watched_files(&root).iter().any(|p| p.ends_with("no-stub-resolv.conf")));
    }
}
