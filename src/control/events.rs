//! The event stream: what `{"cmd":"watch"}` sends, one JSON object per line, as things happen.
//!
//! Every line is an [`Event`]: when (`at`, Unix time), what (`kind`), and the fields `status --json`
//! uses for the same thing (a link's `link` id and `profile`, a pending review's `domain`, `ds`,
//! `since` and `reason`, …). The first lines after connecting replay what still needs a person —
//! the pending reviews, the anchors that failed, a system that no longer points at the agent —
//! with `"replay":true`, then `{"kind":"replay-done"}`; from then on events arrive live. A
//! subscriber that falls behind the daemon's bounded buffer gets one last line,
//! `{"kind":"overflow"}`, and is disconnected: the daemon never waits for a reader.
//!
//! ```text
//! {"at":1796400000,"replay":true,"kind":"anchor-pending-review","link":"vpn0","profile":"corp","domain":"corp.example","ds":"corp.example. IN DS …","since":1796399000,"reason":"…"}
//! {"at":1796400000,"kind":"replay-done"}
//! {"at":1796400012,"kind":"link-up","link":"vpn1","profile":"lab","domains":["lab.example"],"servers":["10.2.0.53"],"replaced":[]}
//! {"at":1796400013,"kind":"anchor-in-use","link":"vpn1","profile":"lab","domain":"lab.example","keys":["KSK 5051 alg 13"]}
//! ```

use serde::{Deserialize, Serialize};

use super::protocol::{PendingReview, RemovalReason};
use crate::state::RefusalKind;

/// One line of the `watch` stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    /// When it happened (Unix time); for a replayed line, when it was replayed.
    pub at: u64,
    /// A line replayed at connect: something that still needs a person.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
    #[serde(flatten)]
    pub what: EventKind,
}

/// What happened. Serialised with `"kind"` naming the variant (kebab-case) and its fields inline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    /// A link came up (or replaced another of the same id or profile).
    LinkUp {
        link: String,
        profile: Option<String>,
        /// Split domains routed to it.
        domains: Vec<String>,
        servers: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
        /// Links it replaced.
        replaced: Vec<String>,
    },
    /// A link went away, and why.
    LinkDown {
        link: String,
        profile: Option<String>,
        reason: RemovalReason,
        /// The reason in words.
        detail: String,
        /// Split domains that were routed to it.
        domains: Vec<String>,
    },
    /// A split domain a link asked for is not routed to it.
    DomainRefused { link: String, profile: Option<String>, domain: String, refusal: RefusalKind, reason: String },
    /// A link offered a DNSSEC trust anchor (the whitelist decides what becomes of it).
    AnchorOffered { link: String, profile: Option<String>, domain: String, ds: String },
    /// An offered anchor waits for a person (`splitdns whitelist review`).
    AnchorPendingReview(PendingReview),
    /// An anchor is in force: its DNSKEY set is verified.
    AnchorInUse {
        link: String,
        profile: Option<String>,
        domain: String,
        /// The trusted DNSKEYs, e.g. `KSK 5051 alg 13`.
        keys: Vec<String>,
    },
    /// An approved anchor's DNSKEY set could not be verified: the zone fails closed.
    AnchorFailed { link: String, profile: Option<String>, domain: String, reason: String },
    /// An anchor in force was withdrawn while its link stays up (the whitelist changed).
    AnchorRevoked { link: String, profile: Option<String>, domain: String, reason: String },
    /// The whitelist was read again and is in force.
    WhitelistReloaded { path: String, entries: Vec<String> },
    /// The whitelist could not be used: the last good one stays in force.
    WhitelistRejected {
        path: String,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<usize>,
    },
    /// The default upstream changed (a network change, a config reload).
    UpstreamChanged {
        source: String,
        servers: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Cached answers were dropped on request.
    CacheFlushed { domain: Option<String>, flushed: usize },
    /// With `system-dns` enabled: the system points at the agent, or stopped doing so.
    SystemDns { mode: String, points_at_agent: bool, warnings: Vec<String> },
    /// The replayed lines are over; what follows is live.
    ReplayDone,
    /// This subscriber fell behind and is disconnected (reconnect to start over).
    Overflow { message: String },
}

impl EventKind {
    /// Stamps the event with the time now.
    pub fn now(self) -> Event {
        Event { at: crate::clock::unix_now(), replay: false, what: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_flat_with_a_kind() {
        let e = Event {
            at: 7,
            replay: true,
            what: EventKind::AnchorPendingReview(PendingReview {
                link: "vpn0".into(),
                profile: Some("corp".into()),
                domain: "corp.example".into(),
                ds: "corp.example. IN DS 1 13 2 AB".into(),
                since: 5,
                reason: "not on the whitelist".into(),
            }),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "anchor-pending-review");
        assert_eq!(v["replay"], true);
        assert_eq!(v["domain"], "corp.example");
        assert_eq!(v["since"], 5);
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);
        let live = serde_json::to_value(EventKind::ReplayDone.now()).unwrap();
        assert_eq!(live["kind"], "replay-done");
        assert!(live.get("replay").is_none(), "live events carry no replay field: {live}");
    }
}
