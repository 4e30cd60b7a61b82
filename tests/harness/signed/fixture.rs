//! The signed bundle the referrer tests share: the fixture of
//! [`crate::harness::fixtures::seed`] with cosign's three tags on the
//! installer and four OCI 1.1 referrers on `web` ([`sign`]), a cosign
//! signature and a Notation signature of a pushed bundle index
//! ([`sign_index`]), both in one go ([`signed_bundle`]), and what a target repository holds of referrers, read
//! through its tags as a client of a registry without the referrers API
//! reads them ([`referrers_in`]).

use super::{
    cosign_attestation, cosign_sbom, cosign_signature, cosign_v3_bundle, notation_signature,
    push_referrer, push_tagged, sbom_referrer, signature_of, Key,
};
use crate::harness::client::{client_for, repo};
use crate::harness::fixtures::{opts, registry_config, relocator, seed, Fixture};
use crate::harness::Registry;
use cnab_oci::oci::Descriptor;
use cnab_oci::ops::PushOptions;
use cnab_oci::registry::{Client, Repository};
use cnab_oci::synth::Image;
use cnab_oci::{Digest, Reference};
use serde_json::Value;
use std::collections::BTreeMap;

/// What [`sign`] added to the source besides the images.
pub struct Signed {
    /// The key of cosign's signature and attestation.
    pub key: Key,
    /// Every artifact's manifest digest and bytes, in [`sign`]'s order:
    /// cosign's `.sig`, `.att`, `.sbom` of the installer, then the Notation
    /// signature of `web`'s index, the cosign v3 bundle of its amd64
    /// manifest, the SBOM of its arm64 manifest and the signature of that
    /// SBOM.
    pub artifacts: Vec<(Digest, bytes::Bytes)>,
    /// cosign's three tags, `.sig`, `.att`, `.sbom`.
    pub cosign_tags: Vec<String>,
    /// The installer's manifest (the cosign tags' subject).
    pub installer: Digest,
    /// `web`'s index (the Notation signature's subject).
    pub web_index: Digest,
    /// `web`'s amd64 manifest (the cosign v3 bundle's subject).
    pub web_amd64: Digest,
    /// `web`'s arm64 manifest (the SBOM's subject).
    pub web_arm64: Digest,
    /// The SBOM referrer (the subject of the last signature).
    pub sbom: Digest,
}

impl Signed {
    /// The digest of artifact `i` (in [`Signed::artifacts`]' order).
    pub fn digest(&self, i: usize) -> &Digest {
        &self.artifacts[i].0
    }
}

/// The manifest digest and bytes of an artifact.
pub fn root(image: &Image) -> (Digest, bytes::Bytes) {
    let (d, b) = image.manifests.last().unwrap();
    (d.digest.clone(), b.clone())
}

/// Signs the fixture in `src`: cosign's three tags on the installer; on
/// `web`, a Notation signature of its index, a cosign v3 bundle of its
/// amd64 manifest, an SBOM of its arm64 manifest and a signature of that
/// SBOM (each a referrer, pushed with the tag schema as oras would).
pub async fn sign(client: &Client, src: &Registry, fx: &Fixture) -> Signed {
    let key = Key::generate();
    let installer_repo = repo(src, "app/installer");
    let installer = fx.images["installer"].root().clone();
    let mut artifacts = Vec::new();
    let mut cosign_tags = Vec::new();
    for tagged in [
        cosign_signature(&installer_repo.path, &installer.digest, &key),
        cosign_attestation(&installer_repo.path, &installer.digest, &key),
        cosign_sbom(&installer_repo.path, &installer.digest),
    ] {
        push_tagged(client, &installer_repo, &tagged).await.unwrap();
        artifacts.push(root(&tagged.image));
        cosign_tags.push(tagged.tag.clone());
    }
    let web_repo = repo(src, "app/web");
    let web = &fx.images["web"];
    let (amd64, arm64) = (web.manifests[0].0.clone(), web.manifests[1].0.clone());
    let index = web.root().clone();
    let sbom = sbom_referrer(&arm64);
    let sbom_desc = sbom.root().clone();
    for (image, subject) in [
        (notation_signature(&index), index.clone()),
        (cosign_v3_bundle(&amd64), amd64.clone()),
        (sbom, arm64.clone()),
        (signature_of(&sbom_desc), sbom_desc.clone()),
    ] {
        push_referrer(client, &web_repo, &image, &subject, true)
            .await
            .unwrap();
        artifacts.push(root(&image));
    }
    Signed {
        key,
        artifacts,
        cosign_tags,
        installer: installer.digest,
        web_index: index.digest,
        web_amd64: amd64.digest,
        web_arm64: arm64.digest,
        sbom: sbom_desc.digest,
    }
}

