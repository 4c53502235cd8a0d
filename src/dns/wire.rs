//! Just enough DNS wire format for the cache-hit fast path, without building hickory messages.
//!
//! A cached answer is served by copying its stored wire bytes and patching a few fields (id,
//! flags, the client's question, TTLs). That needs three small pieces of parsing, kept here apart
//! from any I/O so they can be tested (and fuzzed) on their own:
//!
//! - [`QueryView::parse`]: accepts only the plain shape almost every stub query has (one question,
//!   no answer/authority records, at most an OPT record, nothing left over). Anything else returns
//!   `None` and goes to the full hickory parser, which decides what it is and how to answer it. The
//!   fast path therefore never has to get an odd packet right: it only has to recognise a normal one.
//! - [`ttl_offsets`]: where the TTL fields of a stored message are, so age can be subtracted.
//! - lower-case wire names and whole-label suffix tests, for routing and cache keys.

/// Longest domain name on the wire (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;
/// Size of the DNS header.
pub const HEADER: usize = 12;

const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

/// Header flag bits (second 16-bit word).
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const OPCODE: u16 = 0x7800;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const Z: u16 = 0x0040;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
    pub const RCODE: u16 = 0x000f;
    /// The DO bit in the OPT record's flags.
    pub const DO: u16 = 0x8000;
}

/// A plain query, parsed in place.
#[derive(Debug, Clone, Copy)]
pub struct QueryView<'a> {
    pub id: u16,
    /// The query's header flags word.
    pub flags: u16,
    /// The question as sent (name, type, class), to echo back unchanged.
    pub question: &'a [u8],
    /// Length of the name inside `question`.
    pub name_len: usize,
    pub qtype: u16,
    /// `Some(udp payload size)` when the query has an OPT record.
    pub edns: Option<u16>,
    pub dnssec_ok: bool,
}

impl<'a> QueryView<'a> {
    /// Parses the common query shape, writing the lower-cased name into `lower`. `None` for
    /// anything else (including every malformed packet).
    pub fn parse(packet: &'a [u8], lower: &mut [u8; MAX_NAME]) -> Option<Self> {
        if packet.len() < HEADER + 5 {
            return None;
        }
        let word = |i: usize| u16::from_be_bytes([packet[i], packet[i + 1]]);
        let id = word(0);
        let fl = word(2);
        // A query, opcode QUERY, not truncated, Z and RCODE zero.
        if fl & (flags::QR | flags::OPCODE | flags::TC | flags::Z | flags::RCODE) != 0 {
            return None;
        }
        let (qd, an, ns, ar) = (word(4), word(6), word(8), word(10));
        if qd != 1 || an != 0 || ns != 0 || ar > 1 {
            return None;
        }
        let name_len = lower_name(&packet[HEADER..], lower)?;
        let qend = HEADER + name_len + 4;
        if packet.len() < qend {
            return None;
        }
        let qtype = word(HEADER + name_len);
        let qclass = word(HEADER + name_len + 2);
        // Class IN only; meta and transfer types (OPT, TSIG, AXFR, ANY, ...) take the full path.
        if qclass != CLASS_IN || qtype == 0 || qtype == TYPE_OPT || (128..=255).contains(&qtype) {
            return None;
        }
        let mut view =
            Self { id, flags: fl, question: &packet[HEADER..qend], name_len, qtype, edns: None, dnssec_ok: false };
        let rest = &packet[qend..];
        if ar == 0 {
            return rest.is_empty().then_some(view);
        }
        // The OPT record: root owner, type 41, class = payload size, TTL = ext-rcode|version|flags.
        if rest.len() < 11 || rest[0] != 0 || u16::from_be_bytes([rest[1], rest[2]]) != TYPE_OPT {
            return None;
        }
        let payload = u16::from_be_bytes([rest[3], rest[4]]);
        let (ext_rcode, version) = (rest[5], rest[6]);
        let opt_flags = u16::from_be_bytes([rest[7], rest[8]]);
        let rdlen = usize::from(u16::from_be_bytes([rest[9], rest[10]]));
        if ext_rcode != 0 || version != 0 || rest.len() != 11 + rdlen {
            return None;
        }
        // Options (cookies, padding, ...) are ignored, as RFC 6891 §6.1.2 allows; check they parse.
        let mut opts = &rest[11..];
        while !opts.is_empty() {
            if opts.len() < 4 {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([opts[2], opts[3]]));
            opts = opts.get(4 + len..)?;
        }
        view.edns = Some(payload);
        view.dnssec_ok = opt_flags & flags::DO != 0;
        Some(view)
    }

