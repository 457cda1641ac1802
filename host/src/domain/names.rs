//! Kubernetes' own grammar for every name a component can hand the host.
//!
//! A name, namespace, kind or apiVersion ends up in a request path, and a
//! selector in a query. The capability check judges a call by its kind
//! (`kube:get:v1/Pod`), so a namespace such as `default/secrets/x?` would
//! make that check approve a request for a different object. Every such
//! string is held to the rules the API server itself applies (DNS-1123
//! labels and subdomains, the API group/version grammar, the label and field
//! selector grammars) before the capability check, so the object the check
//! sees is the object the request touches. This module depends on nothing
//! else in the crate: the import layer and the Kubernetes backend both use it.

use std::fmt;

/// Why a name was refused, in one line that quotes it (escaped and cut short).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidName(String);

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidName {}

impl InvalidName {
    /// A refusal with its own message (the cluster grammar in `domain::cluster`).
    pub fn new(message: impl Into<String>) -> Self {
        InvalidName(message.into())
    }
}

/// What a checked string is, for the message (`namespace`, `Pod name`).
fn refuse(what: &str, value: &str, rule: &str) -> InvalidName {
    // Quoted with escapes so control characters cannot reach a terminal or
    // a log as themselves; cut so a hostile megabyte is not echoed back.
    let mut shown: String = value.chars().take(64).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    InvalidName(format!("{what} {shown:?} is not valid: {rule}"))
}

const LABEL_RULE: &str = "a DNS-1123 label is at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";
const SUBDOMAIN_RULE: &str = "a DNS-1123 subdomain is at most 253 characters of dot-separated DNS-1123 labels (lowercase letters, digits and '-', starting and ending with a letter or digit)";

fn is_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn is_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_label)
}

/// A DNS-1123 label: namespaces, container names, members of a database cluster.
pub fn label(what: &str, value: &str) -> Result<(), InvalidName> {
    if is_label(value) { Ok(()) } else { Err(refuse(what, value, LABEL_RULE)) }
}

/// A DNS-1123 subdomain: the names of Pods, Nodes, StatefulSets, Services, Secrets ...
pub fn subdomain(what: &str, value: &str) -> Result<(), InvalidName> {
    if is_subdomain(value) { Ok(()) } else { Err(refuse(what, value, SUBDOMAIN_RULE)) }
}

/// A namespace, or with `all_allowed` the `*` that lists across every namespace.
pub fn namespace(value: Option<&str>, all_allowed: bool) -> Result<(), InvalidName> {
    match value {
        None => Ok(()),
        Some("*") if all_allowed => Ok(()),
        Some("*") => Err(InvalidName("namespace `*` names every namespace; this call needs one".into())),
        Some(ns) => label("namespace", ns),
    }
}

/// An apiVersion: `v1` for the core group, else `group/version` with the
/// group a DNS-1123 subdomain (`apps`, `gateway.networking.k8s.io`), the
/// version as Kubernetes names versions: `v1`, `v2beta1`, `v1alpha2`.
pub fn api_version(value: &str) -> Result<(), InvalidName> {
    let (group, version) = value.split_once('/').map_or((None, value), |(group, version)| (Some(group), version));
    if group.is_none_or(is_subdomain) && is_version(version) {
        Ok(())
    } else {
        Err(refuse("apiVersion", value, "an apiVersion is `v1` or `group/version` with a version such as v1, v1beta1, v2alpha1 (`apps/v1`)"))
    }
}

/// `v` and a number, optionally `alpha` or `beta` and another number.
fn is_version(version: &str) -> bool {
    let number = |text: &str| !text.is_empty() && text.len() <= 9 && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
    let Some(rest) = version.strip_prefix('v') else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (major, stage) = rest.split_at(digits);
    number(major) && (stage.is_empty() || ["alpha", "beta"].iter().any(|s| stage.strip_prefix(s).is_some_and(number)))
}

