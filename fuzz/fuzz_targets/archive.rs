//! The thick bundle archive reader (gzip, tar, entry names, layout, graph):
//! never a panic, and what it accepts is consistent.
#![no_main]
#![allow(dead_code)] // each target uses one of the shared checks

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_archive(data));
