//! The daemon: wires configuration, state, the DNS listener and the control socket together, and
//! owns the process lifecycle (SIGHUP reloads the config, SIGTERM/SIGINT shut down cleanly).

pub(crate) mod agent;
mod agent_state;
pub(crate) mod api;
pub(crate) mod default_upstream;
pub(crate) mod events;
pub(crate) mod interfaces;
mod reconcile;
mod status;
mod whitelist_state;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{self, Overrides, Settings};
use crate::control::protocol::SystemDnsStatus;
use crate::control::server::{ControlServer, PeerPolicy};
use crate::dns::cache::Cache;
use crate::dns::handler::{Handler, Stats};
use crate::dns::listener::Listener;
use crate::dns::tls::{Roots, TlsContext};
use crate::state::persist::Store;
use crate::system_dns::Root;
use agent::Agent;
use default_upstream::Follow;

/// The default upstream as `follow` gives it now (logging what is worth a line).
fn pick_upstream(follow: &Follow, listen: &[SocketAddr]) -> default_upstream::Pick {
    let pick = follow.pick(listen);
    for n in &pick.notes {
        debug!("default upstream: {n}");
    }
    pick
}

/// Whether the system still points at the agent, while `system-dns` is enabled.
fn system_dns_state(root: &Root) -> Option<SystemDnsStatus> {
    match crate::system_dns::status(root) {
        Ok(r) if r.enabled => {
            Some(SystemDnsStatus { mode: r.mode.to_string(), points_at_agent: r.points_at_agent, warnings: r.warnings })
        }
        Ok(_) => None,
        Err(e) => {
            debug!(error = %e, "cannot read the system-dns state");
            None
        }
    }
}

/// Follows the default upstream's source and the system-dns files until `stop` fires: each change
/// re-reads them and updates the agent.
fn follow_system(
    agent: Arc<Agent>,
    follow: Follow,
    root: Root,
    listen: Vec<SocketAddr>,
    timing: crate::dns::upstream::Timing,
    stop: CancellationToken,
) {
    let files = follow.watched_files(&root);
    let on_change = move || {
        let pick = pick_upstream(&follow, &listen);
        agent.set_system_upstream(&pick.servers, pick.source, timing);
        agent.set_system_dns(system_dns_state(&root));
        std::future::ready(())
    };
    if let Err(e) = crate::watch::watch_files(files.clone(), stop, on_change) {
        warn!(error = %e, files = ?files, "cannot watch the system's DNS files; the default upstream changes only at SIGHUP");
    }
}

/// Raises the soft limit on open files toward the hard one: every query in flight holds a socket
/// (two while TCP runs beside UDP), and the budgets of queries in flight assume room for them.
fn raise_open_files_limit(budget: crate::dns::route::Budget) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    let want = hard.min(65_536);
    if soft < want
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, want, hard)
    {
        warn!(soft, hard, error = %e, "cannot raise the open-files limit");
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((soft, hard));
    // Two sockets per query waiting, on every link and on the default route, plus some to spare.
    let needed = 2 * (budget.links + budget.per_route) as u64 + 256;
    if soft < needed {
        warn!(
            limit = soft,
            needed,
            "the open-files limit is below what the budgets of queries in flight may use; raise LimitNOFILE \
             (or ulimit -n), or lower max_in_flight and max_in_flight_per_route"
        );
    }
}

