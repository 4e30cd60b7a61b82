//! `check-registry`: what a registry does with what a bundle push sends,
//! asked of the registry itself before the first push.
//!
//! The probe writes only untagged content into the repository: one config
//! blob (a tiny bundle), its config manifest in the first form the registry
//! accepts, a Docker schema 2 manifest of the same blob, and an OCI index of
//! both. No tag is written, so nothing appears in the repository's listing;
//! the manifests are deleted afterwards where the registry allows deletes
//! (distribution does not by default: they stay untagged, for its garbage
//! collection), and [`RegistryReport::left_behind`] says what stayed.

use super::Relocator;
use crate::convert::{self, ConfigManifestForm};
use crate::digest::Digest;
use crate::error::Result;
use crate::oci::{media_type as mt, Descriptor};
use crate::reference::Reference;
use crate::registry::family::{Family, MountAnswer};
use crate::registry::probe::Deleted;
use crate::registry::{MountOutcome, RegistryError, Repository};
use bytes::Bytes;
use serde::Serialize;

/// The bundle whose config blob the probe pushes: a valid CNAB bundle with
/// no images, named for the probe.
const PROBE_BUNDLE: &str = r#"{"schemaVersion":"v1.2.0","name":"cnab-oci-check-registry","version":"0.0.0","description":"written by cnab-oci check-registry; safe to delete","invocationImages":[]}"#;

/// An answer to one question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// It does.
    Yes,
    /// It does not.
    No,
    /// It could not be asked (an earlier step failed).
    Unknown,
}

/// One question and the registry's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable key (`cnab_config`, `mixed_index`, `mount`, `chunked_upload`,
    /// `referrers_api`).
    pub key: &'static str,
    /// The question, in words.
    pub question: &'static str,
    /// The answer.
    pub answer: Answer,
    /// What was seen: the status, the form taken, the header sent.
    pub detail: String,
}

/// What [`Relocator::check_registry`] found.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryReport {
    /// The registry host.
    pub registry: String,
    /// The repository probed.
    pub repository: String,
    /// The family the registry belongs to (by its name or the
    /// configuration), whose documented rules cnab-oci applies.
    pub family: Family,
    /// The answers, in the order asked.
    pub checks: Vec<Check>,
    /// What the probe left in the repository (untagged), with why.
    pub left_behind: Vec<String>,
}

impl Relocator {
    /// Asks the registry of `reference` what a bundle push needs to know,
    /// in `reference`'s repository:
    /// - `cnab_config`: does it take a config manifest with the CNAB config
    ///   media type (else which of push's fallback forms it takes);
    /// - `mixed_index`: does it take an OCI index that lists an OCI manifest
    ///   and a Docker schema 2 manifest (a bundle of Docker images);
    /// - `mount`: does a cross-repository mount answer `201` (mounted) or
    ///   `202` (upload instead);
    /// - `chunked_upload`: does it take a chunked upload, and with which
    ///   `OCI-Chunk-Min-Length`;
    /// - `referrers_api`: does it have the referrers API
    ///   (distribution-spec v1.1).
    ///
    /// # Errors
    /// The push of the probe's config blob fails (no push access, a
    /// repository that must exist first): nothing else is asked.
    pub async fn check_registry(&self, reference: &Reference) -> Result<RegistryReport> {
        let repo = Repository::of(reference);
        let r = self.probe(&repo).await;
        self.explained(Some(&repo), r)
    }

    async fn probe(&self, repo: &Repository) -> Result<RegistryReport> {
        let client = &self.client;
        let blob = Bytes::from(PROBE_BUNDLE.as_bytes().to_vec());
        let blob_desc = client
            .push_blob(repo, blob.clone(), mt::CNAB_CONFIG)
            .await?;
        let mut checks = Vec::new();
        let mut pushed: Vec<Descriptor> = Vec::new();
        // The config manifest, in push's order of forms.
        let mut accepted = None;
        let mut refused = Vec::new();
        for form in ConfigManifestForm::ALL {
            let bytes = convert::config_manifest(&blob, form);
            let desc = Descriptor::of(form.manifest_media_type(), &bytes);
            match put(client, repo, &desc, bytes).await {
                Ok(()) => {
                    accepted = Some((form, desc));
                    break;
                }
                Err(e) => refused.push(format!("`{}`: {}", form.name(), short(&e))),
            }
        }
        checks.push(Check {
            key: "cnab_config",
            question: "accepts the CNAB config media type",
            answer: match &accepted {
                Some((ConfigManifestForm::Cnab, _)) => Answer::Yes,
                _ => Answer::No,
            },
            detail: match (&accepted, refused.is_empty()) {
                (Some((f, _)), true) => format!("config manifest form `{}` accepted", f.name()),
                (Some((f, _)), false) => format!(
                    "refused {}; form `{}` accepted (push falls back to it)",
                    refused.join(", "),
                    f.name()
                ),
                (None, _) => format!("every form refused: {}", refused.join(", ")),
            },
        });
        if let Some((_, d)) = &accepted {
            pushed.push(d.clone());
        }
        checks.push(
            self.mixed_index(repo, &blob, accepted.as_ref(), &mut pushed)
                .await,
        );
        checks.push(self.mount(repo, &blob_desc).await);
        checks.push(
            match client.probe_chunked_upload(repo, blob.clone()).await {
                Ok(c) => Check {
                    key: "chunked_upload",
                    question: "supports chunked uploads",
                    answer: Answer::Yes,
                    detail: match c.min_length {
                        Some(n) => format!("OCI-Chunk-Min-Length: {n} bytes"),
                        None => "no minimum chunk length sent".into(),
                    },
                },
                Err(e) => Check {
                    key: "chunked_upload",
                    question: "supports chunked uploads",
                    answer: Answer::No,
                    detail: short(&e),
                },
            },
        );
        checks.push(
            self.referrers_api(repo, accepted.as_ref().map(|(_, d)| d))
                .await,
        );
        let mut left_behind = vec![format!(
            "config blob {} ({} bytes): blobs are removed by the registry's garbage collection",
            blob_desc.digest, blob_desc.size
        )];
        // Parents first: a registry may refuse to delete a manifest an index lists.
        for d in pushed.iter().rev() {
            match client.delete_manifest(repo, &d.digest).await {
                Ok(Deleted::Yes | Deleted::Absent) => {}
                Ok(Deleted::Refused) => left_behind.push(format!(
                    "manifest {} (untagged): the registry does not allow deletes",
                    d.digest
                )),
                Err(e) => left_behind.push(format!(
                    "manifest {} (untagged): delete failed: {}",
                    d.digest,
                    short(&e)
                )),
            }
        }
        Ok(RegistryReport {
            registry: repo.registry.clone(),
            repository: repo.path.clone(),
            family: client.family(&repo.registry),
            checks,
            left_behind,
        })
    }

