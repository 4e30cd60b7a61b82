//! A strict RFC 8259 parser producing positioned [`Node`]s.

use super::{Member, Node, Number, Object, Path, Pos, Segment, Value};
use std::fmt;

/// How deeply arrays and objects may nest before the parser refuses the input.
///
/// Real bundles nest a dozen levels at most; the limit keeps hostile input from
/// exhausting the stack of the recursive parser.
pub const MAX_DEPTH: usize = 256;

/// Why a document is not valid JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// What is wrong.
    pub message: String,
    /// Where in the text.
    pub pos: Pos,
    /// The value being read when the error was found.
    pub path: Path,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            write!(f, "{} ({})", self.message, self.pos)
        } else {
            write!(f, "{}: {} ({})", self.path, self.message, self.pos)
        }
    }
}

impl std::error::Error for SyntaxError {}

/// Parses one JSON document. Whitespace may surround it; nothing else may.
///
/// # Errors
/// A [`SyntaxError`] with the line, column and JSON path of the first fault.
pub fn parse(bytes: &[u8]) -> Result<Node, SyntaxError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // The prefix is valid UTF-8 by construction.
            let prefix = std::str::from_utf8(good).unwrap_or_default();
            let mut p = Parser::new(prefix);
            p.skip_to_end();
            return Err(p.error_here(format!(
                "invalid UTF-8 (byte 0x{:02x} at offset {})",
                bytes[e.valid_up_to()],
                e.valid_up_to()
            )));
        }
    };
    let mut p = Parser::new(text);
    if text.starts_with('\u{feff}') {
        return Err(p.error_here("a byte order mark is not allowed before JSON text"));
    }
    p.skip_ws();
    if p.at_end() {
        return Err(p.error_here("empty document: expected a JSON value"));
    }
    let node = p.value(0)?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error_here(format!(
            "unexpected {} after the end of the JSON value",
            p.describe_next()
        )));
    }
    Ok(node)
}

