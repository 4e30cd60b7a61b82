//! A CI promotion pipeline: push a bundle to staging, then promote the very
//! same index (same digest) to production.
//!
//! Run: `cargo run --example promote -- BUNDLE.json STAGING PRODUCTION` (for
//! example `127.0.0.1:5000/staging/demo:1.0.0 127.0.0.1:5000/prod/demo:1.0.0`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use cnab_oci::ops::{CopyOptions, FixupOptions, Location, PushOptions, Relocator};
use cnab_oci::{Bundle, Reference};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bundle_path, staging, production] = args.as_slice() else {
        eprintln!("usage: promote BUNDLE.json STAGING PRODUCTION");
        std::process::exit(2);
    };
    let (staging, production) = (Reference::parse(staging)?, Reference::parse(production)?);
    let mut bundle = Bundle::from_slice(&std::fs::read(bundle_path)?)?;

    // Build stage: relocate the images next to the bundle and push it.
    let fixup = FixupOptions {
        auto_update_bundle: true,
        ..FixupOptions::default()
    };
    // One relocator for the whole pipeline: one client, one budget.
    let relocator = Relocator::new(cnab_oci::registry::ClientConfig::default())?;
    let fixed = relocator.fixup(&mut bundle, &staging, &fixup).await?;
    let pushed = relocator
        .push(
            &bundle,
            &fixed.relocation_map,
            &staging,
            &PushOptions::default(),
        )
        .await?;
    println!("staged   {staging} {}", pushed.descriptor.digest);

    // Release stage: promote what was tested, byte for byte.
    let copied = relocator
        .copy(
            &Location::Registry(staging.clone()),
            &Location::Registry(production.clone()),
            &CopyOptions {
                platforms: fixup.platforms.clone(),
                ..CopyOptions::default()
            },
        )
        .await?;
    println!("promoted {production} {}", copied.descriptor.digest);
    assert_eq!(
        copied.descriptor.digest, pushed.descriptor.digest,
        "promotion keeps the digest"
    );

    let pulled = relocator.pull(&production).await?;
    println!(
        "pulled   {} {} ({} images)",
        pulled.bundle.name,
        pulled.bundle.version,
        pulled.relocation_map.len()
    );
    Ok(())
}
