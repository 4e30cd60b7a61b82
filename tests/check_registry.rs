//! `check-registry` (issue 14) against a real distribution 2.8 registry
//! (the library and the CLI, text and JSON) and against the in-memory fake
//! with the referrers API and deletes: every answer, and nothing tagged
//! left behind.

use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{registry_config, relocator};
use crate::harness::memreg::{MemRegistry, Mode};
use crate::harness::{cnab_oci as run, Registry};
use cnab_oci::ops::{Answer, Relocator};
use cnab_oci::Reference;
use serde_json::Value;

fn answers(report: &cnab_oci::ops::RegistryReport) -> Vec<(&'static str, Answer)> {
    report.checks.iter().map(|c| (c.key, c.answer)).collect()
}

#[tokio::test]
async fn distribution_answers_every_question_and_keeps_no_tag() {
    let reg = Registry::plain();
    let config = registry_config(&[&reg]);
    let target = Reference::parse(&format!("{}/team/app", reg.host())).unwrap();
    let report = relocator(&config).check_registry(&target).await.unwrap();
    assert_eq!(
        answers(&report),
        [
            ("cnab_config", Answer::Yes),
            ("mixed_index", Answer::Yes),
            ("mount", Answer::Yes),
            ("chunked_upload", Answer::Yes),
            ("referrers_api", Answer::No),
        ],
        "{report:#?}"
    );
    assert_eq!(report.checks[2].detail, "201 Created");
    // The harness's registry allows deletes: the three manifests are gone,
    // the blob stays for the garbage collection.
    assert_eq!(report.left_behind.len(), 1, "{:#?}", report.left_behind);
    assert!(report.left_behind[0].contains("garbage collection"));
    assert!(client_for(&reg)
        .list_tags(&repo(&reg, "team/app"))
        .await
        .map_or(true, |t| t.is_empty()));

    // The CLI: a table, and JSON.
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "check-registry",
            &target.to_string(),
            "--insecure-registries",
            &reg.host(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("(family: distribution)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("has the referrers API") && l.contains(" no ")),
        "{text}"
    );
    let out = run(
        dir.path(),
        &[
            "check-registry",
            &target.to_string(),
            "--insecure-registries",
            &reg.host(),
            "--output",
            "json",
        ],
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["family"], "distribution");
    // A family named on the command line; a bad one is a usage error.
    let quay = format!("{}=quay", reg.host());
    let out = run(
        dir.path(),
        &[
            "check-registry",
            &target.to_string(),
            "--insecure-registries",
            &reg.host(),
            "--registry-family",
            &quay,
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(family: Quay)"));
    let bad = format!("{}=nexus", reg.host());
    let out = run(
        dir.path(),
        &[
            "check-registry",
            &target.to_string(),
            "--registry-family",
            &bad,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown registry family `nexus`"));
    assert_eq!(doc["checks"][1]["key"], "mixed_index");
    assert_eq!(doc["checks"][1]["answer"], "yes");
    assert_eq!(doc["checks"][4]["answer"], "no");
}

#[tokio::test]
async fn a_registry_with_the_referrers_api_and_deletes_leaves_only_the_blob() {
    let reg = MemRegistry::start(Mode::referrers());
    let r = Relocator::new(reg.config()).unwrap();
    let target = Reference::parse(&format!("{}/team/app", reg.host())).unwrap();
    let report = r.check_registry(&target).await.unwrap();
    assert_eq!(report.checks[4].answer, Answer::Yes, "{report:#?}");
    assert_eq!(report.left_behind.len(), 1, "{:#?}", report.left_behind);
    assert!(reg.tags("team/app").is_empty());
    assert_eq!(
        reg.open_uploads(),
        0,
        "the mount's and the chunked upload's sessions are closed"
    );
}

#[tokio::test]
async fn a_probe_that_cannot_push_fails_naming_why() {
    let reg = Registry::basic();
    // No credentials: the first push is refused.
    let mut config = registry_config(&[]);
    config.ca_certs = registry_config(&[&reg]).ca_certs;
    let target = Reference::parse(&format!("{}/team/app", reg.host())).unwrap();
    let e = relocator(&config)
        .check_registry(&target)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not authorised"), "{e}");
}
