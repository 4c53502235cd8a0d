//! OpenVPN: classic `--up`/`--down` scripts (every 2.x), and the OpenVPN 2.7 `--dns-updown` command.
//!
//! `script_type` tells them apart, and decides which variables are read:
//!
//! - `up` (all 2.x versions): two families, read whenever they are present.
//!   - `foreign_option_<n>` (n from 1), one per pushed `dhcp-option`, as `dhcp-option TYPE value`.
//!     Read: `DNS` and `DNS6` (servers), `DOMAIN-ROUTE` (routing, the update-systemd-resolved
//!     convention), `DOMAIN`, `DOMAIN-SEARCH` and `ADAPTER_DOMAIN_SUFFIX` (search). Other dhcp-options
//!     (WINS, NBT, NTP, DNSSEC, …) and other foreign options are ignored.
//!   - the `--dns` variables described under `dns-up` below. OpenVPN 2.6 sets them for the `--up`
//!     script when the server pushes `dns server …` / `dns search-domains …`, *and* translates the
//!     same settings into `foreign_option_<n>` for older scripts (`options.c`
//!     `foreign_options_copy_dns()`): pushed `dhcp-option DNS|DNS6` entries are dropped, every server
//!     block's addresses become `dhcp-option DNS|DNS6` (ports and resolve-domains are lost), search
//!     domains become `dhcp-option DOMAIN-SEARCH`. A script that reads only `foreign_option_<n>`
//!     sees the servers but never the resolve-domains, and routes nothing. (OpenVPN 2.7 with an
//!     `--up` script does the same translation; both cases are read the same way.)
//!
//!   How they combine: when any `dns_server_<i>_…` variable is set, the `--dns` block is
//!   authoritative for the servers (the one split block, with its ports, chosen as below) and the
//!   `dhcp-option DNS|DNS6` foreign options are ignored, since they are only OpenVPN's lossy
//!   translation of the same block(s). Domains are merged: the block's resolve-domains and any
//!   `DOMAIN-ROUTE` are routing domains; `dns_search_domain_<i>` and `DOMAIN`, `DOMAIN-SEARCH`,
//!   `ADAPTER_DOMAIN_SUFFIX` are search domains; `--dns` ones first, duplicates removed. Without
//!   `dns_server_<i>_…` the servers come from the foreign options. Both families are checked: a
//!   malformed value in either is an error naming the variable.
//! - `down` (all 2.x): nothing but the identity below is read.
//! - `dns-up` / `dns-down` (2.7 `--dns-updown`, from `src/openvpn/dns.c` `setenv_dns_options()`):
//!   `dns_server_<i>_address_<j>`, `dns_server_<i>_port_<j>`, `dns_server_<i>_resolve_domain_<j>`
//!   (routing), `dns_server_<i>_dnssec`, `dns_server_<i>_transport`, `dns_search_domain_<i>` (search).
//!   When OpenVPN runs the command unprivileged it sets only `dns_vars_file`, a file of `name=value`
//!   lines (shell syntax, values possibly single-quoted) holding the same variables: it is read
//!   instead of the environment. `foreign_option_<n>` is not read here.
//! - anything else (`route-up`, `ipchange`, …) is ignored.
//!
//! Identity: `dev` is the tunnel device and the `interface`. The id is `openvpn:<dev>`, plus
//! `:<config stem>` when `config` is set (classic scripts get it; `--dns-updown` does not, so its ids
//! have the device only; within one mode up and down have the same id, and the DNS variables never
//! change it). The profile is the stem of `config` (`/etc/openvpn/client/corp.conf` → `corp`), else
//! `dev`: with `--dns-updown`, name the device after the profile (`dev corp` + `dev-type tun`) to get
//! a meaningful profile.
//!
//! Several `--dns server` blocks: a link has one set of servers, so one block is used. The split one is
//! the first block (lowest i) that has resolve-domains; if none has any, the first block, with no
//! routing domain. The other blocks are still checked (a malformed value anywhere is an error) but not
//! used: their resolve-domains are not routed, since they would need servers of their own. A chosen
//! block whose transport is DoT or DoH is an error: splitdns forwards plain DNS. `dnssec` is checked
//! (`yes|optional|no`) but not used: validation is driven by trust anchors and the profile config.
//!
//! Full tunnel: OpenVPN does not expose `redirect-gateway` to scripts, so it cannot be detected and is
//! left false (set it in the profile config). The hook arguments (OpenVPN appends `dev mtu …` to `--up`
//! commands) are not used.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::{Env, HookError, HookEvent, LinkUp};
use crate::domain::DomainName;
use crate::server_addr::ServerAddr;

