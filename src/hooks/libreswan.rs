//! libreswan (pluto) updown: `leftupdown=` in ipsec.conf (the default is `ipsec _updown`).
//!
//! Variables read (set in `programs/pluto/updown.c`):
//!
//! - `PLUTO_VERB`: `up-client`, `down-client`, `up-host`, `up-client-v6`, `down-host-v6`, … are up or
//!   down events. Newer pluto also runs combined verbs for asynchronous updown (`route-up`,
//!   `prepare-route-up`): a verb is an up event when one of its words is `up`, a down event when one is
//!   `down`. `prepare-…`, `route-…` and `unroute-…` alone are ignored.
//! - `PLUTO_CONNECTION`: the connection name, used as the profile.
//! - `PLUTO_PEER`: the gateway address. The link id is `libreswan:<CONNECTION>@<PEER>` (or
//!   `libreswan:<CONNECTION>` without a peer), so instances of one connection are told apart; both
//!   values are the same for up and down of one connection.
//! - `PLUTO_PEER_DNS_INFO`: space-separated IPv4/IPv6 servers from the CP reply or ModeCFG; when it is
//!   unset or empty, the legacy `PLUTO_CISCO_DNS_INFO`. No server on an up event is an error (the peer
//!   sent none, or `ignore-peer-dns=yes`).
//! - `PLUTO_PEER_DOMAIN_INFO` (legacy `PLUTO_CISCO_DOMAIN_INFO`): space-separated domains from IKEv2
//!   INTERNAL_DNS_DOMAIN (IKEv1 MODECFG_DOMAIN), taken as routing domains. pluto sanitises the bytes
//!   (`broken_dns_stringify`): `'` becomes `?`, CR and LF become a space, and `\` and other non-printable
//!   bytes become `\ooo` octal escapes. The spaces split the list as usual; a name holding `?` or an
//!   escape was not a valid name on the wire, and is an error that shows the original bytes.
//! - `PLUTO_VIRT_INTERFACE`: the ipsec/XFRM interface, when it is not `NULL`.
//! - `PLUTO_PEER_CLIENT`: the remote selector (`net/len`, or `start-end` for a range): all of IPv4 or
//!   IPv6 is a full tunnel.
//!
//! pluto runs updown once per selector pair, each time with the same ids: repeated up events replace
//! the link with identical content, repeated downs are no-ops. The hook arguments are not used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

use super::{Env, HookError, HookEvent, LinkUp};
use crate::domain::DomainName;
use crate::server_addr::ServerAddr;

/// Reads a libreswan updown environment.
pub(crate) fn event(env: &Env, _args: &[String]) -> Result<Option<HookEvent>, HookError> {
    let verb = required(env, "PLUTO_VERB")?;
    let Some(up) = verb_is_up(verb) else {
        return Ok(None);
    };
    let connection = required(env, "PLUTO_CONNECTION")?;
    let id = match env.get("PLUTO_PEER").map(|p| p.trim()).filter(|p| !p.is_empty()) {
        Some(peer) => format!("libreswan:{connection}@{peer}"),
        None => format!("libreswan:{connection}"),
    };
    if !up {
        return Ok(Some(HookEvent::Down { id }));
    }
    let (servers_var, servers_value) = first_non_empty(env, "PLUTO_PEER_DNS_INFO", "PLUTO_CISCO_DNS_INFO");
    let servers = servers(servers_var, servers_value)?;
    if servers.is_empty() {
        return Err(HookError::new(format!(
            "libreswan gave no DNS server for connection {connection:?} (PLUTO_PEER_DNS_INFO is empty): \
             the gateway sent none, or the connection has ignore-peer-dns=yes"
        )));
    }
    let (domains_var, domains_value) = first_non_empty(env, "PLUTO_PEER_DOMAIN_INFO", "PLUTO_CISCO_DOMAIN_INFO");
    let routing_domains = domains(domains_var, domains_value)?;
    let interface =
        env.get("PLUTO_VIRT_INTERFACE").map(|i| i.trim()).filter(|i| !i.is_empty() && *i != "NULL").map(str::to_string);
    Ok(Some(HookEvent::Up(LinkUp {
        id,
        profile: Some(connection.to_string()),
        servers,
        routing_domains,
        interface,
        full_tunnel: full_tunnel(env)?,
        ..LinkUp::default()
    })))
}

/// `Some(true)` for an up verb, `Some(false)` for a down verb, `None` for the others.
fn verb_is_up(verb: &str) -> Option<bool> {
    let words = || verb.split('-');
    match (words().any(|w| w == "up"), words().any(|w| w == "down")) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

fn required<'a>(env: &'a Env, name: &str) -> Result<&'a str, HookError> {
    match env.get(name).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(HookError::new(format!(
            "{name} is not set: `splitdns hook libreswan` must be run by pluto as the leftupdown script"
        ))),
    }
}