/// The CAs trusted for TLS servers: `tls_ca_file`, read now so a broken file stops the start.
fn tls_context(settings: &config::Settings) -> anyhow::Result<Arc<TlsContext>> {
    match &settings.tls_ca_file {
        None => Ok(TlsContext::shared_system()),
        Some(path) => TlsContext::new(Roots::File(path.clone())).map(Arc::new).map_err(|e| anyhow::anyhow!("{e}")),
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub(crate) async fn run(config_path: Option<std::path::PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    let settings = config::load(config_path.as_deref(), &overrides)?;
    match &settings.config_path {
        Some(p) => info!("configuration from {}", p.display()),
        None => info!("no configuration file: built-in defaults and command-line flags"),
    }
    raise_open_files_limit(settings.budget);
    let store = Store::new(&settings.state_dir);
    let loaded = store.load();
    for w in &loaded.warnings {
        warn!("{w}");
    }
    if let Some(why) = &loaded.refused {
        error!("state file refused: {why}");
    }
    let cache = Arc::new(Cache::new(settings.cache));
    let stats = Arc::new(Stats::default());
    let mut follow = Follow::from_settings(&settings);
    let pick = pick_upstream(&follow, &settings.listen);
    let (agent, warnings) = Agent::new(
        loaded.links,
        loaded.refused,
        agent::SystemUpstream { servers: pick.servers, source: pick.source },
        agent::Forwarding {
            timing: settings.timing,
            budget: settings.budget,
            tls: tls_context(&settings)?,
            default_tls: settings.default_upstream_tls,
        },
        cache.clone(),
        stats.clone(),
        store,
        &settings.whitelist,
    );
    for w in warnings {
        warn!("{w}");
    }
    agent.set_profiles(settings.profiles.clone());
    let agent = Arc::new(agent);

    let policy = PeerPolicy::for_this_process(settings.control_group.as_deref(), settings.watch_group.as_deref())?;
    // DNS first: a busy port is the likeliest start-up failure, and it should leave no socket behind.
    let handler = Handler::new(agent.snapshot(), cache, stats);
    let listener = Listener::bind(&settings.listen, handler.clone()).await?;
    let control = ControlServer::bind(&settings.control_socket, policy.group_gid()).await?;
    agent.set_listen(listener.addrs().to_vec());
    // If resolv.conf named our own (ephemeral) address, re-read it now that we know our ports.
    let listen = listener.addrs().to_vec();
    if settings.listen.iter().any(|a| a.port() == 0) {
        let pick = pick_upstream(&follow, &listen);
        agent.set_system_upstream(&pick.servers, pick.source, settings.timing);
    }
    let root = Root::new(&settings.system_root);
    agent.set_system_dns(system_dns_state(&root));
    info!(
        listen = ?listener.addrs(),
        control = %settings.control_socket.display(),
        state = %settings.state_dir.display(),
        "splitdns {} ready",
        env!("CARGO_PKG_VERSION")
    );

    let shutdown = CancellationToken::new();
    // The whitelist is watched, not polled: an edit takes effect at once (RFC 8598 §6). The reload
    // reads and parses on a blocking thread; the watch awaits it.
    let watched = agent.clone();
    let whitelist_watch = crate::watch::watch_file(settings.whitelist.clone(), shutdown.clone(), move || {
        let agent = watched.clone();
        async move { agent.reload_whitelist().await }
    });
    if let Err(e) = &whitelist_watch {
        warn!(path = %settings.whitelist.display(), error = %e, "cannot watch the whitelist; edits take effect at SIGHUP");
    }
    // Tunnels that vanish without a down hook (a killed VPN client) take their links with them.
    if let Err(e) = interfaces::watch(agent.clone(), shutdown.clone()) {
        warn!(error = %e, "cannot listen for removed interfaces (rtnetlink); a killed VPN client's link stays until its next down or up event");
    }
    // The default upstream follows the system's servers as networks change; no signal needed.
    let mut following = shutdown.child_token();
    follow_system(agent.clone(), follow.clone(), root.clone(), listen.clone(), settings.timing, following.clone());
    let api = std::sync::Arc::new(api::DaemonApi::new(agent.clone(), handler));
    let control_task = tokio::spawn(control.serve(api, policy, shutdown.clone()));

    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                if let Some(new) = reload(&agent, config_path.as_deref(), &overrides, &settings, &listen)
                    && new != follow
                {
                    // Another source to follow: restart the watch on its files.
                    following.cancel();
                    following = shutdown.child_token();
                    follow = new;
                    follow_system(agent.clone(), follow.clone(), root.clone(), listen.clone(), settings.timing, following.clone());
                }
            }
            _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { info!("SIGINT: shutting down"); break; }
        }
    }
    shutdown.cancel();
    let _ = control_task.await;
    listener.shutdown().await;
    info!("stopped; links are saved and will be restored at the next start");
    Ok(())
}

/// SIGHUP: re-read the config file and the default upstream's source. A broken config keeps the
/// running one. Returns what the default upstream follows now.
fn reload(
    agent: &Arc<Agent>,
    path: Option<&std::path::Path>,
    overrides: &Overrides,
    running: &Settings,
    listen: &[SocketAddr],
) -> Option<Follow> {
    match config::load(path, overrides) {
        Ok(new) => {
            if new.listen != running.listen || new.control_socket != running.control_socket {
                warn!("SIGHUP: listen addresses and the control socket change only at restart");
            }
            if new.tls_ca_file != running.tls_ca_file || new.default_upstream_tls != running.default_upstream_tls {
                warn!("SIGHUP: tls_ca_file and default_upstream_tls change only at restart");
            }
            let follow = Follow::from_settings(&new);
            let pick = pick_upstream(&follow, listen);
            agent.set_system_upstream(&pick.servers, pick.source, new.timing);
            agent.set_profiles(new.profiles.clone());
            // Read off the runtime's workers; the signal loop does not wait for it.
            let agent = agent.clone();
            tokio::spawn(async move { agent.reload_whitelist().await });
            info!("SIGHUP: configuration reloaded");
            Some(follow)
        }
        Err(e) => {
            error!("SIGHUP: {e:#}; keeping the running configuration");
            None
        }
    }
}
