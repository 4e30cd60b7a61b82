//! `copy`: promotes a pushed bundle between registry repositories and OCI
//! image layouts (`oci:PATH[:NAME]`, and `oci-archive:PATH[:NAME]` to read).

use super::registry::{parse_reference, parse_target, result_json, RelocateArgs};
use super::report;
use super::Global;
use anyhow::Result;
use clap::Args;
use cnab_oci::ops::{CopyOptions, Location};
use cnab_oci::store::LayoutStore;
use cnab_oci::RelocationMap;
use std::io::Write;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Promote a pushed bundle to another repository (CI), or into or out of an
/// OCI image layout.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cnab-oci copy staging.example.com/app:1.0 --target prod.example.com/app:1.0\n  \
    cnab-oci copy staging.example.com/app:1.0 --target oci:./out:app:1.0\n  \
    cnab-oci copy oci:./out:app:1.0 --target prod.example.com/app:1.0\n\n\
    Relocates every image the bundle index lists into the target repository, then pushes the \
    same config and index bytes, so the index digest does not change (a platform filter \
    changes it, and the command says so). Prints the digest.\n\n\
    oci:PATH[:NAME] is an OCI image layout directory and oci-archive:PATH[:NAME] a layout tar \
    (source only), as skopeo writes them: PATH ends at the first `:`, NAME is the bundle \
    index's org.opencontainers.image.ref.name. A source without NAME is the layout's only \
    image; a target without NAME is written as `latest`."
)]
pub struct CopyCmd {
    /// The pushed bundle: `REGISTRY/REPOSITORY[:TAG][@DIGEST]`, `oci:PATH[:NAME]` (an OCI
    /// layout directory) or `oci-archive:PATH[:NAME]` (a layout tar).
    #[arg(value_parser = parse_source)]
    source: Location,
    /// Where it goes: `REGISTRY/REPOSITORY[:TAG]` or `oci:PATH[:NAME]` (created if missing;
    /// NAME defaults to `latest`).
    #[arg(long, short = 't', value_parser = parse_copy_target)]
    target: Location,
    /// Use fallback forms when a filtered copy pushes a new index.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    allow_fallbacks: bool,
    #[command(flatten)]
    relocate: RelocateArgs,
}

/// A copy source: a layout form, or a reference to read from (with the
/// messages of [`parse_reference`]).
fn parse_source(s: &str) -> Result<Location, String> {
    if Location::is_layout_form(s) {
        Location::parse(s).map_err(|e| e.to_string())
    } else {
        parse_reference(s).map(Location::Registry)
    }
}

/// A copy target: a layout directory, or a reference to write to (with the
/// messages of [`parse_target`]).
fn parse_copy_target(s: &str) -> Result<Location, String> {
    if Location::is_layout_form(s) {
        Location::parse_target(s).map_err(|e| e.to_string())
    } else {
        parse_target(s).map(Location::Registry)
    }
}

/// Whether a layout that cannot be opened is the command line's fault (a
/// missing or wrong path, no name where one is needed): a usage error.
fn layout_usage(e: cnab_oci::Error) -> anyhow::Error {
    use cnab_oci::store::LayoutError as L;
    match &e {
        cnab_oci::Error::Layout(
            L::NotALayout { .. } | L::NotOneImage { .. } | L::UnsupportedVersion { .. },
        ) => anyhow::Error::new(super::UsageError(e)),
        _ => anyhow::Error::new(e),
    }
}

pub async fn copy(c: &CopyCmd, g: &Global, cancel: &CancellationToken) -> Result<ExitCode> {
    let (source, target) = (&c.source, &c.target);
    let style = report::style(g.json(), g.quiet);
    let relocator =
        c.relocate
            .registry
            .relocator((c.relocate.jobs, c.relocate.requests), style, cancel)?;
    let opts = CopyOptions {
        platforms: c.relocate.platforms(),
        allow_fallbacks: c.allow_fallbacks,
        foreign_layers: c.relocate.foreign_layers(),
        referrers: c.relocate.referrers(),
    };
    // Layouts are checked before anything moves: a source must open (and,
    // without a name, hold one image), a target must be writable, and a
    // platform filter cannot go into one.
    if !matches!(source, Location::Registry(_)) {
        relocator.open(source, false).map_err(layout_usage)?;
    }
    if let Location::Layout { path, .. } = target {
        LayoutStore::check_target(path).map_err(|e| layout_usage(e.into()))?;
        let p = &opts.platforms;
        if !p.invocation.is_empty() || !p.component.is_empty() {
            return Err(anyhow::Error::new(super::UsageError(
                cnab_oci::Error::FilteredIntoLayout {
                    target: target.to_string(),
                },
            )));
        }
    }
    let outcome = relocator.copy(source, target, &opts).await?;
    let mut out = std::io::stdout().lock();
    if g.json() {
        let mut doc = result_json(
            Some(outcome.descriptor.digest.as_str()),
            &RelocationMap::new(),
            &outcome.totals,
            &outcome.stats,
            &[],
        );
        doc["digest_changed"] = outcome.digest_changed.into();
        doc["source"] = source.to_string().into();
        doc["target"] = target.to_string().into();
        writeln!(out, "{doc}")?;
    } else {
        if outcome.digest_changed {
            writeln!(std::io::stderr(), "note: the platform filter changed the bundle, so the index digest differs from the source's")?;
        }
        writeln!(
            out,
            "Copied successfully, with digest \"{}\"",
            outcome.descriptor.digest
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
