//! Shared support for the integration tests: loopback authoritative servers ([`auth`]), a
//! DNSSEC-signed one ([`signed`]), a scriptable upstream for forged and hostile replies ([`fake`]),
//! a raw DNS client ([`client`]) and the real daemon binary with a control-socket client
//! ([`daemon`]). Use from an integration test with `mod common;`; `tests/support_selftest.rs` and
//! `tests/signed_selftest.rs` check that they do what they say.
#![allow(dead_code)]

pub mod auth;
pub mod client;
pub mod daemon;
pub mod fake;
pub mod signed;
pub mod users;
