//! The registry commands: `fixup`, `push`, `pull` (cnab-to-oci's verbs and
//! flags), and the flags `copy` shares with them.

use super::report::{self, Style};
use super::Global;
use anyhow::{Context, Result};
use clap::Args;
use cnab_oci::oci::manifest::Platform;
use cnab_oci::ops::{FixupOptions, Platforms, PushOptions, Relocator};
use cnab_oci::registry::{ClientConfig, RegistryStats};
use cnab_oci::relocate::{ForeignLayers, Referrers, Totals, DEFAULT_JOBS, DEFAULT_REQUESTS};
use cnab_oci::{fs, Bundle, Reference, RelocationMap};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// How to reach registries.
#[derive(Args, Clone, Debug)]
pub struct RegistryArgs {
    /// Registries reached over HTTPS without certificate verification, or else
    /// plain HTTP (comma-separated `HOST[:PORT]`).
    #[arg(long, value_delimiter = ',', value_parser = parse_registry_host)]
    insecure_registries: Vec<String>,
    /// An extra CA certificate (PEM) to trust, or a self-signed registry
    /// certificate itself; may be repeated.
    #[arg(long = "ca-cert", value_name = "FILE")]
    ca_certs: Vec<PathBuf>,
    /// The family of a registry whose host name does not tell it (a
    /// self-hosted Harbor, GitLab or Artifactory), so that its documented
    /// rules apply: `HOST[:PORT]=FAMILY`, FAMILY one of distribution,
    /// docker-hub, ghcr, gitlab, ecr, acr, gcr, artifact-registry, quay,
    /// harbor, artifactory; may be repeated.
    #[arg(long = "registry-family", value_name = "HOST=FAMILY", value_parser = parse_family)]
    registry_families: Vec<(String, cnab_oci::registry::family::Family)>,
}

/// `HOST[:PORT]=FAMILY`.
fn parse_family(s: &str) -> Result<(String, cnab_oci::registry::family::Family), String> {
    let (host, family) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not HOST[:PORT]=FAMILY"))?;
    Ok((parse_registry_host(host)?, family.parse()?))
}

impl RegistryArgs {
    fn config(&self) -> ClientConfig {
        ClientConfig {
            insecure_registries: self.insecure_registries.clone(),
            ca_certs: self.ca_certs.clone(),
            registry_families: self.registry_families.iter().cloned().collect(),
            ..ClientConfig::default()
        }
    }

    /// A relocator for these registry settings, stopped by `cancel`.
    pub(super) fn relocator(
        &self,
        (jobs, requests): (usize, usize),
        style: Style,
        cancel: &CancellationToken,
    ) -> Result<Relocator> {
        Ok(Relocator::new(self.config())?
            .with_requests(requests)
            .with_jobs(jobs)
            .with_reporter(report::reporter(style))
            .with_cancellation(cancel.clone()))
    }
}

/// How to relocate images.
#[derive(Args, Clone, Debug)]
pub struct RelocateArgs {
    /// Platforms to keep of multi-platform invocation images
    /// (comma-separated `OS/ARCH[/VARIANT]`; default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_platform)]
    invocation_platforms: Vec<Platform>,
    /// Platforms to keep of multi-platform component images.
    #[arg(long, value_delimiter = ',', value_parser = parse_platform)]
    component_platforms: Vec<Platform>,
    /// Copy foreign (non-distributable) layers that the source has, instead
    /// of skipping them (for targets that check every layer).
    #[arg(long)]
    include_foreign_layers: bool,
    /// Leave the images' signatures, attestations and SBOMs behind (cosign's
    /// `sha256-<hex>.sig`/`.att`/`.sbom` tags and OCI 1.1 referrers, carried
    /// by default).
    #[arg(long)]
    no_referrers: bool,
    /// Concurrent blob transfers (byte streams) for the whole bundle (at
    /// least 1).
    #[arg(long, short = 'j', default_value_t = DEFAULT_JOBS, value_parser = parse_jobs)]
    pub(super) jobs: usize,
    /// Concurrent small requests (HEAD, mount, manifest PUT) and blob copies
    /// in flight for the whole bundle (at least 1; raised to --jobs).
    #[arg(long, default_value_t = DEFAULT_REQUESTS, value_parser = parse_requests)]
    pub(super) requests: usize,
    #[command(flatten)]
    pub(super) registry: RegistryArgs,
}

impl RelocateArgs {
    /// A relocator with these budgets and registry settings.
    pub(super) fn relocator(&self, style: Style, cancel: &CancellationToken) -> Result<Relocator> {
        self.registry
            .relocator((self.jobs, self.requests), style, cancel)
    }

