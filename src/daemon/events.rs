//! The daemon's event broadcast: every change worth a line on the `watch` stream goes out here.
//!
//! One bounded broadcast channel: sending never waits, and a subscriber that falls behind by more
//! than [`CAPACITY`] events finds out (tokio's `Lagged`) and is cut off by the control socket with
//! an `overflow` line. Events are sent while the agent holds its lock, and subscribers join under
//! that lock too, so a subscriber's replay and its live events neither overlap nor leave a gap.

use tokio::sync::broadcast;

use crate::control::events::{Event, EventKind};
use crate::control::protocol::SystemDnsStatus;
use crate::dns::validate::{Observer, TrustPhase, TrustReport};
use crate::state::Refusal;

/// Events a subscriber may fall behind by before it is cut off.
pub(crate) const CAPACITY: usize = 256;

/// The sending end of the event stream.
pub(crate) struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self { tx: broadcast::channel(CAPACITY).0 }
    }
}

impl Events {
    /// Sends one event to every subscriber (none is fine).
    pub(crate) fn emit(&self, kind: EventKind) {
        let _ = self.tx.send(kind.now());
    }

    /// A new subscriber's receiving end.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// An observer for the validator of `domain` on link `link`: its verified and failed phases
    /// become `anchor-in-use` and `anchor-failed` events.
    pub(crate) fn trust_observer(&self, link: String, profile: Option<String>) -> Observer {
        let tx = self.tx.clone();
        std::sync::Arc::new(move |report| {
            let (link, profile, domain) = (link.clone(), profile.clone(), report.zone.to_string());
            let kind = match report.phase {
                TrustPhase::Verified => EventKind::AnchorInUse { link, profile, domain, keys: report.keys.clone() },
                TrustPhase::Failed => anchor_failed(link, profile, report),
                TrustPhase::Verifying | TrustPhase::Insecure => return,
            };
            let _ = tx.send(kind.now());
        })
    }
}

/// A split domain of link `link` is not routed to it, and why. (Live at link-up, replayed on connect.)
pub(super) fn domain_refused(link: &str, profile: &Option<String>, refusal: &Refusal) -> EventKind {
    EventKind::DomainRefused {
        link: link.to_string(),
        profile: profile.clone(),
        domain: refusal.domain.to_string(),
        refusal: refusal.kind,
        reason: refusal.reason.clone(),
    }
}

/// An anchor of link `link` whose key set could not be verified. (Live from its validator,
/// replayed on connect.)
pub(super) fn anchor_failed(link: String, profile: Option<String>, report: &TrustReport) -> EventKind {
    EventKind::AnchorFailed {
        link,
        profile,
        domain: report.zone.to_string(),
        reason: report.reason.clone().unwrap_or_default(),
    }
}

/// Whether the system points at the agent. (Live when it changes, replayed while it does not.)
pub(super) fn system_dns(s: &SystemDnsStatus) -> EventKind {
    EventKind::SystemDns { mode: s.mode.clone(), points_at_agent: s.points_at_agent, warnings: s.warnings.clone() }
}
