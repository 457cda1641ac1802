//! The session around one run: record its host calls to a file, or answer
//! them from one (`runner exec --record FILE` / `--replay FILE`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::{Exit, Failure, short_digest};
use crate::imports::RunContext;
use crate::policy::Policy;
use crate::session::{PolicyInfo, Session, SessionFile};

/// The session for a run: recording, replaying `replay`, or off.
pub(super) fn open(record: Option<&Path>, replay: Option<&Path>, policy: &Policy) -> Result<Session, Failure> {
    if record.is_some() {
        return Ok(Session::record());
    }
    let Some(path) = replay else { return Ok(Session::off()) };
    let file = SessionFile::load(path).map_err(Failure::bad_input)?;
    if let Some(recorded) = &file.policy
        && (recorded.name != policy.name() || (!recorded.digest.is_empty() && recorded.digest != policy.digest))
    {
        tracing::warn!(
            "{}: recorded with {} {}, replaying {} {}",
            path.display(),
            recorded.name,
            short_digest(&recorded.digest),
            policy.name(),
            short_digest(&policy.digest)
        );
    }
    Ok(Session::replay(file))
}

/// After the run: write the recording, or say how the replay went. A replay
/// that diverged is the run's failure (exit 1), naming the call.
pub(super) fn close(
    context: &RunContext,
    record: Option<&Path>,
    replay: Option<&Path>,
    policy: &Policy,
    config: &Value,
    gates: BTreeMap<String, String>,
    started: String,
) -> Result<(), Failure> {
    let session = &context.session;
    if let Some(path) = record {
        let mut file = session.to_file();
        file.dry_run = context.dry_run;
        let m = &policy.manifest;
        file.policy = Some(PolicyInfo { name: m.name.clone(), version: m.version.clone(), digest: policy.digest.clone() });
        file.recorded = Some(started);
        let mut config = config.clone();
        crate::journal::redact(&mut config);
        file.config = Some(config);
        file.gates = gates;
        file.save(path).map_err(|e| Failure::bad_input(format!("{}: cannot write the session: {e}", path.display())))?;
        tracing::info!("recorded {} call(s) to {}", file.calls.len(), path.display());
    }
    if let Some(path) = replay {
        if let Some(divergence) = session.divergence() {
            return Err(Failure::new(Exit::PolicyFailed, format!("{}: {divergence}", path.display())));
        }
        let unused = session.unused();
        if let Some(first) = unused.first() {
            tracing::warn!("{}: {} recorded call(s) were never asked for, from {}", path.display(), unused.len(), first.describe());
        }
    }
    Ok(())
}
