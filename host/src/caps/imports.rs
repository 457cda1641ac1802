//! What a component can call, derived from its actual WIT imports, compared
//! with what its manifest requests.

use super::Capability;
use super::calls::{self, VERBS, Verb};

/// One `runner:policy` interface as the capability system sees it, derived
/// from the call table.
#[derive(Clone, Debug)]
pub struct Family {
    /// The WIT interface (`kube-write`).
    pub interface: &'static str,
    /// The capability verbs its functions need; empty for interfaces that
    /// need no capability (report, clock, types).
    pub serves: Vec<&'static Verb>,
    /// Whether the `gate` world may import it.
    pub gate_may_import: bool,
}

/// Look up a `runner:policy` interface (`kube-write`); `None` for an
/// interface the host does not know.
pub fn family_of_interface(interface: &str) -> Option<Family> {
    let known = calls::all_calls().map(calls::interface_of).chain(["types"]).find(|known| *known == interface)?;
    let also = calls::ALSO_SERVES.iter().filter(|(interface, _)| *interface == known).flat_map(|(_, others)| others.iter());
    let also: Vec<&str> = also.copied().collect();
    let serves = VERBS.iter().filter(|v| v.calls.iter().any(|call| calls::interface_of(call) == known) || also.contains(&v.interface)).collect();
    Some(Family { interface: known, serves, gate_may_import: calls::GATE_INTERFACES.contains(&known) })
}

/// Whether `request` reaches any verb of `family`.
fn reaches(request: &Capability, family: &Family) -> bool {
    family.serves.iter().any(|v| request.overlaps(&Capability::needed(v.interface, v.verb, "*")))
}

/// The result of comparing a component's imports with its manifest.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// `runner:policy` interfaces the component imports (`kube-read`, ...).
    pub policy_interfaces: Vec<String>,
    /// WASI interfaces the component imports (the sandbox gives them nothing
    /// ambient: no files, network, environment or stdin).
    pub wasi_interfaces: Vec<String>,
    /// Imports the host cannot provide; the component cannot run.
    pub unknown: Vec<String>,
    /// Requested capabilities whose interface the component never imports.
    pub unused_requests: Vec<Capability>,
    /// Imported interfaces for which no capability was requested: every call
    /// to them will be denied.
    pub unrequested_imports: Vec<String>,
}

impl ImportReport {
    /// Compare `imports` (full import names such as
    /// `runner:policy/kube-read@0.1.0`) with the `requested` capabilities.
    pub fn new(imports: &[String], requested: &[Capability]) -> Self {
        let mut report = ImportReport::default();
        for import in imports {
            let without_version = import.split('@').next().unwrap_or(import);
            if let Some(interface) = without_version.strip_prefix("runner:policy/") {
                if family_of_interface(interface).is_some() {
                    report.policy_interfaces.push(interface.to_string());
                } else {
                    report.unknown.push(import.clone());
                }
            } else if without_version.starts_with("wasi:") {
                report.wasi_interfaces.push(import.clone());
            } else {
                report.unknown.push(import.clone());
            }
        }
        let families: Vec<Family> = report.policy_interfaces.iter().filter_map(|i| family_of_interface(i)).collect();
        for family in families.iter().filter(|f| !f.serves.is_empty()) {
            if !requested.iter().any(|r| reaches(r, family)) {
                report.unrequested_imports.push(family.interface.to_string());
            }
        }
        for request in requested {
            if !families.iter().any(|f| reaches(request, f)) {
                report.unused_requests.push(request.clone());
            }
        }
        report
    }

    /// Imported interfaces a gate must not have.
    pub fn mutating_interfaces(&self) -> Vec<&str> {
        self.policy_interfaces.iter().filter(|i| family_of_interface(i).is_some_and(|f| !f.gate_may_import)).map(String::as_str).collect()
    }

    /// One line per mismatch between imports and manifest, for humans.
    pub fn mismatches(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for request in &self.unused_requests {
            lines.push(format!("requests `{request}` but never imports the interface that serves it"));
        }
        // One line for them all: componentize-py's bindings import every
        // interface of the world, so a Python gate would otherwise warn once per interface.
        match &self.unrequested_imports[..] {
            [] => {}
            [interface] => lines.push(format!("imports `runner:policy/{interface}` but requests none of its capabilities: every call to it will be denied")),
            interfaces => lines.push(format!(
                "imports {} but requests none of their capabilities: every call to them will be denied",
                interfaces.iter().map(|i| format!("`runner:policy/{i}`")).collect::<Vec<_>>().join(", ")
            )),
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sorts_imports_and_finds_mismatches() {
        let imports = strings(&[
            "runner:policy/types@0.1.0",
            "runner:policy/kube-read@0.1.0",
            "runner:policy/kube-write@0.1.0",
            "runner:policy/postgres-read@0.1.0",
            "wasi:cli/stdout@0.2.6",
            "acme:evil/exfiltrate",
            "runner:policy/teleport@0.1.0",
        ]);
        let requested: Vec<Capability> = vec!["kube:list:v1/Pod".parse().unwrap(), "redis:read".parse().unwrap()];
        let report = ImportReport::new(&imports, &requested);
        assert_eq!(report.policy_interfaces, strings(&["types", "kube-read", "kube-write", "postgres-read"]));
        assert_eq!(report.wasi_interfaces, strings(&["wasi:cli/stdout@0.2.6"]));
        assert_eq!(report.unknown, strings(&["acme:evil/exfiltrate", "runner:policy/teleport@0.1.0"]));
        assert_eq!(report.unrequested_imports, strings(&["kube-write", "postgres-read"]));
        assert_eq!(report.unused_requests, vec!["redis:read".parse().unwrap()]);
        assert_eq!(report.mutating_interfaces(), vec!["kube-write"]);
        assert_eq!(
            report.mismatches(),
            [
                "requests `redis:read` but never imports the interface that serves it",
                "imports `runner:policy/kube-write`, `runner:policy/postgres-read` but requests none of their capabilities: every call to them will be denied",
            ]
        );
    }

    #[test]
    fn wildcard_requests_count_for_every_interface_they_reach() {
        let imports = strings(&["runner:policy/kube-read@0.1.0", "runner:policy/kube-write@0.1.0"]);
        let report = ImportReport::new(&imports, &["kube:*".parse().unwrap()]);
        assert!(report.unrequested_imports.is_empty());
        assert!(report.unused_requests.is_empty());
    }
}