struct Parser<'a> {
    src: &'a [u8],
    i: usize,
    line: u32,
    col: u32,
    path: Path,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            src: text.as_bytes(),
            i: 0,
            line: 1,
            col: 1,
            path: Path::root(),
        }
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.col,
        }
    }

    fn at_end(&self) -> bool {
        self.i >= self.src.len()
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.i).copied()
    }

    fn bump(&mut self) {
        if let Some(&b) = self.src.get(self.i) {
            if b == b'\n' {
                self.line += 1;
                self.col = 1;
            } else if b & 0xC0 != 0x80 {
                self.col += 1;
            }
            self.i += 1;
        }
    }

    fn skip_to_end(&mut self) {
        while !self.at_end() {
            self.bump();
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.bump();
        }
    }

    fn error_at(&self, pos: Pos, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            message: message.into(),
            pos,
            path: self.path.clone(),
        }
    }

    fn error_here(&self, message: impl Into<String>) -> SyntaxError {
        self.error_at(self.pos(), message)
    }

    fn describe_next(&self) -> String {
        match self.rest_str().chars().next() {
            None => "end of input".to_owned(),
            Some(c) if c.is_control() => format!("character U+{:04X}", c as u32),
            Some(c) => format!("character `{c}`"),
        }
    }

    fn rest_str(&self) -> &str {
        std::str::from_utf8(&self.src[self.i..]).unwrap_or("")
    }

    fn expect_literal(&mut self, word: &str, value: Value) -> Result<Node, SyntaxError> {
        let pos = self.pos();
        if self.src[self.i..].starts_with(word.as_bytes()) {
            for _ in 0..word.len() {
                self.bump();
            }
            Ok(Node { value, pos })
        } else {
            Err(self.error_here(format!(
                "unexpected {}: expected a JSON value",
                self.describe_next()
            )))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => {
                let pos = self.pos();
                let s = self.string()?;
                Ok(Node {
                    value: Value::String(s),
                    pos,
                })
            }
            Some(b't') => self.expect_literal("true", Value::Bool(true)),
            Some(b'f') => self.expect_literal("false", Value::Bool(false)),
            Some(b'n') => self.expect_literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            None => Err(self.error_here("unexpected end of input: expected a JSON value")),
            Some(_) => Err(self.error_here(format!(
                "unexpected {}: expected a JSON value",
                self.describe_next()
            ))),
        }
    }

    fn check_depth(&self, depth: usize) -> Result<(), SyntaxError> {
        if depth > MAX_DEPTH {
            Err(self.error_here(format!(
                "nesting deeper than {MAX_DEPTH} levels is not accepted"
            )))
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        self.check_depth(depth)?;
        let pos = self.pos();
        self.bump(); // {
        let mut obj = Object::new();
        let mut seen = std::collections::HashSet::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.bump();
            return Ok(Node {
                value: Value::Object(obj),
                pos,
            });
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error_here(format!(
                    "unexpected {}: expected a member name in double quotes",
                    self.describe_next()
                )));
            }
            let key_pos = self.pos();
            let key = self.string()?;
            if !seen.insert(key.clone()) {
                self.path.push(Segment::Key(key.clone()));
                return Err(self.error_at(key_pos, format!("duplicate key `{key}`")));
            }
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error_here(format!(
                    "unexpected {}: expected `:` after member name",
                    self.describe_next()
                )));
            }
            self.bump();
            self.skip_ws();
            self.path.push(Segment::Key(key.clone()));
            let value = self.value(depth)?;
            self.path.pop();
            obj.push_member(Member {
                key,
                key_pos,
                value,
            });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.bump(),
                Some(b'}') => {
                    self.bump();
                    return Ok(Node {
                        value: Value::Object(obj),
                        pos,
                    });
                }
                _ => {
                    return Err(self.error_here(format!(
                        "unexpected {}: expected `,` or `}}` after object member",
                        self.describe_next()
                    )))
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        self.check_depth(depth)?;
        let pos = self.pos();
        self.bump(); // [
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.bump();
            return Ok(Node {
                value: Value::Array(items),
                pos,
            });
        }
        loop {
            self.skip_ws();
            self.path.push(Segment::Index(items.len()));
            let v = self.value(depth)?;
            self.path.pop();
            items.push(v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.bump(),
                Some(b']') => {
                    self.bump();
                    return Ok(Node {
                        value: Value::Array(items),
                        pos,
                    });
                }
                _ => {
                    return Err(self.error_here(format!(
                        "unexpected {}: expected `,` or `]` after array element",
                        self.describe_next()
                    )))
                }
            }
        }
    }

    fn number(&mut self) -> Result<Node, SyntaxError> {
        let pos = self.pos();
        let start = self.i;
        let bad = |p: &Self| {
            p.error_at(
                pos,
                format!(
                    "invalid number `{}`",
                    String::from_utf8_lossy(&p.src[start..=p.i.min(p.src.len() - 1)])
                ),
            )
        };
        if self.peek() == Some(b'-') {
            self.bump();
        }
        match self.peek() {
            Some(b'0') => {
                self.bump();
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(bad(self));
                }
            }
            Some(b'1'..=b'9') => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.bump();
                }
            }
            _ => return Err(bad(self)),
        }
        if self.peek() == Some(b'.') {
            self.bump();
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(bad(self));
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.bump();
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.bump();
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.bump();
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(bad(self));
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.bump();
            }
        }
        let text = std::str::from_utf8(&self.src[start..self.i]).unwrap_or("0");
        let n = Number(text.to_owned());
        if !n.as_f64().is_finite() {
            return Err(self.error_at(
                pos,
                format!("number `{text}` is out of the range of a 64-bit float"),
            ));
        }
        Ok(Node {
            value: Value::Number(n),
            pos,
        })
    }

    fn hex4(&mut self) -> Result<u16, SyntaxError> {
        let mut v: u16 = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => {
                    return Err(
                        self.error_here("invalid \\u escape: expected four hexadecimal digits")
                    )
                }
            };
            v = v * 16 + u16::from(d);
            self.bump();
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let open = self.pos();
        self.bump(); // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.i;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.bump();
            }
            out.push_str(std::str::from_utf8(&self.src[run_start..self.i]).unwrap_or(""));
            match self.peek() {
                None => return Err(self.error_at(open, "unterminated string")),
                Some(b'"') => {
                    self.bump();
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc_pos = self.pos();
                    self.bump();
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.bump();
                            let hi = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                if !self.src[self.i..].starts_with(b"\\u") {
                                    return Err(self.error_at(
                                        esc_pos,
                                        format!("lone surrogate \\u{hi:04x} in string"),
                                    ));
                                }
                                self.bump();
                                self.bump();
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.error_at(
                                        esc_pos,
                                        format!("lone surrogate \\u{hi:04x} in string"),
                                    ));
                                }
                                let cp = 0x10000
                                    + ((u32::from(hi) - 0xD800) << 10)
                                    + (u32::from(lo) - 0xDC00);
                                char::from_u32(cp)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(self.error_at(
                                    esc_pos,
                                    format!("lone surrogate \\u{hi:04x} in string"),
                                ));
                            } else {
                                char::from_u32(u32::from(hi))
                            };
                            out.push(c.unwrap_or('\u{fffd}'));
                            continue;
                        }
                        _ => {
                            return Err(self.error_at(
                                esc_pos,
                                format!("invalid escape `\\{}` in string", self.describe_next()),
                            ))
                        }
                    };
                    self.bump();
                    out.push(c);
                }
                Some(b) => {
                    return Err(self.error_here(format!(
                        "control character U+{b:04X} must be escaped in a string"
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> SyntaxError {
        parse(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_every_kind_of_value_with_positions() {
        let n =
            parse(b"{\n  \"a\": [1, -2.5e3, true, null],\n  \"b\": \"x\\u00e9\\ud83d\\ude00\"\n}")
                .unwrap();
        let o = n.as_object().unwrap();
        let a = o.get("a").unwrap();
        assert_eq!(a.pos, Pos { line: 2, column: 8 });
        let items = a.as_array().unwrap();
        assert_eq!(items.len(), 4);
        match &items[1].value {
            Value::Number(n) => assert_eq!(n.as_str(), "-2.5e3"),
            v => panic!("{v:?}"),
        }
        assert_eq!(o.get("b").unwrap().as_str(), Some("xé😀"));
    }

    #[test]
    fn duplicate_key_names_line_column_and_path() {
        let e = err("{\"images\": {\"a\": {}, \n \"a\": {}}}");
        assert_eq!(e.message, "duplicate key `a`");
        assert_eq!(e.pos, Pos { line: 2, column: 2 });
        assert_eq!(e.path.to_string(), "images.a");
    }

    #[test]
    fn syntax_errors_are_positioned() {
        let e = err("{\"a\": [1, 2,]}");
        assert_eq!(
            e.pos,
            Pos {
                line: 1,
                column: 13
            }
        );
        assert_eq!(e.path.to_string(), "a[2]");
        assert!(e.message.contains("expected a JSON value"), "{e}");
        assert!(err("{\"a\": 1").message.contains("expected `,` or `}`"));
        assert!(err("").message.contains("empty document"));
        assert!(err("[1] x").message.contains("after the end"));
        assert!(err("\"abc").message.contains("unterminated"));
        assert!(
            err("01").message.contains("after the end")
                || err("01").message.contains("invalid number")
        );
        assert!(err("[1.]").message.contains("invalid number"));
        assert!(err("\"\\x\"").message.contains("invalid escape"));
        assert!(err("\"a\nb\"").message.contains("control character"));
        assert!(err("\"\\ud800\"").message.contains("lone surrogate"));
        assert!(err("\"\\udc00x\"").message.contains("lone surrogate"));
        assert!(err("1e400").message.contains("out of the range"));
        assert!(err("\u{feff}{}").message.contains("byte order mark"));
        assert!(err("tru").message.contains("expected a JSON value"));
    }

    #[test]
    fn invalid_utf8_is_reported_with_position() {
        let e = parse(b"{\"a\":\n \"\xff\"}").unwrap_err();
        assert!(e.message.contains("invalid UTF-8"), "{e}");
        assert_eq!(e.pos, Pos { line: 2, column: 3 });
    }

    #[test]
    fn deep_nesting_is_refused_before_the_stack_runs_out() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let e = err(&deep);
        assert!(e.message.contains("nesting deeper than 256"), "{e}");
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let e = err("[\"é€😀\", x]");
        assert_eq!(e.pos, Pos { line: 1, column: 9 });
    }
}
