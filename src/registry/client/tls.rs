//! TLS settings of every connection: the system's roots (or webpki's when
//! the system has none) plus the CA files named with `--ca-file`.
//!
//! Depends on nothing else in the client.

use std::path::PathBuf;
use std::sync::Arc;

use super::super::error::RegistryError;
use crate::error::{Error, Result};

/// The roots to trust: the system's, else webpki's, plus `ca_files`.
fn root_store(ca_files: &[PathBuf]) -> Result<rustls::RootCertStore> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut store = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        store.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    }
    for f in ca_files {
        let certs = CertificateDer::pem_file_iter(f)
            .map_err(|e| Error::Request(format!("CA file {}: {e}", f.display())))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Request(format!("CA file {}: {e}", f.display())))?;
        if certs.is_empty() {
            return Err(Error::Request(format!(
                "CA file {}: no PEM certificate in it",
                f.display()
            )));
        }
        for c in certs {
            store.add(c).map_err(|e| {
                Error::Request(format!(
                    "CA file {}: unusable certificate: {e}",
                    f.display()
                ))
            })?;
        }
    }
    Ok(store)
}

/// The rustls client configuration (ring, safe protocol versions, no
/// client certificate).
pub(super) fn client_config(ca_files: &[PathBuf]) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Config(format!("TLS configuration failed: {e}")))?
        .with_root_certificates(root_store(ca_files)?)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_problems_are_request_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for (f, want) in [(&empty, "no PEM certificate in it"), (&missing, "CA file")] {
            let e = client_config(std::slice::from_ref(f)).unwrap_err();
            assert!(e.is_request(), "{e}");
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
