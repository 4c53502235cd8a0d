//! The status views: what `splitdns status` (and `link up`'s reply) shows, built from the agent's
//! state and from the `report()` methods of the DNS side's types (never their atomics).

use crate::control::protocol::{
    CacheStatus, Counters, LinkStatus, PendingReview, RouteCounters, ServerStatus, Status, Transport, TrustStatus,
    UpstreamStatus, ValidationState, WhitelistStatus,
};
use crate::dns::route::{Owner, Route};
use crate::dns::upstream::Asked;
use crate::dns::validate::{TrustPhase, TrustState};
use crate::state::{AnchorState, AnchorView};

use tokio::sync::broadcast;

use super::agent::Agent;
use super::agent_state::Inner;
use super::events;
use crate::control::events::{Event, EventKind};

impl Agent {
    /// The agent's word on each offered anchor: used (and how its verification stands) or not.
    pub(super) fn overlay(&self, inner: &Inner, seq: u64, views: &[AnchorView]) -> Vec<AnchorView> {
        views
            .iter()
            .map(|v| {
                if v.state != AnchorState::Offered {
                    return v.clone();
                }
                let pending = inner.pending.get(&(seq, v.anchor.to_string()));
                let by = inner.whitelist.list.covers(&v.anchor.owner);
                let (state, reason) = match (pending, by) {
                    (Some((_, why)), _) => (AnchorState::PendingReview, why.clone()),
                    (None, None) => (AnchorState::NotUsed, "not on the whitelist".into()),
                    (None, Some(by)) => {
                        match inner.trusts.get(&(seq, v.anchor.owner.to_lower_name())).map(|t| t.state()) {
                            Some(st) => match &*st {
                                TrustState::Pending => (AnchorState::Verifying, "fetching the DNSKEY set".into()),
                                TrustState::Verified { .. } => (
                                    AnchorState::InUse,
                                    format!("whitelisted by {by}; the DNSKEY set of {} is verified", v.anchor.owner),
                                ),
                                TrustState::Failed { reason, .. } => (AnchorState::Failed, reason.clone()),
                                TrustState::Insecure { reason, .. } => (AnchorState::NotUsed, reason.clone()),
                            },
                            None => (AnchorState::NotUsed, "no validator for this zone".into()),
                        }
                    }
                };
                AnchorView { anchor: v.anchor.clone(), state, reason }
            })
            .collect()
    }

    /// A new `watch` subscriber: the lines to replay (what still needs a person: pending reviews,
    /// anchors that failed, refused domains, a system that stopped pointing at the agent) and the
    /// live stream, taken under the lock so that no event falls between the two or into both.
    pub(crate) fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let inner = self.lock();
        let live = self.events.subscribe();
        let mut replay: Vec<EventKind> =
            pending_reviews(&inner).into_iter().map(EventKind::AnchorPendingReview).collect();
        for r in inner.table.resolve() {
            let (link, profile) = (&r.link.spec.id, &r.link.spec.profile);
            for refusal in &r.refused {
                replay.push(events::domain_refused(link, profile, refusal));
            }
            for ((_, _), t) in inner.trusts.iter().filter(|((seq, _), _)| *seq == r.link.seq) {
                let report = t.report();
                if report.phase == TrustPhase::Failed {
                    replay.push(events::anchor_failed(link.clone(), profile.clone(), &report));
                }
            }
        }
        if let Some(sd) = inner.system_dns.as_ref().filter(|s| !s.points_at_agent) {
            replay.push(events::system_dns(sd));
        }
        let mut lines: Vec<Event> = replay.into_iter().map(|k| Event { replay: true, ..k.now() }).collect();
        lines.push(EventKind::ReplayDone.now());
        (lines, live)
    }

    /// Everything `splitdns status` shows.
    pub(crate) fn status(&self) -> Status {
        let inner = self.lock();
        let snapshot = self.snapshot.load();
        let default = snapshot.default_route();
        let links = inner
            .table
            .resolve()
            .into_iter()
            .map(|r| {
                let route = inner.routes.get(&r.link.seq);
                LinkStatus {
                    id: r.link.spec.id.clone(),
                    profile: r.link.spec.profile.clone(),
                    up_since: r.link.up_since,
                    servers: route.map(|rt| servers_status(rt)).unwrap_or_default(),
                    interface: r.link.spec.interface.clone(),
                    source: r.link.spec.source.map(|s| s.to_string()),
                    full_tunnel: r.link.spec.full_tunnel,
                    default_route: r.is_default_route,
                    domains: r.accepted.iter().map(ToString::to_string).collect(),
                    refused: r.refused.clone(),
                    anchors: self.overlay(&inner, r.link.seq, &r.anchors),
                    trust: trust_status(&inner, r.link.seq),
                    counters: route.map(|rt| counters(rt)).unwrap_or_default(),
                }
            })
            .collect();
        let source = match &default.owner {
            Owner::System { source } => source.clone(),
            Owner::Link { id } => format!("full-tunnel link {id:?} (default route)"),
        };
        let s = self.stats.report();
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            listen: self.listen.lock().unwrap_or_else(|e| e.into_inner()).iter().map(ToString::to_string).collect(),
            state_file: self.store.path().display().to_string(),
            state_file_problem: inner.state_problem.text(),
            default_upstream: UpstreamStatus {
                source,
                servers: servers_status(default),
                counters: counters(default),
                tls: self.setup.default_tls.to_string(),
                changed_at: Some(inner.upstream_changed_at),
                note: inner.upstream_note.clone(),
            },
            links,
            counters: Counters {
                queries: s.queries,
                cache_hits: s.cache_hits,
                cache_misses: s.cache_misses,
                servfail: s.servfail,
                refused: s.refused,
                formerr: s.formerr,
            },
            cache: CacheStatus {
                entries: self.cache.len(),
                bytes: self.cache.weight(),
                max_bytes: self.cache.limits().max_bytes,
                failures: self.cache.failures_len(),
            },
            whitelist: WhitelistStatus {
                path: inner.whitelist.path.display().to_string(),
                state: inner.whitelist.state.clone(),
                entries: inner.whitelist.list.entries().iter().map(|e| e.domain.to_string()).collect(),
                problems: inner.whitelist.problems.clone(),
            },
            pending_reviews: pending_reviews(&inner),
            removed_links: inner.removed.iter().cloned().collect(),
            system_dns: inner.system_dns.clone(),
        }
    }
}

