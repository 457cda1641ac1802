//! MongoDB members: one `mongod` per member, all of them members of the
//! replica set [`REPLICA_SET`], with internal authentication by key file;
//! readiness by `hello`; the set's first initiation and its `root` user.
//!
//! Never run here: no `mongod` can be installed on the machines this was
//! written on (MongoDB is not packaged by Debian). Everything below follows
//! MongoDB's manual ("Deploy a Self-Managed Replica Set With Keyfile
//! Authentication"); the lab reports a missing `mongod` before starting.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mongodb::Client;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{ClientOptions, Credential, ServerAddress};

use crate::os;
use crate::{MemberSpec, RuntimeError, Workload};

/// The replica set every lab member belongs to (`--replSet`).
pub const REPLICA_SET: &str = "rs0";
/// The user the set is initiated with: `root` on `admin`, with the member's password.
pub const ROOT_USER: &str = "root";

/// How long a readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command issued by the runtime may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a new set may take to elect a primary and bring every member to SECONDARY.
const SET_SETTLE: Duration = Duration::from_secs(120);

/// The unix socket `mongod` creates in the run dir (`--unixSocketPrefix`):
/// the runtime's way in under the localhost exception, since MongoDB counts
/// only 127.0.0.1 and unix sockets as "localhost", not the member's own
/// loopback address.
pub(crate) fn socket_path(spec: &MemberSpec) -> PathBuf {
    spec.run_dir.join(format!("mongodb-{}.sock", spec.port))
}

fn key_file(spec: &MemberSpec) -> PathBuf {
    spec.run_dir.join("keyfile")
}

/// The key file's contents: every member of a set needs the same one, and
/// they share the password, so it is derived from it (hex: the key file
/// accepts base64 characters only, 6 to 1024 of them).
fn key(password: &str) -> String {
    let hex: String = password.bytes().map(|b| format!("{b:02x}")).collect();
    format!("runnerlab{hex}").chars().take(1024).collect()
}

pub(crate) fn prepare(spec: &MemberSpec) -> Result<(), RuntimeError> {
    os::private_dir(&spec.name, &spec.volume, None)?;
    os::private_dir(&spec.name, &spec.run_dir, None)
}

pub(crate) fn server_command(spec: &MemberSpec) -> Result<(PathBuf, Vec<String>), RuntimeError> {
    if !spec.volume.is_dir() {
        return Err(RuntimeError::invalid(&spec.name, format!("volume {} does not exist: prepare the member first", spec.volume.display())));
    }
    let program = os::binary(&spec.name, Workload::Mongo, "mongod")?;
    let key_file = key_file(spec);
    os::write_private(&spec.name, &key_file, &key(&spec.password), None)?;
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let args = vec![
        "--replSet".into(),
        REPLICA_SET.into(),
        "--bind_ip".into(),
        spec.ip.to_string(),
        "--port".into(),
        spec.port.to_string(),
        "--dbpath".into(),
        path(&spec.volume),
        // Members authenticate to each other with it; clients need a user (access control is on).
        "--keyFile".into(),
        path(&key_file),
        // The socket lives in the private run dir, one per member (the default /tmp/mongodb-27017.sock would collide).
        "--unixSocketPrefix".into(),
        path(&spec.run_dir),
        // A lab runs several members on one machine: small caches and oplogs.
        "--wiredTigerCacheSizeGB".into(),
        "0.25".into(),
        "--oplogSize".into(),
        "256".into(),
    ];
    Ok((program, args))
}

/// Options for one direct connection to the member, over TCP or its unix socket.
fn options(spec: &MemberSpec, over_socket: bool, credential: Option<Credential>, timeout: Duration) -> ClientOptions {
    let mut options = ClientOptions::default();
    options.hosts = vec![if over_socket {
        ServerAddress::Unix { path: socket_path(spec) }
    } else {
        ServerAddress::Tcp { host: spec.ip.to_string(), port: Some(spec.port) }
    }];
    options.direct_connection = Some(true);
    options.app_name = Some("runner-lab".into());
    options.server_selection_timeout = Some(timeout);
    options.connect_timeout = Some(timeout);
    options.retry_reads = Some(false);
    options.retry_writes = Some(false);
    options.credential = credential;
    options
}

fn root(spec: &MemberSpec) -> Credential {
    Credential::builder().username(ROOT_USER.to_string()).password(spec.password.clone()).source("admin".to_string()).build()
}

