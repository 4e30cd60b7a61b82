//! Tests of digest tags, referrer entries, referrer lists and the fallback
//! tag's merge: distribution-spec v1.1.1 ("Listing Referrers", "Pushing
//! Manifests with Subject", "Referrers Tag Schema") and cosign's tag scheme.

use super::*;

const HEX: &str = "b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7";
const HEX2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const HEX3: &str = "3333333333333333333333333333333333333333333333333333333333333333";

fn d(hex: &str) -> Digest {
    Digest::parse(&format!("sha256:{hex}")).unwrap()
}

fn sha512() -> Digest {
    Digest::parse(&format!("sha512:{}", "ab".repeat(64))).unwrap()
}

fn referrer(hex: &str, artifact_type: Option<&str>, annotations: &[(&str, &str)]) -> Referrer {
    Referrer {
        descriptor: Descriptor {
            media_type: mt::OCI_MANIFEST.to_owned(),
            digest: d(hex),
            size: 42,
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        },
        artifact_type: artifact_type.map(str::to_owned),
    }
}

#[test]
fn tag_names_follow_the_tag_schema_and_cosign() {
    let s = d(HEX);
    assert_eq!(fallback_tag(&s), format!("sha256-{HEX}"));
    assert_eq!(
        digest_tag(&s, DigestTagKind::Fallback),
        format!("sha256-{HEX}")
    );
    assert_eq!(
        digest_tag(&s, DigestTagKind::Signature),
        format!("sha256-{HEX}.sig")
    );
    assert_eq!(
        digest_tag(&s, DigestTagKind::Attestation),
        format!("sha256-{HEX}.att")
    );
    assert_eq!(
        digest_tag(&s, DigestTagKind::Sbom),
        format!("sha256-{HEX}.sbom")
    );
    // The encoded part of a fallback tag stops at 64 characters (v1.1.1).
    let long = sha512();
    assert_eq!(fallback_tag(&long), format!("sha512-{}", "ab".repeat(32)));
    assert_eq!(fallback_tag(&long).len(), "sha512-".len() + 64);
    assert_eq!(
        DigestTagKind::COSIGN.map(DigestTagKind::suffix),
        [".sig", ".att", ".sbom"]
    );
    assert_eq!(DigestTagKind::Fallback.suffix(), "");
    assert_eq!(
        serde_json::to_string(&DigestTagKind::COSIGN).unwrap(),
        r#"["signature","attestation","sbom"]"#
    );
}

#[test]
fn digest_tags_parse_back_and_everything_else_is_refused() {
    let s = d(HEX);
    for kind in [
        DigestTagKind::Fallback,
        DigestTagKind::Signature,
        DigestTagKind::Attestation,
        DigestTagKind::Sbom,
    ] {
        assert_eq!(
            parse_digest_tag(&digest_tag(&s, kind)),
            Some((s.clone(), kind)),
            "{kind:?}"
        );
    }
    let full512 = format!("sha512-{}", "ab".repeat(64));
    assert_eq!(
        parse_digest_tag(&full512),
        Some((sha512(), DigestTagKind::Fallback))
    );
    let upper = HEX.to_uppercase();
    let refused = [
        "latest".to_owned(),
        "sha256-abc.sig".to_owned(),
        "sha256-abc".to_owned(),
        format!("sha256-{HEX}.sig.x"),
        format!("sha256-{HEX}.sig.sig"),
        format!("sha256-{HEX}.SIG"),
        format!("sha256-{HEX}.cosign"),
        format!("sha256-{HEX}a"),
        format!("sha256-{upper}"),
        format!("sha256:{HEX}"),
        format!("sha256_{HEX}"),
        format!("v1-sha256-{HEX}"),
        format!("md5-{HEX}"),
        format!("-{HEX}"),
        // A truncated (sha512) fallback tag names no whole digest.
        fallback_tag(&sha512()),
        ".sig".to_owned(),
        String::new(),
    ];
    for tag in refused {
        assert_eq!(parse_digest_tag(&tag), None, "{tag}");
    }
}

