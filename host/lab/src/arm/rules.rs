//! AKS's rules, as plain functions: which versions an upgrade profile
//! offers, what a pool may be named, and the surge arithmetic of
//! `upgradeSettings`.

use serde_json::{Map, Value};

/// The Kubernetes versions the lab's AKS offers, oldest first.
pub const VERSIONS: &[&str] = &["1.29.9", "1.30.5", "1.31.2"];

/// `1.30.5` -> (1, 30, 5).
pub fn parse_version(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.trim_start_matches('v').split('.');
    let parsed = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next().unwrap_or("0").parse().ok()?);
    parts.next().is_none().then_some(parsed)
}

/// The control-plane upgrades from `current`: newer patches of its minor
/// and the next minor (AKS does not skip minors).
pub fn control_plane_upgrades(current: &str) -> Vec<&'static str> {
    let Some((major, minor, _)) = parse_version(current) else { return Vec::new() };
    VERSIONS
        .iter()
        .copied()
        .filter(|v| parse_version(v) > parse_version(current))
        .filter(|v| parse_version(v).is_some_and(|(ma, mi, _)| ma == major && (mi == minor || mi == minor + 1)))
        .collect()
}

/// A pool's upgrades: newer versions up to the control plane's (a pool may
/// not be newer than the control plane).
pub fn pool_upgrades(pool: &str, control_plane: &str) -> Vec<&'static str> {
    VERSIONS.iter().copied().filter(|v| parse_version(v) > parse_version(pool) && parse_version(v) <= parse_version(control_plane)).collect()
}

/// Why `name` is not a legal name for a new Linux pool (AKS: lowercase
/// letters and digits, a letter first, 1-12 characters).
pub fn pool_name_error(name: &str) -> Option<String> {
    let legal = (1..=12).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (!legal).then(|| {
        format!(
            "The agent pool name '{name}' is not valid: agent pool names must start with a lowercase letter, contain only lowercase letters and numbers, and be 1-12 characters long for Linux node pools"
        )
    })
}

/// `upgradeSettings` with AKS's defaults applied, and the surge counted
/// for a pool of a given size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Extra Nodes made at once (maxSurge resolved against the pool's size).
    pub max_surge: u32,
    /// Existing Nodes drained at once without a replacement first (maxUnavailable).
    pub max_unavailable: u32,
    /// How long a Node's drain may take, in AKS minutes (drainTimeoutInMinutes, default 30).
    pub drain_timeout_minutes: u32,
    /// How long to wait after a drain before the Node goes (nodeSoakDurationInMinutes, default 0).
    pub soak_minutes: u32,
    /// undrainableNodeBehavior `Cordon` (quarantine the Node) instead of `Schedule`.
    pub cordon: bool,
}

/// A count or a percentage of `nodes` (rounded up); `None` when absent.
fn amount(field: &str, value: Option<&Value>, nodes: u32) -> Result<Option<u32>, String> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("{field} must be a node count or a percentage such as \"33%\", not {other}")),
    };
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || format!("{field} must be a node count or a percentage such as \"33%\", not \"{text}\"");
    match text.strip_suffix('%') {
        Some(percent) => {
            let p: u32 = percent.parse().map_err(|_| bad())?;
            if !(1..=100).contains(&p) {
                return Err(format!("{field} percentage must be between 1% and 100%, not \"{text}\""));
            }
            Ok(Some(((nodes * p).div_ceil(100)).max(1)))
        }
        None => text.parse().map(Some).map_err(|_| bad()),
    }
}

fn minutes(field: &str, value: Option<&Value>, default: u32, range: std::ops::RangeInclusive<u64>) -> Result<u32, String> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if range.contains(&n) => Ok(n as u32),
            _ => Err(format!("{field} must be a whole number of minutes from {} to {}, not {v}", range.start(), range.end())),
        },
    }
}

/// Resolves `upgradeSettings` for a pool of `nodes` Nodes: maxSurge
/// default 10% (rounded up, at least 1), maxUnavailable default 0, "0"
/// surge only with maxUnavailable of 1 or more.
pub fn settings(raw: &Map<String, Value>, nodes: u32) -> Result<Settings, String> {
    let max_unavailable = amount("maxUnavailable", raw.get("maxUnavailable"), nodes)?.unwrap_or(0);
    let max_surge = match amount("maxSurge", raw.get("maxSurge"), nodes)? {
        Some(n) => n,
        None => nodes.div_ceil(10).max(1),
    };
    if max_surge == 0 && max_unavailable == 0 {
        return Err("maxSurge and maxUnavailable cannot both be 0: set maxUnavailable to at least 1 to upgrade without surge nodes".into());
    }
    let cordon = match raw.get("undrainableNodeBehavior").and_then(Value::as_str) {
        None | Some("Schedule") => false,
        Some("Cordon") => true,
        Some(other) => return Err(format!("undrainableNodeBehavior must be \"Schedule\" or \"Cordon\", not \"{other}\"")),
    };
    Ok(Settings {
        max_surge,
        max_unavailable,
        drain_timeout_minutes: minutes("drainTimeoutInMinutes", raw.get("drainTimeoutInMinutes"), 30, 1..=1440)?,
        soak_minutes: minutes("nodeSoakDurationInMinutes", raw.get("nodeSoakDurationInMinutes"), 0, 0..=30)?,
        cordon,
    })
}