/// Reads an OpenVPN script environment.
pub(crate) fn event(env: &Env, _args: &[String]) -> Result<Option<HookEvent>, HookError> {
    if let Some(path) = env.get("dns_vars_file").filter(|p| !p.is_empty()) {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HookError::new(format!("dns_vars_file={path:?}: cannot read it: {e}")))?;
        let vars = parse_vars_file(&text).map_err(|e| HookError::new(format!("dns_vars_file={path:?}: {e}")))?;
        return event_from(&vars).map_err(|e| HookError::new(format!("{e} (read from dns_vars_file={path:?})")));
    }
    event_from(env)
}

fn event_from(env: &Env) -> Result<Option<HookEvent>, HookError> {
    let script_type = match env.get("script_type").map(|s| s.trim()) {
        Some(s) if !s.is_empty() => s,
        _ => {
            return Err(HookError::new(
                "script_type is not set: `splitdns hook openvpn` must be run by OpenVPN (--up/--down or --dns-updown)",
            ));
        }
    };
    let (up, dns_updown) = match script_type {
        "up" => (true, false),
        "down" => (false, false),
        "dns-up" => (true, true),
        "dns-down" => (false, true),
        _ => return Ok(None),
    };
    let dev = match env.get("dev").map(|s| s.trim()) {
        Some(d) if !d.is_empty() => d,
        _ => return Err(HookError::new(format!("dev is not set (script_type={script_type})"))),
    };
    let config_stem = match env.get("config").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => None,
        Some(config) => Some(
            Path::new(config)
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| HookError::new(format!("config={config:?} does not name a file")))?,
        ),
    };
    let id = match config_stem {
        Some(stem) => format!("openvpn:{dev}:{stem}"),
        None => format!("openvpn:{dev}"),
    };
    if !up {
        return Ok(Some(HookEvent::Down { id }));
    }
    let dns = if dns_updown { dns_updown_options(env)? } else { up_options(env)? };
    if dns.servers.is_empty() {
        let block = dns.block.unwrap_or(1);
        let missing = if dns_updown || has_dns_servers(env) {
            format!("no dns_server_{block}_address_1")
        } else {
            "no foreign_option_<n> = dhcp-option DNS, and no dns_server_1_address_1".to_string()
        };
        return Err(HookError::new(format!(
            "OpenVPN gave no DNS server for {dev} ({missing}): the server must push one \
             (`push \"dhcp-option DNS …\"` or `push \"dns server 1 address …\"`)"
        )));
    }
    Ok(Some(HookEvent::Up(LinkUp {
        id,
        profile: Some(config_stem.unwrap_or(dev).to_string()),
        servers: dns.servers,
        routing_domains: dns.routing,
        search_domains: dns.search,
        interface: Some(dev.to_string()),
        ..LinkUp::default()
    })))
}

#[derive(Default)]
struct Dns {
    /// The `--dns server` block the servers came from (i of `dns_server_<i>_…`), if one was chosen.
    block: Option<u32>,
    servers: Vec<ServerAddr>,
    routing: Vec<DomainName>,
    search: Vec<DomainName>,
}

fn push<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// `<prefix><n>` variables in order of n. A suffix that is not a number is an error.
fn numbered<'a>(env: &'a Env, prefix: &str) -> Result<Vec<(&'a str, &'a str)>, HookError> {
    let mut out = BTreeMap::new();
    for (name, value) in env {
        if let Some(suffix) = name.strip_prefix(prefix) {
            let n: u32 = suffix
                .parse()
                .map_err(|_| HookError::new(format!("{name} is not an OpenVPN variable (expected {prefix}<n>)")))?;
            out.insert(n, (name.as_str(), value.as_str()));
        }
    }
    Ok(out.into_values().collect())
}

fn domain(name: &str, value: &str, word: &str) -> Result<DomainName, HookError> {
    DomainName::parse(word).map_err(|e| HookError::new(format!("{name}={value:?}: {e}")))
}

/// Whether OpenVPN set any `--dns server` variable.
fn has_dns_servers(env: &Env) -> bool {
    env.keys().any(|k| k.starts_with("dns_server_"))
}

