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
