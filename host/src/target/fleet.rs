//! Fleets: the clusters a multi-cluster run reaches, each a member with a
//! target of its own.
//!
//! A fleet file (YAML) lists members in order:
//!
//! ```yaml
//! members:
//!   - name: dev                 # a Kubernetes-style name, unique in the fleet
//!     group: dev                # default: the member's name
//!     labels: {env: dev}
//!     target: lab/dev           # a lab directory, a target file, or a kubeconfig
//!   - name: prod-east
//!     group: prod
//!     target:                   # or a target file's content, inline
//!       kubeconfig: ~/.kube/prod-east
//!       cluster: {aks: {subscription: ..., resourceGroup: ..., name: ...}}
//! ```
//!
//! Relative paths are read from the fleet file's folder. A fleet is
//! configuration only, as a target is: connecting to a member happens when
//! a run first reaches it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use runner_lab::daemon::LabDir;
use serde::Deserialize;

use super::traffic::TrafficFile;
use super::{MAX_TARGET_BYTES, MAX_TARGET_NESTING, SwitchConfig, Target, TargetError, expand_home, nesting_beyond};
use crate::domain::names;

/// The most members a fleet file may list.
pub const MAX_MEMBERS: usize = 10_000;

/// The clusters of a multi-cluster run, in the fleet file's order.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its members, in the file's order.
    pub members: Vec<Member>,
    /// The traffic switches of the fleet run's own calls (`traffic:` at
    /// the top level; each member's target has its own).
    pub traffic: Vec<SwitchConfig>,
}

