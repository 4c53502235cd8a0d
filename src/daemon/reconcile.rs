//! Reconciliation: links → anchors → validators → snapshot.
//!
//! After every change the agent recomputes, from the link table and the whitelist, which offered
//! anchors are in force, which nested split domains need a chain of trust through an enclosing
//! island ([`plan_trusts`], a pure function, unit-tested below), brings the running validators in
//! line with that plan ([`sync_trusts`]: unchanged ones keep their verified keys), and builds the
//! routing snapshot the listener reads ([`build_snapshot`]).

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::LowerName;
use tracing::{info, warn};

use super::agent_state::Inner;
use super::events::Events;
use crate::clock::unix_now;
use crate::control::events::EventKind;
use crate::control::protocol::PendingReview;
use crate::dns::snapshot::Snapshot;
use crate::dns::validate::ZoneTrust;
use crate::domain::DomainName;
use crate::state::{AnchorState, Resolved};
use crate::trust::DsAnchor;

/// The routing snapshot for the current table, routes and validators.
pub(super) fn build_snapshot(inner: &Inner) -> Snapshot {
    let resolved = inner.table.resolve();
    let mut domains = Vec::new();
    let mut default = inner.system.clone();
    for r in &resolved {
        let Some(route) = inner.routes.get(&r.link.seq) else {
            continue;
        };
        for d in &r.accepted {
            domains.push((d.clone(), route.clone()));
        }
        if r.is_default_route {
            default = route.clone();
        }
    }
    let trust = inner.trusts.values().map(|t| (t.lower.clone(), t.clone())).collect();
    Snapshot::new(domains, default, trust)
}

/// What the links' anchors and split domains call for: a pure decision, unit-tested below.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct TrustPlan {
    /// Anchored zones in force, by (link seq, zone), with their DS records; in claim order.
    pub(super) anchored: Vec<((u64, DomainName), Vec<DsAnchor>)>,
    /// Nested split domains inside another link's island, by (link seq, domain), with the key of
    /// the enclosing trust (anchored or itself derived) that the chain of trust runs through.
    pub(super) derived: Vec<((u64, DomainName), (u64, DomainName))>,
    /// Offered anchors that wait for a person: (link seq, DS, why).
    pub(super) pending: Vec<(u64, DsAnchor, String)>,
}

/// Decides which offered anchors are used and which nested split domains need a chain of trust
/// from an enclosing island. `permit` is the whitelist's word on one anchor given the zones already
/// accepted (owner link seq, zone): `Err` says why it waits for review.
pub(super) fn plan_trusts(
    resolved: &[Resolved],
    permit: impl Fn(&Resolved, &DsAnchor, &[(u64, DomainName)]) -> Result<(), String>,
) -> TrustPlan {
    let mut plan = TrustPlan::default();
    // Which link a name is routed to: the deepest accepted split domain covering it.
    let route_of = |name: &DomainName| {
        resolved
            .iter()
            .flat_map(|r| r.accepted.iter().map(move |d| (d, r.link.seq)))
            .filter(|(d, _)| name.is_at_or_under(d))
            .max_by_key(|(d, _)| d.label_count())
            .map(|(_, seq)| seq)
    };
    let mut accepted: Vec<(u64, DomainName)> = Vec::new();
    for r in resolved {
        for a in r.anchors.iter().filter(|a| a.state == AnchorState::Offered) {
            // An anchor speaks for names this link serves, never for a nested link's.
            if route_of(&a.anchor.owner) != Some(r.link.seq) {
                continue;
            }
            match permit(r, &a.anchor, &accepted) {
                Ok(()) => {
                    let key = (r.link.seq, a.anchor.owner.clone());
                    match plan.anchored.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, ds)) => ds.push(a.anchor.clone()),
                        None => {
                            plan.anchored.push((key.clone(), vec![a.anchor.clone()]));
                            accepted.push(key);
                        }
                    }
                }
                Err(why) => plan.pending.push((r.link.seq, a.anchor.clone(), why)),
            }
        }
    }
    // Every split domain inside an island of another link gets a chain of trust from it, shallow
    // domains first so that a deeper one can chain through a shallower derived one.
    let mut zones: Vec<(u64, DomainName)> = accepted;
    let mut domains: Vec<(u64, &DomainName)> =
        resolved.iter().flat_map(|r| r.accepted.iter().map(move |d| (r.link.seq, d))).collect();
    domains.sort_by_key(|(_, d)| d.label_count());
    for (seq, d) in domains {
        if zones.iter().any(|(s, z)| *s == seq && z == d) {
            continue;
        }
        let enclosing = zones.iter().filter(|(_, z)| d.is_at_or_under(z)).max_by_key(|(_, z)| z.label_count()).cloned();
        if let Some(parent) = enclosing
            && parent.0 != seq
        {
            let key = (seq, d.clone());
            plan.derived.push((key.clone(), parent));
            zones.push(key);
        }
    }
    plan
}

