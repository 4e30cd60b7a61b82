//! The signed preset's attachments: signatures, attestations and OCI 1.1
//! referrers of every manifest of medium's images, in the shapes cosign and
//! Notation push them, deterministic per seed. A cut-down copy of the ideas
//! in the test suite's `tests/harness/signed/` (which cannot be shared: it
//! is test code); the test suite verifies its signatures, so here every
//! signature is a stand-in of an ECDSA P-256 signature's size: the
//! benchmark measures carrying them, not checking them.
//!
//! Of the workload's manifests, in order (every image index and each of its
//! child manifests):
//! - every one gets a cosign simple-signing signature, `sha256-<hex>.sig`;
//! - every second one a cosign in-toto attestation (DSSE), `.att`;
//! - every third one a Notation-shaped signature, an OCI 1.1 referrer,
//!   listed in the referrers tag schema's index `sha256-<hex>` as a client
//!   writes it for a registry without the referrers API (distribution 2.8);
//! - the first (the installer's manifest) also an SBOM referrer, which has a
//!   Notation signature of its own (a referrer of a referrer).

use crate::workload::{Attached, WAttached, WBlob, WFallback, WManifest, Workload};
use anyhow::{Context, Result};
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use bytes::Bytes;
use cnab_oci::oci::media_type as mt;
use cnab_oci::registry::{Client, Repository};
use cnab_oci::Digest;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";
const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";
const NOTATION_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
const JOSE: &str = "application/jose+json";
const THUMBPRINT_ANNOTATION: &str = "io.cncf.notary.x509chain.thumbprint#S256";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const SPDX_JSON: &str = "application/spdx+json";
const CREATED: &str = "2025-10-07T00:00:00Z";
/// The host the signatures' payloads name (cosign writes it; verifying
/// ignores it): fixed, so that the digests do not depend on a port.
const SIGNED_HOST: &str = "bench.invalid";
/// Attachments pushed at once by `generate`.
const PUSH_CONCURRENCY: usize = 8;

/// One blob of an artifact.
struct Part {
    media_type: &'static str,
    bytes: Bytes,
    annotations: Value,
}

impl Part {
    fn new(media_type: &'static str, bytes: impl Into<Bytes>) -> Part {
        Part {
            media_type,
            bytes: bytes.into(),
            annotations: Value::Null,
        }
    }

    fn descriptor(&self) -> Value {
        let mut d = json!({
            "mediaType": self.media_type,
            "digest": Digest::sha256(&self.bytes).as_str(),
            "size": self.bytes.len(),
        });
        if !self.annotations.is_null() {
            d["annotations"] = self.annotations.clone();
        }
        d
    }
}

/// A manifest to attach, its blobs, and where it goes.
struct Artifact {
    repo: String,
    kind: &'static str,
    subject: Subject,
    tag: Option<String>,
    manifest: Bytes,
    blobs: Vec<Bytes>,
}

/// What a manifest's `subject` names.
#[derive(Clone)]
struct Subject {
    media_type: String,
    digest: Digest,
    size: u64,
}

impl Subject {
    fn of(m: &WManifest) -> Result<Subject> {
        Ok(Subject {
            media_type: m.media_type.clone(),
            digest: Digest::parse(&m.digest).with_context(|| format!("digest `{}`", m.digest))?,
            size: m.size,
        })
    }

    fn field(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest.as_str(), "size": self.size})
    }
}

/// An OCI image manifest over `config` and `layers`, with `fields` added.
fn manifest(config: &Part, layers: &[Part], fields: Value) -> (Bytes, Vec<Bytes>) {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Part::descriptor).collect::<Vec<_>>(),
    });
    if let (Value::Object(m), Value::Object(fields)) = (&mut m, fields) {
        m.extend(fields);
    }
    let blobs = std::iter::once(config)
        .chain(layers)
        .map(|p| p.bytes.clone())
        .collect();
    (Bytes::from(serde_json::to_vec(&m).expect("json")), blobs)
}

