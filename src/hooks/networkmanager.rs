//! NetworkManager dispatcher script (`/etc/NetworkManager/dispatcher.d/90-splitdns`).
//!
//! NetworkManager runs dispatcher scripts with `$1` = interface and `$2` = action, and the environment
//! built in `src/nm-dispatcher/nm-dispatcher-utils.c`. Read:
//!
//! - the action: `args[1]`, or `NM_DISPATCHER_ACTION` (both must agree when both are given). Only
//!   `vpn-up` and `vpn-down` are events; every other action (`up`, `dhcp4-change`, `dns-change`,
//!   `vpn-pre-up`, …) is ignored.
//! - `CONNECTION_UUID`: the link id is `nm:<UUID>`, the same for vpn-up and vpn-down of a connection.
//! - `CONNECTION_ID`: the connection's name, used as the profile.
//! - `VPN_IP4_NAMESERVERS`, `VPN_IP6_NAMESERVERS`: space-separated servers.
//! - `VPN_IP4_DOMAINS`, `VPN_IP6_DOMAINS`: space-separated domains, taken as routing domains. For a VPN
//!   connection these are the DNS domains the VPN plugin reported (pushed by the VPN: OpenVPN
//!   `DOMAIN`, IPsec INTERNAL_DNS_DOMAIN, …), which is what should be routed to the VPN's servers; the
//!   profile's own `ipv4.dns-search` (including `~routing` entries) is not exported there.
//! - `VPN_IP_IFACE`: the tunnel interface; without it (IPsec has no tunnel device), `args[0]`.
//!
//! Full tunnel cannot be read reliably from the dispatcher environment (never-default is not exported),
//! so it is left false: set it in the profile config.

use std::net::{IpAddr, SocketAddr};

use super::{Env, HookError, HookEvent, LinkUp};
use crate::domain::DomainName;
use crate::server_addr::ServerAddr;

