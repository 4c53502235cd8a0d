//! RFC 8598 split-DNS configuration from a decrypted IKEv2 Configuration payload (RFC 7296 §3.15).
//!
//! An IKE daemon's hook hands over the CP payload it received in IKE_AUTH, already decrypted. This
//! module turns it into a [`CfgReply`] and, from there, a [`LinkUp`]. It is the one place where the
//! wire format is read, and it never panics: every read is bounds-checked, and a payload that does not
//! frame correctly is refused whole, with the offset of the problem.
//!
//! # The hook contract
//!
//! - [`parse_cfg_reply`] takes the payload from its generic payload header on: Next Payload (ignored),
//!   C bit and RESERVED (ignored), Payload Length (the whole payload including this 4-byte header; it
//!   must equal the input length), CFG Type (2 = CFG_REPLY or 3 = CFG_SET; everything else is
//!   refused), 3 RESERVED bytes (ignored), then the attributes. [`parse_attributes`] takes the bare
//!   attribute list. Error offsets count from the start of whatever was passed in.
//! - Attribute TLVs: the R bit is ignored (`type = u16 & 0x7FFF`); Length counts the value only. A TLV
//!   header or value that runs past the end is a malformed payload, and so is a known fixed-size
//!   attribute (INTERNAL_IP4_DNS, INTERNAL_IP6_DNS, INTERNAL_IP4_SUBNET, INTERNAL_IP6_SUBNET) whose
//!   value is neither empty nor of its size, or a subnet with a non-contiguous mask or a prefix past
//!   128: those decide where DNS goes and whether the tunnel is full, so they are not guessed at.
//!   Empty values of these four are ignored. Unknown attributes are skipped.
//! - INTERNAL_DNS_DOMAIN (25): the name in presentation format, not NUL-terminated; it must be ASCII,
//!   contain no NUL and no `\` escape, and pass [`DomainName::parse`] (LDH labels, ≤ 253 octets, one
//!   trailing dot allowed, never the root). A name that fails is left out and reported in
//!   [`CfgReply::notes`].
//! - INTERNAL_DNSSEC_TA (26): empty, or key tag (u16), algorithm (u8), digest type (u8) and a digest.
//!   RFC 8598 §4.2 says the digest is "in presentation format" while its layout suggests binary, so
//!   both are accepted without further guessing: binary when its length is the digest type's size
//!   (SHA-1 20, SHA-256 32, SHA-384 48), hexadecimal text when it is exactly twice that and all hex
//!   digits. Anything else, and any other digest type, drops that TA with a note.
//! - TA association (RFC 8598 §3.2, §4.2, §6): a TA belongs to the INTERNAL_DNS_DOMAIN immediately
//!   before it, or before the run of TAs it ends; an empty TA belongs to the run too. Any other
//!   attribute, known or not, ends the run. A TA outside a run (an orphan) is dropped, and so are the
//!   TAs of a domain that was not accepted.
//! - Full tunnel (RFC 8598 §2): when the INTERNAL_IP4_SUBNET or INTERNAL_IP6_SUBNET selectors of one
//!   family cover the whole address space (0.0.0.0/0, ::/0, or pieces that add up to it, such as
//!   0.0.0.0/1 + 128.0.0.0/1), only the servers are used.
//! - A reply with domains but no server applies nothing (RFC 8598 §3.2), see [`CfgReply::to_link_up`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{HookError, LinkUp};
use crate::domain::DomainName;
use crate::server_addr::ServerAddr;
use crate::trust::DsAnchor;
use crate::trust::ds::digest_len;

/// IKEv2 payload type of the Configuration payload (RFC 7296 §3.2).
pub const PAYLOAD_TYPE_CP: u8 = 47;

/// CFG Types (RFC 7296 §3.15).
pub const CFG_REQUEST: u8 = 1;
pub const CFG_REPLY: u8 = 2;
pub const CFG_SET: u8 = 3;
pub const CFG_ACK: u8 = 4;

/// Configuration attribute types this module reads (RFC 7296 §3.15.1, RFC 8598 §7).
pub const INTERNAL_IP4_DNS: u16 = 3;
pub const INTERNAL_IP6_DNS: u16 = 10;
pub const INTERNAL_IP4_SUBNET: u16 = 13;
pub const INTERNAL_IP6_SUBNET: u16 = 15;
pub const INTERNAL_DNS_DOMAIN: u16 = 25;
pub const INTERNAL_DNSSEC_TA: u16 = 26;

/// Generic payload header (4) + CFG Type and RESERVED (4).
const CP_HEADER_LEN: usize = 8;
const GENERIC_HEADER_LEN: usize = 4;
/// Notes quote values from the wire; keep each one readable.
const MAX_NOTE_CHARS: usize = 300;

/// What a CFG_REPLY (or CFG_SET) says about DNS, in the order the attributes came.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CfgReply {
    /// INTERNAL_IP4_DNS and INTERNAL_IP6_DNS, port 53, without duplicates.
    pub servers: Vec<ServerAddr>,
    /// Accepted INTERNAL_DNS_DOMAIN names, without duplicates.
    pub domains: Vec<DomainName>,
    /// Accepted INTERNAL_DNSSEC_TA anchors; each owner is one of `domains`.
    pub anchors: Vec<DsAnchor>,
    /// INTERNAL_IP4_SUBNET and INTERNAL_IP6_SUBNET selectors (network addresses, host bits cleared).
    pub subnets: Vec<IpNet>,
    /// The selectors cover all of IPv4 or all of IPv6 (RFC 8598 §2: domains and anchors are ignored).
    pub full_tunnel: bool,
    /// Everything that was dropped or ignored, and why (each one also logged with `tracing::warn!`).
    pub notes: Vec<String>,
}

impl CfgReply {
    /// The link this reply describes.
    ///
    /// Errors when there is no DNS server: with domains, that is RFC 8598 §3.2's "domains without DNS
    /// servers", and nothing is applied. A full tunnel keeps only the servers (RFC 8598 §2).
    pub fn to_link_up(&self, id: String, profile: Option<String>) -> Result<LinkUp, HookError> {
        if self.servers.is_empty() {
            if !self.domains.is_empty() {
                let names: Vec<&str> = self.domains.iter().map(DomainName::as_str).collect();
                return Err(HookError::new(format!(
                    "IKEv2 CFG_REPLY names split domains ({}) but no INTERNAL_IP4_DNS or INTERNAL_IP6_DNS server: \
                     domains without DNS servers: RFC 8598 §3.2; nothing applied",
                    names.join(", ")
                )));
            }
            return Err(HookError::new(
                "IKEv2 CFG_REPLY has no INTERNAL_IP4_DNS or INTERNAL_IP6_DNS server: nothing to apply",
            ));
        }
        let (routing_domains, anchors) =
            if self.full_tunnel { (Vec::new(), Vec::new()) } else { (self.domains.clone(), self.anchors.clone()) };
        Ok(LinkUp {
            id,
            profile,
            servers: self.servers.clone(),
            routing_domains,
            search_domains: Vec::new(),
            anchors,
            interface: None,
            full_tunnel: self.full_tunnel,
        })
    }

