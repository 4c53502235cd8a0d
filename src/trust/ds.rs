//! DS records in presentation form: `corp.example. 3600 IN DS 12345 13 2 ABCD…`.
//!
//! The parser accepts what people paste and what RFC 8598 hooks produce: an owner name, an optional TTL,
//! an optional class (`IN` only), the `DS` type, key tag, algorithm, digest type and the hex digest
//! (white space inside the digest allowed). The digest length must match the digest type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::{DomainError, DomainName};

/// One DS record offered as a trust anchor for a split domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DsAnchor {
    pub owner: DomainName,
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
    pub digest: Vec<u8>,
}

/// Why a DS record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsError {
    #[error("DS record {0:?} is incomplete: expected \"OWNER [TTL] [IN] DS KEYTAG ALGORITHM DIGESTTYPE HEXDIGEST\"")]
    Incomplete(String),
    #[error("DS owner: {0}")]
    Owner(#[from] DomainError),
    #[error("DS record {input:?}: {what} {value:?} is not a number in range")]
    Number { input: String, what: &'static str, value: String },
    #[error("DS record {0:?}: only class IN is supported")]
    Class(String),
    #[error("DS record {0:?}: the record type must be DS")]
    NotDs(String),
    #[error("DS record {0:?}: digest type {1} is not supported (use 1 = SHA-1, 2 = SHA-256 or 4 = SHA-384)")]
    DigestType(String, u8),
    #[error("DS record {0:?}: the digest is not hexadecimal")]
    Hex(String),
    #[error("DS record {input:?}: a digest of type {digest_type} must be {want} bytes, got {got}")]
    DigestLength { input: String, digest_type: u8, want: usize, got: usize },
}

/// The digest length in bytes for a DS digest type, or `None` if splitdns does not support it.
pub fn digest_len(digest_type: u8) -> Option<usize> {
    match digest_type {
        1 => Some(20),
        2 => Some(32),
        4 => Some(48),
        _ => None,
    }
}

impl DsAnchor {
    /// Checks a digest against its type and builds the anchor.
    pub fn new(
        owner: DomainName,
        key_tag: u16,
        algorithm: u8,
        digest_type: u8,
        digest: Vec<u8>,
    ) -> Result<Self, DsError> {
        let shown = || format!("{owner} DS {key_tag} {algorithm} {digest_type}");
        let want = digest_len(digest_type).ok_or_else(|| DsError::DigestType(shown(), digest_type))?;
        if digest.len() != want {
            return Err(DsError::DigestLength { input: shown(), digest_type, want, got: digest.len() });
        }
        Ok(Self { owner, key_tag, algorithm, digest_type, digest })
    }
}

impl FromStr for DsAnchor {
    type Err = DsError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut tokens = input.split_whitespace().peekable();
        let incomplete = || DsError::Incomplete(input.to_string());
        let owner = DomainName::parse(tokens.next().ok_or_else(incomplete)?)?;
        // Optional TTL and class, in either order (RFC 1035 §5.1).
        for _ in 0..2 {
            match tokens.peek() {
                Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => {
                    tokens.next();
                }
                Some(t) if t.eq_ignore_ascii_case("IN") => {
                    tokens.next();
                }
                Some(t) if ["CH", "HS", "CS"].iter().any(|c| t.eq_ignore_ascii_case(c)) => {
                    return Err(DsError::Class(input.to_string()));
                }
                _ => {}
            }
        }
        if !tokens.next().ok_or_else(incomplete)?.eq_ignore_ascii_case("DS") {
            return Err(DsError::NotDs(input.to_string()));
        }
        let number = |what: &'static str, value: Option<&str>| -> Result<u64, DsError> {
            let value = value.ok_or_else(incomplete)?;
            value.parse::<u64>().map_err(|_| DsError::Number {
                input: input.to_string(),
                what,
                value: value.to_string(),
            })
        };
        let range = |what: &'static str, v: u64, max: u64| -> Result<u64, DsError> {
            if v > max { Err(DsError::Number { input: input.to_string(), what, value: v.to_string() }) } else { Ok(v) }
        };
        let key_tag = range("key tag", number("key tag", tokens.next())?, 65535)? as u16;
        let algorithm = range("algorithm", number("algorithm", tokens.next())?, 255)? as u8;
        let digest_type = range("digest type", number("digest type", tokens.next())?, 255)? as u8;
        let hex_text: String = tokens.collect();
        if hex_text.is_empty() {
            return Err(incomplete());
        }
        let digest = hex::decode(&hex_text).map_err(|_| DsError::Hex(input.to_string()))?;
        DsAnchor::new(owner, key_tag, algorithm, digest_type, digest)
    }
}

impl fmt::Display for DsAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}. IN DS {} {} {} {}",
            self.owner,
            self.key_tag,
            self.algorithm,
            self.digest_type,
            hex::encode_upper(&self.digest)
        )
    }
}

impl TryFrom<String> for DsAnchor {
    type Error = DsError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DsAnchor> for String {
    fn from(d: DsAnchor) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "E2D3C916F6DEEAC73294E8268FB5885044A833FC5459588F4A9184CFC41A5766";

    #[test]
    fn parses_full_and_short_forms() {
        let full: DsAnchor = format!("corp.example. 3600 IN DS 12345 13 2 {SHA256}").parse().unwrap();
        let short: DsAnchor = format!("Corp.Example DS 12345 13 2 {}", SHA256.to_lowercase()).parse().unwrap();
        assert_eq!(full, short);
        assert_eq!(full.key_tag, 12345);
        assert_eq!(full.to_string(), format!("corp.example. IN DS 12345 13 2 {SHA256}"));
        // Digest split by white space, as zone files often print it.
        let split: DsAnchor =
            format!("corp.example. IN DS 12345 13 2 {} {}", &SHA256[..32], &SHA256[32..]).parse().unwrap();
        assert_eq!(split, full);
    }

    #[test]
    fn rejects_bad_records() {
        let bad = [
            "corp.example. IN DS 12345 13 2".to_string(),
            format!("corp.example. IN DNSKEY 12345 13 2 {SHA256}"),
            format!("corp.example. CH DS 12345 13 2 {SHA256}"),
            format!("corp.example. IN DS 70000 13 2 {SHA256}"),
            format!("corp.example. IN DS 1 13 3 {SHA256}"),
            format!("corp.example. IN DS 1 13 1 {SHA256}"),
            "corp.example. IN DS 1 13 2 XYZ".to_string(),
            format!(". IN DS 1 13 2 {SHA256}"),
        ];
        for b in bad {
            assert!(b.parse::<DsAnchor>().is_err(), "accepted {b:?}");
        }
    }
}
