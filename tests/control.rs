//! The control socket and the CLI's error messages: every malformed request gets an error reply
//! and changes nothing; well-formed requests work, several per connection.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use common::auth::{AuthServer, zone};
use common::client::{self, Q, a_addrs};
use common::daemon::{Daemon, bin};
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A public upstream that also serves a *different* corp.example (leak canary), and an internal
/// server for corp.example.
async fn servers() -> (AuthServer, AuthServer) {
    let public = zone("public.example.", "www 60 IN A 192.0.2.10");
    let canary = zone("corp.example.", "www 60 IN A 192.0.2.66");
    let public = AuthServer::start(&[("public.example.", &public), ("corp.example.", &canary)]).await;
    let corp = zone("corp.example.", "www 60 IN A 10.1.0.1");
    let internal = AuthServer::start(&[("corp.example.", &corp)]).await;
    (public, internal)
}

async fn a(d: &Daemon, name: &str) -> Vec<Ipv4Addr> {
    let r = client::udp(d.dns, name, RecordType::A, &Q::default())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}\nlog:\n{}", d.log_text()));
    a_addrs(&r)
}

fn state_file(d: &Daemon) -> Option<Vec<u8>> {
    std::fs::read(d.state_dir.join("links.json")).ok()
}

/// Asserts an error reply: `{"ok":false,"error":"<non-empty>"}` and nothing else. Returns the error.
fn assert_error_reply(raw: &str, what: &str) -> String {
    assert!(raw.ends_with('\n'), "{what}: reply is not one full line: {raw:?}");
    let v: Value = serde_json::from_str(raw).unwrap_or_else(|e| panic!("{what}: reply {raw:?} is not JSON: {e}"));
    assert_eq!(v["ok"], false, "{what}: {v}");
    assert!(v.get("result").is_none(), "{what}: {v}");
    let error = v["error"].as_str().unwrap_or_else(|| panic!("{what}: no error text: {v}"));
    assert!(!error.trim().is_empty(), "{what}: empty error text");
    error.to_string()
}

