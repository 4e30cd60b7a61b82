//! Signed artifacts made in the test, with no network and no cosign or
//! notation binary, in the shapes those tools push, as [`synth::Image`]
//! values (blobs by digest, manifests children first with their
//! descriptors), and the functions that push them with the library's
//! [`Client`].
//!
//! - cosign's tag scheme (sigstore/cosign `specs/SIGNATURE_SPEC.md`): a
//!   simple-signing signature under `sha256-<hex>.sig`
//!   ([`cosign_signature`], checked by [`verify_cosign`]), an in-toto
//!   attestation in a DSSE envelope under `.att` ([`cosign_attestation`],
//!   [`verify_attestation`]), an SPDX SBOM under `.sbom` ([`cosign_sbom`]);
//!   pushed by [`push_tagged`].
//! - OCI 1.1 referrers (a manifest with a `subject`), in `referrers`: a
//!   Notation signature, a cosign v3 Sigstore bundle, an SBOM, a signature
//!   of any of them; pushed by [`push_referrer`], which also keeps the
//!   fallback tag `sha256-<hex>` as the distribution spec tells a client to.
//! - The signed bundle the referrer tests share, in `fixture`: the test
//!   bundle signed in its source, a pushed bundle index signed, and what a
//!   target holds of referrers.
//!
//! Keys are ECDSA P-256 with SHA-256 ([`Key`]), signatures ASN.1 DER, as
//! cosign's own keys. cosign's artifacts carry a fresh signature each time
//! (ECDSA is randomised); the referrers are deterministic.

pub mod fixture;
mod referrers;

pub use referrers::{
    cosign_v3_bundle, notation_signature, push_referrer, referrers_tag, sbom_referrer,
    signature_of, CREATED, EMPTY_CONFIG, EMPTY_CONFIG_DIGEST, EMPTY_MEDIA_TYPE, JOSE,
    NOTATION_SIGNATURE, SIGSTORE_BUNDLE, SLSA_V1, SPDX_JSON, THUMBPRINT_ANNOTATION,
};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use cnab_oci::oci::{media_type as mt, Descriptor};
use cnab_oci::registry::{Client, Manifest, RegistryError, Repository};
use cnab_oci::synth::{self, Image};
use cnab_oci::Digest;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The layer type of a cosign simple-signing signature.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding its base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer type of a DSSE envelope (cosign attestations).
pub const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
/// The payload type of an in-toto statement in a DSSE envelope.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The predicate type of [`cosign_attestation`].
pub const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";
/// The layer type of `cosign attach sbom` with an SPDX JSON document.
pub const SPDX_TEXT: &str = "text/spdx+json";

/// An ECDSA P-256 key pair, made fresh for a test.
pub struct Key {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Key {
    /// A new key pair.
    pub fn generate() -> Key {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("read it back");
        Key { pair, rng }
    }

    /// The public key: an uncompressed SEC1 point.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// An ASN.1 DER ECDSA signature of SHA-256(`message`).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&self.rng, message)
            .expect("sign")
            .as_ref()
            .to_vec()
    }
}

/// Whether `signature` (ASN.1 DER) of `message` verifies with `public_key`.
fn verifies(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, public_key)
        .verify(message, signature)
        .is_ok()
}

/// An artifact that lives under a tag (cosign's scheme), not as a referrer.
#[derive(Debug, Clone)]
pub struct Tagged {
    /// Its blobs and its manifest.
    pub image: Image,
    /// `sha256-<hex>.sig`, `.att` or `.sbom`.
    pub tag: String,
}

/// cosign's tag for what is attached to `subject`: `sha256-<hex>.<suffix>`
/// (`sig`, `att`, `sbom`).
pub fn cosign_tag(subject: &Digest, suffix: &str) -> String {
    format!("{}-{}.{suffix}", subject.algorithm(), subject.encoded())
}

