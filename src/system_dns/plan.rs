//! `enable`'s first step: everything it will do, worked out before anything is written — which
//! mode, the files and their contents, the originals to save, the servers to save for the daemon,
//! and what to warn about.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::detect::{Detection, detect};
use super::files::{Current, inspect};
use super::macos::resolver_file;
use super::manifest::{Before, Entry, Manifest, read_manifest};
use super::network_manager::{NM_CONF, NM_CONF_DROPIN, NM_NO_STUB_RESOLV_CONF, NM_RUN_DIR, nm_dropin_text};
use super::plain::{plain_resolv_conf, plain_will_not_stick};
use super::resolv_conf::{RESOLV_CONF, nameservers, resolv_text};
use super::resolved::{RESOLVED_DROPIN, RESOLVED_RESOLV_CONF, RESOLVED_STUB, resolved_dropin_text};
use super::{MARKER, Mode, Root};
use crate::clock::unix_now;
use crate::domain::DomainName;

/// What `enable` is asked to do.
#[derive(Debug, Clone)]
pub struct EnableRequest {
    /// None: the manifest's mode if enabled, else [`detect`].
    pub mode: Option<Mode>,
    pub address: SocketAddr,
    /// Split domains (macOS mode).
    pub domains: Vec<DomainName>,
}

