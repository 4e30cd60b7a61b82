//! The `WWW-Authenticate` parser: never a panic, whatever the header says.
#![no_main]
#![allow(dead_code)] // each target uses one of the shared checks

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_www_authenticate(data));
