//! Each VPN client's hook end to end: `splitdns hook KIND` run with the environment that client
//! sets, against a running daemon; then `status --json` and the routing of a query; then the down
//! event. Also: what an up event that routes none of its domains does, and the packaged hook
//! scripts run the way their clients run them (no PATH).
//!
//! The environments follow each client's own documentation and source code (not part of this
//! repository): strongSwan's updown plugin (`updown_listener.c` in strongSwan's libcharon),
//! libreswan's pluto (`updown.c`) and `_updown.xfrm(8)`, openvpn(8) "Environmental Variables" with
//! OpenVPN's `dns.c` and `options.c` (`--dns` variables and their `foreign_option_<n>`
//! translation), NetworkManager-dispatcher(8), and wg-quick(8). The OpenVPN 2.6 environment is also
//! exercised with the real client in tests/openvpn_client.rs.

mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};

use common::auth::{AuthServer, zone};
use common::client::{self, Q, a_addrs};
use common::daemon::{Daemon, bin};
use common::signed::{ServeOptions, SignedServer, SignedZone};
use hickory_proto::rr::RecordType;
use serde_json::Value;

const CORP: &str = "www 60 IN A 10.1.0.1";

async fn public() -> AuthServer {
    AuthServer::start(&[("corp.example.", &zone("corp.example.", "www 60 IN A 203.0.113.66"))]).await
}

/// Runs `splitdns hook ARGS…` with exactly `env` (nothing inherited), like the VPN client would.
fn hook(d: &Daemon, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::new(bin());
    c.env_clear().arg("--control-socket").arg(&d.socket).arg("hook").args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run the hook")
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "hook failed: {err}");
    err
}

async fn www(d: &Daemon) -> Vec<Ipv4Addr> {
    a_addrs(&client::udp(d.dns, "www.corp.example", RecordType::A, &Q::default()).await.expect("answer"))
}

fn link<'a>(st: &'a Value, id: &str) -> Option<&'a Value> {
    st["links"].as_array().unwrap().iter().find(|l| l["id"] == id)
}

