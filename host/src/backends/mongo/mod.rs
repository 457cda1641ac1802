//! The MongoDB backend (the official `mongodb` driver): members resolved by
//! name through the target (Pod `status.podIP`, the database's port), one
//! direct connection per member (`directConnection=true`: a command goes to
//! that member, never to whichever the driver thinks is primary),
//! credentials held by the host, and a time limit on every call.
//!
//! Commands come in as MongoDB Extended JSON v2, canonical or relaxed
//! (`{"$numberLong": "5"}`, `{"$date": "2026-01-01T00:00:00Z"}`, plain
//! numbers); the key order of the text is kept, because MongoDB takes the
//! first key as the command's name. Replies go out as **relaxed** Extended
//! JSON v2: numbers as JSON numbers (int32, int64 and double alike), dates
//! as `{"$date": "<ISO-8601>"}`, timestamps as `{"$timestamp": {"t", "i"}}`,
//! ObjectIds as `{"$oid": ...}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mongodb::Client;
use mongodb::bson::{Bson, Document};
use mongodb::error::{Error as DriverError, ErrorKind};
use mongodb::options::{ClientOptions, Credential as DriverCredential, ServerAddress};
use tokio::sync::Mutex;

use super::members::Members;
use super::{BackendError, BackendResult, ErrorCode, Mongo};
use crate::target::Engine;

/// How long one command may take unless it asks for longer (see [`call_timeout`]).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest any one command may take, whatever it asks for.
const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How long finding (connecting to and handshaking with) the member may take.
const SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// The user when the target names none: what the official image's
/// `MONGO_INITDB_ROOT_USERNAME` and most charts call the administrator.
pub const DEFAULT_USER: &str = "root";

/// MongoDB members of one target.
pub struct MongoBackend {
    members: Arc<Members>,
    /// One client per member, with the address it was made for: a Pod that
    /// was deleted and came back may have a new address.
    clients: Mutex<BTreeMap<String, (String, Client)>>,
}

impl MongoBackend {
    /// The MongoDB members among `members`.
    pub fn new(members: Arc<Members>) -> Self {
        MongoBackend { members, clients: Mutex::default() }
    }

    /// A client for `member` at its current address, reusing one made for the same address.
    async fn client(&self, member: &str) -> BackendResult<(Client, String)> {
        let found = self.members.find(Engine::Mongo, member).await?;
        let (database, ip, address) = (found.database, found.ip.as_str(), found.address());
        let mut clients = self.clients.lock().await;
        if let Some((at, client)) = clients.get(member)
            && *at == address
        {
            return Ok((client.clone(), address));
        }
        let password = self.members.credential(&found).await?;
        let user = database.user.clone().unwrap_or_else(|| DEFAULT_USER.into());
        let options = client_options(
            ip,
            found.port,
            Some(DriverCredential::builder().username(user).password(password.expose().to_string()).source("admin".to_string()).build()),
        );
        let client = Client::with_options(options).map_err(|e| driver_error(member, &address, &e))?;
        clients.insert(member.to_string(), (address.clone(), client.clone()));
        Ok((client, address))
    }
}

/// Options for one direct connection to `ip:port`.
fn client_options(ip: &str, port: u16, credential: Option<DriverCredential>) -> ClientOptions {
    let mut options = ClientOptions::default();
    options.hosts = vec![ServerAddress::Tcp { host: ip.to_string(), port: Some(port) }];
    options.direct_connection = Some(true);
    options.app_name = Some("runner".into());
    options.server_selection_timeout = Some(SELECTION_TIMEOUT);
    options.connect_timeout = Some(SELECTION_TIMEOUT);
    // A step-down or a member's restart would otherwise make the driver retry
    // behind the pattern's back; the pattern owns the retry policy.
    options.retry_reads = Some(false);
    options.retry_writes = Some(false);
    options.max_pool_size = Some(4);
    options.credential = credential;
    options
}

/// Parse a command (Extended JSON text) into a BSON document, keeping its key order.
pub fn parse_command(command: &str) -> BackendResult<Document> {
    let document: Document = serde_json::from_str(command)
        .map_err(|e| BackendError::new(ErrorCode::Invalid, format!("command is not a JSON document (Extended JSON for BSON types): {e}")))?;
    if document.is_empty() {
        return Err(BackendError::new(ErrorCode::Invalid, "the command document is empty; its first key names the command"));
    }
    Ok(document)
}

