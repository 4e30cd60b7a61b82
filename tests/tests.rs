//! All integration tests, built as one binary.

mod alloc;
mod harness;

mod cli;
mod cli_registry;
mod engine;
mod fake_registry;
mod faults;
mod fuzz_corpus;
mod registry_client;
mod registry_modes;
mod registry_scopes;
mod registry_streams;
mod secrets;