    fn note(&mut self, text: String) {
        let text = shorten(text);
        tracing::warn!("IKEv2 configuration payload: {text}");
        self.notes.push(text);
    }
}

/// Parses a decrypted IKEv2 Configuration payload, from its generic payload header on.
///
/// Accepts CFG_REPLY (2) and CFG_SET (3). Error offsets count from the first byte of `bytes`.
pub fn parse_cfg_reply(bytes: &[u8]) -> Result<CfgReply, HookError> {
    let Some(declared) = be16(bytes, 2) else {
        return Err(malformed(
            bytes.len(),
            format!(
                "the generic payload header needs {GENERIC_HEADER_LEN} bytes, the input ends after {}",
                bytes.len()
            ),
        ));
    };
    let declared = usize::from(declared);
    if declared != bytes.len() {
        return Err(malformed(
            2,
            format!("Payload Length says {declared} bytes but the payload given is {} bytes", bytes.len()),
        ));
    }
    let (Some(&cfg_type), Some(attributes)) = (bytes.get(GENERIC_HEADER_LEN), bytes.get(CP_HEADER_LEN..)) else {
        return Err(malformed(
            bytes.len(),
            format!(
                "a Configuration payload is at least {CP_HEADER_LEN} bytes (generic header, CFG Type, 3 reserved \
                 bytes), this one is {}",
                bytes.len()
            ),
        ));
    };
    match cfg_type {
        CFG_REPLY | CFG_SET => {}
        CFG_REQUEST => {
            return Err(HookError::new(
                "IKEv2 Configuration payload: CFG Type 1 (CFG_REQUEST) at offset 4 is the initiator's request, \
                 not the responder's configuration: give the CFG_REPLY (2) or CFG_SET (3) payload",
            ));
        }
        CFG_ACK => {
            return Err(HookError::new(
                "IKEv2 Configuration payload: CFG Type 4 (CFG_ACK) at offset 4 carries no configuration: give the \
                 CFG_REPLY (2) or CFG_SET (3) payload",
            ));
        }
        other => {
            return Err(HookError::new(format!(
                "IKEv2 Configuration payload: unknown CFG Type {other} at offset 4: only CFG_REPLY (2) and CFG_SET \
                 (3) are accepted"
            )));
        }
    }
    parse_list(attributes, CP_HEADER_LEN)
}

/// Parses a bare list of configuration attributes (what some clients hand over instead of the whole
/// payload). Error offsets count from the first byte of `bytes`.
pub fn parse_attributes(bytes: &[u8]) -> Result<CfgReply, HookError> {
    parse_list(bytes, 0)
}

/// Decodes hexadecimal text: white space anywhere, an optional leading `0x`, either case.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, HookError> {
    let trimmed = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let start = text.len() - trimmed.len();
    let (body, skip) = match trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")) {
        Some(rest) => (rest, start + 2),
        None => (trimmed, start),
    };
    if let Some((at, c)) = body.char_indices().find(|&(_, c)| !c.is_ascii_hexdigit() && !c.is_ascii_whitespace()) {
        return Err(HookError::new(format!(
            "not hexadecimal: {c:?} at character offset {} of the hex text",
            text.get(..skip + at).map_or(0, |before| before.chars().count())
        )));
    }
    let digits: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() {
        return Err(HookError::new("the hex text has no hex digits"));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(HookError::new(format!(
            "the hex text has an odd number of hex digits ({}): each byte needs two",
            digits.len()
        )));
    }
    hex::decode(&digits).map_err(|e| HookError::new(format!("not hexadecimal: {e}")))
}

/// One attribute as it sits in the list.
struct Attribute<'a> {
    /// Offset of its header, in the caller's numbering.
    offset: usize,
    /// Attribute type with the R bit cleared.
    kind: u16,
    value: &'a [u8],
}

/// Where a TA would attach: the state between INTERNAL_DNS_DOMAIN and its INTERNAL_DNSSEC_TA run.
enum Run {
    /// No domain right before: a TA here is an orphan.
    None,
    Accepted(DomainName),
    /// The domain was refused (its text, for notes): its TAs are dropped too (RFC 8598 §6).
    Rejected(String),
}

fn parse_list(list: &[u8], base: usize) -> Result<CfgReply, HookError> {
    let attributes = split_attributes(list, base)?;
    let mut reply = CfgReply::default();
    let mut run = Run::None;
    for attr in attributes {
        match attr.kind {
            INTERNAL_DNS_DOMAIN => run = domain(&mut reply, &attr),
            INTERNAL_DNSSEC_TA => trust_anchor(&mut reply, &attr, &run),
            kind => {
                run = Run::None;
                match kind {
                    INTERNAL_IP4_DNS => ip4_dns(&mut reply, &attr)?,
                    INTERNAL_IP6_DNS => ip6_dns(&mut reply, &attr)?,
                    INTERNAL_IP4_SUBNET => ip4_subnet(&mut reply, &attr)?,
                    INTERNAL_IP6_SUBNET => ip6_subnet(&mut reply, &attr)?,
                    _ => {} // RFC 7296 §3.15.1: unrecognised attributes MUST be ignored.
                }
            }
        }
    }
    reply.full_tunnel = covers_everything(&reply.subnets);
    if reply.full_tunnel && (!reply.domains.is_empty() || !reply.anchors.is_empty()) {
        let (d, a) = (reply.domains.len(), reply.anchors.len());
        reply.note(format!(
            "full tunnel (the subnet selectors cover 0.0.0.0/0 or ::/0): {d} split domain(s) and {a} trust \
             anchor(s) are ignored, only the DNS servers are used (RFC 8598 §2)"
        ));
    }
    Ok(reply)
}

/// Cuts the list into attributes, or says where the framing breaks.
fn split_attributes(list: &[u8], base: usize) -> Result<Vec<Attribute<'_>>, HookError> {
    let mut out = Vec::new();
    let mut rest = list;
    let mut offset = base;
    while !rest.is_empty() {
        let Some((&[t0, t1, l0, l1], after)) = rest.split_first_chunk::<4>() else {
            return Err(malformed(offset, format!("an attribute header needs 4 bytes, only {} remain", rest.len())));
        };
        let kind = u16::from_be_bytes([t0, t1]) & 0x7FFF;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let Some((value, next)) = after.split_at_checked(len) else {
            return Err(malformed(
                offset,
                format!(
                    "attribute type {kind} declares {len} value bytes but only {} remain after its header",
                    after.len()
                ),
            ));
        };
        out.push(Attribute { offset, kind, value });
        offset = offset.saturating_add(4 + len);
        rest = next;
    }
    Ok(out)
}

