//! The routing snapshot the listener reads: split domain → route, the default route, and the
//! anchored zones in force.
//!
//! A [`Snapshot`] is immutable: the control side builds a new one on every link change and swaps it
//! in atomically, so the query path never takes a lock to route. Lookups are by longest whole-label
//! suffix, straight from the lower-case wire name of a query.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name};
use hickory_proto::serialize::binary::BinEncodable;

use super::route::Route;
use super::validate::{TrustMap, ZoneTrust};
use super::wire;
use crate::domain::DomainName;

/// The immutable routing table: split domain → route, plus the default route.
#[derive(Debug)]
pub struct Snapshot {
    /// Keyed by the lower-case wire form of the domain, so a query's name can be routed straight
    /// from the packet.
    by_domain: HashMap<Box<[u8]>, (DomainName, Arc<Route>)>,
    default: Arc<Route>,
    max_labels: usize,
    /// Anchored zones (accepted trust anchors) and their validators.
    trust: TrustMap,
}

impl Snapshot {
    pub fn new(domains: Vec<(DomainName, Arc<Route>)>, default: Arc<Route>, trust: TrustMap) -> Self {
        let max_labels = domains.iter().map(|(d, _)| d.label_count()).max().unwrap_or(0);
        let by_domain = domains
            .into_iter()
            .map(|(d, r)| (d.to_lower_name().to_bytes().unwrap_or_default().into_boxed_slice(), (d, r)))
            .collect();
        Self { by_domain, default, max_labels, trust }
    }

    /// The deepest anchored zone that covers `name`, lies within the split domain `matched` and
    /// belongs to `route`. `None`: the name is not validated (insecure).
    pub fn trust_for(&self, name: &LowerName, matched: &DomainName, route: u64) -> Option<&Arc<ZoneTrust>> {
        if self.trust.is_empty() {
            return None;
        }
        let name: &Name = name;
        let labels = name.num_labels() as usize;
        for k in (matched.label_count()..=labels).rev() {
            let candidate = LowerName::new(&name.trim_to(k));
            if let Some(t) = self.trust.get(&candidate)
                && t.route_id() == route
            {
                return Some(t);
            }
        }
        None
    }

    /// Every anchored zone in force.
    pub fn trust(&self) -> &TrustMap {
        &self.trust
    }

    /// The route for `name` by longest whole-label suffix, with the split domain that matched
    /// (`None` means the default route).
    pub fn route(&self, name: &LowerName) -> (&Arc<Route>, Option<&DomainName>) {
        if self.by_domain.is_empty() {
            return (&self.default, None);
        }
        self.route_wire(&name.to_bytes().unwrap_or_default())
    }

    /// [`Snapshot::route`] for a record's owner name, encoded on the stack (no allocation); `None`
    /// only for a name longer than any message can carry.
    pub(crate) fn route_of(&self, name: &Name) -> Option<&Arc<Route>> {
        let mut buf = [0u8; wire::MAX_NAME];
        let n = wire::encode_lower(name, &mut buf)?;
        Some(self.route_wire(&buf[..n]).0)
    }

    /// [`Snapshot::route`] for a lower-case wire name (no allocation).
    pub fn route_wire(&self, name: &[u8]) -> (&Arc<Route>, Option<&DomainName>) {
        if !self.by_domain.is_empty() {
            let skip = wire::label_count(name).saturating_sub(self.max_labels);
            // Longest suffix first; the root never names a split domain.
            for suffix in wire::suffixes(name).skip(skip) {
                if let Some((d, r)) = self.by_domain.get(suffix) {
                    return (r, Some(d));
                }
            }
        }
        (&self.default, None)
    }

    pub fn default_route(&self) -> &Arc<Route> {
        &self.default
    }

