//! Reading cty values from Nomad's msgpack (`msgpack_driver_config`, `msgpack_config`).
//!
//! Nomad decodes the job's HCL against our schema first, so the payload is an object with
//! every schema key (absent ones as nil). What still needs care: numbers may arrive as ints,
//! floats or decimal strings; any msgpack extension is a cty *unknown* value, which a started
//! task should never see and is refused with the field named; a value go-cty marshalled as
//! `dynamic` comes wrapped with its type, and is unwrapped wherever a value is read.

use rmpv::Value;
use std::collections::BTreeMap;

/// A configuration that cannot be used, naming the field: the job's (a task's `config`) or
/// the operator's (the plugin's), never a fault of the host, so retrying does not help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

pub type Result<T> = std::result::Result<T, ConfigError>;

/// A [`ConfigError`] from `format!` arguments.
macro_rules! config_error {
    ($($arg:tt)*) => {
        $crate::cty::ConfigError::new(format!($($arg)*))
    };
}
pub(crate) use config_error;

impl ConfigError {
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError(message.into())
    }
}

impl From<&'static str> for ConfigError {
    fn from(message: &'static str) -> ConfigError {
        ConfigError::new(message)
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Compares the message, as tests and callers read it.
impl PartialEq<&str> for ConfigError {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Parses a payload; empty bytes (no `config {}` at all) are an empty object.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    if bytes.is_empty() {
        return Ok(Value::Map(Vec::new()));
    }
    let mut cursor = bytes;
    let v = rmpv::decode::read_value(&mut cursor)
        .map_err(|e| config_error!("malformed msgpack configuration: {e}"))?;
    if !cursor.is_empty() {
        return Err(config_error!(
            "malformed msgpack configuration: {} bytes after the value",
            cursor.len()
        ));
    }
    Ok(v)
}

/// The attributes of the root object.
pub fn object(v: &Value) -> Result<BTreeMap<String, &Value>> {
    match concrete(Some(&v)).unwrap_or(v) {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| match k {
                Value::String(s) => Ok((s.as_str().unwrap_or_default().to_string(), v)),
                other => Err(config_error!("configuration key {other} is not a string")),
            })
            .collect(),
        Value::Nil => Ok(BTreeMap::new()),
        Value::Ext(..) => {
            Err("the configuration is unknown (not known when the task was started)".into())
        }
        other => Err(config_error!(
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

/// The value itself, out of go-cty's dynamic wrapper if it has one: a value marshalled against
/// `DynamicPseudoType` arrives as `[bin(type JSON), value]`. Nomad marshals against concrete
/// types and never sends it, but another cty encoder may. No type in our schemas encodes as a
/// two-element array that starts with binary data, so unwrapping is unambiguous; the inner
/// value is then checked against the field's type like any other.
fn concrete<'a>(v: Option<&&'a Value>) -> Option<&'a Value> {
    let mut v: &'a Value = v?;
    while let Value::Array(pair) = v {
        match pair.as_slice() {
            [Value::Binary(_), inner] => v = inner,
            _ => break,
        }
    }
    Some(v)
}

fn unknown(field: &str) -> ConfigError {
    config_error!("{field:?} is an unknown value (not known when the task was started); give it a literal value")
}

fn wrong(field: &str, want: &str, got: &Value) -> ConfigError {
    config_error!("{field:?} must be {want}, not {}", kind(got))
}

pub fn string(field: &str, v: Option<&&Value>) -> Result<Option<String>> {
    match concrete(v) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::String(s)) => Ok(Some(
            s.as_str()
                .ok_or_else(|| config_error!("{field:?} is not valid UTF-8"))?
                .to_string(),
        )),
        Some(Value::Ext(..)) => Err(unknown(field)),
        Some(other) => Err(wrong(field, "a string", other)),
    }
}

pub fn boolean(field: &str, v: Option<&&Value>) -> Result<Option<bool>> {
    match concrete(v) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Boolean(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.as_str() {
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            _ => Err(config_error!("{field:?} must be true or false")),
        },
        Some(Value::Ext(..)) => Err(unknown(field)),
        Some(other) => Err(wrong(field, "a bool", other)),
    }
}

