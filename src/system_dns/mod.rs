//! Pointing the system's resolver at the agent, and back (`splitdns system-dns enable|disable|status`).
//!
//! Never implicit: only the explicit command changes system files. Four ways, chosen by [`detect`]
//! from who manages `/etc/resolv.conf` ([`Manager`]):
//!
//! - **systemd-resolved** (`/etc/resolv.conf` is its stub): a drop-in
//!   `/etc/systemd/resolved.conf.d/zz-splitdns.conf` with `DNS=<agent>` and `Domains=~.`, so resolved
//!   sends every name to the agent; `/etc/resolv.conf` is left alone. Also when NetworkManager feeds
//!   resolved (`dns=systemd-resolved`).
//! - **NetworkManager** (it rewrites a regular-file `/etc/resolv.conf` at every connection change,
//!   see [`network_manager`]): a drop-in [`NM_CONF_DROPIN`] with `[main] rc-manager=unmanaged`, so NetworkManager
//!   stops writing `/etc/resolv.conf` (it keeps writing its own copies under `/run/NetworkManager/`,
//!   which the daemon follows for the real servers), then `/etc/resolv.conf` is rewritten as in plain
//!   mode. Without the drop-in the next Wi-Fi change would undo the rewrite and split names would
//!   leak to the network's DNS. The command-line side reloads NetworkManager after `enable` and
//!   `disable`.
//! - **plain** `/etc/resolv.conf` (nobody rewrites it, NetworkManager is told to leave it alone, or
//!   resolvconf): saved byte for byte (or, for a symbolic link, its target), then rewritten to
//!   `nameserver <agent>` plus the original `search`/`domain`/`options` lines.
//! - **macOS**: one `/etc/resolver/<domain>` file per split domain.
//!
//! Every path goes through a [`Root`], a directory standing in for `/`, so tests use a temporary
//! directory. Crash safety: [`record`] saves the originals and fsyncs the [`Manifest`] *before*
//! [`apply`] changes a system file, so a crash at any point leaves either nothing changed or a
//! manifest that [`disable`] acts on. A file that did not exist (a drop-in) is recorded as such and
//! removed again. `apply` writes in manifest order (NetworkManager's drop-in before resolv.conf) and
//! `disable` undoes in reverse. `disable` undoes only what is still splitdns's own (or was never
//! changed); a file someone else rewrote since is left alone unless forced.
//!
//! Loop guard: the daemon takes its default upstream from `/etc/resolv.conf`, which after `enable`
//! names the agent itself. It follows live lists of the system's servers instead
//! ([`NM_NO_STUB_RESOLV_CONF`], [`RESOLVED_RESOLV_CONF`]); `enable` also saves the servers it finds in
//! [`UPSTREAM_FILE`] (resolv.conf syntax) as the fallback for when no live list exists (plain mode).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::domain::DomainName;
use crate::state::ServerAddr;

pub mod network_manager;

pub use network_manager::{
    NM_CONF, NM_CONF_DROPIN, NM_NO_STUB_RESOLV_CONF, NM_RUN_DIR, NetworkManager, NmSetting, network_manager,
    nm_manages_resolv_conf,
};

/// Marks every file splitdns writes into the system's configuration.
pub const MARKER: &str = "managed by splitdns";
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's runtime directory: present while it runs.
pub const RESOLVED_RUN_DIR: &str = "/run/systemd/resolve";
/// systemd-resolved's list of the real upstream servers (non-stub resolv.conf).
pub const RESOLVED_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";
/// Named to sort after other drop-ins, so its `DNS=` reset clears servers they add.
pub const RESOLVED_DROPIN: &str = "/etc/systemd/resolved.conf.d/zz-splitdns.conf";
pub const MACOS_RESOLVER_DIR: &str = "/etc/resolver";
/// The manifest and the saved originals. Root-owned and outside the daemon's state directory
/// (`/var/lib/splitdns` belongs to the unprivileged daemon user, and `disable` acts on this as root).
pub const STATE_DIR: &str = "/var/lib/splitdns-system";
pub const MANIFEST_NAME: &str = "manifest.json";
/// The system's own DNS servers as `enable` last found them: the daemon's fallback upstream when no
/// live list ([`NM_NO_STUB_RESOLV_CONF`], [`RESOLVED_RESOLV_CONF`]) exists.
/// Root-owned, world-readable: the daemon reads it, nothing but `enable` writes it.
pub const UPSTREAM_FILE: &str = "/var/lib/splitdns-system/upstream.resolv.conf";
const RESOLVED_STUB: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 53));
const TMP_SUFFIX: &str = ".splitdns-new";

