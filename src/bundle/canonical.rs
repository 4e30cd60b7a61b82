//! The bundle in cnab-go's shape (wire-format §2.2), before JCS.
//!
//! Each object is built from its typed fields by the rule cnab-go's struct tags
//! give: some fields are always written, the others are dropped when empty. The
//! members the model does not know are then added unchanged.

use super::{
    Action, BaseImage, Bundle, Credential, Image, InvocationImage, Location, Maintainer, Output,
    Parameter,
};
use crate::json::{Node, Object, Value};
use std::collections::BTreeMap;

/// The JSON Schema keywords that cnab-go's `definition.Schema` has fields for.
pub(crate) mod schema_keywords {
    /// String keywords, dropped when `""`.
    pub const STRINGS: &[&str] = &[
        "$schema",
        "$comment",
        "$id",
        "$ref",
        "contentEncoding",
        "contentMediaType",
        "description",
        "format",
        "title",
    ];
    /// Maps of sub-schemas, recursed into, dropped when empty.
    pub const SCHEMA_MAPS: &[&str] = &["properties", "patternProperties", "definitions"];
    /// Lists of sub-schemas, recursed into, dropped when empty.
    pub const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf"];
    /// Other collections, copied, dropped when empty.
    pub const OTHER_COLLECTIONS: &[&str] = &["enum", "examples", "required", "dependencies"];
    /// Single sub-schemas, recursed into, dropped when null.
    pub const SCHEMAS: &[&str] = &["not", "if", "then", "else", "contains", "propertyNames"];
    /// Numeric keywords, dropped when null.
    pub const NUMBERS: &[&str] = &[
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maximum",
        "maxLength",
        "minItems",
        "minLength",
        "minProperties",
        "minimum",
        "multipleOf",
    ];
    /// Boolean keywords, dropped when null.
    pub const BOOLS: &[&str] = &["readOnly", "uniqueItems", "writeOnly"];
    /// Keywords copied as they are, dropped when null.
    pub const OPAQUE: &[&str] = &[
        "additionalItems",
        "additionalProperties",
        "const",
        "default",
        "items",
        "pattern",
        "type",
    ];
}

/// Builds an object field by field with cnab-go's two rules.
#[derive(Default)]
struct Builder(Object);

impl Builder {
    /// A field without `omitempty`: always written.
    fn always(mut self, key: &str, value: impl Into<Node>) -> Self {
        self.0.insert(key, value);
        self
    }

    /// A field with `omitempty`: written unless empty.
    fn unless_empty(mut self, key: &str, value: impl Into<Node>) -> Self {
        let v = value.into();
        if !v.is_empty_value() {
            self.0.insert(key, v);
        }
        self
    }

    /// Members the model does not know, unchanged.
    fn unknown(mut self, unknown: &Object) -> Node {
        for (k, v) in unknown.iter() {
            self.0.insert(k, v.clone());
        }
        Node::from(self.0)
    }
}

fn strings(v: &[String]) -> Node {
    Node::from(v.iter().map(|s| Node::from(s.as_str())).collect::<Vec<_>>())
}

fn map<T>(m: &BTreeMap<String, T>, f: impl Fn(&T) -> Node) -> Node {
    Node::from(
        m.iter()
            .map(|(k, v)| (k.as_str(), f(v)))
            .collect::<Object>(),
    )
}

pub(super) fn bundle(b: &Bundle) -> Node {
    let invocation = match &b.invocation_images {
        None => Node::null(),
        Some(list) => Node::from(list.iter().map(invocation_image).collect::<Vec<_>>()),
    };
    Builder::default()
        .always("schemaVersion", b.schema_version.as_str())
        .always("name", b.name.as_str())
        .always("version", b.version.as_str())
        .always("description", b.description.as_str())
        .unless_empty(
            "keywords",
            strings(b.keywords.as_deref().unwrap_or_default()),
        )
        .unless_empty(
            "maintainers",
            Node::from(
                b.maintainers
                    .iter()
                    .flatten()
                    .map(maintainer)
                    .collect::<Vec<_>>(),
            ),
        )
        .always("invocationImages", invocation)
        .unless_empty("images", map(&b.images, image))
        .unless_empty("actions", map(&b.actions, action))
        .unless_empty("parameters", map(&b.parameters, parameter))
        .unless_empty("credentials", map(&b.credentials, credential))
        .unless_empty("outputs", map(&b.outputs, output))
        .unless_empty("definitions", map(&b.definitions, schema))
        .unless_empty("license", b.license.as_str())
        .unless_empty("requiredExtensions", strings(&b.required_extensions))
        .unless_empty("custom", map(&b.custom, Clone::clone))
        .unknown(&b.unknown)
}

