//! Loopback addresses for Pods and Services.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback device, so every Pod gets
//! an address of its own in 127.N.1.0/24 and every Service one in
//! 127.N.2.0/24 (N is the lab's subnet, 0 unless two labs must coexist), each with the standard port (5432, 6379): nothing leaks
//! per-Pod port juggling into policies, and nothing collides with a server
//! already listening on 127.0.0.1. A Pod recreated under the same name gets
//! the same address back, as a StatefulSet member keeps its network identity.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Which range an address comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// 127.N.1.0/24, one address per Pod.
    Pods,
    /// 127.N.2.0/24, one address per Service.
    Services,
}

impl Range {
    fn third_octet(self) -> u8 {
        match self {
            Range::Pods => 1,
            Range::Services => 2,
        }
    }
}

/// Hands out stable addresses, remembered in a file in the lab directory.
#[derive(Clone)]
pub struct Addresses {
    path: PathBuf,
    subnet: u8,
    taken: Arc<Mutex<BTreeMap<String, Ipv4Addr>>>,
}

impl Addresses {
    /// Load the assignments kept at `path` (none if the file is missing),
    /// handing out addresses in 127.`subnet`.0.0/16.
    pub fn open(path: PathBuf, subnet: u8) -> Self {
        let taken = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        Addresses { path, subnet, taken: Arc::new(Mutex::new(taken)) }
    }

    /// The address of `key` (`pods/default/postgres-cluster-0`) in `range`,
    /// assigning the lowest free one the first time.
    pub fn of(&self, range: Range, key: &str) -> Option<Ipv4Addr> {
        let key = format!("{range:?}/{key}");
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ip) = taken.get(&key) {
            return Some(*ip);
        }
        let octet = range.third_octet();
        let ip = (10..=250u8).map(|last| Ipv4Addr::new(127, self.subnet, octet, last)).find(|ip| !taken.values().any(|t| t == ip))?;
        taken.insert(key, ip);
        self.persist(&taken);
        Some(ip)
    }

    /// Gives `key`'s address in `range` back, for a Pod whose name will not
    /// come again (a ReplicaSet's), so later Pods can have it.
    pub fn release(&self, range: Range, key: &str) {
        let key = format!("{range:?}/{key}");
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        if taken.remove(&key).is_some() {
            self.persist(&taken);
        }
    }

    fn persist(&self, taken: &BTreeMap<String, Ipv4Addr>) {
        if let Ok(text) = serde_json::to_string_pretty(taken) {
            let partial = self.path.with_extension("partial");
            if std::fs::write(&partial, text).and_then(|()| std::fs::rename(&partial, &self.path)).is_err() {
                tracing::warn!("cannot persist address assignments to {}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_persistent() {
        let dir = tempfile::tempdir().unwrap();
        let addresses = Addresses::open(dir.path().join("addresses.json"), 0);
        let a = addresses.of(Range::Pods, "default/a").unwrap();
        let b = addresses.of(Range::Pods, "default/b").unwrap();
        let s = addresses.of(Range::Services, "default/a").unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 0, 1, 10));
        assert_eq!(b, Ipv4Addr::new(127, 0, 1, 11));
        assert_eq!(s, Ipv4Addr::new(127, 0, 2, 10));
        assert_eq!(addresses.of(Range::Pods, "default/a"), Some(a));
        let reopened = Addresses::open(dir.path().join("addresses.json"), 0);
        assert_eq!(Addresses::open(dir.path().join("other.json"), 7).of(Range::Pods, "x"), Some(Ipv4Addr::new(127, 7, 1, 10)));
        assert_eq!(reopened.of(Range::Pods, "default/b"), Some(b));
        addresses.release(Range::Pods, "default/a");
        assert_eq!(addresses.of(Range::Pods, "default/c"), Some(a), "a released address is handed out again");
    }
}