/// The current variable when it has a value, else the legacy one.
fn first_non_empty<'a>(env: &'a Env, current: &'static str, legacy: &'static str) -> (&'static str, &'a str) {
    match env.get(current).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => (current, v),
        _ => (legacy, env.get(legacy).map(|v| v.trim()).unwrap_or("")),
    }
}

fn servers(var: &str, value: &str) -> Result<Vec<ServerAddr>, HookError> {
    let mut out = Vec::new();
    for word in value.split_ascii_whitespace() {
        let ip: IpAddr = word
            .parse()
            .map_err(|_| HookError::new(format!("{var}={value:?}: {word:?} is not an IPv4 or IPv6 address")))?;
        let server = ServerAddr::plain(SocketAddr::new(ip, 53));
        if !out.contains(&server) {
            out.push(server);
        }
    }
    Ok(out)
}

fn domains(var: &str, value: &str) -> Result<Vec<DomainName>, HookError> {
    let mut out = Vec::new();
    for word in value.split_ascii_whitespace() {
        if word.contains('?') {
            return Err(HookError::new(format!(
                "{var}={value:?}: {word:?} is not a domain name: libreswan writes '?' in place of a \"'\" \
                 the gateway sent"
            )));
        }
        if word.contains('\\') {
            let original = unescape(word);
            return Err(HookError::new(format!(
                "{var}={value:?}: {word:?} is not a domain name: the gateway sent {original:?}, which holds \
                 bytes that libreswan escaped"
            )));
        }
        let domain = DomainName::parse(word).map_err(|e| HookError::new(format!("{var}={value:?}: {e}")))?;
        if !out.contains(&domain) {
            out.push(domain);
        }
    }
    Ok(out)
}

