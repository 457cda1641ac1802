//! Label selectors (string form and `LabelSelector` objects) and field selectors.

use serde_json::{Map, Value};

use super::error::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector; matches when every requirement matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector {
    reqs: Vec<(String, Op)>,
    /// A `LabelSelector` object that is null matches nothing.
    nothing: bool,
}

impl LabelSelector {
    /// Parses the string form: `a=b,c!=d,e in (x,y),f notin (z),g,!h,i>3`.
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part).ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: invalid label selector: {part:?}")))?);
        }
        Ok(LabelSelector { reqs, nothing: false })
    }

    /// Builds a selector from a `metav1.LabelSelector` object
    /// (`matchLabels`, `matchExpressions`). `null` matches nothing; `{}` matches everything.
    pub fn from_object(sel: Option<&Value>) -> Result<LabelSelector, String> {
        let Some(sel) = sel.filter(|v| !v.is_null()) else {
            return Ok(LabelSelector { reqs: vec![], nothing: true });
        };
        let mut reqs = Vec::new();
        if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in ml {
                reqs.push((k.clone(), Op::Eq(v.as_str().unwrap_or_default().to_string())));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
                let values: Vec<String> =
                    e.get("values").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
                let op = match e.get("operator").and_then(Value::as_str).unwrap_or_default() {
                    "In" => Op::In(values),
                    "NotIn" => Op::NotIn(values),
                    "Exists" => Op::Exists,
                    "DoesNotExist" => Op::DoesNotExist,
                    other => return Err(format!("{other:?} is not a valid label selector operator")),
                };
                reqs.push((key, op));
            }
        }
        Ok(LabelSelector { reqs, nothing: false })
    }

    /// Whether the selector matches every object.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.reqs.is_empty()
    }

    /// Whether the labels (a JSON object of strings, or absent) match.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        if self.nothing {
            return false;
        }
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|(k, op)| match op {
            Op::Eq(v) => get(k) == Some(v.as_str()),
            Op::NotEq(v) => get(k) != Some(v.as_str()),
            Op::In(vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Op::NotIn(vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Op::Exists => get(k).is_some(),
            Op::DoesNotExist => get(k).is_none(),
            Op::Gt(n) => get(k).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x > *n),
            Op::Lt(n) => get(k).and_then(|x| x.parse::<i64>().ok()).is_some_and(|x| x < *n),
        })
    }

    /// Whether an object's `metadata.labels` match.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }

    /// The string form (`a=b,c in (d)`), as `Scale.status.selector` shows it.
    pub fn to_string_form(&self) -> String {
        let mut parts: Vec<String> = self
            .reqs
            .iter()
            .map(|(k, op)| match op {
                Op::Eq(v) => format!("{k}={v}"),
                Op::NotEq(v) => format!("{k}!={v}"),
                Op::In(vs) => format!("{k} in ({})", vs.join(",")),
                Op::NotIn(vs) => format!("{k} notin ({})", vs.join(",")),
                Op::Exists => k.clone(),
                Op::DoesNotExist => format!("!{k}"),
                Op::Gt(n) => format!("{k}>{n}"),
                Op::Lt(n) => format!("{k}<{n}"),
            })
            .collect();
        parts.sort();
        parts.join(",")
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 317 && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    if vals.iter().all(|v| valid_value(v)) { Some(vals) } else { None }
}

fn parse_requirement(part: &str) -> Option<(String, Op)> {
    if let Some(k) = part.strip_prefix('!') {
        let k = k.trim();
        return valid_key(k).then(|| (k.to_string(), Op::DoesNotExist));
    }
    // Set-based: `key in (..)`, `key notin (..)`.
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let rest = words[1].trim_start();
        if let Some(set) = rest.strip_prefix("notin") {
            if !valid_key(words[0]) {
                return None;
            }
            return Some((words[0].to_string(), Op::NotIn(parse_set(set)?)));
        }
        if let Some(set) = rest.strip_prefix("in") {
            if !valid_key(words[0]) {
                return None;
            }
            return Some((words[0].to_string(), Op::In(parse_set(set)?)));
        }
    }
    for (sym, kind) in [("!=", 0), ("==", 1), ("=", 1), (">", 2), ("<", 3)] {
        if let Some((k, v)) = part.split_once(sym) {
            let (k, v) = (k.trim(), v.trim());
            if !valid_key(k) {
                return None;
            }
            return match kind {
                0 => valid_value(v).then(|| (k.to_string(), Op::NotEq(v.to_string()))),
                1 => valid_value(v).then(|| (k.to_string(), Op::Eq(v.to_string()))),
                2 => v.parse().ok().map(|n| (k.to_string(), Op::Gt(n))),
                _ => v.parse().ok().map(|n| (k.to_string(), Op::Lt(n))),
            };
        }
    }
    valid_key(part).then(|| (part.to_string(), Op::Exists))
}

/// A parsed field selector (`metadata.name=x,status.phase!=Failed`).
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses a field selector, accepting only the given fields (and metadata.name/namespace).
    pub fn parse(s: &str, allowed: &[&str]) -> Result<FieldSelector, ApiError> {
        let mut reqs = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let field = field.trim();
            if !(field == "metadata.name" || field == "metadata.namespace" || allowed.contains(&field)) {
                return Err(ApiError::bad_request(format!("field label not supported: {field}")));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    /// Whether the object matches.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, eq, value)| {
            let actual = field_value(obj, field);
            (actual == *value) == *eq
        })
    }
}

/// The string value of a selectable field; absent fields are `""`
/// (`"false"` for booleans such as `spec.unschedulable`).
fn field_value(obj: &Value, field: &str) -> String {
    let field = if field == "source" { "source.component" } else { field };
    let pointer = format!("/{}", field.replace('.', "/"));
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Null) | None => {
            if matches!(field, "spec.unschedulable" | "spec.hostNetwork") {
                "false".into()
            } else {
                String::new()
            }
        }
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "pg", "role": "primary", "n": "5"});
        let m = labels.as_object();
        let ok = |s: &str| LabelSelector::parse(s).unwrap().matches(m);
        assert!(ok("app=pg"));
        assert!(ok("app==pg,role!=replica"));
        assert!(ok("app in (pg, redis),role notin (replica)"));
        assert!(ok("app,!missing"));
        assert!(ok("n>3,n<6"));
        assert!(!ok("app=redis"));
        assert!(!ok("missing"));
        assert!(!ok("!app"));
        assert!(ok(""));
        assert!(LabelSelector::parse("a=(").is_err());
        let sel = json!({"matchLabels": {"app": "pg"}, "matchExpressions": [{"key": "role", "operator": "In", "values": ["primary"]}]});
        assert!(LabelSelector::from_object(Some(&sel)).unwrap().matches(m));
        assert!(!LabelSelector::from_object(None).unwrap().matches(m));
        assert!(LabelSelector::from_object(Some(&json!({}))).unwrap().matches(m));
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let f = |s: &str| FieldSelector::parse(s, &["spec.nodeName", "status.phase"]).unwrap().matches(&pod);
        assert!(f("metadata.name=a,spec.nodeName=n1,status.phase!=Failed"));
        assert!(!f("status.phase=Failed"));
        assert!(FieldSelector::parse("spec.foo=1", &[]).is_err());
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        assert!(FieldSelector::parse("spec.unschedulable=false", &["spec.unschedulable"]).unwrap().matches(&node));
    }
}
