//! A small JSON document model that remembers where every value came from.
//!
//! `serde_json::Value` cannot say on which line a wrongly typed member sits, it
//! silently keeps the last of two duplicate keys, and it has no depth limit of its
//! own that reports a path. Bundle files are user input and every error must name
//! the line, the column and the JSON path, so the bundle layer parses with this
//! module instead:
//!
//! - [`parse`] turns bytes into a [`Node`] tree, rejecting duplicate keys, invalid
//!   UTF-8, lone surrogates, non-finite numbers and nesting deeper than
//!   [`MAX_DEPTH`], each with a [`SyntaxError`] that carries line, column and path.
//! - Objects keep their members in input order ([`Object`]).
//! - Numbers keep the literal text they were written with ([`Number`]).
//! - [`jcs`] writes RFC 8785 canonical bytes; [`go`] writes the compact and
//!   indented forms of Go's `encoding/json`, which the registry objects use.

pub mod go;
pub mod jcs;
mod parse;
mod path;

pub use parse::{parse, SyntaxError, MAX_DEPTH};
pub use path::{Path, Segment};

use std::fmt;

/// A 1-based line and column (counted in characters) in the source text.
///
/// Values built in code rather than parsed have the position `0:0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Line number, starting at 1; 0 when the value was not parsed from text.
    pub line: u32,
    /// Column number in characters, starting at 1.
    pub column: u32,
}

impl Pos {
    /// Whether this position points into parsed text.
    pub fn is_known(self) -> bool {
        self.line > 0
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A JSON number, kept as the literal text it was written with.
///
/// Keeping the text means an integer such as a blob size survives exactly even
/// above 2^53, while [`Number::as_f64`] gives the IEEE-754 value that JCS writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number(String);

impl Number {
    /// The literal as written (validated JSON number grammar).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as an unsigned integer, when the literal is one and it fits.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// The value as a signed integer, when the literal is one and it fits.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    /// The nearest IEEE-754 double. Always finite: the parser refuses overflow.
    pub fn as_f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }

    /// Whether the literal is written as an integer (no fraction, no exponent).
    pub fn is_integer_literal(&self) -> bool {
        !self.0.contains(['.', 'e', 'E'])
    }
}

impl From<u64> for Number {
    fn from(v: u64) -> Self {
        Number(v.to_string())
    }
}

impl From<i64> for Number {
    fn from(v: i64) -> Self {
        Number(v.to_string())
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One member of an [`Object`]: its key, where the key stood, and its value.
#[derive(Debug, Clone)]
pub struct Member {
    /// The member name.
    pub key: String,
    /// Where the key was written.
    pub key_pos: Pos,
    /// The member value.
    pub value: Node,
}

/// A JSON object whose members keep their input order. Keys are unique.
#[derive(Debug, Clone, Default)]
pub struct Object {
    members: Vec<Member>,
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// The members in order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the object has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The value of member `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.members.iter().find(|m| m.key == key).map(|m| &m.value)
    }

    /// Sets member `key`, replacing its value in place or appending it.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Node>) {
        let key = key.into();
        let value = value.into();
        if let Some(m) = self.members.iter_mut().find(|m| m.key == key) {
            m.value = value;
        } else {
            self.members.push(Member {
                key,
                key_pos: Pos::default(),
                value,
            });
        }
    }

    /// Removes member `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let i = self.members.iter().position(|m| m.key == key)?;
        Some(self.members.remove(i).value)
    }

    /// Iterates over `(key, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.members.iter().map(|m| (m.key.as_str(), &m.value))
    }

    pub(crate) fn push_member(&mut self, member: Member) {
        self.members.push(member);
    }
}

impl PartialEq for Object {
    /// Objects are equal when they have the same members, in any order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .members
                .iter()
                .all(|m| other.get(&m.key).is_some_and(|v| *v == m.value))
    }
}

impl<K: Into<String>, V: Into<Node>> FromIterator<(K, V)> for Object {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut o = Object::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, as written.
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Node>),
    /// An object.
    Object(Object),
}

impl Value {
    /// A short name of the value's JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// A value together with the position it was parsed from.
///
/// Equality compares values only, never positions.
#[derive(Debug, Clone)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the value starts in the source text.
    pub pos: Pos,
}

impl Node {
    /// A node built in code, with no source position.
    pub fn new(value: Value) -> Self {
        Node {
            value,
            pos: Pos::default(),
        }
    }

    /// `null`, with no source position.
    pub fn null() -> Self {
        Node::new(Value::Null)
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// Whether the value is what Go's `omitempty` leaves out: `null`, `false`,
    /// `0`, `""`, `[]` or `{}`.
    pub fn is_empty_value(&self) -> bool {
        match &self.value {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == 0.0,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<&Object> {
        match &self.value {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The node at `path` below this one.
    pub fn pointer(&self, path: &Path) -> Option<&Node> {
        let mut node = self;
        for seg in path.segments() {
            node = match (seg, &node.value) {
                (Segment::Key(k), Value::Object(o)) => o.get(k)?,
                (Segment::Index(i), Value::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Converts to a `serde_json::Value` (numbers through their literal text).
    pub fn to_serde(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::from_str(n.as_str()).unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(a) => serde_json::Value::Array(a.iter().map(Node::to_serde).collect()),
            Value::Object(o) => serde_json::Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_owned(), v.to_serde()))
                    .collect(),
            ),
        }
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl From<Value> for Node {
    fn from(v: Value) -> Self {
        Node::new(v)
    }
}

impl From<&str> for Node {
    fn from(s: &str) -> Self {
        Node::new(Value::String(s.to_owned()))
    }
}

impl From<String> for Node {
    fn from(s: String) -> Self {
        Node::new(Value::String(s))
    }
}

impl From<bool> for Node {
    fn from(b: bool) -> Self {
        Node::new(Value::Bool(b))
    }
}

impl From<u64> for Node {
    fn from(n: u64) -> Self {
        Node::new(Value::Number(n.into()))
    }
}

impl From<Object> for Node {
    fn from(o: Object) -> Self {
        Node::new(Value::Object(o))
    }
}

impl From<Vec<Node>> for Node {
    fn from(a: Vec<Node>) -> Self {
        Node::new(Value::Array(a))
    }
}
