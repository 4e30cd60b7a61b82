//! Command-line parsing and output. Everything here is presentation: the work is
//! done by the library.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod archive;
mod check;
mod copy;
mod generate;
mod hints;
mod import;
pub(crate) mod offline;
mod registry;
mod report;
mod tables;

use clap::{Parser, Subcommand};
use offline::OutputFormat;
use std::io::Write;
use std::process::ExitCode;

/// Exit code for a failed operation.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code after Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "cnab-oci",
    version,
    about = "Move CNAB bundles between OCI registries",
    long_about = "Move CNAB bundles between OCI registries.\n\n\
        cnab-oci relocates the images of a bundle into one repository (fixup), pushes the \
        bundle as an OCI index (push), reads it back (pull) and promotes it between \
        repositories (copy), putting the same bytes on the wire as cnab-to-oci.",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.\n\
        Credentials come from the docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json).\n\
        RUST_LOG sets the log filter (for example RUST_LOG=cnab_oci=debug)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

/// Flags every command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct Global {
    /// More logs on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Errors only: no progress.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// `json`: one JSON event per line on stderr, and a JSON result on stdout.
    #[arg(long, value_enum, default_value_t, global = true)]
    output: OutputFormat,
}

impl Global {
    fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

#[derive(Subcommand)]
enum Command {
    Fixup(registry::FixupCmd),
    Push(registry::PushCmd),
    Pull(registry::PullCmd),
    Copy(copy::CopyCmd),
    Archive(archive::ArchiveCmd),
    CheckRegistry(check::CheckCmd),
    Validate(offline::ValidateArgs),
    Verify(import::VerifyArgs),
    Canonical(offline::CanonicalArgs),
    Convert(offline::ConvertArgs),
    Completions(generate::CompletionsArgs),
    Man(generate::ManArgs),
}

/// Resolves on Ctrl-C (SIGINT). The handler is installed when this is called.
fn interrupt_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        let sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        async move {
            match sigint {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_logging(g: &Global) {
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "cnab_oci=debug,warn",
        _ => "cnab_oci=trace,info",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The HTTP stack's own debug logs may show headers: never below info.
    for quiet in [
        "hyper=info",
        "hyper_util=info",
        "h2=info",
        "reqwest=info",
        "rustls=info",
    ] {
        if let Ok(d) = quiet.parse() {
            filter = filter.add_directive(d);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .try_init();
}

/// Parses the command line, runs the command, and maps the outcome to an exit
/// code: 0 success, 1 failure, 2 usage error, 130 interrupted.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
            // Help and version are answers, not errors.
            let answer = matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayVersion
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if !answer && wants_json(std::env::args()) {
                let text = e.to_string();
                let message = text
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("error: ");
                let line = serde_json::json!({"event": "error", "error": message, "hints": ["see --help"]});
                let _ = writeln!(std::io::stderr(), "{line}");
            } else {
                let _ = e.print();
            }
            return code;
        }
    };
    init_logging(&cli.global);
    let g = cli.global.clone();
    let result = match &cli.command {
        Command::Validate(a) => offline::validate(a, &g),
        Command::Verify(a) => import::verify(a, &g),
        Command::Canonical(a) => offline::canonical(a),
        Command::Convert(a) => offline::convert(a),
        Command::Completions(a) => generate::completions(a),
        Command::Man(a) => generate::man(a),
        Command::Fixup(_)
        | Command::Push(_)
        | Command::Pull(_)
        | Command::Copy(_)
        | Command::Archive(_)
        | Command::CheckRegistry(_) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    return fail(
                        &anyhow::Error::new(e).context("cannot start the async runtime"),
                        g.json(),
                    )
                }
            };
            let result = runtime.block_on(async {
                // The handler is in place before any work starts, so that a
                // Ctrl-C is never met by the default action (an abrupt exit).
                let interrupted = interrupt_signal();
                let cancel = tokio_util::sync::CancellationToken::new();
                let watcher = {
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        interrupted.await;
                        cancel.cancel();
                        // A second Ctrl-C does not wait for the clean-up.
                        interrupt_signal().await;
                        let _ = writeln!(
                            std::io::stderr(),
                            "interrupted again: leaving without cleaning up"
                        );
                        std::process::exit(i32::from(EXIT_INTERRUPTED));
                    })
                };
                let work = async {
                    match &cli.command {
                        Command::Fixup(c) => registry::fixup(c, &g, &cancel).await,
                        Command::Push(c) => registry::push(c, &g, &cancel).await,
                        Command::Pull(c) => registry::pull(c, &g, &cancel).await,
                        Command::Copy(c) => copy::copy(c, &g, &cancel).await,
                        Command::Archive(c) => archive::archive(c, &g, &cancel).await,
                        Command::CheckRegistry(c) => check::check_registry(c, &g, &cancel).await,
                        _ => unreachable!("offline commands run above"),
                    }
                };
                // Ctrl-C cancels the work: the library stops its transfers,
                // cancels the upload sessions it opened, and returns
                // `Cancelled`; no output file or tag has been written.
                let r = work.await;
                watcher.abort();
                r
            });
            // Do not wait for transfers that were cancelled.
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            if let Some(cancelled) = result.as_ref().err().and_then(uploads_cancelled) {
                if cancelled > 0 {
                    let _ = writeln!(
                        std::io::stderr(),
                        "interrupted: cancelled {cancelled} open upload session(s)"
                    );
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "interrupted: the bundle tag and the output files were not written (signature \
                     tags already written stay, each beside its manifest); run it again to finish"
                );
                return ExitCode::from(EXIT_INTERRUPTED);
            }
            result
        }
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => fail(&e, g.json()),
    }
}

/// Prints the error chain, then one `hint:` line for each thing the user can
/// do about it (with `--output json`, one JSON line on stderr instead:
/// `{"event":"error","error":…,"hints":[…]}`, as the events are), and
/// returns the failure exit code.
fn fail(e: &anyhow::Error, json: bool) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    if json {
        let hints: Vec<String> = hints::of(e).iter().map(hints::render).collect();
        let line = serde_json::json!({"event": "error", "error": format!("{e:#}"), "hints": hints});
        let _ = writeln!(stderr, "{line}");
    } else {
        let _ = writeln!(stderr, "error: {e:#}");
        for h in hints::of(e) {
            let _ = writeln!(stderr, "hint: {}", hints::render(&h));
        }
    }
    if e.chain().any(|c| c.is::<UsageError>() || c.is::<Usage>()) {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// A usage error found after parsing (an output path that cannot be
/// written): exit 2, like clap's own, before any work.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct UsageError(#[from] pub cnab_oci::Error);

/// A usage error of the command line itself, said in words (flags that do
/// not go together, an argument of the wrong kind): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub String);

/// Whether the command line asks for `--output json`, read from the raw
/// arguments (for errors clap finds before the arguments are parsed).
fn wants_json(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    args.iter().any(|a| a == "--output=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--output" && w[1] == "json")
}

/// For a cancelled run, how many upload sessions were cancelled.
fn uploads_cancelled(e: &anyhow::Error) -> Option<usize> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<cnab_oci::Error>()? {
            cnab_oci::Error::Cancelled { uploads_cancelled } => Some(*uploads_cancelled),
            other => other.is_cancelled().then_some(0),
        })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
