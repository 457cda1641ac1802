//! Gate `pg-healthy`: after a change, is the PostgreSQL cluster whole?
//! One primary that takes writes, every other member streaming from it, the
//! Service pointing at it, and (optionally) one table's row count equal on
//! every member once replay has caught up.

use kube_common::POD_NAME_LABEL;
use pg_common::cluster::{ClusterConfig, Found};
use pg_common::pg::{self, CAUGHT_UP_SQL, Standby, State};
use pg_common::rows;
use runner_sdk::prelude::*;
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    table: String,
    catch_up_timeout: u64,
    #[serde(flatten)]
    cluster: ClusterConfig,
}

/// The write-readiness findings for the primary.
fn judge_primary(check: &mut Check, primary: &str, state: &State, standbys: &[Standby]) {
    if state.in_recovery {
        check.fail(format!("{primary}: in recovery, cannot take writes"));
    }
    if state.read_only {
        check.fail(format!("{primary}: default_transaction_read_only = on (fenced), writes are refused"));
    }
    if state.waits_for_standbys() && !standbys.iter().any(Standby::is_synchronous) {
        check
            .fail(format!("{primary}: synchronous_standby_names = '{}' but no synchronous standby is connected, so every commit would wait", state.sync_names));
    }
}

/// Streaming findings for every member expected to be a standby.
fn judge_standbys(check: &mut Check, primary: &str, expected: &[(String, Option<String>)], standbys: &[Standby], states: &[(String, Result<State, Error>)]) {
    for (member, ip) in expected {
        match standbys.iter().find(|s| s.is(member, ip.as_deref())) {
            Some(s) if s.state == "streaming" => {}
            Some(s) => {
                check.fail(format!("{member}: replication state {} on {primary}, not streaming", s.state));
            }
            None => {
                check.fail(format!("{member}: not connected to {primary}"));
            }
        }
        match states.iter().find(|(m, _)| m == member).map(|(_, s)| s) {
            Some(Ok(state)) if !state.in_recovery => {
                check.fail(format!("{member}: not in recovery: a second writable primary beside {primary}"));
            }
            Some(Err(e)) => {
                check.fail(format!("{member}: does not answer: {}", e.message));
            }
            _ => {}
        }
    }
    for s in standbys {
        if !expected.iter().any(|(m, ip)| s.is(m, ip.as_deref())) {
            check.warn(format!(
                "{primary}: streams to {} ({}), which is not a member of the StatefulSet",
                s.application_name,
                s.client_addr.as_deref().unwrap_or("?")
            ));
        }
    }
}

/// Whether every standby count lies between the primary's counts before and
/// after (rows committed meanwhile may or may not be in a standby's count).
fn counts_agree(before: i64, after: i64, standbys: &[(String, i64)]) -> Result<(), String> {
    let (low, high) = (before.min(after), before.max(after));
    let off: Vec<String> = standbys.iter().filter(|(_, n)| *n < low || *n > high).map(|(m, n)| format!("{m} has {n}")).collect();
    if off.is_empty() {
        Ok(())
    } else {
        let primary = if low == high { format!("{low}") } else { format!("{low} to {high}") };
        Err(format!("{}, the primary {primary}", off.join(", ")))
    }
}

fn count(member: &str, relation: &str) -> Result<i64, Error> {
    let rows = pg::query(member, &format!("SELECT count(*)::int8 AS n FROM {relation}"), &[])?;
    rows.first().and_then(|r| rows::num(r, "n")).map(|n| n as i64).ok_or_else(|| Error::internal(format!("{member}: no row count for {relation}")))
}

