//! A problem found in a bundle: where it is and what is wrong.

use crate::json::{Path, Pos};
use std::fmt;

/// How serious a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The bundle is invalid.
    Error,
    /// Worth knowing, but the bundle is valid (for example an unknown member).
    Warning,
}

/// One problem in a bundle, with its JSON path and, when the bundle was parsed
/// from text, its line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the document.
    pub path: Path,
    /// Line and column, when known.
    pub pos: Option<Pos>,
    /// What is wrong, and where useful what to do.
    pub message: String,
}

impl Problem {
    pub(crate) fn error(path: Path, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Error,
            path,
            pos: None,
            message: message.into(),
        }
    }

    pub(crate) fn warning(path: Path, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Warning,
            path,
            pos: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, pos: crate::json::Pos) -> Problem {
        if pos.is_known() {
            self.pos = Some(pos);
        }
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(pos) = self.pos {
            write!(f, " ({pos})")?;
        }
        Ok(())
    }
}

pub(crate) fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
