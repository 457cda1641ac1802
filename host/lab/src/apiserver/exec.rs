//! `pods/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`):
//! channel 0 stdin, 1 stdout, 2 stderr, 3 the final `Status`, 4 resize,
//! 255 close (v5). The command itself runs through an [`ExecHandler`].

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::error::ApiError;
use super::server::stopped;

/// A Kubernetes object as JSON.
pub type Object = Value;

/// Runs `kubectl exec` commands in a Pod's environment.
#[async_trait]
pub trait ExecHandler: Send + Sync {
    /// Starts `command` in the Pod's environment (`container` as given by the
    /// client, if any). Stdout and stderr chunks go to the senders, which
    /// must be dropped when the command ends; `stdin`, when the client asked
    /// for it, yields its input and ends when the client closes stdin.
    /// Returns the exit code, or an error message when the command could
    /// not run (the client then sees a Failure `Status`).
    #[allow(clippy::too_many_arguments)]
    async fn exec(
        &self,
        namespace: &str,
        pod: &Object,
        container: Option<&str>,
        command: Vec<String>,
        stdin: Option<mpsc::Receiver<Vec<u8>>>,
        stdout: mpsc::Sender<Vec<u8>>,
        stderr: mpsc::Sender<Vec<u8>>,
    ) -> Result<i32, String>;
}

/// An [`ExecHandler`] that runs the command as a local process (no shell:
/// the first word is the program), with `POD_NAME`, `POD_NAMESPACE` and
/// `CONTAINER_NAME` in its environment. For tests and as an example.
#[derive(Debug, Clone, Default)]
pub struct ProcessExec;

#[async_trait]
impl ExecHandler for ProcessExec {
    async fn exec(
        &self,
        namespace: &str,
        pod: &Object,
        container: Option<&str>,
        command: Vec<String>,
        stdin: Option<mpsc::Receiver<Vec<u8>>>,
        stdout: mpsc::Sender<Vec<u8>>,
        stderr: mpsc::Sender<Vec<u8>>,
    ) -> Result<i32, String> {
        let (program, args) = command.split_first().ok_or("no command")?;
        let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("POD_NAME", pod_name)
            .env("POD_NAMESPACE", namespace)
            .env("CONTAINER_NAME", container.unwrap_or_default())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| format!("failed to exec in container: starting container process caused: exec: {program:?}: {e}"))?;
        let copy = |mut from: Box<dyn tokio::io::AsyncRead + Unpin + Send>, to: mpsc::Sender<Vec<u8>>| {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match from.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if to.send(buf[..n].to_vec()).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            })
        };
        let out = copy(Box::new(child.stdout.take().expect("piped")), stdout);
        let err = copy(Box::new(child.stderr.take().expect("piped")), stderr);
        if let (Some(mut rx), Some(mut w)) = (stdin, child.stdin.take()) {
            tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    if w.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                let _ = w.shutdown().await;
            });
        }
        let status = child.wait().await.map_err(|e| e.to_string())?;
        let _ = out.await;
        let _ = err.await;
        use std::os::unix::process::ExitStatusExt;
        Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

/// What the client asked for in the exec query.
pub(crate) struct ExecRequest {
    pub namespace: String,
    pub pod: Value,
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Parses and checks an exec request; the caller has found the Pod.
pub(crate) fn parse_request(namespace: &str, pod: Value, query: &[(String, String)]) -> Result<ExecRequest, ApiError> {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let flag = |k: &str| matches!(get(k), Some("true") | Some("1") | Some("True"));
    let command: Vec<String> = query.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let (stdin, stdout, stderr, tty) = (flag("stdin"), flag("stdout"), flag("stderr"), flag("tty"));
    if !(stdin || stdout || stderr) {
        return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
    }
    let container = get("container").filter(|c| !c.is_empty()).map(str::to_string);
    let names: Vec<String> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|l| pod.pointer(&format!("/spec/{l}")).and_then(Value::as_array).cloned().unwrap_or_default())
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    if let Some(c) = &container
        && !names.contains(c)
    {
        return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")));
    }
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return Err(ApiError::bad_request(format!("cannot exec into a container in a completed pod; current phase is {phase}")));
    }
    Ok(ExecRequest { namespace: namespace.to_string(), pod, container, command, stdin, stdout, stderr, tty })
}