/// A reply as relaxed Extended JSON v2 text.
pub fn reply_json(reply: Document) -> String {
    Bson::Document(reply).into_relaxed_extjson().to_string()
}

/// A database name MongoDB accepts.
fn valid_db(db: &str) -> bool {
    !db.is_empty() && db.len() < 64 && !db.contains(['/', '\\', '.', ' ', '"', '$', '\0'])
}

/// How long to wait for `command`: the default, or longer when the command
/// itself may legitimately wait (`maxTimeMS`, a step-down's catch-up period).
pub fn call_timeout(command: &Document) -> Duration {
    let seconds = |key: &str| command.get(key).and_then(number).filter(|n| *n > 0.0);
    let mut timeout = COMMAND_TIMEOUT;
    if let Some(ms) = seconds("maxTimeMS") {
        timeout = timeout.max(Duration::from_secs_f64((ms / 1000.0).min(MAX_COMMAND_TIMEOUT.as_secs_f64())) + Duration::from_secs(5));
    }
    if let Some(catch_up) = seconds("secondaryCatchUpPeriodSecs") {
        timeout = timeout.max(Duration::from_secs_f64(catch_up.min(MAX_COMMAND_TIMEOUT.as_secs_f64())) + COMMAND_TIMEOUT);
    }
    timeout.min(MAX_COMMAND_TIMEOUT)
}

