//! # cnab-oci
//!
//! Moves [CNAB](https://cnab.io) bundles between OCI registries, byte-compatible
//! with cnab-to-oci (the engine inside Porter).
//!
//! A bundle (`bundle.json`) is read into a lossless [`Bundle`]; its canonical form
//! ([`Bundle::canonical_bytes`]) is the config blob pushed to a registry, and
//! [`convert`] builds the config manifest and the bundle index around it, exactly
//! as cnab-to-oci does, so that digests match.
//!
//! ```
//! use cnab_oci::{convert, Bundle, Reference, RelocationMap};
//!
//! let bundle = Bundle::from_slice(br#"{
//!   "schemaVersion": "v1.0.0", "name": "hello", "version": "0.1.0",
//!   "invocationImages": [{"imageType": "docker", "image": "example/hello:0.1.0",
//!     "size": 942, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}]
//! }"#)?;
//! assert!(bundle.validate().is_empty());
//!
//! let target = Reference::parse("registry.example.com/bundles/hello:0.1.0")?;
//! let digest = "sha256:a59a4e74d9cc89e4e75dfb2cc7ea5c108e4236ba6231b53081a9e2506d1197b6";
//! let relocation: RelocationMap =
//!     [("example/hello:0.1.0", format!("registry.example.com/bundles/hello@{digest}"))]
//!         .into_iter()
//!         .collect();
//!
//! let blob = convert::config_blob(&bundle);
//! let manifest = convert::config_manifest(&blob, convert::ConfigManifestForm::Cnab);
//! let manifest_desc = cnab_oci::oci::Descriptor::of(
//!     convert::ConfigManifestForm::Cnab.manifest_media_type(), &manifest);
//! let index = convert::bundle_index(&bundle, &relocation, &target, &manifest_desc,
//!     convert::IndexForm::Oci)?;
//! assert!(index.starts_with(br#"{"schemaVersion":2,"manifests":["#));
//! # Ok::<(), cnab_oci::Error>(())
//! ```
//!
//! ## Layout
//! - [`archive`]: thick bundles (CNAB spec 104) as Porter lays them out, reproducible to the byte.
//! - [`json`]: a positioned JSON tree, RFC 8785 canonical output, Go-style output.
//! - [`bundle`]: the bundle model, its validation and canonical form.
//! - [`reference`](mod@reference): image references with Docker's grammar and normalisation.
//! - [`digest`]: validated content digests.
//! - [`oci`]: media types, descriptors, manifest views; referrers and digest tags.
//! - [`convert`]: bundle ⇄ config blob, config manifest, index; relocation maps.
//! - [`relocation`]: the relocation map file.
//! - [`store`]: what the engine reads and writes: a registry repository or an OCI layout.
//! - [`relocate`]: the engine: plan, then copy under one concurrency budget; events.
//! - [`ops`]: the front doors on a [`ops::Relocator`]: `fixup`, `push`, `pull`, `copy`.
//! - [`hint`]: what a user can do about an error, as data.
#![cfg_attr(
    feature = "synth",
    doc = "- [`synth`]: deterministic synthetic images for demos, tests and benchmarks (feature `synth`)."
)]
#![cfg_attr(
    not(feature = "synth"),
    doc = "- `synth`: deterministic synthetic images for demos, tests and benchmarks (feature `synth`, off)."
)]
//! - [`registry`]: the registry client (auth, TLS, retries, streaming copies).
//! - [`fs`]: atomic output files.
//!
//! The core does no network I/O and never prints.
//!
//! ## Features
//!
//! - `cli` (default): the `cnab-oci` binary and the crates only it uses (clap,
//!   indicatif, anyhow, tracing-subscriber, tokio's signal handling and
//!   multi-thread runtime). The library never needs them, so a program that
//!   embeds it turns default features off:
//!
//!   ```toml
//!   [dependencies]
//!   cnab-oci = { version = "0.1", default-features = false }
//!   ```
//! - `synth`: the `synth` module, deterministic synthetic images for demos,
//!   tests and benchmarks. Off by default; the crate's own tests, examples and
//!   benchmarks turn it on.

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod archive;
pub mod bundle;
pub mod convert;
pub mod digest;
pub mod error;
pub mod fs;
pub mod hint;
pub mod json;
pub mod oci;
pub mod ops;
pub mod reference;
pub mod registry;
pub mod relocate;
pub mod relocation;
pub mod store;
#[cfg(feature = "synth")]
#[cfg_attr(docsrs, doc(cfg(feature = "synth")))]
pub mod synth;

pub use bundle::Bundle;
pub use digest::Digest;
pub use error::{Error, Result};
pub use hint::Hint;
pub use reference::Reference;
pub use relocation::RelocationMap;
