//! Image reference parsing: never a panic, and the printed form parses back
//! to the same reference.
#![no_main]
#![allow(dead_code)] // each target uses one of the shared checks

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_reference(data));
