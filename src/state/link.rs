//! A link: one VPN connection as a hook describes it.
//!
//! [`LinkSpec`] is what `link up` carries over the control socket and what is persisted in the state
//! directory. It is validated here, before the link table sees it, so that a malformed hook call is
//! refused with a precise message and changes nothing.
//!
//! A server must be one machine that can answer: the unspecified address (`0.0.0.0`, `::`), the
//! broadcast address and multicast addresses are refused ([`unusable_server`]), and so is the
//! daemon itself ([`own_address`]: forwarding to it would send each query round until it timed
//! out). The config file's `upstream` servers get the same checks.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::domain::DomainName;
use crate::server_addr::ServerAddr;
use crate::trust::DsAnchor;

/// Limits that keep a hostile or buggy hook from growing the daemon without bound.
pub const MAX_ID_LEN: usize = 200;
pub const MAX_SERVERS: usize = 16;
pub const MAX_DOMAINS: usize = 256;
pub const MAX_ANCHORS: usize = 64;

/// Why `addr` cannot be a DNS server, whoever gives it: the unspecified address, the broadcast
/// address or a multicast address (IPv4-mapped IPv6 addresses count as their IPv4 address).
pub fn unusable_server(addr: SocketAddr) -> Option<&'static str> {
    let ip = addr.ip().to_canonical();
    if ip.is_unspecified() {
        Some("the unspecified address (0.0.0.0 or ::), which names no server")
    } else if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        Some("the broadcast address, which names no single server")
    } else if ip.is_multicast() {
        Some("a multicast address (224.0.0.0/4 or ff00::/8), which names no single server")
    } else {
        None
    }
}

/// The listen address in `listen` that makes `server` the daemon itself, if any: the same address
/// and port, or the same port on an unspecified listen address (`0.0.0.0:53`) of the same family
/// when `server` is a loopback address or an address of this machine's interfaces (the listener
/// sets IPV6_V6ONLY, so `[::]` is not IPv4 too).
pub fn own_address(server: SocketAddr, listen: &[SocketAddr]) -> Option<SocketAddr> {
    let ip = server.ip().to_canonical();
    let mut local: Option<Vec<IpAddr>> = None;
    listen.iter().copied().find(|l| {
        let lip = l.ip().to_canonical();
        if l.port() != server.port() {
            return false;
        }
        if lip == ip {
            return true;
        }
        if !lip.is_unspecified() || lip.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        ip.is_loopback() || local.get_or_insert_with(interface_addresses).contains(&ip)
    })
}

/// The addresses of this machine's interfaces (empty if they cannot be listed).
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(all) = nix::ifaddrs::getifaddrs() else { return vec![] };
    all.filter_map(|i| {
        let a = i.address?;
        a.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())).or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
    })
    .collect()
}

/// Everything a hook says about one VPN connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// The connection's id as the VPN client names it (e.g. a NetworkManager UUID).
    pub id: String,
    /// The VPN profile; two links of one profile are the same logical entity (RFC 8598 §8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The internal DNS servers.
    pub servers: Vec<ServerAddr>,
    /// Split domains routed to `servers`.
    #[serde(default)]
    pub domains: Vec<DomainName>,
    /// Domains the VPN offered as search domains: split domains unless the profile opts out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_domains: Vec<DomainName>,
    /// DS trust anchors offered for the split domains (RFC 8598 INTERNAL_DNSSEC_TA).
    #[serde(default)]
    pub anchors: Vec<DsAnchor>,
    /// Tunnel interface: queries to `servers` are bound to it (SO_BINDTODEVICE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Source address for queries to `servers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    /// A full tunnel ignores split domains and anchors (RFC 8598 §2).
    #[serde(default)]
    pub full_tunnel: bool,
    /// With `full_tunnel`: use `servers` as the default upstream while the link is up.
    #[serde(default)]
    pub default_route: bool,
}

