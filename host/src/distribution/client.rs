//! One registry over the OCI distribution API (`oci-client`): manifests and
//! blobs by repository, credentials from the Docker config file, plain HTTP
//! only for loopback registries the operator named.
//!
//! Blocking: a [`Remote`] owns a current-thread runtime, so it must be made
//! and used on a thread that runs no runtime (`super::fetch` gives it one).

use std::net::IpAddr;
use std::time::Duration;

use docker_credential::DockerCredential;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference as OciReference};

use super::DistributionError;

/// Every manifest media type a policy's manifest may have.
pub const ACCEPTED_MANIFESTS: &[&str] = &["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"];

/// Refuse `--insecure-registry` entries that are not `HOST:PORT` on loopback:
/// plain HTTP elsewhere would hand the component (and credentials) to the network.
pub fn check_insecure(entries: &[String]) -> Result<(), DistributionError> {
    for entry in entries {
        let refused = |reason: &str| DistributionError::Insecure { entry: entry.clone(), reason: reason.to_string() };
        let (host, port) = entry.rsplit_once(':').ok_or_else(|| refused("expected HOST:PORT"))?;
        port.parse::<u16>().map_err(|_| refused("the port is not a number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(refused("plain HTTP is allowed only for loopback registries (127.0.0.0/8, ::1, localhost)"));
        }
    }
    Ok(())
}

/// A connection to one registry.
pub struct Remote {
    runtime: tokio::runtime::Runtime,
    client: Client,
    registry: String,
    auth: RegistryAuth,
}

impl Remote {
    /// A client for `registry`, plain HTTP when it is one of `insecure`.
    pub fn connect(registry: &str, insecure: &[String]) -> Result<Self, DistributionError> {
        check_insecure(insecure)?;
        // reqwest's rustls without a provider of its own: the process's (ring), as kube and the AKS client use.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DistributionError::Cache(format!("cannot start the async runtime: {e}")))?;
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| DistributionError::Registry { registry: registry.into(), reason: e.to_string() })?;
        Ok(Remote { runtime, client, registry: registry.to_string(), auth: credentials(registry) })
    }

    /// The manifest at `tag_or_digest` and its digest, or None when the registry has none.
    pub fn manifest(&self, repository: &str, tag_or_digest: &str) -> Result<Option<(Vec<u8>, String)>, DistributionError> {
        let image = self.image(repository, tag_or_digest);
        match self.runtime.block_on(self.client.pull_manifest_raw(&image, &self.auth, ACCEPTED_MANIFESTS)) {
            Ok((bytes, digest)) => Ok(Some((bytes.to_vec(), digest))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The blob `digest` of `repository` (its hash is the caller's to check).
    pub fn blob(&self, repository: &str, digest: &str) -> Result<Option<Vec<u8>>, DistributionError> {
        let image = self.image(repository, digest);
        let mut bytes = Vec::new();
        let pulled = self.runtime.block_on(async {
            self.client.store_auth_if_needed(image.resolve_registry(), &self.auth).await;
            self.client.pull_blob(&image, digest, &mut bytes).await
        });
        match pulled {
            Ok(()) => Ok(Some(bytes)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Upload a blob unless the registry has it already.
    pub fn push_blob(&self, repository: &str, bytes: &[u8], digest: &str) -> Result<(), DistributionError> {
        let image = self.image(repository, "latest");
        self.runtime
            .block_on(async {
                self.client.store_auth_if_needed(image.resolve_registry(), &self.auth).await;
                // Pushing asks for push and pull scopes; a registry with tokens needs them before the HEAD.
                self.client.auth(&image, &self.auth, oci_client::RegistryOperation::Push).await.ok();
                if self.client.blob_exists(&image, digest).await.unwrap_or(false) {
                    return Ok(());
                }
                self.client.push_blob(&image, bytes.to_vec(), digest).await.map(|_| ())
            })
            .map_err(|e| self.error(e))
    }

    /// Put a manifest at `tag`; its digest as the registry names it.
    pub fn push_manifest(&self, repository: &str, tag: &str, bytes: &[u8], media_type: &str) -> Result<String, DistributionError> {
        let image = self.image(repository, tag);
        let content_type = media_type.parse().map_err(|_| DistributionError::Format(format!("media type `{media_type}` is not a header value")))?;
        self.runtime
            .block_on(async {
                self.client.store_auth_if_needed(image.resolve_registry(), &self.auth).await;
                self.client.push_manifest_raw(&image, bytes.to_vec(), content_type).await
            })
            .map_err(|e| self.error(e))?;
        Ok(super::cache::digest_of(bytes))
    }

    fn image(&self, repository: &str, tag_or_digest: &str) -> OciReference {
        if tag_or_digest.starts_with("sha256:") {
            OciReference::with_digest(self.registry.clone(), repository.to_string(), tag_or_digest.to_string())
        } else {
            OciReference::with_tag(self.registry.clone(), repository.to_string(), tag_or_digest.to_string())
        }
    }

    fn error(&self, error: OciDistributionError) -> DistributionError {
        let registry = self.registry.clone();
        if let OciDistributionError::RequestError(request) = &error
            && (request.is_connect() || request.is_timeout())
        {
            return DistributionError::Unreachable { registry, reason: error_chain(request) };
        }
        if let OciDistributionError::DigestError(digest) = &error {
            return DistributionError::Tampered {
                what: format!("a blob from {registry}"),
                expected: "the digest the manifest names".into(),
                found: digest.to_string(),
            };
        }
        DistributionError::Registry { registry, reason: error.to_string() }
    }
}

fn not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::ManifestUnknown | OciErrorCode::BlobUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound)),
        _ => false,
    }
}

/// reqwest's own message ("error sending request") hides the cause (connection refused).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Credentials from the Docker config file (`$DOCKER_CONFIG/config.json`,
/// else `~/.docker/config.json`: `auths`, `credHelpers`, `credsStore`);
/// anonymous when it names none for this registry.
fn credentials(registry: &str) -> RegistryAuth {
    match docker_credential::get_credential(registry) {
        Ok(DockerCredential::UsernamePassword(user, password)) => RegistryAuth::Basic(user, password),
        Ok(DockerCredential::IdentityToken(token)) => RegistryAuth::Bearer(token),
        Err(e) => {
            tracing::debug!("no credentials for {registry} ({e}): anonymous");
            RegistryAuth::Anonymous
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_registries_must_be_loopback() {
        assert!(check_insecure(&["127.0.0.1:5000".into(), "127.8.0.1:1".into(), "localhost:5000".into(), "[::1]:5000".into()]).is_ok());
        for entry in ["10.0.0.1:5000", "registry.example.com:5000", "0.0.0.0:5000", "127.0.0.1"] {
            let error = check_insecure(&[entry.to_string()]).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{entry}");
            assert!(error.to_string().contains(entry), "{error}");
        }
    }
}
