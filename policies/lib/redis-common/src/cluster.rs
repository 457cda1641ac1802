//! The cluster through the host: read-only Redis commands on members (the
//! StatefulSet's Pods, from `kube-common`). Compiled for the components only
//! in effect: nothing here runs in the native unit tests.

use kube_common::Pod;
use runner_sdk::prelude::*;
use runner_sdk::redis_read;

use crate::health::{self, State};

/// A read-only command on `member`, its reply as JSON.
pub fn read(member: &str, args: &[&str]) -> Result<Value, Error> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let reply = redis_read::command(member, &args).map_err(|e| Error::new(e.code, format!("{member}: {}: {}", args.join(" "), e.message)))?;
    serde_json::from_str(&reply).map_err(|e| Error::internal(format!("{member}: host returned invalid JSON: {e}")))
}

/// A read-only command whose reply is text (INFO, CLUSTER NODES).
pub fn read_text(member: &str, args: &[&str]) -> Result<String, Error> {
    match read(member, args)? {
        Value::String(text) => Ok(text),
        other => Err(Error::internal(format!("{member}: {}: expected text, got {other}", args.join(" ")))),
    }
}

/// CLUSTER INFO, CLUSTER NODES and INFO replication of one member.
pub fn state(member: &str) -> Result<State, Error> {
    let cluster = read_text(member, &["CLUSTER", "INFO"])?;
    let nodes = read_text(member, &["CLUSTER", "NODES"])?;
    let replication = read_text(member, &["INFO", "replication"])?;
    State::parse(&cluster, &nodes, &replication).map_err(|e| Error::internal(format!("{member}: {e}")))
}

/// Every Pod with what its member answered. A Pod that is not Ready is
/// not asked (it would not answer, or not for long).
pub fn gather(pods: &[Pod]) -> Vec<health::Member> {
    pods.iter()
        .map(|p| {
            let state = if p.terminating {
                Err("Pod is terminating".to_string())
            } else if !p.ready {
                Err(format!("Pod not Ready (phase {}, node {})", p.phase, p.node.as_deref().unwrap_or("none")))
            } else {
                state(&p.name).map_err(|e| format!("not answering: {}", e.message))
            };
            health::Member { name: p.name.clone(), ip: p.ip.clone(), ready: p.ready, state }
        })
        .collect()
}
