//! DNSSEC validation of split-domain answers from a VPN-supplied DS anchor (an island of trust).
//!
//! A [`ZoneTrust`] owns one anchored zone of one link: it fetches the zone's DNSKEY RRset from the
//! link's servers, has [`crate::trust::anchors::verify`] check it against the DS records, and keeps
//! the resulting key set as hickory trust anchors. Answers under the zone are fetched from the link
//! (DO and CD set, so the servers hand over signatures and we do the judging) and run through
//! hickory's `DnssecDnsHandle`, which asks for keys and proofs through the same link. The verified
//! DNSKEY RRset is served to the validator from memory, so a validation costs no extra round trip.
//!
//! Key rollover: the key set is fetched and verified again when its TTL runs out (in the background,
//! the old set stays in force meanwhile) and at once when an answer fails to validate; a new set is
//! swapped in atomically and the answer validated again, so a rolled ZSK does not turn the zone into
//! SERVFAIL for good. A key set that cannot be verified makes its zone fail closed.
//!
//! Fast path: before hickory's validator runs, [`super::fastval::prove_positive`] tries to prove an
//! ordinary positive answer (signed RRset, CNAME chain in the zone, wildcard with its NSEC3 proof)
//! itself, reusing earlier signature verifications from the key set's [`SigCache`]. It can only say
//! "secure"; on any doubt the answer goes through hickory as before, which alone decides bogus,
//! insecure and negative answers.
//!
//! Limits (KeyTrap, CVE-2023-50387): hickory tries at most 8 signatures per RRset and 2 keys per key
//! tag; key-set verification has its own caps; every validation runs under the query's deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::future::{BoxFuture, Shared};
use futures_util::{FutureExt, StreamExt};
use hickory_net::dnssec::DnssecDnsHandle;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::{DnsError, DnsHandle, NetError};
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::dnssec::{Proof, TrustAnchors};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType, SerialNumber};
use tracing::{info, warn};

use super::ede;
use super::fastval::{self, SigCache};
use super::route::Route;
use super::upstream::{QueryFlags, UpstreamError};
use crate::clock::{Stamp, unix_now};
use crate::domain::DomainName;
use crate::trust::DsAnchor;
use crate::trust::anchors::{self, VerifiedKeys};

/// Least time between two verifications triggered by failing answers.
const REVERIFY_INTERVAL: Duration = Duration::from_secs(2);

/// Where one anchored zone stands.
pub enum TrustState {
    /// Verification has not finished yet.
    Pending,
    /// The key set is verified and in force.
    Verified {
        keys: Arc<VerifiedKeys>,
        anchors: Arc<TrustAnchors>,
        verified_at: u64,
        recheck_at: Stamp,
        recheck_unix: u64,
        /// Signature verifications that succeeded under this key set (the fast path's cache);
        /// kept across re-verifications of the same set, new whenever the set changes.
        sigs: Arc<SigCache>,
        /// For a nested split domain inside another link's island: how its keys were reached.
        via: Option<String>,
    },
    /// A nested split domain the enclosing island proves to be an insecure delegation: its
    /// answers are served unvalidated (no AD), not failed.
    Insecure { reason: String, at: u64 },
    /// The key set could not be verified: the zone fails closed.
    Failed { reason: String, at: u64 },
}

impl TrustState {
    /// The phase `status` and the event stream name.
    fn phase(&self) -> TrustPhase {
        match self {
            TrustState::Pending => TrustPhase::Verifying,
            TrustState::Verified { .. } => TrustPhase::Verified,
            TrustState::Failed { .. } => TrustPhase::Failed,
            TrustState::Insecure { .. } => TrustPhase::Insecure,
        }
    }
}

/// What the enclosing island says about a nested split domain (see [`ZoneTrust::derive`]).
enum Derived {
    /// A secure delegation: the child's keys are trusted through these DS records.
    Ds(Vec<DsAnchor>),
    /// Not delegated: its names are the enclosing zone's, validated with that zone's keys.
    Parent(Arc<TrustState>),
    /// A proven insecure delegation.
    Insecure(String),
    /// Nothing could be proven (the reason; whether it may pass, e.g. a timeout).
    Failed(String, bool),
}

/// Validation counters of one zone.
#[derive(Debug, Default)]
struct TrustCounters {
    secure: AtomicU64,
    insecure: AtomicU64,
    bogus: AtomicU64,
    verifications: AtomicU64,
    /// Answers proven secure by the fast path ([`fastval`]); also counted in `secure`.
    fast_secure: AtomicU64,
}