/// What an `up` script gets: the foreign options, combined with the `--dns` variables when OpenVPN
/// set them (see the module documentation for the rules).
fn up_options(env: &Env) -> Result<Dns, HookError> {
    let legacy = foreign_options(env)?;
    if !has_dns_servers(env) && !env.keys().any(|k| k.starts_with("dns_search_domain_")) {
        return Ok(legacy);
    }
    let mut dns = dns_updown_options(env)?;
    if !has_dns_servers(env) {
        dns.servers = legacy.servers;
    }
    // Otherwise the foreign options' DNS/DNS6 are OpenVPN's translation of the `--dns` servers
    // (every block's addresses, ports dropped): the block chosen above is what counts.
    for d in legacy.routing {
        push(&mut dns.routing, d);
    }
    for d in legacy.search {
        push(&mut dns.search, d);
    }
    Ok(dns)
}

/// `foreign_option_<n>=dhcp-option TYPE value`.
fn foreign_options(env: &Env) -> Result<Dns, HookError> {
    let mut dns = Dns::default();
    for (name, value) in numbered(env, "foreign_option_")? {
        let mut words = value.split_ascii_whitespace();
        if words.next() != Some("dhcp-option") {
            continue;
        }
        let Some(kind) = words.next() else {
            return Err(HookError::new(format!("{name}={value:?}: dhcp-option without a type")));
        };
        let args: Vec<&str> = words.collect();
        let kind = kind.to_ascii_uppercase();
        match kind.as_str() {
            "DNS" | "DNS6" => {
                let [addr] = args[..] else {
                    return Err(HookError::new(format!("{name}={value:?}: dhcp-option {kind} takes one address")));
                };
                let ip: IpAddr = addr.parse().map_err(|_| {
                    HookError::new(format!("{name}={value:?}: {addr:?} is not an IPv4 or IPv6 address"))
                })?;
                push(&mut dns.servers, ServerAddr::plain(SocketAddr::new(ip, 53)));
            }
            "DOMAIN-ROUTE" | "DOMAIN" | "DOMAIN-SEARCH" | "ADAPTER_DOMAIN_SUFFIX" => {
                if args.is_empty() {
                    return Err(HookError::new(format!("{name}={value:?}: dhcp-option {kind} without a domain")));
                }
                let list = if kind == "DOMAIN-ROUTE" { &mut dns.routing } else { &mut dns.search };
                for word in args {
                    push(list, domain(name, value, word)?);
                }
            }
            // WINS, NBDD, NTP, NBT, NBS, DISABLE-NBT, DNSSEC, DEFAULT-ROUTE, …: not ours.
            _ => {}
        }
    }
    Ok(dns)
}

/// One `--dns server <i>` block.
#[derive(Default)]
struct ServerBlock {
    /// address_j → (address, port_j)
    addresses: BTreeMap<u32, (IpAddr, Option<u16>)>,
    ports: BTreeMap<u32, (String, u16)>,
    domains: BTreeMap<u32, DomainName>,
    transport: Option<(String, String)>,
}

