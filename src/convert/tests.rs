//! Unit tests of the conversion: the wire-format examples byte for byte.
use super::*;

const SPEC_201: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/examples/cnab-spec/201-example-bundle.noncanonical.json"
));
const SPEC_201_INDEX: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/examples/cnab-spec/201-example-index.pretty.json"
));
const SPEC_201_CONFIG_MANIFEST: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/examples/cnab-spec/201-example-config-manifest.pretty.json"
));
const IMG_DIGEST: &str = "sha256:a59a4e74d9cc89e4e75dfb2cc7ea5c108e4236ba6231b53081a9e2506d1197b6";
const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn spec_201() -> (Bundle, RelocationMap, Reference) {
    let b = Bundle::from_slice(SPEC_201).unwrap();
    let target = Reference::parse("registry.example.com/hello:0.1.1").unwrap();
    let map: RelocationMap = [(
        "cnab/helloworld:0.1.1",
        format!("registry.example.com/hello@{IMG_DIGEST}"),
    )]
    .into_iter()
    .collect();
    (b, map, target)
}

fn preferred_manifest(b: &Bundle) -> Descriptor {
    let m = config_manifest(&config_blob(b), ConfigManifestForm::Cnab);
    Descriptor::of(mt::OCI_MANIFEST, &m)
}

#[test]
fn spec_201_config_manifest_has_the_wire_format_digest() {
    let (b, _, _) = spec_201();
    let m = config_manifest(&config_blob(&b), ConfigManifestForm::Cnab);
    assert_eq!(
        String::from_utf8(m.clone()).unwrap(),
        r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cnab.config.v1+json","digest":"sha256:e91b9dfcbbb3b88bac94726f276b89de46e4460b55f6e6d6f876e666b150ec5b","size":498},"layers":null}"#
    );
    let d = Descriptor::of(mt::OCI_MANIFEST, &m);
    assert_eq!(d.size, 188);
    assert_eq!(
        d.digest.as_str(),
        "sha256:6ec4fd695cace0e3d4305838fdf9fcd646798d3fea42b3abb28c117f903a6a5f"
    );
    // The spec prints the same object (with the spec's config media type name).
    let spec: serde_json::Value = serde_json::from_slice(SPEC_201_CONFIG_MANIFEST).unwrap();
    let mut ours: serde_json::Value = serde_json::from_slice(&m).unwrap();
    ours["config"]["mediaType"] = mt::CNAB_BUNDLE_CONFIG.into();
    assert_eq!(ours, spec);
}

#[test]
fn config_manifest_fallback_forms() {
    let blob = b"{}";
    let oci = String::from_utf8(config_manifest(blob, ConfigManifestForm::OciConfig)).unwrap();
    assert_eq!(
        oci,
        r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":null}"#
    );
    let docker = String::from_utf8(config_manifest(blob, ConfigManifestForm::Docker)).unwrap();
    let desc = "{\n      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n      \"size\": 2,\n      \"digest\": \"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\"\n   }";
    let layer = "{\n         \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n         \"size\": 2,\n         \"digest\": \"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\"\n      }";
    assert_eq!(
        docker,
        format!("{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n   \"config\": {desc},\n   \"layers\": [\n      {layer}\n   ]\n}}")
    );
    for form in ConfigManifestForm::ALL {
        let d = parse_config_manifest(&config_manifest(blob, form)).unwrap();
        assert_eq!(d.media_type, form.config_media_type());
        assert_eq!(d.digest, Digest::sha256(blob));
    }
}

