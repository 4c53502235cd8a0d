//! Turning a VPN-supplied DS anchor into trusted keys (RFC 4035 §5, RFC 8598 §4.2).
//!
//! The zone's DNSKEY RRset, fetched from the link's servers with DO set, is trusted only if a key in
//! it matches one of the DS records (key tag, algorithm, digest) and that key has a valid signature
//! over the whole RRset. Then every zone key of the RRset is trusted: hickory's validator stops at
//! an island of trust only when all its keys are anchors, and a KSK+ZSK zone anchored on the KSK
//! alone would be bogus. Work per verification is bounded (KeyTrap, CVE-2023-50387): at most
//! [`MAX_KEYS`] keys, [`MAX_KEYS_PER_TAG`] keys per DS key tag and [`MAX_SIGNATURES`] signatures tried.
//!
//! Pure functions over a DNS message: fetching is the caller's job.

use std::time::Duration;

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType, Verifier};
use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};

use super::ds::DsAnchor;

pub const MAX_KEYS: usize = 16;
pub const MAX_KEYS_PER_TAG: usize = 4;
pub const MAX_SIGNATURES: usize = 8;

/// Shortest and longest time before a verified key set is checked again.
pub const MIN_RECHECK: Duration = Duration::from_secs(60);
pub const MAX_RECHECK: Duration = Duration::from_secs(24 * 3600);

/// A DNSKEY RRset that a DS anchor vouched for.
#[derive(Clone, Debug)]
pub struct VerifiedKeys {
    pub zone: Name,
    /// Every zone key of the RRset (these become trust anchors).
    pub keys: Vec<DNSKEY>,
    /// Key tags of the keys that matched a DS and signed the RRset.
    pub matched_tags: Vec<u16>,
    /// The DNSKEY RRset and its signatures as received (served to the validator from memory).
    pub records: Vec<Record>,
    /// When to fetch and verify the key set again (its TTL, bounded by the signature's expiry).
    pub recheck_after: Duration,
}

/// Why a key set could not be verified. Each says what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("the server returned no DNSKEY records for {0} (is the zone signed, and are these its servers?)")]
    NoDnskey(String),
    #[error("none of the {keys} DNSKEYs of {zone} matches the DS record(s) {ds} (wrong or outdated DS from the VPN?)")]
    NoMatchingKey { zone: String, keys: usize, ds: String },
    #[error("the DNSKEY RRset of {zone} is not signed by the key that matches the DS ({detail})")]
    NoValidSignature { zone: String, detail: String },
    #[error("no usable DS: {0}")]
    Unusable(String),
    #[error("the DNSKEY RRset of {zone} has {count} keys, more than the {MAX_KEYS} splitdns accepts")]
    TooManyKeys { zone: String, count: usize },
}

fn as_dnskey(r: &Record) -> Option<&DNSKEY> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
        _ => None,
    }
}

fn as_rrsig(r: &Record) -> Option<&RRSIG> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    }
}

