//! `splitdns notify` against a private session bus: a session `dbus-daemon` started here, and a
//! recording notification server (zbus) that owns org.freedesktop.Notifications and keeps every
//! Notify call. One notification for a pending anchor, none for a whitelisted one (in use), and
//! after the daemon restarts — and the notifier reconnects and is replayed the first anchor — a
//! second pending anchor is notified exactly once and the first not again. The "Review…" button
//! runs the configured terminal with `splitdns whitelist review`.
//!
//! Needs `dbus-daemon` (Debian package `dbus-daemon`); without it the test says so and passes,
//! unless SPLITDNS_REQUIRE_DBUS_TEST=1 (CI) makes that a failure.

mod common;

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, bin};
use common::signed::{ServeOptions, SignOptions, SignedServer, SignedZone};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedValue;

const PATH: &str = "/org/freedesktop/Notifications";

/// A private session bus; killed on drop.
struct Bus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    /// Starts `dbus-daemon`; `None` (after saying why) when it is not installed and not required.
    fn start() -> Option<Bus> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("session.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().join("bus").display()
            ),
        )
        .unwrap();
        let spawned = Command::new("dbus-daemon")
            // The file's <type>session</type> makes it a session bus (`--session` would read the
            // machine's session.conf instead of this file).
            .args(["--nofork", "--print-address"])
            .arg(format!("--config-file={}", config.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("dbus.log")).unwrap())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let required = std::env::var("SPLITDNS_REQUIRE_DBUS_TEST").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "dbus-daemon is not installed, and SPLITDNS_REQUIRE_DBUS_TEST=1: install the Debian package \
                     dbus-daemon (apt-get install dbus-daemon)"
                );
                eprintln!(
                    "SKIPPED: splitdns notify against a session bus needs dbus-daemon (Debian package dbus-daemon); \
                     set SPLITDNS_REQUIRE_DBUS_TEST=1 to make its absence a failure"
                );
                return None;
            }
            Err(e) => panic!("cannot start dbus-daemon: {e}"),
        };
        let mut address = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut address).unwrap();
        let address = address.trim().to_string();
        if !address.starts_with("unix:") {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("dbus.log")).unwrap_or_default();
            panic!("dbus-daemon printed no address ({address:?}): {log}");
        }
        Some(Bus { child, address, _dir: dir })
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Notify call as the server received it.
#[derive(Clone, Debug)]
struct Notified {
    id: u32,
    app: String,
    summary: String,
    body: String,
    actions: Vec<String>,
}

/// A notification server that records what it is asked to show.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Notified>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Recorder {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut calls = self.calls.lock().unwrap();
        let id = calls.len() as u32 + 1;
        calls.push(Notified { id, app: app_name, summary, body, actions });
        id
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["actions".into(), "body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        ("recorder".into(), "splitdns tests".into(), "1".into(), "1.2".into())
    }

    fn close_notification(&self, _id: u32) {}

    #[zbus(signal)]
    async fn action_invoked(emitter: &SignalEmitter<'_>, id: u32, action_key: &str) -> zbus::Result<()>;
}

impl Recorder {
    /// Owns org.freedesktop.Notifications on `bus` until the connection is dropped.
    async fn serve(bus: &Bus) -> (zbus::Connection, Recorder) {
        let recorder = Recorder::default();
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name("org.freedesktop.Notifications")
            .unwrap()
            .serve_at(PATH, recorder.clone())
            .unwrap()
            .build()
            .await
            .expect("the recording notification server joins the private bus");
        (conn, recorder)
    }

    fn calls(&self) -> Vec<Notified> {
        self.calls.lock().unwrap().clone()
    }

    /// The notifications about `domain`.
    fn about(&self, domain: &str) -> Vec<Notified> {
        self.calls().into_iter().filter(|n| n.body.contains(&format!(" {domain} "))).collect()
    }
}

/// `splitdns notify`, its stderr in a file; killed on drop.
struct Notifier {
    child: Child,
    log: PathBuf,
}

impl Notifier {
    fn start(d: &Daemon, bus: &Bus, terminal: &str) -> Notifier {
        Self::start_logging_to(d, bus, terminal, "notify.log")
    }

