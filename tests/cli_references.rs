//! References on the command line are checked for their role before anything
//! happens: an invalid reference, or a target that names a digest, is a usage
//! error (exit 2) that names the flag, says what to do, sends no request and
//! writes no file.

use crate::harness::cnab_oci;
use crate::harness::fake::{respond, Fake};
use std::path::Path;

const DIGEST: &str = "sha256:e91b9dfcbbb3b88bac94726f276b89de46e4460b55f6e6d6f876e666b150ec5b";

/// The files in `dir`, by name.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `args` in a directory holding only `bundle.json`, against a fake
/// registry; asserts exit 2, no request, no new file; returns stderr.
fn usage_error(args: impl Fn(&str) -> Vec<String>) -> String {
    let fake = Fake::start(|_, _| respond(404, &[], ""));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bundle.json"),
        r#"{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[]}"#,
    )
    .unwrap();
    let args = args(&fake.host());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = cnab_oci(d, &args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{args:?}");
    assert_eq!(fake.log(), Vec::<String>::new(), "{args:?} sent requests");
    assert_eq!(files(d), ["bundle.json"], "{args:?} wrote files");
    err
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// `push`, `fixup`, `copy` and `convert` refuse a target that names a digest, with or
/// without a tag, instead of ignoring it.
#[test]
fn a_digest_target_is_a_usage_error() {
    for target in [format!("/app@{DIGEST}"), format!("/app:1.0@{DIGEST}")] {
        for cmd in ["push", "fixup", "copy", "convert"] {
            let err = usage_error(|host| {
                let t = format!("{host}{target}");
                match cmd {
                    "copy" => strings(&["copy", &format!("{host}/src:1"), "--target", &t]),
                    "convert" => strings(&[
                        "convert",
                        "bundle.json",
                        "--target",
                        &t,
                        "--relocation-map",
                        "bundle.json",
                        "--out",
                        "out",
                    ]),
                    _ => strings(&[cmd, "bundle.json", "--target", &t]),
                }
            });
            assert!(
                err.starts_with("error: invalid value '")
                    && err.contains(&format!("{target}' for '--target <TARGET>': a target must be taggable, but this one names the digest `{DIGEST}`: drop `@DIGEST` and name a tag instead (REGISTRY/REPOSITORY:TAG)\n")),
                "{cmd} {target}: {err}"
            );
        }
    }
}

/// An invalid reference (an upper-case repository) is a usage error naming
/// the flag or argument, for a target and for a source.
#[test]
fn an_invalid_reference_is_a_usage_error() {
    let err =
        usage_error(|host| strings(&["push", "bundle.json", "--target", &format!("{host}/App:1")]));
    assert!(
        err.contains("/App:1' for '--target <TARGET>': invalid reference format: repository name (App) must be lowercase; a target is REGISTRY/REPOSITORY[:TAG], in lower case\n"),
        "{err}"
    );
    let err = usage_error(|host| {
        strings(&[
            "copy",
            &format!("{host}/Src:1"),
            "--target",
            &format!("{host}/dst:1"),
        ])
    });
    assert!(
        err.contains("/Src:1' for '<SOURCE>': invalid reference format: repository name (Src) must be lowercase; a reference is REGISTRY/REPOSITORY[:TAG][@DIGEST], in lower case\n"),
        "{err}"
    );
    let err = usage_error(|host| strings(&["pull", &format!("{host}/a/b:-x")]));
    assert!(
        err.contains("for '<REFERENCE>': invalid reference format: invalid tag `-x`"),
        "{err}"
    );
}

/// The library refuses a digest target as well, before any request: a
/// program embedding it gets [`cnab_oci::Error::DigestTarget`], not a
/// silently ignored digest.
#[tokio::test]
async fn the_library_refuses_a_digest_target() {
    use cnab_oci::ops::{CopyOptions, Location, PushOptions, Relocator};
    let fake = Fake::start(|_, _| respond(404, &[], ""));
    let target = cnab_oci::Reference::parse(&format!("{}/app:1@{DIGEST}", fake.host())).unwrap();
    let source = cnab_oci::Reference::parse(&format!("{}/src:1", fake.host())).unwrap();
    let relocator = Relocator::new(cnab_oci::registry::ClientConfig::default()).unwrap();
    let bundle = cnab_oci::Bundle::from_slice(
        br#"{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[]}"#,
    )
    .unwrap();
    let want = format!(
        "the target `{target}` names a digest; a bundle is pushed to a tag, so name a tag (REPOSITORY:TAG) or only the repository"
    );
    let e = relocator
        .push(
            &bundle,
            &cnab_oci::RelocationMap::new(),
            &target,
            &PushOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, cnab_oci::Error::DigestTarget { .. }), "{e:?}");
    assert_eq!(e.to_string(), want);
    let e = relocator
        .copy(
            &Location::Registry(source),
            &Location::Registry(target),
            &CopyOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), want);
    assert_eq!(fake.log(), Vec::<String>::new());
}

/// `--jobs 0` would run nothing: it is a usage error (issue 11 §10).
#[test]
fn zero_jobs_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
        .args([
            "fixup",
            "bundle.json",
            "--target",
            "example.com/a/b:1",
            "-j",
            "0",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value '0' for '--jobs <JOBS>': must be at least 1"),
        "{err}"
    );
}

/// Other numbers and names the command line takes are checked for their
/// role too: `--requests 0`, and an insecure registry given with a scheme
/// (Docker refuses one there) are usage errors.
#[test]
fn budgets_and_registry_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (args, said) in [
        (
            &["--requests", "0"][..],
            "invalid value '0' for '--requests <REQUESTS>': must be at least 1",
        ),
        (
            &["--insecure-registries", "https://r.example.com:5000"][..],
            "name the registry as HOST[:PORT], without `https://`",
        ),
        (
            &["--insecure-registries", "r.example.com/path"][..],
            "a registry is HOST[:PORT], with no path",
        ),
        (
            &["--insecure-registries", "127.0.0.1:99999"][..],
            "`99999` is not a port (1 to 65535)",
        ),
        (
            &["--insecure-registries", "127.0.0.1:5000,"][..],
            "an empty registry name (a stray comma?)",
        ),
        (
            &["--insecure-registries", "*.example.com"][..],
            "not a registry host name (HOST[:PORT])",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
            .args(["fixup", "bundle.json", "--target", "example.com/a/b:1"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{args:?}: {err}");
    }
}

/// With `--output json`, an error clap finds is one JSON line too; help is
/// still help.
#[test]
fn usage_errors_in_json_mode_are_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run(&[
        "--output",
        "json",
        "fixup",
        "b.json",
        "--target",
        "reg/App:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["event"], "error");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid value 'reg/App:1' for '--target"),
        "{v}"
    );
    let help = run(&["--output", "json", "fixup", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));
}
