//! HTTP client construction: rustls with the `ring` provider (no C toolchain
//! beyond ring's own assembly, no OpenSSL). Roots come from SSL_CERT_FILE or
//! /etc/ssl/certs/ca-certificates.crt when present, else the bundled webpki roots.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, pem::PemObject};

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the protocol configuration.
    #[error("TLS configuration failed: {0}")]
    Config(rustls::Error),
    /// reqwest refused the client configuration.
    #[error("cannot build HTTP client: {0}")]
    Client(reqwest::Error),
}

/// CA bundle used when SSL_CERT_FILE is not set.
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where the trust roots came from, for logging.
#[derive(Debug, Clone)]
pub struct RootSource {
    /// File path or "bundled webpki roots".
    pub description: String,
    /// Certificates loaded.
    pub count: usize,
}

/// The trust roots: SSL_CERT_FILE, the system bundle, or the bundled roots.
pub fn root_store() -> (rustls::RootCertStore, RootSource) {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(PathBuf::from(DEFAULT_CA_FILE));
    for path in candidates {
        if !path.is_file() {
            continue;
        }
        let mut store = rustls::RootCertStore::empty();
        match CertificateDer::pem_file_iter(&path) {
            Ok(iter) => {
                let certs: Vec<CertificateDer<'static>> = iter.filter_map(Result::ok).collect();
                let (added, _ignored) = store.add_parsable_certificates(certs);
                if added > 0 {
                    return (
                        store,
                        RootSource {
                            description: path.display().to_string(),
                            count: added,
                        },
                    );
                }
                tracing::warn!(path = %path.display(), "no usable certificates in CA file");
            }
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot read CA file"),
        }
    }
    let mut store = rustls::RootCertStore::empty();
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let count = store.len();
    (
        store,
        RootSource {
            description: "bundled webpki roots".into(),
            count,
        },
    )
}

/// The shared HTTP client (no automatic redirects; callers follow them).
pub fn http_client() -> Result<reqwest::Client, TlsError> {
    let (roots, source) = root_store();
    tracing::debug!(source = %source.description, count = source.count, "TLS trust roots");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("native-tools/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        // Service names under podman resolve reliably only when asked
        // again (resolve_retry).
        .dns_resolver(resolve_retry::RetryingResolver)
        .build()
        .map_err(TlsError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_or_loads_roots() {
        let (store, src) = root_store();
        assert!(!store.is_empty(), "{src:?}");
        assert_eq!(store.len(), src.count);
    }

    #[test]
    fn client_builds() {
        http_client().unwrap();
    }
}
