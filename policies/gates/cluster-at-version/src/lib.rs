//! Gate `cluster-at-version`: does the whole cluster (control plane and
//! every node pool) run the version asked for, with no operation in progress?

use runner_sdk::cluster::{self, ControlPlane, NodePool, SUCCEEDED};
use runner_sdk::prelude::*;
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    kubernetes_version: String,
    node_image: String,
}

/// Judge the control plane and the pools against the configuration.
fn judge(check: &mut Check, config: &Config, plane: &ControlPlane, pools: &[NodePool]) {
    let target = config.kubernetes_version.as_str();
    if plane.version() != target {
        check.fail(format!("control plane runs {}, not {target}", plane.version()));
    }
    if plane.provisioning_state != SUCCEEDED {
        check.fail(format!("control plane is {} (an operation is in progress or failed)", plane.provisioning_state));
    }
    for pool in pools {
        if pool.version() != target {
            check.fail(format!("pool {} runs {}, not {target}", pool.name, pool.version()));
        }
        if pool.provisioning_state != SUCCEEDED {
            check.fail(format!("pool {} is {}", pool.name, pool.provisioning_state));
        }
        if !config.node_image.is_empty() && pool.node_image_version != config.node_image {
            check.fail(format!("pool {} has node image {}, not {}", pool.name, pool.node_image_version, config.node_image));
        }
    }
    check.note(format!("control plane {}; {} pool(s)", plane.version(), pools.len()));
    check.evidence("control_plane", plane.version());
    check.evidence(
        "pools",
        pools
            .iter()
            .map(|p| json!({"name": p.name, "version": p.version(), "node_image": p.node_image_version, "count": p.count, "state": p.provisioning_state}))
            .collect::<Vec<_>>(),
    );
}

struct Gate;

impl runner_sdk::gate::Guest for Gate {
    fn evaluate(config: String) -> Result<Verdict, Error> {
        let config: Config = parse_config(&config)?;
        if config.kubernetes_version.trim().is_empty() {
            return Err(Error::invalid("config `kubernetes-version` is empty: name the version the cluster must run"));
        }
        let plane = cluster::control_plane()?;
        let pools = cluster::node_pools()?;
        let mut check = Check::new();
        judge(&mut check, &config, &plane, &pools);
        Ok(check.verdict())
    }
}

runner_sdk::export_gate!(Gate);

#[cfg(test)]
mod tests {
    use super::*;
    use runner_sdk::cluster::UpgradeSettings;

    fn pool(name: &str, version: &str, state: &str) -> NodePool {
        NodePool {
            name: name.into(),
            mode: "System".into(),
            orchestrator_version: version.into(),
            current_orchestrator_version: version.into(),
            node_image_version: "AKSUbuntu-2204gen2containerd-202411.12.0".into(),
            count: 3,
            provisioning_state: state.into(),
            upgrade_settings: UpgradeSettings::unset(),
        }
    }

    fn plane(version: &str) -> ControlPlane {
        ControlPlane { kubernetes_version: version.into(), current_kubernetes_version: version.into(), provisioning_state: SUCCEEDED.into(), upgrades: vec![] }
    }

    #[test]
    fn every_part_not_at_the_version_is_named() {
        let config = Config { kubernetes_version: "1.30.5".into(), node_image: String::new() };
        let mut done = Check::new();
        judge(&mut done, &config, &plane("1.30.5"), &[pool("nodepool1", "1.30.5", "Succeeded")]);
        assert_eq!(done.verdict().outcome, Outcome::Pass);

        let mut behind = Check::new();
        judge(&mut behind, &config, &plane("1.29.9"), &[pool("nodepool1", "1.29.9", "Upgrading"), pool("user1", "1.30.5", "Succeeded")]);
        let verdict = behind.verdict();
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert_eq!(
            verdict.reasons,
            vec![
                "control plane runs 1.29.9, not 1.30.5",
                "pool nodepool1 runs 1.29.9, not 1.30.5",
                "pool nodepool1 is Upgrading",
                "control plane 1.29.9; 2 pool(s)"
            ]
        );
        let evidence: Value = serde_json::from_str(&verdict.evidence).unwrap();
        assert_eq!(evidence["pools"][1]["name"], "user1");

        let mut image = Check::new();
        let config = Config { kubernetes_version: "1.30.5".into(), node_image: "AKSUbuntu-2204gen2containerd-202501.05.0".into() };
        judge(&mut image, &config, &plane("1.30.5"), &[pool("nodepool1", "1.30.5", "Succeeded")]);
        assert!(image.verdict().reasons[0].contains("has node image AKSUbuntu-2204gen2containerd-202411.12.0"));
    }
}
