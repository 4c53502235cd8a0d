//! The daemon's side of the control socket: [`DaemonApi`] implements the control plane's
//! [`ControlApi`] with the agent (links, status) and the DNS handler (queries, flushes). The control
//! module knows only the trait, so nothing there reaches back up into the daemon.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::agent::Agent;
use crate::control::api::{ControlApi, Subscription};
use crate::control::events::EventKind;
use crate::control::protocol::{Dnssec, FlushResult, LinkDownResult, LinkUpResult, QueryResult, Status};
use crate::dns::handler::Handler;
use crate::dns::upstream::QueryFlags;
use crate::domain::DomainName;
use crate::state::LinkSpec;

/// How long `link up` waits for the link's trust anchors to be verified before replying.
const SETTLE: Duration = Duration::from_secs(3);

/// The running daemon as the control socket sees it.
pub(crate) struct DaemonApi {
    agent: Arc<Agent>,
    handler: Handler,
}

impl DaemonApi {
    pub(crate) fn new(agent: Arc<Agent>, handler: Handler) -> Self {
        Self { agent, handler }
    }
}

#[async_trait::async_trait]
impl ControlApi for DaemonApi {
    fn status(&self) -> Status {
        self.agent.status()
    }

    async fn link_up(&self, link: LinkSpec) -> Result<LinkUpResult, String> {
        self.agent.link_up_settled(link, SETTLE).await.map_err(|e| e.to_string())
    }

    fn link_down(&self, id: &str) -> LinkDownResult {
        self.agent.link_down(id)
    }

    /// Resolves like a client with DO set, and reports the path the answer took.
    async fn query(&self, name: &str, qtype: &str) -> Result<QueryResult, String> {
        let qname = Name::from_str(name).map_err(|e| format!("{name:?} is not a domain name: {e}"))?;
        let qname =
            if qname.is_fqdn() { qname } else { Name::from_str(&format!("{name}.")).map_err(|e| e.to_string())? };
        let rtype =
            RecordType::from_str(&qtype.to_ascii_uppercase()).map_err(|_| format!("{qtype:?} is not a record type"))?;
        let flags = QueryFlags { dnssec_ok: true, checking_disabled: false };
        let out = self.handler.resolve(&Query::query(qname.clone(), rtype), flags).await;
        let path = out.path.clone();
        let dnssec = if out.secure {
            Dnssec::Secure
        } else if out.rcode == ResponseCode::ServFail && path.as_ref().is_some_and(|p| p.validated_zone.is_some()) {
            Dnssec::Bogus
        } else {
            Dnssec::Insecure
        };
        Ok(QueryResult {
            name: qname.to_string(),
            qtype: rtype.to_string(),
            rcode: out.rcode.to_string(),
            answers: out
                .answers
                .iter()
                .filter(|r| r.record_type() != RecordType::RRSIG)
                .map(ToString::to_string)
                .collect(),
            route: path.as_ref().map(|p| p.route.clone()).unwrap_or_else(|| "none".into()),
            split_domain: path.as_ref().and_then(|p| p.split_domain.clone()),
            dnssec,
            validated_zone: path.as_ref().and_then(|p| p.validated_zone.clone()),
            cached: path.as_ref().is_some_and(|p| p.cached),
            error: out.ede.map(|(code, text)| format!("EDE {code}: {text}")),
        })
    }

    fn flush(&self, domain: Option<&DomainName>) -> FlushResult {
        let flushed = self.handler.flush(domain);
        let domain = domain.map(ToString::to_string);
        self.agent.events.emit(EventKind::CacheFlushed { domain: domain.clone(), flushed });
        FlushResult { domain, flushed }
    }

    fn subscribe(&self) -> Subscription {
        let (replay, live) = self.agent.subscribe();
        Subscription { replay, live }
    }
}