#[test]
fn a_tag_list_groups_digest_tags_by_digest_in_kind_order() {
    let (a, b) = (d(HEX), d(HEX2));
    let sbom = format!("sha256-{HEX}.sbom");
    let sig = format!("sha256-{HEX}.sig");
    let fallback = format!("sha256-{HEX}");
    let other_sig = format!("sha256-{HEX2}.sig");
    let tags = [
        "latest",
        sbom.as_str(),
        sig.as_str(),
        "1.0",
        fallback.as_str(),
        sig.as_str(), // listed twice: counted once
        other_sig.as_str(),
        "sha256-abc.sig",
    ];
    let found = DigestTags::from_tags(tags);
    assert!(!found.is_empty());
    assert_eq!(
        found.of(&a),
        [
            (DigestTagKind::Fallback, fallback.clone()),
            (DigestTagKind::Signature, sig.clone()),
            (DigestTagKind::Sbom, sbom.clone()),
        ]
    );
    assert_eq!(found.of(&b), [(DigestTagKind::Signature, other_sig)]);
    assert!(found.of(&d(HEX3)).is_empty());
    let none = DigestTags::from_tags(["latest", "v1", "sha256-abc"]);
    assert!(none.is_empty());
    assert!(none.of(&a).is_empty());
    assert!(DigestTags::default().is_empty());
}

#[test]
fn describe_gives_the_entry_a_referrers_index_lists() {
    // cosign's legacy signature manifest: no artifactType, so the config's
    // media type; the subject and the top-level annotations.
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.cncf.notary.signature","digest":"sha256:{HEX2}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"sha256:{HEX}","size":7}},"annotations":{{"io.cncf.notary.x509chain.thumbprint#S256":"[\"ab\"]","b":"2"}}}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_MANIFEST
    );
    let (r, subject) = describe(image.as_bytes(), mt::OCI_MANIFEST).unwrap();
    assert_eq!(subject, Some(d(HEX)));
    assert_eq!(
        r.artifact_type.as_deref(),
        Some("application/vnd.cncf.notary.signature")
    );
    assert_eq!(r.descriptor.media_type, mt::OCI_MANIFEST);
    assert_eq!(r.descriptor.digest, Digest::sha256(image.as_bytes()));
    assert_eq!(r.descriptor.size, image.len() as u64);
    assert_eq!(
        r.descriptor
            .annotations
            .get("io.cncf.notary.x509chain.thumbprint#S256"),
        Some(&r#"["ab"]"#.to_owned())
    );
    assert_eq!(r.descriptor.annotations.len(), 2);

    // cosign v3: the empty config, and artifactType says what it is.
    let bundle = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","config":{{"mediaType":"{}","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"sha256:{HEX}","size":7}}}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_EMPTY_CONFIG,
        mt::OCI_MANIFEST
    );
    let (r, subject) = describe(bundle.as_bytes(), mt::OCI_MANIFEST).unwrap();
    assert_eq!(subject, Some(d(HEX)));
    assert_eq!(
        r.artifact_type.as_deref(),
        Some("application/vnd.dev.sigstore.bundle.v0.3+json")
    );
    assert!(r.descriptor.annotations.is_empty());

    // An index: no artifactType unless it has one; never a config's type.
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"config":{{"mediaType":"x/y"}}}}"#,
        mt::OCI_INDEX
    );
    let (r, subject) = describe(index.as_bytes(), mt::OCI_INDEX).unwrap();
    assert_eq!((r.artifact_type, subject), (None, None));
    assert_eq!(r.descriptor.media_type, mt::OCI_INDEX);
    let typed = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/example","manifests":[],"subject":{{"mediaType":"{}","digest":"sha256:{HEX3}","size":1}},"annotations":{{"k":"v"}}}}"#,
        mt::OCI_INDEX,
        mt::OCI_INDEX
    );
    let (r, subject) = describe(typed.as_bytes(), mt::OCI_INDEX).unwrap();
    assert_eq!(r.artifact_type.as_deref(), Some("application/example"));
    assert_eq!(subject, Some(d(HEX3)));
    assert_eq!(r.descriptor.annotations["k"], "v");

    assert!(describe(b"<html>", mt::OCI_MANIFEST)
        .unwrap_err()
        .starts_with("not a valid manifest"));
    let bad_subject = br#"{"schemaVersion":2,"subject":{"digest":"sha256:../x"}}"#;
    assert!(describe(bad_subject, mt::OCI_MANIFEST)
        .unwrap_err()
        .starts_with("subject: invalid checksum digest format"));
    let bad_annotation = br#"{"schemaVersion":2,"annotations":{"a":1}}"#;
    assert!(describe(bad_annotation, mt::OCI_MANIFEST).is_err());
}

