//! strongSwan (charon) updown: `updown = …` in swanctl.conf, `leftupdown=` in ipsec.conf.
//!
//! Variables read (set in `src/libcharon/plugins/updown/updown_listener.c`):
//!
//! - `PLUTO_VERB`: `up-host`, `up-client`, `up-host-v6`, `up-client-v6` and the `down-…` forms. Anything
//!   else (`prepare-…`, `route-…`, `unroute-…` from other IKE daemons) is ignored.
//! - `PLUTO_CONNECTION`: the connection (child) name, used as the profile.
//! - `PLUTO_UNIQUEID`: the IKE SA's unique id. The link id is `strongswan:<UNIQUEID>`; without it,
//!   `strongswan:<CONNECTION>/<PLUTO_REQID>`. Up and down of one IKE SA carry the same values. A
//!   reauthentication creates a new IKE SA (new id, same profile): the daemon replaces the old link by
//!   profile, and the later down of the old id finds nothing to do.
//! - `PLUTO_DNS4_<n>`, `PLUTO_DNS6_<n>` (n from 1): the servers. charon sets them only with
//!   `charon.plugins.updown.dns_handler = yes`; without servers an up event is an error saying so.
//! - `PLUTO_PEER_CLIENT`: the remote traffic selector; `0.0.0.0/0` or `::/0` means a full tunnel.
//!
//! Not read: strongSwan passes no DNS domain to updown (INTERNAL_DNS_DOMAIN has no handler in charon),
//! so the daemon's per-profile config supplies the split domains. `PLUTO_INTERFACE` is the next-hop
//! (physical) interface, not a tunnel, so `interface` stays unset: binding queries to it would be wrong.
//!
//! charon runs updown once per traffic-selector pair (and once per address family), each time with the
//! same ids: repeated up events replace the link with identical content, repeated downs are no-ops.
//! The hook arguments are not used (a `leftupdown="script args"` line is the user's business).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::{Env, HookError, HookEvent, LinkUp};
use crate::server_addr::ServerAddr;

/// Reads a strongSwan updown environment.
pub(crate) fn event(env: &Env, _args: &[String]) -> Result<Option<HookEvent>, HookError> {
    let verb = required(env, "PLUTO_VERB")?;
    let up = match verb.split('-').next() {
        Some("up") => true,
        Some("down") => false,
        // prepare-*, route-*, unroute-*, …: nothing to do for DNS.
        _ => return Ok(None),
    };
    let connection = required(env, "PLUTO_CONNECTION")?;
    let id = link_id(env, connection)?;
    if !up {
        return Ok(Some(HookEvent::Down { id }));
    }
    let servers = servers(env)?;
    if servers.is_empty() {
        return Err(HookError::new(format!(
            "strongSwan gave no DNS server for connection {connection:?} (no PLUTO_DNS4_1 or PLUTO_DNS6_1): \
             set charon.plugins.updown.dns_handler = yes in strongswan.conf (and load the updown plugin \
             before resolve), and make sure the gateway assigns DNS servers"
        )));
    }
    Ok(Some(HookEvent::Up(LinkUp {
        id,
        profile: Some(connection.to_string()),
        servers,
        full_tunnel: full_tunnel(env)?,
        ..LinkUp::default()
    })))
}

/// A variable that must be present and non-empty.
fn required<'a>(env: &'a Env, name: &str) -> Result<&'a str, HookError> {
    match env.get(name).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(HookError::new(format!(
            "{name} is not set: `splitdns hook strongswan` must be run by charon as an updown script"
        ))),
    }
}

/// A decimal number, as charon prints `%u`.
fn number<'a>(env: &'a Env, name: &str) -> Result<Option<&'a str>, HookError> {
    match env.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(v)),
        Some(v) => Err(HookError::new(format!("{name}={v:?} is not a number"))),
    }
}

fn link_id(env: &Env, connection: &str) -> Result<String, HookError> {
    if let Some(unique) = number(env, "PLUTO_UNIQUEID")? {
        return Ok(format!("strongswan:{unique}"));
    }
    match number(env, "PLUTO_REQID")? {
        Some(reqid) => Ok(format!("strongswan:{connection}/{reqid}")),
        None => Err(HookError::new(format!(
            "neither PLUTO_UNIQUEID nor PLUTO_REQID is set for connection {connection:?}: cannot name the link"
        ))),
    }
}

