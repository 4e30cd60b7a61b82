//! All integration tests, built as one binary.

mod alloc;
mod archive;
mod archive_import;
mod archive_verify;
mod harness;

mod budgets;
mod cli;
mod cli_credentials;
mod cli_outputs;
mod cli_references;
mod cli_registry;
mod client_auth;
mod client_blobs;
mod client_manifests;
mod client_tls;
mod copy;
mod events;
mod failure_kinds;
mod fake_registry;
mod faults;
mod fixup;
mod fixup_resolve;
mod foreign_layers;
mod fuzz_corpus;
mod layout;
mod layout_roundtrip;
mod memreg;
mod push;
mod referrers;
mod referrers_client;
mod registry_modes;
mod registry_scopes;
mod registry_streams;
mod secrets;
mod signed;
