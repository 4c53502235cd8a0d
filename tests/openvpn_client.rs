//! The real OpenVPN client end to end: an OpenVPN 2.x server and client in two network namespaces
//! joined by a veth pair, TLS with certificates made at test time by `openssl`, the client's
//! `--up`/`--down` being the lines of packaging/hooks/openvpn-splitdns.conf (block A), and a splitdns
//! daemon inside the client's namespace.
//!
//! What is checked, for the two shapes of push an OpenVPN server sends (`dhcp-option DNS` +
//! `dhcp-option DOMAIN`, and 2.6's `dns server 1 address` + `dns server 1 resolve-domains`): the
//! link comes up with the right domains; `splitdns query` (over the control socket, a path that
//! crosses namespaces) answers a corp name from the server's DNS through the tunnel; a client
//! stopped with SIGTERM runs its down script and the link is gone; one killed with SIGKILL runs no
//! script, but its tun device vanishes and the link goes with it (and the next connection on a new
//! tun0 gets its domain). Also: an up whose only domain another VPN owns makes the real client give
//! up, leaving no link behind.
//!
//! The tunnel's DNS server is a hickory authority from tests/common, run on a thread that first
//! enters the server's namespace with setns(2), then creates its runtime and sockets there: the
//! same server the other tests use, with its query log, and no extra process. It listens on
//! 0.0.0.0:53 of that namespace, so it is up before the tunnel address exists. Addresses come from
//! 198.18.0.0/15 (RFC 2544 benchmarking): veth 198.18.0.1/.2, tunnel 198.19.9.0/24. Nothing
//! leaves the two namespaces.
//!
//! Needs root (network namespaces, tun devices, port 53), `ip`, `openssl` and `openvpn` (Debian:
//! `apt-get install openvpn`). Without them each test prints why it is skipped and passes, unless
//! SPLITDNS_REQUIRE_OPENVPN_TEST=1 is set, which turns the skip into a failure (for CI).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::auth::{AuthServer, LoggedQuery, zone};
use common::daemon::{Daemon, bin};
use serde_json::Value;

/// The tunnel's server end, where its DNS server answers.
const TUNNEL_DNS: &str = "198.19.9.1";
/// The client's tunnel address (the first of the pool of `server 198.19.9.0 255.255.255.0`).
const CLIENT_TUNNEL_IP: &str = "198.19.9.2";
/// The link the client's hook reports: device tun0, config file corp.conf.
const LINK: &str = "openvpn:tun0:corp";
const CORP_WWW: &str = "198.19.9.80";
const PUBLIC_WWW: &str = "203.0.113.66";