/// Where an anchored zone stands, in short (what `status` shows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustPhase {
    Verifying,
    Verified,
    Failed,
    Insecure,
}

/// One anchored zone at one moment: its state, keys and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustReport {
    pub zone: DomainName,
    pub ds: Vec<DsAnchor>,
    pub phase: TrustPhase,
    /// Why it failed or is insecure, or (a nested domain) how its keys were reached.
    pub reason: Option<String>,
    /// The trusted DNSKEYs, e.g. `KSK 5051 alg 13`.
    pub keys: Vec<String>,
    /// Key tags whose signature over the DNSKEY set matched a DS.
    pub signed_by: Vec<u16>,
    /// When verified, failed or found insecure (Unix time).
    pub since: Option<u64>,
    /// When the key set is fetched and verified again (Unix time).
    pub next_check: Option<u64>,
    pub secure: u64,
    pub fast_secure: u64,
    pub signature_cache_hits: u64,
    pub signature_checks: u64,
    pub insecure: u64,
    pub bogus: u64,
}

/// The result of a validated lookup.
#[derive(Debug)]
pub struct Validated {
    pub message: Message,
    pub secure: bool,
}

/// Why a validated lookup gave no answer.
#[derive(Debug, Clone)]
pub enum ValidationError {
    /// The link's servers did not answer.
    Upstream(UpstreamError),
    /// The answer is bogus: (RFC 8914 code, reason).
    Bogus(u16, String),
    /// The zone's key set could not be verified.
    Untrusted(String),
}

/// Called with the zone's report when its phase changes.
pub type Observer = Arc<dyn Fn(&TrustReport) + Send + Sync>;

/// One anchored zone of one link.
pub struct ZoneTrust {
    pub zone: Name,
    pub lower: LowerName,
    pub domain: DomainName,
    pub anchors: Vec<DsAnchor>,
    /// For a nested split domain of this link inside another link's anchored zone: that zone's
    /// trust. The chain of trust runs through it (RFC 8598 §6 islands belong to their anchor).
    pub parent: Option<Arc<ZoneTrust>>,
    route: Arc<Route>,
    /// Told about each change of phase (verified, failed, insecure): the daemon's event stream.
    observer: Option<Observer>,
    state: ArcSwap<TrustState>,
    refresh: Mutex<Option<Shared<BoxFuture<'static, ()>>>>,
    last_forced: Mutex<Option<Stamp>>,
    counters: TrustCounters,
}

impl std::fmt::Debug for ZoneTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneTrust").field("zone", &self.zone).field("route", &self.route.id).finish()
    }
}

impl ZoneTrust {
    /// Creates the zone's trust and starts verifying its key set in the background.
    pub fn start(
        domain: DomainName,
        anchors: Vec<DsAnchor>,
        route: Arc<Route>,
        observer: Option<Observer>,
    ) -> Arc<Self> {
        Self::create(domain, anchors, None, route, observer)
    }

    /// The trust of a nested split domain `domain`, served by `route`, that lies inside the island
    /// `parent` of another link. Every name under an anchored zone is validated from that zone's
    /// keys, whichever link serves it: the DS of `domain` is asked of `parent`'s link and validated
    /// there. A DS makes a secure delegation (the child's keys, verified through it); a proof of a
    /// delegation without DS makes the domain insecure; anything else means the names belong to
    /// `parent`'s zone and are validated with its keys, so an unsigned forgery is bogus.
    pub fn derive(
        domain: DomainName,
        route: Arc<Route>,
        parent: Arc<ZoneTrust>,
        observer: Option<Observer>,
    ) -> Arc<Self> {
        Self::create(domain, vec![], Some(parent), route, observer)
    }

    fn create(
        domain: DomainName,
        anchors: Vec<DsAnchor>,
        parent: Option<Arc<ZoneTrust>>,
        route: Arc<Route>,
        observer: Option<Observer>,
    ) -> Arc<Self> {
        let zone = Name::from(domain.to_lower_name());
        let trust = Arc::new(Self {
            lower: LowerName::new(&zone),
            zone,
            domain,
            anchors,
            parent,
            route,
            observer,
            state: ArcSwap::from_pointee(TrustState::Pending),
            refresh: Mutex::new(None),
            last_forced: Mutex::new(None),
            counters: TrustCounters::default(),
        });
        // Create the shared verification now, so a query arriving first joins it instead of
        // starting a second one.
        tokio::spawn(trust.refresh());
        trust
    }