/// One blob of an artifact: its media type, bytes and annotations.
struct Part {
    /// Its media type in the manifest.
    media_type: String,
    /// Its bytes.
    bytes: Bytes,
    /// Its descriptor's annotations (`null`: none).
    annotations: Value,
}

impl Part {
    fn new(media_type: &str, bytes: impl Into<Bytes>) -> Part {
        Part {
            media_type: media_type.to_owned(),
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

/// An OCI image manifest over `config` and `layers`, with `fields` added
/// (`artifactType`, `subject`, `annotations`), and its blobs.
fn artifact(config: &Part, layers: &[Part], fields: Value) -> Image {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Part::descriptor).collect::<Vec<_>>(),
    });
    if let (Value::Object(m), Value::Object(fields)) = (&mut m, fields) {
        m.extend(fields);
    }
    let bytes = Bytes::from(serde_json::to_vec(&m).expect("json"));
    let blobs: BTreeMap<Digest, Bytes> = std::iter::once(config)
        .chain(layers)
        .map(|p| (Digest::sha256(&p.bytes), p.bytes.clone()))
        .collect();
    Image {
        blobs,
        manifests: vec![(Descriptor::of(mt::OCI_MANIFEST, &bytes), bytes)],
    }
}

/// The OCI image config cosign writes for its artifacts: empty but for
/// the layers' digests.
fn cosign_config(layers: &[&Part]) -> Part {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| Digest::sha256(&l.bytes).to_string())
        .collect();
    let config = json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    Part::new(mt::OCI_CONFIG, serde_json::to_vec(&config).expect("json"))
}

/// cosign's simple-signing payload for `subject` in `repository` (the
/// identity is written, and ignored when verifying).
fn simple_signing_payload(repository: &str, subject: &Digest) -> String {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{repository}"}},"image":{{"docker-manifest-digest":"{subject}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
}

/// A cosign signature of `subject` (named in `repository`, as
/// `host/path`) with `key`: one simple-signing layer (the payload) whose
/// annotation holds the base64 signature, an OCI config, under
/// `sha256-<hex>.sig`.
pub fn cosign_signature(repository: &str, subject: &Digest, key: &Key) -> Tagged {
    let payload = simple_signing_payload(repository, subject);
    let mut layer = Part::new(SIMPLESIGNING, payload.clone());
    layer.annotations = json!({SIGNATURE_ANNOTATION: B64.encode(key.sign(payload.as_bytes()))});
    Tagged {
        image: artifact(&cosign_config(&[&layer]), &[layer], json!({})),
        tag: cosign_tag(subject, "sig"),
    }
}

/// The layers of `manifest` of media type `media_type`, each with its blob
/// from `blobs` (checked against its digest) and its annotations.
fn layers_of(
    manifest: &[u8],
    blobs: &BTreeMap<Digest, Bytes>,
    media_type: &str,
) -> Result<Vec<(Bytes, Value)>, String> {
    let m: Value =
        serde_json::from_slice(manifest).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    let mut out = Vec::new();
    for layer in m["layers"].as_array().into_iter().flatten() {
        if layer["mediaType"] != media_type {
            continue;
        }
        let digest = layer["digest"]
            .as_str()
            .and_then(|d| Digest::parse(d).ok())
            .ok_or("a layer without a valid digest")?;
        let bytes = blobs
            .get(&digest)
            .ok_or_else(|| format!("blob {digest} is missing"))?;
        if !digest.matches(bytes) {
            return Err(format!("blob {digest} does not match its digest"));
        }
        out.push((bytes.clone(), layer["annotations"].clone()));
    }
    if out.is_empty() {
        return Err(format!("no `{media_type}` layer"));
    }
    Ok(out)
}