    pub(super) fn foreign_layers(&self) -> ForeignLayers {
        if self.include_foreign_layers {
            ForeignLayers::CopyFromSource
        } else {
            ForeignLayers::Skip
        }
    }

    pub(super) fn referrers(&self) -> Referrers {
        if self.no_referrers {
            Referrers::Skip
        } else {
            Referrers::Carry
        }
    }

    pub(super) fn platforms(&self) -> Platforms {
        Platforms {
            invocation: self.invocation_platforms.clone(),
            component: self.component_platforms.clone(),
        }
    }
}

fn parse_jobs(s: &str) -> Result<usize, String> {
    at_least_one(s, "transfers")
}

/// A whole number of `what` at once, at least 1.
fn at_least_one(s: &str, what: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err(format!(
            "must be at least 1: it is how many {what} run at once"
        )),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: a whole number of {what} at once, at least 1")),
    }
}

/// A registry as `HOST[:PORT]`, as Docker's `insecure-registries` names it:
/// no scheme, no path.
fn parse_registry_host(s: &str) -> Result<String, String> {
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(format!(
            "name the registry as HOST[:PORT], without `{scheme}://`"
        ));
    }
    if s.is_empty() {
        return Err("an empty registry name (a stray comma?)".into());
    }
    if s.chars().any(char::is_whitespace) {
        return Err("a registry name has no spaces".into());
    }
    if s.contains('/') {
        return Err("a registry is HOST[:PORT], with no path".into());
    }
    // The host and port as an image reference's domain has them.
    let domain = Reference::parse(&format!("{s}/x"))
        .ok()
        .map(|r| r.domain().to_owned());
    if domain.as_deref() != Some(s) {
        return Err("not a registry host name (HOST[:PORT])".into());
    }
    if let Some((_, port)) = s.rsplit_once(':').filter(|_| !s.ends_with(']')) {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("`{port}` is not a port (1 to 65535)"));
        }
    }
    Ok(s.to_owned())
}

fn parse_requests(s: &str) -> Result<usize, String> {
    at_least_one(s, "small requests")
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::parse(s)
}

/// Arguments shared by `fixup` and `push`.
#[derive(Args, Clone, Debug)]
pub struct FixupArgs {
    /// The bundle.json file, or a thick bundle archive (.tgz) for `push`.
    pub(super) bundle_file: PathBuf,
    /// Where the bundle and its images go: `REGISTRY/REPOSITORY[:TAG]`.
    #[arg(long, short = 't', value_parser = parse_target)]
    pub(super) target: Reference,
    /// Update each image's contentDigest, size and mediaType from the registry
    /// instead of failing when they differ.
    #[arg(long)]
    pub(super) auto_update_bundle: bool,
    /// A relocation map from a previous relocation: where to look for images first.
    #[arg(long, value_name = "FILE")]
    pub(super) input_relocation_map: Option<PathBuf>,
    /// Print the plan and touch nothing.
    #[arg(long)]
    pub(super) dry_run: bool,
    #[command(flatten)]
    pub(super) relocate: RelocateArgs,
}

/// Make sure every image of a bundle is in the target repository.
#[derive(Args)]
#[command(
    after_help = "Example:\n  cnab-oci fixup bundle.json --target registry.example.com/app:1.0\n\n\
    Resolves every image (through --input-relocation-map first), walks its manifests and \
    indexes, and makes all of it present in the target repository: skipping what is there, \
    mounting within a registry, streaming across registries. Writes the fixed bundle and the \
    relocation map (canonical JSON, atomically; `-` for stdout)."
)]
pub struct FixupCmd {
    #[command(flatten)]
    args: FixupArgs,
    /// Where to write the fixed bundle.
    #[arg(
        long = "bundle",
        default_value = "fixed-bundle.json",
        value_name = "FILE"
    )]
    out_bundle: PathBuf,
    /// Where to write the relocation map.
    #[arg(long, default_value = "relocation-map.json", value_name = "FILE")]
    relocation_map: PathBuf,
}

/// Fixup, then push the bundle itself as an OCI index.
#[derive(Args)]
#[command(
    after_help = "Example:\n  cnab-oci push bundle.json --target registry.example.com/app:1.0\n\n\
    Runs fixup, then pushes the config blob, the config manifest and, last, the bundle index \
    to the target tag, and prints `Pushed successfully, with digest \"sha256:…\"`. With \
    --bundle or --relocation-map, also writes those files."
)]
pub struct PushCmd {
    #[command(flatten)]
    pub(super) args: FixupArgs,
    /// Use the fallback forms for registries that refuse custom config media
    /// types or OCI indexes.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub(super) allow_fallbacks: bool,
    /// Also write the fixed bundle here.
    #[arg(long = "bundle", value_name = "FILE")]
    pub(super) out_bundle: Option<PathBuf>,
    /// Also write the relocation map here.
    #[arg(long, value_name = "FILE")]
    pub(super) relocation_map: Option<PathBuf>,
}

