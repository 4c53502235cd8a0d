//! A DNS server as a user, a config file or a hook names it: an address, a port and a transport.
//!
//! One spelling everywhere a server is given (config `upstream`, `--upstream`, `link up --server`,
//! profile servers, hook profile settings, `links.json`):
//!
//! | spelling                      | transport                                  | default port |
//! |-------------------------------|--------------------------------------------|--------------|
//! | `ADDR`, `ADDR:PORT`           | UDP, TCP on truncation or silence          | 53           |
//! | `tcp://ADDR[:PORT]`           | TCP only (RFC 7766), connections reused     | 53           |
//! | `tls://ADDR[:PORT][#NAME]`    | DNS over TLS (RFC 7858), strict (RFC 8310)  | 853          |
//! | `ADDR[:PORT]#NAME`            | the same as `tls://` (systemd-resolved's)  | 853          |
//!
//! `NAME` is the name the server's certificate must carry; without it the certificate must carry
//! the server's IP address. IPv6 addresses with a port are bracketed: `tls://[fd00::1]:853#dns.corp`.
//!
//! This module is only the value type and its text form; the daemon's `dns::upstream` speaks the
//! transports, `dns::tls` checks certificates.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a server is spoken to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP first; TCP when an answer is truncated or UDP stays silent.
    Udp,
    /// TCP only.
    Tcp,
    /// DNS over TLS; the certificate must carry `name`, or the server's IP address when `None`.
    Tls { name: Option<String> },
}

/// A DNS server: where, and how.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerAddr {
    pub addr: SocketAddr,
    pub transport: Transport,
}

impl ServerAddr {
    /// A server spoken to over UDP (then TCP): what DHCP, VPN pushes and resolv.conf give.
    pub fn plain(addr: SocketAddr) -> Self {
        Self { addr, transport: Transport::Udp }
    }

    /// The name a TLS server's certificate must carry, if this is a TLS server.
    pub fn tls_name(&self) -> Option<String> {
        match &self.transport {
            Transport::Tls { name: Some(n) } => Some(n.clone()),
            Transport::Tls { name: None } => Some(self.addr.ip().to_string()),
            _ => None,
        }
    }
}

const HELP: &str = "use ADDR[:PORT], tcp://ADDR[:PORT] or tls://ADDR[:PORT]#NAME, \
e.g. 10.0.0.1, [fd00::1]:5300, tcp://10.0.0.1 or tls://9.9.9.9#dns.quad9.net";

impl FromStr for ServerAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
            None => (None, text),
        };
        let (host, name) = match rest.split_once('#') {
            Some((host, name)) => (host, Some(name)),
            None => (rest, None),
        };
        let tls = match (scheme.as_deref(), name) {
            (Some("tls"), _) | (None, Some(_)) => true,
            (Some("tcp") | Some("udp"), Some(_)) => {
                return Err(format!("{text:?}: a #NAME only goes with tls:// (the name a certificate carries)"));
            }
            (Some("tcp") | Some("udp") | None, None) => false,
            (Some(other), _) => {
                return Err(format!("{text:?}: unknown transport {other:?}://; {HELP}"));
            }
        };
        let default_port = if tls { 853 } else { 53 };
        let addr =
            socket_addr(host, default_port).ok_or_else(|| format!("{text:?} is not a server address: {HELP}"))?;
        if addr.port() == 0 {
            return Err(format!("{text:?}: port 0 is not a server port"));
        }
        let transport = if tls {
            Transport::Tls { name: name.map(|n| tls_name(n, text)).transpose()? }
        } else if scheme.as_deref() == Some("tcp") {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        Ok(ServerAddr { addr, transport })
    }
}

fn socket_addr(host: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(sa) = host.parse::<SocketAddr>() {
        return Some(sa);
    }
    host.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, default_port))
}