    pub fn route_id(&self) -> u64 {
        self.route.id
    }

    /// The zone's state, keys and counters, read once.
    pub fn report(&self) -> TrustReport {
        let st = self.state();
        let (reason, keys, signed_by, since, next_check, signature_cache_hits, signature_checks) = match &*st {
            TrustState::Pending => (None, vec![], vec![], None, None, 0, 0),
            TrustState::Verified { keys, verified_at, recheck_unix, via, sigs, .. } => (
                via.clone(),
                anchors::key_summary(&keys.keys),
                keys.matched_tags.clone(),
                Some(*verified_at),
                Some(*recheck_unix),
                sigs.hits(),
                sigs.misses(),
            ),
            TrustState::Failed { reason, at } | TrustState::Insecure { reason, at } => {
                (Some(reason.clone()), vec![], vec![], Some(*at), None, 0, 0)
            }
        };
        let c = &self.counters;
        let n = |x: &AtomicU64| x.load(Ordering::Relaxed);
        TrustReport {
            zone: self.domain.clone(),
            ds: self.anchors.clone(),
            phase: st.phase(),
            reason,
            keys,
            signed_by,
            since,
            next_check,
            secure: n(&c.secure),
            fast_secure: n(&c.fast_secure),
            signature_cache_hits,
            signature_checks,
            insecure: n(&c.insecure),
            bogus: n(&c.bogus),
        }
    }

    /// Stores a new state; tells the observer when the phase changed (verified, failed, …).
    fn set_state(&self, state: TrustState) {
        let before = self.state.load().phase();
        let after = state.phase();
        self.state.store(Arc::new(state));
        if before != after
            && let Some(observe) = &self.observer
        {
            observe(&self.report());
        }
    }

    /// The current state (never waits).
    pub fn state(&self) -> Arc<TrustState> {
        self.state.load_full()
    }

    /// Waits until the first verification has finished.
    pub async fn settled(self: &Arc<Self>) -> Arc<TrustState> {
        if matches!(*self.state.load_full(), TrustState::Pending) {
            self.refresh().await;
        }
        self.state.load_full()
    }

