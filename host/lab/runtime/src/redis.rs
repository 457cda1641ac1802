//! Redis members: configuration, readiness, and cluster mode (create, meet).

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::os::{self, Tool};
use crate::{MemberSpec, RuntimeError, Workload};

/// How long a readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command issued by the runtime may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a cluster may take to agree on its state after a change.
const CLUSTER_SETTLE: Duration = Duration::from_secs(60);
/// The largest bulk reply read; the runtime only asks for small ones.
const MAX_BULK: usize = 64 << 20;

/// A Redis reply (RESP2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisReply {
    /// `+OK`, `+PONG`.
    Status(String),
    /// `-ERR ...`: the server refused the command.
    Error(String),
    /// `:1`.
    Integer(i64),
    /// `$n` followed by n bytes.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Nil,
    /// `*n` followed by n replies.
    Array(Vec<RedisReply>),
}

impl RedisReply {
    /// The reply as text, for status and bulk replies.
    pub fn as_text(&self) -> Option<String> {
        match self {
            RedisReply::Status(s) => Some(s.clone()),
            RedisReply::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// One authenticated connection to a member.
struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    async fn open(address: SocketAddr, password: &str) -> Result<Self, String> {
        let stream = TcpStream::connect(address).await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let mut connection = Connection { stream: BufReader::new(stream) };
        match connection.call(&["AUTH", password]).await? {
            RedisReply::Status(_) => Ok(connection),
            RedisReply::Error(e) => Err(format!("AUTH refused: {e}")),
            other => Err(format!("AUTH: unexpected reply {other:?}")),
        }
    }

    async fn call(&mut self, args: &[&str]) -> Result<RedisReply, String> {
        let mut request = Vec::new();
        request.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&request).await.map_err(|e| e.to_string())?;
        read_reply(&mut self.stream).await.map_err(|e| e.to_string())
    }
}

fn read_reply(stream: &mut BufReader<TcpStream>) -> Pin<Box<dyn Future<Output = std::io::Result<RedisReply>> + Send + '_>> {
    Box::pin(async move {
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("malformed reply: {what}"));
        let mut line = Vec::new();
        if stream.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let line = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string();
        let (kind, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
        let number = || rest.parse::<i64>().map_err(|_| bad(&line));
        Ok(match kind {
            "+" => RedisReply::Status(rest.to_string()),
            "-" => RedisReply::Error(rest.to_string()),
            ":" => RedisReply::Integer(number()?),
            "$" => match usize::try_from(number()?) {
                Err(_) => RedisReply::Nil,
                Ok(len) if len > MAX_BULK => return Err(bad("bulk reply too large")),
                Ok(len) => {
                    let mut data = vec![0; len + 2];
                    stream.read_exact(&mut data).await?;
                    data.truncate(len);
                    RedisReply::Bulk(data)
                }
            },
            "*" => match usize::try_from(number()?) {
                Err(_) => RedisReply::Nil,
                Ok(count) => {
                    let mut items = Vec::with_capacity(count.min(1024));
                    for _ in 0..count {
                        items.push(read_reply(stream).await?);
                    }
                    RedisReply::Array(items)
                }
            },
            _ => return Err(bad(&line)),
        })
    })
}

fn address(spec: &MemberSpec) -> SocketAddr {
    SocketAddr::from((spec.ip, spec.port))
}

/// Sends one command, authenticated with the member's password. A server
/// error reply (`-ERR ...`) is an error too.
pub(crate) async fn command(spec: &MemberSpec, args: &[&str]) -> Result<RedisReply, RuntimeError> {
    let name = args.first().map_or(String::new(), |a| a.to_ascii_uppercase());
    let fail = |message: String| RuntimeError::Redis {
        member: spec.name.clone(),
        address: address(spec),
        command: name.clone(),
        message: message.replace(&spec.password, "********"),
    };
    let exchange = async {
        let mut connection = Connection::open(address(spec), &spec.password).await?;
        connection.call(args).await
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, exchange).await {
        Ok(Ok(RedisReply::Error(e))) => Err(fail(e)),
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(fail(e)),
        Err(_) => Err(fail(format!("no answer within {COMMAND_TIMEOUT:?}"))),
    }
}

