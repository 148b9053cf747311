//! Shared helpers for the cross-crate tests.

pub mod artefacts;
pub mod parity;
