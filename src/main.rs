//! The `cnab-oci` command: a thin layer over the `cnab_oci` library.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::main()
}