impl Settings {
    /// The batches an upgrade of `nodes` Nodes goes in: each is (how many
    /// get a surge Node, how many are drained and reimaged in place).
    pub fn batches(&self, nodes: u32) -> Vec<(u32, u32)> {
        let mut left = nodes;
        let mut batches = Vec::new();
        while left > 0 {
            let surged = self.max_surge.min(left);
            let in_place = self.max_unavailable.min(left - surged);
            batches.push((surged, in_place));
            left -= surged + in_place;
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raw(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn surge_defaults_to_ten_percent_rounded_up_at_least_one() {
        let s = settings(&Map::new(), 3).unwrap();
        assert_eq!((s.max_surge, s.max_unavailable, s.drain_timeout_minutes, s.soak_minutes, s.cordon), (1, 0, 30, 0, false));
        assert_eq!(settings(&Map::new(), 25).unwrap().max_surge, 3);
        assert_eq!(settings(&Map::new(), 10).unwrap().max_surge, 1);
    }

    #[test]
    fn counts_and_percentages() {
        assert_eq!(settings(&raw(json!({"maxSurge": "50%"})), 3).unwrap().max_surge, 2);
        assert_eq!(settings(&raw(json!({"maxSurge": "33%"})), 3).unwrap().max_surge, 1);
        assert_eq!(settings(&raw(json!({"maxSurge": "100%"})), 3).unwrap().max_surge, 3);
        assert_eq!(settings(&raw(json!({"maxSurge": "2"})), 3).unwrap().max_surge, 2);
        assert_eq!(settings(&raw(json!({"maxSurge": 2})), 3).unwrap().max_surge, 2);
        let s = settings(&raw(json!({"maxSurge": "0", "maxUnavailable": "1"})), 3).unwrap();
        assert_eq!((s.max_surge, s.max_unavailable), (0, 1));
        assert!(settings(&raw(json!({"maxSurge": "0"})), 3).unwrap_err().contains("cannot both be 0"));
        assert!(settings(&raw(json!({"maxSurge": "lots"})), 3).unwrap_err().contains("maxSurge"));
        assert!(settings(&raw(json!({"maxSurge": "150%"})), 3).is_err());
        assert!(settings(&raw(json!({"undrainableNodeBehavior": "Delete"})), 3).is_err());
        assert!(settings(&raw(json!({"drainTimeoutInMinutes": 0})), 3).is_err());
        assert!(settings(&raw(json!({"undrainableNodeBehavior": "Cordon"})), 3).unwrap().cordon);
    }

    #[test]
    fn batches_cover_every_node_once() {
        let s = settings(&raw(json!({"maxSurge": "2"})), 5).unwrap();
        assert_eq!(s.batches(5), [(2, 0), (2, 0), (1, 0)]);
        let s = settings(&raw(json!({"maxSurge": "0", "maxUnavailable": "1"})), 3).unwrap();
        assert_eq!(s.batches(3), [(0, 1), (0, 1), (0, 1)]);
        let s = settings(&raw(json!({"maxSurge": "1", "maxUnavailable": "1"})), 3).unwrap();
        assert_eq!(s.batches(3), [(1, 1), (1, 0)]);
        assert!(s.batches(0).is_empty());
    }

    #[test]
    fn versions_offered() {
        assert_eq!(control_plane_upgrades("1.29.9"), ["1.30.5"]);
        assert_eq!(control_plane_upgrades("1.30.5"), ["1.31.2"]);
        assert!(control_plane_upgrades("1.31.2").is_empty());
        assert_eq!(pool_upgrades("1.29.9", "1.30.5"), ["1.30.5"]);
        assert!(pool_upgrades("1.29.9", "1.29.9").is_empty(), "never newer than the control plane");
        assert_eq!(pool_upgrades("1.29.9", "1.31.2"), ["1.30.5", "1.31.2"]);
        assert_eq!(parse_version("v1.30.5"), Some((1, 30, 5)));
        assert_eq!(parse_version("1.30.x"), None);
    }

    #[test]
    fn pool_names() {
        assert!(pool_name_error("nodepool2").is_none());
        assert!(pool_name_error("a").is_none());
        for bad in ["", "Nodepool", "2pool", "node-pool", "abcdefghijklm"] {
            assert!(pool_name_error(bad).is_some(), "{bad}");
        }
    }
}