/// Checks a cosign signature manifest as `cosign verify --key` does: a
/// simple-signing layer whose payload names `expected` as
/// `docker-manifest-digest` and whose signature verifies with `public_key`.
///
/// # Errors
/// What failed, for each signature layer, when none verifies.
pub fn verify_cosign(
    manifest: &[u8],
    blobs: &BTreeMap<Digest, Bytes>,
    expected: &Digest,
    public_key: &[u8],
) -> Result<(), String> {
    let mut failures = Vec::new();
    for (payload, annotations) in layers_of(manifest, blobs, SIMPLESIGNING)? {
        let check = || -> Result<(), String> {
            let p: Value = serde_json::from_slice(&payload)
                .map_err(|e| format!("the payload is not JSON: {e}"))?;
            if p["critical"]["type"] != "cosign container image signature" {
                return Err("the payload is not a cosign signature".into());
            }
            let signed = &p["critical"]["image"]["docker-manifest-digest"];
            if signed != expected.as_str() {
                return Err(format!("it signs {signed}, not {expected}"));
            }
            let sig = annotations[SIGNATURE_ANNOTATION]
                .as_str()
                .ok_or("no signature annotation")?;
            let sig = B64
                .decode(sig)
                .map_err(|e| format!("the signature is not base64: {e}"))?;
            if verifies(public_key, &payload, &sig) {
                Ok(())
            } else {
                Err("the signature does not verify with the key".into())
            }
        };
        match check() {
            Ok(()) => return Ok(()),
            Err(e) => failures.push(e),
        }
    }
    Err(failures.join("; "))
}

/// DSSE's pre-authentication encoding of a payload (what is signed).
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A minimal in-toto statement about `subject` (named `name`) with
/// predicate type `predicate_type`.
fn in_toto_statement(name: &str, subject: &Digest, predicate_type: &str) -> Vec<u8> {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{"name": name, "digest": {subject.algorithm(): subject.encoded()}}],
        "predicate": {
            "builder": {"id": "https://example.invalid/cnab-oci-tests"},
            "buildType": "https://example.invalid/synthetic",
        },
    });
    serde_json::to_vec(&statement).expect("json")
}

/// A cosign attestation of `subject` (named in `repository`) with `key`:
/// one DSSE envelope layer (an in-toto SLSA provenance statement, signed
/// over its PAE) with the `predicateType` annotation, under
/// `sha256-<hex>.att`.
pub fn cosign_attestation(repository: &str, subject: &Digest, key: &Key) -> Tagged {
    let statement = in_toto_statement(repository, subject, SLSA_V02);
    let sig = key.sign(&pae(IN_TOTO, &statement));
    let envelope = json!({
        "payloadType": IN_TOTO,
        "payload": B64.encode(&statement),
        "signatures": [{"keyid": "", "sig": B64.encode(sig)}],
    });
    let mut layer = Part::new(DSSE, serde_json::to_vec(&envelope).expect("json"));
    layer.annotations = json!({"predicateType": SLSA_V02});
    Tagged {
        image: artifact(&cosign_config(&[&layer]), &[layer], json!({})),
        tag: cosign_tag(subject, "att"),
    }
}

