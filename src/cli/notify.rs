//! `splitdns notify`: a small per-user agent for desktop sessions. It follows the daemon's event
//! stream and posts a freedesktop notification (org.freedesktop.Notifications on the session
//! D-Bus) for each thing that needs a person: a trust anchor waiting for review — with a
//! "Review…" button that opens a terminal running `splitdns whitelist review`, the only place the
//! approval may happen — an anchor that failed verification, a refused split domain, a system that
//! stopped using the agent. Without it, nobody on a laptop learns that an anchor waits.
//!
//! What to notify, the keys that make each thing one notification, and the words live in
//! [`alerts`], without I/O. This file is the I/O: the stream (reconnecting, with a capped backoff,
//! whenever the daemon restarts), D-Bus through `zbus` (one connection, made again after a failure;
//! a notification that could not be shown is kept and tried again), and the terminal.
//!
//! zbus rather than notify-rust: notify-rust 4 connects to the bus afresh for every notification
//! and waits for each one's action on a connection of its own, unwrapping D-Bus errors there; one
//! connection and one listener for every button is simpler and never panics.

mod alerts;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::config;
use crate::control::client;
use crate::control::events::Event;
use crate::control::protocol::{Request, Status};
use alerts::{Need, Plan, REVIEW_ACTION, Review, Style, Texts};

#[derive(Args, Debug)]
pub(super) struct NotifyArgs {
    /// The terminal that runs `splitdns whitelist review` when you click "Review…": a program and the
    /// words that make it run the command appended to them, separated by spaces, e.g.
    /// "gnome-terminal --" or "kitty"; "none" for no button (the notification then says what to run)
    /// [default: the first found of x-terminal-emulator -e, xdg-terminal-exec, gnome-terminal --,
    /// konsole -e, xfce4-terminal -x, kitty, foot, alacritty -e, xterm -e]
    #[arg(long, env = "SPLITDNS_TERMINAL", value_name = "CMD")]
    terminal: Option<String>,
}

/// The first pause before reconnecting to the daemon; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(4);
/// A connection that lasted this long starts the backoff over.
const STEADY: Duration = Duration::from_secs(5);
/// How often notifications that could not be shown are tried again (besides at each event).
const RETRY_UNSENT: Duration = Duration::from_secs(30);
/// Notifications kept while the notification server is away; the oldest go first.
const MAX_UNSENT: usize = 64;
/// Deadline of one D-Bus call.
const DBUS_TIMEOUT: Duration = Duration::from_secs(5);
/// The `.desktop` file the notifications belong to (`desktop-entry` hint).
const DESKTOP_ENTRY: &str = "splitdns-notify";

/// The notification server's interface (the Desktop Notifications Specification, 1.2).
#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications",
    gen_blocking = false
)]
trait Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, zbus::zvariant::Value<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;

    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: &str) -> zbus::Result<()>;

    #[zbus(signal)]
    fn notification_closed(&self, id: u32, reason: u32) -> zbus::Result<()>;
}

/// Runs until killed; returns at once when another notifier already runs for this user and daemon.
pub(super) async fn run(args: NotifyArgs, socket: &Path) -> anyhow::Result<()> {
    let Instance::First(_lock) = single_instance(socket)? else { return Ok(()) };
    let terminal = find_terminal(args.terminal.as_deref());
    match &terminal {
        Some(t) => eprintln!("splitdns notify: \"Review…\" opens `{}`", t.join(" ")),
        None => eprintln!(
            "splitdns notify: no terminal for \"Review…\" (set one with --terminal or SPLITDNS_TERMINAL); \
             notifications will say to run `splitdns whitelist review`"
        ),
    }
    let (events_tx, mut events) = mpsc::unbounded_channel();
    tokio::spawn(follow(socket.to_path_buf(), events_tx));
    let (signals_tx, mut signals) = mpsc::unbounded_channel();
    let mut desktop = Desktop { bus: None, signals: signals_tx, failing: false };
    let mut plan = Plan::default();
    let mut unsent: VecDeque<Need> = VecDeque::new();
    // Notifications with a "Review…" button that are still shown.
    let mut reviews: HashSet<u32> = HashSet::new();
    loop {
        tokio::select! {
            event = events.recv() => {
                let event: Event = event.context("internal error: the event stream reader stopped")?;
                if let Some(need) = plan.next(&event.what) {
                    if unsent.len() == MAX_UNSENT && let Some(old) = unsent.pop_front() {
                        let what = old.key().replace('\0', " ");
                        eprintln!("splitdns notify: too many notifications wait for the server; dropped: {what}");
                    }
                    unsent.push_back(need);
                }
                desktop.flush(&mut unsent, &mut reviews, socket, terminal.is_some()).await;
            }
            Some(signal) = signals.recv() => match signal {
                Signal::Action(id, key) if key == REVIEW_ACTION && reviews.contains(&id) => {
                    open_review(terminal.as_deref(), socket).await;
                }
                Signal::Action(..) => {}
                Signal::Closed(id) => { reviews.remove(&id); }
            },
            () = tokio::time::sleep(RETRY_UNSENT), if !unsent.is_empty() => {
                desktop.flush(&mut unsent, &mut reviews, socket, terminal.is_some()).await;
            }
        }
    }
}

