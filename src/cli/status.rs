//! `splitdns status`: a readable view of what is routed where and why, or JSON for scripts.

use std::fmt::Write as _;
use std::path::Path;

use crate::clock::unix_now;
use crate::control::client::{DEFAULT_TIMEOUT, call};
use crate::control::protocol::{Request, ServerStatus, Status};

pub(super) async fn show(socket: &Path, json: bool) -> anyhow::Result<()> {
    let s: Status = call(socket, &Request::Status {}, DEFAULT_TIMEOUT).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
    }
    Ok(())
}

fn servers(list: &[ServerStatus]) -> String {
    if list.is_empty() {
        return "(none)".into();
    }
    list.iter()
        .map(|s| {
            let mut t = format!("{} [{}", s.addr, s.transport);
            if let Some(name) = &s.tls_name {
                let _ = write!(t, ", certificate for {name}");
            }
            if s.connections > 0 {
                let _ = write!(t, ", {} connection(s) opened", s.connections);
            }
            if s.tls_resumed > 0 {
                let _ = write!(t, ", {} resumed", s.tls_resumed);
            }
            if s.failures > 0 {
                let _ = write!(t, ", {} failures", s.failures);
            }
            t.push(']');
            t
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `42s`, `3m`, `2h` since the Unix time `at`.
fn ago(at: u64) -> String {
    let s = unix_now().saturating_sub(at);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// Renders the status as text.
pub(super) fn render(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "splitdns {} (pid {}), up {}s", s.version, s.pid, s.uptime_secs);
    let _ = writeln!(o, "listening   {}", s.listen.join(", "));
    let _ = writeln!(o, "state file  {}", s.state_file);
    if let Some(problem) = &s.state_file_problem {
        let _ = writeln!(o, "  problem   {problem}");
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "default upstream ({})", s.default_upstream.source);
    if !s.default_upstream.tls.is_empty() && s.default_upstream.tls != "off" {
        let _ = writeln!(o, "  tls       {} (default_upstream_tls)", s.default_upstream.tls);
    }
    let _ = writeln!(o, "  servers   {}", servers(&s.default_upstream.servers));
    if let Some(at) = s.default_upstream.changed_at {
        let _ = writeln!(o, "  changed   {} ago", ago(at));
    }
    if let Some(note) = &s.default_upstream.note {
        let _ = writeln!(o, "  note      {note}");
    }
    let c = &s.default_upstream.counters;
    let _ = writeln!(
        o,
        "  queries   {} (cache hits {}, forwarded {}, failed {}, in flight {}, shed {})",
        c.queries, c.cache_hits, c.forwards, c.failures, c.in_flight, c.shed
    );
    if let Some(sd) = &s.system_dns {
        if sd.points_at_agent {
            let _ = writeln!(o, "system DNS  points at splitdns ({})", sd.mode);
        } else {
            let _ =
                writeln!(o, "system DNS  NO LONGER points at splitdns ({}): run `splitdns system-dns status`", sd.mode);
        }
        for w in &sd.warnings {
            let _ = writeln!(o, "  warning   {w}");
        }
    }
    let _ = writeln!(o);
    if s.links.is_empty() {
        let _ = writeln!(o, "no links: every name goes to the default upstream");
    }
    for l in &s.links {
        let mut title = format!("link {}", l.id);
        if let Some(p) = &l.profile {
            let _ = write!(title, " (profile {p})");
        }
        if l.full_tunnel {
            title.push_str(" [full tunnel]");
        }
        if l.default_route {
            title.push_str(" [default route]");
        }
        let _ = writeln!(o, "{title}");
        let _ = writeln!(o, "  servers   {}", servers(&l.servers));
        if let Some(i) = &l.interface {
            let _ = writeln!(o, "  interface {i}");
        }
        if let Some(src) = &l.source {
            let _ = writeln!(o, "  source    {src}");
        }
        if l.domains.is_empty() {
            let _ = writeln!(o, "  domains   (none routed)");
        }
        for d in &l.domains {
            let validated: Vec<&str> = l
                .trust
                .iter()
                .filter(|t| t.zone == *d || t.zone.ends_with(&format!(".{d}")))
                .map(|t| t.zone.as_str())
                .collect();
            let dnssec = if validated.is_empty() {
                "DNSSEC: insecure, no trust anchor in use".to_string()
            } else {
                format!("DNSSEC: validated below {}", validated.join(", "))
            };
            let _ = writeln!(o, "  domain    {d}  → this link only; {dnssec}");
        }
        for r in &l.refused {
            let _ = writeln!(o, "  refused   {}: {}", r.domain, r.reason);
        }
        for a in &l.anchors {
            let _ = writeln!(o, "  anchor    {} [{}] {}", a.anchor, a.state, a.reason);
        }
        for t in &l.trust {
            let _ = writeln!(
                o,
                "  trust     {} [{}]{}",
                t.zone,
                t.state,
                t.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
            );
            if !t.keys.is_empty() {
                let _ = writeln!(o, "            keys {} (DNSKEY set signed by {:?})", t.keys.join(", "), t.signed_by);
            }
            if let Some(n) = t.next_check {
                let now = unix_now();
                let _ = writeln!(
                    o,
                    "            re-checked in {}s (at Unix time {n}, or at once after a failure)",
                    n.saturating_sub(now)
                );
            }
            let _ = writeln!(
                o,
                "            answers: {} secure ({} by the fast path), {} insecure, {} bogus",
                t.secure, t.fast_secure, t.insecure, t.bogus
            );
            let _ = writeln!(
                o,
                "            signatures: {} verified, {} from the signature cache",
                t.signature_checks, t.signature_cache_hits
            );
        }
        let c = &l.counters;
        let _ = writeln!(
            o,
            "  queries   {} (cache hits {}, forwarded {}, failed {}, abandoned {}, in flight {}, shed {})",
            c.queries, c.cache_hits, c.forwards, c.failures, c.abandoned, c.in_flight, c.shed
        );
        let _ = writeln!(o);
    }
    if !s.removed_links.is_empty() {
        let _ = writeln!(o, "recently removed links (newest first)");
        for r in &s.removed_links {
            let profile = r.profile.as_deref().map(|x| format!(" (profile {x})")).unwrap_or_default();
            let domains = if r.domains.is_empty() { "no domains".to_string() } else { r.domains.join(", ") };
            let _ = writeln!(
                o,
                "  {}{} {} ago: {}; {}; {} cached answer(s) flushed, {} anchor(s) dropped, {} query(ies) abandoned",
                r.id,
                profile,
                ago(r.at),
                r.detail,
                domains,
                r.cache_entries_flushed,
                r.anchors_dropped,
                r.queries_abandoned
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "whitelist   {} ({})", s.whitelist.path, s.whitelist.state);
    if !s.whitelist.entries.is_empty() {
        let _ = writeln!(o, "  domains   {}", s.whitelist.entries.join(", "));
    }
    for p in &s.whitelist.problems {
        let _ = writeln!(o, "  ignored   {p}");
    }
    if !s.pending_reviews.is_empty() {
        let _ = writeln!(o, "pending review ({}): run `splitdns whitelist review` to decide", s.pending_reviews.len());
        for p in &s.pending_reviews {
            let profile = p.profile.as_deref().map(|x| format!(" (profile {x})")).unwrap_or_default();
            let _ = writeln!(o, "  {} asked by link {}{}: {}", p.domain, p.link, profile, p.ds);
            if !p.reason.is_empty() {
                let _ = writeln!(o, "    waits because {}", p.reason);
            }
        }
    }
    let c = &s.counters;
    let _ = writeln!(
        o,
        "totals      {} queries, {} cache hits, {} misses, {} SERVFAIL, {} REFUSED, {} FORMERR",
        c.queries, c.cache_hits, c.cache_misses, c.servfail, c.refused, c.formerr
    );
    let _ = writeln!(
        o,
        "cache       {} entries, {} of {} bytes; {} failure(s) remembered",
        s.cache.entries, s.cache.bytes, s.cache.max_bytes, s.cache.failures
    );
    o
}