/// Undoes pluto's `\%03o` escapes to show what the gateway sent. `%o` of a (signed) `char` above 0x7f
/// prints the sign-extended value, e.g. `\37777777751` for 0xe9, so both forms are read.
fn unescape(word: &str) -> String {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = bytes[i + 1..].iter().take(11).take_while(|b| (b'0'..=b'7').contains(*b)).count();
            let take = if digits == 11 && bytes[i + 1..i + 4] == *b"377" {
                11
            } else if digits >= 3 {
                3
            } else {
                0
            };
            if take > 0
                && let Ok(text) = std::str::from_utf8(&bytes[i + 1..i + 1 + take])
                && let Ok(v) = u32::from_str_radix(text, 8)
            {
                out.push((v & 0xff) as u8);
                i += 1 + take;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `PLUTO_PEER_CLIENT` covers all addresses of its family: `0.0.0.0/0`, `::/0`, or the same as a range.
fn full_tunnel(env: &Env) -> Result<bool, HookError> {
    let value = match env.get("PLUTO_PEER_CLIENT").map(|v| v.trim()) {
        None | Some("") => return Ok(false),
        Some(v) => v,
    };
    let bad = || HookError::new(format!("PLUTO_PEER_CLIENT={value:?} is not a subnet (net/len) or range (start-end)"));
    if let Some((start, end)) = value.split_once('-') {
        let start: IpAddr = start.parse().map_err(|_| bad())?;
        let end: IpAddr = end.parse().map_err(|_| bad())?;
        return Ok(match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) => s == Ipv4Addr::UNSPECIFIED && e == Ipv4Addr::BROADCAST,
            (IpAddr::V6(s), IpAddr::V6(e)) => s == Ipv6Addr::UNSPECIFIED && e == Ipv6Addr::from(u128::MAX),
            _ => return Err(bad()),
        });
    }
    value.parse::<IpNet>().map(|net| net.prefix_len() == 0).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::test_support::*;

    /// An `up-client` environment as pluto 5.x builds it (updown.c), for a road-warrior client whose
    /// gateway answered the CP request with two servers and two INTERNAL_DNS_DOMAINs.
    fn up_env() -> Env {
        [
            ("PLUTO_VERB", "up-client"),
            ("PLUTO_CONNECTION", "corp"),
            ("PLUTO_CONNECTION_TYPE", "tunnel"),
            ("PLUTO_VIRT_INTERFACE", "NULL"),
            ("PLUTO_INTERFACE", "wlp2s0"),
            ("PLUTO_XFRMI_ROUTE", ""),
            ("PLUTO_ME", "192.168.1.23"),
            ("PLUTO_MY_ID", "@alice"),
            ("PLUTO_CLIENT_FAMILY", "ipv4"),
            ("PLUTO_MY_CLIENT", "100.64.0.7/32"),
            ("PLUTO_MY_CLIENT_NET", "100.64.0.7"),
            ("PLUTO_MY_CLIENT_MASK", "255.255.255.255"),
            ("PLUTO_MY_PORT", "0"),
            ("PLUTO_MY_PROTOCOL", "0"),
            ("PLUTO_SA_REQID", "16389"),
            ("PLUTO_SA_TYPE", "ESP"),
            ("PLUTO_PEER", "198.51.100.7"),
            ("PLUTO_PEER_ID", "@vpn.corp.example"),
            ("PLUTO_PEER_CLIENT", "10.0.0.0/8"),
            ("PLUTO_PEER_CLIENT_NET", "10.0.0.0"),
            ("PLUTO_PEER_CLIENT_MASK", "255.0.0.0"),
            ("PLUTO_PEER_PORT", "0"),
            ("PLUTO_PEER_PROTOCOL", "0"),
            ("PLUTO_PEER_CA", ""),
            ("PLUTO_STACK", "xfrm"),
            ("PLUTO_DNS_RESOLVER", "file"),
            ("PLUTO_CONN_KIND", "CK_PERMANENT"),
            ("PLUTO_CONN_ADDRFAMILY", "ipv4"),
            ("XAUTH_FAILED", "0"),
            ("PLUTO_MY_SOURCEIP", "100.64.0.7"),
            ("PLUTO_MOBIKE_EVENT", ""),
            ("PLUTO_IS_PEER_CISCO", "0"),
            ("PLUTO_PEER_DNS_INFO", "10.0.0.53 fd00:53::1"),
            ("PLUTO_PEER_DOMAIN_INFO", "corp.example lab.corp.example"),
            ("PLUTO_PEER_BANNER", ""),
            ("PLUTO_CFG_SERVER", "0"),
            ("PLUTO_CFG_CLIENT", "1"),
            ("PLUTO_NM_CONFIGURED", "0"),
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
    fn up_client_reads_everything() {
        let up = up(&up_env());
        assert_eq!(up.id, "libreswan:corp@198.51.100.7");
        assert_eq!(up.profile.as_deref(), Some("corp"));
        let servers: Vec<String> = up.servers.iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["10.0.0.53", "fd00:53::1"]);
        assert_eq!(names(&up.routing_domains), ["corp.example", "lab.corp.example"]);
        assert!(up.search_domains.is_empty() && up.anchors.is_empty());
        assert_eq!(up.interface, None, "PLUTO_VIRT_INTERFACE=NULL is no interface");
        assert!(!up.full_tunnel);
    }

    #[test]
    fn down_has_the_same_id_as_up() {
        let id = up(&up_env()).id;
        for verb in ["down-client", "down-host", "down-client-v6", "down-host-v6"] {
            let env = with(up_env(), &[("PLUTO_VERB", verb), ("PLUTO_PEER_DNS_INFO", "")]);
            assert_eq!(event(&env, &[]), Ok(Some(HookEvent::Down { id: id.clone() })), "{verb}");
        }
        // Two instances of one connection are two links.
        assert_ne!(up(&with(up_env(), &[("PLUTO_PEER", "198.51.100.8")])).id, id);
    }

    #[test]
    fn verbs() {
        for verb in ["up-client", "up-host", "up-client-v6", "up-host-v6", "up", "route-up", "prepare-route-up"] {
            assert!(
                matches!(event(&with(up_env(), &[("PLUTO_VERB", verb)]), &[]), Ok(Some(HookEvent::Up(_)))),
                "{verb}"
            );
        }
        for verb in ["prepare-client", "route-client", "unroute-client", "prepare-host-v6", "route-host", "unroute"] {
            assert_eq!(event(&with(up_env(), &[("PLUTO_VERB", verb)]), &[]), Ok(None), "{verb}");
        }
    }

    #[test]
    fn virtual_interface_and_full_tunnel() {
        let env = with(up_env(), &[("PLUTO_VIRT_INTERFACE", "ipsec1"), ("PLUTO_PEER_CLIENT", "0.0.0.0/0")]);
        let link = up(&env);
        assert_eq!(link.interface.as_deref(), Some("ipsec1"));
        assert!(link.full_tunnel);
        assert!(up(&with(up_env(), &[("PLUTO_PEER_CLIENT", "::/0")])).full_tunnel);
        assert!(up(&with(up_env(), &[("PLUTO_PEER_CLIENT", "0.0.0.0-255.255.255.255")])).full_tunnel);
        assert!(!up(&with(up_env(), &[("PLUTO_PEER_CLIENT", "10.0.0.1-10.0.0.9")])).full_tunnel);
        let e = err(&with(up_env(), &[("PLUTO_PEER_CLIENT", "10.0.0.0/33")]));
        assert!(e.contains("PLUTO_PEER_CLIENT") && e.contains("10.0.0.0/33"), "{e}");
    }

    #[test]
    fn legacy_cisco_variables() {
        let mut env = up_env();
        env.remove("PLUTO_PEER_DNS_INFO");
        env.insert("PLUTO_PEER_DOMAIN_INFO".into(), String::new());
        env.insert("PLUTO_CISCO_DNS_INFO".into(), "10.1.0.53".into());
        env.insert("PLUTO_CISCO_DOMAIN_INFO".into(), "Corp.Example".into());
        let link = up(&env);
        assert_eq!(link.servers, vec!["10.1.0.53".parse().unwrap()]);
        assert_eq!(names(&link.routing_domains), ["corp.example"]);
        // The current variable wins when it has a value.
        let env = with(up_env(), &[("PLUTO_CISCO_DNS_INFO", "10.1.0.53")]);
        assert_eq!(up(&env).servers.len(), 2);
    }

    #[test]
    fn no_server_is_an_error() {
        let e = err(&with(up_env(), &[("PLUTO_PEER_DNS_INFO", "")]));
        assert!(e.contains("PLUTO_PEER_DNS_INFO") && e.contains("ignore-peer-dns"), "{e}");
    }

    #[test]
    fn malformed_server_is_an_error() {
        let e = err(&with(up_env(), &[("PLUTO_PEER_DNS_INFO", "10.0.0.53 10.0.0.256")]));
        assert!(e.contains("PLUTO_PEER_DNS_INFO") && e.contains("10.0.0.256"), "{e}");
        let e = err(&with(up_env(), &[("PLUTO_PEER_DNS_INFO", ""), ("PLUTO_CISCO_DNS_INFO", "dns.corp.example")]));
        assert!(e.contains("PLUTO_CISCO_DNS_INFO") && e.contains("dns.corp.example"), "{e}");
    }

    #[test]
    fn sanitised_domains_are_errors() {
        // A "'" in the name: pluto wrote '?'.
        let e = err(&with(up_env(), &[("PLUTO_PEER_DOMAIN_INFO", "corp.example o?reilly.example")]));
        assert!(e.contains("PLUTO_PEER_DOMAIN_INFO") && e.contains("o?reilly.example") && e.contains('\''), "{e}");
        // A tab (\011) and a backslash (\134): shown as the original bytes.
        let e = err(&with(up_env(), &[("PLUTO_PEER_DOMAIN_INFO", r"corp\011example")]));
        assert!(e.contains(r"corp\\011example") && e.contains(r"corp\texample"), "{e}");
        let e = err(&with(up_env(), &[("PLUTO_PEER_DOMAIN_INFO", r"a\134b.example")]));
        assert!(e.contains(r"a\\b.example"), "{e}");
        // A byte above 0x7f, printed sign-extended by %o of a signed char.
        let e = err(&with(up_env(), &[("PLUTO_PEER_DOMAIN_INFO", r"caf\37777777703\37777777651.example")]));
        assert!(e.contains("café.example"), "{e}");
        // Any other invalid name.
        let e = err(&with(up_env(), &[("PLUTO_PEER_DOMAIN_INFO", "corp..example")]));
        assert!(e.contains("PLUTO_PEER_DOMAIN_INFO") && e.contains("corp..example"), "{e}");
    }

    #[test]
    fn crlf_became_spaces_and_splits_the_list() {
        // "corp.example\r\nlab.example" arrives as "corp.example  lab.example".
        let up = up(&with(up_env(), &[("PLUTO_PEER_DOMAIN_INFO", "corp.example  lab.example")]));
        assert_eq!(names(&up.routing_domains), ["corp.example", "lab.example"]);
    }

    #[test]
    fn unescape_forms() {
        assert_eq!(unescape(r"a\011b"), "a\tb");
        assert_eq!(unescape(r"a\134"), "a\\");
        assert_eq!(unescape(r"\37777777751x"), String::from_utf8_lossy(&[0xe9, b'x']));
        assert_eq!(unescape(r"a\9"), r"a\9");
        assert_eq!(unescape(r"end\"), r"end\");
    }

    #[test]
    fn missing_verb_or_connection_is_an_error() {
        let mut env = up_env();
        env.remove("PLUTO_VERB");
        assert!(err(&env).contains("PLUTO_VERB"));
        let mut env = up_env();
        env.remove("PLUTO_CONNECTION");
        assert!(err(&env).contains("PLUTO_CONNECTION"));
        // Without a peer, the id is the connection alone, the same for up and down.
        let mut env = up_env();
        env.remove("PLUTO_PEER");
        assert_eq!(up(&env).id, "libreswan:corp");
    }
}
