//! The control protocol: one JSON request per line, one JSON reply per line.
//!
//! Requests (the `cmd` field names the command; see [`Request`]):
//!
//! | request | reply `result` |
//! |---|---|
//! | `{"cmd":"status"}` | [`Status`]: links, domains, anchors, counters, the default upstream |
//! | `{"cmd":"link-up","link":{…}}` (a [`LinkSpec`]) | [`LinkUpResult`] |
//! | `{"cmd":"link-down","id":"…"}` | [`LinkDownResult`] |
//! | `{"cmd":"query","name":"…","qtype":"A"}` | [`QueryResult`]: the answer and the path it took |
//! | `{"cmd":"flush"}` or `{"cmd":"flush","domain":"…"}` | [`FlushResult`] |
//! | `{"cmd":"watch"}` | `"watching"`, then one [`super::events::Event`] per line until closed |
//!
//! `status`, `query` and `watch` only read; `link-up`, `link-down` and `flush` change state and
//! need full access (root, the daemon's user, `control_group`), not just `watch_group`'s.
//!
//! Replies are `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`. Unknown commands and unknown
//! fields are errors. There is deliberately no command that touches the trust-anchor whitelist:
//! only a human edits that file (RFC 8598 §6).
//!
//! These types are the wire format and belong to the control plane; the link itself is the state
//! module's documented [`LinkSpec`], and anchors and refusals its [`AnchorView`] and [`Refusal`].

use serde::{Deserialize, Serialize};

use crate::state::LinkSpec;
use crate::state::table::{AnchorView, Refusal};

/// Longest request line accepted, newline included.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request from a hook or the CLI.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    LinkUp {
        link: LinkSpec,
    },
    LinkDown {
        id: String,
    },
    /// A struct variant (not a unit one) so that `deny_unknown_fields` applies to it too.
    Status {},
    /// Resolve a name as a client would and say how it was answered.
    Query {
        name: String,
        qtype: String,
    },
    /// Drop cached answers for a domain and below, or all of them.
    Flush {
        #[serde(default)]
        domain: Option<crate::domain::DomainName>,
    },
    /// Keep the connection open and stream events, one JSON object per line (see
    /// [`super::events`]): first `{"ok":true,"result":"watching"}`, then the replay, then live.
    Watch {},
}

impl Request {
    /// True for requests that change something (links, the cache): they need full access, not
    /// just `watch_group`'s read access.
    pub fn changes_state(&self) -> bool {
        matches!(self, Request::LinkUp { .. } | Request::LinkDown { .. } | Request::Flush { .. })
    }
}

/// What `splitdns query` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueryResult {
    pub name: String,
    pub qtype: String,
    pub rcode: String,
    pub answers: Vec<String>,
    /// `the default upstream` or `link "vpn0"`.
    pub route: String,
    pub split_domain: Option<String>,
    pub dnssec: Dnssec,
    pub validated_zone: Option<String>,
    pub cached: bool,
    /// The RFC 8914 extended error, for failures.
    pub error: Option<String>,
}

/// How an answer stands with DNSSEC (serialised as `secure`, `insecure`, `bogus or unverifiable`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Dnssec {
    /// Validated under an anchored zone (clients get AD).
    #[serde(rename = "secure")]
    Secure,
    /// Not validated: no anchor covers the name, or a proven insecure delegation.
    #[serde(rename = "insecure")]
    Insecure,
    /// Under an anchor, and it failed to validate (or the anchor is not verified): SERVFAIL.
    #[serde(rename = "bogus or unverifiable")]
    Bogus,
}

/// What `splitdns flush` did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FlushResult {
    pub domain: Option<String>,
    pub flushed: usize,
}

/// A reply line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

impl Reply {
    pub fn ok(result: impl Serialize) -> Self {
        match serde_json::to_value(result) {
            Ok(v) => Self { ok: true, error: None, result: Some(v) },
            Err(e) => Self::err(format!("internal error: cannot encode the reply: {e}")),
        }
    }

    pub fn err(message: impl Into<String>) -> Self {
        Self { ok: false, error: Some(message.into()), result: None }
    }
}

/// What `link up` did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkUpResult {
    pub id: String,
    /// Split domains now routed to this link.
    pub accepted: Vec<String>,
    pub refused: Vec<Refusal>,
    pub anchors: Vec<AnchorView>,
    /// Ids of links this one replaced (same id or same profile).
    pub replaced: Vec<String>,
    pub default_route: bool,
    /// Problems that did not stop the change (e.g. the state file could not be written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What `link down` did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkDownResult {
    pub id: String,
    /// False when no link had that id (not an error: down events may repeat).
    pub found: bool,
    pub domains_removed: Vec<String>,
    pub anchors_dropped: usize,
    pub cache_entries_flushed: usize,
    pub queries_abandoned: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// How a server is asked now.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Transport {
    /// UDP, TCP on truncation or when UDP stays silent.
    #[serde(rename = "udp")]
    Udp,
    /// TCP first for a while: the server answered only over TCP lately.
    #[serde(rename = "tcp (udp unanswered)")]
    TcpFirst,
    /// TCP only (`tcp://`).
    #[serde(rename = "tcp")]
    Tcp,
    /// DNS over TLS only, the certificate checked (`tls://`, or `default_upstream_tls = "strict"`).
    #[serde(rename = "tls")]
    Tls,
    /// Opportunistic TLS on port 853: encrypted, certificate not checked.
    #[serde(rename = "tls (opportunistic)")]
    TlsOpportunistic,
    /// Opportunistic TLS failed lately (no TLS on port 853): clear text for a while.
    #[serde(rename = "udp (tls unavailable)")]
    UdpTlsUnavailable,
}

