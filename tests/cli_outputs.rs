//! Output paths that are not plain files (issue 11 §10): a device is written
//! in place, a symbolic link is followed and stays a link, and new files get
//! the mode a shell's `>` gives, not a temporary file's `0600`.

use crate::harness::cnab_oci;
use crate::harness::fixtures::{registry_config, seed};
use crate::harness::Registry;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};

#[tokio::test]
async fn fixup_writes_devices_in_place_and_follows_links() {
    let reg = Registry::plain();
    let fx = seed(&reg, &registry_config(&[&reg])).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bundle.json"), fx.bundle.canonical_bytes()).unwrap();
    std::fs::create_dir(d.join("out")).unwrap();
    std::os::unix::fs::symlink("out/map.json", d.join("map-link.json")).unwrap();
    let o = cnab_oci(
        d,
        &[
            "fixup",
            "bundle.json",
            "--target",
            &format!("{}/outputs/demo:1", reg.host()),
            "--auto-update-bundle",
            "--bundle",
            "/dev/null",
            "--relocation-map",
            "map-link.json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(
        null.file_type().is_char_device(),
        "/dev/null is still a device"
    );
    let link = std::fs::symlink_metadata(d.join("map-link.json")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    let map: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("out/map.json")).unwrap()).unwrap();
    assert_eq!(map.as_object().unwrap().len(), 4);
    // The mode `>` gives under this process's umask (the same for the child).
    std::fs::write(d.join("probe"), b"").unwrap();
    let usual = std::fs::metadata(d.join("probe"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    let mode = std::fs::metadata(d.join("out/map.json"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, usual);
    let leftovers: Vec<_> = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["map.json"], "no temporary file left behind");
}

/// An output path that cannot be written is a usage error found before any
/// byte moves: exit 2, nothing pushed, no other output written.
#[tokio::test]
async fn unwritable_outputs_are_refused_before_any_work() {
    let reg = Registry::plain();
    let config = registry_config(&[&reg]);
    let fx = seed(&reg, &config).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bundle.json"), fx.bundle.canonical_bytes()).unwrap();
    std::fs::create_dir(d.join("adir")).unwrap();
    let target = format!("{}/unwritable/demo:1", reg.host());
    std::fs::write(d.join("afile"), b"").unwrap();
    for (cmd, bad, reason) in [
        (
            "fixup",
            "afile/map.json",
            "`afile` is a file, not a directory",
        ),
        (
            "push",
            "./good.json",
            "`good.json` is the same file; name two files",
        ),
        (
            "push",
            "nowhere/map.json",
            "the directory `nowhere` does not exist; create it first",
        ),
        ("fixup", "adir", "it is a directory; name a file"),
    ] {
        let o = cnab_oci(
            d,
            &[
                cmd,
                "bundle.json",
                "--target",
                &target,
                "--auto-update-bundle",
                "--bundle",
                "good.json",
                "--relocation-map",
                bad,
            ],
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {stderr}");
        assert_eq!(
            stderr.trim_end(),
            format!("error: cannot write `{bad}`: {reason}"),
            "{cmd}"
        );
        assert!(!d.join("good.json").exists(), "{cmd}: no other output");
    }
    let client = cnab_oci::registry::Client::new(config).unwrap();
    let repo = cnab_oci::registry::Repository {
        registry: reg.host(),
        path: "unwritable/demo".into(),
    };
    let tags = client.list_tags(&repo).await;
    assert!(
        tags.as_ref().map_or(true, Vec::is_empty),
        "nothing was pushed: {tags:?}"
    );
    let o = cnab_oci(
        d,
        &[
            "pull",
            &format!("{}/app/web:2.0", reg.host()),
            "--relocation-map",
            "adir",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!d.join("pulled.json").exists());
}

/// With `--output json`, a failure is one JSON line on stderr, like the
/// events, with its hints: nothing for a JSON reader to choke on.
#[test]
fn a_failure_in_json_mode_is_a_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = cnab_oci(
        dir.path(),
        &["--output", "json", "validate", "missing.json"],
    );
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["event"], "error");
    assert!(v["error"].as_str().unwrap().contains("missing.json"), "{v}");
    assert!(v["hints"].as_array().unwrap().is_empty(), "{v}");
}
