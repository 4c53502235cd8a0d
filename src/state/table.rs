//! The link table: which VPN connection owns which split domain.
//!
//! Pure data and decisions, no I/O: links come in through [`LinkTable::upsert`] and go out through
//! [`LinkTable::remove`]; [`LinkTable::resolve`] recomputes, from scratch and deterministically, who
//! owns every domain. Rules (RFC 8598 §2, §5, §8):
//! - a link with the same id, or the same profile, as an existing one replaces it (a reconnect);
//! - a domain belongs to the first link (in link-up order) that claims it; a later link of another
//!   profile is refused that domain, and the refusal is reported;
//! - a full-tunnel link's split domains and anchors are ignored; with `default_route` it becomes the
//!   default upstream (the most recent such link wins).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::link::{LinkSpec, SpecError};
use crate::domain::{DomainName, PublicSuffix};
use crate::trust::DsAnchor;

/// A link in the table: its spec plus when it came up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    #[serde(flatten)]
    pub spec: LinkSpec,
    /// Link-up order; unique for the life of the state file. Also names the link's runtime route.
    pub seq: u64,
    /// Seconds since the Unix epoch when the link came up.
    pub up_since: u64,
    /// Position in the queue of claims on domains. A reconnect of the same id or profile keeps the
    /// position of the link it replaces, so a refused rival never takes a domain over on reconnect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<u64>,
    /// Index of `spec.interface` when the link came up. Queries are bound to this index, not to
    /// the name: a new device that reuses the name (the next VPN's `tun0`) never carries them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
}

impl Link {
    /// The link's rank in domain ownership: lower claims first.
    pub fn claim_rank(&self) -> u64 {
        self.claim.unwrap_or(self.seq)
    }
}

/// The table of links, keyed by link id.
#[derive(Debug, Default)]
pub struct LinkTable {
    links: BTreeMap<String, Link>,
    next_seq: u64,
    /// Profiles whose links may claim a listed public suffix (`allow_public_suffix = true`).
    public_suffix_profiles: BTreeSet<String>,
}

/// What an upsert did.
#[derive(Debug)]
pub struct Upsert {
    /// Links that were replaced (same id or same profile).
    pub replaced: Vec<Link>,
    /// The new link.
    pub link: Link,
}

/// Why a domain of a link is not routed to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub domain: DomainName,
    /// What kind of refusal: another link owns the domain, it is a public suffix, or the link is a
    /// full tunnel.
    #[serde(default)]
    pub kind: RefusalKind,
    pub reason: String,
}

/// The kinds of [`Refusal`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalKind {
    /// Another connection already owns the domain (RFC 8598 §8).
    #[default]
    Conflict,
    /// The domain is a public suffix (`com`, `co.uk`): a split tunnel may not capture it.
    PublicSuffix,
    /// Full-tunnel links ignore split domains (RFC 8598 §2).
    FullTunnel,
}

/// The state of one offered trust anchor, with the reason in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorView {
    pub anchor: DsAnchor,
    pub state: AnchorState,
    pub reason: String,
}

/// Where an offered trust anchor stands. The link table decides between [`AnchorState::Offered`]
/// and [`AnchorState::Ignored`]; the daemon turns an offered one into one of the others. Serialised
/// as the words `status` has always shown (`"pending review"`, `"in use"`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AnchorState {
    /// At or under a split domain accepted for the link: the whitelist decides whether it is used.
    #[serde(rename = "offered")]
    Offered,
    /// Never used (a full tunnel, or outside the link's accepted split domains).
    #[serde(rename = "ignored")]
    Ignored,
    /// Waits for a person to approve it (`splitdns whitelist review`).
    #[serde(rename = "pending review")]
    PendingReview,
    /// Approved; the DNSKEY set is being fetched and verified.
    #[serde(rename = "verifying")]
    Verifying,
    /// Approved and verified: answers under the zone are validated with it.
    #[serde(rename = "in use")]
    InUse,
    /// Approved, but the DNSKEY set could not be verified: the zone fails closed.
    #[serde(rename = "failed")]
    Failed,
    /// Neither pending nor in force (e.g. the zone is an insecure delegation of another island).
    #[serde(rename = "not used")]
    NotUsed,
}

