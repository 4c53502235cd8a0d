//! Feeding the agent: each VPN client's own vocabulary turned into one [`HookEvent`].
//!
//! A module per client reads exactly what that client provides — environment variables, arguments,
//! or an RFC 8598 CFG_REPLY payload ([`ikev2`]) — and says whether a connection came up (with its
//! servers, domains and anchors) or went down. The modules know nothing of DNS serving or of the
//! control socket: `splitdns hook KIND` (src/cli/hook.rs) sends the event to the daemon, and the
//! daemon applies the per-profile settings of its config file.

pub mod ikev2;
pub(crate) mod libreswan;
pub(crate) mod networkmanager;
pub(crate) mod openvpn;
pub(crate) mod strongswan;
pub(crate) mod wireguard;

use std::collections::HashMap;

use crate::domain::DomainName;
use crate::server_addr::ServerAddr;
use crate::state::LinkSpec;
use crate::trust::DsAnchor;

/// The environment a hook was started with (a snapshot, so tests can hand one in).
pub type Env = HashMap<String, String>;

/// What a VPN client reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookEvent {
    Up(LinkUp),
    Down { id: String },
}

/// A connection that came up, as its VPN client described it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkUp {
    /// The connection's id, from the client's own variables (stable for up and down).
    pub id: String,
    pub profile: Option<String>,
    pub servers: Vec<ServerAddr>,
    /// Domains the VPN says to route to its servers (RFC 8598 INTERNAL_DNS_DOMAIN, OpenVPN
    /// `DOMAIN-ROUTE` / `--dns … resolve-domains`, …).
    pub routing_domains: Vec<DomainName>,
    /// Domains the VPN offers as search domains (OpenVPN `DOMAIN`, `DOMAIN-SEARCH`, …). They become
    /// split domains only if the profile opts in (`search_domains = true`).
    pub search_domains: Vec<DomainName>,
    pub anchors: Vec<DsAnchor>,
    /// The tunnel interface, when the client names it.
    pub interface: Option<String>,
    /// The tunnel carries all traffic (RFC 8598 §2: split domains and anchors are then ignored).
    pub full_tunnel: bool,
}

impl From<LinkUp> for LinkSpec {
    /// The link a hook reports, as `link up` carries it: the VPN's routing domains become the
    /// split domains, its search domains stay apart for the profile's settings to decide.
    fn from(up: LinkUp) -> Self {
        LinkSpec {
            id: up.id,
            profile: up.profile,
            servers: up.servers,
            domains: up.routing_domains,
            search_domains: up.search_domains,
            anchors: up.anchors,
            interface: up.interface,
            source: None,
            full_tunnel: up.full_tunnel,
            default_route: false,
        }
    }
}

/// A hook environment or payload that cannot be used. Nothing is sent to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

impl HookError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Helpers shared by the client modules' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Env, HookError, HookEvent, LinkUp};
    use crate::domain::DomainName;

    /// `env` with `pairs` set (replacing existing values).
    pub fn with(mut env: Env, pairs: &[(&str, &str)]) -> Env {
        for (k, v) in pairs {
            env.insert(k.to_string(), v.to_string());
        }
        env
    }

    /// The up event in `result`, or a panic saying what came instead.
    pub fn expect_up(result: Result<Option<HookEvent>, HookError>) -> LinkUp {
        match result {
            Ok(Some(HookEvent::Up(up))) => up,
            other => panic!("expected an up event, got {other:?}"),
        }
    }

    /// The error message in `result`, or a panic saying what came instead.
    pub fn expect_err(result: Result<Option<HookEvent>, HookError>) -> String {
        match result {
            Err(e) => e.0,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    pub fn names(domains: &[DomainName]) -> Vec<&str> {
        domains.iter().map(DomainName::as_str).collect()
    }
}
