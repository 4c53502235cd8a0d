//! `splitdns system-dns enable|disable|status`: point the system's resolver at the agent and back.
//! The work is in [`crate::system_dns`]; this is arguments, the daemon's address and domains, root
//! checks, reloading systemd-resolved or NetworkManager, and printing.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};

use crate::control::client::{DEFAULT_TIMEOUT, call};
use crate::control::protocol::{Request, Status};
use crate::domain::DomainName;
use crate::server_addr::ServerAddr;
use crate::system_dns::{self, EnableRequest, Mode, Outcome, Root};

/// The address the packaged daemon listens on.
const PACKAGED_ADDRESS: &str = "127.0.0.1:53";

#[derive(Args, Debug)]
pub(super) struct SystemDnsArgs {
    #[command(subcommand)]
    action: Action,
    /// A directory standing in for `/` (for tests): files under it are changed, no service is
    /// reloaded and root is not required.
    #[arg(long, global = true, hide = true, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Point the system's resolver at the agent, saving what was there. Run again after a network
    /// change to refresh the daemon's saved fallback servers (what it uses with a plain resolv.conf).
    ///
    /// systemd-resolved: a drop-in with DNS=<agent> and Domains=~.; NetworkManager: a drop-in with
    /// rc-manager=unmanaged so it stops rewriting /etc/resolv.conf, then the plain rewrite; a plain
    /// /etc/resolv.conf: a saved copy, then a rewrite naming the agent; macOS: /etc/resolver/<domain>
    /// per split domain.
    Enable(EnableArgs),
    /// Restore exactly what `enable` changed (also after a crash). Files someone else rewrote since
    /// are left alone unless --force.
    Disable {
        /// Restore the originals even over files changed by someone else since `enable`.
        #[arg(long)]
        force: bool,
    },
    /// Show the mode, who manages /etc/resolv.conf (NetworkManager's dns= and rc-manager=), whether
    /// the system points at the agent, what `disable` restores, and drift.
    Status {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct EnableArgs {
    /// The agent's DNS address [default: the running daemon's listen address, else 127.0.0.1:53].
    /// A plain resolv.conf cannot name a port: it needs port 53.
    #[arg(long, value_name = "ADDR[:PORT]")]
    address: Option<ServerAddr>,
    /// How to point the system at the agent [default: detected].
    #[arg(long, value_enum, default_value = "auto")]
    mode: ModeArg,
    /// macOS: a split domain to send to the agent; repeatable [default: the running daemon's split domains].
    #[arg(long = "domain", value_name = "NAME")]
    domains: Vec<DomainName>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ModeArg {
    Auto,
    Resolved,
    NetworkManager,
    Plain,
    Macos,
}

pub(super) async fn run(args: SystemDnsArgs, socket: &Path) -> anyhow::Result<()> {
    let root = Root::new(std::path::absolute(&args.root)?);
    match args.action {
        Action::Enable(e) => enable(&root, e, socket).await,
        Action::Disable { force } => disable(&root, force),
        Action::Status { json } => status(&root, json),
    }
}

fn require_root(root: &Root, verb: &str) -> anyhow::Result<()> {
    if root.is_system() && !nix::unistd::geteuid().is_root() {
        bail!("`system-dns {verb}` changes system files: run it as root (sudo splitdns system-dns {verb})");
    }
    Ok(())
}

/// The daemon's status, if it answers.
async fn daemon_status(socket: &Path) -> Result<Status, String> {
    call::<Status>(socket, &Request::Status {}, DEFAULT_TIMEOUT).await.map_err(|e| format!("{e:#}"))
}

async fn enable(root: &Root, args: EnableArgs, socket: &Path) -> anyhow::Result<()> {
    require_root(root, "enable")?;
    let mode = match args.mode {
        ModeArg::Auto => None,
        ModeArg::Resolved => Some(Mode::Resolved),
        ModeArg::NetworkManager => Some(Mode::NetworkManager),
        ModeArg::Plain => Some(Mode::Plain),
        ModeArg::Macos => Some(Mode::Macos),
    };
    let wants_domains = mode == Some(Mode::Macos) || (mode.is_none() && cfg!(target_os = "macos"));
    // Ask the daemon only for what was not given, so explicit flags never depend on it.
    let daemon = if args.address.is_none() || (wants_domains && args.domains.is_empty()) {
        Some(daemon_status(socket).await)
    } else {
        None
    };
    let address = match (args.address, &daemon) {
        (Some(a), _) if a.transport == crate::server_addr::Transport::Udp => a.addr,
        (Some(a), _) => bail!("--address {a}: the agent answers plain DNS only; give ADDR[:PORT]"),
        (None, Some(Ok(s))) => {
            let listen: Vec<SocketAddr> = s.listen.iter().filter_map(|a| a.parse().ok()).collect();
            match listen.iter().find(|a| a.port() == 53).or(listen.first()) {
                Some(a) => *a,
                None => bail!("the daemon reports no listen address; give --address"),
            }
        }
        (None, _) => PACKAGED_ADDRESS.parse().expect("valid address"),
    };
    if let Some(Err(e)) = &daemon {
        eprintln!(
            "warning: the daemon does not answer ({e}); using {address}. Until it runs there, the system has no DNS."
        );
    }
    let domains = if !args.domains.is_empty() {
        args.domains
    } else if let Some(Ok(s)) = &daemon {
        let mut d: Vec<DomainName> = s.links.iter().flat_map(|l| &l.domains).filter_map(|d| d.parse().ok()).collect();
        d.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        d.dedup();
        d
    } else {
        vec![]
    };
    let done = system_dns::enable(root, &EnableRequest { mode, address, domains })?;
    println!(
        "system DNS {} the splitdns agent at {address} ({})",
        if done.refresh { "still points at" } else { "now points at" },
        done.mode
    );
    for f in &done.files {
        println!("  wrote   {}", f.display());
    }
    if let Some(servers) = &done.upstream {
        let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
        println!(
            "  saved   {} (the daemon's fallback upstream): {}",
            root.path(system_dns::UPSTREAM_FILE).display(),
            if list.is_empty() { "(none)".into() } else { list.join(", ") }
        );
        match done.mode {
            Mode::NetworkManager => {
                println!("          the daemon follows {} and falls back on these", system_dns::NM_NO_STUB_RESOLV_CONF)
            }
            Mode::Resolved => {
                println!("          the daemon follows {} and falls back on these", system_dns::RESOLVED_RESOLV_CONF)
            }
            _ => println!(
                "          reload the daemon (SIGHUP) to use them; after a network change run `splitdns system-dns enable` again"
            ),
        }
    }
    for n in &done.notes {
        eprintln!("warning: {n}");
    }
    match done.mode {
        Mode::Resolved => reload_resolved(root)?,
        Mode::NetworkManager => reload_network_manager(root),
        _ => {}
    }
    println!("undo with `splitdns system-dns disable`");
    Ok(())
}

fn disable(root: &Root, force: bool) -> anyhow::Result<()> {
    require_root(root, "disable")?;
    let done = system_dns::disable(root, force)?;
    for n in &done.notes {
        eprintln!("warning: {n}");
    }
    let Some(mode) = done.mode else {
        println!("system DNS is not pointed at splitdns (nothing recorded); nothing to do");
        return Ok(());
    };
    for (path, outcome) in &done.files {
        let gone = std::fs::symlink_metadata(root.path(path)).is_err();
        let what = match outcome {
            Outcome::Restored if gone => "removed",
            Outcome::Restored => "restored",
            Outcome::Unchanged => "unchanged (was never rewritten)",
            Outcome::LeftChanged => "left alone (changed by someone else)",
        };
        println!("  {what:<8} {}", path.display());
    }
    match mode {
        Mode::Resolved => reload_resolved(root)?,
        // NetworkManager manages /etc/resolv.conf again and rewrites it for the current network.
        Mode::NetworkManager => reload_network_manager(root),
        _ => {}
    }
    println!("system DNS no longer points at splitdns ({mode} undone)");
    Ok(())
}

/// Makes systemd-resolved re-read its configuration (only on the real root).
fn reload_resolved(root: &Root) -> anyhow::Result<()> {
    if !root.is_system() {
        println!("  skipped reloading systemd-resolved (--root {} is not /)", root.dir().display());
        return Ok(());
    }
    let status =
        std::process::Command::new("systemctl").args(["reload-or-restart", "systemd-resolved.service"]).status();
    match status {
        Ok(s) if s.success() => {
            println!("  reloaded systemd-resolved");
            Ok(())
        }
        Ok(s) => bail!("`systemctl reload-or-restart systemd-resolved` failed ({s}); run it yourself"),
        Err(e) => bail!("cannot run systemctl ({e}); run `systemctl reload-or-restart systemd-resolved` yourself"),
    }
}

/// How long a reload command may take before it is given up on (its D-Bus call may hang).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs a command with no input and quiet output; Err says why it failed (its standard error, or a
/// time-out after `timeout`, when it is killed).
fn run_quietly(program: &str, args: &[&str], timeout: Duration) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{program} {}` did not finish within {}s", args.join(" "), timeout.as_secs()));
            }
            Err(e) => return Err(format!("cannot wait for {program}: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    Err(format!("`{program} {}` failed ({status}): {}", args.join(" "), err.trim()))
}

/// Makes NetworkManager re-read its configuration (only on the real root), so the drop-in's
/// rc-manager takes effect now rather than at its next start. A failure is only a warning: the
/// drop-in is in place either way.
///
/// `nmcli general reload conf` (NetworkManager 1.22 and later, any init system) first, then
/// `systemctl reload NetworkManager.service` (SIGHUP or the D-Bus Reload call, by the unit).
fn reload_network_manager(root: &Root) {
    if !root.is_system() {
        println!("  skipped reloading NetworkManager (--root {} is not /)", root.dir().display());
        return;
    }
    let attempts: [(&str, &[&str]); 2] =
        [("nmcli", &["general", "reload", "conf"]), ("systemctl", &["reload", "NetworkManager.service"])];
    let mut errors = Vec::new();
    for (program, args) in attempts {
        match run_quietly(program, args, RELOAD_TIMEOUT) {
            Ok(()) => {
                println!("  reloaded NetworkManager ({program} {})", args.join(" "));
                return;
            }
            Err(e) => errors.push(e),
        }
    }
    eprintln!(
        "warning: NetworkManager was not reloaded ({}). The drop-in is in place and takes effect when \
         NetworkManager next starts; if it is running, run `nmcli general reload conf` (or `systemctl reload \
         NetworkManager`) yourself",
        errors.join("; ")
    );
}

fn status(root: &Root, json: bool) -> anyhow::Result<()> {
    let r = system_dns::status(root)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    if r.enabled {
        println!(
            "system DNS: enabled ({}) for the agent at {}, since Unix time {}",
            r.mode,
            r.address.as_deref().unwrap_or("?"),
            r.enabled_at.unwrap_or(0)
        );
        println!("points at the agent: {}", if r.points_at_agent { "yes" } else { "NO" });
        for f in &r.files {
            println!("  {}: {}; disable {}", f.path.display(), f.state, f.restore);
        }
        if let (Some(p), Some(servers)) = (&r.upstream_file, &r.upstream) {
            let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
            println!(
                "daemon's fallback upstream saved in {}: {}",
                p.display(),
                if list.is_empty() { "(none)".into() } else { list.join(", ") }
            );
        }
    } else {
        println!("system DNS: not pointed at splitdns");
        println!("`enable` would use a {}: {}", r.detected.mode, r.detected.why);
    }
    println!("{} is managed by: {}", system_dns::RESOLV_CONF, r.detected.manager);
    if let Some(nm) = &r.detected.network_manager {
        println!("NetworkManager: {}", nm.summary());
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_commands_report_failure_and_time_out() {
        assert_eq!(run_quietly("true", &[], Duration::from_secs(5)), Ok(()));
        let e = run_quietly("sh", &["-c", "echo nope >&2; exit 3"], Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("failed") && e.contains("nope"), "{e}");
        let e = run_quietly("/nonexistent/nmcli", &[], Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
        let start = Instant::now();
        let e = run_quietly("sleep", &["5"], Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("did not finish") && start.elapsed() < Duration::from_secs(4), "{e}");
    }
}
