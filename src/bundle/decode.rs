//! From a positioned JSON tree to the typed model, collecting every type error
//! (and a warning for every member the model does not know) instead of stopping
//! at the first.

use super::{
    Action, BaseImage, Bundle, BundleError, Credential, Image, InvocationImage, Location,
    Maintainer, Output, Parameter, Problem,
};
use crate::json::{self, Node, Object, Path, Value};
use std::collections::BTreeMap;

/// The largest `bundle.json` accepted, in bytes. Real bundles are a few KiB; the
/// limit keeps a hostile document from taking the memory of a CI runner.
pub const MAX_BUNDLE_SIZE: usize = 16 * 1024 * 1024;

pub(crate) fn parse_document(bytes: &[u8]) -> Result<Node, BundleError> {
    if bytes.len() > MAX_BUNDLE_SIZE {
        return Err(BundleError::TooLarge {
            size: bytes.len(),
            max: MAX_BUNDLE_SIZE,
        });
    }
    Ok(json::parse(bytes)?)
}

/// Decodes the document, returning the model and every problem found.
pub(crate) fn decode(node: &Node) -> (Bundle, Vec<Problem>) {
    let mut d = Decoder::default();
    let bundle = d.bundle(node);
    (bundle, d.problems)
}

const BUNDLE_KEYS: &[&str] = &[
    "schemaVersion",
    "name",
    "version",
    "description",
    "keywords",
    "maintainers",
    "invocationImages",
    "images",
    "actions",
    "parameters",
    "credentials",
    "outputs",
    "definitions",
    "license",
    "requiredExtensions",
    "custom",
];
const BASE_IMAGE_KEYS: &[&str] = &[
    "imageType",
    "image",
    "contentDigest",
    "size",
    "labels",
    "mediaType",
];

#[derive(Default)]
struct Decoder {
    problems: Vec<Problem>,
}

impl Decoder {
    fn type_error(&mut self, node: &Node, path: &Path, expected: &str) {
        let found = match &node.value {
            Value::Number(n) => format!("the number `{n}`"),
            Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
            v => v.type_name().to_owned(),
        };
        self.problems.push(
            Problem::error(path.clone(), format!("expected {expected}, found {found}"))
                .at(node.pos),
        );
    }

