//! Acting as other users against a test daemon (needs root): opening the daemon's directory to
//! them, and running the CLI as a given uid and gid.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::daemon::{Daemon, bin, run};

/// uid (and usually gid) of `nobody`.
pub const NOBODY: u32 = 65534;

/// Whether this test process can act as other users; prints why not.
pub fn can_switch_users(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIPPED: {test} runs processes as other users, which needs root");
    false
}

/// `nobody`'s primary gid and that group's name, for a test that puts it in a config group;
/// `None` (after saying why) when this machine has no such user or group.
pub fn nobody_and_group(test: &str) -> Option<(u32, String)> {
    let Ok(Some(nobody)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(NOBODY)) else {
        eprintln!("SKIPPED: {test}: no user with uid {NOBODY} (nobody) on this machine");
        return None;
    };
    let gid = nobody.gid.as_raw();
    let Ok(Some(group)) = nix::unistd::Group::from_gid(nobody.gid) else {
        eprintln!("SKIPPED: {test}: nobody's primary group {gid} has no name");
        return None;
    };
    Some((gid, group.name))
}

/// Lets other users reach the daemon's socket: its directory becomes 0711 (the socket file keeps
/// its own mode). Returns a copy of the binary that they may run, if the build's is not.
pub fn open_to_others(d: &Daemon) -> PathBuf {
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let built = PathBuf::from(bin());
    if world_executable(&built) {
        return built;
    }
    let copy = d.dir.path().join("splitdns-for-others");
    std::fs::copy(&built, &copy).expect("copy the binary for other users");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// Whether a user who is neither owner nor in the group may run `path`.
pub fn world_executable(path: &Path) -> bool {
    path.ancestors()
        .all(|p| p.as_os_str().is_empty() || std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Runs the CLI against `d` as `uid`/`gid` (no supplementary groups); returns (success, stderr).
pub fn cli_as(binary: &Path, d: &Daemon, uid: u32, gid: u32, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(binary);
    cmd.arg("--control-socket").arg(&d.socket).args(args).uid(uid).gid(gid).current_dir("/");
    let (ok, _, err) = run(cmd);
    (ok, err)
}
