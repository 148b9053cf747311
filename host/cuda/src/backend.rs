//! The CUDA [`Backend`]: raw device allocations, one stream, NVRTC-compiled kernels.

use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::driver::result;
use cudarc::driver::sys::{self, CUdevice_attribute, CUdeviceptr};
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, DriverError};
use cudarc::nvrtc::Ptx;
use wasi_gpu_backend::{
    ApplyParams, Backend, BackendKind, BinFeaturesParams, BootstrapParams, BufferId, CallBudget, DeviceInfo, GpuError, HIST_WORDS,
    HistogramParams, PredictParams, PredictSpan, RowSplitParams, SPLIT_WORDS, SplitParams,
};

use crate::compile;
use crate::errors::{describe, is_kernel_fault, to_gpu};

// The kernels hard-code the cell and record layouts of docs/algorithm.md §6-§7:
// BH_HIST_WORDS / FS_HIST_WORDS = 6 words per histogram cell (build_histograms.cu,
// find_splits.cu) and FS_SPLIT_WORDS = 12 words per split record (find_splits.cu,
// find_splits_rows.cu, apply_splits.cu).
const _: () = assert!(HIST_WORDS == 6 && SPLIT_WORDS == 12, "the CUDA kernels assume 6-word cells and 12-word records");

/// Threads per block of every grid-stride kernel.
const BLOCK: u32 = 256;
/// Threads per block of `find_splits`; must equal FS_THREADS in find_splits.cu.
const SPLIT_BLOCK: u32 = 128;
/// Largest grid y dimension every CUDA device accepts.
const MAX_GRID_Y: u64 = 65535;
/// Threads per block of the find-splits-rows kernels; must equal FSR_THREADS in
/// find_splits_rows.cu.
const ROW_BLOCK: u32 = 256;
/// Slot counts scanned per block by `fsr_scan_tiles`; must equal FSR_TILE.
const SCAN_TILE: u64 = 2048;
/// Shared-memory histogram cells of `build_histograms_shared`; must equal BH_SHARED_CELLS
/// (1536 cells of 24 bytes: 36 KiB of the 48 KiB of static shared memory per block).
const SHARED_HIST_CELLS: u64 = 1536;
/// Blocks per multiprocessor `build_histograms_shared` aims for, over all features.
const SHARED_HIST_BLOCKS_PER_SM: u64 = 8;
/// Largest histogram the dense find-splits-rows path materialises at once.
const DENSE_HIST_BYTES: u64 = 256 << 20;
/// The dense path (build-histograms + find-splits) serves batches with fewer slots than
/// this many per multiprocessor: one block per slot would leave most of the GPU idle...
const DENSE_MAX_SLOTS_PER_SM: u64 = 2;
/// ...and at least this many entries per slot on average.
const DENSE_MIN_ENTRIES_PER_SLOT: u64 = 16384;
/// Most walk steps (row x tree x (max_depth + 1)) of one `predict-forest` launch. A step
/// is two dependent loads: a 16-byte node and a 4-byte feature of the row. At worst each
/// touches its own 32-byte sector in DRAM, missing the TLB too: 2^28 steps are 16 GiB of
/// sector traffic, 5 ms at the H100's 3.35 TB/s and still about 0.15 s should random
/// access and TLB misses cut that to 1/30. (Measured on an H100: 6.8 ms per launch for
/// 1M rows walking 64 full depth-20 trees, 2 GiB of nodes, a random one of 2048 features
/// per step.) The kernel spreads a launch over at least a full grid of work items where
/// the span has that many (row, tree) pairs (see `predict_forest`), so no thread walks
/// more than about 2^28 / (full grid) steps plus one tree. 2^30 would be 4x that (over
/// half a second at the 1/30 rate), while at 2^28 the launch and the synchronize between
/// launches (tens of microseconds) already cost under 1% of a launch's work.
const PREDICT_STEPS_PER_LAUNCH: u64 = 1 << 28;

/// The most (entry, feature) visits of one build-histograms launch: each is a few reads
/// and atomics, about a predict step's cost, so the same 2^28 bounds a launch to well
/// under a second even with heavily contended atomics; larger calls are launched over
/// blocks of features with a wait and a cancel check between them.
const HISTOGRAM_VISITS_PER_LAUNCH: u64 = 1 << 28;

/// Facts about device 0, read without creating a context.
pub(crate) struct DeviceFacts {
    pub name: String,
    pub major: i32,
    pub minor: i32,
    /// cuDriverGetVersion: 1000 * major + 10 * minor.
    pub driver: i32,
    pub total_mem: u64,
    pub multiprocessors: u32,
    pub max_grid_x: u32,
}

impl DeviceFacts {
    /// Initialises the driver and counts the devices. Must run under `guarded`.
    pub(crate) fn count() -> Result<usize, String> {
        let fail = |what: &str, e: DriverError| format!("{what}: {}", describe(&e));
        result::init().map_err(|e| fail("no usable CUDA driver (cuInit failed)", e))?;
        let count = result::device::get_count().map_err(|e| fail("cannot count CUDA devices", e))?;
        if count < 1 {
            return Err("no CUDA device: the driver is installed but reports no GPU".into());
        }
        Ok(count as usize)
    }