/// How a member is reached.
#[derive(Clone, Copy)]
enum Via {
    /// TCP, no user: `hello` and `ping` need none.
    Anonymous,
    /// The unix socket, no user: the localhost exception, until the first user exists.
    Localhost,
    /// TCP as `root`.
    Root,
}

/// Runs `command` on `admin` of `spec`; a reply with `ok: 0` or a failed connection is an error.
async fn command(spec: &MemberSpec, via: Via, command: Document, timeout: Duration) -> Result<Document, RuntimeError> {
    let name = command.keys().next().cloned().unwrap_or_default();
    let (address, options) = match via {
        Via::Anonymous => (spec.address().to_string(), options(spec, false, None, timeout)),
        Via::Localhost => (socket_path(spec).display().to_string(), options(spec, true, None, timeout)),
        Via::Root => (spec.address().to_string(), options(spec, false, Some(root(spec)), timeout)),
    };
    let fail = |message: String| RuntimeError::Mongo {
        member: spec.name.clone(),
        address: address.clone(),
        command: name.clone(),
        message: message.replace(&spec.password, "********"),
    };
    let client = Client::with_options(options).map_err(|e| fail(e.to_string()))?;
    match tokio::time::timeout(timeout, client.database("admin").run_command(command)).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail(format!("no answer within {timeout:?}"))),
    }
}

/// What `hello` says of a member.
#[derive(Debug, Default)]
pub(crate) struct Hello {
    pub set_name: Option<String>,
    pub writable_primary: bool,
    pub secondary: bool,
}

async fn hello(spec: &MemberSpec, via: Via, timeout: Duration) -> Result<Hello, RuntimeError> {
    let reply = command(spec, via, doc! {"hello": 1}, timeout).await?;
    Ok(Hello {
        set_name: reply.get_str("setName").ok().map(str::to_string),
        writable_primary: reply.get_bool("isWritablePrimary").unwrap_or(false),
        secondary: reply.get_bool("secondary").unwrap_or(false),
    })
}

pub(crate) async fn is_ready(spec: &MemberSpec) -> bool {
    hello(spec, Via::Anonymous, PROBE_TIMEOUT).await.is_ok()
}

/// `primary`, `secondary`, or `None` (starting, not in a set yet, unreachable).
pub(crate) async fn role(spec: &MemberSpec) -> Option<&'static str> {
    match hello(spec, Via::Anonymous, PROBE_TIMEOUT).await.ok()? {
        h if h.writable_primary => Some("primary"),
        h if h.secondary => Some("secondary"),
        _ => None,
    }
}

