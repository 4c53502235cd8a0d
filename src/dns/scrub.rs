//! Answers are scrubbed by route.
//!
//! A route's servers speak only for that route's names: a link's servers for its split domains, the
//! public upstream for everything else. From every upstream answer, records whose owner name is
//! routed elsewhere are removed before anything is judged or cached (a public answer cannot plant
//! `cnametarget.corp.example A 6.6.6.6`, a link cannot plant names of another link or of the public
//! side). A CNAME chain that crosses into another route is then followed by asking that route, as
//! Unbound does with its forward zones; see [`chain_exit`].

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::snapshot::Snapshot;

/// How many routes a CNAME chain may cross.
pub(crate) const MAX_CROSSINGS: usize = 8;

/// Removes from `msg` every record whose owner is routed to another route than `route`. Returns
/// how many were removed.
pub(crate) fn scrub(msg: &mut Message, snapshot: &Snapshot, route: u64) -> usize {
    // Most records share a few owner names (the question, an NSEC3 or two): remember the last.
    let mut last: Option<(Name, bool)> = None;
    let mut owned = move |r: &Record| {
        if let Some((name, ok)) = &last
            && *name == r.name
        {
            return *ok;
        }
        let ok = snapshot.route_of(&r.name).is_some_and(|r| r.id == route);
        last = Some((r.name.clone(), ok));
        ok
    };
    let before = msg.answers.len() + msg.authorities.len() + msg.additionals.len();
    msg.answers.retain(&mut owned);
    msg.authorities.retain(&mut owned);
    msg.additionals.retain(&mut owned);
    before - (msg.answers.len() + msg.authorities.len() + msg.additionals.len())
}

/// Where the answer's CNAME chain leaves `route`: the target name to ask of its own route, or
/// `None` when the answer is complete (no chain, the chain ends in the asked type, or it ends at a
/// name of this same route, which the server did not chase and is not asked again).
pub(crate) fn chain_exit(
    answers: &[Record],
    qname: &Name,
    qtype: RecordType,
    snapshot: &Snapshot,
    route: u64,
) -> Option<Name> {
    if matches!(qtype, RecordType::CNAME | RecordType::ANY | RecordType::RRSIG) {
        return None;
    }
    let mut name = qname.clone();
    for _ in 0..=answers.len() {
        if answers.iter().any(|r| r.record_type() == qtype && r.name == name) {
            return None;
        }
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name == name => Some(target.0.clone()),
            _ => None,
        });
        match next {
            Some(target) => name = target,
            None => break,
        }
    }
    if name == *qname || snapshot.route_of(&name).is_some_and(|r| r.id == route) {
        return None;
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::Arc;

    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, CNAME};

    use super::*;
    use crate::dns::route::{Owner, Route};
    use crate::dns::upstream::{Bind, Timing, Upstream};
    use crate::dns::validate::TrustMap;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn route(id: u64) -> Arc<Route> {
        Arc::new(Route::new(
            id,
            Owner::Link { id: id.to_string() },
            Upstream::new(&[], Bind::default(), Timing::default()),
        ))
    }

    fn snapshot() -> Snapshot {
        Snapshot::new(
            vec![("corp.example".parse().unwrap(), route(1)), ("eng.corp.example".parse().unwrap(), route(2))],
            route(0),
            TrustMap::new(),
        )
    }

    fn a(owner: &str) -> Record {
        Record::from_rdata(name(owner), 60, RData::A(A::new(6, 6, 6, 6)))
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 60, RData::CNAME(CNAME(name(target))))
    }

    #[test]
    fn records_of_other_routes_are_removed() {
        let s = snapshot();
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(cname("alias.pub.test.", "cnametarget.corp.example."));
        m.add_answer(a("cnametarget.corp.example."));
        m.add_additional(a("ns.eng.corp.example."));
        m.add_additional(a("ns.pub.test."));
        assert_eq!(scrub(&mut m, &s, 0), 2, "the public side may not speak for corp names");
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.additionals[0].name, name("ns.pub.test."));
        // A link may not speak for the nested link's names, nor for public ones.
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(cname("www.corp.example.", "www.eng.corp.example."));
        m.add_answer(a("www.eng.corp.example."));
        m.add_answer(a("Www.Corp.Example."));
        m.add_answer(a("www.pub.test."));
        assert_eq!(scrub(&mut m, &s, 1), 2);
        assert_eq!(m.answers.len(), 2);
    }

    #[test]
    fn a_chain_into_another_route_is_followed_there() {
        let s = snapshot();
        let q = name("alias.pub.test.");
        let answers = vec![cname("alias.pub.test.", "cnametarget.corp.example.")];
        assert_eq!(chain_exit(&answers, &q, RecordType::A, &s, 0), Some(name("cnametarget.corp.example.")));
        // Through several CNAMEs of the same route first.
        let answers = vec![cname("alias.pub.test.", "b.pub.test."), cname("b.pub.test.", "x.eng.corp.example.")];
        assert_eq!(chain_exit(&answers, &q, RecordType::A, &s, 0), Some(name("x.eng.corp.example.")));
        // Complete: the chain ends in the asked type.
        let answers = vec![cname("alias.pub.test.", "b.pub.test."), a("b.pub.test.")];
        assert_eq!(chain_exit(&answers, &q, RecordType::A, &s, 0), None);
        // Ends in the same route: not asked again. Asking for the CNAME itself: nothing to follow.
        let answers = vec![cname("alias.pub.test.", "other.pub.test.")];
        assert_eq!(chain_exit(&answers, &q, RecordType::A, &s, 0), None);
        let answers = vec![cname("alias.pub.test.", "cnametarget.corp.example.")];
        assert_eq!(chain_exit(&answers, &q, RecordType::CNAME, &s, 0), None);
        // A loop ends.
        let answers = vec![cname("alias.pub.test.", "b.pub.test."), cname("b.pub.test.", "alias.pub.test.")];
        assert_eq!(chain_exit(&answers, &q, RecordType::A, &s, 0), None);
    }
}