    /// Fetches and verifies the key set once; concurrent callers share the work.
    pub fn refresh(self: &Arc<Self>) -> Shared<BoxFuture<'static, ()>> {
        let mut slot = self.refresh.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = slot.as_ref()
            && f.peek().is_none()
        {
            return f.clone();
        }
        let this = self.clone();
        let fut = async move { this.verify_now().await }.boxed().shared();
        *slot = Some(fut.clone());
        fut
    }

    /// What `parent` proves about this nested domain: its DS records, a delegation without DS, or
    /// that it is no delegation at all.
    async fn derive_from(&self, parent: &Arc<ZoneTrust>) -> Derived {
        if !matches!(*parent.settled().await, TrustState::Verified { .. }) {
            return Derived::Failed(format!("the trust anchor of {} above it is not verified", parent.domain), false);
        }
        let query = Query::query(self.zone.clone(), RecordType::DS);
        // Asked of the enclosing island's link and judged with its keys; nothing is scrubbed, the
        // DS of the child is the parent zone's record.
        match parent.lookup(&query, &|_: &mut Message| {}).await {
            Ok(v) if v.secure => {
                let ds: Vec<DsAnchor> = v
                    .message
                    .answers
                    .iter()
                    .filter(|r| r.name == self.zone)
                    .filter_map(|r| match &r.data {
                        RData::DNSSEC(DNSSECRData::DS(ds)) => DsAnchor::new(
                            self.domain.clone(),
                            ds.key_tag(),
                            u8::from(ds.algorithm()),
                            u8::from(ds.digest_type()),
                            ds.digest().to_vec(),
                        )
                        .ok(),
                        _ => None,
                    })
                    .collect();
                if !ds.is_empty() {
                    return Derived::Ds(ds);
                }
                if insecure_delegation(&v.message, &self.zone) {
                    return Derived::Insecure(format!(
                        "{} delegates {} without a DS record (proven): its answers are not validated",
                        parent.domain, self.domain
                    ));
                }
                Derived::Parent(parent.state())
            }
            Ok(_) => Derived::Failed(
                format!("the DS answer for {} from {} is not secure", self.domain, parent.domain),
                false,
            ),
            Err(ValidationError::Upstream(e)) => {
                Derived::Failed(format!("cannot ask {}'s link for the DS of {}: {e}", parent.domain, self.domain), true)
            }
            Err(ValidationError::Bogus(_, t) | ValidationError::Untrusted(t)) => Derived::Failed(
                format!("the DS of {} from {} does not validate: {t}", self.domain, parent.domain),
                false,
            ),
        }
    }

    async fn verify_now(&self) {
        self.counters.verifications.fetch_add(1, Ordering::Relaxed);
        let mut anchors = self.anchors.clone();
        let mut via = None;
        if let Some(parent) = &self.parent {
            let now = unix_now();
            match self.derive_from(parent).await {
                Derived::Ds(ds) => {
                    via = Some(format!("DS from {} (a secure delegation)", parent.domain));
                    anchors = ds;
                }
                Derived::Parent(state) => {
                    let TrustState::Verified { keys, anchors, recheck_at, recheck_unix, sigs, .. } = &*state else {
                        return self.fail(format!("the trust anchor of {} is not verified", parent.domain), false, now);
                    };
                    info!(zone = %self.zone, parent = %parent.domain, link = %self.route.describe(), "nested split domain: validated with its island's keys");
                    self.set_state(TrustState::Verified {
                        keys: keys.clone(),
                        anchors: anchors.clone(),
                        verified_at: now,
                        recheck_at: *recheck_at,
                        recheck_unix: *recheck_unix,
                        sigs: sigs.clone(),
                        via: Some(format!(
                            "not delegated in {}: its names are that zone's, validated with its keys",
                            parent.domain
                        )),
                    });
                    return;
                }
                Derived::Insecure(reason) => {
                    info!(zone = %self.zone, link = %self.route.describe(), %reason, "nested split domain is insecure");
                    self.set_state(TrustState::Insecure { reason, at: now });
                    return;
                }
                Derived::Failed(reason, transient) => return self.fail(reason, transient, now),
            }
        }
        let query = Query::query(self.zone.clone(), RecordType::DNSKEY);
        let fetched = self.route.ask(&query, QueryFlags { dnssec_ok: true, checking_disabled: true }).await;
        let now = unix_now();
        let result = match fetched {
            Ok(msg) => anchors::verify(&self.zone, &anchors, &msg, now as u32).map_err(|e| (e.to_string(), false)),
            Err(e) => Err((format!("cannot fetch the DNSKEY RRset of {}: {e}", self.zone), true)),
        };
        match result {
            Ok(keys) => {
                let mut ta = TrustAnchors::empty();
                for k in &keys.keys {
                    ta.insert_with_name(k.public_key(), self.lower.clone());
                }
                let (changed, sigs) = match &*self.state.load_full() {
                    TrustState::Verified { keys: old, sigs, .. } if old.keys == keys.keys => (false, sigs.clone()),
                    _ => (true, Arc::new(SigCache::new())),
                };
                if changed {
                    info!(
                        zone = %self.zone,
                        link = %self.route.describe(),
                        keys = ?anchors::key_summary(&keys.keys),
                        signed_by = ?keys.matched_tags,
                        recheck_s = keys.recheck_after.as_secs(),
                        "trust anchor verified: DNSKEY set in force"
                    );
                }
                self.set_state(TrustState::Verified {
                    recheck_at: Stamp::now() + keys.recheck_after,
                    recheck_unix: now + keys.recheck_after.as_secs(),
                    keys: Arc::new(keys),
                    anchors: Arc::new(ta),
                    verified_at: now,
                    sigs,
                    via,
                });
            }
            Err((reason, transient)) => self.fail(reason, transient, now),
        }
    }

    /// A verification failed. A network hiccup during a re-check keeps a verified set in force;
    /// anything else (a DS that no longer matches, bad signatures) withdraws it.
    fn fail(&self, reason: String, transient: bool, now: u64) {
        if transient && matches!(*self.state.load_full(), TrustState::Verified { .. } | TrustState::Insecure { .. }) {
            warn!(zone = %self.zone, %reason, "trust anchor re-check failed; keeping what was in force");
            return;
        }
        warn!(zone = %self.zone, link = %self.route.describe(), %reason, "trust anchor NOT verified: the zone fails closed");
        self.set_state(TrustState::Failed { reason, at: now });
    }

    /// Forces a re-verification after a failed validation, at most once per [`REVERIFY_INTERVAL`].
    /// Returns true when the key set changed.
    async fn reverify_after_failure(self: &Arc<Self>) -> bool {
        {
            let mut last = self.last_forced.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < REVERIFY_INTERVAL) {
                return false;
            }
            *last = Some(Stamp::now());
        }
        let before = self.state.load_full();
        self.refresh().await;
        let after = self.state.load_full();
        match (&*before, &*after) {
            (TrustState::Verified { keys: a, .. }, TrustState::Verified { keys: b, .. }) => a.keys != b.keys,
            (TrustState::Verified { .. }, _) => false,
            (_, TrustState::Verified { .. }) => true,
            _ => false,
        }
    }

    /// Looks `query` up through the link and validates the answer. `scrub` is applied to the raw
    /// answer first (records that belong to another route are removed before anything is judged).
    pub async fn lookup(
        self: &Arc<Self>,
        query: &Query,
        scrub: &(dyn Fn(&mut Message) + Send + Sync),
    ) -> Result<Validated, ValidationError> {
        let state = self.settled().await;
        let (keys, anchors, sigs) = match &*state {
            TrustState::Verified { keys, anchors, recheck_at, sigs, .. } => {
                if Stamp::now() >= *recheck_at {
                    // Stale: re-check in the background, keep serving with the verified set.
                    let t = self.clone();
                    tokio::spawn(async move { t.refresh().await });
                }
                (keys.clone(), anchors.clone(), sigs.clone())
            }
            TrustState::Failed { reason, .. } => return Err(self.untrusted(reason)),
            TrustState::Pending => return Err(self.untrusted("verification did not finish")),
            TrustState::Insecure { .. } => {
                // A proven insecure delegation: the data as the link gives it, never AD.
                let raw = self.fetch(query, scrub).await?;
                return self.count(Ok(Validated { message: raw, secure: false }));
            }
        };
        // The zone whose keys judge (`keys.zone`): this one, or the enclosing island's for a nested
        // domain that is not delegated.
        let raw = self.fetch(query, scrub).await?;
        if query.query_type() == RecordType::ANY && !raw.answers.is_empty() {
            // hickory's validator has no notion of ANY (RFC 8482 answers hold whatever RRsets the
            // server chose): each RRset at the name must verify on its own.
            return match fastval::prove_any(&keys.zone, &keys, &sigs, query, &raw, unix_now() as u32) {
                Some(message) => self.count(Ok(Validated { message, secure: true })),
                None => self.count(Err(bogus_reason(query, &raw, &keys))),
            };
        }
        if let Some(message) = fastval::prove_positive(&keys.zone, &keys, &sigs, query, &raw, unix_now() as u32) {
            self.counters.fast_secure.fetch_add(1, Ordering::Relaxed);
            return self.count(Ok(Validated { message, secure: true }));
        }
        match self.judge(query, &raw, keys, anchors).await {
            Err(ValidationError::Bogus(code, reason)) => {
                if self.reverify_after_failure().await
                    && let TrustState::Verified { keys, anchors, .. } = &*self.state.load_full()
                {
                    info!(zone = %self.zone, "key set changed; validating again");
                    return self.count(self.judge(query, &raw, keys.clone(), anchors.clone()).await);
                }
                self.count(Err(ValidationError::Bogus(code, reason)))
            }
            other => self.count(other),
        }
    }

    /// The link's raw answer to `query` (DO and CD set: we do the judging), scrubbed.
    async fn fetch(
        &self,
        query: &Query,
        scrub: &(dyn Fn(&mut Message) + Send + Sync),
    ) -> Result<Message, ValidationError> {
        let flags = QueryFlags { dnssec_ok: true, checking_disabled: true };
        let mut raw = self.route.ask(query, flags).await.map_err(ValidationError::Upstream)?;
        scrub(&mut raw);
        Ok(raw)
    }

    fn untrusted(&self, reason: &str) -> ValidationError {
        self.counters.bogus.fetch_add(1, Ordering::Relaxed);
        ValidationError::Untrusted(format!("the trust anchor for {} is not verified: {reason}", self.domain))
    }

    fn count(&self, r: Result<Validated, ValidationError>) -> Result<Validated, ValidationError> {
        let c = match &r {
            Ok(v) if v.secure => &self.counters.secure,
            Ok(_) => &self.counters.insecure,
            Err(ValidationError::Bogus(..)) => &self.counters.bogus,
            Err(_) => return r,
        };
        c.fetch_add(1, Ordering::Relaxed);
        r
    }

    /// Runs hickory's validator over an answer already fetched from the link.
    async fn judge(
        &self,
        query: &Query,
        raw: &Message,
        keys: Arc<VerifiedKeys>,
        anchors: Arc<TrustAnchors>,
    ) -> Result<Validated, ValidationError> {
        let handle = LinkHandle {
            route: self.route.clone(),
            keys: keys.clone(),
            primed: Arc::new(Mutex::new(Some((query.clone(), raw.clone())))),
        };
        let validator = DnssecDnsHandle::with_trust_anchor(handle, anchors).validation_cache_size(64);
        let mut options = DnsRequestOptions::default();
        options.edns_set_dnssec_ok = true;
        options.use_edns = true;
        let result = validator.lookup(query.clone(), options).next().await;
        match result {
            Some(Ok(resp)) => {
                let message = resp.into_message();
                classify(query, message, raw, &keys)
            }
            Some(Err(NetError::Dns(DnsError::Nsec { .. }))) => Err(denial_failure(raw)),
            Some(Err(NetError::Dns(DnsError::NoRecordsFound(_)))) => Err(denial_failure(raw)),
            Some(Err(e)) => Err(ValidationError::Bogus(ede::DNSSEC_BOGUS, format!("validation failed: {e}"))),
            None => Err(ValidationError::Bogus(ede::DNSSEC_BOGUS, "the validator gave no result".into())),
        }
    }
}

