//! Operator commands: `splitdns query` explains how a name is answered, `splitdns flush` drops
//! cached answers, `splitdns status` shows the whole picture.

mod common;

use common::auth::{AuthServer, zone};
use common::daemon::Daemon;
use common::signed::{ServeOptions, SignedServer, SignedZone};
use serde_json::Value;

fn query(d: &Daemon, name: &str) -> Value {
    let (ok, out, err) = d.cli(&["query", name, "A", "--json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_shows_link_validation_and_cache_and_flush_empties_it() {
    let public = AuthServer::start(&[("pub.test.", &zone("pub.test.", "www 60 IN A 198.51.100.1"))]).await;
    let z = SignedZone::corp();
    let server = SignedServer::start(&z, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], "corp.example\n").await;
    let addr = server.addr().to_string();
    d.link_up(&["--id", "vpn", "--server", &addr, "--domain", "corp.example", "--ta", &z.ds(2)]);

    let q = query(&d, "www.corp.example");
    assert_eq!(q["route"], "link \"vpn\"", "{q}");
    assert_eq!(q["split_domain"], "corp.example");
    assert_eq!(q["dnssec"], "secure");
    assert_eq!(q["validated_zone"], "corp.example");
    assert_eq!(q["cached"], false);
    assert!(q["answers"].to_string().contains("10.1.0.1"), "{q}");
    assert_eq!(query(&d, "www.corp.example")["cached"], true);

    let q = query(&d, "www.pub.test");
    assert_eq!(q["route"], "the default upstream");
    assert_eq!(q["dnssec"], "insecure");
    assert!(q["split_domain"].is_null());

    let q = query(&d, "expired.corp.example");
    assert_eq!(q["rcode"], "Server Failure", "{q}");
    assert!(q["error"].as_str().unwrap().starts_with("EDE 7"), "{q}");

    // Flush one domain: its answers go, the public one stays.
    let (ok, out, _) = d.cli(&["flush", "corp.example"]);
    assert!(ok && out.contains("flushed 1 cached answer"), "{out}");
    assert_eq!(query(&d, "www.corp.example")["cached"], false);
    assert_eq!(query(&d, "www.pub.test")["cached"], true);
    let (ok, out, _) = d.cli(&["flush"]);
    assert!(ok && out.contains("flushed 2 cached answer"), "{out}");
    assert_eq!(d.status().await["cache"]["entries"], 0);

    // The human view.
    let (ok, text, _) = d.cli(&["query", "www.corp.example"]);
    assert!(ok && text.contains("answered by  link \"vpn\" (split domain corp.example)"), "{text}");
    assert!(text.contains("dnssec       secure"), "{text}");
}
