//! Reading cty values from Nomad's msgpack (`msgpack_driver_config`, `msgpack_config`).
//!
//! Nomad decodes the job's HCL against our schema first, so the payload is an object with
//! every schema key (absent ones as nil). What still needs care: numbers may arrive as ints,
//! floats or decimal strings; any msgpack extension is a cty *unknown* value, which a started
//! task should never see and is refused with the field named.

use rmpv::Value;
use std::collections::BTreeMap;

/// A decoding problem, naming the field.
pub type Result<T> = std::result::Result<T, String>;

/// Parses a payload; empty bytes (no `config {}` at all) are an empty object.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    if bytes.is_empty() {
        return Ok(Value::Map(Vec::new()));
    }
    let mut cursor = bytes;
    let v = rmpv::decode::read_value(&mut cursor)
        .map_err(|e| format!("malformed msgpack configuration: {e}"))?;
    if !cursor.is_empty() {
        return Err(format!(
            "malformed msgpack configuration: {} bytes after the value",
            cursor.len()
        ));
    }
    Ok(v)
}

/// The attributes of the root object.
pub fn object(v: &Value) -> Result<BTreeMap<String, &Value>> {
    match v {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| match k {
                Value::String(s) => Ok((s.as_str().unwrap_or_default().to_string(), v)),
                other => Err(format!("configuration key {other} is not a string")),
            })
            .collect(),
        Value::Nil => Ok(BTreeMap::new()),
        Value::Ext(..) => {
            Err("the configuration is unknown (not known when the task was started)".into())
        }
        other => Err(format!(
            "the configuration is not an object but {}",
            kind(other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "null",
        Value::Boolean(_) => "a bool",
        Value::Integer(_) | Value::F32(_) | Value::F64(_) => "a number",
        Value::String(_) => "a string",
        Value::Binary(_) => "binary data",
        Value::Array(_) => "a list",
        Value::Map(_) => "a map",
        Value::Ext(..) => "an unknown value",
    }
}

fn unknown(field: &str) -> String {
    format!("{field:?} is an unknown value (not known when the task was started); give it a literal value")
}

fn wrong(field: &str, want: &str, got: &Value) -> String {
    format!("{field:?} must be {want}, not {}", kind(got))
}

pub fn string(field: &str, v: Option<&&Value>) -> Result<Option<String>> {
    match v.copied() {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::String(s)) => Ok(Some(
            s.as_str()
                .ok_or_else(|| format!("{field:?} is not valid UTF-8"))?
                .to_string(),
        )),
        Some(Value::Ext(..)) => Err(unknown(field)),
        Some(other) => Err(wrong(field, "a string", other)),
    }
}

pub fn boolean(field: &str, v: Option<&&Value>) -> Result<Option<bool>> {
    match v.copied() {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Boolean(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.as_str() {
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            _ => Err(format!("{field:?} must be true or false")),
        },
        Some(Value::Ext(..)) => Err(unknown(field)),
        Some(other) => Err(wrong(field, "a bool", other)),
    }
}

/// A whole number, from any of cty's number encodings (int, uint, float, decimal string).
pub fn integer(field: &str, v: Option<&&Value>) -> Result<Option<i64>> {
    let exact = |f: f64| (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64);
    match v.copied() {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Integer(i)) => i
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{field:?} is too large")),
        Some(Value::F32(f)) => exact(*f as f64)
            .map(Some)
            .ok_or_else(|| format!("{field:?} must be a whole number")),
        Some(Value::F64(f)) => exact(*f)
            .map(Some)
            .ok_or_else(|| format!("{field:?} must be a whole number")),
        Some(Value::String(s)) => {
            let s = s.as_str().unwrap_or_default();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(exact))
                .map(Some)
                .ok_or_else(|| format!("{field:?} must be a whole number, not {s:?}"))
        }
        Some(Value::Ext(..)) => Err(unknown(field)),
        Some(other) => Err(wrong(field, "a number", other)),
    }
}

