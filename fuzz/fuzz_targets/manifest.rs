//! Manifest and index parsing (views, platform filtering, the bundle index and
//! config manifest readers): never a panic.
#![no_main]
#![allow(dead_code)] // each target uses one of the shared checks

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_manifest(data));