/// Verifies the DNSKEY RRset in `response` for `zone` against `anchors` at time `now` (Unix seconds).
pub fn verify(zone: &Name, anchors: &[DsAnchor], response: &Message, now: u32) -> Result<VerifiedKeys, AnchorError> {
    let zone_text = zone.to_string();
    let dnskey_records: Vec<&Record> = response
        .answers
        .iter()
        .filter(|r| r.name == *zone && r.record_type() == RecordType::DNSKEY && r.dns_class == DNSClass::IN)
        .collect();
    if dnskey_records.is_empty() {
        return Err(AnchorError::NoDnskey(zone_text));
    }
    if dnskey_records.len() > MAX_KEYS {
        return Err(AnchorError::TooManyKeys { zone: zone_text, count: dnskey_records.len() });
    }
    let rrsigs: Vec<&RRSIG> = response
        .answers
        .iter()
        .filter(|r| r.name == *zone)
        .filter_map(as_rrsig)
        .filter(|s| s.input().type_covered == RecordType::DNSKEY)
        .collect();

    let usable: Vec<DS> = anchors
        .iter()
        .filter_map(|a| {
            let digest = DigestType::from(a.digest_type);
            let alg = Algorithm::from_u8(a.algorithm);
            (digest.is_supported() && alg.is_supported()).then(|| DS::new(a.key_tag, alg, digest, a.digest.clone()))
        })
        .collect();
    if usable.is_empty() {
        return Err(AnchorError::Unusable(format!(
            "none of the DS records for {zone_text} uses an algorithm and digest splitdns supports"
        )));
    }

    // Keys that a DS vouches for: zone keys, not revoked, tag/algorithm/digest match.
    let mut matched: Vec<&DNSKEY> = Vec::new();
    for ds in &usable {
        let mut per_tag = 0;
        for key in dnskey_records.iter().filter_map(|r| as_dnskey(r)) {
            if key.revoke() || !key.zone_key() || key.algorithm() != ds.algorithm() {
                continue;
            }
            if key.calculate_key_tag().ok() != Some(ds.key_tag()) {
                continue;
            }
            per_tag += 1;
            if per_tag > MAX_KEYS_PER_TAG {
                break;
            }
            if ds.covers(zone, key).unwrap_or(false) && !matched.contains(&key) {
                matched.push(key);
            }
        }
    }
    if matched.is_empty() {
        let ds = anchors
            .iter()
            .map(|a| format!("{} {} {}", a.key_tag, a.algorithm, a.digest_type))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(AnchorError::NoMatchingKey { zone: zone_text, keys: dnskey_records.len(), ds });
    }

    // One of them must sign the RRset, within its validity period.
    let current = SerialNumber::new(now);
    let mut tried = 0;
    let mut problems = Vec::new();
    let rrset: Vec<Record> = dnskey_records.iter().map(|r| (*r).clone()).collect();
    let mut signed_by = Vec::new();
    let mut expiry = None;
    for key in &matched {
        let tag = key.calculate_key_tag().unwrap_or(0);
        for sig in rrsigs.iter().filter(|s| s.input().key_tag == tag && s.input().algorithm == key.algorithm()) {
            if tried >= MAX_SIGNATURES {
                break;
            }
            tried += 1;
            let input = sig.input();
            if input.signer_name != *zone {
                problems.push(format!("signature {tag} is by {}, not the zone", input.signer_name));
                continue;
            }
            if current > input.sig_expiration {
                problems.push(format!("signature {tag} expired"));
                continue;
            }
            if current < input.sig_inception {
                problems.push(format!("signature {tag} is not valid yet"));
                continue;
            }
            match key.verify_rrsig(zone, DNSClass::IN, sig, rrset.iter()) {
                Ok(()) => {
                    signed_by.push(tag);
                    let left = input.sig_expiration.get().wrapping_sub(now);
                    expiry = Some(expiry.map_or(left, |e: u32| e.min(left)));
                }
                Err(e) => problems.push(format!("signature {tag} does not verify: {e}")),
            }
        }
    }
    if signed_by.is_empty() {
        let detail = if rrsigs.is_empty() {
            "the RRset has no RRSIG: does the server return DNSSEC records (DO bit)?".to_string()
        } else if problems.is_empty() {
            format!(
                "no signature by key tag(s) {:?}",
                matched.iter().filter_map(|k| k.calculate_key_tag().ok()).collect::<Vec<_>>()
            )
        } else {
            problems.join("; ")
        };
        return Err(AnchorError::NoValidSignature { zone: zone_text, detail });
    }

    let keys: Vec<DNSKEY> = dnskey_records
        .iter()
        .filter_map(|r| as_dnskey(r))
        .filter(|k| k.zone_key() && !k.revoke() && k.algorithm().is_supported())
        .cloned()
        .collect();
    let ttl = dnskey_records.iter().map(|r| r.ttl).min().unwrap_or(0);
    let secs = u64::from(ttl.min(expiry.unwrap_or(u32::MAX)));
    let recheck_after = Duration::from_secs(secs).clamp(MIN_RECHECK, MAX_RECHECK);
    let mut records: Vec<Record> = rrset;
    records.extend(
        response
            .answers
            .iter()
            .filter(|r| r.name == *zone && as_rrsig(r).is_some_and(|s| s.input().type_covered == RecordType::DNSKEY))
            .cloned(),
    );
    Ok(VerifiedKeys { zone: zone.clone(), keys, matched_tags: signed_by, records, recheck_after })
}

/// Key tags of a key set, for status output.
pub fn key_summary(keys: &[DNSKEY]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            let tag = k.calculate_key_tag().unwrap_or(0);
            let role = if k.secure_entry_point() { "KSK" } else { "ZSK" };
            format!("{role} {tag} alg {}", u8::from(k.algorithm()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::dnssec::PublicKeyBuf;
    use hickory_proto::op::{MessageType, OpCode};
    use std::str::FromStr;

    fn zone() -> Name {
        Name::from_str("corp.example.").unwrap()
    }

    fn key(i: u8, ksk: bool) -> Record {
        let pk = PublicKeyBuf::new(vec![i; 64], Algorithm::ECDSAP256SHA256);
        Record::from_rdata(zone(), 3600, RData::DNSSEC(DNSSECRData::DNSKEY(DNSKEY::new(true, ksk, false, pk))))
    }

    fn response(records: Vec<Record>) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.insert_answers(records);
        m
    }

    fn ds_for(r: &Record) -> DsAnchor {
        let k = as_dnskey(r).unwrap();
        let digest = k.to_digest(&zone(), DigestType::SHA256).unwrap();
        DsAnchor::new("corp.example".parse().unwrap(), k.calculate_key_tag().unwrap(), 13, 2, digest.as_ref().to_vec())
            .unwrap()
    }

    #[test]
    fn empty_answer_is_no_dnskey() {
        let ds = ds_for(&key(1, true));
        assert!(matches!(verify(&zone(), &[ds], &response(vec![]), 0), Err(AnchorError::NoDnskey(_))));
    }

    #[test]
    fn too_many_keys_are_refused_before_any_crypto() {
        let keys: Vec<Record> = (0..=MAX_KEYS as u8).map(|i| key(i, false)).collect();
        let ds = ds_for(&keys[0]);
        assert!(matches!(verify(&zone(), &[ds], &response(keys), 0), Err(AnchorError::TooManyKeys { .. })));
    }

    #[test]
    fn ds_matching_nothing_is_reported_as_such() {
        let ds = ds_for(&key(9, true));
        let err = verify(&zone(), &[ds], &response(vec![key(1, true), key(2, false)]), 0).unwrap_err();
        assert!(matches!(err, AnchorError::NoMatchingKey { keys: 2, .. }), "{err}");
    }

    #[test]
    fn matching_key_without_signature_is_not_trusted() {
        let ksk = key(1, true);
        let ds = ds_for(&ksk);
        let err = verify(&zone(), &[ds], &response(vec![ksk, key(2, false)]), 0).unwrap_err();
        assert!(matches!(err, AnchorError::NoValidSignature { .. }), "{err}");
        assert!(err.to_string().contains("no RRSIG"), "{err}");
    }
}
