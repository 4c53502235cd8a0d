//! NetworkManager mode: when NetworkManager rewrites a regular-file `/etc/resolv.conf` at every
//! connection change, a drop-in [`NM_CONF_DROPIN`] with `[main] rc-manager=unmanaged` stops that
//! (it keeps writing its own copies under `/run/NetworkManager/`, which the daemon follows for the
//! real servers), then `/etc/resolv.conf` is rewritten as in plain mode. Without the drop-in the
//! next Wi-Fi change would undo the rewrite and split names would leak to the network's DNS. The
//! command-line side reloads NetworkManager after `enable` and `disable`.
//!
//! NetworkManager's say over `/etc/resolv.conf`: its `[main] dns=` and `rc-manager=`, read the way
//! NetworkManager reads them (NetworkManager.conf(5)), for [`super::detect`] and `system-dns status`.
//! (The daemon does not need them: it follows [`NM_NO_STUB_RESOLV_CONF`] whenever that file exists.)
//!
//! NetworkManager is taken to be **present** when its main configuration file
//! ([`NM_CONF`]) exists *or* its runtime directory ([`NM_RUN_DIR`]) does: an installed but stopped
//! NetworkManager rewrites `/etc/resolv.conf` as soon as it starts, and a running one may have no
//! main file at all. A drop-in on a system where it never runs costs nothing.
//!
//! Files are read in NetworkManager's order, a later file's key winning: `/usr/lib/NetworkManager/conf.d/*.conf`,
//! `/run/NetworkManager/conf.d/*.conf`, [`NM_CONF`], then `/etc/NetworkManager/conf.d/*.conf`, each
//! directory in byte order of the names. A name in /etc's `conf.d` shadows the same name in /run's and
//! /usr/lib's; one in /run's shadows /usr/lib's. Syntax (GLib key files): `[group]` lines, `key=value`
//! with blanks allowed around both, `#` comments (`;` lines are skipped too). Keys and groups are
//! case-sensitive: only `dns` and `rc-manager` in `[main]` count.
//!
//! Not modelled: `[.config] enable=` conditions, NetworkManager's `--config*` options and
//! `NetworkManager-intern.conf` (D-Bus never sets these two keys).

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Current, MARKER, RESOLV_CONF, Root, header, inspect, resolved};

/// NetworkManager's main configuration file.
pub const NM_CONF: &str = "/etc/NetworkManager/NetworkManager.conf";
/// NetworkManager's runtime directory: present while it runs (and usually after it stopped).
pub const NM_RUN_DIR: &str = "/run/NetworkManager";
/// NetworkManager's list of the real upstream servers, also when a local stub is in use.
pub const NM_NO_STUB_RESOLV_CONF: &str = "/run/NetworkManager/no-stub-resolv.conf";
/// splitdns's drop-in: named to sort last in /etc's `conf.d`, so its `rc-manager=` wins.
pub const NM_CONF_DROPIN: &str = "/etc/NetworkManager/conf.d/zz-splitdns.conf";
/// The drop-in directories, in the order NetworkManager reads them (/etc's after [`NM_CONF`]).
const LIB_CONF_D: &str = "/usr/lib/NetworkManager/conf.d";
const RUN_CONF_D: &str = "/run/NetworkManager/conf.d";
pub const ETC_CONF_D: &str = "/etc/NetworkManager/conf.d";

/// One `[main]` key as NetworkManager's configuration files set it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmSetting {
    /// The value of the last file that sets it, trimmed; None: unset or empty, so NetworkManager's default.
    pub value: Option<String>,
    /// That file (a system path); None: no file sets it.
    pub from: Option<PathBuf>,
}

impl NmSetting {
    fn is(&self, value: &str) -> bool {
        self.value.as_deref() == Some(value)
    }

