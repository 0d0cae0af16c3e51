//! JSON lines, the format of `import`, `export` and `--format json`: one object per line,
//! `{"key":K,"value":V}`, where K and V are JSON strings when the bytes are valid UTF-8 and
//! `{"hex":"..."}` objects otherwise, so any bytes round-trip.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde_json::Value;

use crate::encoding::is_unsafe;

/// Writes `bytes` as a JSON string if they are UTF-8, else as `{"hex":"..."}`. Every control
/// character, and the invisible ones that reorder lines, is written as a `\uNNNN` escape
/// (serde_json leaves DEL, C1 and those as they are), so the output is safe on a terminal.
pub(crate) fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return write!(out, "{{\"hex\":\"{}\"}}", hex::encode(bytes));
    };
    let json = serde_json::to_string(text).map_err(io::Error::from)?;
    if !json.chars().any(is_unsafe) {
        return out.write_all(json.as_bytes());
    }
    let mut escaped = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe(c) {
            let _ = write!(escaped, "\\u{:04x}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    out.write_all(escaped.as_bytes())
}

/// Writes one line: `{"key":K,"value":V}`, leaving out a field that is `None`.
pub(crate) fn write_entry(out: &mut impl Write, key: Option<&[u8]>, value: Option<&[u8]>) -> io::Result<()> {
    out.write_all(b"{")?;
    if let Some(key) = key {
        out.write_all(b"\"key\":")?;
        write_bytes(out, key)?;
        if value.is_some() {
            out.write_all(b",")?;
        }
    }
    if let Some(value) = value {
        out.write_all(b"\"value\":")?;
        write_bytes(out, value)?;
    }
    out.write_all(b"}\n")
}

/// The bytes a JSON value stands for: a string's UTF-8, or a `{"hex":"..."}` object's bytes.
fn bytes_of(value: &Value, field: &str) -> Result<Vec<u8>, String> {
    let expected = || format!("\"{field}\" must be a string or {{\"hex\": \"...\"}}");
    match value {
        Value::String(text) => Ok(text.as_bytes().to_vec()),
        Value::Object(object) if object.len() == 1 => match object.get("hex") {
            Some(Value::String(digits)) => hex::decode(digits).map_err(|err| format!("\"{field}\" has bad hex: {err}")),
            _ => Err(expected()),
        },
        _ => Err(expected()),
    }
}

/// Parses one line into its key and value. Both fields are required; other fields are refused
/// (so a misspelt field is noticed rather than ignored).
pub(crate) fn parse_entry(line: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let value: Value = serde_json::from_str(line).map_err(|err| format!("not JSON: {err}"))?;
    let Value::Object(object) = value else {
        return Err("expected an object {\"key\": ..., \"value\": ...}".into());
    };
    if let Some(other) = object.keys().find(|name| *name != "key" && *name != "value") {
        return Err(format!("unexpected field \"{other}\": expected only \"key\" and \"value\""));
    }
    let field = |name: &str| object.get(name).ok_or_else(|| format!("missing \"{name}\""));
    Ok((bytes_of(field("key")?, "key")?, bytes_of(field("value")?, "value")?))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn line(key: &[u8], value: &[u8]) -> String {
        let mut out = Vec::new();
        write_entry(&mut out, Some(key), Some(value)).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_format() {
        assert_eq!(line(b"fruit/apple", b"red"), "{\"key\":\"fruit/apple\",\"value\":\"red\"}\n");
        assert_eq!(line(b"q\"\n\\", b""), "{\"key\":\"q\\\"\\n\\\\\",\"value\":\"\"}\n");
        assert_eq!(line(b"blob", b"\x00\xff"), "{\"key\":\"blob\",\"value\":{\"hex\":\"00ff\"}}\n");
        assert_eq!(line("é".as_bytes(), b"\x00"), "{\"key\":\"é\",\"value\":\"\\u0000\"}\n");
        assert_eq!(
            line(b"k", "\x1b\x7f\u{9b}\u{202e}".as_bytes()),
            r#"{"key":"k","value":"\u001b\u007f\u009b\u202e"}"#.to_owned() + "\n"
        );
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_entry(r#"{"key":"a","value":"b"}"#), Ok((b"a".to_vec(), b"b".to_vec())));
        assert_eq!(parse_entry(r#" { "value" : {"hex":"FF"}, "key":"" } "#), Ok((vec![], vec![0xff])));
        assert_eq!(parse_entry(r#"{"key":"a"}"#), Err("missing \"value\"".into()));
        assert_eq!(
            parse_entry(r#"{"key":"a","value":"b","vaule":"c"}"#),
            Err("unexpected field \"vaule\": expected only \"key\" and \"value\"".into())
        );
        assert!(parse_entry(r#"{"key":1,"value":"b"}"#).unwrap_err().contains("must be a string"));
        assert!(parse_entry(r#"{"key":{"hex":"0"},"value":"b"}"#).unwrap_err().contains("bad hex"));
        assert!(parse_entry(r#"{"key":{"hex":"00","x":1},"value":"b"}"#).unwrap_err().contains("must be a string"));
        assert!(parse_entry(r#"["a","b"]"#).unwrap_err().contains("expected an object"));
        assert!(parse_entry("{").unwrap_err().starts_with("not JSON"));
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            value in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let line = line(&key, &value);
            prop_assert!(line.ends_with('\n'));
            prop_assert_eq!(line.matches('\n').count(), 1, "one entry, one line");
            prop_assert!(!line.trim_end().chars().any(is_unsafe), "{:?}", line);
            prop_assert_eq!(parse_entry(&line), Ok((key, value)));
        }

        #[test]
        fn utf8_stays_readable(key in "\\PC*", value in ".*") {
            let line = line(key.as_bytes(), value.as_bytes());
            prop_assert!(!line.contains("\"hex\""));
            prop_assert_eq!(parse_entry(&line), Ok((key.into_bytes(), value.into_bytes())));
        }
    }
}
