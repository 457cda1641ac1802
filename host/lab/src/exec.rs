//! `kubectl exec` in the lab: the command runs as a local process in the
//! member's environment (PGDATA, PGPORT, PGHOST and the like set to the
//! member's own, as the database's OS user), with its output streamed back.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::apiserver::ExecHandler;
use crate::controllers::kubelet::Members;

/// Runs exec requests against the members the kubelet runs.
pub struct LabExec {
    /// The kubelet's running members, where a command's environment comes from.
    pub members: Members,
}

#[async_trait::async_trait]
impl ExecHandler for LabExec {
    async fn exec(
        &self,
        namespace: &str,
        pod: &Value,
        _container: Option<&str>,
        command: Vec<String>,
        stdin: Option<mpsc::Receiver<Vec<u8>>>,
        stdout: mpsc::Sender<Vec<u8>>,
        stderr: mpsc::Sender<Vec<u8>>,
    ) -> Result<i32, String> {
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let spec = self
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{namespace}/{pod_name}"))
            .cloned()
            .ok_or_else(|| format!("container not running in pod {pod_name}"))?;
        let Some((program, args)) = command.split_first() else { return Err("no command given".into()) };
        let mut child = tokio::process::Command::new(program);
        child.args(args).env_clear().env("PATH", "/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin").env("HOSTNAME", pod_name).env("HOME", &spec.volume);
        for (key, value) in runner_lab_runtime::exec_env(&spec) {
            child.env(key, value);
        }
        if let Some((uid, gid)) = runner_lab_runtime::exec_user(&spec) {
            child.uid(uid).gid(gid);
        }
        child
            .current_dir(&spec.volume)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = child.spawn().map_err(|e| format!("exec: \"{program}\": {e}"))?;
        if let (Some(mut input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            tokio::spawn(async move {
                while let Some(chunk) = input.recv().await {
                    if pipe.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            });
        }
        let forward = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>, to: mpsc::Sender<Vec<u8>>| async move {
            let mut buffer = vec![0u8; 16 * 1024];
            while let Ok(n) = pipe.read(&mut buffer).await {
                if n == 0 || to.send(buffer[..n].to_vec()).await.is_err() {
                    break;
                }
            }
        };
        let out = tokio::spawn(forward(Box::new(child.stdout.take().expect("piped")), stdout));
        let err = tokio::spawn(forward(Box::new(child.stderr.take().expect("piped")), stderr));
        let status = child.wait().await.map_err(|e| e.to_string())?;
        let _ = out.await;
        let _ = err.await;
        Ok(status.code().unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)))
    }
}
