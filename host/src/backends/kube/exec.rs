//! Running a command in a Pod over the exec WebSocket (v5/v4 channel
//! protocol): stdout and stderr read concurrently and bounded, the exit code
//! from the status channel.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncReadExt;

use super::errors;
use crate::backends::{BackendError, BackendResult, ErrorCode, ExecOutput};

/// Bytes kept of an exec's stdout, and of its stderr. The rest is read and
/// dropped so the command is never blocked on a full pipe.
pub const OUTPUT_LIMIT: usize = 1 << 20;

/// Run `command` in `pod` and wait for it to end.
pub(super) async fn run(
    client: kube::Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[String],
    hint: Option<&str>,
) -> BackendResult<ExecOutput> {
    if command.is_empty() {
        return Err(BackendError::new(ErrorCode::Invalid, "exec needs a command"));
    }
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let mut params = AttachParams::default().stdin(false).stdout(true).stderr(true);
    if let Some(container) = container {
        params = params.container(container);
    }
    let mut process = pods.exec(pod, command.to_vec(), &params).await.map_err(|e| exec_error(e, namespace, pod, hint))?;
    let stdout = process.stdout().map(|r| tokio::spawn(read_bounded(r)));
    let stderr = process.stderr().map(|r| tokio::spawn(read_bounded(r)));
    let status = match process.take_status() {
        Some(status) => status.await,
        None => None,
    };
    let collect = |task: Option<tokio::task::JoinHandle<(Vec<u8>, bool)>>| async move {
        match task {
            Some(task) => task.await.unwrap_or_default(),
            None => (Vec::new(), false),
        }
    };
    let (out, out_cut) = collect(stdout).await;
    let (err, err_cut) = collect(stderr).await;
    if let Err(e) = process.join().await {
        tracing::debug!("exec in {namespace}/{pod}: closing the stream: {e}");
    }
    let mut stderr = String::from_utf8_lossy(&err).into_owned();
    for (cut, name) in [(out_cut, "stdout"), (err_cut, "stderr")] {
        if cut {
            stderr.push_str(&format!("\n[runner: {name} cut at {OUTPUT_LIMIT} bytes]\n"));
        }
    }
    let exit_code = exit_code(status.as_ref()).map_err(|message| BackendError::new(ErrorCode::Internal, format!("exec in {namespace}/{pod}: {message}")))?;
    Ok(ExecOutput { exit_code, stdout: String::from_utf8_lossy(&out).into_owned(), stderr })
}

/// Why an exec did not start. The API server answers 500, 502 or 503 when
/// it cannot reach the Pod's kubelet (`error dialing backend`): the Pod is
/// there but out of reach, which is `unavailable`, not a fault of the call.
fn exec_error(error: kube::Error, namespace: &str, pod: &str, hint: Option<&str>) -> BackendError {
    match &error {
        kube::Error::Api(status) if matches!(status.code, 500 | 502 | 503) => BackendError::new(
            ErrorCode::Unavailable,
            format!("exec in {namespace}/{pod}: the API server cannot reach the Pod's kubelet (HTTP {}: {})", status.code, errors::status_message(status)),
        ),
        _ => errors::from_kube(error, hint),
    }
}

async fn read_bounded(mut reader: impl tokio::io::AsyncRead + Unpin) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..n.min(room)]);
                cut |= n > room;
            }
        }
    }
    (kept, cut)
}

/// The exit code a status-channel message carries: `Success` is 0, a
/// `NonZeroExitCode` failure names its code in the `ExitCode` cause; any
/// other failure means the command did not run.
fn exit_code(status: Option<&Status>) -> Result<i32, String> {
    let Some(status) = status else {
        return Err("the exec stream ended without an exit status (the connection dropped?)".into());
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|causes| causes.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse().ok());
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Err(status.message.clone().unwrap_or_else(|| format!("the command failed: {}", status.reason.as_deref().unwrap_or("no reason given"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    #[test]
    fn a_kubelet_out_of_reach_is_unavailable_and_other_failures_keep_their_code() {
        let api = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("error dialing backend: dial tcp 10.0.0.5:10250: connect: connection refused", "InternalError")
                    .with_code(code)
                    .boxed(),
            )
        };
        for code in [500, 502, 503] {
            let e = exec_error(api(code), "default", "postgres-cluster-0", None);
            assert_eq!(e.code, ErrorCode::Unavailable, "HTTP {code}");
            assert!(e.message.starts_with("exec in default/postgres-cluster-0: the API server cannot reach the Pod's kubelet"), "{}", e.message);
            assert!(e.message.contains("error dialing backend"), "the server's words: {}", e.message);
        }
        assert_eq!(exec_error(api(403), "default", "postgres-cluster-0", None).code, ErrorCode::Denied);
        assert_eq!(exec_error(api(404), "default", "postgres-cluster-0", None).code, ErrorCode::NotFound);
    }

    #[test]
    fn exit_codes_come_from_the_status() {
        assert_eq!(exit_code(Some(&Status { status: Some("Success".into()), ..Default::default() })), Ok(0));
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            message: Some("command terminated with non-zero exit code: exit status 3".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause { reason: Some("ExitCode".into()), message: Some("3".into()), field: None }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(exit_code(Some(&failed)), Ok(3));
        let not_run = Status {
            status: Some("Failure".into()),
            reason: Some("InternalError".into()),
            message: Some("executable file not found".into()),
            ..Default::default()
        };
        assert_eq!(exit_code(Some(&not_run)), Err("executable file not found".into()));
        assert!(exit_code(None).is_err());
    }
}
