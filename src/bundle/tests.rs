//! Bundle model tests against the public examples in testdata/examples (see
//! testdata/PROVENANCE.md) and against hand-written edge cases.

use super::*;
use crate::json::{parse, Value};

macro_rules! example {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/examples/",
            $path
        ))
    };
}

/// Every example bundle, with the errors `validate` must report for it (empty:
/// valid). The reasons are the documented ones: cnab-go's test bundles use
/// non-SemVer versions (their shortened schema versions, `v99.98` and
/// `99.99`, are only warnings, as cnab-go reads them), the spec uses elided digests (`sha256:aaaa...`), and
/// two cnab-go bundles use the pre-1.0 `outputs.fields` layout.
const EXAMPLES: &[(&str, &[u8], &[&str])] = &[
    (
        "cnab-spec/101.01-bundle.json",
        example!("cnab-spec/101.01-bundle.json"),
        &[
            "images.my-microservice.contentDigest",
            "invocationImages[0].contentDigest",
        ],
    ),
    (
        "cnab-spec/101.02-bundle.json",
        example!("cnab-spec/101.02-bundle.json"),
        &[
            "images.my-microservice.contentDigest",
            "invocationImages[0].contentDigest",
        ],
    ),
    (
        "cnab-spec/101.03-bundle.json",
        example!("cnab-spec/101.03-bundle.json"),
        &[
            "images.my-microservice.contentDigest",
            "invocationImages[0].contentDigest",
        ],
    ),
    (
        "cnab-spec/101-canonical-of-101.01.json",
        example!("cnab-spec/101-canonical-of-101.01.json"),
        &[
            "images.my-microservice.contentDigest",
            "invocationImages[0].contentDigest",
        ],
    ),
    (
        "cnab-spec/201-example-bundle.noncanonical.json",
        example!("cnab-spec/201-example-bundle.noncanonical.json"),
        &[],
    ),
    (
        "cnab-to-oci/helloworld-bundle.json",
        example!("cnab-to-oci/helloworld-bundle.json"),
        &[],
    ),
    (
        "cnab-to-oci/helloworld-complete.bundle.json",
        example!("cnab-to-oci/helloworld-complete.bundle.json"),
        &[],
    ),
    (
        "cnab-go/empty.json",
        example!("cnab-go/empty.json"),
        &["invocationImages", "name", "schemaVersion", "version"],
    ),
    (
        "cnab-go/minimal.json",
        example!("cnab-go/minimal.json"),
        &["version"],
    ),
    (
        "cnab-go/canonical-bundle.json",
        example!("cnab-go/canonical-bundle.json"),
        &["version"],
    ),
    (
        "cnab-go/bundle.yaml.json",
        example!("cnab-go/bundle.yaml.json"),
        &["version"],
    ),
    (
        "cnab-go/digest.json",
        example!("cnab-go/digest.json"),
        &["version"],
    ),
    (
        "cnab-go/foo.json",
        example!("cnab-go/foo.json"),
        &["images.image2.image", "version"],
    ),
    (
        "cnab-go/packager-examplebun.json",
        example!("cnab-go/packager-examplebun.json"),
        &["schemaVersion"],
    ),
    (
        "cnab-go/example-outputs-root.json",
        example!("cnab-go/example-outputs-root.json"),
        &["outputs.fields.definition", "outputs.fields.path"],
    ),
    (
        "cnab-go/example-outputs-nonroot.json",
        example!("cnab-go/example-outputs-nonroot.json"),
        &["outputs.fields.definition", "outputs.fields.path"],
    ),
];

fn canonical(bytes: &[u8]) -> Vec<u8> {
    Bundle::from_slice(bytes).unwrap().canonical_bytes()
}

#[test]
fn every_example_validates_or_fails_for_its_documented_reason() {
    for (name, bytes, want) in EXAMPLES {
        let report = validate_bytes(bytes);
        let mut got: Vec<String> = report.errors().map(|p| p.path.to_string()).collect();
        got.sort();
        assert_eq!(&got, want, "{name}: {:#?}", report.problems);
        assert!(
            report.errors().all(|p| p.pos.is_some()),
            "{name}: every error has a position"
        );
        assert!(report.bundle.is_some(), "{name} decodes");
    }
}

