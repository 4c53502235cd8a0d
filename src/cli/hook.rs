//! `splitdns hook KIND …`: what a VPN client runs when a connection comes up or goes down.
//!
//! Reads the client's own environment and arguments (src/hooks), turns them into `link up` /
//! `link down` on the control socket, and never hangs the VPN: the whole call is bounded by
//! [`HOOK_TIMEOUT`]. A down event always exits 0 (teardown must not be blocked; an unknown id is
//! fine). An up event that could not be applied exits 1 with the reason on stderr: clients such as
//! OpenVPN then refuse the connection rather than run it with DNS that does not split.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::control::client::call;
use crate::control::protocol::{LinkDownResult, LinkUpResult, Request};
use crate::hooks::{self, Env, HookEvent, LinkUp};
use crate::state::LinkSpec;

/// Upper bound for a hook call, connection and reply included.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Args, Debug)]
pub(super) struct HookArgs {
    #[command(subcommand)]
    kind: HookKind,
}

#[derive(Subcommand, Debug)]
enum HookKind {
    /// An IKEv2 client plugin that has the decrypted CFG_REPLY (RFC 8598 attributes, DNSSEC anchors).
    Ikev2 {
        /// `up` or `down`.
        #[arg(long, value_parser = ["up", "down"])]
        event: String,
        /// The connection id (the same for up and down).
        #[arg(long)]
        id: String,
        /// The VPN profile.
        #[arg(long)]
        profile: Option<String>,
        /// The CFG_REPLY payload as hex (from the generic payload header on); else read from stdin
        /// (raw bytes, or hex text).
        #[arg(long, value_name = "HEX")]
        cfg_hex: Option<String>,
        /// The tunnel interface, to bind queries to.
        #[arg(long)]
        interface: Option<String>,
    },
    /// strongSwan updown (`updown =` / `leftupdown=`); needs charon.plugins.updown.dns_handler=yes.
    Strongswan,
    /// libreswan updown (`leftupdown=`).
    Libreswan,
    /// OpenVPN `--up`/`--down` (foreign_option_N) or 2.7 `--dns-updown` (dns_server_N_*). The
    /// arguments OpenVPN appends (device, MTU, addresses, init|restart) are accepted and ignored.
    Openvpn {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// NetworkManager dispatcher script (arguments: interface action).
    Networkmanager {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// wg-quick PostUp/PostDown: `up|down IFACE --server ADDR… --domain NAME… [--ta DS]…`.
    Wireguard {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Runs the hook. Returns Ok for events that need nothing, and for every down event.
pub(super) async fn run(args: HookArgs, socket: &Path) -> anyhow::Result<()> {
    let env: Env = std::env::vars().collect();
    let (kind, event) = match args.kind {
        HookKind::Ikev2 { event, id, profile, cfg_hex, interface } => {
            ("ikev2", ikev2_event(&event, id, profile, cfg_hex, interface)?)
        }
        HookKind::Strongswan => ("strongswan", hooks::strongswan::event(&env, &[])?),
        HookKind::Libreswan => ("libreswan", hooks::libreswan::event(&env, &[])?),
        HookKind::Openvpn { args } => ("openvpn", hooks::openvpn::event(&env, &args)?),
        HookKind::Networkmanager { args } => ("networkmanager", hooks::networkmanager::event(&env, &args)?),
        HookKind::Wireguard { args } => ("wireguard", hooks::wireguard::event(&env, &args)?),
    };
    let Some(event) = event else {
        return Ok(());
    };
    send(kind, event, socket).await
}

fn ikev2_event(
    event: &str,
    id: String,
    profile: Option<String>,
    cfg_hex: Option<String>,
    interface: Option<String>,
) -> anyhow::Result<Option<HookEvent>> {
    if event == "down" {
        return Ok(Some(HookEvent::Down { id }));
    }
    let bytes = match cfg_hex {
        Some(hex) => hooks::ikev2::decode_hex(&hex)?,
        None => {
            let mut raw = Vec::new();
            std::io::stdin().read_to_end(&mut raw).context("cannot read the CFG_REPLY from standard input")?;
            // Hex text or raw bytes.
            match std::str::from_utf8(&raw).ok().map(hooks::ikev2::decode_hex) {
                Some(Ok(b)) => b,
                _ => raw,
            }
        }
    };
    let reply = hooks::ikev2::parse_cfg_reply(&bytes)?;
    for note in &reply.notes {
        eprintln!("splitdns hook ikev2: {note}");
    }
    let mut up = reply.to_link_up(id, profile)?;
    up.interface = interface;
    Ok(Some(HookEvent::Up(up)))
}

fn spec_from(up: LinkUp) -> LinkSpec {
    LinkSpec {
        id: up.id,
        profile: up.profile,
        servers: up.servers,
        domains: up.routing_domains,
        search_domains: up.search_domains,
        anchors: up.anchors,
        interface: up.interface,
        source: None,
        full_tunnel: up.full_tunnel,
        default_route: false,
    }
}

async fn send(kind: &str, event: HookEvent, socket: &Path) -> anyhow::Result<()> {
    match event {
        HookEvent::Up(up) => {
            let spec = spec_from(up);
            spec.validate()?;
            let id = spec.id.clone();
            let r: LinkUpResult = call(socket, &Request::LinkUp { link: spec }, HOOK_TIMEOUT)
                .await
                .with_context(|| format!("splitdns hook {kind}: link {id} not applied"))?;
            eprintln!(
                "splitdns hook {kind}: link {} up, routing {}",
                r.id,
                if r.accepted.is_empty() { "no split domain".to_string() } else { r.accepted.join(", ") }
            );
            for rf in &r.refused {
                eprintln!("splitdns hook {kind}: NOT routing {}: {}", rf.domain, rf.reason);
            }
            for a in &r.anchors {
                eprintln!("splitdns hook {kind}: trust anchor for {} {}: {}", a.anchor.owner, a.state, a.reason);
            }
            Ok(())
        }
        HookEvent::Down { id } => {
            match call::<LinkDownResult>(socket, &Request::LinkDown { id: id.clone() }, HOOK_TIMEOUT).await {
                Ok(r) if r.found => eprintln!("splitdns hook {kind}: link {id} down"),
                Ok(_) => eprintln!("splitdns hook {kind}: link {id} was not up; nothing to do"),
                // Teardown must never be blocked: say it, and succeed.
                Err(e) => eprintln!("splitdns hook {kind}: could not tell the daemon that link {id} went down: {e:#}"),
            }
            Ok(())
        }
    }
}