pub(super) fn pending_reviews(inner: &Inner) -> Vec<PendingReview> {
    let mut out = Vec::new();
    for link in inner.table.links() {
        for a in &link.spec.anchors {
            if let Some((since, why)) = inner.pending.get(&(link.seq, a.to_string())) {
                out.push(PendingReview {
                    link: link.spec.id.clone(),
                    profile: link.spec.profile.clone(),
                    domain: a.owner.to_string(),
                    ds: a.to_string(),
                    since: *since,
                    reason: why.clone(),
                });
            }
        }
    }
    out
}

fn trust_status(inner: &Inner, seq: u64) -> Vec<TrustStatus> {
    let mut out: Vec<TrustStatus> = inner
        .trusts
        .iter()
        .filter(|((s, _), _)| *s == seq)
        .map(|(_, t)| {
            let r = t.report();
            TrustStatus {
                zone: r.zone.to_string(),
                ds: r.ds.iter().map(ToString::to_string).collect(),
                state: match r.phase {
                    TrustPhase::Verifying => ValidationState::Verifying,
                    TrustPhase::Verified => ValidationState::Verified,
                    TrustPhase::Failed => ValidationState::Failed,
                    TrustPhase::Insecure => ValidationState::Insecure,
                },
                reason: r.reason,
                keys: r.keys,
                signed_by: r.signed_by,
                verified_at: r.since,
                next_check: r.next_check,
                secure: r.secure,
                fast_secure: r.fast_secure,
                signature_cache_hits: r.signature_cache_hits,
                signature_checks: r.signature_checks,
                insecure: r.insecure,
                bogus: r.bogus,
            }
        })
        .collect();
    out.sort_by(|a, b| a.zone.cmp(&b.zone));
    out
}

fn servers_status(route: &Route) -> Vec<ServerStatus> {
    route
        .upstream
        .report()
        .into_iter()
        .map(|s| ServerStatus {
            addr: s.addr.to_string(),
            transport: match s.asked {
                Asked::Udp => Transport::Udp,
                Asked::TcpFirst => Transport::TcpFirst,
                Asked::Tcp => Transport::Tcp,
                Asked::Tls => Transport::Tls,
                Asked::TlsOpportunistic => Transport::TlsOpportunistic,
                Asked::UdpTlsUnavailable => Transport::UdpTlsUnavailable,
            },
            tls_name: s.tls_name,
            answers_udp: s.answers_udp,
            answers_tcp: s.answers_tcp,
            failures: s.failures,
            connections: s.connections,
            tls_resumed: s.tls_resumed,
        })
        .collect()
}

fn counters(route: &Route) -> RouteCounters {
    let r = route.report();
    RouteCounters {
        queries: r.queries,
        cache_hits: r.cache_hits,
        forwards: r.forwards,
        failures: r.failures,
        abandoned: r.abandoned,
        in_flight: r.in_flight,
        shed: r.shed,
    }
}