    /// `key=value (set in FILE)`, or `key not set (NetworkManager's default)`.
    pub fn describe(&self, key: &str) -> String {
        match (&self.value, &self.from) {
            (Some(v), Some(p)) => format!("{key}={v} (set in {})", p.display()),
            (Some(v), None) => format!("{key}={v}"),
            (None, Some(p)) => format!("{key} set empty in {} (NetworkManager's default)", p.display()),
            (None, None) => format!("{key} not set (NetworkManager's default)"),
        }
    }
}

/// The two `[main]` keys splitdns cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NmMain {
    pub dns: NmSetting,
    pub rc_manager: NmSetting,
}

/// Applies one configuration file's `[main] dns=` and `rc-manager=` over `main` (so a later file
/// wins). `from` is the file's system path, for reports.
pub fn parse_main(text: &str, from: &Path, main: &mut NmMain) {
    let mut in_main = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            in_main = line == "[main]";
            continue;
        }
        if !in_main {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let setting = match key.trim() {
            "dns" => &mut main.dns,
            "rc-manager" => &mut main.rc_manager,
            _ => continue,
        };
        let value = value.trim();
        *setting = NmSetting { value: (!value.is_empty()).then(|| value.to_string()), from: Some(from.to_path_buf()) };
    }
}

/// The `*.conf` names in a drop-in directory, in byte order (as NetworkManager sorts them).
fn conf_names(root: &Root, dir: &str) -> Vec<OsString> {
    let Ok(entries) = fs::read_dir(root.path(dir)) else { return vec![] };
    let mut names: Vec<OsString> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name()).filter(|n| n.as_bytes().ends_with(b".conf")).collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names
}

/// NetworkManager's configuration files, as system paths, in the order it reads them (whether or
/// not [`NM_CONF`] exists).
pub fn config_files(root: &Root) -> Vec<PathBuf> {
    let lib = conf_names(root, LIB_CONF_D);
    let run = conf_names(root, RUN_CONF_D);
    let etc = conf_names(root, ETC_CONF_D);
    let mut files: Vec<PathBuf> = Vec::new();
    files.extend(lib.iter().filter(|n| !run.contains(n) && !etc.contains(n)).map(|n| Path::new(LIB_CONF_D).join(n)));
    files.extend(run.iter().filter(|n| !etc.contains(n)).map(|n| Path::new(RUN_CONF_D).join(n)));
    files.push(NM_CONF.into());
    files.extend(etc.iter().map(|n| Path::new(ETC_CONF_D).join(n)));
    files
}

/// NetworkManager's configuration as far as `/etc/resolv.conf` goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkManager {
    /// [`NM_RUN_DIR`] exists.
    pub running: bool,
    /// The configuration files read, in NetworkManager's order.
    pub files: Vec<PathBuf>,
    /// `[main] dns=` from NetworkManager's own files.
    pub dns: NmSetting,
    /// The DNS mode NetworkManager uses: `dns=` as set; unset, `systemd-resolved` while
    /// `/etc/resolv.conf` links to systemd-resolved's files, else `default`.
    pub dns_mode: String,
    /// `[main] rc-manager=` from NetworkManager's own files, splitdns's drop-in left out: what
    /// NetworkManager does without splitdns.
    pub rc_manager: NmSetting,
    /// `rc-manager=` in force, splitdns's drop-in ([`NM_CONF_DROPIN`]) counted.
    pub rc_manager_in_force: NmSetting,
    /// By its own configuration (splitdns's drop-in left out) NetworkManager rewrites
    /// `/etc/resolv.conf`: its DNS mode is neither `systemd-resolved` nor `none`, and `rc-manager`
    /// is not `unmanaged`. (`rc-manager=symlink` leaves a link to elsewhere alone, but replaces a
    /// regular file, which is what `system-dns enable` writes.)
    pub manages_resolv_conf: bool,
}

