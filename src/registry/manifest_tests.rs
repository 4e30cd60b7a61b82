//! Tests of `manifest.rs`.
use super::*;

#[test]
fn names_are_tags_or_digests() {
    let repo = Repository {
        registry: "r.io".into(),
        path: "a/b".into(),
    };
    let d = Digest::sha256(b"x").to_string();
    let n = Named::parse(&repo, &d).unwrap();
    assert_eq!(
        (n.digest.as_ref().map(ToString::to_string), n.label),
        (Some(d.clone()), format!("r.io/a/b@{d}"))
    );
    let n = Named::parse(&repo, "v1.2_rc-1").unwrap();
    assert_eq!((n.digest, n.label.as_str()), (None, "r.io/a/b:v1.2_rc-1"));
    for bad in [
        "",
        "-x",
        ".x",
        "a/b",
        "a?b",
        "sha256:short",
        &"x".repeat(129),
    ] {
        let e = Named::parse(&repo, bad)
            .err()
            .unwrap_or_else(|| panic!("{bad}"));
        assert!(matches!(e, RegistryError::Config(_)), "{bad}: {e}");
    }
    assert!(is_tag(&"x".repeat(128)));
}

#[test]
fn link_headers() {
    assert_eq!(
        next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).as_deref(),
        Some("/v2/a/tags/list?last=b&n=2")
    );
    assert_eq!(
        next_link(r#"<http://x/p>; rel="prev", <http://x/n>; rel=next"#).as_deref(),
        Some("http://x/n")
    );
    assert_eq!(next_link("garbage"), None);
}

#[test]
fn manifest_bodies_are_checked_against_their_type() {
    let oci = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}"#;
    assert_eq!(
        check_manifest_body(oci, Some(mt::OCI_MANIFEST)).unwrap(),
        mt::OCI_MANIFEST
    );
    assert_eq!(
        check_manifest_body(oci, Some("application/octet-stream")).unwrap(),
        mt::OCI_MANIFEST
    );
    let e = check_manifest_body(oci, Some(mt::DOCKER_MANIFEST)).unwrap_err();
    assert!(e.contains("does not match the body's mediaType"), "{e}");
    let e = check_manifest_body(b"<html><body>login</body></html>", Some("text/html")).unwrap_err();
    assert!(
        e.contains("not a JSON manifest") && e.contains("text/html"),
        "{e}"
    );
    let e = check_manifest_body(br#"{"schemaVersion":3}"#, Some(mt::OCI_MANIFEST)).unwrap_err();
    assert_eq!(
        e,
        "schemaVersion 3 is not supported (only schema 2 manifests and indexes)"
    );
    assert_eq!(
        schema1_type(br#"{"schemaVersion":1,"name":"x"}"#, None).as_deref(),
        Some(mt::DOCKER_SCHEMA1_SIGNED)
    );
    assert_eq!(
        schema1_type(b"not json", Some(mt::DOCKER_SCHEMA1)).as_deref(),
        Some(mt::DOCKER_SCHEMA1)
    );
    assert_eq!(
        schema1_type(br#"{"schemaVersion":2}"#, Some(mt::OCI_MANIFEST)),
        None
    );
    let e = check_manifest_body(br#"{"schemaVersion":2}"#, None).unwrap_err();
    assert!(e.contains("names none"), "{e}");
    let no_type = br#"{"schemaVersion":2,"config":{}}"#;
    assert_eq!(
        check_manifest_body(
            no_type,
            Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8")
        )
        .unwrap(),
        mt::OCI_MANIFEST
    );
}
