//! Reading PostgreSQL members: the SQL every policy sends, and what it means.
//! Parameters are bound as text, so every placeholder is cast from `text`
//! explicitly (`$1::text::pg_lsn`), whatever type the backend declares.

use runner_sdk::{Error, ErrorCode, postgres_read};

use crate::rows::{self, Row};
use crate::text::parse_lsn;
use kube_common::Pod;

/// A member's view of the standbys streaming from it. `replay_lag` is NULL
/// once a standby has caught up and WAL is idle, which means no lag. On a
/// standby (the upstream of cascading standbys) the byte lag is measured
/// from the WAL it has received, as it has no insert position.
pub const REPLICATION_SQL: &str = "SELECT application_name, client_addr::text AS client_addr, state, sync_state, \
(extract(epoch FROM replay_lag) * 1000)::float8 AS replay_lag_ms, \
pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, replay_lsn)::float8 AS replay_lag_bytes, \
replay_lsn::text AS replay_lsn \
FROM pg_stat_replication";

/// A member's own view of itself. `read_only` is the configured default
/// (`reset_val`), not the session's, because a gate's query runs inside a
/// READ ONLY transaction.
pub const STATE_SQL: &str = "SELECT pg_is_in_recovery() AS in_recovery, \
CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn, \
pg_last_wal_receive_lsn()::text AS receive_lsn, \
pg_last_wal_replay_lsn()::text AS replay_lsn, \
(SELECT reset_val FROM pg_settings WHERE name = 'default_transaction_read_only') AS read_only, \
current_setting('synchronous_standby_names') AS sync_names, \
current_setting('synchronous_commit') AS sync_commit, \
(SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS receiver, \
(SELECT sender_host FROM pg_stat_wal_receiver LIMIT 1) AS sender_host";

/// Whether a standby has replayed up to an LSN taken on the primary.
pub const CAUGHT_UP_SQL: &str = "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn AS caught_up, pg_last_wal_replay_lsn()::text AS replay_lsn";

/// The port a member's server listens on, as its Pod declares it.
pub fn port(pod: &Pod) -> u16 {
    pod.container_port.unwrap_or(DEFAULT_PORT)
}

/// PostgreSQL's own default, for a Pod that declares no port.
pub const DEFAULT_PORT: u16 = 5432;

/// Run a read-only query on `member`; errors name the member.
pub fn query(member: &str, sql: &str, params: &[&str]) -> Result<Vec<Row>, Error> {
    let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
    let text = postgres_read::query(member, sql, &params).map_err(|e| Error::new(e.code, format!("{member}: {}", e.message)))?;
    rows::parse(&text)
}

/// One standby as the primary's `pg_stat_replication` shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Standby {
    pub application_name: String,
    pub client_addr: Option<String>,
    pub state: String,
    pub sync_state: String,
    pub lag_ms: Option<f64>,
    pub lag_bytes: Option<f64>,
    pub replay_lsn: Option<String>,
}

impl Standby {
    pub fn from_row(row: &Row) -> Standby {
        Standby {
            application_name: rows::text(row, "application_name").unwrap_or_default().to_string(),
            client_addr: rows::text(row, "client_addr").map(|a| a.split('/').next().unwrap_or(a).to_string()),
            state: rows::text(row, "state").unwrap_or("unknown").to_string(),
            sync_state: rows::text(row, "sync_state").unwrap_or("unknown").to_string(),
            lag_ms: rows::num(row, "replay_lag_ms"),
            lag_bytes: rows::num(row, "replay_lag_bytes"),
            replay_lsn: rows::text(row, "replay_lsn").map(str::to_string),
        }
    }

    /// Streaming, and counted by synchronous_standby_names (`sync` for a
    /// priority list, `quorum` for `ANY n (...)`).
    pub fn is_synchronous(&self) -> bool {
        self.state == "streaming" && matches!(self.sync_state.as_str(), "sync" | "quorum")
    }

    /// Whether this row is `member`: by application_name (what the lab and
    /// these policies set), else by the member's Pod address.
    pub fn is(&self, member: &str, ip: Option<&str>) -> bool {
        self.application_name == member || (ip.is_some() && self.client_addr.as_deref() == ip)
    }
}

