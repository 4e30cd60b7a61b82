//! The `cnab-oci` binary and referrers, against real distribution 2.8
//! registries: `--no-referrers` on push and copy leaves every `sha256-` tag
//! behind; a dry run's table lists each referrer it would carry (and the
//! one a platform filter leaves behind, with why) and writes nothing; the
//! JSON result's `referrers_carried`, `referrers_present` and
//! `referrers_left_behind` are what the target then holds, on a first
//! push, a rerun, a filtered push and a copy.

use crate::harness::client::{client_for, repo};
use crate::harness::cnab_oci;
use crate::harness::fixtures::{registry_config, seed, Fixture};
use crate::harness::signed::fixture::{digests, referrers_in, sign, signed_bundle, Signed};
use crate::harness::signed::{NOTATION_SIGNATURE, SIGSTORE_BUNDLE, SPDX_JSON};
use crate::harness::Registry;
use cnab_oci::Digest;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The signed fixture in `src`, and its bundle file in `dir`.
async fn signed_source(src: &Registry, dir: &Path) -> (Fixture, Signed) {
    let fx = seed(src, &registry_config(&[src])).await;
    let signed = sign(&client_for(src), src, &fx).await;
    std::fs::write(dir.join("bundle.json"), fx.bundle.canonical_bytes()).unwrap();
    (fx, signed)
}

/// Runs the command, which must succeed, and reads its JSON result.
fn json_result(dir: &Path, args: &[&str]) -> (Value, Output) {
    let o = cnab_oci(dir, args);
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o.stdout)));
    (v, o)
}

/// `(carried, present, left behind)` of a JSON result.
fn counts(v: &Value) -> (u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {v}"));
    (
        n("referrers_carried"),
        n("referrers_present"),
        n("referrers_left_behind"),
    )
}

/// How many `referrer_finished` events of action `push` are in `o`'s JSON
/// events (stderr).
fn pushed_events(o: &Output) -> usize {
    text(&o.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "referrer_finished" && e["action"] == "push")
        .count()
}

/// The tags of `path` in `reg`, sorted (none for a repository that does not
/// exist).
async fn tags(reg: &Registry, path: &str) -> Vec<String> {
    let mut t = client_for(reg)
        .list_tags(&repo(reg, path))
        .await
        .unwrap_or_default();
    t.sort();
    t
}

/// `--no-referrers` on push and on copy: the target gets the bundle tag
/// and nothing else, and the result counts no referrer.
#[tokio::test]
async fn no_referrers_carries_nothing() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, signed) = signed_source(&src, d).await;
    let target = format!("{}/prod/unsigned:1", dst.host());
    let (v, o) = json_result(
        d,
        &[
            "push",
            "bundle.json",
            "--target",
            &target,
            "--auto-update-bundle",
            "--no-referrers",
            "--output",
            "json",
        ],
    );
    assert_eq!(counts(&v), (0, 0, 0), "{v}");
    assert_eq!(pushed_events(&o), 0);
    assert_eq!(tags(&dst, "prod/unsigned").await, ["1"]);
    let client = client_for(&dst);
    for (digest, _) in &signed.artifacts {
        assert!(
            client
                .get_manifest_in(&repo(&dst, "prod/unsigned"), digest.as_str())
                .await
                .is_err(),
            "{digest} is not carried"
        );
    }

    // A copy of a signed bundle (its index signed too) with the flag.
    let (staging, _, _) = signed_bundle(&src, "staging/demo").await;
    let prod = format!("{}/prod/copied:1", dst.host());
    let (v, _) = json_result(
        d,
        &[
            "copy",
            &staging.to_string(),
            "--target",
            &prod,
            "--no-referrers",
            "--output",
            "json",
        ],
    );
    assert_eq!(counts(&v), (0, 0, 0), "{v}");
    assert_eq!(tags(&dst, "prod/copied").await, ["1"]);
    assert!(
        tags(&src, "staging/demo").await.len() > 1,
        "the source is signed"
    );
}