fn domain(reply: &mut CfgReply, attr: &Attribute<'_>) -> Run {
    match check_domain(attr.value) {
        Ok(name) => {
            if !reply.domains.contains(&name) {
                reply.domains.push(name.clone());
            }
            Run::Accepted(name)
        }
        Err(why) => {
            let shown = show(attr.value);
            reply.note(format!(
                "INTERNAL_DNS_DOMAIN {shown} at offset {} ignored, with any trust anchor after it: {why}",
                attr.offset
            ));
            Run::Rejected(shown)
        }
    }
}

/// RFC 8598 §4.1: presentation format, not NUL-terminated; splitdns is strict beyond that.
fn check_domain(value: &[u8]) -> Result<DomainName, String> {
    if value.is_empty() {
        return Err("the name is empty".into());
    }
    if value.contains(&0) {
        return Err("it contains a NUL byte (the name must not be NUL-terminated)".into());
    }
    if !value.is_ascii() {
        return Err("it is not ASCII (international names must be sent as IDNA A-labels, xn--…)".into());
    }
    if value.contains(&b'\\') {
        return Err("it contains a '\\' escape, which split domains may not use".into());
    }
    let text = std::str::from_utf8(value).map_err(|_| "it is not ASCII".to_string())?;
    DomainName::parse(text).map_err(|e| {
        // The name is quoted already: keep only the reason.
        let full = e.to_string();
        full.strip_prefix(&format!("{text:?} is not a domain name: ")).map_or_else(|| full.clone(), str::to_string)
    })
}

fn trust_anchor(reply: &mut CfgReply, attr: &Attribute<'_>, run: &Run) {
    let at = attr.offset;
    if attr.value.is_empty() {
        return; // "can either be empty" (RFC 8598 §4.2): nothing to use, and the run goes on.
    }
    let owner = match run {
        Run::Accepted(name) => name.clone(),
        Run::None => {
            reply.note(format!(
                "INTERNAL_DNSSEC_TA at offset {at} dropped: it does not follow an INTERNAL_DNS_DOMAIN or a trust \
                 anchor of one (RFC 8598 §4.2)"
            ));
            return;
        }
        Run::Rejected(shown) => {
            reply.note(format!(
                "INTERNAL_DNSSEC_TA at offset {at} dropped: its domain {shown} was not accepted (RFC 8598 §6)"
            ));
            return;
        }
    };
    let Some((&[k0, k1, algorithm, digest_type], digest)) = attr.value.split_first_chunk::<4>() else {
        reply.note(format!(
            "INTERNAL_DNSSEC_TA at offset {at} for {owner} dropped: {} bytes is too short for key tag, algorithm, \
             digest type and digest",
            attr.value.len()
        ));
        return;
    };
    let key_tag = u16::from_be_bytes([k0, k1]);
    let what = format!("INTERNAL_DNSSEC_TA at offset {at} ({owner} DS {key_tag} {algorithm} {digest_type})");
    let Some(want) = digest_len(digest_type) else {
        reply.note(format!(
            "{what} dropped: digest type {digest_type} is not supported (1 = SHA-1, 2 = SHA-256, 4 = SHA-384)"
        ));
        return;
    };
    let digest = if digest.len() == want {
        digest.to_vec()
    } else if digest.len() == 2 * want && digest.iter().all(u8::is_ascii_hexdigit) {
        match hex::decode(digest) {
            Ok(d) => d,
            Err(e) => {
                reply.note(format!("{what} dropped: {e}"));
                return;
            }
        }
    } else {
        reply.note(format!(
            "{what} dropped: a digest of type {digest_type} must be {want} bytes, or {} hex digits, got {} bytes",
            2 * want,
            digest.len()
        ));
        return;
    };
    match DsAnchor::new(owner, key_tag, algorithm, digest_type, digest) {
        Ok(anchor) => {
            if !reply.anchors.contains(&anchor) {
                reply.anchors.push(anchor);
            }
        }
        Err(e) => reply.note(format!("{what} dropped: {e}")),
    }
}

fn ip4_dns(reply: &mut CfgReply, attr: &Attribute<'_>) -> Result<(), HookError> {
    let Some(octets) = fixed::<4>(attr, "INTERNAL_IP4_DNS", "an IPv4 address")? else {
        return Ok(());
    };
    let ip = Ipv4Addr::from(octets);
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        reply.note(format!("INTERNAL_IP4_DNS {ip} at offset {} ignored: not a unicast address", attr.offset));
    } else {
        add_server(reply, IpAddr::V4(ip));
    }
    Ok(())
}

fn ip6_dns(reply: &mut CfgReply, attr: &Attribute<'_>) -> Result<(), HookError> {
    let Some(octets) = fixed::<16>(attr, "INTERNAL_IP6_DNS", "an IPv6 address")? else {
        return Ok(());
    };
    let ip = Ipv6Addr::from(octets);
    if ip.is_unspecified() || ip.is_multicast() {
        reply.note(format!("INTERNAL_IP6_DNS {ip} at offset {} ignored: not a unicast address", attr.offset));
    } else {
        add_server(reply, IpAddr::V6(ip));
    }
    Ok(())
}

fn add_server(reply: &mut CfgReply, ip: IpAddr) {
    let server = ServerAddr::plain(SocketAddr::new(ip, 53));
    if !reply.servers.contains(&server) {
        reply.servers.push(server);
    }
}

fn ip4_subnet(reply: &mut CfgReply, attr: &Attribute<'_>) -> Result<(), HookError> {
    let Some([a, b, c, d, m0, m1, m2, m3]) = fixed::<8>(attr, "INTERNAL_IP4_SUBNET", "an IPv4 address and mask")?
    else {
        return Ok(());
    };
    let mask = Ipv4Addr::new(m0, m1, m2, m3);
    let prefix = ipnet::ipv4_mask_to_prefix(mask)
        .map_err(|_| malformed(attr.offset, format!("INTERNAL_IP4_SUBNET has the non-contiguous netmask {mask}")))?;
    let net = Ipv4Net::new(Ipv4Addr::new(a, b, c, d), prefix)
        .map_err(|e| malformed(attr.offset, format!("INTERNAL_IP4_SUBNET: {e}")))?;
    add_subnet(reply, IpNet::V4(net.trunc()));
    Ok(())
}

fn ip6_subnet(reply: &mut CfgReply, attr: &Attribute<'_>) -> Result<(), HookError> {
    let Some(value) = fixed::<17>(attr, "INTERNAL_IP6_SUBNET", "an IPv6 address and prefix length")? else {
        return Ok(());
    };
    let [address @ .., prefix] = value;
    let net = Ipv6Net::new(Ipv6Addr::from(address), prefix).map_err(|_| {
        malformed(attr.offset, format!("INTERNAL_IP6_SUBNET has the prefix length {prefix}, more than 128"))
    })?;
    add_subnet(reply, IpNet::V6(net.trunc()));
    Ok(())
}

