//! Domain names as splitdns stores, compares and shows them.
//!
//! Split domains, whitelist entries and DS owners all arrive from outside (hooks, config, the user), so
//! they are validated strictly once, here, and carried as [`DomainName`] from then on: ASCII, lower
//! case, LDH labels of 1–63 octets, at most 253 octets, no trailing dot, never the root. Comparisons are
//! by whole labels, so `corp.example` covers `a.corp.example` but never `othercorp.example`.

use std::fmt;
use std::str::FromStr;

use hickory_proto::rr::{LowerName, Name};
use serde::{Deserialize, Serialize};

/// A validated, normalised domain name (never the root).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

/// Why a string is not an acceptable domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the root domain \".\" cannot be used here")]
    Root,
    #[error("{0:?} is not a domain name: it is empty")]
    Empty(String),
    #[error(
        "{0:?} is not a domain name: only ASCII letters, digits, '-' and '.' are allowed (use the IDNA A-label, xn--…, for international names)"
    )]
    BadChar(String),
    #[error("{0:?} is not a domain name: it has an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel(String),
    #[error("{0:?} is not a domain name: a label is longer than 63 characters")]
    LabelTooLong(String),
    #[error("{0:?} is not a domain name: it is longer than 253 characters")]
    TooLong(String),
    #[error("{0:?} is not a domain name: a label starts or ends with '-'")]
    Hyphen(String),
}

impl DomainName {
    /// Parses and normalises a domain name in presentation form (one trailing dot allowed).
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let s = input.strip_suffix('.').unwrap_or(input);
        if input == "." {
            return Err(DomainError::Root);
        }
        if s.is_empty() {
            return Err(DomainError::Empty(input.to_string()));
        }
        if s.len() > 253 {
            return Err(DomainError::TooLong(input.to_string()));
        }
        for label in s.split('.') {
            if label.is_empty() {
                return Err(DomainError::EmptyLabel(input.to_string()));
            }
            if label.len() > 63 {
                return Err(DomainError::LabelTooLong(input.to_string()));
            }
            if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(DomainError::BadChar(input.to_string()));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(DomainError::Hyphen(input.to_string()));
            }
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The name without a trailing dot, e.g. `corp.example`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The fully qualified form, e.g. `corp.example.`.
    pub fn fqdn(&self) -> String {
        format!("{}.", self.0)
    }

    /// Number of labels (`corp.example` has 2).
    pub fn label_count(&self) -> usize {
        self.0.split('.').count()
    }

    /// True when `self` equals `ancestor` or lies below it, by whole labels.
    pub fn is_at_or_under(&self, ancestor: &DomainName) -> bool {
        self.0 == ancestor.0
            || (self.0.len() > ancestor.0.len()
                && self.0.ends_with(&ancestor.0)
                && self.0.as_bytes()[self.0.len() - ancestor.0.len() - 1] == b'.')
    }

    /// Where the name stands in the Public Suffix List (ICANN and private sections).
    pub fn public_suffix(&self) -> PublicSuffix {
        // Locally served special-use names (RFC 8375 home.arpa) sit in the list's ICANN section,
        // but each network has its own: they are private, like an unknown TLD.
        if LOCAL_SPECIAL_USE.contains(&self.0.as_str()) {
            return PublicSuffix::UnknownTld;
        }
        match psl::suffix(self.0.as_bytes()) {
            Some(s) if s.as_bytes() == self.0.as_bytes() && s.is_known() => PublicSuffix::Listed,
            // The list's default rule `*`: an unknown top-level domain is a suffix of its own.
            Some(s) if s.as_bytes() == self.0.as_bytes() => PublicSuffix::UnknownTld,
            _ => PublicSuffix::No,
        }
    }

    /// The hickory wire-level name (fully qualified, lower case).
    pub fn to_lower_name(&self) -> LowerName {
        // A validated LDH name always converts; fall back to root never happens, but avoid a panic.
        LowerName::new(&Name::from_ascii(self.fqdn()).unwrap_or_else(|_| Name::root()))
    }
}

/// Special-use names the Public Suffix List carries but every network serves for itself.
const LOCAL_SPECIAL_USE: &[&str] = &["home.arpa"];