    /// Initialises the driver and reads device `ordinal`'s facts. Must run under `guarded`.
    pub(crate) fn query(ordinal: usize) -> Result<Self, String> {
        let fail = |what: &str, e: DriverError| format!("{what}: {}", describe(&e));
        let count = Self::count()?;
        if ordinal >= count {
            return Err(format!("there is no CUDA device {ordinal}: the driver reports {count} (0..{})", count - 1));
        }
        let dev = result::device::get(ordinal as i32).map_err(|e| fail(&format!("cannot open CUDA device {ordinal}"), e))?;
        let attr = |a: CUdevice_attribute| {
            // SAFETY: `dev` is a valid device handle from cuDeviceGet.
            unsafe { result::device::get_attribute(dev, a) }.map_err(|e| fail("cannot read a device attribute", e))
        };
        let major = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let multiprocessors = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?.max(1) as u32;
        let max_grid_x = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)?.max(1) as u32;
        let name = result::device::get_name(dev).map_err(|e| fail("cannot read the device name", e))?;
        // SAFETY: as above.
        let total_mem = unsafe { result::device::total_mem(dev) }.map_err(|e| fail("cannot read the device memory", e))?;
        let mut driver = 0i32;
        // SAFETY: writes one int.
        unsafe { sys::cuDriverGetVersion(&mut driver) }.result().map_err(|e| fail("cannot read the driver version", e))?;
        Ok(DeviceFacts { name, major, minor, driver, total_mem: total_mem as u64, multiprocessors, max_grid_x })
    }

    /// "13.0" from 13000.
    pub(crate) fn driver_version(&self) -> String {
        format!("{}.{}", self.driver / 1000, (self.driver % 1000) / 10)
    }
}

/// One device allocation; `ptr` is 0 for a zero-byte buffer (nothing allocated).
struct Allocation {
    ptr: CUdeviceptr,
}

/// A kernel argument as the launch passes it: by address, in its declared width.
enum Arg {
    U32(u32),
    Ptr(CUdeviceptr),
}

/// The loaded entry points, in [`compile::ENTRY_POINTS`] order.
struct Kernels {
    bin_features: CudaFunction,
    bootstrap_draws: CudaFunction,
    bootstrap_roots: CudaFunction,
    build_histograms: CudaFunction,
    find_splits: CudaFunction,
    apply_splits: CudaFunction,
    predict_forest: CudaFunction,
    fsr_count: CudaFunction,
    fsr_scan_tiles: CudaFunction,
    fsr_scan_sums: CudaFunction,
    fsr_scan_add: CudaFunction,
    fsr_scatter: CudaFunction,
    find_splits_rows: CudaFunction,
    build_histograms_shared: CudaFunction,
    build_histograms_init: CudaFunction,
}

/// A device allocation the backend keeps for itself between calls (find-splits-rows'
/// slot offsets and entry lists, or its dense histogram); grown on demand within the
/// call's scratch budget, freed by `release_scratch` (or when a later budget is smaller).
#[derive(Default)]
struct Scratch {
    ptr: CUdeviceptr,
    bytes: u64,
}

/// The CUDA backend of one guest: its own stream and allocations on device 0.
/// Dropping it waits for pending work and frees every allocation.
pub struct CudaBackend {
    // Drop order matters: functions (and their module) and the stream go before the context.
    kernels: Kernels,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    buffers: HashMap<BufferId, Allocation>,
    facts: DeviceFacts,
    /// Set once the context is unusable (a kernel faulted, the driver failed or panicked).
    lost: Option<String>,
    max_blocks: u32,
    scratch: Scratch,
    /// What the current kernel call may use beyond its buffers ([`Backend::begin_call`]);
    /// no scratch at all until the first call says otherwise.
    budget: CallBudget,
}

impl CudaBackend {
    /// Opens device `ordinal`, compiles (or reuses) the kernels and creates the stream.
    pub fn open(ordinal: usize) -> Result<Self, String> {
        crate::check_driver_library()?;
        crate::check_nvrtc_library()?;
        crate::guarded("opening the CUDA backend", || {
            let facts = DeviceFacts::query(ordinal)?;
            let ptx = compile::ptx_for(facts.major, facts.minor)?;
            let fail = |what: &str, e: DriverError| format!("{what}: {}", describe(&e));
            let ctx = CudaContext::new(ordinal).map_err(|e| fail(&format!("cannot create a CUDA context on device {ordinal}"), e))?;
            let module = ctx
                .load_module(Ptx::from_src(ptx))
                .map_err(|e| fail("the driver rejected the NVRTC output (is NVRTC newer than the driver?)", e))?;
            let f = |name: &str| module.load_function(name).map_err(|e| fail(&format!("kernel `{name}` missing"), e));
            let kernels = Kernels {
                bin_features: f(compile::ENTRY_POINTS[0])?,
                bootstrap_draws: f(compile::ENTRY_POINTS[1])?,
                bootstrap_roots: f(compile::ENTRY_POINTS[2])?,
                build_histograms: f(compile::ENTRY_POINTS[3])?,
                find_splits: f(compile::ENTRY_POINTS[4])?,
                apply_splits: f(compile::ENTRY_POINTS[5])?,
                predict_forest: f(compile::ENTRY_POINTS[6])?,
                fsr_count: f(compile::ENTRY_POINTS[7])?,
                fsr_scan_tiles: f(compile::ENTRY_POINTS[8])?,
                fsr_scan_sums: f(compile::ENTRY_POINTS[9])?,
                fsr_scan_add: f(compile::ENTRY_POINTS[10])?,
                fsr_scatter: f(compile::ENTRY_POINTS[11])?,
                find_splits_rows: f(compile::ENTRY_POINTS[12])?,
                build_histograms_shared: f(compile::ENTRY_POINTS[13])?,
                build_histograms_init: f(compile::ENTRY_POINTS[14])?,
            };
            let stream = ctx.new_stream().map_err(|e| fail("cannot create a CUDA stream", e))?;
            let max_blocks = facts.max_grid_x.min(facts.multiprocessors.saturating_mul(32)).max(1);
            Ok(CudaBackend {
                kernels,
                stream,
                ctx,
                buffers: HashMap::new(),
                facts,
                lost: None,
                max_blocks,
                scratch: Scratch::default(),
                budget: CallBudget::default(),
            })
        })
    }