async fn text(spec: &MemberSpec, args: &[&str]) -> Result<String, RuntimeError> {
    let reply = command(spec, args).await?;
    reply.as_text().ok_or_else(|| RuntimeError::Redis {
        member: spec.name.clone(),
        address: address(spec),
        command: args.first().map_or(String::new(), |a| a.to_ascii_uppercase()),
        message: format!("unexpected reply {reply:?}"),
    })
}

pub(crate) async fn is_ready(spec: &MemberSpec) -> bool {
    let probe = async {
        let mut connection = Connection::open(address(spec), &spec.password).await.ok()?;
        connection.call(&["PING"]).await.ok()
    };
    matches!(tokio::time::timeout(PROBE_TIMEOUT, probe).await, Ok(Some(RedisReply::Status(s))) if s == "PONG")
}

/// The server's config file, in the run dir (it holds the password: mode 0600).
pub(crate) fn config_path(spec: &MemberSpec) -> PathBuf {
    spec.run_dir.join("redis.conf")
}

/// Quotes a value for redis.conf (double quotes, backslash escapes).
fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn config(spec: &MemberSpec) -> String {
    let volume = spec.volume.to_string_lossy();
    format!(
        "# Written by runner-lab-runtime for member {name} at every start.\n\
         bind {ip}\n\
         port {port}\n\
         daemonize no\n\
         # stdout goes to the log file in the run dir.\n\
         logfile \"\"\n\
         dir {dir}\n\
         cluster-enabled yes\n\
         # In the volume, so a recreated member keeps its node id and view of the cluster.\n\
         cluster-config-file {nodes}\n\
         cluster-node-timeout 2000\n\
         cluster-announce-ip {ip}\n\
         # A replica connects from 127.0.0.1 (the kernel's source address on loopback); without\n\
         # this its master would list every replica as 127.0.0.1, as no real cluster does.\n\
         replica-announce-ip {ip}\n\
         appendonly yes\n\
         requirepass {password}\n\
         masterauth {password}\n",
        name = spec.name,
        ip = spec.ip,
        port = spec.port,
        dir = quote(&volume),
        nodes = quote(&format!("{volume}/nodes.conf")),
        password = quote(&spec.password),
    )
}

pub(crate) fn server_command(spec: &MemberSpec) -> Result<(PathBuf, Vec<String>), RuntimeError> {
    if !spec.volume.is_dir() {
        return Err(RuntimeError::invalid(&spec.name, format!("volume {} does not exist: prepare the member first", spec.volume.display())));
    }
    let program = os::binary(&spec.name, Workload::Redis, "redis-server")?;
    let path = config_path(spec);
    os::write_private(&spec.name, &path, &config(spec), None)?;
    Ok((program, vec![path.to_string_lossy().into_owned()]))
}

pub(crate) fn prepare(spec: &MemberSpec) -> Result<(), RuntimeError> {
    os::private_dir(&spec.name, &spec.volume, None)?;
    os::private_dir(&spec.name, &spec.run_dir, None)
}

/// The `key:value` fields of CLUSTER INFO or INFO.
fn field(info: &str, key: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_string()))
}

/// Counts the masters and replicas in CLUSTER NODES output, and whether any
/// node is failing or still in handshake.
fn roles(nodes: &str) -> (usize, usize, bool) {
    let (mut masters, mut replicas, mut unhealthy) = (0, 0, false);
    for flags in nodes.lines().filter_map(|l| l.split_whitespace().nth(2)) {
        for flag in flags.split(',') {
            match flag {
                "master" => masters += 1,
                "slave" => replicas += 1,
                "fail" | "fail?" | "handshake" | "noaddr" => unhealthy = true,
                _ => {}
            }
        }
    }
    (masters, replicas, unhealthy)
}

