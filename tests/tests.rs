//! All integration tests, built as one binary.

mod harness;

mod cli;
mod registry_modes;