/// `PLUTO_DNS4_<n>` then `PLUTO_DNS6_<n>`, each in order of n.
fn servers(env: &Env) -> Result<Vec<ServerAddr>, HookError> {
    let mut out = Vec::new();
    for (prefix, v4) in [("PLUTO_DNS4_", true), ("PLUTO_DNS6_", false)] {
        let mut numbered = BTreeMap::new();
        for (name, value) in env {
            let Some(suffix) = name.strip_prefix(prefix) else { continue };
            let n: u32 = suffix
                .parse()
                .map_err(|_| HookError::new(format!("{name} is not a strongSwan variable (expected {prefix}<n>)")))?;
            numbered.insert(n, (name, value));
        }
        for (name, value) in numbered.into_values() {
            let ip: IpAddr = value.trim().parse().map_err(|_| {
                HookError::new(format!("{name}={value:?} is not an IP{} address", if v4 { "v4" } else { "v6" }))
            })?;
            if ip.is_ipv4() != v4 {
                return Err(HookError::new(format!(
                    "{name}={value:?} is an IPv{} address, expected IPv{}",
                    if v4 { 6 } else { 4 },
                    if v4 { 4 } else { 6 }
                )));
            }
            let server = ServerAddr::plain(SocketAddr::new(ip, 53));
            if !out.contains(&server) {
                out.push(server);
            }
        }
    }
    Ok(out)
}