/// Why a link spec was refused. Nothing changes when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("link id must be 1 to {MAX_ID_LEN} printable characters, got {0:?}")]
    Id(String),
    #[error("profile name must be 1 to {MAX_ID_LEN} printable characters, got {0:?}")]
    Profile(String),
    #[error("link {0:?} has no DNS server: give at least one --server")]
    NoServers(String),
    #[error("link {id:?}: too many {what} ({got}, at most {max})")]
    TooMany { id: String, what: &'static str, got: usize, max: usize },
    #[error("link {0:?}: --default-route needs --full-tunnel (a split tunnel only routes its own domains)")]
    DefaultRouteNeedsFullTunnel(String),
    #[error("link {id:?}: interface name {name:?} is not valid (1 to 15 characters, no '/', no white space)")]
    Interface { id: String, name: String },
    #[error("link {id:?}: source address {source_addr} and server {server} are of different IP families")]
    SourceFamily { id: String, source_addr: IpAddr, server: ServerAddr },
    #[error("link {id:?}: server {server} is {why}: give the address of the VPN's DNS server; nothing changed")]
    UnusableServer { id: String, server: ServerAddr, why: &'static str },
    #[error(
        "link {id:?}: server {server} is splitdns itself (it listens on {listen}): each query would come back to it \
         until it timed out; give the address of the VPN's DNS server; nothing changed"
    )]
    OwnAddress { id: String, server: ServerAddr, listen: SocketAddr },
}

fn printable(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control)
}

impl LinkSpec {
    /// Checks everything that can be checked without touching the system.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !printable(&self.id) {
            return Err(SpecError::Id(self.id.clone()));
        }
        if let Some(p) = &self.profile
            && !printable(p)
        {
            return Err(SpecError::Profile(p.clone()));
        }
        if self.servers.is_empty() {
            return Err(SpecError::NoServers(self.id.clone()));
        }
        let too_many = |what, got, max| SpecError::TooMany { id: self.id.clone(), what, got, max };
        if self.servers.len() > MAX_SERVERS {
            return Err(too_many("servers", self.servers.len(), MAX_SERVERS));
        }
        for server in &self.servers {
            if let Some(why) = unusable_server(server.addr) {
                return Err(SpecError::UnusableServer { id: self.id.clone(), server: server.clone(), why });
            }
        }
        if self.domains.len() + self.search_domains.len() > MAX_DOMAINS {
            return Err(too_many("domains", self.domains.len() + self.search_domains.len(), MAX_DOMAINS));
        }
        if self.anchors.len() > MAX_ANCHORS {
            return Err(too_many("trust anchors", self.anchors.len(), MAX_ANCHORS));
        }
        if self.default_route && !self.full_tunnel {
            return Err(SpecError::DefaultRouteNeedsFullTunnel(self.id.clone()));
        }
        if let Some(name) = &self.interface
            && (name.is_empty()
                || name.len() > 15
                || name.contains('/')
                || name.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(SpecError::Interface { id: self.id.clone(), name: name.clone() });
        }
        if let Some(src) = self.source
            && let Some(server) = self.servers.iter().find(|s| s.addr.is_ipv4() != src.is_ipv4())
        {
            return Err(SpecError::SourceFamily { id: self.id.clone(), source_addr: src, server: server.clone() });
        }
        Ok(())
    }

    /// Refuses a server that is the daemon itself, listening on `listen` (see [`own_address`]).
    pub fn check_not_own(&self, listen: &[SocketAddr]) -> Result<(), SpecError> {
        for server in &self.servers {
            if let Some(listen) = own_address(server.addr, listen) {
                return Err(SpecError::OwnAddress { id: self.id.clone(), server: server.clone(), listen });
            }
        }
        Ok(())
    }

    /// The identity used for ownership of domains: the profile, or the link id when there is none.
    pub fn owner_identity(&self) -> OwnerIdentity<'_> {
        match &self.profile {
            Some(p) => OwnerIdentity::Profile(p),
            None => OwnerIdentity::Link(&self.id),
        }
    }
}