/// The standbys connected to `primary`.
pub fn standbys(primary: &str) -> Result<Vec<Standby>, Error> {
    Ok(query(primary, REPLICATION_SQL, &[])?.iter().map(Standby::from_row).collect())
}

/// The member a row stands for, among `pods`: by name, else by address.
pub fn member_of<'a>(standby: &Standby, pods: impl IntoIterator<Item = &'a Pod>) -> Option<String> {
    let pods: Vec<&Pod> = pods.into_iter().collect();
    pods.iter()
        .find(|p| p.name == standby.application_name)
        .or_else(|| pods.iter().find(|p| p.ip.is_some() && p.ip == standby.client_addr))
        .map(|p| p.name.clone())
}

/// A member's own state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub in_recovery: bool,
    pub current_lsn: Option<u64>,
    pub receive_lsn: Option<u64>,
    pub replay_lsn: Option<u64>,
    pub read_only: bool,
    pub sync_names: String,
    pub sync_commit: String,
    pub receiver: Option<String>,
    pub sender_host: Option<String>,
}

impl State {
    pub fn from_row(row: &Row) -> State {
        let lsn = |key| rows::text(row, key).and_then(parse_lsn);
        State {
            in_recovery: rows::flag(row, "in_recovery").unwrap_or(true),
            current_lsn: lsn("current_lsn"),
            receive_lsn: lsn("receive_lsn"),
            replay_lsn: lsn("replay_lsn"),
            read_only: rows::flag(row, "read_only").unwrap_or(false),
            sync_names: rows::text(row, "sync_names").unwrap_or_default().to_string(),
            sync_commit: rows::text(row, "sync_commit").unwrap_or_default().to_string(),
            receiver: rows::text(row, "receiver").map(str::to_string),
            sender_host: rows::text(row, "sender_host").map(str::to_string),
        }
    }

    /// How far this member's WAL reaches: a primary's insert position, a
    /// standby's received or replayed WAL, whichever is further (promotion
    /// replays everything received before it ends recovery).
    pub fn wal_position(&self) -> Option<u64> {
        self.current_lsn.or(match (self.receive_lsn, self.replay_lsn) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        })
    }

    /// Whether commits wait for a standby (and so block when none is connected).
    pub fn waits_for_standbys(&self) -> bool {
        !self.sync_names.trim().is_empty() && !matches!(self.sync_commit.as_str(), "off" | "local")
    }
}

pub fn state(member: &str) -> Result<State, Error> {
    let rows = query(member, STATE_SQL, &[])?;
    rows.first().map(State::from_row).ok_or_else(|| Error::internal(format!("{member}: no answer to the state query")))
}

/// Who may be the primary, most likely first: the configured member alone,
/// else the single Pod labelled `role=primary`, then the Service's choice.
pub fn primary_candidates(configured: &str, pods: &[Pod], service_target: Option<&str>) -> Vec<String> {
    if !configured.is_empty() {
        return vec![configured.to_string()];
    }
    let mut candidates = Vec::new();
    let labelled: Vec<&Pod> = pods.iter().filter(|p| p.role.as_deref() == Some("primary") && !p.terminating).collect();
    if let [only] = labelled.as_slice() {
        candidates.push(only.name.clone());
    }
    if let Some(target) = service_target
        && !candidates.iter().any(|c| c == target)
    {
        candidates.push(target.to_string());
    }
    for pod in labelled {
        if !candidates.contains(&pod.name) {
            candidates.push(pod.name.clone());
        }
    }
    candidates
}

/// The first candidate that says it is not in recovery. Labels lag behind a
/// promotion, so the database has the last word.
pub fn confirm_primary(candidates: &[String]) -> Result<String, Error> {
    if candidates.is_empty() {
        return Err(Error::new(ErrorCode::NotFound, "no primary: no Pod is labelled role=primary and the Service selects no member; set config `primary`"));
    }
    let mut findings = Vec::new();
    let mut first_error: Option<ErrorCode> = None;
    for candidate in candidates {
        match query(candidate, "SELECT pg_is_in_recovery() AS in_recovery", &[]) {
            Ok(rows) if rows.first().and_then(|r| rows::flag(r, "in_recovery")) == Some(false) => return Ok(candidate.clone()),
            Ok(_) => findings.push(format!("{candidate} is in recovery (a standby)")),
            Err(e) => {
                first_error.get_or_insert(e.code);
                findings.push(e.message);
            }
        }
    }
    Err(Error::new(first_error.unwrap_or(ErrorCode::NotFound), format!("no primary found: {}", findings.join("; "))))
}

