//! OCI 1.1 referrers: manifests with a `subject`, as Notation, cosign v3
//! and SBOM tools push them, and the push a spec-following client (oras)
//! makes, the fallback tag included (distribution spec "Pushing Manifests
//! with Subject", "Referrers Tag Schema"). Deterministic: the same subject
//! gives the same digests.

use super::{artifact, in_toto_statement, pae, spdx_document, Part, IN_TOTO};
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use bytes::Bytes;
use cnab_oci::oci::{media_type as mt, Descriptor};
use cnab_oci::registry::{Client, RegistryError, Repository};
use cnab_oci::synth::Image;
use cnab_oci::Digest;
use serde_json::{json, Value};

/// The media type of the empty descriptor (OCI image spec, "Guidance for
/// an Empty Descriptor").
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Its bytes.
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// Their digest.
pub const EMPTY_CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// The config media type of a Notation signature (its artifact type).
pub const NOTATION_SIGNATURE: &str = "application/vnd.cncf.notary.signature";
/// The layer type of a JWS Notation signature envelope.
pub const JOSE: &str = "application/jose+json";
/// The annotation Notation requires on a signature manifest.
pub const THUMBPRINT_ANNOTATION: &str = "io.cncf.notary.x509chain.thumbprint#S256";
/// The Sigstore bundle type of cosign v3's referrers.
pub const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type of [`cosign_v3_bundle`].
pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
/// The artifact and layer type of [`sbom_referrer`].
pub const SPDX_JSON: &str = "application/spdx+json";
/// The creation time the referrers are annotated with.
pub const CREATED: &str = "2025-10-07T00:00:00Z";

/// `subject` as a manifest's `subject` field: media type, digest, size.
fn subject_field(subject: &Descriptor) -> Value {
    json!({
        "mediaType": subject.media_type,
        "digest": subject.digest.as_str(),
        "size": subject.size,
    })
}

fn empty_config() -> Part {
    Part::new(EMPTY_MEDIA_TYPE, Bytes::from_static(EMPTY_CONFIG))
}

fn b64url_json(v: &Value) -> String {
    B64URL.encode(serde_json::to_vec(v).expect("json"))
}

/// A Notation signature of `subject` (a manifest or index in any
/// repository, or another referrer): an OCI image manifest with config type
/// [`NOTATION_SIGNATURE`] (bytes `{}`), one [`JOSE`] layer shaped as a JWS
/// over Notation's payload (`targetArtifact` = the subject), `subject`, and
/// the [`THUMBPRINT_ANNOTATION`]. The signature bytes are a stand-in: no
/// certificate chain exists to verify them.
pub fn notation_signature(subject: &Descriptor) -> Image {
    let certificate = format!("cnab-oci test certificate for {}", subject.digest);
    let protected = b64url_json(&json!({
        "alg": "ES256",
        "crit": ["io.cncf.notary.signingScheme"],
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": CREATED,
    }));
    let payload = b64url_json(&json!({"targetArtifact": subject_field(subject)}));
    let signing_input = format!("{protected}.{payload}");
    let jws = json!({
        "payload": payload,
        "protected": protected,
        "header": {"x5c": [B64.encode(&certificate)]},
        "signature": B64URL.encode(Digest::sha256(signing_input.as_bytes()).encoded()),
    });
    let thumbprint = Digest::sha256(certificate.as_bytes());
    artifact(
        &Part::new(NOTATION_SIGNATURE, Bytes::from_static(EMPTY_CONFIG)),
        &[Part::new(JOSE, serde_json::to_vec(&jws).expect("json"))],
        json!({
            "subject": subject_field(subject),
            "annotations": {
                THUMBPRINT_ANNOTATION: format!("[\"{}\"]", thumbprint.encoded()),
                "org.opencontainers.image.created": CREATED,
            },
        }),
    )
}

/// A signature referrer of `referrer` (an SBOM or attestation referrer, or
/// anything else): [`notation_signature`] with it as subject, for
/// referrers of referrers.
pub fn signature_of(referrer: &Descriptor) -> Image {
    notation_signature(referrer)
}

/// A cosign v3 signature of `subject` (`cosign sign` with the new bundle
/// format): the empty config, `artifactType` [`SIGSTORE_BUNDLE`], one layer
/// of that type (a bundle with a DSSE envelope of an SLSA v1 statement),
/// `subject`, and cosign's annotations. The signature bytes are a stand-in.
pub fn cosign_v3_bundle(subject: &Descriptor) -> Image {
    let statement = in_toto_statement(subject.digest.as_str(), &subject.digest, SLSA_V1);
    let stand_in = Digest::sha256(&pae(IN_TOTO, &statement));
    let bundle = json!({
        "mediaType": SIGSTORE_BUNDLE,
        "verificationMaterial": {"publicKey": {"hint": "cnab-oci-tests"}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": B64.encode(&statement),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": B64.encode(stand_in.encoded())}],
        },
    });
    artifact(
        &empty_config(),
        &[Part::new(
            SIGSTORE_BUNDLE,
            serde_json::to_vec(&bundle).expect("json"),
        )],
        json!({
            "artifactType": SIGSTORE_BUNDLE,
            "subject": subject_field(subject),
            "annotations": {
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": SLSA_V1,
                "org.opencontainers.image.created": CREATED,
            },
        }),
    )
}