/// Brings the validators in line with the anchors offered for accepted domains and allowed by the
/// whitelist (RFC 8598 §6 W2, W7, W8; §8 S1), and with the nested split domains of other links
/// inside anchored zones (their chain of trust runs through the enclosing island): starts new ones,
/// keeps unchanged ones (and their verified keys), drops the rest. Anchors that are not
/// whitelisted are remembered as pending review. Returns the zones whose validation changed (their
/// cached answers must go).
pub(super) fn sync_trusts(inner: &mut Inner, events: &Events) -> Vec<LowerName> {
    let resolved = inner.table.resolve();
    let link_of = |seq: u64| resolved.iter().find(|r| r.link.seq == seq).map(|r| &r.link.spec);
    let whitelist = &inner.whitelist.list;
    let path = inner.whitelist.path.clone();
    let identity = |seq: u64| resolved.iter().find(|r| r.link.seq == seq).map(|r| r.link.spec.owner_identity());
    let plan = plan_trusts(&resolved, |link, anchor, accepted| {
        let profile = link.link.spec.profile.as_deref();
        let review = "it changes nothing until a person approves it (`splitdns whitelist review`, RFC 8598 §6)";
        if let Err(why) = whitelist.permits(&anchor.owner, profile) {
            return Err(format!("{why} ({}): {review}", path.display()));
        }
        // Approving an island approved the key of the VPN that anchored it, not any VPN's key for
        // names under it: another profile's anchor inside needs its own, bound approval.
        let mine = link.link.spec.owner_identity();
        let island = accepted
            .iter()
            .filter(|(seq, z)| anchor.owner.is_at_or_under(z) && identity(*seq).is_some_and(|o| o != mine))
            .max_by_key(|(_, z)| z.label_count());
        match island {
            Some((seq, z)) if whitelist.bound_to(&anchor.owner, profile).is_none() => Err(format!(
                "{} lies inside {z}, anchored by {}: approving {z} approved that VPN's key, not this one's; {review} \
                 for {mine}",
                anchor.owner,
                identity(*seq).map(|o| o.to_string()).unwrap_or_default(),
            )),
            _ => Ok(()),
        }
    });
    let now = unix_now();
    let mut pending = HashMap::new();
    for (seq, anchor, why) in &plan.pending {
        let key = (*seq, anchor.to_string());
        let since = inner.pending.get(&key).map(|(since, _)| *since).unwrap_or_else(|| {
            let link = link_of(*seq);
            warn!(
                link = ?link.map(|l| &l.id), profile = ?link.and_then(|l| l.profile.as_ref()), domain = %anchor.owner,
                ds = %anchor, %why, "trust anchor NOT used; pending review"
            );
            if let Some(l) = link {
                events.emit(EventKind::AnchorPendingReview(PendingReview {
                    link: l.id.clone(),
                    profile: l.profile.clone(),
                    domain: anchor.owner.to_string(),
                    ds: anchor.to_string(),
                    since: now,
                    reason: why.clone(),
                }));
            }
            now
        });
        pending.insert(key, (since, why.clone()));
    }
    inner.pending = pending;

    let lower = |(seq, d): &(u64, DomainName)| (*seq, d.to_lower_name());
    let mut changed = Vec::new();
    // Anchored zones first: derived ones chain through them.
    inner.trusts.retain(|key, t| {
        let keep =
            t.parent.is_none() && plan.anchored.iter().any(|(k, anchors)| lower(k) == *key && *anchors == t.anchors);
        if !keep && t.parent.is_none() {
            info!(zone = %t.zone, "trust anchor withdrawn: its answers are no longer validated");
            changed.push(key.1.clone());
            // Revoked while its link stays up (the whitelist changed); a link going away says so itself.
            if let Some(l) = link_of(key.0) {
                events.emit(EventKind::AnchorRevoked {
                    link: l.id.clone(),
                    profile: l.profile.clone(),
                    domain: t.domain.to_string(),
                    reason: "no longer approved by the whitelist: its answers are not validated".into(),
                });
            }
        }
        keep || t.parent.is_some()
    });
    for (key, anchors) in &plan.anchored {
        let k = lower(key);
        // Kept above if unchanged; a derived trust at the same name gives way to the approved anchor.
        if inner.trusts.get(&k).is_some_and(|t| t.parent.is_none()) {
            continue;
        }
        let Some(route) = inner.routes.get(&key.0) else { continue };
        info!(zone = %key.1, by = ?inner.whitelist.list.covers(&key.1), "trust anchor accepted: domain is whitelisted");
        changed.push(k.1.clone());
        let observer = link_of(key.0).map(|l| events.trust_observer(l.id.clone(), l.profile.clone()));
        inner.trusts.insert(k, ZoneTrust::start(key.1.clone(), anchors.clone(), route.clone(), observer));
    }
    // Derived trusts: kept while their enclosing trust is the very same one.
    let mut derived: HashMap<(u64, LowerName), Arc<ZoneTrust>> = HashMap::new();
    for (key, parent_key) in &plan.derived {
        let (k, pk) = (lower(key), lower(parent_key));
        let Some(parent) = derived.get(&pk).or_else(|| inner.trusts.get(&pk)).cloned() else { continue };
        let existing = inner.trusts.get(&k).filter(|t| t.parent.as_ref().is_some_and(|p| Arc::ptr_eq(p, &parent)));
        let trust = match existing {
            Some(t) => t.clone(),
            None => {
                let Some(route) = inner.routes.get(&key.0) else { continue };
                info!(zone = %key.1, island = %parent.domain, "nested split domain inside another link's island: its chain of trust runs through it");
                changed.push(k.1.clone());
                let observer = link_of(key.0).map(|l| events.trust_observer(l.id.clone(), l.profile.clone()));
                ZoneTrust::derive(key.1.clone(), route.clone(), parent, observer)
            }
        };
        derived.insert(k, trust);
    }
    inner.trusts.retain(|key, t| {
        let keep = t.parent.is_none() || derived.get(key).is_some_and(|d| Arc::ptr_eq(d, t));
        if !keep {
            changed.push(key.1.clone());
        }
        keep
    });
    inner.trusts.extend(derived);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LinkTable;
    use crate::state::link::tests::spec;

    fn ds(owner: &str) -> DsAnchor {
        format!("{owner}. IN DS 1 13 2 {}", "AB".repeat(32)).parse().unwrap()
    }

    fn d(s: &str) -> DomainName {
        s.parse().unwrap()
    }

    /// A table of links (id, domains, anchors), resolved.
    fn resolved(links: &[(&str, &[&str], &[&str])]) -> Vec<Resolved> {
        let mut t = LinkTable::default();
        for (i, (id, domains, anchors)) in links.iter().enumerate() {
            let mut s = spec(id, Some(id), domains);
            s.anchors = anchors.iter().map(|a| ds(a)).collect();
            t.upsert(s, i as u64, None).unwrap();
        }
        t.resolve()
    }

    fn all_permitted(_: &Resolved, _: &DsAnchor, _: &[(u64, DomainName)]) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn nested_split_domains_chain_through_the_enclosing_island() {
        let r = resolved(&[
            ("corp", &["corp.example"], &["corp.example"]),
            ("eng", &["eng.corp.example"], &[]),
            ("lab", &["lab.eng.corp.example"], &[]),
            ("other", &["other.example"], &[]),
        ]);
        let seq = |id: &str| r.iter().find(|x| x.link.spec.id == id).unwrap().link.seq;
        let plan = plan_trusts(&r, all_permitted);
        assert_eq!(plan.anchored, vec![((seq("corp"), d("corp.example")), vec![ds("corp.example")])]);
        assert_eq!(
            plan.derived,
            vec![
                ((seq("eng"), d("eng.corp.example")), (seq("corp"), d("corp.example"))),
                ((seq("lab"), d("lab.eng.corp.example")), (seq("eng"), d("eng.corp.example"))),
            ],
            "eng chains through corp's island, lab through eng's; other.example is outside any island"
        );
        assert!(plan.pending.is_empty());
    }

    #[test]
    fn a_nested_domain_of_the_same_link_or_with_its_own_anchor_needs_no_chain() {
        let r = resolved(&[
            ("corp", &["corp.example", "eng.corp.example"], &["corp.example"]),
            ("lab", &["lab.corp.example"], &["lab.corp.example"]),
        ]);
        let plan = plan_trusts(&r, all_permitted);
        assert!(plan.derived.is_empty(), "{:?}", plan.derived);
        assert_eq!(plan.anchored.len(), 2);
    }

    #[test]
    fn an_anchor_never_speaks_for_another_links_names_and_refusals_are_pending() {
        // corp offers a DS for eng.corp.example, which the eng link routes: not corp's to give.
        let r = resolved(&[
            ("corp", &["corp.example"], &["corp.example", "eng.corp.example"]),
            ("eng", &["eng.corp.example"], &[]),
        ]);
        let plan = plan_trusts(&r, all_permitted);
        assert_eq!(plan.anchored.len(), 1, "{:?}", plan.anchored);
        assert_eq!(plan.anchored[0].0.1, d("corp.example"));
        // The whitelist's refusal makes an anchor pending, with the reason, and no island.
        let plan = plan_trusts(&r, |_, a, _| Err(format!("{} not approved", a.owner)));
        assert!(plan.anchored.is_empty() && plan.derived.is_empty());
        assert_eq!(plan.pending.len(), 1);
        assert_eq!(plan.pending[0].2, "corp.example not approved");
    }

    #[test]
    fn the_permit_sees_the_zones_accepted_before_in_claim_order() {
        let r = resolved(&[
            ("corp", &["corp.example"], &["corp.example"]),
            ("eng", &["eng.corp.example"], &["eng.corp.example"]),
        ]);
        let corp = r[0].link.seq;
        let plan = plan_trusts(&r, |link, _, accepted| match accepted.iter().any(|(s, _)| *s != link.link.seq) {
            true => Err("inside another profile's island".into()),
            false => Ok(()),
        });
        assert_eq!(plan.anchored.len(), 1);
        assert_eq!(plan.anchored[0].0, (corp, d("corp.example")));
        assert_eq!(plan.pending.len(), 1);
        assert_eq!(plan.derived.len(), 1, "the refused link chains through the island instead");
    }
}