/// 70 bytes shaped as an ASN.1 DER ECDSA P-256 signature, from `what`.
fn stand_in_signature(seed: u64, what: &[u8]) -> Vec<u8> {
    let r = Digest::sha256(&[&seed.to_be_bytes()[..], what].concat());
    let s = Digest::sha256(r.as_str().as_bytes());
    let hex = |d: &Digest| {
        (0..32)
            .map(|i| u8::from_str_radix(&d.encoded()[2 * i..2 * i + 2], 16).expect("hex"))
            .collect::<Vec<u8>>()
    };
    [
        &[0x30, 0x44, 0x02, 0x20][..],
        &hex(&r),
        &[0x02, 0x20],
        &hex(&s),
    ]
    .concat()
}

/// The OCI config cosign writes for its artifacts: empty but for the
/// layer's digest.
fn cosign_config(layer: &Part) -> Part {
    let config = json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&layer.bytes).as_str()]},
    });
    Part::new(mt::OCI_CONFIG, serde_json::to_vec(&config).expect("json"))
}

fn cosign_tag(subject: &Digest, suffix: &str) -> String {
    format!("{}-{}.{suffix}", subject.algorithm(), subject.encoded())
}

fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.encoded())
}

/// cosign's signature: one simple-signing layer (the payload) with the
/// base64 signature in an annotation.
fn cosign_signature(repo: &str, s: &Subject, seed: u64) -> Artifact {
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{SIGNED_HOST}/{repo}"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        s.digest
    );
    let mut layer = Part::new(SIMPLESIGNING, payload.clone());
    let sig = stand_in_signature(seed, payload.as_bytes());
    layer.annotations = json!({SIGNATURE_ANNOTATION: B64.encode(sig)});
    let (manifest, blobs) = manifest(&cosign_config(&layer), &[layer], json!({}));
    Artifact {
        repo: repo.to_owned(),
        kind: "sig",
        subject: s.clone(),
        tag: Some(cosign_tag(&s.digest, "sig")),
        manifest,
        blobs,
    }
}

/// A minimal in-toto statement about `s`.
fn statement(repo: &str, s: &Subject) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": SLSA_V02,
        "subject": [{"name": format!("{SIGNED_HOST}/{repo}"), "digest": {s.digest.algorithm(): s.digest.encoded()}}],
        "predicate": {
            "builder": {"id": "https://bench.invalid/cnab-oci-bench"},
            "buildType": "https://bench.invalid/synthetic",
        },
    }))
    .expect("json")
}

/// cosign's attestation: one DSSE envelope layer of an SLSA provenance
/// statement, with its `predicateType` annotation.
fn cosign_attestation(repo: &str, s: &Subject, seed: u64) -> Artifact {
    let st = statement(repo, s);
    let pae = [
        format!("DSSEv1 {} {IN_TOTO} {} ", IN_TOTO.len(), st.len()).as_bytes(),
        &st,
    ]
    .concat();
    let envelope = json!({
        "payloadType": IN_TOTO,
        "payload": B64.encode(&st),
        "signatures": [{"keyid": "", "sig": B64.encode(stand_in_signature(seed, &pae))}],
    });
    let mut layer = Part::new(DSSE, serde_json::to_vec(&envelope).expect("json"));
    layer.annotations = json!({"predicateType": SLSA_V02});
    let (manifest, blobs) = manifest(&cosign_config(&layer), &[layer], json!({}));
    Artifact {
        repo: repo.to_owned(),
        kind: "att",
        subject: s.clone(),
        tag: Some(cosign_tag(&s.digest, "att")),
        manifest,
        blobs,
    }
}

