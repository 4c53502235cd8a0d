//! RFC 8914 Extended DNS Errors: the codes splitdns uses and how to attach one to a response.

use hickory_proto::op::Edns;
use hickory_proto::rr::rdata::opt::EdnsOption;

/// EDNS option code of an Extended DNS Error.
pub(crate) const OPTION_CODE: u16 = 15;

pub(crate) const OTHER: u16 = 0;
pub(crate) const DNSSEC_BOGUS: u16 = 6;
pub(crate) const SIGNATURE_EXPIRED: u16 = 7;
pub(crate) const SIGNATURE_NOT_YET_VALID: u16 = 8;
pub(crate) const DNSKEY_MISSING: u16 = 9;
pub(crate) const RRSIGS_MISSING: u16 = 10;
pub(crate) const NSEC_MISSING: u16 = 12;
pub(crate) const NOT_SUPPORTED: u16 = 21;
pub(crate) const PROHIBITED: u16 = 18;
pub(crate) const NO_REACHABLE_AUTHORITY: u16 = 22;
pub(crate) const NETWORK_ERROR: u16 = 23;

/// Adds an Extended DNS Error (code and human-readable text) to `edns`.
pub(crate) fn attach(edns: &mut Edns, code: u16, text: &str) {
    let mut data = Vec::with_capacity(2 + text.len());
    data.extend_from_slice(&code.to_be_bytes());
    // Keep the text short enough to fit comfortably in a 512-byte response.
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    data.extend_from_slice(&text.as_bytes()[..end]);
    edns.options_mut().insert(EdnsOption::Unknown(OPTION_CODE, data));
}
