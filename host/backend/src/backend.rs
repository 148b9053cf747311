//! The trait each device implementation (CPU, wgpu, CUDA) provides.

use crate::error::GpuError;
use crate::params::*;

/// Opaque handle of a device allocation, chosen by [`crate::Device`].
pub type BufferId = u64;

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
    fn apply_splits(
        &mut self,
        p: &ApplyParams,
        bins: BufferId,
        splits: BufferId,
        next_slot: BufferId,
        node_of: BufferId,
    ) -> Result<(), GpuError>;
    fn predict_forest(
        &mut self,
        p: &PredictParams,
        x: BufferId,
        nodes: BufferId,
        roots: BufferId,
        sums: BufferId,
    ) -> Result<(), GpuError>;
}