/// Asserts that every member of `input` survives into `output`, unless it is an
/// empty value that cnab-go's shape drops.
fn assert_nothing_lost(input: &Node, output: &Node, at: &str) {
    match (&input.value, &output.value) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i.iter() {
                match o.get(k) {
                    Some(ov) => assert_nothing_lost(v, ov, &format!("{at}.{k}")),
                    None => assert!(v.is_empty_value(), "{at}.{k} was lost: {v:?}"),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            assert_eq!(i.len(), o.len(), "{at}: array length changed");
            for (n, (a, b)) in i.iter().zip(o).enumerate() {
                assert_nothing_lost(a, b, &format!("{at}[{n}]"));
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.as_f64().to_bits(), b.as_f64().to_bits(), "{at}");
        }
        (a, b) => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn every_example_round_trips_without_losing_a_member() {
    for (name, bytes, _) in EXAMPLES {
        let c1 = canonical(bytes);
        let c2 = canonical(&c1);
        assert_eq!(c1, c2, "{name}: canonical form is a fixed point");
        assert_nothing_lost(&parse(bytes).unwrap(), &parse(&c1).unwrap(), name);
        let b1 = Bundle::from_slice(bytes).unwrap();
        let b2 = Bundle::from_slice(&c1).unwrap();
        assert_eq!(b1.canonical_bytes(), b2.canonical_bytes(), "{name}");
        assert_eq!(b1.unknown, b2.unknown, "{name}: unknown members survive");
    }
}

#[test]
fn spec_201_example_gives_the_wire_format_digest() {
    let b = Bundle::from_slice(example!("cnab-spec/201-example-bundle.noncanonical.json")).unwrap();
    let bytes = b.canonical_bytes();
    assert_eq!(bytes.len(), 498);
    assert_eq!(
        b.digest().as_str(),
        "sha256:e91b9dfcbbb3b88bac94726f276b89de46e4460b55f6e6d6f876e666b150ec5b"
    );
}

/// cnab-go's own fixtures are outputs of its canonical writer: cnab-to-oci
/// pushes exactly these bytes, and so must we.
#[test]
fn canonical_bytes_equal_cnab_go_output() {
    // cnab-go encodes bundle.yaml into canonical-bundle.json in its tests.
    assert_eq!(
        canonical(example!("cnab-go/bundle.yaml.json")),
        example!("cnab-go/canonical-bundle.json")
    );
    // Outputs of cnab-go's writer are fixed points.
    for bytes in [
        &example!("cnab-go/canonical-bundle.json")[..],
        example!("cnab-go/minimal.json"),
        example!("cnab-go/empty.json"),
    ] {
        assert_eq!(canonical(bytes), bytes);
    }
    // The zero bundle is written with cnab-go's always-present fields.
    assert_eq!(canonical(b"{}"), example!("cnab-go/empty.json"));
    // cnab-to-oci's helloworld: the same bytes as the spec's 201 example, which
    // differs only by null members that cnab-go drops.
    assert_eq!(
        canonical(example!("cnab-to-oci/helloworld-complete.bundle.json")),
        canonical(example!("cnab-spec/201-example-bundle.noncanonical.json"))
    );
}

/// The spec prints a canonical form of 101.01 that was not made by cnab-go: it
/// lacks the component image's `imageType`, which cnab-go always writes, and it
/// carries schemaVersion v1.2.0. Everything else matches.
#[test]
fn spec_101_canonical_differs_only_where_cnab_go_differs_from_the_spec() {
    let ours = String::from_utf8(canonical(example!("cnab-spec/101.01-bundle.json"))).unwrap();
    let spec = std::str::from_utf8(example!("cnab-spec/101-canonical-of-101.01.json")).unwrap();
    let spec = spec
        .replace(
            "\"image\":\"example/microservice:1.2.3\"}",
            "\"image\":\"example/microservice:1.2.3\",\"imageType\":\"\"}",
        )
        .replace("v1.2.0", "v1.0.0");
    assert_eq!(ours, spec);
}

#[test]
fn unknown_members_are_kept_in_place_and_warned_about() {
    let doc = br#"{"schemaVersion":"v1.0.0","name":"x","version":"1.0.0","x-top":{"a":[1,null]},
      "invocationImages":[{"image":"a/b:1","imageType":"docker","description":"kept","extra":null}],
      "images":{"c":{"image":"c:1","refs":[{"path":"p"}]}},
      "actions":{"go":{"title":"Go!","modifies":true}},
      "definitions":{"s":{"type":"array","maxItems":3,"title":"","properties":{"p":{"maxProperties":2,"description":""}}}}}"#;
    let c = String::from_utf8(canonical(doc)).unwrap();
    for kept in [
        r#""x-top":{"a":[1,null]}"#,
        r#""description":"kept""#,
        r#""extra":null"#,
        r#""refs":[{"path":"p"}]"#,
        r#""title":"Go!""#,
        r#""maxItems":3"#,
        r#""maxProperties":2"#,
    ] {
        assert!(c.contains(kept), "{kept} missing from {c}");
    }
    // Known schema string keywords are dropped when empty, as cnab-go does.
    assert!(
        c.contains(r#""definitions":{"s":{"maxItems":3,"properties":{"p":{"maxProperties":2}},"type":"array"}}"#),
        "{c}"
    );
    let report = validate_bytes(doc);
    let warned: Vec<String> = report.warnings().map(|p| p.path.to_string()).collect();
    for w in [
        "x-top",
        "invocationImages[0].description",
        "invocationImages[0].extra",
        "images.c.refs",
        "actions.go.title",
    ] {
        assert!(warned.contains(&w.to_owned()), "{w} not warned: {warned:?}");
    }
    assert!(report.is_valid(), "{:#?}", report.problems);
}

#[test]
fn cnab_go_shape_rules() {
    let doc = br#"{"schemaVersion":"v1","name":"n","version":"1.0.0","description":null,
      "keywords":[],"maintainers":[{"name":"m","email":"","url":null}],"license":"",
      "invocationImages":[{"image":"i:1","size":0,"labels":{},"contentDigest":"","mediaType":null}],
      "images":{"c":{"image":"c:1","imageType":null}},
      "actions":{"a":{"modifies":false,"stateless":false,"description":""}},
      "parameters":{"p":{"definition":"d","required":false,"applyTo":[],"destination":{}},
                    "q":{"definition":"d"}},
      "credentials":{"c":{"env":"E","required":true}},
      "outputs":{"o":{"definition":"d","path":"/cnab/app/outputs/o"}},
      "definitions":{"d":{"type":"string","default":null,"enum":[],"const":false,"additionalProperties":false,
         "allOf":[{"title":"","type":"string"}],"not":{"$id":""},"items":{"title":""}}},
      "requiredExtensions":[],"custom":{"x":null}}"#;
    let c = String::from_utf8(canonical(doc)).unwrap();
    assert_eq!(
        c,
        concat!(
            r#"{"actions":{"a":{}},"credentials":{"c":{"env":"E","required":true}},"#,
            r#""custom":{"x":null},"#,
            r#""definitions":{"d":{"additionalProperties":false,"allOf":[{"type":"string"}],"const":false,"items":{"title":""},"not":{},"type":"string"}},"#,
            r#""description":"","images":{"c":{"description":"","image":"c:1","imageType":""}},"#,
            r#""invocationImages":[{"image":"i:1","imageType":""}],"maintainers":[{"name":"m"}],"name":"n","#,
            r#""outputs":{"o":{"definition":"d","path":"/cnab/app/outputs/o"}},"#,
            r#""parameters":{"p":{"definition":"d","destination":{}},"q":{"definition":"d","destination":null}},"#,
            r#""schemaVersion":"v1","version":"1.0.0"}"#
        )
    );
}

#[test]
fn type_errors_name_path_line_and_column_all_at_once() {
    let doc = b"{\"schemaVersion\":\"v1.0.0\",\"name\":\"n\",\"version\":\"1.0.0\",\n\"invocationImages\":[{\"image\":\"a:1\",\n  \"size\": -1}],\n\"images\":{\"c\":{\"image\":5,\"size\":1.5}},\"keywords\":\"k\",\"images2\":1,\n\"definitions\":{\"d\":{\"title\":7}}}";
    let err = Bundle::from_slice(doc).unwrap_err();
    let BundleError::Types(problems) = &err else {
        panic!("{err}")
    };
    let msgs: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        [
            "invocationImages[0].size: expected an unsigned integer, found `-1`: it cannot be negative (line 3, column 11)",
            "images.c.image: expected a string, found the number `5` (line 4, column 24)",
            "images.c.size: expected an unsigned integer, found `1.5` (line 4, column 33)",
            "keywords: expected an array of strings, found the string \"k\" (line 4, column 50)",
            "definitions.d.title: expected a string, found the number `7` (line 5, column 29)",
        ]
    );
    let e =
        Bundle::from_slice(br#"{"invocationImages":[{"size":18446744073709551616}]}"#).unwrap_err();
    assert!(
        e.to_string().contains("larger than 18446744073709551615"),
        "{e}"
    );
    let e = Bundle::from_slice(b"[]").unwrap_err();
    assert!(
        e.to_string()
            .contains("expected a JSON object (the bundle), found an array"),
        "{e}"
    );
}

#[test]
fn syntax_errors_and_hostile_documents() {
    let e = Bundle::from_slice(b"{\"name\":\"a\",\n\"name\":\"b\"}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "bundle is not valid JSON: name: duplicate key `name` (line 2, column 1)"
    );
    let e = Bundle::from_slice(b"{\"name\":").unwrap_err();
    assert!(e.to_string().contains("unexpected end of input"), "{e}");
    let e = Bundle::from_slice(b"{\"name\":\"\xc3\x28\"}").unwrap_err();
    assert!(e.to_string().contains("invalid UTF-8"), "{e}");
    let deep = format!(
        "{{\"custom\":{{\"x\":{}{}}}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let e = Bundle::from_slice(deep.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("nesting deeper than"), "{e}");
    let big = vec![b' '; MAX_BUNDLE_SIZE + 1];
    let e = Bundle::from_slice(&big).unwrap_err();
    assert!(
        e.to_string()
            .contains("larger than the 16777216 bytes accepted"),
        "{e}"
    );
}

fn errors_of(doc: &str) -> Vec<String> {
    validate_bytes(doc.as_bytes())
        .errors()
        .map(ToString::to_string)
        .collect()
}

fn valid_base() -> String {
    r#""schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{"image":"a/b:1","imageType":"docker"}]"#.to_owned()
}

#[test]
fn validation_messages() {
    let cases: &[(&str, &str)] = &[
        (r#"{"schemaVersion":"1.0.0","name":"n","version":"latest","invocationImages":[]}"#,
         "version: `latest` is not a valid bundle version: use a semantic version such as `1.0.0` (line 1, column 47)"),
        (r#"{"schemaVersion":"1.0.0","name":"n","version":"1.0.0","invocationImages":[]}"#,
         "invocationImages: at least one invocation image is required (line 1, column 74)"),
        (r#"{"schemaVersion":"vX","name":"n","version":"1.0.0","invocationImages":[{"image":"a:1"}]}"#,
         "schemaVersion: `vX` is not a schema version (the spec names `v1` or `v1.0.0`) (line 1, column 18)"),
        (r#"{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{"image":"A:1","imageType":"rkt","mediaType":"text/plain","contentDigest":"sha256:abc"}]}"#,
         "invocationImages[0].image: invalid reference format: repository name (library/A) must be lowercase (line 1, column 85)"),
    ];
    for (doc, want) in cases {
        let errs = errors_of(doc);
        assert!(errs.iter().any(|e| e == want), "{want}\n not in {errs:#?}");
    }
    let errs = errors_of(cases[3].0);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("invocationImages[0].imageType: unsupported image type `rkt`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e
                .starts_with("invocationImages[0].mediaType: unsupported media type `text/plain`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e
                .starts_with("invocationImages[0].contentDigest: invalid checksum digest length")),
        "{errs:#?}"
    );

    let base = valid_base();
    let doc = format!(
        r#"{{{base},
        "parameters":{{"nodef":{{"definition":"missing","destination":{{"env":"X"}}}},
                       "nodest":{{"definition":"s"}},
                       "emptydest":{{"definition":"s","destination":{{}}}},
                       "inout":{{"definition":"s","destination":{{"path":"/cnab/app/outputs/p"}}}}}},
        "credentials":{{"none":{{"description":"d"}},"inout":{{"path":"/cnab/app/outputs"}}}},
        "outputs":{{"rel":{{"definition":"s","path":"out"}},"dirty":{{"definition":"s","path":"/cnab/app/outputs/../x"}},
                    "slash":{{"definition":"s","path":"/cnab/app/outputs/x/"}},"nopath":{{"definition":"s"}},
                    "dir":{{"definition":"s","path":"/cnab/app/outputs"}},"ok":{{"definition":"s","path":"/cnab/app/outputs/ok"}}}},
        "definitions":{{"s":{{"type":"string"}}}},
        "maintainers":[{{"email":"a@b"}}],
        "requiredExtensions":["x","x","y"],"custom":{{"x":{{}}}}}}"#
    );
    let errs = errors_of(&doc);
    let want = [
        "parameters.nodef.definition: definition `missing` is not defined in `definitions`",
        "parameters.nodest.destination: a parameter needs a destination (`path` or `env`)",
        "parameters.emptydest.destination: the destination needs a `path` or an `env`",
        "parameters.inout.destination.path: path `/cnab/app/outputs/p` must not be inside `/cnab/app/outputs`, where the runtime collects outputs",
        "credentials.none: a credential needs a `path` or an `env`",
        "credentials.inout.path: path `/cnab/app/outputs` must not be inside `/cnab/app/outputs`, where the runtime collects outputs",
        "outputs.rel.path: output path `out` must be absolute",
        "outputs.dirty.path: output path `/cnab/app/outputs/../x` is not clean (no `.` or `..` segments, no `//`, no trailing `/`)",
        "outputs.slash.path: output path `/cnab/app/outputs/x/` is not clean (no `.` or `..` segments, no `//`, no trailing `/`)",
        "outputs.nopath.path: an output needs a path (for example `/cnab/app/outputs/NAME`)",
        "outputs.dir.path: output path must name a file, not the directory `/cnab/app/outputs` itself",
        "maintainers[0].name: a maintainer needs a name",
        "requiredExtensions[1]: required extension `x` is listed more than once",
        "requiredExtensions[2]: required extension `y` is not defined in `custom`",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "{w}\n not in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
}

#[test]
fn untagged_image_is_a_warning() {
    let doc = format!(
        r#"{{{},"images":{{"c":{{"image":"nginx"}}}}}}"#,
        valid_base()
    );
    let r = validate_bytes(doc.as_bytes());
    assert!(r.is_valid());
    let w: Vec<String> = r.warnings().map(ToString::to_string).collect();
    assert!(w[0].contains("has neither tag nor digest"), "{w:?}");
}

#[test]
fn image_accessors_and_updates() {
    let mut b = Bundle::from_slice(example!("cnab-spec/101.02-bundle.json")).unwrap();
    let keys: Vec<String> = b.all_images().iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["invocationImages[0]", "images[\"my-microservice\"]"]);
    let key = ImageKey::Component("my-microservice".into());
    b.image_mut(&key).unwrap().size = 7;
    assert_eq!(b.images["my-microservice"].size, 7);
}

