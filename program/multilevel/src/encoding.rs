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

/// `bytes` as text that is safe on a terminal and in `key<TAB>value` lines: valid UTF-8 as is,
/// except backslash as `\\`, tab, newline and carriage return as `\t`, `\n`, `\r`, and each
/// byte of other control characters ([`is_unsafe`]) and of invalid UTF-8 as `\xNN`. Never
/// fails, and unambiguous: different bytes give different text. For exact bytes use raw, hex
/// or JSON.
pub(crate) fn text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if is_unsafe(c) => {
                    for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Whether `c` must not reach a terminal as is: control characters (C0, DEL, C1: terminal
/// escapes, line breaks) and the invisible characters that reorder or break lines (bidirectional
/// marks, embeddings, overrides and isolates; line and paragraph separators).
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Writes one field (a key or a value) in `format`'s text form: escaped text or hex.
pub(crate) fn write_field(out: &mut impl Write, format: Format, bytes: &[u8]) -> io::Result<()> {
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
    fn text_escapes_controls_backslash_and_invalid_utf8() {
        assert_eq!(text(b"hello"), "hello");
        assert_eq!(text("grüße ✓".as_bytes()), "grüße ✓");
        assert_eq!(text(b"a\tb\nc\rd"), r"a\tb\nc\rd");
        assert_eq!(text(b"back\\slash \\x41"), r"back\\slash \\x41");
        assert_eq!(text(b"a\xffb\x00"), r"a\xffb\x00");
        assert_eq!(text(b"\x1b[31mred\x1b]0;title\x07"), r"\x1b[31mred\x1b]0;title\x07");
        assert_eq!(text(b"\x7f"), r"\x7f");
        assert_eq!(text("\u{9b}31m".as_bytes()), r"\xc2\x9b31m"); // C1 CSI
        assert_eq!(text("a\u{202e}b".as_bytes()), r"a\xe2\x80\xaeb"); // right-to-left override
        assert_eq!(text(b"\xe2\x82"), r"\xe2\x82"); // a truncated sequence
        assert_eq!(text(b""), "");
    }

    /// The inverse of [`text`], to show that it is unambiguous.
    fn unescape(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = text.as_bytes();
        while let Some((&first, tail)) = rest.split_first() {
            if first != b'\\' {
                out.push(first);
                rest = tail;
                continue;
            }
            let (byte, more) = match tail {
                [b'\\', more @ ..] => (b'\\', more),
                [b't', more @ ..] => (b'\t', more),
                [b'n', more @ ..] => (b'\n', more),
                [b'r', more @ ..] => (b'\r', more),
                [b'x', a, b, more @ ..] => {
                    (u8::from_str_radix(std::str::from_utf8(&[*a, *b]).unwrap(), 16).unwrap(), more)
                }
                _ => panic!("a lone backslash in {text:?}"),
            };
            out.push(byte);
            rest = more;
        }
        out
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
        assert_eq!(line(Format::Text, Some(b"k\t1"), Some(b"v\n2")), "k\\t1\tv\\n2\n");
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
        fn text_of_printable_utf8_is_the_utf8(s in "[^\\\\\\p{Cc}\u{61c}\u{200e}\u{200f}\u{202a}-\u{202e}\u{2066}-\u{2069}\u{2028}\u{2029}]*") {
            prop_assert_eq!(text(s.as_bytes()), s);
        }

        #[test]
        fn text_is_safe_and_unambiguous(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let shown = text(&bytes);
            prop_assert!(!shown.chars().any(is_unsafe), "{:?}", shown);
            prop_assert_eq!(unescape(&shown), bytes);
        }
    }
}
