//! What the control socket needs from the daemon: one trait, [`ControlApi`], that the daemon
//! implements. The control plane defines it and owns the wire types, so this module imports neither
//! the daemon nor the DNS side: requests come in here and go out through the trait, and the arrows
//! between the layers point one way (hooks and CLI → control → daemon → state → dns).

use crate::domain::DomainName;
use crate::state::LinkSpec;

use super::events::Event;
use super::protocol::{FlushResult, LinkDownResult, LinkUpResult, QueryResult, Status};

/// The daemon's operations, as the control socket's commands call them.
#[async_trait::async_trait]
pub(crate) trait ControlApi: Send + Sync + 'static {
    /// Everything `splitdns status` shows.
    fn status(&self) -> Status;

    /// Brings a link up (or replaces the link with the same id or profile) and waits a little for
    /// its trust anchors to be verified, so the reply says whether they are in force. `Err` says why
    /// nothing changed.
    async fn link_up(&self, link: LinkSpec) -> Result<LinkUpResult, String>;

    /// Tears a link down (RFC 8598 §5). An unknown id is not an error.
    fn link_down(&self, id: &str) -> LinkDownResult;

    /// Resolves `name` as a client with DO would, and says how it was answered. `Err`: the name
    /// or type does not parse.
    async fn query(&self, name: &str, qtype: &str) -> Result<QueryResult, String>;

    /// Drops cached answers for `domain` and below, or all of them.
    fn flush(&self, domain: Option<&DomainName>) -> FlushResult;

    /// Subscribes to the event stream: the lines to replay first, then the live events (see
    /// [`super::events`]). A receiver that lags is cut off with an `overflow` line.
    fn subscribe(&self) -> Subscription;
}

/// What a `watch` subscriber gets: the replay, then the live stream.
pub(crate) struct Subscription {
    pub replay: Vec<Event>,
    pub live: tokio::sync::broadcast::Receiver<Event>,
}
