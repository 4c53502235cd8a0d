//! The control socket cannot be locked, through the real binary: connections that trickle bytes
//! or sit idle are closed at the request-line deadline and cannot keep root out; a refused peer
//! reads the permission message (never "Broken pipe") and takes no slot; a permitted non-root user
//! cannot exceed its share, and root still gets in while such users hold all of theirs. The scheme
//! is described in src/control/server.rs.
//!
//! The tests run as root in CI, so the slow and idle connections are root's, as a hung hook's
//! would be; run by another user they are the daemon's own user's, which has the same scheme. The
//! tests that act as other users (uid 65534 `nobody`, and uids without a passwd entry in nobody's
//! primary group) need root; without it they print `SKIPPED: why` and pass.

mod common;

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::users::{NOBODY, can_switch_users, cli_as, nobody_and_group, open_to_others};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The daemon's deadline for a complete request line (src/control/server.rs).
const LINE_DEADLINE: Duration = Duration::from_secs(5);

fn upstream() -> Vec<SocketAddr> {
    vec!["127.0.0.1:9".parse().unwrap()]
}

const LINK_UP: &[&str] = &["--id", "vpn", "--server", "127.0.0.1", "--domain", "corp.example"];

/// `splitdns link up` as root through the CLI, without blocking the runtime's other tasks;
/// returns (success, stderr, how long it took).
fn link_up(d: &Daemon) -> (bool, String, Duration) {
    let started = Instant::now();
    let mut args = vec!["link", "up"];
    args.extend_from_slice(LINK_UP);
    let (ok, _, err) = tokio::task::block_in_place(|| d.cli(&args));
    (ok, err, started.elapsed())
}

/// Parses one `{"ok":false,"error":"…"}` line and returns the error text.
fn error_line(raw: &str, what: &str) -> String {
    let line = raw.lines().next().unwrap_or_default();
    assert!(raw.starts_with(line) && raw[line.len()..].starts_with('\n'), "{what}: not one full line: {raw:?}");
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: {line:?} is not JSON: {e}"));
    assert_eq!(v["ok"], false, "{what}: {v}");
    let error = v["error"].as_str().unwrap_or_else(|| panic!("{what}: no error text: {v}"));
    assert!(!error.trim().is_empty(), "{what}: empty error");
    error.to_string()
}

