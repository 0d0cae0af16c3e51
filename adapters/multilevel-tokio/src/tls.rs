//! TLS for TCP, with rustls: loading certificates and keys from PEM files, and the configs the
//! server and client take. The other adapters accept any stream, so their users bring TLS the
//! same way (a `tokio-rustls` or `async-tls` stream handed to `serve_stream` / `Transport::new`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A PEM file held no certificate.
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    /// rustls refused the certificates or key (e.g. a key that does not match).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the CA file.
    #[error("client CA: {0}")]
    Verifier(String),
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |e: rustls_pki_types::pem::Error| TlsError::Pem { path: path.to_owned(), message: e.to_string() };
    let certs = CertificateDer::pem_file_iter(path).map_err(pem)?.collect::<Result<Vec<_>, _>>().map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem { path: path.to_owned(), message: e.to_string() })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A server config from a certificate chain and its key (PEM files). With `client_ca`,
/// clients must present a certificate signed by it.
pub fn server_config(cert: &Path, key_file: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots(ca)?))
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(builder.with_single_cert(certs(cert)?, key(key_file)?)?))
}

/// A client config trusting the CA in `ca` (PEM), optionally presenting a client certificate
/// and key.
pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder().with_root_certificates(roots(ca)?);
    let config = match identity {
        Some((cert, key_file)) => builder.with_client_auth_cert(certs(cert)?, key(key_file)?)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A TLS server name from a host name or IP address.
pub fn server_name(name: &str) -> io::Result<rustls_pki_types::ServerName<'static>> {
    rustls_pki_types::ServerName::try_from(name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bad TLS server name {name:?}: {e}")))
}
