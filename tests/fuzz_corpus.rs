//! Replays the committed fuzz corpus (testdata/fuzz/<target>/) through the
//! same checks the fuzz targets run (fuzz/checks.rs), so that every input that
//! ever found a problem stays fixed, with no fuzzer needed.

include!("../fuzz/checks.rs");

fn replay(target: &str, check: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/fuzz")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "the {target} corpus is empty");
}

/// Bundle inputs.
#[test]
fn bundle_corpus() {
    replay("bundle", check_bundle);
}

/// Reference inputs.
#[test]
fn reference_corpus() {
    replay("reference", check_reference);
}

/// Manifest and index inputs.
#[test]
fn manifest_corpus() {
    replay("manifest", check_manifest);
}

/// `WWW-Authenticate` inputs.
#[test]
fn www_authenticate_corpus() {
    replay("www_authenticate", check_www_authenticate);
}

/// Thick bundle archive inputs.
#[test]
fn archive_corpus() {
    replay("archive", check_archive);
}
