//! Runs the real `splitdns` binary for integration tests: temporary state directory and control
//! socket, an ephemeral loopback port, and a control-socket client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A running daemon; killed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub dns: SocketAddr,
    pub upstream: Vec<SocketAddr>,
    extra: Vec<String>,
    log: PathBuf,
    /// The network namespace the daemon runs in (`ip netns exec NAME`), if not the test's own.
    netns: Option<String>,
    /// The daemon's limit on open files (soft and hard), when a test sets one.
    open_files: Option<u64>,
}

/// Runs `cmd` with no standard input; returns (success, stdout, stderr).
pub fn run(mut cmd: Command) -> (bool, String, String) {
    let out = cmd.stdin(Stdio::null()).output().expect("run splitdns");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_splitdns")
}

impl Daemon {
    /// Starts a daemon whose default upstream is `upstream`, with extra flags.
    pub async fn start(upstream: &[SocketAddr], extra: &[&str]) -> Daemon {
        Self::start_in(tempfile::tempdir().expect("tempdir"), upstream, extra).await
    }

    /// Starts a daemon in `dir` (which may already hold its config.toml or whitelist).
    async fn start_in(dir: tempfile::TempDir, upstream: &[SocketAddr], extra: &[&str]) -> Daemon {
        Self::start_in_netns(dir, None, upstream, extra).await
    }

    /// Starts a daemon inside the network namespace `netns` (`ip netns exec`, so root only). Its
    /// DNS address is reachable only inside that namespace; its control socket is a path, reachable
    /// from the test.
    pub async fn start_in_network_namespace(netns: &str, upstream: &[SocketAddr], extra: &[&str]) -> Daemon {
        Self::start_in_netns(tempfile::tempdir().expect("tempdir"), Some(netns), upstream, extra).await
    }

    async fn start_in_netns(
        dir: tempfile::TempDir,
        netns: Option<&str>,
        upstream: &[SocketAddr],
        extra: &[&str],
    ) -> Daemon {
        Self::launch(dir, netns, None, upstream, extra).await
    }