/// Read a bundle back from a registry.
#[derive(Args)]
#[command(
    after_help = "Example:\n  cnab-oci pull registry.example.com/app:1.0\n\n\
    Verifies the digest and size of the index, the config manifest and the config blob, \
    and writes the bundle and its relocation map (canonical JSON, atomically)."
)]
pub struct PullCmd {
    /// The bundle's reference: `REGISTRY/REPOSITORY[:TAG][@DIGEST]`.
    #[arg(value_parser = parse_reference)]
    reference: Reference,
    /// Where to write the bundle.
    #[arg(long = "bundle", default_value = "pulled.json", value_name = "FILE")]
    out_bundle: PathBuf,
    /// Where to write the relocation map.
    #[arg(long, default_value = "relocation-map.json", value_name = "FILE")]
    relocation_map: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// A reference to read from. Checked by clap, so that an invalid one is a
/// usage error (exit 2) before anything is read or requested.
pub(crate) fn parse_reference(s: &str) -> Result<Reference, String> {
    Reference::parse(s).map_err(|e| {
        format!("{e}; a reference is REGISTRY/REPOSITORY[:TAG][@DIGEST], in lower case")
    })
}

/// A reference to write to: valid, and taggable. The bundle index is
/// written at the tag, so a digest (with or without a tag) is refused
/// rather than ignored.
pub(crate) fn parse_target(s: &str) -> Result<Reference, String> {
    let r = Reference::parse(s)
        .map_err(|e| format!("{e}; a target is REGISTRY/REPOSITORY[:TAG], in lower case"))?;
    match r.digest() {
        Some(d) => Err(format!(
            "a target must be taggable, but this one names the digest `{d}`: drop `@DIGEST` and name a tag instead (REGISTRY/REPOSITORY:TAG)"
        )),
        None => Ok(r),
    }
}

/// Checks, before any work, that every output path can be written (`-` is
/// standard output): a usage error otherwise, so that nothing is moved for
/// output that cannot be kept.
pub(super) fn check_outputs<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    let mut seen: Vec<(&Path, PathBuf)> = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            continue;
        }
        fs::check_output(p).map_err(super::UsageError)?;
        // Two outputs in one file: the second would replace the first.
        let at = fs::output_location(p);
        if let Some((first, _)) = seen.iter().find(|(_, other)| *other == at) {
            return Err(anyhow::Error::new(super::UsageError(cnab_oci::Error::Io {
                action: "cannot write",
                path: p.to_owned(),
                reason: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("`{}` is the same file; name two files", first.display()),
                ),
            })));
        }
        seen.push((p, at));
    }
    Ok(())
}

pub(super) fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()?;
        Ok(())
    } else {
        Ok(fs::write_atomic(path, bytes)?)
    }
}

fn fixup_options(
    a: &FixupArgs,
    g: &Global,
    cancel: &CancellationToken,
) -> Result<(Bundle, Reference, FixupOptions, Relocator)> {
    let bundle = super::offline::load_bundle(&a.bundle_file)?;
    let target = a.target.clone();
    let input_relocation_map = match &a.input_relocation_map {
        Some(p) => Some(
            RelocationMap::from_slice(&fs::read(p)?)
                .with_context(|| format!("cannot load input relocation map `{}`", p.display()))?,
        ),
        None => None,
    };
    let style = report::style(g.json(), g.quiet);
    let style = if a.dry_run && style != Style::Json {
        Style::Quiet
    } else {
        style
    };
    let opts = FixupOptions {
        platforms: a.relocate.platforms(),
        auto_update_bundle: a.auto_update_bundle,
        input_relocation_map,
        foreign_layers: a.relocate.foreign_layers(),
        referrers: a.relocate.referrers(),
    };
    let relocator =
        a.relocate
            .registry
            .relocator((a.relocate.jobs, a.relocate.requests), style, cancel)?;
    Ok((bundle, target, opts, relocator))
}