fn add_subnet(reply: &mut CfgReply, net: IpNet) {
    if !reply.subnets.contains(&net) {
        reply.subnets.push(net);
    }
}

/// The value of a fixed-size attribute: `None` when empty, an error when of another size.
fn fixed<const N: usize>(attr: &Attribute<'_>, name: &str, what: &str) -> Result<Option<[u8; N]>, HookError> {
    if attr.value.is_empty() {
        return Ok(None);
    }
    <[u8; N]>::try_from(attr.value).map(Some).map_err(|_| {
        malformed(
            attr.offset,
            format!("{name} must carry {what} ({N} bytes) or nothing, it has {} bytes", attr.value.len()),
        )
    })
}

/// True when the selectors of one family, taken together, cover that whole family.
fn covers_everything(subnets: &[IpNet]) -> bool {
    if subnets.iter().any(|n| n.prefix_len() == 0) {
        return true;
    }
    IpNet::aggregate(&subnets.to_vec()).iter().any(|n| n.prefix_len() == 0)
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let end = at.checked_add(2)?;
    bytes.get(at..end)?.try_into().ok().map(u16::from_be_bytes)
}

fn malformed(offset: usize, what: String) -> HookError {
    HookError::new(format!("malformed IKEv2 Configuration payload at offset {offset}: {what}"))
}

/// A value from the wire, quoted for a note (lossy, escaped, short).
fn show(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut quoted = format!("{text:?}");
    if quoted.chars().count() > 80 {
        quoted = quoted.chars().take(77).collect::<String>() + "…\"";
    }
    quoted
}

