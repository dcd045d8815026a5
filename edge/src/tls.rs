//! The HTTPS listener's TLS: certificates and keys from PEM files, chosen by
//! SNI (the first is the default), ALPN h2 and http/1.1, TLS 1.2 and 1.3
//! only. The certificate set sits behind an `ArcSwap`, so a reload replaces
//! it for new handshakes while open connections carry on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use edgecache::config::CertPair;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Why certificates or keys could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key does not belong to the certificate, or is of an unsupported
    /// type.
    #[error("{cert} with {key}: {reason}")]
    Key {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No certificate is configured for the HTTPS listener.
    #[error("the HTTPS listener needs at least one certificate (--cert and --key, or [tls] certs)")]
    NoCertificate,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The process's crypto provider (aws-lc-rs). Installs it as the process
/// default on first use, so that every rustls user agrees on one.
pub fn provider() -> Arc<CryptoProvider> {
    if let Some(p) = CryptoProvider::get_default() {
        return p.clone();
    }
    // Losing a race to another installer is fine: use whatever won.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// Reads every certificate of a PEM file, leaf first.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// Loads one certificate chain and its key, checking that they match.
pub fn load_pair(pair: &CertPair) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certs(&pair.cert)?;
    let key = PrivateKeyDer::from_pem_file(&pair.key).map_err(|e| TlsError::Pem {
        path: pair.key.clone(),
        reason: e.to_string(),
    })?;
    let key_error = |reason: String| TlsError::Key {
        cert: pair.cert.clone(),
        key: pair.key.clone(),
        reason,
    };
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| key_error(format!("the key does not match the certificate: {e}")))?;
    Ok(Arc::new(certified))
}

/// A loaded set of certificates; the first is the default.
pub struct CertSet {
    keys: Vec<Arc<CertifiedKey>>,
}

impl CertSet {
    /// Loads every pair, failing on the first that does not load.
    pub fn load(pairs: &[CertPair]) -> Result<CertSet, TlsError> {
        if pairs.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let keys = pairs.iter().map(load_pair).collect::<Result<Vec<_>, _>>()?;
        Ok(CertSet { keys })
    }

    /// The first certificate valid for `name`, else the default.
    fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let server_name = name.and_then(|n| ServerName::try_from(n).ok());
        if let Some(server_name) = server_name {
            for key in &self.keys {
                let Some(leaf) = key.cert.first() else {
                    continue;
                };
                let valid = webpki::EndEntityCert::try_from(leaf)
                    .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&server_name).is_ok());
                if valid {
                    return Some(key.clone());
                }
            }
        }
        self.keys.first().cloned()
    }
}

/// Picks a certificate by SNI from a swappable set.
pub struct SniResolver {
    set: ArcSwap<CertSet>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("certs", &self.set.load().keys.len())
            .finish()
    }
}

impl SniResolver {
    /// A resolver over `set`.
    pub fn new(set: CertSet) -> SniResolver {
        SniResolver {
            set: ArcSwap::from_pointee(set),
        }
    }

    /// Replaces the certificates for new handshakes.
    pub fn replace(&self, set: CertSet) {
        self.set.store(Arc::new(set));
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.set.load().pick(hello.server_name())
    }
}

/// The server config of the HTTPS listener: TLS 1.3 and 1.2, ALPN h2 then
/// http/1.1, certificates from `resolver`.
pub fn server_config(resolver: Arc<SniResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A bound HTTPS listener with its swappable certificates.
pub struct TlsListener {
    /// The bound socket.
    pub socket: tokio::net::TcpListener,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// The certificates, replaced on reload.
    pub resolver: Arc<SniResolver>,
    /// The acceptor for the socket's connections.
    pub acceptor: tokio_rustls::TlsAcceptor,
}

/// Loads the certificates and binds `[tls] listen`, when configured.
pub async fn bind(
    config: &edgecache::config::EdgeConfig,
) -> Result<Option<TlsListener>, crate::state::StartError> {
    use crate::state::StartError;
    let Some(addr) = config.tls.listen else {
        return Ok(None);
    };
    let resolver = Arc::new(SniResolver::new(CertSet::load(&config.tls.certs)?));
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(resolver.clone())?);
    let socket = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let addr = socket
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok(Some(TlsListener {
        socket,
        addr,
        resolver,
        acceptor,
    }))
}
