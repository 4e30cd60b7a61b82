//! Bundle parsing, validation and canonicalisation: never a panic, and the
//! canonical form is a fixed point: canonical(canonical(x)) == canonical(x).
#![no_main]
#![allow(dead_code)] // each target uses one of the shared checks

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_bundle(data));