/// A referrers index as a registry serves it: two entries, one with an index
/// media type and no artifactType, one with annotations and unknown members.
fn served_list() -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"sha256:{HEX2}","size":10,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","annotations":{{"dev.sigstore.bundle.content":"dsse-envelope"}},"x-unknown":true}},{{"mediaType":"{}","digest":"sha256:{HEX3}","size":20}}]}}"#,
        mt::OCI_INDEX,
        mt::OCI_MANIFEST,
        mt::OCI_INDEX
    )
}

#[test]
fn a_referrers_index_lists_its_entries() {
    let subject = d(HEX);
    let ReferrerList::Index(list) = parse_list(served_list().as_bytes(), mt::OCI_INDEX, &subject)
    else {
        panic!("an index")
    };
    let mut first = referrer(
        HEX2,
        Some("application/vnd.dev.sigstore.bundle.v0.3+json"),
        &[("dev.sigstore.bundle.content", "dsse-envelope")],
    );
    first.descriptor.size = 10;
    let mut second = referrer(HEX3, None, &[]);
    second.descriptor.media_type = mt::OCI_INDEX.to_owned();
    second.descriptor.size = 20;
    assert_eq!(list, [first.clone(), second]);
    // A content type with parameters, or none when the body names the type.
    assert_eq!(
        parse_list(
            served_list().as_bytes(),
            "application/vnd.oci.image.index.v1+json; charset=utf-8",
            &subject
        ),
        ReferrerList::Index(list.clone())
    );
    assert_eq!(
        parse_list(served_list().as_bytes(), "", &subject),
        ReferrerList::Index(list.clone())
    );
    assert_eq!(
        filter(
            list.clone(),
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        ),
        [first]
    );
    assert!(filter(list, "application/other").is_empty());

    // No matches: an empty list; Go's nil slice (`null`) too.
    for empty in [
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            mt::OCI_INDEX
        ),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":null}}"#,
            mt::OCI_INDEX
        ),
    ] {
        assert_eq!(
            parse_list(empty.as_bytes(), mt::OCI_INDEX, &subject),
            ReferrerList::Index(Vec::new()),
            "{empty}"
        );
    }
    // Entries that are no descriptor are left out; the rest stay.
    let mixed = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"digest":"sha256:{HEX2}","size":1}},{{"mediaType":"m","digest":"sha256:abc","size":1}},{{"mediaType":"m","digest":"sha256:{HEX2}","size":-1}},{{"mediaType":"m","digest":"sha256:{HEX2}","size":1,"annotations":{{"a":1}}}},{{"mediaType":"m","digest":"sha256:{HEX3}","size":3}}]}}"#,
        mt::OCI_INDEX
    );
    let ReferrerList::Index(kept) = parse_list(mixed.as_bytes(), mt::OCI_INDEX, &subject) else {
        panic!("an index")
    };
    assert_eq!(
        kept.iter()
            .map(|r| &r.descriptor.digest)
            .collect::<Vec<_>>(),
        [&d(HEX3)]
    );
}

