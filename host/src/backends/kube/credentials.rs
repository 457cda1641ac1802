//! Exec credential plugins (`users[].user.exec`, as kubelogin and `aws eks
//! get-token` are configured): run once per run, their answer kept.
//!
//! Written here rather than left to kube-rs because kube-rs runs the plugin
//! each time it builds a client's layers (once for the bearer token, once
//! more for a TLS identity), so a run called a kubelogin-style plugin
//! several times where kubectl calls it once; its runner is private.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::config::{ExecConfig, ExecInteractiveMode};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

/// How long a plugin may take: an interactive login (a device code) takes minutes.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The most a plugin may print on stdout: a credential is a few kilobytes.
const MAX_PLUGIN_OUTPUT: u64 = 1 << 20;

#[derive(Deserialize)]
struct ExecCredential {
    status: Option<ExecCredentialStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecCredentialStatus {
    token: Option<String>,
    client_certificate_data: Option<String>,
    client_key_data: Option<String>,
    expiration_timestamp: Option<String>,
}

/// What the plugin answered, put where kube-rs reads a static credential.
/// Returns the token's expiry as the plugin stated it, if it did.
pub(super) fn resolve(config: &mut kube::Config) -> Result<Option<String>, String> {
    let Some(exec) = config.auth_info.exec.take() else { return Ok(None) };
    let status = run(&exec)?;
    let expiry = status.expiration_timestamp.clone();
    match (status.token, status.client_certificate_data, status.client_key_data) {
        (_, Some(certificate), Some(key)) => {
            use base64::Engine;
            let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
            config.auth_info.client_certificate_data = Some(encode(&certificate));
            config.auth_info.client_key_data = Some(SecretString::from(encode(&key)));
        }
        (Some(token), _, _) => config.auth_info.token = Some(SecretString::from(token)),
        _ => return Err(format!("the credential plugin `{}` answered neither a token nor a client certificate and key", command_name(&exec))),
    }
    Ok(expiry)
}

fn command_name(exec: &ExecConfig) -> String {
    exec.command.clone().unwrap_or_default()
}

/// Run the plugin as client-go does: its `env` added, `KUBERNETES_EXEC_INFO`
/// set, stdin and stderr the operator's unless it must not be interactive.
fn run(exec: &ExecConfig) -> Result<ExecCredentialStatus, String> {
    let name = command_name(exec);
    if name.is_empty() {
        return Err("the kubeconfig's exec credential plugin names no command".into());
    }
    let interactive = exec.interactive_mode != Some(ExecInteractiveMode::Never);
    let mut command = Command::new(&name);
    command.args(exec.args.iter().flatten());
    for pair in exec.env.iter().flatten() {
        if let (Some(key), Some(value)) = (pair.get("name"), pair.get("value")) {
            command.env(key, value);
        }
    }
    for key in exec.drop_env.iter().flatten() {
        command.env_remove(key);
    }
    let mut spec = json!({"interactive": interactive});
    if exec.provide_cluster_info
        && let Some(cluster) = &exec.cluster
    {
        spec["cluster"] = serde_json::to_value(cluster).unwrap_or_default();
    }
    let api_version = exec.api_version.clone().unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
    command.env("KUBERNETES_EXEC_INFO", json!({"apiVersion": api_version, "kind": "ExecCredential", "spec": spec}).to_string());
    command.stdin(if interactive { Stdio::inherit() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = command.spawn().map_err(|e| match &exec.install_hint {
        Some(hint) => format!("cannot run the credential plugin `{name}`: {e}; {}", hint.trim()),
        None => format!("cannot run the credential plugin `{name}`: {e}"),
    })?;
    let mut stdout = child.stdout.take().ok_or("the credential plugin has no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(MAX_PLUGIN_OUTPUT).read_to_end(&mut out);
        out
    });
    let deadline = std::time::Instant::now() + PLUGIN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the credential plugin `{name}` did not answer within {} s", PLUGIN_TIMEOUT.as_secs()));
            }
            Err(e) => return Err(format!("the credential plugin `{name}`: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("the credential plugin `{name}` failed ({status})"));
    }
    let credential: ExecCredential =
        serde_json::from_slice(&out).map_err(|e| format!("the credential plugin `{name}` did not print an ExecCredential: {e}"))?;
    credential.status.ok_or_else(|| format!("the credential plugin `{name}` printed an ExecCredential without a status"))
}