/// A Notation-shaped signature referrer: config type
/// [`NOTATION_SIGNATURE`] (bytes `{}`), one JWS layer over the payload
/// naming the subject, `subject`, the thumbprint annotation.
fn notation_signature(repo: &str, s: &Subject, seed: u64) -> Artifact {
    let protected = B64URL.encode(
        serde_json::to_vec(&json!({
            "alg": "ES256",
            "crit": ["io.cncf.notary.signingScheme"],
            "cty": "application/vnd.cncf.notary.payload.v1+json",
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": CREATED,
        }))
        .expect("json"),
    );
    let payload =
        B64URL.encode(serde_json::to_vec(&json!({"targetArtifact": s.field()})).expect("json"));
    let input = format!("{protected}.{payload}");
    let certificate = format!("cnab-oci-bench certificate {seed}");
    let jws = json!({
        "payload": payload,
        "protected": protected,
        "header": {"x5c": [B64.encode(&certificate)]},
        "signature": B64URL.encode(stand_in_signature(seed, input.as_bytes())),
    });
    let (manifest, blobs) = manifest(
        &Part::new(NOTATION_SIGNATURE, Bytes::from_static(b"{}")),
        &[Part::new(JOSE, serde_json::to_vec(&jws).expect("json"))],
        json!({
            "subject": s.field(),
            "annotations": {
                THUMBPRINT_ANNOTATION: format!("[\"{}\"]", Digest::sha256(certificate.as_bytes()).encoded()),
                "org.opencontainers.image.created": CREATED,
            },
        }),
    );
    Artifact {
        repo: repo.to_owned(),
        kind: "notation",
        subject: s.clone(),
        tag: None,
        manifest,
        blobs,
    }
}

/// An SBOM referrer (`oras attach --artifact-type application/spdx+json`):
/// the empty config, one SPDX JSON layer, `subject`.
fn sbom_referrer(repo: &str, s: &Subject) -> Artifact {
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{SIGNED_HOST}/{repo}"),
        "documentNamespace": format!("https://bench.invalid/spdx/{}", s.digest.encoded()),
        "creationInfo": {"created": CREATED, "creators": ["Tool: cnab-oci-bench"]},
        "packages": [{
            "name": repo,
            "SPDXID": "SPDXRef-Package-image",
            "downloadLocation": "NOASSERTION",
            "checksums": [{"algorithm": "SHA256", "checksumValue": s.digest.encoded()}],
        }],
    });
    let (manifest, blobs) = manifest(
        &Part::new(EMPTY_MEDIA_TYPE, Bytes::from_static(b"{}")),
        &[Part::new(
            SPDX_JSON,
            serde_json::to_vec(&doc).expect("json"),
        )],
        json!({
            "artifactType": SPDX_JSON,
            "subject": s.field(),
            "annotations": {"org.opencontainers.image.created": CREATED},
        }),
    );
    Artifact {
        repo: repo.to_owned(),
        kind: "sbom",
        subject: s.clone(),
        tag: None,
        manifest,
        blobs,
    }
}

/// The attachments of `w`'s manifests, subjects before their referrers.
fn plan(w: &Workload) -> Result<Vec<Artifact>> {
    let mut out = Vec::new();
    for (i, m) in w.manifests.iter().enumerate() {
        let s = Subject::of(m)?;
        let seed = w.seed * 1_000_000 + i as u64;
        out.push(cosign_signature(&m.repo, &s, seed));
        if i % 2 == 0 {
            out.push(cosign_attestation(&m.repo, &s, seed));
        }
        if i % 3 == 0 {
            out.push(notation_signature(&m.repo, &s, seed));
        }
        if i == 0 {
            let sbom = sbom_referrer(&m.repo, &s);
            let of_sbom = Subject {
                media_type: mt::OCI_MANIFEST.to_owned(),
                digest: Digest::sha256(&sbom.manifest),
                size: sbom.manifest.len() as u64,
            };
            out.push(sbom);
            out.push(notation_signature(&m.repo, &of_sbom, seed + 500_000));
        }
    }
    Ok(out)
}