/// A kind: an identifier in CamelCase (`StatefulSet`), at most 63 characters.
pub fn kind(value: &str) -> Result<(), InvalidName> {
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty() && bytes.len() <= 63 && bytes[0].is_ascii_alphabetic() && bytes.iter().all(u8::is_ascii_alphanumeric);
    if valid { Ok(()) } else { Err(refuse("kind", value, "a kind is a letter followed by letters and digits (`StatefulSet`)")) }
}

/// One object: its apiVersion, kind, namespace (`*` is not one) and name.
pub fn object(api_version_: &str, kind_: &str, namespace_: Option<&str>, name: &str) -> Result<(), InvalidName> {
    api_version(api_version_)?;
    kind(kind_)?;
    namespace(namespace_, false)?;
    subdomain(&format!("{kind_} name"), name)
}

/// Which objects of one kind to list; a namespace may be `*`, and empty
/// selectors select everything.
pub fn list(api_version_: &str, kind_: &str, namespace_: Option<&str>, labels: Option<&str>, fields: Option<&str>) -> Result<(), InvalidName> {
    api_version(api_version_)?;
    kind(kind_)?;
    namespace(namespace_, true)?;
    if let Some(selector) = labels {
        label_selector(selector)?;
    }
    if let Some(selector) = fields {
        field_selector(selector)?;
    }
    Ok(())
}

/// A label key: `name` or `prefix/name`, the prefix a DNS-1123 subdomain,
/// the name at most 63 letters, digits, '-', '_' and '.' that start and end
/// alphanumeric.
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A label value: empty, or at most 63 letters, digits, '-', '_' and '.'
/// that start and end alphanumeric.
fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric())
}

/// A label key (`kubernetes.azure.com/agentpool`).
pub fn label_key(what: &str, key: &str) -> Result<(), InvalidName> {
    if is_label_key(key) {
        Ok(())
    } else {
        Err(refuse(what, key, "a label key is `name` or `prefix/name`: a DNS-1123 subdomain prefix, a name of at most 63 letters, digits, '-', '_' and '.'"))
    }
}

/// A label value.
pub fn label_value(what: &str, value: &str) -> Result<(), InvalidName> {
    if is_label_value(value) {
        Ok(())
    } else {
        Err(refuse(what, value, "a label value is at most 63 letters, digits, '-', '_' and '.', starting and ending alphanumeric"))
    }
}

/// A label selector in the API server's grammar: requirements separated by
/// commas, each `key`, `!key`, `key=value`, `key==value`, `key!=value`,
/// `key in (a,b)`, `key notin (a,b)`, `key>1` or `key<1`.
pub fn label_selector(selector: &str) -> Result<(), InvalidName> {
    let bad = |rule: &str| refuse("label selector", selector, rule);
    if selector.chars().any(char::is_control) {
        return Err(bad("a selector has no control characters"));
    }
    for requirement in split_outside_parentheses(selector).map_err(bad)? {
        let requirement = requirement.trim_matches(' ');
        if requirement.is_empty() {
            if selector.trim_matches(' ').is_empty() {
                continue;
            }
            return Err(bad("a requirement is empty"));
        }
        let key_ok = |key: &str| {
            if is_label_key(key.trim_matches(' ')) { Ok(()) } else { Err(bad("a key is `name` or `prefix/name` (letters, digits, '-', '_', '.')")) }
        };
        let value_ok =
            |value: &str| if is_label_value(value.trim_matches(' ')) { Ok(()) } else { Err(bad("a value is at most 63 letters, digits, '-', '_' and '.'")) };
        if let Some(key) = requirement.strip_prefix('!') {
            key_ok(key)?;
        } else if let Some(open) = requirement.find('(') {
            let (head, set) = requirement.split_at(open);
            let mut words = head.split_whitespace();
            let (Some(key), Some("in" | "notin"), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad("a set requirement is `key in (a,b)` or `key notin (a,b)`"));
            };
            key_ok(key)?;
            let Some(values) = set.strip_prefix('(').and_then(|s| s.strip_suffix(')')) else { return Err(bad("a value set is closed by ')'")) };
            values.split(',').try_for_each(value_ok)?;
        } else if let Some((key, operator, value)) = split_operator(requirement, &["!=", "==", "=", ">", "<"]) {
            key_ok(key)?;
            if matches!(operator, ">" | "<") {
                if value.trim_matches(' ').parse::<i64>().is_err() {
                    return Err(bad("`>` and `<` compare with an integer"));
                }
            } else {
                value_ok(value)?;
            }
        } else {
            key_ok(requirement)?;
        }
    }
    Ok(())
}