fn shorten(text: String) -> String {
    if text.chars().count() <= MAX_NOTE_CHARS {
        return text;
    }
    text.chars().take(MAX_NOTE_CHARS - 1).collect::<String>() + "…"
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The DS digests of RFC 8598 §3.4.2 (only their lengths matter here).
    const SHA1_HEX: &str = "B6225AB2CC613E0DCA7962BDC2342EA4F1B56083";
    const SHA256_HEX: &str = "F78CF3344F72137235098ECBBD08947C2C9001C7F6A085A17F518B5D8F6B916D";

    pub(super) fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    pub(super) fn payload(cfg_type: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![0, 0, 0, 0, cfg_type, 0, 0, 0];
        for a in attrs {
            p.extend_from_slice(a);
        }
        let len = u16::try_from(p.len()).unwrap().to_be_bytes();
        p[2..4].copy_from_slice(&len);
        p
    }

    fn reply(attrs: &[Vec<u8>]) -> Vec<u8> {
        payload(CFG_REPLY, attrs)
    }

    pub(super) fn ta_value(tag: u16, alg: u8, digest_type: u8, digest: &[u8]) -> Vec<u8> {
        let mut v = tag.to_be_bytes().to_vec();
        v.extend_from_slice(&[alg, digest_type]);
        v.extend_from_slice(digest);
        v
    }

    fn ta(tag: u16, alg: u8, digest_type: u8, digest: &[u8]) -> Vec<u8> {
        tlv(INTERNAL_DNSSEC_TA, &ta_value(tag, alg, digest_type, digest))
    }

    fn dom(name: &str) -> Vec<u8> {
        tlv(INTERNAL_DNS_DOMAIN, name.as_bytes())
    }

    fn v4dns(ip: &str) -> Vec<u8> {
        tlv(INTERNAL_IP4_DNS, &ip.parse::<Ipv4Addr>().unwrap().octets())
    }

    fn v6dns(ip: &str) -> Vec<u8> {
        tlv(INTERNAL_IP6_DNS, &ip.parse::<Ipv6Addr>().unwrap().octets())
    }

    fn v4subnet(addr: &str, mask: &str) -> Vec<u8> {
        let mut v = addr.parse::<Ipv4Addr>().unwrap().octets().to_vec();
        v.extend_from_slice(&mask.parse::<Ipv4Addr>().unwrap().octets());
        tlv(INTERNAL_IP4_SUBNET, &v)
    }

    fn v6subnet(addr: &str, prefix: u8) -> Vec<u8> {
        let mut v = addr.parse::<Ipv6Addr>().unwrap().octets().to_vec();
        v.push(prefix);
        tlv(INTERNAL_IP6_SUBNET, &v)
    }

    fn sha256() -> Vec<u8> {
        hex::decode(SHA256_HEX).unwrap()
    }

    fn domains(r: &CfgReply) -> Vec<&str> {
        r.domains.iter().map(DomainName::as_str).collect()
    }

    fn servers(r: &CfgReply) -> Vec<String> {
        r.servers.iter().map(ToString::to_string).collect()
    }

    fn err(r: Result<CfgReply, HookError>) -> String {
        match r {
            Ok(r) => panic!("accepted: {r:?}"),
            Err(e) => e.0,
        }
    }

    /// What must hold for every reply the parser accepts.
    pub(super) fn check_invariants(r: &CfgReply) {
        for a in &r.anchors {
            assert!(r.domains.contains(&a.owner), "anchor {a} has no accepted domain in {r:?}");
            assert_eq!(Some(a.digest.len()), digest_len(a.digest_type));
        }
        for (i, d) in r.domains.iter().enumerate() {
            assert!(!r.domains[..i].contains(d), "duplicate {d}");
        }
        match r.to_link_up("x".into(), None) {
            Ok(up) => {
                assert_eq!(up.servers, r.servers);
                assert_eq!(up.full_tunnel, r.full_tunnel);
                if r.full_tunnel {
                    assert!(up.routing_domains.is_empty() && up.anchors.is_empty());
                } else {
                    assert_eq!(up.routing_domains, r.domains);
                    assert_eq!(up.anchors, r.anchors);
                }
            }
            Err(_) => assert!(r.servers.is_empty()),
        }
    }

    fn rfc8598_example(sha1: Vec<u8>, sha256: Vec<u8>) -> Vec<u8> {
        reply(&[
            v4dns("198.51.100.2"),
            v4dns("198.51.100.4"),
            v6dns("2001:db8:99:88:77:66:55:44"),
            dom("example.com"),
            ta(43547, 8, 1, &sha1),
            ta(31406, 8, 2, &sha256),
            dom("city.other.test"),
        ])
    }

    #[test]
    fn rfc8598_section_3_4_2_example() {
        let binary = rfc8598_example(hex::decode(SHA1_HEX).unwrap(), sha256());
        let r = parse_cfg_reply(&binary).unwrap();
        assert_eq!(servers(&r), ["198.51.100.2", "198.51.100.4", "2001:db8:99:88:77:66:55:44"]);
        assert_eq!(domains(&r), ["example.com", "city.other.test"]);
        assert_eq!(
            r.anchors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [format!("example.com. IN DS 43547 8 1 {SHA1_HEX}"), format!("example.com. IN DS 31406 8 2 {SHA256_HEX}")]
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        assert!(!r.full_tunnel && r.subnets.is_empty());
        check_invariants(&r);

        // The same TAs with their digests in presentation format (hex text), as §4.2 words it.
        let text = rfc8598_example(SHA1_HEX.as_bytes().to_vec(), SHA256_HEX.to_lowercase().into_bytes());
        assert_eq!(parse_cfg_reply(&text).unwrap(), r);
        // The bare attribute list gives the same reply.
        assert_eq!(parse_attributes(&binary[8..]).unwrap(), r);

        let up = r.to_link_up("ike-1".into(), Some("corp".into())).unwrap();
        assert_eq!(up.id, "ike-1");
        assert_eq!(up.profile.as_deref(), Some("corp"));
        assert_eq!(up.servers, r.servers);
        assert_eq!(up.routing_domains, r.domains);
        assert!(up.search_domains.is_empty());
        assert_eq!(up.anchors, r.anchors);
        assert!(!up.full_tunnel && up.interface.is_none());
    }

    #[test]
    fn orphan_anchors_are_dropped() {
        let r = parse_cfg_reply(&reply(&[
            ta(1, 13, 2, &sha256()), // first attribute: no domain before it
            v4dns("10.0.0.1"),
            dom("corp.example"),
            v4dns("10.0.0.2"),
            ta(2, 13, 2, &sha256()), // the IP4_DNS ended corp.example's run
        ]))
        .unwrap();
        assert_eq!(domains(&r), ["corp.example"]);
        assert!(r.anchors.is_empty());
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        assert!(r.notes.iter().all(|n| n.contains("does not follow an INTERNAL_DNS_DOMAIN")), "{:?}", r.notes);
        assert!(r.notes[0].contains("offset 8") && r.notes[1].contains("offset 80"), "{:?}", r.notes);
        check_invariants(&r);
    }

    #[test]
    fn anchors_attach_to_the_domain_right_before_them() {
        let r = parse_cfg_reply(&reply(&[
            v4dns("10.0.0.1"),
            dom("a.example"),
            tlv(INTERNAL_DNSSEC_TA, &[]), // empty: ignored, the run goes on
            ta(1, 13, 2, &sha256()),
            dom("b.example"),
            ta(2, 13, 2, &sha256()),
            ta(3, 13, 2, &sha256()),
        ]))
        .unwrap();
        let owners: Vec<(u16, &str)> = r.anchors.iter().map(|a| (a.key_tag, a.owner.as_str())).collect();
        assert_eq!(owners, [(1, "a.example"), (2, "b.example"), (3, "b.example")]);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn binary_and_hex_digests() {
        for (digest_type, n) in [(1u8, 20usize), (2, 32), (4, 48)] {
            let binary: Vec<u8> = (0..n).map(|i| i as u8 ^ 0x5A).collect();
            for digest in [binary.clone(), hex::encode(&binary).into_bytes(), hex::encode_upper(&binary).into_bytes()] {
                let r =
                    parse_cfg_reply(&reply(&[v4dns("10.0.0.1"), dom("corp.example"), ta(7, 13, digest_type, &digest)]))
                        .unwrap();
                assert!(r.notes.is_empty(), "{:?}", r.notes);
                assert_eq!(r.anchors.len(), 1);
                assert_eq!(r.anchors[0].digest, binary, "digest type {digest_type}");
                assert_eq!((r.anchors[0].key_tag, r.anchors[0].algorithm), (7, 13));
            }
        }
    }

    #[test]
    fn bad_digests_are_dropped_with_a_note() {
        let mut not_hex = SHA256_HEX.as_bytes().to_vec();
        not_hex[10] = b'g';
        let bad: Vec<(u8, Vec<u8>, &str)> = vec![
            (2, vec![0xAB; 31], "must be 32 bytes, or 64 hex digits, got 31"),
            (2, vec![0xAB; 33], "got 33"),
            (2, SHA256_HEX.as_bytes()[..63].to_vec(), "got 63"),
            (2, not_hex, "got 64"),
            (2, SHA1_HEX.as_bytes().to_vec(), "got 40"), // SHA-1 text under SHA-256
            (1, sha256(), "must be 20 bytes, or 40 hex digits"), // SHA-256 digest under SHA-1
            (4, vec![0xAB; 32], "must be 48 bytes"),
            (2, vec![], "got 0 bytes"),
            (3, vec![0xAB; 32], "digest type 3 is not supported"),
            (0, vec![0xAB; 32], "digest type 0 is not supported"),
            (5, vec![0xAB; 32], "digest type 5 is not supported"),
        ];
        for (digest_type, digest, why) in bad {
            let r = parse_cfg_reply(&reply(&[
                v4dns("10.0.0.1"),
                dom("corp.example"),
                ta(9, 13, digest_type, &digest),
                ta(10, 13, 2, &sha256()), // still in the run: accepted
            ]))
            .unwrap();
            assert_eq!(r.anchors.iter().map(|a| a.key_tag).collect::<Vec<_>>(), [10], "{digest_type} {digest:?}");
            assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
            assert!(r.notes[0].contains(why) && r.notes[0].contains("offset 32"), "{why}: {:?}", r.notes);
        }
        // Shorter than the fixed part.
        let r =
            parse_cfg_reply(&reply(&[v4dns("10.0.0.1"), dom("corp.example"), tlv(INTERNAL_DNSSEC_TA, &[0, 1, 13])]))
                .unwrap();
        assert!(r.anchors.is_empty() && r.notes[0].contains("too short"), "{:?}", r.notes);
    }

    #[test]
    fn the_root_and_bad_names_are_refused_with_their_anchors() {
        let too_long = vec!["a".repeat(63); 4].join(".");
        let long_label = format!("{}.example", "a".repeat(64));
        let bad: Vec<(Vec<u8>, &str)> = vec![
            (b".".to_vec(), "root"),
            (b"".to_vec(), "empty"),
            (b"corp.example\0".to_vec(), "NUL"),
            (b"corp\0example".to_vec(), "NUL"),
            (b"corp\\.example".to_vec(), "escape"),
            (b"corp\\046example".to_vec(), "escape"),
            (b"corp..example".to_vec(), "empty label"),
            (b".corp.example".to_vec(), "empty label"),
            ("cörp.example".as_bytes().to_vec(), "not ASCII"),
            (vec![b'c', 0xFF, b'.', b'x'], "not ASCII"),
            (too_long.into_bytes(), "longer than 253"),
            (long_label.into_bytes(), "longer than 63"),
            (b"corp example".to_vec(), "only ASCII letters"),
            (b"-corp.example".to_vec(), "starts or ends with '-'"),
        ];
        for (name, why) in bad {
            let r = parse_cfg_reply(&reply(&[
                v4dns("10.0.0.1"),
                tlv(INTERNAL_DNS_DOMAIN, &name),
                ta(1, 13, 2, &sha256()),
                dom("good.example"),
                ta(2, 13, 2, &sha256()),
            ]))
            .unwrap();
            assert_eq!(domains(&r), ["good.example"], "{name:?}");
            assert_eq!(r.anchors.len(), 1);
            assert_eq!((r.anchors[0].key_tag, r.anchors[0].owner.as_str()), (2, "good.example"));
            assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
            assert!(r.notes[0].contains("INTERNAL_DNS_DOMAIN") && r.notes[0].contains(why), "{why}: {:?}", r.notes);
            assert!(r.notes[1].contains("was not accepted"), "{:?}", r.notes);
            assert!(r.notes.iter().all(|n| n.chars().count() <= MAX_NOTE_CHARS));
            check_invariants(&r);
        }
        // Case and one trailing dot are normalised.
        let r = parse_cfg_reply(&reply(&[v4dns("10.0.0.1"), dom("Corp.Example."), dom("corp.example")])).unwrap();
        assert_eq!(domains(&r), ["corp.example"]);
    }

    #[test]
    fn full_tunnel_keeps_only_the_servers() {
        let cases = [
            vec![v4subnet("0.0.0.0", "0.0.0.0")],
            vec![v4subnet("10.1.2.3", "0.0.0.0")], // host bits do not matter
            vec![v6subnet("::", 0)],
            vec![v4subnet("10.0.0.0", "255.0.0.0"), v6subnet("::", 0)],
            vec![v4subnet("0.0.0.0", "128.0.0.0"), v4subnet("128.0.0.0", "128.0.0.0")],
            vec![v6subnet("::", 1), v6subnet("8000::", 1)],
        ];
        for selectors in cases {
            let mut attrs = vec![v4dns("10.0.0.1")];
            attrs.extend(selectors.clone());
            attrs.extend([dom("corp.example"), ta(1, 13, 2, &sha256())]);
            let r = parse_cfg_reply(&reply(&attrs)).unwrap();
            assert!(r.full_tunnel, "{selectors:?}");
            assert_eq!(domains(&r), ["corp.example"]);
            assert!(r.notes.iter().any(|n| n.contains("full tunnel") && n.contains("RFC 8598 §2")), "{:?}", r.notes);
            let up = r.to_link_up("vpn".into(), None).unwrap();
            assert!(up.full_tunnel);
            assert!(up.routing_domains.is_empty() && up.anchors.is_empty());
            assert_eq!(servers(&r), ["10.0.0.1"]);
            assert_eq!(up.servers, r.servers);
        }
    }

    #[test]
    fn split_tunnel_selectors() {
        let r = parse_cfg_reply(&reply(&[
            v4dns("10.0.0.1"),
            v4subnet("10.1.2.3", "255.0.0.0"),
            v4subnet("0.0.0.0", "128.0.0.0"), // half of IPv4 is still a split tunnel
            v6subnet("2001:db8::1", 32),
            tlv(INTERNAL_IP4_SUBNET, &[]),
            dom("corp.example"),
        ]))
        .unwrap();
        assert!(!r.full_tunnel);
        let nets: Vec<String> = r.subnets.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "0.0.0.0/1", "2001:db8::/32"]);
        assert!(!r.to_link_up("vpn".into(), None).unwrap().full_tunnel);

        let e = err(parse_cfg_reply(&reply(&[v4subnet("10.0.0.0", "255.0.255.0")])));
        assert!(e.contains("offset 8") && e.contains("non-contiguous netmask 255.0.255.0"), "{e}");
        let e = err(parse_cfg_reply(&reply(&[v4dns("10.0.0.1"), v6subnet("::", 129)])));
        assert!(e.contains("offset 16") && e.contains("prefix length 129"), "{e}");
    }

    #[test]
    fn truncated_input_is_always_an_error() {
        let attrs = [
            v4dns("198.51.100.2"),
            v6dns("2001:db8::53"),
            v4subnet("10.0.0.0", "255.0.0.0"),
            dom("example.com"),
            ta(43547, 8, 1, SHA1_HEX.as_bytes()),
            tlv(0x4000, &[1, 2, 3]),
        ];
        let full = reply(&attrs);
        assert!(parse_cfg_reply(&full).is_ok());
        for k in 0..full.len() {
            let e = err(parse_cfg_reply(&full[..k]));
            assert!(e.contains("malformed") && e.contains("offset"), "{k}: {e}");
        }
        // Cut attribute lists, with a Payload Length that agrees: Ok only on an attribute boundary.
        let mut boundaries = vec![8];
        for a in &attrs {
            boundaries.push(boundaries.last().unwrap() + a.len());
        }
        for k in 8..=full.len() {
            let mut cut = full[..k].to_vec();
            cut[2..4].copy_from_slice(&u16::try_from(k).unwrap().to_be_bytes());
            let framed = parse_cfg_reply(&cut);
            let bare = parse_attributes(&full[8..k]);
            if boundaries.contains(&k) {
                assert!(framed.is_ok() && bare.is_ok(), "{k}");
            } else {
                let e = err(framed);
                let start = boundaries.iter().rev().find(|&&b| b < k).unwrap();
                assert!(e.contains(&format!("at offset {start}:")), "{k}: {e}");
                let e = err(bare);
                assert!(e.contains(&format!("at offset {}:", start - 8)), "{k}: {e}");
            }
        }
    }

    #[test]
    fn unknown_attributes_are_skipped_but_end_a_run() {
        let r = parse_cfg_reply(&reply(&[
            tlv(7, b"strongSwan 6.0"), // APPLICATION_VERSION
            v4dns("10.0.0.1"),
            tlv(0x4000, &[1, 2, 3]), // private use
            tlv(0x7FFF, &[]),
            tlv(28675, b"corp.example"), // Cisco Unity split DNS: not type 25
            dom("corp.example"),
            ta(1, 13, 2, &sha256()),
            tlv(14, &[0, 3, 0, 25]), // SUPPORTED_ATTRIBUTES between the domain's TAs
            ta(2, 13, 2, &sha256()),
            dom("lab.example"),
            tlv(30, &[]),
            ta(3, 13, 2, &sha256()),
        ]))
        .unwrap();
        assert_eq!(servers(&r), ["10.0.0.1"]);
        assert_eq!(domains(&r), ["corp.example", "lab.example"]);
        assert_eq!(r.anchors.iter().map(|a| a.key_tag).collect::<Vec<_>>(), [1]);
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        assert!(r.notes.iter().all(|n| n.contains("does not follow")));
    }

    #[test]
    fn the_r_bit_and_reserved_fields_are_ignored() {
        let plain = reply(&[v4dns("10.0.0.1"), dom("corp.example"), ta(1, 13, 2, &sha256())]);
        let mut flagged = reply(&[
            tlv(0x8000 | INTERNAL_IP4_DNS, &[10, 0, 0, 1]),
            tlv(0x8000 | INTERNAL_DNS_DOMAIN, b"corp.example"),
            tlv(0x8000 | INTERNAL_DNSSEC_TA, &ta_value(1, 13, 2, &sha256())),
        ]);
        flagged[0] = 41; // Next Payload
        flagged[1] = 0x80; // C bit
        flagged[5..8].copy_from_slice(&[1, 2, 3]); // RESERVED
        let r = parse_cfg_reply(&flagged).unwrap();
        assert_eq!(r, parse_cfg_reply(&plain).unwrap());
        assert_eq!(r.anchors.len(), 1);
    }

    #[test]
    fn cfg_types() {
        let attrs = [v4dns("10.0.0.1"), dom("corp.example")];
        let set = parse_cfg_reply(&payload(CFG_SET, &attrs)).unwrap();
        assert_eq!(set, parse_cfg_reply(&payload(CFG_REPLY, &attrs)).unwrap());
        let e = err(parse_cfg_reply(&payload(CFG_REQUEST, &attrs)));
        assert!(e.contains("CFG_REQUEST") && e.contains("offset 4"), "{e}");
        let e = err(parse_cfg_reply(&payload(CFG_ACK, &attrs)));
        assert!(e.contains("CFG_ACK"), "{e}");
        for t in [0, 5, 255] {
            let e = err(parse_cfg_reply(&payload(t, &attrs)));
            assert!(e.contains(&format!("unknown CFG Type {t}")), "{e}");
        }
    }

    #[test]
    fn payload_length_must_match_the_input() {
        let good = reply(&[v4dns("10.0.0.1"), dom("corp.example")]);
        let len = good.len();
        for wrong in [0, 4, 8, len - 1, len + 1, 65535] {
            let mut p = good.clone();
            p[2..4].copy_from_slice(&u16::try_from(wrong).unwrap().to_be_bytes());
            let e = err(parse_cfg_reply(&p));
            assert!(e.contains("offset 2") && e.contains(&format!("says {wrong} bytes")), "{e}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(err(parse_cfg_reply(&trailing)).contains("offset 2"));
        // A header that agrees with itself but is too short for a CP payload.
        let e = err(parse_cfg_reply(&[0, 0, 0, 6, 2, 0]));
        assert!(e.contains("at least 8 bytes"), "{e}");
        assert_eq!(parse_cfg_reply(&payload(CFG_REPLY, &[])).unwrap(), CfgReply::default());
    }

    #[test]
    fn known_attributes_of_the_wrong_size_are_malformed() {
        let cases: [(Vec<u8>, &str); 5] = [
            (tlv(INTERNAL_IP4_DNS, &[10, 0, 0]), "INTERNAL_IP4_DNS must carry an IPv4 address (4 bytes) or nothing"),
            (tlv(INTERNAL_IP4_DNS, &[10, 0, 0, 1, 0]), "INTERNAL_IP4_DNS"),
            (tlv(INTERNAL_IP6_DNS, &[0; 17]), "INTERNAL_IP6_DNS"),
            (tlv(INTERNAL_IP4_SUBNET, &[10, 0, 0, 0]), "INTERNAL_IP4_SUBNET"),
            (tlv(INTERNAL_IP6_SUBNET, &[0; 16]), "INTERNAL_IP6_SUBNET"),
        ];
        for (bad, what) in cases {
            let e = err(parse_cfg_reply(&reply(&[v4dns("10.0.0.1"), bad.clone()])));
            assert!(e.contains("offset 16") && e.contains(what), "{e}");
            let e = err(parse_attributes(&[v4dns("10.0.0.1"), bad].concat()));
            assert!(e.contains("offset 8") && e.contains(what), "{e}");
        }
    }

    #[test]
    fn empty_and_non_unicast_values() {
        // The canonical §3.4.2 request attributes, all empty, in a reply.
        let r = parse_cfg_reply(&reply(&[
            tlv(1, &[]),
            tlv(INTERNAL_IP4_DNS, &[]),
            tlv(8, &[]),
            tlv(INTERNAL_IP6_DNS, &[]),
            tlv(INTERNAL_DNS_DOMAIN, &[]),
            tlv(INTERNAL_DNSSEC_TA, &[]),
        ]))
        .unwrap();
        assert!(r.servers.is_empty() && r.domains.is_empty() && r.anchors.is_empty());
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(r.notes[0].contains("empty"));
        let e = r.to_link_up("vpn".into(), None).unwrap_err();
        assert!(e.0.contains("no INTERNAL_IP4_DNS or INTERNAL_IP6_DNS server"), "{e}");

        let r = parse_cfg_reply(&reply(&[
            v4dns("0.0.0.0"),
            v4dns("255.255.255.255"),
            v4dns("224.0.0.251"),
            v6dns("::"),
            v6dns("ff02::fb"),
            v4dns("10.0.0.1"),
            v4dns("10.0.0.1"),
            v6dns("fd00::53"),
        ]))
        .unwrap();
        assert_eq!(servers(&r), ["10.0.0.1", "fd00::53"]);
        assert_eq!(r.notes.len(), 5, "{:?}", r.notes);
    }

    #[test]
    fn domains_without_servers_apply_nothing() {
        let r = parse_cfg_reply(&reply(&[dom("corp.example"), ta(1, 13, 2, &sha256())])).unwrap();
        assert_eq!(domains(&r), ["corp.example"]);
        let e = r.to_link_up("vpn".into(), None).unwrap_err();
        assert!(e.0.contains("domains without DNS servers: RFC 8598 §3.2") && e.0.contains("corp.example"), "{e}");
        // Servers without domains: a link with no routing domain; what to do with it is the profile's call.
        let up = parse_cfg_reply(&reply(&[v4dns("10.0.0.1")])).unwrap().to_link_up("vpn".into(), None).unwrap();
        assert!(up.routing_domains.is_empty() && !up.full_tunnel);
    }

    #[test]
    fn hex_text() {
        assert_eq!(decode_hex("0a0B").unwrap(), [10, 11]);
        assert_eq!(decode_hex("  0x00 0a\n\tFF \r\n").unwrap(), [0, 10, 255]);
        assert_eq!(decode_hex("0XAb").unwrap(), [0xAB]);
        let example = rfc8598_example(vec![1; 20], vec![2; 32]);
        assert_eq!(decode_hex(&hex::encode(&example)).unwrap(), example);
        for (bad, why) in [
            ("", "no hex digits"),
            ("  \n", "no hex digits"),
            ("0x", "no hex digits"),
            ("abc", "odd number"),
            ("a b c", "odd number"),
            ("0g", "'g' at character offset 1"),
            ("00 0x01", "'x' at character offset 4"),
            ("é0", "'é' at character offset 0"),
            ("00:11", "':'"),
        ] {
            let e = decode_hex(bad).unwrap_err();
            assert!(e.0.contains(why), "{bad:?}: {e}");
        }
    }

    /// Every file of the fuzz seed corpus goes through both parsers. `valid-*` files must parse and
    /// `bad-*` files must not (as whole payloads); the rest only must not panic.
    #[test]
    fn fuzz_corpus() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/cfg_reply");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            let framed = parse_cfg_reply(&bytes);
            let bare = parse_attributes(&bytes);
            for r in [&framed, &bare].into_iter().flatten() {
                check_invariants(r);
            }
            if name.starts_with("valid-") {
                assert!(framed.is_ok(), "{name}: {framed:?}");
            }
            if name.starts_with("bad-") {
                assert!(framed.is_err(), "{name}: {framed:?}");
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = decode_hex(text);
            }
            count += 1;
        }
        assert!(count >= 10, "only {count} corpus files in {}", dir.display());
    }
}