    /// The object at `node`, `None` for absent or `null` (Go's zero value).
    fn object<'a>(&mut self, node: Option<&'a Node>, path: &Path) -> Option<&'a Object> {
        let node = node?;
        match &node.value {
            Value::Object(o) => Some(o),
            Value::Null => None,
            _ => {
                self.type_error(node, path, "an object");
                None
            }
        }
    }

    fn string(&mut self, node: Option<&Node>, path: &Path) -> String {
        match node.map(|n| (n, &n.value)) {
            None | Some((_, Value::Null)) => String::new(),
            Some((_, Value::String(s))) => s.clone(),
            Some((n, _)) => {
                self.type_error(n, path, "a string");
                String::new()
            }
        }
    }

    fn boolean(&mut self, node: Option<&Node>, path: &Path) -> bool {
        match node.map(|n| (n, &n.value)) {
            None | Some((_, Value::Null)) => false,
            Some((_, Value::Bool(b))) => *b,
            Some((n, _)) => {
                self.type_error(n, path, "a boolean");
                false
            }
        }
    }

    fn unsigned(&mut self, node: Option<&Node>, path: &Path) -> u64 {
        match node.map(|n| (n, &n.value)) {
            None | Some((_, Value::Null)) => 0,
            Some((n, Value::Number(num))) => {
                if let Some(v) = num.as_u64().filter(|_| num.is_integer_literal()) {
                    return v;
                }
                let why = if num.as_str().starts_with('-') {
                    ": it cannot be negative"
                } else if num.is_integer_literal() {
                    ": it is larger than 18446744073709551615"
                } else {
                    ""
                };
                self.problems.push(
                    Problem::error(
                        path.clone(),
                        format!("expected an unsigned integer, found `{num}`{why}"),
                    )
                    .at(n.pos),
                );
                0
            }
            Some((n, _)) => {
                self.type_error(n, path, "an unsigned integer");
                0
            }
        }
    }

    fn strings(&mut self, node: Option<&Node>, path: &Path) -> Option<Vec<String>> {
        let node = node?;
        match &node.value {
            Value::Null => None,
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| self.string(Some(n), &path.index(i)))
                    .collect(),
            ),
            _ => {
                self.type_error(node, path, "an array of strings");
                None
            }
        }
    }

    fn string_map(&mut self, node: Option<&Node>, path: &Path) -> BTreeMap<String, String> {
        let Some(obj) = self.object(node, path) else {
            return BTreeMap::new();
        };
        obj.iter()
            .map(|(k, v)| (k.to_owned(), self.string(Some(v), &path.key(k))))
            .collect()
    }

    /// Decodes each member of the object at `node` with `f`.
    fn map<T>(
        &mut self,
        node: Option<&Node>,
        path: &Path,
        mut f: impl FnMut(&mut Self, &Node, &Path) -> T,
    ) -> BTreeMap<String, T> {
        let Some(obj) = self.object(node, path) else {
            return BTreeMap::new();
        };
        obj.iter()
            .map(|(k, v)| (k.to_owned(), f(self, v, &path.key(k))))
            .collect()
    }

    /// The members of `obj` not in `known`, each with a warning.
    fn unknown(&mut self, obj: &Object, known: &[&str], path: &Path, what: &str) -> Object {
        let mut out = Object::new();
        for m in obj.members() {
            if !known.contains(&m.key.as_str()) {
                self.problems.push(
                    Problem::warning(
                        path.key(&m.key),
                        format!("unknown member of {what}: kept as it is, but CNAB tools built on cnab-go drop it"),
                    )
                    .at(m.key_pos),
                );
                out.insert(m.key.clone(), m.value.clone());
            }
        }
        out
    }

    fn bundle(&mut self, node: &Node) -> Bundle {
        let root = Path::root();
        let Value::Object(o) = &node.value else {
            self.type_error(node, &root, "a JSON object (the bundle)");
            return Bundle::default();
        };
        let p = |k: &str| root.key(k);
        Bundle {
            schema_version: self.string(o.get("schemaVersion"), &p("schemaVersion")),
            name: self.string(o.get("name"), &p("name")),
            version: self.string(o.get("version"), &p("version")),
            description: self.string(o.get("description"), &p("description")),
            keywords: self.strings(o.get("keywords"), &p("keywords")),
            maintainers: self.list(o.get("maintainers"), &p("maintainers"), Self::maintainer),
            invocation_images: self.list(
                o.get("invocationImages"),
                &p("invocationImages"),
                Self::invocation_image,
            ),
            images: self.map(o.get("images"), &p("images"), Self::image),
            actions: self.map(o.get("actions"), &p("actions"), Self::action),
            parameters: self.map(o.get("parameters"), &p("parameters"), Self::parameter),
            credentials: self.map(o.get("credentials"), &p("credentials"), Self::credential),
            outputs: self.map(o.get("outputs"), &p("outputs"), Self::output),
            definitions: self.map(o.get("definitions"), &p("definitions"), |d, n, path| {
                d.schema(n, path);
                n.clone()
            }),
            license: self.string(o.get("license"), &p("license")),
            required_extensions: self
                .strings(o.get("requiredExtensions"), &p("requiredExtensions"))
                .unwrap_or_default(),
            custom: self.map(o.get("custom"), &p("custom"), |_, n, _| n.clone()),
            unknown: self.unknown(o, BUNDLE_KEYS, &root, "the bundle"),
        }
    }

    fn list<T: Default>(
        &mut self,
        node: Option<&Node>,
        path: &Path,
        mut f: impl FnMut(&mut Self, &Node, &Path) -> T,
    ) -> Option<Vec<T>> {
        let node = node?;
        match &node.value {
            Value::Null => None,
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| f(self, n, &path.index(i)))
                    .collect(),
            ),
            _ => {
                self.type_error(node, path, "an array");
                None
            }
        }
    }

    fn base_image(&mut self, o: &Object, path: &Path) -> BaseImage {
        BaseImage {
            image_type: self.string(o.get("imageType"), &path.key("imageType")),
            image: self.string(o.get("image"), &path.key("image")),
            content_digest: self.string(o.get("contentDigest"), &path.key("contentDigest")),
            size: self.unsigned(o.get("size"), &path.key("size")),
            labels: self.string_map(o.get("labels"), &path.key("labels")),
            media_type: self.string(o.get("mediaType"), &path.key("mediaType")),
        }
    }

    fn invocation_image(&mut self, node: &Node, path: &Path) -> InvocationImage {
        let Some(o) = self.object(Some(node), path) else {
            return InvocationImage::default();
        };
        InvocationImage {
            base: self.base_image(o, path),
            unknown: self.unknown(o, BASE_IMAGE_KEYS, path, "an invocation image"),
        }
    }

    fn image(&mut self, node: &Node, path: &Path) -> Image {
        let Some(o) = self.object(Some(node), path) else {
            return Image::default();
        };
        let mut known = BASE_IMAGE_KEYS.to_vec();
        known.push("description");
        Image {
            base: self.base_image(o, path),
            description: self.string(o.get("description"), &path.key("description")),
            unknown: self.unknown(o, &known, path, "an image"),
        }
    }

    fn maintainer(&mut self, node: &Node, path: &Path) -> Maintainer {
        let Some(o) = self.object(Some(node), path) else {
            return Maintainer::default();
        };
        Maintainer {
            name: self.string(o.get("name"), &path.key("name")),
            email: self.string(o.get("email"), &path.key("email")),
            url: self.string(o.get("url"), &path.key("url")),
            unknown: self.unknown(o, &["name", "email", "url"], path, "a maintainer"),
        }
    }

    fn action(&mut self, node: &Node, path: &Path) -> Action {
        let Some(o) = self.object(Some(node), path) else {
            return Action::default();
        };
        Action {
            modifies: self.boolean(o.get("modifies"), &path.key("modifies")),
            stateless: self.boolean(o.get("stateless"), &path.key("stateless")),
            description: self.string(o.get("description"), &path.key("description")),
            unknown: self.unknown(
                o,
                &["modifies", "stateless", "description"],
                path,
                "an action",
            ),
        }
    }

    fn location(&mut self, node: &Node, path: &Path) -> Option<Location> {
        let o = self.object(Some(node), path)?;
        Some(Location {
            path: self.string(o.get("path"), &path.key("path")),
            env: self.string(o.get("env"), &path.key("env")),
            unknown: self.unknown(o, &["path", "env"], path, "a destination"),
        })
    }

    fn parameter(&mut self, node: &Node, path: &Path) -> Parameter {
        let Some(o) = self.object(Some(node), path) else {
            return Parameter::default();
        };
        Parameter {
            definition: self.string(o.get("definition"), &path.key("definition")),
            apply_to: self
                .strings(o.get("applyTo"), &path.key("applyTo"))
                .unwrap_or_default(),
            description: self.string(o.get("description"), &path.key("description")),
            destination: o
                .get("destination")
                .and_then(|n| self.location(n, &path.key("destination"))),
            required: self.boolean(o.get("required"), &path.key("required")),
            unknown: self.unknown(
                o,
                &[
                    "definition",
                    "applyTo",
                    "description",
                    "destination",
                    "required",
                ],
                path,
                "a parameter",
            ),
        }
    }

    fn credential(&mut self, node: &Node, path: &Path) -> Credential {
        let Some(o) = self.object(Some(node), path) else {
            return Credential::default();
        };
        Credential {
            path: self.string(o.get("path"), &path.key("path")),
            env: self.string(o.get("env"), &path.key("env")),
            description: self.string(o.get("description"), &path.key("description")),
            required: self.boolean(o.get("required"), &path.key("required")),
            apply_to: self
                .strings(o.get("applyTo"), &path.key("applyTo"))
                .unwrap_or_default(),
            unknown: self.unknown(
                o,
                &["path", "env", "description", "required", "applyTo"],
                path,
                "a credential",
            ),
        }
    }

    fn output(&mut self, node: &Node, path: &Path) -> Output {
        let Some(o) = self.object(Some(node), path) else {
            return Output::default();
        };
        Output {
            definition: self.string(o.get("definition"), &path.key("definition")),
            apply_to: self
                .strings(o.get("applyTo"), &path.key("applyTo"))
                .unwrap_or_default(),
            description: self.string(o.get("description"), &path.key("description")),
            path: self.string(o.get("path"), &path.key("path")),
            unknown: self.unknown(
                o,
                &["definition", "applyTo", "description", "path"],
                path,
                "an output",
            ),
        }
    }

    /// Type-checks the keywords of a JSON Schema that cnab-go decodes into typed
    /// fields; the schema itself is kept as JSON.
    fn schema(&mut self, node: &Node, path: &Path) {
        use super::canonical::schema_keywords as kw;
        let Some(o) = self.object(Some(node), path) else {
            return;
        };
        for (k, v) in o.iter() {
            let p = path.key(k);
            if v.is_null() {
                continue;
            }
            if kw::STRINGS.contains(&k) {
                self.string(Some(v), &p);
            } else if kw::SCHEMA_MAPS.contains(&k) {
                self.map(Some(v), &p, Self::schema);
            } else if kw::SCHEMA_LISTS.contains(&k) {
                self.list(Some(v), &p, Self::schema);
            } else if kw::SCHEMAS.contains(&k) {
                self.schema(v, &p);
            } else if kw::NUMBERS.contains(&k) {
                if !matches!(v.value, Value::Number(_)) {
                    self.type_error(v, &p, "a number");
                }
            } else if kw::BOOLS.contains(&k) {
                self.boolean(Some(v), &p);
            } else if k == "required" {
                self.strings(Some(v), &p);
            } else if k == "enum" || k == "examples" {
                self.list(Some(v), &p, |_, _, _| ());
            } else if k == "dependencies" {
                self.object(Some(v), &p);
            }
        }
    }
}
