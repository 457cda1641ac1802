//! Turn the operator's `--config KEY=VALUE` pairs and the manifest's defaults
//! into the JSON object a component receives.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::manifest::{ConfigField, ConfigType};

/// Build the configuration object: every `--config` value checked against
/// the schema, defaults filled in, required keys enforced.
pub fn build(schema: &BTreeMap<String, ConfigField>, pairs: &[(String, String)]) -> Result<Value, String> {
    let mut object = Map::new();
    for (key, text) in pairs {
        let Some(field) = schema.get(key) else {
            let known = if schema.is_empty() {
                "it takes no configuration".to_string()
            } else {
                format!("known keys: {}", schema.keys().cloned().collect::<Vec<_>>().join(", "))
            };
            return Err(format!("unknown config key `{key}` ({known})"));
        };
        let value = coerce_text(field.kind, text).map_err(|e| format!("config `{key}`: {e}"))?;
        object.insert(key.clone(), value);
    }
    for (key, field) in schema {
        if object.contains_key(key) {
            continue;
        }
        match &field.default {
            Some(default) => {
                object.insert(key.clone(), coerce_toml(field.kind, default).map_err(|e| format!("config `{key}`: default {e}"))?);
            }
            None if field.required => return Err(format!("config `{key}` is required ({}): pass --config {key}=VALUE", field.description)),
            None => {}
        }
    }
    Ok(Value::Object(object))
}

/// Check a JSON object handed to a gate by a pattern against the gate's
/// schema, and fill in its defaults.
pub fn merge_json(schema: &BTreeMap<String, ConfigField>, input: Value) -> Result<Value, String> {
    let Value::Object(given) = input else { return Err("input must be a JSON object".into()) };
    let pairs: Vec<(String, String)> = given
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text,
                // Durations travel between components as milliseconds.
                Value::Number(n) if schema.get(&key).is_some_and(|f| f.kind == ConfigType::Duration) => format!("{n}ms"),
                other => other.to_string(),
            };
            (key, text)
        })
        .collect();
    build(schema, &pairs)
}

/// Split `KEY=VALUE`.
pub fn split_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

fn coerce_text(kind: ConfigType, text: &str) -> Result<Value, String> {
    let bad = || format!("`{text}` is not a valid {kind}");
    Ok(match kind {
        ConfigType::String => Value::String(text.to_string()),
        ConfigType::Integer => Value::from(text.parse::<i64>().map_err(|_| bad())?),
        ConfigType::Number => {
            let n: f64 = text.parse().map_err(|_| bad())?;
            serde_json::Number::from_f64(n).map(Value::Number).ok_or_else(bad)?
        }
        ConfigType::Boolean => Value::Bool(match text {
            "true" | "yes" | "1" => true,
            "false" | "no" | "0" => false,
            _ => return Err(bad()),
        }),
        ConfigType::Duration => Value::from(duration_ms(text).ok_or_else(|| format!("`{text}` is not a duration (examples: 500ms, 30s, 24h)"))?),
    })
}

/// Check a manifest default against its declared type.
pub fn coerce_toml(kind: ConfigType, value: &toml::Value) -> Result<Value, String> {
    match (kind, value) {
        (ConfigType::String, toml::Value::String(s)) => Ok(Value::String(s.clone())),
        (ConfigType::Integer, toml::Value::Integer(i)) => Ok(Value::from(*i)),
        (ConfigType::Number, toml::Value::Float(f)) => Ok(Value::from(*f)),
        (ConfigType::Number, toml::Value::Integer(i)) => Ok(Value::from(*i as f64)),
        (ConfigType::Boolean, toml::Value::Boolean(b)) => Ok(Value::Bool(*b)),
        (ConfigType::Duration, toml::Value::String(s)) => coerce_text(kind, s),
        (kind, other) => Err(format!("{other} is not a {kind}")),
    }
}

/// Parse `500ms`, `30s`, `5m`, `24h` (or combinations such as `1h30m`).
pub fn duration_ms(text: &str) -> Option<u64> {
    humantime::parse_duration(text).ok().and_then(|d| u64::try_from(d.as_millis()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> BTreeMap<String, ConfigField> {
        let field = |kind, default: Option<toml::Value>, required| ConfigField { kind, description: "d".into(), default, required };
        BTreeMap::from([
            ("selector".to_string(), field(ConfigType::String, Some("app=db".into()), false)),
            ("replicas".to_string(), field(ConfigType::Integer, None, true)),
            ("max-lag".to_string(), field(ConfigType::Duration, Some("100ms".into()), false)),
            ("force".to_string(), field(ConfigType::Boolean, None, false)),
        ])
    }

    fn pairs(list: &[&str]) -> Vec<(String, String)> {
        list.iter().map(|p| split_pair(p).unwrap()).collect()
    }

    #[test]
    fn fills_defaults_and_types_values() {
        let config = build(&schema(), &pairs(&["replicas=3", "max-lag=2s", "force=yes"])).unwrap();
        assert_eq!(config, serde_json::json!({"selector": "app=db", "replicas": 3, "max-lag": 2000, "force": true}));
    }

    #[test]
    fn gate_input_from_a_pattern_is_checked_too() {
        let config = merge_json(&schema(), serde_json::json!({"replicas": 2, "max-lag": 250, "force": false})).unwrap();
        assert_eq!(config, serde_json::json!({"selector": "app=db", "replicas": 2, "max-lag": 250, "force": false}));
        assert!(merge_json(&schema(), serde_json::json!({"replicas": "x"})).unwrap_err().contains("not a valid integer"));
        assert!(merge_json(&schema(), serde_json::json!([1])).is_err());
    }

    #[test]
    fn rejects_bad_values_with_the_reason() {
        let err = |list: &[&str]| build(&schema(), &pairs(list)).unwrap_err();
        assert!(err(&["replicas=three"]).contains("not a valid integer"));
        assert!(err(&["replicas=1", "max-lag=soon"]).contains("not a duration"));
        assert!(err(&["replicas=1", "colour=red"]).contains("unknown config key `colour`"));
        assert!(err(&[]).contains("`replicas` is required"));
        assert!(split_pair("novalue").is_err());
        assert!(split_pair("=x").is_err());
    }
}