/// One cluster of a fleet.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its name, unique in the fleet (`dev`, `prod-east`).
    pub name: String,
    /// The group it belongs to (its name when the file gives none).
    pub group: String,
    /// Its labels, sorted by key.
    pub labels: BTreeMap<String, String>,
    /// Where it is and which databases it runs.
    pub target: Target,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    members: Vec<MemberFile>,
    traffic: Option<TrafficFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberFile {
    name: String,
    group: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    target: TargetRef,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TargetRef {
    Path(PathBuf),
    Inline(serde_yaml::Mapping),
}

impl Fleet {
    /// Read and check the fleet file at `path`.
    pub fn read(path: &Path) -> Result<Fleet, TargetError> {
        let bad = |what: String| TargetError::Bad(format!("fleet {}: {what}", path.display()));
        let metadata = std::fs::metadata(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        if !metadata.is_file() {
            return Err(bad("is not a regular file".into()));
        }
        if metadata.len() > MAX_TARGET_BYTES * 16 {
            return Err(bad(format!("is {} bytes; a fleet file is at most {}", metadata.len(), MAX_TARGET_BYTES * 16)));
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        Fleet::parse(&text, path)
    }

    /// Parse a fleet file's text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Fleet, TargetError> {
        let bad = |what: String| TargetError::Bad(format!("fleet {}: {what}", path.display()));
        if let Some(depth) = nesting_beyond(text, MAX_TARGET_NESTING) {
            return Err(bad(format!("nested {depth} levels deep; a fleet file nests at most {MAX_TARGET_NESTING}")));
        }
        let file: FleetFile = serde_yaml::from_str(text).map_err(|e| bad(e.to_string().replace('\n', " ")))?;
        if file.members.is_empty() {
            return Err(bad("`members` is empty: a fleet has at least one member".into()));
        }
        if file.members.len() > MAX_MEMBERS {
            return Err(bad(format!("{} members; a fleet has at most {MAX_MEMBERS}", file.members.len())));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut seen = BTreeSet::new();
        let mut members = Vec::with_capacity(file.members.len());
        for member in file.members {
            let name = member.name;
            names::label("member name", &name).map_err(|e| bad(e.to_string()))?;
            if !seen.insert(name.clone()) {
                return Err(bad(format!("member `{name}` is listed twice")));
            }
            let bad = |what: String| bad(format!("member `{name}`: {what}"));
            let group = member.group.unwrap_or_else(|| name.clone());
            names::label("group", &group).map_err(|e| bad(e.to_string()))?;
            for (key, value) in &member.labels {
                names::label_key("label", key).and_then(|()| names::label_value(&format!("label `{key}`"), value)).map_err(|e| bad(e.to_string()))?;
            }
            let target = match member.target {
                TargetRef::Path(relative) => {
                    let path = expand_home(&relative);
                    let path = if path.is_relative() { base.join(path) } else { path };
                    if path.is_dir() {
                        if !LabDir::new(&path).kubeconfig().exists() {
                            return Err(bad(format!("target {} is a directory but not a lab's (it holds no kubeconfig)", path.display())));
                        }
                        Target::lab(path)
                    } else {
                        let text = path.to_str().ok_or_else(|| bad(format!("target {} is not a UTF-8 path", path.display())))?;
                        Target::from_arg(text).map_err(|e| bad(e.to_string()))?
                    }
                }
                TargetRef::Inline(mapping) => {
                    let text = serde_yaml::to_string(&mapping).map_err(|e| bad(format!("target: {e}")))?;
                    // Anchored at the fleet file: its relative paths are the fleet file's.
                    Target::parse(&text, path).map_err(|e| bad(e.to_string()))?
                }
            };
            members.push(Member { name, group, labels: member.labels, target });
        }
        let traffic = file.traffic.map(TrafficFile::checked).transpose().map_err(bad)?.unwrap_or_default();
        Ok(Fleet { path: path.to_path_buf(), members, traffic })
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The fleet file `runner lab up --fleet` writes for its labs (name, group, directory).
    pub fn lab_file(labs: &[(String, String, PathBuf)]) -> String {
        let mut text = String::from("# Written by `runner lab up --fleet`: one lab cluster per member.\nmembers:\n");
        for (name, group, dir) in labs {
            text.push_str(&format!("  - name: {name}\n    group: {group}\n    labels: {{lab: \"true\"}}\n    target: {}\n", dir.display()));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Fleet, String> {
        Fleet::parse(text, Path::new("/fleets/fleet.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn members_keep_their_order_groups_labels_and_targets() {
        let fleet = parse(
            "members:\n  - name: dev\n    labels: {env: dev}\n    target: {kubeconfig: dev.kubeconfig, context: dev}\n  - name: prod-east\n    group: prod\n    target: {namespace: shop}\n",
        )
        .unwrap();
        let names: Vec<&str> = fleet.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["dev", "prod-east"]);
        assert_eq!(fleet.members[0].group, "dev", "the group defaults to the name");
        assert_eq!(fleet.members[1].group, "prod");
        assert_eq!(fleet.members[0].labels["env"], "dev");
        assert_eq!(fleet.members[0].target.kubeconfig, [PathBuf::from("/fleets/dev.kubeconfig")], "relative to the fleet file");
        assert_eq!(fleet.members[0].target.context.as_deref(), Some("dev"));
        assert_eq!(fleet.members[1].target.namespace.as_deref(), Some("shop"));
        assert!(fleet.member("prod-east").is_some() && fleet.member("prod").is_none());
        assert!(fleet.traffic.is_empty());
        let fleet = parse(
            "members:\n  - {name: dev, target: {traffic: {switches: {own: {url: 'http://127.0.0.2', httproute: {name: r}}}}}}\ntraffic:\n  switches:\n    edge: {url: 'http://127.0.0.1:8080', trafficmanager: {profile: edge}}\n",
        )
        .unwrap();
        assert_eq!(fleet.traffic[0].name, "edge", "the fleet run's own switch");
        assert_eq!(fleet.members[0].target.switches()[0].name, "own", "a member's target has its own");
    }

    #[test]
    fn a_bad_fleet_is_refused_naming_what_is_wrong() {
        for (text, expected) in [
            ("members: []", "at least one member"),
            ("members:\n  - {name: dev, target: {}}\n  - {name: dev, target: {}}", "`dev` is listed twice"),
            ("members:\n  - {name: Dev_1, target: {}}", "member name"),
            ("members:\n  - {name: dev, group: 'a b', target: {}}", "group"),
            ("members:\n  - {name: dev, target: {bogus: 1}}", "member `dev`: target"),
            ("members:\n  - {name: dev, target: /no/such/file}", "no such file"),
            ("members:\n  - {name: dev}", "missing field `target`"),
            ("clusters: []", "unknown field `clusters`"),
            ("members:\n  - {name: dev, target: {}}\ntraffic: {switches: {a: {url: 'http://x.y', httproute: {name: r}}}}", "traffic.switches.a.url"),
        ] {
            let message = parse(text).unwrap_err();
            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn the_labs_fleet_file_reads_back() {
        let root = tempfile::tempdir().unwrap();
        let mut labs = Vec::new();
        for name in ["dev", "prod"] {
            let dir = root.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(LabDir::new(&dir).kubeconfig(), "apiVersion: v1\nkind: Config\n").unwrap();
            labs.push((name.to_string(), format!("{name}-group"), dir));
        }
        let path = root.path().join("fleet.yaml");
        std::fs::write(&path, Fleet::lab_file(&labs)).unwrap();
        let fleet = Fleet::read(&path).unwrap();
        assert_eq!(fleet.members.len(), 2);
        assert_eq!(fleet.members[1].target.source, super::super::Source::Lab(labs[1].2.clone()));
        assert_eq!(fleet.members[1].labels["lab"], "true");
        assert_eq!(fleet.members[1].group, "prod-group");
    }
}
