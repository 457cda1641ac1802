//! The pool pin: while a pattern moves a StatefulSet's members to an
//! upgraded node pool, its Pod template selects that pool and its
//! updateStrategy is OnDelete, so no Pod restarts unless the pattern deletes
//! it. The values found before are kept in an annotation on the
//! StatefulSet, so a later run (or a rollback) knows what to restore.

use runner_sdk::prelude::*;

use crate::StatefulSet;

/// The pin one pattern puts on a StatefulSet.
#[derive(Clone, Debug)]
pub struct PoolPin {
    /// The annotation that keeps the values found before the pin (JSON:
    /// `poolValue`, `updateStrategy`, and whatever else the pattern adds).
    pub annotation: &'static str,
    /// The Node label that names a pool.
    pub label: String,
    /// The pool the members must end on.
    pub pool: String,
}

impl PoolPin {
    /// The pin to `pool` (by Node label `label`), kept in `annotation`.
    pub fn new(annotation: &'static str, label: &str, pool: &str) -> Self {
        PoolPin { annotation, label: label.to_string(), pool: pool.to_string() }
    }

    /// The pool as [`StatefulSet::pod_ready`] takes it.
    pub fn target(&self) -> Option<(&str, &str)> {
        Some((self.label.as_str(), self.pool.as_str()))
    }

    /// What the StatefulSet object `set` had before any run pinned it (the
    /// pool label's value and updateStrategy), and whether an earlier run's
    /// annotation says so: then the pattern resumes that run.
    pub fn original(&self, set: &Value) -> (Value, bool) {
        match set["metadata"]["annotations"][self.annotation].as_str().and_then(|a| serde_json::from_str::<Value>(a).ok()).filter(Value::is_object) {
            Some(kept) => (kept, true),
            None => {
                (json!({"poolValue": set["spec"]["template"]["spec"]["nodeSelector"][&self.label], "updateStrategy": set["spec"]["updateStrategy"]}), false)
            }
        }
    }

    /// Whether the StatefulSet object `set` already has the pin in place:
    /// its Pod template selects the pool and its updateStrategy is OnDelete.
    /// A resumed run finding it so need not patch it again.
    pub fn is_in_place(&self, set: &Value) -> bool {
        self.selects_pool(set) && set["spec"]["updateStrategy"]["type"] == "OnDelete"
    }

    /// Whether the StatefulSet object `set`'s Pod template selects the pool
    /// (so a Pod it makes lands there), pinned or not.
    pub fn selects_pool(&self, set: &Value) -> bool {
        set["spec"]["template"]["spec"]["nodeSelector"][&self.label].as_str() == Some(self.pool.as_str())
    }

    /// The step `pin-upgraded-pool`: patch `set` to the pool with
    /// updateStrategy OnDelete, `original` kept in the annotation.
    pub fn apply(&self, set: &StatefulSet, original: &Value) -> Result<(), Error> {
        let body = json!({
            "metadata": {"annotations": {self.annotation: original.to_string()}},
            "spec": {
                // The pattern decides when each Pod restarts; a rolling update must not.
                "updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
                "template": {"spec": {"nodeSelector": {&self.label: &self.pool}}},
            },
        });
        step("pin-upgraded-pool", &format!("nodeSelector {}={}, updateStrategy OnDelete", self.label, self.pool), || set.patch(&body).map(drop))
    }

    /// The patch that ends a finished pin: `update_strategy` back, the
    /// annotation removed; the nodeSelector stays on the pool.
    pub fn release_body(&self, update_strategy: &Value) -> Value {
        json!({"metadata": {"annotations": {self.annotation: null}}, "spec": {"updateStrategy": update_strategy}})
    }

    /// The patch that undoes the pin: the nodeSelector and updateStrategy
    /// of `original` back, the annotation removed.
    pub fn restore_body(&self, original: &Value) -> Value {
        json!({
            "metadata": {"annotations": {self.annotation: null}},
            "spec": {"updateStrategy": original["updateStrategy"], "template": {"spec": {"nodeSelector": {&self.label: original["poolValue"]}}}},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANNOTATION: &str = "runner.dev/test-pin";

    fn pin() -> PoolPin {
        PoolPin::new(ANNOTATION, "agentpool", "upgraded-pool")
    }

    #[test]
    fn a_pinned_statefulset_is_a_resumed_run() {
        let set = json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}, "template": {"spec": {"nodeSelector": {"agentpool": "oldpool"}}}}});
        assert_eq!(pin().original(&set), (json!({"poolValue": "oldpool", "updateStrategy": {"type": "RollingUpdate"}}), false));
        let kept = r#"{"poolValue":"oldpool","updateStrategy":{"type":"RollingUpdate"}}"#;
        let pinned = json!({"metadata": {"annotations": {ANNOTATION: kept}}, "spec": {"updateStrategy": {"type": "OnDelete"}, "template": {"spec": {"nodeSelector": {"agentpool": "upgraded-pool"}}}}});
        assert_eq!(pin().original(&pinned), (json!({"poolValue": "oldpool", "updateStrategy": {"type": "RollingUpdate"}}), true));
        // An annotation that is not ours (not a JSON object) does not count.
        let odd = json!({"metadata": {"annotations": {ANNOTATION: "yes"}}, "spec": {"updateStrategy": {"type": "OnDelete"}}});
        assert!(!pin().original(&odd).1);
    }

    #[test]
    fn a_pin_in_place_is_the_pool_and_on_delete() {
        let pinned = json!({"spec": {"updateStrategy": {"type": "OnDelete"}, "template": {"spec": {"nodeSelector": {"agentpool": "upgraded-pool"}}}}});
        assert!(pin().is_in_place(&pinned) && pin().selects_pool(&pinned));
        let released = json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}, "template": {"spec": {"nodeSelector": {"agentpool": "upgraded-pool"}}}}});
        assert!(!pin().is_in_place(&released) && pin().selects_pool(&released));
        let old = json!({"spec": {"updateStrategy": {"type": "OnDelete"}, "template": {"spec": {"nodeSelector": {"agentpool": "oldpool"}}}}});
        assert!(!pin().is_in_place(&old) && !pin().selects_pool(&old));
        assert!(!pin().selects_pool(&json!({"spec": {}})));
    }

    #[test]
    fn release_keeps_the_pool_and_restore_puts_everything_back() {
        let original = json!({"poolValue": "oldpool", "updateStrategy": {"type": "RollingUpdate"}});
        assert_eq!(
            pin().release_body(&original["updateStrategy"]),
            json!({"metadata": {"annotations": {ANNOTATION: null}}, "spec": {"updateStrategy": {"type": "RollingUpdate"}}})
        );
        assert_eq!(
            pin().restore_body(&original),
            json!({"metadata": {"annotations": {ANNOTATION: null}}, "spec": {"updateStrategy": {"type": "RollingUpdate"}, "template": {"spec": {"nodeSelector": {"agentpool": "oldpool"}}}}})
        );
    }
}
