//! Configuration: one TOML file, command-line overrides, and defaults — every option in one place.
//!
//! ```toml
//! # /etc/splitdns/config.toml (system) or ~/.config/splitdns/config.toml (user)
//! listen = ["127.0.0.1:5353"]        # loopback only; port 53 needs CAP_NET_BIND_SERVICE
//! upstream = ["192.0.2.53"]          # default: follow the system's servers as they change;
//!                                    # also tcp://ADDR[:PORT] and tls://ADDR[:PORT]#NAME (DNS over TLS)
//! default_upstream_tls = "off"       # "opportunistic": TLS on 853 when the system's servers speak it;
//!                                    # "strict": TLS only, certificate for the server's IP address
//! tls_ca_file = "/etc/splitdns/ca.pem"  # default: the system trust store; set: only these CAs
//! resolv_conf = "/etc/resolv.conf"   # default: NetworkManager's, resolved's, or /etc/resolv.conf
//! control_socket = "/run/splitdns/control.sock"
//! control_group = "netdev"           # members may do everything on the control socket, like root
//! watch_group = "splitdns"           # members may only read: status, query, watch (a desktop notifier)
//! state_dir = "/var/lib/splitdns"
//! whitelist = "/etc/splitdns/whitelist"  # domains whose VPN trust anchors may be used; edited by people only
//! query_timeout_ms = 4000            # per client query, across all servers and retries
//! cache_max_bytes = 1048576
//! cache_max_ttl = 86400
//! cache_max_negative_ttl = 900
//! max_in_flight_per_route = 256      # queries waiting on one link's (or the default upstream's) servers
//! max_in_flight = 1024               # … on all links together; more are refused at once (SERVFAIL)
//!
//! [profiles."corp"]                  # per VPN profile (the name the hook reports)
//! domains = ["corp.example"]         # split domains added to what the VPN sends
//! replace_domains = false            # true: ignore the VPN's split domains, use only these
//! anchors = ["corp.example. IN DS 12345 13 2 ABCD…"]   # still subject to the whitelist
//! search_domains = true              # false: the VPN's search domains (OpenVPN DOMAIN, …) are not routed
//! default_route = false              # true: a full tunnel of this profile takes the default route
//! allow_public_suffix = false        # true: may claim a public suffix such as `com` (a VPN that owns one)
//! servers = ["tls://10.1.0.53#dns.corp.example"]  # instead of the servers the VPN pushes
//! tls_name = "dns.corp.example"      # ask the VPN's pushed servers over TLS (port 853), certificate for this name
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use crate::dns::cache::Limits;
use crate::dns::route::Budget;
use crate::dns::upstream::Timing;
use crate::domain::DomainName;
use crate::server_addr::{ServerAddr, Transport};
use crate::trust::DsAnchor;

/// The config file as written. Unknown keys are errors, so a typo is never silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub listen: Option<Vec<SocketAddr>>,
    pub upstream: Option<Vec<ServerAddr>>,
    pub resolv_conf: Option<PathBuf>,
    pub control_socket: Option<PathBuf>,
    pub control_group: Option<String>,
    /// Members of this group may read through the control socket (`status`, `query`, `watch`),
    /// not change links or flush the cache.
    pub watch_group: Option<String>,
    pub state_dir: Option<PathBuf>,
    /// The trust-anchor whitelist file: domains whose VPN-supplied DS anchors may be used.
    pub whitelist: Option<PathBuf>,
    pub query_timeout_ms: Option<u64>,
    pub cache_max_bytes: Option<u64>,
    pub cache_max_ttl: Option<u32>,
    pub cache_max_negative_ttl: Option<u32>,
    /// Queries that may wait on one route's servers at once (a link, or the default upstream).
    pub max_in_flight_per_route: Option<usize>,
    /// Queries that may wait on all links' servers together.
    pub max_in_flight: Option<usize>,
    /// CA certificates (PEM) trusted for `tls://` servers instead of the system trust store.
    pub tls_ca_file: Option<PathBuf>,
    /// DNS over TLS for the default upstream's plain servers (those followed from the system).
    pub default_upstream_tls: Option<DefaultUpstreamTls>,
    /// Per-VPN-profile settings, keyed by profile name (`[profiles."corp"]`).
    #[serde(default)]
    pub profiles: HashMap<String, Profile>,
}

