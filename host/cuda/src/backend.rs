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
    ApplyParams, Backend, BackendKind, BinFeaturesParams, BootstrapParams, BufferId, DeviceInfo, GpuError,
    HistogramParams, PredictParams, SplitParams, HIST_WORDS,
};

use crate::compile;
use crate::errors::{describe, is_kernel_fault, to_gpu};

/// Threads per block of every grid-stride kernel.
const BLOCK: u32 = 256;
/// Threads per block of `find_splits`; must equal FS_THREADS in find_splits.cu.
const SPLIT_BLOCK: u32 = 128;
/// Largest grid y dimension every CUDA device accepts.
const MAX_GRID_Y: u64 = 65535;

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
    /// Initialises the driver and reads device 0's facts. Must run under `guarded`.
    pub(crate) fn query() -> Result<Self, String> {
        let fail = |what: &str, e: DriverError| format!("{what}: {}", describe(&e));
        result::init().map_err(|e| fail("no usable CUDA driver (cuInit failed)", e))?;
        let count = result::device::get_count().map_err(|e| fail("cannot count CUDA devices", e))?;
        if count < 1 {
            return Err("no CUDA device: the driver is installed but reports no GPU".into());
        }
        let dev = result::device::get(0).map_err(|e| fail("cannot open CUDA device 0", e))?;
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
        unsafe { sys::cuDriverGetVersion(&mut driver) }
            .result()
            .map_err(|e| fail("cannot read the driver version", e))?;
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
}

