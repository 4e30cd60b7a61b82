use super::*;
use crate::archive::contents::{IndexEntry, Metadata};
use crate::oci::media_type as mt;
use bytes::Bytes;
use std::collections::BTreeMap;

fn digest(n: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

/// An archive holding `manifests` (bytes by descriptor), listed in
/// `index.json` as `entries` (descriptor, name).
fn contents(entries: &[(Descriptor, Option<&str>)]) -> Contents {
    Contents {
        metadata: Metadata {
            bundle: Bytes::new(),
            relocation: crate::relocation::RelocationMap::new(),
            layout_version: Some("1.0.0".into()),
            index: entries
                .iter()
                .map(|(d, n)| IndexEntry {
                    descriptor: Descriptor {
                        annotations: BTreeMap::new(),
                        ..d.clone()
                    },
                    name: n.map(str::to_owned),
                })
                .collect(),
            first: true,
        },
        blobs: BTreeMap::new(),
        manifests: BTreeMap::new(),
        children: BTreeMap::new(),
        missing: BTreeMap::new(),
        unknown: Vec::new(),
        tar_bytes: 0,
    }
}

fn hold(c: &mut Contents, bytes: &[u8]) -> Descriptor {
    let d = Descriptor::of(mt::OCI_MANIFEST, bytes);
    c.manifests
        .insert(d.digest.clone(), (d.clone(), Bytes::copy_from_slice(bytes)));
    d
}

fn image_manifest(config_type: &str, subject: Option<&Digest>, extra: &str) -> Vec<u8> {
    let subject = subject.map_or(String::new(), |s| {
        format!(
            r#","subject":{{"mediaType":"{}","digest":"{s}","size":1}}"#,
            mt::OCI_MANIFEST
        )
    });
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{config_type}","digest":"{}","size":2}},"layers":[]{subject}{extra}}}"#,
        mt::OCI_MANIFEST,
        digest(9)
    )
    .into_bytes()
}

#[test]
fn cosign_tags_and_referrers_by_subject_are_found_in_file_order() {
    let image = digest(1);
    let sig_bytes = image_manifest("application/vnd.oci.image.config.v1+json", None, "");
    let notation = image_manifest(
        "application/vnd.cncf.notary.signature",
        Some(&image),
        r#","annotations":{"io.cncf.notary.x509chain.thumbprint#S256":"[\"ab\"]"}"#,
    );
    let mut c = contents(&[]);
    let sig = hold(&mut c, &sig_bytes);
    let note = hold(&mut c, &notation);
    let bundle_index = digest(7);
    let bundle_tag = format!("sha256-{}.sig", bundle_index.encoded());
    let bundle_sig = hold(
        &mut c,
        &image_manifest(
            "application/vnd.oci.image.config.v1+json",
            None,
            r#","x":1"#,
        ),
    );
    let image_desc = Descriptor::of(mt::OCI_INDEX, b"image");
    let image = image_desc.digest.clone();
    let tag = format!("sha256-{}.sig", image.encoded());
    let name = format!("docker.io/library/nginx:{tag}");
    c.metadata = contents(&[
        (image_desc.clone(), Some("docker.io/library/nginx@sha256:…")),
        (sig.clone(), Some(&name)),
        // The bundle index's, named by the tag alone.
        (bundle_sig.clone(), Some(&bundle_tag)),
        (note.clone(), None),
        // Listed twice: once.
        (note.clone(), None),
    ])
    .metadata;
    let held = held_referrers(&c, std::slice::from_ref(&image));
    assert_eq!(held.len(), 3, "{held:#?}");
    assert_eq!(held[0].descriptor.digest, sig.digest);
    assert_eq!(held[0].subject, image);
    assert_eq!(held[0].tag, Some((tag, DigestTagKind::Signature)));
    assert_eq!(held[1].subject, bundle_index);
    assert_eq!(
        held[1].tag,
        Some((bundle_tag.clone(), DigestTagKind::Signature))
    );
    let held = &held[1..];
    assert_eq!(held[1].descriptor.digest, note.digest);
    assert_eq!(held[1].subject, digest(1), "the manifest's own subject");
    assert_eq!(held[1].tag, None);
    assert_eq!(
        held[1].artifact_type.as_deref(),
        Some("application/vnd.cncf.notary.signature")
    );
    assert_eq!(
        held[1].descriptor.annotations.keys().collect::<Vec<_>>(),
        ["io.cncf.notary.x509chain.thumbprint#S256"],
        "annotations come from the manifest, for the fallback tag's entry"
    );
}

#[test]
fn images_other_entries_and_manifests_not_held_are_not_referrers() {
    let mut c = contents(&[]);
    let plain = hold(
        &mut c,
        &image_manifest("application/vnd.oci.image.config.v1+json", None, ""),
    );
    let absent = Descriptor::of(mt::OCI_MANIFEST, b"left out by a delta");
    let fallback_named = hold(
        &mut c,
        &image_manifest("application/x", None, r#","annotations":{"a":"b"}"#),
    );
    let image = digest(3);
    let referrer = hold(&mut c, &image_manifest("application/y", Some(&image), ""));
    c.metadata = contents(&[
        // Another tool's image, named as an image.
        (plain.clone(), Some("docker.io/library/busybox:1")),
        // A referrer a delta leaves out: the target has it already.
        (absent, None),
        // A name that is the referrers tag schema's, not cosign's.
        (
            fallback_named,
            Some(&format!("example.com/a:sha256-{}", image.encoded())),
        ),
        // A referrer that is one of the bundle's images is an image.
        (referrer.clone(), None),
        (
            Descriptor {
                media_type: "application/vnd.unknown".into(),
                ..plain.clone()
            },
            None,
        ),
    ])
    .metadata;
    assert!(held_referrers(&c, std::slice::from_ref(&referrer.digest)).is_empty());
    let held = held_referrers(&c, &[]);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].descriptor.digest, referrer.digest);
}
