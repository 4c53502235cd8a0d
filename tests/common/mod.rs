//! Shared test support: loopback authoritative servers ([`auth`]) and a raw DNS client ([`client`]).
//! Use from an integration test with `mod common;`.
#![allow(dead_code)]

pub mod auth;
pub mod client;
pub mod daemon;
pub mod fake;
pub mod signed;
pub mod users;
