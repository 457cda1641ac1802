//! A target's weighted traffic switches (`traffic:` in a target file, and
//! at the top level of a fleet file for the fleet run's own calls):
//!
//! ```yaml
//! traffic:
//!   switches:
//!     frontdoor:
//!       url: http://127.0.3.1:8080     # what clients use (observe without a backend)
//!       writer: false                  # a stateful writer's: one backend at a time
//!       httproute: {namespace: default, name: frontdoor}
//!       # or: trafficmanager: {profile: frontdoor, resource-group: runner-lab}
//!       backends:                      # direct addresses, for observe(backend)
//!         blue: http://127.0.2.5:8080
//! ```
//!
//! Configuration only: the backend (`backends::traffic`) reaches the route
//! through the target's Kubernetes API and the profile through its ARM
//! coordinates (`cluster:`, or the lab's `arm.json`).

use serde::Deserialize;

use crate::domain::{names, traffic};

/// What serves a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchVia {
    /// A Gateway API HTTPRoute.
    HttpRoute {
        /// Its namespace; `None`: the target's default namespace.
        namespace: Option<String>,
        /// Its name.
        name: String,
    },
    /// An Azure Traffic Manager profile (`Weighted`).
    TrafficManager {
        /// The profile's name.
        profile: String,
        /// Its resource group; `None`: the cluster's (`cluster.aks.resource-group`, the lab's).
        resource_group: Option<String>,
    },
}

/// One switch of a target, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchConfig {
    /// Its name, the scope of its capabilities (`traffic:read:frontdoor`).
    pub name: String,
    /// The address clients use; `None` when the target knows none (a lab not running).
    pub url: Option<String>,
    /// A stateful writer's switch: one backend enabled at a time.
    pub writer: bool,
    /// What serves it.
    pub via: SwitchVia,
    /// Backends' own addresses, by backend name, in the file's order.
    pub backends: Vec<(String, String)>,
}

