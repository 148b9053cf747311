//! The trait each device implementation (CPU, wgpu, CUDA) provides.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::GpuError;
use crate::params::*;

/// Opaque handle of a device allocation, chosen by [`crate::Device`].
pub type BufferId = u64;

/// Ids at or above this are never handed out by [`crate::Device`]; backends may use them
/// for scratch buffers of their own.
pub const SCRATCH_ID_BASE: BufferId = 1 << 63;

/// Largest scratch histogram the default `find_splits_rows` allocates at once.
const SCRATCH_HIST_BYTES: u64 = 256 << 20;

/// Set once when the run must stop (the `--timeout` deadline passed). [`crate::Device`]
/// checks it between the launches of a split kernel call; backends that loop over launches
/// themselves check it between them too. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once cancelled, naming what was interrupted.
    pub fn check(&self, what: &str) -> Result<(), GpuError> {
        if self.is_cancelled() {
            return Err(GpuError::Cancelled(format!("{what} was stopped: the run's time limit passed")));
        }
        Ok(())
    }
}

/// What one kernel call may use beyond the guest's own buffers, set by [`crate::Device`]
/// before every kernel call ([`Backend::begin_call`]).
#[derive(Debug, Clone, Default)]
pub struct CallBudget {
    /// Device bytes of scratch the backend may hold during and after this call: the
    /// guest's `--max-device-memory` less the bytes of its live buffers. A backend that
    /// cannot do the call within it answers `limit-exceeded`; it never allocates more.
    pub scratch_bytes: u64,
    /// Set when the run must stop; checked between the launches of a long call.
    pub cancel: CancelToken,
}

/// Which implementation runs the kernels; mirrors WIT `backend-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Cpu,
    Wgpu,
    Cuda,
}

impl BackendKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

/// What a guest learns about its device; mirrors WIT `device-info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: String,
    pub backend: BackendKind,
    pub memory_bytes: u64,
    pub hardware: bool,
    pub driver: String,
    pub max_buffer_bytes: u64,
}

/// One device. [`crate::Device`] validates every argument before calling in, so
/// implementations may assume: ids are live and distinct where the kernel writes,
/// offsets and lengths lie inside the buffers, and each buffer is at least as large as
/// the kernel's parameters require. Implementations must still never trust buffer
/// *contents* (indices read from device memory are range-checked in every kernel).
pub trait Backend: Send {
    fn info(&self) -> DeviceInfo;

    /// Called before every kernel call with what the call may use beyond its buffers. A
    /// backend that allocates scratch keeps it within `budget.scratch_bytes` (choosing a
    /// smaller batch, or answering `limit-exceeded`), and one that loops over launches
    /// checks `budget.cancel` between them.
    fn begin_call(&mut self, budget: &CallBudget) {
        let _ = budget;
    }

    /// Device bytes the backend holds now as scratch of its own (kept between calls to
    /// save re-allocations). [`crate::Device`] charges them to the guest's limit.
    fn scratch_bytes(&self) -> u64 {
        0
    }

    /// Frees the scratch kept between calls; [`crate::Device`] calls it when the guest
    /// needs that memory for a buffer of its own.
    fn release_scratch(&mut self) {}

    /// Most walk steps (row x tree x step) one `predict-forest` launch may take: a call
    /// above it is split into launches of at most this much work, with a cancel check
    /// between them. Sized so that one launch takes well under a second on this device.
    fn predict_steps_per_launch(&self) -> u64 {
        1 << 26
    }
    /// Allocates `size` zero-filled bytes under the given id.
    fn alloc(&mut self, id: BufferId, size: u64) -> Result<(), GpuError>;
    fn free(&mut self, id: BufferId);
    fn write(&mut self, id: BufferId, offset: u64, data: &[u8]) -> Result<(), GpuError>;
    fn read(&mut self, id: BufferId, offset: u64, len: u64) -> Result<Vec<u8>, GpuError>;
    fn copy(&mut self, src: BufferId, src_offset: u64, dst: BufferId, dst_offset: u64, len: u64) -> Result<(), GpuError>;
    fn synchronize(&mut self) -> Result<(), GpuError>;

