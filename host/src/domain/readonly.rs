//! The commands a gate may send through the read-only Redis and MongoDB
//! interfaces. Anything not listed needs the mutating interface.

/// Redis commands (and `CLUSTER`/`CONFIG`/`MEMORY` subcommands) that never
/// change data or topology.
const REDIS_READ: &[&str] = &[
    "INFO", "ROLE", "PING", "DBSIZE", "LASTSAVE", "TIME", "ECHO", "GET", "MGET", "EXISTS", "STRLEN", "TYPE", "TTL", "PTTL", "SCAN", "HGET", "HGETALL", "HLEN",
    "LLEN", "LRANGE", "SCARD", "SMEMBERS", "ZCARD", "ZRANGE", "XLEN", "XINFO",
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
    "hello",
    "ismaster",
    "replsetgetstatus",
    "replsetgetconfig",
    "serverstatus",
    "ping",
    "buildinfo",
    "dbstats",
    "collstats",
    "listdatabases",
    "listcollections",
    "listindexes",
    "count",
    "find",
    "hostinfo",
    "getlog",
    "connectionstatus",
    "getcmdlineopts",
    "getparameter",
];

/// Whether a MongoDB command document (JSON text) only reads. MongoDB
/// takes the document's first key, in the order written, as the command's
/// name; a parsed `serde_json::Value` sorts its keys, so the name is read
/// from the text itself (else `{"insert": .., "count": 1}` would pass as a
/// `count`).
pub fn mongo_is_read(command: &str) -> bool {
    mongo_command_name(command).is_some_and(|name| MONGO_READ.contains(&name.to_ascii_lowercase().as_str()))
}

/// The first key of a JSON object in the order written, or `None` for
/// anything that is not a non-empty JSON object.
pub fn mongo_command_name(command: &str) -> Option<String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

    struct FirstKey;

    impl<'de> Visitor<'de> for FirstKey {
        type Value = Option<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let first = map.next_key::<String>()?;
            if first.is_some() {
                map.next_value::<IgnoredAny>()?;
            }
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }

    let mut de = serde_json::Deserializer::from_str(command);
    let name = (&mut de).deserialize_map(FirstKey).ok()?;
    de.end().ok()?;
    name
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
        for read in ["hello", "isMaster", "replSetGetStatus", "replSetGetConfig", "serverStatus", "ping", "buildInfo", "getParameter"] {
            assert!(mongo_is_read(&format!(r#"{{"{read}": 1}}"#)), "{read}");
        }
        assert!(!mongo_is_read(r#"{"replSetStepDown": 60}"#));
        assert!(!mongo_is_read(r#"{"replSetFreeze": 0}"#));
        assert!(!mongo_is_read(r#"{"insert": "x", "documents": []}"#));
        assert!(!mongo_is_read("[1]"));
        assert!(!mongo_is_read("{}"));
        assert!(!mongo_is_read(r#"{"ping": 1"#));
    }

    #[test]
    fn mongo_command_names_follow_the_written_order() {
        // Sorted keys would make this a `count`; MongoDB runs the `insert`.
        assert!(!mongo_is_read(r#"{"insert": "orders", "documents": [{"a": 1}], "count": 1}"#));
        // And a read whose other keys sort first stays a read.
        assert!(mongo_is_read(r#"{"find": "orders", "filter": {"a": 1}, "$readPreference": {"mode": "secondaryPreferred"}}"#));
        assert_eq!(mongo_command_name(r#" {"hello": 1, "comment": {"x": [1, {"y": 2}]}} "#).as_deref(), Some("hello"));
        assert_eq!(mongo_command_name(r#"{"hello": 1} trailing"#), None);
    }
}