/// A daemon with link "vpn" routing corp.example to `internal`.
async fn daemon_with_link(public: &AuthServer, internal: &AuthServer) -> Daemon {
    let d = Daemon::start(&[public.addr()], &[]).await;
    let server = internal.addr().to_string();
    d.link_up(&["--id", "vpn", "--server", &server, "--domain", "corp.example"]);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_errors_and_change_nothing() {
    let (public, internal) = servers().await;
    let d = daemon_with_link(&public, &internal).await;
    let links_before = d.status().await["links"].clone();
    assert_eq!(links_before.as_array().unwrap().len(), 1);
    let saved_before = state_file(&d);
    assert!(saved_before.is_some(), "the link table was not saved");

    let good_server = internal.addr().to_string();
    // Each bad link spec reuses id "vpn": accepting it would replace the existing link.
    let spec = |extra: Value| {
        let mut link = json!({"id": "vpn", "servers": [good_server], "domains": ["other.example"]});
        for (k, v) in extra.as_object().unwrap() {
            link[k] = v.clone();
        }
        json!({"cmd": "link-up", "link": link}).to_string()
    };
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("not JSON", "this is not json".into(), None),
        ("truncated JSON", r#"{"cmd":"status""#.into(), None),
        ("JSON array", "[1,2]".into(), None),
        ("JSON string", r#""status""#.into(), None),
        ("empty line", "".into(), None),
        ("no cmd", r#"{"id":"vpn"}"#.into(), None),
        ("unknown cmd", r#"{"cmd":"reboot"}"#.into(), Some("reboot")),
        ("whitelist-add", r#"{"cmd":"whitelist-add","domain":"corp.example"}"#.into(), Some("whitelist-add")),
        ("whitelist verb, other spelling", r#"{"cmd":"whitelist","add":"corp.example"}"#.into(), None),
        (
            "unknown top-level field on link-up",
            {
                let mut v: Value = serde_json::from_str(&spec(json!({}))).unwrap();
                v["force"] = json!(true);
                v.to_string()
            },
            Some("force"),
        ),
        ("unknown field in link-down", r#"{"cmd":"link-down","id":"vpn","force":true}"#.into(), Some("force")),
        ("link-down without id", r#"{"cmd":"link-down"}"#.into(), Some("id")),
        ("link-down with a numeric id", r#"{"cmd":"link-down","id":7}"#.into(), None),
        ("link-up without link", r#"{"cmd":"link-up"}"#.into(), Some("link")),
        (
            "link-up without servers",
            json!({"cmd": "link-up", "link": {"id": "vpn", "domains": ["other.example"]}}).to_string(),
            Some("servers"),
        ),
        ("link-up without id", json!({"cmd": "link-up", "link": {"servers": ["10.0.0.1"]}}).to_string(), Some("id")),
        ("unknown field in link", spec(json!({"whitelist": ["corp.example"]})), Some("whitelist")),
        ("root domain", spec(json!({"domains": ["."]})), Some("root")),
        ("bad domain", spec(json!({"domains": ["bad domain"]})), None),
        ("server nope", spec(json!({"servers": ["nope"]})), Some("nope")),
        ("server port 0", spec(json!({"servers": ["10.0.0.1:0"]})), None),
        ("empty servers", spec(json!({"servers": []})), Some("server")),
        ("default route without full tunnel", spec(json!({"default_route": true})), Some("full")),
        ("empty id", spec(json!({"id": ""})), Some("id")),
        ("control character in id", spec(json!({"id": "vpn\u{1}"})), None),
        ("interface name with a slash", spec(json!({"interface": "a/b"})), Some("a/b")),
        ("source of the wrong family", spec(json!({"source": "fd00::2"})), Some("famil")),
        ("bad trust anchor", spec(json!({"anchors": ["corp.example. IN DS 1 13 2 zz"]})), None),
    ];

    for (what, line, needle) in &cases {
        let mut bytes = line.clone().into_bytes();
        bytes.push(b'\n');
        let raw = d.raw(&bytes).await;
        let error = assert_error_reply(&raw, what);
        if let Some(needle) = needle {
            assert!(
                error.to_lowercase().contains(&needle.to_lowercase()),
                "{what}: error {error:?} does not mention {needle:?}"
            );
        }
    }

    assert_eq!(d.status().await["links"], links_before, "a malformed request changed the links");
    assert_eq!(state_file(&d), saved_before, "a malformed request changed the state file");
    assert_eq!(a(&d, "www.corp.example").await, vec![Ipv4Addr::new(10, 1, 0, 1)]);
    assert_eq!(a(&d, "www.public.example").await, vec![Ipv4Addr::new(192, 0, 2, 10)]);
    assert_eq!(public.count_under("corp.example"), 0);
    assert_eq!(internal.count(), 1);
}

/// `status` is a unit variant of the internally tagged request enum: serde's deny_unknown_fields
/// does not reach it, so extra fields are silently accepted there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_field_on_status_is_an_error() {
    let d = Daemon::start(&["127.0.0.1:9".parse::<SocketAddr>().unwrap()], &[]).await;
    let raw = d.raw(b"{\"cmd\":\"status\",\"verbose\":true}\n").await;
    let error = assert_error_reply(&raw, "status with an unknown field");
    assert!(error.contains("verbose"), "{error}");
}

/// A request line over 64 KiB is refused as too large, even if it holds a valid link-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_is_refused() {
    let (public, internal) = servers().await;
    let d = daemon_with_link(&public, &internal).await;
    let links_before = d.status().await["links"].clone();

    let mut line = json!({"cmd": "link-up", "link": {"id": "big", "servers": [internal.addr().to_string()], "domains": ["big.example"]}})
        .to_string()
        .into_bytes();
    line.resize(70 * 1024, b' ');
    line.push(b'\n');
    let error = assert_error_reply(&d.raw(&line).await, "oversized");
    assert!(error.contains("too large"), "{error}");

    // Also without any newline at all.
    let error = assert_error_reply(&d.raw(&vec![b'x'; 100 * 1024]).await, "oversized, no newline");
    assert!(error.contains("too large"), "{error}");

    assert_eq!(d.status().await["links"], links_before);
    assert_eq!(a(&d, "www.corp.example").await, vec![Ipv4Addr::new(10, 1, 0, 1)]);
}

/// The size limit holds however the bytes arrive: a line that grows past 64 KiB across two writes
/// must be refused too, not parsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_split_across_writes_is_refused() {
    let (public, internal) = servers().await;
    let d = daemon_with_link(&public, &internal).await;
    let links_before = d.status().await["links"].clone();

    let mut line = json!({"cmd": "link-up", "link": {"id": "big", "servers": [internal.addr().to_string()], "domains": ["big.example"]}})
        .to_string()
        .into_bytes();
    line.resize(65_000, b' '); // below the limit: the daemon buffers it and waits for more
    let stream = UnixStream::connect(&d.socket).await.unwrap();
    let (r, mut w) = stream.into_split();
    w.write_all(&line).await.unwrap();
    // Give the daemon time to read the first part (this is not a timing assertion: without the
    // pause both parts may arrive together and the limit happens to be checked).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut rest = vec![b' '; 1000];
    rest.push(b'\n');
    let _ = w.write_all(&rest).await;
    let mut reply = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), BufReader::new(r).read_line(&mut reply)).await;

    let links_after = d.status().await["links"].clone();
    assert_eq!(links_after, links_before, "a 66 000-byte request was applied");
    let error = assert_error_reply(&reply, "oversized in two writes");
    assert!(error.contains("too large"), "{error}");
}

/// Several requests on one connection each get their own reply, in order, whether sent at once
/// or one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_requests_on_one_connection_each_get_a_reply() {
    let (public, internal) = servers().await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    let server = internal.addr().to_string();

    let stream = UnixStream::connect(&d.socket).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let batch = [
        json!({"cmd": "status"}).to_string(),
        "garbage".to_string(),
        json!({"cmd": "link-up", "link": {"id": "vpn", "servers": [server], "domains": ["corp.example"]}}).to_string(),
        json!({"cmd": "link-down", "id": "ghost"}).to_string(),
        json!({"cmd": "status"}).to_string(),
    ];
    w.write_all(format!("{}\n", batch.join("\n")).as_bytes()).await.unwrap();
    let mut replies = Vec::new();
    for _ in 0..batch.len() {
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("reply in time")
            .unwrap()
            .expect("a reply line");
        replies.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert_eq!(replies[0]["ok"], true);
    assert_eq!(replies[0]["result"]["links"], json!([]));
    assert_eq!(replies[1]["ok"], false);
    assert_eq!(replies[2]["ok"], true, "{}", replies[2]);
    assert_eq!(replies[2]["result"]["id"], "vpn");
    assert_eq!(replies[2]["result"]["accepted"], json!(["corp.example"]));
    assert_eq!(replies[3]["ok"], true);
    assert_eq!(replies[3]["result"]["found"], false);
    assert_eq!(replies[4]["ok"], true);
    assert_eq!(replies[4]["result"]["links"][0]["id"], "vpn");

    // One at a time on the same connection.
    for _ in 0..3 {
        w.write_all(b"{\"cmd\":\"status\"}\n").await.unwrap();
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("reply in time")
            .unwrap()
            .expect("a reply line");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["result"]["links"].as_array().unwrap().len(), 1);
    }
    w.write_all(b"{\"cmd\":\"link-down\",\"id\":\"vpn\"}\n").await.unwrap();
    let line = lines.next_line().await.unwrap().expect("a reply line");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["result"]["found"], true, "{v}");
    assert_eq!(v["result"]["domains_removed"], json!(["corp.example"]));
    assert_eq!(d.status().await["links"], json!([]));
}

/// link-up and link-down over the socket: routing follows, and an unknown id is `found: false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_up_and_down_over_the_socket() {
    let (public, internal) = servers().await;
    let d = Daemon::start(&[public.addr()], &[]).await;

    let v = d
        .request(json!({"cmd": "link-up", "link": {
            "id": "vpn", "servers": [internal.addr().to_string()], "domains": ["corp.example"]}}))
        .await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["result"]["id"], "vpn");
    assert_eq!(v["result"]["accepted"], json!(["corp.example"]));
    assert_eq!(v["result"]["refused"], json!([]));
    assert_eq!(v["result"]["replaced"], json!([]));
    assert_eq!(v["result"]["default_route"], false);

    let status = d.status().await;
    let links = status["links"].as_array().unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["id"], "vpn");
    assert_eq!(links[0]["domains"], json!(["corp.example"]));
    assert_eq!(links[0]["servers"][0]["addr"], internal.addr().to_string());
    assert_eq!(a(&d, "www.corp.example").await, vec![Ipv4Addr::new(10, 1, 0, 1)]);

    let before = d.status().await["links"].clone();
    let v = d.request(json!({"cmd": "link-down", "id": "ghost"})).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["result"]["id"], "ghost");
    assert_eq!(v["result"]["found"], false);
    assert_eq!(v["result"]["domains_removed"], json!([]));
    assert_eq!(d.status().await["links"], before);

    let v = d.request(json!({"cmd": "link-down", "id": "vpn"})).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["result"]["found"], true);
    assert_eq!(v["result"]["domains_removed"], json!(["corp.example"]));
    assert_eq!(d.status().await["links"], json!([]));
    // Without the link, corp.example goes to the public upstream.
    assert_eq!(a(&d, "www.corp.example").await, vec![Ipv4Addr::new(192, 0, 2, 66)]);
    assert_eq!(internal.count(), 1);

    // The CLI says so for an unknown id, and succeeds.
    let (ok, out, err) = d.cli(&["link", "down", "--id", "ghost"]);
    assert!(ok, "{err}");
    assert!(out.contains("ghost") && out.contains("not up"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_socket_mode_is_0660() {
    let d = Daemon::start(&["127.0.0.1:9".parse::<SocketAddr>().unwrap()], &[]).await;
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert!(meta.file_type().is_socket(), "{meta:?}");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
}

/// Runs the binary with no daemon behind the socket; returns (success, stdout, stderr).
fn run_cli(args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("SPLITDNS_SOCKET");
    common::daemon::run(cmd)
}

#[test]
fn cli_without_daemon_says_how_to_fix_it() {
    let (ok, out, err) = run_cli(&["--control-socket", "/nonexistent/x", "status"]);
    assert!(!ok, "status without a daemon succeeded: {out}");
    assert!(err.contains("/nonexistent/x"), "{err}");
    assert!(err.contains("splitdns daemon"), "no hint to start the daemon: {err}");
    assert!(err.contains("--control-socket"), "no hint about --control-socket: {err}");

    let (ok, _, err) = run_cli(&["--control-socket", "/nonexistent/x", "link", "down", "--id", "v"]);
    assert!(!ok);
    assert!(err.contains("splitdns daemon") && err.contains("--control-socket"), "{err}");
}

/// A bad `--ta` fails in the CLI itself (before any connection), naming the problem.
#[test]
fn cli_bad_trust_anchor_fails_before_contacting_the_daemon() {
    let digest32 = "AB".repeat(32);
    let cases = [
        (format!("corp.example. IN DS 12345 13 2 {}", "ZZ".repeat(32)), "not hexadecimal"),
        ("corp.example. IN DS 12345 13 2 ABCD".to_string(), "must be 32 bytes"),
        (format!("corp.example. IN DS 12345 13 9 {digest32}"), "digest type 9 is not supported"),
        ("corp.example. IN DS 12345".to_string(), "incomplete"),
        (format!("corp.example. CH DS 12345 13 2 {digest32}"), "only class IN"),
        (format!("corp.example. IN DNSKEY 12345 13 2 {digest32}"), "must be DS"),
        (format!("corp.example. IN DS 99999 13 2 {digest32}"), "key tag"),
    ];
    for (ta, needle) in &cases {
        let (ok, out, err) = run_cli(&[
            "--control-socket",
            "/nonexistent/x",
            "link",
            "up",
            "--id",
            "vpn",
            "--server",
            "127.0.0.1",
            "--domain",
            "corp.example",
            "--ta",
            ta,
        ]);
        assert!(!ok, "--ta {ta:?} accepted: {out}");
        assert!(err.contains(needle), "--ta {ta:?}: error does not name the problem ({needle:?}): {err}");
        assert!(err.contains("--ta"), "--ta {ta:?}: error does not name the flag: {err}");
        assert!(
            !err.contains("cannot connect") && !err.contains("/nonexistent/x"),
            "--ta {ta:?}: the CLI tried the daemon first: {err}"
        );
    }
}

/// With a live daemon, a bad `--ta` changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_bad_trust_anchor_changes_nothing() {
    let (public, internal) = servers().await;
    let d = daemon_with_link(&public, &internal).await;
    let before = d.status().await["links"].clone();
    let server = internal.addr().to_string();
    let (ok, _, err) = d.cli(&[
        "link",
        "up",
        "--id",
        "vpn",
        "--server",
        &server,
        "--domain",
        "other.example",
        "--ta",
        "corp.example. IN DS 12345 13 2 ABCD",
    ]);
    assert!(!ok);
    assert!(err.contains("32 bytes"), "{err}");
    assert_eq!(d.status().await["links"], before);
}
