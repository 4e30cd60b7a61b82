//! Pushes a few small synthetic images into a registry and writes a bundle.json
//! that references them: the starting point of the demo.
//!
//! Run: `cargo run --example seed -- REGISTRY OUT_DIR` (for example
//! `127.0.0.1:5000 /tmp/demo`). The registry must accept anonymous pushes
//! (a local `docker-registry`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use cnab_oci::oci::manifest::Platform;
use cnab_oci::registry::{Client, ClientConfig, Repository};
use cnab_oci::synth::{self, Format, ImageSpec};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(registry), Some(out)) = (args.next(), args.next()) else {
        eprintln!("usage: seed REGISTRY OUT_DIR");
        std::process::exit(2);
    };
    let client = Client::new(ClientConfig::default())?;
    let base = synth::layer(1, 64 * 1024);
    let multi = ["linux/amd64", "linux/arm64/v8"]
        .iter()
        .map(|p| Platform::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let images = [
        (
            "demo/installer",
            "v1",
            ImageSpec {
                seed: 1,
                format: Format::Docker,
                layer_sizes: vec![128 * 1024],
                shared_layers: vec![base.clone()],
                platforms: vec![],
            },
        ),
        (
            "demo/web",
            "v1",
            ImageSpec {
                seed: 2,
                format: Format::Oci,
                layer_sizes: vec![96 * 1024],
                shared_layers: vec![base.clone()],
                platforms: multi,
            },
        ),
        (
            "demo/worker",
            "v1",
            ImageSpec {
                seed: 3,
                format: Format::Oci,
                layer_sizes: vec![32 * 1024],
                shared_layers: vec![base],
                platforms: vec![],
            },
        ),
    ];
    for (path, tag, spec) in &images {
        let image = synth::build(spec);
        let root = synth::push(
            &client,
            &Repository {
                registry: registry.clone(),
                path: (*path).to_owned(),
            },
            &image,
            tag,
        )
        .await?;
        println!(
            "seeded {registry}/{path}:{tag} {} ({})",
            root.digest, root.media_type
        );
    }
    let bundle = format!(
        r#"{{
  "schemaVersion": "v1.0.0",
  "name": "demo",
  "version": "1.0.0",
  "description": "A demo bundle made of synthetic images",
  "keywords": ["demo", "cnab"],
  "maintainers": [{{"name": "cnab-oci", "url": "https://cnab.io"}}],
  "invocationImages": [{{"imageType": "docker", "image": "{registry}/demo/installer:v1"}}],
  "images": {{
    "web": {{"imageType": "oci", "image": "{registry}/demo/web:v1", "description": "multi-platform web server"}},
    "worker": {{"imageType": "oci", "image": "{registry}/demo/worker:v1", "description": "background worker"}}
  }}
}}
"#
    );
    std::fs::create_dir_all(&out)?;
    let path = std::path::Path::new(&out).join("bundle.json");
    cnab_oci::fs::write_atomic(&path, bundle.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}
