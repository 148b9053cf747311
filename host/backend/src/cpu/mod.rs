//! The CPU backend: host memory and the Rust reference kernels on all cores.
//! It is the fallback when no GPU is present and the yardstick the GPU backends match.

use std::collections::HashMap;

use crate::backend::{Backend, BackendKind, BufferId, CallBudget, DeviceInfo};
use crate::error::GpuError;
use crate::kernels;
use crate::params::*;

/// A buffer as 32-bit words (every kernel reads words), plus its length in bytes.
struct HostBuffer {
    words: Vec<u32>,
    len: usize,
}

impl HostBuffer {
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
}

/// Pure-Rust backend; buffers are host allocations.
#[derive(Default)]
pub struct CpuBackend {
    buffers: HashMap<BufferId, HostBuffer>,
    /// Host bytes the current kernel call may use for its work lists (its scratch).
    scratch_budget: u64,
    /// The current call's cancel token: the long kernels give up between features.
    cancel: crate::backend::CancelToken,
}

/// Refuses a kernel call whose work lists (host memory the reference kernels allocate
/// while they run) would not fit what the guest's buffers leave of its device-memory
/// limit; the CPU backend's device memory is host memory.
fn check_scratch(kernel: &str, need: Option<u64>, budget: u64) -> Result<(), GpuError> {
    match need {
        Some(need) if need <= budget => Ok(()),
        _ => Err(GpuError::LimitExceeded(format!(
            "{kernel} needs {} bytes of host scratch for its work lists; this guest's buffers leave {budget} of its \
             --max-device-memory limit; use smaller batches or raise the limit",
            need.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
        ))),
    }
}

impl CpuBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, id: BufferId) -> &HostBuffer {
        // Device checked that the id is live.
        &self.buffers[&id]
    }

    /// Runs `f` with the output buffer taken out of the table, so inputs stay borrowable.
    fn with_output<R>(&mut self, id: BufferId, f: impl FnOnce(&Self, &mut [u32]) -> R) -> R {
        let mut out = self.buffers.remove(&id).expect("Device checked the id");
        let r = f(self, &mut out.words);
        self.buffers.insert(id, out);
        r
    }

    fn words(&self, id: BufferId) -> &[u32] {
        &self.get(id).words
    }

    fn floats(&self, id: BufferId) -> &[f32] {
        bytemuck::cast_slice(&self.get(id).words)
    }
}

/// A zero-filled vector from the allocator's zeroed pages (no page is touched until used),
/// or None when the allocation fails.
fn zeroed_words(n: usize) -> Option<Vec<u32>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u32>(n).ok()?;
    // SAFETY: the layout has non-zero size; a non-null result points to `n` zeroed u32s
    // allocated by the global allocator with exactly this layout, which is what
    // Vec::from_raw_parts requires (capacity = length = n).
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut u32;
        (!ptr.is_null()).then(|| Vec::from_raw_parts(ptr, n, n))
    }
}

fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kib| kib * 1024)
        .unwrap_or(8 << 30)
}

impl Backend for CpuBackend {
    fn begin_call(&mut self, budget: &CallBudget) {
        self.scratch_budget = budget.scratch_bytes;
        self.cancel = budget.cancel.clone();
    }

    fn info(&self) -> DeviceInfo {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        DeviceInfo {
            name: format!("CPU reference ({threads} threads)"),
            backend: BackendKind::Cpu,
            memory_bytes: total_memory(),
            hardware: false,
            driver: format!("wasi-gpu-backend {} (pure Rust)", env!("CARGO_PKG_VERSION")),
            max_buffer_bytes: total_memory() / 2,
        }
    }

    fn alloc(&mut self, id: BufferId, size: u64) -> Result<(), GpuError> {
        let words = usize::try_from(size.div_ceil(4))
            .ok()
            .and_then(zeroed_words)
            .ok_or_else(|| GpuError::OutOfMemory(format!("host allocation of {size} bytes failed")))?;
        self.buffers.insert(id, HostBuffer { words, len: size as usize });
        Ok(())
    }

    fn free(&mut self, id: BufferId) {
        self.buffers.remove(&id);
    }

