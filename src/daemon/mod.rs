//! The daemon: wires configuration, state, the DNS listener and the control socket together, and
//! owns the process lifecycle (SIGHUP reloads the config, SIGTERM/SIGINT shut down cleanly).

pub mod agent;
pub mod interfaces;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{self, Overrides, Settings, UpstreamSource};
use crate::control::server::{ControlServer, PeerPolicy};
use crate::dns::cache::Cache;
use crate::dns::handler::{Handler, Stats};
use crate::dns::listener::Listener;
use crate::state::persist::Store;
use agent::Agent;

/// The default upstream servers for `settings`, and a word on where they came from.
pub fn system_upstream(settings: &Settings, listen: &[SocketAddr]) -> (Vec<SocketAddr>, String) {
    match &settings.upstream {
        UpstreamSource::Configured(servers) => (servers.clone(), "configuration".into()),
        UpstreamSource::ResolvConf(path) => {
            // While `splitdns system-dns enable` points the system at the agent, resolv.conf names
            // the agent itself: use the system's own servers that enable saved instead.
            let saved = std::path::Path::new(crate::sysdns::UPSTREAM_FILE);
            if path.as_path() == std::path::Path::new(config::DEFAULT_RESOLV_CONF) && saved.exists() {
                let (servers, notes) = config::read_resolv_conf(saved, listen);
                for n in notes {
                    warn!("{n}");
                }
                if servers.is_empty() {
                    warn!("no default upstream in {}: names outside split domains will get SERVFAIL", saved.display());
                }
                return (servers, format!("{} (saved by `splitdns system-dns enable`)", saved.display()));
            }
            let (mut servers, notes) = config::read_resolv_conf(path, listen);
            let mut source = path.display().to_string();
            // Behind systemd-resolved's stub, the real upstreams are in its own resolv.conf.
            let resolved = std::path::Path::new("/run/systemd/resolve/resolv.conf");
            if !servers.is_empty() && servers.iter().all(|s| s.ip().to_string() == "127.0.0.53") && resolved.exists() {
                let (real, _) = config::read_resolv_conf(resolved, listen);
                if !real.is_empty() {
                    servers = real;
                    source = resolved.display().to_string();
                }
            }
            for n in notes {
                warn!("{n}");
            }
            if servers.is_empty() {
                warn!("no default upstream: names outside split domains will get SERVFAIL until one is configured");
            }
            (servers, source)
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config_path: Option<std::path::PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    let settings = config::load(config_path.as_deref(), &overrides)?;
    let store = Store::new(&settings.state_dir);
    let loaded = store.load();
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let cache = Arc::new(Cache::new(settings.cache));
    let stats = Arc::new(Stats::default());
    let (servers, source) = system_upstream(&settings, &settings.listen);
    let (agent, warnings) = Agent::new(
        loaded.links,
        agent::SystemUpstream { servers, source },
        settings.timing,
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

    let policy = PeerPolicy::for_this_process(settings.control_group.as_deref())?;
    // DNS first: a busy port is the likeliest start-up failure, and it should leave no socket behind.
    let handler = Handler::new(agent.snapshot(), cache, stats);
    let listener = Listener::bind(&settings.listen, handler.clone()).await?;
    let control = ControlServer::bind(&settings.control_socket, policy.group.as_ref().map(|g| g.0)).await?;
    agent.set_listen(listener.addrs().to_vec());
    // If resolv.conf named our own (ephemeral) address, re-read it now that we know our ports.
    if settings.listen.iter().any(|a| a.port() == 0) {
        let (servers, source) = system_upstream(&settings, listener.addrs());
        agent.set_system_upstream(&servers, source, settings.timing);
    }
    info!(
        listen = ?listener.addrs(),
        control = %settings.control_socket.display(),
        state = %settings.state_dir.display(),
        "splitdns {} ready",
        env!("CARGO_PKG_VERSION")
    );

    let shutdown = CancellationToken::new();
    // The whitelist is watched, not polled: an edit takes effect at once (RFC 8598 §6).
    let watched = agent.clone();
    let whitelist_watch = crate::trust::watch::watch_file(settings.whitelist.clone(), shutdown.clone(), move || {
        watched.reload_whitelist()
    });
    if let Err(e) = &whitelist_watch {
        warn!(path = %settings.whitelist.display(), error = %e, "cannot watch the whitelist; edits take effect at SIGHUP");
    }
    // Tunnels that vanish without a down hook (a killed VPN client) take their links with them.
    if let Err(e) = interfaces::watch(agent.clone(), shutdown.clone()) {
        warn!(error = %e, "cannot listen for removed interfaces (rtnetlink); a killed VPN client's link stays until its next down or up event");
    }
    let control_task = tokio::spawn(control.serve(agent.clone(), handler, policy, shutdown.clone()));

    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let listen = listener.addrs().to_vec();
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&agent, config_path.as_deref(), &overrides, &settings, &listen),
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

/// SIGHUP: re-read the config file and resolv.conf. A broken config keeps the running one.
fn reload(
    agent: &Agent,
    path: Option<&std::path::Path>,
    overrides: &Overrides,
    running: &Settings,
    listen: &[SocketAddr],
) {
    match config::load(path, overrides) {
        Ok(new) => {
            if new.listen != running.listen || new.control_socket != running.control_socket {
                warn!("SIGHUP: listen addresses and the control socket change only at restart");
            }
            let (servers, source) = system_upstream(&new, listen);
            agent.set_system_upstream(&servers, source, new.timing);
            agent.set_profiles(new.profiles.clone());
            agent.reload_whitelist();
            info!("SIGHUP: configuration reloaded");
        }
        Err(e) => error!("SIGHUP: {e:#}; keeping the running configuration"),
    }
}
