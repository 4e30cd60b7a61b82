//! `check-registry REF`: what a registry does with a bundle push, asked
//! before the first one.

use super::registry::{parse_reference, RegistryArgs};
use super::report::Style;
use super::Global;
use anyhow::Result;
use clap::Args;
use cnab_oci::ops::Answer;
use cnab_oci::relocate::{DEFAULT_JOBS, DEFAULT_REQUESTS};
use cnab_oci::Reference;
use std::io::Write;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Ask a registry what a bundle push needs to know, before the first push.
#[derive(Args)]
#[command(
    after_help = "Example:\n  cnab-oci check-registry registry.example.com/team/app\n\n\
    Pushes a tiny probe into the repository, untagged (a config blob, its config manifest, a \
    Docker manifest of it, an OCI index of both), and asks: does the registry accept the CNAB \
    config media type, and an OCI index mixing OCI and Docker manifests; does a mount answer \
    201 or 202; does it take chunked uploads (and which OCI-Chunk-Min-Length); does it have the \
    referrers API. The probe's manifests are deleted where the registry allows it; what stays \
    is listed. Exits 1 when the probe cannot push at all."
)]
pub struct CheckCmd {
    /// The repository to probe: `REGISTRY/REPOSITORY` (a tag or digest is ignored).
    #[arg(value_parser = parse_reference)]
    reference: Reference,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub async fn check_registry(
    c: &CheckCmd,
    g: &Global,
    cancel: &CancellationToken,
) -> Result<ExitCode> {
    let relocator = c
        .registry
        .relocator((DEFAULT_JOBS, DEFAULT_REQUESTS), Style::Quiet, cancel)?;
    let report = relocator.check_registry(&c.reference).await?;
    let mut out = std::io::stdout().lock();
    if g.json() {
        writeln!(out, "{}", serde_json::json!(report))?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{}/{} (family: {})",
        report.registry, report.repository, report.family
    )?;
    writeln!(out, "{:<56} {:<7} DETAIL", "CHECK", "ANSWER")?;
    for check in &report.checks {
        let answer = match check.answer {
            Answer::Yes => "yes",
            Answer::No => "no",
            Answer::Unknown => "unknown",
        };
        writeln!(out, "{:<56} {answer:<7} {}", check.question, check.detail)?;
    }
    for l in &report.left_behind {
        writeln!(out, "left in the repository: {l}")?;
    }
    Ok(ExitCode::SUCCESS)
}
