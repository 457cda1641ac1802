//! Replica-set replies in MongoDB's documented shapes, and what follows
//! from them: who is primary, how far each secondary lags, whether a
//! majority of voters and the `w: "majority"` write concern are reachable,
//! and which secondary should win an election. Pure: no host calls.
//!
//! The runner's MongoDB backend answers in relaxed Extended JSON (numbers
//! as numbers, `{"$date": "<ISO-8601>"}`, `{"$timestamp": {"t", "i"}}`);
//! the canonical forms (`{"$numberLong": "3"}`, `{"$date": {"$numberLong":
//! "..."}}`) are read too, so hand-written sessions may use either.

use kube_common::text::parse_timestamp_ms;
use serde_json::Value;

/// `replSetGetStatus` `members[].state` values (MongoDB's documented member states).
pub const PRIMARY: i64 = 1;
pub const SECONDARY: i64 = 2;
pub const RECOVERING: i64 = 3;
pub const STARTUP2: i64 = 5;
pub const ARBITER: i64 = 7;
pub const ROLLBACK: i64 = 9;

/// A number in any Extended JSON form.
pub fn number(v: &Value) -> Option<f64> {
    if let Some(n) = v.as_f64() {
        return Some(n);
    }
    ["$numberInt", "$numberLong", "$numberDouble"].iter().find_map(|k| v[*k].as_str()).and_then(|s| s.parse().ok())
}

/// Milliseconds since the epoch of a `{"$date": ...}` (relaxed ISO-8601 or canonical).
pub fn date_ms(v: &Value) -> Option<u64> {
    let d = &v["$date"];
    if let Some(text) = d.as_str() {
        return parse_timestamp_ms(text);
    }
    number(d).filter(|n| *n >= 0.0).map(|n| n as u64)
}

/// A BSON timestamp `{"$timestamp": {"t": seconds, "i": increment}}`; ordered as MongoDB orders them.
pub fn timestamp(v: &Value) -> Option<(u64, u64)> {
    let ts = &v["$timestamp"];
    Some((number(&ts["t"])? as u64, number(&ts["i"])? as u64))
}

/// One entry of `replSetGetStatus` `members[]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Member {
    pub id: i64,
    /// `host:port` as in the replica-set configuration.
    pub name: String,
    pub state: i64,
    pub state_str: String,
    pub health: f64,
    /// `optime.ts`.
    pub optime: Option<(u64, u64)>,
    /// `optimeDate` (ms since the epoch); absent or the epoch for a member that cannot be reached.
    pub optime_ms: Option<u64>,
    pub is_self: bool,
    pub last_heartbeat_message: String,
    pub sync_source: String,
}

impl Member {
    /// Whether it is up and serving as a data-bearing member.
    pub fn healthy(&self) -> bool {
        self.health == 1.0 && (self.state == PRIMARY || self.state == SECONDARY)
    }

    /// The host part of `host:port`.
    pub fn host(&self) -> &str {
        host_of(&self.name)
    }

    /// When it last applied an operation (ms), from `optimeDate`, else `optime.ts`.
    pub fn applied_ms(&self) -> Option<u64> {
        self.optime_ms.filter(|ms| *ms > 0).or_else(|| self.optime.filter(|(t, _)| *t > 0).map(|(t, _)| t * 1000))
    }
}