#[test]
fn what_is_not_a_referrers_list_reads_as_none() {
    // GitLab serves the subject itself for `sha256-<hex>`.
    let subject_bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
        mt::OCI_INDEX
    );
    let subject = Digest::sha256(subject_bytes.as_bytes());
    assert_eq!(
        parse_list(subject_bytes.as_bytes(), mt::OCI_INDEX, &subject),
        ReferrerList::NotAList
    );
    // The same bytes are a fine (empty) list for another subject.
    assert_eq!(
        parse_list(subject_bytes.as_bytes(), mt::OCI_INDEX, &d(HEX)),
        ReferrerList::Index(Vec::new())
    );
    let s = d(HEX);
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"c","digest":"sha256:{HEX2}","size":1}},"layers":[]}}"#,
        mt::OCI_MANIFEST
    );
    assert_eq!(
        parse_list(image.as_bytes(), mt::OCI_MANIFEST, &s),
        ReferrerList::NotAList
    );
    assert_eq!(
        parse_list(image.as_bytes(), mt::OCI_INDEX, &s),
        ReferrerList::NotAList
    );
    let list = served_list();
    // The content type and the body must agree on the OCI index type.
    for ct in [
        mt::DOCKER_MANIFEST_LIST,
        "application/json",
        mt::OCI_MANIFEST,
    ] {
        assert_eq!(
            parse_list(list.as_bytes(), ct, &s),
            ReferrerList::NotAList,
            "{ct}"
        );
    }
    let docker_list = list.replace(mt::OCI_INDEX, mt::DOCKER_MANIFEST_LIST);
    assert_eq!(
        parse_list(docker_list.as_bytes(), mt::OCI_INDEX, &s),
        ReferrerList::NotAList
    );
    let untyped = r#"{"schemaVersion":2,"manifests":[]}"#;
    assert_eq!(
        parse_list(untyped.as_bytes(), "", &s),
        ReferrerList::NotAList
    );
    // An index with a subject of its own is not a referrers list.
    let with_subject = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","subject":{{"mediaType":"{}","digest":"sha256:{HEX}","size":1}},"manifests":[]}}"#,
        mt::OCI_INDEX,
        mt::OCI_MANIFEST
    );
    assert_eq!(
        parse_list(with_subject.as_bytes(), mt::OCI_INDEX, &s),
        ReferrerList::NotAList
    );
    for junk in [
        "<html>",
        "[]",
        "",
        r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":{}}"#,
    ] {
        assert_eq!(
            parse_list(junk.as_bytes(), mt::OCI_INDEX, &s),
            ReferrerList::NotAList,
            "{junk}"
        );
    }
}

#[test]
fn a_new_fallback_index_has_the_specs_shape() {
    let add = [
        referrer(
            HEX2,
            Some("application/vnd.dev.cosign.artifact.sig.v1+json"),
            &[("z", "<&>"), ("a", "1")],
        ),
        referrer(HEX3, None, &[]),
        referrer(HEX2, Some("again"), &[]), // the same digest: once
    ];
    let bytes = merge_fallback(None, &add).unwrap().unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#,
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":42,"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","annotations":{{"a":"1","z":"\u003c\u0026\u003e"}}}},"#,
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":42}}]}}"#
            ),
            HEX2, HEX3
        )
    );
    assert_eq!(merge_fallback(None, &[]).unwrap(), None);
}

#[test]
fn merging_appends_and_keeps_every_existing_byte() {
    // An index as a Go client writes it (compact), with members and entry
    // fields this tool does not know, and a big size literal.
    let entry = format!(
        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":18446744073709551615,"digest":"sha256:{HEX2}","artifactType":"t","annotations":{{"k":"v"}},"x-extra":[1,2.50,{{"y":null}}]}}"#
    );
    let existing = format!(
        r#"{{"schemaVersion":2,"x-first":"kept","mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{entry}],"annotations":{{"org.example":"\u003c"}}}}"#
    );
    let add = [referrer(HEX3, Some("application/spdx+json"), &[])];
    let merged = merge_fallback(Some(existing.as_bytes()), &add)
        .unwrap()
        .unwrap();
    let new_entry = format!(
        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{HEX3}","size":42,"artifactType":"application/spdx+json"}}"#
    );
    assert_eq!(
        String::from_utf8(merged.clone()).unwrap(),
        existing.replace(&entry, &format!("{entry},{new_entry}"))
    );
    // Nothing new: nothing to push.
    assert_eq!(merge_fallback(Some(&merged), &add).unwrap(), None);
    assert_eq!(
        merge_fallback(Some(existing.as_bytes()), &[referrer(HEX2, None, &[])]).unwrap(),
        None
    );
    // Indented input comes back compact, with every value as it was.
    let pretty = format!(
        "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{}\",\n  \"manifests\": [\n    {entry}\n  ]\n}}\n",
        mt::OCI_INDEX
    );
    let merged = merge_fallback(Some(pretty.as_bytes()), &add)
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(merged).unwrap(),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{entry},{new_entry}]}}"#,
            mt::OCI_INDEX
        )
    );
    // No `manifests` (or `null`), or no `mediaType` but a `manifests` array.
    let bare = format!(r#"{{"schemaVersion":2,"mediaType":"{}"}}"#, mt::OCI_INDEX);
    let merged = merge_fallback(Some(bare.as_bytes()), &add)
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(merged).unwrap(),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{new_entry}]}}"#,
            mt::OCI_INDEX
        )
    );
    let untyped = r#"{"schemaVersion":2,"manifests":[]}"#;
    let merged = merge_fallback(Some(untyped.as_bytes()), &add)
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(merged).unwrap(),
        format!(r#"{{"schemaVersion":2,"manifests":[{new_entry}]}}"#)
    );
    // Without `mediaType`, only a `manifests` array makes it an index.
    let untyped = r#"{"schemaVersion":2,"manifests":null}"#;
    assert!(merge_fallback(Some(untyped.as_bytes()), &add).is_err());
}