/// DNS over TLS for the default upstream's plain servers (`default_upstream_tls`), as
/// systemd-resolved's `DNSOverTLS=`. Servers written `tls://…` are TLS whatever this says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DefaultUpstreamTls {
    /// Clear text (UDP, then TCP).
    #[default]
    Off,
    /// Port 853 with TLS first, certificate not checked (against passive eavesdroppers only);
    /// clear text when a server does not speak TLS there.
    Opportunistic,
    /// TLS on port 853 only, certificate checked against the server's IP address; never clear
    /// text. Needs servers with such certificates (e.g. 1.1.1.1, 9.9.9.9).
    Strict,
}

impl std::fmt::Display for DefaultUpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Opportunistic => "opportunistic",
            Self::Strict => "strict",
        })
    }
}

/// Settings for the links of one VPN profile (the name a hook reports, e.g. strongSwan's
/// `PLUTO_CONNECTION` or NetworkManager's `CONNECTION_ID`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    /// Split domains added to what the VPN sends (strongSwan sends none at all).
    #[serde(default)]
    pub domains: Vec<DomainName>,
    /// Use only `domains`, ignoring the split domains the VPN sends.
    #[serde(default)]
    pub replace_domains: bool,
    /// DS trust anchors added to what the VPN sends (still subject to the whitelist).
    #[serde(default)]
    pub anchors: Vec<DsAnchor>,
    /// Treat the VPN's search domains (OpenVPN `DOMAIN`, `DOMAIN-SEARCH`, …) as split domains too.
    /// On by default, as systemd-resolved routes a link's search domains to that link: most VPN
    /// servers push their internal domain only as a search domain, and leaving it unrouted would
    /// send internal names to the public upstream.
    #[serde(default = "yes")]
    pub search_domains: bool,
    /// A full-tunnel link of this profile becomes the default upstream while it is up.
    #[serde(default)]
    pub default_route: bool,
    /// Links of this profile may claim a listed public suffix (`com`, `co.uk`, `github.io`), for
    /// the rare VPN that owns one. Off: such a claim is refused like a conflict.
    #[serde(default)]
    pub allow_public_suffix: bool,
    /// Servers used instead of the ones the VPN pushes (any spelling: `tls://ADDR#NAME`, …).
    #[serde(default)]
    pub servers: Vec<ServerAddr>,
    /// Ask the VPN's plain servers over DNS over TLS (port 853) with certificates for this name.
    pub tls_name: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for Profile {
    /// The settings of a profile the config file does not mention.
    fn default() -> Self {
        Self {
            domains: vec![],
            replace_domains: false,
            anchors: vec![],
            search_domains: true,
            default_route: false,
            allow_public_suffix: false,
            servers: vec![],
            tls_name: None,
        }
    }
}

impl Profile {
    /// Applies this profile's settings to a link a hook reported. The VPN's search domains are
    /// consumed: they are split domains afterwards, or dropped.
    pub(crate) fn apply(&self, spec: &mut crate::state::LinkSpec) {
        let mut domains = if self.replace_domains { vec![] } else { std::mem::take(&mut spec.domains) };
        // `replace_domains` ignores everything the VPN pushed, search domains included.
        if self.search_domains && !self.replace_domains {
            domains.append(&mut spec.search_domains);
        }
        spec.search_domains.clear();
        domains.extend(self.domains.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        domains.retain(|d| seen.insert(d.clone()));
        spec.domains = domains;
        for a in &self.anchors {
            if !spec.anchors.contains(a) {
                spec.anchors.push(a.clone());
            }
        }
        if self.default_route && spec.full_tunnel {
            spec.default_route = true;
        }
        if !self.servers.is_empty() {
            spec.servers = self.servers.clone();
        }
        if let Some(name) = &self.tls_name {
            for server in spec.servers.iter_mut().filter(|s| s.transport == Transport::Udp) {
                let port = if server.addr.port() == 53 { 853 } else { server.addr.port() };
                server.addr.set_port(port);
                server.transport = Transport::Tls { name: Some(name.clone()) };
            }
        }
    }
}

/// Command-line flags that override the file.
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides {
    pub listen: Vec<SocketAddr>,
    pub upstream: Vec<ServerAddr>,
    pub control_socket: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub whitelist: Option<PathBuf>,
    pub tls_ca_file: Option<PathBuf>,
    pub default_upstream_tls: Option<DefaultUpstreamTls>,
    /// A directory standing in for `/` when reading the system's DNS files (tests).
    pub system_root: Option<PathBuf>,
}

/// Where the default upstream comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UpstreamSource {
    /// `upstream` in the config (or `--upstream`): fixed servers.
    Configured(Vec<ServerAddr>),
    /// `resolv_conf` names the one file to follow.
    File(PathBuf),
    /// Follow the system's real DNS servers as they change (NetworkManager, systemd-resolved,
    /// `/etc/resolv.conf`; see [`crate::daemon::default_upstream`]).
    System,
}

