//! The trust-anchor whitelist through the real daemon: only anchors for domains a person approved
//! are used (RFC 8598 §6, §8); the file is watched, so approving, removing and breaking an entry
//! take effect without a reconnect (a broken or oversized file keeps the last good list); unsafe
//! files are refused; the control socket cannot change it; the review prompt needs a terminal.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::auth::{AuthServer, zone};
use common::client::{self, Q};
use common::daemon::Daemon;
use common::signed::{ServeOptions, SignOptions, SignedServer, SignedZone};
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

async fn public() -> AuthServer {
    AuthServer::start(&[("corp.example.", &zone("corp.example.", "www 60 IN A 203.0.113.66"))]).await
}

async fn ad(d: &Daemon, name: &str) -> bool {
    let m = client::udp(d.dns, name, RecordType::A, &Q { do_bit: true, ..Q::default() }).await.expect("answer");
    m.metadata.authentic_data
}

/// Polls `check` for up to 5 s; returns how long it took, or panics with `what`.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen within 5 s");
}

/// Writes the whitelist the way editors do: a temporary file renamed over the old one.
fn edit(path: &Path, text: &str) {
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn anchor_state(st: &Value) -> String {
    st["links"][0]["anchors"][0]["state"].as_str().unwrap_or_default().to_string()
}

async fn link_up(d: &Daemon, server: &SignedServer, domain: &str, ds: &str) -> String {
    let addr = server.addr().to_string();
    d.link_up(&["--id", "vpn", "--profile", "corp", "--server", &addr, "--domain", domain, "--ta", ds])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_anchor_changes_nothing_until_approved_then_activates_without_reconnect() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], "# approved domains\n").await;
    let out = link_up(&d, &server, "corp.example", &z.ds(2)).await;
    assert!(out.contains("(pending review)"), "{out}");

    // Pending: no validation, no key fetch, shown for review with who asked and when.
    assert!(!ad(&d, "www.corp.example").await);
    assert!(server.queries().iter().all(|q| q.qtype != RecordType::DNSKEY), "a pending anchor fetched keys");
    let st = d.status().await;
    let p = &st["pending_reviews"][0];
    assert_eq!(p["link"], "vpn");
    assert_eq!(p["profile"], "corp");
    assert_eq!(p["domain"], "corp.example");
    assert_eq!(p["ds"], z.ds(2));
    assert!(p["since"].as_u64().unwrap() > 1_700_000_000);
    let (_, text, _) = d.cli(&["status"]);
    assert!(text.contains("pending review (1)") && text.contains("asked by link vpn"), "{text}");

    // A person approves (an editor's save); the anchor activates, no reconnect.
    edit(&d.whitelist_path(), "# approved domains\ncorp.example\n");
    let took = eventually("approval taking effect", || async { ad(&d, "mail.corp.example").await }).await;
    eprintln!("whitelist edit -> validated answer: {took:?}");
    let st = d.status().await;
    assert_eq!(anchor_state(&st), "in use", "{st}");
    assert_eq!(st["pending_reviews"].as_array().unwrap().len(), 0);
    assert_eq!(st["whitelist"]["entries"][0], "corp.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_domain_revokes_its_anchor_at_once_and_flushes_its_answers() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], "corp.example\n").await;
    link_up(&d, &server, "corp.example", &z.ds(2)).await;
    assert!(ad(&d, "www.corp.example").await);
    assert!(ad(&d, "www.corp.example").await, "cached secure answer");

    edit(&d.whitelist_path(), "# nothing approved\n");
    eventually("revocation", || async { !ad(&d, "www.corp.example").await }).await;
    assert_eq!(anchor_state(&d.status().await), "pending review");
    // The secure answer was flushed, not served on from the cache: the server was asked again.
    let www_queries = server.queries().iter().filter(|q| q.name == "www.corp.example").count();
    assert!(www_queries >= 2, "{:?}", server.queries());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_and_public_suffixes_are_ignored_unless_overridden() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], ".\nexample\n").await;
    link_up(&d, &server, "corp.example", &z.ds(2)).await;
    assert!(!ad(&d, "www.corp.example").await, "the root or a TLD must not approve anything");
    let st = d.status().await;
    let problems = st["whitelist"]["problems"].to_string();
    assert!(problems.contains("line 1") && problems.contains("line 2"), "{problems}");
    assert_eq!(st["whitelist"]["entries"].as_array().unwrap().len(), 0);

    // The TLD's operator (here, the person who typed the marker) may whitelist it (RFC 8598 §6).
    edit(&d.whitelist_path(), ".\nexample override=public-suffix\n");
    eventually("override taking effect", || async { ad(&d, "www.corp.example").await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subdomain_anchor_is_accepted_and_one_outside_the_split_domain_is_not() {
    let public = public().await;
    let z = SignedZone::build("eng.corp.example.", &SignOptions::default());
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], "corp.example\n").await;
    let addr = server.addr().to_string();
    let other = format!("lab.example. IN DS 1 13 2 {}", "AB".repeat(32));
    d.link_up(&["--id", "vpn", "--server", &addr, "--domain", "eng.corp.example", "--ta", &z.ds(2), "--ta", &other]);
    // corp.example covers eng.corp.example (RFC 8598 §6 W7).
    assert!(ad(&d, "www.eng.corp.example").await);
    let st = d.status().await;
    assert_eq!(st["links"][0]["anchors"][0]["state"], "in use");
    // lab.example is not a split domain of this link: ignored whatever the whitelist says (W8).
    assert_eq!(st["links"][0]["anchors"][1]["state"], "ignored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_whitelist_file_is_refused_with_the_fix() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("whitelist");
    std::fs::write(&path, "corp.example\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let path_arg = path.display().to_string();
    let d = Daemon::start(&[public.addr()], &["--whitelist", &path_arg]).await;
    link_up(&d, &server, "corp.example", &z.ds(2)).await;
    assert!(!ad(&d, "www.corp.example").await, "a world-writable whitelist must not approve anything");
    let st = d.status().await;
    let state = st["whitelist"]["state"].as_str().unwrap();
    assert!(state.contains("refused") && state.contains("chmod"), "{state}");
    assert_eq!(anchor_state(&st), "pending review");

    // Fixed as the message says: takes effect without a restart.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    eventually("the fixed file taking effect", || async { ad(&d, "mail.corp.example").await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_last_good_whitelist() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], "corp.example\n").await;
    link_up(&d, &server, "corp.example", &z.ds(2)).await;
    assert!(ad(&d, "www.corp.example").await);
    edit(&d.whitelist_path(), "corp.example\ncorp..example\n");
    eventually("the parse error being reported", || async {
        d.status().await["whitelist"]["state"].as_str().unwrap_or_default().contains("line 2")
    })
    .await;
    assert!(d.log_text().contains("line 2"), "the log should name the line");
    // Still in force, for names not cached before.
    assert!(ad(&d, "mail.corp.example").await);
    assert_eq!(anchor_state(&d.status().await), "in use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whitelist_that_appears_later_in_a_new_directory_takes_effect() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/splitdns/whitelist");
    let path_arg = path.display().to_string();
    let d = Daemon::start(&[public.addr()], &["--whitelist", &path_arg]).await;
    link_up(&d, &server, "corp.example", &z.ds(2)).await;
    assert!(d.status().await["whitelist"]["state"].as_str().unwrap().starts_with("missing"));
    assert!(!ad(&d, "www.corp.example").await);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "corp.example\n").unwrap();
    eventually("the new file taking effect", || async { ad(&d, "mail.corp.example").await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_cannot_change_the_whitelist() {
    let public = public().await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], "corp.example\n").await;
    let before = std::fs::read(d.whitelist_path()).unwrap();
    for req in [
        json!({"cmd": "whitelist-add", "domain": "evil.example"}),
        json!({"cmd": "whitelist", "add": "evil.example"}),
        json!({"cmd": "link-up", "link": {"id": "x", "servers": ["127.0.0.1"], "whitelist": ["evil.example"]}}),
        json!({"cmd": "status", "whitelist": ["evil.example"]}),
    ] {
        let reply = d.request(req.clone()).await;
        assert_eq!(reply["ok"], false, "{req} was accepted: {reply}");
    }
    assert_eq!(std::fs::read(d.whitelist_path()).unwrap(), before);
    assert_eq!(d.status().await["whitelist"]["entries"], json!(["corp.example"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_prompt_approves_on_yes_through_a_terminal() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], "# approved\n").await;
    link_up(&d, &server, "corp.example", &z.ds(2)).await;

    // Without a terminal: nothing changes.
    let out = Command::new(common::daemon::bin())
        .arg("--control-socket")
        .arg(&d.socket)
        .args(["whitelist", "review"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a terminal"));
    assert_eq!(std::fs::read_to_string(d.whitelist_path()).unwrap(), "# approved\n");

    // Someone watches the event stream meanwhile (the desktop notifier would).
    let watch = tokio::net::UnixStream::connect(&d.socket).await.unwrap();
    let (r, mut w) = watch.into_split();
    tokio::io::AsyncWriteExt::write_all(&mut w, b"{\"cmd\":\"watch\"}\n").await.unwrap();
    let mut events = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(r));

    // On a terminal: the question explains who asks for what, since when, what approving means,
    // and whether the domain is a public suffix; `y` approves.
    let mut cmd = Command::new(common::daemon::bin());
    cmd.arg("--control-socket").arg(&d.socket).args(["whitelist", "review"]);
    let mut p = rexpect::session::spawn_command(cmd, Some(10_000)).unwrap();
    let shown = p.exp_string("[y/N] ").unwrap();
    for word in [
        "\"vpn\"",
        "corp.example",
        &z.ds(2),
        "enterprise certificate",
        "since 20",
        "not a public suffix",
        "not on the whitelist",
        "every name under corp.example",
    ] {
        assert!(shown.contains(word), "the question should mention {word}: {shown}");
    }
    p.send_line("y").unwrap();
    p.exp_eof().unwrap();
    // The stream shows the anchor pending (replayed), then in use once approved.
    let mut kinds = vec![];
    while !kinds.iter().any(|k: &String| k == "anchor-in-use") {
        let line = tokio::time::timeout(Duration::from_secs(10), events.next_line()).await.unwrap().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if let Some(k) = v["kind"].as_str() {
            kinds.push(k.to_string());
        }
    }
    assert_eq!(kinds.first().map(String::as_str), Some("anchor-pending-review"), "{kinds:?}");
    assert!(std::fs::read_to_string(d.whitelist_path()).unwrap().contains("corp.example"));
    assert!(std::fs::read_to_string(d.whitelist_path()).unwrap().starts_with("# approved\n"));
    eventually("the approval taking effect", || async { ad(&d, "www.corp.example").await }).await;
}

/// Asks `name` over and over for `how_long`, each with a 1 s deadline; panics on the first that
/// goes unanswered.
async fn keeps_answering(d: &Daemon, name: &str, how_long: Duration) {
    let start = Instant::now();
    let mut asked = 0;
    while start.elapsed() < how_long {
        let q = Q { do_bit: true, timeout: Duration::from_secs(1), ..Q::default() };
        let at = start.elapsed();
        client::udp(d.dns, name, RecordType::A, &q)
            .await
            .unwrap_or_else(|e| panic!("query {asked} for {name}, {at:?} after the edit, went unanswered: {e}"));
        asked += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_whitelist_is_refused_the_last_good_one_stays_and_dns_keeps_answering() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], "corp.example\n").await;
    link_up(&d, &server, "corp.example", &z.ds(2)).await;
    assert!(ad(&d, "www.corp.example").await);

    // 100,000 lines (2.6 MB), none of them corp.example: were it taken, the anchor would go.
    let huge: String = (0..100_000).map(|i| format!("host{i:06}.other.example\n")).collect();
    assert!(huge.len() > 1 << 20);
    // 10,001 short lines, well under 1 MiB.
    let long: String = (0..10_001).map(|i| format!("h{i}.other.example\n")).collect();
    assert!(long.len() < 1 << 20);
    for (text, limit, count) in [
        (&huge, "over the limit of 1048576 bytes (1 MiB)", format!("{} bytes", huge.len())),
        (&long, "over the limit of 10000 lines", "10001 lines".to_string()),
    ] {
        edit(&d.whitelist_path(), text);
        // Cached and uncached answers keep coming while the daemon reads the file.
        keeps_answering(&d, "www.corp.example", Duration::from_millis(1500)).await;
        eventually("the oversized whitelist being refused", || async {
            d.status().await["whitelist"]["state"].as_str().unwrap_or_default().contains(limit)
        })
        .await;
        let st = d.status().await;
        let state = st["whitelist"]["state"].as_str().unwrap_or_default();
        assert!(state.contains(&count) && state.contains("the last good whitelist stays in force"), "{state}");
        assert!(d.log_text().contains(limit), "the log should name the limit");
        // The last good list is still in force, for names not cached before too.
        assert_eq!(st["whitelist"]["entries"], json!(["corp.example"]));
        assert_eq!(anchor_state(&st), "in use");
        assert!(ad(&d, &format!("a.n{}.w.corp.example", count.len())).await);
    }
}