#[test]
fn spec_201_index_bytes() {
    let (b, map, target) = spec_201();
    let cm = preferred_manifest(&b);
    let index = bundle_index(&b, &map, &target, &cm, IndexForm::Oci).unwrap();
    let want = concat!(
        r#"{"schemaVersion":2,"manifests":["#,
        r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:6ec4fd695cace0e3d4305838fdf9fcd646798d3fea42b3abb28c117f903a6a5f","size":188,"annotations":{"io.cnab.manifest.type":"config"}},"#,
        r#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:a59a4e74d9cc89e4e75dfb2cc7ea5c108e4236ba6231b53081a9e2506d1197b6","size":942,"annotations":{"io.cnab.manifest.type":"invocation"}}],"#,
        r#""annotations":{"io.cnab.keywords":"[\"helloworld\",\"cnab\",\"tutorial\"]","io.cnab.runtime_version":"v1.0.0","#,
        r#""org.opencontainers.artifactType":"application/vnd.cnab.manifest.v1","#,
        r#""org.opencontainers.image.authors":"[{\"name\":\"Jane Doe\",\"email\":\"jane.doe@example.com\",\"url\":\"https://example.com\"}]","#,
        r#""org.opencontainers.image.description":"A short description of your bundle","#,
        r#""org.opencontainers.image.title":"helloworld","org.opencontainers.image.version":"0.1.1"}}"#
    );
    assert_eq!(String::from_utf8(index.clone()).unwrap(), want);
    // Semantically, it is the index the spec prints.
    let spec: serde_json::Value = serde_json::from_slice(SPEC_201_INDEX).unwrap();
    let ours: serde_json::Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(ours, spec);

    let list = bundle_index(&b, &map, &target, &cm, IndexForm::DockerManifestList).unwrap();
    let list = String::from_utf8(list).unwrap();
    assert_eq!(
        list,
        format!(
            "{},\"mediaType\":\"application/vnd.docker.distribution.manifest.list.v2+json\"}}",
            &want[..want.len() - 1]
        )
    );
}

fn multi() -> (Bundle, RelocationMap, Reference) {
    let b = Bundle::from_slice(
        br#"{"schemaVersion":"v1.0.0","name":"m<&>","version":"1.0.0",
        "invocationImages":[{"image":"a/inv1:1","imageType":"oci","size":10},
                            {"image":"a/inv2:1","imageType":"docker","size":20,"mediaType":"application/vnd.oci.image.index.v1+json"}],
        "images":{"zeta":{"image":"a/z:1","size":30},"alpha":{"image":"a/a:1","imageType":"docker","size":40}}}"#,
    )
    .unwrap();
    let t = "localhost:5000/b/x";
    let map: RelocationMap = [
        ("a/inv1:1", format!("{t}@{D1}")),
        ("a/inv2:1", format!("{t}@{D2}")),
        ("a/z:1", format!("{t}@{D1}")),
        ("a/a:1", format!("{t}@{D2}")),
    ]
    .into_iter()
    .collect();
    (b, map, Reference::parse("localhost:5000/b/x:v1").unwrap())
}