/// Decides secure / insecure / bogus from the validator's per-record proofs.
fn classify(query: &Query, message: Message, raw: &Message, keys: &VerifiedKeys) -> Result<Validated, ValidationError> {
    let data: Vec<&Record> = message.answers.iter().filter(|r| r.record_type() != RecordType::RRSIG).collect();
    if data.iter().any(|r| matches!(r.proof, Proof::Bogus | Proof::Indeterminate)) {
        return Err(bogus_reason(query, raw, keys));
    }
    let secure = if data.is_empty() {
        // A negative answer reaches us only with a valid denial, or a proven-insecure one.
        !message.authorities.is_empty() && !message.authorities.iter().all(|r| r.proof == Proof::Insecure)
    } else {
        data.iter().all(|r| r.proof == Proof::Secure)
    };
    if !secure && data.is_empty() && message.authorities.is_empty() {
        return Err(denial_failure(raw));
    }
    let mut message = message;
    message.metadata.response_code = raw.metadata.response_code;
    Ok(Validated { message, secure })
}

fn rrsigs_for<'a>(raw: &'a Message, name: &Name, covered: RecordType) -> Vec<&'a hickory_proto::dnssec::rdata::RRSIG> {
    raw.answers
        .iter()
        .chain(raw.authorities.iter())
        .filter(|r| r.name == *name)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s)) if s.input().type_covered == covered => Some(s),
            _ => None,
        })
        .collect()
}

