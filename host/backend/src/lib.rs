//! Backend-neutral core of `wasi:gpu`.
//!
//! Every guest call reaches a backend through [`Device`], which checks sizes, offsets,
//! parameters, aliasing and limits first, so a [`Backend`] implementation may assume
//! its arguments are in range. The kernels' reference semantics live in [`kernels`]
//! (Rust), beside their WGSL and CUDA C twins; docs/algorithm.md explains the algorithm.

pub mod backend;
pub mod cpu;
pub mod device;
pub mod error;
pub mod kernels;
pub mod params;

pub use backend::{Backend, BackendKind, BufferId, CallBudget, CancelToken, DeviceInfo};
pub use cpu::CpuBackend;
pub use device::{Device, Limits};
pub use error::GpuError;
pub use params::*;