/// `dns_server_<i>_…` and `dns_search_domain_<i>`.
fn dns_updown_options(env: &Env) -> Result<Dns, HookError> {
    let mut blocks: BTreeMap<u32, ServerBlock> = BTreeMap::new();
    let index = |name: &str, text: &str| -> Result<u32, HookError> {
        text.parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| HookError::new(format!("{name} is not an OpenVPN variable (bad index {text:?})")))
    };
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("dns_server_") else { continue };
        let Some((i, attr)) = rest.split_once('_') else {
            return Err(HookError::new(format!("{name} is not an OpenVPN variable")));
        };
        let i = index(name, i)?;
        let block = blocks.entry(i).or_default();
        let value = value.trim();
        if let Some(j) = attr.strip_prefix("address_") {
            let ip: IpAddr = value
                .parse()
                .map_err(|_| HookError::new(format!("{name}={value:?} is not an IPv4 or IPv6 address")))?;
            block.addresses.insert(index(name, j)?, (ip, None));
        } else if let Some(j) = attr.strip_prefix("port_") {
            let port = value
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| HookError::new(format!("{name}={value:?} is not a port (1-65535)")))?;
            block.ports.insert(index(name, j)?, (name.clone(), port));
        } else if let Some(j) = attr.strip_prefix("resolve_domain_") {
            block.domains.insert(index(name, j)?, domain(name, value, value)?);
        } else if attr == "dnssec" {
            if !matches!(value, "yes" | "optional" | "no") {
                return Err(HookError::new(format!("{name}={value:?}: expected yes, optional or no")));
            }
        } else if attr == "transport" {
            if !matches!(value, "plain" | "DoT" | "DoH") {
                return Err(HookError::new(format!("{name}={value:?}: expected plain, DoT or DoH")));
            }
            block.transport = Some((name.clone(), value.to_string()));
        }
        // sni and attributes of later OpenVPN versions: not used.
    }
    for (i, block) in &mut blocks {
        for (j, (port_name, port)) in std::mem::take(&mut block.ports) {
            match block.addresses.get_mut(&j) {
                Some((_, p)) => *p = Some(port),
                None => {
                    return Err(HookError::new(format!(
                        "{port_name} is set but dns_server_{i}_address_{j} is not: a port without an address"
                    )));
                }
            }
        }
    }
    let mut dns = Dns::default();
    for (name, value) in numbered(env, "dns_search_domain_")? {
        push(&mut dns.search, domain(name, value, value.trim())?);
    }
    // The split block: the first with resolve-domains, else the first.
    let chosen = blocks.iter().find(|(_, b)| !b.domains.is_empty()).or_else(|| blocks.iter().next());
    if let Some((i, block)) = chosen {
        dns.block = Some(*i);
        if let Some((name, transport)) = &block.transport
            && transport != "plain"
        {
            return Err(HookError::new(format!(
                "{name}={transport:?}: splitdns forwards plain DNS only; push a plain server for the split domains"
            )));
        }
        for (ip, port) in block.addresses.values() {
            push(&mut dns.servers, ServerAddr::plain(SocketAddr::new(*ip, port.unwrap_or(53))));
        }
        for d in block.domains.values() {
            push(&mut dns.routing, d.clone());
        }
    }
    Ok(dns)
}

/// Reads `name=value` lines as OpenVPN writes them for `dns_vars_file` (`env_set_write_file`). The
/// file is meant to be sourced by a shell, so a value may be single-quoted (`'…'`, with `'\''` for a
/// quote) or backslash-escaped. Empty lines and `#` comments are skipped.
fn parse_vars_file(text: &str) -> Result<Env, String> {
    let mut env = Env::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, raw)) = line.split_once('=') else {
            return Err(format!("line {}: {line:?} is not name=value", n + 1));
        };
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(format!("line {}: {name:?} is not a variable name", n + 1));
        }
        let value = unquote(raw).map_err(|e| format!("line {}: {name}: {e}", n + 1))?;
        env.insert(name.to_string(), value);
    }
    Ok(env)
}

