//! wg-quick `PostUp` / `PostDown` lines.
//!
//! wg-quick passes nothing DNS-related to hooks (its own `DNS =` goes to resolvconf, and should be left
//! out of the interface config), so the user writes everything on the hook line:
//!
//! ```text
//! up|down IFACE [--server ADDR[:PORT]]... [--domain NAME]... [--ta DS]... [--profile NAME] [--full-tunnel]
//! ```
//!
//! Each option also takes the `--option=value` form. `--domain` names are routing domains; `--ta` is a
//! DS record in presentation form (quote it: it has spaces). The link id is `wireguard:<IFACE>` (`%i`
//! in wg-quick), the same for up and down; the interface is IFACE and the profile defaults to it.
//! Unknown options, repeated `--profile`, and malformed values are errors. The environment is not read.

use super::{Env, HookError, HookEvent, LinkUp};
use crate::domain::DomainName;
use crate::server_addr::ServerAddr;
use crate::trust::DsAnchor;

const USAGE: &str = "usage: splitdns hook wireguard up|down IFACE [--server ADDR[:PORT]]... [--domain NAME]... \
                     [--ta DS]... [--profile NAME] [--full-tunnel]";

/// Reads the arguments of a wg-quick hook line.
pub(crate) fn event(_env: &Env, args: &[String]) -> Result<Option<HookEvent>, HookError> {
    let bad = |msg: String| HookError::new(format!("{msg}\n{USAGE}"));
    let mut positional = Vec::new();
    let mut link = LinkUp::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(option) = arg.strip_prefix("--") else {
            positional.push(arg.as_str());
            continue;
        };
        let (name, inline) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        if name == "full-tunnel" {
            if inline.is_some() {
                return Err(bad(format!("{arg:?}: --full-tunnel takes no value")));
            }
            link.full_tunnel = true;
            continue;
        }
        if !matches!(name, "server" | "domain" | "ta" | "profile") {
            return Err(bad(format!("unknown option {arg:?}")));
        }
        let value = match inline {
            Some(v) => v,
            None => iter.next().map(String::as_str).ok_or_else(|| bad(format!("--{name} needs a value")))?,
        };
        match name {
            "server" => {
                let server: ServerAddr = value.parse().map_err(|e| bad(format!("--server {value:?}: {e}")))?;
                if !link.servers.contains(&server) {
                    link.servers.push(server);
                }
            }
            "domain" => {
                let domain = DomainName::parse(value).map_err(|e| bad(format!("--domain {value:?}: {e}")))?;
                if !link.routing_domains.contains(&domain) {
                    link.routing_domains.push(domain);
                }
            }
            "ta" => {
                let anchor: DsAnchor = value.parse().map_err(|e| bad(format!("--ta {value:?}: {e}")))?;
                if !link.anchors.contains(&anchor) {
                    link.anchors.push(anchor);
                }
            }
            _ => {
                if link.profile.is_some() {
                    return Err(bad(format!("--profile {value:?}: --profile is given twice")));
                }
                if value.trim().is_empty() {
                    return Err(bad("--profile needs a non-empty name".to_string()));
                }
                link.profile = Some(value.to_string());
            }
        }
    }
    let (up, iface) = match positional[..] {
        [] => return Err(bad("missing up|down and the interface".to_string())),
        [verb, ..] if verb != "up" && verb != "down" => return Err(bad(format!("{verb:?} is not up or down"))),
        [verb] => return Err(bad(format!("{verb}: missing the interface"))),
        [verb, iface] => (verb == "up", iface),
        [_, _, extra, ..] => return Err(bad(format!("unexpected argument {extra:?}"))),
    };
    if iface.is_empty() || iface.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/') {
        return Err(bad(format!("{iface:?} is not an interface name")));
    }
    let id = format!("wireguard:{iface}");
    if !up {
        return Ok(Some(HookEvent::Down { id }));
    }
    if link.servers.is_empty() {
        return Err(bad(format!("wireguard {iface}: give at least one --server (the DNS server inside the tunnel)")));
    }
    link.id = id;
    link.interface = Some(iface.to_string());
    if link.profile.is_none() {
        link.profile = Some(iface.to_string());
    }
    Ok(Some(HookEvent::Up(link)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DS: &str = "corp.example. IN DS 12345 13 2 E2D3C916F6DEEAC73294E8268FB5885044A833FC5459588F4A9184CFC41A5766";

    fn call(line: &[&str]) -> Result<Option<HookEvent>, HookError> {
        let args: Vec<String> = line.iter().map(|s| s.to_string()).collect();
        event(&Env::new(), &args)
    }

    fn up(line: &[&str]) -> LinkUp {
        match call(line) {
            Ok(Some(HookEvent::Up(up))) => up,
            other => panic!("expected an up event, got {other:?}"),
        }
    }

    fn err(line: &[&str]) -> String {
        match call(line) {
            Err(e) => e.0,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn full_post_up_line() {
        // PostUp = splitdns hook wireguard up %i --server 10.7.0.1 --server [fd00:7::1]:5353
        //          --domain corp.example --domain=7.10.in-addr.arpa --ta '<DS>' --profile corp
        let up = up(&[
            "up",
            "wg-corp",
            "--server",
            "10.7.0.1",
            "--server",
            "[fd00:7::1]:5353",
            "--domain",
            "Corp.Example.",
            "--domain=7.10.in-addr.arpa",
            "--ta",
            DS,
            "--profile",
            "corp",
        ]);
        assert_eq!(up.id, "wireguard:wg-corp");
        assert_eq!(up.interface.as_deref(), Some("wg-corp"));
        assert_eq!(up.profile.as_deref(), Some("corp"));
        let servers: Vec<String> = up.servers.iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["10.7.0.1", "[fd00:7::1]:5353"]);
        let domains: Vec<&str> = up.routing_domains.iter().map(DomainName::as_str).collect();
        assert_eq!(domains, ["corp.example", "7.10.in-addr.arpa"]);
        assert_eq!(up.anchors.len(), 1);
        assert_eq!(up.anchors[0].key_tag, 12345);
        assert!(up.search_domains.is_empty());
        assert!(!up.full_tunnel);
    }

    #[test]
    fn minimal_line_and_defaults() {
        let up = up(&["up", "wg0", "--server=10.7.0.1:5300", "--full-tunnel"]);
        assert_eq!(up.profile.as_deref(), Some("wg0"));
        assert_eq!(up.servers[0].addr.port(), 5300);
        assert!(up.full_tunnel);
        // Options may come before the positional arguments.
        assert_eq!(
            super::event(&Env::new(), &["--server".into(), "10.7.0.1".into(), "up".into(), "wg0".into()])
                .map(|e| matches!(e, Some(HookEvent::Up(_)))),
            Ok(true)
        );
    }

    #[test]
    fn down_has_the_same_id() {
        let id = up(&["up", "wg0", "--server", "10.7.0.1"]).id;
        assert_eq!(call(&["down", "wg0"]), Ok(Some(HookEvent::Down { id: id.clone() })));
        // The up line copied to PostDown with its options also works, and is still checked.
        assert_eq!(
            call(&["down", "wg0", "--server", "10.7.0.1", "--domain", "corp.example"]),
            Ok(Some(HookEvent::Down { id }))
        );
        assert!(err(&["down", "wg0", "--server", "nope"]).contains("--server"));
    }

    #[test]
    fn errors() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "missing up|down"),
            (&["up"], "missing the interface"),
            (&["start", "wg0"], "\"start\" is not up or down"),
            (&["up", "wg0", "extra"], "unexpected argument \"extra\""),
            (&["up", "wg0"], "at least one --server"),
            (&["up", "wg0", "--server"], "--server needs a value"),
            (&["up", "wg0", "--server", "10.7.0.300"], "10.7.0.300"),
            (&["up", "wg0", "--server", "10.7.0.1", "--domain", "corp..example"], "corp..example"),
            (&["up", "wg0", "--server", "10.7.0.1", "--ta", "corp.example. IN DS 1 13 2 XYZ"], "--ta"),
            (&["up", "wg0", "--server", "10.7.0.1", "--dns", "10.7.0.1"], "unknown option \"--dns\""),
            (&["up", "wg0", "--server", "10.7.0.1", "-s", "10.7.0.1"], "unexpected argument \"-s\""),
            (&["up", "wg0", "--server", "10.7.0.1", "--full-tunnel=yes"], "takes no value"),
            (&["up", "wg0", "--server", "10.7.0.1", "--profile", "a", "--profile", "b"], "given twice"),
            (&["up", "wg0", "--server", "10.7.0.1", "--profile="], "non-empty"),
            (&["up", "wg 0", "--server", "10.7.0.1"], "not an interface name"),
        ];
        for (line, want) in cases {
            let e = err(line);
            assert!(e.contains(want), "{line:?}: {e}");
            assert!(e.contains("usage:"), "{line:?}: {e}");
        }
    }
}