/// A certificate name: a host name a certificate can carry (lower case, no trailing dot).
fn tls_name(name: &str, text: &str) -> Result<String, String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return Err(format!("{text:?}: the name after # is empty; drop the # to check the IP address instead"));
    }
    match rustls_pki_types::ServerName::try_from(name.as_str()) {
        Ok(_) => Ok(name),
        Err(_) => Err(format!("{text:?}: {name:?} is not a name a certificate can carry")),
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, default_port) = match self.transport {
            Transport::Udp => ("", 53),
            Transport::Tcp => ("tcp://", 53),
            Transport::Tls { .. } => ("tls://", 853),
        };
        f.write_str(scheme)?;
        if self.addr.port() == default_port {
            write!(f, "{}", self.addr.ip())?;
        } else {
            write!(f, "{}", self.addr)?;
        }
        if let Transport::Tls { name: Some(name) } = &self.transport {
            write!(f, "#{name}")?;
        }
        Ok(())
    }
}

impl TryFrom<String> for ServerAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ServerAddr> for String {
    fn from(s: ServerAddr) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ServerAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn plain_forms_keep_their_meaning() {
        assert_eq!(parse("10.0.0.1"), ServerAddr::plain("10.0.0.1:53".parse().unwrap()));
        assert_eq!(parse("10.0.0.1:5300").addr.port(), 5300);
        assert_eq!(parse("[fd00::1]:5300").addr.port(), 5300);
        assert_eq!(parse("fd00::1").addr.port(), 53);
        assert_eq!(parse("udp://10.0.0.1").transport, Transport::Udp);
        for bad in ["", "host.example", "10.0.0.1:0", "10.0.0.1:99999", "fd00::1:53]"] {
            assert!(bad.parse::<ServerAddr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stream_and_tls_forms() {
        let tcp = parse("tcp://10.0.0.1");
        assert_eq!((tcp.addr.port(), &tcp.transport), (53, &Transport::Tcp));
        let tls = parse("tls://9.9.9.9#DNS.Quad9.net.");
        assert_eq!(tls.addr, "9.9.9.9:853".parse().unwrap());
        assert_eq!(tls.transport, Transport::Tls { name: Some("dns.quad9.net".into()) });
        assert_eq!(tls.tls_name().as_deref(), Some("dns.quad9.net"));
        assert_eq!(parse("TLS://[fd00::1]:8853#dns.corp").addr.port(), 8853);
        // systemd-resolved's spelling is TLS.
        assert_eq!(parse("1.1.1.1#one.one.one.one"), parse("tls://1.1.1.1:853#one.one.one.one"));
        // Without a name, the certificate must carry the address.
        let bare = parse("tls://fd00::1");
        assert_eq!((bare.addr.port(), bare.tls_name().as_deref()), (853, Some("fd00::1")));
        for bad in
            ["tcp://10.0.0.1#x.test", "https://10.0.0.1", "tls://10.0.0.1#", "tls://10.0.0.1#bad name", "tls://x#y"]
        {
            assert!(bad.parse::<ServerAddr>().is_err(), "{bad:?}");
        }
        assert!("ftp://1.2.3.4".parse::<ServerAddr>().unwrap_err().contains("unknown transport"));
    }

    #[test]
    fn text_form_round_trips_and_omits_default_ports() {
        for (input, shown) in [
            ("10.0.0.1:53", "10.0.0.1"),
            ("10.0.0.1:5300", "10.0.0.1:5300"),
            ("tcp://10.0.0.1:53", "tcp://10.0.0.1"),
            ("tls://10.0.0.1:853#dot.test", "tls://10.0.0.1#dot.test"),
            ("tls://[fd00::1]:8853", "tls://[fd00::1]:8853"),
            ("fd00::1#dot.test", "tls://fd00::1#dot.test"),
        ] {
            let s = parse(input);
            assert_eq!(s.to_string(), shown);
            assert_eq!(parse(shown), s, "{shown} reads back");
        }
        let json = serde_json::to_string(&parse("tls://10.0.0.1#dot.test")).unwrap();
        assert_eq!(json, r#""tls://10.0.0.1#dot.test""#);
    }
}
