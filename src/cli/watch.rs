//! `splitdns watch [--json]`: the daemon's event stream, as it happens — what needs a person first
//! (pending reviews, failed anchors, refused domains), then every link, anchor, whitelist and
//! upstream change. Human-readable by default (like `resolvectl monitor`), one JSON object per line
//! with `--json`.

use std::fmt::Write as _;
use std::path::Path;

use crate::clock::utc;
use crate::control::client;
use crate::control::events::{Event, EventKind};

pub(super) async fn run(socket: &Path, json: bool) -> anyhow::Result<()> {
    client::watch(socket, |event| {
        if json {
            println!("{}", serde_json::to_string(&event).unwrap_or_default());
        } else {
            println!("{}", render(&event));
        }
    })
    .await?;
    eprintln!("splitdns watch: the daemon closed the stream (it stopped, or this watcher fell behind)");
    Ok(())
}

fn who(link: &str, profile: &Option<String>) -> String {
    match profile {
        Some(p) => format!("link {link} (profile {p})"),
        None => format!("link {link}"),
    }
}

/// One event as a line for a person.
pub(super) fn render(e: &Event) -> String {
    let mut o = utc(e.at);
    o.push_str(if e.replay { " [needs you] " } else { " " });
    let _ = match &e.what {
        EventKind::LinkUp { link, profile, domains, servers, interface, replaced } => {
            let domains = if domains.is_empty() { "no split domain".into() } else { domains.join(", ") };
            let via = interface.as_ref().map(|i| format!(" on {i}")).unwrap_or_default();
            let mut t = format!("{} up: {domains} → {}{via}", who(link, profile), servers.join(", "));
            if !replaced.is_empty() {
                let _ = write!(t, " (replaces {})", replaced.join(", "));
            }
            o.write_str(&t)
        }
        EventKind::LinkDown { link, profile, detail, domains, .. } => {
            write!(o, "{} down ({detail}); no longer routed: {}", who(link, profile), domains.join(", "))
        }
        EventKind::DomainRefused { link, profile, domain, reason, .. } => {
            write!(o, "{domain} NOT routed to {}: {reason}", who(link, profile))
        }
        EventKind::AnchorOffered { link, profile, domain, .. } => {
            write!(o, "{} offers a DNSSEC trust anchor for {domain}", who(link, profile))
        }
        EventKind::AnchorPendingReview(p) => write!(
            o,
            "trust anchor for {} from {} waits for review: {} — run `splitdns whitelist review`",
            p.domain,
            who(&p.link, &p.profile),
            p.reason
        ),
        EventKind::AnchorInUse { link, profile, domain, keys } => {
            write!(o, "trust anchor for {domain} ({}) in use: keys {}", who(link, profile), keys.join(", "))
        }
        EventKind::AnchorFailed { link, profile, domain, reason } => {
            write!(o, "trust anchor for {domain} ({}) FAILED, the zone fails closed: {reason}", who(link, profile))
        }
        EventKind::AnchorRevoked { link, profile, domain, reason } => {
            write!(o, "trust anchor for {domain} ({}) revoked: {reason}", who(link, profile))
        }
        EventKind::WhitelistReloaded { path, entries } => {
            write!(
                o,
                "whitelist {path} reloaded: {}",
                if entries.is_empty() { "empty".into() } else { entries.join(", ") }
            )
        }
        EventKind::WhitelistRejected { path, error, line } => {
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            write!(o, "whitelist {path} REJECTED{at}, the last good one stays in force: {error}")
        }
        EventKind::UpstreamChanged { source, servers, note } => {
            let note = note.as_ref().map(|n| format!(" — {n}")).unwrap_or_default();
            write!(o, "default upstream: {} from {source}{note}", servers.join(", "))
        }
        EventKind::CacheFlushed { domain, flushed } => {
            write!(o, "cache flushed ({}): {flushed} answer(s)", domain.as_deref().unwrap_or("everything"))
        }
        EventKind::SystemDns { mode, points_at_agent: true, .. } => write!(o, "the system points at splitdns ({mode})"),
        EventKind::SystemDns { mode, warnings, .. } => write!(
            o,
            "the system NO LONGER points at splitdns ({mode}): {} — run `splitdns system-dns status`",
            warnings.join("; ")
        ),
        EventKind::ReplayDone => o.write_str("— live events follow —"),
        EventKind::Overflow { message } => write!(o, "disconnected: {message}"),
    };
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_line_says_it_needs_you() {
        let e = Event { at: 0, replay: true, what: EventKind::ReplayDone };
        assert!(render(&e).contains("[needs you]"));
        let e = EventKind::CacheFlushed { domain: None, flushed: 3 }.now();
        assert!(render(&e).ends_with("cache flushed (everything): 3 answer(s)"), "{}", render(&e));
    }
}
