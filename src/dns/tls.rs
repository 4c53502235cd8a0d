//! Certificates for DNS over TLS upstreams (RFC 7858, RFC 8310): which CAs are trusted and how a
//! server's certificate is checked.
//!
//! One [`TlsContext`] serves the whole daemon, so every TLS connection shares one rustls client
//! configuration and with it one session cache: a reconnect to a server resumes its TLS session
//! (a shorter handshake, no certificate chain sent again).
//!
//! Two profiles:
//! - **strict** (RFC 8310 §5): the certificate must chain to a trusted CA and carry the name given
//!   after `#` (or the server's IP address). A failure is a failed server, never clear text.
//! - **opportunistic** (RFC 7858 §4.1, `default_upstream_tls = "opportunistic"`): encryption
//!   without authentication, against passive observers only, as systemd-resolved's
//!   `DNSOverTLS=opportunistic`. The certificate is not checked (signatures still are).
//!
//! The trusted CAs are the system trust store (read on first use, so a daemon that never speaks
//! TLS never reads it), or only those in `tls_ca_file` when that is set.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where trusted CAs come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// The system trust store (`/etc/ssl/certs`, `SSL_CERT_FILE`, `SSL_CERT_DIR`).
    System,
    /// Only the CAs in this PEM file (`tls_ca_file`).
    File(PathBuf),
}

/// The daemon's TLS client configurations, built once.
pub struct TlsContext {
    roots: Roots,
    provider: Arc<CryptoProvider>,
    /// Strict profile; `Err` says why no CA can be trusted (shown as the server's failure).
    strict: OnceLock<Result<Arc<ClientConfig>, String>>,
    opportunistic: OnceLock<Arc<ClientConfig>>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext").field("roots", &self.roots).finish_non_exhaustive()
    }
}

impl TlsContext {
    /// A context trusting `roots`. A `tls_ca_file` is read now, so a broken file stops the daemon
    /// at start with a message instead of failing every query later.
    pub fn new(roots: Roots) -> Result<Self, String> {
        let ctx = Self {
            roots,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            strict: OnceLock::new(),
            opportunistic: OnceLock::new(),
        };
        if let Roots::File(_) = &ctx.roots {
            ctx.strict_config()?;
        }
        Ok(ctx)
    }

    /// Trusts the system store.
    pub fn system() -> Self {
        Self::new(Roots::System).expect("the system store is read lazily")
    }

    /// One system-store context for the whole process, so its session cache is shared.
    pub fn shared_system() -> Arc<Self> {
        static SHARED: OnceLock<Arc<TlsContext>> = OnceLock::new();
        SHARED.get_or_init(|| Arc::new(Self::system())).clone()
    }

    /// The strict-profile configuration (certificate checked against the trusted CAs).
    pub fn strict_config(&self) -> Result<Arc<ClientConfig>, String> {
        self.strict
            .get_or_init(|| {
                let store = match &self.roots {
                    Roots::System => system_roots()?,
                    Roots::File(path) => file_roots(path)?,
                };
                let config = ClientConfig::builder_with_provider(self.provider.clone())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS setup failed: {e}"))?
                    .with_root_certificates(store)
                    .with_no_client_auth();
                Ok(Arc::new(config))
            })
            .clone()
    }

    /// The opportunistic-profile configuration: any certificate, correctly signed handshake.
    pub fn opportunistic_config(&self) -> Arc<ClientConfig> {
        self.opportunistic
            .get_or_init(|| {
                let verifier =
                    Arc::new(Unauthenticated { algorithms: self.provider.signature_verification_algorithms });
                let builder = ClientConfig::builder_with_provider(self.provider.clone())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions");
                let config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
                Arc::new(config)
            })
            .clone()
    }
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
        return Err(format!(
            "no trusted CA certificates in the system trust store{why}: install ca-certificates, \
             or set tls_ca_file in the config"
        ));
    }
    Ok(store)
}

fn file_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("tls_ca_file {shown}: cannot read it: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_ca_file {shown}: not a PEM certificate file: {e}"))?;
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "tls_ca_file {shown}: no usable CA certificate in it ({ignored} rejected); give a PEM file \
             with -----BEGIN CERTIFICATE----- blocks"
        ));
    }
    Ok(store)
}

/// The name a certificate is checked against: `name` if given, else the server's address.
pub(crate) fn server_name(name: Option<&str>, addr: std::net::IpAddr) -> Result<ServerName<'static>, String> {
    match name {
        Some(n) => ServerName::try_from(n.to_string()).map_err(|_| format!("{n:?} is not a certificate name")),
        None => Ok(ServerName::IpAddress(addr.into())),
    }
}

/// The opportunistic profile's verifier: accepts any certificate, still checks the handshake
/// signatures so the session keys belong to whoever holds the certificate's key.
#[derive(Debug)]
struct Unauthenticated {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_ca_file_is_refused_at_once_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = TlsContext::new(Roots::File(missing.clone())).unwrap_err();
        assert!(e.contains("cannot read") && e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TlsContext::new(Roots::File(empty)).unwrap_err();
        assert!(e.contains("no usable CA certificate"), "{e}");
    }

    #[test]
    fn names_and_addresses() {
        let ip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        assert!(matches!(server_name(Some("dot.test"), ip), Ok(ServerName::DnsName(_))));
        assert!(matches!(server_name(None, ip), Ok(ServerName::IpAddress(_))));
        assert!(server_name(Some("bad name"), ip).is_err());
    }
}
