//! Trust anchors: the DS records a VPN offers for its split domains.
//!
//! This release stores and reports anchors; DNSSEC validation from them is a later step. Nothing here
//! talks to the network or to the whitelist.

pub mod anchors;
pub mod ds;
pub mod whitelist;

pub use ds::DsAnchor;
