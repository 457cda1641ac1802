//! The values a `cluster-read` / `cluster-write` call carries, as plain Rust,
//! and the rules their names follow (AKS's pool names, `MAJOR.MINOR.PATCH`
//! versions). The AKS backend fills them from ARM documents; the import
//! layer converts them to and from the WIT records.

use super::names::InvalidName;

/// How a pool upgrades (`upgradeSettings`); an empty text or `None` leaves
/// AKS's default in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradeSettings {
    /// `maxSurge`: a count (`1`) or a share (`33%`).
    pub max_surge: String,
    /// `maxUnavailable`: a count or a share.
    pub max_unavailable: String,
    /// `drainTimeoutInMinutes`.
    pub drain_timeout_minutes: Option<u32>,
    /// `nodeSoakDurationInMinutes`.
    pub node_soak_minutes: Option<u32>,
    /// `undrainableNodeBehavior`: `Schedule` or `Cordon`.
    pub undrainable_node_behavior: String,
}

/// A node pool (`agentPools/{name}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePool {
    /// The pool's name.
    pub name: String,
    /// `System` or `User`.
    pub mode: String,
    /// `orchestratorVersion`: the version asked for.
    pub orchestrator_version: String,
    /// `currentOrchestratorVersion`: the version the Nodes run.
    pub current_orchestrator_version: String,
    /// `nodeImageVersion`.
    pub node_image_version: String,
    /// Nodes in the pool.
    pub count: u32,
    /// `provisioningState`.
    pub provisioning_state: String,
    /// How it upgrades.
    pub upgrade_settings: UpgradeSettings,
}

/// The control plane: `managedClusters/{name}` and its upgrade profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlPlane {
    /// `kubernetesVersion`.
    pub kubernetes_version: String,
    /// `currentKubernetesVersion`.
    pub current_kubernetes_version: String,
    /// `provisioningState`.
    pub provisioning_state: String,
    /// Versions the upgrade profile offers.
    pub upgrades: Vec<String>,
}

/// `agentPools/{name}/upgradeProfiles/default`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolUpgradeProfile {
    /// The version the pool runs.
    pub kubernetes_version: String,
    /// Versions it can be upgraded to.
    pub upgrades: Vec<String>,
    /// `latestNodeImageVersion`.
    pub latest_node_image_version: String,
}

/// A long-running operation's status document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Operation {
    /// The operation's id.
    pub id: String,
    /// `InProgress`, `Succeeded`, `Failed` or `Canceled`.
    pub status: String,
    /// RFC 3339, empty while unknown.
    pub start_time: String,
    /// RFC 3339, empty while it runs.
    pub end_time: String,
    /// AKS's error code when it failed.
    pub error_code: String,
    /// AKS's error message when it failed.
    pub error_message: String,
}

/// A pool to add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewNodePool {
    /// Its name (checked by [`pool_name`]).
    pub name: String,
    /// `System` or `User`.
    pub mode: String,
    /// The Kubernetes version (empty: the control plane's).
    pub orchestrator_version: String,
    /// How many Nodes.
    pub count: u32,
    /// The VM size (empty: the size of the cluster's first pool).
    pub vm_size: String,
    /// Labels every Node gets, as `(key, value)`.
    pub node_labels: Vec<(String, String)>,
    /// How it upgrades.
    pub upgrade_settings: UpgradeSettings,
}

/// AKS's rule for a new Linux pool's name: 1-12 lowercase letters and
/// digits, a letter first.
pub fn pool_name(name: &str) -> Result<(), InvalidName> {
    let ok = (1..=12).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok { Ok(()) } else { Err(InvalidName::new(format!("pool name `{}`: AKS takes 1-12 lowercase letters and digits, a letter first", shown(name)))) }
}

/// The name of a pool that already exists: AKS's rule, or a name the
/// cluster already holds that AKS no longer accepts for new pools (the
/// lab's `upgraded-pool`): lowercase letters, digits and `-`, at most 63.
/// It becomes a URL path segment, so nothing else passes.
pub fn existing_pool_name(name: &str) -> Result<(), InvalidName> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidName::new(format!("pool name `{}`: not a node pool name (lowercase letters, digits and `-`, a letter first)", shown(name))))
    }
}

