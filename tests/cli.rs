//! The `cnab-oci` binary, end to end, for the offline commands.

use std::path::Path;
use std::process::{Command, Output};

fn cnab_oci(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
        .args(args)
        .output()
        .expect("run cnab-oci")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn testdata(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(p)
        .display()
        .to_string()
}

/// `validate` accepts the spec schema's `"schemaVersion": "v1"` cleanly and
/// cnab-go's shortened `v1.0` with a warning, exiting 0 for both.
#[test]
fn validate_accepts_the_schema_versions_cnab_go_accepts() {
    let dir = tempfile::tempdir().unwrap();
    for (schema, want) in [
        ("v1", "is valid (0 warning(s))\n"),
        ("v1.0", "is valid (1 warning(s))\n"),
    ] {
        let f = dir.path().join(format!("{schema}.json"));
        std::fs::write(
            &f,
            format!(r#"{{"schemaVersion":"{schema}","name":"n","version":"1.0.0","invocationImages":[{{"image":"a/b:1","imageType":"docker"}}]}}"#),
        )
        .unwrap();
        let o = cnab_oci(&["validate", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{schema}: {}", stdout(&o));
        assert!(stdout(&o).ends_with(want), "{schema}: {}", stdout(&o));
    }
}

/// `canonical` prints the config blob bytes with no trailing newline.
#[test]
fn canonical_prints_exact_bytes() {
    let o = cnab_oci(&[
        "canonical",
        &testdata("examples/cnab-spec/201-example-bundle.noncanonical.json"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), 498);
    assert_eq!(
        cnab_oci::Digest::sha256(&o.stdout).as_str(),
        "sha256:e91b9dfcbbb3b88bac94726f276b89de46e4460b55f6e6d6f876e666b150ec5b"
    );
    assert!(!o.stdout.ends_with(b"\n"));
}

/// `validate` lists every problem with file, line and column, exits 1 on errors
/// and 0 when only warnings are found.
#[test]
fn validate_reports_every_problem() {
    let bad = testdata("examples/cnab-go/foo.json");
    let o = cnab_oci(&["validate", &bad]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "error: {bad}:3:16: version: `1.0` is not a SemVer 2 version"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "error: {bad}:22:18: images.image2.image: an image needs an `image` reference"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "warning: {bad}:15:13: images.image1.refs: unknown member"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "warning: {bad}:4:22: schemaVersion: `99.99` is a shortened version, read as `99.99.0` (as cnab-go does); write `v1` or a full version such as `v1.0.0`\n"
        )),
        "{out}"
    );
    assert!(
        out.ends_with("is invalid: 2 error(s), 5 warning(s)\n"),
        "{out}"
    );

    let o = cnab_oci(&[
        "validate",
        &testdata("examples/cnab-to-oci/helloworld-bundle.json"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    let o = cnab_oci(&["validate", "--output", "json", &bad]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"][0]["line"], 3);
    assert_eq!(v["problems"][0]["path"], "version");
}

/// Broken input: a clear error naming the file and the position, exit 1.
#[test]
fn broken_bundle_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.json");
    std::fs::write(&p, "{\"name\": \"x\",\n  \"name\": \"y\"}").unwrap();
    let o = cnab_oci(&["canonical", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!("error: cannot load bundle `{}`: bundle is not valid JSON: name: duplicate key `name` (line 2, column 3)\n", p.display())
    );
    let o = cnab_oci(&[
        "validate",
        dir.path().join("missing.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
}

/// Usage errors exit 2; every command's help has an example.
#[test]
fn usage_errors_and_help() {
    assert_eq!(cnab_oci(&["convert", "x.json"]).status.code(), Some(2));
    assert_eq!(cnab_oci(&["no-such-command"]).status.code(), Some(2));
    for cmd in ["validate", "canonical", "convert"] {
        let o = cnab_oci(&[cmd, "--help"]);
        assert!(o.status.success());
        assert!(stdout(&o).contains("Example:"), "{cmd}: {}", stdout(&o));
    }
}

const IMG: &str = "sha256:a59a4e74d9cc89e4e75dfb2cc7ea5c108e4236ba6231b53081a9e2506d1197b6";

/// Runs `convert` on the spec's 201 bundle for target
/// `registry.example.com/hello:0.1.1`, with the image relocated to `registry`.
fn convert_201(dir: &Path, registry: &str, out: &Path) -> Output {
    let map = dir.join("map.json");
    std::fs::write(
        &map,
        format!(r#"{{"cnab/helloworld:0.1.1":"{registry}/hello@{IMG}"}}"#),
    )
    .unwrap();
    cnab_oci(&[
        "convert",
        &testdata("examples/cnab-spec/201-example-bundle.noncanonical.json"),
        "--target",
        "registry.example.com/hello:0.1.1",
        "--relocation-map",
        map.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// `convert` writes exactly the objects a push uploads and prints one line each.
#[test]
fn convert_writes_the_push_objects() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = convert_201(dir.path(), "registry.example.com", &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(
        lines[0],
        "config.json\tapplication/vnd.cnab.config.v1+json\tsha256:e91b9dfcbbb3b88bac94726f276b89de46e4460b55f6e6d6f876e666b150ec5b\t498"
    );
    assert_eq!(
        lines[1],
        "config-manifest.json\tapplication/vnd.oci.image.manifest.v1+json\tsha256:6ec4fd695cace0e3d4305838fdf9fcd646798d3fea42b3abb28c117f903a6a5f\t188"
    );
    for line in &lines {
        let cols: Vec<&str> = line.split('\t').collect();
        let bytes = std::fs::read(out.join(cols[0])).unwrap();
        assert_eq!(cnab_oci::Digest::sha256(&bytes).as_str(), cols[2], "{line}");
        assert_eq!(bytes.len().to_string(), cols[3], "{line}");
    }
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "config.json",
            "config-manifest.json",
            "config-manifest.oci-config.json",
            "config-manifest.docker.json",
            "index.json",
            "index.docker-manifest-list.json"
        ]
    );
}

/// A conversion error names the image and writes nothing.
#[test]
fn convert_error_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = convert_201(dir.path(), "elsewhere.example.com", &out);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("invocationImages[0]: image `cnab/helloworld:0.1.1` is not in the target repository `registry.example.com/hello`"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "nothing is written when conversion fails");
}

/// Hostile documents get a clear error and exit 1, never a panic: 100 MB,
/// 10,000 levels deep, truncated, not UTF-8.
#[test]
fn hostile_bundles_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "huge.json",
            {
                let mut v = b"{\"name\":\"".to_vec();
                v.resize(100 << 20, b'x');
                v.extend_from_slice(b"\"}");
                v
            },
            "larger than the 16777216 bytes accepted",
        ),
        (
            "deep.json",
            format!(
                "{{\"custom\":{{\"x\":{}{}}}}}",
                "[".repeat(10_000),
                "]".repeat(10_000)
            )
            .into_bytes(),
            "nesting deeper than 256 levels",
        ),
        (
            "truncated.json",
            br#"{"schemaVersion":"v1.0.0","invocationImages":[{"image":"a"#.to_vec(),
            "unterminated string",
        ),
        (
            "latin1.json",
            b"{\"name\":\"caf\xe9\"}".to_vec(),
            "invalid UTF-8",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        for cmd in ["validate", "canonical"] {
            let o = cnab_oci(&[cmd, p.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(1), "{cmd} {name}");
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!(all.contains(want), "{cmd} {name}: {all}");
            assert!(!all.contains("panicked"), "{cmd} {name}: {all}");
        }
    }
}

/// `completions SHELL` prints a script for each shell that names the
/// subcommands; bash accepts the bash script's syntax (`bash -n`).
#[test]
fn completions_print_a_script_per_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = cnab_oci(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        for sub in [
            "fixup", "push", "pull", "copy", "validate", "convert", "man",
        ] {
            assert!(script.contains(sub), "{shell} script names `{sub}`");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cnab-oci.bash");
    std::fs::write(&f, cnab_oci(&["completions", "bash"]).stdout).unwrap();
    let o = Command::new("bash")
        .arg("-n")
        .arg(&f)
        .output()
        .expect("run bash");
    assert!(o.status.success(), "bash -n: {}", stderr(&o));
    let o = cnab_oci(&["completions", "tcsh"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    assert!(
        stderr(&o).contains("invalid value 'tcsh'"),
        "{}",
        stderr(&o)
    );
}

/// `man` prints the roff page, titled `cnab-oci(1)`, listing the
/// subcommands' pages; `man push` prints `cnab-oci-push(1)`.
#[test]
fn man_prints_the_pages() {
    let o = cnab_oci(&["man"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = stdout(&o);
    let title = page
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "));
    assert_eq!(
        title.map(|l| l.split_whitespace().take(3).collect::<Vec<_>>()),
        Some(vec![".TH", "cnab-oci", "1"]),
        "{page}"
    );
    for sub in [
        "fixup",
        "push",
        "pull",
        "copy",
        "validate",
        "canonical",
        "convert",
        "completions",
    ] {
        assert!(
            page.contains(&format!("cnab\\-oci\\-{sub}(1)")),
            "lists {sub}: {page}"
        );
    }
    let o = cnab_oci(&["man", "push"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(".TH cnab-oci-push 1 "),
        "{}",
        stdout(&o)
    );
    assert_eq!(cnab_oci(&["man", "nope"]).status.code(), Some(2));
}