/// An SBOM referrer of `subject` (`oras attach --artifact-type
/// application/spdx+json`): the empty config, `artifactType`
/// [`SPDX_JSON`], one SPDX JSON layer of that type, `subject`.
pub fn sbom_referrer(subject: &Descriptor) -> Image {
    artifact(
        &empty_config(),
        &[Part::new(
            SPDX_JSON,
            spdx_document(subject.digest.as_str(), &subject.digest),
        )],
        json!({
            "artifactType": SPDX_JSON,
            "subject": subject_field(subject),
            "annotations": {"org.opencontainers.image.created": CREATED},
        }),
    )
}

/// The referrers fallback tag of `subject` (distribution spec v1.1.1,
/// "Referrers Tag Schema"): `<alg>-<ref>`, the encoded digest cut to 64
/// characters.
pub fn referrers_tag(subject: &Digest) -> String {
    let encoded = subject.encoded();
    format!(
        "{}-{}",
        subject.algorithm(),
        &encoded[..encoded.len().min(64)]
    )
}

/// The entry of a referrers index for manifest `bytes` (`desc`): media
/// type, digest, size, `artifactType` (its own, else its config's media
/// type), and all its annotations.
fn index_entry(desc: &Descriptor, bytes: &[u8]) -> Value {
    let m: Value = serde_json::from_slice(bytes).expect("a referrer is JSON");
    let mut entry = json!({
        "mediaType": desc.media_type,
        "digest": desc.digest.as_str(),
        "size": desc.size,
    });
    if let Some(t) = m
        .get("artifactType")
        .or_else(|| m.get("config").and_then(|c| c.get("mediaType")))
    {
        entry["artifactType"] = t.clone();
    }
    if let Some(a) = m.get("annotations").filter(|a| a.is_object()) {
        entry["annotations"] = a.clone();
    }
    entry
}

/// Pushes referrer `image` of `subject` into `repo` as a spec-following
/// client does: its blobs (those missing), its manifests by digest; then,
/// with `fallback` (for a registry without the referrers API), the
/// fallback tag ([`referrers_tag`]): pulled, an empty index on `404`, the
/// entry appended unless there already (`artifactType` and annotations
/// copied), pushed back under the tag. Returns the referrer's descriptor.
///
/// Written apart from the library's own fallback code, which is under test.
///
/// # Errors
/// The registry refused or failed a request, or the fallback tag holds
/// something other than an image index ([`RegistryError::Protocol`]; the
/// spec's client "SHOULD report a failure").
pub async fn push_referrer(
    client: &Client,
    repo: &Repository,
    image: &Image,
    subject: &Descriptor,
    fallback: bool,
) -> Result<Descriptor, RegistryError> {
    let (root, bytes) = image.manifests.last().expect("an artifact has a manifest");
    let named: Value = serde_json::from_slice(bytes).expect("a referrer is JSON");
    assert_eq!(
        named["subject"]["digest"],
        subject.digest.as_str(),
        "push_referrer: the manifest's subject is not `subject`"
    );
    for (digest, blob) in &image.blobs {
        if client.blob_exists(repo, digest).await?.is_none() {
            client
                .push_blob(repo, blob.clone(), "application/octet-stream")
                .await?;
        }
    }
    for (d, b) in &image.manifests {
        client
            .put_manifest(repo, d.digest.as_str(), b.clone(), &d.media_type)
            .await?;
    }
    if !fallback {
        return Ok(root.clone());
    }
    let tag = referrers_tag(&subject.digest);
    let protocol = |reason: String| RegistryError::Protocol {
        registry: repo.registry.clone(),
        operation: format!("update the referrers tag `{tag}`"),
        reason,
    };
    let mut index = match client.get_manifest_in(repo, &tag).await {
        Ok(m) if m.media_type == mt::OCI_INDEX => serde_json::from_slice::<Value>(&m.bytes)
            .map_err(|e| protocol(format!("the index is not JSON: {e}")))?,
        Ok(m) => {
            return Err(protocol(format!(
                "it holds a `{}`, not an image index",
                m.media_type
            )))
        }
        Err(e) if e.status() == Some(404) => {
            json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": []})
        }
        Err(e) => return Err(e),
    };
    if !index["manifests"].is_array() {
        index["manifests"] = json!([]);
    }
    let entries = index["manifests"].as_array_mut().expect("an array");
    if !entries.iter().any(|e| e["digest"] == root.digest.as_str()) {
        entries.push(index_entry(root, bytes));
        let bytes = Bytes::from(serde_json::to_vec(&index).expect("json"));
        client
            .put_manifest(repo, &tag, bytes, mt::OCI_INDEX)
            .await?;
    }
    Ok(root.clone())
}
