//! Commands that need no registry: `validate`, `canonical`, `convert`.

use super::EXIT_FAILURE;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use cnab_oci::bundle::{self, Severity};
use cnab_oci::convert::{self, ConfigManifestForm, IndexForm};
use cnab_oci::oci::{media_type, Descriptor};
use cnab_oci::{fs, Bundle, Reference, RelocationMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// Check a bundle.json and report every problem at once.
#[derive(Args)]
#[command(after_help = "Example:\n  cnab-oci validate bundle.json\n\n\
    Each problem is printed with its JSON path, line and column. Unknown members are \
    warnings, not errors. Exits 1 when any error is found.")]
pub struct ValidateArgs {
    /// The bundle.json file (`-` for standard input).
    bundle: PathBuf,
}

/// Print the canonical bytes of a bundle (the config blob), with no newline.
#[derive(Args)]
#[command(
    after_help = "Example:\n  cnab-oci canonical bundle.json | sha256sum\n\n\
    The bytes are cnab-go's shape of the bundle serialised with RFC 8785 (JCS); \
    members cnab-go does not know are kept."
)]
pub struct CanonicalArgs {
    /// The bundle.json file (`-` for standard input).
    bundle: PathBuf,
}

/// Write the exact objects a push would upload, without a registry.
#[derive(Args)]
#[command(
    after_help = "Example:\n  cnab-oci convert bundle.json --target registry.example.com/app:1.0 \\\n      \
    --relocation-map relocation-map.json --out objects/\n\n\
    Writes config.json (the config blob), config-manifest.json and its two fallbacks \
    (config-manifest.oci-config.json, config-manifest.docker.json), index.json and \
    index.docker-manifest-list.json, and prints one line per file: name, media type, \
    digest, size. Every image must be in the relocation map, in the target repository, \
    digested, and have its size set."
)]
pub struct ConvertArgs {
    /// The bundle.json file (`-` for standard input).
    bundle: PathBuf,
    /// Where the bundle is pushed, `REGISTRY/REPOSITORY[:TAG]`.
    #[arg(long, short = 't', value_parser = super::registry::parse_target)]
    target: Reference,
    /// The relocation map: original image → image in the target repository.
    #[arg(long)]
    relocation_map: PathBuf,
    /// The directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("cannot read standard input")?;
        Ok(buf)
    } else {
        Ok(fs::read(path)?)
    }
}

pub(crate) fn load_bundle(path: &Path) -> Result<Bundle> {
    let bytes = read_input(path)?;
    Bundle::from_slice(&bytes).with_context(|| format!("cannot load bundle `{}`", path.display()))
}

pub fn validate(a: &ValidateArgs, g: &super::Global) -> Result<ExitCode> {
    let bytes = read_input(&a.bundle)?;
    let report = bundle::validate_bytes(&bytes);
    let name = a.bundle.display().to_string();
    let mut out = std::io::stdout().lock();
    match g.output {
        OutputFormat::Json => {
            let problems: Vec<_> = report
                .problems
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "severity": if p.severity == Severity::Error { "error" } else { "warning" },
                        "path": p.path.to_string(),
                        "line": p.pos.map(|x| x.line),
                        "column": p.pos.map(|x| x.column),
                        "message": p.message,
                    })
                })
                .collect();
            let doc =
                serde_json::json!({"file": name, "valid": report.is_valid(), "problems": problems});
            writeln!(out, "{doc}")?;
        }
        OutputFormat::Text => {
            for p in &report.problems {
                let sev = if p.severity == Severity::Error {
                    "error"
                } else {
                    "warning"
                };
                let at = p.pos.map_or_else(
                    || name.clone(),
                    |pos| format!("{name}:{}:{}", pos.line, pos.column),
                );
                writeln!(out, "{sev}: {at}: {}: {}", p.path, p.message)?;
            }
            let errors = report.errors().count();
            let warnings = report.warnings().count();
            if errors == 0 {
                writeln!(out, "{name} is valid ({warnings} warning(s))")?;
            } else {
                writeln!(
                    out,
                    "{name} is invalid: {errors} error(s), {warnings} warning(s)"
                )?;
            }
        }
    }
    Ok(if report.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

pub fn canonical(a: &CanonicalArgs) -> Result<ExitCode> {
    let b = load_bundle(&a.bundle)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&b.canonical_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn convert(a: &ConvertArgs) -> Result<ExitCode> {
    let b = load_bundle(&a.bundle)?;
    let target = &a.target;
    let map_bytes = fs::read(&a.relocation_map)?;
    let relocation = RelocationMap::from_slice(&map_bytes).with_context(|| {
        format!(
            "cannot load relocation map `{}`",
            a.relocation_map.display()
        )
    })?;

    // Everything is computed before anything is written.
    let blob = convert::config_blob(&b);
    let manifests: Vec<(ConfigManifestForm, Vec<u8>)> = ConfigManifestForm::ALL
        .iter()
        .map(|&f| (f, convert::config_manifest(&blob, f)))
        .collect();
    let preferred = Descriptor::of(
        ConfigManifestForm::Cnab.manifest_media_type(),
        &manifests[0].1,
    );
    let index = convert::bundle_index(&b, &relocation, target, &preferred, IndexForm::Oci)?;
    let list = convert::bundle_index(
        &b,
        &relocation,
        target,
        &preferred,
        IndexForm::DockerManifestList,
    )?;

    let mut files: Vec<(&str, &str, &[u8])> = vec![("config.json", media_type::CNAB_CONFIG, &blob)];
    for (form, bytes) in &manifests {
        let name = match form {
            ConfigManifestForm::Cnab => "config-manifest.json",
            ConfigManifestForm::OciConfig => "config-manifest.oci-config.json",
            ConfigManifestForm::Docker => "config-manifest.docker.json",
        };
        files.push((name, form.manifest_media_type(), bytes));
    }
    files.push(("index.json", IndexForm::Oci.media_type(), &index));
    files.push((
        "index.docker-manifest-list.json",
        IndexForm::DockerManifestList.media_type(),
        &list,
    ));

    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create `{}`", a.out.display()))?;
    let mut out = std::io::stdout().lock();
    for (name, mt, bytes) in files {
        fs::write_atomic(&a.out.join(name), bytes)?;
        let d = Descriptor::of(mt, bytes);
        writeln!(out, "{name}\t{mt}\t{}\t{}", d.digest, d.size)?;
    }
    Ok(ExitCode::SUCCESS)
}