    /// Runs one backend operation: refuses if the device is lost, makes the context
    /// current on this thread, and turns a panic inside cudarc into DeviceLost.
    fn run<T>(&mut self, op: &str, f: impl FnOnce(&mut Self) -> Result<T, GpuError>) -> Result<T, GpuError> {
        if let Some(why) = &self.lost {
            return Err(GpuError::DeviceLost(format!("{op}: the CUDA device is unusable after an earlier failure ({why})")));
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.ctx.bind_to_thread().map_err(|e| self.fail(op, e))?;
            f(self)
        }));
        match outcome {
            Ok(r) => r,
            Err(_) => {
                let msg = format!("{op}: the CUDA libraries panicked");
                self.lost = Some(msg.clone());
                Err(GpuError::DeviceLost(msg))
            }
        }
    }

    /// Maps a driver error and remembers whether it left the context unusable.
    fn fail(&mut self, op: &str, e: DriverError) -> GpuError {
        let err = to_gpu(op, &e);
        if is_kernel_fault(e.0) || matches!(err, GpuError::DeviceLost(_)) {
            self.lost = Some(describe(&e));
        }
        err
    }

    fn ptr(&self, id: BufferId) -> Result<CUdeviceptr, GpuError> {
        self.buffers.get(&id).map(|a| a.ptr).ok_or_else(|| GpuError::invalid(format!("buffer {id} does not exist on the CUDA device")))
    }

    fn zero(&mut self, op: &str, ptr: CUdeviceptr, bytes: u64) -> Result<(), GpuError> {
        if bytes == 0 {
            return Ok(());
        }
        // SAFETY: Device checked that [ptr, ptr + bytes) lies inside a live allocation.
        unsafe { result::memset_d8_async(ptr, 0, bytes as usize, self.stream.cu_stream()) }.map_err(|e| self.fail(op, e))
    }

    /// Launches `f` over `items` work items, `block` threads per block, as many blocks
    /// as needed up to the device's grid limit (the kernels loop grid-stride).
    fn launch(&mut self, op: &str, f: &CudaFunction, items: u64, block: u32, args: &mut [Arg]) -> Result<(), GpuError> {
        self.launch_2d(op, f, items, 1, block, args)
    }

    /// Like [`Self::launch`], with `rows_y` in grid y (capped at 65535; the kernel
    /// strides over y too).
    fn launch_2d(&mut self, op: &str, f: &CudaFunction, items: u64, rows_y: u64, block: u32, args: &mut [Arg]) -> Result<(), GpuError> {
        if items == 0 || rows_y == 0 {
            return Ok(());
        }
        let blocks = items.div_ceil(block as u64).min(self.max_blocks as u64) as u32;
        let blocks_y = rows_y.min(MAX_GRID_Y) as u32;
        let mut params: Vec<*mut c_void> = args
            .iter_mut()
            .map(|a| match a {
                Arg::U32(v) => v as *mut u32 as *mut c_void,
                Arg::Ptr(p) => p as *mut CUdeviceptr as *mut c_void,
            })
            .collect();
        // SAFETY: the argument list matches the kernel's declaration (same order and
        // widths); pointers are live allocations sized by Device's checks; the kernels
        // range-check every index they read from buffer contents.
        unsafe { result::launch_kernel(f.cu_function(), (blocks, blocks_y, 1), (block, 1, 1), 0, self.stream.cu_stream(), &mut params) }
            .map_err(|e| self.fail(op, e))
    }

    /// Allocates `bytes > 0` bytes of device memory (not zeroed).
    fn raw_alloc(&mut self, op: &str, bytes: u64) -> Result<CUdeviceptr, GpuError> {
        let size = usize::try_from(bytes)
            .map_err(|_| GpuError::OutOfMemory(format!("{op}: {bytes} bytes do not fit this host's address space")))?;
        let stream = self.stream.cu_stream();
        // SAFETY: plain allocation on our stream; callers zero or overwrite it before use.
        let ptr =
            if self.ctx.has_async_alloc() { unsafe { result::malloc_async(stream, size) } } else { unsafe { result::malloc_sync(size) } };
        ptr.map_err(|e| match e.0 {
            sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => GpuError::OutOfMemory(format!(
                "{op}: allocating {bytes} bytes on the GPU failed: out of device memory; free buffers or use smaller batches"
            )),
            _ => self.fail(op, e),
        })
    }

    /// Frees a pointer from [`Self::raw_alloc`] in stream order; never fails.
    fn raw_free(&mut self, ptr: CUdeviceptr) {
        if ptr == 0 {
            return;
        }
        let async_alloc = self.ctx.has_async_alloc();
        let stream = self.stream.cu_stream();
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let _ = self.ctx.bind_to_thread();
            // SAFETY: the pointer came from the matching allocator and is freed once;
            // stream order (or the synchronize) keeps queued kernels' accesses before it.
            unsafe {
                if async_alloc {
                    let _ = result::free_async(ptr, stream);
                } else {
                    let _ = result::stream::synchronize(stream);
                    let _ = result::free_sync(ptr);
                }
            }
        }));
    }

    /// The scratch allocation, at least `bytes` long; grows it (to 1.5x, whole MiB, at most
    /// the call's scratch budget) when smaller, freeing the old one first so that the two
    /// are never held together. More than the budget is `limit-exceeded`. Its contents
    /// are undefined.
    fn scratch(&mut self, op: &str, bytes: u64) -> Result<CUdeviceptr, GpuError> {
        if self.scratch.bytes >= bytes {
            return Ok(self.scratch.ptr);
        }
        let budget = self.budget.scratch_bytes;
        if bytes > budget {
            return Err(GpuError::LimitExceeded(format!(
                "{op} needs {bytes} bytes of device scratch, but only {budget} bytes of this guest's device memory limit (--max-device-memory) are left beside its buffers; raise the limit or drop buffers"
            )));
        }
        let old = std::mem::take(&mut self.scratch);
        self.raw_free(old.ptr);
        let want = bytes.max(old.bytes.saturating_add(old.bytes / 2)).div_ceil(1 << 20).saturating_mul(1 << 20).min(budget);
        // Fall back to the exact size when the rounded-up one does not fit.
        let (ptr, got) = match self.raw_alloc(op, want) {
            Ok(p) => (p, want),
            Err(GpuError::OutOfMemory(_)) if want > bytes => (self.raw_alloc(op, bytes)?, bytes),
            Err(e) => return Err(e),
        };
        self.scratch = Scratch { ptr, bytes: got };
        Ok(ptr)
    }

    /// Queues build-histograms over raw pointers: first every cell of `hist` is set to the
    /// untouched cell (0, 0, 0, 0, 0xffffffff, 0), then the entries are added, in launches
    /// over blocks of features of at most [`HISTOGRAM_VISITS_PER_LAUNCH`] (entry, feature)
    /// visits; between them it waits for the GPU and stops if the call was cancelled.
    fn queue_build_histograms(
        &mut self,
        p: &HistogramParams,
        [bins, targets, weights, node_of, hist]: [CUdeviceptr; 5],
    ) -> Result<(), GpuError> {
        if p.slot_count == 0 {
            return Ok(());
        }
        let cells = p.slot_count as u64 * p.features as u64 * p.max_bins as u64;
        let mut args = [Arg::U32(p.features), Arg::U32(p.max_bins), Arg::U32(p.slot_count), Arg::Ptr(hist)];
        let f = self.kernels.build_histograms_init.clone();
        self.launch("build-histograms", &f, cells, BLOCK, &mut args)?;
        const OP: &str = "build-histograms";
        let entries = p.tree_count as u64 * p.rows as u64;
        // The hist buffer bounds `features` here (slot_count >= 1), so the blocks do too.
        let per = (HISTOGRAM_VISITS_PER_LAUNCH / entries.max(1)).clamp(1, p.features.max(1) as u64) as u32;
        let mut j = 0u32;
        while j < p.features {
            if j > 0 {
                self.stream.synchronize().map_err(|e| self.fail(OP, e))?;
                self.budget.cancel.check(OP)?;
            }
            let j_end = j.saturating_add(per).min(p.features);
            let mut args = [
                Arg::U32(p.rows),
                Arg::U32(p.features),
                Arg::U32(p.max_bins),
                Arg::U32(p.tree_count),
                Arg::U32(p.slot_begin),
                Arg::U32(p.slot_count),
                Arg::Ptr(bins),
                Arg::Ptr(targets),
                Arg::Ptr(weights),
                Arg::Ptr(node_of),
                Arg::Ptr(hist),
                Arg::U32(j),
                Arg::U32(j_end),
            ];
            let width = (j_end - j) as u64;
            if p.slot_count as u64 * p.max_bins as u64 <= SHARED_HIST_CELLS {
                // Few slots: per-block shared histograms, then one global atomic per cell.
                let target = SHARED_HIST_BLOCKS_PER_SM * self.facts.multiprocessors as u64;
                let blocks_x = (target / width).clamp(1, entries.div_ceil(BLOCK as u64).max(1));
                let f = self.kernels.build_histograms_shared.clone();
                self.launch_2d(OP, &f, blocks_x * BLOCK as u64, width, BLOCK, &mut args)?;
            } else {
                let f = self.kernels.build_histograms.clone();
                self.launch_2d(OP, &f, entries, width, BLOCK, &mut args)?;
            }
            j = j_end;
        }
        Ok(())
    }

    /// Queues find-splits over raw pointers; `mask` points at the batch's first slot's mask.
    fn queue_find_splits(&mut self, p: &SplitParams, [hist, mask, splits]: [CUdeviceptr; 3]) -> Result<(), GpuError> {
        let mut args = [
            Arg::U32(p.features),
            Arg::U32(p.max_bins),
            Arg::U32(p.slot_begin),
            Arg::U32(p.slot_count),
            Arg::U32(p.min_samples_leaf),
            Arg::U32(p.mask_words),
            Arg::Ptr(hist),
            Arg::Ptr(mask),
            Arg::Ptr(splits),
        ];
        let f = self.kernels.find_splits.clone();
        // One block of SPLIT_BLOCK threads per slot.
        self.launch("find-splits", &f, p.slot_count as u64 * SPLIT_BLOCK as u64, SPLIT_BLOCK, &mut args)
    }

    /// Scratch bytes of one slot's histogram in the dense find-splits-rows path.
    fn dense_slot_bytes(p: &RowSplitParams) -> u64 {
        // At most 2^32 * 2^8 * 24 bytes: no overflow.
        p.features as u64 * p.max_bins as u64 * HIST_WORDS as u64 * 4
    }

    /// Slots per batch of the dense find-splits-rows path: as many as fit in
    /// [`DENSE_HIST_BYTES`] (at least one) and in the call's scratch budget; `None` when
    /// not even one slot's histogram fits the budget.
    fn dense_batch(&self, p: &RowSplitParams) -> Option<u32> {
        let per_slot = Self::dense_slot_bytes(p);
        let fit = self.budget.scratch_bytes / per_slot;
        if fit == 0 {
            return None;
        }
        let mut batch = (DENSE_HIST_BYTES / per_slot).max(1).min(fit).min(p.slot_count.max(1) as u64) as u32;
        // Up to four passes over the entries are worth the shared-memory histograms.
        let shared_batch = (SHARED_HIST_CELLS / p.max_bins as u64).max(1);
        if (p.slot_count as u64).div_ceil(shared_batch) <= 4 {
            batch = batch.min(shared_batch as u32);
        }
        Some(batch)
    }

    /// find-splits-rows as build-histograms + find-splits through the scratch histogram,
    /// `batch` slots at a time (from [`Self::dense_batch`]). For few, large slots. Between
    /// batches it waits for the GPU and stops if the call was cancelled.
    fn rows_dense(
        &mut self,
        p: &RowSplitParams,
        batch: u32,
        [bins, targets, weights, node_of, mask, splits]: [CUdeviceptr; 6],
    ) -> Result<(), GpuError> {
        const OP: &str = "find-splits-rows";
        let hist = self.scratch(OP, Self::dense_slot_bytes(p) * batch as u64)?;
        let mut first = 0u32;
        while first < p.slot_count {
            if first > 0 {
                // The batches are queued asynchronously: wait for the one before, so that
                // a cancelled call stops within one batch of work.
                self.stream.synchronize().map_err(|e| self.fail(OP, e))?;
                self.budget.cancel.check(OP)?;
            }
            let count = batch.min(p.slot_count - first);
            let h = HistogramParams { slot_begin: p.slot_begin + first, slot_count: count, ..p.histogram() };
            let s = SplitParams { slot_begin: p.slot_begin + first, slot_count: count, ..p.split() };
            // The mask of these slots starts `first` slots into the guest's mask buffer.
            let mask_at = if p.mask_words == 0 { mask } else { mask + first as u64 * p.mask_words as u64 * 4 };
            self.queue_build_histograms(&h, [bins, targets, weights, node_of, hist])?;
            self.queue_find_splits(&s, [hist, mask_at, splits])?;
            first += count;
        }
        Ok(())
    }

    /// Byte offsets in the grouped path's scratch of the slot starts, the tile sums, the
    /// entry rows and the entry weights (the slot counts come first), and its total size.
    /// Sized by `slot_count + 1` and `tree_count * rows` (both below 2^32 on this path).
    fn grouped_layout(p: &RowSplitParams) -> [u64; 5] {
        let entries = p.tree_count as u64 * p.rows as u64;
        let n = p.slot_count as u64 + 1;
        let tiles = n.div_ceil(SCAN_TILE);
        let align = |words: u64| (words * 4).div_ceil(256) * 256;
        let (o_start, o_tiles) = (align(n), 2 * align(n));
        let o_rows = o_tiles + align(tiles);
        let o_w = o_rows + align(entries);
        [o_start, o_tiles, o_rows, o_w, o_w + align(entries)]
    }

    /// find-splits-rows from each slot's own rows: group the entries by slot (count,
    /// scan, scatter), then one block per slot tallies and scans shared histograms.
    fn rows_grouped(
        &mut self,
        p: &RowSplitParams,
        [bins, targets, weights, node_of, mask, splits]: [CUdeviceptr; 6],
    ) -> Result<(), GpuError> {
        const OP: &str = "find-splits-rows";
        let entries = p.tree_count as u64 * p.rows as u64;
        let n = p.slot_count as u64 + 1;
        let tiles = n.div_ceil(SCAN_TILE);
        let [o_start, o_tiles, o_rows, o_w, total] = Self::grouped_layout(p);
        let base = self.scratch(OP, total)?;
        let (counts, start, tile_sums, order_row, order_w) = (base, base + o_start, base + o_tiles, base + o_rows, base + o_w);

        self.zero(OP, counts, n * 4)?;
        let mut args = [
            Arg::U32(p.rows),
            Arg::U32(p.tree_count),
            Arg::U32(p.slot_begin),
            Arg::U32(p.slot_count),
            Arg::Ptr(weights),
            Arg::Ptr(node_of),
            Arg::Ptr(counts),
        ];
        let f = self.kernels.fsr_count.clone();
        self.launch(OP, &f, entries, BLOCK, &mut args)?;

        let mut args = [Arg::U32(n as u32), Arg::Ptr(counts), Arg::Ptr(start), Arg::Ptr(tile_sums)];
        let f = self.kernels.fsr_scan_tiles.clone();
        self.launch(OP, &f, tiles * ROW_BLOCK as u64, ROW_BLOCK, &mut args)?;
        let mut args = [Arg::U32(tiles as u32), Arg::Ptr(tile_sums)];
        let f = self.kernels.fsr_scan_sums.clone();
        self.launch(OP, &f, ROW_BLOCK as u64, ROW_BLOCK, &mut args)?;
        let mut args = [Arg::U32(n as u32), Arg::Ptr(start), Arg::Ptr(tile_sums)];
        let f = self.kernels.fsr_scan_add.clone();
        self.launch(OP, &f, n, BLOCK, &mut args)?;

        // The counts become the per-slot cursors of the scatter.
        self.zero(OP, counts, n * 4)?;
        let mut args = [
            Arg::U32(p.rows),
            Arg::U32(p.tree_count),
            Arg::U32(p.slot_begin),
            Arg::U32(p.slot_count),
            Arg::Ptr(weights),
            Arg::Ptr(node_of),
            Arg::Ptr(start),
            Arg::Ptr(counts),
            Arg::Ptr(order_row),
            Arg::Ptr(order_w),
        ];
        let f = self.kernels.fsr_scatter.clone();
        self.launch(OP, &f, entries, BLOCK, &mut args)?;

        let mut args = [
            Arg::U32(p.rows),
            Arg::U32(p.features),
            Arg::U32(p.max_bins),
            Arg::U32(p.slot_begin),
            Arg::U32(p.slot_count),
            Arg::U32(p.min_samples_leaf),
            Arg::U32(p.mask_words),
            Arg::Ptr(bins),
            Arg::Ptr(targets),
            Arg::Ptr(mask),
            Arg::Ptr(start),
            Arg::Ptr(order_row),
            Arg::Ptr(order_w),
            Arg::Ptr(splits),
        ];
        let f = self.kernels.find_splits_rows.clone();
        self.launch(OP, &f, p.slot_count as u64 * ROW_BLOCK as u64, ROW_BLOCK, &mut args)
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        let ids: Vec<BufferId> = self.buffers.keys().copied().collect();
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let _ = self.ctx.bind_to_thread();
            for id in ids {
                self.free(id);
            }
            self.release_scratch();
            let _ = self.stream.synchronize();
        }));
    }
}

