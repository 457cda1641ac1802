//! A minimal client for the lab's own API, used by `runner lab` commands
//! (status, backup, waiting for readiness). It goes through the API like any
//! other client; the runner's Kubernetes backend is separate.

use serde_json::Value;

use crate::daemon::LabDir;

/// Talks to a running lab's API server.
pub struct LabClient {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl LabClient {
    /// A client for the lab in `dir`, if it has run.
    pub fn new(dir: &LabDir) -> anyhow::Result<Self> {
        let url = dir.server_url().ok_or_else(|| anyhow::anyhow!("no lab in {}: run `runner lab up`", dir.root.display()))?;
        // See `ApiServer::start`: reqwest may be built with rustls and no provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(10)).build()?;
        Ok(LabClient { url, token: dir.token()?, http })
    }

    /// GET `path`, as JSON; `None` for 404.
    pub async fn get(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let response = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "GET {path}: {status}: {}", body["message"].as_str().unwrap_or_default());
        Ok(Some(body))
    }

    /// The items of a list at `path`.
    pub async fn list(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self.get(path).await?.and_then(|list| list["items"].as_array().cloned()).unwrap_or_default())
    }

    /// Merge-patch `path` with `body`.
    pub async fn merge_patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .patch(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "PATCH {path}: {status}: {}", body["message"].as_str().unwrap_or_default());
        Ok(body)
    }

    /// POST `body` to the collection at `path` (`/apis/apps/v1/namespaces/default/deployments`): a new object.
    pub async fn create(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self.http.post(format!("{}{path}", self.url)).bearer_auth(&self.token).json(body).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "POST {path}: {status}: {}", body["message"].as_str().unwrap_or_default());
        Ok(body)
    }

    /// DELETE `path` (its query may carry `gracePeriodSeconds`); `false` when it was not there.
    pub async fn delete(&self, path: &str) -> anyhow::Result<bool> {
        let response = self.http.delete(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "DELETE {path}: {status}: {}", body["message"].as_str().unwrap_or_default());
        Ok(true)
    }

    /// Whether the API server answers.
    pub async fn alive(&self) -> bool {
        self.get("/version").await.is_ok()
    }
}

/// Talks to a running lab's ARM emulation ([`crate::arm`]) with its ARM
/// token, over plain HTTP on the endpoint's loopback port (it speaks both,
/// as the API server does), so this TLS-less client reaches it.
pub struct LabArm {
    /// What the lab wrote to `arm.json`.
    pub config: crate::arm::ArmConfig,
    base: String,
    token: String,
    http: reqwest::Client,
}

/// An ARM answer: status, body (`null` when empty) and `ETag` header.
pub struct ArmAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body, `null` when there is none.
    pub body: Value,
    /// The `ETag` header, when there is one.
    pub etag: Option<String>,
}

impl LabArm {
    /// A client for the ARM emulation of the lab in `dir`, once it has run.
    pub fn new(dir: &LabDir) -> anyhow::Result<Self> {
        let config = dir.read_arm_config().ok_or_else(|| anyhow::anyhow!("no ARM emulation in {}: run `runner lab up`", dir.root.display()))?;
        let base = config.endpoint.replacen("https://", "http://", 1);
        // See `ApiServer::start`: reqwest may be built with rustls and no provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(10)).build()?;
        Ok(LabArm { token: std::fs::read_to_string(&config.token_file)?.trim().to_string(), base, config, http })
    }

    /// The path of a Traffic Manager profile of the lab's resource group (no api-version).
    pub fn profile_path(&self, profile: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{}/trafficmanagerprofiles/{profile}",
            self.config.subscription_id,
            self.config.resource_group,
            crate::arm::trafficmanager::PROVIDER
        )
    }

    /// `GET path` (api-version `api_version` added).
    pub async fn get(&self, path: &str, api_version: &str) -> anyhow::Result<ArmAnswer> {
        self.call(reqwest::Method::GET, path, api_version, None).await
    }

    /// `PUT path` with a JSON body (api-version `api_version` added).
    pub async fn put(&self, path: &str, api_version: &str, body: &Value) -> anyhow::Result<ArmAnswer> {
        self.call(reqwest::Method::PUT, path, api_version, Some(body)).await
    }

    /// `method` on `path` (api-version `api_version` added) with an optional JSON body.
    pub async fn call(&self, method: reqwest::Method, path: &str, api_version: &str, body: Option<&Value>) -> anyhow::Result<ArmAnswer> {
        let url = format!("{}{path}?api-version={api_version}", self.base);
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let etag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = response.bytes().await?;
        Ok(ArmAnswer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), etag })
    }
}
