//! WebGPU backend of `wasi:gpu`: buffers are wgpu storage buffers and the kernels are the
//! WGSL twins of the Rust reference kernels (`host/backend/src/kernels/NAME.wgsl`).
//!
//! Design notes:
//! * Every kernel is compiled once per device, in [`open`] (`pipelines.rs`); find-splits'
//!   merging variant (below) when first needed.
//! * Dispatches use a 2-D grid of 64-wide workgroups (so more than 65535 workgroups fit),
//!   and inputs larger than one dispatch are split into several dispatches, each told its
//!   first index (`base`) and length (`count`) through its own uniform block.
//! * Kernels bind whole buffers, so the largest buffer offered to guests is the smallest of
//!   the adapter's max buffer size, max storage-buffer binding size and 4 GiB - 4 bytes
//!   (all indices in the WGSL are u32). Larger requests are refused with `LimitExceeded`.
//! * All arithmetic in the WGSL is 32-bit; 64-bit sums use explicit carries and the 128-bit
//!   split scores use u32 limbs, so neither SHADER_INT64 nor 64-bit atomics are needed.
//! * `find-splits-rows` builds no histogram of the batch: the batch's entries are grouped
//!   by slot on the GPU (atomic counts, multi-level exclusive scan, scatter), then slots of
//!   at most 32 entries are decided by one invocation each and larger ones by one
//!   workgroup each over a workgroup-memory histogram (`find_splits_rows.wgsl`). Batches
//!   of few, large slots take build-histograms + find-splits instead (`rows.rs`).
//! * No invocation loops for long (`loops.rs`): llvmpipe (Mesa's software Vulkan) silently
//!   ends an invocation's loops after 65535 passes in all, and on a GPU one invocation
//!   walking every feature of a wide table is slow and deaf to a cancel. On every adapter
//!   each launch is planned within that budget: build-histograms and find-splits run over
//!   ascending blocks of features, the later blocks merging into the split records;
//!   find-splits-rows' per-slot kernels over a grid of (slot, block of features) whose
//!   partial records are then merged; bootstrap's draws over blocks of trees; and
//!   find-splits-rows decides a slot too large for one workgroup by build-histograms +
//!   find-splits on that slot alone. On a software adapter predict-forest also takes few
//!   enough trees a launch, and a walk too long for one launch takes several (each row's
//!   place kept in scratch between them).
//! * Scratch: the buffers `find-splits-rows` (and very deep `predict-forest` walks) need
//!   beyond the guest's are kept between calls and grown on demand, always within the
//!   call's budget (the guest's `--max-device-memory` less its live buffers), and dropped
//!   when Device asks (`scratch.rs`). Transfers stage through bounded pieces (`transfer.rs`).
//! * `predict-forest` launches only the span of rows and trees Device asks for, and splits a
//!   span further so that one invocation's walk stays short (`predict.rs`).
//! * wgpu errors never panic the host: an uncaptured-error handler and the device-lost
//!   callback record them, and the next operation reports them as `GpuError`s (`adapter.rs`).

mod adapter;
mod backend;
mod loops;
mod pipelines;
mod predict;
mod rows;
mod scratch;
mod transfer;

pub use adapter::{AdapterReport, list_adapters, open, open_adapter, open_with_grid_limit};

/// Threads per workgroup of every kernel (`@workgroup_size(64)` in the WGSL).
const WORKGROUP: u32 = 64;

/// `n` rounded up to whole u32 words.
fn round4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}
