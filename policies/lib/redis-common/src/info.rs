//! `INFO` and `CLUSTER INFO`: `key:value` lines, and the replication section.

use std::collections::BTreeMap;

/// The `key:value` fields of an INFO-style answer (section headers skipped).
pub fn fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One `slaveN:` line of a master's INFO replication.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attached {
    pub ip: String,
    pub port: u16,
    /// `online`, `wait_bgsave`, `send_bulk`, ...
    pub state: String,
    pub offset: u64,
    pub lag: Option<u64>,
}

/// `INFO replication`, as far as the policies use it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replication {
    /// `master` or `slave`.
    pub role: String,
    pub master_repl_offset: u64,
    /// For a master: its replicas.
    pub replicas: Vec<Attached>,
    /// For a replica: where it replicates from and how.
    pub master_host: Option<String>,
    pub master_port: Option<u16>,
    pub link_up: bool,
    pub sync_in_progress: bool,
    /// For a replica: how much it has processed.
    pub replica_offset: u64,
}

impl Replication {
    pub fn is_master(&self) -> bool {
        self.role == "master"
    }

    /// The `slaveN` entry of the replica at `ip`.
    pub fn replica_at(&self, ip: &str) -> Option<&Attached> {
        self.replicas.iter().find(|r| r.ip == ip)
    }
}

/// Parse `INFO replication`.
pub fn replication(text: &str) -> Replication {
    let f = fields(text);
    let number = |k: &str| f.get(k).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
    let mut replicas: Vec<(u32, Attached)> = f
        .iter()
        .filter_map(|(k, v)| {
            let index: u32 = k.strip_prefix("slave")?.parse().ok()?;
            let parts: BTreeMap<&str, &str> = v.split(',').filter_map(|p| p.split_once('=')).collect();
            Some((
                index,
                Attached {
                    ip: parts.get("ip")?.to_string(),
                    port: parts.get("port").and_then(|p| p.parse().ok()).unwrap_or(0),
                    state: parts.get("state").unwrap_or(&"").to_string(),
                    offset: parts.get("offset").and_then(|p| p.parse().ok()).unwrap_or(0),
                    lag: parts.get("lag").and_then(|p| p.parse().ok()),
                },
            ))
        })
        .collect();
    replicas.sort_by_key(|(i, _)| *i);
    Replication {
        role: f.get("role").cloned().unwrap_or_default(),
        master_repl_offset: number("master_repl_offset"),
        replicas: replicas.into_iter().map(|(_, r)| r).collect(),
        master_host: f.get("master_host").cloned(),
        master_port: f.get("master_port").and_then(|p| p.parse().ok()),
        link_up: f.get("master_link_status").is_some_and(|s| s == "up"),
        sync_in_progress: number("master_sync_in_progress") == 1,
        replica_offset: number("slave_repl_offset"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_master_and_a_replica() {
        let master = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.1.14,port=6379,state=online,offset=5000,lag=0\r\nslave1:ip=127.0.1.15,port=6379,state=wait_bgsave,offset=0,lag=1\r\nmaster_replid:abc\r\nmaster_repl_offset:5012\r\n";
        let r = replication(master);
        assert!(r.is_master());
        assert_eq!(r.master_repl_offset, 5012);
        assert_eq!(r.replicas.len(), 2);
        assert_eq!(r.replica_at("127.0.1.15").map(|a| a.state.as_str()), Some("wait_bgsave"));
        assert_eq!(r.replicas[0].offset, 5000);
        let replica = "role:slave\r\nmaster_host:127.0.1.10\r\nmaster_port:6379\r\nmaster_link_status:down\r\nmaster_sync_in_progress:1\r\nslave_repl_offset:42\r\nmaster_repl_offset:42\r\n";
        let r = replication(replica);
        assert!(!r.is_master() && !r.link_up && r.sync_in_progress);
        assert_eq!((r.master_host.as_deref(), r.master_port, r.replica_offset), (Some("127.0.1.10"), Some(6379), 42));
        assert_eq!(fields("# Cluster\r\ncluster_state:ok\r\n")["cluster_state"], "ok");
    }
}