/// Checks a cosign attestation manifest: a DSSE layer whose in-toto
/// statement is about `expected`, whose predicate type is the layer's
/// `predicateType`, and whose signature verifies with `public_key`.
///
/// # Errors
/// What failed, for each envelope, when none verifies.
pub fn verify_attestation(
    manifest: &[u8],
    blobs: &BTreeMap<Digest, Bytes>,
    expected: &Digest,
    public_key: &[u8],
) -> Result<(), String> {
    let mut failures = Vec::new();
    for (envelope, annotations) in layers_of(manifest, blobs, DSSE)? {
        let check = || -> Result<(), String> {
            let env: Value = serde_json::from_slice(&envelope)
                .map_err(|e| format!("the envelope is not JSON: {e}"))?;
            let payload_type = env["payloadType"].as_str().ok_or("no payloadType")?;
            let statement = B64
                .decode(env["payload"].as_str().ok_or("no payload")?)
                .map_err(|e| format!("the payload is not base64: {e}"))?;
            let s: Value = serde_json::from_slice(&statement)
                .map_err(|e| format!("the statement is not JSON: {e}"))?;
            if s["predicateType"] != annotations["predicateType"] {
                return Err("the predicate type differs from the annotation".into());
            }
            let about = &s["subject"][0]["digest"][expected.algorithm()];
            if about != expected.encoded() {
                return Err(format!("it is about {about}, not {expected}"));
            }
            let message = pae(payload_type, &statement);
            let signed = env["signatures"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|sig| {
                    sig["sig"]
                        .as_str()
                        .and_then(|s| B64.decode(s).ok())
                        .is_some_and(|sig| verifies(public_key, &message, &sig))
                });
            if signed {
                Ok(())
            } else {
                Err("no signature verifies with the key".into())
            }
        };
        match check() {
            Ok(()) => return Ok(()),
            Err(e) => failures.push(e),
        }
    }
    Err(failures.join("; "))
}

/// A minimal SPDX 2.3 JSON document describing `subject` (named `name`).
fn spdx_document(name: &str, subject: &Digest) -> Vec<u8> {
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!("https://example.invalid/spdx/{}", subject.encoded()),
        "creationInfo": {"created": "2025-01-01T00:00:00Z", "creators": ["Tool: cnab-oci-tests"]},
        "packages": [{
            "name": name,
            "SPDXID": "SPDXRef-Package-image",
            "downloadLocation": "NOASSERTION",
            "checksums": [{"algorithm": "SHA256", "checksumValue": subject.encoded()}],
        }],
        "relationships": [{
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": "SPDXRef-Package-image",
        }],
    });
    serde_json::to_vec(&doc).expect("json")
}

/// An SBOM as `cosign attach sbom` leaves it: one SPDX JSON layer, an OCI
/// config, under `sha256-<hex>.sbom`. Deterministic.
pub fn cosign_sbom(repository: &str, subject: &Digest) -> Tagged {
    let layer = Part::new(SPDX_TEXT, spdx_document(repository, subject));
    Tagged {
        image: artifact(&cosign_config(&[&layer]), &[layer], json!({})),
        tag: cosign_tag(subject, "sbom"),
    }
}

/// Pushes `artifact` into `repo` as cosign does: its blobs (those missing),
/// its manifest by digest, then its tag. Returns the manifest's descriptor.
///
/// # Errors
/// The registry refused or failed a request.
pub async fn push_tagged(
    client: &Client,
    repo: &Repository,
    artifact: &Tagged,
) -> Result<Descriptor, RegistryError> {
    synth::push(client, repo, &artifact.image, &artifact.tag).await
}

/// Manifest `reference` (a tag or digest) of `repo` and the blobs of its
/// config and layers, read through `client` (each verified), to check
/// what a registry holds with [`verify_cosign`] and the like.
///
/// # Errors
/// The registry refused or failed a request, or the manifest is not JSON.
pub async fn pull_artifact(
    client: &Client,
    repo: &Repository,
    reference: &str,
) -> Result<(Manifest, BTreeMap<Digest, Bytes>), RegistryError> {
    let m = client.get_manifest_in(repo, reference).await?;
    let v: Value = serde_json::from_slice(&m.bytes).map_err(|e| RegistryError::Protocol {
        registry: repo.registry.clone(),
        operation: format!("read manifest `{reference}`"),
        reason: e.to_string(),
    })?;
    let mut blobs = BTreeMap::new();
    for d in std::iter::once(&v["config"]).chain(v["layers"].as_array().into_iter().flatten()) {
        let Ok(desc) = serde_json::from_value::<Descriptor>(d.clone()) else {
            continue;
        };
        let bytes = client.get_blob(repo, &desc, 16 << 20).await?;
        blobs.insert(desc.digest, bytes);
    }
    Ok((m, blobs))
}