/// One upstream server as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerStatus {
    pub addr: String,
    pub transport: Transport,
    /// TLS: the name the certificate is checked against (the address, when no name was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_name: Option<String>,
    pub answers_udp: u64,
    /// Answers over a stream: TCP or TLS.
    pub answers_tcp: u64,
    pub failures: u64,
    /// Stream connections (TCP or TLS) opened so far; one is kept open while queries flow.
    #[serde(default)]
    pub connections: u64,
    /// TLS handshakes that resumed an earlier session.
    #[serde(default)]
    pub tls_resumed: u64,
}

/// Counters of one route.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RouteCounters {
    pub queries: u64,
    pub cache_hits: u64,
    pub forwards: u64,
    pub failures: u64,
    pub abandoned: u64,
    /// Queries waiting on this route's servers now.
    #[serde(default)]
    pub in_flight: u64,
    /// Queries refused at once because the route's (or all links') budget was full.
    #[serde(default)]
    pub shed: u64,
}

/// One link in `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkStatus {
    pub id: String,
    pub profile: Option<String>,
    pub up_since: u64,
    pub servers: Vec<ServerStatus>,
    pub interface: Option<String>,
    pub source: Option<String>,
    pub full_tunnel: bool,
    pub default_route: bool,
    /// Split domains routed to this link.
    pub domains: Vec<String>,
    pub refused: Vec<Refusal>,
    pub anchors: Vec<AnchorView>,
    /// Anchored zones validated on this link.
    pub trust: Vec<TrustStatus>,
    pub counters: RouteCounters,
}

/// Where an anchored zone stands (serialised as `verifying`, `verified`, `failed`, `insecure`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ValidationState {
    /// The DNSKEY set is being fetched and verified.
    Verifying,
    /// The key set is verified: answers are validated with it.
    Verified,
    /// The key set could not be verified: the zone fails closed.
    Failed,
    /// A nested split domain proven to be an insecure delegation of the island around it.
    Insecure,
}

/// One anchored zone in `status`: the DS it came from, the keys it trusts, when they are checked again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrustStatus {
    pub zone: String,
    pub ds: Vec<String>,
    pub state: ValidationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The trusted DNSKEYs, e.g. `KSK 5051 alg 13`.
    pub keys: Vec<String>,
    /// Key tags whose signature over the DNSKEY set matched a DS.
    pub signed_by: Vec<u16>,
    pub verified_at: Option<u64>,
    /// When the key set is fetched and verified again (Unix time).
    pub next_check: Option<u64>,
    pub secure: u64,
    /// Of the secure answers, those proven by the fast path (without hickory's validator).
    #[serde(default)]
    pub fast_secure: u64,
    /// Signature verifications answered from the signature cache, and those that ran the crypto.
    #[serde(default)]
    pub signature_cache_hits: u64,
    #[serde(default)]
    pub signature_checks: u64,
    pub insecure: u64,
    pub bogus: u64,
}

/// The default upstream in `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpstreamStatus {
    /// Where the servers come from: the config, resolv.conf, or a full-tunnel link.
    pub source: String,
    pub servers: Vec<ServerStatus>,
    pub counters: RouteCounters,
    /// `default_upstream_tls` in force: `off`, `opportunistic` or `strict`.
    #[serde(default)]
    pub tls: String,
    /// When the servers last changed (Unix time).
    #[serde(default)]
    pub changed_at: Option<u64>,
    /// Why the servers are not what the source says (it lists no usable server, so the last good
    /// ones stay in force), or that there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `system-dns` as the daemon sees it: enabled, and whether the system still points at the agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SystemDnsStatus {
    /// How the system was pointed at the agent (e.g. `plain /etc/resolv.conf`).
    pub mode: String,
    pub points_at_agent: bool,
    /// What changed since `system-dns enable` (drift), in words.
    pub warnings: Vec<String>,
}

/// Daemon-wide counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    pub queries: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub servfail: u64,
    pub refused: u64,
    pub formerr: u64,
}

/// The cache in `status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CacheStatus {
    pub entries: usize,
    pub bytes: u64,
    pub max_bytes: u64,
    /// Resolution failures remembered briefly (RFC 9520), not counted in `entries`.
    #[serde(default)]
    pub failures: usize,
}

