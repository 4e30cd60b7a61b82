//! The signed artifacts of the harness ([`crate::harness::signed`]):
//! cosign's signatures and attestations verify, and fail when the digest,
//! the key or a byte changes; the referrer builders are well-formed and
//! deterministic; pushed into distribution 2.8 they leave cosign's tags and
//! the referrers fallback tags a spec-following client leaves, which skopeo
//! reads back byte for byte; a registry with the referrers API lists what
//! the fallback tag would hold; GitLab's quirk breaks the fallback push.

use crate::harness::client::{client_for, repo};
use crate::harness::memreg::{MemRegistry, Mode};
use crate::harness::signed::{
    self, cosign_attestation, cosign_sbom, cosign_signature, cosign_v3_bundle, notation_signature,
    pull_artifact, push_referrer, push_tagged, referrers_tag, sbom_referrer, signature_of,
    verify_attestation, verify_cosign, Key,
};
use crate::harness::Registry;
use crate::layout::run_skopeo;
use base64::Engine as _;
use bytes::Bytes;
use cnab_oci::oci::manifest::Platform;
use cnab_oci::oci::{media_type as mt, Descriptor};
use cnab_oci::synth::{self, Format, Image, ImageSpec};
use cnab_oci::Digest;
use serde_json::{json, Value};

fn subject_image(seed: u64) -> Image {
    synth::build(&ImageSpec {
        seed,
        format: Format::Oci,
        layer_sizes: vec![1000],
        shared_layers: vec![],
        platforms: ["linux/amd64", "linux/arm64/v8"]
            .iter()
            .map(|p| Platform::parse(p).unwrap())
            .collect(),
    })
}

/// The manifest of an artifact, parsed.
fn manifest_of(image: &Image) -> Value {
    serde_json::from_slice(&image.manifests.last().unwrap().1).unwrap()
}

