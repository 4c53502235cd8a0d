//! splitdns: a client-side split-DNS resolver agent for VPNs (RFC 8598).
//!
//! Data flows one way: hooks and the CLI send link changes over the [`control`] socket; the
//! [`daemon`] applies them to the link table in [`state`] and publishes an immutable routing snapshot;
//! the [`dns`] listener reads snapshots to route, cache and forward queries.
//!
//! Unsafe code is denied everywhere but `dns::udp` (batched datagram system calls).

#![deny(unsafe_code)]

pub(crate) mod atomic_file;
pub mod cli;
pub mod clock;
pub(crate) mod config;
pub mod control;
pub(crate) mod daemon;
pub mod dns;
pub mod domain;
pub mod hooks;
pub(crate) mod perms;
pub mod server_addr;
pub mod state;
pub mod system_dns;
pub mod trust;
pub(crate) mod watch;