fn base_image(builder: Builder, i: &BaseImage) -> Builder {
    builder
        .always("imageType", i.image_type.as_str())
        .always("image", i.image.as_str())
        .unless_empty("contentDigest", i.content_digest.as_str())
        .unless_empty("size", i.size)
        .unless_empty("labels", map(&i.labels, |s| Node::from(s.as_str())))
        .unless_empty("mediaType", i.media_type.as_str())
}

fn invocation_image(i: &InvocationImage) -> Node {
    base_image(Builder::default(), &i.base).unknown(&i.unknown)
}

fn image(i: &Image) -> Node {
    base_image(Builder::default(), &i.base)
        .always("description", i.description.as_str())
        .unknown(&i.unknown)
}

fn maintainer(m: &Maintainer) -> Node {
    Builder::default()
        .always("name", m.name.as_str())
        .unless_empty("email", m.email.as_str())
        .unless_empty("url", m.url.as_str())
        .unknown(&m.unknown)
}

fn action(a: &Action) -> Node {
    Builder::default()
        .unless_empty("modifies", a.modifies)
        .unless_empty("stateless", a.stateless)
        .unless_empty("description", a.description.as_str())
        .unknown(&a.unknown)
}

fn location(l: &Location) -> Node {
    Builder::default()
        .unless_empty("path", l.path.as_str())
        .unless_empty("env", l.env.as_str())
        .unknown(&l.unknown)
}

fn parameter(p: &Parameter) -> Node {
    Builder::default()
        .always("definition", p.definition.as_str())
        .unless_empty("applyTo", strings(&p.apply_to))
        .unless_empty("description", p.description.as_str())
        .always(
            "destination",
            p.destination.as_ref().map_or_else(Node::null, location),
        )
        .unless_empty("required", p.required)
        .unknown(&p.unknown)
}

fn credential(c: &Credential) -> Node {
    Builder::default()
        .unless_empty("path", c.path.as_str())
        .unless_empty("env", c.env.as_str())
        .unless_empty("description", c.description.as_str())
        .unless_empty("required", c.required)
        .unless_empty("applyTo", strings(&c.apply_to))
        .unknown(&c.unknown)
}

fn output(o: &Output) -> Node {
    Builder::default()
        .always("definition", o.definition.as_str())
        .unless_empty("applyTo", strings(&o.apply_to))
        .unless_empty("description", o.description.as_str())
        .always("path", o.path.as_str())
        .unknown(&o.unknown)
}

/// A JSON Schema in cnab-go's shape: known keywords dropped by their rule, sub-
/// schemas normalised recursively, unknown keywords kept unchanged.
fn schema(node: &Node) -> Node {
    use schema_keywords as kw;
    let Value::Object(o) = &node.value else {
        return node.clone();
    };
    let mut out = Object::new();
    for (k, v) in o.iter() {
        let keep = if kw::STRINGS.contains(&k) {
            !v.is_null() && v.as_str() != Some("")
        } else if kw::SCHEMA_MAPS.contains(&k)
            || kw::SCHEMA_LISTS.contains(&k)
            || kw::OTHER_COLLECTIONS.contains(&k)
        {
            !v.is_empty_value()
                || matches!(
                    v.value,
                    Value::Bool(_) | Value::Number(_) | Value::String(_)
                )
        } else if kw::SCHEMAS.contains(&k)
            || kw::NUMBERS.contains(&k)
            || kw::BOOLS.contains(&k)
            || kw::OPAQUE.contains(&k)
        {
            !v.is_null()
        } else {
            true // unknown keyword: kept unchanged
        };
        if !keep {
            continue;
        }
        let value = if kw::SCHEMA_MAPS.contains(&k) {
            match &v.value {
                Value::Object(m) => {
                    Node::from(m.iter().map(|(n, s)| (n, schema(s))).collect::<Object>())
                }
                _ => v.clone(),
            }
        } else if kw::SCHEMA_LISTS.contains(&k) {
            match &v.value {
                Value::Array(items) => Node::from(items.iter().map(schema).collect::<Vec<_>>()),
                _ => v.clone(),
            }
        } else if kw::SCHEMAS.contains(&k) {
            schema(v)
        } else {
            v.clone()
        };
        out.insert(k, value);
    }
    Node::from(out)
}