/// Whether a member sees a healthy cluster of `size` nodes, `masters` of them
/// masters, with every slot served, and, if it is a replica, is in sync with
/// its master; and no AOF rewrite is under way (it would refuse a graceful stop).
async fn settled(spec: &MemberSpec, size: usize, masters: usize) -> Result<bool, RuntimeError> {
    let info = text(spec, &["CLUSTER", "INFO"]).await?;
    let ok = field(&info, "cluster_state").as_deref() == Some("ok")
        && field(&info, "cluster_slots_assigned").as_deref() == Some("16384")
        && field(&info, "cluster_known_nodes").and_then(|n| n.parse::<usize>().ok()) == Some(size);
    // Roles spread by gossip: right after creation a member may still see
    // the replicas as empty masters.
    if !ok || roles(&text(spec, &["CLUSTER", "NODES"]).await?) != (masters, size - masters, false) {
        return Ok(false);
    }
    // A replica counts once its first sync is done: before that a failover
    // to it, or WAIT, would find it empty.
    let replication = text(spec, &["INFO", "replication"]).await?;
    if field(&replication, "role").as_deref() == Some("slave") && field(&replication, "master_link_status").as_deref() != Some("up") {
        return Ok(false);
    }
    // After a full sync a replica rewrites its AOF, and refuses a SIGTERM
    // until that is done ("Writing initial AOF, can't exit"): not settled yet.
    let persistence = text(spec, &["INFO", "persistence"]).await?;
    Ok(["aof_rewrite_in_progress", "aof_rewrite_scheduled"].iter().all(|key| field(&persistence, key).as_deref() != Some("1")))
}

