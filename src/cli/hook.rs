//! `splitdns hook KIND …`: what a VPN client runs when a connection comes up or goes down.
//!
//! Reads the client's own environment and arguments (src/hooks), turns them into `link up` /
//! `link down` on the control socket, and never hangs the VPN: each call to the daemon is bounded
//! by [`HOOK_TIMEOUT`]. A down event always exits 0 (teardown must not be blocked; an unknown id is
//! fine). An up event that could not be applied exits 1 with the reason on stderr: clients such as
//! OpenVPN and wg-quick then refuse the connection rather than run it with DNS that does not split.
//!
//! "Could not be applied" includes a link the daemon took but whose split domains it all refused
//! (another VPN owns them, a public suffix, …): the tunnel would run with none of its names routed
//! to it. The hook then sends `link down` for that id itself, since a client whose up script failed
//! does not run its down script, and exits 1 with each refusal's reason. Two cases still succeed:
//! an up event with no split domain at all (a full tunnel, or wg-quick with servers only), and a
//! full-tunnel link, whose split domains are ignored by design (RFC 8598 §2). A link with some
//! domains routed and some refused succeeds, and says which are not routed.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::control::client::call;
use crate::control::protocol::{LinkDownResult, LinkUpResult, Request};
use crate::hooks::{self, Env, HookEvent};
use crate::state::LinkSpec;

/// Upper bound for a hook call, connection and reply included.
pub(super) const HOOK_TIMEOUT: Duration = Duration::from_secs(4);

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
    /// OpenVPN `--up`/`--down` (foreign_option_N, and the dns_server_N_* variables 2.6 sets beside
    /// them) or 2.7 `--dns-updown` (dns_server_N_*). The arguments OpenVPN appends (device, MTU,
    /// addresses, init|restart) are accepted and ignored.
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

/// True when the daemon took the link but refused every split domain it had (after the profile's
/// settings), so the tunnel would run with DNS that does not split. A link without split domains
/// and a full-tunnel link (whose domains are ignored by design) are not such a failure.
fn routes_nothing_it_asked_for(r: &LinkUpResult, full_tunnel: bool) -> bool {
    !full_tunnel && r.accepted.is_empty() && !r.refused.is_empty()
}

/// Takes a link that routes none of its split domains down again, and returns the error to exit
/// with: each refusal's reason, whether the link is gone, and what to do next.
async fn undo_refused_link(kind: &str, r: &LinkUpResult, socket: &Path) -> anyhow::Error {
    let reasons: Vec<String> = r.refused.iter().map(|rf| format!("{}: {}", rf.domain, rf.reason)).collect();
    let cleanup = match call::<LinkDownResult>(socket, &Request::LinkDown { id: r.id.clone() }, HOOK_TIMEOUT).await {
        Ok(_) => "the link was taken down again, so that this VPN connection does not run with DNS that \
                  does not split"
            .to_string(),
        Err(e) => format!(
            "and it could not be taken down again ({e:#}): run `splitdns link down --id {}` once the daemon answers",
            r.id
        ),
    };
    anyhow::anyhow!(
        "hook {kind}: link {} refused: none of its split domains is routed to it ({}); {cleanup}. \
         Fix what the reasons say (e.g. disconnect the VPN that owns the domain; `splitdns status` \
         lists the links), then reconnect",
        r.id,
        reasons.join("; ")
    )
}

async fn send(kind: &str, event: HookEvent, socket: &Path) -> anyhow::Result<()> {
    match event {
        HookEvent::Up(up) => {
            let spec = LinkSpec::from(up);
            spec.validate()?;
            let id = spec.id.clone();
            let full_tunnel = spec.full_tunnel;
            let r: LinkUpResult = call(socket, &Request::LinkUp { link: spec }, HOOK_TIMEOUT)
                .await
                .with_context(|| format!("splitdns hook {kind}: link {id} not applied"))?;
            if routes_nothing_it_asked_for(&r, full_tunnel) {
                return Err(undo_refused_link(kind, &r, socket).await);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::table::{Refusal, RefusalKind};

    fn result(accepted: &[&str], refused: &[&str]) -> LinkUpResult {
        LinkUpResult {
            id: "openvpn:tun0:corp".into(),
            accepted: accepted.iter().map(|d| d.to_string()).collect(),
            refused: refused
                .iter()
                .map(|d| Refusal {
                    domain: d.parse().expect("a domain"),
                    kind: RefusalKind::Conflict,
                    reason: "owned elsewhere".into(),
                })
                .collect(),
            anchors: vec![],
            replaced: vec![],
            default_route: false,
            warnings: vec![],
        }
    }

    #[test]
    fn an_up_fails_only_when_every_split_domain_is_refused() {
        assert!(routes_nothing_it_asked_for(&result(&[], &["corp.example"]), false));
        assert!(routes_nothing_it_asked_for(&result(&[], &["corp.example", "com"]), false));
        // Partly routed, nothing asked for, or a full tunnel (domains ignored by design): success.
        assert!(!routes_nothing_it_asked_for(&result(&["lab.example"], &["corp.example"]), false));
        assert!(!routes_nothing_it_asked_for(&result(&[], &[]), false));
        assert!(!routes_nothing_it_asked_for(&result(&[], &["corp.example"]), true));
    }
}