/// `traffic:` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrafficFile {
    #[serde(default)]
    switches: indexmap::IndexMap<String, SwitchFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchFile {
    url: String,
    #[serde(default)]
    writer: bool,
    httproute: Option<RouteFile>,
    trafficmanager: Option<ProfileFile>,
    #[serde(default)]
    backends: indexmap::IndexMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    namespace: Option<String>,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ProfileFile {
    profile: String,
    #[serde(alias = "resourceGroup")]
    resource_group: Option<String>,
}

/// Azure's rule for a resource group: 1-90 letters, digits, `-_.()`, not ending in `.`.
pub(super) fn resource_group_ok(group: &str) -> bool {
    (1..=90).contains(&group.len()) && group.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.()".contains(&b)) && !group.ends_with('.')
}

impl TrafficFile {
    /// Check every switch; errors name the switch and the field (`traffic.switches.frontdoor.url: ...`).
    pub(super) fn checked(self) -> Result<Vec<SwitchConfig>, String> {
        let mut switches = Vec::new();
        for (name, file) in self.switches {
            let at = format!("traffic.switches.{name}");
            names::label("switch name", &name).map_err(|e| format!("{at}: {e}"))?;
            let url = traffic::http_url(&file.url).map_err(|e| format!("{at}.url: {e}"))?;
            let via = match (file.httproute, file.trafficmanager) {
                (Some(_), Some(_)) | (None, None) => return Err(format!("{at}: give exactly one of `httproute` and `trafficmanager`")),
                (Some(route), None) => {
                    names::subdomain("httproute.name", &route.name).map_err(|e| format!("{at}: {e}"))?;
                    if let Some(ns) = &route.namespace {
                        names::label("httproute.namespace", ns).map_err(|e| format!("{at}: {e}"))?;
                    }
                    SwitchVia::HttpRoute { namespace: route.namespace, name: route.name }
                }
                (None, Some(profile)) => {
                    // Azure's rule for a Traffic Manager profile: 1-63 letters, digits and `-`, alphanumeric at both ends.
                    let p = &profile.profile;
                    let ok =
                        (1..=63).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !p.starts_with('-') && !p.ends_with('-');
                    if !ok {
                        return Err(format!(
                            "{at}: trafficmanager.profile `{}`: 1-63 letters, digits and `-`, not starting or ending in `-`",
                            p.escape_debug()
                        ));
                    }
                    if let Some(group) = profile.resource_group.as_deref().filter(|g| !resource_group_ok(g)) {
                        return Err(format!(
                            "{at}: trafficmanager.resource-group `{}`: 1-90 letters, digits, `-`, `_`, `.`, `(`, `)`, not ending in `.`",
                            group.escape_debug()
                        ));
                    }
                    SwitchVia::TrafficManager { profile: profile.profile, resource_group: profile.resource_group }
                }
            };
            let mut backends = Vec::new();
            for (backend, address) in file.backends {
                names::subdomain("backend name", &backend).map_err(|e| format!("{at}.backends: {e}"))?;
                let address = traffic::http_url(&address).map_err(|e| format!("{at}.backends.{backend}: {e}"))?;
                backends.push((backend, address));
            }
            switches.push(SwitchConfig { name, url: Some(url), writer: file.writer, via, backends });
        }
        Ok(switches)
    }
}

/// The switches every lab has: its front door (`<lab>/frontdoor`, `None`
/// while the lab has not written it) through the HTTPRoute
/// `default/frontdoor`, and through the Traffic Manager profile `frontdoor`.
pub fn lab_switches(frontdoor_url: Option<String>) -> Vec<SwitchConfig> {
    let url = frontdoor_url.and_then(|u| traffic::http_url(&u).ok());
    vec![
        SwitchConfig {
            name: "frontdoor".into(),
            url: url.clone(),
            writer: false,
            via: SwitchVia::HttpRoute { namespace: Some("default".into()), name: "frontdoor".into() },
            backends: Vec::new(),
        },
        SwitchConfig {
            name: "frontdoor-tm".into(),
            url,
            writer: false,
            via: SwitchVia::TrafficManager { profile: "frontdoor".into(), resource_group: None },
            backends: Vec::new(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<SwitchConfig>, String> {
        let file: TrafficFile = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        file.checked()
    }

    #[test]
    fn a_switch_reads_with_its_defaults() {
        let switches = parse(
            "switches:
  frontdoor:
    url: http://127.0.3.1:8080
    httproute: {namespace: default, name: frontdoor}
    backends: {blue: 'http://127.0.2.5:8080', green: 'http://localhost:9000'}
  tm:
    url: http://localhost:8080
    writer: true
    trafficmanager: {profile: frontdoor, resource-group: other}
",
        )
        .unwrap();
        assert_eq!(switches.len(), 2);
        assert_eq!(switches[0].name, "frontdoor");
        assert!(!switches[0].writer);
        assert_eq!(switches[0].via, SwitchVia::HttpRoute { namespace: Some("default".into()), name: "frontdoor".into() });
        assert_eq!(switches[0].backends[1], ("green".to_string(), "http://127.0.0.1:9000".to_string()));
        assert_eq!(switches[1].url.as_deref(), Some("http://127.0.0.1:8080"));
        assert!(switches[1].writer);
        assert_eq!(switches[1].via, SwitchVia::TrafficManager { profile: "frontdoor".into(), resource_group: Some("other".into()) });
    }

    #[test]
    fn a_bad_switch_is_a_clear_error() {
        let cases = [
            ("switches: {a: {url: 'http://127.0.0.1', httproute: {name: r}, trafficmanager: {profile: p}}}", "exactly one"),
            ("switches: {a: {url: 'http://127.0.0.1'}}", "exactly one"),
            ("switches: {a: {url: 'http://frontdoor.lab', httproute: {name: r}}}", "is a name"),
            ("switches: {a: {url: 'https://127.0.0.1', httproute: {name: r}}}", "only http://"),
            ("switches: {Bad_Name: {url: 'http://127.0.0.1', httproute: {name: r}}}", "switch name"),
            ("switches: {a: {url: 'http://127.0.0.1', httproute: {name: r}, color: blue}}", "unknown field `color`"),
            ("switches: {a: {url: 'http://127.0.0.1', httproute: {name: r, port: 80}}}", "unknown field `port`"),
            ("switches: {a: {url: 'http://127.0.0.1', trafficmanager: {profile: '-p'}}}", "trafficmanager.profile"),
            ("switches: {a: {url: 'http://127.0.0.1', httproute: {name: r}, backends: {blue: 'http://x.y'}}}", "backends.blue"),
            ("switch: {}", "unknown field `switch`"),
        ];
        for (yaml, wanted) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(wanted), "{yaml}: {err}");
        }
    }

    #[test]
    fn a_lab_has_its_front_door_both_ways() {
        let switches = lab_switches(Some("http://127.196.3.1:8080".into()));
        let names: Vec<&str> = switches.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["frontdoor", "frontdoor-tm"]);
        assert!(switches.iter().all(|s| s.url.as_deref() == Some("http://127.196.3.1:8080")));
        assert!(lab_switches(None).iter().all(|s| s.url.is_none()));
    }
}
