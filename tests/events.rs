//! The event stream (`watch`) through the real daemon: what still needs a person is replayed at
//! connect, every kind of event arrives in the order things happen, a subscriber that never reads
//! delays nothing and is cut off with `overflow`, and access follows the peer-credential rules
//! (`watch_group` members may watch and read, not bring links up).

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use common::auth::{AuthServer, zone};
use common::client::{self, Q, a_addrs};
use common::daemon::Daemon;
use common::signed::{ServeOptions, SignOptions, SignedServer, SignedZone};
use common::users::{NOBODY, can_switch_users, cli_as, nobody_and_group, open_to_others};
use hickory_proto::rr::RecordType;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;

/// A `watch` subscriber over a raw socket, keeping every line it read.
struct Watcher {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    _write: tokio::net::unix::OwnedWriteHalf,
    /// Kinds read so far, in order.
    kinds: Vec<String>,
    /// Read but not yet asked for.
    ahead: VecDeque<Value>,
}

impl Watcher {
    async fn connect(d: &Daemon) -> Watcher {
        let stream = UnixStream::connect(&d.socket).await.expect("connect");
        let (r, mut w) = stream.into_split();
        w.write_all(b"{\"cmd\":\"watch\"}\n").await.unwrap();
        let mut lines = BufReader::new(r).lines();
        let first = lines.next_line().await.unwrap().expect("a reply");
        assert_eq!(first, r#"{"ok":true,"result":"watching"}"#);
        Watcher { lines, _write: w, kinds: vec![], ahead: VecDeque::new() }
    }

    async fn read(&mut self) -> Value {
        if let Some(v) = self.ahead.pop_front() {
            return v;
        }
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream is open");
        let v: Value = serde_json::from_str(&line).unwrap();
        self.kinds.push(v["kind"].as_str().unwrap().to_string());
        v
    }

    /// Reads until an event of `kind` for which `test` holds; returns it.
    async fn until(&mut self, kind: &str, test: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.read().await;
            if v["kind"] == kind && test(&v) {
                return v;
            }
        }
    }
}

fn any(_: &Value) -> bool {
    true
}