/// A directory standing in for `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root(dir.into())
    }

    pub fn system() -> Root {
        Root("/".into())
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// The real `/`: services may be reloaded and root is needed.
    pub fn is_system(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// Where the system path `path` (absolute, e.g. `/etc/resolv.conf`) is under this root.
    pub fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        let p = path.as_ref();
        self.0.join(p.strip_prefix("/").unwrap_or(p))
    }

    /// Where a symbolic link at system path `link` pointing at `target` leads (one step).
    fn follow(&self, link: &Path, target: &Path) -> PathBuf {
        if target.is_absolute() {
            self.path(target)
        } else {
            self.path(link.parent().unwrap_or(Path::new("/")).join(target))
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.path(STATE_DIR)
    }

    fn manifest_path(&self) -> PathBuf {
        self.state_dir().join(MANIFEST_NAME)
    }
}

/// How the system is pointed at the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Resolved,
    /// NetworkManager's drop-in ([`NM_CONF_DROPIN`]) and a plain rewrite of `/etc/resolv.conf`.
    NetworkManager,
    Plain,
    Macos,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Resolved => "systemd-resolved drop-in",
            Mode::NetworkManager => "NetworkManager drop-in (rc-manager=unmanaged) and /etc/resolv.conf",
            Mode::Plain => "plain /etc/resolv.conf",
            Mode::Macos => "macOS /etc/resolver files",
        })
    }
}

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

/// What is at a path, without following a final symbolic link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Absent,
    File {
        bytes: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink(PathBuf),
    /// A directory or something else splitdns will not replace.
    Other,
}

/// Inspects `path` (a host path).
pub fn inspect(path: &Path) -> io::Result<Current> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Current::Absent),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        Ok(Current::Symlink(fs::read_link(path)?))
    } else if meta.is_file() {
        Ok(Current::File { bytes: fs::read(path)?, mode: meta.mode() & 0o7777, uid: meta.uid(), gid: meta.gid() })
    } else {
        Ok(Current::Other)
    }
}

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
fn resolv_text(root: &Root, path: &Path) -> Option<String> {
    let mut sys = path.to_path_buf();
    for _ in 0..8 {
        match inspect(&root.path(&sys)).ok()? {
            Current::File { bytes, .. } => return Some(String::from_utf8_lossy(&bytes).into_owned()),
            Current::Symlink(t) => {
                // Keep a system path: strip the root again after joining.
                let host = root.follow(&sys, &t);
                sys = Path::new("/").join(host.strip_prefix(&root.0).ok()?);
            }
            _ => return None,
        }
    }
    None
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
    let stub_link = match &current {
        Current::Symlink(t) => {
            let t = t.to_string_lossy();
            t.ends_with("systemd/resolve/stub-resolv.conf") || t.ends_with("lib/systemd/resolv.conf")
        }
        _ => false,
    };
    let servers = resolv_text(root, Path::new(RESOLV_CONF)).map(|t| nameservers(&t)).unwrap_or_default();
    let stub_servers = !servers.is_empty() && servers.iter().all(|s| *s == RESOLVED_STUB);
    let what = match &current {
        Current::Symlink(t) => format!("{RESOLV_CONF} → {}", t.display()),
        Current::Absent => format!("{RESOLV_CONF} does not exist"),
        _ => RESOLV_CONF.to_string(),
    };
    let (mode, manager, why) = if (stub_link || stub_servers) && running {
        let why = format!("{what} is systemd-resolved's stub (127.0.0.53) and {RESOLVED_RUN_DIR} exists");
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

/// What was at a path before `enable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Before {
    Absent,
    /// A regular file, saved as `backup` in the state directory.
    File {
        backup: String,
        len: u64,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        target: PathBuf,
    },
}

/// One system file `enable` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The system path (e.g. `/etc/resolv.conf`), independent of the root.
    pub path: PathBuf,
    pub before: Before,
    /// Exactly what `enable` writes there: the file is splitdns's own while it still reads so.
    pub written: String,
}

