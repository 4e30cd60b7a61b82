//! The semantic checks of `cnab-oci validate`.

use super::{decode, semver::is_semver, BaseImage, Bundle, BundleError, Problem, Severity};
use crate::digest::Digest;
use crate::json::{Node, Path};
use crate::oci::media_type;
use crate::reference::Reference;
use std::collections::HashSet;

/// Where CNAB runtimes collect outputs. Parameters and credentials must not be
/// written below it, or they would be collected as outputs.
pub const OUTPUTS_DIR: &str = "/cnab/app/outputs";

/// The outcome of validating a bundle document.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every problem, errors first, each group in document order.
    pub problems: Vec<Problem>,
    /// The bundle, when the document was JSON of the right types.
    pub bundle: Option<Bundle>,
}

impl Report {
    /// Whether no error was found (warnings allowed).
    pub fn is_valid(&self) -> bool {
        !self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }
}

/// Parses and validates a `bundle.json` document, reporting every problem at
/// once, each with its JSON path and its line and column.
///
/// Errors: invalid JSON (one problem, as the parser cannot go on), wrong member
/// types, and these checks:
/// - `schemaVersion`, `name` and `version` are present, and there is at least one
///   invocation image;
/// - `version` is SemVer 2 and not `latest`; `schemaVersion` is SemVer 2, with or
///   without a leading `v`, or the schema's `v1` (a shortened `v1.0` is a
///   warning, as cnab-go accepts it);
/// - every image has an `image` that is a valid reference, an `imageType` of
///   `docker`, `oci` or empty, a `mediaType` that is one of the four manifest
///   types or empty, and a `contentDigest` that is a valid digest or empty;
/// - parameters name an existing definition and have a destination with a path
///   or an env; credentials have a path or an env; neither writes below
///   `/cnab/app/outputs`;
/// - outputs name an existing definition and have an absolute, clean path;
/// - `requiredExtensions` are unique and each present in `custom`;
/// - maintainers have a name.
///
/// Warnings: members the model does not know (kept, never an error), and image
/// references with neither tag nor digest.
pub fn validate_bytes(bytes: &[u8]) -> Report {
    let node = match decode::parse_document(bytes) {
        Ok(n) => n,
        Err(BundleError::Syntax(e)) => {
            return Report {
                problems: vec![Problem::error(
                    e.path.clone(),
                    format!("invalid JSON: {}", e.message),
                )
                .at(e.pos)],
                bundle: None,
            }
        }
        Err(e) => {
            return Report {
                problems: vec![Problem::error(Path::root(), e.to_string())],
                bundle: None,
            }
        }
    };
    let (bundle, mut problems) = decode::decode(&node);
    let typed = !problems.iter().any(|p| p.severity == Severity::Error);
    // A member of the wrong type was decoded as empty; do not also call it missing.
    let mistyped: HashSet<Path> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.path.clone())
        .collect();
    problems.extend(
        check(&bundle)
            .into_iter()
            .filter(|p| !mistyped.contains(&p.path))
            .map(|p| locate(p, &node)),
    );
    problems.sort_by_key(|p| (p.severity, p.pos.unwrap_or_default()));
    Report {
        problems,
        bundle: typed.then_some(bundle),
    }
}

/// Attaches the position of the nearest existing node on the problem's path.
fn locate(p: Problem, root: &Node) -> Problem {
    if p.pos.is_some() {
        return p;
    }
    let segs = p.path.segments();
    for n in (0..=segs.len()).rev() {
        let mut prefix = Path::root();
        for s in &segs[..n] {
            match s {
                crate::json::Segment::Key(k) => prefix = prefix.key(k),
                crate::json::Segment::Index(i) => prefix = prefix.index(*i),
            }
        }
        if let Some(node) = root.pointer(&prefix) {
            let pos = node.pos;
            return p.at(pos);
        }
    }
    p
}

