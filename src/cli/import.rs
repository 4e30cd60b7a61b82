//! Thick bundle archives on the command line: `verify FILE.tgz`, and
//! `push FILE.tgz`, the import (`porter publish --archive`).

use super::registry::{check_outputs, result_json, write_output, PushCmd};
use super::report;
use super::Global;
use anyhow::{Context, Result};
use clap::Args;
use cnab_oci::archive::{self, VerifyOptions};
use cnab_oci::ops::{ImportOptions, ImportOutcome, PushOptions};
use cnab_oci::relocate::Totals;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Check a thick bundle archive offline: every blob, manifest and image.
#[derive(Args)]
#[command(
    after_help = "Example:\n  cnab-oci verify bundle.tgz\n  cnab-oci verify delta.tgz --since base.tgz\n\n\
    Reads the archive once, without any registry: refuses hostile entries (absolute paths, \
    `..`, links, duplicates that disagree, truncation, decompression bombs), checks every \
    blob's digest and size, parses every manifest, checks that each blob they refer to is \
    there (or, for a delta, in --since), that bundle.json is valid, and that each image's \
    contentDigest matches the layout. Exits 1 on the first problem, naming it."
)]
pub struct VerifyArgs {
    /// The archive (.tgz).
    archive: PathBuf,
    /// The archive a delta was made against: the blobs left out must be in it.
    #[arg(long, value_name = "OLD.tgz")]
    since: Option<PathBuf>,
}

/// Whether `path` is a gzip'd archive rather than a bundle.json, by its
/// first bytes (the gzip magic; a bundle.json is JSON).
pub fn is_archive(path: &Path) -> Result<bool> {
    if path.as_os_str() == "-" {
        return Ok(false);
    }
    let mut magic = [0u8; 2];
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    let n = f
        .read(&mut magic)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

pub fn verify(a: &VerifyArgs, g: &Global) -> Result<ExitCode> {
    for p in std::iter::once(&a.archive).chain(&a.since) {
        if !p.exists() {
            // A missing input is a failure (exit 1), as for every command.
            return Err(anyhow::Error::new(cnab_oci::Error::Io {
                action: "cannot read",
                path: p.clone(),
                reason: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file; name a thick bundle archive (.tgz)",
                ),
            }));
        }
    }
    let opts = VerifyOptions {
        since: a.since.clone(),
    };
    let mut out = std::io::stdout().lock();
    match archive::verify(&a.archive, &opts) {
        Ok(r) => {
            if g.json() {
                let mut doc = serde_json::to_value(&r)?;
                doc["valid"] = true.into();
                writeln!(out, "{doc}")?;
            } else {
                let mut extra = Vec::new();
                if !r.unreferenced.is_empty() {
                    extra.push(format!(
                        "{} blob(s) no image refers to",
                        r.unreferenced.len()
                    ));
                }
                if !r.unknown_files.is_empty() {
                    extra.push(format!(
                        "{} file(s) that are not part of a thick bundle",
                        r.unknown_files.len()
                    ));
                }
                writeln!(
                    out,
                    "{} is valid: {} image(s), {} blob(s) ({} manifest(s)), {} bytes{}{}{}",
                    a.archive.display(),
                    r.images.len(),
                    r.blobs,
                    r.manifests,
                    r.bytes,
                    if r.in_since > 0 {
                        format!(", {} blob(s) in --since", r.in_since)
                    } else {
                        String::new()
                    },
                    if r.metadata_first {
                        ""
                    } else {
                        " (metadata last, as older Porter writes it)"
                    },
                    if extra.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; it also holds {} (allowed, not imported; `--output json` lists them)",
                            extra.join(" and ")
                        )
                    },
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if g.json() {
                let doc = serde_json::json!({
                    "archive": a.archive,
                    "valid": false,
                    "error": e.to_string(),
                });
                writeln!(out, "{doc}")?;
            }
            drop(out);
            Ok(super::fail(
                &anyhow::Error::new(cnab_oci::Error::from(e)),
                g.json(),
            ))
        }
    }
}