pub(super) fn result_json(
    digest: Option<&str>,
    relocation: &RelocationMap,
    totals: &Totals,
    stats: &BTreeMap<String, RegistryStats>,
    fallbacks: &[String],
) -> serde_json::Value {
    let requests: u64 = stats.values().map(RegistryStats::total_requests).sum();
    serde_json::json!({
        "digest": digest,
        "relocation_map": relocation.iter().collect::<BTreeMap<_, _>>(),
        "requests": requests,
        "bytes_up": stats.values().map(|s| s.bytes_up).sum::<u64>(),
        "bytes_down": stats.values().map(|s| s.bytes_down).sum::<u64>(),
        "mounts": totals.blobs_mounted,
        "copies": totals.blobs_copied,
        "skips": totals.blobs_skipped + totals.manifests_skipped,
        "foreign_skipped": totals.foreign_skipped,
        "referrers_carried": totals.referrers_carried,
        "referrers_present": totals.referrers_present,
        "referrers_left_behind": totals.referrers_left_behind,
        "fallbacks": fallbacks,
        "registries": stats,
    })
}

pub async fn fixup(c: &FixupCmd, g: &Global, cancel: &CancellationToken) -> Result<ExitCode> {
    let (mut bundle, target, opts, relocator) = fixup_options(&c.args, g, cancel)?;
    if c.args.dry_run {
        let outcome = relocator.plan_fixup(&mut bundle, &target, &opts).await?;
        super::tables::print_plan(&outcome, g.json())?;
        return Ok(ExitCode::SUCCESS);
    }
    check_outputs([c.out_bundle.as_path(), c.relocation_map.as_path()])?;
    let outcome = relocator.fixup(&mut bundle, &target, &opts).await?;
    write_output(&c.out_bundle, &bundle.canonical_bytes())?;
    write_output(&c.relocation_map, &outcome.relocation_map.canonical_bytes())?;
    if g.json() {
        writeln!(
            std::io::stdout(),
            "{}",
            result_json(
                None,
                &outcome.relocation_map,
                &outcome.totals,
                &outcome.stats,
                &[]
            )
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn push(c: &PushCmd, g: &Global, cancel: &CancellationToken) -> Result<ExitCode> {
    if super::import::is_archive(&c.args.bundle_file)? {
        return super::import::push_archive(c, g, cancel).await;
    }
    let (mut bundle, target, opts, relocator) = fixup_options(&c.args, g, cancel)?;
    if c.args.dry_run {
        let outcome = relocator.plan_fixup(&mut bundle, &target, &opts).await?;
        super::tables::print_plan(&outcome, g.json())?;
        return Ok(ExitCode::SUCCESS);
    }
    check_outputs(
        c.out_bundle
            .iter()
            .chain(&c.relocation_map)
            .map(PathBuf::as_path),
    )?;
    let fixed = relocator.fixup(&mut bundle, &target, &opts).await?;
    let push_opts = PushOptions {
        allow_fallbacks: c.allow_fallbacks,
        index_hook: None,
    };
    let pushed = relocator
        .push(&bundle, &fixed.relocation_map, &target, &push_opts)
        .await?;
    if let Some(p) = &c.out_bundle {
        write_output(p, &bundle.canonical_bytes())?;
    }
    if let Some(p) = &c.relocation_map {
        write_output(p, &fixed.relocation_map.canonical_bytes())?;
    }
    // Fixup and push share one client: its stats cover both.
    let stats = &pushed.stats;
    let mut out = std::io::stdout().lock();
    if g.json() {
        writeln!(
            out,
            "{}",
            result_json(
                Some(pushed.descriptor.digest.as_str()),
                &fixed.relocation_map,
                &fixed.totals,
                stats,
                &pushed.fallbacks
            )
        )?;
    } else {
        writeln!(
            out,
            "Pushed successfully, with digest \"{}\"",
            pushed.descriptor.digest
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pull(c: &PullCmd, g: &Global, cancel: &CancellationToken) -> Result<ExitCode> {
    let r = &c.reference;
    let relocator = c
        .registry
        .relocator((DEFAULT_JOBS, DEFAULT_REQUESTS), Style::Quiet, cancel)?;
    check_outputs([c.out_bundle.as_path(), c.relocation_map.as_path()])?;
    let pulled = relocator.pull(r).await?;
    write_output(&c.out_bundle, &pulled.bundle.canonical_bytes())?;
    write_output(&c.relocation_map, &pulled.relocation_map.canonical_bytes())?;
    let mut out = std::io::stdout().lock();
    if g.json() {
        let mut doc = result_json(
            Some(pulled.digest.as_str()),
            &pulled.relocation_map,
            &Totals::default(),
            &pulled.stats,
            &[],
        );
        doc["referrers"] = serde_json::json!(pulled.referrers);
        doc["referrers_not_searched"] = serde_json::json!(pulled.referrers_not_searched);
        writeln!(out, "{doc}")?;
        return Ok(ExitCode::SUCCESS);
    }
    super::tables::pulled_referrers(&mut out, &pulled, &r.to_string())?;
    Ok(ExitCode::SUCCESS)
}
