//! `check-registry` (`Relocator::check_registry`) against each fake, its
//! host named as its family: the family reported, every answer, the details
//! that say what the family documents, and nothing tagged left behind (the
//! fakes allow deletes: only the probe's blob stays).

use super::as_family;
use crate::harness::fixtures::relocator;
use crate::harness::memreg::{MemRegistry, Mode};
use cnab_oci::ops::Answer::{self, No, Yes};
use cnab_oci::ops::RegistryReport;
use cnab_oci::registry::family::Family;
use cnab_oci::Reference;

/// The keys of the report's checks, in order.
const KEYS: [&str; 5] = [
    "cnab_config",
    "mixed_index",
    "mount",
    "chunked_upload",
    "referrers_api",
];

/// What one fake should answer.
struct Case {
    name: &'static str,
    mode: Mode,
    family: Family,
    /// The repository probed.
    path: &'static str,
    /// Made first (ECR's repository, Harbor's project).
    create: Option<&'static str>,
    answers: [Answer; 5],
    /// `(key, words)`: the check's detail holds them.
    details: &'static [(&'static str, &'static str)],
}

fn cases() -> Vec<Case> {
    let case = |name, mode, family, path, answers| Case {
        name,
        mode,
        family,
        path,
        create: None,
        answers,
        details: &[],
    };
    vec![
        Case {
            details: &[("mount", "201 Created"), ("chunked_upload", "no minimum")],
            ..case(
                "distribution",
                Mode::distribution(),
                Family::Distribution,
                "team/app",
                [Yes, Yes, Yes, Yes, No],
            )
        },
        case(
            "distribution v3",
            Mode::distribution_v3(),
            Family::Distribution,
            "team/app",
            [Yes, Yes, Yes, Yes, No],
        ),
        case(
            "Docker Hub",
            Mode::docker_hub(),
            Family::DockerHub,
            "team/app",
            [Yes, Yes, Yes, Yes, No],
        ),
        Case {
            details: &[("cnab_config", "`oci-manifest+cnab-config` accepted")],
            ..case(
                "GitLab",
                Mode::gitlab(),
                Family::GitLab,
                "group/project/app",
                [Yes, Yes, Yes, Yes, No],
            )
        },
        Case {
            create: Some("team/app"),
            details: &[(
                "mount",
                "documented: only blobs a manifest of the source refers to",
            )],
            ..case(
                "ECR",
                Mode::ecr(),
                Family::Ecr,
                "team/app",
                [Yes, Yes, Yes, Yes, Yes],
            )
        },
        case(
            "ACR",
            Mode::acr(),
            Family::Acr,
            "team/app",
            [Yes, Yes, Yes, Yes, Yes],
        ),
        Case {
            details: &[
                (
                    "cnab_config",
                    "form `docker-manifest` accepted (push falls back to it)",
                ),
                ("cnab_config", "layers: null"),
            ],
            ..case(
                "GCR",
                Mode::gcr(),
                Family::Gcr,
                "p/app",
                [No, Yes, Yes, Yes, No],
            )
        },
        Case {
            details: &[
                (
                    "cnab_config",
                    "form `oci-manifest+oci-config` accepted (push falls back to it)",
                ),
                ("mixed_index", "MANIFEST_INVALID"),
            ],
            ..case(
                "Quay",
                Mode::quay(),
                Family::Quay,
                "org/app",
                [No, No, Yes, Yes, No],
            )
        },
        Case {
            create: Some("team"),
            ..case(
                "Harbor",
                Mode::harbor(),
                Family::Harbor,
                "team/app",
                [Yes, Yes, Yes, Yes, Yes],
            )
        },
        Case {
            details: &[(
                "mount",
                "202 Accepted: an upload session instead; documented: never, the client uploads",
            )],
            ..case(
                "Artifactory",
                Mode::artifactory(),
                Family::Artifactory,
                "team/app",
                [Yes, Yes, No, Yes, Yes],
            )
        },
        Case {
            details: &[("chunked_upload", "OCI-Chunk-Min-Length: 1048576 bytes")],
            ..case(
                "a chunk minimum",
                Mode::distribution().with_chunk_min_length(1 << 20),
                Family::Distribution,
                "team/app",
                [Yes, Yes, Yes, Yes, No],
            )
        },
        // The probe's config blob (over 100 bytes) is refused as one `PUT`
        // and goes again in chunks.
        case(
            "a proxy's body limit",
            Mode::distribution().with_max_monolithic_body(100),
            Family::Distribution,
            "team/app",
            [Yes, Yes, Yes, Yes, No],
        ),
    ]
}

fn answers(report: &RegistryReport) -> Vec<(&'static str, Answer)> {
    report.checks.iter().map(|c| (c.key, c.answer)).collect()
}

#[tokio::test]
async fn check_registry_answers_for_each_fake() {
    for c in cases() {
        let reg = MemRegistry::start(c.mode);
        if let Some(path) = c.create {
            reg.create_repository(path);
        }
        let target = Reference::parse(&format!("{}/{}", reg.host(), c.path)).unwrap();
        let report = relocator(&as_family(&reg, c.family))
            .check_registry(&target)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let name = c.name;
        assert_eq!(report.family, c.family, "{name}");
        let want: Vec<(&str, Answer)> = KEYS.into_iter().zip(c.answers).collect();
        assert_eq!(answers(&report), want, "{name}: {report:#?}");
        for (key, words) in c.details {
            let check = report.checks.iter().find(|k| k.key == *key).unwrap();
            assert!(
                check.detail.contains(words),
                "{name}: `{words}` in {key}: {}",
                check.detail
            );
        }
        assert_eq!(
            report.left_behind.len(),
            1,
            "{name}: {:#?}",
            report.left_behind
        );
        assert!(reg.tags(c.path).is_empty(), "{name}: no tag");
        assert_eq!(reg.open_uploads(), 0, "{name}: no session left open");
    }
}

/// Without the family named, a fake on `127.0.0.1` is reported as
/// distribution, and the documented mount answer is not added.
#[tokio::test]
async fn check_registry_without_the_family_named_is_distribution() {
    let reg = MemRegistry::start(Mode::artifactory());
    let target = Reference::parse(&format!("{}/team/app", reg.host())).unwrap();
    let report = relocator(&reg.config())
        .check_registry(&target)
        .await
        .unwrap();
    assert_eq!(report.family, Family::Distribution);
    assert_eq!(report.checks[2].answer, No);
    assert_eq!(
        report.checks[2].detail,
        "202 Accepted: an upload session instead"
    );
}

/// ECR's fake with the repository not made: the probe's first upload gets
/// no answer, and ECR's rule explains it.
#[tokio::test]
async fn check_registry_on_ecr_without_the_repository_names_the_rule() {
    let reg = MemRegistry::start(Mode::ecr());
    let target = Reference::parse(&format!("{}/team/app", reg.host())).unwrap();
    let e = relocator(&as_family(&reg, Family::Ecr))
        .check_registry(&target)
        .await
        .unwrap_err();
    super::assert_rule(
        &e,
        Family::Ecr,
        "aws/containers-roadmap#1970",
        false,
        &["broken connection", "`team/app` may not exist"],
        &["aws ecr create-repository"],
    );
}