impl std::fmt::Display for AnchorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnchorState::Offered => "offered",
            AnchorState::Ignored => "ignored",
            AnchorState::PendingReview => "pending review",
            AnchorState::Verifying => "verifying",
            AnchorState::InUse => "in use",
            AnchorState::Failed => "failed",
            AnchorState::NotUsed => "not used",
        })
    }
}

/// One link as resolved against all others.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub link: Link,
    /// Split domains routed to this link.
    pub accepted: Vec<DomainName>,
    /// Split domains not routed to this link, with the reason.
    pub refused: Vec<Refusal>,
    pub anchors: Vec<AnchorView>,
    /// True when this link is the default upstream.
    pub is_default_route: bool,
}

impl LinkTable {
    /// Restores a table from persisted links (already validated by the caller).
    pub fn from_links(links: Vec<Link>) -> Self {
        let next_seq = links.iter().map(|l| l.seq + 1).max().unwrap_or(1);
        let links = links.into_iter().map(|l| (l.spec.id.clone(), l)).collect();
        Self { links, next_seq, public_suffix_profiles: BTreeSet::new() }
    }

    /// Sets the profiles whose links may claim a listed public suffix (config reload).
    pub fn allow_public_suffixes(&mut self, profiles: impl IntoIterator<Item = String>) {
        self.public_suffix_profiles = profiles.into_iter().collect();
    }

    /// Adds a link, replacing any link with the same id or the same profile. `ifindex` is the index
    /// of the link's interface, resolved by the caller.
    pub fn upsert(&mut self, spec: LinkSpec, now: u64, ifindex: Option<u32>) -> Result<Upsert, SpecError> {
        spec.validate()?;
        let mut replaced = Vec::new();
        let stale: Vec<String> = self
            .links
            .values()
            .filter(|l| l.spec.id == spec.id || (spec.profile.is_some() && l.spec.profile == spec.profile))
            .map(|l| l.spec.id.clone())
            .collect();
        for id in stale {
            if let Some(old) = self.links.remove(&id) {
                replaced.push(old);
            }
        }
        let seq = self.next_seq.max(1);
        self.next_seq = seq + 1;
        let claim = replaced.iter().map(Link::claim_rank).min();
        let link = Link { spec, seq, up_since: now, claim, ifindex };
        self.links.insert(link.spec.id.clone(), link.clone());
        Ok(Upsert { replaced, link })
    }

    /// Removes a link by id. `None` when there was no such link (not an error: a down event may
    /// arrive twice, or after a restart that already dropped the link).
    pub fn remove(&mut self, id: &str) -> Option<Link> {
        self.links.remove(id)
    }

    /// All links in link-up order.
    pub fn links(&self) -> Vec<&Link> {
        let mut v: Vec<&Link> = self.links.values().collect();
        v.sort_by_key(|l| l.seq);
        v
    }

