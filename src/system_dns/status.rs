//! `system-dns status`: the mode, whether the system still points at the agent, what `disable`
//! would restore, and drift (a file someone else changed since `enable`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::detect::{Detection, detect};
use super::files::{Current, inspect, tmp_path};
use super::manifest::{Before, read_manifest};
use super::network_manager::NM_CONF_DROPIN;
use super::plain::plain_will_not_stick;
use super::resolv_conf::RESOLV_CONF;
use super::restore::{is_original, stray_marker};
use super::{Mode, Root, UPSTREAM_FILE};

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
        let tmp = tmp_path(&host);
        if tmp.exists() {
            warnings.push(format!("{} is left over from an interrupted write; `disable` removes it", tmp.display()));
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