/// Everything `splitdns status` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub listen: Vec<String>,
    pub state_file: String,
    /// Why the state file was not loaded at start, or why changes are not being saved (an unsafe
    /// state file or directory, a full disk), with what to do. `None`: all is well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file_problem: Option<String>,
    pub default_upstream: UpstreamStatus,
    pub links: Vec<LinkStatus>,
    pub counters: Counters,
    pub cache: CacheStatus,
    pub whitelist: WhitelistStatus,
    /// Trust anchors offered for domains that are not whitelisted: they change nothing until a
    /// person approves them (`splitdns whitelist review`).
    pub pending_reviews: Vec<PendingReview>,
    /// Links removed lately, newest first, and why (a down event, a vanished interface, …).
    #[serde(default)]
    pub removed_links: Vec<RemovedLink>,
    /// While `splitdns system-dns` is enabled: whether the system still points at the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_dns: Option<SystemDnsStatus>,
}

/// Why a link went away.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RemovalReason {
    /// A `link down` request (the VPN client's down hook, or a person).
    Request,
    /// Its tunnel interface disappeared (the VPN client died without a down hook).
    InterfaceGone,
    /// A reconnect of the same id or profile replaced it.
    Replaced,
    /// Restored from the state file at start, but its interface was gone or another device had
    /// taken its name.
    DroppedAtStart,
}

/// A link that was removed, for `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemovedLink {
    pub id: String,
    pub profile: Option<String>,
    /// When (Unix time).
    pub at: u64,
    pub reason: RemovalReason,
    /// The reason in words, e.g. `interface tun0 (index 7) disappeared`.
    pub detail: String,
    /// Split domains that were routed to it.
    pub domains: Vec<String>,
    pub cache_entries_flushed: usize,
    pub anchors_dropped: usize,
    pub queries_abandoned: u64,
}

/// The trust-anchor whitelist in `status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WhitelistStatus {
    pub path: String,
    /// `in force: N domain(s)`, `missing: …` or `error: …` (the last good list stays in force).
    pub state: String,
    pub entries: Vec<String>,
    /// Lines that are ignored and why.
    pub problems: Vec<String>,
}

/// An offered anchor waiting for a person's decision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingReview {
    pub link: String,
    pub profile: Option<String>,
    pub domain: String,
    pub ds: String,
    /// When it was first offered (Unix time).
    pub since: u64,
    /// Why it waits: not whitelisted, bound to another profile, inside another profile's island.
    #[serde(default)]
    pub reason: String,
}

/// The words of the status enums, as `status --json` and the table show them.
macro_rules! words {
    ($t:ty { $($v:ident => $w:literal),* $(,)? }) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self { $(Self::$v => $w),* })
            }
        }
    };
}

words!(Dnssec { Secure => "secure", Insecure => "insecure", Bogus => "bogus or unverifiable" });
words!(Transport {
    Udp => "udp",
    TcpFirst => "tcp (udp unanswered)",
    Tcp => "tcp",
    Tls => "tls",
    TlsOpportunistic => "tls (opportunistic)",
    UdpTlsUnavailable => "udp (tls unavailable)",
});
words!(ValidationState { Verifying => "verifying", Verified => "verified", Failed => "failed", Insecure => "insecure" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_display_as_they_serialise() {
        fn same<T: Serialize + std::fmt::Display>(v: T) {
            assert_eq!(serde_json::to_value(&v).unwrap(), v.to_string());
        }
        for v in [Dnssec::Secure, Dnssec::Insecure, Dnssec::Bogus] {
            same(v);
        }
        for v in [
            Transport::Udp,
            Transport::TcpFirst,
            Transport::Tcp,
            Transport::Tls,
            Transport::TlsOpportunistic,
            Transport::UdpTlsUnavailable,
        ] {
            same(v);
        }
        for v in
            [ValidationState::Verifying, ValidationState::Verified, ValidationState::Failed, ValidationState::Insecure]
        {
            same(v);
        }
    }

    #[test]
    fn parses_and_rejects() {
        let r: Request = serde_json::from_str(r#"{"cmd":"link-down","id":"x"}"#).unwrap();
        assert_eq!(r, Request::LinkDown { id: "x".into() });
        assert_eq!(serde_json::from_str::<Request>(r#"{"cmd":"status"}"#).unwrap(), Request::Status {});
        assert_eq!(serde_json::to_string(&Request::Status {}).unwrap(), r#"{"cmd":"status"}"#);
        for bad in [
            r#"{"cmd":"link-down"}"#,
            r#"{"cmd":"link-down","id":"x","extra":1}"#,
            r#"{"cmd":"status","verbose":true}"#,
            r#"{"cmd":"whitelist-add","domain":"corp.example"}"#,
            r#"{"cmd":"link-up","link":{"id":"a","servers":["nope"]}}"#,
            r#"[1,2]"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }
}