impl NetworkManager {
    /// Whether NetworkManager would rewrite the regular file `system-dns enable` writes at
    /// `/etc/resolv.conf`. As [`NetworkManager::manages_resolv_conf`], except that an unset `dns=`
    /// counts as `default`: NetworkManager picks systemd-resolved only while resolv.conf links to it,
    /// and the rewrite replaces that link.
    pub fn would_rewrite_a_file(&self) -> bool {
        manages(self.dns.value.as_deref().unwrap_or("default"), &self.rc_manager)
    }

    /// `dns=MODE, rc-manager=VALUE` (or `rc-manager not set`), for reasons given in one line.
    pub fn brief(&self) -> String {
        match &self.rc_manager.value {
            Some(v) => format!("dns={}, rc-manager={v}", self.dns_mode),
            None => format!("dns={}, rc-manager not set", self.dns_mode),
        }
    }

    /// One line for `system-dns status`: its own settings and where they come from, then the
    /// rc-manager in force (splitdns's drop-in counted).
    pub fn summary(&self) -> String {
        let dns = match &self.dns.value {
            Some(_) => self.dns.describe("dns"),
            None => format!("dns={} (not set: NetworkManager's choice)", self.dns_mode),
        };
        let in_force = match (&self.rc_manager_in_force.value, &self.rc_manager_in_force.from) {
            (Some(v), Some(p)) => format!("{v} (set in {})", p.display()),
            _ => "NetworkManager's default (not set)".into(),
        };
        format!(
            "{}, {dns}, {}; rc-manager in force: {in_force}",
            if self.running { "running" } else { "not running" },
            self.rc_manager.describe("rc-manager"),
        )
    }
}

fn manages(dns_mode: &str, rc_manager: &NmSetting) -> bool {
    !matches!(dns_mode, "systemd-resolved" | "none") && !rc_manager.is("unmanaged")
}

/// Whether `/etc/resolv.conf` is a symbolic link to systemd-resolved's files, which is when an unset
/// `dns=` means `systemd-resolved` to NetworkManager.
fn links_to_resolved(root: &Root) -> bool {
    matches!(inspect(&root.path(RESOLV_CONF)), Ok(Current::Symlink(t)) if resolved::links_to_resolved(&t))
}

/// Reads NetworkManager's configuration under `root`; None when NetworkManager is not present
/// (neither [`NM_CONF`] nor [`NM_RUN_DIR`] exists). Reads files only: never fails, an unreadable
/// file counts as absent.
pub fn network_manager(root: &Root) -> Option<NetworkManager> {
    let running = root.path(NM_RUN_DIR).is_dir();
    if !running && fs::symlink_metadata(root.path(NM_CONF)).is_err() {
        return None;
    }
    let mut own = NmMain::default();
    let mut all = NmMain::default();
    let mut files = Vec::new();
    for file in config_files(root) {
        let Ok(bytes) = fs::read(root.path(&file)) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        parse_main(&text, &file, &mut all);
        if !(file == Path::new(NM_CONF_DROPIN) && text.contains(MARKER)) {
            parse_main(&text, &file, &mut own);
        }
        files.push(file);
    }
    let dns_mode = match &own.dns.value {
        Some(v) => v.clone(),
        None if links_to_resolved(root) => "systemd-resolved".into(),
        None => "default".into(),
    };
    Some(NetworkManager {
        running,
        files,
        manages_resolv_conf: manages(&dns_mode, &own.rc_manager),
        dns: own.dns,
        dns_mode,
        rc_manager: own.rc_manager,
        rc_manager_in_force: all.rc_manager,
    })
}

