//! The registry commands of the `cnab-oci` binary, end to end: push with JSON
//! output, pull, fixup with its output files, dry runs, copy, errors, Ctrl-C.

use crate::harness::cnab_oci;
use crate::harness::fake::{stalled, Fake};
use crate::harness::fixtures::{registry_config, seed};
use crate::harness::Registry;
use std::process::{Command, Output};

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
            "--auto-update-bundle",
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
            "--auto-update-bundle",
            "--output",
            "json",
        ],
    );
    let plan: serde_json::Value =
        serde_json::from_str(text(&o.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(plan["images"].as_array().unwrap().len(), 4);
    // Strict (no --auto-update-bundle): the unpinned images are refused, all
    // of them, with the hint worded as this command's flag.
    let o = cnab_oci(
        d,
        &["fixup", "bundle.json", "--target", &target, "--dry-run"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("error: images differ from the bundle:"),
        "{err}"
    );
    assert_eq!(
        err.matches("contentDigest is not set in the bundle")
            .count(),
        4,
        "{err}"
    );
    assert!(
        err.contains("hint: run with --auto-update-bundle to update the bundle instead"),
        "{err}"
    );

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

/// The library's hints become `hint:` lines naming this command's flags,
/// after the error: an untrusted certificate (the error itself names no
/// flag), and missing credentials.
#[test]
fn failures_end_with_hint_lines() {
    let (tls, basic) = (Registry::tls(), Registry::basic());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = cnab_oci(d, &["pull", &format!("{}/a/b:1", tls.host())]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("is not trusted"),
        "{err}"
    );
    assert!(!lines[0].contains("--"), "the error names no flag: {err}");
    assert_eq!(
        lines[1..],
        [
            format!("hint: pass its CA certificate with --ca-cert FILE, or put it in /etc/docker/certs.d/{}/ca.crt", tls.host()),
            format!(
                "hint: to skip TLS verification, or to speak plain HTTP to it, name it in --insecure-registries {}",
                tls.host()
            ),
        ],
        "{err}"
    );

    let ca = basic.ca.as_ref().unwrap().ca_path();
    let o = cnab_oci(
        d,
        &[
            "pull",
            &format!("{}/a/b:1", basic.host()),
            "--ca-cert",
            ca.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("no credentials are configured"), "{err}");
    assert_eq!(
        err.lines().last(),
        Some(
            format!(
                "hint: log in with `docker login {}` or configure a credential helper",
                basic.host()
            )
            .as_str()
        ),
        "{err}"
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

/// SIGKILL in the middle of a push: the tag does not exist; the next push
/// completes, copies nothing the first one finished, and gives the same index
/// as an uninterrupted push.
#[tokio::test]
async fn sigkill_mid_push_then_rerun() {
    use std::fmt::Write as _;
    use std::io::BufRead;
    let (src, dst) = (Registry::plain(), Registry::plain());
    let config = registry_config(&[&src, &dst]);
    let client = cnab_oci::registry::Client::new(config.clone()).unwrap();
    // Eight images of 4 MiB each, one transfer at a time: long enough a push to
    // be killed in the middle.
    let mut images = String::new();
    for i in 0..8u64 {
        let img = cnab_oci::synth::build(&cnab_oci::synth::ImageSpec {
            seed: 100 + i,
            format: cnab_oci::synth::Format::Oci,
            layer_sizes: vec![4 << 20],
            shared_layers: vec![],
            platforms: vec![],
        });
        let repo = cnab_oci::registry::Repository {
            registry: src.host(),
            path: format!("big/img{i}"),
        };
        cnab_oci::synth::push(&client, &repo, &img, "1")
            .await
            .unwrap();
        let _ = write!(
            images,
            r#"{}"c{i}":{{"image":"{}/big/img{i}:1"}}"#,
            if i > 0 { "," } else { "" },
            src.host()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bundle.json"),
        format!(r#"{{"schemaVersion":"v1.0.0","name":"big","version":"1.0.0","invocationImages":[{{"image":"{}/big/img0:1"}}],"images":{{{images}}}}}"#, src.host()),
    )
    .unwrap();
    let target = format!("{}/killed/big:1", dst.host());
    let push = |target: &str| {
        Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
            .args([
                "push",
                "bundle.json",
                "--target",
                target,
                "--auto-update-bundle",
                "--output",
                "json",
                "--jobs",
                "1",
            ])
            .current_dir(d)
            .env("DOCKER_CONFIG", d.join("none"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = push(&target);
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut finished_before_kill = std::collections::HashSet::new();
    for line in stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["event"] == "node_finished" && v["action"] == "copy" {
            finished_before_kill.insert(v["digest"].as_str().unwrap().to_owned());
            if finished_before_kill.len() == 3 {
                Command::new("kill")
                    .args(["-KILL", &child.id().to_string()])
                    .status()
                    .unwrap();
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
    let tags = client
        .list_tags(&cnab_oci::registry::Repository {
            registry: dst.host(),
            path: "killed/big".into(),
        })
        .await;
    assert!(tags.map_or(true, |t| t.is_empty()), "no tag after a kill");

    let rerun = push(&target).wait_with_output().unwrap();
    assert!(rerun.status.success(), "{}", text(&rerun.stderr));
    let copied_again: Vec<String> = text(&rerun.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "node_finished" && v["action"] == "copy")
        .map(|v| v["digest"].as_str().unwrap().to_owned())
        .collect();
    assert!(!copied_again.is_empty(), "the rerun finished the work");
    assert!(
        copied_again
            .iter()
            .all(|d| !finished_before_kill.contains(d)),
        "nothing complete was copied again"
    );
    let digest = |o: &Output| {
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let uninterrupted = push(&format!("{}/clean/big:1", dst.host()))
        .wait_with_output()
        .unwrap();
    assert!(uninterrupted.status.success());
    assert_eq!(
        digest(&rerun),
        digest(&uninterrupted),
        "the same index as an uninterrupted push"
    );
}

/// Ctrl-C while blobs are in flight: the open upload sessions are cancelled
/// (a DELETE each), nothing is written, and the exit code is 130.
#[test]
fn ctrl_c_cancels_open_upload_sessions() {
    use cnab_oci::oci::media_type as mt;
    let (cfg, layer) = (
        cnab_oci::Digest::sha256(b"config"),
        cnab_oci::Digest::sha256(b"layer"),
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{cfg}","size":1000}},"layers":[{{"mediaType":"x","digest":"{layer}","size":1000}}]}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_CONFIG
    );
    let m_digest = cnab_oci::Digest::sha256(manifest.as_bytes()).to_string();
    let sessions = std::sync::atomic::AtomicUsize::new(0);
    let fake = Fake::start(move |r, _| {
        let path = r.path().to_owned();
        match r.method.as_str() {
            "HEAD" if path == "/v2/src/img/manifests/1" => crate::harness::fake::respond(
                200,
                &[
                    ("content-type", mt::OCI_MANIFEST),
                    ("docker-content-digest", &m_digest),
                    ("content-length", &manifest.len().to_string()),
                ],
                "",
            ),
            "GET" if path.starts_with("/v2/src/img/manifests/") => crate::harness::fake::respond(
                200,
                &[("content-type", mt::OCI_MANIFEST)],
                manifest.clone(),
            ),
            "GET" if path.starts_with("/v2/src/img/blobs/") => {
                stalled(&[("content-length", "1000")], b"x")
            }
            "POST" => {
                let n = sessions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                crate::harness::fake::respond(
                    202,
                    &[("location", &format!("/v2/dst/x/blobs/uploads/session-{n}"))],
                    "",
                )
            }
            "DELETE" => crate::harness::fake::respond(204, &[], ""),
            _ => crate::harness::fake::respond(404, &[], ""),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bundle.json"), format!(r#"{{"schemaVersion":"v1.0.0","name":"n","version":"1.0.0","invocationImages":[{{"image":"{}/src/img:1"}}]}}"#, fake.host())).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cnab-oci"))
        .args([
            "fixup",
            "bundle.json",
            "--target",
            &format!("{}/dst/x:1", fake.host()),
            "--insecure-registries",
            &fake.host(),
            "--auto-update-bundle",
        ])
        .current_dir(d)
        .env("DOCKER_CONFIG", d.join("none"))
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until both blobs are stalled in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path().contains("/blobs/"))
        .count()
        < 2
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let deletes: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path().to_owned())
        .collect();
    let opened: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .enumerate()
        .map(|(n, _)| format!("/v2/dst/x/blobs/uploads/session-{n}"))
        .collect();
    assert!(!opened.is_empty());
    let mut sorted = deletes.clone();
    sorted.sort();
    assert_eq!(sorted, opened, "every open session is cancelled");
    assert!(
        text(&out.stderr).contains(&format!(
            "cancelled {} open upload session(s)",
            opened.len()
        )),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 1, "only bundle.json");
}