#[cfg(test)]
mod properties {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::tests::{check_invariants, payload, ta_value, tlv};
    use super::*;

    const KNOWN: [u16; 6] = [
        INTERNAL_IP4_DNS,
        INTERNAL_IP6_DNS,
        INTERNAL_IP4_SUBNET,
        INTERNAL_IP6_SUBNET,
        INTERNAL_DNS_DOMAIN,
        INTERNAL_DNSSEC_TA,
    ];

    fn v4_mask(prefix: u8) -> [u8; 4] {
        (u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)).to_be_bytes()
    }

    fn domain_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(vec!["corp.example", "lab.example", "Corp.Example.", "a.b.c.example"])
                .prop_map(|s| s.as_bytes().to_vec()),
            3 => "[a-z0-9]{1,12}(\\.[a-z0-9-]{1,12}){0,3}\\.?".prop_map(String::into_bytes),
            2 => vec(any::<u8>(), 0..40),
            1 => Just(b".".to_vec()),
        ]
    }

    fn ta_attr_value() -> impl Strategy<Value = Vec<u8>> {
        let digest_type = prop_oneof![4 => prop::sample::select(vec![1u8, 2, 4]), 1 => any::<u8>()];
        let hex_digit = prop::sample::select(b"0123456789abcdefABCDEF".to_vec());
        prop_oneof![
            1 => Just(Vec::new()),
            1 => vec(any::<u8>(), 0..8),
            8 => (any::<u16>(), any::<u8>(), digest_type).prop_flat_map(move |(tag, alg, dt)| {
                let n = digest_len(dt).unwrap_or(32);
                prop_oneof![
                    vec(any::<u8>(), n),
                    vec(hex_digit.clone(), 2 * n),
                    vec(any::<u8>(), 0..100),
                ]
                .prop_map(move |digest| ta_value(tag, alg, dt, &digest))
            }),
        ]
    }

    /// One well-formed attribute TLV: known types with values of their sizes, anything else arbitrary.
    fn attribute() -> impl Strategy<Value = Vec<u8>> {
        let typed = prop_oneof![
            2 => prop_oneof![Just(Vec::new()), any::<[u8; 4]>().prop_map(|a| a.to_vec())]
                .prop_map(|v| (INTERNAL_IP4_DNS, v)),
            1 => prop_oneof![Just(Vec::new()), any::<[u8; 16]>().prop_map(|a| a.to_vec())]
                .prop_map(|v| (INTERNAL_IP6_DNS, v)),
            1 => (any::<[u8; 4]>(), prop_oneof![0u8..=32, Just(0u8)])
                .prop_map(|(a, p)| (INTERNAL_IP4_SUBNET, [a, v4_mask(p)].concat())),
            1 => (any::<[u8; 16]>(), prop_oneof![0u8..=128, Just(0u8)])
                .prop_map(|(a, p)| (INTERNAL_IP6_SUBNET, [&a[..], &[p]].concat())),
            4 => domain_value().prop_map(|v| (INTERNAL_DNS_DOMAIN, v)),
            5 => ta_attr_value().prop_map(|v| (INTERNAL_DNSSEC_TA, v)),
            2 => (any::<u16>().prop_filter("unknown type", |t| !KNOWN.contains(&(t & 0x7FFF))), vec(any::<u8>(), 0..24)),
        ];
        (typed, any::<bool>()).prop_map(|((kind, value), r_bit)| tlv(if r_bit { kind | 0x8000 } else { kind }, &value))
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
            for r in [parse_cfg_reply(&bytes), parse_attributes(&bytes)].iter().flatten() {
                check_invariants(r);
            }
            let _ = decode_hex(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn arbitrary_bodies_behind_a_valid_header_never_panic(
            cfg_type in prop_oneof![Just(CFG_REPLY), Just(CFG_SET), any::<u8>()],
            body in vec(any::<u8>(), 0..600),
        ) {
            let mut p = vec![0, 0, 0, 0, cfg_type, 0, 0, 0];
            p.extend_from_slice(&body);
            let len = u16::try_from(p.len()).unwrap().to_be_bytes();
            p[2..4].copy_from_slice(&len);
            if let Ok(r) = parse_cfg_reply(&p) {
                check_invariants(&r);
            }
        }

        #[test]
        fn well_formed_lists_parse(
            attrs in vec(attribute(), 0..32),
            cfg_type in prop_oneof![Just(CFG_REPLY), Just(CFG_SET)],
        ) {
            let list = attrs.concat();
            let bare = parse_attributes(&list);
            prop_assert!(bare.is_ok(), "{:?}", bare);
            let bare = bare.unwrap();
            // The same reply framed; only the offsets in the notes differ.
            let framed = parse_cfg_reply(&payload(cfg_type, &attrs));
            prop_assert!(framed.is_ok(), "{:?}", framed);
            let framed = framed.unwrap();
            prop_assert_eq!(framed.notes.len(), bare.notes.len());
            prop_assert_eq!(CfgReply { notes: vec![], ..framed }, CfgReply { notes: vec![], ..bare.clone() });
            check_invariants(&bare);
            for a in &bare.anchors {
                prop_assert!(bare.domains.contains(&a.owner));
            }
            let tas = attrs.iter().filter(|a| u16::from_be_bytes([a[0], a[1]]) & 0x7FFF == INTERNAL_DNSSEC_TA).count();
            prop_assert!(bare.anchors.len() <= tas);
        }

        #[test]
        fn truncated_well_formed_payloads_are_errors(
            attrs in vec(attribute(), 1..16),
            cut in any::<prop::sample::Index>(),
        ) {
            let full = payload(CFG_REPLY, &attrs);
            let k = cut.index(full.len());
            prop_assert!(parse_cfg_reply(&full[..k]).is_err());
        }

        #[test]
        fn hex_round_trip(bytes in vec(any::<u8>(), 1..200), prefix in any::<bool>(), gaps in any::<prop::sample::Index>()) {
            let mut text = hex::encode(&bytes);
            let at = gaps.index(text.len());
            text.insert_str(at, " \n\t");
            if prefix {
                text.insert_str(0, "0x");
            }
            prop_assert_eq!(decode_hex(&text).unwrap(), bytes);
        }
    }
}