/// Works out, for the RFC 8914 extended error, why a positive answer is bogus.
fn bogus_reason(query: &Query, raw: &Message, keys: &VerifiedKeys) -> ValidationError {
    let target = raw
        .answers
        .iter()
        .find(|r| r.record_type() != RecordType::RRSIG)
        .map(|r| (r.name.clone(), r.record_type()))
        .unwrap_or_else(|| (query.name().clone(), query.query_type()));
    let sigs = rrsigs_for(raw, &target.0, target.1);
    let what = format!("{} {}", target.0, target.1);
    if sigs.is_empty() {
        return ValidationError::Bogus(
            ede::RRSIGS_MISSING,
            format!("{what} is not signed, but its zone is (unsigned data in a signed zone)"),
        );
    }
    let now = SerialNumber::new(unix_now() as u32);
    if sigs.iter().all(|s| now > s.input().sig_expiration) {
        return ValidationError::Bogus(ede::SIGNATURE_EXPIRED, format!("the signature over {what} has expired"));
    }
    if sigs.iter().all(|s| now < s.input().sig_inception) {
        return ValidationError::Bogus(
            ede::SIGNATURE_NOT_YET_VALID,
            format!("the signature over {what} is not valid yet"),
        );
    }
    let trusted: Vec<u16> = keys.keys.iter().filter_map(|k| k.calculate_key_tag().ok()).collect();
    if !sigs.iter().any(|s| trusted.contains(&s.input().key_tag)) {
        let tags: Vec<u16> = sigs.iter().map(|s| s.input().key_tag).collect();
        return ValidationError::Bogus(
            ede::DNSKEY_MISSING,
            format!("{what} is signed by key tag(s) {tags:?}, none of which is in the trusted key set {trusted:?}"),
        );
    }
    ValidationError::Bogus(ede::DNSSEC_BOGUS, format!("the signature over {what} does not verify"))
}