/// The most advanced member among `(name, wal position)`, ties to the
/// earliest listed (callers list their preferred member first).
pub fn most_advanced(members: &[(String, Option<u64>)]) -> Option<String> {
    let mut best: Option<(&String, u64)> = None;
    for (name, position) in members {
        if let Some(position) = position
            && best.is_none_or(|(_, b)| *position > b)
        {
            best = Some((name, *position));
        }
    }
    best.map(|(name, _)| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, role: Option<&str>) -> Pod {
        Pod { name: name.into(), role: role.map(str::to_string), ip: Some(format!("ip-{name}")), ..Default::default() }
    }

    #[test]
    fn candidates_for_primary() {
        let pods = [pod("pg-0", Some("primary")), pod("pg-1", Some("replica"))];
        assert_eq!(primary_candidates("", &pods, Some("pg-0")), vec!["pg-0"]);
        assert_eq!(primary_candidates("", &pods, Some("pg-1")), vec!["pg-0", "pg-1"]);
        assert_eq!(primary_candidates("pg-2", &pods, Some("pg-1")), vec!["pg-2"]);
        // Two labelled primaries (a label lagging after a promotion): the Service first.
        let two = [pod("pg-0", Some("primary")), pod("pg-3", Some("primary"))];
        assert_eq!(primary_candidates("", &two, Some("pg-3")), vec!["pg-3", "pg-0"]);
        assert!(primary_candidates("", &[pod("pg-0", None)], None).is_empty());
    }

    #[test]
    fn replication_rows() {
        let row = json!({"application_name": "walreceiver", "client_addr": "127.0.1.2/32", "state": "streaming", "sync_state": "quorum", "replay_lag_ms": null, "replay_lag_bytes": "0", "replay_lsn": "0/3000060"});
        let s = Standby::from_row(row.as_object().unwrap());
        assert!(s.is_synchronous());
        assert_eq!(s.lag_ms, None);
        assert_eq!(s.lag_bytes, Some(0.0));
        let pods = [pod("pg-1", None), Pod { name: "pg-2".into(), ip: Some("127.0.1.2".into()), ..Default::default() }];
        assert_eq!(member_of(&s, &pods).as_deref(), Some("pg-2"));
        assert!(s.is("pg-2", Some("127.0.1.2")));
        let async_row = json!({"application_name": "pg-1", "state": "streaming", "sync_state": "async"});
        assert!(!Standby::from_row(async_row.as_object().unwrap()).is_synchronous());
        let catchup = json!({"application_name": "pg-1", "state": "catchup", "sync_state": "quorum"});
        assert!(!Standby::from_row(catchup.as_object().unwrap()).is_synchronous());
    }

    #[test]
    fn member_state() {
        let primary = json!({"in_recovery": false, "current_lsn": "0/5000000", "receive_lsn": null, "replay_lsn": null, "read_only": "off", "sync_names": "ANY 1 (*)", "sync_commit": "on"});
        let s = State::from_row(primary.as_object().unwrap());
        assert_eq!(s.wal_position(), Some(0x500_0000));
        assert!(s.waits_for_standbys() && !s.read_only && !s.in_recovery);
        let standby = json!({"in_recovery": "t", "current_lsn": null, "receive_lsn": "0/4000000", "replay_lsn": "0/3F00000", "read_only": "on", "sync_names": "", "sync_commit": "on"});
        let s = State::from_row(standby.as_object().unwrap());
        assert_eq!(s.wal_position(), Some(0x400_0000));
        assert!(!s.waits_for_standbys() && s.read_only && s.in_recovery);
    }

    #[test]
    fn picks_the_most_advanced() {
        let members = vec![("pg-1".to_string(), Some(10)), ("pg-2".to_string(), Some(30)), ("pg-3".to_string(), None), ("pg-4".to_string(), Some(30))];
        assert_eq!(most_advanced(&members).as_deref(), Some("pg-2"));
        assert_eq!(most_advanced(&[("pg-1".to_string(), None)]), None);
    }
}