    fn bin_features(&mut self, p: &BinFeaturesParams, x: BufferId, edges: BufferId, bins: BufferId) -> Result<(), GpuError>;
    fn bootstrap(&mut self, p: &BootstrapParams, weights: BufferId, node_of: BufferId) -> Result<(), GpuError>;
    fn build_histograms(
        &mut self,
        p: &HistogramParams,
        bins: BufferId,
        targets: BufferId,
        weights: BufferId,
        node_of: BufferId,
        hist: BufferId,
    ) -> Result<(), GpuError>;
    fn find_splits(&mut self, p: &SplitParams, hist: BufferId, feature_mask: BufferId, splits: BufferId) -> Result<(), GpuError>;
    /// `find-splits-rows`. The default runs build-histograms + find-splits through a
    /// scratch histogram, a few slots at a time; backends override it with a kernel that
    /// never materialises histograms.
    #[allow(clippy::too_many_arguments)]
    fn find_splits_rows(
        &mut self,
        p: &RowSplitParams,
        bins: BufferId,
        targets: BufferId,
        weights: BufferId,
        node_of: BufferId,
        feature_mask: BufferId,
        splits: BufferId,
    ) -> Result<(), GpuError> {
        let per_slot = p.features as u64 * p.max_bins as u64 * HIST_WORDS as u64 * 4;
        let batch = (SCRATCH_HIST_BYTES.min(self.info().max_buffer_bytes) / per_slot).clamp(1, u32::MAX as u64) as u32;
        let hist = SCRATCH_ID_BASE;
        self.alloc(hist, per_slot * batch.min(p.slot_count.max(1)) as u64)?;
        let mut result = Ok(());
        let mut first = 0;
        while first < p.slot_count && result.is_ok() {
            let count = batch.min(p.slot_count - first);
            let h = HistogramParams { slot_begin: p.slot_begin + first, slot_count: count, ..p.histogram() };
            let s = SplitParams { slot_begin: p.slot_begin + first, slot_count: count, ..p.split() };
            // The mask of these slots starts `first` slots into the guest's mask buffer.
            result = self
                .build_histograms(&h, bins, targets, weights, node_of, hist)
                .and_then(|_| self.find_splits_masked(&s, hist, feature_mask, first, splits));
            first += count;
        }
        self.free(hist);
        result
    }

    /// `find-splits` whose mask starts `mask_slot` slots into `feature_mask`; used by the
    /// default `find_splits_rows`.
    fn find_splits_masked(
        &mut self,
        p: &SplitParams,
        hist: BufferId,
        feature_mask: BufferId,
        mask_slot: u32,
        splits: BufferId,
    ) -> Result<(), GpuError> {
        if mask_slot == 0 || p.mask_words == 0 {
            return self.find_splits(p, hist, feature_mask, splits);
        }
        let bytes = p.slot_count as u64 * p.mask_words as u64 * 4;
        let mask = SCRATCH_ID_BASE + 1;
        self.alloc(mask, bytes)?;
        let result = self
            .copy(feature_mask, mask_slot as u64 * p.mask_words as u64 * 4, mask, 0, bytes)
            .and_then(|_| self.find_splits(p, hist, mask, splits));
        self.free(mask);
        result
    }

    fn apply_splits(
        &mut self,
        p: &ApplyParams,
        bins: BufferId,
        splits: BufferId,
        next_slot: BufferId,
        node_of: BufferId,
    ) -> Result<(), GpuError>;
    /// `predict-forest` for the rows and trees of `span` only: the sums of rows in
    /// `span.rows()` are set (tree_begin = 0) or added to (tree_begin > 0) with the leaf
    /// values of trees `span.trees()`; other rows are left alone (docs/algorithm.md §9).
    fn predict_forest(
        &mut self,
        p: &PredictParams,
        span: &PredictSpan,
        x: BufferId,
        nodes: BufferId,
        roots: BufferId,
        sums: BufferId,
    ) -> Result<(), GpuError>;
}
