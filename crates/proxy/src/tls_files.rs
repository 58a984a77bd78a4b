//! TLS material read from PEM files: the proxy listener's certificate, read again on SIGHUP
//! (a new handshake gets the certificate of the moment; connections already open keep theirs,
//! so a renewal drops nothing), and a route's client identity for mutual TLS to its
//! application.

use crate::config::TlsFiles;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, PoisonError, RwLock};
use tokio_rustls::TlsAcceptor;

/// The crypto provider every TLS configuration of the proxy uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key, read from `files` and checked to belong together.
fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let (certs, key) = chain_and_key(files)?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
        format!(
            "{} and {} do not work together: {e}",
            files.cert_path.display(),
            files.key_path.display()
        )
    })
}

/// The PEM certificate chain and private key of `files`.
pub(crate) fn chain_and_key(
    files: &TlsFiles,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let read = |path: &std::path::Path| std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let cert_pem = read(&files.cert_path)?;
    let key_pem = read(&files.key_path)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", files.cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", files.cert_path.display()));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("{}: {e}", files.key_path.display()))?
        .ok_or_else(|| format!("{} holds no private key", files.key_path.display()))?;
    Ok((certs, key))
}

/// The proxy listener's certificate, as its files held it when last read.
#[derive(Debug)]
pub(crate) struct ListenerCert {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ListenerCert {
    /// Reads `files`; an error says which file and why.
    pub(crate) fn load(files: &TlsFiles) -> Result<Arc<ListenerCert>, String> {
        Ok(Arc::new(ListenerCert {
            files: files.clone(),
            current: RwLock::new(Arc::new(certified_key(files)?)),
        }))
    }

    /// Reads the files again: `Ok(true)` when the certificate changed. A certificate that
    /// cannot be read, or whose key does not match, leaves the previous one in force.
    pub(crate) fn reload(&self) -> Result<bool, String> {
        let fresh = certified_key(&self.files)?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let changed = current.cert != fresh.cert;
        *current = Arc::new(fresh);
        Ok(changed)
    }

    /// Where the certificate is read from, for the reload's report.
    pub(crate) fn source(&self) -> String {
        format!(
            "{} and {}",
            self.files.cert_path.display(),
            self.files.key_path.display()
        )
    }

    /// A TLS acceptor that asks this certificate at every handshake: HTTP/2 and HTTP/1.1 by
    /// ALPN.
    pub(crate) fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for ListenerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/tls/private-ca"
        ))
        .join(name)
    }

    fn files(cert: &str, key: &str) -> TlsFiles {
        TlsFiles {
            cert_path: fixture(cert),
            key_path: fixture(key),
        }
    }

    #[test]
    fn a_reload_takes_the_new_certificate_and_keeps_the_old_one_when_the_new_is_broken() {
        let dir = std::env::temp_dir().join(format!("scimtrail-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let live = TlsFiles {
            cert_path: dir.join("tls.crt"),
            key_path: dir.join("tls.key"),
        };
        let install = |from: &TlsFiles| {
            std::fs::copy(&from.cert_path, &live.cert_path).unwrap();
            std::fs::copy(&from.key_path, &live.key_path).unwrap();
        };
        install(&files("server-a.crt", "server-a.key"));
        let cert = ListenerCert::load(&live).unwrap();
        let served = |cert: &ListenerCert| cert.current.read().unwrap().cert.clone();
        let a = served(&cert);
        assert_eq!(cert.reload(), Ok(false), "the same files: unchanged");

        install(&files("server-b.crt", "server-b.key"));
        assert_eq!(cert.reload(), Ok(true));
        let b = served(&cert);
        assert_ne!(a, b);

        // A certificate with another certificate's key, a missing key: refused, b stays.
        std::fs::copy(fixture("server-a.key"), &live.key_path).unwrap();
        let mismatch = cert.reload().unwrap_err();
        assert!(mismatch.contains("do not work together"), "{mismatch}");
        std::fs::remove_file(&live.key_path).unwrap();
        assert!(cert.reload().unwrap_err().contains("cannot read"));
        assert_eq!(served(&cert), b);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_that_are_not_a_certificate_and_key_are_refused_by_name() {
        let not_pem = files("make.sh", "make.sh");
        let error = ListenerCert::load(&not_pem).unwrap_err();
        assert!(error.contains("make.sh holds no certificate"), "{error}");
        let no_key = files("ca.crt", "ca.crt");
        assert!(ListenerCert::load(&no_key)
            .unwrap_err()
            .contains("holds no private key"));
    }
}