impl CudaBackend {
    /// Opens device 0, compiles (or reuses) the kernels and creates the stream.
    pub fn open() -> Result<Self, String> {
        crate::check_driver_library()?;
        crate::check_nvrtc_library()?;
        crate::guarded("opening the CUDA backend", || {
            let facts = DeviceFacts::query()?;
            let ptx = compile::ptx_for(facts.major, facts.minor)?;
            let fail = |what: &str, e: DriverError| format!("{what}: {}", describe(&e));
            let ctx = CudaContext::new(0).map_err(|e| fail("cannot create a CUDA context on device 0", e))?;
            let module = ctx.load_module(Ptx::from_src(ptx)).map_err(|e| {
                fail("the driver rejected the NVRTC output (is NVRTC newer than the driver?)", e)
            })?;
            let f = |name: &str| module.load_function(name).map_err(|e| fail(&format!("kernel `{name}` missing"), e));
            let kernels = Kernels {
                bin_features: f(compile::ENTRY_POINTS[0])?,
                bootstrap_draws: f(compile::ENTRY_POINTS[1])?,
                bootstrap_roots: f(compile::ENTRY_POINTS[2])?,
                build_histograms: f(compile::ENTRY_POINTS[3])?,
                find_splits: f(compile::ENTRY_POINTS[4])?,
                apply_splits: f(compile::ENTRY_POINTS[5])?,
                predict_forest: f(compile::ENTRY_POINTS[6])?,
            };
            let stream = ctx.new_stream().map_err(|e| fail("cannot create a CUDA stream", e))?;
            let max_blocks = facts.max_grid_x.min(facts.multiprocessors.saturating_mul(32)).max(1);
            Ok(CudaBackend { kernels, stream, ctx, buffers: HashMap::new(), facts, lost: None, max_blocks })
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
        self.buffers
            .get(&id)
            .map(|a| a.ptr)
            .ok_or_else(|| GpuError::invalid(format!("buffer {id} does not exist on the CUDA device")))
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
        unsafe {
            result::launch_kernel(f.cu_function(), (blocks, blocks_y, 1), (block, 1, 1), 0, self.stream.cu_stream(), &mut params)
        }
        .map_err(|e| self.fail(op, e))
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
            driver: format!(
                "CUDA driver {}, sm_{}{}",
                self.facts.driver_version(),
                self.facts.major,
                self.facts.minor
            ),
            max_buffer_bytes: self.facts.total_mem,
        }
    }

    fn alloc(&mut self, id: BufferId, size: u64) -> Result<(), GpuError> {
        self.run("allocating a buffer", |me| {
            if size == 0 {
                me.buffers.insert(id, Allocation { ptr: 0 });
                return Ok(());
            }
            let bytes = usize::try_from(size)
                .map_err(|_| GpuError::OutOfMemory(format!("a buffer of {size} bytes does not fit this host's address space")))?;
            let stream = me.stream.cu_stream();
            // SAFETY: plain allocation on our stream; the memory is zeroed before any use.
            let ptr = if me.ctx.has_async_alloc() {
                unsafe { result::malloc_async(stream, bytes) }
            } else {
                unsafe { result::malloc_sync(bytes) }
            }
            .map_err(|e| match e.0 {
                sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => GpuError::OutOfMemory(format!(
                    "allocating {size} bytes on the GPU failed: out of device memory; free buffers or use smaller batches"
                )),
                _ => me.fail("allocating a buffer", e),
            })?;
            me.buffers.insert(id, Allocation { ptr });
            me.zero("zero-filling a new buffer", ptr, size)
        })
    }

    fn free(&mut self, id: BufferId) {
        let Some(a) = self.buffers.remove(&id) else { return };
        if a.ptr == 0 {
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
                    let _ = result::free_async(a.ptr, stream);
                } else {
                    let _ = result::stream::synchronize(stream);
                    let _ = result::free_sync(a.ptr);
                }
            }
        }));
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
            out.try_reserve_exact(len as usize)
                .map_err(|_| GpuError::OutOfMemory(format!("host memory for reading {len} bytes")))?;
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
            if p.slot_count == 0 {
                return Ok(());
            }
            let h = me.ptr(hist)?;
            let hist_bytes = p.slot_count as u64 * p.features as u64 * p.max_bins as u64 * HIST_WORDS as u64 * 4;
            me.zero("build-histograms", h, hist_bytes)?;
            let mut args = [
                Arg::U32(p.rows),
                Arg::U32(p.features),
                Arg::U32(p.max_bins),
                Arg::U32(p.tree_count),
                Arg::U32(p.slot_begin),
                Arg::U32(p.slot_count),
                Arg::Ptr(me.ptr(bins)?),
                Arg::Ptr(me.ptr(targets)?),
                Arg::Ptr(me.ptr(weights)?),
                Arg::Ptr(me.ptr(node_of)?),
                Arg::Ptr(h),
            ];
            let entries = p.tree_count as u64 * p.rows as u64;
            let f = me.kernels.build_histograms.clone();
            me.launch_2d("build-histograms", &f, entries, p.features as u64, BLOCK, &mut args)
        })
    }

    fn find_splits(&mut self, p: &SplitParams, hist: BufferId, feature_mask: BufferId, splits: BufferId) -> Result<(), GpuError> {
        self.run("find-splits", |me| {
            let mut args = [
                Arg::U32(p.features),
                Arg::U32(p.max_bins),
                Arg::U32(p.slot_begin),
                Arg::U32(p.slot_count),
                Arg::U32(p.min_samples_leaf),
                Arg::U32(p.mask_words),
                Arg::Ptr(me.ptr(hist)?),
                Arg::Ptr(me.ptr(feature_mask)?),
                Arg::Ptr(me.ptr(splits)?),
            ];
            let f = me.kernels.find_splits.clone();
            // One block of SPLIT_BLOCK threads per slot.
            me.launch("find-splits", &f, p.slot_count as u64 * SPLIT_BLOCK as u64, SPLIT_BLOCK, &mut args)
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
        x: BufferId,
        nodes: BufferId,
        roots: BufferId,
        sums: BufferId,
    ) -> Result<(), GpuError> {
        self.run("predict-forest", |me| {
            let mut args = [
                Arg::U32(p.rows),
                Arg::U32(p.features),
                Arg::U32(p.tree_count),
                Arg::U32(p.node_count),
                Arg::U32(p.max_depth),
                Arg::Ptr(me.ptr(x)?),
                Arg::Ptr(me.ptr(nodes)?),
                Arg::Ptr(me.ptr(roots)?),
                Arg::Ptr(me.ptr(sums)?),
            ];
            let f = me.kernels.predict_forest.clone();
            me.launch("predict-forest", &f, p.rows as u64, BLOCK, &mut args)
        })
    }
}
