//! Converts a bundle into the objects a push uploads, with no registry: the
//! config blob, the config manifest (and its fallbacks) and the bundle index.
//!
//! Run: `cargo run --example convert [BUNDLE.json]` (defaults to the CNAB spec's
//! 201 example bundle in testdata/).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use cnab_oci::convert::{self, ConfigManifestForm, IndexForm};
use cnab_oci::oci::{media_type, Descriptor};
use cnab_oci::{Bundle, Reference, RelocationMap};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        format!("{dir}/testdata/examples/cnab-spec/201-example-bundle.noncanonical.json")
    });
    let bundle = Bundle::from_slice(&std::fs::read(&path)?)?;
    for problem in bundle.validate() {
        eprintln!("warning: {problem}");
    }

    // Where the bundle goes, and where fixup put its images.
    let target = Reference::parse("registry.example.com/bundles/helloworld:0.1.1")?;
    let relocation = RelocationMap::from_slice(&std::fs::read(format!(
        "{dir}/testdata/sample/relocation-map.json"
    ))?)?;

    let blob = convert::config_blob(&bundle);
    println!(
        "{:<44} {}",
        "config blob",
        Descriptor::of(media_type::CNAB_CONFIG, &blob).digest
    );
    let mut preferred = None;
    for form in ConfigManifestForm::ALL {
        let bytes = convert::config_manifest(&blob, form);
        let d = Descriptor::of(form.manifest_media_type(), &bytes);
        println!(
            "{:<44} {}",
            format!("config manifest ({})", form.name()),
            d.digest
        );
        preferred.get_or_insert(d);
    }
    let preferred = preferred.expect("at least one form");
    for form in [IndexForm::Oci, IndexForm::DockerManifestList] {
        let index = convert::bundle_index(&bundle, &relocation, &target, &preferred, form)?;
        println!(
            "{:<44} {}",
            format!("index ({})", form.media_type()),
            Descriptor::of(form.media_type(), &index).digest
        );
    }
    Ok(())
}
