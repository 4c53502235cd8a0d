//! A control-socket client: bring a VPN link up, read the daemon's status, take the link down.
//!
//! This is what a VPN client plugin does when its tunnel comes up: tell the splitdns daemon which
//! DNS servers the tunnel has and which domains go to them (`link-up`), check what the daemon made
//! of it, and when the tunnel goes down, say so (`link-down`, by the same id). The protocol is one
//! JSON request per line and one JSON reply per line over a Unix socket
//! (`splitdns::control::protocol`); [`call`] sends one request with a deadline, so a plugin never
//! hangs its VPN client, and decodes the reply. The request lines are printed too, for plugins
//! written in another language.
//!
//! Start a daemon (here from this repository, with its state in /tmp), then point the example at
//! its control socket:
//!
//! ```text
//! cargo run --bin splitdns -- --control-socket /tmp/splitdns.sock daemon --listen 127.0.0.1:5353 \
//!     --state-dir /tmp/splitdns-state &
//! cargo run --example control_client -- /tmp/splitdns.sock
//! cargo run --example control_client -- /tmp/splitdns.sock my-vpn 10.8.0.1 corp.example lab.example
//! ```
//!
//! Arguments: `SOCKET [ID [SERVER [DOMAIN...]]]` (defaults: `example-vpn`, `192.0.2.53`,
//! `corp.example`), and `--keep` anywhere to leave the link up (take it down later with
//! `splitdns --control-socket SOCKET link down --id ID`). A system daemon's socket is
//! `/run/splitdns/control.sock`. With no daemon at SOCKET, it says so and exits with status 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use splitdns::control::client::{DEFAULT_TIMEOUT, call};
use splitdns::control::protocol::{LinkDownResult, LinkUpResult, Request, Status};
use splitdns::domain::DomainName;
use splitdns::server_addr::ServerAddr;
use splitdns::state::LinkSpec;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // With no daemon at all, `call` says "cannot connect to the splitdns daemon at …: is it
            // running?"; a socket that is not there is caught before, in `run`.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let keep = args.iter().any(|a| a == "--keep");
    args.retain(|a| a != "--keep");
    let mut args = args.into_iter();
    let socket = PathBuf::from(args.next().context("usage: control_client SOCKET [ID [SERVER [DOMAIN...]]] [--keep]")?);
    let id = args.next().unwrap_or_else(|| "example-vpn".into());
    let server: ServerAddr = args.next().as_deref().unwrap_or("192.0.2.53").parse().map_err(anyhow::Error::msg)?;
    if !socket.exists() {
        bail!(
            "no splitdns daemon: {} does not exist (start one with `splitdns --control-socket {} daemon`; a system \
             daemon's socket is /run/splitdns/control.sock)",
            socket.display(),
            socket.display()
        );
    }
    let mut domains = args.map(|d| DomainName::parse(&d)).collect::<Result<Vec<_>, _>>()?;
    if domains.is_empty() {
        domains.push(DomainName::parse("corp.example")?);
    }

    // 1. The tunnel is up: its servers and split domains. Anchors, the tunnel interface (queries
    // to the servers are then bound to it) and the profile are optional.
    let link = LinkSpec {
        id: id.clone(),
        profile: None,
        servers: vec![server.clone()],
        domains,
        search_domains: vec![],
        anchors: vec![],
        interface: None,
        source: None,
        full_tunnel: false,
        default_route: false,
    };
    // Refuse a malformed link here, with the daemon's own message, before anything is sent.
    link.validate()?;
    let up = Request::LinkUp { link };
    println!("-> {}", serde_json::to_string(&up)?);
    let r: LinkUpResult = call(&socket, &up, DEFAULT_TIMEOUT).await?;
    println!("link {} is up", r.id);
    for d in &r.accepted {
        println!("  routing {d} to {server}");
    }
    // A domain can be refused (a public suffix, another link's domain …); the others still route.
    for refusal in &r.refused {
        println!("  NOT routing {}: {}", refusal.domain, refusal.reason);
    }
    for replaced in &r.replaced {
        println!("  replaced link {replaced} (same id or profile: a reconnect)");
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }

    // 2. What the daemon routes now.
    let status_request = Request::Status {};
    println!("\n-> {}", serde_json::to_string(&status_request)?);
    let status: Status = call(&socket, &status_request, DEFAULT_TIMEOUT).await?;
    println!("splitdns {} (pid {}) answers on {}", status.version, status.pid, status.listen.join(", "));
    println!("  default upstream: {}", status.default_upstream.source);
    for l in &status.links {
        let servers: Vec<&str> = l.servers.iter().map(|s| s.addr.as_str()).collect();
        println!("  link {}: {} via {}", l.id, l.domains.join(", "), servers.join(", "));
    }

    // 3. The tunnel went down. Repeating a down is harmless: `found` is then false.
    if keep {
        let socket = socket.display();
        println!("\nleaving link {id} up (take it down with `splitdns --control-socket {socket} link down --id {id}`)");
        return Ok(());
    }
    let down = Request::LinkDown { id };
    println!("\n-> {}", serde_json::to_string(&down)?);
    let r: LinkDownResult = call(&socket, &down, DEFAULT_TIMEOUT).await?;
    if r.found {
        println!(
            "link {} is down: {} domain(s) no longer routed, {} cached answer(s) flushed",
            r.id,
            r.domains_removed.len(),
            r.cache_entries_flushed
        );
    } else {
        println!("link {} was not up", r.id);
    }
    Ok(())
}