/// A referrers tag schema entry for referrer `bytes`: `artifactType` (its
/// own, else its config's media type) and its annotations.
fn index_entry(bytes: &[u8]) -> Value {
    let m: Value = serde_json::from_slice(bytes).expect("json");
    let mut entry = json!({
        "mediaType": mt::OCI_MANIFEST,
        "digest": Digest::sha256(bytes).as_str(),
        "size": bytes.len(),
    });
    if let Some(t) = m
        .get("artifactType")
        .or(m.get("config").and_then(|c| c.get("mediaType")))
    {
        entry["artifactType"] = t.clone();
    }
    if let Some(a) = m.get("annotations") {
        entry["annotations"] = a.clone();
    }
    entry
}

/// Pushes every attachment of `w`'s manifests into `registry`, then the
/// referrers tag schema's indexes, and records them in `w.attached`
/// (blobs not in `unique` already, which gains them).
pub(crate) async fn attach(
    client: &Client,
    registry: &str,
    w: &mut Workload,
    unique: &mut BTreeSet<String>,
) -> Result<()> {
    let artifacts = plan(w)?;
    let repository = |path: &str| Repository {
        registry: registry.to_owned(),
        path: path.to_owned(),
    };
    futures::stream::iter(&artifacts)
        .map(|a| {
            let repo = repository(&a.repo);
            async move {
                for b in &a.blobs {
                    if client
                        .blob_exists(&repo, &Digest::sha256(b))
                        .await?
                        .is_none()
                    {
                        client
                            .push_blob(&repo, b.clone(), "application/octet-stream")
                            .await?;
                    }
                }
                let digest = Digest::sha256(&a.manifest);
                let reference = a.tag.clone().unwrap_or_else(|| digest.to_string());
                client
                    .put_manifest(&repo, &reference, a.manifest.clone(), mt::OCI_MANIFEST)
                    .await
                    .with_context(|| format!("pushing {registry}/{}:{reference}", a.repo))?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(PUSH_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    // The tag schema: one index per subject of referrers by `subject`.
    let mut lists: BTreeMap<(String, Digest), Vec<&Artifact>> = BTreeMap::new();
    for a in artifacts.iter().filter(|a| a.tag.is_none()) {
        lists
            .entry((a.repo.clone(), a.subject.digest.clone()))
            .or_default()
            .push(a);
    }
    let mut fallback = Vec::new();
    for ((repo, subject), referrers) in &lists {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_INDEX,
            "manifests": referrers.iter().map(|a| index_entry(&a.manifest)).collect::<Vec<_>>(),
        });
        let tag = fallback_tag(subject);
        let bytes = Bytes::from(serde_json::to_vec(&index).expect("json"));
        client
            .put_manifest(&repository(repo), &tag, bytes, mt::OCI_INDEX)
            .await
            .with_context(|| format!("pushing {registry}/{repo}:{tag}"))?;
        fallback.push(WFallback {
            repo: repo.clone(),
            tag,
            subject: subject.to_string(),
            referrers: referrers
                .iter()
                .map(|a| Digest::sha256(&a.manifest).to_string())
                .collect(),
        });
    }
    let mut attached = Attached {
        fallback,
        ..Attached::default()
    };
    for a in &artifacts {
        for b in &a.blobs {
            let digest = Digest::sha256(b).to_string();
            if unique.insert(digest.clone()) {
                attached.blobs.push(WBlob {
                    digest,
                    size: b.len() as u64,
                    repo: a.repo.clone(),
                });
            }
        }
        attached.manifests.push(WAttached {
            manifest: WManifest {
                digest: Digest::sha256(&a.manifest).to_string(),
                media_type: mt::OCI_MANIFEST.to_owned(),
                size: a.manifest.len() as u64,
                repo: a.repo.clone(),
                index: false,
            },
            kind: a.kind.to_owned(),
            subject: a.subject.digest.to_string(),
            tag: a.tag.clone(),
        });
    }
    w.attached = attached;
    Ok(())
}
