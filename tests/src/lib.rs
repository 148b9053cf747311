//! Shared helpers for the cross-crate tests.

pub mod artefacts;
pub mod model_file;
pub mod parity;
