//! `cnab-oci archive`: a bundle and its images into one thick bundle file.

use super::registry::{check_outputs, RelocateArgs};
use super::report;
use super::Global;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use cnab_oci::archive::Compression;
use cnab_oci::ops::{ArchiveOptions, ArchiveSource, FixupOptions, Location};
use cnab_oci::{fs, RelocationMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// The gzip level of an archive.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum CompressionArg {
    /// Level 0: stored, no compression (Porter's NoCompression). Layers are
    /// already compressed: the archive is about 1 % larger than at any level,
    /// and an import inflates it many times faster.
    #[default]
    None,
    /// Level 1 (Porter's BestSpeed), for bundles with uncompressed layers.
    Fast,
    /// Level 6 (Porter's DefaultCompression).
    Default,
    /// Level 9 (Porter's BestCompression).
    Best,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Compression {
        match c {
            CompressionArg::None => Compression::None,
            CompressionArg::Fast => Compression::Fast,
            CompressionArg::Default => Compression::Default,
            CompressionArg::Best => Compression::Best,
        }
    }
}

/// Write a bundle and every image it names into one archive (a thick bundle).
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    cnab-oci archive registry.example.com/app:1.0 --out app-1.0.tgz\n  \
    cnab-oci archive bundle.json --out app-1.0.tgz\n  \
    cnab-oci archive registry.example.com/app:1.1 --since app-1.0.tgz --out app-1.1-delta.tgz\n\n\
    The archive is a gzip'd tar laid out as `porter archive` lays it out (bundle.json, \
    relocation-mapping.json, an OCI image layout under artifacts/layout), with the metadata \
    first and every header fixed, so that archiving the same bundle twice, or again after a \
    push elsewhere, gives the same bytes. Blobs stream from the registries into the file; it \
    is written atomically. Import it with `cnab-oci push FILE.tgz --target REF`.")]
pub struct ArchiveCmd {
    /// The bundle: a pushed bundle (`REGISTRY/REPOSITORY[:TAG][@DIGEST]`, or
    /// `oci:PATH[:NAME]` for one in an OCI layout), or a bundle.json file whose
    /// images are reachable.
    source: String,
    /// The archive to write (`.tgz`).
    #[arg(long, short = 'o', value_name = "FILE")]
    out: PathBuf,
    /// Leave out the blobs this earlier archive holds: the result is a delta,
    /// to import where that archive was imported.
    #[arg(long, value_name = "OLD.tgz")]
    since: Option<PathBuf>,
    /// The gzip level.
    #[arg(long, value_enum, default_value_t)]
    compression: CompressionArg,
    /// For a bundle.json: where to look for images first (a previous relocation).
    #[arg(long, value_name = "FILE")]
    input_relocation_map: Option<PathBuf>,
    /// For a bundle.json: update each image's contentDigest, size and mediaType
    /// from the registry instead of failing when they differ.
    #[arg(long)]
    auto_update_bundle: bool,
    #[command(flatten)]
    relocate: RelocateArgs,
}

/// A bundle.json when `s` names a file, else a pushed bundle's reference.
fn source_of(s: &str) -> Result<Option<PathBuf>> {
    let path = Path::new(s);
    if path.is_file() || s == "-" {
        return Ok(Some(path.to_owned()));
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || path.is_dir()
    {
        return Err(anyhow::Error::new(cnab_oci::Error::Io {
            action: "cannot read",
            path: path.to_owned(),
            reason: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such bundle file; name a bundle.json or a pushed bundle's reference",
            ),
        }));
    }
    Ok(None)
}

pub async fn archive(c: &ArchiveCmd, g: &Global, cancel: &CancellationToken) -> Result<ExitCode> {
    check_outputs([c.out.as_path()])?;
    if c.out.as_os_str() == "-" {
        return Err(super::Usage(
            "--out -: name a file for the archive (it is written atomically, then renamed into place)".into(),
        )
        .into());
    }
    let source = match source_of(&c.source)? {
        Some(path) if super::import::is_archive(&path)? => {
            return Err(super::Usage(format!(
                "`{}` is already a thick bundle archive: import it with `cnab-oci push {} --target REF`, \
                 or name a bundle.json or a pushed bundle to archive",
                path.display(),
                path.display()
            ))
            .into());
        }
        Some(path) => ArchiveSource::Bundle(Box::new(super::offline::load_bundle(&path)?)),
        None => ArchiveSource::Pushed(
            Location::parse(&c.source).map_err(|e| {
                super::Usage(format!(
                    "invalid value '{}' for '<SOURCE>': {e}; name a bundle.json file or a pushed bundle (REGISTRY/REPOSITORY[:TAG][@DIGEST], oci:PATH[:NAME])",
                    c.source
                ))
            })?,
        ),
    };
    let input_relocation_map = match &c.input_relocation_map {
        Some(p) => Some(
            RelocationMap::from_slice(&fs::read(p)?)
                .with_context(|| format!("cannot load input relocation map `{}`", p.display()))?,
        ),
        None => None,
    };
    let since = match &c.since {
        Some(p) => Some(cnab_oci::archive::blob_sizes(p)?),
        None => None,
    };
    let opts = ArchiveOptions {
        fixup: FixupOptions {
            platforms: c.relocate.platforms(),
            auto_update_bundle: c.auto_update_bundle,
            input_relocation_map,
            foreign_layers: c.relocate.foreign_layers(),
            referrers: c.relocate.referrers(),
        },
        compression: c.compression.into(),
        since,
    };
    let relocator = c
        .relocate
        .relocator(report::style(g.json(), g.quiet), cancel)?;
    let outcome = relocator.archive(&source, &c.out, &opts).await?;
    let mut out = std::io::stdout().lock();
    if g.json() {
        let requests: u64 = outcome
            .stats
            .values()
            .map(cnab_oci::registry::RegistryStats::total_requests)
            .sum();
        let doc = serde_json::json!({
            "archive": c.out,
            "digest": outcome.digest.as_str(),
            "size": outcome.size,
            "images": outcome.images.iter().map(|i| serde_json::json!({
                "image": i.original,
                "digest": i.descriptor.digest.as_str(),
                "media_type": i.descriptor.media_type,
            })).collect::<Vec<_>>(),
            "blobs": outcome.blobs,
            "bytes": outcome.bytes,
            "left_out": outcome.left_out,
            "referrers": outcome.referrers,
            "referrers_left_behind": outcome.referrers_left_behind.len(),
            "left_behind_referrers": outcome.referrers_left_behind,
            "referrers_not_searched": outcome.referrers_not_searched,
            "requests": requests,
            "registries": outcome.stats,
        });
        writeln!(out, "{doc}")?;
    } else {
        let delta = if c.since.is_some() {
            format!(", {} left out as in the earlier archive", outcome.left_out)
        } else {
            String::new()
        };
        // Which were left behind, and why, the progress output said.
        let signed = match (outcome.referrers.len(), outcome.referrers_left_behind.len()) {
            (0, 0) => String::new(),
            (n, 0) => format!(", {n} referrer(s)"),
            (n, l) => format!(", {n} referrer(s) ({l} left behind)"),
        };
        writeln!(
            out,
            "Archived successfully to {}: {} image(s){signed}, {} blob(s) ({} bytes){delta}, {} bytes, digest \"{}\"",
            c.out.display(),
            outcome.images.len(),
            outcome.blobs,
            outcome.bytes,
            outcome.size,
            outcome.digest
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
