//! AKS's rule for node pool names, and the names this library gives the
//! pools it adds.
//!
//! A Linux pool name is 1 to 12 lowercase letters and digits, starting with
//! a letter (Windows pools: at most 6). A pool added for pool `P` and
//! version `V` is named from both, always the same way, so a re-run finds
//! the pool an interrupted run added instead of adding another:
//! `<kind><up to 7 letters/digits of P><4 hex digits of a hash of P and V>`,
//! `kind` being `t` for a temporary pool and `r` for a replacement
//! (`nodepool1` at 1.30.5: `tnodepoo` + `3f2a`).

/// Why `name` breaks AKS's rule, or `None` when it keeps it.
pub fn invalid_pool_name(name: &str) -> Option<String> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.len() > 12 {
        "is longer than 12 characters"
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        "does not start with a lowercase letter"
    } else if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        "has characters other than lowercase letters and digits"
    } else {
        return None;
    };
    Some(format!("node pool name `{name}` {why} (AKS: 1-12 lowercase letters and digits, a letter first)"))
}

/// What kind of pool a derived name is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derived {
    /// Holds a pool's database members while the pool is upgraded, then deleted.
    Temporary,
    /// Takes over from a pool that is deleted (`strategy: replace`).
    Replacement,
}

fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |hash, b| (hash ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The name of the pool added for `pool` at `version` (see the module doc).
pub fn derived_pool_name(kind: Derived, pool: &str, version: &str) -> String {
    let letter = match kind {
        Derived::Temporary => 't',
        Derived::Replacement => 'r',
    };
    let stem: String = pool.chars().filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit()).take(7).collect();
    let hash = fnv1a(&format!("{letter}/{pool}/{version}")) & 0xffff;
    format!("{letter}{stem}{hash:04x}")
}

/// Whether `name` is the pool [`derived_pool_name`] makes for one of `pools` at `version`.
pub fn derived_from<'a>(name: &str, pools: impl IntoIterator<Item = &'a str>, version: &str) -> Option<(Derived, String)> {
    pools
        .into_iter()
        .find_map(|p| [Derived::Temporary, Derived::Replacement].into_iter().find(|k| derived_pool_name(*k, p, version) == name).map(|k| (k, p.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert_eq!(invalid_pool_name("nodepool1"), None);
        assert_eq!(invalid_pool_name("a"), None);
        assert!(invalid_pool_name("").unwrap().contains("is empty"));
        assert!(invalid_pool_name("nodepool12345").unwrap().contains("longer than 12"));
        assert!(invalid_pool_name("1pool").unwrap().contains("lowercase letter"));
        assert!(invalid_pool_name("up-pool").unwrap().contains("other than lowercase letters and digits"));
        assert!(invalid_pool_name("Pool").unwrap().contains("start with a lowercase letter"));
    }

    #[test]
    fn derived_names_keep_the_rule_are_stable_and_differ() {
        let names = [
            derived_pool_name(Derived::Temporary, "nodepool1", "1.30.5"),
            derived_pool_name(Derived::Temporary, "nodepool2", "1.30.5"),
            derived_pool_name(Derived::Temporary, "nodepool1", "1.31.0"),
            derived_pool_name(Derived::Replacement, "nodepool1", "1.30.5"),
            derived_pool_name(Derived::Temporary, "upgraded-pool", "1.30.5"),
        ];
        for name in &names {
            assert_eq!(invalid_pool_name(name), None, "{name}");
        }
        for (i, a) in names.iter().enumerate() {
            assert!(names.iter().skip(i + 1).all(|b| a != b), "{names:?}");
        }
        assert_eq!(names[0], derived_pool_name(Derived::Temporary, "nodepool1", "1.30.5"));
        assert!(names[0].starts_with("tnodepoo") && names[3].starts_with("rnodepoo") && names[4].starts_with("tupgrade"));
        assert_eq!(derived_from(&names[1], ["nodepool1", "nodepool2"], "1.30.5"), Some((Derived::Temporary, "nodepool2".into())));
        assert_eq!(derived_from(&names[3], ["nodepool1"], "1.30.5"), Some((Derived::Replacement, "nodepool1".into())));
        assert_eq!(derived_from("nodepool1", ["nodepool1"], "1.30.5"), None);
    }
}
