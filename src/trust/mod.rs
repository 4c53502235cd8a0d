//! Trust: which DNSSEC anchors a VPN may give us, and what they are worth.
//!
//! [`ds`] parses the DS records a VPN offers; [`anchors`] turns a DS into a verified DNSKEY set;
//! [`whitelist`] is the human-approved list of domains whose anchors may be used (RFC 8598 §6),
//! watched for edits by [`crate::watch`]. Nothing here talks to the network, and nothing the daemon
//! runs writes the whitelist.

pub mod anchors;
pub mod ds;
pub mod whitelist;

pub use ds::DsAnchor;
