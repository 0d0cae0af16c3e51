//! Keys and values between bytes and the command line: reading arguments as UTF-8 or hex, and
//! printing bytes as text, hex or JSON lines.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::args::Format;
use crate::jsonl;

/// The bytes a command-line key or value stands for: its UTF-8, or with `hex` the bytes it
/// spells in hex. `what` names the argument in the error.
pub(crate) fn parse_arg(text: &str, hex: bool, what: &str) -> Result<Vec<u8>, String> {
    if hex { hex::decode(text).map_err(|err| format!("{what} `{text}` is not hex: {err}")) } else { Ok(text.into()) }
}

/// `bytes` as text: valid UTF-8 as is, each byte of an invalid sequence as `\xNN`. Never fails;
/// for exact bytes use hex or JSON.
pub(crate) fn text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Writes one field (a key or a value) in `format`'s text form: escaped text or hex.
fn write_field(out: &mut impl Write, format: Format, bytes: &[u8]) -> io::Result<()> {
    match format {
        Format::Hex => out.write_all(hex::encode(bytes).as_bytes()),
        Format::Text | Format::Json => out.write_all(text(bytes).as_bytes()),
    }
}

/// Writes one line for an entry: `key<TAB>value` (or the one field present) in text or hex, or a
/// JSON object with the fields present.
pub(crate) fn write_entry(
    out: &mut impl Write,
    format: Format,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> io::Result<()> {
    if format == Format::Json {
        return jsonl::write_entry(out, key, value);
    }
    if let Some(key) = key {
        write_field(out, format, key)?;
        if value.is_some() {
            out.write_all(b"\t")?;
        }
    }
    if let Some(value) = value {
        write_field(out, format, value)?;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn text_escapes_only_invalid_utf8() {
        assert_eq!(text(b"hello"), "hello");
        assert_eq!(text("grüße\tz".as_bytes()), "grüße\tz");
        assert_eq!(text(b"a\xffb\x00"), "a\\xffb\u{0}");
        assert_eq!(text(b"\xe2\x82"), "\\xe2\\x82"); // a truncated sequence
        assert_eq!(text(b""), "");
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_arg("hi", false, "KEY"), Ok(b"hi".to_vec()));
        assert_eq!(parse_arg("00ff", false, "KEY"), Ok(b"00ff".to_vec()));
        assert_eq!(parse_arg("00fF", true, "KEY"), Ok(vec![0, 0xff]));
        assert_eq!(parse_arg("", true, "KEY"), Ok(vec![]));
        assert!(parse_arg("0g", true, "KEY").unwrap_err().starts_with("KEY `0g` is not hex"));
    }

    fn line(format: Format, key: Option<&[u8]>, value: Option<&[u8]>) -> String {
        let mut out = Vec::new();
        write_entry(&mut out, format, key, value).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn entry_lines() {
        assert_eq!(line(Format::Text, Some(b"k"), Some(b"v\xff")), "k\tv\\xff\n");
        assert_eq!(line(Format::Text, Some(b"k"), None), "k\n");
        assert_eq!(line(Format::Text, None, Some(b"v")), "v\n");
        assert_eq!(line(Format::Hex, Some(b"k"), Some(b"\x00\xff")), "6b\t00ff\n");
        assert_eq!(line(Format::Json, Some(b"k"), Some(b"\xff")), "{\"key\":\"k\",\"value\":{\"hex\":\"ff\"}}\n");
        assert_eq!(line(Format::Json, None, Some(b"v")), "{\"value\":\"v\"}\n");
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let printed = line(Format::Hex, None, Some(&bytes));
            prop_assert_eq!(parse_arg(printed.trim_end(), true, "VALUE").unwrap(), bytes);
        }

        #[test]
        fn text_of_utf8_is_the_utf8(s in ".*") {
            prop_assert_eq!(text(s.as_bytes()), s);
        }
    }
}