/// Polls until every member is settled.
async fn wait_settled(members: &[MemberSpec], masters: usize) -> Result<(), RuntimeError> {
    let size = members.len();
    let deadline = Instant::now() + CLUSTER_SETTLE;
    'poll: loop {
        for member in members {
            if !matches!(settled(member, size, masters).await, Ok(true)) {
                if Instant::now() >= deadline {
                    return Err(RuntimeError::Timeout {
                        member: member.name.clone(),
                        what: format!("cluster_state:ok with {size} healthy nodes, {masters} of them masters, serving all 16384 slots"),
                        waited: CLUSTER_SETTLE,
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'poll;
            }
        }
        return Ok(());
    }
}

pub(crate) async fn cluster_create(members: &[MemberSpec], replicas_per_master: usize) -> Result<(), RuntimeError> {
    let Some(first) = members.first() else {
        return Err(RuntimeError::invalid("(none)", "a Redis cluster needs members"));
    };
    if let Some(other) = members.iter().find(|m| m.workload != Workload::Redis) {
        return Err(RuntimeError::invalid(&other.name, "not a Redis member"));
    }
    if let Some(other) = members.iter().find(|m| m.password != first.password) {
        return Err(RuntimeError::invalid(&other.name, format!("its password differs from {}'s: a cluster's members share one", first.name)));
    }
    let masters = members.len() / (replicas_per_master + 1);
    if masters < 3 || !members.len().is_multiple_of(replicas_per_master + 1) {
        return Err(RuntimeError::invalid(
            &first.name,
            format!("{} members cannot form a cluster of at least 3 masters with {replicas_per_master} replicas each", members.len()),
        ));
    }
    // Already formed (a lab that came back over its volumes): nothing to do.
    let mut formed = true;
    for member in members {
        formed &= matches!(settled(member, members.len(), masters).await, Ok(true));
    }
    if formed {
        return Ok(());
    }
    let mut cli = Tool::new(&first.name, os::binary(&first.name, Workload::Redis, "redis-cli")?, &first.password).arg("--cluster").arg("create");
    for member in members {
        cli = cli.arg(address(member).to_string());
    }
    // REDISCLI_AUTH, not -a: the command line is visible to every user.
    cli = cli.arg("--cluster-replicas").arg(replicas_per_master.to_string()).arg("--cluster-yes").env("REDISCLI_AUTH", first.password.clone());
    cli.cwd = Some(&first.run_dir);
    let output = cli.run().await?;
    // redis-cli reports some failures on stdout with a zero exit status.
    if output.contains("[ERR]") {
        return Err(RuntimeError::Command {
            member: first.name.clone(),
            command: "redis-cli --cluster create".to_string(),
            status: "reported [ERR]".to_string(),
            output: os::tail(&output, &first.password, 12),
        });
    }
    wait_settled(members, masters).await
}

pub(crate) async fn cluster_meet(new_member: &MemberSpec, existing: &MemberSpec) -> Result<(), RuntimeError> {
    if address(new_member) == address(existing) {
        return Err(RuntimeError::invalid(&new_member.name, "cannot meet itself"));
    }
    command(new_member, &["CLUSTER", "MEET", &existing.ip.to_string(), &existing.port.to_string()]).await?;
    let id = text(new_member, &["CLUSTER", "MYID"]).await?;
    // Done when the existing member knows the new one as a healthy node, and
    // the new one sees the whole cluster serving every slot.
    let deadline = Instant::now() + CLUSTER_SETTLE;
    loop {
        let nodes = text(existing, &["CLUSTER", "NODES"]).await.unwrap_or_default();
        let known = nodes.lines().any(|line| line.split_whitespace().next() == Some(id.as_str()) && !roles(line).2);
        let info = text(new_member, &["CLUSTER", "INFO"]).await.unwrap_or_default();
        if known && field(&info, "cluster_state").as_deref() == Some("ok") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RuntimeError::Timeout {
                member: new_member.name.clone(),
                what: format!("{} to know it and cluster_state:ok", existing.name),
                waited: CLUSTER_SETTLE,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn exec_env(spec: &MemberSpec) -> Vec<(String, String)> {
    vec![
        ("REDISCLI_AUTH".to_string(), spec.password.clone()),
        ("REDIS_HOST".to_string(), spec.ip.to_string()),
        ("REDIS_PORT".to_string(), spec.port.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_redis_unescapes() {
        assert_eq!(quote(r#"a"b\c d"#), r#""a\"b\\c d""#);
        assert_eq!(quote("x\ny"), r#""x\x0ay""#);
    }

    #[test]
    fn members_announce_their_own_address() {
        let spec = MemberSpec {
            name: "redis-1".into(),
            workload: Workload::Redis,
            ip: std::net::Ipv4Addr::new(127, 0, 9, 3),
            port: 6379,
            volume: PathBuf::from("/v"),
            run_dir: PathBuf::from("/r"),
            password: "pw".into(),
        };
        let text = config(&spec);
        assert!(text.contains("\ncluster-announce-ip 127.0.9.3\n"), "{text}");
        assert!(text.contains("\nreplica-announce-ip 127.0.9.3\n"), "{text}");
    }

    #[test]
    fn roles_are_counted_from_cluster_nodes() {
        let nodes = "a 127.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-16383\n\
                     b 127.0.0.2:6379@16379 slave a 0 0 1 connected\n\
                     c 127.0.0.3:6379@16379 slave,fail a 0 0 1 disconnected\n";
        assert_eq!(roles(nodes), (1, 2, true));
        assert_eq!(roles(nodes.lines().next().unwrap_or_default()), (1, 0, false));
    }

    #[test]
    fn fields_are_found_by_key() {
        let info = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\n";
        assert_eq!(field(info, "cluster_state").as_deref(), Some("ok"));
        assert_eq!(field(info, "cluster_slots_assigned").as_deref(), Some("16384"));
        assert_eq!(field(info, "cluster_slots"), None);
    }
}