/// `host` of `host:port` (an IPv6 `[::1]:27017` keeps its brackets off).
pub fn host_of(name: &str) -> &str {
    let host = name.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(name, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The parts of a `replSetGetStatus` reply the policies use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    pub set: String,
    /// `date`: the answering member's clock (ms).
    pub date_ms: Option<u64>,
    pub members: Vec<Member>,
    /// `majorityVoteCount` (MongoDB 4.2.1+).
    pub majority_vote_count: Option<u64>,
    /// `writeMajorityCount` (MongoDB 4.2.1+): data-bearing voters a `w: "majority"` write needs.
    pub write_majority_count: Option<u64>,
    /// `optimes.lastCommittedOpTime.ts` and `optimes.appliedOpTime.ts` of the answering member.
    pub last_committed: Option<(u64, u64)>,
    pub applied: Option<(u64, u64)>,
}

/// Parse a `replSetGetStatus` reply; an `ok: 0` reply or one without `members` is an error.
pub fn parse_status(reply: &Value) -> Result<Status, String> {
    if number(&reply["ok"]) != Some(1.0) {
        let code = number(&reply["code"]).map(|c| format!("{c} ")).unwrap_or_default();
        return Err(format!("replSetGetStatus failed: {code}{} {}", reply["codeName"].as_str().unwrap_or(""), reply["errmsg"].as_str().unwrap_or(""))
            .trim()
            .to_string());
    }
    let members = reply["members"].as_array().ok_or("replSetGetStatus reply has no `members`")?;
    let members = members
        .iter()
        .map(|m| Member {
            id: number(&m["_id"]).unwrap_or(-1.0) as i64,
            name: m["name"].as_str().unwrap_or_default().to_string(),
            state: number(&m["state"]).unwrap_or(-1.0) as i64,
            state_str: m["stateStr"].as_str().unwrap_or("?").to_string(),
            health: number(&m["health"]).unwrap_or(0.0),
            optime: timestamp(&m["optime"]["ts"]),
            optime_ms: date_ms(&m["optimeDate"]),
            is_self: m["self"].as_bool().unwrap_or(false),
            last_heartbeat_message: m["lastHeartbeatMessage"].as_str().unwrap_or_default().to_string(),
            sync_source: m["syncSourceHost"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    Ok(Status {
        set: reply["set"].as_str().unwrap_or_default().to_string(),
        date_ms: date_ms(&reply["date"]),
        members,
        majority_vote_count: number(&reply["majorityVoteCount"]).map(|n| n as u64),
        write_majority_count: number(&reply["writeMajorityCount"]).map(|n| n as u64),
        last_committed: timestamp(&reply["optimes"]["lastCommittedOpTime"]["ts"]),
        applied: timestamp(&reply["optimes"]["appliedOpTime"]["ts"]),
    })
}

/// One entry of `replSetGetConfig` `config.members[]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigMember {
    pub host: String,
    pub votes: u64,
    pub priority: f64,
    pub arbiter: bool,
    pub hidden: bool,
}

/// Parse a `replSetGetConfig` reply (`{config: {members: [...]}}`), defaults as documented (votes 1, priority 1).
pub fn parse_config(reply: &Value) -> Result<Vec<ConfigMember>, String> {
    let members = reply["config"]["members"].as_array().ok_or("replSetGetConfig reply has no `config.members`")?;
    Ok(members
        .iter()
        .map(|m| ConfigMember {
            host: m["host"].as_str().unwrap_or_default().to_string(),
            votes: number(&m["votes"]).unwrap_or(1.0) as u64,
            priority: number(&m["priority"]).unwrap_or(1.0),
            arbiter: m["arbiterOnly"].as_bool().unwrap_or(false),
            hidden: m["hidden"].as_bool().unwrap_or(false),
        })
        .collect())
}

/// The parts of a `hello` (or legacy `isMaster`) reply the policies use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hello {
    pub writable_primary: bool,
    pub secondary: bool,
    /// `primary`: the member this one believes is primary (`host:port`), if any.
    pub primary: Option<String>,
    pub me: Option<String>,
    pub set: Option<String>,
}

pub fn parse_hello(reply: &Value) -> Hello {
    Hello {
        writable_primary: reply["isWritablePrimary"].as_bool().or_else(|| reply["ismaster"].as_bool()).unwrap_or(false),
        secondary: reply["secondary"].as_bool().unwrap_or(false),
        primary: reply["primary"].as_str().filter(|p| !p.is_empty()).map(str::to_string),
        me: reply["me"].as_str().map(str::to_string),
        set: reply["setName"].as_str().map(str::to_string),
    }
}

/// Which Pod a member is: the first DNS label of its host (`mongo-1.mongo.db.svc:27017`
/// → `mongo-1`, as a StatefulSet's headless Service names them), or the Pod whose IP it is.
pub fn pod_of<'a>(member_name: &str, pods: &'a [(String, Option<String>)]) -> Option<&'a str> {
    let host = host_of(member_name);
    let label = host.split('.').next().unwrap_or(host);
    pods.iter().find(|(name, ip)| name == label || ip.as_deref() == Some(host)).map(|(name, _)| name.as_str())
}

impl Status {
    /// The members in state PRIMARY.
    pub fn primaries(&self) -> Vec<&Member> {
        self.members.iter().filter(|m| m.state == PRIMARY).collect()
    }