/// NetworkManager's drop-in: it stops writing `/etc/resolv.conf`, and still writes its own copies
/// under `/run/NetworkManager/`.
pub(super) fn nm_dropin_text() -> String {
    format!(
        "{}# NetworkManager keeps writing {NM_NO_STUB_RESOLV_CONF}, which the splitdns daemon follows.\n\
         [main]\nrc-manager=unmanaged\n",
        header("NetworkManager leaves /etc/resolv.conf, which points at the splitdns agent, alone")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NetworkManager present and, by its own configuration (splitdns's drop-in left out), writing
    /// `/etc/resolv.conf`.
    fn nm_writes_resolv_conf(root: &Root) -> bool {
        network_manager(root).is_some_and(|n| n.manages_resolv_conf)
    }

    fn parse(files: &[(&str, &str)]) -> NmMain {
        let mut m = NmMain::default();
        for (path, text) in files {
            parse_main(text, Path::new(path), &mut m);
        }
        m
    }

    fn set(value: &str, from: &str) -> NmSetting {
        NmSetting { value: Some(value.into()), from: Some(from.into()) }
    }

    #[test]
    fn comments_other_sections_and_spacing() {
        let m = parse(&[(
            "/a.conf",
            "# dns=none\n; rc-manager=unmanaged\n[logging]\ndns=dnsmasq\nrc-manager=unmanaged\n\
             [main]\n  dns =  default  \nplugins=ifupdown,keyfile\n[ifupdown]\nmanaged=false\n",
        )]);
        assert_eq!(m.dns, set("default", "/a.conf"));
        assert_eq!(m.rc_manager, NmSetting::default(), "only [main] counts, comments never");
        let m = parse(&[("/a.conf", "[main]\n\trc-manager\t=\tfile\r\n")]);
        assert_eq!(m.rc_manager, set("file", "/a.conf"), "blanks and CR around the key and value");
    }

    #[test]
    fn keys_and_groups_are_spelled_exactly() {
        let m = parse(&[(
            "/a.conf",
            "[main]\nrc_manager=unmanaged\nrcmanager=unmanaged\nRC-MANAGER=unmanaged\nDNS=none\n\
             [Main]\nrc-manager=unmanaged\n[ main ]\ndns=none\n[main.x]\ndns=none\n",
        )]);
        assert_eq!(m, NmMain::default());
        let m = parse(&[("/a.conf", "[main]\nrc-manager=unmanaged\n")]);
        assert!(m.rc_manager.is("unmanaged"));
    }

    #[test]
    fn a_later_file_and_a_later_line_win() {
        let m = parse(&[
            ("/usr/lib/NetworkManager/conf.d/10.conf", "[main]\ndns=none\nrc-manager=unmanaged\n"),
            (NM_CONF, "[main]\ndns=dnsmasq\n[main]\ndns=default\n"),
            ("/etc/NetworkManager/conf.d/90.conf", "[connectivity]\nuri=x\n[main]\nrc-manager=symlink\n"),
        ]);
        assert_eq!(m.dns, set("default", NM_CONF));
        assert_eq!(m.rc_manager, set("symlink", "/etc/NetworkManager/conf.d/90.conf"));
        // An empty value resets to NetworkManager's default, and says where.
        let m = parse(&[("/a.conf", "[main]\nrc-manager=unmanaged\n"), ("/b.conf", "[main]\nrc-manager=\n")]);
        assert_eq!(m.rc_manager, NmSetting { value: None, from: Some("/b.conf".into()) });
    }

    fn write(root: &Root, path: &str, text: &str) {
        let p = root.path(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn files_in_networkmanagers_order_with_shadowing() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert_eq!(network_manager(&root), None, "not present");
        for (d, n) in [
            (LIB_CONF_D, "20-lib.conf"),
            (LIB_CONF_D, "00-shadowed-by-etc.conf"),
            (LIB_CONF_D, "01-shadowed-by-run.conf"),
            (RUN_CONF_D, "01-shadowed-by-run.conf"),
            (RUN_CONF_D, "10-run.conf"),
            (RUN_CONF_D, "30-shadowed-by-etc.conf"),
            (ETC_CONF_D, "30-shadowed-by-etc.conf"),
            (ETC_CONF_D, "00-shadowed-by-etc.conf"),
            (ETC_CONF_D, "B.conf"),
            (ETC_CONF_D, "a.conf"),
            (ETC_CONF_D, "notes.txt"),
            (ETC_CONF_D, ".zz-splitdns.conf.splitdns-new"),
        ] {
            write(&root, &format!("{d}/{n}"), "[main]\n");
        }
        let names: Vec<String> = config_files(&root).iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "/usr/lib/NetworkManager/conf.d/20-lib.conf",
                "/run/NetworkManager/conf.d/01-shadowed-by-run.conf",
                "/run/NetworkManager/conf.d/10-run.conf",
                NM_CONF,
                "/etc/NetworkManager/conf.d/00-shadowed-by-etc.conf",
                "/etc/NetworkManager/conf.d/30-shadowed-by-etc.conf",
                "/etc/NetworkManager/conf.d/B.conf",
                "/etc/NetworkManager/conf.d/a.conf",
            ]
        );
    }

    #[test]
    fn who_manages_resolv_conf() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        write(&root, NM_CONF, "[main]\nplugins=ifupdown,keyfile\n");
        let nm = network_manager(&root).unwrap();
        assert!(nm.manages_resolv_conf && !nm.running, "present by its main file alone: {nm:?}");
        assert_eq!((nm.dns_mode.as_str(), &nm.rc_manager), ("default", &NmSetting::default()));
        // A later file wins: /usr/lib's unmanaged is overridden by NetworkManager.conf.
        write(&root, "/usr/lib/NetworkManager/conf.d/50-x.conf", "[main]\nrc-manager=unmanaged\n");
        assert!(!nm_writes_resolv_conf(&root));
        write(&root, NM_CONF, "[main]\nrc-manager=file\n");
        assert!(nm_writes_resolv_conf(&root));
        for (text, manages) in [
            ("[main]\ndns=none\n", false),
            ("[main]\ndns=systemd-resolved\n", false),
            ("[main]\ndns=dnsmasq\n", true),
            ("[main]\nrc-manager=resolvconf\n", true),
            ("[main]\nrc-manager=unmanaged\n", false),
            ("[main]\nrc-manager=bogus\n", true),
        ] {
            write(&root, "/etc/NetworkManager/conf.d/10-user.conf", text);
            assert_eq!(nm_writes_resolv_conf(&root), manages, "{text}");
        }
        // splitdns's own drop-in stops NetworkManager, but it still is the system's source.
        write(&root, "/etc/NetworkManager/conf.d/10-user.conf", "[main]\n");
        write(&root, NM_CONF_DROPIN, &format!("# {MARKER}\n[main]\nrc-manager=unmanaged\n"));
        let nm = network_manager(&root).unwrap();
        assert!(nm.manages_resolv_conf);
        assert_eq!(nm.rc_manager, set("file", NM_CONF));
        assert_eq!(nm.rc_manager_in_force, set("unmanaged", NM_CONF_DROPIN));
        assert!(nm.summary().contains("rc-manager in force: unmanaged (set in"), "{}", nm.summary());
        // The same file without the marker is someone else's and counts.
        write(&root, NM_CONF_DROPIN, "[main]\nrc-manager=unmanaged\n");
        assert!(!nm_writes_resolv_conf(&root));
    }

    #[test]
    fn unset_dns_follows_a_link_to_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        fs::create_dir_all(root.path(NM_RUN_DIR)).unwrap();
        fs::create_dir_all(root.path("/etc")).unwrap();
        std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", root.path(RESOLV_CONF)).unwrap();
        let nm = network_manager(&root).unwrap();
        assert!(nm.running, "present by its runtime directory alone");
        assert_eq!(nm.dns_mode, "systemd-resolved");
        assert!(!nm.manages_resolv_conf, "NetworkManager feeds systemd-resolved");
        assert!(nm.would_rewrite_a_file(), "but a regular file in place of the link is rewritten");
        write(&root, NM_CONF, "[main]\ndns=systemd-resolved\n");
        assert!(!network_manager(&root).unwrap().would_rewrite_a_file());
    }
}