/// A whole number, from any of cty's number encodings (int, uint, float, decimal string).
pub fn integer(field: &str, v: Option<&&Value>) -> Result<Option<i64>> {
    let exact = |f: f64| (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64);
    match concrete(v) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Integer(i)) => i
            .as_i64()
            .map(Some)
            .ok_or_else(|| config_error!("{field:?} is too large")),
        Some(Value::F32(f)) => exact(*f as f64)
            .map(Some)
            .ok_or_else(|| config_error!("{field:?} must be a whole number")),
        Some(Value::F64(f)) => exact(*f)
            .map(Some)
            .ok_or_else(|| config_error!("{field:?} must be a whole number")),
        Some(Value::String(s)) => {
            let s = s.as_str().unwrap_or_default();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(exact))
                .map(Some)
                .ok_or_else(|| config_error!("{field:?} must be a whole number, not {s:?}"))
        }
        Some(Value::Ext(..)) => Err(unknown(field)),
        Some(other) => Err(wrong(field, "a number", other)),
    }
}

/// Any number, from any of cty's number encodings: int, uint, float32, float64, or the decimal
/// string go-cty writes for a number that is neither exactly an int64 nor a float64 (`0.1`
/// from a job file arrives as `"0.1"`).
pub fn number(field: &str, v: Option<&&Value>) -> Result<Option<f64>> {
    match concrete(v) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Integer(i)) => Ok(i.as_f64()),
        Some(Value::F32(f)) => Ok(Some(f64::from(*f))),
        Some(Value::F64(f)) => Ok(Some(*f)),
        Some(Value::String(s)) => {
            let s = s.as_str().unwrap_or_default();
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| !f.is_nan())
                .map(Some)
                .ok_or_else(|| config_error!("{field:?} must be a number, not {s:?}"))
        }
        Some(Value::Ext(..)) => Err(unknown(field)),
        Some(other) => Err(wrong(field, "a number", other)),
    }
}

/// A nested block's attributes: an object, or a list of at most one object (HCL1 agent
/// configurations reach Nomad's decoder as JSON, where a block is a list); null (the block
/// left out) is None.
pub fn block<'a>(
    field: &str,
    v: Option<&&'a Value>,
) -> Result<Option<BTreeMap<String, &'a Value>>> {
    let v = match concrete(v) {
        None | Some(Value::Nil) => return Ok(None),
        Some(Value::Array(items)) => match items.as_slice() {
            [] => return Ok(None),
            [one] => concrete(Some(&one)).unwrap_or(one),
            _ => {
                return Err(config_error!(
                    "{field:?} may appear once, not {} times",
                    items.len()
                ))
            }
        },
        Some(v) => v,
    };
    match v {
        Value::Map(_) => object(v).map(Some),
        Value::Nil => Ok(None),
        Value::Ext(..) => Err(unknown(field)),
        other => Err(config_error!(
            "{field:?} must be a block ({field} {{ … }}), not {}",
            kind(other)
        )),
    }
}