    /// The lower-cased name written by [`QueryView::parse`].
    pub fn lower_name<'b>(&self, lower: &'b [u8; MAX_NAME]) -> &'b [u8] {
        &lower[..self.name_len]
    }

    pub fn checking_disabled(&self) -> bool {
        self.flags & flags::CD != 0
    }

    pub fn authentic_data(&self) -> bool {
        self.flags & flags::AD != 0
    }

    /// The largest UDP response this client takes (RFC 6891 §6.2.5: 512 without EDNS, and never
    /// less than 512).
    pub fn udp_limit(&self, ours: u16) -> usize {
        match self.edns {
            None => 512,
            Some(p) => usize::from(p.min(ours).max(512)),
        }
    }
}

/// Copies an uncompressed name from the start of `buf` into `out`, lower-cased; returns its length
/// on the wire (including the root label). `None` for pointers, bad labels or over-long names.
pub fn lower_name(buf: &[u8], out: &mut [u8; MAX_NAME]) -> Option<usize> {
    let mut i = 0;
    loop {
        let len = usize::from(*buf.get(i)?);
        if len == 0 {
            *out.get_mut(i)? = 0;
            return Some(i + 1);
        }
        if len > 63 || i + 1 + len >= MAX_NAME {
            return None;
        }
        let label = buf.get(i + 1..i + 1 + len)?;
        out[i] = len as u8;
        for (o, b) in out[i + 1..i + 1 + len].iter_mut().zip(label) {
            *o = b.to_ascii_lowercase();
        }
        i += 1 + len;
    }
}

/// Writes `name` into `out` as a lower-case wire name (no compression), without allocating.
/// Returns the length, or `None` if it does not fit (it always does for a valid name).
pub fn encode_lower(name: &hickory_proto::rr::Name, out: &mut [u8; MAX_NAME]) -> Option<usize> {
    let mut n = 0;
    for label in name.iter() {
        let end = n + 1 + label.len();
        if label.len() > 63 || end >= MAX_NAME {
            return None;
        }
        out[n] = label.len() as u8;
        for (o, b) in out[n + 1..end].iter_mut().zip(label) {
            *o = b.to_ascii_lowercase();
        }
        n = end;
    }
    out[n] = 0;
    Some(n + 1)
}

/// Offsets of the label boundaries of a wire name, longest suffix first (the name itself), the
/// root last.
pub fn suffixes(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let len = usize::from(*name.get(i)?);
        let s = &name[i..];
        if len == 0 {
            done = true;
        }
        i += 1 + len;
        Some(s)
    })
}

/// Number of labels of a wire name, not counting the root.
pub fn label_count(name: &[u8]) -> usize {
    suffixes(name).count().saturating_sub(1)
}

/// Whether `name` is `zone` or below it (whole labels). Both lower-case wire names.
pub fn is_within(name: &[u8], zone: &[u8]) -> bool {
    suffixes(name).any(|s| s == zone)
}

/// Skips a (possibly compressed) name at `i`; returns the offset after it.
fn skip_name(msg: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let b = *msg.get(i)?;
        match b & 0xc0 {
            0x00 if b == 0 => return Some(i + 1),
            0x00 => i += 1 + usize::from(b),
            0xc0 => {
                msg.get(i + 1)?;
                return Some(i + 2);
            }
            _ => return None,
        }
    }
}

