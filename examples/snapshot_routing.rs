//! Longest-suffix routing over a snapshot: which upstream a query name goes to.
//!
//! The daemon turns its link table into an immutable [`Snapshot`] (split domain → [`Route`], plus
//! the default route) and swaps it in on every change; the DNS listener reads it without a lock.
//! A name goes to the route of the longest split domain it is at or under, whole labels only, and
//! everything else to the default route. Nothing here sends a query: routes are built with
//! servers that are never contacted.
//!
//! The sample table has two VPN links, one owning `corp.example` and `lab.internal`, the other
//! the nested `eng.corp.example`, and a default upstream. Route the built-in sample names:
//!
//! ```text
//! cargo run --example snapshot_routing
//! ```
//!
//! or names of your own:
//!
//! ```text
//! cargo run --example snapshot_routing -- build.eng.corp.example notcorp.example
//! ```

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::rr::LowerName;
use splitdns::dns::route::{Owner, Route, SYSTEM_ROUTE};
use splitdns::dns::snapshot::Snapshot;
use splitdns::dns::upstream::{Bind, Timing, Upstream};
use splitdns::dns::validate::TrustMap;
use splitdns::domain::DomainName;
use splitdns::server_addr::ServerAddr;

/// A route to `servers` (never contacted here).
fn route(id: u64, owner: Owner, servers: &[&str]) -> Arc<Route> {
    let servers: Vec<ServerAddr> = servers.iter().map(|s| s.parse().expect("sample address")).collect();
    Arc::new(Route::new(id, owner, Upstream::new(&servers, Bind::default(), Timing::default())))
}

/// The sample routing table: (split domain, route) pairs and the default route.
fn sample_table() -> (Vec<(DomainName, Arc<Route>)>, Arc<Route>) {
    // Route ids: 0 is the default upstream; each link gets its own sequence number.
    let default = route(SYSTEM_ROUTE, Owner::System { source: "/etc/resolv.conf".into() }, &["192.0.2.1:53"]);
    let corp = route(1, Owner::Link { id: "corp-vpn".into() }, &["10.1.0.53:53"]);
    let eng = route(2, Owner::Link { id: "eng-vpn".into() }, &["10.2.0.53:53", "10.2.0.54:53"]);
    let domain = |d: &str| DomainName::parse(d).expect("sample domain");
    let table =
        vec![(domain("corp.example"), corp.clone()), (domain("lab.internal"), corp), (domain("eng.corp.example"), eng)];
    (table, default)
}

fn main() -> ExitCode {
    let (table, default) = sample_table();
    println!("split domains:");
    for (domain, route) in &table {
        println!("  {:<18} -> route {}, {}", domain.as_str(), route.id, route.describe());
    }
    println!("  (anything else)    -> route {}, {}\n", default.id, default.describe());
    // No anchored zones: nothing is DNSSEC-validated.
    let snapshot = Snapshot::new(table, default, TrustMap::new());

    let args: Vec<String> = std::env::args().skip(1).collect();
    let names = if args.is_empty() {
        let sample =
            ["www.corp.example", "CI.Eng.Corp.Example", "notcorp.example", "printer.lab.internal", "example.org"];
        sample.map(String::from).to_vec()
    } else {
        args
    };
    for name in &names {
        // Names match case-insensitively: a query is routed by its lower-case form.
        let Ok(lower) = LowerName::from_str(name) else {
            eprintln!("error: {name:?} is not a domain name");
            return ExitCode::FAILURE;
        };
        let (route, matched) = snapshot.route(&lower);
        let why = match matched {
            Some(d) => format!("longest split domain it is under: {d}"),
            None => "under no split domain".to_string(),
        };
        println!("{name:<22} -> route {}, {} ({why})", route.id, route.describe());
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the example prints for its sample names (`cargo test --all-targets` runs this).
    #[test]
    fn sample_names_take_the_longest_split_domain() {
        let (table, default) = sample_table();
        let snapshot = Snapshot::new(table, default, TrustMap::new());
        let route_of = |name: &str| {
            let (route, matched) = snapshot.route(&LowerName::from_str(name).unwrap());
            (route.id, matched.map(|d| d.as_str().to_owned()))
        };
        assert_eq!(route_of("www.corp.example"), (1, Some("corp.example".into())));
        assert_eq!(route_of("CI.Eng.Corp.Example"), (2, Some("eng.corp.example".into())));
        assert_eq!(route_of("notcorp.example"), (SYSTEM_ROUTE, None));
        assert_eq!(route_of("printer.lab.internal"), (1, Some("lab.internal".into())));
        assert_eq!(route_of("example.org"), (SYSTEM_ROUTE, None));
    }
}
