//! The replica set as the host shows it: the StatefulSet's Pods, and the
//! replica-set status asked of whichever member answers (the primary first).

use kube_common::Pod;
use runner_sdk::mongo_read;
use runner_sdk::prelude::*;

use crate::rs::{self, ConfigMember, Hello, Status};

/// Run a read-only command against `admin` on `member`; the reply parsed.
/// A failure names the member and the command.
pub fn read(member: &str, command: &Value) -> Result<Value, Error> {
    let name = command.as_object().and_then(|o| o.keys().next()).cloned().unwrap_or_default();
    let text = mongo_read::run_command(member, "admin", &command.to_string()).map_err(|e| Error::new(e.code, format!("{name} on {member}: {}", e.message)))?;
    serde_json::from_str(&text).map_err(|e| Error::internal(format!("{name} on {member}: host returned invalid JSON: {e}")))
}

/// `hello` on `member`.
pub fn hello(member: &str) -> Result<Hello, Error> {
    Ok(rs::parse_hello(&read(member, &json!({"hello": 1}))?))
}

/// `replSetGetStatus` on `member`.
pub fn status_of(member: &str) -> Result<Status, Error> {
    rs::parse_status(&read(member, &json!({"replSetGetStatus": 1}))?).map_err(|e| Error::internal(format!("{member}: {e}")))
}

/// `replSetGetConfig` on `member`.
pub fn config_of(member: &str) -> Result<Vec<ConfigMember>, Error> {
    rs::parse_config(&read(member, &json!({"replSetGetConfig": 1}))?).map_err(|e| Error::internal(format!("{member}: {e}")))
}

/// Pod names and IPs, as [`rs::pod_of`] takes them.
pub fn pod_index(pods: &[Pod]) -> Vec<(String, Option<String>)> {
    pods.iter().map(|p| (p.name.clone(), p.ip.clone())).collect()
}

/// The replica-set status, asked of the primary when some member can name
/// it (`hello`), else of any member that answers. Returns the member that
/// answered and its status; `unavailable` naming each member's error when
/// none does. A member that did not answer `hello` is not asked again (an
/// unreachable member costs the backend's connect timeout once, not twice).
pub fn status(pods: &[Pod]) -> Result<(String, Status), Error> {
    if pods.is_empty() {
        return Err(Error::new(ErrorCode::NotFound, "the StatefulSet has no Pods"));
    }
    let index = pod_index(pods);
    let mut primary: Option<String> = None;
    let mut unreachable: Vec<&str> = Vec::new();
    let mut errors = Vec::new();
    for pod in pods {
        match hello(&pod.name) {
            Ok(h) => {
                primary =
                    if h.writable_primary { Some(pod.name.clone()) } else { h.primary.as_deref().and_then(|p| rs::pod_of(p, &index)).map(str::to_string) };
                if primary.is_some() {
                    break;
                }
            }
            Err(e) if e.code == ErrorCode::Denied => return Err(e),
            Err(e) => {
                unreachable.push(&pod.name);
                errors.push(e.message);
            }
        }
    }
    let mut order: Vec<String> = primary.into_iter().chain(pods.iter().map(|p| p.name.clone())).filter(|n| !unreachable.contains(&n.as_str())).collect();
    let mut seen = Vec::new();
    order.retain(|n| {
        if seen.contains(n) {
            false
        } else {
            seen.push(n.clone());
            true
        }
    });
    for member in order {
        match status_of(&member) {
            Ok(status) => return Ok((member, status)),
            Err(e) if e.code == ErrorCode::Denied => return Err(e),
            Err(e) => errors.push(e.message),
        }
    }
    Err(Error::new(ErrorCode::Unavailable, format!("no member answered replSetGetStatus: {}", errors.join("; "))))
}

/// The Pod name of a replica-set member (`host:port`), or the member name itself.
pub fn pod_name(member: &str, pods: &[Pod]) -> String {
    rs::pod_of(member, &pod_index(pods)).map(str::to_string).unwrap_or_else(|| member.to_string())
}