/// Who owns a split domain: a profile (its links are one logical entity) or a lone link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerIdentity<'a> {
    Profile(&'a str),
    Link(&'a str),
}

impl fmt::Display for OwnerIdentity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnerIdentity::Profile(p) => write!(f, "profile {p:?}"),
            OwnerIdentity::Link(l) => write!(f, "link {l:?} (no profile)"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn spec(id: &str, profile: Option<&str>, domains: &[&str]) -> LinkSpec {
        LinkSpec {
            id: id.into(),
            profile: profile.map(Into::into),
            servers: vec!["10.0.0.1".parse().unwrap()],
            domains: domains.iter().map(|d| d.parse().unwrap()).collect(),
            search_domains: vec![],
            anchors: vec![],
            interface: None,
            source: None,
            full_tunnel: false,
            default_route: false,
        }
    }

    #[test]
    fn validation() {
        assert!(spec("a", None, &["corp.example"]).validate().is_ok());
        let mut s = spec("", None, &[]);
        assert!(matches!(s.validate(), Err(SpecError::Id(_))));
        s = spec("a\nb", None, &[]);
        assert!(matches!(s.validate(), Err(SpecError::Id(_))));
        s = spec("a", None, &[]);
        s.servers.clear();
        assert!(matches!(s.validate(), Err(SpecError::NoServers(_))));
        s = spec("a", None, &[]);
        s.default_route = true;
        assert!(matches!(s.validate(), Err(SpecError::DefaultRouteNeedsFullTunnel(_))));
        s = spec("a", None, &[]);
        s.interface = Some("a/b".into());
        assert!(matches!(s.validate(), Err(SpecError::Interface { .. })));
        s = spec("a", None, &[]);
        s.source = Some("fd00::2".parse().unwrap());
        assert!(matches!(s.validate(), Err(SpecError::SourceFamily { .. })));
    }

    #[test]
    fn servers_that_name_no_single_machine_are_refused() {
        for (server, why) in [
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("::ffff:0.0.0.0", "unspecified"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250:1900", "multicast"),
            ("ff02::1", "multicast"),
            ("[ff05::1:3]:547", "multicast"),
            ("::ffff:224.0.0.251", "multicast"),
        ] {
            let mut s = spec("a", None, &[]);
            s.servers.push(server.parse().unwrap());
            let e = s.validate().unwrap_err();
            assert!(matches!(e, SpecError::UnusableServer { .. }), "{server}: {e:?}");
            let msg = e.to_string();
            assert!(msg.contains(&format!("server {} is ", s.servers[1])) && msg.contains(why), "{msg}");
            assert!(msg.contains("give the address of the VPN's DNS server"), "{msg}");
        }
        for fine in ["10.0.0.1", "192.0.2.255", "127.0.0.1:5300", "fd00::1", "223.255.255.255", "240.0.0.1"] {
            let mut s = spec("a", None, &[]);
            s.servers = vec![fine.parse().unwrap()];
            assert!(s.validate().is_ok(), "{fine}");
        }
    }

    #[test]
    fn the_daemons_own_address_is_refused() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let at = |server: &str, listen: &[&str]| {
            let listen: Vec<SocketAddr> = listen.iter().map(|l| sa(l)).collect();
            own_address(server.parse::<ServerAddr>().unwrap().addr, &listen)
        };
        assert_eq!(at("127.0.0.1", &["127.0.0.1:53"]), Some(sa("127.0.0.1:53")));
        assert_eq!(at("127.0.0.1:5353", &["[::1]:5353", "127.0.0.1:5353"]), Some(sa("127.0.0.1:5353")));
        assert_eq!(at("::ffff:127.0.0.1", &["127.0.0.1:53"]), Some(sa("127.0.0.1:53")));
        // Listening on every address: every loopback address and this machine's own are us.
        assert_eq!(at("127.0.0.1", &["0.0.0.0:53"]), Some(sa("0.0.0.0:53")));
        assert_eq!(at("127.1.2.3", &["0.0.0.0:53"]), Some(sa("0.0.0.0:53")));
        assert_eq!(at("::1", &["[::]:53"]), Some(sa("[::]:53")));
        // Not us: another port, another address, another family (IPV6_V6ONLY), a remote server.
        assert_eq!(at("127.0.0.1", &["127.0.0.1:5353"]), None);
        assert_eq!(at("127.0.0.2", &["127.0.0.1:53"]), None);
        assert_eq!(at("127.0.0.1", &["[::]:53"]), None);
        assert_eq!(at("192.0.2.1", &["0.0.0.0:53"]), None);
        assert_eq!(at("10.0.0.1", &[]), None);
        let mut s = spec("a", None, &[]);
        s.servers = vec!["127.0.0.1:5353".parse().unwrap()];
        let msg = s.check_not_own(&[sa("127.0.0.1:5353")]).unwrap_err().to_string();
        assert!(msg.contains("server 127.0.0.1:5353 is splitdns itself (it listens on 127.0.0.1:5353)"), "{msg}");
        assert!(s.check_not_own(&[sa("127.0.0.1:53")]).is_ok());
    }

    #[test]
    fn json_round_trip_and_unknown_fields() {
        let s = spec("a", Some("corp"), &["corp.example"]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<LinkSpec>(&json).unwrap(), s);
        assert!(serde_json::from_str::<LinkSpec>(r#"{"id":"a","servers":["10.0.0.1"],"whitelist":["x"]}"#).is_err());
        assert!(serde_json::from_str::<LinkSpec>(r#"{"id":"a","servers":["10.0.0.1"],"domains":["."]}"#).is_err());
    }
}