impl Backend for CudaBackend {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            name: self.facts.name.clone(),
            backend: BackendKind::Cuda,
            memory_bytes: self.facts.total_mem,
            hardware: true,
            driver: format!("CUDA driver {}, sm_{}{}", self.facts.driver_version(), self.facts.major, self.facts.minor),
            max_buffer_bytes: self.facts.total_mem,
        }
    }

    fn begin_call(&mut self, budget: &CallBudget) {
        self.budget = budget.clone();
        // Scratch kept from earlier calls never stays above what this call may hold.
        if self.scratch.bytes > budget.scratch_bytes {
            self.release_scratch();
        }
    }

    fn scratch_bytes(&self) -> u64 {
        self.scratch.bytes
    }

    fn release_scratch(&mut self) {
        let old = std::mem::take(&mut self.scratch);
        self.raw_free(old.ptr);
    }

    fn predict_steps_per_launch(&self) -> u64 {
        PREDICT_STEPS_PER_LAUNCH
    }

    fn alloc(&mut self, id: BufferId, size: u64) -> Result<(), GpuError> {
        self.run("allocating a buffer", |me| {
            if size == 0 {
                me.buffers.insert(id, Allocation { ptr: 0 });
                return Ok(());
            }
            let ptr = me.raw_alloc("allocating a buffer", size)?;
            me.buffers.insert(id, Allocation { ptr });
            me.zero("zero-filling a new buffer", ptr, size)
        })
    }

    fn free(&mut self, id: BufferId) {
        if let Some(a) = self.buffers.remove(&id) {
            self.raw_free(a.ptr);
        }
    }

    fn write(&mut self, id: BufferId, offset: u64, data: &[u8]) -> Result<(), GpuError> {
        self.run("writing a buffer", |me| {
            if data.is_empty() {
                return Ok(());
            }
            let dst = me.ptr(id)? + offset;
            // SAFETY: Device checked the range. From pageable memory the driver stages
            // `data` before returning, so the slice may be dropped afterwards.
            unsafe { result::memcpy_htod_async(dst, data, me.stream.cu_stream()) }.map_err(|e| me.fail("writing a buffer", e))
        })
    }

    fn read(&mut self, id: BufferId, offset: u64, len: u64) -> Result<Vec<u8>, GpuError> {
        self.run("reading a buffer", |me| {
            let mut out = Vec::new();
            out.try_reserve_exact(len as usize).map_err(|_| GpuError::OutOfMemory(format!("host memory for reading {len} bytes")))?;
            out.resize(len as usize, 0u8);
            if len > 0 {
                let src = me.ptr(id)? + offset;
                // SAFETY: Device checked the range; `out` outlives the synchronize below.
                unsafe { result::memcpy_dtoh_async(&mut out[..], src, me.stream.cu_stream()) }
                    .map_err(|e| me.fail("reading a buffer", e))?;
            }
            me.stream.synchronize().map_err(|e| me.fail("waiting for the GPU (read)", e))?;
            Ok(out)
        })
    }

    fn copy(&mut self, src: BufferId, src_offset: u64, dst: BufferId, dst_offset: u64, len: u64) -> Result<(), GpuError> {
        self.run("copying between buffers", |me| {
            if len == 0 {
                return Ok(());
            }
            let (s, d) = (me.ptr(src)? + src_offset, me.ptr(dst)? + dst_offset);
            // SAFETY: Device checked both ranges and rejected overlap within one buffer.
            unsafe { result::memcpy_dtod_async(d, s, len as usize, me.stream.cu_stream()) }
                .map_err(|e| me.fail("copying between buffers", e))
        })
    }

    fn synchronize(&mut self) -> Result<(), GpuError> {
        self.run("synchronize", |me| me.stream.synchronize().map_err(|e| me.fail("waiting for the GPU", e)))
    }

    fn bin_features(&mut self, p: &BinFeaturesParams, x: BufferId, edges: BufferId, bins: BufferId) -> Result<(), GpuError> {
        self.run("bin-features", |me| {
            let items = p.features as u64 * (p.rows as u64).div_ceil(4);
            let mut args = [
                Arg::U32(p.rows),
                Arg::U32(p.features),
                Arg::U32(p.max_bins),
                Arg::Ptr(me.ptr(x)?),
                Arg::Ptr(me.ptr(edges)?),
                Arg::Ptr(me.ptr(bins)?),
            ];
            let f = me.kernels.bin_features.clone();
            me.launch("bin-features", &f, items, BLOCK, &mut args)
        })
    }

    fn bootstrap(&mut self, p: &BootstrapParams, weights: BufferId, node_of: BufferId) -> Result<(), GpuError> {
        self.run("bootstrap", |me| {
            let entries = p.tree_count as u64 * p.rows as u64;
            let (w, n) = (me.ptr(weights)?, me.ptr(node_of)?);
            me.zero("bootstrap", w, entries * 4)?;
            let mut args = [
                Arg::U32(p.seed as u32),
                Arg::U32((p.seed >> 32) as u32),
                Arg::U32(p.rows),
                Arg::U32(p.tree_begin),
                Arg::U32(p.tree_count),
                Arg::U32(p.draws),
                Arg::Ptr(w),
            ];
            let f = me.kernels.bootstrap_draws.clone();
            me.launch("bootstrap", &f, p.tree_count as u64 * p.draws as u64, BLOCK, &mut args)?;
            let mut args = [Arg::U32(p.rows), Arg::U32(p.tree_count), Arg::Ptr(w), Arg::Ptr(n)];
            let f = me.kernels.bootstrap_roots.clone();
            me.launch("bootstrap", &f, entries, BLOCK, &mut args)
        })
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
        self.run("build-histograms", |me| {
            let ptrs = [me.ptr(bins)?, me.ptr(targets)?, me.ptr(weights)?, me.ptr(node_of)?, me.ptr(hist)?];
            me.queue_build_histograms(p, ptrs)
        })
    }

    fn find_splits(&mut self, p: &SplitParams, hist: BufferId, feature_mask: BufferId, splits: BufferId) -> Result<(), GpuError> {
        self.run("find-splits", |me| {
            let ptrs = [me.ptr(hist)?, me.ptr(feature_mask)?, me.ptr(splits)?];
            me.queue_find_splits(p, ptrs)
        })
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
        self.run("find-splits-rows", |me| {
            if p.slot_count == 0 {
                return Ok(());
            }
            let ptrs = [
                me.ptr(bins)?,
                me.ptr(targets)?,
                me.ptr(weights)?,
                me.ptr(node_of)?,
                me.ptr(feature_mask)?,
                me.ptr(splits)?,
            ];
            let entries = p.tree_count as u64 * p.rows as u64;
            let few_slots = (p.slot_count as u64) < DENSE_MAX_SLOTS_PER_SM * me.facts.multiprocessors as u64;
            let big_slots = entries / p.slot_count as u64 >= DENSE_MIN_ENTRIES_PER_SLOT;
            // Entry indices and slot offsets are 32-bit in the grouped path.
            let grouped_possible = entries <= u32::MAX as u64 && p.slot_count < u32::MAX;
            let prefer_dense = !grouped_possible || (few_slots && big_slots);
            // Only computed where possible: with 2^64 entries the layout would overflow.
            let grouped_bytes = grouped_possible.then(|| Self::grouped_layout(p)[4]);
            let budget = me.budget.scratch_bytes;
            let grouped_fits = grouped_bytes.is_some_and(|b| b <= budget);
            // The preferred path if its scratch fits the budget, else the other one.
            match (me.dense_batch(p), grouped_fits) {
                (Some(batch), false) => me.rows_dense(p, batch, ptrs),
                (Some(batch), true) if prefer_dense => me.rows_dense(p, batch, ptrs),
                (_, true) => me.rows_grouped(p, ptrs),
                (None, false) => {
                    let slot = Self::dense_slot_bytes(p);
                    let need = grouped_bytes.map_or(slot, |g| g.min(slot));
                    Err(GpuError::LimitExceeded(format!(
                        "find-splits-rows needs at least {need} bytes of device scratch for these parameters (one slot's histogram of {} features x {} bins takes {slot}), but only {budget} bytes of this guest's device memory limit (--max-device-memory) are left beside its buffers; raise the limit, drop buffers, or pass fewer rows, trees or features per call",
                        p.features, p.max_bins
                    )))
                }
            }
        })
    }

    fn apply_splits(
        &mut self,
        p: &ApplyParams,
        bins: BufferId,
        splits: BufferId,
        next_slot: BufferId,
        node_of: BufferId,
    ) -> Result<(), GpuError> {
        self.run("apply-splits", |me| {
            let mut args = [
                Arg::U32(p.rows),
                Arg::U32(p.features),
                Arg::U32(p.tree_count),
                Arg::U32(p.slot_count),
                Arg::Ptr(me.ptr(bins)?),
                Arg::Ptr(me.ptr(splits)?),
                Arg::Ptr(me.ptr(next_slot)?),
                Arg::Ptr(me.ptr(node_of)?),
            ];
            let f = me.kernels.apply_splits.clone();
            me.launch("apply-splits", &f, p.tree_count as u64 * p.rows as u64, BLOCK, &mut args)
        })
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
        const OP: &str = "predict-forest";
        // Device makes the spans; a wrong one must still not reach the kernel.
        let rows_ok = span.row_begin <= span.row_end && span.row_end <= p.rows;
        let trees_ok = span.tree_begin <= span.tree_end && span.tree_end <= p.tree_count;
        if !rows_ok || !trees_ok {
            let (rows, trees) = (p.rows, p.tree_count);
            return Err(GpuError::invalid(format!("{OP}: {span:?} lies outside the call's {rows} rows and {trees} trees")));
        }
        self.run(OP, |me| {
            let span_rows = (span.row_end - span.row_begin) as u64;
            let span_trees = (span.tree_end - span.tree_begin) as u64;
            if span_rows == 0 {
                return Ok(());
            }
            // One work item per row and group of trees. Few rows with many trees are cut
            // into enough groups to fill the grid, so that no thread walks a long run of
            // trees alone; the groups of a row then meet in its sum through atomics.
            let grid = me.max_blocks as u64 * BLOCK as u64;
            let groups = grid.div_ceil(span_rows).clamp(1, span_trees.max(1));
            let group_trees = span_trees.div_ceil(groups).max(1);
            // The kernel derives the same count from group_trees (1 when there are no trees).
            let groups = span_trees.div_ceil(group_trees).max(1);
            let shared = groups > 1;
            let (x, nodes, roots, sums) = (me.ptr(x)?, me.ptr(nodes)?, me.ptr(roots)?, me.ptr(sums)?);
            if shared && span.tree_begin == 0 {
                // The first launch of these rows sets their sums: start them from zero.
                me.zero(OP, sums + span.row_begin as u64 * 16, span_rows * 16)?;
            }
            let mut args = [
                Arg::U32(p.rows),
                Arg::U32(p.features),
                Arg::U32(p.tree_count),
                Arg::U32(p.node_count),
                Arg::U32(p.max_depth),
                Arg::U32(span.row_begin),
                Arg::U32(span.row_end),
                Arg::U32(span.tree_begin),
                Arg::U32(span.tree_end),
                Arg::U32(group_trees as u32),
                Arg::U32(shared as u32),
                Arg::Ptr(x),
                Arg::Ptr(nodes),
                Arg::Ptr(roots),
                Arg::Ptr(sums),
            ];
            let f = me.kernels.predict_forest.clone();
            me.launch(OP, &f, span_rows * groups, BLOCK, &mut args)
        })
    }
}