/// What is wrong with `schemaVersion`, if anything.
///
/// The spec's bundle schema gives it no pattern (cnab-spec
/// `schema/bundle.schema.json`, `properties.schemaVersion`: `"type":
/// "string"`, "This should always be the string 'v1' for this schema
/// version"), and `101-bundle-json.md` says it "is to be referenced as `v1`
/// or `v1.0.0`". cnab-go reads it with a loose SemVer parser (Masterminds'
/// `semver.NewVersion`), which also takes `v1.0`. So: SemVer 2, with or
/// without a leading `v`, and the schema's own `v1` pass; a shortened
/// `MAJOR` or `MAJOR.MINOR` (`v1.0`, `v2`) passes with a warning; anything
/// else is an error. (`version` stays strict SemVer 2.)
fn schema_version_problem(v: &str) -> Option<Problem> {
    let key = Path::root().key("schemaVersion");
    if v.is_empty() {
        return Some(Problem::error(
            key,
            "required member is missing or empty (for example `v1.0.0`)",
        ));
    }
    let bare = v.strip_prefix('v').unwrap_or(v);
    if v == "v1" || is_semver(bare) {
        return None;
    }
    // Pad a shortened core (`1`, `1.0`) to MAJOR.MINOR.PATCH, keeping any
    // pre-release or build suffix.
    let split = bare.find(['-', '+']).unwrap_or(bare.len());
    let (core, suffix) = bare.split_at(split);
    let padded = match core.split('.').count() {
        1 => format!("{core}.0.0{suffix}"),
        2 => format!("{core}.0{suffix}"),
        _ => String::new(),
    };
    if is_semver(&padded) {
        let full = if v.starts_with('v') {
            format!("v{padded}")
        } else {
            padded
        };
        return Some(Problem::warning(
            key,
            format!("`{v}` is a shortened version, read as `{full}` (as cnab-go does); write `v1` or a full version such as `v1.0.0`"),
        ));
    }
    Some(Problem::error(
        key,
        format!("`{v}` is not a schema version (the spec names `v1` or `v1.0.0`)"),
    ))
}

/// The semantic checks, on a decoded bundle.
pub(crate) fn check(b: &Bundle) -> Vec<Problem> {
    let mut out = Vec::new();
    let root = Path::root();
    if let Some(p) = schema_version_problem(&b.schema_version) {
        out.push(p);
    }
    let mut err = |path: Path, msg: String| out.push(Problem::error(path, msg));

    if b.name.is_empty() {
        err(
            root.key("name"),
            "required member is missing or empty".into(),
        );
    }
    if b.version.is_empty() {
        err(
            root.key("version"),
            "required member is missing or empty (for example `0.1.0`)".into(),
        );
    } else if b.version == "latest" {
        err(
            root.key("version"),
            "`latest` is not a valid bundle version: use a semantic version such as `1.0.0`".into(),
        );
    } else if !is_semver(&b.version) {
        err(
            root.key("version"),
            format!("`{}` is not a SemVer 2 version (MAJOR.MINOR.PATCH, no leading `v`, for example `1.0.0`)", b.version),
        );
    }
    if b.invocation_images.as_ref().is_none_or(Vec::is_empty) {
        err(
            root.key("invocationImages"),
            "at least one invocation image is required".into(),
        );
    }
    for (i, m) in b.maintainers.iter().flatten().enumerate() {
        if m.name.is_empty() {
            err(
                root.key("maintainers").index(i).key("name"),
                "a maintainer needs a name".into(),
            );
        }
    }

    let mut warnings = Vec::new();
    for (i, img) in b.invocation_images.iter().flatten().enumerate() {
        check_image(
            &img.base,
            &root.key("invocationImages").index(i),
            &mut out,
            &mut warnings,
        );
    }
    for (name, img) in &b.images {
        check_image(
            &img.base,
            &root.key("images").key(name),
            &mut out,
            &mut warnings,
        );
    }
    let mut err = |path: Path, msg: String| out.push(Problem::error(path, msg));

    for (name, p) in &b.parameters {
        let path = root.key("parameters").key(name);
        check_definition(b, &p.definition, &path, &mut err);
        match &p.destination {
            None => err(
                path.key("destination"),
                "a parameter needs a destination (`path` or `env`)".into(),
            ),
            Some(d) if d.path.is_empty() && d.env.is_empty() => {
                err(
                    path.key("destination"),
                    "the destination needs a `path` or an `env`".into(),
                );
            }
            Some(d) => {
                check_not_in_outputs(&d.path, &path.key("destination").key("path"), &mut err);
            }
        }
    }
    for (name, c) in &b.credentials {
        let path = root.key("credentials").key(name);
        if c.path.is_empty() && c.env.is_empty() {
            err(
                path.clone(),
                "a credential needs a `path` or an `env`".into(),
            );
        }
        check_not_in_outputs(&c.path, &path.key("path"), &mut err);
    }
    for (name, o) in &b.outputs {
        let path = root.key("outputs").key(name);
        check_definition(b, &o.definition, &path, &mut err);
        if o.path.is_empty() {
            err(
                path.key("path"),
                "an output needs a path (for example `/cnab/app/outputs/NAME`)".into(),
            );
        } else if !o.path.starts_with('/') {
            err(
                path.key("path"),
                format!("output path `{}` must be absolute", o.path),
            );
        } else if !is_clean(&o.path) {
            err(
                path.key("path"),
                format!("output path `{}` is not clean (no `.` or `..` segments, no `//`, no trailing `/`)", o.path),
            );
        } else if o.path == OUTPUTS_DIR {
            err(
                path.key("path"),
                format!("output path must name a file, not the directory `{OUTPUTS_DIR}` itself"),
            );
        }
    }
    let mut seen = HashSet::new();
    for (i, ext) in b.required_extensions.iter().enumerate() {
        let path = root.key("requiredExtensions").index(i);
        if !seen.insert(ext) {
            err(
                path.clone(),
                format!("required extension `{ext}` is listed more than once"),
            );
        }
        if !b.custom.contains_key(ext) {
            err(
                path,
                format!("required extension `{ext}` is not defined in `custom`"),
            );
        }
    }
    out.extend(warnings);
    out
}