/// `push FILE.tgz`: the import of a thick bundle (`porter publish --archive`).
pub async fn push_archive(c: &PushCmd, g: &Global, cancel: &CancellationToken) -> Result<ExitCode> {
    let a = &c.args;
    let platforms = a.relocate.platforms();
    if !platforms.invocation.is_empty() || !platforms.component.is_empty() {
        return Err(super::Usage(format!(
            "`{}` is a thick bundle archive: it is imported whole, so a platform filter \
             (--invocation-platforms, --component-platforms) does not apply; drop it, or \
             archive the bundle with the filter",
            a.bundle_file.display()
        ))
        .into());
    }
    if a.dry_run || a.input_relocation_map.is_some() || a.auto_update_bundle {
        return Err(super::Usage(format!(
            "`{}` is a thick bundle archive: --dry-run, --input-relocation-map and \
             --auto-update-bundle apply to a bundle.json, not to an import; drop them",
            a.bundle_file.display()
        ))
        .into());
    }
    check_outputs(
        c.out_bundle
            .iter()
            .chain(&c.relocation_map)
            .map(PathBuf::as_path),
    )?;
    let style = report::style(g.json(), g.quiet);
    let relocator =
        a.relocate
            .registry
            .relocator((a.relocate.jobs, a.relocate.requests), style, cancel)?;
    let opts = ImportOptions {
        push: PushOptions {
            allow_fallbacks: c.allow_fallbacks,
            index_hook: None,
        },
        referrers: a.relocate.referrers(),
    };
    let done = relocator.import(&a.bundle_file, &a.target, &opts).await?;
    if let Some(p) = &c.out_bundle {
        write_output(p, &done.bundle.canonical_bytes())?;
    }
    if let Some(p) = &c.relocation_map {
        write_output(p, &done.relocation_map.canonical_bytes())?;
    }
    print_import(&done, g.json())?;
    Ok(ExitCode::SUCCESS)
}

fn print_import(done: &ImportOutcome, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let totals = Totals {
            blobs_copied: done.blobs_uploaded,
            blobs_skipped: done.blobs_skipped,
            manifests_pushed: done.manifests_pushed,
            manifests_skipped: done.manifests_skipped,
            bytes_to_copy: done.bytes_uploaded,
            referrers_carried: done.referrers.iter().filter(|r| !r.present).count() as u64,
            referrers_present: done.referrers.iter().filter(|r| r.present).count() as u64,
            referrers_left_behind: done.referrers_left_behind.len() as u64,
            ..Totals::default()
        };
        let mut doc = result_json(
            Some(done.pushed.descriptor.digest.as_str()),
            &done.relocation_map,
            &totals,
            &done.pushed.stats,
            &done.pushed.fallbacks,
        );
        doc["images"] = done.images.into();
        doc["blobs_uploaded"] = done.blobs_uploaded.into();
        doc["blobs_skipped"] = done.blobs_skipped.into();
        doc["bytes_uploaded"] = done.bytes_uploaded.into();
        doc["manifests_pushed"] = done.manifests_pushed.into();
        doc["manifests_skipped"] = done.manifests_skipped.into();
        doc["passes"] = done.passes.into();
        doc["referrers"] = serde_json::json!(done.referrers);
        // The count is push's `referrers_left_behind`; the list has its own name.
        doc["left_behind_referrers"] = serde_json::json!(done.referrers_left_behind);
        writeln!(out, "{doc}")?;
    } else {
        writeln!(
            out,
            "Imported {} image(s): {} blob(s) uploaded ({} bytes), {} already there; {} manifest(s) pushed, {} already there",
            done.images,
            done.blobs_uploaded,
            done.bytes_uploaded,
            done.blobs_skipped,
            done.manifests_pushed,
            done.manifests_skipped
        )?;
        if !done.referrers.is_empty() {
            let present = done.referrers.iter().filter(|r| r.present).count();
            writeln!(
                out,
                "{} referrer(s) (signatures, attestations, SBOMs) put back, {present} already there",
                done.referrers.len() - present
            )?;
        }
        for l in &done.referrers_left_behind {
            eprintln!(
                "warning: referrer {} of {} is left behind: {}",
                l.found.descriptor.digest, l.found.subject, l.reason
            );
        }
        writeln!(
            out,
            "Pushed successfully, with digest \"{}\"",
            done.pushed.descriptor.digest
        )?;
    }
    Ok(())
}