/// A slowloris: sends a real request one byte a second, never the newline, and reads until the
/// daemon closes. Returns what it read and when the connection ended (None: still open after
/// `give_up`).
async fn slow_client(stream: UnixStream, give_up: Duration) -> (String, Option<Duration>) {
    let opened = Instant::now();
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move {
        let request = br#"{"cmd":"status"}"#;
        for i in 0..30 {
            let byte = request.get(i).copied().unwrap_or(b' ');
            if w.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let ended = loop {
        match tokio::time::timeout_at((opened + give_up).into(), r.read(&mut chunk)).await {
            Err(_) => break None,
            Ok(Ok(0)) => break Some(opened.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            // A reset after the error line is a close too.
            Ok(Err(_)) => break Some(opened.elapsed()),
        }
    };
    writer.abort();
    (String::from_utf8_lossy(&got).into_owned(), ended)
}

/// 40 root connections trickle a request a byte a second: a fresh `link up` still succeeds (within
/// the CLI's own 5 s deadline), and every slow connection is closed with an error line once the
/// request-line deadline has passed, however many bytes it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_do_not_block_link_up_and_are_closed_at_the_deadline() {
    let d = Daemon::start(&upstream(), &[]).await;
    let mut slow = Vec::new();
    for i in 0..40 {
        let stream = UnixStream::connect(&d.socket).await.unwrap_or_else(|e| panic!("slow connection {i}: {e}"));
        slow.push(tokio::spawn(slow_client(stream, LINE_DEADLINE * 3)));
    }
    // Let each of them send a byte or two first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ok, err, took) = link_up(&d);
    assert!(ok, "link up with 40 slow connections open failed: {err}\nlog:\n{}", d.log_text());
    eprintln!("link up with 40 slow connections open: {took:?}");

    let mut closed_after = Vec::new();
    for (i, task) in slow.into_iter().enumerate() {
        let (text, ended) = task.await.expect("slow client task");
        let ended = ended.unwrap_or_else(|| panic!("slow connection {i} still open after {:?}", LINE_DEADLINE * 3));
        let error = error_line(&text, &format!("slow connection {i}"));
        assert!(error.contains("5 s"), "slow connection {i}: the error does not name the deadline: {error}");
        closed_after.push(ended);
    }
    closed_after.sort();
    eprintln!(
        "slow connections closed {:?} to {:?} after connecting (deadline {LINE_DEADLINE:?})",
        closed_after[0],
        closed_after[closed_after.len() - 1]
    );
    // The daemon is still fine.
    assert_eq!(d.status().await["links"][0]["id"], "vpn");
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; returns the new soft limit.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            let _ = libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

/// 2,000 idle root connections: root's `link up` still succeeds, and the connections the daemon
/// let go were told why in an error line, not just dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_do_not_block_link_up() {
    const IDLE: usize = 2000;
    let limit = raise_nofile();
    if limit < 2100 {
        eprintln!("SKIPPED: 2,000 idle connections need RLIMIT_NOFILE above 2,100; the hard limit is {limit}");
        return;
    }
    let d = Daemon::start(&upstream(), &[]).await;
    let started = Instant::now();
    let idle: Vec<std::os::unix::net::UnixStream> = tokio::task::block_in_place(|| {
        (0..IDLE)
            .map(|i| {
                std::os::unix::net::UnixStream::connect(&d.socket)
                    .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
            })
            .collect()
    });
    eprintln!("{IDLE} idle connections opened in {:?}", started.elapsed());

    let (ok, err, took) = link_up(&d);
    assert!(ok, "link up with {IDLE} idle connections open failed: {err}\nlog:\n{}", d.log_text());
    eprintln!("link up with {IDLE} idle connections open: {took:?}");

    // The oldest were let go to make room, each with a reason.
    let mut told = 0;
    for (i, mut c) in idle.iter().take(100).enumerate() {
        c.set_read_timeout(Some(LINE_DEADLINE * 2)).unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            match c.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("idle connection {i}: no close within {:?}: {e}", LINE_DEADLINE * 2),
            }
        }
        error_line(&String::from_utf8_lossy(&got), &format!("idle connection {i}"));
        told += 1;
    }
    eprintln!("{told} of the 100 oldest idle connections were closed with an error line");
    drop(idle);
    assert_eq!(d.status().await["links"][0]["id"], "vpn");
}

/// A process of another user holding `n` connections to a socket, never sending a byte: `sleep`,
/// which inherits sockets connected between the user switch and the exec. Killed on drop.
struct Holder(Child);

