//! Command-line parsing and output. Everything here is presentation: the work is
//! done by the library.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod offline;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

/// Exit code for a failed operation.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error (clap uses it too).
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "cnab-oci",
    version,
    about = "Move CNAB bundles between OCI registries",
    long_about = "Move CNAB bundles between OCI registries.\n\n\
        cnab-oci reads, validates and canonicalises bundle.json files and converts them \
        to the objects a registry stores (config blob, config manifest, bundle index), \
        byte for byte as cnab-to-oci does.",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Validate(offline::ValidateArgs),
    Canonical(offline::CanonicalArgs),
    Convert(offline::ConvertArgs),
}

/// Parses the command line, runs the command, and maps the outcome to an exit
/// code: 0 success, 1 failure, 2 usage error.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
        }
    };
    let result = match cli.command {
        Command::Validate(a) => offline::validate(&a),
        Command::Canonical(a) => offline::canonical(&a),
        Command::Convert(a) => offline::convert(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
