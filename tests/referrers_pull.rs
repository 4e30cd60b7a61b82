//! What `pull` reports of referrers, from a real distribution 2.8
//! registry: the library's `Pulled.referrers` names each referrer of the
//! signed bundle (its image, subject, digest, how it was found, its
//! `artifactType`, its depth), and the bundle index's own with no image;
//! the CLI's `pull` prints one line per referrer (or `none` per unsigned
//! image) and, with `--output json`, carries `referrers` and
//! `referrers_not_searched`; a source that refuses its tag listing (as an
//! ECR policy without `ecr:ListImages` does) is reported as not searched,
//! in all three.

use crate::harness::cnab_oci;
use crate::harness::fake::respond;
use crate::harness::fixtures::{registry_config, relocator};
use crate::harness::proxy::Proxy;
use crate::harness::signed::fixture::{signed_bundle, IndexSigned, Signed};
use crate::harness::signed::{referrers_tag, NOTATION_SIGNATURE, SIGSTORE_BUNDLE, SPDX_JSON};
use crate::harness::Registry;
use cnab_oci::relocate::FoundReferrer;
use cnab_oci::Reference;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// One referrer as `pull` should report it: `(image key or "bundle",
/// subject, digest, found_by, tag, kind, artifactType, depth)`, as the JSON
/// result spells them (`tag` and `kind` null where they do not apply; a
/// cosign tag's `artifactType` is not compared: it is known only once the
/// manifest is read).
type Row = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    u64,
);

/// Every referrer the signed bundle has, as `pull` should report it.
fn expected(signed: &Signed, index: &IndexSigned) -> BTreeSet<Row> {
    let d = |i: usize| signed.digest(i).to_string();
    let installer = "invocationImages[0]".to_owned();
    let web = r#"images["web"]"#.to_owned();
    let cosign = |key: &str, subject: &str, digest: String, tag: &str, kind: &str| {
        (
            key.to_owned(),
            subject.to_owned(),
            digest,
            "tag".to_owned(),
            Some(tag.to_owned()),
            Some(kind.to_owned()),
            None,
            1,
        )
    };
    let by_subject = |key: &str, subject: &cnab_oci::Digest, digest: String, at: &str, depth| {
        (
            key.to_owned(),
            subject.to_string(),
            digest,
            "fallback_tag".to_owned(),
            Some(referrers_tag(subject)),
            None,
            Some(at.to_owned()),
            depth,
        )
    };
    let i = signed.installer.as_str();
    let kinds = ["signature", "attestation", "sbom"];
    let mut rows: BTreeSet<Row> = (0..3)
        .map(|n| cosign(&installer, i, d(n), &signed.cosign_tags[n], kinds[n]))
        .collect();
    rows.extend([
        by_subject(&web, &signed.web_index, d(3), NOTATION_SIGNATURE, 1),
        by_subject(&web, &signed.web_amd64, d(4), SIGSTORE_BUNDLE, 1),
        by_subject(&web, &signed.web_arm64, d(5), SPDX_JSON, 1),
        by_subject(&web, &signed.sbom, d(6), NOTATION_SIGNATURE, 2),
        cosign(
            "bundle",
            index.index.as_str(),
            index.cosign.0.to_string(),
            &index.cosign_tag,
            "signature",
        ),
        by_subject(
            "bundle",
            &index.index,
            index.notation.0.to_string(),
            NOTATION_SIGNATURE,
            1,
        ),
    ]);
    rows
}

/// A referrer of the JSON result as a [`Row`].
fn row(v: &Value) -> Row {
    let found_by = v["found_by"].as_str().unwrap().to_owned();
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let at = if found_by == "tag" {
        None
    } else {
        text("artifact_type")
    };
    (
        v["key"].as_str().unwrap_or("bundle").to_owned(),
        v["subject"].as_str().unwrap().to_owned(),
        v["descriptor"]["digest"].as_str().unwrap().to_owned(),
        found_by,
        text("tag"),
        text("kind"),
        at,
        v["depth"].as_u64().unwrap(),
    )
}

/// A library referrer as a [`Row`], through its serialisation (the one the
/// CLI prints).
fn row_of(f: &FoundReferrer) -> Row {
    row(&serde_json::to_value(f).unwrap())
}

/// The library lists every referrer of every image and of the bundle
/// index, with their digests, kinds and types; nothing went unsearched.
#[tokio::test]
async fn pulled_lists_every_referrer_per_image() {
    let reg = Registry::plain();
    let (reference, signed, index) = signed_bundle(&reg, "prod/demo").await;
    let pulled = relocator(&registry_config(&[&reg]))
        .pull(&reference)
        .await
        .unwrap();
    assert_eq!(pulled.digest, index.index);
    let got: Vec<Row> = pulled.referrers.iter().map(row_of).collect();
    assert_eq!(got.len(), 9, "each referrer once: {got:#?}");
    assert_eq!(
        got.into_iter().collect::<BTreeSet<_>>(),
        expected(&signed, &index),
        "each referrer under its own image, the bundle index's with no key"
    );
    for f in pulled.referrers.iter().filter(|f| f.key.is_none()) {
        assert_eq!(f.image, reference.to_string(), "the bundle's own");
    }
    assert!(
        pulled.referrers_not_searched.is_empty(),
        "{:?}",
        pulled.referrers_not_searched
    );
}

