//! Decoding an RFC 8598 CFG_REPLY into a link: what an IKEv2 client plugin hands to splitdns.
//!
//! An IKE daemon receives the Configuration payload (RFC 7296 §3.15) in IKE_AUTH. With RFC 8598
//! it carries the VPN's DNS servers (INTERNAL_IP4_DNS, INTERNAL_IP6_DNS), its split domains
//! (INTERNAL_DNS_DOMAIN) and DNSSEC trust anchors for them (INTERNAL_DNSSEC_TA).
//! [`parse_cfg_reply`] reads the decrypted payload, from its generic payload header on, into a
//! [`CfgReply`]; [`CfgReply::to_link_up`] turns that into the link the daemon is told about
//! (servers, split domains, anchors; a full tunnel keeps only its servers, RFC 8598 §2). What the
//! parser drops, and why, is in [`CfgReply::notes`].
//!
//! Run it on a built-in sample payload (one server, two split domains, an anchor, a subnet):
//!
//! ```text
//! cargo run --example cfg_reply_to_link
//! ```
//!
//! or on a payload of your own, as hex (white space and a leading `0x` are fine), here a CFG_REPLY
//! with INTERNAL_IP4_DNS 10.1.0.53 and INTERNAL_DNS_DOMAIN corp.example:
//!
//! ```text
//! cargo run --example cfg_reply_to_link -- 0000002002000000000300040a0100350019000c636f72702e6578616d706c65
//! ```
//!
//! `splitdns hook ikev2 --event up --id ID --cfg-hex HEX` does the same and sends the link to the
//! daemon.

use std::process::ExitCode;

use splitdns::hooks::ikev2::{
    CFG_REPLY, CfgReply, INTERNAL_DNS_DOMAIN, INTERNAL_DNSSEC_TA, INTERNAL_IP4_DNS, INTERNAL_IP4_SUBNET, decode_hex,
    parse_cfg_reply,
};

fn main() -> ExitCode {
    let payload = match std::env::args().nth(1) {
        Some(hex) => match decode_hex(&hex) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => sample(),
    };
    println!("payload ({} bytes): {}", payload.len(), hex::encode(&payload));

    let reply: CfgReply = match parse_cfg_reply(&payload) {
        Ok(reply) => reply,
        Err(e) => {
            // Malformed framing is refused whole, with the offset of the problem.
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("\ndecoded CFG_REPLY:");
    println!("  servers:     {}", list(&reply.servers));
    println!("  domains:     {}", list(&reply.domains));
    println!("  anchors:     {}", list(&reply.anchors));
    println!("  subnets:     {}", list(&reply.subnets));
    println!("  full tunnel: {}", reply.full_tunnel);
    for note in &reply.notes {
        println!("  note: {note}");
    }

    // The connection id and profile come from the IKE daemon (its connection name, its config).
    match reply.to_link_up("ikev2-example".into(), Some("corp".into())) {
        Ok(link) => {
            println!("\nthe link splitdns is told about:");
            println!("  id:              {}", link.id);
            println!("  profile:         {}", link.profile.as_deref().unwrap_or("-"));
            println!("  servers:         {}", list(&link.servers));
            println!("  routing domains: {}", list(&link.routing_domains));
            println!("  anchors:         {}", list(&link.anchors));
            println!("  full tunnel:     {}", link.full_tunnel);
            // The same conversion `splitdns hook ikev2` makes before it sends `link-up`.
            let spec = splitdns::state::LinkSpec::from(link);
            match serde_json::to_string(&spec) {
                Ok(json) => println!("\nas the link-up request carries it:\n  {json}"),
                Err(e) => eprintln!("error: cannot encode the link: {e}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // No server: nothing is applied (RFC 8598 §3.2 for domains without servers).
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A CFG_REPLY as a responder sends it: INTERNAL_IP4_DNS 10.1.0.53, INTERNAL_DNS_DOMAIN
/// corp.example with one INTERNAL_DNSSEC_TA (SHA-256 DS), INTERNAL_DNS_DOMAIN lab.corp.example,
/// and INTERNAL_IP4_SUBNET 10.1.0.0/16 (a split tunnel).
fn sample() -> Vec<u8> {
    let mut ta = Vec::new();
    ta.extend_from_slice(&20326u16.to_be_bytes()); // key tag
    ta.push(13); // algorithm: ECDSA P-256 with SHA-256
    ta.push(2); // digest type: SHA-256, so a 32-byte digest
    ta.extend_from_slice(&[0xab; 32]);
    let attributes = [
        attribute(INTERNAL_IP4_DNS, &[10, 1, 0, 53]),
        attribute(INTERNAL_DNS_DOMAIN, b"corp.example"),
        attribute(INTERNAL_DNSSEC_TA, &ta),
        attribute(INTERNAL_DNS_DOMAIN, b"lab.corp.example"),
        // Address and netmask.
        attribute(INTERNAL_IP4_SUBNET, &[10, 1, 0, 0, 255, 255, 0, 0]),
    ]
    .concat();

    // Generic payload header: Next Payload, C bit and RESERVED, Payload Length (the whole
    // payload); then CFG Type and 3 RESERVED bytes.
    let length = u16::try_from(8 + attributes.len()).expect("the sample fits in a payload");
    let mut payload = vec![0, 0];
    payload.extend_from_slice(&length.to_be_bytes());
    payload.extend_from_slice(&[CFG_REPLY, 0, 0, 0]);
    payload.extend_from_slice(&attributes);
    payload
}

/// One configuration attribute: R bit and type, value length, value.
fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
    let length = u16::try_from(value.len()).expect("attribute value fits");
    [&kind.to_be_bytes()[..], &length.to_be_bytes(), value].concat()
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "-".into();
    }
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample decodes to what the example prints (`cargo test --all-targets` runs this).
    #[test]
    fn sample_decodes_to_a_split_link_with_its_anchor() {
        let reply = parse_cfg_reply(&sample()).unwrap();
        assert!(reply.notes.is_empty(), "{:?}", reply.notes);
        let link = reply.to_link_up("ikev2-example".into(), None).unwrap();
        assert_eq!(list(&link.servers), "10.1.0.53");
        assert_eq!(list(&link.routing_domains), "corp.example, lab.corp.example");
        assert_eq!(link.anchors.len(), 1);
        assert_eq!(link.anchors[0].owner.as_str(), "corp.example");
        assert!(!link.full_tunnel);
    }
}