/// list(string); null is an empty list.
pub fn strings(field: &str, v: Option<&&Value>) -> Result<Vec<String>> {
    match v.copied() {
        None | Some(Value::Nil) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                string(&format!("{field}[{i}]"), Some(&item))?
                    .ok_or_else(|| format!("{field}[{i}] is null; give a string"))
            })
            .collect(),
        Some(Value::Ext(..)) => Err(unknown(field)),
        Some(other) => Err(wrong(field, "a list of strings", other)),
    }
}

/// list(map(string)), merged into one map in order (the `port_map` form: a block arrives as a
/// one-element list of maps; HCL1 files send several). A bare map is accepted too.
pub fn merged_maps(field: &str, v: Option<&&Value>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let maps: Vec<&Value> = match v.copied() {
        None | Some(Value::Nil) => return Ok(out),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(m @ Value::Map(_)) => vec![m],
        Some(Value::Ext(..)) => return Err(unknown(field)),
        Some(other) => return Err(wrong(field, "a map of strings", other)),
    };
    for m in maps {
        match m {
            Value::Map(entries) => {
                for (k, val) in entries {
                    let Value::String(k) = k else {
                        return Err(format!("{field:?} has a key that is not a string"));
                    };
                    let k = k.as_str().unwrap_or_default().to_string();
                    let val = match val {
                        Value::String(s) => s.as_str().unwrap_or_default().to_string(),
                        Value::Integer(i) => i.to_string(),
                        Value::Ext(..) => return Err(unknown(&format!("{field}.{k}"))),
                        other => return Err(wrong(&format!("{field}.{k}"), "a string", other)),
                    };
                    out.insert(k, val);
                }
            }
            Value::Nil => {}
            Value::Ext(..) => return Err(unknown(field)),
            other => return Err(wrong(field, "a map of strings", other)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn single_values_of_the_reference() {
        let n = |h: &str| integer("n", Some(&&parse(&hex(h)).unwrap())).unwrap();
        assert_eq!(n("05"), Some(5));
        assert_eq!(n("ff"), Some(-1));
        assert_eq!(n("cc c8"), Some(200));
        assert_eq!(n("d1 ff 38"), Some(-200));
        assert_eq!(n("ce 00 01 11 70"), Some(70000));
        assert_eq!(n("cd 03 e8"), Some(1000));
        assert_eq!(n("cb 40 00 00 00 00 00 00 00"), Some(2));
        assert!(
            integer(
                "n",
                Some(&&parse(&hex("cb 3f f8 00 00 00 00 00 00")).unwrap())
            )
            .is_err(),
            "1.5 is not whole"
        );
        assert_eq!(integer("n", Some(&&Value::from("300"))).unwrap(), Some(300));
        assert_eq!(
            strings("l", Some(&&parse(&hex("90")).unwrap())).unwrap(),
            Vec::<String>::new()
        );
        assert!(object(&parse(&hex("80")).unwrap()).unwrap().is_empty());
        let long = parse(&[&[0xd9, 40][..], &[b'x'; 40][..]].concat()).unwrap();
        assert_eq!(string("s", Some(&&long)).unwrap().unwrap().len(), 40);
    }

    #[test]
    fn unknowns_and_wrong_types_name_the_field() {
        let unknown = parse(&hex("d4 00 00")).unwrap();
        assert!(string("image", Some(&&unknown))
            .unwrap_err()
            .contains("\"image\" is an unknown value"));
        let refined = Value::Ext(12, vec![0x80]);
        assert!(strings("args", Some(&&refined))
            .unwrap_err()
            .contains("\"args\""));
        assert!(boolean("debug", Some(&&Value::from("x"))).is_err());
        assert_eq!(
            string("command", Some(&&Value::from(1))).unwrap_err(),
            "\"command\" must be a string, not a number"
        );
        assert!(parse(&hex("82 a1")).is_err(), "truncated");
        assert!(parse(&hex("c0 c0")).is_err(), "trailing bytes");
    }
}