    /// The single primary, if there is exactly one.
    pub fn primary(&self) -> Option<&Member> {
        match self.primaries().as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// How far `member` is behind the primary (ms), by `optimeDate` as
    /// `rs.printSecondaryReplicationInfo()` reckons it; `None` when either
    /// has not applied anything this status can show.
    pub fn lag_ms(&self, member: &Member) -> Option<u64> {
        let primary = self.primary()?.applied_ms()?;
        Some(primary.saturating_sub(member.applied_ms()?))
    }

    /// How far the majority commit point trails what the answering member
    /// applied (ms): writes with `w: "majority"` wait at least this long.
    pub fn commit_lag_ms(&self) -> Option<u64> {
        let (applied, _) = self.applied?;
        let (committed, _) = self.last_committed?;
        Some(applied.saturating_sub(committed) * 1000)
    }
}

/// Voting arithmetic: members by vote, from the configuration when there is
/// one (else every member votes and bears data, the default).
#[derive(Clone, Debug, PartialEq)]
pub struct Majority {
    pub voters: Vec<String>,
    pub voters_up: Vec<String>,
    /// Votes needed to elect a primary.
    pub needed: u64,
    pub data_voters_up: Vec<String>,
    /// Data-bearing voters a `w: "majority"` write needs.
    pub write_needed: u64,
}

pub fn majority(status: &Status, config: Option<&[ConfigMember]>) -> Majority {
    let entry = |m: &Member| config.and_then(|c| c.iter().find(|c| c.host == m.name));
    let votes = |m: &Member| entry(m).map_or(1, |c| c.votes);
    let arbiter = |m: &Member| entry(m).is_some_and(|c| c.arbiter) || m.state == ARBITER;
    let voters: Vec<&Member> = status.members.iter().filter(|m| votes(m) > 0).collect();
    let up = |m: &Member| m.health == 1.0 && matches!(m.state, PRIMARY | SECONDARY | ARBITER);
    let voters_up: Vec<String> = voters.iter().filter(|m| up(m)).map(|m| m.name.clone()).collect();
    let data_voters: Vec<&&Member> = voters.iter().filter(|m| !arbiter(m)).collect();
    let data_voters_up: Vec<String> = data_voters.iter().filter(|m| up(m)).map(|m| m.name.clone()).collect();
    let needed = status.majority_vote_count.unwrap_or(voters.len() as u64 / 2 + 1);
    // As MongoDB computes writeMajorityCount: a majority of voters, at most the data-bearing ones.
    let write_needed = status.write_majority_count.unwrap_or_else(|| (voters.len() as u64 / 2 + 1).min(data_voters.len() as u64));
    Majority { voters: voters.iter().map(|m| m.name.clone()).collect(), voters_up, needed, data_voters_up, write_needed }
}

/// The secondary that should win the election: healthy, electable
/// (priority > 0, not hidden, voting, not an arbiter), allowed by `eligible`
/// (say, on the upgraded pool), and the most advanced optime; ties go to
/// the lowest `_id`. Returns the member, or why none qualifies.
pub fn choose_candidate<'a>(
    status: &'a Status,
    config: Option<&[ConfigMember]>,
    max_lag_ms: u64,
    eligible: impl Fn(&Member) -> bool,
) -> Result<&'a Member, String> {
    let entry = |m: &Member| config.and_then(|c| c.iter().find(|c| c.host == m.name)).cloned();
    let mut why = Vec::new();
    let mut best: Option<&Member> = None;
    for m in status.members.iter().filter(|m| m.state != PRIMARY) {
        let reason = if !m.healthy() {
            Some(format!("{} ({}, health {})", m.state_str, m.state, m.health))
        } else if let Some(c) = entry(m).filter(|c| c.priority <= 0.0 || c.hidden || c.votes == 0 || c.arbiter) {
            Some(format!("not electable (priority {}, votes {}{})", c.priority, c.votes, if c.hidden { ", hidden" } else { "" }))
        } else if !eligible(m) {
            Some("not eligible".to_string())
        } else {
            match status.lag_ms(m) {
                Some(lag) if lag > max_lag_ms => Some(format!("{} ms behind", lag)),
                None => Some("no optime to compare".to_string()),
                _ => None,
            }
        };
        match reason {
            Some(r) => why.push(format!("{}: {r}", m.name)),
            None => {
                if best.is_none_or(|b| (m.optime, std::cmp::Reverse(m.id)) > (b.optime, std::cmp::Reverse(b.id))) {
                    best = Some(m);
                }
            }
        }
    }
    best.ok_or_else(|| if why.is_empty() { "the replica set has no secondary".to_string() } else { why.join("; ") })
}