/// The signatures of a bundle index, as [`sign_index`] pushed them.
pub struct IndexSigned {
    /// The bundle index.
    pub index: Digest,
    /// cosign's signature: the tag `sha256-<hex>.sig`, the manifest digest
    /// and bytes.
    pub cosign_tag: String,
    /// The cosign signature's manifest digest and bytes.
    pub cosign: (Digest, bytes::Bytes),
    /// The Notation signature's manifest digest and bytes (a referrer,
    /// listed in the fallback tag `sha256-<hex>`).
    pub notation: (Digest, bytes::Bytes),
}

/// Signs bundle index `index` in `target` as `cosign sign` and `notation
/// sign` would after a push: cosign's `.sig` tag, and a Notation referrer
/// kept in the referrers tag schema.
pub async fn sign_index(
    client: &Client,
    target: &Repository,
    index: &Descriptor,
    key: &Key,
) -> IndexSigned {
    let sig = cosign_signature(&target.path, &index.digest, key);
    push_tagged(client, target, &sig).await.unwrap();
    let notation = notation_signature(index);
    push_referrer(client, target, &notation, index, true)
        .await
        .unwrap();
    IndexSigned {
        index: index.digest.clone(),
        cosign_tag: sig.tag.clone(),
        cosign: root(&sig.image),
        notation: root(&notation),
    }
}

/// The fixture seeded into `reg`, signed there ([`sign`]), pushed to
/// `reg`'s `<path>:1`, and its bundle index signed there ([`sign_index`]).
pub async fn signed_bundle(reg: &Registry, path: &str) -> (Reference, Signed, IndexSigned) {
    let config = registry_config(&[reg]);
    let fx = seed(reg, &config).await;
    let client = client_for(reg);
    let signed = sign(&client, reg, &fx).await;
    let target = Reference::parse(&format!("{}/{path}:1", reg.host())).unwrap();
    let r = relocator(&config);
    let mut bundle = fx.bundle.clone();
    let fixed = r.fixup(&mut bundle, &target, &opts()).await.unwrap();
    let pushed = r
        .push(
            &bundle,
            &fixed.relocation_map,
            &target,
            &PushOptions::default(),
        )
        .await
        .unwrap();
    let index = sign_index(&client, &repo(reg, path), &pushed.descriptor, &signed.key).await;
    (target, signed, index)
}

/// The referrers `target` holds, read as a client of a registry without
/// the referrers API reads them: each cosign tag `sha256-<hex>.sig`,
/// `.att`, `.sbom` (the manifest it names), and each entry of each
/// fallback tag `sha256-<hex>`, by subject. Each value is the referrer's
/// digest and whether the target has its manifest (a cosign tag always
/// does; a fallback entry may name a manifest that is not there).
pub async fn referrers_in(
    client: &Client,
    target: &Repository,
) -> BTreeMap<String, Vec<(Digest, bool)>> {
    let tags = client.list_tags(target).await.unwrap_or_default();
    let mut out: BTreeMap<String, Vec<(Digest, bool)>> = BTreeMap::new();
    for tag in tags.iter().filter(|t| t.starts_with("sha256-")) {
        let cosign = tag
            .rsplit_once('.')
            .is_some_and(|(_, suffix)| matches!(suffix, "sig" | "att" | "sbom"));
        if cosign {
            let d = client.resolve_in(target, tag).await.unwrap();
            out.entry(tag.clone()).or_default().push((d.digest, true));
            continue;
        }
        let m = client.get_manifest_in(target, tag).await.unwrap();
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        for e in v["manifests"].as_array().into_iter().flatten() {
            let d = Digest::parse(e["digest"].as_str().unwrap()).unwrap();
            let there = client.get_manifest_in(target, d.as_str()).await.is_ok();
            out.entry(tag.clone()).or_default().push((d, there));
        }
    }
    out
}
/// Every referrer digest [`referrers_in`] found, sorted, each once.
pub fn digests(found: &BTreeMap<String, Vec<(Digest, bool)>>) -> Vec<Digest> {
    let mut all: Vec<Digest> = found.values().flatten().map(|(d, _)| d.clone()).collect();
    all.sort();
    all.dedup();
    all
}