/// `key`, the first of `operators` found (in the order given), and the rest.
fn split_operator<'a>(term: &'a str, operators: &[&'static str]) -> Option<(&'a str, &'static str, &'a str)> {
    operators.iter().find_map(|op| term.split_once(op).map(|(key, value)| (key, *op, value)))
}

fn split_outside_parentheses(selector: &str) -> Result<Vec<&str>, &'static str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0u32, 0usize);
    for (at, c) in selector.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("value sets do not nest"),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("a ')' closes nothing"),
            ',' if depth == 0 => {
                parts.push(&selector[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("a value set is not closed");
    }
    parts.push(&selector[start..]);
    Ok(parts)
}

/// A field selector: terms separated by commas, each `path=value`,
/// `path==value` or `path!=value`, the path dot-separated field names
/// (`spec.nodeName`), the value at most 253 letters, digits, '-', '_', '.'
/// and ':' (the API server's backslash escapes are not accepted).
pub fn field_selector(selector: &str) -> Result<(), InvalidName> {
    let bad = |rule: &str| refuse("field selector", selector, rule);
    if selector.chars().any(char::is_control) {
        return Err(bad("a selector has no control characters"));
    }
    if selector.trim_matches(' ').is_empty() {
        return Ok(());
    }
    for term in selector.split(',') {
        let Some((path, _, value)) = split_operator(term, &["!=", "==", "="]) else {
            return Err(bad("a term is `path=value`, `path==value` or `path!=value`"));
        };
        let path_ok = path.trim_matches(' ').split('.').all(|field| !field.is_empty() && field.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !path_ok {
            return Err(bad("a field path is dot-separated field names (`spec.nodeName`)"));
        }
        let value = value.trim_matches(' ');
        let value_ok = value.is_empty()
            || (value.len() <= 253
                && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
                && value.as_bytes()[0].is_ascii_alphanumeric()
                && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric());
        if !value_ok {
            return Err(bad("a value is at most 253 letters, digits, '-', '_', '.' and ':', starting and ending with a letter or digit"));
        }
    }
    Ok(())
}

/// A MongoDB database name: 1 to 63 letters, digits, '_' and '-'. Stricter
/// than the server (which also takes most punctuation), as no policy needs more.
pub fn mongo_database(value: &str) -> Result<(), InvalidName> {
    let valid = !value.is_empty() && value.len() < 64 && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if valid { Ok(()) } else { Err(refuse("database", value, "a MongoDB database name here is 1 to 63 letters, digits, '_' and '-'")) }
}

/// One path segment, percent-encoded: what a checked name already is, and
/// what any other text becomes, so no character can start a new segment,
/// query or fragment.
pub fn path_segment(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    // `.` and `..` are segments a URL resolver collapses.
    match encoded.as_str() {
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        _ => encoded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings that would change what a request path or query means.
    const HOSTILE: &[&str] = &[
        "default/secrets/postgres-credentials?x=",
        "default/secrets",
        "a?b",
        "a#b",
        "a%2Fb",
        "..",
        ".",
        "../secrets",
        "a b",
        " a",
        "a\n",
        "a\tb",
        "ä",
        "pod\u{202e}",
        "",
        "UPPER",
        "-a",
        "a-",
    ];

    #[test]
    fn names_follow_dns_1123() {
        for good in ["default", "postgres-cluster-0", "a", "0a", "kube-system"] {
            assert_eq!(label("namespace", good), Ok(()), "{good}");
            assert_eq!(subdomain("name", good), Ok(()), "{good}");
        }
        assert_eq!(subdomain("name", "aks-nodepool1-12345-vmss000000.example"), Ok(()));
        assert!(label("namespace", "a.b").is_err(), "a label has no dots");
        assert!(label("namespace", &"a".repeat(64)).is_err());
        assert!(subdomain("name", &format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(63))).is_err());
        for bad in HOSTILE {
            assert!(label("namespace", bad).is_err(), "label {bad:?}");
            assert!(subdomain("name", bad).is_err(), "subdomain {bad:?}");
            assert!(object("v1", "Pod", Some(bad), "x").is_err(), "namespace {bad:?}");
            assert!(object("v1", "Pod", None, bad).is_err(), "name {bad:?}");
        }
    }

    #[test]
    fn api_versions_and_kinds() {
        for good in ["v1", "apps/v1", "policy/v1", "gateway.networking.k8s.io/v1beta1", "batch/v1", "v2alpha1", "autoscaling/v2"] {
            assert_eq!(api_version(good), Ok(()), "{good}");
        }
        for bad in ["", "/v1", "apps/", "a/b/c", "apps/v 1", "v1/Secret", "apps/v1?x", "Apps/v1", "default/secrets", "v01", "v1gamma1", "v1beta", "1"] {
            assert!(api_version(bad).is_err(), "{bad}");
        }
        for good in ["Pod", "StatefulSet", "PodDisruptionBudget", "HTTPRoute"] {
            assert_eq!(kind(good), Ok(()), "{good}");
        }
        for bad in ["", "Pod/x", "Pod?", "1Pod", "Po d", "Pod\u{0}"] {
            assert!(kind(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_namespace_star_lists_only() {
        assert_eq!(namespace(Some("*"), true), Ok(()));
        assert!(namespace(Some("*"), false).is_err());
        assert!(object("v1", "Pod", Some("*"), "x").is_err());
        assert_eq!(list("v1", "Pod", Some("*"), None, None), Ok(()));
    }

    #[test]
    fn label_selectors() {
        for good in [
            "",
            "app=postgres",
            "app==postgres,role!=replica",
            "app",
            "!app",
            "app in (a,b)",
            "app notin (a, b),tier",
            "statefulset.kubernetes.io/pod-name=postgres-cluster-0",
            "app=",
            "n>1",
            "app = postgres",
        ] {
            assert_eq!(label_selector(good), Ok(()), "{good}");
        }
        for bad in [
            "app=a/b",
            "app=a&b",
            "app=x#y",
            "a b=c",
            "app in a,b",
            "app in (a",
            "app in ((a))",
            "app=ä",
            "app,,x",
            "n>x",
            "a=b=c",
            "app=a?watch=1",
            "app=x\n",
            "app=x\u{0}",
        ] {
            assert!(label_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        for good in ["", "spec.nodeName=aks-1", "metadata.name==x,status.phase!=Running", "spec.nodeName=node:1"] {
            assert_eq!(field_selector(good), Ok(()), "{good}");
        }
        for bad in ["spec.nodeName", "spec..x=y", "spec.nodeName=a&b", "spec.nodeName=a b", "spec.nodeName=a/b", "x=a?b", "x=\\,", "x=..", "x=a\n", "x=-a"] {
            assert!(field_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_quote_escaped_and_bounded() {
        let message = label("namespace", "a\nb").unwrap_err().to_string();
        assert!(message.contains("\"a\\nb\""), "{message}");
        assert!(!message.contains('\n'));
        let long = label("namespace", &"x".repeat(100_000)).unwrap_err().to_string();
        assert!(long.len() < 400, "{}", long.len());
    }

    #[test]
    fn mongo_database_names() {
        for good in ["admin", "runner", "orders_2024"] {
            assert_eq!(mongo_database(good), Ok(()), "{good}");
        }
        for bad in ["", "a.b", "a/b", "a b", "a$b", "a\0b", "a#b", "ä", &"x".repeat(64)] {
            assert!(mongo_database(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(path_segment("postgres-cluster-0"), "postgres-cluster-0");
        assert_eq!(path_segment("default/secrets?x=#"), "default%2Fsecrets%3Fx%3D%23");
        assert_eq!(path_segment("a%2Fb"), "a%252Fb");
        assert_eq!(path_segment(".."), "%2E%2E");
        assert_eq!(path_segment("ä"), "%C3%A4");
    }
}
