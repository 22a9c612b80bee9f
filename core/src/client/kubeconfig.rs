//! Reading and writing the kubeconfig files that kubectl and the components
//! share: one cluster (server URL and CA), one user (a bearer token).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

use super::{Error, Result};

/// The parts of a kubeconfig that coxswain uses, from its current context.
#[derive(Clone, Debug)]
pub struct Kubeconfig {
    pub server: String,
    /// PEM of the certificate authority that signed the server certificate.
    pub ca_pem: Option<String>,
    pub token: Option<String>,
    pub namespace: Option<String>,
}

impl Kubeconfig {
    pub fn read(path: &Path) -> Result<Kubeconfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Kubeconfig::parse(&text, base)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses a kubeconfig; relative file paths in it are relative to `base`.
    pub fn parse(text: &str, base: &Path) -> std::result::Result<Kubeconfig, String> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let current = doc["current-context"]
            .as_str()
            .ok_or("no current-context")?;
        let named = |list: &str, name: &str, field: &str| -> Option<Value> {
            doc[list]
                .as_array()?
                .iter()
                .find(|item| item["name"].as_str() == Some(name))
                .map(|item| item[field].clone())
        };
        let context = named("contexts", current, "context").ok_or("current context not found")?;
        let cluster_name = context["cluster"]
            .as_str()
            .ok_or("context has no cluster")?;
        let cluster = named("clusters", cluster_name, "cluster").ok_or("cluster not found")?;
        let server = cluster["server"]
            .as_str()
            .ok_or("cluster has no server")?
            .to_owned();
        let read_file = |p: &str| {
            std::fs::read_to_string(base.join(p)).map_err(|e| format!("reading {p}: {e}"))
        };
        let ca_pem = if let Some(data) = cluster["certificate-authority-data"].as_str() {
            let bytes = STANDARD.decode(data.trim()).map_err(|e| e.to_string())?;
            Some(String::from_utf8(bytes).map_err(|e| e.to_string())?)
        } else if let Some(p) = cluster["certificate-authority"].as_str() {
            Some(read_file(p)?)
        } else {
            None
        };
        let mut token = None;
        if let Some(user_name) = context["user"].as_str() {
            if let Some(user) = named("users", user_name, "user") {
                if let Some(t) = user["token"].as_str() {
                    token = Some(t.to_owned());
                } else if let Some(p) = user["tokenFile"].as_str() {
                    token = Some(read_file(p)?.trim().to_owned());
                }
            }
        }
        let namespace = context["namespace"].as_str().map(str::to_owned);
        Ok(Kubeconfig {
            server,
            ca_pem,
            token,
            namespace,
        })
    }

    /// A TLS client configuration that trusts this cluster's CA alone.
    pub fn tls_client_config(&self) -> Result<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in self.ca_certificates()? {
            roots
                .add(cert)
                .map_err(|e| Error::Config(format!("bad CA certificate: {e}")))?;
        }
        Ok(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }

    fn ca_certificates(&self) -> Result<Vec<CertificateDer<'static>>> {
        let Some(pem) = &self.ca_pem else {
            return Err(Error::Config(
                "no certificate-authority: refusing to trust any".into(),
            ));
        };
        rustls_pemfile::certs(&mut pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("bad CA PEM: {e}")))
    }

    /// Renders a kubeconfig with the CA inline and a bearer token.
    pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: coxswain\n  cluster:\n    \
             server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  \
             user:\n    token: {token}\ncontexts:\n- name: coxswain\n  context:\n    \
             cluster: coxswain\n    user: admin\n    namespace: default\n\
             current-context: coxswain\n",
            ca = STANDARD.encode(ca_pem),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_kubeconfig_reads_back() {
        let text = Kubeconfig::render("https://127.0.0.1:6443", "PEM", "secret");
        let config = Kubeconfig::parse(&text, Path::new(".")).unwrap();
        assert_eq!(config.server, "https://127.0.0.1:6443");
        assert_eq!(config.ca_pem.as_deref(), Some("PEM"));
        assert_eq!(config.token.as_deref(), Some("secret"));
        assert_eq!(config.namespace.as_deref(), Some("default"));
    }
}