/// A Kubernetes version as AKS takes it: `MAJOR.MINOR.PATCH`, digits only.
pub fn version(text: &str) -> Result<(), InvalidName> {
    let parts: Vec<&str> = text.split('.').collect();
    let ok = parts.len() == 3 && parts.iter().all(|p| (1..=6).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if ok { Ok(()) } else { Err(InvalidName::new(format!("version `{}`: AKS takes MAJOR.MINOR.PATCH (`1.30.5`)", shown(text)))) }
}

/// The id of an operation, as AKS gives it (a UUID, or the lab's own
/// ids): letters, digits, `-`, `_` and `.`, since it goes into a URL.
pub fn operation_id(id: &str) -> Result<(), InvalidName> {
    let ok = (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) && id != "." && id != "..";
    if ok { Ok(()) } else { Err(InvalidName::new(format!("operation id `{}`: letters, digits, `-`, `_` and `.` only", shown(id)))) }
}

/// `key=value` node labels as pairs, each part a Kubernetes label key and value.
pub fn node_labels(labels: &[String]) -> Result<Vec<(String, String)>, InvalidName> {
    labels
        .iter()
        .map(|text| {
            let (key, value) = text.split_once('=').ok_or_else(|| InvalidName::new(format!("node label `{}`: write it as key=value", shown(text))))?;
            super::names::label_key("node label key", key)?;
            super::names::label_value("node label value", value)?;
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

/// An upgrade setting's surge or unavailability: empty, a count, or a
/// percentage of 1-100.
pub fn surge(field: &str, text: &str) -> Result<(), InvalidName> {
    if text.is_empty() {
        return Ok(());
    }
    let (digits, percent) = match text.strip_suffix('%') {
        Some(d) => (d, true),
        None => (text, false),
    };
    let value = (!digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse::<u32>().ok()).flatten();
    match value {
        Some(n) if !percent || (1..=100).contains(&n) => Ok(()),
        _ => Err(InvalidName::new(format!("{field} `{}`: a count (`1`) or a share of the pool (`33%`)", shown(text)))),
    }
}

/// `undrainableNodeBehavior`: empty, `Schedule` or `Cordon`.
pub fn undrainable(text: &str) -> Result<(), InvalidName> {
    if matches!(text, "" | "Schedule" | "Cordon") {
        Ok(())
    } else {
        Err(InvalidName::new(format!("undrainable-node-behavior `{}`: `Schedule` or `Cordon`", shown(text))))
    }
}

/// A pool mode: `System` or `User`.
pub fn mode(text: &str) -> Result<(), InvalidName> {
    if matches!(text, "System" | "User") { Ok(()) } else { Err(InvalidName::new(format!("pool mode `{}`: `System` or `User`", shown(text)))) }
}

/// A VM size: empty, or Azure's spelling (`Standard_D4s_v5`).
pub fn vm_size(text: &str) -> Result<(), InvalidName> {
    let ok = text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok { Ok(()) } else { Err(InvalidName::new(format!("vm size `{}`: letters, digits and `_` (`Standard_D4s_v5`)", shown(text)))) }
}

/// A name as messages show it: long or control-laden input cut and escaped.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(64).collect();
    let cut = cut.escape_debug().to_string();
    if text.chars().count() > 64 { format!("{cut}...") } else { cut }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_follow_aks() {
        for good in ["nodepool1", "a", "pool2024abcd"] {
            assert!(pool_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1pool", "Pool", "pool-1", "pool2024abcde", "po ol", "pool/../x"] {
            assert!(pool_name(bad).is_err(), "{bad}");
        }
        assert!(existing_pool_name("upgraded-pool").is_ok(), "the lab's seed pool is still addressable");
        for bad in ["", "-x", "x-", "a/b", "a?b", "A", &"a".repeat(64)] {
            assert!(existing_pool_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_are_three_numbers() {
        assert!(version("1.30.5").is_ok());
        for bad in ["1.30", "v1.30.5", "1.30.5-rc1", "1..5", "1.30.5.1", "", "1.30.x"] {
            assert!(version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_and_labels() {
        for good in ["", "1", "33%", "100%", "0"] {
            assert!(surge("max-surge", good).is_ok(), "{good}");
        }
        for bad in ["%", "0%", "101%", "-1", "1.5", "ten"] {
            assert!(surge("max-surge", bad).is_err(), "{bad}");
        }
        assert_eq!(node_labels(&["tier=db".into()]).unwrap(), vec![("tier".into(), "db".into())]);
        assert!(node_labels(&["tier".into()]).unwrap_err().to_string().contains("key=value"));
        assert!(undrainable("Cordon").is_ok() && undrainable("cordon").is_err());
        assert!(operation_id("0c8a-11ef_x.1").is_ok() && operation_id("../x").is_err() && operation_id("a?b").is_err());
    }
}