/// The daemon's effective settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub config_path: Option<PathBuf>,
    pub listen: Vec<SocketAddr>,
    pub upstream: UpstreamSource,
    pub control_socket: PathBuf,
    pub control_group: Option<String>,
    pub watch_group: Option<String>,
    pub state_dir: PathBuf,
    pub whitelist: PathBuf,
    pub timing: Timing,
    pub budget: Budget,
    pub cache: Limits,
    pub profiles: HashMap<String, Profile>,
    /// `tls_ca_file`: the only CAs trusted for TLS servers (else the system store).
    pub tls_ca_file: Option<PathBuf>,
    pub default_upstream_tls: DefaultUpstreamTls,
    /// Where the system's files are (`/`, or a test's stand-in).
    pub system_root: PathBuf,
}

/// Default paths: system paths for root, XDG paths (via `directories`) for a user.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub control_socket: PathBuf,
    pub whitelist: PathBuf,
}

/// The system daemon's paths (what the packaged unit uses).
pub(crate) fn system_paths() -> Paths {
    Paths {
        config: "/etc/splitdns/config.toml".into(),
        state_dir: "/var/lib/splitdns".into(),
        control_socket: "/run/splitdns/control.sock".into(),
        whitelist: "/etc/splitdns/whitelist".into(),
    }
}

/// A user's paths: `~/.config/splitdns`, `~/.local/state/splitdns`, `$XDG_RUNTIME_DIR/splitdns`.
pub(crate) fn user_paths() -> Option<Paths> {
    let dirs = directories::ProjectDirs::from("", "", "splitdns")?;
    let state = dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir()).to_path_buf();
    let runtime = dirs.runtime_dir().map(Path::to_path_buf).unwrap_or_else(|| state.clone());
    Some(Paths {
        config: dirs.config_dir().join("config.toml"),
        state_dir: state,
        control_socket: runtime.join("control.sock"),
        whitelist: dirs.config_dir().join("whitelist"),
    })
}

/// Paths for this process: system paths when running as root, user paths otherwise.
pub(crate) fn default_paths() -> Paths {
    if nix::unistd::geteuid().is_root() { system_paths() } else { user_paths().unwrap_or_else(system_paths) }
}

/// The control socket a CLI command talks to when none is given: the user's daemon if one is
/// running, else the system daemon.
pub(crate) fn default_client_socket() -> PathBuf {
    let own = default_paths().control_socket;
    if own.exists() { own } else { system_paths().control_socket }
}

pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:5353";