    async fn launch(
        dir: tempfile::TempDir,
        netns: Option<&str>,
        open_files: Option<u64>,
        upstream: &[SocketAddr],
        extra: &[&str],
    ) -> Daemon {
        let mut d = Daemon {
            child: None,
            socket: dir.path().join("control.sock"),
            state_dir: dir.path().join("state"),
            dns: "127.0.0.1:0".parse().unwrap(),
            upstream: upstream.to_vec(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log: dir.path().join("daemon.log"),
            netns: netns.map(str::to_string),
            open_files,
            dir,
        };
        d.spawn("127.0.0.1:0".parse().unwrap()).await;
        d
    }

    async fn spawn(&mut self, listen: SocketAddr) {
        let mut cmd = match &self.netns {
            None => Command::new(bin()),
            // `ip netns exec` execs the binary: the child's pid is the daemon's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                // A daemon left in a namespace is hard to find: have it stop when the test thread
                // ends, even if the test binary is killed before Drop runs.
                use std::os::unix::process::CommandExt;
                // SAFETY: prctl(2) is async-signal-safe and touches only the child.
                unsafe {
                    c.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                c
            }
        };
        cmd.arg("--control-socket").arg(&self.socket).arg("daemon");
        cmd.arg("--listen").arg(listen.to_string());
        cmd.arg("--state-dir").arg(&self.state_dir);
        // Never read the machine's own config or resolv.conf.
        let config = self.dir.path().join("config.toml");
        if !config.exists() {
            std::fs::write(&config, format!("resolv_conf = {:?}\n", self.dir.path().join("no-resolv.conf"))).unwrap();
        }
        cmd.arg("--config").arg(&config);
        // Never read the machine's whitelist either: each daemon has its own, in its temp dir.
        if !self.extra.iter().any(|a| a == "--whitelist") {
            cmd.arg("--whitelist").arg(self.whitelist_path());
        }
        for u in &self.upstream {
            cmd.arg("--upstream").arg(u.to_string());
        }
        cmd.args(&self.extra);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        cmd.env("RUST_LOG", "splitdns=debug");
        if let Some(limit) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit(2) is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, limit, limit)
                        .map_err(std::io::Error::from)
                });
            }
        }
        self.child = Some(cmd.spawn().expect("spawn splitdns"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited early ({status}); log:\n{}", self.log_text());
            }
            if let Ok(st) = self.try_status().await {
                let listen = st["listen"][0].as_str().unwrap_or_default().to_string();
                if let Ok(addr) = listen.parse() {
                    self.dns = addr;
                    return;
                }
            }
            assert!(Instant::now() < deadline, "daemon did not come up; log:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The whitelist file this daemon reads (in its temp dir unless `--whitelist` was given).
    pub fn whitelist_path(&self) -> PathBuf {
        self.dir.path().join("whitelist")
    }

    /// Starts a daemon whose whitelist file holds `whitelist` from the start.
    pub async fn start_with_whitelist(upstream: &[SocketAddr], extra: &[&str], whitelist: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("whitelist"), whitelist).unwrap();
        Self::start_in(dir, upstream, extra).await
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one raw line to the control socket and returns the raw reply line.
    pub async fn raw(&self, line: &[u8]) -> String {
        raw_control(&self.socket, line).await
    }

    /// Sends a JSON request and returns the JSON reply.
    pub async fn request(&self, req: Value) -> Value {
        let mut line = serde_json::to_vec(&req).unwrap();
        line.push(b'\n');
        let reply = self.raw(&line).await;
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("bad reply {reply:?}: {e}"))
    }

    async fn try_status(&self) -> Result<Value, String> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| e.to_string())?;
        let (r, mut w) = stream.into_split();
        w.write_all(b"{\"cmd\":\"status\"}\n").await.map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(r).read_line(&mut line).await.map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        Ok(v["result"].clone())
    }

    /// `status` result object.
    pub async fn status(&self) -> Value {
        let v = self.request(serde_json::json!({"cmd": "status"})).await;
        assert_eq!(v["ok"], true, "{v}");
        v["result"].clone()
    }

    /// Runs the CLI against this daemon and returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(bin());
        cmd.arg("--control-socket").arg(&self.socket).args(args);
        run(cmd)
    }

    /// `splitdns link up` through the CLI; panics on failure.
    pub fn link_up(&self, args: &[&str]) -> String {
        let mut all = vec!["link", "up"];
        all.extend_from_slice(args);
        let (ok, out, err) = self.cli(&all);
        assert!(ok, "link up {args:?} failed: {err}\nlog:\n{}", self.log_text());
        out
    }

    /// `splitdns link down --id ID`; panics on failure.
    pub fn link_down(&self, id: &str) -> String {
        let (ok, out, err) = self.cli(&["link", "down", "--id", id]);
        assert!(ok, "link down failed: {err}");
        out
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.as_ref().unwrap().id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
    }

    /// Stops the daemon with SIGTERM and waits; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the daemon hard (a crash), keeping its state directory.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again on the same address and state directory.
    pub async fn restart(&mut self) {
        let listen = self.dns;
        self.spawn(listen).await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends one raw line to a control socket and returns the first reply line.
pub async fn raw_control(socket: &Path, line: &[u8]) -> String {
    let stream = UnixStream::connect(socket).await.expect("connect control socket");
    let (r, mut w) = stream.into_split();
    // The daemon may close early (oversized request); ignore write errors.
    let _ = w.write_all(line).await;
    let mut reply = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), BufReader::new(r).read_line(&mut reply)).await;
    reply
}

impl Daemon {
    /// Like [`Daemon::start`], but the daemon's config file also holds `config` (TOML lines such
    /// as `query_timeout_ms = 1000`).
    pub async fn start_with_config(upstream: &[SocketAddr], extra: &[&str], config: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let resolv = dir.path().join("no-resolv.conf");
        std::fs::write(dir.path().join("config.toml"), format!("resolv_conf = {resolv:?}\n{config}\n")).unwrap();
        Self::start_in(dir, upstream, extra).await
    }

    /// Like [`Daemon::start`], with the daemon's open-files limit (soft and hard) set to `limit`,
    /// as a service manager's default of 1,024 would.
    pub async fn start_with_open_files_limit(upstream: &[SocketAddr], extra: &[&str], limit: u64) -> Daemon {
        Self::launch(tempfile::tempdir().expect("tempdir"), None, Some(limit), upstream, extra).await
    }

    /// Like [`Daemon::start`], but with exactly `config` as the config file (nothing added: without
    /// `resolv_conf` and `upstream` the daemon follows the system's files, under `--root` if given).
    pub async fn start_with_raw_config(upstream: &[SocketAddr], extra: &[&str], config: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Self::start_in(dir, upstream, extra).await
    }
}
