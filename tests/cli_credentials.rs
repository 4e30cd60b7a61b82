//! Credentials as Docker finds them, through the `cnab-oci` binary and a real
//! credential helper (a shell script on the subprocess's `PATH`): the helper's
//! answer wins over a stale `auths` entry, and it runs once per registry.

use crate::harness::fixtures::{registry_config, seed};
use crate::harness::{cnab_oci_with, Registry, PASSWORD, USER};
use base64::Engine as _;
use std::ffi::OsString;
use std::path::Path;

/// Installs `docker-credential-test` into `dir/bin`: it appends the server
/// it is asked about to `dir/helper-calls` and answers the test user. Returns
/// the `PATH` to run with.
fn counting_helper(dir: &Path) -> OsString {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.join("helper-calls");
    let script = format!(
        "#!/bin/sh\nread server\necho \"$1 $server\" >> '{}'\n\
         printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n",
        log.display()
    );
    let helper = bin.join("docker-credential-test");
    std::fs::write(&helper, script).unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// A push between two htpasswd registries whose `auths` entries hold an old
/// password, with `credsStore` naming a helper that knows the right one: the
/// helper's answer is used (docker/cli's order), and the helper runs exactly
/// once per registry although the push makes many concurrent requests.
#[tokio::test]
async fn the_helper_wins_over_stale_auths_and_runs_once_per_registry() {
    let (src, dst) = (Registry::basic(), Registry::basic());
    let fx = seed(&src, &registry_config(&[&src])).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = counting_helper(d);
    let stale = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:old-password"));
    std::fs::create_dir(d.join("docker")).unwrap();
    std::fs::write(
        d.join("docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{stale}"}},"{}":{{"auth":"{stale}"}}}},"credsStore":"test"}}"#,
            src.host(),
            dst.host()
        ),
    )
    .unwrap();
    std::fs::write(d.join("bundle.json"), fx.bundle.canonical_bytes()).unwrap();
    let target = format!("{}/creds/demo:1", dst.host());
    let (src_ca, dst_ca) = (
        src.ca.as_ref().unwrap().ca_path(),
        dst.ca.as_ref().unwrap().ca_path(),
    );
    let docker = d.join("docker");
    let o = cnab_oci_with(
        d,
        &[
            "push",
            "bundle.json",
            "--target",
            &target,
            "--auto-update-bundle",
            "--ca-cert",
            src_ca.to_str().unwrap(),
            "--ca-cert",
            dst_ca.to_str().unwrap(),
            "--output",
            "json",
        ],
        &[
            ("PATH", path.as_os_str()),
            ("DOCKER_CONFIG", docker.as_os_str()),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(result["relocation_map"].as_object().unwrap().len(), 4);
    let mut calls: Vec<String> = std::fs::read_to_string(d.join("helper-calls"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    calls.sort();
    let mut want = vec![format!("get {}", src.host()), format!("get {}", dst.host())];
    want.sort();
    assert_eq!(calls, want, "one `get` per registry");
}