/// `cnab-oci pull` prints a line per referrer under its image (and `none`
/// for an unsigned image); `--output json` carries them all, and an empty
/// `referrers_not_searched`.
#[tokio::test]
async fn the_cli_pull_shows_the_referrers() {
    let reg = Registry::plain();
    let (reference, signed, index) = signed_bundle(&reg, "prod/demo").await;
    let dir = tempfile::tempdir().unwrap();
    let r = reference.to_string();
    let o = cnab_oci(dir.path(), &["pull", &r]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let line = |key: &str, digest: &cnab_oci::Digest, what: &str| {
        format!("{key:<24} {:<20} {what}", &digest.as_str()[..19])
    };
    let tag = |n: usize| {
        let kind = ["signature", "attestation", "SBOM"][n];
        format!("cosign {kind} ({})", signed.cosign_tags[n])
    };
    let web = r#"images["web"]"#;
    let short_sbom = &signed.sbom.as_str()[..19];
    let host = reg.host();
    let want = [
        format!("{:<24} {:<20} REFERRER", "IMAGE", "DIGEST"),
        line(
            "bundle",
            &index.cosign.0,
            &format!("cosign signature ({})", index.cosign_tag),
        ),
        line("bundle", &index.notation.0, NOTATION_SIGNATURE),
        line("invocationImages[0]", signed.digest(0), &tag(0)),
        line("invocationImages[0]", signed.digest(1), &tag(1)),
        line("invocationImages[0]", signed.digest(2), &tag(2)),
        format!(
            "{:<24} {:<20} none ({host}/app/cache:4.0)",
            r#"images["cache"]"#, "-"
        ),
        format!(
            "{:<24} {:<20} none ({host}/app/db:3.0)",
            r#"images["db"]"#, "-"
        ),
        line(web, signed.digest(3), NOTATION_SIGNATURE),
        line(web, signed.digest(4), SIGSTORE_BUNDLE),
        line(web, signed.digest(5), SPDX_JSON),
        line(
            web,
            signed.digest(6),
            &format!("{NOTATION_SIGNATURE}, of referrer {short_sbom}"),
        ),
    ];
    let mut got: Vec<&str> = out.lines().collect();
    assert_eq!(got[0], want[0], "{out}");
    got[1..].sort_unstable();
    let mut sorted: Vec<&str> = want[1..].iter().map(String::as_str).collect();
    sorted.sort_unstable();
    assert_eq!(&got[1..], &sorted[..], "{out}");
    // Each image's lines are together, in the bundle's order.
    let keys: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let mut grouped = keys.clone();
    grouped.dedup();
    assert_eq!(
        grouped,
        [
            "bundle",
            "invocationImages[0]",
            r#"images["cache"]"#,
            r#"images["db"]"#,
            r#"images["web"]"#
        ],
        "{out}"
    );

    let o = cnab_oci(dir.path(), &["pull", &r, "--output", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["digest"], index.index.as_str());
    let got: Vec<Row> = doc["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(row)
        .collect();
    assert_eq!(got.len(), 9, "{doc}");
    assert_eq!(
        got.into_iter().collect::<BTreeSet<_>>(),
        expected(&signed, &index),
        "each referrer under its own image, the bundle index's with no key"
    );
    assert_eq!(doc["referrers_not_searched"], json!([]));
}

/// A registry that refuses the tag listing (`403 DENIED`, as ECR answers
/// credentials without `ecr:ListImages`): `pull` succeeds, finds no
/// referrer (distribution has no referrers API to ask instead), and says
/// which store was not searched and why, in the library, the text and the
/// JSON output.
#[tokio::test]
async fn a_refused_tag_listing_is_reported_as_not_searched() {
    let reg = Registry::plain();
    signed_bundle(&reg, "prod/demo").await;
    let proxy = Proxy::start(reg.base_url(), |r, _| {
        (r.method == "GET" && r.path().ends_with("/tags/list")).then(|| {
            respond(
                403,
                &[("content-type", "application/json")],
                r#"{"errors":[{"code":"DENIED","message":"not authorized to list images"}]}"#,
            )
        })
    });
    let through = Reference::parse(&format!("{}/prod/demo:1", proxy.host())).unwrap();
    let pulled = relocator(&registry_config(&[&reg]))
        .pull(&through)
        .await
        .unwrap();
    assert!(pulled.referrers.is_empty(), "{:?}", pulled.referrers);
    let store = format!("{}/prod/demo", proxy.host());
    let n = &pulled.referrers_not_searched;
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(
        (n[0].store.as_str(), n[0].action),
        (store.as_str(), "list the tags")
    );
    assert!(
        n[0].error.contains("403") || n[0].error.contains("DENIED"),
        "{}",
        n[0].error
    );

    let dir = tempfile::tempdir().unwrap();
    let t = through.to_string();
    let o = cnab_oci(dir.path(), &["pull", &t]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let warning = format!(
        "warning: cannot list the tags of `{store}`, so its signatures were not looked for: "
    );
    assert_eq!(
        out.lines().last().map(|l| l.starts_with(&warning)),
        Some(true),
        "{out}"
    );
    assert_eq!(out.matches("warning:").count(), 1, "{out}");
    assert_eq!(
        out.matches(" none (").count(),
        5,
        "no image has a referrer: {out}"
    );

    let o = cnab_oci(dir.path(), &["pull", &t, "--output", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["referrers"], json!([]));
    let n = doc["referrers_not_searched"].as_array().unwrap();
    assert_eq!(n.len(), 1, "{doc}");
    assert_eq!(n[0]["store"], store.as_str());
    assert_eq!(n[0]["action"], "list the tags");
    assert!(n[0]["error"].is_string());
}