/// One comparison round; `Ok(None)` when a standby has not replayed far enough yet.
fn compare_counts(primary: &str, relation: &str, members: &[String]) -> Result<Option<Result<(), String>>, Error> {
    let rows = pg::query(primary, &format!("SELECT count(*)::int8 AS n, pg_current_wal_lsn()::text AS lsn FROM {relation}"), &[])?;
    let row = rows.first().ok_or_else(|| Error::internal(format!("{primary}: no row count for {relation}")))?;
    let before = rows::num(row, "n").unwrap_or(-1.0) as i64;
    let lsn = rows::text(row, "lsn").unwrap_or("0/0").to_string();
    let mut counts = Vec::new();
    for member in members {
        let caught = pg::query(member, CAUGHT_UP_SQL, &[&lsn])?;
        if caught.first().and_then(|r| rows::flag(r, "caught_up")) != Some(true) {
            return Ok(None);
        }
        counts.push((member.clone(), count(member, relation)?));
    }
    let after = count(primary, relation)?;
    Ok(Some(counts_agree(before, after, &counts)))
}

fn check_table(check: &mut Check, config: &Config, primary: &str, members: &[String]) -> Result<(), Error> {
    let rows = pg::query(primary, "SELECT to_regclass($1::text)::text AS relation", &[&config.table])?;
    // to_regclass parses the name as SQL does and returns it quoted as needed,
    // so the text put into the count query is a name, never a statement.
    let Some(relation) = rows.first().and_then(|r| rows::text(r, "relation")).map(str::to_string) else {
        check.fail(format!("{primary}: table {} does not exist", config.table));
        return Ok(());
    };
    let mut last: Option<Result<(), String>> = None;
    let waited = wait_until(&format!("row counts of {relation} to match"), config.catch_up_timeout, 200, || {
        let round = compare_counts(primary, &relation, members)?;
        let agreed = matches!(round, Some(Ok(())));
        if round.is_some() {
            last = round;
        }
        Ok(agreed.then_some(()))
    });
    match (waited, last) {
        (Ok(()), _) => {
            check.note(format!("{relation}: row counts match on {} member(s)", members.len() + 1));
        }
        (Err(e), Some(Err(off))) if e.code == ErrorCode::Timeout => {
            check.fail(format!("{relation}: row counts differ after {} ms: {off}", config.catch_up_timeout));
        }
        (Err(e), _) if e.code == ErrorCode::Timeout => {
            check.fail(format!("{relation}: standbys did not replay {primary}'s WAL within {} ms", config.catch_up_timeout));
        }
        (Err(e), _) => return Err(e),
    }
    Ok(())
}

struct Gate;

impl runner_sdk::gate::Guest for Gate {
    fn evaluate(config: String) -> Result<Verdict, Error> {
        let config: Config = parse_config(&config)?;
        let Found { set, pods, service_target: target, primary } = config.cluster.find()?;
        let mut check = Check::new();
        check.evidence("primary", &primary);
        let state = pg::state(&primary)?;
        let standbys = pg::standbys(&primary)?;
        judge_primary(&mut check, &primary, &state, &standbys);
        match target.as_deref() {
            Some(t) if t == primary => {}
            Some(t) => {
                check.fail(format!("Service {} selects {t}, not the primary {primary}", config.cluster.service));
            }
            None => {
                check.fail(format!("Service {} selects no member by {}", config.cluster.service, POD_NAME_LABEL));
            }
        }
        let expected: Vec<(String, Option<String>)> = (0..set.replicas)
            .map(|n| format!("{}-{n}", set.name))
            .filter(|m| *m != primary)
            .map(|m| {
                let ip = pods.iter().find(|p| p.name == m).and_then(|p| p.ip.clone());
                (m, ip)
            })
            .collect();
        let states: Vec<(String, Result<State, Error>)> = expected.iter().map(|(m, _)| (m.clone(), pg::state(m))).collect();
        judge_standbys(&mut check, &primary, &expected, &standbys, &states);
        check.evidence(
            "standbys",
            standbys
                .iter()
                .map(|s| json!({"member": pg::member_of(s, &pods).unwrap_or_else(|| s.application_name.clone()), "state": s.state, "sync_state": s.sync_state}))
                .collect::<Vec<_>>(),
        );
        if !config.table.is_empty() {
            let reachable: Vec<String> = states.iter().filter(|(_, s)| s.as_ref().is_ok_and(|s| s.in_recovery)).map(|(m, _)| m.clone()).collect();
            check_table(&mut check, &config, &primary, &reachable)?;
        }
        if !check.failed() {
            check.note(format!("{primary} takes writes; {} standby(s) stream from it", expected.len()));
        }
        Ok(check.verdict())
    }
}