    /// Every (domain, route id) pair, for diffing one snapshot against the next.
    pub fn assignments(&self) -> HashMap<DomainName, u64> {
        self.by_domain.values().map(|(d, r)| (d.clone(), r.id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::route::Owner;
    use crate::dns::upstream::{Bind, Timing, Upstream};
    use std::str::FromStr;

    fn route(id: u64) -> Arc<Route> {
        Arc::new(Route::new(
            id,
            Owner::Link { id: id.to_string() },
            Upstream::new(&[], Bind::default(), Timing::default()),
        ))
    }

    fn lookup(s: &Snapshot, name: &str) -> u64 {
        let lower = LowerName::from_str(name).unwrap();
        let by_wire = s.route_wire(&lower.to_bytes().unwrap()).0.id;
        assert_eq!(s.route(&lower).0.id, by_wire);
        by_wire
    }

    #[test]
    fn longest_whole_label_suffix_case_insensitive() {
        let s = Snapshot::new(
            vec![("corp.example".parse().unwrap(), route(1)), ("eng.corp.example".parse().unwrap(), route(2))],
            route(0),
            TrustMap::new(),
        );
        assert_eq!(lookup(&s, "corp.example."), 1);
        assert_eq!(lookup(&s, "A.B.Corp.Example."), 1);
        assert_eq!(lookup(&s, "eng.corp.example."), 2);
        assert_eq!(lookup(&s, "x.ENG.corp.example."), 2);
        assert_eq!(lookup(&s, "othercorp.example."), 0);
        assert_eq!(lookup(&s, "example."), 0);
        assert_eq!(lookup(&s, "."), 0);
        assert_eq!(lookup(&s, "corp.example.net."), 0);
    }

    fn name(s: &str) -> LowerName {
        LowerName::from_str(s).unwrap()
    }

    fn d(s: &str) -> DomainName {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn trust_for_never_applies_one_links_anchor_to_another() {
        let (corp, eng) = (route(1), route(2));
        let anchored =
            |zone: &str, r: &Arc<Route>| (d(zone).to_lower_name(), ZoneTrust::start(d(zone), vec![], r.clone(), None));
        // Link 1 owns corp.example and has anchors at its apex and at dev.eng.corp.example; link 2
        // owns eng.corp.example (nested) with its own anchor.
        let trust: TrustMap = [
            anchored("corp.example", &corp),
            anchored("eng.corp.example", &eng),
            anchored("dev.eng.corp.example", &corp),
        ]
        .into_iter()
        .collect();
        let s = Snapshot::new(
            vec![(d("corp.example"), corp.clone()), (d("eng.corp.example"), eng.clone())],
            route(0),
            trust,
        );
        assert_eq!(s.trust().len(), 3);
        let zone = |n: &str, matched: &str, route: u64| {
            s.trust_for(&name(n), &d(matched), route).map(|t| t.domain.to_string())
        };
        assert_eq!(zone("www.corp.example.", "corp.example", 1).as_deref(), Some("corp.example"));
        assert_eq!(zone("www.eng.corp.example.", "eng.corp.example", 2).as_deref(), Some("eng.corp.example"));
        // Link 1's deeper anchor lies over a name link 2 serves: link 2's own zone applies.
        assert_eq!(zone("www.dev.eng.corp.example.", "eng.corp.example", 2).as_deref(), Some("eng.corp.example"));
        // A route never gets another route's zone, not even at the matched domain.
        assert_eq!(zone("www.corp.example.", "corp.example", 2), None);
        assert_eq!(zone("www.corp.example.", "corp.example", 3), None);
        // Only zones within the matched split domain count: link 2's names never climb to corp.example.
        let only_outer: TrustMap = [anchored("corp.example", &corp)].into_iter().collect();
        let s = Snapshot::new(vec![(d("eng.corp.example"), corp.clone())], route(0), only_outer);
        assert_eq!(
            s.trust_for(&name("www.eng.corp.example."), &d("eng.corp.example"), 1).map(|t| t.domain.clone()),
            None
        );
    }

    #[test]
    fn assignments_follow_a_route_change() {
        let (one, two) = (route(1), route(2));
        let before = Snapshot::new(
            vec![(d("corp.example"), one.clone()), (d("lab.example"), one.clone())],
            route(0),
            TrustMap::new(),
        );
        // lab.example moves to link 2, corp.example stays; a new domain arrives with link 2.
        let after = Snapshot::new(
            vec![(d("corp.example"), one.clone()), (d("lab.example"), two.clone()), (d("new.example"), two.clone())],
            route(0),
            TrustMap::new(),
        );
        let (b, a) = (before.assignments(), after.assignments());
        assert_eq!(b, HashMap::from([(d("corp.example"), 1), (d("lab.example"), 1)]));
        assert_eq!(a, HashMap::from([(d("corp.example"), 1), (d("lab.example"), 2), (d("new.example"), 2)]));
        let mut moved: Vec<String> =
            a.iter().filter(|(dom, r)| b.get(*dom) != Some(r)).map(|(dom, _)| dom.to_string()).collect();
        moved.sort();
        assert_eq!(moved, ["lab.example", "new.example"]);
        assert!(Snapshot::new(vec![], route(0), TrustMap::new()).assignments().is_empty());
    }
}
