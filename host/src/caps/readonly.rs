//! The commands a gate may send through the read-only Redis and MongoDB
//! interfaces. Anything not listed needs the mutating interface.

/// Redis commands (and `CLUSTER`/`CONFIG`/`MEMORY` subcommands) that never
/// change data or topology.
const REDIS_READ: &[&str] = &[
    "INFO", "ROLE", "PING", "DBSIZE", "LASTSAVE", "TIME", "ECHO", "GET", "MGET", "EXISTS", "STRLEN", "TYPE", "TTL", "PTTL", "SCAN", "HGET",
    "HGETALL", "HLEN", "LLEN", "LRANGE", "SCARD", "SMEMBERS", "ZCARD", "ZRANGE", "XLEN", "XINFO",
];
const REDIS_READ_SUBCOMMANDS: &[(&str, &[&str])] = &[
    ("CLUSTER", &["INFO", "NODES", "SHARDS", "SLOTS", "MYID", "MYSHARDID", "COUNTKEYSINSLOT", "KEYSLOT", "LINKS", "REPLICAS", "COUNT-FAILURE-REPORTS"]),
    ("CONFIG", &["GET"]),
    ("MEMORY", &["USAGE", "STATS"]),
    ("CLIENT", &["LIST", "INFO", "GETNAME", "ID"]),
];

/// Whether a Redis command (`["CLUSTER", "NODES"]`) only reads.
pub fn redis_is_read(args: &[String]) -> bool {
    let Some(command) = args.first().map(|c| c.to_ascii_uppercase()) else { return false };
    if REDIS_READ.contains(&command.as_str()) {
        return true;
    }
    let sub = args.get(1).map(|s| s.to_ascii_uppercase()).unwrap_or_default();
    REDIS_READ_SUBCOMMANDS.iter().any(|(c, subs)| *c == command && subs.contains(&sub.as_str()))
}

/// MongoDB commands that never write (compared case-insensitively).
const MONGO_READ: &[&str] = &[
    "hello", "ismaster", "replsetgetstatus", "replsetgetconfig", "serverstatus", "ping", "buildinfo", "dbstats", "collstats", "listdatabases",
    "listcollections", "listindexes", "count", "find", "hostinfo", "getlog", "connectionstatus", "getcmdlineopts", "getparameter",
];

/// Whether a MongoDB command document only reads. The command name is the
/// document's first key.
pub fn mongo_is_read(command: &serde_json::Value) -> bool {
    command
        .as_object()
        .and_then(|doc| doc.keys().next())
        .is_some_and(|name| MONGO_READ.contains(&name.to_ascii_lowercase().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn redis_reads_and_writes() {
        assert!(redis_is_read(&args(&["cluster", "nodes"])));
        assert!(redis_is_read(&args(&["INFO", "replication"])));
        assert!(!redis_is_read(&args(&["CLUSTER", "FAILOVER"])));
        assert!(!redis_is_read(&args(&["CONFIG", "SET", "x", "y"])));
        assert!(!redis_is_read(&args(&["FLUSHALL"])));
        assert!(!redis_is_read(&[]));
    }

    #[test]
    fn mongo_reads_and_writes() {
        assert!(mongo_is_read(&serde_json::json!({"replSetGetStatus": 1})));
        assert!(!mongo_is_read(&serde_json::json!({"replSetStepDown": 60})));
        assert!(!mongo_is_read(&serde_json::json!({"insert": "x", "documents": []})));
        assert!(!mongo_is_read(&serde_json::json!([1])));
    }
}