fn number(value: &Bson) -> Option<f64> {
    match value {
        Bson::Int32(n) => Some(*n as f64),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Mongo for MongoBackend {
    async fn run_command(&self, member: &str, db: &str, command: &str) -> BackendResult<String> {
        if !valid_db(db) {
            return Err(BackendError::new(ErrorCode::Invalid, format!("`{db}` is not a MongoDB database name")));
        }
        let document = parse_command(command)?;
        let timeout = call_timeout(&document);
        let (client, address) = self.client(member).await?;
        match tokio::time::timeout(timeout, client.database(db).run_command(document)).await {
            Ok(Ok(reply)) => Ok(reply_json(reply)),
            Ok(Err(e)) => Err(driver_error(member, &address, &e)),
            Err(_) => Err(BackendError::new(ErrorCode::Timeout, format!("member {member} ({address}): no answer within {} s", timeout.as_secs()))),
        }
    }
}

/// The error code for a server's command error, by MongoDB's error codes
/// (src/mongo/base/error_codes.yml).
pub fn classify_code(code: i32) -> ErrorCode {
    match code {
        // Unauthorized, AuthenticationFailed
        13 | 18 => ErrorCode::Denied,
        // MaxTimeMSExpired
        50 => ErrorCode::Timeout,
        // HostUnreachable, HostNotFound, NetworkTimeout, ShutdownInProgress, SocketException
        6 | 7 | 89 | 91 | 9001 => ErrorCode::Unavailable,
        // BadValue, FailedToParse, TypeMismatch, InvalidOptions, CommandNotFound,
        // NoReplicationEnabled, InvalidReplicaSetConfig, CommandNotSupported,
        // an unknown field in a command
        2 | 9 | 14 | 72 | 59 | 76 | 93 | 115 | 40415 => ErrorCode::Invalid,
        // NodeNotFound, NotYetInitialized, WriteConflict, ConflictingOperationInProgress,
        // FailedToSatisfyReadPreference, PrimarySteppedDown, ExceededTimeLimit (a
        // step-down with no electable secondary caught up), NotWritablePrimary,
        // InterruptedDueToReplStateChange, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary
        74 | 94 | 112 | 117 | 133 | 189 | 262 | 10107 | 11602 | 13435 | 13436 => ErrorCode::Conflict,
        _ => ErrorCode::Internal,
    }
}

/// Map a driver error to the WIT error codes; the server's code and
/// codeName stay in the message (`262 ExceededTimeLimit`).
pub fn driver_error(member: &str, address: &str, error: &DriverError) -> BackendError {
    let at = format!("member {member} ({address})");
    match error.kind.as_ref() {
        ErrorKind::Command(c) => BackendError::new(classify_code(c.code), format!("{at}: {} {}: {}", c.code, c.code_name, c.message)),
        ErrorKind::Authentication { message, .. } => BackendError::new(ErrorCode::Denied, format!("{at}: authentication failed: {message}")),
        ErrorKind::ServerSelection { message, .. } => {
            BackendError::new(ErrorCode::Unavailable, format!("{at}: unreachable: {}", server_selection_reason(message)))
        }
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => BackendError::new(ErrorCode::Timeout, format!("{at}: {io}")),
        ErrorKind::Io(io) => BackendError::new(ErrorCode::Unavailable, format!("{at}: {io}")),
        ErrorKind::ConnectionPoolCleared { message, .. } => BackendError::new(ErrorCode::Unavailable, format!("{at}: {message}")),
        ErrorKind::InvalidArgument { message, .. } => BackendError::new(ErrorCode::Invalid, format!("{at}: {message}")),
        ErrorKind::BsonDeserialization(_) | ErrorKind::BsonSerialization(_) | ErrorKind::Bson(_) => {
            BackendError::new(ErrorCode::Invalid, format!("{at}: {error}"))
        }
        _ => BackendError::new(ErrorCode::Internal, format!("{at}: {error}")),
    }
}

/// The driver's server-selection message quotes the whole topology; the
/// member's own error inside it is what an operator needs.
fn server_selection_reason(message: &str) -> String {
    let reason = message.split_once("Error: ").map(|(_, rest)| {
        let rest = rest.strip_prefix("Kind: ").unwrap_or(rest);
        rest.split(", labels:").next().unwrap_or(rest).trim_end_matches([' ', '}', ']', ','])
    });
    let reason = reason.filter(|r| !r.is_empty());
    match reason {
        Some(reason) => format!("no answer within {} s ({reason})", SELECTION_TIMEOUT.as_secs()),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::{Kube, ObjectRef};
    use crate::target::Target;
    use mongodb::bson::{DateTime, Timestamp, doc, oid::ObjectId};

    #[test]
    fn commands_keep_their_key_order_and_types() {
        // Keys out of alphabetical order: the command's name must stay first.
        let doc = parse_command(r#"{"replSetStepDown": 60, "secondaryCatchUpPeriodSecs": 10, "force": false}"#).unwrap();
        assert_eq!(doc.keys().collect::<Vec<_>>(), ["replSetStepDown", "secondaryCatchUpPeriodSecs", "force"]);
        assert_eq!(doc.get("replSetStepDown"), Some(&Bson::Int32(60)));
        let doc = parse_command(r#"{"find": "orders", "filter": {"_id": {"$oid": "64b7f0c2a1b2c3d4e5f60718"}, "at": {"$gte": {"$date": "2026-01-01T00:00:00Z"}}, "n": {"$numberLong": "5000000000"}}, "limit": 2.5}"#).unwrap();
        assert_eq!(doc.keys().next().map(String::as_str), Some("find"));
        let filter = doc.get_document("filter").unwrap();
        assert_eq!(filter.get("_id"), Some(&Bson::ObjectId(ObjectId::parse_str("64b7f0c2a1b2c3d4e5f60718").unwrap())));
        assert_eq!(filter.get_document("at").unwrap().get("$gte"), Some(&Bson::DateTime(DateTime::from_millis(1_767_225_600_000))));
        assert_eq!(filter.get("n"), Some(&Bson::Int64(5_000_000_000)));
        assert_eq!(doc.get("limit"), Some(&Bson::Double(2.5)));
        // Canonical forms too.
        let doc = parse_command(r#"{"getParameter": 1, "x": {"$numberInt": "7"}, "d": {"$date": {"$numberLong": "1767225600000"}}}"#).unwrap();
        assert_eq!(doc.get("x"), Some(&Bson::Int32(7)));
        assert_eq!(doc.get("d"), Some(&Bson::DateTime(DateTime::from_millis(1_767_225_600_000))));
    }

    #[test]
    fn bad_commands_are_invalid() {
        for text in ["[1]", "\"hello\"", "{", "{}", r#"{"x": {"$numberLong": "nope"}}"#] {
            assert_eq!(parse_command(text).unwrap_err().code, ErrorCode::Invalid, "{text}");
        }
        assert!(valid_db("admin") && valid_db("local"));
        assert!(!valid_db("") && !valid_db("a.b") && !valid_db("a b") && !valid_db("$x"));
    }

    #[test]
    fn replies_are_relaxed_extended_json() {
        // Shaped like a replSetGetStatus member and the reply's cluster time.
        let reply = doc! {
            "set": "rs0",
            "members": [{"_id": 0, "name": "mongo-0.mongo:27017", "health": 1.0, "state": 1, "stateStr": "PRIMARY",
                          "optime": {"ts": Timestamp { time: 1_767_225_600, increment: 3 }, "t": 7_i64},
                          "optimeDate": DateTime::from_millis(1_767_225_600_000)}],
            "electionId": ObjectId::parse_str("7fffffff0000000000000007").unwrap(),
            "big": 5_000_000_000_i64,
            "ok": 1.0,
        };
        let json: serde_json::Value = serde_json::from_str(&reply_json(reply)).unwrap();
        let member = &json["members"][0];
        assert_eq!(member["health"], 1.0);
        assert_eq!(member["state"], 1);
        assert_eq!(member["optime"]["ts"], serde_json::json!({"$timestamp": {"t": 1_767_225_600_u32, "i": 3}}));
        assert_eq!(member["optime"]["t"], 7);
        assert_eq!(member["optimeDate"], serde_json::json!({"$date": "2026-01-01T00:00:00Z"}));
        assert_eq!(json["electionId"], serde_json::json!({"$oid": "7fffffff0000000000000007"}));
        assert_eq!(json["big"], 5_000_000_000_i64);
        assert_eq!(json["ok"], 1.0);
    }

    #[test]
    fn timeouts_follow_what_the_command_may_wait() {
        assert_eq!(call_timeout(&doc! {"hello": 1}), COMMAND_TIMEOUT);
        assert_eq!(call_timeout(&doc! {"replSetStepDown": 60, "secondaryCatchUpPeriodSecs": 30}), Duration::from_secs(45));
        assert_eq!(call_timeout(&doc! {"find": "x", "maxTimeMS": 60_000_i64}), Duration::from_secs(65));
        assert_eq!(call_timeout(&doc! {"find": "x", "maxTimeMS": 1e12}), MAX_COMMAND_TIMEOUT);
    }

    #[test]
    fn server_codes_map_to_error_codes() {
        assert_eq!(classify_code(262), ErrorCode::Conflict); // ExceededTimeLimit: no electable secondary caught up
        assert_eq!(classify_code(189), ErrorCode::Conflict); // PrimarySteppedDown
        assert_eq!(classify_code(10107), ErrorCode::Conflict); // NotWritablePrimary
        assert_eq!(classify_code(13), ErrorCode::Denied);
        assert_eq!(classify_code(18), ErrorCode::Denied);
        assert_eq!(classify_code(50), ErrorCode::Timeout);
        assert_eq!(classify_code(59), ErrorCode::Invalid); // CommandNotFound
        assert_eq!(classify_code(76), ErrorCode::Invalid); // NoReplicationEnabled
        assert_eq!(classify_code(91), ErrorCode::Unavailable); // ShutdownInProgress
        assert_eq!(classify_code(8000), ErrorCode::Internal);
    }

    #[test]
    fn driver_errors_name_the_member() {
        // The server's reply to replSetStepDown when no secondary caught up in time.
        let reply = doc! {"ok": 0.0, "errmsg": "No electable secondaries caught up as of 2026-03-05T05:25:00.000+0000. Please use the replSetStepDown command with the argument {force: true} to force node to step down.", "code": 262, "codeName": "ExceededTimeLimit"};
        let command: mongodb::error::CommandError = mongodb::bson::deserialize_from_document(reply).unwrap();
        let e = driver_error("mongo-0", "10.0.0.5:27017", &DriverError::from(ErrorKind::Command(command)));
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(e.message.starts_with("member mongo-0 (10.0.0.5:27017): 262 ExceededTimeLimit: No electable secondaries caught up as of"), "{}", e.message);
        let reply = doc! {"ok": 0.0, "errmsg": "command replSetStepDown requires authentication", "code": 13, "codeName": "Unauthorized"};
        let command: mongodb::error::CommandError = mongodb::bson::deserialize_from_document(reply).unwrap();
        let e = driver_error("mongo-0", "10.0.0.5:27017", &DriverError::from(ErrorKind::Command(command)));
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::Denied, "member mongo-0 (10.0.0.5:27017): 13 Unauthorized: command replSetStepDown requires authentication")
        );
        let io = DriverError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"));
        assert_eq!(driver_error("mongo-1", "a", &io).code, ErrorCode::Timeout);
        let io = DriverError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer"));
        assert_eq!(driver_error("mongo-1", "a", &io).code, ErrorCode::Unavailable);
        let topology = "Server selection timeout: No available servers. Topology: { Type: Single, Servers: [ { Address: 10.0.0.7:27017, Type: Unknown, Error: Kind: I/O error: Connection refused (os error 111), labels: {} } ] }";
        assert_eq!(server_selection_reason(topology), "no answer within 5 s (I/O error: Connection refused (os error 111))");
    }

    /// A cluster with one Pod, `mongo-0`, at `ip`, and a Secret `mongo-credentials`.
    struct OnePod {
        ip: String,
    }

    #[async_trait::async_trait]
    impl Kube for OnePod {
        async fn get(&self, object: &ObjectRef) -> BackendResult<String> {
            match (object.kind.as_str(), object.name.as_str()) {
                ("Pod", "mongo-0") => Ok(serde_json::json!({"metadata": {"name": "mongo-0"}, "status": {"podIP": self.ip}}).to_string()),
                ("Pod", "mongo-1") => Ok(serde_json::json!({"metadata": {"name": "mongo-1"}, "status": {"phase": "Pending"}}).to_string()),
                ("Secret", "mongo-credentials") => Ok(serde_json::json!({"data": {"password": "c2VjcmV0LXZhbHVl"}}).to_string()),
                (kind, name) => Err(BackendError::new(ErrorCode::NotFound, format!("{kind} {name} not found"))),
            }
        }
        async fn list(&self, _: &super::super::ListOptions) -> BackendResult<String> {
            Ok("[]".into())
        }
        async fn wait_for(&self, _: &ObjectRef, _: &super::super::WaitFor, _: u64) -> BackendResult<String> {
            Err(BackendError::new(ErrorCode::Invalid, "not here"))
        }
        async fn patch(&self, _: &ObjectRef, _: super::super::PatchType, _: &str) -> BackendResult<String> {
            Err(BackendError::new(ErrorCode::Invalid, "not here"))
        }
        async fn delete(&self, _: &ObjectRef, _: Option<u32>) -> BackendResult<()> {
            Err(BackendError::new(ErrorCode::Invalid, "not here"))
        }
        async fn scale(&self, _: &ObjectRef, _: u32) -> BackendResult<()> {
            Err(BackendError::new(ErrorCode::Invalid, "not here"))
        }
        async fn evict(&self, _: Option<&str>, _: &str) -> BackendResult<()> {
            Err(BackendError::new(ErrorCode::Invalid, "not here"))
        }
        async fn set_unschedulable(&self, _: &str, _: bool) -> BackendResult<()> {
            Err(BackendError::new(ErrorCode::Invalid, "not here"))
        }
        async fn drain(&self, _: &str, _: &super::super::DrainOptions) -> BackendResult<String> {
            Err(BackendError::new(ErrorCode::Invalid, "not here"))
        }
        async fn exec(&self, _: Option<&str>, _: &str, _: Option<&str>, _: &[String]) -> BackendResult<super::super::ExecOutput> {
            Err(BackendError::new(ErrorCode::Invalid, "not here"))
        }
    }

    fn backend(ip: &str, port: u16) -> MongoBackend {
        let text = format!("databases:\n  mongo:\n    engine: mongo\n    port: {port}\n    credentials:\n      secret: mongo-credentials\n");
        let target = Target::parse(&text, std::path::Path::new("/tmp/mongo-target.yaml")).unwrap();
        MongoBackend::new(Arc::new(Members::new(target, "default".into(), Arc::new(OnePod { ip: ip.into() }))))
    }

    #[tokio::test]
    async fn a_closed_port_is_unavailable_with_a_clear_message() {
        // A port that was just free on an address of this test's own (lab range 240-249).
        let listener = std::net::TcpListener::bind("127.240.7.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let started = std::time::Instant::now();
        let e = backend("127.240.7.1", port).run_command("mongo-0", "admin", r#"{"hello": 1}"#).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
        assert!(e.message.starts_with(&format!("member mongo-0 (127.240.7.1:{port}): unreachable: no answer within 5 s")), "{}", e.message);
        assert!(e.message.contains("Connection refused"), "{}", e.message);
        assert!(!e.message.contains("secret-value"), "{}", e.message);
        assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn members_are_resolved_through_the_target() {
        let b = backend("127.240.7.1", 27017);
        let e = b.run_command("postgres-cluster-0", "admin", r#"{"hello": 1}"#).await.unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::NotFound, "`postgres-cluster-0` is not a member of a MongoDB replica set of this target (StatefulSets: mongo)")
        );
        let e = b.run_command("mongo-1", "admin", r#"{"hello": 1}"#).await.unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Unavailable, "member mongo-1 has no address yet (Pod not running)"));
        let e = b.run_command("mongo-2", "admin", r#"{"hello": 1}"#).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        let e = b.run_command("mongo-0", "a.b", r#"{"hello": 1}"#).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid);
        let e = b.run_command("mongo-0", "admin", "{}").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid);
    }
}