/// The record `disable` restores from: `<state dir>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub mode: Mode,
    /// The agent's address the system is pointed at.
    pub address: String,
    /// Unix time of the first `enable`.
    pub enabled_at: u64,
    pub entries: Vec<Entry>,
    /// Directories `enable` created (deepest first), removed by `disable` when empty.
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    /// The system's own servers saved in [`UPSTREAM_FILE`] (none in macOS mode).
    #[serde(default)]
    pub upstream: Option<Vec<IpAddr>>,
}

/// Reads a file `disable` acts on as root. On the real root it must be a regular file owned by root
/// and writable by no one else, so that nothing planted there (say, by a compromised daemon) can
/// make root write files of its choosing.
fn read_trusted(root: &Root, path: &Path) -> io::Result<Vec<u8>> {
    let mut f = OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW).open(path)?;
    let m = f.metadata()?;
    if root.is_system() && (!m.is_file() || m.uid() != 0 || m.mode() & 0o022 != 0) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a root-owned file that only root can write (owner uid {}, mode {:04o}): not trusting it",
                path.display(),
                m.uid(),
                m.mode() & 0o7777
            ),
        ));
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut f, &mut bytes)?;
    Ok(bytes)
}

/// Only the files splitdns itself writes may appear in a manifest.
fn check_manifest(m: &Manifest) -> anyhow::Result<()> {
    let allowed = |p: &Path| {
        p == Path::new(RESOLV_CONF)
            || p == Path::new(RESOLVED_DROPIN)
            || p == Path::new(NM_CONF_DROPIN)
            || (p.parent() == Some(Path::new(MACOS_RESOLVER_DIR))
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.parse::<DomainName>().is_ok_and(|d| d.as_str() == n)))
    };
    for e in &m.entries {
        if !allowed(&e.path) {
            bail!("it lists {}, which splitdns never writes", e.path.display());
        }
        if let Before::File { backup, .. } = &e.before
            && (backup.contains('/') || !backup.starts_with("orig-"))
        {
            bail!("it names the saved copy {backup:?}, which splitdns never writes");
        }
    }
    let dirs = [
        "/etc/systemd/resolved.conf.d",
        "/etc/systemd",
        network_manager::ETC_CONF_D,
        "/etc/NetworkManager",
        MACOS_RESOLVER_DIR,
        "/etc",
    ];
    if let Some(d) = m.created_dirs.iter().find(|d| !dirs.iter().any(|a| Path::new(a) == d.as_path())) {
        bail!("it lists the directory {}, which splitdns never creates", d.display());
    }
    Ok(())
}

/// Reads the manifest, if `enable` left one.
pub fn read_manifest(root: &Root) -> anyhow::Result<Option<Manifest>> {
    let path = root.manifest_path();
    let bytes = match read_trusted(root, &path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot use {}", path.display())),
    };
    let m: Manifest = serde_json::from_slice(&bytes).with_context(|| {
        format!("{} is damaged; restore the files it lists by hand, then delete it", path.display())
    })?;
    check_manifest(&m).with_context(|| format!("{} is not splitdns's: not acting on it", path.display()))?;
    Ok(Some(m))
}

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
    /// The manifest [`record`] writes: kept entries, new ones, and ones to retire.
    pub manifest: Manifest,
    /// Already enabled before this run.
    pub refresh: bool,
    pub detection: Detection,
    /// (entry index, bytes) of originals [`record`] saves.
    backups: Vec<(usize, Vec<u8>)>,
    /// Entries no longer wanted (macOS domains gone): restored and dropped by [`apply`].
    retire: Vec<PathBuf>,
    pub notes: Vec<String>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn header(what: &str) -> String {
    format!("# {MARKER}: {what}.\n# Restore the original with `splitdns system-dns disable`.\n")
}

