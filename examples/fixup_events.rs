//! Fixup with an event callback that prints progress: relocates the images of a
//! bundle into one repository and prints each event as it comes.
//!
//! Run: `cargo run --example fixup_events -- BUNDLE.json TARGET` (for example
//! the bundle written by the `seed` example and `127.0.0.1:5000/staging/demo:1.0.0`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use cnab_oci::ops::{FixupOptions, Relocator};
use cnab_oci::registry::ClientConfig;
use cnab_oci::relocate::events::Event;
use cnab_oci::{Bundle, Reference};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(bundle_path), Some(target)) = (args.next(), args.next()) else {
        eprintln!("usage: fixup_events BUNDLE.json TARGET");
        std::process::exit(2);
    };
    let mut bundle = Bundle::from_slice(&std::fs::read(&bundle_path)?)?;
    let target = Reference::parse(&target)?;
    let options = FixupOptions {
        auto_update_bundle: true,
        ..FixupOptions::default()
    };
    let reporter = |event: &Event| match event {
        Event::ImageStarted { key, image } => println!("start    {key} {image}"),
        Event::Planned { images } => {
            let objects: usize = images.iter().map(|t| t.root.nodes().len()).sum();
            println!("planned  {} images, {objects} objects", images.len());
        }
        Event::Transfer {
            digest,
            done,
            total,
        } => println!("bytes    {digest} {done}/{total}"),
        Event::NodeFinished {
            digest,
            action,
            error,
        } => {
            println!(
                "done     {} {digest}{}",
                action.as_str(),
                error
                    .as_ref()
                    .map(|e| format!(" FAILED: {e}"))
                    .unwrap_or_default()
            );
        }
        Event::ImageFinished {
            key,
            relocated,
            error,
            ..
        } => {
            println!(
                "finish   {key} {}",
                relocated
                    .as_deref()
                    .or(error.as_deref())
                    .unwrap_or_default()
            );
        }
        _ => {}
    };
    let relocator =
        Relocator::new(ClientConfig::default())?.with_reporter(Some(std::sync::Arc::new(reporter)));
    let outcome = relocator.fixup(&mut bundle, &target, &options).await?;
    for (original, relocated) in outcome.relocation_map.iter() {
        println!("{original} -> {relocated}");
    }
    println!("{:?}", outcome.totals);
    Ok(())
}