/// Everything `enable` will do, worked out before anything is written.
#[derive(Debug, Clone)]
pub struct Plan {
    pub root: Root,
    /// The manifest [`record`](super::record) writes: kept entries, new ones, and ones to retire.
    pub manifest: Manifest,
    /// Already enabled before this run.
    pub refresh: bool,
    pub detection: Detection,
    /// (entry index, bytes) of originals [`record`](super::record) saves.
    pub(super) backups: Vec<(usize, Vec<u8>)>,
    /// Entries no longer wanted (macOS domains gone): restored and dropped by [`apply`](super::apply).
    pub(super) retire: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// The file contents for `mode` at `address`: (system path, contents).
fn targets(root: &Root, mode: Mode, address: SocketAddr, domains: &[DomainName]) -> Vec<(PathBuf, String)> {
    match mode {
        Mode::Resolved => vec![(RESOLVED_DROPIN.into(), resolved_dropin_text(address))],
        Mode::NetworkManager => vec![(NM_CONF_DROPIN.into(), nm_dropin_text()), plain_resolv_conf(root, address)],
        Mode::Plain => vec![plain_resolv_conf(root, address)],
        Mode::Macos => domains.iter().map(|d| resolver_file(d, address)).collect(),
    }
}

/// The system's own servers, for the daemon's fallback upstream (None in macOS mode).
fn system_servers(root: &Root, mode: Mode, address: SocketAddr, old: Option<&Manifest>) -> Option<Vec<IpAddr>> {
    let usable = |text: &str| -> Vec<IpAddr> {
        nameservers(text)
            .into_iter()
            .filter(|ip| *ip != RESOLVED_STUB && !(address.port() == 53 && *ip == address.ip()))
            .collect()
    };
    let source = match mode {
        Mode::Macos => return None,
        Mode::Resolved => RESOLVED_RESOLV_CONF,
        // NetworkManager's live list, when it has one; else as in plain mode.
        Mode::NetworkManager | Mode::Plain => {
            if mode == Mode::NetworkManager
                && let Some(servers) =
                    resolv_text(root, Path::new(NM_NO_STUB_RESOLV_CONF)).map(|t| usable(&t)).filter(|s| !s.is_empty())
            {
                return Some(servers);
            }
            // Our own resolv.conf names only the agent: keep what was saved when it was written.
            let ours = old.and_then(|m| m.entries.iter().find(|e| e.path == Path::new(RESOLV_CONF)));
            if let Some(e) = ours
                && matches!(inspect(&root.path(RESOLV_CONF)), Ok(Current::File { bytes, .. }) if bytes == e.written.as_bytes())
            {
                return old.and_then(|m| m.upstream.clone());
            }
            RESOLV_CONF
        }
    };
    Some(usable(&resolv_text(root, Path::new(source)).unwrap_or_default()))
}

/// Works out what `enable` will do. Writes nothing.
pub fn plan_enable(root: &Root, req: &EnableRequest) -> anyhow::Result<Plan> {
    let old = read_manifest(root)?;
    let detection = detect(root);
    let mode = req.mode.or(old.as_ref().map(|m| m.mode)).unwrap_or(detection.mode);
    if let Some(m) = &old
        && m.mode != mode
    {
        bail!(
            "system DNS already points at splitdns by a {}; run `splitdns system-dns disable` before switching to a {mode}",
            m.mode
        );
    }
    match mode {
        Mode::Plain | Mode::NetworkManager if req.address.port() != 53 => bail!(
            "resolv.conf cannot name a port, and the agent's address is {}: run the daemon on port 53 \
             (see \"Port 53\" in the README) and enable with --address {}",
            req.address,
            req.address.ip()
        ),
        Mode::Macos if req.domains.is_empty() => {
            bail!("no split domains to send to the agent: bring a VPN link up first, or name them with --domain")
        }
        Mode::NetworkManager if old.is_none() && detection.network_manager.is_none() => bail!(
            "NetworkManager is not installed here (neither {NM_CONF} nor {NM_RUN_DIR} exists): \
             enable without --mode, or with --mode plain"
        ),
        _ => {}
    }
    let mut notes = Vec::new();
    if !req.address.ip().is_loopback() {
        notes.push(format!("{} is not a loopback address; the agent listens on loopback only", req.address.ip()));
    }
    if mode == Mode::Plain {
        notes.extend(plain_will_not_stick(&detection));
    }
    let wanted = targets(root, mode, req.address, &req.domains);
    let mut manifest = old.clone().unwrap_or(Manifest {
        version: 1,
        mode,
        address: String::new(),
        enabled_at: unix_now(),
        entries: vec![],
        created_dirs: vec![],
        upstream: None,
    });
    manifest.address = req.address.to_string();
    let retire: Vec<PathBuf> =
        manifest.entries.iter().filter(|e| !wanted.iter().any(|(p, _)| *p == e.path)).map(|e| e.path.clone()).collect();
    let mut backups = Vec::new();
    let mut next_backup = manifest.entries.len();
    for (path, text) in wanted {
        let host = root.path(&path);
        if let Some(e) = manifest.entries.iter_mut().find(|e| e.path == path) {
            // Already recorded: the original is saved; never save our own file over it.
            e.written = text;
            continue;
        }
        let before = match inspect(&host).with_context(|| format!("cannot inspect {}", host.display()))? {
            Current::Absent => Before::Absent,
            Current::Symlink(target) => Before::Symlink { target },
            Current::Other => bail!("{} is not a file; not touching it", host.display()),
            Current::File { bytes, mode, uid, gid } => {
                if String::from_utf8_lossy(&bytes).contains(MARKER) {
                    bail!(
                        "{} was written by splitdns, but there is no record of what it replaced ({} is missing): \
                         put the original back by hand (or delete the file), then enable again",
                        host.display(),
                        root.manifest_path().display()
                    );
                }
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let backup = format!("orig-{next_backup}-{name}");
                next_backup += 1;
                let len = bytes.len() as u64;
                backups.push((manifest.entries.len(), bytes));
                Before::File { backup, len, mode, uid, gid }
            }
        };
        // Directories enable has to create, deepest first (recorded before they are made).
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == Path::new("/") || root.path(&d).exists() {
                break;
            }
            if !manifest.created_dirs.contains(&d) {
                let at =
                    manifest.created_dirs.iter().position(|c| d.starts_with(c)).unwrap_or(manifest.created_dirs.len());
                manifest.created_dirs.insert(at, d.clone());
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        manifest.entries.push(Entry { path, before, written: text });
    }
    manifest.upstream = system_servers(root, mode, req.address, old.as_ref());
    if let Some(s) = &manifest.upstream
        && s.is_empty()
    {
        notes.push(
            "found no DNS servers of the system's own to save for the daemon: it will have no default upstream \
             unless `upstream` is set in its config"
                .into(),
        );
    }
    Ok(Plan { root: root.clone(), manifest, refresh: old.is_some(), detection, backups, retire, notes })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::system_dns::RESOLVED_RUN_DIR;

    #[test]
    fn resolved_dropin_syntax() {
        let root = Root::new("/nonexistent");
        let t = targets(&root, Mode::Resolved, "127.0.0.1:53".parse().unwrap(), &[]);
        assert!(t[0].1.ends_with("[Resolve]\nDNS=\nDNS=127.0.0.1\nDomains=\nDomains=~.\n"), "{}", t[0].1);
        let t = targets(&root, Mode::Resolved, "[::1]:5353".parse().unwrap(), &[]);
        assert!(t[0].1.contains("DNS=[::1]:5353\n"), "{}", t[0].1);
        let d = vec!["corp.example".parse().unwrap()];
        let t = targets(&root, Mode::Macos, "127.0.0.1:5353".parse().unwrap(), &d);
        assert_eq!(t[0].0, Path::new("/etc/resolver/corp.example"));
        assert!(t[0].1.ends_with("nameserver 127.0.0.1\nport 5353\n"), "{}", t[0].1);
    }

    #[test]
    fn upstream_skips_agent_and_stub() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        fs::create_dir_all(root.path(RESOLVED_RUN_DIR)).unwrap();
        fs::write(
            root.path(RESOLVED_RESOLV_CONF),
            "nameserver 127.0.0.1\nnameserver 127.0.0.53\nnameserver 192.0.2.9\n",
        )
        .unwrap();
        let s = system_servers(&root, Mode::Resolved, "127.0.0.1:53".parse().unwrap(), None).unwrap();
        assert_eq!(s, vec!["192.0.2.9".parse::<IpAddr>().unwrap()]);
    }
}
