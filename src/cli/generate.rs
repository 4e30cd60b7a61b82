//! `completions` and `man`: a shell's completion script and a roff man page,
//! generated from the clap definitions, so they never drift from the flags.

use super::Cli;
use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use std::io::Write;
use std::process::ExitCode;

/// The command's name, as installed.
const BIN: &str = "cnab-oci";

/// Print a shell completion script on stdout.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    cnab-oci completions bash > /etc/bash_completion.d/cnab-oci\n  \
    cnab-oci completions zsh > \"${fpath[1]}/_cnab-oci\"\n  \
    cnab-oci completions fish > ~/.config/fish/completions/cnab-oci.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Print the man page (roff) on stdout.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    cnab-oci man > /usr/local/share/man/man1/cnab-oci.1\n  \
    cnab-oci man push > /usr/local/share/man/man1/cnab-oci-push.1")]
pub struct ManArgs {
    /// A subcommand: print its own page, `cnab-oci-COMMAND(1)`, which the
    /// main page refers to.
    #[arg(value_parser = SUBCOMMANDS)]
    command: Option<String>,
}

/// The subcommands, each with a page of its own.
const SUBCOMMANDS: [&str; 12] = [
    "fixup",
    "push",
    "pull",
    "copy",
    "archive",
    "check-registry",
    "validate",
    "verify",
    "canonical",
    "convert",
    "completions",
    "man",
];

/// The completion script for `shell`.
pub(crate) fn completion_script(shell: Shell) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut buf);
    buf
}

/// The man page of the command, or of one subcommand, in roff.
pub(crate) fn man_page(subcommand: Option<&str>) -> Result<Vec<u8>> {
    // As `clap_mangen::generate_to` does: built, so that a subcommand's
    // page is titled `cnab-oci-NAME`, and without the `help` subcommand.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let cmd = match subcommand {
        None => cmd,
        Some(name) => cmd
            .find_subcommand(name)
            .cloned()
            .map(|c| c.version(env!("CARGO_PKG_VERSION")))
            .with_context(|| format!("no subcommand `{name}`"))?,
    };
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .context("cannot render the man page")?;
    Ok(buf)
}

pub fn completions(a: &CompletionsArgs) -> Result<ExitCode> {
    // Generated into memory first: the generator panics on a write error,
    // and a closed pipe is no failure (main maps it to success).
    print(&completion_script(a.shell))
}

pub fn man(a: &ManArgs) -> Result<ExitCode> {
    print(&man_page(a.command.as_deref())?)
}

fn print(bytes: &[u8]) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list `man` takes is every subcommand there is.
    #[test]
    fn the_subcommand_list_is_complete() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        assert_eq!(names, SUBCOMMANDS);
    }

    /// Every shell's script is non-empty and names every subcommand.
    #[test]
    fn every_script_names_the_subcommands() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::PowerShell,
            Shell::Elvish,
        ] {
            let s = String::from_utf8(completion_script(shell)).unwrap();
            assert!(s.contains(BIN), "{shell}");
            for sub in SUBCOMMANDS {
                assert!(s.contains(sub), "{shell} script names `{sub}`");
            }
        }
    }

    /// The roff crate's definition of the apostrophe string, which comes
    /// before the title so that the page's text may use it.
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

    /// The man page is roff whose first line after the apostrophe string's
    /// definition is its title, and it lists every subcommand's page.
    #[test]
    fn the_man_page_lists_the_subcommands() {
        let page = String::from_utf8(man_page(None).unwrap()).unwrap();
        let body = page.strip_prefix(PREAMBLE).expect("the roff preamble");
        assert!(body.starts_with(".TH cnab-oci 1 "), "{body}");
        assert!(
            !body.contains("cnab\\-oci\\-help"),
            "no `help` page: {body}"
        );
        assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
        for sub in SUBCOMMANDS {
            assert!(
                page.contains(&format!("cnab\\-oci\\-{}(1)", sub.replace('-', "\\-"))),
                "the man page lists `{sub}`"
            );
        }
    }

    /// Each subcommand's own page is titled `cnab-oci-NAME` and documents
    /// its flags.
    #[test]
    fn each_subcommand_has_its_page() {
        for sub in SUBCOMMANDS {
            let page = String::from_utf8(man_page(Some(sub)).unwrap()).unwrap();
            let title = format!(".TH cnab-oci-{sub} 1 ");
            assert!(page.contains(&title), "{sub}: {page}");
        }
        let push = String::from_utf8(man_page(Some("push")).unwrap()).unwrap();
        assert!(push.contains("\\-\\-target"), "{push}");
        assert!(push.contains("\\-\\-allow\\-fallbacks"), "{push}");
    }
}
