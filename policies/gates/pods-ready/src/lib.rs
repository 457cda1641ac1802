//! Gate `pods-ready`: every Pod matching a label selector is Ready.

use runner_sdk::prelude::*;
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    selector: String,
    namespace: String,
    min_pods: u64,
}

struct PodsReady;

impl runner_sdk::gate::Guest for PodsReady {
    fn evaluate(config: String) -> Result<Verdict, Error> {
        let config: Config = parse_config(&config)?;
        let pods = list_json(&ListOptions::of("v1", "Pod").labels(&config.selector).in_namespace(&config.namespace))?;
        let mut check = Check::new();
        let mut ready = 0;
        let mut seen = Vec::new();
        for pod in &pods {
            let name = pod["metadata"]["name"].as_str().unwrap_or("?");
            let phase = pod["status"]["phase"].as_str().unwrap_or("Unknown");
            let node = pod["spec"]["nodeName"].as_str().unwrap_or("unscheduled");
            let is_ready = pod_is_ready(pod);
            if is_ready {
                ready += 1;
            } else {
                check.fail(format!("{name}: not Ready (phase {phase}, node {node})"));
            }
            seen.push(json!({"name": name, "ready": is_ready, "phase": phase, "node": node}));
        }
        if (pods.len() as u64) < config.min_pods {
            check.fail(format!("{} Pod(s) match `{}`, fewer than the {} required", pods.len(), config.selector, config.min_pods));
        }
        check.note(format!("{ready}/{} Pods matching `{}` are Ready", pods.len(), config.selector));
        check.evidence("ready", ready).evidence("total", pods.len()).evidence("pods", seen);
        Ok(check.verdict())
    }
}

runner_sdk::export_gate!(PodsReady);