/// `push --dry-run` prints a line per referrer it would push, in the plan's
/// table, and the totals; with a platform filter, the index signature it
/// would leave behind and why; `--output json` lists them; nothing is
/// written.
#[tokio::test]
async fn a_dry_run_lists_what_would_be_carried() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, signed) = signed_source(&src, d).await;
    let target = format!("{}/prod/dry:1", dst.host());
    let args = [
        "push",
        "bundle.json",
        "--target",
        &target,
        "--auto-update-bundle",
        "--dry-run",
    ];
    let o = cnab_oci(d, &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    let short = |d: &Digest| d.as_str()[..19].to_owned();
    let line = |key: &str, i: usize, what: &str, subject: &Digest, action: &str| {
        format!(
            "{key:<24} {:<9} {:<16} {:>12}  {what} of {}  {action}",
            "referrer",
            short(signed.digest(i)),
            signed.artifacts[i].1.len(),
            short(subject),
        )
    };
    let inv = "invocationImages[0]";
    let web = r#"images["web"]"#;
    let tag = |i: usize| format!("tag {}", signed.cosign_tags[i]);
    let mut want = vec![
        line(inv, 0, &tag(0), &signed.installer, "push"),
        line(inv, 1, &tag(1), &signed.installer, "push"),
        line(inv, 2, &tag(2), &signed.installer, "push"),
        line(web, 3, NOTATION_SIGNATURE, &signed.web_index, "push"),
        line(web, 4, SIGSTORE_BUNDLE, &signed.web_amd64, "push"),
        line(web, 5, SPDX_JSON, &signed.web_arm64, "push"),
        line(web, 6, NOTATION_SIGNATURE, &signed.sbom, "push"),
    ];
    let mut got: Vec<&str> = table.lines().filter(|l| l.contains(" referrer ")).collect();
    got.sort_unstable();
    want.sort();
    assert_eq!(got, want, "{table}");
    assert!(
        table
            .trim_end()
            .ends_with("7 referrer(s) to carry, 0 present, 0 left behind"),
        "{table}"
    );
    assert!(tags(&dst, "prod/dry").await.is_empty(), "nothing written");

    // With a platform filter: web's index signature is left behind.
    let mut filtered = args.to_vec();
    filtered.extend(["--component-platforms", "linux/amd64"]);
    let o = cnab_oci(d, &filtered);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    let left: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("left behind:"))
        .collect();
    assert_eq!(left.len(), 1, "{table}");
    let behind = format!(
        "{web:<24} {:<9} {:<16} {:>12}  {NOTATION_SIGNATURE} of {}  left behind: the platform filter rewrote index {} as ",
        "referrer",
        short(signed.digest(3)),
        signed.artifacts[3].1.len(),
        short(&signed.web_index),
        signed.web_index,
    );
    assert!(left[0].starts_with(&behind), "{}\n{behind}", left[0]);
    assert!(
        left[0].ends_with(", which it does not cover"),
        "{}",
        left[0]
    );
    assert_eq!(
        table
            .lines()
            .filter(|l| l.ends_with("  push") && l.contains(" referrer "))
            .count(),
        4,
        "cosign's three and the amd64 bundle: {table}"
    );
    assert!(
        table
            .trim_end()
            .ends_with("4 referrer(s) to carry, 0 present, 1 left behind"),
        "{table}"
    );

    let mut json = args.to_vec();
    json.extend(["--output", "json"]);
    let o = cnab_oci(d, &json);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let plan: Value = serde_json::from_str(text(&o.stdout).lines().last().unwrap()).unwrap();
    let mut carried: Vec<&str> = plan["referrers"]["carried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["descriptor"]["digest"].as_str().unwrap())
        .collect();
    carried.sort_unstable();
    let mut all: Vec<&str> = signed.artifacts.iter().map(|(d, _)| d.as_str()).collect();
    all.sort_unstable();
    assert_eq!(carried, all);
    assert_eq!(plan["referrers"]["left_behind"], serde_json::json!([]));
    assert_eq!(plan["totals"]["referrers_carried"], 7);
    assert!(
        tags(&dst, "prod/dry").await.is_empty(),
        "still nothing written"
    );
}

/// The JSON result's referrer counts are what the target holds: a first
/// push carries seven (and says so in seven `referrer_finished` events), a
/// rerun finds them present, a filtered push carries four and leaves one
/// behind, and a copy of the first carries seven more into a new
/// repository.
#[tokio::test]
async fn json_counts_match_the_target() {
    let (src, dst) = (Registry::plain(), Registry::plain());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, signed) = signed_source(&src, d).await;
    let client = client_for(&dst);
    let mut all: Vec<Digest> = signed.artifacts.iter().map(|(d, _)| d.clone()).collect();
    all.sort();
    let push = |path: &str, extra: &[&str]| {
        let target = format!("{}/{path}:1", dst.host());
        let mut args = vec![
            "push",
            "bundle.json",
            "--target",
            &target,
            "--auto-update-bundle",
            "--output",
            "json",
        ];
        args.extend(extra);
        json_result(d, &args)
    };

    let (v, o) = push("prod/demo", &[]);
    assert_eq!(counts(&v), (7, 0, 0), "{v}");
    assert_eq!(pushed_events(&o), 7);
    let held = referrers_in(&client, &repo(&dst, "prod/demo")).await;
    assert_eq!(digests(&held), all, "{held:?}");
    assert!(held.values().flatten().all(|(_, there)| *there), "{held:?}");

    let (v, o) = push("prod/demo", &[]);
    assert_eq!(counts(&v), (0, 7, 0), "a rerun: {v}");
    assert_eq!(pushed_events(&o), 0);
    let again = referrers_in(&client, &repo(&dst, "prod/demo")).await;
    assert_eq!(again, held, "nothing added");

    let (v, _) = push("prod/amd64", &["--component-platforms", "linux/amd64"]);
    assert_eq!(counts(&v), (4, 0, 1), "{v}");
    let held = digests(&referrers_in(&client, &repo(&dst, "prod/amd64")).await);
    let mut want = vec![
        signed.digest(0).clone(),
        signed.digest(1).clone(),
        signed.digest(2).clone(),
        signed.digest(4).clone(),
    ];
    want.sort();
    assert_eq!(held, want, "cosign's three and the amd64 bundle");
    assert!(client
        .get_manifest_in(&repo(&dst, "prod/amd64"), signed.digest(3).as_str())
        .await
        .is_err());

    let source = format!("{}/prod/demo:1", dst.host());
    let copied = format!("{}/prod/copy:1", dst.host());
    let (v, o) = json_result(
        d,
        &["copy", &source, "--target", &copied, "--output", "json"],
    );
    assert_eq!(counts(&v), (7, 0, 0), "{v}");
    assert_eq!(pushed_events(&o), 7);
    let held = referrers_in(&client, &repo(&dst, "prod/copy")).await;
    assert_eq!(digests(&held), all, "{held:?}");
}