/// `schemaVersion` follows the spec's schema and cnab-go: the schema's own
/// `v1` and any SemVer 2 (with or without `v`) pass clean; a shortened
/// `v1.0` or `v2` passes with a warning saying how it is read; anything else
/// is an error. `version` stays strict.
#[test]
fn schema_version_follows_the_spec_schema_and_cnab_go() {
    let doc = |schema: &str, version: &str| {
        format!(
            r#"{{"schemaVersion":"{schema}","name":"n","version":"{version}","invocationImages":[{{"image":"a/b:1","imageType":"docker"}}]}}"#
        )
    };
    let problems = |d: &str| -> (Vec<String>, Vec<String>) {
        let r = validate_bytes(d.as_bytes());
        (
            r.errors().map(ToString::to_string).collect(),
            r.warnings().map(ToString::to_string).collect(),
        )
    };
    let none: (Vec<String>, Vec<String>) = (vec![], vec![]);
    for clean in ["v1", "v1.0.0", "1.0.0", "v1.2.0", "v1.0.0-WD"] {
        assert_eq!(problems(&doc(clean, "1.0.0")), none, "{clean}");
    }
    for (short, read_as) in [
        ("v1.0", "v1.0.0"),
        ("v2", "v2.0.0"),
        ("1.2", "1.2.0"),
        ("v1.0-rc1", "v1.0.0-rc1"),
    ] {
        let (errors, warnings) = problems(&doc(short, "1.0.0"));
        assert_eq!(errors, Vec::<String>::new(), "{short}");
        assert_eq!(
            warnings,
            [format!("schemaVersion: `{short}` is a shortened version, read as `{read_as}` (as cnab-go does); write `v1` or a full version such as `v1.0.0` (line 1, column 18)")],
            "{short}"
        );
    }
    for bad in ["vX", "v", "v1.0.0.0", "v01", "1.x"] {
        let (errors, _) = problems(&doc(bad, "1.0.0"));
        assert_eq!(
            errors,
            [format!("schemaVersion: `{bad}` is not a schema version (the spec names `v1` or `v1.0.0`) (line 1, column 18)")],
            "{bad}"
        );
    }
    for strict in ["v1", "1.0", "v1.0.0"] {
        let (errors, _) = problems(&doc("v1", strict));
        assert_eq!(errors.len(), 1, "version `{strict}`: {errors:?}");
        assert!(
            errors[0].starts_with(&format!("version: `{strict}` is not a SemVer 2 version")),
            "{errors:?}"
        );
    }
}
