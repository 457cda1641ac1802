//! Remove secrets from call arguments before they are written anywhere.
//!
//! Components never hold credentials, but a pattern can still carry one in
//! an argument (`ALTER ROLE ... PASSWORD '...'`, `CONFIG SET requirepass`, a
//! Secret's data in a patch). Those values are replaced by `[redacted]`.

use serde_json::Value;

/// What a secret is replaced with.
pub(crate) const REDACTED: &str = "[redacted]";

/// Keys whose values are secrets wherever they appear.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "credential", "private", "apikey", "api-key", "api_key", "auth"].iter().any(|s| key.contains(s))
        || key == "data"
        || key == "stringdata"
}

/// Redact secrets from a JSON argument object, in place.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_secret_key(key) && !inner.is_null() {
                    *inner = Value::String(REDACTED.into());
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => {
            redact_command(items);
            items.iter_mut().for_each(redact);
        }
        Value::String(text) => {
            if let Some(clean) = redact_sql(text) {
                *text = clean;
            }
            if let Some(clean) = redact_embedded_json(text) {
                *text = clean;
            }
        }
        _ => {}
    }
}

/// Redis-style argument lists: the value after AUTH, requirepass, masterauth.
fn redact_command(items: &mut [Value]) {
    let mut hide_next = false;
    for item in items.iter_mut() {
        let Value::String(word) = item else {
            hide_next = false;
            continue;
        };
        if hide_next {
            *word = REDACTED.into();
            hide_next = false;
            continue;
        }
        let lower = word.to_ascii_lowercase();
        hide_next = matches!(lower.as_str(), "auth" | "requirepass" | "masterauth" | "masteruser" | "password");
    }
    // `AUTH user pass`: hide the last argument too.
    if let [Value::String(first), .., Value::String(last)] = items
        && first.eq_ignore_ascii_case("auth")
    {
        *last = REDACTED.into();
    }
}

/// SQL: the literal after PASSWORD (`CREATE ROLE x PASSWORD 'secret'`).
fn redact_sql(text: &str) -> Option<String> {
    let at = text.as_bytes().windows(8).position(|w| w.eq_ignore_ascii_case(b"password"))?;
    let rest = &text[at + "password".len()..];
    let quote_start = rest.find('\'')?;
    if !rest[..quote_start].trim().is_empty() {
        return None;
    }
    let after = &rest[quote_start + 1..];
    let quote_end = after.find('\'').unwrap_or(after.len());
    let tail = after.get(quote_end + 1..).unwrap_or("");
    Some(format!("{}'{REDACTED}'{tail}", &text[..at + "password".len() + quote_start]))
}

/// JSON bodies passed as text (patches, Mongo commands).
fn redact_embedded_json(text: &str) -> Option<String> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return None;
    }
    let mut parsed: Value = serde_json::from_str(text).ok()?;
    let before = parsed.clone();
    redact(&mut parsed);
    (parsed != before).then(|| parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redacted(mut v: Value) -> Value {
        redact(&mut v);
        v
    }

    #[test]
    fn hides_secret_keys_and_secret_data() {
        assert_eq!(redacted(json!({"user": "app", "password": "hunter2"})), json!({"user": "app", "password": REDACTED}));
        assert_eq!(redacted(json!({"body": "{\"data\":{\"pw\":\"aHVudGVyMg==\"}}"}))["body"], json!("{\"data\":\"[redacted]\"}"));
    }

    #[test]
    fn hides_sql_passwords() {
        let v = redacted(json!({"sql": "ALTER ROLE app PASSWORD 'hunter2' VALID UNTIL 'infinity'"}));
        assert_eq!(v["sql"], "ALTER ROLE app PASSWORD '[redacted]' VALID UNTIL 'infinity'");
        assert_eq!(redacted(json!({"sql": "SELECT 1"}))["sql"], "SELECT 1");
    }

    #[test]
    fn hides_redis_credentials() {
        let v = redacted(json!({"args": ["CONFIG", "SET", "requirepass", "hunter2"]}));
        assert_eq!(v["args"], json!(["CONFIG", "SET", "requirepass", REDACTED]));
        let v = redacted(json!({"args": ["AUTH", "default", "hunter2"]}));
        assert_eq!(v["args"][2], REDACTED);
        assert_eq!(redacted(json!({"args": ["GET", "k"]}))["args"], json!(["GET", "k"]));
    }
}
