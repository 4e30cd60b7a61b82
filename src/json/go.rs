//! The output of Go's `encoding/json`, which cnab-to-oci uses for the objects it
//! pushes (the config manifest, the bundle index, the annotations that hold JSON).
//!
//! Members are written in the order the [`Object`](super::Object) holds them, so
//! callers build objects in the order Go's struct fields give. Strings escape
//! `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026`, and U+2028/U+2029, as Go does.
//! Numbers are written as their literal text (the objects built here hold only
//! integers).

use super::{Node, Value};
use std::fmt::Write as _;

/// Compact form, like `json.Marshal`.
pub fn to_vec(node: &Node) -> Vec<u8> {
    let mut out = String::new();
    write_value(&mut out, node, None, 0);
    out.into_bytes()
}

/// Indented form, like `json.MarshalIndent(v, "", indent)`.
pub fn to_vec_indent(node: &Node, indent: &str) -> Vec<u8> {
    let mut out = String::new();
    write_value(&mut out, node, Some(indent), 0);
    out.into_bytes()
}

fn newline(out: &mut String, indent: Option<&str>, level: usize) {
    if let Some(ind) = indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(ind);
        }
    }
}

fn write_value(out: &mut String, node: &Node, indent: Option<&str>, level: usize) {
    match &node.value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(n.as_str()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_value(out, item, indent, level + 1);
            }
            newline(out, indent, level);
            out.push(']');
        }
        Value::Object(obj) => {
            if obj.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, v)) in obj.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_string(out, k);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, v, indent, level + 1);
            }
            newline(out, indent, level);
            out.push('}');
        }
    }
}

/// Writes `s` as Go's `encoding/json` writes a string.
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
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a Go JSON string literal.
pub fn string_literal(s: &str) -> String {
    let mut out = String::new();
    write_string(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse, Object};

    #[test]
    fn escapes_like_go() {
        assert_eq!(
            string_literal("a<b>&c\u{2028}\u{2029}\n\t\u{1}\u{8}\u{c}\"\\é"),
            r#""a\u003cb\u003e\u0026c\u2028\u2029\n\t\u0001\b\f\"\\é""#
        );
    }

    #[test]
    fn keeps_member_order_and_indents_like_marshal_indent() {
        let mut o = Object::new();
        o.insert("z", 1u64);
        o.insert("a", Node::from(vec![Node::from("x")]));
        o.insert("e", Node::from(Object::new()));
        let n = Node::from(o);
        assert_eq!(
            String::from_utf8(to_vec(&n)).unwrap(),
            r#"{"z":1,"a":["x"],"e":{}}"#
        );
        assert_eq!(
            String::from_utf8(to_vec_indent(&n, "   ")).unwrap(),
            "{\n   \"z\": 1,\n   \"a\": [\n      \"x\"\n   ],\n   \"e\": {}\n}"
        );
        let parsed = parse(br#"{"b":null,"a":true}"#).unwrap();
        assert_eq!(to_vec(&parsed), br#"{"b":null,"a":true}"#);
    }
}
