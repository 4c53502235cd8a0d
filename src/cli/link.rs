//! `splitdns link up|down`: what VPN hooks call.

use std::path::Path;

use super::LinkUpArgs;
use crate::control::client::{DEFAULT_TIMEOUT, call};
use crate::control::protocol::{LinkDownResult, LinkUpResult, Request};
use crate::state::LinkSpec;

pub(super) async fn up(socket: &Path, args: LinkUpArgs) -> anyhow::Result<()> {
    let json = args.json;
    let spec = LinkSpec::from(args);
    spec.validate()?;
    let r: LinkUpResult = call(socket, &Request::LinkUp { link: spec }, DEFAULT_TIMEOUT).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("link {} is up", r.id);
    for id in &r.replaced {
        println!("  replaced link {id}");
    }
    if r.default_route {
        println!("  default route: all names outside split domains go to this link");
    }
    for d in &r.accepted {
        println!("  routing {d}");
    }
    for rf in &r.refused {
        println!("  NOT routing {}: {}", rf.domain, rf.reason);
    }
    for a in &r.anchors {
        println!("  anchor {} ({}): {}", a.anchor, a.state, a.reason);
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

pub(super) async fn down(socket: &Path, id: String) -> anyhow::Result<()> {
    let r: LinkDownResult = call(socket, &Request::LinkDown { id }, DEFAULT_TIMEOUT).await?;
    if !r.found {
        println!("link {} was not up; nothing to do", r.id);
        return Ok(());
    }
    println!(
        "link {} is down: {} domain(s) no longer routed, {} cached answer(s) flushed, {} trust anchor(s) dropped, {} query(ies) abandoned",
        r.id,
        r.domains_removed.len(),
        r.cache_entries_flushed,
        r.anchors_dropped,
        r.queries_abandoned
    );
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

impl From<LinkUpArgs> for LinkSpec {
    /// `splitdns link up`'s flags, as the link the daemon is told about.
    fn from(args: LinkUpArgs) -> Self {
        LinkSpec {
            id: args.id,
            profile: args.profile,
            servers: args.servers,
            domains: args.domains,
            search_domains: vec![],
            anchors: args.anchors,
            interface: args.interface,
            source: args.source,
            full_tunnel: args.full_tunnel,
            default_route: args.default_route,
        }
    }
}