/// Follows the daemon's event stream for ever, passing on what may need a person, and reconnects
/// with a capped backoff whenever the stream ends or cannot be had. One line per connect and
/// disconnect; a failure to connect is logged again only when its reason changes.
async fn follow(socket: PathBuf, tx: mpsc::UnboundedSender<Event>) {
    let mut delay = RETRY_FIRST;
    let mut last_error: Option<String> = None;
    loop {
        let mut since: Option<Instant> = None;
        let result = client::watch(&socket, |event| {
            if since.is_none() {
                since = Some(Instant::now());
                eprintln!("splitdns notify: connected to the splitdns daemon at {}", socket.display());
            }
            if let crate::control::events::EventKind::Overflow { message } = &event.what {
                eprintln!("splitdns notify: {message}");
            }
            if Plan::matters(&event.what) {
                let _ = tx.send(event);
            }
        })
        .await;
        if tx.is_closed() {
            return;
        }
        if let Some(t) = since {
            last_error = None;
            if t.elapsed() >= STEADY {
                delay = RETRY_FIRST;
            }
            match result {
                Ok(()) => eprintln!(
                    "splitdns notify: disconnected: the daemon closed the event stream (it stopped or restarted); \
                     reconnecting"
                ),
                Err(e) => eprintln!("splitdns notify: disconnected: {e:#}; reconnecting"),
            }
        } else {
            let why = match result {
                Ok(()) => "the daemon closed the event stream at once".to_string(),
                Err(e) => format!("{e:#}"),
            };
            if last_error.as_ref() != Some(&why) {
                eprintln!(
                    "splitdns notify: cannot follow the daemon's events: {why}; trying again every {} s at most",
                    RETRY_MAX.as_secs()
                );
                last_error = Some(why);
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// A notification server's signal that concerns us.
enum Signal {
    Action(u32, String),
    Closed(u32),
}

/// The session bus and the notification server on it, connected when first needed and again
/// after a failure.
struct Desktop {
    bus: Option<Bus>,
    signals: mpsc::UnboundedSender<Signal>,
    /// The last notification failed (logged once until one works again).
    failing: bool,
}

struct Bus {
    proxy: NotificationsProxy<'static>,
    /// The server shows buttons (`actions`).
    actions: bool,
    /// The server reads the body as markup (`body-markup`).
    markup: bool,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Desktop {
    /// Shows what waits, oldest first; stops at the first failure and keeps the rest.
    async fn flush(&mut self, unsent: &mut VecDeque<Need>, reviews: &mut HashSet<u32>, socket: &Path, terminal: bool) {
        while let Some(need) = unsent.front() {
            match self.show(need, socket, terminal).await {
                Ok((id, texts)) => {
                    if self.failing {
                        eprintln!("splitdns notify: the notification server answers again");
                        self.failing = false;
                    }
                    eprintln!("splitdns notify: notified: {}", texts.summary);
                    if texts.review_button {
                        reviews.insert(id);
                    }
                    unsent.pop_front();
                }
                Err(e) => {
                    if !self.failing {
                        eprintln!(
                            "splitdns notify: cannot show a desktop notification: {e:#}. Is a notification server \
                             running in this session (DBUS_SESSION_BUS_ADDRESS)? Trying again at the next event \
                             and every {} s",
                            RETRY_UNSENT.as_secs()
                        );
                        self.failing = true;
                    }
                    self.bus = None;
                    return;
                }
            }
        }
    }

    async fn show(&mut self, need: &Need, socket: &Path, terminal: bool) -> anyhow::Result<(u32, Texts)> {
        if self.bus.is_none() {
            self.bus = Some(self.connect().await?);
        }
        let Some(bus) = &self.bus else { anyhow::bail!("internal error: no bus") };
        let review = if need.is_review() && !(terminal && bus.actions) {
            let sudo = needs_sudo(socket).await;
            Review::Command(alerts::review_words(socket, &config::default_client_socket(), sudo))
        } else {
            Review::Button
        };
        let texts = alerts::render(need, &Style { review, markup: bus.markup });
        let actions: &[&str] = if texts.review_button { &[REVIEW_ACTION, "Review…"] } else { &[] };
        let hints = HashMap::from([
            ("urgency", zbus::zvariant::Value::from(texts.urgency as u8)),
            ("desktop-entry", zbus::zvariant::Value::from(DESKTOP_ENTRY)),
        ]);
        let id = bus
            .proxy
            .notify("splitdns", 0, texts.icon, &texts.summary, &texts.body, actions, hints, -1)
            .await
            .context("the notification server refused the notification")?;
        Ok((id, texts))
    }

    async fn connect(&self) -> anyhow::Result<Bus> {
        let conn = zbus::connection::Builder::session()
            .context("no session D-Bus address")?
            .method_timeout(DBUS_TIMEOUT)
            .build()
            .await
            .context("cannot connect to the session D-Bus")?;
        let proxy = NotificationsProxy::new(&conn).await.context("cannot reach org.freedesktop.Notifications")?;
        // Servers that do not say what they can do get the plain text and the button.
        let caps = proxy.get_capabilities().await.unwrap_or_else(|_| vec!["actions".into()]);
        let mut actions = proxy.receive_action_invoked().await.context("cannot follow the notifications' buttons")?;
        let mut closed = proxy.receive_notification_closed().await.context("cannot follow closed notifications")?;
        let tx = self.signals.clone();
        let listener = tokio::spawn(async move {
            loop {
                let signal = tokio::select! {
                    Some(s) = actions.next() => match s.args() {
                        Ok(a) => Signal::Action(a.id, a.action_key.to_string()),
                        Err(_) => continue,
                    },
                    Some(s) = closed.next() => match s.args() {
                        Ok(a) => Signal::Closed(a.id),
                        Err(_) => continue,
                    },
                    else => return,
                };
                if tx.send(signal).is_err() {
                    return;
                }
            }
        });
        Ok(Bus {
            proxy,
            actions: caps.iter().any(|c| c == "actions"),
            markup: caps.iter().any(|c| c == "body-markup"),
            listener,
        })
    }
}

/// Whether this user needs sudo to approve: the daemon's whitelist is in a directory this user may
/// not write (the system daemon's /etc/splitdns), and sudo is there.
async fn needs_sudo(socket: &Path) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    let Ok(status) = client::call::<Status>(socket, &Request::Status {}, client::DEFAULT_TIMEOUT).await else {
        return false;
    };
    let path = Path::new(&status.whitelist.path);
    let dir = crate::perms::parent_dir(path);
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_err() && on_path("sudo")
}

/// Opens the terminal with `splitdns whitelist review` in it.
async fn open_review(terminal: Option<&[String]>, socket: &Path) {
    let Some(terminal) = terminal else { return };
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "splitdns".into());
    let review = alerts::review_argv(&exe, socket, needs_sudo(socket).await);
    let argv = alerts::terminal_argv(terminal, &review);
    let spawned = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            eprintln!("splitdns notify: opened `{}` for the review", terminal.join(" "));
            // Reap it when it exits.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(e) => eprintln!(
            "splitdns notify: cannot start the terminal `{}`: {e}; run `splitdns whitelist review` in a terminal, \
             and set the terminal with --terminal or SPLITDNS_TERMINAL",
            terminal.join(" ")
        ),
    }
}

/// Whether this is the only notifier of this user for a daemon.
enum Instance {
    /// It is: the lock, held for the life of the process (none without `XDG_RUNTIME_DIR`).
    First(Option<nix::fcntl::Flock<std::fs::File>>),
    /// Another one runs.
    Another,
}

/// Takes the lock that makes this the only notifier of this user for the daemon at `socket`: the
/// systemd user unit and the XDG autostart file must not both notify.
fn single_instance(socket: &Path) -> anyhow::Result<Instance> {
    let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) else {
        return Ok(Instance::First(None));
    };
    // FNV-1a of the socket path: one notifier per daemon, stable across versions.
    let hash = socket
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let path = Path::new(&dir).join(format!("splitdns-notify-{hash:016x}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {} (check XDG_RUNTIME_DIR)", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Instance::First(Some(lock))),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            eprintln!(
                "splitdns notify: another splitdns notify already follows the daemon at {} for this user (it holds \
                 {}); exiting",
                socket.display(),
                path.display()
            );
            Ok(Instance::Another)
        }
        Err((_, e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// The terminal to use: `--terminal` if its program exists, else the first of
/// [`alerts::TERMINALS`] found on PATH.
fn find_terminal(given: Option<&str>) -> Option<Vec<String>> {
    match given {
        Some(value) => {
            let words = alerts::terminal_words(value)?;
            if on_path(&words[0]) {
                Some(words)
            } else {
                eprintln!("splitdns notify: the terminal program {:?} (--terminal) was not found", words[0]);
                None
            }
        }
        None => alerts::TERMINALS.iter().filter_map(|t| alerts::terminal_words(t)).find(|w| on_path(&w[0])),
    }
}

/// Whether `program` names an executable file, directly or on PATH.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable =
        |p: &Path| p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| executable(&dir.join(program))))
        .unwrap_or(false)
}
