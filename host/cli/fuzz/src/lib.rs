//! Support code of the `wasmtime-gpu-host` fuzz targets.
//!
//! [`driver`] turns fuzz bytes into `wasi:gpu` call sequences and checks the host's
//! answers; `host/cli/tests/property.rs` runs the same driver from a seeded generator.

pub mod driver;
