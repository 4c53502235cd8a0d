//! The command line: `splitdns daemon`, `splitdns link up|down`, `splitdns status`.
//!
//! Thin by design: parse arguments, call the daemon over its control socket, print. Errors tell the
//! user what to do next.

mod hook;
mod link;
mod notify;
mod query;
mod status;
mod system_dns;
mod watch;
mod whitelist;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Overrides};
use crate::domain::DomainName;
use crate::server_addr::ServerAddr;
use crate::trust::DsAnchor;

const AFTER_HELP: &str = "\
Files (system daemon / user daemon):
  config         /etc/splitdns/config.toml      ~/.config/splitdns/config.toml
  state          /var/lib/splitdns/links.json   ~/.local/state/splitdns/links.json
  control socket /run/splitdns/control.sock     $XDG_RUNTIME_DIR/splitdns/control.sock
  whitelist      /etc/splitdns/whitelist        ~/.config/splitdns/whitelist

Example:
  splitdns daemon --listen 127.0.0.1:5353 --upstream 192.0.2.53
  splitdns link up --id vpn0 --profile corp --server 10.1.0.53 --domain corp.example
  dig @127.0.0.1 -p 5353 www.corp.example
  splitdns status
  splitdns link down --id vpn0";

/// A split-DNS resolver agent for VPNs (RFC 8598).
///
/// Answers DNS on loopback, sends names under each VPN's split domains to that VPN's internal
/// servers (longest suffix wins) and everything else to the normal upstream. A split name never goes
/// to the public upstream, not even when the tunnel's servers fail.
#[derive(Parser, Debug)]
#[command(name = "splitdns", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The daemon's control socket [default: the user daemon's if running, else /run/splitdns/control.sock]
    #[arg(long, global = true, env = "SPLITDNS_SOCKET", value_name = "PATH")]
    control_socket: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the resolver in the foreground (as a service, or by hand).
    Daemon(DaemonArgs),
    /// Tell the daemon that a VPN connection came up or went down (what VPN hooks call).
    #[command(subcommand)]
    Link(LinkCommand),
    /// Show what is routed where and why: links, domains, servers, anchors, counters.
    Status {
        /// Print JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve or withdraw the domains whose VPN-supplied DNSSEC trust anchors may be used.
    Whitelist(whitelist::WhitelistArgs),
    /// Called by a VPN client when a connection comes up or goes down (see packaging/hooks/).
    Hook(hook::HookArgs),
    /// Point the system's resolver at the agent, or restore it exactly (explicit, never automatic).
    SystemDns(system_dns::SystemDnsArgs),
    /// Resolve a name through the daemon and show how it was answered: which link, validated or
    /// not, from the cache or not.
    Query {
        /// The name to look up.
        name: String,
        /// The record type.
        #[arg(default_value = "A")]
        qtype: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Follow the daemon's events as they happen: links, refused domains, trust anchors (pending
    /// review, in use, failed), whitelist reloads, default-upstream changes. What needs a person is
    /// shown first. Needs read access (watch_group, control_group or root).
    Watch {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Desktop notifications for what needs a person (a trust anchor to review, an anchor that
    /// failed, a refused domain, a system that stopped using the agent), from the daemon's events.
    /// Runs in the person's session: `systemctl --user enable --now splitdns-notify`.
    Notify(notify::NotifyArgs),
    /// Drop cached answers for DOMAIN and the names below it, or all cached answers.
    Flush {
        /// The domain; all answers when omitted.
        domain: Option<DomainName>,
    },
}

#[derive(Args, Debug)]
struct DaemonArgs {
    /// Config file (TOML) [default: /etc/splitdns/config.toml as root, ~/.config/splitdns/config.toml otherwise; used if present]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to answer DNS on, UDP and TCP; loopback only; repeatable [default: 127.0.0.1:5353].
    /// Port 53 needs root or CAP_NET_BIND_SERVICE.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Default upstream server for names outside split domains; repeatable [default: follow the
    /// system's servers as they change: NetworkManager's, systemd-resolved's, or /etc/resolv.conf].
    /// ADDR[:PORT] is UDP then TCP; tcp://ADDR[:PORT] is TCP only; tls://ADDR[:PORT]#NAME is DNS
    /// over TLS (port 853), the certificate checked for NAME.
    #[arg(long, value_name = "SERVER")]
    upstream: Vec<ServerAddr>,
    /// DNS over TLS for the default upstream's plain servers: off, opportunistic (TLS on port
    /// 853 when a server speaks it, else clear text) or strict (TLS only, certificate for the
    /// server's IP address) [default: off, or default_upstream_tls in the config].
    #[arg(long, value_name = "MODE")]
    default_upstream_tls: Option<crate::config::DefaultUpstreamTls>,
    /// CA certificates (PEM) trusted for TLS servers instead of the system trust store
    /// [default: tls_ca_file in the config, else the system store].
    #[arg(long, value_name = "FILE")]
    tls_ca_file: Option<PathBuf>,
    /// Directory for the saved link table [default: /var/lib/splitdns as root, ~/.local/state/splitdns otherwise]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Log format: `text` (with time stamps) or `journal` (no time stamps; systemd adds them).
    /// Filter with RUST_LOG, e.g. RUST_LOG=splitdns=debug.
    #[arg(long, value_name = "FORMAT", default_value = "auto")]
    log_format: LogFormat,
    /// The trust-anchor whitelist: domains whose VPN-supplied DNSSEC anchors may be used
    /// [default: /etc/splitdns/whitelist as root, ~/.config/splitdns/whitelist otherwise]. Watched:
    /// edits take effect at once. The daemon never writes it.
    #[arg(long, value_name = "FILE")]
    whitelist: Option<PathBuf>,
    /// A directory standing in for `/` when reading the system's DNS files (tests).
    #[arg(long, hide = true, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Auto,
    Text,
    Journal,
}

#[derive(Subcommand, Debug)]
enum LinkCommand {
    /// Bring a link up, or replace the link with the same --id or --profile.
    Up(LinkUpArgs),
    /// Tear a link down: its routes, cached answers, trust anchors and in-flight queries go.
    Down {
        /// The link id given at `link up`.
        #[arg(long)]
        id: String,
    },
}

#[derive(Args, Debug)]
struct LinkUpArgs {
    /// The connection's id, as the VPN client names it.
    #[arg(long)]
    id: String,
    /// VPN profile name; links of one profile replace each other and may share domains.
    #[arg(long)]
    profile: Option<String>,
    /// Internal DNS server; repeatable. ADDR[:PORT] (UDP then TCP), tcp://ADDR[:PORT] or
    /// tls://ADDR[:PORT]#NAME (DNS over TLS, certificate checked for NAME).
    #[arg(long = "server", value_name = "SERVER", required = true)]
    servers: Vec<ServerAddr>,
    /// Split domain routed to the servers (covers its subdomains); repeatable.
    #[arg(long = "domain", value_name = "NAME")]
    domains: Vec<DomainName>,
    /// DS trust anchor for a split domain, e.g. "corp.example. IN DS 12345 13 2 ABCD…"; repeatable.
    #[arg(long = "ta", value_name = "DS")]
    anchors: Vec<DsAnchor>,
    /// Send queries to the servers only through this interface (SO_BINDTODEVICE).
    #[arg(long, value_name = "IFACE")]
    interface: Option<String>,
    /// Send queries to the servers from this source address.
    #[arg(long, value_name = "ADDR")]
    source: Option<IpAddr>,
    /// The tunnel carries all traffic: ignore split domains and anchors (RFC 8598 §2).
    #[arg(long)]
    full_tunnel: bool,
    /// With --full-tunnel: make the servers the default upstream while the link is up.
    #[arg(long, requires = "full_tunnel")]
    default_route: bool,
    /// Print the daemon's reply as JSON.
    #[arg(long)]
    json: bool,
}

/// Entry point of the `splitdns` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("splitdns: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let socket = cli.control_socket.clone().unwrap_or_else(config::default_client_socket);
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Daemon(args) => {
                init_logging(args.log_format);
                let overrides = Overrides {
                    listen: args.listen,
                    upstream: args.upstream,
                    control_socket: cli.control_socket,
                    state_dir: args.state_dir,
                    whitelist: args.whitelist,
                    tls_ca_file: args.tls_ca_file,
                    default_upstream_tls: args.default_upstream_tls,
                    system_root: args.root,
                };
                crate::daemon::run(args.config, overrides).await
            }
            Command::Link(LinkCommand::Up(args)) => link::up(&socket, args).await,
            Command::Link(LinkCommand::Down { id }) => link::down(&socket, id).await,
            Command::Status { json } => status::show(&socket, json).await,
            Command::Whitelist(args) => whitelist::run(args, &socket).await,
            Command::Hook(args) => hook::run(args, &socket).await,
            Command::SystemDns(args) => system_dns::run(args, &socket).await,
            Command::Query { name, qtype, json } => query::query(&socket, name, qtype, json).await,
            Command::Flush { domain } => query::flush(&socket, domain).await,
            Command::Watch { json } => watch::run(&socket, json).await,
            Command::Notify(args) => notify::run(args, &socket).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("splitdns: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    // hickory-server logs every request at INFO; that is a cost per query, not news.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_server=warn,hickory_net=warn,hickory_proto=warn"));
    let journal = match format {
        LogFormat::Journal => true,
        LogFormat::Text => false,
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if journal {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