impl Holder {
    fn start(socket: &Path, uid: u32, gid: u32, n: usize) -> Holder {
        // Everything the child needs is built here: between fork and exec it may only make system calls.
        // SAFETY: sockaddr_un is plain data; all zeroes is a valid (empty) address.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let path = socket.as_os_str().as_bytes();
        assert!(path.len() < addr.sun_path.len(), "socket path too long: {}", socket.display());
        for (dst, src) in addr.sun_path.iter_mut().zip(path) {
            *dst = *src as libc::c_char;
        }
        let mut cmd = Command::new("sleep");
        cmd.arg("30").uid(uid).gid(gid).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: the closure runs in the forked child after the user switch and makes only
        // async-signal-safe system calls (prctl, socket, connect); the sockets are not
        // close-on-exec, so `sleep` keeps them open.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                for _ in 0..n {
                    let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
                    if libc::connect(fd, (&raw const addr).cast::<libc::sockaddr>(), len) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        Holder(cmd.spawn().unwrap_or_else(|e| panic!("uid {uid}: cannot hold {n} connections: {e}")))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A peer that may not use the socket (uid 65534, the socket opened to everyone) reads the
/// permission message every time, never "Broken pipe"; and its connections take no slot: with
/// 40 of them open, root's `link up` works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_peer_reads_the_permission_message_and_takes_no_slot() {
    if !can_switch_users("refused_peer_reads_the_permission_message_and_takes_no_slot") {
        return;
    }
    let d = Daemon::start(&upstream(), &[]).await;
    let binary = open_to_others(&d);
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    let started = Instant::now();
    for i in 0..50 {
        let (ok, err) = tokio::task::block_in_place(|| cli_as(&binary, &d, NOBODY, NOBODY, &["status"]));
        assert!(!ok, "try {i}: uid {NOBODY} was let in");
        assert!(!err.contains("Broken pipe") && !err.contains("os error"), "try {i}: {err}");
        assert!(err.contains("permission denied") && err.contains("uid 65534"), "try {i}: {err}");
        assert!(err.contains("control_group"), "try {i}: the message does not say what to do: {err}");
    }
    eprintln!("50 refused tries in {:?}, each with the permission message", started.elapsed());

    let _held = Holder::start(&d.socket, NOBODY, NOBODY, 40);
    let (ok, err, took) = link_up(&d);
    assert!(ok, "link up with 40 refused connections open failed: {err}\nlog:\n{}", d.log_text());
    eprintln!("link up with 40 refused connections open: {took:?}");
}

/// A permitted non-root user (here: in the control_group as its primary group) gets at most 8
/// connections and is then told so; members together get at most 32; root still gets in while
/// they hold all of those; and once the held connections pass the request-line deadline, the
/// user gets in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permitted_user_is_held_to_its_share_and_root_still_gets_in() {
    if !can_switch_users("permitted_user_is_held_to_its_share_and_root_still_gets_in") {
        return;
    }
    let Some((gid, group)) = nobody_and_group("permitted_user_is_held_to_its_share_and_root_still_gets_in") else {
        return;
    };
    let d = Daemon::start_with_config(&upstream(), &[], &format!("control_group = {:?}", group)).await;
    let binary = open_to_others(&d);

    // Before anything is held, the user gets in.
    let (ok, err) = tokio::task::block_in_place(|| cli_as(&binary, &d, NOBODY, gid, &["status"]));
    assert!(ok, "uid {NOBODY} in the control_group {} was refused: {err}", group);

    let held_at = Instant::now();
    let _nobody = Holder::start(&d.socket, NOBODY, gid, 12);
    let (ok, err) = tokio::task::block_in_place(|| cli_as(&binary, &d, NOBODY, gid, &["status"]));
    assert!(!ok, "a 13th connection of uid {NOBODY} was served");
    assert!(err.contains("too many connections from uid 65534") && err.contains("at most 8"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");

    // Three more users fill the members' 32; a fifth is refused, root is not.
    let _others: Vec<Holder> = (1..=3).map(|k| Holder::start(&d.socket, 60_000 + k, gid, 8)).collect();
    let (ok, err) = tokio::task::block_in_place(|| cli_as(&binary, &d, 60_009, gid, &["status"]));
    assert!(!ok, "a 33rd member connection was served");
    assert!(err.contains("control_group") && err.contains("at most 32"), "{err}");
    let (ok, err, took) = link_up(&d);
    assert!(ok, "root's link up with the members' slots all held failed: {err}\nlog:\n{}", d.log_text());
    eprintln!("root's link up with all 32 member slots held: {took:?}");

    // The held connections never send a request: the deadline frees their slots.
    let gave_up = held_at + LINE_DEADLINE * 3;
    loop {
        let (ok, err) = tokio::task::block_in_place(|| cli_as(&binary, &d, NOBODY, gid, &["status"]));
        if ok {
            eprintln!("uid {NOBODY} got in again {:?} after its connections were opened", held_at.elapsed());
            break;
        }
        assert!(Instant::now() < gave_up, "uid {NOBODY} still refused after {:?}: {err}", held_at.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
