//! Links bound to a tunnel interface that disappears without a down hook (a killed VPN client):
//! the daemon hears of it on rtnetlink and tears the link down with all four RFC 8598 §5 effects,
//! and a new device that reuses the name never carries the old link's queries.
//!
//! Real tun devices (`ip tuntap add`); the servers listen on an address of the device, so a socket
//! bound to the device reaches them. Needs CAP_NET_ADMIN (CI runs as root); without it each test
//! prints why it is skipped and passes.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::auth::{AuthOptions, AuthServer, zone};
use common::client::{self, Q, a_addrs, ede, rcode};
use common::daemon::Daemon;
use common::signed::{ServeOptions, SignedServer, SignedZone};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

/// A tun device with one /32 address, deleted on drop.
struct Tun {
    name: String,
    ip: IpAddr,
}

impl Tun {
    /// Creates `name` with `ip`; `None` (after saying why) when this process may not.
    fn create_named(name: &str, ip: Ipv4Addr) -> Option<Tun> {
        let steps: [&[&str]; 3] = [
            &["tuntap", "add", "dev", name, "mode", "tun"],
            &["addr", "add", &format!("{ip}/32"), "dev", name],
            &["link", "set", name, "up"],
        ];
        let tun = Tun { name: name.to_string(), ip: IpAddr::V4(ip) };
        for args in steps {
            match Command::new("ip").args(args).output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    eprintln!(
                        "SKIPPED: `ip {}` failed ({}); this test needs root or CAP_NET_ADMIN",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                    return None;
                }
                Err(e) => {
                    eprintln!("SKIPPED: cannot run `ip` (iproute2): {e}");
                    return None;
                }
            }
        }
        Some(tun)
    }

    fn create() -> Option<Tun> {
        let name = format!("sdt{:08x}", rand::random::<u32>());
        Self::create_named(&name, random_ip())
    }

    fn index(&self) -> u32 {
        nix::net::if_::if_nametoindex(self.name.as_str()).expect("tun index")
    }

    fn delete(&self) {
        let out = Command::new("ip").args(["link", "del", &self.name]).output().expect("ip link del");
        assert!(out.status.success(), "ip link del {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tun {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.name]).output();
    }
}

/// An address in the benchmarking range (RFC 2544), never a real network's.
fn random_ip() -> Ipv4Addr {
    Ipv4Addr::new(198, 18 + (rand::random::<u8>() & 1), rand::random(), rand::random::<u8>().clamp(1, 254))
}

async fn public() -> AuthServer {
    AuthServer::start(&[
        ("corp.example.", &zone("corp.example.", "www 60 IN A 203.0.113.66")),
        ("slow.example.", &zone("slow.example.", "www 60 IN A 203.0.113.67")),
    ])
    .await
}

async fn a(d: &Daemon, name: &str) -> Vec<Ipv4Addr> {
    a_addrs(&client::udp(d.dns, name, RecordType::A, &Q::default()).await.expect("an answer"))
}

fn link<'a>(st: &'a Value, id: &str) -> Option<&'a Value> {
    st["links"].as_array().unwrap().iter().find(|l| l["id"] == id)
}

