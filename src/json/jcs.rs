//! RFC 8785 JSON Canonicalization Scheme (JCS).
//!
//! - no whitespace;
//! - object members sorted by their keys as UTF-16 code-unit sequences;
//! - every number is written as an IEEE-754 double the way ECMAScript's
//!   `Number.prototype.toString` writes it;
//! - strings use the short escapes for `\b \f \n \r \t \" \\`, `\u00xx` (lower
//!   case) for the other control characters, and raw UTF-8 for everything else.

use super::{Node, Value};
use std::cmp::Ordering;
use std::fmt::Write as _;

/// The canonical bytes of `node`.
pub fn to_vec(node: &Node) -> Vec<u8> {
    let mut out = String::new();
    write_value(&mut out, node);
    out.into_bytes()
}

fn write_value(out: &mut String, node: &Node) {
    match &node.value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format_number(n.as_f64())),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(obj) => {
            let mut members: Vec<(&str, &Node)> = obj.iter().collect();
            members.sort_by(|a, b| utf16_cmp(a.0, b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

/// Compares two strings by their UTF-16 code units, as JCS orders keys.
pub fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Writes `s` as a JCS string literal.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats a finite double as ECMAScript's `Number.prototype.toString` does.
///
/// The digits come from `ryu-js`, a port of Ryu that follows ECMAScript exactly,
/// including its tie rule: when two shortest digit strings are equally near the
/// value, the even one wins (`1424953923781206.25` → `1424953923781206.2`).
/// Rust's own shortest formatting breaks that tie the other way.
pub fn format_number(v: f64) -> String {
    if v == 0.0 {
        return "0".to_owned(); // also -0
    }
    ryu_js::Buffer::new().format_finite(v).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn canon(s: &str) -> String {
        String::from_utf8(to_vec(&parse(s.as_bytes()).unwrap())).unwrap()
    }

    #[test]
    fn numbers_follow_ecmascript() {
        // RFC 8785 appendix B, by IEEE-754 bit pattern.
        let cases: &[(u64, &str)] = &[
            (0x0000_0000_0000_0000, "0"),
            (0x8000_0000_0000_0000, "0"),
            (0x0000_0000_0000_0001, "5e-324"),
            (0x8000_0000_0000_0001, "-5e-324"),
            (0x7fef_ffff_ffff_ffff, "1.7976931348623157e+308"),
            (0xffef_ffff_ffff_ffff, "-1.7976931348623157e+308"),
            (0x4340_0000_0000_0000, "9007199254740992"),
            (0xc340_0000_0000_0000, "-9007199254740992"),
            (0x4430_0000_0000_0000, "295147905179352830000"),
            (0x44b5_2d02_c7e1_4af5, "9.999999999999997e+22"),
            (0x44b5_2d02_c7e1_4af6, "1e+23"),
            (0x44b5_2d02_c7e1_4af7, "1.0000000000000001e+23"),
            (0x444b_1ae4_d6e2_ef4e, "999999999999999700000"),
            (0x444b_1ae4_d6e2_ef4f, "999999999999999900000"),
            (0x444b_1ae4_d6e2_ef50, "1e+21"),
            (0x3eb0_c6f7_a0b5_ed8c, "9.999999999999997e-7"),
            (0x3eb0_c6f7_a0b5_ed8d, "0.000001"),
            (0x41b3_de43_5555_5553, "333333333.3333332"),
            (0x41b3_de43_5555_5554, "333333333.33333325"),
            (0x41b3_de43_5555_5555, "333333333.3333333"),
            (0x41b3_de43_5555_5556, "333333333.3333334"),
            (0x41b3_de43_5555_5557, "333333333.33333343"),
            (0xbecb_f647_612f_3696, "-0.0000033333333333333333"),
            (0x4314_3ff3_c1cb_0959, "1424953923781206.2"),
        ];
        for &(bits, want) in cases {
            assert_eq!(format_number(f64::from_bits(bits)), want, "bits {bits:#x}");
        }
    }

    #[test]
    fn number_literals_are_rewritten() {
        assert_eq!(
            canon("[1.0, 1e21, 1e-7, -0, 4.50, 2e-3, 1E30, 100]"),
            "[1,1e+21,1e-7,0,4.5,0.002,1e+30,100]"
        );
        // Integers above 2^53 go through a double, as in every JCS implementation.
        assert_eq!(canon("9007199254740993"), "9007199254740992");
        assert_eq!(canon("0.000001"), "0.000001");
        assert_eq!(canon("0.0000001"), "1e-7");
        assert_eq!(canon("123456789012345678901234"), "1.2345678901234569e+23");
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+1F600 is D83D DE00 in UTF-16 and sorts before U+E000, although its
        // UTF-8 bytes sort after.
        let s =
            canon("{\"\u{e000}\":1,\"\u{1f600}\":2,\"b\":3,\"a\":4,\"\":5,\"aa\":6,\"\u{80}\":7}");
        assert_eq!(
            s,
            "{\"\":5,\"a\":4,\"aa\":6,\"b\":3,\"\u{80}\":7,\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
    }

    #[test]
    fn strings_use_the_jcs_escapes() {
        let s = canon(r#""\b\f\n\r\t\"\\\/\u0000\u001f\u007f<>&\u2028\u2029é😀""#);
        assert_eq!(
            s,
            "\"\\b\\f\\n\\r\\t\\\"\\\\/\\u0000\\u001f\u{7f}<>&\u{2028}\u{2029}é😀\""
        );
    }

    #[test]
    fn whitespace_and_nesting() {
        assert_eq!(
            canon(" { \"b\" : [ 1 , { \"d\":null,\"c\":true } ], \"a\": {} } "),
            "{\"a\":{},\"b\":[1,{\"c\":true,\"d\":null}]}"
        );
    }
}