fn check_image(img: &BaseImage, path: &Path, out: &mut Vec<Problem>, warnings: &mut Vec<Problem>) {
    if img.image.is_empty() {
        out.push(Problem::error(
            path.key("image"),
            "an image needs an `image` reference",
        ));
    } else {
        match Reference::parse(&img.image) {
            Err(e) => out.push(Problem::error(path.key("image"), e.to_string())),
            Ok(r) if r.tag().is_none() && r.digest().is_none() => warnings.push(Problem::warning(
                path.key("image"),
                format!("`{}` has neither tag nor digest, so it means `latest`, which changes over time", img.image),
            )),
            Ok(_) => {}
        }
    }
    if !matches!(img.image_type.as_str(), "" | "docker" | "oci") {
        out.push(Problem::error(
            path.key("imageType"),
            format!(
                "unsupported image type `{}` (expected `docker`, `oci` or empty)",
                img.image_type
            ),
        ));
    }
    if !img.media_type.is_empty() && !media_type::is_image_manifest_or_index(&img.media_type) {
        out.push(Problem::error(
            path.key("mediaType"),
            format!(
                "unsupported media type `{}` (expected one of {})",
                img.media_type,
                media_type::IMAGE_TYPES.join(", ")
            ),
        ));
    }
    if !img.content_digest.is_empty() {
        if let Err(e) = Digest::parse(&img.content_digest) {
            out.push(Problem::error(path.key("contentDigest"), e.to_string()));
        }
    }
}

fn check_definition(b: &Bundle, def: &str, path: &Path, err: &mut impl FnMut(Path, String)) {
    if def.is_empty() {
        err(
            path.key("definition"),
            "a `definition` naming an entry of `definitions` is required".into(),
        );
    } else if !b.definitions.contains_key(def) {
        err(
            path.key("definition"),
            format!("definition `{def}` is not defined in `definitions`"),
        );
    }
}

fn check_not_in_outputs(p: &str, path: &Path, err: &mut impl FnMut(Path, String)) {
    if p == OUTPUTS_DIR || p.starts_with(&format!("{OUTPUTS_DIR}/")) {
        err(
            path.clone(),
            format!(
                "path `{p}` must not be inside `{OUTPUTS_DIR}`, where the runtime collects outputs"
            ),
        );
    }
}

/// Whether an absolute path is already in the form `path.Clean` gives.
fn is_clean(p: &str) -> bool {
    if p == "/" {
        return true;
    }
    p.starts_with('/')
        && p[1..]
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}