/// A command document as JSON text with its keys in the order given.
/// MongoDB takes the first key as the command's name (the runner's backend
/// keeps the order), while `serde_json`'s map sorts keys: `json!` would send
/// `{"force": true, "replSetStepDown": 60, ...}`, the unknown command `force`.
pub fn command(fields: &[(&str, Value)]) -> String {
    let fields: Vec<String> = fields.iter().map(|(key, value)| format!("{}:{value}", Value::from(*key))).collect();
    format!("{{{}}}", fields.join(","))
}

/// How a failed `replSetStepDown` is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepDownError {
    /// No electable secondary caught up within the catch-up period (262
    /// ExceededTimeLimit): nothing changed; try again within the bound.
    Retry,
    /// The connection dropped or timed out (a stepping-down primary closes
    /// connections on older servers), or it is no longer primary: look
    /// before deciding.
    Confirm,
    /// Anything else: stop.
    Fatal,
}

/// Classify a step-down error by the server's code and message, which the
/// runner's MongoDB backend keeps in the error text (`262 ExceededTimeLimit: ...`).
pub fn classify_stepdown(unavailable_or_timeout: bool, message: &str) -> StepDownError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("262 exceededtimelimit") || lower.contains("no electable secondaries caught up") {
        StepDownError::Retry
    } else if unavailable_or_timeout
        || lower.contains("10107 notwritableprimary")
        || lower.contains("notmaster")
        || lower.contains("189 primarysteppeddown")
        || lower.contains("11602 interruptedduetoreplstatechange")
    {
        StepDownError::Confirm
    } else {
        StepDownError::Fatal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape of the replSetGetStatus example in MongoDB's manual
    /// (`db.adminCommand({replSetGetStatus: 1})`), in relaxed Extended JSON
    /// as the runner's backend writes it: a primary, one secondary 2 s
    /// behind, one member that cannot be reached.
    pub fn status_fixture() -> Value {
        json!({
            "set": "rs0",
            "date": {"$date": "2026-03-05T05:24:45.567Z"},
            "myState": 1,
            "term": 3,
            "majorityVoteCount": 2,
            "writeMajorityCount": 2,
            "votingMembersCount": 3,
            "writableVotingMembersCount": 3,
            "optimes": {
                "lastCommittedOpTime": {"ts": {"$timestamp": {"t": 1772688278, "i": 1}}, "t": 3},
                "lastCommittedWallTime": {"$date": "2026-03-05T05:24:38.122Z"},
                "appliedOpTime": {"ts": {"$timestamp": {"t": 1772688278, "i": 1}}, "t": 3},
                "durableOpTime": {"ts": {"$timestamp": {"t": 1772688278, "i": 1}}, "t": 3}
            },
            "members": [
                {"_id": 0, "name": "mongo-0.mongo.db.svc.cluster.local:27017", "health": 1.0, "state": 1, "stateStr": "PRIMARY", "uptime": 269,
                 "optime": {"ts": {"$timestamp": {"t": 1772688278, "i": 1}}, "t": 3}, "optimeDate": {"$date": "2026-03-05T05:24:38Z"},
                 "syncSourceHost": "", "syncSourceId": -1, "infoMessage": "", "electionTime": {"$timestamp": {"t": 1772688134, "i": 1}},
                 "electionDate": {"$date": "2026-03-05T05:22:14Z"}, "configVersion": 1, "configTerm": 3, "self": true, "lastHeartbeatMessage": ""},
                {"_id": 1, "name": "mongo-1.mongo.db.svc.cluster.local:27017", "health": 1.0, "state": 2, "stateStr": "SECONDARY", "uptime": 14,
                 "optime": {"ts": {"$timestamp": {"t": 1772688276, "i": 4}}, "t": 3}, "optimeDate": {"$date": "2026-03-05T05:24:36Z"},
                 "lastHeartbeat": {"$date": "2026-03-05T05:24:44.114Z"}, "pingMs": 0, "lastHeartbeatMessage": "",
                 "syncSourceHost": "mongo-0.mongo.db.svc.cluster.local:27017", "syncSourceId": 0, "infoMessage": "", "configVersion": 1},
                {"_id": 2, "name": "mongo-2.mongo.db.svc.cluster.local:27017", "health": 0.0, "state": 8, "stateStr": "(not reachable/healthy)", "uptime": 0,
                 "optime": {"ts": {"$timestamp": {"t": 0, "i": 0}}, "t": -1}, "optimeDate": {"$date": "1970-01-01T00:00:00Z"},
                 "lastHeartbeatMessage": "Error connecting to mongo-2.mongo.db.svc.cluster.local:27017 :: caused by :: Connection refused",
                 "syncSourceHost": "", "syncSourceId": -1, "configVersion": -1}
            ],
            "ok": 1.0,
            "$clusterTime": {"clusterTime": {"$timestamp": {"t": 1772688278, "i": 1}}, "signature": {"hash": {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "subType": "00"}}, "keyId": 0}},
            "operationTime": {"$timestamp": {"t": 1772688278, "i": 1}}
        })
    }

    #[test]
    fn parses_the_documented_status() {
        let s = parse_status(&status_fixture()).unwrap();
        assert_eq!(s.set, "rs0");
        assert_eq!(s.members.len(), 3);
        let p = s.primary().unwrap();
        assert_eq!((p.id, p.host(), p.is_self), (0, "mongo-0.mongo.db.svc.cluster.local", true));
        assert_eq!(p.optime, Some((1772688278, 1)));
        assert_eq!(s.lag_ms(&s.members[1]), Some(2000));
        assert_eq!(s.lag_ms(&s.members[2]), None, "an unreachable member's epoch optime is no figure");
        assert!(!s.members[2].healthy());
        assert_eq!((s.majority_vote_count, s.write_majority_count), (Some(2), Some(2)));
        assert_eq!(s.commit_lag_ms(), Some(0));
    }

    #[test]
    fn canonical_extended_json_and_errors() {
        let reply = json!({"set": "rs0", "members": [{"_id": {"$numberInt": "0"}, "name": "10.0.0.5:27017", "health": {"$numberDouble": "1.0"}, "state": {"$numberInt": "1"}, "stateStr": "PRIMARY",
            "optime": {"ts": {"$timestamp": {"t": 100, "i": 2}}, "t": {"$numberLong": "1"}}, "optimeDate": {"$date": {"$numberLong": "100000"}}}], "ok": {"$numberDouble": "1.0"}});
        let s = parse_status(&reply).unwrap();
        assert_eq!(s.members[0].optime_ms, Some(100_000));
        assert!(s.members[0].healthy());
        assert_eq!(
            parse_status(&json!({"ok": 0.0, "errmsg": "no replset config has been received", "code": 94, "codeName": "NotYetInitialized"})).unwrap_err(),
            "replSetGetStatus failed: 94 NotYetInitialized no replset config has been received"
        );
    }

    #[test]
    fn hello_and_config() {
        // The manual's hello reply on a secondary.
        let h = parse_hello(
            &json!({"topologyVersion": {"processId": {"$oid": "5f1b3ad2f5e4d9e3c3a1b2c3"}, "counter": 6}, "hosts": ["mongo-0.mongo:27017", "mongo-1.mongo:27017"],
            "setName": "rs0", "setVersion": 1, "isWritablePrimary": false, "secondary": true, "primary": "mongo-0.mongo:27017", "me": "mongo-1.mongo:27017", "ok": 1.0}),
        );
        assert_eq!(
            (h.writable_primary, h.secondary, h.primary.as_deref(), h.me.as_deref()),
            (false, true, Some("mongo-0.mongo:27017"), Some("mongo-1.mongo:27017"))
        );
        assert!(parse_hello(&json!({"ismaster": true, "ok": 1})).writable_primary);
        let c = parse_config(&json!({"config": {"_id": "rs0", "version": 1, "members": [
            {"_id": 0, "host": "mongo-0.mongo:27017", "arbiterOnly": false, "buildIndexes": true, "hidden": false, "priority": 1, "tags": {}, "secondaryDelaySecs": 0, "votes": 1},
            {"_id": 1, "host": "mongo-1.mongo:27017", "priority": 0, "votes": 0, "hidden": true},
            {"_id": 2, "host": "mongo-2.mongo:27017"}]}, "ok": 1})).unwrap();
        assert_eq!((c[1].votes, c[1].priority, c[1].hidden), (0, 0.0, true));
        assert_eq!((c[2].votes, c[2].priority), (1, 1.0));
    }

    #[test]
    fn members_map_to_pods() {
        let pods = vec![("mongo-0".to_string(), Some("10.0.0.5".to_string())), ("mongo-1".to_string(), Some("10.0.0.6".to_string()))];
        assert_eq!(pod_of("mongo-1.mongo.db.svc.cluster.local:27017", &pods), Some("mongo-1"));
        assert_eq!(pod_of("10.0.0.5:27017", &pods), Some("mongo-0"));
        assert_eq!(pod_of("mongo-7.mongo:27017", &pods), None);
        assert_eq!(host_of("[::1]:27017"), "::1");
    }

    #[test]
    fn majorities() {
        let s = parse_status(&status_fixture()).unwrap();
        let m = majority(&s, None);
        assert_eq!((m.voters.len(), m.voters_up.len(), m.needed, m.data_voters_up.len(), m.write_needed), (3, 2, 2, 2, 2));
        // Without the 4.2.1+ counts, and with an arbiter and a non-voter in the configuration.
        let mut s = s;
        s.majority_vote_count = None;
        s.write_majority_count = None;
        let config = vec![
            ConfigMember { host: s.members[0].name.clone(), votes: 1, priority: 1.0, arbiter: false, hidden: false },
            ConfigMember { host: s.members[1].name.clone(), votes: 1, priority: 1.0, arbiter: true, hidden: false },
            ConfigMember { host: s.members[2].name.clone(), votes: 0, priority: 0.0, arbiter: false, hidden: false },
        ];
        let m = majority(&s, Some(&config));
        assert_eq!((m.voters.len(), m.needed, m.data_voters_up.len(), m.write_needed), (2, 2, 1, 1));
    }

    #[test]
    fn candidates() {
        let mut s = parse_status(&status_fixture()).unwrap();
        assert_eq!(choose_candidate(&s, None, 10_000, |_| true).unwrap().id, 1);
        assert_eq!(
            choose_candidate(&s, None, 1_000, |_| true).unwrap_err(),
            "mongo-1.mongo.db.svc.cluster.local:27017: 2000 ms behind; mongo-2.mongo.db.svc.cluster.local:27017: (not reachable/healthy) (8, health 0)"
        );
        // Two caught-up secondaries: the more advanced optime wins, then the lower _id.
        let mut third = s.members[1].clone();
        third.id = 2;
        third.name = "mongo-2.mongo.db.svc.cluster.local:27017".into();
        third.optime = Some((1772688276, 9));
        s.members[2] = third;
        assert_eq!(choose_candidate(&s, None, 10_000, |_| true).unwrap().id, 2);
        s.members[2].optime = s.members[1].optime;
        assert_eq!(choose_candidate(&s, None, 10_000, |_| true).unwrap().id, 1);
        assert_eq!(choose_candidate(&s, None, 10_000, |m| m.id == 2).unwrap().id, 2);
        let config = vec![ConfigMember { host: s.members[1].name.clone(), votes: 1, priority: 0.0, arbiter: false, hidden: false }];
        assert_eq!(choose_candidate(&s, Some(&config), 10_000, |_| true).unwrap().id, 2);
    }

    #[test]
    fn commands_keep_their_name_first() {
        let text = command(&[("replSetStepDown", json!(60)), ("secondaryCatchUpPeriodSecs", json!(10)), ("force", json!(true))]);
        assert_eq!(text, r#"{"replSetStepDown":60,"secondaryCatchUpPeriodSecs":10,"force":true}"#);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["force"], json!(true));
        assert_eq!(command(&[("replSetFreeze", json!(0))]), r#"{"replSetFreeze":0}"#);
    }

    #[test]
    fn step_down_errors() {
        // As the backend words the server's reply to replSetStepDown with no caught-up secondary.
        let msg = "member mongo-0 (10.0.0.5:27017): 262 ExceededTimeLimit: No electable secondaries caught up as of 2026-03-05T05:25:00.000+0000. Please use the replSetStepDown command with the argument {force: true} to force node to step down.";
        assert_eq!(classify_stepdown(false, msg), StepDownError::Retry);
        assert_eq!(classify_stepdown(true, "member mongo-0 (10.0.0.5:27017): Connection reset by peer (os error 104)"), StepDownError::Confirm);
        assert_eq!(classify_stepdown(false, "member mongo-0 (a): 10107 NotWritablePrimary: not primary so can't step down"), StepDownError::Confirm);
        assert_eq!(classify_stepdown(false, "member mongo-0 (a): 13 Unauthorized: not authorized on admin"), StepDownError::Fatal);
    }
}