fn removed<'a>(st: &'a Value, id: &str) -> &'a Value {
    st["removed_links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("{id} not among the removed links: {st}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_tunnel_takes_its_links_with_all_four_effects() {
    let Some(tun) = Tun::create() else { return };
    let public = public().await;
    let z = SignedZone::corp();
    let corp = SignedServer::start(&z, ServeOptions { ip: Some(tun.ip), ..Default::default() }).await;
    let slow = AuthServer::start_with(
        AuthOptions { delay: Some(Duration::from_secs(30)), ip: Some(tun.ip), ..Default::default() },
        &[("slow.example.", &zone("slow.example.", "www 60 IN A 10.9.9.9"))],
    )
    .await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], "corp.example\n").await;
    let (corp_addr, slow_addr, ds) = (corp.addr().to_string(), slow.addr().to_string(), z.ds(2));
    let out = d.link_up(&[
        "--id",
        "corp",
        "--server",
        &corp_addr,
        "--domain",
        "corp.example",
        "--ta",
        &ds,
        "--interface",
        &tun.name,
    ]);
    assert!(out.contains("(in use)"), "anchor verified through the tunnel: {out}");
    d.link_up(&["--id", "slow", "--server", &slow_addr, "--domain", "slow.example", "--interface", &tun.name]);

    // A cached positive and negative answer, validated under the anchor.
    let m = client::udp(d.dns, "www.corp.example", RecordType::A, &Q { do_bit: true, ..Q::default() }).await.unwrap();
    assert!(m.metadata.authentic_data, "validated through the tunnel");
    let m = client::udp(d.dns, "missing.corp.example", RecordType::A, &Q::default()).await.unwrap();
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    let st = d.status().await;
    assert_eq!(link(&st, "corp").unwrap()["trust"][0]["state"], "verified", "{st}");
    let cached = st["cache"]["entries"].as_u64().unwrap();
    assert!(cached >= 2, "{st}");

    // A query in flight to the silent server of the other link.
    let dns = d.dns;
    let pending = tokio::spawn(async move {
        client::udp(dns, "www.slow.example", RecordType::A, &Q { timeout: Duration::from_secs(20), ..Q::default() })
            .await
    });
    for _ in 0..250 {
        if slow.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(slow.count(), 1, "the query reached the slow server");

    // The VPN client dies: its tunnel device goes away, no down hook runs.
    let index = tun.index();
    let deleted = Instant::now();
    tun.delete();
    let st = loop {
        let st = d.status().await;
        if st["links"].as_array().unwrap().is_empty() {
            break st;
        }
        assert!(deleted.elapsed() < Duration::from_secs(10), "links still up 10 s after the device went: {st}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("links torn down {:?} after the device was deleted", deleted.elapsed());

    // 4. The query in flight is abandoned at once, with the reason.
    let m = pending.await.unwrap().expect("an answer, not a client timeout");
    assert_eq!(rcode(&m), ResponseCode::ServFail);
    let (_, text) = ede(&m).expect("EDE");
    assert!(text.contains("went down"), "{text}");
    // The record of what happened, for `status`.
    let r = removed(&st, "slow");
    assert_eq!(r["reason"], "interface-gone", "{r}");
    assert!(r["detail"].as_str().unwrap().contains(&format!("index {index}")), "{r}");
    assert_eq!(r["queries_abandoned"], 1, "{r}");
    let r = removed(&st, "corp");
    assert_eq!(r["reason"], "interface-gone", "{r}");
    assert_eq!(r["domains"], serde_json::json!(["corp.example"]), "{r}");
    // 2. Cached answers, negative ones too, and 3. the anchor.
    assert!(r["cache_entries_flushed"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["anchors_dropped"], 1, "{r}");
    assert_eq!(st["cache"]["entries"], 0, "{st}");
    // 1. The routes: corp names are no longer split names.
    assert_eq!(a(&d, "www.corp.example").await, [Ipv4Addr::new(203, 0, 113, 66)]);
    let log = d.log_text();
    assert!(log.contains("disappeared"), "one log line with the reason: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_with_the_old_name_never_carries_the_old_links_queries() {
    let name = format!("sdt{:08x}", rand::random::<u32>());
    let ip = random_ip();
    let Some(first) = Tun::create_named(&name, ip) else { return };
    let public = public().await;
    let old_server = AuthServer::start_with(
        AuthOptions { ip: Some(first.ip), ..Default::default() },
        &[("corp.example.", &zone("corp.example.", "www 60 IN A 10.1.0.1"))],
    )
    .await;
    let mut d = Daemon::start(&[public.addr()], &[]).await;
    let server = old_server.addr().to_string();
    d.link_up(&["--id", "old", "--server", &server, "--domain", "corp.example", "--interface", &name]);
    assert_eq!(a(&d, "leak1.corp.example").await, [] as [Ipv4Addr; 0], "NXDOMAIN from the tunnel's server");
    assert_eq!(old_server.count(), 1);
    let port = old_server.addr().port();
    old_server.stop().await;

    // While the daemon runs: the device goes and another VPN creates one of the same name and
    // address at once, with a DNS server of its own on the same address and port.
    first.delete();
    let Some(second) = Tun::create_named(&name, ip) else { return };
    let other_vpn = AuthServer::start_with(
        AuthOptions { ip: Some(second.ip), port: Some(port), ..Default::default() },
        &[("corp.example.", &zone("corp.example.", "leak2 60 IN A 6.6.6.6"))],
    )
    .await;
    // Whether the old link is already gone or not, nothing of it goes out through the new device.
    let m = client::udp(d.dns, "leak2.corp.example", RecordType::A, &Q::default()).await.unwrap();
    assert!(a_addrs(&m).is_empty(), "an answer through the other VPN's tunnel: {m:?}");
    assert_eq!(other_vpn.count_under("corp.example"), 0, "{:?}", other_vpn.queries());

    // With the daemon down while the device is swapped: the saved link is dropped at start.
    d.link_up(&["--id", "again", "--server", &server, "--domain", "corp.example", "--interface", &name]);
    assert_eq!(a(&d, "leak2.corp.example").await, [Ipv4Addr::new(6, 6, 6, 6)], "bound to the live device");
    d.crash();
    second.delete();
    other_vpn.stop().await;
    let Some(third) = Tun::create_named(&name, ip) else { return };
    let third_vpn = AuthServer::start_with(
        AuthOptions { ip: Some(third.ip), port: Some(port), ..Default::default() },
        &[("corp.example.", &zone("corp.example.", "leak3 60 IN A 6.6.6.6"))],
    )
    .await;
    d.restart().await;
    let st = d.status().await;
    assert!(link(&st, "again").is_none(), "a saved link came back on another device: {st}");
    let r = removed(&st, "again");
    assert_eq!(r["reason"], "dropped-at-start", "{r}");
    assert!(r["detail"].as_str().unwrap().contains("another device"), "{r}");
    let m = client::udp(d.dns, "leak3.corp.example", RecordType::A, &Q::default()).await.unwrap();
    assert!(a_addrs(&m).is_empty(), "{m:?}");
    assert_eq!(third_vpn.count_under("corp.example"), 0, "{:?}", third_vpn.queries());
}