/// The file contents for `mode` at `address`: (system path, contents).
fn targets(root: &Root, mode: Mode, address: SocketAddr, domains: &[DomainName]) -> Vec<(PathBuf, String)> {
    match mode {
        Mode::Resolved => {
            // Empty assignments reset servers and domains set by resolved.conf or earlier drop-ins:
            // without them resolved could fail over to another server behind the agent's back.
            let text = format!(
                "{}[Resolve]\nDNS=\nDNS={}\nDomains=\nDomains=~.\n",
                header("systemd-resolved sends every name to the splitdns agent"),
                ServerAddr(address)
            );
            vec![(RESOLVED_DROPIN.into(), text)]
        }
        Mode::NetworkManager => vec![(NM_CONF_DROPIN.into(), nm_dropin_text()), plain_resolv_conf(root, address)],
        Mode::Plain => vec![plain_resolv_conf(root, address)],
        Mode::Macos => domains
            .iter()
            .map(|d| {
                let mut text = header(&format!("names under {d} go to the splitdns agent"));
                text.push_str(&format!("nameserver {}\n", address.ip()));
                if address.port() != 53 {
                    text.push_str(&format!("port {}\n", address.port()));
                }
                (Path::new(MACOS_RESOLVER_DIR).join(d.as_str()), text)
            })
            .collect(),
    }
}

/// `/etc/resolv.conf` naming the agent, with the original's search list and options (taken from the
/// file as it is now: ours keeps them).
fn plain_resolv_conf(root: &Root, address: SocketAddr) -> (PathBuf, String) {
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

/// NetworkManager's drop-in: it stops writing `/etc/resolv.conf`, and still writes its own copies
/// under `/run/NetworkManager/`.
fn nm_dropin_text() -> String {
    format!(
        "{}# NetworkManager keeps writing {NM_NO_STUB_RESOLV_CONF}, which the splitdns daemon follows.\n\
         [main]\nrc-manager=unmanaged\n",
        header("NetworkManager leaves /etc/resolv.conf, which points at the splitdns agent, alone")
    )
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

fn upstream_text(servers: &[IpAddr], at: u64) -> String {
    let mut t = format!(
        "# {MARKER}: the system's DNS servers as `splitdns system-dns enable` found them (Unix time {at}).\n\
         # A fallback only: the daemon follows the live list ({NM_NO_STUB_RESOLV_CONF} or\n\
         # {RESOLVED_RESOLV_CONF}) and uses these servers while no live list exists. Run\n\
         # `splitdns system-dns enable` again to refresh them.\n"
    );
    for s in servers {
        t.push_str(&format!("nameserver {s}\n"));
    }
    t
}

/// A warning when a plain rewrite of `/etc/resolv.conf` will be undone by whoever manages it.
fn plain_will_not_stick(detection: &Detection) -> Option<String> {
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
        enabled_at: now(),
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

/// Writes `bytes` to the host path `path` atomically: a fixed-name temporary file next to it
/// (removed by `disable` if a crash leaves it), `mode` and `owner`, fsync, rename, fsync the directory.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        if let Some((uid, gid)) = owner {
            let m = f.metadata()?;
            if (m.uid(), m.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            }
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}{TMP_SUFFIX}"))
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path.parent().unwrap_or(Path::new("/")))?.sync_all()
}

