//! PodDisruptionBudgets: which Pods one selects, and how many of them may
//! be disrupted now, as the eviction API would decide.

use runner_sdk::prelude::*;

/// Whether `labels` (a Pod's `metadata.labels`) match a `LabelSelector`
/// (`matchLabels` and `matchExpressions` with In, NotIn, Exists,
/// DoesNotExist). An empty selector matches every Pod, as for a
/// `policy/v1` budget; a null one matches none.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    if selector.is_null() {
        return false;
    }
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let by_label = selector["matchLabels"].as_object().is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let by_expression = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"].as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            match e["operator"].as_str().unwrap_or_default() {
                "In" => label(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        })
    });
    by_label && by_expression
}

/// An `IntOrString` (`2` or `"50%"`) of `total`, rounded up as Kubernetes does for budgets.
fn scaled(value: &Value, total: u64) -> Result<u64, String> {
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("{n} is not a count")),
        Value::String(s) => match s.strip_suffix('%') {
            Some(p) => p.trim().parse::<u64>().map(|p| (p * total).div_ceil(100)).map_err(|_| format!("`{s}` is not a percentage")),
            None => s.trim().parse::<u64>().map_err(|_| format!("`{s}` is not a count or a percentage")),
        },
        other => Err(format!("{other} is not a count or a percentage")),
    }
}

/// What one budget allows for the Pods it selects.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    /// The budget's name.
    pub name: String,
    /// Disruptions allowed now.
    pub allowed: u64,
    /// How the figure came about, for a failure message
    /// (`minAvailable 2, 2 Ready`; `status.disruptionsAllowed`).
    pub basis: String,
}

impl Budget {
    /// Judge `pdb` given the Pods it selects (`selected`, of which `ready`
    /// are Ready): its `status.disruptionsAllowed` when the controller has
    /// observed its current generation, else computed from `minAvailable` or
    /// `maxUnavailable` as the disruption controller would.
    pub fn judge(pdb: &Value, selected: u64, ready: u64) -> Result<Budget, String> {
        let name = pdb["metadata"]["name"].as_str().unwrap_or("?").to_string();
        let spec = &pdb["spec"];
        let basis_of_spec = || -> Result<(u64, String), String> {
            if !spec["minAvailable"].is_null() {
                let min = scaled(&spec["minAvailable"], selected).map_err(|e| format!("{name}: minAvailable {e}"))?;
                Ok((ready.saturating_sub(min), format!("minAvailable {}, {ready} Ready", show(&spec["minAvailable"]))))
            } else if !spec["maxUnavailable"].is_null() {
                let max = scaled(&spec["maxUnavailable"], selected).map_err(|e| format!("{name}: maxUnavailable {e}"))?;
                let unavailable = selected.saturating_sub(ready);
                Ok((max.saturating_sub(unavailable), format!("maxUnavailable {}, {ready} of {selected} Ready", show(&spec["maxUnavailable"]))))
            } else {
                // A budget with neither field allows no voluntary disruption once it selects a Pod.
                Ok((0, "neither minAvailable nor maxUnavailable set".to_string()))
            }
        };
        let observed = pdb["status"]["observedGeneration"].as_i64();
        let generation = pdb["metadata"]["generation"].as_i64();
        let current = observed.is_some() && (generation.is_none() || observed >= generation);
        match pdb["status"]["disruptionsAllowed"].as_u64() {
            Some(allowed) if current => {
                let (_, basis) = basis_of_spec()?;
                Ok(Budget { name, allowed, basis })
            }
            _ => {
                let (allowed, basis) = basis_of_spec()?;
                Ok(Budget { name, allowed, basis: format!("{basis}, computed") })
            }
        }
    }
}

fn show(value: &Value) -> String {
    value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let labels = json!({"app": "postgres", "tier": "database"});
        assert!(selects(&json!({"matchLabels": {"app": "postgres"}}), &labels));
        assert!(!selects(&json!({"matchLabels": {"app": "redis"}}), &labels));
        assert!(selects(&json!({}), &labels), "an empty selector selects everything");
        assert!(!selects(&Value::Null, &labels));
        assert!(selects(&json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["database", "cache"]}]}), &labels));
        assert!(!selects(&json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["database"]}]}), &labels));
        assert!(selects(&json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}, {"key": "app", "operator": "Exists"}]}), &labels));
        assert!(!selects(&json!({"matchLabels": {"app": "postgres"}, "matchExpressions": [{"key": "zone", "operator": "Exists"}]}), &labels));
    }

    #[test]
    fn budgets_as_the_disruption_controller_counts() {
        let pdb = |spec: Value, status: Value| json!({"metadata": {"name": "postgres-pdb", "generation": 1}, "spec": spec, "status": status});
        let b = Budget::judge(&pdb(json!({"minAvailable": 2}), json!({"observedGeneration": 1, "disruptionsAllowed": 0})), 2, 2).unwrap();
        assert_eq!((b.allowed, b.basis.as_str()), (0, "minAvailable 2, 2 Ready"));
        let b = Budget::judge(&pdb(json!({"minAvailable": 2}), json!({})), 3, 3).unwrap();
        assert_eq!((b.allowed, b.basis.as_str()), (1, "minAvailable 2, 3 Ready, computed"));
        let b = Budget::judge(&pdb(json!({"minAvailable": "50%"}), json!({})), 3, 2).unwrap();
        assert_eq!(b.allowed, 0, "50% of 3 rounds up to 2");
        let b = Budget::judge(&pdb(json!({"maxUnavailable": 1}), json!({})), 6, 5).unwrap();
        assert_eq!((b.allowed, b.basis.as_str()), (0, "maxUnavailable 1, 5 of 6 Ready, computed"));
        let b = Budget::judge(&pdb(json!({"maxUnavailable": "34%"}), json!({})), 6, 6).unwrap();
        assert_eq!(b.allowed, 3);
        // A status from an older generation is not trusted.
        let stale =
            json!({"metadata": {"name": "p", "generation": 2}, "spec": {"maxUnavailable": 1}, "status": {"observedGeneration": 1, "disruptionsAllowed": 0}});
        assert_eq!(Budget::judge(&stale, 3, 3).unwrap().allowed, 1);
        assert_eq!(Budget::judge(&pdb(json!({}), json!({})), 3, 3).unwrap().allowed, 0);
        assert!(Budget::judge(&pdb(json!({"minAvailable": "lots"}), json!({})), 3, 3).unwrap_err().contains("postgres-pdb: minAvailable `lots`"));
    }
}