/// Reads the config file (if any) and applies the overrides.
///
/// `explicit` is the `--config` path: it must exist. Without it the default path is used if present.
pub(crate) fn load(explicit: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
    let paths = default_paths();
    let (file, config_path) = match explicit {
        Some(p) => (read_file(p)?, Some(p.to_path_buf())),
        None if paths.config.exists() => (read_file(&paths.config)?, Some(paths.config.clone())),
        None => (FileConfig::default(), None),
    };
    settings_from(file, config_path, overrides, &paths)
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

fn settings_from(
    file: FileConfig,
    config_path: Option<PathBuf>,
    o: &Overrides,
    paths: &Paths,
) -> anyhow::Result<Settings> {
    let listen = if !o.listen.is_empty() {
        o.listen.clone()
    } else {
        file.listen.unwrap_or_else(|| vec![DEFAULT_LISTEN.parse().expect("valid default")])
    };
    if listen.is_empty() {
        bail!("no listen address: give at least one with --listen or `listen` in the config file");
    }
    let upstream = if !o.upstream.is_empty() {
        UpstreamSource::Configured(o.upstream.clone())
    } else if let Some(u) = file.upstream.filter(|u| !u.is_empty()) {
        UpstreamSource::Configured(u)
    } else {
        match file.resolv_conf {
            Some(path) => UpstreamSource::File(path),
            None => UpstreamSource::System,
        }
    };
    if let UpstreamSource::Configured(servers) = &upstream {
        check_upstream(servers, &listen)?;
    }
    for (name, profile) in &file.profiles {
        check_upstream(&profile.servers, &listen).with_context(|| format!("[profiles.{name:?}] servers"))?;
        if let Some(tls_name) = &profile.tls_name
            && rustls_pki_types::ServerName::try_from(tls_name.as_str()).is_err()
        {
            bail!("[profiles.{name:?}] tls_name = {tls_name:?} is not a name a certificate can carry");
        }
    }
    let timeout = file.query_timeout_ms.unwrap_or(4000);
    if !(100..=60_000).contains(&timeout) {
        bail!("query_timeout_ms = {timeout} is out of range (100 to 60000)");
    }
    let per_route = file.max_in_flight_per_route.unwrap_or(Budget::default().per_route);
    let links = file.max_in_flight.unwrap_or(Budget::default().links);
    if !(1..=65_536).contains(&per_route) || !(1..=65_536).contains(&links) {
        bail!("max_in_flight_per_route = {per_route} and max_in_flight = {links} must be between 1 and 65536");
    }
    let defaults = Limits::default();
    let cache = Limits {
        max_bytes: file.cache_max_bytes.unwrap_or(defaults.max_bytes),
        max_ttl: file.cache_max_ttl.unwrap_or(defaults.max_ttl),
        max_negative_ttl: file.cache_max_negative_ttl.unwrap_or(defaults.max_negative_ttl),
    };
    Ok(Settings {
        config_path,
        listen,
        upstream,
        control_socket: o
            .control_socket
            .clone()
            .or(file.control_socket)
            .unwrap_or_else(|| paths.control_socket.clone()),
        control_group: file.control_group,
        watch_group: file.watch_group,
        state_dir: o.state_dir.clone().or(file.state_dir).unwrap_or_else(|| paths.state_dir.clone()),
        whitelist: o.whitelist.clone().or(file.whitelist).unwrap_or_else(|| paths.whitelist.clone()),
        timing: Timing::from_total(Duration::from_millis(timeout)),
        budget: Budget { per_route, links },
        cache,
        profiles: file.profiles,
        tls_ca_file: o.tls_ca_file.clone().or(file.tls_ca_file),
        default_upstream_tls: o.default_upstream_tls.or(file.default_upstream_tls).unwrap_or_default(),
        system_root: o.system_root.clone().unwrap_or_else(|| "/".into()),
    })
}

/// Refuses configured upstream servers that name no single server (the unspecified, broadcast or
/// a multicast address) or that are the daemon itself on one of its `listen` addresses, as
/// `link up` refuses them for a link (see [`crate::state::link::unusable_server`]).
fn check_upstream(servers: &[ServerAddr], listen: &[SocketAddr]) -> anyhow::Result<()> {
    use crate::state::link::{own_address, unusable_server};
    for shown in servers {
        let server = shown.addr;
        if let Some(why) = unusable_server(server) {
            bail!("upstream server {shown} is {why}: give the address of a DNS server in `upstream` (or --upstream)");
        }
        if let Some(l) = own_address(server, listen) {
            bail!(
                "upstream server {shown} is splitdns itself (it listens on {l}): each query would come back to it \
                 until it timed out; give the address of another DNS server in `upstream` (or --upstream)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_apply_domains_anchors_and_options() {
        let f: FileConfig = toml::from_str(
            "[profiles.corp]\ndomains = [\"extra.example\"]\ndefault_route = true\n\
             [profiles.strict]\ndomains = [\"only.example\"]\nreplace_domains = true\n\
             [profiles.nosearch]\nsearch_domains = false\n",
        )
        .unwrap();
        let mut spec = crate::state::link::tests::spec("a", Some("corp"), &["corp.example"]);
        spec.search_domains = vec!["search.example".parse().unwrap()];
        f.profiles["corp"].apply(&mut spec);
        let names: Vec<String> = spec.domains.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["corp.example", "search.example", "extra.example"]);
        assert!(!spec.default_route, "default_route applies to full tunnels only");
        spec.full_tunnel = true;
        f.profiles["corp"].apply(&mut spec);
        assert!(spec.default_route);
        let mut spec = crate::state::link::tests::spec("b", Some("strict"), &["corp.example"]);
        spec.search_domains = vec!["search.example".parse().unwrap()];
        f.profiles["strict"].apply(&mut spec);
        let names: Vec<String> = spec.domains.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["only.example"], "replace drops the VPN's domains, search domains too");
        let mut spec = crate::state::link::tests::spec("c", Some("nosearch"), &["corp.example"]);
        spec.search_domains = vec!["search.example".parse().unwrap()];
        f.profiles["nosearch"].apply(&mut spec);
        let names: Vec<String> = spec.domains.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["corp.example"], "a profile can opt out of search domains");
        assert!(spec.search_domains.is_empty());
        // A profile the config does not mention routes search domains (as systemd-resolved does).
        let mut spec = crate::state::link::tests::spec("d", Some("unknown"), &["corp.example"]);
        spec.search_domains = vec!["search.example".parse().unwrap()];
        Profile::default().apply(&mut spec);
        let names: Vec<String> = spec.domains.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["corp.example", "search.example"]);
        assert!(toml::from_str::<FileConfig>("[profiles.x]\ndomain = [\"a.example\"]\n").is_err());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("listne = [\"127.0.0.1:53\"]").is_err());
        let f: FileConfig = toml::from_str("listen = [\"127.0.0.1:53\"]\nupstream = [\"10.0.0.1:5300\"]").unwrap();
        assert_eq!(f.upstream.unwrap()[0].addr.port(), 5300);
    }

    #[test]
    fn overrides_win() {
        let f: FileConfig = toml::from_str("listen = [\"127.0.0.1:53\"]\nstate_dir = \"/a\"").unwrap();
        let o = Overrides {
            listen: vec!["127.0.0.2:53".parse().unwrap()],
            state_dir: Some("/b".into()),
            ..Default::default()
        };
        let s = settings_from(f, None, &o, &system_paths()).unwrap();
        assert_eq!(s.listen, vec!["127.0.0.2:53".parse::<SocketAddr>().unwrap()]);
        assert_eq!(s.state_dir, PathBuf::from("/b"));
        assert_eq!(s.upstream, UpstreamSource::System, "no upstream, no resolv_conf: follow the system");
        let f: FileConfig = toml::from_str("resolv_conf = \"/tmp/r.conf\"").unwrap();
        let s = settings_from(f, None, &Overrides::default(), &system_paths()).unwrap();
        assert_eq!(s.upstream, UpstreamSource::File("/tmp/r.conf".into()));
    }

    #[test]
    fn upstream_servers_are_checked_like_link_servers() {
        let load = |config: &str| {
            let f: FileConfig = toml::from_str(config).unwrap();
            settings_from(f, None, &Overrides::default(), &system_paths()).map_err(|e| e.to_string())
        };
        for (server, why) in [
            ("0.0.0.0", "the unspecified address"),
            ("::", "the unspecified address"),
            ("255.255.255.255", "the broadcast address"),
            ("224.0.0.1", "a multicast address"),
            ("ff02::1", "a multicast address"),
        ] {
            let e = load(&format!("upstream = [\"192.0.2.1\", \"{server}\"]")).unwrap_err();
            assert!(e.starts_with(&format!("upstream server {server} is {why}")), "{e}");
        }
        let e = load("listen = [\"127.0.0.1:53\"]\nupstream = [\"127.0.0.1\"]").unwrap_err();
        assert!(e.contains("upstream server 127.0.0.1 is splitdns itself (it listens on 127.0.0.1:53)"), "{e}");
        let e = load("listen = [\"0.0.0.0:5353\"]\nupstream = [\"127.0.0.1:5353\"]").unwrap_err();
        assert!(e.contains("splitdns itself"), "{e}");
        // The same overridden on the command line.
        let o = Overrides { upstream: vec!["0.0.0.0".parse().unwrap()], ..Default::default() };
        assert!(settings_from(FileConfig::default(), None, &o, &system_paths()).is_err());
        // Fine: another port of the same address, another address.
        load("listen = [\"127.0.0.1:5353\"]\nupstream = [\"127.0.0.1\", \"192.0.2.1\"]").unwrap();
    }

    #[test]
    fn tls_settings_and_profile_servers() {
        let load = |config: &str| {
            let f: FileConfig = toml::from_str(config).map_err(|e| e.to_string())?;
            settings_from(f, None, &Overrides::default(), &system_paths()).map_err(|e| format!("{e:#}"))
        };
        let s = load("upstream = [\"tls://9.9.9.9#dns.quad9.net\", \"tcp://192.0.2.1\"]").unwrap();
        let UpstreamSource::Configured(servers) = &s.upstream else { panic!("{:?}", s.upstream) };
        assert_eq!(servers[0].transport, Transport::Tls { name: Some("dns.quad9.net".into()) });
        assert_eq!(servers[1].transport, Transport::Tcp);
        assert_eq!(s.default_upstream_tls, DefaultUpstreamTls::Off, "off unless asked");
        assert_eq!(load("default_upstream_tls = \"strict\"").unwrap().default_upstream_tls, DefaultUpstreamTls::Strict);
        assert!(load("default_upstream_tls = \"yes\"").unwrap_err().contains("unknown variant"));
        // The command line wins over the file.
        let f: FileConfig = toml::from_str("default_upstream_tls = \"strict\"\ntls_ca_file = \"/a.pem\"").unwrap();
        let o = Overrides {
            default_upstream_tls: Some(DefaultUpstreamTls::Opportunistic),
            tls_ca_file: Some("/b.pem".into()),
            ..Default::default()
        };
        let s = settings_from(f, None, &o, &system_paths()).unwrap();
        assert_eq!((s.default_upstream_tls, s.tls_ca_file), (DefaultUpstreamTls::Opportunistic, Some("/b.pem".into())));
        // Profile servers get the upstream checks; a bad certificate name is refused.
        let e = load("[profiles.corp]\nservers = [\"0.0.0.0\"]").unwrap_err();
        assert!(e.contains("[profiles.\"corp\"] servers") && e.contains("unspecified"), "{e}");
        let e = load("[profiles.corp]\ntls_name = \"not a name\"").unwrap_err();
        assert!(e.contains("tls_name"), "{e}");

        // `servers` replaces what the VPN pushed; `tls_name` upgrades plain servers to TLS.
        let f: FileConfig = toml::from_str(
            "[profiles.a]\nservers = [\"tls://10.9.0.53#dns.corp\"]\n[profiles.b]\ntls_name = \"dns.corp\"\n",
        )
        .unwrap();
        let mut spec = crate::state::link::tests::spec("x", Some("a"), &["corp.example"]);
        f.profiles["a"].apply(&mut spec);
        assert_eq!(spec.servers, vec!["tls://10.9.0.53#dns.corp".parse::<ServerAddr>().unwrap()]);
        let mut spec = crate::state::link::tests::spec("y", Some("b"), &["corp.example"]);
        spec.servers =
            vec!["10.0.0.1".parse().unwrap(), "10.0.0.2:5300".parse().unwrap(), "tcp://10.0.0.3".parse().unwrap()];
        f.profiles["b"].apply(&mut spec);
        let shown: Vec<String> = spec.servers.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["tls://10.0.0.1#dns.corp", "tls://10.0.0.2:5300#dns.corp", "tcp://10.0.0.3"]);
    }
}
