//! TLS for the listener: rustls from PEM files, ALPN h2 and http/1.1.

use crate::config::TlsConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Installs aws-lc-rs as the process's crypto provider. With two providers
/// in the dependency tree `ClientConfig::builder()` would panic otherwise.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Builds the acceptor for the `[server.tls]` or `[admin.tls]` section
/// named `section`; errors name the config key and file.
pub fn acceptor(tls: &TlsConfig, section: &str) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    install_crypto_provider();
    let (cert, key) = (tls.cert.as_path(), tls.key.as_path());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect())
        .map_err(|e| anyhow::anyhow!("{section}.cert: cannot read PEM certificates from {}: {e}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{section}.cert: {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("{section}.key: cannot read a PEM private key from {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("{section}: certificate and key do not work together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