fn replace_with_symlink(path: &Path, target: &Path) -> anyhow::Result<()> {
    let tmp = tmp_path(path);
    (|| -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp)?;
        fs::rename(&tmp, path)?;
        sync_dir(path)
    })()
    .with_context(|| format!("cannot restore the symbolic link {} → {}", path.display(), target.display()))
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path).with_context(|| format!("cannot sync the directory of {}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

fn write_manifest(root: &Root, m: &Manifest) -> anyhow::Result<()> {
    let mut json = serde_json::to_vec_pretty(m)?;
    json.push(b'\n');
    write_atomic(&root.manifest_path(), &json, 0o644, None)
}

fn create_state_dir(root: &Root) -> anyhow::Result<()> {
    let dir = root.state_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Step 1 of `enable`: saves the originals and writes the manifest (fsynced). No system file has
/// changed yet; from here on `disable` can undo whatever [`apply`] gets to.
pub fn record(plan: &Plan) -> anyhow::Result<()> {
    let root = &plan.root;
    create_state_dir(root)?;
    let dir = root.state_dir();
    let m = fs::symlink_metadata(&dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
    if !m.is_dir() || (root.is_system() && (m.uid() != 0 || m.mode() & 0o022 != 0)) {
        bail!(
            "{} must be a directory owned by root and writable by no one else (uid {}, mode {:04o}); move it aside",
            dir.display(),
            m.uid(),
            m.mode() & 0o7777
        );
    }
    for (i, bytes) in &plan.backups {
        let Before::File { backup, .. } = &plan.manifest.entries[*i].before else { continue };
        write_atomic(&root.state_dir().join(backup), bytes, 0o600, None)?;
    }
    write_manifest(root, &plan.manifest)
}

/// Step 2 of `enable`: writes the daemon's upstream file and the system files. Returns notes.
pub fn apply(plan: &Plan) -> anyhow::Result<Vec<String>> {
    let root = &plan.root;
    let mut notes = Vec::new();
    for d in plan.manifest.created_dirs.iter().rev() {
        let host = root.path(d);
        if !host.exists() {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&host)
                .with_context(|| format!("cannot create {}", host.display()))?;
        }
    }
    let upstream = root.path(UPSTREAM_FILE);
    match &plan.manifest.upstream {
        Some(servers) => write_atomic(&upstream, upstream_text(servers, now()).as_bytes(), 0o644, None)?,
        None => remove(&upstream)?,
    }
    for e in plan.manifest.entries.iter().filter(|e| !plan.retire.contains(&e.path)) {
        let host = root.path(&e.path);
        // A rewritten resolv.conf keeps the original's mode and owner.
        let (mode, owner) = match &e.before {
            Before::File { mode, uid, gid, .. } => (*mode, Some((*uid, *gid))),
            _ => (0o644, None),
        };
        if let Ok(Current::File { bytes, .. }) = inspect(&host)
            && bytes == e.written.as_bytes()
        {
            continue;
        }
        write_atomic(&host, e.written.as_bytes(), mode, owner)?;
    }
    if !plan.retire.is_empty() {
        let mut kept = plan.manifest.clone();
        for e in plan.manifest.entries.iter().filter(|e| plan.retire.contains(&e.path)) {
            notes.extend(restore_entry(root, e, false)?.note(e));
            if let Before::File { backup, .. } = &e.before {
                let _ = fs::remove_file(root.state_dir().join(backup));
            }
        }
        kept.entries.retain(|e| !plan.retire.contains(&e.path));
        write_manifest(root, &kept)?;
    }
    Ok(notes)
}

/// What `enable` did.
#[derive(Debug, Clone)]
pub struct Enabled {
    pub mode: Mode,
    pub refresh: bool,
    pub files: Vec<PathBuf>,
    pub upstream: Option<Vec<IpAddr>>,
    pub notes: Vec<String>,
}

/// Points the system at the agent: [`plan_enable`], [`record`], [`apply`]. Idempotent.
pub fn enable(root: &Root, req: &EnableRequest) -> anyhow::Result<Enabled> {
    let plan = plan_enable(root, req)?;
    record(&plan)?;
    let mut notes = plan.notes.clone();
    notes.extend(apply(&plan)?);
    Ok(Enabled {
        mode: plan.manifest.mode,
        refresh: plan.refresh,
        files: plan
            .manifest
            .entries
            .iter()
            .filter(|e| !plan.retire.contains(&e.path))
            .map(|e| e.path.clone())
            .collect(),
        upstream: plan.manifest.upstream.clone(),
        notes,
    })
}

/// What happened to one file at `disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Restored,
    /// It was never changed (enable was interrupted before writing it), or was restored already.
    Unchanged,
    /// Someone else rewrote it since `enable`: left alone (the saved original is kept).
    LeftChanged,
}

impl Outcome {
    fn note(self, e: &Entry) -> Option<String> {
        (self == Outcome::LeftChanged).then(|| {
            format!(
                "{} was changed by someone else since `system-dns enable`: left as it is (use --force to restore the original anyway)",
                e.path.display()
            )
        })
    }
}

fn is_original(root: &Root, e: &Entry, cur: &Current) -> anyhow::Result<bool> {
    Ok(match (&e.before, cur) {
        (Before::Absent, Current::Absent) => true,
        (Before::Symlink { target }, Current::Symlink(t)) => t == target,
        (Before::File { backup, mode, uid, gid, .. }, Current::File { bytes, mode: m, uid: u, gid: g }) => {
            (mode, uid, gid) == (m, u, g)
                && read_trusted(root, &root.state_dir().join(backup)).ok().as_deref() == Some(bytes)
        }
        _ => false,
    })
}

fn restore_entry(root: &Root, e: &Entry, force: bool) -> anyhow::Result<Outcome> {
    let host = root.path(&e.path);
    let _ = fs::remove_file(tmp_path(&host));
    let cur = inspect(&host).with_context(|| format!("cannot inspect {}", host.display()))?;
    if is_original(root, e, &cur)? {
        return Ok(Outcome::Unchanged);
    }
    let ours = matches!(&cur, Current::File { bytes, .. } if bytes == e.written.as_bytes());
    if !(ours || cur == Current::Absent || force) {
        return Ok(Outcome::LeftChanged);
    }
    match &e.before {
        Before::Absent => remove(&host)?,
        Before::Symlink { target } => replace_with_symlink(&host, target)?,
        Before::File { backup, len, mode, uid, gid } => {
            let saved = root.state_dir().join(backup);
            let bytes = read_trusted(root, &saved).with_context(|| {
                format!("the saved original of {} ({}) cannot be read", e.path.display(), saved.display())
            })?;
            if bytes.len() as u64 != *len {
                bail!(
                    "the saved original {} is {} bytes, not {len}: not restoring from it",
                    saved.display(),
                    bytes.len()
                );
            }
            write_atomic(&host, &bytes, *mode, Some((*uid, *gid)))?;
        }
    }
    Ok(Outcome::Restored)
}

/// What `disable` did.
#[derive(Debug, Clone)]
pub struct Disabled {
    /// None: nothing was enabled.
    pub mode: Option<Mode>,
    pub files: Vec<(PathBuf, Outcome)>,
    /// Saved originals kept because their file was left alone.
    pub kept: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// Restores what `enable` changed, from the manifest; safe to run again after a crash at any point
/// (of `enable` or of `disable`), and a no-op when nothing is enabled.
pub fn disable(root: &Root, force: bool) -> anyhow::Result<Disabled> {
    let Some(m) = read_manifest(root)? else {
        let mut notes = Vec::new();
        notes.extend(stray_marker(root));
        return Ok(Disabled { mode: None, files: vec![], kept: vec![], notes });
    };
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    // In reverse: resolv.conf is back before NetworkManager's drop-in goes, so a crash in between
    // leaves NetworkManager still off a file that is the original again.
    for e in m.entries.iter().rev() {
        let outcome = restore_entry(root, e, force)?;
        notes.extend(outcome.note(e));
        if let (Outcome::LeftChanged, Before::File { backup, .. }) = (outcome, &e.before) {
            kept.push(root.state_dir().join(backup));
        }
        files.push((e.path.clone(), outcome));
    }
    remove(&root.path(UPSTREAM_FILE))?;
    for d in &m.created_dirs {
        let _ = fs::remove_dir(root.path(d)); // only if empty
    }
    for e in &m.entries {
        if let Before::File { backup, .. } = &e.before {
            let p = root.state_dir().join(backup);
            if !kept.contains(&p) {
                remove(&p)?;
            }
        }
    }
    remove(&root.manifest_path())?;
    let _ = fs::remove_dir(root.state_dir());
    for k in &kept {
        notes.push(format!("the original is kept at {}", k.display()));
    }
    Ok(Disabled { mode: Some(m.mode), files, kept, notes })
}

/// Warnings when system files carry splitdns's marker but nothing records them.
fn stray_marker(root: &Root) -> Vec<String> {
    let ours = |path: &str| {
        let host = root.path(path);
        matches!(inspect(&host), Ok(Current::File { bytes, .. }) if String::from_utf8_lossy(&bytes).contains(MARKER))
            .then_some(host)
    };
    let mut out = Vec::new();
    if let Some(host) = ours(RESOLV_CONF) {
        out.push(format!(
            "{} says it is managed by splitdns, but {} is missing: the original cannot be restored automatically; \
             write {RESOLV_CONF} by hand",
            host.display(),
            root.manifest_path().display()
        ));
    }
    if let Some(host) = ours(NM_CONF_DROPIN) {
        out.push(format!(
            "{} is splitdns's, but {} is missing: delete it and run `nmcli general reload conf` so NetworkManager \
             manages {RESOLV_CONF} again",
            host.display(),
            root.manifest_path().display()
        ));
    }
    out
}

/// One file in `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    /// `splitdns` (as written), `original` (enable did not get to it), `changed` (someone else's now) or `missing`.
    pub state: String,
    /// What `disable` puts back.
    pub restore: String,
}

/// `system-dns status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub enabled: bool,
    /// The manifest's mode when enabled, else the detected one.
    pub mode: Mode,
    pub detected: Detection,
    pub address: Option<String>,
    pub enabled_at: Option<u64>,
    pub points_at_agent: bool,
    pub files: Vec<FileReport>,
    /// The servers saved for the daemon's default upstream, and where.
    pub upstream_file: Option<PathBuf>,
    pub upstream: Option<Vec<IpAddr>>,
    pub warnings: Vec<String>,
}

/// The state of system DNS: mode, whether it points at the agent, what `disable` restores, drift.
pub fn status(root: &Root) -> anyhow::Result<Report> {
    let detected = detect(root);
    let Some(m) = read_manifest(root)? else {
        return Ok(Report {
            enabled: false,
            mode: detected.mode,
            detected,
            address: None,
            enabled_at: None,
            points_at_agent: false,
            files: vec![],
            upstream_file: None,
            upstream: None,
            warnings: stray_marker(root),
        });
    };
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    let mut all_ours = true;
    for e in &m.entries {
        let host = root.path(&e.path);
        let cur = inspect(&host).with_context(|| format!("cannot inspect {}", host.display()))?;
        let state = if matches!(&cur, Current::File { bytes, .. } if bytes == e.written.as_bytes()) {
            "splitdns"
        } else if is_original(root, e, &cur)? {
            warnings.push(format!(
                "{} is not rewritten yet (enable was interrupted?): run `splitdns system-dns enable` again, or `disable`",
                e.path.display()
            ));
            "original"
        } else if cur == Current::Absent {
            warnings.push(format!("{} was removed by someone else since `system-dns enable`", e.path.display()));
            "missing"
        } else {
            warnings.push(format!(
                "drift: {} was changed by someone else since `system-dns enable` (a network manager or DHCP client?), \
                 so it no longer points at splitdns; `splitdns system-dns enable` re-points it (the saved original \
                 is kept), `disable` leaves the new file alone unless --force",
                e.path.display()
            ));
            "changed"
        };
        all_ours &= state == "splitdns";
        if tmp_path(&host).exists() {
            warnings.push(format!(
                "{} is left over from an interrupted write; `disable` removes it",
                tmp_path(&host).display()
            ));
        }
        let restore = match &e.before {
            Before::Absent => "removes it (it did not exist before)".to_string(),
            Before::Symlink { target } => format!("restores the symbolic link to {}", target.display()),
            Before::File { backup, len, mode, uid, gid } => format!(
                "restores the saved copy {} ({len} bytes, mode {mode:04o}, owner {uid}:{gid})",
                root.state_dir().join(backup).display()
            ),
        };
        files.push(FileReport { path: e.path.clone(), state: state.into(), restore });
    }
    let mut points = all_ours;
    if m.mode == Mode::Resolved && detected.mode != Mode::Resolved {
        points = false;
        warnings.push(format!(
            "drift: {RESOLV_CONF} is no longer systemd-resolved's stub ({}), so programs do not ask resolved, nor splitdns",
            detected.why
        ));
    }
    // Only while the drop-in is in place: otherwise the file's own warning above says what to do.
    let dropin_in_place = files.iter().any(|f| f.path == Path::new(NM_CONF_DROPIN) && f.state == "splitdns");
    if dropin_in_place
        && let Some(n) = &detected.network_manager
        && n.rc_manager_in_force.value.as_deref() != Some("unmanaged")
    {
        warnings.push(format!(
            "drift: NetworkManager's rc-manager in force is not splitdns's unmanaged ({}), so it rewrites \
             {RESOLV_CONF} at its next connection change; no file read after {NM_CONF_DROPIN} may set \
             rc-manager (then run `nmcli general reload conf` and `splitdns system-dns enable`)",
            n.rc_manager_in_force.describe("rc-manager")
        ));
    }
    if m.mode == Mode::Plain {
        warnings.extend(plain_will_not_stick(&detected));
    }
    let upstream_file = m.upstream.as_ref().map(|_| root.path(UPSTREAM_FILE));
    if let Some(p) = &upstream_file
        && !p.exists()
    {
        warnings.push(format!("{} is missing: the daemon may take itself as its upstream", p.display()));
    }
    Ok(Report {
        enabled: true,
        mode: m.mode,
        detected,
        address: Some(m.address),
        enabled_at: Some(m.enabled_at),
        points_at_agent: points,
        files,
        upstream_file,
        upstream: m.upstream,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(mode: Option<Mode>, addr: &str) -> EnableRequest {
        EnableRequest { mode, address: addr.parse().unwrap(), domains: vec![] }
    }

    #[test]
    fn root_maps_system_paths() {
        let r = Root::new("/tmp/x");
        assert_eq!(r.path("/etc/resolv.conf"), Path::new("/tmp/x/etc/resolv.conf"));
        assert_eq!(r.follow(Path::new("/etc/resolv.conf"), Path::new("../run/a")), Path::new("/tmp/x/etc/../run/a"));
        assert_eq!(r.follow(Path::new("/etc/resolv.conf"), Path::new("/run/a")), Path::new("/tmp/x/run/a"));
        assert!(Root::system().is_system() && !r.is_system());
    }

    #[test]
    fn nameservers_parse() {
        let t =
            "# c\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver bogus\nnameserver 192.0.2.1\nsearch a\n";
        assert_eq!(nameservers(t), vec!["192.0.2.1".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]);
    }

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

    #[test]
    fn manifests_name_only_splitdns_files() {
        let mut m = Manifest {
            version: 1,
            mode: Mode::Macos,
            address: "127.0.0.1:53".into(),
            enabled_at: 0,
            entries: vec![Entry {
                path: "/etc/resolver/corp.example".into(),
                before: Before::Absent,
                written: String::new(),
            }],
            created_dirs: vec!["/etc/resolver".into()],
            upstream: None,
        };
        check_manifest(&m).unwrap();
        for bad in ["/etc/shadow", "/etc/resolver/../shadow", "/etc/resolver/a/b", "/etc/resolver.d/x"] {
            m.entries[0].path = bad.into();
            assert!(check_manifest(&m).is_err(), "{bad}");
        }
        m.entries[0].path = RESOLV_CONF.into();
        m.entries[0].before = Before::File { backup: "../../etc/shadow".into(), len: 0, mode: 0, uid: 0, gid: 0 };
        assert!(check_manifest(&m).is_err());
        m.entries[0].before = Before::Absent;
        m.created_dirs = vec!["/usr".into()];
        assert!(check_manifest(&m).is_err());
    }

    #[test]
    fn on_the_real_root_only_root_owned_records_are_trusted() {
        if nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.json");
        fs::write(&p, "{}").unwrap();
        assert!(read_trusted(&Root::new(dir.path()), &p).is_ok());
        let e = read_trusted(&Root::system(), &p).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(read_trusted(&Root::new(dir.path()), &link).is_err(), "a symbolic link is not followed");
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