/// `PLUTO_PEER_CLIENT` is the remote subnet (`%+H/%u`): a /0 is a full tunnel.
fn full_tunnel(env: &Env) -> Result<bool, HookError> {
    match env.get("PLUTO_PEER_CLIENT").map(|v| v.trim()) {
        None | Some("") => Ok(false),
        Some(v) => v
            .parse::<IpNet>()
            .map(|net| net.prefix_len() == 0)
            .map_err(|_| HookError::new(format!("PLUTO_PEER_CLIENT={v:?} is not a subnet (address/prefix)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::test_support::*;

    /// An `up-client` environment as charon 5.9/6.0 builds it (updown_listener.c), with
    /// `dns_handler = yes` and two IPv4 and one IPv6 server assigned by the gateway.
    fn up_env() -> Env {
        [
            ("PLUTO_VERSION", "1.1"),
            ("PLUTO_VERB", "up-client"),
            ("PLUTO_CONNECTION", "corp"),
            ("PLUTO_INTERFACE", "wlp2s0"),
            ("PLUTO_REQID", "1"),
            ("PLUTO_PROTO", "esp"),
            ("PLUTO_UNIQUEID", "3"),
            ("PLUTO_ME", "192.168.1.23"),
            ("PLUTO_MY_ID", "alice@corp.example"),
            ("PLUTO_MY_CLIENT", "10.10.0.5/32"),
            ("PLUTO_MY_PORT", "0"),
            ("PLUTO_MY_PROTOCOL", "0"),
            ("PLUTO_PEER", "203.0.113.10"),
            ("PLUTO_PEER_ID", "vpn.corp.example"),
            ("PLUTO_PEER_CLIENT", "10.0.0.0/8"),
            ("PLUTO_PEER_PORT", "0"),
            ("PLUTO_PEER_PROTOCOL", "0"),
            ("PLUTO_XAUTH_ID", "alice"),
            ("PLUTO_MY_SOURCEIP", "10.10.0.5"),
            ("PLUTO_MY_SOURCEIP4_1", "10.10.0.5"),
            ("PLUTO_DNS4_1", "10.0.0.53"),
            ("PLUTO_DNS4_2", "10.0.1.53"),
            ("PLUTO_DNS6_1", "fd00:53::1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn up(env: &Env) -> LinkUp {
        expect_up(event(env, &[]))
    }

    fn err(env: &Env) -> String {
        expect_err(event(env, &[]))
    }

    #[test]
    fn up_client_reads_servers_profile_and_id() {
        let up = up(&up_env());
        assert_eq!(up.id, "strongswan:3");
        assert_eq!(up.profile.as_deref(), Some("corp"));
        let servers: Vec<String> = up.servers.iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["10.0.0.53", "10.0.1.53", "fd00:53::1"]);
        assert!(up.routing_domains.is_empty() && up.search_domains.is_empty() && up.anchors.is_empty());
        // PLUTO_INTERFACE is the next hop, never the tunnel.
        assert_eq!(up.interface, None);
        assert!(!up.full_tunnel);
    }

    #[test]
    fn servers_follow_n_numerically() {
        let env = with(up_env(), &[("PLUTO_DNS4_10", "10.0.0.10"), ("PLUTO_DNS4_9", "10.0.0.9")]);
        let servers: Vec<String> = up(&env).servers.iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["10.0.0.53", "10.0.1.53", "10.0.0.9", "10.0.0.10", "fd00:53::1"]);
    }

    #[test]
    fn down_has_the_same_id_as_up() {
        let up_id = up(&up_env()).id;
        for verb in ["down-client", "down-host", "down-client-v6"] {
            let env = with(up_env(), &[("PLUTO_VERB", verb)]);
            assert_eq!(event(&env, &[]), Ok(Some(HookEvent::Down { id: up_id.clone() })), "{verb}");
        }
        // A down needs no server.
        let mut env = with(up_env(), &[("PLUTO_VERB", "down-client")]);
        env.retain(|k, _| !k.starts_with("PLUTO_DNS"));
        assert_eq!(event(&env, &[]), Ok(Some(HookEvent::Down { id: up_id })));
    }

    #[test]
    fn other_up_verbs_are_up_events() {
        for verb in ["up-host", "up-client-v6", "up-host-v6"] {
            let env = with(up_env(), &[("PLUTO_VERB", verb)]);
            assert_eq!(up(&env).id, "strongswan:3", "{verb}");
        }
    }

    #[test]
    fn non_up_down_verbs_are_ignored() {
        for verb in ["prepare-host", "prepare-client", "route-client", "unroute-client", "route-host-v6"] {
            let env = with(up_env(), &[("PLUTO_VERB", verb)]);
            assert_eq!(event(&env, &[]), Ok(None), "{verb}");
        }
    }

    #[test]
    fn fallback_id_is_connection_and_reqid_and_stable() {
        let mut env = up_env();
        env.remove("PLUTO_UNIQUEID");
        assert_eq!(up(&env).id, "strongswan:corp/1");
        env.insert("PLUTO_VERB".into(), "down-client".into());
        assert_eq!(event(&env, &[]), Ok(Some(HookEvent::Down { id: "strongswan:corp/1".into() })));
        env.remove("PLUTO_REQID");
        assert!(err(&env).contains("PLUTO_UNIQUEID"));
    }

    #[test]
    fn no_dns_servers_asks_for_dns_handler() {
        let mut env = up_env();
        env.retain(|k, _| !k.starts_with("PLUTO_DNS"));
        let e = err(&env);
        assert!(e.contains("dns_handler = yes"), "{e}");
        assert!(e.contains("\"corp\""), "{e}");
    }

    #[test]
    fn malformed_servers_are_errors_naming_variable_and_value() {
        let e = err(&with(up_env(), &[("PLUTO_DNS4_2", "10.0.1.300")]));
        assert!(e.contains("PLUTO_DNS4_2") && e.contains("10.0.1.300"), "{e}");
        let e = err(&with(up_env(), &[("PLUTO_DNS4_1", "fd00::53")]));
        assert!(e.contains("PLUTO_DNS4_1") && e.contains("IPv6"), "{e}");
        let e = err(&with(up_env(), &[("PLUTO_DNS6_1", "10.0.0.1")]));
        assert!(e.contains("PLUTO_DNS6_1"), "{e}");
        let e = err(&with(up_env(), &[("PLUTO_DNS4_x", "10.0.0.1")]));
        assert!(e.contains("PLUTO_DNS4_x"), "{e}");
        let e = err(&with(up_env(), &[("PLUTO_UNIQUEID", "3; rm -rf /")]));
        assert!(e.contains("PLUTO_UNIQUEID"), "{e}");
    }

    #[test]
    fn full_tunnel_from_peer_client() {
        assert!(up(&with(up_env(), &[("PLUTO_PEER_CLIENT", "0.0.0.0/0")])).full_tunnel);
        assert!(up(&with(up_env(), &[("PLUTO_VERB", "up-client-v6"), ("PLUTO_PEER_CLIENT", "::/0")])).full_tunnel);
        assert!(!up(&with(up_env(), &[("PLUTO_PEER_CLIENT", "fd00::/8")])).full_tunnel);
        let mut env = up_env();
        env.remove("PLUTO_PEER_CLIENT");
        assert!(!up(&env).full_tunnel);
        let e = err(&with(up_env(), &[("PLUTO_PEER_CLIENT", "everything")]));
        assert!(e.contains("PLUTO_PEER_CLIENT") && e.contains("everything"), "{e}");
    }

    #[test]
    fn missing_verb_or_connection_is_an_error() {
        let mut env = up_env();
        env.remove("PLUTO_VERB");
        assert!(err(&env).contains("PLUTO_VERB"));
        let mut env = up_env();
        env.remove("PLUTO_CONNECTION");
        assert!(err(&env).contains("PLUTO_CONNECTION"));
    }
}
