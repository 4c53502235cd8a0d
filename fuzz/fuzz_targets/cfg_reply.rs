//! The RFC 8598 CFG_REPLY parser on arbitrary bytes: it must never panic, and what it accepts must
//! hold together (every anchor belongs to an accepted domain, a full tunnel hands over no domain).
//!
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run cfg_reply` from the repository root (the seed corpus is
//! fuzz/corpus/cfg_reply/, also run by `cargo test`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use splitdns::hooks::ikev2::{CfgReply, decode_hex, parse_attributes, parse_cfg_reply};

fn check(reply: &CfgReply) {
    for anchor in &reply.anchors {
        assert!(reply.domains.contains(&anchor.owner), "anchor {anchor} has no accepted domain");
    }
    if let Ok(up) = reply.to_link_up("fuzz".into(), None) {
        assert!(!up.servers.is_empty());
        if up.full_tunnel {
            assert!(up.routing_domains.is_empty() && up.anchors.is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = parse_cfg_reply(data) {
        check(&reply);
    }
    if let Ok(reply) = parse_attributes(data) {
        check(&reply);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(bytes) = decode_hex(text)
        && let Ok(reply) = parse_cfg_reply(&bytes)
    {
        check(&reply);
    }
});