/// list(string); null is an empty list.
pub fn strings(field: &str, v: Option<&&Value>) -> Result<Vec<String>> {
    match concrete(v) {
        None | Some(Value::Nil) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                string(&format!("{field}[{i}]"), Some(&item))?
                    .ok_or_else(|| config_error!("{field}[{i}] is null; give a string"))
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
    let maps: Vec<&Value> = match concrete(v) {
        None | Some(Value::Nil) => return Ok(out),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(m @ Value::Map(_)) => vec![m],
        Some(Value::Ext(..)) => return Err(unknown(field)),
        Some(other) => return Err(wrong(field, "a map of strings", other)),
    };
    for m in maps {
        match concrete(Some(&m)).unwrap_or(m) {
            Value::Map(entries) => {
                for (k, val) in entries {
                    let Value::String(k) = k else {
                        return Err(config_error!("{field:?} has a key that is not a string"));
                    };
                    let k = k.as_str().unwrap_or_default().to_string();
                    let val = match concrete(Some(&val)).unwrap_or(val) {
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

/// Test payloads written the way the protocol reference prints them: hex bytes, and "quoted"
/// text standing for its own bytes.
#[cfg(test)]
pub(crate) fn bytes(spec: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = spec.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').expect("closing quote");
            out.extend_from_slice(&r.as_bytes()[..end]);
            rest = r[end + 1..].trim_start();
        } else {
            let end = rest.find([' ', '"']).unwrap_or(rest.len());
            out.push(u8::from_str_radix(&rest[..end], 16).expect("hex byte"));
            rest = rest[end..].trim_start();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(spec: &str) -> Value {
        parse(&bytes(spec)).unwrap()
    }

    #[test]
    fn single_values_of_the_reference() {
        // Section 5.5 (d), every row.
        let n = |h: &str| integer("n", Some(&&value(h))).unwrap();
        assert_eq!(n("05"), Some(5));
        assert_eq!(n("ff"), Some(-1));
        assert_eq!(n("cc c8"), Some(200));
        assert_eq!(n("d1 ff 38"), Some(-200));
        assert_eq!(n("ce 00 01 11 70"), Some(70000));
        assert_eq!(n("cd 03 e8"), Some(1000));
        assert_eq!(n("cb 40 00 00 00 00 00 00 00"), Some(2));
        let one_and_a_half = value("cb 3f f8 00 00 00 00 00 00");
        assert_eq!(number("n", Some(&&one_and_a_half)).unwrap(), Some(1.5));
        assert!(
            integer("n", Some(&&one_and_a_half)).is_err(),
            "1.5 is not whole"
        );
        assert_eq!(integer("n", Some(&&Value::from("300"))).unwrap(), Some(300));
        assert_eq!(
            strings("l", Some(&&value("90"))).unwrap(),
            Vec::<String>::new()
        );
        assert!(object(&value("80")).unwrap().is_empty());
        let long = parse(&[&[0xd9, 40][..], &[b'x'; 40][..]].concat()).unwrap();
        assert_eq!(string("s", Some(&&long)).unwrap().unwrap().len(), 40);
    }

    #[test]
    fn raw_exec_style_task_config() {
        // Section 5.5 (a): `config { command = "/bin/sleep"  args = ["10"] }`.
        let v = value(r#"82 a4"args" 91 a2"10" a7"command" aa"/bin/sleep""#);
        let o = object(&v).unwrap();
        assert_eq!(strings("args", o.get("args")).unwrap(), ["10"]);
        assert_eq!(
            string("command", o.get("command")).unwrap().as_deref(),
            Some("/bin/sleep")
        );
        // args omitted: the key is there, as nil.
        let v = value(r#"82 a4"args" c0 a7"command" a1"x""#);
        let o = object(&v).unwrap();
        assert!(strings("args", o.get("args")).unwrap().is_empty());
        assert_eq!(
            string("command", o.get("command")).unwrap().as_deref(),
            Some("x")
        );
    }

    #[test]
    fn richer_object_with_nulls_maps_block_lists_and_string_numbers() {
        // Section 5.5 (b).
        let v = value(concat!(
            r#"87 a4"args" c0 a4"auth" c0 a5"debug" c2 a5"image" a7"redis:7" "#,
            r#"a6"labels" 82 a1"a" a1"1" a1"b" a1"2" "#,
            r#"a4"port" 91 82 a5"label" a2"db" a2"to" cd 18 eb "#,
            r#"a5"ratio" a3"0.1""#
        ));
        let o = object(&v).unwrap();
        assert_eq!(o.len(), 7);
        assert!(strings("args", o.get("args")).unwrap().is_empty());
        assert!(
            object(o["auth"]).unwrap().is_empty(),
            "an absent block is nil"
        );
        assert_eq!(boolean("debug", o.get("debug")).unwrap(), Some(false));
        assert_eq!(
            string("image", o.get("image")).unwrap().as_deref(),
            Some("redis:7")
        );
        let labels = merged_maps("labels", o.get("labels")).unwrap();
        assert_eq!(
            labels.into_iter().collect::<Vec<_>>(),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        let Value::Array(ports) = o["port"] else {
            panic!("a block list is an array")
        };
        let port = object(&ports[0]).unwrap();
        assert_eq!(
            string("label", port.get("label")).unwrap().as_deref(),
            Some("db")
        );
        assert_eq!(integer("to", port.get("to")).unwrap(), Some(6379));
        assert_eq!(number("ratio", o.get("ratio")).unwrap(), Some(0.1));
        assert!(integer("ratio", o.get("ratio"))
            .unwrap_err()
            .to_string()
            .contains("whole number"));
    }

    #[test]
    fn plugin_config_with_defaults() {
        // Section 5.5 (c): `{enabled: Default(bool,false), no_cgroups: Default(bool,false)}`
        // with `config { enabled = true }`.
        let v = value("82 a7 65 6e 61 62 6c 65 64 c3 aa 6e 6f 5f 63 67 72 6f 75 70 73 c2");
        let o = object(&v).unwrap();
        assert_eq!(boolean("enabled", o.get("enabled")).unwrap(), Some(true));
        assert_eq!(
            boolean("no_cgroups", o.get("no_cgroups")).unwrap(),
            Some(false)
        );
    }

    #[test]
    fn dynamic_wrapper_is_unwrapped() {
        // Section 5.3: StringVal("hi") marshalled as dynamic; a null dynamic is plain nil.
        let v = value("92 c4 08 22 73 74 72 69 6e 67 22 a2 68 69");
        assert_eq!(string("s", Some(&&v)).unwrap().as_deref(), Some("hi"));
        assert_eq!(string("s", Some(&&value("c0"))).unwrap(), None);
        // Wrapped lists, list items and map values read the same.
        let dynamic =
            |ty: &str, v: Value| Value::Array(vec![Value::Binary(ty.as_bytes().to_vec()), v]);
        let list = dynamic(
            r#"["list","string"]"#,
            Value::Array(vec!["a".into(), dynamic(r#""string""#, "b".into())]),
        );
        assert_eq!(strings("l", Some(&&list)).unwrap(), ["a", "b"]);
        let maps = Value::Array(vec![Value::Map(vec![(
            "k".into(),
            dynamic(r#""string""#, "v".into()),
        )])]);
        assert_eq!(merged_maps("m", Some(&&maps)).unwrap()["k"], "v");
        // The inner value still has to have the field's type.
        let wrapped_number = dynamic(r#""number""#, 5.into());
        assert_eq!(
            string("s", Some(&&wrapped_number)).unwrap_err(),
            "\"s\" must be a string, not a number"
        );
    }

    #[test]
    fn numbers_from_every_encoding() {
        let n = |v: Value| number("n", Some(&&v));
        assert_eq!(n(Value::from(7u64)).unwrap(), Some(7.0));
        assert_eq!(n(Value::F32(0.5)).unwrap(), Some(0.5));
        assert_eq!(n(Value::from("-0.25")).unwrap(), Some(-0.25));
        assert_eq!(n(Value::from("1e3")).unwrap(), Some(1000.0));
        assert_eq!(n(Value::Nil).unwrap(), None);
        assert_eq!(
            n(Value::from("ten")).unwrap_err(),
            "\"n\" must be a number, not \"ten\""
        );
        assert!(n(Value::from("NaN")).is_err());
        assert!(n(Value::from(true)).is_err());
        // Above int64: exact as a decimal string, still a number.
        assert_eq!(
            n(Value::from("18446744073709551616")).unwrap(),
            Some(18446744073709551616.0)
        );
        assert!(integer("n", Some(&&Value::from("18446744073709551616"))).is_err());
    }

    #[test]
    fn unknowns_and_wrong_types_name_the_field() {
        let unknown = value("d4 00 00");
        assert!(string("image", Some(&&unknown))
            .unwrap_err()
            .to_string()
            .contains("\"image\" is an unknown value"));
        let readers: [fn(&Value) -> Result<()>; 5] = [
            |v: &Value| boolean("debug", Some(&v)).map(|_| ()),
            |v: &Value| number("count", Some(&v)).map(|_| ()),
            |v: &Value| integer("count", Some(&v)).map(|_| ()),
            |v: &Value| strings("args", Some(&v)).map(|_| ()),
            |v: &Value| merged_maps("port_map", Some(&v)).map(|_| ()),
        ];
        for read in readers {
            let e = read(&unknown).unwrap_err();
            assert!(e.to_string().contains("is an unknown value"), "{e}");
        }
        // Newer go-cty's refined unknowns (ext 12) are unknowns too.
        let refined = Value::Ext(12, vec![0x80]);
        assert!(strings("args", Some(&&refined))
            .unwrap_err()
            .to_string()
            .contains("\"args\""));
        // An unknown inside a list or a map names the element.
        let in_list = value(r#"92 a1"a" d4 00 00"#);
        assert!(strings("args", Some(&&in_list))
            .unwrap_err()
            .to_string()
            .starts_with("\"args[1]\""));
        let in_map = value(r#"91 81 a4"http" d4 00 00"#);
        assert!(merged_maps("port_map", Some(&&in_map))
            .unwrap_err()
            .to_string()
            .starts_with("\"port_map.http\""));
        assert!(object(&unknown)
            .unwrap_err()
            .to_string()
            .contains("unknown"));

        assert!(boolean("debug", Some(&&Value::from("x"))).is_err());
        assert_eq!(
            string("command", Some(&&Value::from(1))).unwrap_err(),
            "\"command\" must be a string, not a number"
        );
        assert_eq!(
            strings("args", Some(&&Value::from("a"))).unwrap_err(),
            "\"args\" must be a list of strings, not a string"
        );
        assert!(strings("args", Some(&&value("91 c0")))
            .unwrap_err()
            .to_string()
            .contains("args[0] is null"));
        assert_eq!(
            object(&value("a1 78")).unwrap_err(),
            "the configuration is not an object but a string"
        );
        assert!(parse(&bytes("82 a1")).is_err(), "truncated");
        assert!(parse(&bytes("c0 c0")).is_err(), "trailing bytes");
    }
}