/// The server's error code in a driver error, if it carries one.
fn code_of(error: &RuntimeError) -> Option<i32> {
    let RuntimeError::Mongo { message, .. } = error else { return None };
    // The driver writes command errors as `Command failed: Error code 51003 (UserAlreadyExists): ...`.
    let rest = message.split("Error code ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

pub(crate) async fn replset_initiate(members: &[MemberSpec]) -> Result<(), RuntimeError> {
    let Some(first) = members.first() else {
        return Err(RuntimeError::invalid("(none)", "a replica set needs members"));
    };
    if let Some(other) = members.iter().find(|m| m.workload != Workload::Mongo) {
        return Err(RuntimeError::invalid(&other.name, "not a MongoDB member"));
    }
    if let Some(other) = members.iter().find(|m| m.password != first.password) {
        return Err(RuntimeError::invalid(&other.name, format!("its password differs from {}'s: a replica set's members share one key file", first.name)));
    }
    // Initiated already (a lab back over its volumes): the set elects by itself.
    if hello(first, Via::Anonymous, COMMAND_TIMEOUT).await?.set_name.is_none() {
        let hosts: Vec<Bson> = members.iter().enumerate().map(|(id, m)| Bson::Document(doc! {"_id": id as i32, "host": m.address().to_string()})).collect();
        let config = doc! {"_id": REPLICA_SET, "members": hosts};
        match command(first, Via::Localhost, doc! {"replSetInitiate": config}, COMMAND_TIMEOUT).await {
            Ok(_) => {}
            // 23 AlreadyInitialized: another initiation won the race.
            Err(e) if code_of(&e) == Some(23) => {}
            Err(e) => return Err(e),
        }
    }
    let primary = wait_for_primary(members).await?;
    create_root(primary).await?;
    wait_settled(members).await
}

async fn wait_for_primary(members: &[MemberSpec]) -> Result<&MemberSpec, RuntimeError> {
    let deadline = Instant::now() + SET_SETTLE;
    loop {
        for member in members {
            if hello(member, Via::Anonymous, PROBE_TIMEOUT).await.is_ok_and(|h| h.writable_primary) {
                return Ok(member);
            }
        }
        if Instant::now() >= deadline {
            return Err(RuntimeError::Timeout { member: members[0].name.clone(), what: format!("a PRIMARY in replica set {REPLICA_SET}"), waited: SET_SETTLE });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `root` user, created under the localhost exception; a set that has
/// its users already is fine when `root` can log in.
async fn create_root(primary: &MemberSpec) -> Result<(), RuntimeError> {
    let create = doc! {"createUser": ROOT_USER, "pwd": primary.password.as_str(), "roles": [{"role": "root", "db": "admin"}]};
    match command(primary, Via::Localhost, create, COMMAND_TIMEOUT).await {
        Ok(_) => Ok(()),
        // 51003 UserAlreadyExists; 13 Unauthorized: the exception closed because a user exists.
        Err(e) if matches!(code_of(&e), Some(51003 | 13)) => command(primary, Via::Root, doc! {"ping": 1}, COMMAND_TIMEOUT).await.map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Until the primary's `replSetGetStatus` shows one PRIMARY and every other member SECONDARY.
async fn wait_settled(members: &[MemberSpec]) -> Result<(), RuntimeError> {
    let deadline = Instant::now() + SET_SETTLE;
    loop {
        let mut states = String::from("no answer");
        for member in members {
            if let Ok(status) = command(member, Via::Root, doc! {"replSetGetStatus": 1}, PROBE_TIMEOUT).await {
                let found: Vec<String> = status
                    .get_array("members")
                    .map(|m| m.iter().filter_map(|m| m.as_document()?.get_str("stateStr").ok().map(str::to_string)).collect())
                    .unwrap_or_default();
                if found.len() == members.len()
                    && found.iter().filter(|s| *s == "PRIMARY").count() == 1
                    && found.iter().filter(|s| *s == "SECONDARY").count() == members.len() - 1
                {
                    return Ok(());
                }
                states = found.join(", ");
                break;
            }
        }
        if Instant::now() >= deadline {
            return Err(RuntimeError::Timeout {
                member: members[0].name.clone(),
                what: format!("one PRIMARY and {} SECONDARY members (last seen: {states})", members.len() - 1),
                waited: SET_SETTLE,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub(crate) fn exec_env(spec: &MemberSpec) -> Vec<(String, String)> {
    vec![
        ("MONGO_HOST".to_string(), spec.ip.to_string()),
        ("MONGO_PORT".to_string(), spec.port.to_string()),
        ("MONGO_USER".to_string(), ROOT_USER.to_string()),
        ("MONGO_PASSWORD".to_string(), spec.password.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MemberSpec {
        MemberSpec {
            name: "mongo-1".into(),
            workload: Workload::Mongo,
            ip: std::net::Ipv4Addr::new(127, 0, 9, 3),
            port: 27017,
            volume: PathBuf::from("/v/mongo-1"),
            run_dir: PathBuf::from("/r/mongo-1"),
            password: "s3cret".into(),
        }
    }

    #[test]
    fn the_key_file_is_base64_characters_of_the_right_length() {
        let key = key("pa ss\"word");
        assert!(key.len() >= 6 && key.len() <= 1024, "{key}");
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='), "{key}");
        assert_eq!(key, super::key("pa ss\"word"), "members sharing a password share the key");
        assert!(super::key(&"x".repeat(2000)).len() == 1024);
    }

    #[test]
    fn each_member_has_its_own_socket() {
        assert_eq!(socket_path(&spec()), PathBuf::from("/r/mongo-1/mongodb-27017.sock"));
    }

    #[test]
    fn server_error_codes_are_read_from_driver_messages() {
        let error = |message: &str| RuntimeError::Mongo { member: "m".into(), address: "a".into(), command: "createUser".into(), message: message.into() };
        assert_eq!(code_of(&error("Command failed: Error code 51003 (UserAlreadyExists): User \"root@admin\" already exists")), Some(51003));
        assert_eq!(code_of(&error("Kind: Command failed: Error code 13 (Unauthorized): command createUser requires authentication")), Some(13));
        assert_eq!(code_of(&error("Connection refused")), None);
    }

    #[test]
    fn exec_gets_the_address_and_the_user() {
        let env = exec_env(&spec());
        assert!(env.contains(&("MONGO_HOST".into(), "127.0.9.3".into())));
        assert!(env.contains(&("MONGO_USER".into(), "root".into())));
    }
}