/// The blob a descriptor of `image`'s manifest names, parsed as JSON.
fn blob_json(image: &Image, descriptor: &Value) -> Value {
    let d = Digest::parse(descriptor["digest"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&image.blobs[&d]).unwrap()
}

/// A cosign signature verifies with its key for its digest, and not for
/// another digest, another key, a changed payload or a changed signature.
#[test]
fn cosign_signature_verifies_and_fails_when_tampered() {
    let (key, other_key) = (Key::generate(), Key::generate());
    let subject = Digest::sha256(b"an image manifest");
    let sig = cosign_signature("registry.example/app", &subject, &key);
    assert_eq!(sig.tag, format!("sha256-{}.sig", subject.encoded()));
    let (_, bytes) = sig.image.manifests.last().unwrap();
    let blobs = &sig.image.blobs;
    verify_cosign(bytes, blobs, &subject, key.public_key()).unwrap();

    let other = Digest::sha256(b"another manifest");
    let e = verify_cosign(bytes, blobs, &other, key.public_key()).unwrap_err();
    assert!(e.contains("not sha256:"), "{e}");
    let e = verify_cosign(bytes, blobs, &subject, other_key.public_key()).unwrap_err();
    assert!(e.contains("does not verify"), "{e}");

    let m = manifest_of(&sig.image);
    let layer = &m["layers"][0];
    assert_eq!(layer["mediaType"], signed::SIMPLESIGNING);
    assert_eq!(m["config"]["mediaType"], mt::OCI_CONFIG);
    let payload = blob_json(&sig.image, layer);
    assert_eq!(
        payload,
        json!({"critical": {"identity": {"docker-reference": "registry.example/app"},
            "image": {"docker-manifest-digest": subject.as_str()},
            "type": "cosign container image signature"}, "optional": null})
    );

    let mut changed = blobs.clone();
    let d = Digest::parse(layer["digest"].as_str().unwrap()).unwrap();
    changed.insert(d, Bytes::from_static(b"{}"));
    let e = verify_cosign(bytes, &changed, &subject, key.public_key()).unwrap_err();
    assert!(e.contains("does not match its digest"), "{e}");

    let forged = base64::engine::general_purpose::STANDARD.encode(key.sign(b"something else"));
    let real = layer["annotations"][signed::SIGNATURE_ANNOTATION]
        .as_str()
        .unwrap();
    let tampered = String::from_utf8(bytes.to_vec())
        .unwrap()
        .replace(real, &forged);
    let e = verify_cosign(tampered.as_bytes(), blobs, &subject, key.public_key()).unwrap_err();
    assert!(e.contains("does not verify"), "{e}");
}

/// A cosign attestation is a signed DSSE envelope of an in-toto statement
/// about the subject, with its predicate type annotated; it fails for
/// another digest or key. A cosign SBOM is an SPDX document under `.sbom`.
#[test]
fn cosign_attestation_verifies_and_sbom_is_spdx() {
    let key = Key::generate();
    let subject = Digest::sha256(b"an index");
    let att = cosign_attestation("registry.example/app", &subject, &key);
    assert_eq!(att.tag, format!("sha256-{}.att", subject.encoded()));
    let (_, bytes) = att.image.manifests.last().unwrap();
    verify_attestation(bytes, &att.image.blobs, &subject, key.public_key()).unwrap();
    let other = Digest::sha256(b"other");
    assert!(verify_attestation(bytes, &att.image.blobs, &other, key.public_key()).is_err());
    let e = verify_attestation(
        bytes,
        &att.image.blobs,
        &subject,
        Key::generate().public_key(),
    )
    .unwrap_err();
    assert!(e.contains("no signature verifies"), "{e}");
    let m = manifest_of(&att.image);
    assert_eq!(m["layers"][0]["mediaType"], signed::DSSE);
    assert_eq!(
        m["layers"][0]["annotations"]["predicateType"],
        signed::SLSA_V02
    );
    let envelope = blob_json(&att.image, &m["layers"][0]);
    assert_eq!(envelope["payloadType"], signed::IN_TOTO);

    let sbom = cosign_sbom("registry.example/app", &subject);
    assert_eq!(sbom.tag, format!("sha256-{}.sbom", subject.encoded()));
    let m = manifest_of(&sbom.image);
    assert_eq!(m["layers"][0]["mediaType"], signed::SPDX_TEXT);
    let doc = blob_json(&sbom.image, &m["layers"][0]);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let config = blob_json(&sbom.image, &m["config"]);
    assert_eq!(config["rootfs"]["diff_ids"][0], m["layers"][0]["digest"]);
}

/// The OCI 1.1 referrers have the shapes Notation, cosign v3 and SBOM tools
/// push (subject, config, artifact type, layer, annotations), a signature
/// can refer to a referrer, and the same subject gives the same bytes.
#[test]
fn referrers_are_well_formed_and_deterministic() {
    assert_eq!(
        Digest::sha256(signed::EMPTY_CONFIG).as_str(),
        signed::EMPTY_CONFIG_DIGEST
    );
    let img = subject_image(1);
    let subject = img.root().clone();
    let subject_field = json!({"mediaType": mt::OCI_INDEX, "digest": subject.digest.as_str(), "size": subject.size});
    assert_eq!(
        referrers_tag(&subject.digest),
        format!("sha256-{}", subject.digest.encoded())
    );

    let notation = notation_signature(&subject);
    let m = manifest_of(&notation);
    assert_eq!(m["mediaType"], mt::OCI_MANIFEST);
    assert_eq!(m["subject"], subject_field);
    assert_eq!(
        m["config"],
        json!({"mediaType": signed::NOTATION_SIGNATURE, "digest": signed::EMPTY_CONFIG_DIGEST, "size": 2})
    );
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    assert_eq!(m["layers"][0]["mediaType"], signed::JOSE);
    let thumbprints: Vec<String> = serde_json::from_str(
        m["annotations"][signed::THUMBPRINT_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(thumbprints.len(), 1);
    assert_eq!(thumbprints[0].len(), 64);
    let jws = blob_json(&notation, &m["layers"][0]);
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jws["payload"].as_str().unwrap())
        .unwrap();
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(payload["targetArtifact"], subject_field);

    let bundle = cosign_v3_bundle(&subject);
    let m = manifest_of(&bundle);
    assert_eq!(m["artifactType"], signed::SIGSTORE_BUNDLE);
    assert_eq!(m["subject"], subject_field);
    assert_eq!(m["config"]["mediaType"], signed::EMPTY_MEDIA_TYPE);
    assert_eq!(m["config"]["digest"], signed::EMPTY_CONFIG_DIGEST);
    assert_eq!(m["layers"][0]["mediaType"], signed::SIGSTORE_BUNDLE);
    assert_eq!(
        m["annotations"],
        json!({"dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": signed::SLSA_V1,
            "org.opencontainers.image.created": signed::CREATED})
    );
    assert_eq!(
        blob_json(&bundle, &m["layers"][0])["mediaType"],
        signed::SIGSTORE_BUNDLE
    );

    let sbom = sbom_referrer(&subject);
    let m = manifest_of(&sbom);
    assert_eq!(m["artifactType"], signed::SPDX_JSON);
    assert_eq!(m["layers"][0]["mediaType"], signed::SPDX_JSON);
    assert_eq!(blob_json(&sbom, &m["layers"][0])["spdxVersion"], "SPDX-2.3");

    let of_sbom = signature_of(sbom.root());
    assert_eq!(
        manifest_of(&of_sbom)["subject"]["digest"],
        sbom.root().digest.as_str()
    );
    for (a, b) in [
        (notation, notation_signature(&subject)),
        (bundle, cosign_v3_bundle(&subject)),
        (sbom, sbom_referrer(&subject)),
    ] {
        assert_eq!(a.manifests, b.manifests);
        assert_eq!(a.blobs, b.blobs);
    }
}

/// The fallback index under `tag` in `reg`'s `path`, as the client reads it.
async fn fallback_index(
    client: &cnab_oci::registry::Client,
    r: &cnab_oci::registry::Repository,
    tag: &str,
) -> (Bytes, Value) {
    let m = client.get_manifest_in(r, tag).await.unwrap();
    assert_eq!(m.media_type, mt::OCI_INDEX);
    let v = serde_json::from_slice(&m.bytes).unwrap();
    (m.bytes, v)
}

/// Pushed into distribution 2.8: cosign's `.sig`, `.att` and `.sbom` tags
/// and the fallback tags of the index and of a referrer (for its own
/// signature) are there; each fallback index lists its referrers in push
/// order once each, with artifact type and annotations; the signature and
/// attestation verify as read back; skopeo reads the same bytes.
#[tokio::test]
async fn distribution_holds_cosign_tags_and_fallback_indexes() {
    let reg = Registry::plain();
    let client = client_for(&reg);
    let r = repo(&reg, "app/signed");
    let img = subject_image(2);
    let subject = synth::push(&client, &r, &img, "v1").await.unwrap();
    let (key, name) = (Key::generate(), format!("{}/app/signed", reg.host()));
    let sig = cosign_signature(&name, &subject.digest, &key);
    let att = cosign_attestation(&name, &subject.digest, &key);
    let sbom_tag = cosign_sbom(&name, &subject.digest);
    for t in [&sig, &att, &sbom_tag] {
        push_tagged(&client, &r, t).await.unwrap();
    }
    let (notation, bundle, sbom) = (
        notation_signature(&subject),
        cosign_v3_bundle(&subject),
        sbom_referrer(&subject),
    );
    for referrer in [&notation, &bundle, &sbom, &notation] {
        push_referrer(&client, &r, referrer, &subject, true)
            .await
            .unwrap();
    }
    let sbom_signature = signature_of(sbom.root());
    push_referrer(&client, &r, &sbom_signature, sbom.root(), true)
        .await
        .unwrap();

    let mut tags = client.list_tags(&r).await.unwrap();
    tags.sort();
    let mut expected = vec![
        "v1".to_owned(),
        sig.tag.clone(),
        att.tag.clone(),
        sbom_tag.tag.clone(),
        referrers_tag(&subject.digest),
        referrers_tag(&sbom.root().digest),
    ];
    expected.sort();
    assert_eq!(tags, expected);

    let (raw, index) = fallback_index(&client, &r, &referrers_tag(&subject.digest)).await;
    let entries = index["manifests"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["digest"].as_str().unwrap(),
                e["artifactType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (notation.root().digest.as_str(), signed::NOTATION_SIGNATURE),
            (bundle.root().digest.as_str(), signed::SIGSTORE_BUNDLE),
            (sbom.root().digest.as_str(), signed::SPDX_JSON),
        ]
    );
    for (e, referrer) in entries.iter().zip([&notation, &bundle, &sbom]) {
        assert_eq!(e["annotations"], manifest_of(referrer)["annotations"]);
        assert_eq!(e["size"], referrer.root().size);
        assert_eq!(e["mediaType"], mt::OCI_MANIFEST);
    }
    let (_, of_sbom) = fallback_index(&client, &r, &referrers_tag(&sbom.root().digest)).await;
    assert_eq!(
        of_sbom["manifests"][0]["digest"],
        sbom_signature.root().digest.as_str()
    );
    assert_eq!(of_sbom["manifests"].as_array().unwrap().len(), 1);

    let (m, blobs) = pull_artifact(&client, &r, &sig.tag).await.unwrap();
    verify_cosign(&m.bytes, &blobs, &subject.digest, key.public_key()).unwrap();
    let (m, blobs) = pull_artifact(&client, &r, &att.tag).await.unwrap();
    verify_attestation(&m.bytes, &blobs, &subject.digest, key.public_key()).unwrap();

    let at = |tag: &str| format!("docker://{}/app/signed:{tag}", reg.host());
    let skopeo = |tag: &str| run_skopeo(&["inspect", "--raw", "--tls-verify=false", &at(tag)]);
    assert_eq!(skopeo(&referrers_tag(&subject.digest)), raw.to_vec());
    assert_eq!(skopeo(&sig.tag), sig.image.manifests[0].1.to_vec());
}

/// On a registry with the referrers API a push without the fallback leaves
/// no tag, and the API lists exactly what the fallback index holds on a
/// registry without it.
#[tokio::test]
async fn the_api_lists_what_the_fallback_tag_holds() {
    let mut listed = Vec::new();
    for (mode, fallback) in [(Mode::referrers(), false), (Mode::distribution(), true)] {
        let reg = MemRegistry::start(mode);
        let client = reg.client();
        let r = reg.repository("app/signed");
        let subject = synth::push(&client, &r, &subject_image(3), "v1")
            .await
            .unwrap();
        for referrer in [notation_signature(&subject), sbom_referrer(&subject)] {
            push_referrer(&client, &r, &referrer, &subject, fallback)
                .await
                .unwrap();
        }
        let tag = referrers_tag(&subject.digest);
        let index: Value = if fallback {
            assert_eq!(reg.tags("app/signed"), [tag.clone(), "v1".to_owned()]);
            fallback_index(&client, &r, &tag).await.1
        } else {
            assert_eq!(reg.tags("app/signed"), ["v1"]);
            let url = format!(
                "{}/v2/app/signed/referrers/{}",
                reg.base_url(),
                subject.digest
            );
            let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
            serde_json::from_slice(&body).unwrap()
        };
        listed.push(index["manifests"].clone());
    }
    assert_eq!(listed[0].as_array().unwrap().len(), 2);
    assert_eq!(listed[0], listed[1]);
}

/// On GitLab (tag `sha256-<hex>` read as the digest) the fallback push
/// reads the subject itself where the index should be: an image manifest is
/// reported, not overwritten; an image index is taken for the referrers
/// list, so the tag written lists its platform manifests as referrers (what
/// oras issue #2148 reports a naive client leaving).
#[tokio::test]
async fn gitlab_quirk_breaks_the_fallback_push() {
    // Notation's artifact type is not on GitLab's media-type list: a
    // self-managed registry that adds types on push.
    let reg = MemRegistry::start(Mode::gitlab().with_dynamic_media_types());
    let client = reg.client();
    let r = reg.repository("app");
    let single = synth::build(&ImageSpec {
        seed: 4,
        format: Format::Oci,
        layer_sizes: vec![1000],
        shared_layers: vec![],
        platforms: vec![],
    });
    let subject: Descriptor = synth::push(&client, &r, &single, "single").await.unwrap();
    let e = push_referrer(&client, &r, &notation_signature(&subject), &subject, true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not an image index"), "{e}");
    assert_eq!(reg.tags("app"), ["single"], "no fallback tag written");

    let index = subject_image(5);
    let subject = synth::push(&client, &r, &index, "multi").await.unwrap();
    let notation = notation_signature(&subject);
    push_referrer(&client, &r, &notation, &subject, true)
        .await
        .unwrap();
    let (_, written) = reg
        .manifest("app", &referrers_tag(&subject.digest))
        .unwrap();
    let written: Value = serde_json::from_slice(&written).unwrap();
    let listed: Vec<&str> = written["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    let mut wrong: Vec<&str> = index.manifests[..2]
        .iter()
        .map(|(d, _)| d.digest.as_str())
        .collect();
    wrong.push(notation.root().digest.as_str());
    assert_eq!(listed, wrong, "the platform manifests taken for referrers");
}
