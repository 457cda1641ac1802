//! A real OCI registry for tests: Debian's `docker-registry` (distribution
//! 2.8) on `127.0.0.1:<free port>` over a temporary storage directory,
//! stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl Registry {
    /// Start one and wait until `GET /v2/` answers.
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: {address}}}\nlog: {{level: error}}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let mut registry = Registry { child: None, dir, address };
        registry.spawn();
        registry
    }

    fn spawn(&mut self) {
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts (apt-get install docker-registry; scripts/setup does)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.answers() {
            assert!(Instant::now() < deadline, "docker-registry on {} did not answer within 30 s", self.address);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answers(&self) -> bool {
        let (status, _) = self.get("/v2/", "*/*");
        status == 200
    }

    /// `GET path` with curl, an independent client: status and body.
    pub fn get(&self, path: &str, accept: &str) -> (u16, String) {
        let output = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5", "-H"])
            .arg(format!("Accept: {accept}"))
            .arg(format!("http://{}{path}", self.address))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (status.trim().parse().unwrap_or(0), body.to_string())
    }

    /// The manifest at `tag` as the registry serves it.
    pub fn manifest(&self, repository: &str, tag: &str) -> serde_json::Value {
        let (status, body) = self.get(&format!("/v2/{repository}/manifests/{tag}"), "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(status, 200, "GET manifest {repository}:{tag}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The file in the registry's storage holding blob `digest`.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage().join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Its storage directory's parent (for test files beside it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stop it (connections are then refused).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
