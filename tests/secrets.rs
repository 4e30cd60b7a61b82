//! Secrets never show: not on stdout or stderr, not in events or the JSON
//! result, not with `RUST_LOG=trace`, not in `Debug` output or errors.

use crate::harness::fixtures::{registry_config, seed};
use crate::harness::{Registry, PASSWORD, USER};
use base64::Engine as _;
use cnab_oci::registry::{ClientConfig, Credentials};
use std::process::Command;

/// Every form in which the test password could leak.
fn sentinels() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        PASSWORD.to_owned(),
        b64.encode(format!("{USER}:{PASSWORD}")),
        b64.encode(PASSWORD),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for s in sentinels() {
        assert!(
            !text.contains(&s),
            "{what} contains a secret ({s}):\n{text}"
        );
    }
}

/// Writes into `d` a docker config holding `reg`'s credentials (in
/// `docker/`) and the fixture's bundle (`bundle.json`).
fn logged_in_workdir(d: &std::path::Path, reg: &Registry, fx: &crate::harness::fixtures::Fixture) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::create_dir(d.join("docker")).unwrap();
    std::fs::write(
        d.join("docker/config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    std::fs::write(d.join("bundle.json"), fx.bundle.canonical_bytes()).unwrap();
}

/// A push and a pull with credentials from the docker config, with every log on.
#[tokio::test]
async fn no_secret_in_any_output_even_at_trace() {
    let (src, dst) = (Registry::plain(), Registry::token());
    let fx = seed(&src, &registry_config(&[&src])).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    logged_in_workdir(d, &dst, &fx);
    let target = format!("{}/secret/demo:1", dst.host());
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
            .args(args)
            .current_dir(d)
            .env("DOCKER_CONFIG", d.join("docker"))
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert_clean("stdout", &out);
        assert_clean("stderr", &err);
        (o.status.success(), out, err)
    };
    let (ok, _, err) = run(&[
        "push",
        "bundle.json",
        "--target",
        &target,
        "--auto-update-bundle",
        "-vv",
        "--output",
        "json",
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("registry request"),
        "trace logs were on: {err}"
    );
    let (ok, _, err) = run(&["pull", &target, "-vv"]);
    assert!(ok, "{err}");
    // A refused password is not shown either.
    std::fs::write(
        d.join("docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"username":"{USER}","password":"{PASSWORD}-wrong"}}}}}}"#,
            dst.host()
        ),
    )
    .unwrap();
    let (ok, _, err) = run(&["pull", &target, "-vv"]);
    assert!(!ok);
    assert!(err.contains("the credentials were refused"), "{err}");
}

/// `Debug` of the client configuration and of credentials redacts secrets.
#[test]
fn debug_output_redacts() {
    let mut c = ClientConfig::default();
    c.credentials
        .insert("r.io".into(), Credentials::basic(USER, PASSWORD));
    c.credentials.insert(
        "t.io".into(),
        Credentials::IdentityToken {
            token: PASSWORD.to_owned(),
        },
    );
    assert_clean("Debug of ClientConfig", &format!("{c:?}"));
    assert_clean(
        "Debug of a client",
        &format!("{:?}", cnab_oci::registry::Client::new(c).unwrap()),
    );
}

/// `-vv` shows each request's answer with its timing, the token endpoint's
/// answers and where credentials came from, which `-v` does not; no header's
/// value is in either (issue 11 §10).
#[tokio::test]
async fn trace_level_shows_each_answer_and_its_timing() {
    let reg = Registry::token();
    let fx = seed(&reg, &crate::harness::client::config_for(&reg)).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    logged_in_workdir(d, &reg, &fx);
    let target = format!("{}/trace/demo:1", reg.host());
    let run = |verbosity: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
            .args([
                "push",
                "bundle.json",
                "--target",
                &target,
                "--auto-update-bundle",
                verbosity,
            ])
            .current_dir(d)
            .env("DOCKER_CONFIG", d.join("docker"))
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        assert_clean("stderr", &err);
        for header in ["Bearer ", "Basic ", "authorization"] {
            assert!(!err.contains(header), "no header: {header}\n{err}");
        }
        err
    };
    let debug = run("-v");
    assert!(debug.contains("registry request"), "{debug}");
    assert!(!debug.contains("elapsed_ms"), "{debug}");
    let trace = run("-vv");
    let answers: Vec<&str> = trace.lines().filter(|l| l.contains(": answer ")).collect();
    assert!(!answers.is_empty(), "{trace}");
    for a in &answers {
        for field in ["method=", "url=", "status=", "elapsed_ms=", "version="] {
            assert!(a.contains(field), "{field} in {a}");
        }
    }
    assert!(trace.contains("token endpoint answered"), "{trace}");
    assert!(trace.contains("docker config read"), "{trace}");
}