/// Everything a test needs from the machine, or why it cannot run here.
fn tools() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not root: network namespaces and tun devices need CAP_NET_ADMIN".into());
    }
    for tool in ["openvpn", "openssl", "ip"] {
        if find_program(tool).is_none() {
            return Err(format!("no `{tool}` on PATH (Debian: apt-get install openvpn openssl iproute2)"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("no /dev/net/tun".into());
    }
    Ok(())
}

/// `name` on PATH, where the commands below find it.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').filter(|d| !d.is_empty()).map(|dir| Path::new(dir).join(name)).find(|p| p.is_file())
}

/// Prints why the test is skipped; fails instead when SPLITDNS_REQUIRE_OPENVPN_TEST=1.
fn skip(why: &str) {
    if std::env::var("SPLITDNS_REQUIRE_OPENVPN_TEST").as_deref() == Ok("1") {
        panic!("the real OpenVPN client test cannot run here, and SPLITDNS_REQUIRE_OPENVPN_TEST=1: {why}");
    }
    eprintln!("SKIPPED: the real OpenVPN client test needs root, ip, openssl and openvpn: {why}");
}

/// Runs a command to completion; Err with its output when it fails.
fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace of this test run; deleted on drop (after the processes in it are gone, as
/// it is declared before them).
struct Netns {
    name: String,
}

impl Netns {
    fn add(name: String) -> Result<Netns, String> {
        sh("ip", &["netns", "add", &name])?;
        let ns = Netns { name };
        sh("ip", &["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        sh("ip", &all).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.name]);
    }
}

/// Deletes namespaces left behind by earlier runs of these tests that were killed before their
/// guards ran (their process is gone).
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("sdns-t").and_then(|r| r.split('-').next()) else { continue };
        if pid.parse::<u32>().is_ok_and(|p| p != std::process::id()) && !Path::new("/proc").join(pid).exists() {
            let _ = sh("ip", &["netns", "del", &name]);
        }
    }
}

/// Has `cmd` get SIGTERM when the test thread that starts it ends, even if the test binary is
/// killed before any guard runs (prctl PR_SET_PDEATHSIG survives the exec of `ip netns exec`).
fn stop_with_the_test(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(2) is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A child process killed (SIGTERM, then SIGKILL) and reaped on drop.
struct Proc {
    child: Option<Child>,
    name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Proc {
        let log = std::fs::File::create(log).expect("log file");
        cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("log file")).stderr(log);
        stop_with_the_test(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc { child: Some(child), name }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(child) = &self.child {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
        }
    }

    /// Waits up to `limit` for the process to exit; its status, or None if it still runs.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        if self.wait_exit(Duration::from_secs(3)).is_none()
            && let Some(mut child) = self.child.take()
        {
            eprintln!("{} did not stop on SIGTERM; killing it", self.name);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A hickory authority serving `zones` on `addr` inside a network namespace, on a thread of its
/// own. Stopped on drop; [`NsDns::stop`] also returns the queries it received.
struct NsDns {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Vec<LoggedQuery>>>,
}

impl NsDns {
    fn start(ns: &Netns, addr: SocketAddr, zones: Vec<(String, String)>) -> NsDns {
        let file = std::fs::File::open(ns.path()).unwrap_or_else(|e| panic!("open {}: {e}", ns.path().display()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            // Only this thread moves; the sockets and the runtime made below live in the namespace.
            // SAFETY: setns(2) on a descriptor we own, for this thread only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let zones: Vec<(&str, &str)> = zones.iter().map(|(o, z)| (o.as_str(), z.as_str())).collect();
                let server = AuthServer::start_on(addr, &zones).await;
                let _ = ready_tx.send(());
                let _ = stop_rx.await;
                let queries = server.queries();
                server.stop().await;
                queries
            })
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("the DNS server in the namespace did not start");
        NsDns { stop: Some(stop_tx), thread: Some(thread) }
    }

    fn stop(mut self) -> Vec<LoggedQuery> {
        self.finish()
    }

    fn finish(&mut self) -> Vec<LoggedQuery> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take().map(|t| t.join().expect("the DNS server thread panicked")).unwrap_or_default()
    }
}

impl Drop for NsDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the server pushes in a case.
#[derive(Clone, Copy)]
enum Push {
    /// `dhcp-option DNS` + `dhcp-option DOMAIN corp.example`: what most servers push.
    DhcpOptionDomain,
    /// OpenVPN 2.6 `dns server 1 address` + `dns server 1 resolve-domains corp.example`.
    DnsServer,
}

/// A server and a client namespace joined by a veth pair, certificates, and the configs.
/// Field order is drop order: processes first, namespaces last.
struct Lab {
    client: Option<Proc>,
    server: Option<Proc>,
    dir: tempfile::TempDir,
    client_ns: Netns,
    server_ns: Netns,
}

static CASE: AtomicU32 = AtomicU32::new(0);

impl Lab {
    fn new(push: Push) -> Result<Lab, String> {
        remove_stale_namespaces();
        let n = CASE.fetch_add(1, Ordering::Relaxed);
        let base = format!("sdns-t{}-{n}", std::process::id());
        let server_ns = Netns::add(format!("{base}-srv"))?;
        let client_ns = Netns::add(format!("{base}-cli"))?;
        server_ns.ip(&["link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", &client_ns.name]);
        server_ns.ip(&["addr", "add", "198.18.0.1/30", "dev", "veth0"]);
        server_ns.ip(&["link", "set", "veth0", "up"]);
        client_ns.ip(&["addr", "add", "198.18.0.2/30", "dev", "veth1"]);
        client_ns.ip(&["link", "set", "veth1", "up"]);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        make_certificates(dir.path())?;
        std::fs::write(dir.path().join("server.conf"), server_config(dir.path(), push)).map_err(|e| e.to_string())?;
        Ok(Lab { client: None, server: None, dir, client_ns, server_ns })
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// The logs of both ends, for failure messages.
    fn logs(&self) -> String {
        format!("--- server log:\n{}\n--- client log:\n{}", self.log("server.log"), self.log("client.log"))
    }

    fn start_server(&mut self) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.server_ns.name, "openvpn", "--config"]);
        cmd.arg(self.dir.path().join("server.conf"));
        self.server = Some(Proc::spawn("the OpenVPN server", cmd, &self.dir.path().join("server.log")));
        self.wait_log("server.log", "Initialization Sequence Completed", Duration::from_secs(10));
    }

    /// Starts the client with the config file corp.conf, whose hooks talk to `daemon`.
    fn start_client(&mut self, daemon: &Daemon) {
        let conf = self.dir.path().join("corp.conf");
        std::fs::write(&conf, client_config(self.dir.path(), &daemon.socket)).expect("write corp.conf");
        let _ = std::fs::remove_file(self.dir.path().join("client.log"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client_ns.name, "openvpn", "--config"]).arg(&conf);
        self.client = Some(Proc::spawn("the OpenVPN client", cmd, &self.dir.path().join("client.log")));
    }

    fn wait_log(&self, name: &str, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log(name).contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} in {name} after {limit:?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn make_certificates(dir: &Path) -> Result<(), String> {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut args = vec!["req", "-x509"];
    args.extend_from_slice(&ec);
    let (ca_key, ca_crt) = (p("ca.key"), p("ca.crt"));
    args.extend_from_slice(&["-keyout", &ca_key, "-out", &ca_crt, "-days", "2", "-subj", "/CN=splitdns-test-ca"]);
    sh("openssl", &args)?;
    for (who, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let (key, csr, crt, ext) =
            (p(&format!("{who}.key")), p(&format!("{who}.csr")), p(&format!("{who}.crt")), p(&format!("{who}.ext")));
        let mut args = vec!["req"];
        args.extend_from_slice(&ec);
        let subject = format!("/CN={who}");
        args.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", &subject]);
        sh("openssl", &args)?;
        std::fs::write(
            &ext,
            format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"),
        )
        .map_err(|e| e.to_string())?;
        sh(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        )?;
    }
    Ok(())
}

fn server_config(dir: &Path, push: Push) -> String {
    let d = dir.display();
    let pushes = match push {
        Push::DhcpOptionDomain => {
            format!("push \"dhcp-option DNS {TUNNEL_DNS}\"\npush \"dhcp-option DOMAIN corp.example\"\n")
        }
        Push::DnsServer => {
            format!("push \"dns server 1 address {TUNNEL_DNS}\"\npush \"dns server 1 resolve-domains corp.example\"\n")
        }
    };
    format!(
        "dev tun\nproto udp\nlocal 198.18.0.1\nport 1194\ntopology subnet\nserver 198.19.9.0 255.255.255.0\n\
         ca {d}/ca.crt\ncert {d}/server.crt\nkey {d}/server.key\ndh none\nkeepalive 10 60\n{pushes}verb 3\n"
    )
}

/// The lines of packaging/hooks/openvpn-splitdns.conf that are not comments (block A), with the
/// installed path of the binary, /usr/bin/splitdns, replaced by the one under test: the only change.
fn packaged_client_lines() -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/hooks/openvpn-splitdns.conf");
    let text = std::fs::read_to_string(&file).expect("packaging/hooks/openvpn-splitdns.conf");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for directive in ["script-security ", "up ", "down "] {
        assert!(lines.iter().any(|l| l.starts_with(directive)), "no `{directive}` line in {}", file.display());
    }
    assert!(!bin().contains(char::is_whitespace), "the binary's path has white space: {}", bin());
    lines.join("\n").replace("/usr/bin/splitdns", bin()) + "\n"
}

fn client_config(dir: &Path, socket: &Path) -> String {
    let d = dir.display();
    format!(
        "client\ndev tun\nproto udp\nremote 198.18.0.1 1194\nnobind\nconnect-retry 1\n\
         ca {d}/ca.crt\ncert {d}/client.crt\nkey {d}/client.key\nremote-cert-tls server\nverb 3\n\
         # The test daemon's control socket (OpenVPN passes setenv variables to its scripts).\n\
         setenv SPLITDNS_SOCKET {}\n\
         # What OpenVPN hands its scripts, for the test log.\n\
         route-up {d}/dump-env\n\
         {}",
        socket.display(),
        packaged_client_lines()
    )
}

/// A script that writes its environment to `route-up.env` in `dir`.
fn write_dump_script(dir: &Path) {
    let path = dir.join("dump-env");
    std::fs::write(&path, format!("#!/bin/sh\nenv > {}/route-up.env\n", dir.display())).expect("write dump-env");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod dump-env");
}

/// The DNS-related variables OpenVPN gave its scripts (the route-up script sees what the up script
/// saw, with script_type=route-up).
fn script_env(lab: &Lab) -> BTreeMap<String, String> {
    lab.log("route-up.env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            k.starts_with("dns_")
                || k.starts_with("foreign_option_")
                || ["dev", "config", "script_type", "PATH"].contains(k)
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn status_link(st: &Value, id: &str) -> Option<Value> {
    st["links"].as_array()?.iter().find(|l| l["id"] == id).cloned()
}

async fn wait_for_link(d: &Daemon, lab: &Lab, present: bool, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let st = d.status().await;
        if status_link(&st, LINK).is_some() == present {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "link {LINK} {} after {limit:?}: {st}\n{}\n--- daemon log:\n{}",
            if present { "not up" } else { "still up" },
            lab.logs(),
            d.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `splitdns query NAME --json` over the control socket.
fn query(d: &Daemon, name: &str) -> Value {
    let (ok, out, err) = d.cli(&["query", name, "--json"]);
    assert!(ok, "splitdns query {name}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("splitdns query {name}: {e}: {out}"))
}

fn answers(q: &Value) -> String {
    q["answers"].to_string()
}

/// One case: the server pushes `push`; the client comes up, resolves, goes down with SIGTERM.
async fn client_up_query_down(push: Push, case: &str) -> Option<(Lab, Daemon, NsDns, NsDns)> {
    if let Err(why) = tools() {
        skip(&why);
        return None;
    }
    let mut lab = match Lab::new(push) {
        Ok(lab) => lab,
        Err(why) => {
            skip(&format!("cannot set up network namespaces: {why}"));
            return None;
        }
    };
    let started = Instant::now();
    write_dump_script(lab.dir.path());
    let corp = zone("corp.example.", &format!("www 60 IN A {CORP_WWW}"));
    let tunnel_dns =
        NsDns::start(&lab.server_ns, "0.0.0.0:53".parse().unwrap(), vec![("corp.example.".to_string(), corp)]);
    // The client side's ordinary resolver, which has its own (public) answer for corp names.
    let public_zone = zone("corp.example.", &format!("www 60 IN A {PUBLIC_WWW}"));
    let public_addr: SocketAddr = "127.0.0.1:5399".parse().unwrap();
    let public = NsDns::start(&lab.client_ns, public_addr, vec![("corp.example.".to_string(), public_zone)]);
    let d = Daemon::start_in_network_namespace(&lab.client_ns.name, &[public_addr], &[]).await;
    lab.start_server();
    lab.start_client(&d);

    // Up: the hook ran from the packaged line and the link has the pushed domain.
    let st = wait_for_link(&d, &lab, true, Duration::from_secs(10)).await;
    let link = status_link(&st, LINK).expect("the link");
    assert_eq!(link["profile"], "corp", "{link}");
    assert_eq!(link["interface"], "tun0", "{link}");
    assert_eq!(link["domains"], serde_json::json!(["corp.example"]), "{link}");
    assert!(link["servers"].to_string().contains(&format!("{TUNNEL_DNS}:53")), "{link}");
    // route-up runs just after up: wait for its dump.
    lab.wait_log("route-up.env", "script_type=route-up", Duration::from_secs(5));
    eprintln!("{case}: OpenVPN's script environment (DNS-related variables, and PATH if any):");
    for (k, v) in script_env(&lab) {
        eprintln!("  {k}={v}");
    }

    // A corp name is answered by the tunnel's server, through the tunnel.
    let q = query(&d, "www.corp.example");
    assert!(answers(&q).contains(CORP_WWW), "{q}\n--- daemon log:\n{}", d.log_text());
    assert_eq!(q["split_domain"], "corp.example", "{q}");

    // SIGTERM: the client runs its down script, and the link is gone.
    lab.client.as_ref().expect("the client").signal(nix::sys::signal::Signal::SIGTERM);
    let status = lab.client.as_mut().expect("the client").wait_exit(Duration::from_secs(10));
    assert!(status.is_some(), "the client did not stop on SIGTERM\n{}", lab.logs());
    wait_for_link(&d, &lab, false, Duration::from_secs(5)).await;
    let q = query(&d, "www.corp.example");
    assert!(answers(&q).contains(PUBLIC_WWW), "after down, corp names go to the ordinary resolver: {q}");
    eprintln!("{case}: up, query and down took {:?}", started.elapsed());
    Some((lab, d, tunnel_dns, public))
}

/// The tunnel server's query log has www.corp.example, from the client's tunnel address.
fn assert_came_through_the_tunnel(queries: &[LoggedQuery]) {
    let q = queries.iter().find(|q| q.name == "www.corp.example").unwrap_or_else(|| panic!("not asked: {queries:?}"));
    assert_eq!(q.src_ip.to_string(), CLIENT_TUNNEL_IP, "{q:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openvpn_client_with_pushed_dhcp_option_domain() {
    let Some((mut lab, d, tunnel_dns, _public)) =
        client_up_query_down(Push::DhcpOptionDomain, "dhcp-option DNS + DOMAIN").await
    else {
        return;
    };

    // Another VPN owns corp.example: the real client's up script fails, the client gives up, and no
    // link of its own stays behind.
    d.link_up(&["--id", "other-vpn", "--profile", "other", "--server", "127.0.0.1:9", "--domain", "corp.example"]);
    lab.start_client(&d);
    let status = lab.client.as_mut().expect("the client").wait_exit(Duration::from_secs(15));
    let log = lab.log("client.log");
    assert!(status.is_some(), "the client kept running after its up script failed\n{}", lab.logs());
    assert!(log.contains("already routed to link \"other-vpn\""), "the reason is not in the client log:\n{log}");
    let st = d.status().await;
    assert!(status_link(&st, LINK).is_none(), "the refused link stayed: {st}");
    eprintln!(
        "refused up: the client exited ({:?}); its log says:\n{}",
        status,
        log.lines()
            .filter(|l| l.contains("splitdns:")
                || l.contains("hook openvpn")
                || l.contains("Exiting")
                || l.contains("WARNING"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_came_through_the_tunnel(&tunnel_dns.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openvpn_26_client_with_pushed_dns_server_resolve_domains() {
    let Some((mut lab, d, tunnel_dns, _public)) =
        client_up_query_down(Push::DnsServer, "dns server 1 address + resolve-domains").await
    else {
        return;
    };
    let vars = script_env(&lab);
    assert_eq!(vars.get("dns_server_1_resolve_domain_1").map(String::as_str), Some("corp.example"), "{vars:?}");

    // SIGKILL: no down script runs, but tun0 goes with the process and the daemon hears of it on
    // rtnetlink: the link is torn down as if the down script had run.
    lab.start_client(&d);
    wait_for_link(&d, &lab, true, Duration::from_secs(10)).await;
    lab.client.as_ref().expect("the client").signal(nix::sys::signal::Signal::SIGKILL);
    let killed = Instant::now();
    let status = lab.client.as_mut().expect("the client").wait_exit(Duration::from_secs(5));
    assert!(status.is_some(), "the client did not die on SIGKILL");
    let st = wait_for_link(&d, &lab, false, Duration::from_secs(5)).await;
    eprintln!("after SIGKILL: link {LINK} gone {:?} after the kill", killed.elapsed());
    let removed = st["removed_links"].as_array().unwrap().iter().find(|r| r["id"] == LINK).cloned();
    let removed = removed.unwrap_or_else(|| panic!("{LINK} not among the removed links: {st}"));
    assert_eq!(removed["reason"], "interface-gone", "{removed}");
    assert!(sh("ip", &["-n", &lab.client_ns.name, "link", "show", "tun0"]).is_err(), "tun0 outlived the client");
    let q = query(&d, "www.corp.example");
    assert!(answers(&q).contains(PUBLIC_WWW), "after the tunnel vanished, corp names are public again: {q}");

    // The next connection comes up on a new tun0 and gets its domain: nothing stale is in the way.
    lab.start_client(&d);
    let st = wait_for_link(&d, &lab, true, Duration::from_secs(10)).await;
    let link = status_link(&st, LINK).expect("the link");
    assert_eq!(link["domains"], serde_json::json!(["corp.example"]), "{link}");
    let q = query(&d, "www.corp.example");
    assert!(answers(&q).contains(CORP_WWW), "{q}");
    assert_came_through_the_tunnel(&tunnel_dns.stop());
}