    fn start_logging_to(d: &Daemon, bus: &Bus, terminal: &str, log: &str) -> Notifier {
        let log = d.dir.path().join(log);
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .arg("--control-socket")
            .arg(&d.socket)
            .arg("notify")
            .arg("--terminal")
            .arg(terminal)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            // Its single-instance lock goes here, not in the machine's runtime directory.
            .env("XDG_RUNTIME_DIR", d.dir.path())
            .env_remove("SPLITDNS_TERMINAL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn splitdns notify");
        Notifier { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn connects(&self) -> usize {
        self.log().matches("connected to the splitdns daemon").count()
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` every 20 ms until it holds; panics with `what` and the notifier's log after 10 s
/// (a reconnect waits up to 4 s after the daemon is back; CI machines are busy).
async fn wait_until(what: &str, n: &Notifier, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; splitdns notify's log:\n{}", n.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_posts_one_notification_per_pending_anchor_across_daemon_restarts() {
    let Some(bus) = Bus::start() else { return };
    let started = Instant::now();
    let (server, recorder) = Recorder::serve(&bus).await;

    let (corp, lab, lab2) = (
        SignedZone::corp(),
        SignedZone::build("lab.example.", &SignOptions::default()),
        SignedZone::build("lab2.example.", &SignOptions::default()),
    );
    let corp_srv = SignedServer::start(&corp, ServeOptions::default()).await;
    let corp_addr = corp_srv.addr().to_string();
    let mut d = Daemon::start_with_whitelist(&[], &[], "corp.example profile=corp\n").await;
    // The "terminal": records the command it was asked to run.
    let clicked = d.dir.path().join("review-args");
    let terminal = d.dir.path().join("terminal");
    std::fs::write(
        &terminal,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}.tmp\nmv {0}.tmp {0}\n", clicked.display()),
    )
    .unwrap();
    std::fs::set_permissions(&terminal, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let n = Notifier::start(&d, &bus, terminal.to_str().unwrap());
    wait_until("the first connection", &n, async || n.connects() == 1).await;

    // A whitelisted anchor: verified and in use, nothing to notify.
    d.link_up(&[
        "--id",
        "corp",
        "--profile",
        "corp",
        "--server",
        &corp_addr,
        "--domain",
        "corp.example",
        "--ta",
        &corp.ds(2),
    ]);
    wait_until("the corp anchor in use", &n, async || d.status().await["links"][0]["trust"][0]["state"] == "verified")
        .await;
    // An anchor for a domain nobody approved: one notification, with the button.
    d.link_up(&[
        "--id",
        "lab",
        "--profile",
        "lab",
        "--server",
        &corp_addr,
        "--domain",
        "lab.example",
        "--ta",
        &lab.ds(2),
    ]);
    wait_until("the lab notification", &n, async || !recorder.about("lab.example").is_empty()).await;
    let calls = recorder.calls();
    // Events are handled in order: a notification for corp would have come before lab's.
    assert_eq!(
        calls.len(),
        1,
        "one notification, for lab.example only (none for the whitelisted corp.example): {calls:#?}"
    );
    let first = &calls[0];
    assert_eq!(first.app, "splitdns");
    assert!(
        first.body.starts_with("VPN profile `lab` offers a DNSSEC trust anchor for lab.example — review it."),
        "{first:#?}"
    );
    assert!(first.summary.contains("lab.example"), "{first:#?}");
    assert_eq!(first.actions, ["review", "Review…"], "{first:#?}");

    // "Review…" opens the terminal with the review of this daemon.
    let iface = server.object_server().interface::<_, Recorder>(PATH).await.unwrap();
    Recorder::action_invoked(iface.signal_emitter(), first.id, "review").await.unwrap();
    wait_until("the terminal to run", &n, async || clicked.exists()).await;
    let args = std::fs::read_to_string(&clicked).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(&args[..2], ["sh", "-c"], "{args:?}");
    assert_eq!(
        &args[args.len() - 5..],
        [bin(), "--control-socket", d.socket.to_str().unwrap(), "whitelist", "review"],
        "{args:?}"
    );

    // The daemon dies and comes back with its links; the notifier reconnects and is replayed the
    // lab anchor, which still waits.
    d.crash();
    d.restart().await;
    wait_until("the reconnect", &n, async || n.connects() == 2).await;
    let pending = d.status().await["pending_reviews"].clone();
    assert!(pending.to_string().contains("lab.example"), "the restarted daemon replays the lab anchor: {pending}");
    // A second anchor waits: notified once; the first not again.
    d.link_up(&["--id", "lab2", "--server", &corp_addr, "--domain", "lab2.example", "--ta", &lab2.ds(2)]);
    wait_until("the lab2 notification", &n, async || !recorder.about("lab2.example").is_empty()).await;
    // Room for a late duplicate.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = recorder.calls();
    assert_eq!(recorder.about("lab.example").len(), 1, "lab.example notified again after the reconnect: {calls:#?}");
    assert_eq!(recorder.about("lab2.example").len(), 1, "{calls:#?}");
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(calls[1].body.starts_with("VPN link `lab2` offers"), "{calls:#?}");
    eprintln!("notify test took {:?}; splitdns notify's log:\n{}", started.elapsed(), n.log());
}

/// No notification server at first: the notifier says so, keeps going, and shows what it could
/// not show at the next event, once a server is there. Without a terminal, the text says what to
/// run instead of offering a button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_survives_a_missing_notification_server_and_shows_what_waited() {
    let Some(bus) = Bus::start() else { return };
    let (lab, lab2) = (
        SignedZone::build("lab.example.", &SignOptions::default()),
        SignedZone::build("lab2.example.", &SignOptions::default()),
    );
    let d = Daemon::start_with_whitelist(&[], &[], "").await;
    let n = Notifier::start(&d, &bus, "none");
    wait_until("the connection", &n, async || n.connects() == 1).await;
    // The server address of a pending anchor is never asked: any address of this machine will do.
    d.link_up(&["--id", "lab", "--server", "127.0.0.1:9", "--domain", "lab.example", "--ta", &lab.ds(2)]);
    wait_until("the failure to show", &n, async || n.log().contains("cannot show a desktop notification")).await;

    let (_server, recorder) = Recorder::serve(&bus).await;
    d.link_up(&["--id", "lab2", "--server", "127.0.0.1:9", "--domain", "lab2.example", "--ta", &lab2.ds(2)]);
    wait_until("both notifications", &n, async || recorder.calls().len() == 2).await;
    let calls = recorder.calls();
    assert!(calls[0].body.contains(" lab.example ") && calls[1].body.contains(" lab2.example "), "{calls:#?}");
    let run = format!("Run `splitdns --control-socket {} whitelist review` in a terminal.", d.socket.display());
    for c in &calls {
        assert!(c.actions.is_empty() && c.body.ends_with(&run), "{c:#?}");
    }
    assert!(n.log().contains("the notification server answers again"), "{}", n.log());

    // A second notifier for the same user and daemon (the autostart file and the user unit both
    // started) steps aside at once.
    let mut second = Notifier::start_logging_to(&d, &bus, "none", "notify2.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = second.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "a second notifier kept running: {}", second.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success() && second.log().contains("another splitdns notify already follows"), "{}", second.log());
}