runner_sdk::export_gate!(Gate);

#[cfg(test)]
mod tests {
    use super::*;

    fn state(in_recovery: bool, read_only: bool, sync_names: &str) -> State {
        State { in_recovery, read_only, sync_names: sync_names.into(), sync_commit: "on".into(), ..Default::default() }
    }

    fn standby(name: &str, state: &str, sync: &str) -> Standby {
        Standby { application_name: name.into(), state: state.into(), sync_state: sync.into(), ..Default::default() }
    }

    #[test]
    fn a_writable_primary() {
        let mut ok = Check::new();
        judge_primary(&mut ok, "pg-0", &state(false, false, "ANY 1 (*)"), &[standby("pg-1", "streaming", "quorum")]);
        assert_eq!(ok.verdict().outcome, Outcome::Pass);
        let mut fenced = Check::new();
        judge_primary(&mut fenced, "pg-0", &state(false, true, ""), &[]);
        assert_eq!(fenced.verdict().reasons, vec!["pg-0: default_transaction_read_only = on (fenced), writes are refused"]);
        let mut blocked = Check::new();
        judge_primary(&mut blocked, "pg-0", &state(false, false, "ANY 1 (*)"), &[standby("pg-1", "catchup", "quorum")]);
        assert_eq!(
            blocked.verdict().reasons,
            vec!["pg-0: synchronous_standby_names = 'ANY 1 (*)' but no synchronous standby is connected, so every commit would wait"]
        );
    }

    #[test]
    fn every_standby_streams() {
        let expected = vec![("pg-1".to_string(), None), ("pg-2".to_string(), Some("10.0.0.2".to_string()))];
        let mut check = Check::new();
        let mut by_ip = standby("walreceiver", "streaming", "quorum");
        by_ip.client_addr = Some("10.0.0.2".into());
        let states = vec![("pg-1".to_string(), Ok(state(true, true, ""))), ("pg-2".to_string(), Ok(state(true, true, "")))];
        judge_standbys(&mut check, "pg-0", &expected, &[standby("pg-1", "streaming", "quorum"), by_ip], &states);
        assert_eq!(check.verdict().outcome, Outcome::Pass, "{:?}", check.verdict().reasons);

        let mut bad = Check::new();
        let states =
            vec![("pg-1".to_string(), Ok(state(false, false, ""))), ("pg-2".to_string(), Err(Error::new(ErrorCode::Unavailable, "pg-2: connection refused")))];
        judge_standbys(&mut bad, "pg-0", &expected, &[standby("pg-1", "catchup", "async"), standby("pg-9", "streaming", "async")], &states);
        assert_eq!(
            bad.verdict().reasons,
            vec![
                "pg-1: replication state catchup on pg-0, not streaming",
                "pg-1: not in recovery: a second writable primary beside pg-0",
                "pg-2: not connected to pg-0",
                "pg-2: does not answer: pg-2: connection refused",
                "pg-0: streams to pg-9 (?), which is not a member of the StatefulSet",
            ]
        );
    }

    #[test]
    fn row_counts() {
        assert!(counts_agree(10, 10, &[("pg-1".into(), 10), ("pg-2".into(), 10)]).is_ok());
        assert!(counts_agree(10, 14, &[("pg-1".into(), 12)]).is_ok());
        assert_eq!(counts_agree(10, 10, &[("pg-1".into(), 9), ("pg-2".into(), 10)]), Err("pg-1 has 9, the primary 10".into()));
        assert_eq!(counts_agree(10, 12, &[("pg-1".into(), 13)]), Err("pg-1 has 13, the primary 10 to 12".into()));
    }
}