/// True when `msg` (a validated negative answer to `DS zone`) proves that `zone` is a delegation
/// without DS: an NSEC at the name, or the NSEC3 matching its hash, whose type map has NS but
/// neither DS nor SOA. (An opt-out NSEC3 that only covers the name proves nothing here: fail
/// closed.)
fn insecure_delegation(msg: &Message, zone: &Name) -> bool {
    let delegation_without_ds = |types: &mut dyn Iterator<Item = RecordType>| {
        let types: Vec<RecordType> = types.collect();
        types.contains(&RecordType::NS) && !types.contains(&RecordType::DS) && !types.contains(&RecordType::SOA)
    };
    msg.authorities.iter().any(|r| match &r.data {
        RData::DNSSEC(DNSSECRData::NSEC(nsec)) => r.name == *zone && delegation_without_ds(&mut nsec.type_bit_maps()),
        RData::DNSSEC(DNSSECRData::NSEC3(n3)) => {
            let Some(label) = r.name.iter().next() else { return false };
            let Some(owner_hash) = fastval::base32hex_decode(label) else { return false };
            let hash = n3.hash_algorithm().hash(n3.salt(), zone, n3.iterations());
            let matches = hash.is_ok_and(|h| h.as_ref() == owner_hash.as_slice()) && r.name.base_name().zone_of(zone);
            matches && delegation_without_ds(&mut n3.type_bit_maps())
        }
        _ => false,
    })
}

fn denial_failure(raw: &Message) -> ValidationError {
    let has_denial = raw.authorities.iter().any(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3));
    if has_denial {
        ValidationError::Bogus(ede::DNSSEC_BOGUS, "the denial of existence (NSEC/NSEC3) does not validate".into())
    } else {
        ValidationError::Bogus(ede::NSEC_MISSING, "a negative answer came without NSEC/NSEC3 proof".into())
    }
}

/// The link as hickory's validator sees it: the first question is answered with the response we
/// already fetched, the anchored zone's DNSKEY RRset from memory, everything else from the link.
#[derive(Clone)]
struct LinkHandle {
    route: Arc<Route>,
    keys: Arc<VerifiedKeys>,
    primed: Arc<Mutex<Option<(Query, Message)>>>,
}

impl LinkHandle {
    async fn answer(self, query: Query) -> Result<DnsResponse, NetError> {
        let primed = {
            let mut slot = self.primed.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some((q, _)) if *q == query => slot.take().map(|(_, m)| m),
                _ => None,
            }
        };
        let message = match primed {
            Some(m) => m,
            None if query.query_type() == RecordType::DNSKEY && *query.name() == self.keys.zone => {
                let mut m = Message::new(0, MessageType::Response, OpCode::Query);
                m.add_query(query.clone());
                m.insert_answers(self.keys.records.clone());
                m
            }
            None => {
                let flags = QueryFlags { dnssec_ok: true, checking_disabled: true };
                self.route.ask(&query, flags).await.map_err(|e| NetError::Msg(format!("upstream: {e}")))?
            }
        };
        let response = DnsResponse::from_message(message).map_err(NetError::from)?;
        // Shape the result like hickory's own transports do: negatives become NoRecordsFound.
        DnsError::from_response(response).map_err(NetError::from)
    }
}

impl DnsHandle for LinkHandle {
    type Response = futures_util::stream::BoxStream<'static, Result<DnsResponse, NetError>>;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let Some(query) = request.queries.first().cloned() else {
            return futures_util::stream::once(async { Err(NetError::from("no query in request")) }).boxed();
        };
        futures_util::stream::once(self.clone().answer(query)).boxed()
    }
}

/// A map from anchored zone to its trust, for the snapshot.
pub type TrustMap = HashMap<LowerName, Arc<ZoneTrust>>;

/// Strips DNSSEC records a client did not ask for (no DO bit).
pub fn strip_dnssec(records: &[Record], qtype: RecordType) -> Vec<Record> {
    records.iter().filter(|r| super::cache::wanted(r, qtype, false)).cloned().collect()
}