/// A name's place in the Public Suffix List.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicSuffix {
    /// Listed as a public suffix: `com`, `co.uk`, `github.io`. Names under it belong to
    /// unrelated owners.
    Listed,
    /// A top-level domain the list does not know (`internal`, `corp`, `lan`): a suffix by the list's
    /// default rule, but private by convention.
    UnknownTld,
    /// Not a suffix (`corp.example`, `home.arpa`).
    No,
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DomainName {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DomainName> for String {
    fn from(d: DomainName) -> String {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_trailing_dot() {
        assert_eq!(DomainName::parse("Corp.Example.").unwrap().as_str(), "corp.example");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [".", "", "a..b", ".a", "a b", "a\\.b", "a\0b", "-a.b", "a-.b", "é.example"] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(DomainName::parse(&format!("{}.x", "a".repeat(64))).is_err());
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(long.len() > 253 && DomainName::parse(&long).is_err());
        assert_eq!(DomainName::parse("."), Err(DomainError::Root));
    }

    #[test]
    fn longest_label_and_longest_name_are_accepted() {
        // RFC 1035 §2.3.4: a label may have 63 octets, a name 255 on the wire (253 written out).
        let l63 = "a".repeat(63);
        let label = format!("{l63}.example");
        assert_eq!(DomainName::parse(&label).unwrap().as_str(), label);
        assert_eq!(
            DomainName::parse(&format!("a{label}")),
            Err(DomainError::LabelTooLong(format!("a{label}"))),
            "a 64-octet label"
        );
        let name = format!("{l63}.{l63}.{l63}.{}", "b".repeat(61));
        assert_eq!(name.len(), 253);
        let d = DomainName::parse(&name).unwrap();
        assert_eq!(d.as_str(), name);
        assert_eq!(DomainName::parse(&format!("{name}.")).unwrap(), d, "a trailing dot does not count");
        // The longest name still routes: its wire form is the same name, not the root.
        assert_eq!(d.to_lower_name().to_string(), d.fqdn());
        let long = format!("{l63}.{l63}.{l63}.{}", "b".repeat(62));
        assert_eq!(DomainName::parse(&long), Err(DomainError::TooLong(long.clone())), "254 octets");
    }

    #[test]
    fn stored_and_shown_as_the_normalised_name() {
        // links.json keeps split domains as strings: what is written must read back as the same name.
        let d = DomainName::parse("Corp.Example.").unwrap();
        assert_eq!(d.to_string(), "corp.example");
        assert_eq!(d.fqdn(), "corp.example.");
        assert_eq!(String::from(d.clone()), "corp.example");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, "\"corp.example\"");
        assert_eq!(serde_json::from_str::<DomainName>(&json).unwrap(), d);
        assert!(serde_json::from_str::<DomainName>("\"a..b\"").is_err(), "a saved name is validated again");
        assert_eq!("Corp.Example".parse::<DomainName>().unwrap(), d);
    }

    #[test]
    fn public_suffixes() {
        let ps = |n: &str| DomainName::parse(n).unwrap().public_suffix();
        for listed in ["com", "co.uk", "github.io", "in-addr.arpa", "arpa"] {
            assert_eq!(ps(listed), PublicSuffix::Listed, "{listed}");
        }
        for unknown in ["internal", "corp", "lan", "example", "home.arpa"] {
            assert_eq!(ps(unknown), PublicSuffix::UnknownTld, "{unknown}");
        }
        for no in ["corp.example", "x.home.arpa", "10.in-addr.arpa", "example.com", "me.github.io", "a.co.uk"] {
            assert_eq!(ps(no), PublicSuffix::No, "{no}");
        }
    }

    #[test]
    fn whole_label_suffix() {
        let corp = DomainName::parse("corp.example").unwrap();
        assert!(DomainName::parse("a.b.corp.example").unwrap().is_at_or_under(&corp));
        assert!(DomainName::parse("corp.example").unwrap().is_at_or_under(&corp));
        assert!(!DomainName::parse("othercorp.example").unwrap().is_at_or_under(&corp));
        assert!(!DomainName::parse("example").unwrap().is_at_or_under(&corp));
    }
}
