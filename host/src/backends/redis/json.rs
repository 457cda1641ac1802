//! Redis replies as JSON, the shape policies receive.

use redis::Value;
use serde_json::{Map, Value as Json, json};

/// A reply as JSON: nil → `null`, integer → number, simple or bulk string →
/// string, array/set/push → array, map → object (keys as text), double →
/// number (text when not finite), boolean → bool, big number → its decimal
/// text, a nested error → `{"error": "CODE detail"}`.
pub fn reply_to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Int(n) => json!(n),
        Value::BulkString(bytes) => Json::String(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Json::String(text.clone()),
        Value::Okay => Json::String("OK".into()),
        Value::Array(items) | Value::Set(items) => Json::Array(items.iter().map(reply_to_json).collect()),
        Value::Push { data, .. } => Json::Array(data.iter().map(reply_to_json).collect()),
        Value::Map(pairs) => {
            let mut object = Map::new();
            for (key, value) in pairs {
                let key = match reply_to_json(key) {
                    Json::String(text) => text,
                    other => other.to_string(),
                };
                object.insert(key, reply_to_json(value));
            }
            Json::Object(object)
        }
        Value::Attribute { data, .. } => reply_to_json(data),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or_else(|| Json::String(d.to_string()), Json::Number),
        Value::Boolean(b) => Json::Bool(*b),
        Value::VerbatimString { text, .. } => Json::String(text.clone()),
        Value::BigNumber(n) => Json::String(String::from_utf8_lossy(n).into_owned()),
        Value::ServerError(e) => {
            let text = match e.details() {
                Some(detail) => format!("{} {detail}", e.code()),
                None => e.code().to_string(),
            };
            json!({"error": text})
        }
        // The enum is non-exhaustive across redis-rs versions.
        #[allow(unreachable_patterns)]
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_shape() {
        assert_eq!(reply_to_json(&Value::Nil), Json::Null);
        assert_eq!(reply_to_json(&Value::Int(-3)), json!(-3));
        assert_eq!(reply_to_json(&Value::Okay), json!("OK"));
        assert_eq!(reply_to_json(&Value::SimpleString("PONG".into())), json!("PONG"));
        assert_eq!(reply_to_json(&Value::BulkString(b"cluster_state:ok\r\n".to_vec())), json!("cluster_state:ok\r\n"));
        assert_eq!(reply_to_json(&Value::BulkString(vec![0xff, b'a'])), json!("\u{fffd}a"));
        let role = Value::Array(vec![Value::BulkString(b"master".to_vec()), Value::Int(42), Value::Array(vec![])]);
        assert_eq!(reply_to_json(&role), json!(["master", 42, []]));
        let map = Value::Map(vec![(Value::SimpleString("a".into()), Value::Int(1)), (Value::Int(2), Value::Boolean(true))]);
        assert_eq!(reply_to_json(&map), json!({"a": 1, "2": true}));
        assert_eq!(reply_to_json(&Value::Double(1.5)), json!(1.5));
        assert_eq!(reply_to_json(&Value::Double(f64::INFINITY)), json!("inf"));
        assert_eq!(reply_to_json(&Value::Set(vec![Value::Int(1)])), json!([1]));
    }
}