/// Reads a NetworkManager dispatcher call.
pub(crate) fn event(env: &Env, args: &[String]) -> Result<Option<HookEvent>, HookError> {
    let from_args = args.get(1).map(|a| a.trim()).filter(|a| !a.is_empty());
    let from_env = env.get("NM_DISPATCHER_ACTION").map(|a| a.trim()).filter(|a| !a.is_empty());
    let action = match (from_args, from_env) {
        (Some(a), Some(e)) if a != e => {
            return Err(HookError::new(format!("the action argument {a:?} and NM_DISPATCHER_ACTION={e:?} disagree")));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err(HookError::new(
                "no action: `splitdns hook networkmanager` must be run by NetworkManager-dispatcher \
                 (arguments: interface action)",
            ));
        }
    };
    let up = match action {
        "vpn-up" => true,
        "vpn-down" => false,
        _ => return Ok(None),
    };
    let uuid = match env.get("CONNECTION_UUID").map(|u| u.trim()) {
        Some(u) if !u.is_empty() => u,
        _ => return Err(HookError::new(format!("CONNECTION_UUID is not set for {action}"))),
    };
    let id = format!("nm:{uuid}");
    if !up {
        return Ok(Some(HookEvent::Down { id }));
    }
    let profile = env.get("CONNECTION_ID").map(|p| p.trim()).filter(|p| !p.is_empty()).map(str::to_string);
    let mut servers = Vec::new();
    for var in ["VPN_IP4_NAMESERVERS", "VPN_IP6_NAMESERVERS"] {
        let value = env.get(var).map(String::as_str).unwrap_or("");
        for word in value.split_ascii_whitespace() {
            let ip: IpAddr = word
                .parse()
                .map_err(|_| HookError::new(format!("{var}={value:?}: {word:?} is not an IPv4 or IPv6 address")))?;
            let server = ServerAddr::plain(SocketAddr::new(ip, 53));
            if !servers.contains(&server) {
                servers.push(server);
            }
        }
    }
    if servers.is_empty() {
        return Err(HookError::new(format!(
            "VPN connection {} ({uuid}) has no DNS server (VPN_IP4_NAMESERVERS and VPN_IP6_NAMESERVERS are \
             empty): the VPN pushed none",
            profile.as_deref().unwrap_or("?")
        )));
    }
    let mut routing_domains = Vec::new();
    for var in ["VPN_IP4_DOMAINS", "VPN_IP6_DOMAINS"] {
        let value = env.get(var).map(String::as_str).unwrap_or("");
        for word in value.split_ascii_whitespace() {
            let domain = DomainName::parse(word).map_err(|e| HookError::new(format!("{var}={value:?}: {e}")))?;
            if !routing_domains.contains(&domain) {
                routing_domains.push(domain);
            }
        }
    }
    let interface = [env.get("VPN_IP_IFACE").map(String::as_str), args.first().map(String::as_str)]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|i| !i.is_empty() && *i != "none")
        .map(str::to_string);
    Ok(Some(HookEvent::Up(LinkUp { id, profile, servers, routing_domains, interface, ..LinkUp::default() })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::test_support::*;

    const UUID: &str = "5d8ac4f3-2f7e-4d5a-9c3b-1f2e3d4c5b6a";

    /// A `vpn-up` dispatcher environment for an OpenVPN connection (nm-dispatcher-utils.c: connection,
    /// device and `VPN_`-prefixed IP config properties).
    fn vpn_up() -> Env {
        [
            ("NM_DISPATCHER_ACTION", "vpn-up"),
            ("CONNECTION_UUID", UUID),
            ("CONNECTION_ID", "Corp VPN"),
            ("CONNECTION_DBUS_PATH", "/org/freedesktop/NetworkManager/Settings/7"),
            ("CONNECTION_FILENAME", "/etc/NetworkManager/system-connections/Corp VPN.nmconnection"),
            ("DEVICE_IFACE", "wlp2s0"),
            ("DEVICE_IP_IFACE", "wlp2s0"),
            ("IP4_ADDRESS_0", "192.168.1.23/24 192.168.1.1"),
            ("IP4_NUM_ADDRESSES", "1"),
            ("IP4_GATEWAY", "192.168.1.1"),
            ("IP4_NAMESERVERS", "192.168.1.1"),
            ("IP4_DOMAINS", "lan"),
            ("VPN_IP_IFACE", "tun0"),
            ("VPN_IP4_ADDRESS_0", "10.8.0.6/24 0.0.0.0"),
            ("VPN_IP4_NUM_ADDRESSES", "1"),
            ("VPN_IP4_ROUTE_0", "10.0.0.0/8 10.8.0.1 50"),
            ("VPN_IP4_NUM_ROUTES", "1"),
            ("VPN_IP4_NAMESERVERS", "10.8.0.1 10.8.0.2"),
            ("VPN_IP4_DOMAINS", "corp.example lab.corp.example"),
            ("VPN_IP6_NAMESERVERS", "fd00:8::1"),
            ("VPN_IP6_DOMAINS", "corp.example"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn args(iface: &str, action: &str) -> Vec<String> {
        vec![iface.to_string(), action.to_string()]
    }

    fn up(env: &Env, args: &[String]) -> LinkUp {
        match event(env, args) {
            Ok(Some(HookEvent::Up(up))) => up,
            other => panic!("expected an up event, got {other:?}"),
        }
    }

    fn err(env: &Env, args: &[String]) -> String {
        match event(env, args) {
            Err(e) => e.0,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn vpn_up_reads_everything() {
        let up = up(&vpn_up(), &args("tun0", "vpn-up"));
        assert_eq!(up.id, format!("nm:{UUID}"));
        assert_eq!(up.profile.as_deref(), Some("Corp VPN"));
        let servers: Vec<String> = up.servers.iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["10.8.0.1", "10.8.0.2", "fd00:8::1"]);
        let domains: Vec<&str> = up.routing_domains.iter().map(DomainName::as_str).collect();
        assert_eq!(domains, ["corp.example", "lab.corp.example"]);
        assert!(up.search_domains.is_empty() && up.anchors.is_empty());
        assert_eq!(up.interface.as_deref(), Some("tun0"));
        assert!(!up.full_tunnel);
    }

    #[test]
    fn vpn_down_has_the_same_id() {
        let id = up(&vpn_up(), &args("tun0", "vpn-up")).id;
        let down = with(vpn_up(), &[("NM_DISPATCHER_ACTION", "vpn-down")]);
        assert_eq!(event(&down, &args("tun0", "vpn-down")), Ok(Some(HookEvent::Down { id: id.clone() })));
        // NetworkManager may already have dropped the IP config on the way down.
        let mut down = down;
        down.retain(|k, _| !k.starts_with("VPN_"));
        assert_eq!(event(&down, &args("tun0", "vpn-down")), Ok(Some(HookEvent::Down { id })));
    }

    #[test]
    fn other_actions_are_ignored() {
        for action in [
            "up",
            "down",
            "pre-up",
            "pre-down",
            "vpn-pre-up",
            "vpn-pre-down",
            "dhcp4-change",
            "dhcp6-change",
            "dns-change",
            "connectivity-change",
            "hostname",
            "reapply",
        ] {
            let env = with(vpn_up(), &[("NM_DISPATCHER_ACTION", action)]);
            assert_eq!(event(&env, &args("wlp2s0", action)), Ok(None), "{action}");
        }
    }

    #[test]
    fn action_from_either_place() {
        // From the environment alone.
        assert_eq!(up(&vpn_up(), &[]).id, format!("nm:{UUID}"));
        // From the arguments alone.
        let mut env = vpn_up();
        env.remove("NM_DISPATCHER_ACTION");
        assert_eq!(up(&env, &args("tun0", "vpn-up")).id, format!("nm:{UUID}"));
        // Neither, or both disagreeing: an error.
        assert!(err(&env, &[]).contains("no action"));
        let e = err(&vpn_up(), &args("tun0", "vpn-down"));
        assert!(e.contains("NM_DISPATCHER_ACTION") && e.contains("vpn-down"), "{e}");
    }

    #[test]
    fn interface_falls_back_to_the_argument() {
        let mut env = vpn_up();
        env.remove("VPN_IP_IFACE");
        assert_eq!(up(&env, &args("ipsec0", "vpn-up")).interface.as_deref(), Some("ipsec0"));
        assert_eq!(up(&env, &args("none", "vpn-up")).interface, None);
        assert_eq!(up(&env, &[]).interface, None);
    }

    #[test]
    fn malformed_values_are_errors() {
        let e = err(&with(vpn_up(), &[("VPN_IP4_NAMESERVERS", "10.8.0.1 10.8.0.256")]), &args("tun0", "vpn-up"));
        assert!(e.contains("VPN_IP4_NAMESERVERS") && e.contains("10.8.0.256"), "{e}");
        let e = err(&with(vpn_up(), &[("VPN_IP6_NAMESERVERS", "fd00:8::1::2")]), &args("tun0", "vpn-up"));
        assert!(e.contains("VPN_IP6_NAMESERVERS") && e.contains("fd00:8::1::2"), "{e}");
        let e = err(&with(vpn_up(), &[("VPN_IP4_DOMAINS", "corp.example ~lab.example")]), &args("tun0", "vpn-up"));
        assert!(e.contains("VPN_IP4_DOMAINS") && e.contains("~lab.example"), "{e}");
        let e = err(&with(vpn_up(), &[("VPN_IP6_DOMAINS", "bad_name.example")]), &args("tun0", "vpn-up"));
        assert!(e.contains("VPN_IP6_DOMAINS") && e.contains("bad_name.example"), "{e}");
    }

    #[test]
    fn missing_uuid_or_servers_are_errors() {
        let mut env = vpn_up();
        env.remove("CONNECTION_UUID");
        assert!(err(&env, &args("tun0", "vpn-up")).contains("CONNECTION_UUID"));
        let env = with(env, &[("NM_DISPATCHER_ACTION", "vpn-down")]);
        assert!(err(&env, &args("tun0", "vpn-down")).contains("CONNECTION_UUID"));
        let mut env = vpn_up();
        env.remove("VPN_IP4_NAMESERVERS");
        env.remove("VPN_IP6_NAMESERVERS");
        let e = err(&env, &args("tun0", "vpn-up"));
        assert!(e.contains("Corp VPN") && e.contains("VPN_IP4_NAMESERVERS"), "{e}");
    }
}