/// Offsets of the TTL field of every resource record in a complete message (OPT excluded), or
/// `None` if the message does not parse.
pub fn ttl_offsets(msg: &[u8]) -> Option<Vec<u16>> {
    if msg.len() < HEADER {
        return None;
    }
    let word = |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?])) };
    let qd = word(4)?;
    let records = usize::from(word(6)?) + usize::from(word(8)?) + usize::from(word(10)?);
    let mut i = HEADER;
    for _ in 0..qd {
        i = skip_name(msg, i)? + 4;
    }
    let mut out = Vec::with_capacity(records);
    for _ in 0..records {
        i = skip_name(msg, i)?;
        let rtype = word(i)?;
        let rdlen = usize::from(word(i + 8)?);
        if rtype != TYPE_OPT {
            out.push(u16::try_from(i + 4).ok()?);
        }
        i += 10 + rdlen;
        if i > msg.len() {
            return None;
        }
    }
    (i == msg.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};
    use std::str::FromStr;

    fn query(name: &str, qtype: RecordType, edns: Option<bool>) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
        if let Some(dnssec_ok) = edns {
            let mut e = Edns::new();
            e.set_max_payload(1400);
            e.set_dnssec_ok(dnssec_ok);
            m.edns = Some(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn parses_plain_and_edns_queries() {
        let mut lower = [0u8; MAX_NAME];
        let mut p = query("host1.corp.example.", RecordType::AAAA, None);
        p[13] = b'H';
        p[19] = b'C';
        let v = QueryView::parse(&p, &mut lower).unwrap();
        assert_eq!(v.id, 0x1234);
        assert_eq!(v.qtype, 28);
        assert_eq!(v.lower_name(&lower), b"\x05host1\x04corp\x07example\x00");
        assert_eq!(&v.question[1..7], b"Host1\x04", "the question is kept as sent");
        assert_eq!(&v.question[7..11], b"Corp");
        assert_eq!(v.question.len(), 20 + 4);
        assert_eq!(v.edns, None);
        assert_eq!(v.udp_limit(1232), 512);

        let p = query("a.b.", RecordType::A, Some(true));
        let v = QueryView::parse(&p, &mut lower).unwrap();
        assert_eq!(v.edns, Some(1400));
        assert!(v.dnssec_ok);
        assert_eq!(v.udp_limit(1232), 1232);
    }

    #[test]
    fn rejects_everything_unusual() {
        let mut lower = [0u8; MAX_NAME];
        let good = query("a.b.", RecordType::A, None);
        assert!(QueryView::parse(&good, &mut lower).is_some());
        // A response, a truncated query, trailing bytes, two questions, class CH, AXFR, ANY.
        let mut resp = good.clone();
        resp[2] |= 0x80;
        let mut tc = good.clone();
        tc[2] |= 0x02;
        let mut trailing = good.clone();
        trailing.push(0);
        let mut two = good.clone();
        two[5] = 2;
        let mut chaos = good.clone();
        let n = chaos.len();
        chaos[n - 1] = 3;
        for bad in
            [resp, tc, trailing, two, chaos, query("a.b.", RecordType::AXFR, None), query("a.", RecordType::ANY, None)]
        {
            assert!(QueryView::parse(&bad, &mut lower).is_none(), "{bad:?}");
        }
        // A compression pointer in the question, a truncated packet, an over-long label.
        let mut ptr = good[..12].to_vec();
        ptr.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert!(QueryView::parse(&ptr, &mut lower).is_none());
        assert!(QueryView::parse(&good[..good.len() - 1], &mut lower).is_none());
        let mut long = good[..12].to_vec();
        long.push(64);
        long.extend_from_slice(&[b'a'; 64]);
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(QueryView::parse(&long, &mut lower).is_none());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut lower = [0u8; MAX_NAME];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..600usize {
            let mut p = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                p.push(seed as u8);
            }
            if len > 12 {
                p[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, (len % 2) as u8]);
                p[2] = 0;
                p[3] = 0;
            }
            let _ = QueryView::parse(&p, &mut lower);
            let _ = ttl_offsets(&p);
        }
    }

    #[test]
    fn suffix_helpers() {
        let n = b"\x01a\x04corp\x07example\x00";
        let s: Vec<&[u8]> = suffixes(n).collect();
        assert_eq!(s.len(), 4);
        assert_eq!(s[1], b"\x04corp\x07example\x00");
        assert_eq!(s[3], b"\x00");
        assert_eq!(label_count(n), 3);
        assert!(is_within(n, b"\x04corp\x07example\x00"));
        assert!(!is_within(b"\x09othercorp\x07example\x00", b"\x04corp\x07example\x00"));
    }

    #[test]
    fn finds_every_ttl() {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        let name = Name::from_str("x.corp.example.").unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        for (i, ttl) in [(1u8, 300u32), (2, 77)] {
            m.add_answer(hickory_proto::rr::Record::from_rdata(
                name.clone(),
                ttl,
                hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(10, 0, 0, i)),
            ));
        }
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.edns = Some(e);
        let wire = m.to_vec().unwrap();
        let offs = ttl_offsets(&wire).unwrap();
        assert_eq!(offs.len(), 2, "OPT is not a TTL");
        let ttls: Vec<u32> =
            offs.iter().map(|&o| u32::from_be_bytes(wire[o as usize..o as usize + 4].try_into().unwrap())).collect();
        assert_eq!(ttls, vec![300, 77]);
        assert!(ttl_offsets(&wire[..wire.len() - 1]).is_none());
    }
}

#[cfg(test)]
mod encode_tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn encode_lower_matches_the_lower_case_wire_form() {
        let mut buf = [0u8; MAX_NAME];
        let name = hickory_proto::rr::Name::from_str("WWW.Corp.Example.").unwrap();
        let n = encode_lower(&name, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"\x03www\x04corp\x07example\x00");
        let n = encode_lower(&hickory_proto::rr::Name::root(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"\x00");
    }
}
