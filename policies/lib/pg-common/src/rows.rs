//! Rows as `postgres-read.query` returns them: a JSON array of objects.
//! Values are read leniently (a number may arrive as a JSON number or as
//! text, a boolean as `true` or `"t"`), because how a backend renders a
//! PostgreSQL type is its own business.

use runner_sdk::Error;
use serde_json::{Map, Value};

pub type Row = Map<String, Value>;

/// Parse a query's answer.
pub fn parse(text: &str) -> Result<Vec<Row>, Error> {
    match serde_json::from_str(text) {
        Ok(Value::Array(items)) => Ok(items.into_iter().filter_map(|v| if let Value::Object(row) = v { Some(row) } else { None }).collect()),
        Ok(_) => Err(Error::internal("the PostgreSQL backend returned rows that are not a JSON array")),
        Err(e) => Err(Error::internal(format!("the PostgreSQL backend returned invalid JSON: {e}"))),
    }
}

/// A number, from a JSON number or numeric text; `None` for NULL.
pub fn num(row: &Row, key: &str) -> Option<f64> {
    match row.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Text; `None` for NULL.
pub fn text<'a>(row: &'a Row, key: &str) -> Option<&'a str> {
    row.get(key)?.as_str()
}

/// A boolean, from `true`/`false` or PostgreSQL's text forms (`t`, `on`, ...).
pub fn flag(row: &Row, key: &str) -> Option<bool> {
    match row.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "t" | "true" | "on" | "yes" | "1" => Some(true),
            "f" | "false" | "off" | "no" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_f64().map(|v| v != 0.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_values() {
        let rows = parse(r#"[{"a": 1.5, "b": "2", "c": "t", "d": false, "e": null, "f": "0/3000060"}, 7]"#).unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(num(row, "a"), Some(1.5));
        assert_eq!(num(row, "b"), Some(2.0));
        assert_eq!(num(row, "e"), None);
        assert_eq!(flag(row, "c"), Some(true));
        assert_eq!(flag(row, "d"), Some(false));
        assert_eq!(text(row, "f"), Some("0/3000060"));
        assert!(parse("{}").is_err());
        assert!(parse("nope").is_err());
    }
}
