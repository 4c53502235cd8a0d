//! `splitdns system-dns enable|disable|status`: point the system's resolver at the agent and back.
//! The work is in [`crate::sysdns`]; this is arguments, the daemon's address and domains, root
//! checks, reloading systemd-resolved and printing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};

use crate::control::client::{DEFAULT_TIMEOUT, call};
use crate::control::protocol::{Request, Status};
use crate::domain::DomainName;
use crate::state::ServerAddr;
use crate::sysdns::{self, EnableRequest, Mode, Outcome, Root};

/// The address the packaged daemon listens on.
const PACKAGED_ADDRESS: &str = "127.0.0.1:53";

#[derive(Args, Debug)]
pub struct SystemDnsArgs {
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
    /// change to refresh the daemon's saved upstream servers.
    ///
    /// systemd-resolved: a drop-in with DNS=<agent> and Domains=~.; a plain /etc/resolv.conf: a
    /// saved copy, then a rewrite naming the agent; macOS: /etc/resolver/<domain> per split domain.
    Enable(EnableArgs),
    /// Restore exactly what `enable` changed (also after a crash). Files someone else rewrote since
    /// are left alone unless --force.
    Disable {
        /// Restore the originals even over files changed by someone else since `enable`.
        #[arg(long)]
        force: bool,
    },
    /// Show the mode, whether the system points at the agent, what `disable` restores, and drift.
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
        (Some(a), _) => a.0,
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
    let done = sysdns::enable(root, &EnableRequest { mode, address, domains })?;
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
            "  saved   {} (the daemon's default upstream): {}",
            root.path(sysdns::UPSTREAM_FILE).display(),
            if list.is_empty() { "(none)".into() } else { list.join(", ") }
        );
        println!(
            "          reload the daemon (SIGHUP) to use them; after a network change run `splitdns system-dns enable` again"
        );
    }
    for n in &done.notes {
        eprintln!("warning: {n}");
    }
    if done.mode == Mode::Resolved {
        reload_resolved(root)?;
    }
    println!("undo with `splitdns system-dns disable`");
    Ok(())
}

fn disable(root: &Root, force: bool) -> anyhow::Result<()> {
    require_root(root, "disable")?;
    let done = sysdns::disable(root, force)?;
    for n in &done.notes {
        eprintln!("warning: {n}");
    }
    let Some(mode) = done.mode else {
        println!("system DNS is not pointed at splitdns (nothing recorded); nothing to do");
        return Ok(());
    };
    for (path, outcome) in &done.files {
        let what = match outcome {
            Outcome::Restored => "restored",
            Outcome::Unchanged => "unchanged (was never rewritten)",
            Outcome::LeftChanged => "left alone (changed by someone else)",
        };
        println!("  {what:<8} {}", path.display());
    }
    if mode == Mode::Resolved {
        reload_resolved(root)?;
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

fn status(root: &Root, json: bool) -> anyhow::Result<()> {
    let r = sysdns::status(root)?;
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
                "daemon upstream saved in {}: {}",
                p.display(),
                if list.is_empty() { "(none)".into() } else { list.join(", ") }
            );
        }
    } else {
        println!("system DNS: not pointed at splitdns");
        println!("`enable` would use a {}: {}", r.detected.mode, r.detected.why);
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
