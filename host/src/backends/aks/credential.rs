//! The bearer token ARM calls carry: a static one from a file (the lab's),
//! or one `azure_identity` gets (workload identity in a Pod, a managed
//! identity, the Azure CLI's login), refreshed by the crate as it expires.

use std::path::Path;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{AsyncRawResponse, Body, ClientOptions, HttpClient, Request, Transport};
use reqwest_arm as reqwest;
use secrecy::SecretString;

use crate::backends::{BackendError, BackendResult, ErrorCode};

/// ARM's scope for a token.
const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// The largest token file read: a real bearer token is a few kilobytes.
const MAX_TOKEN_BYTES: u64 = 64 << 10;

/// Where tokens come from.
pub enum Credential {
    /// One token, read from a file when the backend was built.
    Static(SecretString),
    /// `azure_identity`'s credentials, tried in order; the first to give a token wins.
    Azure(Vec<(&'static str, Arc<dyn TokenCredential>)>),
}

impl Credential {
    /// The token in `file` (surrounding whitespace dropped).
    pub fn from_file(file: &Path) -> Result<Credential, String> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_TOKEN_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| format!("token-file {}: cannot read it: {e}", file.display()))?;
        if text.len() as u64 > MAX_TOKEN_BYTES {
            return Err(format!("token-file {}: larger than {MAX_TOKEN_BYTES} bytes; a bearer token is not", file.display()));
        }
        let token = text.trim();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("token-file {}: holds no single token", file.display()));
        }
        Ok(Credential::Static(super::secret(token.to_string())))
    }

    /// `azure_identity`'s credentials for where the runner runs: workload
    /// identity when its environment is set (`AZURE_FEDERATED_TOKEN_FILE`),
    /// a managed identity, then the Azure CLI. They reach Entra ID through
    /// `http`, the backend's own client.
    pub fn azure(http: &reqwest::Client) -> Result<Credential, String> {
        let options = || ClientOptions { transport: Some(Transport::new(Arc::new(Http(http.clone())))), ..ClientOptions::default() };
        let mut chain: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
        if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            let mut workload = azure_identity::WorkloadIdentityCredentialOptions::default();
            workload.credential_options.client_options = options();
            match azure_identity::WorkloadIdentityCredential::new(Some(workload)) {
                Ok(credential) => chain.push(("workload identity", credential)),
                Err(e) => tracing::debug!("workload identity not usable: {e}"),
            }
        }
        let managed = azure_identity::ManagedIdentityCredentialOptions { client_options: options(), ..Default::default() };
        match azure_identity::ManagedIdentityCredential::new(Some(managed)) {
            Ok(credential) => chain.push(("managed identity", credential)),
            Err(e) => tracing::debug!("managed identity not usable: {e}"),
        }
        match azure_identity::AzureCliCredential::new(None) {
            Ok(credential) => chain.push(("Azure CLI", credential)),
            Err(e) => tracing::debug!("Azure CLI credential not usable: {e}"),
        }
        if chain.is_empty() {
            return Err("no Azure credential can be built here (workload identity, managed identity, Azure CLI); give `token-file`".into());
        }
        Ok(Credential::Azure(chain))
    }

    /// A token for ARM now.
    pub async fn token(&self) -> BackendResult<SecretString> {
        match self {
            Credential::Static(token) => Ok(token.clone()),
            Credential::Azure(chain) => {
                let mut reasons = Vec::new();
                for (name, credential) in chain {
                    match credential.get_token(&[ARM_SCOPE], None).await {
                        Ok(token) => return Ok(super::secret(token.token.secret().to_string())),
                        // The crate's errors describe the source, never the token.
                        Err(e) => reasons.push(format!("{name}: {}", first_line(&e.to_string()))),
                    }
                }
                Err(BackendError::new(ErrorCode::Denied, format!("no Azure credential gave a token for ARM ({})", reasons.join("; "))))
            }
        }
    }
}

/// The backend's client as `azure_identity`'s transport (to Entra ID and
/// the managed identity endpoint): its TLS roots, no second HTTP stack.
#[derive(Debug)]
struct Http(reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for Http {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        use azure_core::error::{Error, ErrorKind};
        let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).map_err(|e| Error::with_error(ErrorKind::Other, e, "method"))?;
        let mut builder = self.0.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match request.body() {
            Body::Bytes(bytes) => builder.body(bytes.to_vec()),
            Body::SeekableStream(_) => return Err(Error::with_message(ErrorKind::Other, "a streamed request body is not supported here")),
        };
        let response = builder.send().await.map_err(|e| Error::with_error(ErrorKind::Connection, e, "the token request got no answer"))?;
        let status = response.status().as_u16();
        let mut headers = azure_core::http::headers::Headers::new();
        for (name, value) in response.headers() {
            if let Ok(value) = value.to_str() {
                headers.insert(name.as_str().to_string(), value.to_string());
            }
        }
        let body = response.bytes().await.map_err(|e| Error::with_error(ErrorKind::Io, e, "the token answer's body"))?;
        let stream: azure_core::http::response::PinnedStream = Box::pin(futures_util::stream::once(async move { Ok(body) }));
        Ok(AsyncRawResponse::new(status.into(), headers, stream))
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(300).collect()
}