/// Checks that the link is up with the expected id, profile and domains and that split names go to
/// `internal`; runs the down event; checks the link is gone and names go public again.
async fn up_route_down(d: &Daemon, id: &str, profile: &str, domains: &[&str], down: impl FnOnce() -> Output) {
    let st = d.status().await;
    let l = link(&st, id).unwrap_or_else(|| panic!("no link {id}: {st}"));
    assert_eq!(l["profile"], profile, "{l}");
    let got: Vec<&str> = l["domains"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(got, domains, "{l}");
    assert_eq!(www(d).await, [Ipv4Addr::new(10, 1, 0, 1)]);
    ok(&down());
    assert!(link(&d.status().await, id).is_none(), "down event left the link");
    assert_eq!(www(d).await, [Ipv4Addr::new(203, 0, 113, 66)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strongswan_updown_with_domains_from_the_profile_config() {
    let public = public().await;
    let internal = AuthServer::start_on_port_53(&[("corp.example.", &zone("corp.example.", CORP))]).await;
    // strongSwan passes no domains: they come from the profile's config.
    let d = Daemon::start_with_config(&[public.addr()], &[], "[profiles.corp]\ndomains = [\"corp.example\"]\n").await;
    let env = |verb: &str| {
        vec![
            ("PLUTO_VERSION", "1.1".to_string()),
            ("PLUTO_VERB", verb.to_string()),
            ("PLUTO_CONNECTION", "corp".to_string()),
            ("PLUTO_INTERFACE", "wlan0".to_string()),
            ("PLUTO_REQID", "1".to_string()),
            ("PLUTO_PROTO", "esp".to_string()),
            ("PLUTO_UNIQUEID", "3".to_string()),
            ("PLUTO_ME", "192.0.2.10".to_string()),
            ("PLUTO_MY_ID", "laptop@corp.example".to_string()),
            ("PLUTO_MY_CLIENT", "10.10.0.2/32".to_string()),
            ("PLUTO_PEER", "198.51.100.1".to_string()),
            ("PLUTO_PEER_ID", "vpn.corp.example".to_string()),
            ("PLUTO_PEER_CLIENT", "10.0.0.0/8".to_string()),
            ("PLUTO_MY_SOURCEIP", "10.10.0.2".to_string()),
            ("PLUTO_DNS4_1", internal.addr().ip().to_string()),
        ]
    };
    ok(&hook(&d, &["strongswan"], &env("up-client")));
    let id = link(&d.status().await, "strongswan:3").map(|_| "strongswan:3").expect("id from PLUTO_UNIQUEID");
    up_route_down(&d, id, "corp", &["corp.example"], || hook(&d, &["strongswan"], &env("down-client"))).await;
    // Events that are not up/down do nothing.
    ok(&hook(&d, &["strongswan"], &env("prepare-client")));
    assert_eq!(d.status().await["links"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libreswan_updown() {
    let public = public().await;
    let internal = AuthServer::start_on_port_53(&[("corp.example.", &zone("corp.example.", CORP))]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    let env = |verb: &str| {
        vec![
            ("PLUTO_VERB", verb.to_string()),
            ("PLUTO_CONNECTION", "corp".to_string()),
            ("PLUTO_PEER", "198.51.100.1".to_string()),
            ("PLUTO_PEER_CLIENT", "10.0.0.0/8".to_string()),
            ("PLUTO_MY_SOURCEIP", "10.10.0.2".to_string()),
            ("PLUTO_VIRT_INTERFACE", "NULL".to_string()),
            ("PLUTO_PEER_DNS_INFO", internal.addr().ip().to_string()),
            ("PLUTO_PEER_DOMAIN_INFO", "corp.example".to_string()),
            ("PLUTO_DNS_RESOLVER", "file".to_string()),
        ]
    };
    ok(&hook(&d, &["libreswan"], &env("up-client")));
    let st = d.status().await;
    let id = st["links"][0]["id"].as_str().expect("a link").to_string();
    assert!(id.starts_with("libreswan:"), "{id}");
    up_route_down(&d, &id, "corp", &["corp.example"], || hook(&d, &["libreswan"], &env("down-client"))).await;
    // A malformed variable is a clear error and changes nothing.
    let bad: Vec<(&str, String)> = env("up-client")
        .into_iter()
        .map(|(k, v)| if k == "PLUTO_PEER_DOMAIN_INFO" { (k, "corp\\001example".to_string()) } else { (k, v) })
        .collect();
    let out = hook(&d, &["libreswan"], &bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PLUTO_PEER_DOMAIN_INFO"), "{out:?}");
    assert_eq!(d.status().await["links"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openvpn_foreign_options_route_routing_and_search_domains_by_default() {
    let public = public().await;
    let internal = AuthServer::start_on_port_53(&[
        ("corp.example.", &zone("corp.example.", CORP)),
        ("search.example.", &zone("search.example.", "www 60 IN A 10.1.0.2")),
    ])
    .await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    let env = |script: &str| {
        vec![
            ("script_type", script.to_string()),
            ("dev", "lo".to_string()),
            ("dev_type", "tun".to_string()),
            ("config", "/etc/openvpn/client/corp.conf".to_string()),
            ("foreign_option_1", format!("dhcp-option DNS {}", internal.addr().ip())),
            ("foreign_option_2", "dhcp-option DOMAIN-ROUTE corp.example".to_string()),
            ("foreign_option_3", "dhcp-option DOMAIN search.example".to_string()),
            ("foreign_option_4", "dhcp-option WINS 10.8.0.1".to_string()),
        ]
    };
    // OpenVPN appends: device, MTU, link MTU, local address, netmask, init|restart.
    ok(&hook(&d, &["openvpn", "lo", "1500", "1552", "10.8.0.2", "255.255.255.0", "init"], &env("up")));
    let st = d.status().await;
    let l = st["links"][0].clone();
    let id = l["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("openvpn:"), "{id}");
    // DOMAIN is a search domain: routed to the link (as systemd-resolved does) unless the profile
    // opts out with `search_domains = false`.
    let m = client::udp(d.dns, "www.search.example", RecordType::A, &Q::default()).await.unwrap();
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 1, 0, 2)]);
    let profile = l["profile"].as_str().unwrap().to_string();
    up_route_down(&d, &id, &profile, &["corp.example", "search.example"], || {
        hook(&d, &["openvpn", "lo", "1500", "1552", "10.8.0.2", "255.255.255.0", "init"], &env("down"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openvpn_27_dns_updown_with_ports_and_search_domains_opted_in() {
    let public = public().await;
    let internal = AuthServer::start(&[
        ("corp.example.", &zone("corp.example.", CORP)),
        ("search.example.", &zone("search.example.", "www 60 IN A 10.1.0.2")),
    ])
    .await;
    let d = Daemon::start_with_config(&[public.addr()], &[], "[profiles.corp]\nsearch_domains = true\n").await;
    let env = |script: &str| {
        vec![
            ("script_type", script.to_string()),
            ("dev", "lo".to_string()),
            ("config", "/etc/openvpn/client/corp.conf".to_string()),
            ("dns_server_1_address_1", internal.addr().ip().to_string()),
            ("dns_server_1_port_1", internal.addr().port().to_string()),
            ("dns_server_1_resolve_domain_1", "corp.example".to_string()),
            ("dns_server_1_dnssec", "no".to_string()),
            ("dns_search_domain_1", "search.example".to_string()),
        ]
    };
    ok(&hook(&d, &["openvpn"], &env("dns-up")));
    let st = d.status().await;
    let l = st["links"][0].clone();
    assert_eq!(l["profile"], "corp", "profile from the config file name: {l}");
    let domains = l["domains"].to_string();
    assert!(domains.contains("corp.example") && domains.contains("search.example"), "{domains}");
    let m = client::udp(d.dns, "www.search.example", RecordType::A, &Q::default()).await.unwrap();
    assert_eq!(a_addrs(&m), [Ipv4Addr::new(10, 1, 0, 2)]);
    let id = l["id"].as_str().unwrap().to_string();
    up_route_down(&d, &id, "corp", &["corp.example", "search.example"], || hook(&d, &["openvpn"], &env("dns-down")))
        .await;
}

/// The `--up`/`--down` environment of an OpenVPN client started with `--config .../corp.conf` on
/// device `lo`, plus `vars`.
fn openvpn_env<'a>(script: &str, vars: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
    let mut env = vec![
        ("script_type", script.to_string()),
        ("dev", "lo".to_string()),
        ("dev_type", "tun".to_string()),
        ("config", "/etc/openvpn/client/corp.conf".to_string()),
        ("script_context", "init".to_string()),
    ];
    env.extend_from_slice(vars);
    env
}

const OPENVPN_ARGS: [&str; 7] = ["openvpn", "lo", "1500", "1552", "10.8.0.2", "255.255.255.0", "init"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openvpn_up_with_only_dhcp_option_domain_routes_it_to_the_tunnel_server() {
    let public = public().await;
    let internal = AuthServer::start_on_port_53(&[("corp.example.", &zone("corp.example.", CORP))]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    // What most OpenVPN servers push: `dhcp-option DNS` and `dhcp-option DOMAIN`, nothing else.
    let vars = [
        ("foreign_option_1", format!("dhcp-option DNS {}", internal.addr().ip())),
        ("foreign_option_2", "dhcp-option DOMAIN corp.example".to_string()),
    ];
    let err = ok(&hook(&d, &OPENVPN_ARGS, &openvpn_env("up", &vars)));
    assert!(err.contains("routing corp.example"), "{err}");
    up_route_down(&d, "openvpn:lo:corp", "corp", &["corp.example"], || {
        hook(&d, &OPENVPN_ARGS, &openvpn_env("down", &vars))
    })
    .await;
    assert!(internal.count_under("corp.example") > 0, "the tunnel's server was never asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openvpn_26_up_with_dns_server_variables_routes_their_resolve_domains() {
    let public = public().await;
    // On an ephemeral port: only dns_server_1_port_1 says which; the foreign_option translation
    // OpenVPN adds beside it names the address alone (port 53, where nothing answers).
    let internal = AuthServer::start(&[("corp.example.", &zone("corp.example.", CORP))]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    let ip = internal.addr().ip().to_string();
    let vars = [
        ("dns_server_1_address_1", ip.clone()),
        ("dns_server_1_port_1", internal.addr().port().to_string()),
        ("dns_server_1_resolve_domain_1", "corp.example".to_string()),
        ("foreign_option_1", format!("dhcp-option DNS {ip}")),
    ];
    let err = ok(&hook(&d, &OPENVPN_ARGS, &openvpn_env("up", &vars)));
    assert!(err.contains("routing corp.example"), "{err}");
    let st = d.status().await;
    let servers = link(&st, "openvpn:lo:corp").map(|l| l["servers"].to_string()).unwrap_or_default();
    assert!(servers.contains(&internal.addr().to_string()), "servers: {servers}\n{st}");
    up_route_down(&d, "openvpn:lo:corp", "corp", &["corp.example"], || {
        hook(&d, &OPENVPN_ARGS, &openvpn_env("down", &vars))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openvpn_domain_stays_unrouted_when_the_profile_opts_out_of_search_domains() {
    let public = public().await;
    let internal = AuthServer::start_on_port_53(&[("corp.example.", &zone("corp.example.", CORP))]).await;
    let d = Daemon::start_with_config(&[public.addr()], &[], "[profiles.corp]\nsearch_domains = false\n").await;
    let vars = [
        ("foreign_option_1", format!("dhcp-option DNS {}", internal.addr().ip())),
        ("foreign_option_2", "dhcp-option DOMAIN corp.example".to_string()),
    ];
    // Nothing was refused: the profile chose not to route search domains, so the hook succeeds.
    let err = ok(&hook(&d, &OPENVPN_ARGS, &openvpn_env("up", &vars)));
    assert!(err.contains("routing no split domain"), "{err}");
    let st = d.status().await;
    let l = link(&st, "openvpn:lo:corp").unwrap_or_else(|| panic!("no link: {st}"));
    assert_eq!(l["domains"], serde_json::json!([]), "{l}");
    assert_eq!(www(&d).await, [Ipv4Addr::new(203, 0, 113, 66)], "corp.example must go to the public upstream");
    assert_eq!(internal.count(), 0, "the tunnel's server was asked");
    ok(&hook(&d, &OPENVPN_ARGS, &openvpn_env("down", &vars)));
    assert!(link(&d.status().await, "openvpn:lo:corp").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_up_whose_only_domain_another_vpn_owns_fails_and_leaves_no_link() {
    let public = public().await;
    let internal = AuthServer::start_on_port_53(&[("corp.example.", &zone("corp.example.", CORP))]).await;
    let rival =
        AuthServer::start_on_port_53(&[("corp.example.", &zone("corp.example.", "www 60 IN A 10.2.0.2"))]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    // Another VPN (another profile) already owns corp.example.
    d.link_up(&[
        "--id",
        "other-vpn",
        "--profile",
        "other",
        "--server",
        &internal.addr().to_string(),
        "--domain",
        "corp.example",
    ]);
    let vars = [
        ("foreign_option_1", format!("dhcp-option DNS {}", rival.addr().ip())),
        ("foreign_option_2", "dhcp-option DOMAIN-ROUTE corp.example".to_string()),
    ];
    let out = hook(&d, &OPENVPN_ARGS, &openvpn_env("up", &vars));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an up that routes none of its domains must fail: {err}");
    assert!(err.contains("openvpn:lo:corp") && err.contains("corp.example"), "{err}");
    assert!(err.contains("already routed to link \"other-vpn\""), "the reason is missing: {err}");
    let st = d.status().await;
    assert!(link(&st, "openvpn:lo:corp").is_none(), "the refused link was left behind: {st}");
    assert_eq!(link(&st, "other-vpn").map(|l| l["domains"].clone()), Some(serde_json::json!(["corp.example"])));
    assert_eq!(www(&d).await, [Ipv4Addr::new(10, 1, 0, 1)], "the owner keeps routing corp.example");
    assert_eq!(rival.count(), 0);

    // Partly routed: succeeds, and says what is not routed.
    let mut partly = vars.to_vec();
    partly.push(("foreign_option_3", "dhcp-option DOMAIN-ROUTE lab.example".to_string()));
    let err = ok(&hook(&d, &OPENVPN_ARGS, &openvpn_env("up", &partly)));
    assert!(err.contains("routing lab.example") && err.contains("NOT routing corp.example"), "{err}");
    ok(&hook(&d, &OPENVPN_ARGS, &openvpn_env("down", &partly)));

    // No domain pushed at all (servers only): succeeds as before.
    let err = ok(&hook(&d, &OPENVPN_ARGS, &openvpn_env("up", &vars[..1])));
    assert!(err.contains("routing no split domain"), "{err}");
    assert!(link(&d.status().await, "openvpn:lo:corp").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networkmanager_dispatcher() {
    let public = public().await;
    let internal = AuthServer::start_on_port_53(&[("corp.example.", &zone("corp.example.", CORP))]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    let env = |action: &str| {
        vec![
            ("NM_DISPATCHER_ACTION", action.to_string()),
            ("CONNECTION_UUID", "5f1c7d4e-2b8a-4c61-9a3e-0d6b2f8e9a11".to_string()),
            ("CONNECTION_ID", "Corp VPN".to_string()),
            ("CONNECTION_DBUS_PATH", "/org/freedesktop/NetworkManager/Settings/7".to_string()),
            ("DEVICE_IFACE", "wlan0".to_string()),
            ("DEVICE_IP_IFACE", "wlan0".to_string()),
            ("VPN_IP_IFACE", "lo".to_string()),
            ("VPN_IP4_NAMESERVERS", internal.addr().ip().to_string()),
            ("VPN_IP4_DOMAINS", "corp.example".to_string()),
            ("VPN_IP4_NUM_ADDRESSES", "1".to_string()),
            ("VPN_IP4_ADDRESS_0", "10.10.0.2/32 0.0.0.0".to_string()),
        ]
    };
    ok(&hook(&d, &["networkmanager", "lo", "vpn-up"], &env("vpn-up")));
    let id = "nm:5f1c7d4e-2b8a-4c61-9a3e-0d6b2f8e9a11";
    up_route_down(&d, id, "Corp VPN", &["corp.example"], || {
        hook(&d, &["networkmanager", "lo", "vpn-down"], &env("vpn-down"))
    })
    .await;
    // Non-VPN actions are ignored.
    ok(&hook(&d, &["networkmanager", "wlan0", "up"], &env("up")));
    assert_eq!(d.status().await["links"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_postup_postdown() {
    let public = public().await;
    let internal = AuthServer::start(&[("corp.example.", &zone("corp.example.", CORP))]).await;
    let d = Daemon::start(&[public.addr()], &[]).await;
    let server = internal.addr().to_string();
    ok(&hook(&d, &["wireguard", "up", "lo", "--server", &server, "--domain", "corp.example"], &[]));
    up_route_down(&d, "wireguard:lo", "lo", &["corp.example"], || hook(&d, &["wireguard", "down", "lo"], &[])).await;
    // A down event for a link that is not up is not an error.
    ok(&hook(&d, &["wireguard", "down", "lo"], &[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_never_hangs_and_down_never_fails() {
    // No daemon at all: up fails fast with a clear message, down succeeds.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let run = |args: &[&str]| {
        Command::new(bin()).arg("--control-socket").arg(&sock).arg("hook").args(args).stdin(Stdio::null()).output()
    };
    let up = run(&["wireguard", "up", "wg0", "--server", "10.0.0.1", "--domain", "corp.example"]).unwrap();
    assert!(!up.status.success());
    assert!(String::from_utf8_lossy(&up.stderr).contains("not applied"), "{up:?}");
    let down = run(&["wireguard", "down", "wg0"]).unwrap();
    assert!(down.status.success(), "{down:?}");
}

/// An INTERNAL_DNSSEC_TA value: key tag, algorithm, digest type, digest.
type Ta = (u16, u8, u8, Vec<u8>);

/// An RFC 8598 CFG_REPLY, built like an IKEv2 responder would send it.
fn cfg_reply(dns: Ipv4Addr, domains: &[(&str, Option<Ta>)]) -> String {
    let mut attrs = Vec::new();
    let mut attr = |t: u16, v: &[u8]| {
        attrs.extend_from_slice(&t.to_be_bytes());
        attrs.extend_from_slice(&(v.len() as u16).to_be_bytes());
        attrs.extend_from_slice(v);
    };
    attr(3, &dns.octets());
    for (d, ta) in domains {
        attr(25, d.as_bytes());
        if let Some((tag, alg, dt, digest)) = ta {
            let mut v = tag.to_be_bytes().to_vec();
            v.extend_from_slice(&[*alg, *dt]);
            v.extend_from_slice(digest);
            attr(26, &v);
        }
    }
    let mut payload = vec![0u8, 0, 0, 0, 2, 0, 0, 0];
    payload.extend_from_slice(&attrs);
    let len = payload.len() as u16;
    payload[2..4].copy_from_slice(&len.to_be_bytes());
    hex::encode(payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ikev2_cfg_reply_to_validated_answer_and_pending_review() {
    let public = public().await;
    let z = SignedZone::corp();
    let server = SignedServer::start_on_port_53(&z, ServeOptions::default()).await;
    let d = Daemon::start_with_whitelist(&[public.addr()], &[], "corp.example\n").await;
    let ds = z.ds_rdata(2);
    let ta = Some((ds.key_tag(), u8::from(ds.algorithm()), 2u8, ds.digest().to_vec()));
    let lab_ta = Some((4242u16, 13u8, 2u8, vec![0xAB; 32]));
    let ip = match server.addr().ip() {
        std::net::IpAddr::V4(v4) => v4,
        other => panic!("{other}"),
    };
    let hex = cfg_reply(ip, &[("corp.example", ta), ("lab.example", lab_ta)]);
    let out = hook(&d, &["ikev2", "--event", "up", "--id", "ike-7", "--profile", "corp", "--cfg-hex", &hex], &[]);
    let err = ok(&out);
    assert!(err.contains("corp.example"), "{err}");

    // corp.example: whitelisted, anchor verified, answers validated.
    let m = client::udp(d.dns, "www.corp.example", RecordType::A, &Q { do_bit: true, ..Q::default() }).await.unwrap();
    assert!(m.metadata.authentic_data, "{m:?}");
    // lab.example: not whitelisted: routed, but its anchor waits for review and changes nothing.
    let st = d.status().await;
    let pending = &st["pending_reviews"];
    assert_eq!(pending.as_array().unwrap().len(), 1, "{st}");
    assert_eq!(pending[0]["domain"], "lab.example");
    assert_eq!(pending[0]["link"], "ike-7");
    assert_eq!(pending[0]["profile"], "corp");
    let l = link(&st, "ike-7").unwrap();
    assert_eq!(l["domains"], serde_json::json!(["corp.example", "lab.example"]));

    // The same payload on stdin, then down.
    ok(&hook(&d, &["ikev2", "--event", "down", "--id", "ike-7"], &[]));
    assert!(link(&d.status().await, "ike-7").is_none());
    let mut child = Command::new(bin())
        .env_clear()
        .arg("--control-socket")
        .arg(&d.socket)
        .args(["hook", "ikev2", "--event", "up", "--id", "ike-8"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&hex::decode(&hex).unwrap()).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert!(link(&d.status().await, "ike-8").is_some());
}

/// The files in packaging/hooks/, as (name, text).
fn packaged_hooks() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/hooks");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("packaging/hooks")
        .map(|e| {
            let path = e.expect("a directory entry").path();
            let text = std::fs::read_to_string(&path).expect("a text file");
            (path.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn packaged_hooks_call_splitdns_by_absolute_path() {
    // VPN clients run hooks with an environment of their own (OpenVPN's has no PATH): every
    // command line, example lines in comments included, names the binary by its absolute path or
    // through $SPLITDNS, whose default is that path. Prose mentions are in backquotes.
    let files = packaged_hooks();
    assert!(files.len() >= 6, "{files:?}");
    for (name, text) in &files {
        for (n, line) in text.lines().enumerate() {
            for (at, _) in line.match_indices("splitdns hook") {
                let before = &line[..at];
                assert!(
                    before.ends_with("/usr/bin/") || before.ends_with("\"$SPLITDNS\" ") || before.ends_with('`'),
                    "{name}:{}: splitdns is not called by its absolute path: {line}",
                    n + 1
                );
            }
            if line.starts_with("SPLITDNS=") {
                assert_eq!(line, "SPLITDNS=${SPLITDNS:-/usr/bin/splitdns}", "{name}:{}", n + 1);
            }
        }
        if text.contains("\"$SPLITDNS\"") {
            assert!(text.contains("\nSPLITDNS=${SPLITDNS:-/usr/bin/splitdns}\n"), "{name} never sets SPLITDNS");
        }
    }
}

/// Runs packaging/hooks/NAME the way a VPN client does (executed directly, with only `env`: no
/// PATH), with SPLITDNS pointing at the binary under test and SPLITDNS_SOCKET at the daemon.
fn packaged_hook(d: &Daemon, name: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/hooks").join(name);
    let mut c = Command::new(&script);
    c.env_clear().env("SPLITDNS", bin()).env("SPLITDNS_SOCKET", &d.socket).args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap_or_else(|e| panic!("run {}: {e}", script.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packaged_hook_scripts_run_without_path() {
    let public = public().await;
    let internal = AuthServer::start_on_port_53(&[("corp.example.", &zone("corp.example.", CORP))]).await;
    let d =
        Daemon::start_with_config(&[public.addr()], &[], "[profiles.strongswan-corp]\ndomains = [\"corp.example\"]\n")
            .await;
    let ip = internal.addr().ip().to_string();

    // The OpenVPN --dns-updown wrapper (also usable as --up/--down: it reads script_type).
    let env = |script: &str| {
        vec![
            ("script_type", script.to_string()),
            ("dev", "lo".to_string()),
            ("dns_server_1_address_1", ip.clone()),
            ("dns_server_1_resolve_domain_1", "corp.example".to_string()),
        ]
    };
    ok(&packaged_hook(&d, "splitdns-openvpn-dns-updown", &[], &env("dns-up")));
    up_route_down(&d, "openvpn:lo", "lo", &["corp.example"], || {
        packaged_hook(&d, "splitdns-openvpn-dns-updown", &[], &env("dns-down"))
    })
    .await;

    // The NetworkManager dispatcher script.
    let env = |action: &str| {
        vec![
            ("NM_DISPATCHER_ACTION", action.to_string()),
            ("CONNECTION_UUID", "0b7c6d4e-2b8a-4c61-9a3e-0d6b2f8e9a12".to_string()),
            ("CONNECTION_ID", "corp".to_string()),
            ("VPN_IP_IFACE", "lo".to_string()),
            ("VPN_IP4_NAMESERVERS", ip.clone()),
            ("VPN_IP4_DOMAINS", "corp.example".to_string()),
        ]
    };
    ok(&packaged_hook(&d, "90-splitdns", &["lo", "vpn-up"], &env("vpn-up")));
    up_route_down(&d, "nm:0b7c6d4e-2b8a-4c61-9a3e-0d6b2f8e9a12", "corp", &["corp.example"], || {
        packaged_hook(&d, "90-splitdns", &["lo", "vpn-down"], &env("vpn-down"))
    })
    .await;

    // The strongSwan updown wrapper (no chained updown script), domains from the profile config.
    let env = |verb: &str| {
        vec![
            ("PLUTO_VERSION", "1.1".to_string()),
            ("PLUTO_VERB", verb.to_string()),
            ("PLUTO_CONNECTION", "strongswan-corp".to_string()),
            ("PLUTO_UNIQUEID", "9".to_string()),
            ("PLUTO_PEER", "198.51.100.1".to_string()),
            ("PLUTO_DNS4_1", ip.clone()),
        ]
    };
    ok(&packaged_hook(&d, "splitdns-updown-strongswan", &[], &env("up-client")));
    up_route_down(&d, "strongswan:9", "strongswan-corp", &["corp.example"], || {
        packaged_hook(&d, "splitdns-updown-strongswan", &[], &env("down-client"))
    })
    .await;
}