#[test]
fn merging_refuses_what_is_not_a_referrers_index() {
    let add = [referrer(HEX3, None, &[])];
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"c","digest":"sha256:{HEX2}","size":1}},"layers":[]}}"#,
        mt::OCI_MANIFEST
    );
    let e = merge_fallback(Some(image.as_bytes()), &add).unwrap_err();
    assert!(
        e.contains("not an OCI image index") && e.contains(mt::OCI_MANIFEST),
        "{e}"
    );
    let docker = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
        mt::DOCKER_MANIFEST_LIST
    );
    let e = merge_fallback(Some(docker.as_bytes()), &add).unwrap_err();
    assert!(e.contains(mt::DOCKER_MANIFEST_LIST), "{e}");
    let untyped_image = r#"{"schemaVersion":2,"config":{},"layers":[]}"#;
    let e = merge_fallback(Some(untyped_image.as_bytes()), &add).unwrap_err();
    assert!(e.contains("names no media type"), "{e}");
    let with_subject = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","subject":{{"mediaType":"{}","digest":"sha256:{HEX}","size":1}},"manifests":[]}}"#,
        mt::OCI_INDEX,
        mt::OCI_MANIFEST
    );
    let e = merge_fallback(Some(with_subject.as_bytes()), &add).unwrap_err();
    assert!(e.contains("`subject`"), "{e}");
    let not_array = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":{{}}}}"#,
        mt::OCI_INDEX
    );
    let e = merge_fallback(Some(not_array.as_bytes()), &add).unwrap_err();
    assert!(e.contains("`manifests` is an object"), "{e}");
    assert!(merge_fallback(Some(b"<html>"), &add)
        .unwrap_err()
        .starts_with("not valid JSON"));
    assert!(merge_fallback(Some(b"[]"), &add)
        .unwrap_err()
        .contains("not a JSON object but an array"));
    // Duplicate keys are refused, not resolved one way or the other.
    let dup = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"manifests":[]}}"#,
        mt::OCI_INDEX
    );
    assert!(merge_fallback(Some(dup.as_bytes()), &add).is_err());
}

#[test]
fn a_bare_entry_gets_the_referrers_artifact_type_and_annotations() {
    // Listed by a client that dropped both: completed, its own members kept.
    let bare = format!(
        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{HEX2}","size":7,"x":1}}"#
    );
    let existing = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{bare}]}}"#
    );
    let add = [referrer(
        HEX2,
        Some("application/vnd.cncf.notary.signature"),
        &[("k", "v")],
    )];
    let merged = merge_fallback(Some(existing.as_bytes()), &add)
        .unwrap()
        .expect("completed");
    let v: serde_json::Value = serde_json::from_slice(&merged).unwrap();
    let e = &v["manifests"][0];
    assert_eq!(
        v["manifests"].as_array().unwrap().len(),
        1,
        "one entry still"
    );
    assert_eq!(e["artifactType"], "application/vnd.cncf.notary.signature");
    assert_eq!(e["annotations"]["k"], "v");
    assert_eq!(e["size"], 7, "the entry's own size is kept");
    assert_eq!(e["x"], 1);
    // Complete now: nothing more to push.
    assert_eq!(merge_fallback(Some(&merged), &add).unwrap(), None);
    // An entry that has an artifactType keeps it, even if another is offered.
    let typed = existing.replace(
        r#""x":1"#,
        r#""x":1,"artifactType":"mine","annotations":{}"#,
    );
    assert_eq!(merge_fallback(Some(typed.as_bytes()), &add).unwrap(), None);
}