    fn write(&mut self, id: BufferId, offset: u64, data: &[u8]) -> Result<(), GpuError> {
        let b = self.buffers.get_mut(&id).expect("Device checked the id");
        b.bytes_mut()[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn read(&mut self, id: BufferId, offset: u64, len: u64) -> Result<Vec<u8>, GpuError> {
        Ok(self.get(id).bytes()[offset as usize..(offset + len) as usize].to_vec())
    }

    fn copy(&mut self, src: BufferId, src_offset: u64, dst: BufferId, dst_offset: u64, len: u64) -> Result<(), GpuError> {
        let data = self.read(src, src_offset, len)?;
        self.write(dst, dst_offset, &data)
    }

    fn synchronize(&mut self) -> Result<(), GpuError> {
        Ok(())
    }

    fn bin_features(&mut self, p: &BinFeaturesParams, x: BufferId, edges: BufferId, bins: BufferId) -> Result<(), GpuError> {
        self.with_output(bins, |me, out| kernels::bin_features(p, me.floats(x), me.floats(edges), out));
        Ok(())
    }

    fn bootstrap(&mut self, p: &BootstrapParams, weights: BufferId, node_of: BufferId) -> Result<(), GpuError> {
        let mut w = self.buffers.remove(&weights).expect("Device checked the id");
        self.with_output(node_of, |_, out| kernels::bootstrap(p, &mut w.words, out));
        self.buffers.insert(weights, w);
        Ok(())
    }

    fn build_histograms(
        &mut self,
        p: &HistogramParams,
        bins: BufferId,
        targets: BufferId,
        weights: BufferId,
        node_of: BufferId,
        hist: BufferId,
    ) -> Result<(), GpuError> {
        // Each piece lists the (row, slot, weight) of its entries: 12 bytes per entry at most.
        let entries = p.tree_count as u64 * p.rows as u64;
        check_scratch("build-histograms", entries.checked_mul(12), self.scratch_budget)?;
        self.with_output(hist, |me, out| {
            let (bins, targets, weights, node_of) = (me.words(bins), me.words(targets), me.words(weights), me.words(node_of));
            kernels::build_histograms_cancellable(p, bins, targets, weights, node_of, out, &me.cancel)
        });
        self.cancel.check("build-histograms")
    }

    fn find_splits(&mut self, p: &SplitParams, hist: BufferId, feature_mask: BufferId, splits: BufferId) -> Result<(), GpuError> {
        self.with_output(splits, |me, out| kernels::find_splits(p, me.words(hist), me.words(feature_mask), out));
        Ok(())
    }

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
        // A row-major copy of the bins, the entries ordered by slot and the slot offsets,
        // plus per-thread tallies of one slot's entries (16 bytes and one bin row each).
        let (rows, features, entries) = (p.rows as u64, p.features as u64, p.tree_count as u64 * p.rows as u64);
        let need = rows
            .checked_mul(features)
            .and_then(|b| b.checked_add(entries.checked_mul(4)?))
            .and_then(|b| b.checked_add((p.slot_count as u64 + 1).checked_mul(8)?))
            .and_then(|b| b.checked_add(entries.checked_mul(16 + features)?));
        check_scratch("find-splits-rows", need, self.scratch_budget)?;
        self.with_output(splits, |me, out| {
            kernels::find_splits_rows_cancellable(
                p,
                me.words(bins),
                me.words(targets),
                me.words(weights),
                me.words(node_of),
                me.words(feature_mask),
                out,
                &me.cancel,
            )
        });
        self.cancel.check("find-splits-rows")
    }

    fn apply_splits(
        &mut self,
        p: &ApplyParams,
        bins: BufferId,
        splits: BufferId,
        next_slot: BufferId,
        node_of: BufferId,
    ) -> Result<(), GpuError> {
        self.with_output(node_of, |me, out| kernels::apply_splits(p, me.words(bins), me.words(splits), me.words(next_slot), out));
        Ok(())
    }

    fn predict_forest(
        &mut self,
        p: &PredictParams,
        span: &PredictSpan,
        x: BufferId,
        nodes: BufferId,
        roots: BufferId,
        sums: BufferId,
    ) -> Result<(), GpuError> {
        self.with_output(sums, |me, out| kernels::predict_forest_span(p, span, me.floats(x), me.words(nodes), me.words(roots), out));
        Ok(())
    }
}