fn domain(d: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["domain"] == d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_what_needs_a_person_then_streams_every_kind_in_order() {
    let public = AuthServer::start(&[("pub.test.", &zone("pub.test.", "www 60 IN A 198.51.100.1"))]).await;
    let (corp, lab, bad) = (
        SignedZone::corp(),
        SignedZone::build("lab.example.", &SignOptions::default()),
        SignedZone::build("bad.example.", &SignOptions::default()),
    );
    let corp_srv = SignedServer::start(&corp, ServeOptions::default()).await;
    let lab_srv = SignedServer::start(&lab, ServeOptions::default()).await;
    let bad_srv = SignedServer::start(&bad, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[], &[], "corp.example profile=corp\n").await;
    let resolv = d.dir.path().join("no-resolv.conf");
    let (corp_addr, lab_addr, bad_addr) =
        (corp_srv.addr().to_string(), lab_srv.addr().to_string(), bad_srv.addr().to_string());

    // Before anyone watches: an anchor waits for review.
    d.link_up(&[
        "--id",
        "lab",
        "--profile",
        "lab",
        "--server",
        &lab_addr,
        "--domain",
        "lab.example",
        "--ta",
        &lab.ds(2),
    ]);
    let mut w = Watcher::connect(&d).await;
    let v = w.read().await;
    assert_eq!(v["kind"], "anchor-pending-review", "{v}");
    assert_eq!(
        (v["replay"].clone(), v["domain"].clone(), v["link"].clone()),
        (Value::Bool(true), "lab.example".into(), "lab".into())
    );
    assert!(v["since"].as_u64().is_some() && v["reason"].as_str().unwrap().contains("not on the whitelist"), "{v}");
    assert_eq!(w.read().await["kind"], "replay-done");

    // Live: a link whose anchor is whitelisted comes up, offers it, and it is verified.
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
    let v = w.until("link-up", any).await;
    assert_eq!(
        (v["link"].clone(), v["profile"].clone(), v["domains"].clone()),
        ("corp".into(), "corp".into(), serde_json::json!(["corp.example"]))
    );
    w.until("anchor-offered", domain("corp.example")).await;
    let v = w.until("anchor-in-use", domain("corp.example")).await;
    assert!(v["keys"].to_string().contains("KSK"), "{v}");
    // Domains refused: owned by another profile, a public suffix.
    d.link_up(&[
        "--id",
        "rogue",
        "--profile",
        "rogue",
        "--server",
        &corp_addr,
        "--domain",
        "corp.example",
        "--domain",
        "com",
        "--domain",
        "rogue.example",
    ]);
    let v = w.until("domain-refused", domain("corp.example")).await;
    assert_eq!(v["refusal"], "conflict", "{v}");
    let v = w.until("domain-refused", domain("com")).await;
    assert_eq!(v["refusal"], "public-suffix", "{v}");
    // The whitelist grows; an approved anchor that does not verify fails.
    std::fs::write(d.whitelist_path(), "corp.example profile=corp\nbad.example\n").unwrap();
    let v = w.until("whitelist-reloaded", any).await;
    assert_eq!(v["entries"], serde_json::json!(["corp.example", "bad.example"]), "{v}");
    d.link_up(&["--id", "bad", "--server", &bad_addr, "--domain", "bad.example", "--ta", &bad.wrong_ds()]);
    let v = w.until("anchor-failed", domain("bad.example")).await;
    assert!(!v["reason"].as_str().unwrap().is_empty(), "{v}");
    // Approval withdrawn while the link stays up: revoked.
    std::fs::write(d.whitelist_path(), "bad.example\n").unwrap();
    w.until("whitelist-reloaded", any).await;
    let v = w.until("anchor-revoked", domain("corp.example")).await;
    assert_eq!(v["link"], "corp");
    // A broken whitelist: rejected with its line, the last good one stays.
    std::fs::write(d.whitelist_path(), "bad.example\nnot a domain!\n").unwrap();
    let v = w.until("whitelist-rejected", any).await;
    assert_eq!(v["line"], 2, "{v}");
    // The cache is flushed; the network changes.
    let (ok, _, err) = d.cli(&["flush"]);
    assert!(ok, "{err}");
    assert_eq!(w.until("cache-flushed", any).await["domain"], Value::Null);
    std::fs::write(&resolv, format!("nameserver {}\n", public.addr().ip())).unwrap();
    let v = w.until("upstream-changed", any).await;
    assert!(v["source"].as_str().unwrap().contains("no-resolv.conf"), "{v}");
    // A reconnect replaces the corp link; another link goes down on request.
    d.link_up(&["--id", "corp2", "--profile", "corp", "--server", &corp_addr, "--domain", "corp.example"]);
    let v = w.until("link-down", any).await;
    assert_eq!((v["link"].clone(), v["reason"].clone()), ("corp".into(), "replaced".into()), "{v}");
    w.until("link-up", |v| v["link"] == "corp2").await;
    d.link_down("rogue");
    let v = w.until("link-down", any).await;
    assert_eq!((v["link"].clone(), v["reason"].clone()), ("rogue".into(), "request".into()), "{v}");

    // Everything arrived once, in the order it happened.
    let order: Vec<&str> = w.kinds.iter().map(String::as_str).collect();
    let expected = [
        "anchor-pending-review",
        "replay-done",
        "link-up",
        "anchor-offered",
        "anchor-in-use",
        "link-up",
        "domain-refused",
        "domain-refused",
        "whitelist-reloaded",
        "link-up",
        "anchor-offered",
        "anchor-failed",
        "whitelist-reloaded",
        "anchor-revoked",
        "whitelist-rejected",
        "cache-flushed",
        "upstream-changed",
        "link-down",
        "link-up",
        "link-down",
    ];
    let mut it = order.iter();
    for want in expected {
        assert!(it.any(|k| *k == want), "{want} missing or out of order in {order:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_delays_nothing_and_is_cut_off_with_overflow() {
    let public = AuthServer::start(&[("pub.test.", &zone("pub.test.", "www 60 IN A 198.51.100.1"))]).await;
    let internal = AuthServer::start(&[("corp.example.", &zone("corp.example.", "www 60 IN A 10.1.0.1"))]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    // Subscribes, then reads nothing.
    let stuck = UnixStream::connect(&d.socket).await.unwrap();
    let (r, mut w) = stuck.into_split();
    w.write_all(b"{\"cmd\":\"watch\"}\n").await.unwrap();
    // Thousands of events (a flush each) while it sleeps.
    let flusher = UnixStream::connect(&d.socket).await.unwrap();
    let (fr, mut fw) = flusher.into_split();
    let mut replies = BufReader::new(fr).lines();
    let started = Instant::now();
    for _ in 0..2000 {
        fw.write_all(b"{\"cmd\":\"flush\"}\n").await.unwrap();
        let reply = replies.next_line().await.unwrap().unwrap();
        assert!(reply.starts_with(r#"{"ok":true"#), "{reply}");
    }
    eprintln!("2,000 flushes with a stuck watcher took {:?}", started.elapsed());
    // Meanwhile links come up and names resolve as usual.
    let t = Instant::now();
    d.link_up(&["--id", "vpn", "--server", &internal.addr().to_string(), "--domain", "corp.example"]);
    let m = client::udp(d.dns, "www.corp.example", RecordType::A, &Q::default()).await.unwrap();
    assert_eq!(a_addrs(&m), [std::net::Ipv4Addr::new(10, 1, 0, 1)]);
    eprintln!("link up and a query with a stuck watcher took {:?}", t.elapsed());
    // The stuck subscriber finally reads: the stream ends with an overflow line.
    let mut lines = BufReader::new(r).lines();
    let mut last = Value::Null;
    let mut n = 0;
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await {
        n += 1;
        last = serde_json::from_str(&line).unwrap();
    }
    assert_eq!(last["kind"], "overflow", "after {n} lines: {last}");
    assert!(n < 2000, "a stuck subscriber was buffered without bound ({n} lines)");
    assert!(last["message"].as_str().unwrap().contains("fell behind"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_group_members_may_watch_and_read_but_not_change_anything() {
    if !can_switch_users("watch_group_members_may_watch_and_read_but_not_change_anything") {
        return;
    }
    let Some((gid, group)) = nobody_and_group("watch_group_members_may_watch_and_read_but_not_change_anything") else {
        return;
    };
    let public = AuthServer::start(&[("pub.test.", &zone("pub.test.", "www 60 IN A 198.51.100.1"))]).await;
    let d = Daemon::start_with_config(&[public.addr()], &[], &format!("watch_group = {:?}\n", group)).await;
    let binary = open_to_others(&d);

    // Read: status and a stream.
    let (ok, err) = tokio::task::block_in_place(|| cli_as(&binary, &d, NOBODY, gid, &["status", "--json"]));
    assert!(ok, "{err}");
    let mut watch = std::process::Command::new(&binary);
    use std::os::unix::process::CommandExt;
    watch.arg("--control-socket").arg(&d.socket).args(["watch", "--json"]).uid(NOBODY).gid(gid).current_dir("/");
    let mut child = watch.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(10), first).await.unwrap().unwrap().unwrap();
    assert!(line.contains("replay-done"), "{line}");
    let _ = child.kill();
    let _ = child.wait();

    // Change: refused, naming the group that would be needed.
    let (ok, err) = tokio::task::block_in_place(|| {
        cli_as(&binary, &d, NOBODY, gid, &["link", "up", "--id", "x", "--server", "192.0.2.1", "--domain", "x.example"])
    });
    assert!(!ok, "a read-only peer brought a link up");
    assert!(err.contains("watch_group") && err.contains("control_group"), "{err}");
    let (ok, err) = tokio::task::block_in_place(|| cli_as(&binary, &d, NOBODY, gid, &["flush"]));
    assert!(!ok && err.contains("may only read"), "{err}");
    assert!(d.status().await["links"].as_array().unwrap().is_empty());

    // A peer in neither group: the socket's mode keeps it out, and it is told whom to ask.
    let (ok, err) = tokio::task::block_in_place(|| cli_as(&binary, &d, 60_123, 60_123, &["watch"]));
    assert!(!ok && err.contains("permission denied") && err.contains(&group), "{err}");
    // With the socket opened to everyone, the daemon's own check refuses it the same way.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (ok, err) = tokio::task::block_in_place(|| cli_as(&binary, &d, 60_123, 60_123, &["watch"]));
    assert!(!ok && err.contains("permission denied") && err.contains("watch_group"), "{err}");
}
