//! The cluster's certificates and tokens, generated on first start and kept
//! in the data directory:
//!
//! * `pki/ca.crt`, `pki/ca.key`: the cluster CA;
//! * `pki/apiserver.crt`, `pki/apiserver.key`: the serving certificate,
//!   signed by the CA, for 127.0.0.1, ::1, localhost, the host name and the
//!   in-cluster names of the `kubernetes` service;
//! * `admin.token`: the bearer token of the cluster's administrator;
//! * `kubeconfig`: a kubeconfig for that administrator.
//!
//! Later starts reuse what is there, so a kubeconfig stays valid across
//! restarts.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Credentials of one cluster.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub admin_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("configuring TLS: {0}")]
    Tls(String),
    #[error("reading {0}: not a valid PEM certificate or key")]
    Pem(PathBuf),
}

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            action: "reading",
            path: path.into(),
            source,
        }),
    }
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        action: "writing",
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    fs::write(path, text).map_err(io)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect()
}

fn host_name() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
}

/// The CA's parameters; signing needs its subject, which is fixed.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "coxswain-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    params
}

impl Pki {
    /// Loads the credentials in `dir`, creating whatever is missing.
    pub fn load_or_create(dir: &Path) -> Result<Pki, PkiError> {
        let pki = dir.join("pki");
        let (ca_crt, ca_key) = (pki.join("ca.crt"), pki.join("ca.key"));
        let (crt, key) = (pki.join("apiserver.crt"), pki.join("apiserver.key"));

        let (ca_pem, ca_key_pem) = match (read(&ca_crt)?, read(&ca_key)?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let key_pair = KeyPair::generate()?;
                let cert = ca_params().self_signed(&key_pair)?;
                write(&ca_crt, &cert.pem(), false)?;
                write(&ca_key, &key_pair.serialize_pem(), true)?;
                // A new CA invalidates any serving certificate signed before.
                let _ = fs::remove_file(&crt);
                (cert.pem(), key_pair.serialize_pem())
            }
        };
        let (cert_pem, key_pem) = match (read(&crt)?, read(&key)?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let ca_key_pair =
                    KeyPair::from_pem(&ca_key_pem).map_err(|_| PkiError::Pem(ca_key.clone()))?;
                let issuer = Issuer::new(ca_params(), ca_key_pair);
                let key_pair = KeyPair::generate()?;
                let mut names = vec![
                    "localhost".to_owned(),
                    "kubernetes".to_owned(),
                    "kubernetes.default".to_owned(),
                    "kubernetes.default.svc".to_owned(),
                ];
                names.extend(host_name());
                let mut params = CertificateParams::new(names)?;
                params
                    .subject_alt_names
                    .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
                params
                    .subject_alt_names
                    .push(SanType::IpAddress("::1".parse().expect("ip")));
                params
                    .distinguished_name
                    .push(DnType::CommonName, "coxswain-apiserver");
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                params.not_after = rcgen::date_time_ymd(2036, 1, 1);
                let cert = params.signed_by(&key_pair, &issuer)?;
                write(&crt, &cert.pem(), false)?;
                write(&key, &key_pair.serialize_pem(), true)?;
                (cert.pem(), key_pair.serialize_pem())
            }
        };
        let token_path = dir.join("admin.token");
        let admin_token = match read(&token_path)? {
            Some(token) if !token.trim().is_empty() => token.trim().to_owned(),
            _ => {
                let token = random_token();
                write(&token_path, &token, true)?;
                token
            }
        };
        Ok(Pki {
            ca_pem,
            cert_pem,
            key_pem,
            admin_token,
        })
    }

    /// Writes `dir/kubeconfig` for the administrator at `server`.
    pub fn write_kubeconfig(&self, dir: &Path, server: &str) -> Result<PathBuf, PkiError> {
        let path = dir.join("kubeconfig");
        let text = crate::client::Kubeconfig::render(server, &self.ca_pem, &self.admin_token);
        write(&path, &text, true)?;
        Ok(path)
    }

    /// The rustls server configuration, offering HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, PkiError> {
        let certs: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|_| PkiError::Pem("apiserver.crt".into()))?;
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .ok()
            .flatten()
            .ok_or_else(|| PkiError::Pem("apiserver.key".into()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|_| PkiError::Pem("apiserver.crt".into()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}
