//! `CLUSTER NODES`: one line per node as the answering member sees it.
//!
//! `<id> <ip:port@cport[,hostname]> <flags> <master-id|-> <ping-sent>
//! <pong-recv> <config-epoch> <connected|disconnected> <slot>...`

/// The number of hash slots of a Redis cluster.
pub const SLOTS: u32 = 16384;

/// One node of a `CLUSTER NODES` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    /// The announced address (empty for `noaddr`).
    pub ip: String,
    pub port: u16,
    pub flags: Vec<String>,
    /// For a replica: its master's id.
    pub master_id: Option<String>,
    pub config_epoch: u64,
    /// The cluster bus link to it is up.
    pub connected: bool,
    /// Slot ranges it serves (inclusive); importing/migrating markers are left out.
    pub slots: Vec<(u16, u16)>,
}

impl Node {
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub fn myself(&self) -> bool {
        self.has("myself")
    }

    pub fn is_master(&self) -> bool {
        self.has("master")
    }

    pub fn is_replica(&self) -> bool {
        self.has("slave")
    }

    /// The worst trouble flag, if any: `fail`, `fail?` (pfail), `handshake`, `noaddr`.
    pub fn trouble(&self) -> Option<&'static str> {
        ["fail", "fail?", "handshake", "noaddr"].into_iter().find(|f| self.has(f))
    }

    pub fn slot_count(&self) -> u32 {
        self.slots.iter().map(|(a, b)| u32::from(*b) - u32::from(*a) + 1).sum()
    }

    /// The first 8 characters of the id, as operators quote node ids.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(8)]
    }
}

/// Parse a `CLUSTER NODES` answer.
pub fn parse(text: &str) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return Err(format!("CLUSTER NODES line has {} fields, expected at least 8: `{line}`", fields.len()));
        }
        let address = fields[1].split(['@', ',']).next().unwrap_or_default();
        let (ip, port) = address.rsplit_once(':').unwrap_or((address, "0"));
        let mut slots = Vec::new();
        for slot in &fields[8..] {
            if slot.starts_with('[') {
                continue;
            }
            let range = match slot.split_once('-') {
                Some((a, b)) => (a.parse::<u16>(), b.parse::<u16>()),
                None => (slot.parse::<u16>(), slot.parse::<u16>()),
            };
            match range {
                (Ok(a), Ok(b)) if a <= b && u32::from(b) < SLOTS => slots.push((a, b)),
                _ => return Err(format!("CLUSTER NODES: bad slot range `{slot}` in `{line}`")),
            }
        }
        nodes.push(Node {
            id: fields[0].to_string(),
            ip: ip.to_string(),
            port: port.parse().unwrap_or(0),
            flags: fields[2].split(',').map(str::to_string).collect(),
            master_id: Some(fields[3]).filter(|m| *m != "-").map(str::to_string),
            config_epoch: fields[6].parse().unwrap_or(0),
            connected: fields[7] == "connected",
            slots,
        });
    }
    Ok(nodes)
}

/// The node that answered (`myself`).
pub fn myself(nodes: &[Node]) -> Option<&Node> {
    nodes.iter().find(|n| n.myself())
}

/// Slot ranges no master in `nodes` serves, merged (`[(0, 99)]`).
pub fn unassigned(nodes: &[Node]) -> Vec<(u16, u16)> {
    let mut served = vec![false; SLOTS as usize];
    for node in nodes.iter().filter(|n| n.is_master()) {
        for (a, b) in &node.slots {
            for slot in *a..=*b {
                served[slot as usize] = true;
            }
        }
    }
    ranges(served.iter().enumerate().filter(|(_, s)| !**s).map(|(i, _)| i as u16))
}

/// Consecutive slots merged into ranges.
pub fn ranges(slots: impl IntoIterator<Item = u16>) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for slot in slots {
        match out.last_mut() {
            Some((_, end)) if u32::from(*end) + 1 == u32::from(slot) => *end = slot,
            _ => out.push((slot, slot)),
        }
    }
    out
}

/// `0-99, 200` for messages.
pub fn show_ranges(ranges: &[(u16, u16)]) -> String {
    let shown: Vec<String> = ranges.iter().take(8).map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    let more = if ranges.len() > 8 { format!(" and {} more ranges", ranges.len() - 8) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

/// How many slots the ranges cover.
pub fn count(ranges: &[(u16, u16)]) -> u32 {
    ranges.iter().map(|(a, b)| u32::from(*b) - u32::from(*a) + 1).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const SAMPLE: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.1.14:6379@16379 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.1.11:6379@16379 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.1.12:6379@16379 master - 0 1426238318243 3 connected 10923-16383
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.1.15:6379@16379 slave,fail? 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 disconnected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.1.13:6379@16379,redis-3 slave 292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 0 1426238317741 6 connected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.1.10:6379@16379 myself,master - 0 0 1 connected 0-5460 [5461->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
";

    #[test]
    fn parses_every_field() {
        let nodes = parse(SAMPLE).unwrap();
        assert_eq!(nodes.len(), 6);
        let me = myself(&nodes).unwrap();
        assert_eq!((me.ip.as_str(), me.port, me.is_master(), me.slot_count()), ("127.0.1.10", 6379, true, 5461));
        assert_eq!(me.short_id(), "e7d1eecc");
        let replica = &nodes[0];
        assert!(replica.is_replica() && replica.trouble().is_none());
        assert_eq!(replica.master_id.as_deref(), Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"));
        assert_eq!(nodes[3].trouble(), Some("fail?"));
        assert!(!nodes[3].connected);
        assert_eq!(nodes[4].ip, "127.0.1.13");
        assert!(unassigned(&nodes).is_empty());
    }

    #[test]
    fn finds_uncovered_slots() {
        let text = "a 127.0.0.1:6379@16379 myself,master - 0 0 1 connected 100-16383\nb 127.0.0.2:6379@16379 master - 0 0 2 connected 50\n";
        let nodes = parse(text).unwrap();
        let missing = unassigned(&nodes);
        assert_eq!(missing, vec![(0, 49), (51, 99)]);
        assert_eq!(count(&missing), 99);
        assert_eq!(show_ranges(&missing), "0-49, 51-99");
        assert!(parse("a b c").is_err());
        assert!(parse("a 1.2.3.4:1@2 master - 0 0 1 connected 9-3").is_err());
        let noaddr = parse("a :0@0 master,noaddr - 0 0 1 disconnected").unwrap();
        assert_eq!((noaddr[0].ip.as_str(), noaddr[0].trouble()), ("", Some("noaddr")));
    }
}
