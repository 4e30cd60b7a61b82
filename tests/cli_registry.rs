//! The registry commands of the `cnab-oci` binary, end to end: push with JSON
//! output, pull, fixup with its output files, dry runs, copy, errors, Ctrl-C.

use crate::engine::{registry_config, seed};
use crate::harness::fake::{stalled, Fake};
use crate::harness::Registry;
use std::path::Path;
use std::process::{Command, Output};

fn cnab_oci(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
        .args(args)
        .current_dir(dir)
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run cnab-oci")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Push with `--output json`: JSON events on stderr, a JSON result on stdout;
/// pull writes `pulled.json` equal to the `fixed-bundle.json` push wrote; copy
/// prints the same digest.
#[tokio::test]
async fn push_pull_copy_through_the_cli() {
    let reg = Registry::plain();
    let fx = seed(&reg, &registry_config(&[&reg])).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bundle.json"), fx.bundle.canonical_bytes()).unwrap();
    let target = format!("{}/cli/demo:1.0.0", reg.host());
    let o = cnab_oci(
        d,
        &[
            "push",
            "bundle.json",
            "--target",
            &target,
            "--auto-update-bundle",
            "--bundle",
            "fixed.json",
            "--relocation-map",
            "map.json",
            "--output",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let result: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("one JSON result on stdout");
    let digest = result["digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"));
    assert_eq!(result["relocation_map"].as_object().unwrap().len(), 4);
    assert!(result["requests"].as_u64().unwrap() > 0);
    assert_eq!(result["copies"], 0, "one registry: mounts only");
    assert!(result["mounts"].as_u64().unwrap() > 0);
    let events: Vec<serde_json::Value> = text(&o.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(events.iter().any(|e| e["event"] == "planned"));
    assert!(events.iter().any(|e| e["event"] == "pushed"));

    let o = cnab_oci(d, &["pull", &target]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read(d.join("pulled.json")).unwrap(),
        std::fs::read(d.join("fixed.json")).unwrap()
    );
    assert_eq!(
        std::fs::read(d.join("relocation-map.json")).unwrap(),
        std::fs::read(d.join("map.json")).unwrap()
    );

    let prod = format!("{}/prod/demo:1.0.0", reg.host());
    let o = cnab_oci(d, &["copy", &target, "--target", &prod]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!("Copied successfully, with digest \"{digest}\"\n")
    );
}

/// Fixup writes its two files atomically; `--dry-run` prints the plan and
/// writes nothing; `-` writes to stdout.
#[tokio::test]
async fn fixup_outputs_and_dry_run() {
    let reg = Registry::plain();
    let fx = seed(&reg, &registry_config(&[&reg])).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bundle.json"), fx.bundle.canonical_bytes()).unwrap();
    let target = format!("{}/dry/demo:1", reg.host());
    let o = cnab_oci(
        d,
        &[
            "fixup",
            "bundle.json",
            "--target",
            &target,
            "--dry-run",
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(table.starts_with("IMAGE"), "{table}");
    assert!(table.contains("mount") && table.contains("push"), "{table}");
    assert!(!d.join("fixed-bundle.json").exists() && !d.join("relocation-map.json").exists());
    let o = cnab_oci(
        d,
        &[
            "fixup",
            "bundle.json",
            "--target",
            &target,
            "--dry-run",
            "--output",
            "json",
        ],
    );
    let plan: serde_json::Value =
        serde_json::from_str(text(&o.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(plan["images"].as_array().unwrap().len(), 4);

    let o = cnab_oci(
        d,
        &[
            "fixup",
            "bundle.json",
            "--target",
            &target,
            "--auto-update-bundle",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let fixed = std::fs::read(d.join("fixed-bundle.json")).unwrap();
    assert!(!fixed.ends_with(b"\n"), "canonical JSON");
    let map =
        cnab_oci::RelocationMap::from_slice(&std::fs::read(d.join("relocation-map.json")).unwrap())
            .unwrap();
    assert_eq!(map.len(), 4);
    assert_eq!(
        std::fs::read_dir(d).unwrap().count(),
        3,
        "no temporary files left"
    );
    let o = cnab_oci(
        d,
        &[
            "fixup",
            "bundle.json",
            "--target",
            &target,
            "--auto-update-bundle",
            "--bundle",
            "-",
            "--relocation-map",
            "m.json",
            "-q",
        ],
    );
    assert!(o.status.success());
    assert_eq!(text(&o.stdout), text(&fixed));
}

/// A failure exits 1 with the error chain, and writes nothing; strict mode
/// names the mismatch; usage errors exit 2.
#[tokio::test]
async fn cli_failures() {
    let reg = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bundle = format!(
        r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"imageType":"docker","image":"{}/missing/image:1"}}]}}"#,
        reg.host()
    );
    std::fs::write(d.join("bundle.json"), bundle).unwrap();
    let o = cnab_oci(
        d,
        &[
            "fixup",
            "bundle.json",
            "--target",
            &format!("{}/t/x:1", reg.host()),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("error: cannot resolve the bundle's images:")
            && err.contains("invocationImages[0]")
            && err.contains("404"),
        "{err}"
    );
    assert!(!d.join("fixed-bundle.json").exists());
    assert_eq!(
        cnab_oci(d, &["push", "bundle.json"]).status.code(),
        Some(2),
        "--target is required"
    );
    assert_eq!(
        cnab_oci(
            d,
            &[
                "fixup",
                "bundle.json",
                "--target",
                "x",
                "--component-platforms",
                "linux"
            ]
        )
        .status
        .code(),
        Some(2)
    );
}

/// Ctrl-C stops the work, writes no output file, and exits 130.
#[test]
fn ctrl_c_exits_130_and_writes_nothing() {
    let fake = Fake::start(|_, _| stalled(&[("content-type", "application/json")], b"{"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bundle.json"),
        format!(r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"imageType":"docker","image":"{}/slow/image:1"}}]}}"#, fake.host()),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
        .args([
            "fixup",
            "bundle.json",
            "--target",
            &format!("{}/t/x:1", fake.host()),
            "-q",
        ])
        .current_dir(d)
        .env("DOCKER_CONFIG", d.join("none"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the request is in flight, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fake.requests().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("interrupted"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 1, "only bundle.json");
}
