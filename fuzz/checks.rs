// The properties the fuzz targets check, shared with the test that replays the
// committed corpus (tests/fuzz_corpus.rs), so that both check the same thing.

/// Bundle parsing, validation and canonicalisation never panic, and the
/// canonical form is a fixed point: canonical(canonical(x)) == canonical(x).
pub fn check_bundle(data: &[u8]) {
    let _ = cnab_oci::bundle::validate_bytes(data);
    if let Ok(b) = cnab_oci::Bundle::from_slice(data) {
        let once = b.canonical_bytes();
        let again = cnab_oci::Bundle::from_slice(&once).expect("canonical bytes parse").canonical_bytes();
        assert_eq!(once, again, "canonical form is a fixed point");
    }
}

/// Reference parsing never panics, and the printed form parses back to the
/// same reference.
pub fn check_reference(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(r) = cnab_oci::Reference::parse(s) {
            let again = cnab_oci::Reference::parse(&r.to_string()).expect("the printed form parses");
            assert_eq!(r, again);
            let _ = r.familiar();
        }
    }
}

/// Manifest and index parsing (views, platform filtering, the bundle index and
/// config manifest readers) never panic.
pub fn check_manifest(data: &[u8]) {
    use cnab_oci::oci::manifest::{self, Platform};
    for media_type in cnab_oci::oci::media_type::IMAGE_TYPES {
        let _ = manifest::parse(data, media_type);
        let _ = cnab_oci::convert::parse_bundle_index(data, media_type);
    }
    let _ = cnab_oci::convert::parse_config_manifest(data);
    let _ = manifest::filter_index(data, &[Platform::parse("linux/amd64").expect("valid")]);
}

/// The `WWW-Authenticate` parser never panics.
pub fn check_www_authenticate(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        for c in cnab_oci::registry::parse_www_authenticate(s) {
            let _ = c.param("realm");
        }
    }
}

/// The archive reader never panics on any bytes, and what it accepts is
/// consistent: every blob it reports held has a size, and every manifest
/// it kept hashes to its digest.
pub fn check_archive(data: &[u8]) {
    use cnab_oci::archive::read::{self, Check, ReadOptions};
    let opts = ReadOptions::default();
    if let Ok(c) = read::read_from(data, std::path::Path::new("fuzz.tgz"), &opts, &mut Check) {
        for (d, (desc, bytes)) in &c.manifests {
            assert!(d.matches(bytes), "a kept manifest hashes to its digest");
            assert_eq!(desc.size, bytes.len() as u64);
            assert!(c.blobs.contains_key(d), "a kept manifest is a held blob");
        }
    }
}