#[test]
fn several_invocation_images_and_sorted_components() {
    let (b, map, target) = multi();
    let cm = preferred_manifest(&b);
    let index = bundle_index(&b, &map, &target, &cm, IndexForm::Oci).unwrap();
    let s = String::from_utf8(index.clone()).unwrap();
    let order: Vec<usize> = [
        "\"invocation\"}},{\"mediaType\":\"application/vnd.oci.image.index.v1+json\"",
        "\"io.cnab.component.name\":\"alpha\",\"io.cnab.manifest.type\":\"component\"",
        "\"io.cnab.component.name\":\"zeta\"",
    ]
    .iter()
    .map(|p| s.find(p).unwrap_or_else(|| panic!("{p} not in {s}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{s}");
    assert!(
        s.contains(r#""org.opencontainers.image.title":"m\u003c\u0026\u003e""#),
        "{s}"
    );
    assert!(
        !s.contains("io.cnab.keywords") && !s.contains("image.authors"),
        "{s}"
    );

    // The pull side reads back what the push side wrote.
    let parsed = parse_bundle_index(&index, mt::OCI_INDEX).unwrap();
    assert_eq!(parsed.config, {
        let mut d = cm.clone();
        d.annotations = annotations(&[(ANNOTATION_MANIFEST_TYPE, "config")]);
        d
    });
    assert_eq!(parsed.invocations.len(), 2);
    assert_eq!(
        parsed.components.keys().collect::<Vec<_>>(),
        ["alpha", "zeta"]
    );
    let repo = Reference::parse("localhost:5000/b/x").unwrap();
    assert_eq!(relocation_map_from_index(&b, &parsed, &repo).unwrap(), map);
}

fn convert_err(edit: impl FnOnce(&mut Bundle, &mut RelocationMap)) -> String {
    let (mut b, mut map, target) = multi();
    edit(&mut b, &mut map);
    let cm = preferred_manifest(&b);
    bundle_index(&b, &map, &target, &cm, IndexForm::Oci)
        .unwrap_err()
        .to_string()
}

#[test]
fn conversion_errors_name_the_image() {
    assert_eq!(
        convert_err(|_, m| *m = m.iter().filter(|(k, _)| *k != "a/z:1").collect()),
        "images[\"zeta\"]: image `a/z:1` is not present in the relocation map: run fixup first, or pass the map that fixup wrote"
    );
    assert_eq!(
        convert_err(|_, m| m.insert("a/z:1", "localhost:5000/other@".to_owned() + D1)),
        "images[\"zeta\"]: image `a/z:1` is not in the target repository `localhost:5000/b/x`: it was relocated to `localhost:5000/other@sha256:1111111111111111111111111111111111111111111111111111111111111111`; run fixup with this target"
    );
    assert_eq!(
        convert_err(|_, m| m.insert("a/inv1:1", "localhost:5000/b/x:tag")),
        "invocationImages[0]: image `a/inv1:1` is not digested: relocated reference `localhost:5000/b/x:tag` has no `@sha256:` digest"
    );
    assert_eq!(
        convert_err(|b, _| b.images.get_mut("alpha").unwrap().size = 0),
        "images[\"alpha\"]: image `a/a:1` size is not set: it must be the manifest's size in bytes"
    );
    assert_eq!(
        convert_err(|b, _| b.images.get_mut("alpha").unwrap().media_type = "text/plain".into()),
        "images[\"alpha\"]: image `a/a:1` has unsupported media type `text/plain` (expected one of application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json)"
    );
    assert!(
        convert_err(|b, _| b.images.get_mut("alpha").unwrap().image_type = "rkt".into())
            .contains("unsupported media type `(none; imageType `rkt`)`")
    );
    assert!(
        convert_err(|_, m| m.insert("a/z:1", "Bad/Ref@x")).starts_with(
            "images[\"zeta\"]: relocated reference `Bad/Ref@x` of image `a/z:1` is invalid"
        )
    );
}

#[test]
fn pull_side_errors() {
    let e = parse_bundle_index(b"{}", mt::OCI_MANIFEST)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("but this reference is a `application/vnd.oci.image.manifest.v1+json`"),
        "{e}"
    );
    let e = parse_bundle_index(br#"{"schemaVersion":2,"manifests":[]}"#, mt::OCI_INDEX)
        .unwrap_err()
        .to_string();
    assert!(e.contains("this is not a CNAB bundle"), "{e}");
    let cfg = format!(
        r#"{{"mediaType":"{}","digest":"{D1}","size":1,"annotations":{{"io.cnab.manifest.type":"config"}}}}"#,
        mt::OCI_MANIFEST
    );
    let two = format!(r#"{{"schemaVersion":2,"manifests":[{cfg},{cfg}]}}"#);
    let e = parse_bundle_index(two.as_bytes(), mt::OCI_INDEX)
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than one entry"), "{e}");
    let bad_digest =
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:../../x","size":1}]}"#;
    let e = parse_bundle_index(bad_digest.as_bytes(), mt::OCI_INDEX)
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid checksum digest format"), "{e}");
    let comp = format!(
        r#"{{"schemaVersion":2,"manifests":[{cfg},{{"mediaType":"x","digest":"{D1}","size":1,"annotations":{{"io.cnab.manifest.type":"component"}}}}]}}"#
    );
    let e = parse_bundle_index(comp.as_bytes(), mt::DOCKER_MANIFEST_LIST)
        .unwrap_err()
        .to_string();
    assert!(e.contains("manifests[1] is a component without"), "{e}");
    let e = parse_config_manifest(format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"text/plain","digest":"{D1}","size":1}}}}"#).as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a bundle config"), "{e}");
    assert!(parse_config_manifest(b"<html>")
        .unwrap_err()
        .to_string()
        .contains("cannot be decoded"));

    let (b, _, _) = multi();
    let index = parse_bundle_index(
        format!(r#"{{"schemaVersion":2,"manifests":[{cfg}]}}"#).as_bytes(),
        mt::OCI_INDEX,
    )
    .unwrap();
    let e = relocation_map_from_index(&b, &index, &Reference::parse("r.io/x").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the bundle has 2 invocation image(s) but the index lists 0"),
        "{e}"
    );
}