/// A shell word made of plain characters, `'…'` runs and `\x` escapes (no expansion).
fn unquote(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => out.push(c),
                    None => return Err(format!("unterminated quote in {raw:?}")),
                }
            },
            '\\' => match chars.next() {
                Some(c) => out.push(c),
                None => return Err(format!("trailing backslash in {raw:?}")),
            },
            c if c.is_whitespace() => return Err(format!("unquoted white space in {raw:?}")),
            '"' | '$' | '`' => return Err(format!("unsupported shell syntax {c:?} in {raw:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::test_support::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// What an OpenVPN 2.6 client's `--up` script sees (openvpn(8) "Environmental Variables"), started
    /// as `openvpn-client@corp` (`--config corp.conf`), with pushed dhcp-options.
    fn classic_up() -> Env {
        env(&[
            ("script_type", "up"),
            ("dev", "tun0"),
            ("dev_type", "tun"),
            ("config", "corp.conf"),
            ("tun_mtu", "1500"),
            ("link_mtu", "1553"),
            ("ifconfig_local", "10.8.0.6"),
            ("ifconfig_netmask", "255.255.255.0"),
            ("script_context", "init"),
            ("common_name", "vpn.corp.example"),
            ("trusted_ip", "198.51.100.20"),
            ("trusted_port", "1194"),
            ("untrusted_ip", "198.51.100.20"),
            ("untrusted_port", "1194"),
            ("verb", "3"),
            ("daemon", "0"),
            ("foreign_option_1", "dhcp-option DNS 10.8.0.1"),
            ("foreign_option_2", "dhcp-option DNS6 fd00:8::1"),
            ("foreign_option_3", "dhcp-option DOMAIN corp.example"),
            ("foreign_option_4", "dhcp-option DOMAIN-SEARCH lab.corp.example"),
            ("foreign_option_5", "dhcp-option DOMAIN-ROUTE corp.example"),
            ("foreign_option_6", "dhcp-option DOMAIN-ROUTE 8.10.in-addr.arpa"),
            ("foreign_option_7", "dhcp-option WINS 10.8.0.2"),
            ("foreign_option_8", "dhcp-option ADAPTER_DOMAIN_SUFFIX ad.corp.example"),
            ("foreign_option_9", "dhcp-option NBT 2"),
            ("foreign_option_10", "dhcp-option DNS 10.8.0.10"),
        ])
    }

    /// What `--dns-updown` gets (dns.c `updown_env_set`), after `--dns server 1 address 10.8.0.1
    /// [fd00:8::1]:5353 resolve-domains corp.example 8.10.in-addr.arpa dnssec optional`.
    fn dns_up() -> Env {
        env(&[
            ("dev", "tun0"),
            ("script_type", "dns-up"),
            ("dns_search_domain_1", "corp.example"),
            ("dns_search_domain_2", "eu.corp.example"),
            ("dns_server_1_address_1", "10.8.0.1"),
            ("dns_server_1_address_2", "fd00:8::1"),
            ("dns_server_1_port_2", "5353"),
            ("dns_server_1_resolve_domain_1", "corp.example"),
            ("dns_server_1_resolve_domain_2", "8.10.in-addr.arpa"),
            ("dns_server_1_dnssec", "optional"),
        ])
    }

    fn up(env: &Env) -> LinkUp {
        expect_up(event(env, &[]))
    }

    fn err(env: &Env) -> String {
        expect_err(event(env, &[]))
    }

    fn servers(up: &LinkUp) -> Vec<String> {
        up.servers.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn classic_up_reads_foreign_options() {
        let up = up(&classic_up());
        assert_eq!(up.id, "openvpn:tun0:corp");
        assert_eq!(up.profile.as_deref(), Some("corp"));
        assert_eq!(up.interface.as_deref(), Some("tun0"));
        assert_eq!(servers(&up), ["10.8.0.1", "fd00:8::1", "10.8.0.10"]);
        assert_eq!(names(&up.routing_domains), ["corp.example", "8.10.in-addr.arpa"]);
        assert_eq!(names(&up.search_domains), ["corp.example", "lab.corp.example", "ad.corp.example"]);
        assert!(!up.full_tunnel);
    }

    #[test]
    fn classic_down_has_the_same_id() {
        let id = up(&classic_up()).id;
        let down = with(classic_up(), &[("script_type", "down")]);
        assert_eq!(event(&down, &[]), Ok(Some(HookEvent::Down { id })));
        // Without config: the device alone, profile = dev.
        let mut env = classic_up();
        env.remove("config");
        let link = up(&env);
        assert_eq!((link.id.as_str(), link.profile.as_deref()), ("openvpn:tun0", Some("tun0")));
        env.insert("script_type".into(), "down".into());
        assert_eq!(event(&env, &[]), Ok(Some(HookEvent::Down { id: link.id })));
    }

    #[test]
    fn config_path_gives_its_stem() {
        let link = up(&with(classic_up(), &[("config", "/etc/openvpn/client/Corp-EU.ovpn")]));
        assert_eq!(link.id, "openvpn:tun0:Corp-EU");
        assert_eq!(link.profile.as_deref(), Some("Corp-EU"));
    }

    #[test]
    fn other_script_types_are_ignored() {
        for t in ["route-up", "route-pre-down", "ipchange", "tls-verify", "client-connect"] {
            assert_eq!(event(&with(classic_up(), &[("script_type", t)]), &[]), Ok(None), "{t}");
        }
        let mut env = classic_up();
        env.remove("script_type");
        assert!(err(&env).contains("script_type"));
    }

    #[test]
    fn non_dhcp_foreign_options_and_case() {
        let env = env(&[
            ("script_type", "up"),
            ("dev", "tun1"),
            ("foreign_option_1", "route-gateway 10.9.0.1"),
            ("foreign_option_2", "dhcp-option dns 10.9.0.1"),
            ("foreign_option_3", "dhcp-option domain-route Corp.Example."),
        ]);
        let link = up(&env);
        assert_eq!(servers(&link), ["10.9.0.1"]);
        assert_eq!(names(&link.routing_domains), ["corp.example"]);
    }

    #[test]
    fn classic_malformed_values_are_errors() {
        let e = err(&with(classic_up(), &[("foreign_option_1", "dhcp-option DNS 10.8.0.300")]));
        assert!(e.contains("foreign_option_1") && e.contains("10.8.0.300"), "{e}");
        let e = err(&with(classic_up(), &[("foreign_option_2", "dhcp-option DNS6 dns.corp.example")]));
        assert!(e.contains("foreign_option_2") && e.contains("dns.corp.example"), "{e}");
        let e = err(&with(classic_up(), &[("foreign_option_1", "dhcp-option DNS 10.8.0.1 10.8.0.2")]));
        assert!(e.contains("foreign_option_1"), "{e}");
        let e = err(&with(classic_up(), &[("foreign_option_5", "dhcp-option DOMAIN-ROUTE ~corp.example")]));
        assert!(e.contains("foreign_option_5") && e.contains("~corp.example"), "{e}");
        let e = err(&with(classic_up(), &[("foreign_option_3", "dhcp-option DOMAIN")]));
        assert!(e.contains("foreign_option_3"), "{e}");
        let e = err(&with(classic_up(), &[("foreign_option_x", "dhcp-option DNS 10.0.0.1")]));
        assert!(e.contains("foreign_option_x"), "{e}");
    }

    #[test]
    fn no_server_is_an_error() {
        let mut env = classic_up();
        env.retain(|k, v| !(k.starts_with("foreign_option_") && v.contains(" DNS")));
        let e = err(&env);
        assert!(e.contains("tun0") && e.contains("DNS"), "{e}");
        let mut env = dns_up();
        env.retain(|k, _| !k.contains("_address_") && !k.contains("_port_"));
        assert!(err(&env).contains("dns_server_1_address_1"));
    }

    /// What an OpenVPN 2.6 client's `--up` script sees after the server pushed `dns server 1 address
    /// 10.9.0.53`, `dns server 1 resolve-domains corp.example` and `dhcp-option DOMAIN
    /// lab.corp.example`: the `--dns` variables and their `foreign_option_<n>` translation.
    fn up_with_dns_push() -> Env {
        env(&[
            ("script_type", "up"),
            ("dev", "tun0"),
            ("config", "/etc/openvpn/client/corp.conf"),
            ("dns_server_1_address_1", "10.9.0.53"),
            ("dns_server_1_resolve_domain_1", "corp.example"),
            ("foreign_option_1", "dhcp-option DOMAIN lab.corp.example"),
            ("foreign_option_2", "dhcp-option DNS 10.9.0.53"),
        ])
    }

    #[test]
    fn up_reads_openvpn_26_dns_variables_beside_their_foreign_option_translation() {
        let link = up(&up_with_dns_push());
        assert_eq!(link.id, "openvpn:tun0:corp");
        assert_eq!(link.profile.as_deref(), Some("corp"));
        assert_eq!(servers(&link), ["10.9.0.53"]);
        assert_eq!(names(&link.routing_domains), ["corp.example"]);
        assert_eq!(names(&link.search_domains), ["lab.corp.example"]);
        // The down event of the same connection has the same id: the DNS variables do not change it.
        let down = with(up_with_dns_push(), &[("script_type", "down")]);
        assert_eq!(event(&down, &[]), Ok(Some(HookEvent::Down { id: link.id })));
    }

    #[test]
    fn up_takes_servers_from_the_dns_block_not_from_the_translation() {
        // A port, which the translation drops, and a second block without resolve-domains, whose
        // address the translation lists too: the split block's servers are the link's servers.
        let env = with(
            up_with_dns_push(),
            &[
                ("dns_server_1_port_1", "5353"),
                ("dns_server_2_address_1", "10.9.1.53"),
                ("dns_search_domain_1", "corp.example"),
                ("foreign_option_3", "dhcp-option DNS 10.9.1.53"),
                ("foreign_option_4", "dhcp-option DOMAIN-SEARCH corp.example"),
                ("foreign_option_5", "dhcp-option DOMAIN-ROUTE 9.10.in-addr.arpa"),
            ],
        );
        let link = up(&env);
        assert_eq!(servers(&link), ["10.9.0.53:5353"]);
        // Domains from both families, `--dns` ones first, each once.
        assert_eq!(names(&link.routing_domains), ["corp.example", "9.10.in-addr.arpa"]);
        assert_eq!(names(&link.search_domains), ["corp.example", "lab.corp.example"]);
        // Search domains alone (no dns_server_*): servers still come from the foreign options.
        let mut env = env;
        env.retain(|k, _| !k.starts_with("dns_server_"));
        let link = up(&env);
        assert_eq!(servers(&link), ["10.9.0.53", "10.9.1.53"]);
        assert_eq!(names(&link.search_domains), ["corp.example", "lab.corp.example"]);
        assert_eq!(names(&link.routing_domains), ["9.10.in-addr.arpa"]);
    }

    #[test]
    fn up_with_only_dhcp_option_dns_and_domain() {
        // What most OpenVPN servers push: `dhcp-option DNS` and `dhcp-option DOMAIN`, nothing else.
        let env = env(&[
            ("script_type", "up"),
            ("dev", "tun0"),
            ("config", "corp.conf"),
            ("foreign_option_1", "dhcp-option DNS 10.8.0.1"),
            ("foreign_option_2", "dhcp-option DOMAIN corp.example"),
        ]);
        let link = up(&env);
        assert_eq!(servers(&link), ["10.8.0.1"]);
        assert!(link.routing_domains.is_empty(), "{:?}", link.routing_domains);
        // A search domain: the daemon routes it unless the profile says `search_domains = false`.
        assert_eq!(names(&link.search_domains), ["corp.example"]);
    }

    #[test]
    fn up_with_a_malformed_dns_server_variable_is_an_error_naming_it() {
        for (k, v) in [
            ("dns_server_1_address_1", "10.9.0.x"),
            ("dns_server_1_resolve_domain_1", "corp example"),
            ("dns_server_1_port_1", "0"),
            ("dns_search_domain_1", "-bad.example"),
        ] {
            let e = err(&with(up_with_dns_push(), &[(k, v)]));
            assert!(e.contains(k) && e.contains(v), "{k}={v}: {e}");
        }
        let e = err(&with(up_with_dns_push(), &[("dns_server_x_address_1", "10.9.0.53")]));
        assert!(e.contains("dns_server_x_address_1"), "{e}");
        // A block with domains but no address: no server, said plainly.
        let mut env = up_with_dns_push();
        env.remove("dns_server_1_address_1");
        let e = err(&env);
        assert!(e.contains("dns_server_1_address_1") && e.contains("tun0"), "{e}");
    }

    #[test]
    fn dns_updown_reads_dns_server_variables() {
        let up = up(&dns_up());
        assert_eq!(up.id, "openvpn:tun0");
        assert_eq!(up.profile.as_deref(), Some("tun0"));
        assert_eq!(up.interface.as_deref(), Some("tun0"));
        assert_eq!(servers(&up), ["10.8.0.1", "[fd00:8::1]:5353"]);
        assert_eq!(names(&up.routing_domains), ["corp.example", "8.10.in-addr.arpa"]);
        assert_eq!(names(&up.search_domains), ["corp.example", "eu.corp.example"]);
    }

    #[test]
    fn dns_down_has_the_same_id() {
        let id = up(&dns_up()).id;
        let down = env(&[("dev", "tun0"), ("script_type", "dns-down")]);
        assert_eq!(event(&down, &[]), Ok(Some(HookEvent::Down { id })));
    }

    #[test]
    fn the_first_block_with_resolve_domains_is_the_split_one() {
        // Block 1: a full resolver without domains; block 2: the split one; block 3: another split one.
        let env = env(&[
            ("dev", "tun0"),
            ("script_type", "dns-up"),
            ("dns_server_1_address_1", "10.8.0.1"),
            ("dns_server_2_address_1", "10.8.2.1"),
            ("dns_server_2_resolve_domain_1", "corp.example"),
            ("dns_server_3_address_1", "10.8.3.1"),
            ("dns_server_3_resolve_domain_1", "lab.example"),
            ("dns_server_10_address_1", "10.8.10.1"),
        ]);
        let link = up(&env);
        assert_eq!(servers(&link), ["10.8.2.1"]);
        assert_eq!(names(&link.routing_domains), ["corp.example"]);
        // Without resolve-domains anywhere: the first block, no routing domain.
        let mut env = env;
        env.retain(|k, _| !k.contains("resolve_domain"));
        let link = up(&env);
        assert_eq!(servers(&link), ["10.8.0.1"]);
        assert!(link.routing_domains.is_empty());
        // Blocks that are not used are still checked.
        let e = err(&with(env, &[("dns_server_3_address_2", "10.8.3.x")]));
        assert!(e.contains("dns_server_3_address_2") && e.contains("10.8.3.x"), "{e}");
    }

    #[test]
    fn dns_updown_malformed_values_are_errors() {
        for (k, v) in [
            ("dns_server_1_address_1", "10.8.0.1:53"),
            ("dns_server_1_port_2", "0"),
            ("dns_server_1_port_2", "70000"),
            ("dns_server_1_resolve_domain_2", "corp example"),
            ("dns_search_domain_2", "-bad.example"),
            ("dns_server_1_dnssec", "maybe"),
            ("dns_server_1_transport", "QUIC"),
        ] {
            let e = err(&with(dns_up(), &[(k, v)]));
            assert!(e.contains(k) && e.contains(v), "{k}={v}: {e}");
        }
        let e = err(&with(dns_up(), &[("dns_server_1_port_3", "53")]));
        assert!(e.contains("dns_server_1_port_3") && e.contains("dns_server_1_address_3"), "{e}");
        let e = err(&with(dns_up(), &[("dns_server_1_transport", "DoT")]));
        assert!(e.contains("dns_server_1_transport") && e.contains("plain"), "{e}");
        assert!(up(&with(dns_up(), &[("dns_server_1_transport", "plain")])).servers.len() == 2);
    }

    #[test]
    fn dns_vars_file_is_read_instead_of_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openvpn_dvf_58b95c0c97b2db43afb5d745f986c53c.tmp");
        std::fs::write(
            &path,
            "dev=tun3\nscript_type=dns-up\ndns_search_domain_1='corp.example'\n\
             dns_server_1_address_1=10.8.0.1\ndns_server_1_resolve_domain_1='corp'\\''s.example'\n",
        )
        .unwrap();
        let env = env(&[("dns_vars_file", path.to_str().unwrap())]);
        // A quote inside a quoted value is kept, and then refused as a domain name.
        let e = err(&env);
        assert!(e.contains("dns_vars_file") && e.contains("corp's.example"), "{e}");
        std::fs::write(
            &path,
            "dev=tun3\nscript_type=dns-up\ndns_search_domain_1='corp.example'\n\
             dns_server_1_address_1=10.8.0.1\ndns_server_1_resolve_domain_1='corp.example'\n",
        )
        .unwrap();
        let link = up(&env);
        assert_eq!(link.id, "openvpn:tun3");
        assert_eq!(servers(&link), ["10.8.0.1"]);
        assert_eq!(names(&link.routing_domains), ["corp.example"]);
        assert_eq!(names(&link.search_domains), ["corp.example"]);
        std::fs::write(&path, "dev=tun3\nscript_type=dns-down\n").unwrap();
        assert_eq!(event(&env, &[]), Ok(Some(HookEvent::Down { id: "openvpn:tun3".into() })));
        // Unreadable or malformed files are errors naming the file.
        std::fs::write(&path, "dev=tun3\nscript_type='dns-up\n").unwrap();
        let e = err(&env);
        assert!(e.contains("dns_vars_file") && e.contains("line 2"), "{e}");
        let missing = env_missing(&dir);
        assert!(err(&missing).contains("cannot read"));
    }

    fn env_missing(dir: &tempfile::TempDir) -> Env {
        env(&[("dns_vars_file", dir.path().join("gone").to_str().unwrap())])
    }

    #[test]
    fn vars_file_syntax() {
        let vars = parse_vars_file("# c\n\na=1\nb='x y'\nc='it'\\''s'\nexport d=\\$\n").unwrap();
        assert_eq!(vars["a"], "1");
        assert_eq!(vars["b"], "x y");
        assert_eq!(vars["c"], "it's");
        assert_eq!(vars["d"], "$");
        for bad in ["novalue", "1a=x", "a=x y", "a='x", "a=\"x\"", "a=$HOME", "a=x\\"] {
            assert!(parse_vars_file(bad).is_err(), "{bad:?}");
        }
    }
}