    pub fn get(&self, id: &str) -> Option<&Link> {
        self.links.get(id)
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Recomputes ownership of every domain, in claim order.
    pub fn resolve(&self) -> Vec<Resolved> {
        let mut owners: HashMap<&DomainName, &Link> = HashMap::new();
        let default_route = self
            .links()
            .into_iter()
            .filter(|l| l.spec.full_tunnel && l.spec.default_route)
            .max_by_key(|l| l.seq)
            .map(|l| l.seq);
        let mut out = Vec::new();
        let mut by_claim = self.links();
        by_claim.sort_by_key(|l| (l.claim_rank(), l.seq));
        for link in by_claim {
            let mut accepted = Vec::new();
            let mut refused = Vec::new();
            for domain in &link.spec.domains {
                if accepted.contains(domain) {
                    continue;
                }
                if link.spec.full_tunnel {
                    refused.push(Refusal {
                        domain: domain.clone(),
                        kind: RefusalKind::FullTunnel,
                        reason: "full-tunnel link: split domains are ignored (RFC 8598 §2)".into(),
                    });
                    continue;
                }
                if domain.public_suffix() == PublicSuffix::Listed
                    && !link.spec.profile.as_ref().is_some_and(|p| self.public_suffix_profiles.contains(p))
                {
                    refused.push(Refusal {
                        domain: domain.clone(),
                        kind: RefusalKind::PublicSuffix,
                        reason: format!(
                            "{domain} is a public suffix (Public Suffix List): a split tunnel may not capture \
                             every name under it; if this VPN really owns it, set `allow_public_suffix = true` \
                             in its profile"
                        ),
                    });
                    continue;
                }
                match owners.get(domain) {
                    Some(owner) => refused.push(Refusal {
                        domain: domain.clone(),
                        kind: RefusalKind::Conflict,
                        reason: format!(
                            "already routed to link {:?} of {}; two unrelated connections may not \
                             share a split domain (RFC 8598 §8)",
                            owner.spec.id,
                            owner.spec.owner_identity()
                        ),
                    }),
                    None => {
                        owners.insert(domain, link);
                        accepted.push(domain.clone());
                    }
                }
            }
            let anchors = link.spec.anchors.iter().map(|a| anchor_view(link, a, &accepted)).collect();
            out.push(Resolved {
                link: link.clone(),
                accepted,
                refused,
                anchors,
                is_default_route: default_route == Some(link.seq),
            });
        }
        out
    }
}

fn anchor_view(link: &Link, anchor: &DsAnchor, accepted: &[DomainName]) -> AnchorView {
    let (state, reason) = if link.spec.full_tunnel {
        (AnchorState::Ignored, "full-tunnel link: trust anchors are ignored (RFC 8598 §2)".to_string())
    } else if !accepted.iter().any(|d| anchor.owner.is_at_or_under(d)) {
        (
            AnchorState::Ignored,
            format!("{} is not at or under a split domain accepted for this link (RFC 8598 §6)", anchor.owner),
        )
    } else {
        (AnchorState::Offered, format!("{} is at or under an accepted split domain", anchor.owner))
    };
    AnchorView { anchor: anchor.clone(), state, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::link::tests::spec;

    fn accepted(r: &[Resolved], id: &str) -> Vec<String> {
        r.iter()
            .find(|x| x.link.spec.id == id)
            .map(|x| x.accepted.iter().map(|d| d.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn second_profile_is_refused_same_profile_replaces() {
        let mut t = LinkTable::default();
        t.upsert(spec("a", Some("corp"), &["corp.example"]), 1, None).unwrap();
        t.upsert(spec("b", Some("other"), &["corp.example", "lab.example"]), 2, None).unwrap();
        let r = t.resolve();
        assert_eq!(accepted(&r, "a"), ["corp.example"]);
        assert_eq!(accepted(&r, "b"), ["lab.example"]);
        let b = r.iter().find(|x| x.link.spec.id == "b").unwrap();
        assert_eq!(b.refused.len(), 1);
        assert!(b.refused[0].reason.contains("\"a\""), "{}", b.refused[0].reason);

        // Same profile, new id: a reconnect replaces the old link.
        let up = t.upsert(spec("a2", Some("corp"), &["corp.example"]), 3, None).unwrap();
        assert_eq!(up.replaced.len(), 1);
        assert_eq!(up.replaced[0].spec.id, "a");
        assert!(t.get("a").is_none());
        // The reconnect keeps a's place in line: b does not take corp.example over.
        let r = t.resolve();
        assert_eq!(accepted(&r, "a2"), ["corp.example"]);
        assert_eq!(accepted(&r, "b"), ["lab.example"]);
        // Once the profile really goes away, b gets the domain.
        t.remove("a2");
        assert_eq!(accepted(&t.resolve(), "b"), ["corp.example", "lab.example"]);
    }

    #[test]
    fn links_without_profile_do_not_share() {
        let mut t = LinkTable::default();
        t.upsert(spec("a", None, &["corp.example"]), 1, None).unwrap();
        t.upsert(spec("b", None, &["corp.example"]), 2, None).unwrap();
        let r = t.resolve();
        assert_eq!(accepted(&r, "a"), ["corp.example"]);
        assert!(accepted(&r, "b").is_empty());
        // When a goes away, b gets the domain.
        t.remove("a");
        assert_eq!(accepted(&t.resolve(), "b"), ["corp.example"]);
    }

    #[test]
    fn full_tunnel_ignores_domains_and_anchors() {
        let mut t = LinkTable::default();
        let mut s = spec("ft", None, &["corp.example"]);
        s.full_tunnel = true;
        s.default_route = true;
        s.anchors = vec![format!("corp.example. IN DS 1 13 2 {}", "AB".repeat(32)).parse().unwrap()];
        t.upsert(s, 1, None).unwrap();
        let r = t.resolve();
        assert!(r[0].accepted.is_empty());
        assert_eq!(r[0].anchors[0].state, AnchorState::Ignored);
        assert!(r[0].is_default_route);
    }

    #[test]
    fn anchor_outside_accepted_domains_is_ignored() {
        let mut t = LinkTable::default();
        let mut s = spec("a", None, &["corp.example"]);
        s.anchors = vec![
            format!("corp.example. IN DS 1 13 2 {}", "AB".repeat(32)).parse().unwrap(),
            format!("other.example. IN DS 1 13 2 {}", "AB".repeat(32)).parse().unwrap(),
        ];
        t.upsert(s, 1, None).unwrap();
        let r = t.resolve();
        assert_eq!(r[0].anchors[0].state, AnchorState::Offered);
        assert_eq!(r[0].anchors[1].state, AnchorState::Ignored);
    }

    #[test]
    fn anchor_states_serialise_as_the_words_status_always_showed() {
        let words = [
            (AnchorState::Offered, "offered"),
            (AnchorState::Ignored, "ignored"),
            (AnchorState::PendingReview, "pending review"),
            (AnchorState::Verifying, "verifying"),
            (AnchorState::InUse, "in use"),
            (AnchorState::Failed, "failed"),
            (AnchorState::NotUsed, "not used"),
        ];
        for (state, word) in words {
            assert_eq!(serde_json::to_value(state).unwrap(), word);
            assert_eq!(serde_json::from_value::<AnchorState>(word.into()).unwrap(), state);
            assert_eq!(state.to_string(), word);
        }
    }

    #[test]
    fn public_suffixes_are_refused_unless_the_profile_allows_them() {
        let mut t = LinkTable::default();
        t.upsert(spec("a", Some("corp"), &["com", "co.uk", "internal", "corp.example", "home.arpa"]), 1, None).unwrap();
        let r = t.resolve();
        assert_eq!(accepted(&r, "a"), ["internal", "corp.example", "home.arpa"]);
        let kinds: Vec<(String, RefusalKind)> = r[0].refused.iter().map(|x| (x.domain.to_string(), x.kind)).collect();
        assert_eq!(
            kinds,
            [("com".to_string(), RefusalKind::PublicSuffix), ("co.uk".to_string(), RefusalKind::PublicSuffix)]
        );
        assert!(r[0].refused[0].reason.contains("allow_public_suffix"), "{}", r[0].refused[0].reason);
        // A refused public suffix is not an owned domain: another link may not take it either.
        t.upsert(spec("b", Some("other"), &["com"]), 2, None).unwrap();
        assert!(accepted(&t.resolve(), "b").is_empty());
        // The profile's explicit permission.
        t.allow_public_suffixes(["corp".to_string()]);
        assert_eq!(accepted(&t.resolve(), "a"), ["com", "co.uk", "internal", "corp.example", "home.arpa"]);
    }

    fn saved(id: &str, domains: &[&str], seq: u64) -> Link {
        Link { spec: spec(id, Some(id), domains), seq, up_since: 1, claim: None, ifindex: None }
    }

    fn seqs(t: &LinkTable) -> Vec<(String, u64)> {
        t.links().iter().map(|l| (l.spec.id.clone(), l.seq)).collect()
    }

    #[test]
    fn a_link_up_after_a_restore_never_reuses_a_saved_number() {
        // The sequence number names the link's route and cache partition: a new link that reused a
        // restored link's number would take over that link's route. Saved out of order, and the
        // highest number on the alphabetically first id.
        let mut t =
            LinkTable::from_links(vec![saved("zeta", &["zeta.example"], 3), saved("alpha", &["corp.example"], 7)]);
        assert_eq!(seqs(&t), [("zeta".to_string(), 3), ("alpha".to_string(), 7)]);
        let up = t.upsert(spec("new", Some("new"), &["corp.example", "new.example"]), 2, None).unwrap();
        assert!(up.replaced.is_empty());
        assert_eq!(up.link.seq, 8, "after the highest saved number");
        assert_eq!(seqs(&t), [("zeta".to_string(), 3), ("alpha".to_string(), 7), ("new".to_string(), 8)]);
        // The restored link keeps its domain against the newcomer.
        let r = t.resolve();
        assert_eq!(accepted(&r, "alpha"), ["corp.example"]);
        assert_eq!(accepted(&r, "new"), ["new.example"]);

        // A single restored link numbered 1 (the first number ever given).
        let mut t = LinkTable::from_links(vec![saved("a", &["corp.example"], 1)]);
        assert_eq!(t.upsert(spec("b", Some("b"), &["b.example"]), 2, None).unwrap().link.seq, 2);
        // Nothing saved: numbering starts at 1.
        let mut t = LinkTable::from_links(vec![]);
        assert!(t.is_empty());
        assert_eq!(t.upsert(spec("a", None, &["corp.example"]), 1, None).unwrap().link.seq, 1);
        assert!(!t.is_empty());
    }

    #[test]
    fn numbers_follow_link_up_order_not_ids() {
        let mut t = LinkTable::default();
        for (i, id) in ["zeta", "alpha", "mid"].into_iter().enumerate() {
            let up = t.upsert(spec(id, None, &["corp.example"]), i as u64, None).unwrap();
            assert_eq!(up.link.seq, i as u64 + 1, "{id}");
        }
        assert_eq!(seqs(&t), [("zeta".to_string(), 1), ("alpha".to_string(), 2), ("mid".to_string(), 3)]);
        // The first link up owns the domain, whatever its id sorts as.
        let r = t.resolve();
        assert_eq!(accepted(&r, "zeta"), ["corp.example"]);
        assert!(accepted(&r, "alpha").is_empty() && accepted(&r, "mid").is_empty());
        // A reconnect (same id) gets a new number, never one in use.
        let up = t.upsert(spec("alpha", None, &["alpha.example"]), 9, None).unwrap();
        assert_eq!(up.link.seq, 4);
        assert_eq!(up.replaced.iter().map(|l| l.seq).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_reconnect_with_the_same_id_replaces_the_old_link() {
        let mut t = LinkTable::default();
        t.upsert(spec("vpn", None, &["corp.example"]), 1, None).unwrap();
        let up = t.upsert(spec("vpn", None, &["lab.example"]), 2, None).unwrap();
        // The caller retires the old link's route by the replaced link's number.
        assert_eq!(up.replaced.len(), 1, "the old link must be reported so its route is retired");
        assert_eq!((up.replaced[0].seq, up.link.seq), (1, 2));
        assert_eq!(t.links().len(), 1);
        assert_eq!(accepted(&t.resolve(), "vpn"), ["lab.example"]);
    }

    #[test]
    fn only_a_full_tunnel_that_asks_for_it_is_the_default_route() {
        let mut t = LinkTable::default();
        // A full tunnel without default_route leaves the default upstream alone.
        let mut ft = spec("ft", None, &[]);
        ft.full_tunnel = true;
        t.upsert(ft, 1, None).unwrap();
        t.upsert(spec("split", None, &["corp.example"]), 2, None).unwrap();
        let defaults = |t: &LinkTable| -> Vec<String> {
            t.resolve().into_iter().filter(|r| r.is_default_route).map(|r| r.link.spec.id).collect()
        };
        assert!(defaults(&t).is_empty(), "{:?}", defaults(&t));
        assert_eq!(accepted(&t.resolve(), "split"), ["corp.example"]);
        // Two full tunnels that ask: the most recent wins.
        for id in ["ft-a", "ft-b"] {
            let mut s = spec(id, None, &[]);
            s.full_tunnel = true;
            s.default_route = true;
            t.upsert(s, 3, None).unwrap();
        }
        assert_eq!(defaults(&t), ["ft-b"]);
        t.remove("ft-b");
        assert_eq!(defaults(&t), ["ft-a"]);
    }

    #[test]
    fn invalid_spec_changes_nothing() {
        let mut t = LinkTable::default();
        t.upsert(spec("a", Some("p"), &["corp.example"]), 1, None).unwrap();
        let mut bad = spec("b", Some("p"), &["corp.example"]);
        bad.servers.clear();
        assert!(t.upsert(bad, 2, None).is_err());
        assert!(t.get("a").is_some(), "a refused spec of the same profile must not evict the old link");
    }
}