/// Upgrades the connection to a WebSocket and runs the command.
pub(crate) async fn upgrade(req: axum::extract::Request, exec: ExecRequest, handler: Arc<dyn ExecHandler>, stop: watch::Receiver<bool>) -> Response {
    let offered: Vec<String> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect();
    let (mut parts, _body) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(_) => {
            return super::server::error_response(&ApiError::bad_request(
                "Upgrade request required: pods/exec is served over WebSocket (v5.channel.k8s.io or v4.channel.k8s.io) only",
            ));
        }
    };
    if !offered.iter().any(|p| PROTOCOLS.contains(&p.as_str())) {
        return super::server::error_response(&ApiError::bad_request(format!(
            "unsupported exec subprotocols {offered:?}: use v5.channel.k8s.io or v4.channel.k8s.io"
        )));
    }
    let ws = ws.protocols(PROTOCOLS);
    let v5 = offered.iter().any(|p| p == PROTOCOLS[0]);
    ws.on_upgrade(move |socket| run(socket, exec, handler, v5, stop)).into_response()
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

fn exit_status(command: &[String], result: &Result<i32, String>) -> Value {
    match result {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(msg) => json!({"metadata": {}, "status": "Failure", "message": msg, "reason": "InternalError", "code": 500}),
    }
}

async fn run(socket: WebSocket, req: ExecRequest, handler: Arc<dyn ExecHandler>, v5: bool, mut stop: watch::Receiver<bool>) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    let (err_tx, mut err_rx) = mpsc::channel::<Vec<u8>>(16);
    let (mut in_tx, in_rx) = if req.stdin {
        let (t, r) = mpsc::channel::<Vec<u8>>(16);
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let (want_out, want_err, tty) = (req.stdout, req.stderr, req.tty);
    let command = req.command.clone();
    let exec = handler.exec(&req.namespace, &req.pod, req.container.as_deref(), req.command.clone(), in_rx, out_tx, err_tx);
    tokio::pin!(exec);
    let mut result: Option<Result<i32, String>> = None;
    let (mut out_open, mut err_open) = (true, true);
    let mut client_open = true;
    let drain_deadline = tokio::time::sleep(Duration::from_secs(3600 * 24 * 365));
    tokio::pin!(drain_deadline);
    loop {
        if result.is_some() && !out_open && !err_open {
            break;
        }
        tokio::select! {
            r = &mut exec, if result.is_none() => {
                result = Some(r);
                drain_deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(2));
            }
            m = out_rx.recv(), if out_open => match m {
                Some(d) if want_out => { if sink.send(frame(1, &d)).await.is_err() { return; } }
                Some(_) => {}
                None => out_open = false,
            },
            m = err_rx.recv(), if err_open => match m {
                Some(d) if want_err || tty => {
                    let ch = if tty { 1 } else { 2 };
                    if sink.send(frame(ch, &d)).await.is_err() { return; }
                }
                Some(_) => {}
                None => err_open = false,
            },
            msg = stream.next(), if client_open => match msg {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => match data[0] {
                    0 => {
                        if let Some(tx) = &in_tx {
                            let _ = tx.send(data[1..].to_vec()).await;
                        }
                    }
                    255 if v5 && data.len() > 1 && data[1] == 0 => in_tx = None,
                    _ => {}
                },
                Some(Ok(Message::Text(t))) => {
                    // The base64 protocols are not offered; treat text as raw channel frames.
                    let b = t.as_bytes();
                    if b.first() == Some(&b'0')
                        && let Some(tx) = &in_tx {
                            let _ = tx.send(b[1..].to_vec()).await;
                        }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    client_open = false;
                    in_tx = None;
                    if result.is_none() {
                        // The client is gone: dropping the exec future stops the command.
                        return;
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = &mut drain_deadline => break,
            _ = stopped(&mut stop) => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }))).await;
                return;
            }
        }
    }
    let result = result.unwrap_or_else(|| Err("exec ended without a result".into()));
    let status = exit_status(&command, &result);
    let _ = sink.send(frame(3, status.to_string().as_bytes())).await;
    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    // Let the client read the close frame before the connection drops.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
