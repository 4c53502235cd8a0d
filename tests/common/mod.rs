//! Shared support for the integration tests: loopback authoritative servers ([`auth`]), a
//! DNSSEC-signed one ([`signed`]), a scriptable upstream for forged and hostile replies ([`fake`]),
//! DNS-over-TLS servers with a test PKI, a DoT client and a clear-text sniffer ([`dot`]), a raw DNS
//! client ([`client`]), the real daemon binary with a control-socket client ([`daemon`]) and test
//! users ([`users`]). Use from an integration test with `mod common;`; `tests/support_selftest.rs`,
//! `tests/signed_selftest.rs` and `tests/dot_selftest.rs` check that they do what they say.
#![allow(dead_code)]

pub mod auth;
pub mod client;
pub mod daemon;
pub mod dot;
pub mod fake;
pub mod signed;
pub mod users;