    /// An OCI index of the accepted config manifest and a Docker schema 2
    /// manifest of the same blob.
    async fn mixed_index(
        &self,
        repo: &Repository,
        blob: &Bytes,
        accepted: Option<&(ConfigManifestForm, Descriptor)>,
        pushed: &mut Vec<Descriptor>,
    ) -> Check {
        let check = |answer, detail| Check {
            key: "mixed_index",
            question: "accepts an OCI index listing OCI and Docker manifests",
            answer,
            detail,
        };
        let Some((_, config)) = accepted else {
            return check(Answer::Unknown, "no config manifest was accepted".into());
        };
        let docker_bytes = convert::config_manifest(blob, ConfigManifestForm::Docker);
        let docker = Descriptor::of(mt::DOCKER_MANIFEST, &docker_bytes);
        if docker.digest != config.digest {
            if let Err(e) = put(&self.client, repo, &docker, docker_bytes).await {
                return check(
                    Answer::Unknown,
                    format!("a Docker schema 2 manifest was refused: {}", short(&e)),
                );
            }
            pushed.push(docker.clone());
        }
        let entry = |d: &Descriptor| serde_json::json!({"mediaType": d.media_type, "digest": d.digest.as_str(), "size": d.size});
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_INDEX,
            "manifests": [entry(config), entry(&docker)],
        }))
        .expect("JSON");
        let desc = Descriptor::of(mt::OCI_INDEX, &index);
        match put(&self.client, repo, &desc, index).await {
            Ok(()) => {
                pushed.push(desc);
                check(Answer::Yes, "accepted".into())
            }
            Err(e) => check(Answer::No, short(&e)),
        }
    }

    /// A mount of the probe's blob from the repository itself.
    async fn mount(&self, repo: &Repository, blob: &Descriptor) -> Check {
        let check = |answer, detail: String| Check {
            key: "mount",
            question: "mounts blobs across repositories (201, not 202)",
            answer,
            detail,
        };
        let known = match self.client.family(&repo.registry).mount_answer() {
            MountAnswer::Mounts => "",
            MountAnswer::ReferencedOnly => {
                "; documented: only blobs a manifest of the source refers to"
            }
            MountAnswer::Never => "; documented: never, the client uploads",
        };
        match self.client.mount_blob(repo, &blob.digest, repo).await {
            Ok(MountOutcome::Mounted) => check(Answer::Yes, format!("201 Created{known}")),
            Ok(MountOutcome::NotMounted(session)) => {
                let _ = self.client.cancel_upload(&session).await;
                check(
                    Answer::No,
                    format!("202 Accepted: an upload session instead{known}"),
                )
            }
            Err(e) => check(Answer::No, format!("refused: {}{known}", short(&e))),
        }
    }

    /// The referrers API, asked about the probe's config manifest.
    async fn referrers_api(&self, repo: &Repository, subject: Option<&Descriptor>) -> Check {
        let check = |answer, detail: String| Check {
            key: "referrers_api",
            question: "has the referrers API",
            answer,
            detail,
        };
        let subject = subject.map_or_else(
            || Digest::sha256(PROBE_BUNDLE.as_bytes()),
            |d| d.digest.clone(),
        );
        match self.client.referrers(repo, &subject, None).await {
            Ok(Some(_)) => check(Answer::Yes, "GET /v2/<name>/referrers/<digest>: 200".into()),
            Ok(None) => check(
                Answer::No,
                "404: referrers are kept in the referrers tag schema (sha256-<hex>)".into(),
            ),
            Err(e) => check(Answer::Unknown, short(&e)),
        }
    }
}

/// Puts manifest `bytes` by digest.
async fn put(
    client: &crate::registry::Client,
    repo: &Repository,
    desc: &Descriptor,
    bytes: Vec<u8>,
) -> std::result::Result<(), RegistryError> {
    client
        .put_manifest(repo, desc.digest.as_str(), bytes.into(), &desc.media_type)
        .await
        .map(drop)
}

/// An error in one line, without the registry and repository (the report
/// names them once).
fn short(e: &RegistryError) -> String {
    match e {
        RegistryError::Api { status, errors, .. } => {
            let codes: Vec<String> = errors
                .iter()
                .map(|a| {
                    if a.message.is_empty() {
                        a.code.to_string()
                    } else {
                        format!("{}: {}", a.code, a.message)
                    }
                })
                .collect();
            if codes.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status} {}", codes.join("; "))
            }
        }
        other => other.to_string(),
    }
}
