//! WebGPU backend of `wasi:gpu`: buffers are wgpu storage buffers and the kernels are the
//! WGSL twins of the Rust reference kernels (`host/backend/src/kernels/NAME.wgsl`).
//!
//! Design notes:
//! * Every kernel is compiled once per device, in [`open`].
//! * Dispatches use a 2-D grid of 64-wide workgroups (so more than 65535 workgroups fit),
//!   and inputs larger than one dispatch are split into several dispatches, each told its
//!   first index (`base`) and length (`count`) through its own uniform block.
//! * Kernels bind whole buffers, so the largest buffer offered to guests is the smallest of
//!   the adapter's max buffer size, max storage-buffer binding size and 4 GiB - 4 bytes
//!   (all indices in the WGSL are u32). Larger requests are refused with `LimitExceeded`.
//! * All arithmetic in the WGSL is 32-bit; 64-bit sums use explicit carries and the 128-bit
//!   split scores use u32 limbs, so neither SHADER_INT64 nor 64-bit atomics are needed.
//! * `find-splits-rows` never builds a global histogram: the batch's entries are grouped
//!   by slot on the GPU (atomic counts, multi-level exclusive scan, scatter), then slots of
//!   at most 32 entries are decided by one invocation each and larger ones by one
//!   workgroup each over a workgroup-memory histogram (`find_splits_rows.wgsl`). Batches
//!   of few, large slots take build-histograms + find-splits instead (see `DENSE_MAX_SLOTS`).
//!   Its scratch buffers are kept and only ever grown.
//! * wgpu errors never panic the host: an uncaptured-error handler and the device-lost
//!   callback record them, and the next operation reports them as [`GpuError`]s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasi_gpu_backend::{
    ApplyParams, Backend, BackendKind, BinFeaturesParams, BootstrapParams, BufferId, DeviceInfo, GpuError,
    HistogramParams, PredictParams, RowSplitParams, SplitParams, HIST_WORDS, NONE,
};
use wgpu::util::DeviceExt;

/// What the probe saw of one adapter, for `wasmtime-gpu-host devices`.
#[derive(Debug, Clone)]
pub struct AdapterReport {
    /// The adapter's name as the driver reports it, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// "Vulkan", "Metal", ...
    pub api: String,
    /// "DiscreteGpu", "Cpu", ...
    pub device_type: String,
    /// False for software rasterizers (device type "Cpu", e.g. Mesa's llvmpipe).
    pub hardware: bool,
    /// Why this adapter cannot run the kernels, if it cannot.
    pub unusable: Option<String>,
}

/// Threads per workgroup of every kernel (`@workgroup_size(64)` in the WGSL).
const WORKGROUP: u32 = 64;
/// Storage buffers the widest kernel (find-splits-rows' `split_slots`) binds.
const STORAGE_BINDINGS: u32 = 7;
/// Largest buffer whose byte offsets still fit the u32 arithmetic of the shaders.
const U32_BYTE_LIMIT: u64 = 0xffff_fffc;

/// Byte-granular copy used for unaligned writes and copies (wgpu only moves whole words).
const COPY_BYTES_WGSL: &str = r#"
struct Params { base: u32, count: u32, first_word: u32, dst_off: u32, len: u32, src_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (local >= p.count) { return; }
    let w = p.first_word + p.base + local;
    var word = dst[w];
    for (var lane = 0u; lane < 4u; lane++) {
        let pos = w * 4u + lane;
        if (pos >= p.dst_off && pos - p.dst_off < p.len) {
            let sp = p.src_off + (pos - p.dst_off);
            let byte = (src[sp / 4u] >> ((sp % 4u) * 8u)) & 0xffu;
            word = (word & ~(0xffu << (lane * 8u))) | (byte << (lane * 8u));
        }
    }
    dst[w] = word;
}
"#;

/// The exact 128-bit split score in u32 limbs, shared by both split kernels (WGSL has no
/// includes, so it is prepended to their sources).
const SPLIT_SCORE_WGSL: &str = include_str!("../../backend/src/kernels/split_score.wgsl");

/// Exact f32 comparisons on bit patterns, shared by bin-features and predict-forest.
const FLOAT_ORDER_WGSL: &str = include_str!("../../backend/src/kernels/float_order.wgsl");

/// The entry points of `find-splits-rows` (grouping by slot, then one workgroup per slot).
const FIND_SPLITS_ROWS_WGSL: &str = include_str!("../../backend/src/kernels/find_splits_rows.wgsl");

/// One compiled kernel entry point and its bind group layout.
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// Every pipeline of the backend, compiled once per device.
struct Kernels {
    bin_features: Kernel,
    bootstrap_draw: Kernel,
    bootstrap_mark: Kernel,
    build_histograms_clear: Kernel,
    build_histograms: Kernel,
    find_splits: Kernel,
    apply_splits: Kernel,
    predict_forest: Kernel,
    copy_bytes: Kernel,
    rows_count: Kernel,
    rows_scan: Kernel,
    rows_add: Kernel,
    rows_scatter: Kernel,
    rows_split: Kernel,
    rows_split_small: Kernel,
}

/// Which find-splits-rows scratch buffer.
#[derive(Clone, Copy)]
enum Which {
    Scan,
    Order,
    Hist,
}

/// A device buffer kept between calls of one kernel; grown on demand, never shrunk, so
/// that a training run allocates its scratch space a few times rather than every level.
#[derive(Default)]
struct Scratch {
    buffer: Option<wgpu::Buffer>,
}

/// Words of one scan block of `find_splits_rows.wgsl` (64 threads x 4 words).
const SCAN_BLOCK: u64 = 256;
/// Words of the uniform block of `find_splits_rows.wgsl`.
const ROWS_PARAM_WORDS: usize = 16;
/// `find-splits-rows` takes the dense path (build-histograms + find-splits, identical
/// results by definition) only for batches with fewer slots than this: with fewer than
/// about a thousand workgroups a GPU is under-occupied by the one-workgroup-per-slot
/// kernel, whose per-slot work is then a long serial walk over many rows...
const DENSE_MAX_SLOTS: u32 = 1024;
/// ... and only when the batch averages at least this many (tree, row) entries per slot
/// (bounded above by tree_count * rows / slot_count), so that the histogram it
/// materialises is small next to the rows it summarises...
const DENSE_MIN_ENTRIES_PER_SLOT: u64 = 1024;
/// ... and only when that histogram fits in this many bytes of scratch memory.
const DENSE_MAX_HIST_BYTES: u64 = 64 << 20;

/// A device allocation: the wgpu buffer (rounded up to whole words, at least one word).
struct GpuBuffer {
    buffer: wgpu::Buffer,
}

/// The first error wgpu reported asynchronously; taken by the next operation.
#[derive(Default)]
struct ErrorSink {
    lost: Option<String>,
    error: Option<GpuError>,
}

/// `wasi:gpu` on one wgpu device; obtained through [`open`] as a `Box<dyn Backend>`.
pub struct WgpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: DeviceInfo,
    kernels: Kernels,
    buffers: HashMap<BufferId, GpuBuffer>,
    errors: Arc<Mutex<ErrorSink>>,
    /// Most workgroups along one grid dimension.
    max_dim: u32,
    /// find-splits-rows: per-slot counts, then offsets (all levels of the scan).
    rows_scan: Scratch,
    /// find-splits-rows: entry indices grouped by slot.
    rows_order: Scratch,
    /// find-splits-rows, dense path: the batch's histogram.
    rows_hist: Scratch,
}

fn device_type_name(t: wgpu::DeviceType) -> String {
    format!("{t:?}")
}

fn is_hardware(t: wgpu::DeviceType) -> bool {
    !matches!(t, wgpu::DeviceType::Cpu)
}

/// Hardware adapters first (discrete, integrated, virtual, other), software last.
fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Why an adapter cannot run the kernels, or None if it can.
fn unusable_reason(adapter: &wgpu::Adapter) -> Option<String> {
    let limits = adapter.limits();
    let downlevel = adapter.get_downlevel_capabilities();
    if !downlevel.flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
        return Some("no compute shaders".into());
    }
    let mut missing = Vec::new();
    if limits.max_storage_buffers_per_shader_stage < STORAGE_BINDINGS {
        missing.push(format!(
            "max_storage_buffers_per_shader_stage is {}, need {STORAGE_BINDINGS}",
            limits.max_storage_buffers_per_shader_stage
        ));
    }
    if limits.max_compute_invocations_per_workgroup < WORKGROUP || limits.max_compute_workgroup_size_x < WORKGROUP {
        missing.push(format!("compute workgroups of {WORKGROUP} invocations are not supported"));
    }
    if limits.max_compute_workgroups_per_dimension == 0 {
        missing.push("max_compute_workgroups_per_dimension is 0".into());
    }
    if limits.max_uniform_buffers_per_shader_stage < 1 {
        missing.push("no uniform buffers in compute shaders".into());
    }
    if missing.is_empty() { None } else { Some(missing.join("; ")) }
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    wgpu::Instance::new(desc)
}

fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN))
}

/// Every adapter wgpu can see, with the reason it is unusable where it is.
pub fn list_adapters() -> Vec<AdapterReport> {
    let instance = instance();
    adapters(&instance)
        .iter()
        .map(|a| {
            let info = a.get_info();
            AdapterReport {
                name: info.name.clone(),
                api: format!("{:?}", info.backend),
                device_type: device_type_name(info.device_type),
                hardware: is_hardware(info.device_type),
                unusable: unusable_reason(a),
            }
        })
        .collect()
}

/// Opens the best adapter: hardware first; software ones only if `allow_software`.
/// The error lists every adapter seen and why each was passed over.
pub fn open(allow_software: bool) -> Result<Box<dyn Backend>, String> {
    open_inner(allow_software, None)
}

/// Like [`open`], but never dispatches more than `max_workgroups_per_dimension` (at least 1)
/// workgroups along a grid dimension, so that small inputs already take the multi-dispatch
/// path that only huge inputs take otherwise. It exists for the conformance tests.
pub fn open_with_grid_limit(allow_software: bool, max_workgroups_per_dimension: u32) -> Result<Box<dyn Backend>, String> {
    open_inner(allow_software, Some(max_workgroups_per_dimension.max(1)))
}

fn open_inner(allow_software: bool, grid_limit: Option<u32>) -> Result<Box<dyn Backend>, String> {
    let instance = instance();
    let mut candidates = adapters(&instance);
    if candidates.is_empty() {
        return Err("wgpu found no Vulkan adapter (is a Vulkan driver/ICD installed?)".into());
    }
    candidates.sort_by_key(|a| preference(a.get_info().device_type));
    let mut why = Vec::new();
    for adapter in candidates {
        let info = adapter.get_info();
        if let Some(reason) = unusable_reason(&adapter) {
            why.push(format!("{}: {reason}", info.name));
            continue;
        }
        if !is_hardware(info.device_type) && !allow_software {
            why.push(format!("{}: software adapter (allow software rendering to use it)", info.name));
            continue;
        }
        match WgpuBackend::new(&adapter, grid_limit) {
            Ok(backend) => return Ok(Box::new(backend)),
            Err(e) => why.push(format!("{}: {e}", info.name)),
        }
    }
    Err(format!("no usable wgpu adapter: {}", why.join("; ")))
}

fn host_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn compile(device: &wgpu::Device, label: &str, source: &str, entry: &str) -> Kernel {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: None,
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });
    let layout = pipeline.get_bind_group_layout(0);
    Kernel { pipeline, layout }
}

fn round4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

impl WgpuBackend {
    /// Creates the device with every limit the adapter offers and compiles all kernels.
    fn new(adapter: &wgpu::Adapter, grid_limit: Option<u32>) -> Result<Self, String> {
        let adapter_info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wasi-gpu"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: Default::default(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: Default::default(),
        }))
        .map_err(|e| format!("request_device failed: {e}"))?;

        let errors = Arc::new(Mutex::new(ErrorSink::default()));
        {
            let sink = errors.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let err = match &e {
                    wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory(format!("wgpu: {e}")),
                    _ => GpuError::KernelFailure(format!("wgpu: {e}")),
                };
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                s.error.get_or_insert(err);
            }));
            let sink = errors.clone();
            device.set_device_lost_callback(move |reason, msg| {
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                s.lost.get_or_insert(format!("{reason:?}: {msg}"));
            });
        }

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let k = |label: &str, src: &str, entry: &str| compile(&device, label, src, entry);
        let find_splits_src = format!("{SPLIT_SCORE_WGSL}\n{}", include_str!("../../backend/src/kernels/find_splits.wgsl"));
        let rows_src = format!("{SPLIT_SCORE_WGSL}\n{FIND_SPLITS_ROWS_WGSL}");
        let bin_features_src = format!("{FLOAT_ORDER_WGSL}\n{}", include_str!("../../backend/src/kernels/bin_features.wgsl"));
        let predict_src = format!("{FLOAT_ORDER_WGSL}\n{}", include_str!("../../backend/src/kernels/predict_forest.wgsl"));
        let kernels = Kernels {
            bin_features: k("bin_features", &bin_features_src, "main"),
            bootstrap_draw: k("bootstrap.draw", include_str!("../../backend/src/kernels/bootstrap.wgsl"), "draw"),
            bootstrap_mark: k("bootstrap.mark", include_str!("../../backend/src/kernels/bootstrap.wgsl"), "mark"),
            build_histograms_clear: k(
                "build_histograms.clear",
                include_str!("../../backend/src/kernels/build_histograms.wgsl"),
                "clear_cells",
            ),
            build_histograms: k(
                "build_histograms",
                include_str!("../../backend/src/kernels/build_histograms.wgsl"),
                "main",
            ),
            find_splits: k("find_splits", &find_splits_src, "main"),
            apply_splits: k("apply_splits", include_str!("../../backend/src/kernels/apply_splits.wgsl"), "main"),
            predict_forest: k("predict_forest", &predict_src, "main"),
            copy_bytes: k("copy_bytes", COPY_BYTES_WGSL, "main"),
            rows_count: k("find_splits_rows.count", &rows_src, "count_entries"),
            rows_scan: k("find_splits_rows.scan", &rows_src, "scan_blocks"),
            rows_add: k("find_splits_rows.add", &rows_src, "add_offsets"),
            rows_scatter: k("find_splits_rows.scatter", &rows_src, "scatter_entries"),
            rows_split: k("find_splits_rows.split", &rows_src, "split_slots"),
            rows_split_small: k("find_splits_rows.split_small", &rows_src, "split_small"),
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(format!("compiling the WGSL kernels failed: {e}"));
        }

        let max_buffer = limits.max_buffer_size.min(limits.max_storage_buffer_binding_size).min(U32_BYTE_LIMIT) / 4 * 4;
        let hardware = is_hardware(adapter_info.device_type);
        // wgpu does not expose the size of device memory. The largest single allocation
        // (Vulkan's maxMemoryAllocationSize, as wgpu reports it) is a lower bound on it;
        // for a software adapter, device memory is host memory, so that caps it too.
        let mut memory = limits.max_buffer_size;
        if !hardware {
            memory = memory.min(host_memory().unwrap_or(memory));
        }
        let driver = [adapter_info.driver.as_str(), adapter_info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let info = DeviceInfo {
            name: adapter_info.name.clone(),
            backend: BackendKind::Wgpu,
            memory_bytes: memory,
            hardware,
            driver: format!("{:?} {}", adapter_info.backend, if driver.is_empty() { "(unknown driver)" } else { &driver }),
            max_buffer_bytes: max_buffer,
        };
        Ok(WgpuBackend {
            device,
            queue,
            info,
            kernels,
            buffers: HashMap::new(),
            errors,
            max_dim: limits.max_compute_workgroups_per_dimension.clamp(1, 65535).min(grid_limit.unwrap_or(u32::MAX)),
            rows_scan: Scratch::default(),
            rows_order: Scratch::default(),
            rows_hist: Scratch::default(),
        })
    }

    /// Reports (and clears, unless the device is lost) the first error wgpu recorded.
    fn check(&self) -> Result<(), GpuError> {
        let mut s = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lost) = &s.lost {
            return Err(GpuError::DeviceLost(format!("the wgpu device was lost ({lost}); open a new device")));
        }
        match s.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn buf(&self, id: BufferId) -> Result<&wgpu::Buffer, GpuError> {
        self.buffers
            .get(&id)
            .map(|b| &b.buffer)
            .ok_or_else(|| GpuError::invalid(format!("buffer {id} does not exist on the wgpu device")))
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wasi-gpu") })
    }

    fn submit(&self, encoder: wgpu::CommandEncoder) -> Result<(), GpuError> {
        self.queue.submit([encoder.finish()]);
        self.check()
    }

    /// Records dispatches of `kernel` over `total` invocations, split into as many
    /// dispatches as the device's grid limits need. `params[0..2]` are overwritten with
    /// each dispatch's (base, count); buffers bind at 1.. in order.
    fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        params: &[u32],
        buffers: &[&wgpu::Buffer],
        total: u64,
    ) {
        let bindings: Vec<(u32, &wgpu::Buffer)> = buffers.iter().enumerate().map(|(i, &b)| (i as u32 + 1, b)).collect();
        self.dispatch_at(encoder, kernel, params, &bindings, total);
    }

    /// [`Self::dispatch`] with explicit (binding, buffer) pairs after the uniform at 0, for
    /// entry points that use only some of their shader's bindings.
    fn dispatch_at(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        params: &[u32],
        bindings: &[(u32, &wgpu::Buffer)],
        total: u64,
    ) {
        if total == 0 {
            return;
        }
        let max_dim = self.max_dim as u64;
        let groups_per_dispatch = (max_dim * max_dim).min(1 << 24);
        let per_dispatch = groups_per_dispatch * WORKGROUP as u64;
        let mut words = params.to_vec();
        words.resize(params.len().max(2).div_ceil(4) * 4, 0);
        let mut base = 0u64;
        while base < total {
            let count = (total - base).min(per_dispatch);
            words[0] = base as u32;
            words[1] = count as u32;
            let uniform = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wasi-gpu params"),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
            for &(binding, b) in bindings {
                entries.push(wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() });
            }
            let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &kernel.layout,
                entries: &entries,
            });
            let groups = count.div_ceil(WORKGROUP as u64);
            let x = groups.min(max_dim);
            let y = groups.div_ceil(x);
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(x as u32, y as u32, 1);
            drop(pass);
            base += count;
        }
    }

    /// Records `build-histograms` (one invocation per cell writing the empty cell, then one
    /// per entry) into `encoder`. `bufs`: bins, targets, weights, node-of, hist.
    fn encode_build_histograms(&self, encoder: &mut wgpu::CommandEncoder, p: &HistogramParams, bufs: [&wgpu::Buffer; 5]) {
        // Device validated the histogram inside one buffer, so the cell count fits u32.
        let cells = p.slot_count as u64 * p.features as u64 * p.max_bins as u64;
        let entries = p.tree_count as u64 * p.rows as u64;
        let params = [0, 0, p.rows, p.features, p.max_bins, p.rows.div_ceil(4), p.slot_begin, p.slot_count];
        if cells > 0 {
            self.dispatch_at(encoder, &self.kernels.build_histograms_clear, &params, &[(5, bufs[4])], cells);
            self.dispatch(encoder, &self.kernels.build_histograms, &params, &bufs, entries);
        }
    }

    /// Records `find-splits` (one invocation per slot) into `encoder`.
    /// `bufs`: hist, feature-mask, splits.
    fn encode_find_splits(&self, encoder: &mut wgpu::CommandEncoder, p: &SplitParams, bufs: [&wgpu::Buffer; 3]) {
        let params = [0, 0, p.features, p.max_bins, p.slot_begin, p.min_samples_leaf, p.mask_words, 0];
        self.dispatch(encoder, &self.kernels.find_splits, &params, &bufs, p.slot_count as u64);
    }

    /// The bytes of the dense histogram when `find-splits-rows` should run as
    /// build-histograms + find-splits (see [`DENSE_MAX_SLOTS`]), or None for the grouped
    /// one-workgroup-per-slot path.
    fn dense_rows_path(&self, p: &RowSplitParams) -> Option<u64> {
        let bytes = p.slot_count as u64 * p.features as u64 * p.max_bins as u64 * HIST_WORDS as u64 * 4;
        let per_slot = p.tree_count as u64 * p.rows as u64 / p.slot_count.max(1) as u64;
        (p.slot_count < DENSE_MAX_SLOTS
            && per_slot >= DENSE_MIN_ENTRIES_PER_SLOT
            && bytes <= DENSE_MAX_HIST_BYTES.min(self.info.max_buffer_bytes))
        .then_some(bytes)
    }

    fn scratch_slot(&mut self, which: Which) -> &mut Scratch {
        match which {
            Which::Scan => &mut self.rows_scan,
            Which::Order => &mut self.rows_order,
            Which::Hist => &mut self.rows_hist,
        }
    }

    /// Makes scratch buffer `which` at least `bytes` long (growing by at least half, up to
    /// the largest buffer, so a run of slowly growing levels reallocates rarely).
    fn grow(&mut self, which: Which, bytes: u64) -> Result<(), GpuError> {
        let max = self.info.max_buffer_bytes;
        let have = self.scratch_slot(which).buffer.as_ref().map_or(0, |b| b.size());
        if have >= bytes.max(4) {
            return Ok(());
        }
        if bytes > max {
            return Err(GpuError::LimitExceeded(format!(
                "find-splits-rows needs {bytes} bytes of scratch memory; this wgpu device binds at most {max}"
            )));
        }
        let size = round4(bytes.max(have + have / 2).min(max)).max(4);
        if let Some(old) = self.scratch_slot(which).buffer.take() {
            old.destroy();
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wasi-gpu find-splits-rows scratch"),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            buffer.destroy();
            return Err(GpuError::OutOfMemory(format!(
                "allocating {size} bytes of find-splits-rows scratch memory on the wgpu device failed: {e}"
            )));
        }
        self.scratch_slot(which).buffer = Some(buffer);
        self.check()
    }

    fn scratch(&self, which: Which) -> Result<&wgpu::Buffer, GpuError> {
        let s = match which {
            Which::Scan => &self.rows_scan,
            Which::Order => &self.rows_order,
            Which::Hist => &self.rows_hist,
        };
        s.buffer.as_ref().ok_or_else(|| GpuError::KernelFailure("find-splits-rows scratch buffer missing".into()))
    }

    /// Records `groups` workgroups of `kernel` over a 2-D grid, in as many dispatches as
    /// the grid limits need; `params[0..2]` become each dispatch's (first workgroup,
    /// workgroups). `bindings` are (binding, buffer) pairs after the uniform at 0.
    fn dispatch_groups(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        params: &[u32; ROWS_PARAM_WORDS],
        bindings: &[(u32, &wgpu::Buffer)],
        groups: u64,
    ) {
        let max_dim = self.max_dim as u64;
        let per_dispatch = (max_dim * max_dim).min(1 << 24);
        let mut words = *params;
        let mut base = 0u64;
        while base < groups {
            let count = (groups - base).min(per_dispatch);
            words[0] = base as u32;
            words[1] = count as u32;
            let uniform = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wasi-gpu params"),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
            for &(binding, b) in bindings {
                entries.push(wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() });
            }
            let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &kernel.layout,
                entries: &entries,
            });
            let x = count.min(max_dim);
            let y = count.div_ceil(x);
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(x as u32, y as u32, 1);
            drop(pass);
            base += count;
        }
    }

    /// `find-splits-rows` without a histogram in device memory: per chunk of slots, count
    /// the entries of each slot, scan the counts (multi-level), scatter entry indices by
    /// slot, then decide each slot: one invocation per slot of at most 32 entries, one
    /// workgroup per larger slot (find_splits_rows.wgsl).
    /// `ids`: bins, targets, weights, node-of, feature-mask, splits.
    fn find_splits_rows_grouped(&mut self, p: &RowSplitParams, ids: [BufferId; 6]) -> Result<(), GpuError> {
        // Device validated node-of as tree_count * rows words inside one buffer, so the
        // entry count fits u32.
        let entries = p.tree_count as u64 * p.rows as u64;
        let entries32 = u32::try_from(entries)
            .map_err(|_| GpuError::LimitExceeded(format!("{entries} (tree, row) entries exceed this wgpu device")))?;
        // The scan of a chunk of c slots takes fewer than 2c + 64 words.
        let chunk = (self.info.max_buffer_bytes / 4 / 2).saturating_sub(64).clamp(1, u32::MAX as u64) as u32;
        self.grow(Which::Order, entries * 4)?;
        let mut first = 0u32;
        while first < p.slot_count {
            let count = chunk.min(p.slot_count - first);
            // Scan levels: (first word, words); level 0 holds count + 1 words.
            let mut levels = Vec::new();
            let (mut off, mut len) = (0u64, count as u64 + 1);
            loop {
                levels.push((off, len));
                off += len;
                if len <= SCAN_BLOCK {
                    break;
                }
                len = len.div_ceil(SCAN_BLOCK);
            }
            self.grow(Which::Scan, off * 4)?;
            let (scan, order) = (self.scratch(Which::Scan)?, self.scratch(Which::Order)?);
            let [bins, targets, weights, node_of, mask, splits] = ids.map(|id| self.buf(id));
            let (bins, targets, weights, node_of, mask, splits) = (bins?, targets?, weights?, node_of?, mask?, splits?);
            let mut params = [0u32; ROWS_PARAM_WORDS];
            params[2..12].copy_from_slice(&[
                p.rows,
                p.features,
                p.max_bins,
                p.rows.div_ceil(4),
                p.slot_begin + first,
                count,
                p.min_samples_leaf,
                p.mask_words,
                first,
                entries32,
            ]);
            let entry_groups = entries.div_ceil(WORKGROUP as u64);
            let mut encoder = self.encoder();
            encoder.clear_buffer(scan, 0, Some((count as u64 + 1) * 4));
            let k = &self.kernels;
            self.dispatch_groups(&mut encoder, &k.rows_count, &params, &[(3, weights), (4, node_of), (7, scan)], entry_groups);
            for (i, &(off, len)) in levels.iter().enumerate() {
                let mut q = params;
                q[12] = off as u32;
                q[13] = len as u32;
                q[14] = levels.get(i + 1).map_or(NONE, |l| l.0 as u32);
                self.dispatch_groups(&mut encoder, &k.rows_scan, &q, &[(7, scan)], len.div_ceil(SCAN_BLOCK));
            }
            for i in (0..levels.len() - 1).rev() {
                let mut q = params;
                q[12] = levels[i].0 as u32;
                q[13] = levels[i].1 as u32;
                q[14] = levels[i + 1].0 as u32;
                self.dispatch_groups(&mut encoder, &k.rows_add, &q, &[(7, scan)], levels[i].1.div_ceil(WORKGROUP as u64));
            }
            self.dispatch_groups(
                &mut encoder,
                &k.rows_scatter,
                &params,
                &[(3, weights), (4, node_of), (7, scan), (8, order)],
                entry_groups,
            );
            let bindings = [(1, bins), (2, targets), (3, weights), (5, mask), (6, splits), (7, scan), (8, order)];
            // Slots of few entries take one invocation each, the others a workgroup each.
            let small_groups = (count as u64).div_ceil(WORKGROUP as u64);
            self.dispatch_groups(&mut encoder, &k.rows_split_small, &params, &bindings, small_groups);
            self.dispatch_groups(&mut encoder, &k.rows_split, &params, &bindings, count as u64);
            self.submit(encoder)?;
            first += count;
        }
        Ok(())
    }

    /// Byte-exact copy of `len` bytes from `src[src_off..]` to `dst[dst_off..]` on the GPU,
    /// leaving the other bytes of the edge words of `dst` untouched.
    fn copy_bytes(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        src_off: u64,
        dst: &wgpu::Buffer,
        dst_off: u64,
        len: u64,
    ) {
        let first = dst_off / 4;
        let last = (dst_off + len - 1) / 4;
        let params = [0, 0, first as u32, dst_off as u32, len as u32, src_off as u32];
        self.dispatch(encoder, &self.kernels.copy_bytes, &params, &[src, dst], last - first + 1);
    }

    fn temp(&self, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wasi-gpu staging"),
            size: round4(size).max(4),
            usage,
            mapped_at_creation: false,
        })
    }

    fn wait(&self) -> Result<(), GpuError> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| match e {
            wgpu::PollError::Timeout => GpuError::KernelFailure(format!("waiting for the GPU failed: {e}")),
            _ => GpuError::DeviceLost(format!("waiting for the GPU failed: {e}")),
        })?;
        self.check()
    }
}

impl Backend for WgpuBackend {
    fn info(&self) -> DeviceInfo {
        self.info.clone()
    }

    fn alloc(&mut self, id: BufferId, size: u64) -> Result<(), GpuError> {
        self.check()?;
        if size > self.info.max_buffer_bytes {
            return Err(GpuError::LimitExceeded(format!(
                "a buffer of {size} bytes is larger than this wgpu device can bind ({} bytes); split the data",
                self.info.max_buffer_bytes
            )));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        // wgpu zero-initializes new buffers.
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wasi-gpu buffer"),
            size: round4(size).max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            buffer.destroy();
            return Err(GpuError::OutOfMemory(format!("allocating {size} bytes on the wgpu device failed: {e}")));
        }
        self.check()?;
        self.buffers.insert(id, GpuBuffer { buffer });
        Ok(())
    }

    fn free(&mut self, id: BufferId) {
        if let Some(b) = self.buffers.remove(&id) {
            b.buffer.destroy();
        }
    }

    fn write(&mut self, id: BufferId, offset: u64, data: &[u8]) -> Result<(), GpuError> {
        self.check()?;
        if data.is_empty() {
            return Ok(());
        }
        let dst = self.buf(id)?;
        if offset.is_multiple_of(4) && data.len().is_multiple_of(4) {
            self.queue.write_buffer(dst, offset, data);
            return self.check();
        }
        // Unaligned: stage the bytes in a word-padded buffer, then merge them on the GPU.
        let mut padded = data.to_vec();
        padded.resize(round4(data.len() as u64) as usize, 0);
        let staging = self.temp(padded.len() as u64, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST);
        self.queue.write_buffer(&staging, 0, &padded);
        let mut encoder = self.encoder();
        self.copy_bytes(&mut encoder, &staging, 0, dst, offset, data.len() as u64);
        self.submit(encoder)
    }

    fn read(&mut self, id: BufferId, offset: u64, len: u64) -> Result<Vec<u8>, GpuError> {
        self.check()?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let src = self.buf(id)?;
        let start = offset / 4 * 4;
        let end = round4(offset + len);
        let staging = self.temp(end - start, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        let mut encoder = self.encoder();
        encoder.copy_buffer_to_buffer(src, start, &staging, 0, end - start);
        self.submit(encoder)?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match rx.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::KernelFailure(format!("mapping the read-back buffer failed: {e}"))),
            Err(_) => return Err(GpuError::DeviceLost("the read-back buffer was never mapped".into())),
        }
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::KernelFailure(format!("reading the mapped buffer failed: {e}")))?;
        let skip = (offset - start) as usize;
        let out = view[skip..skip + len as usize].to_vec();
        drop(view);
        staging.unmap();
        staging.destroy();
        Ok(out)
    }

    fn copy(&mut self, src: BufferId, src_offset: u64, dst: BufferId, dst_offset: u64, len: u64) -> Result<(), GpuError> {
        self.check()?;
        if len == 0 {
            return Ok(());
        }
        let (s, d) = (self.buf(src)?, self.buf(dst)?);
        let mut encoder = self.encoder();
        let aligned = src_offset.is_multiple_of(4) && dst_offset.is_multiple_of(4) && len.is_multiple_of(4);
        // wgpu refuses a buffer-to-buffer copy within one buffer, even between disjoint ranges.
        if aligned && src != dst {
            encoder.copy_buffer_to_buffer(s, src_offset, d, dst_offset, len);
        } else {
            // Unaligned or within one buffer: copy the word-aligned source span aside, then
            // merge its bytes into the destination on the GPU.
            let start = src_offset / 4 * 4;
            let end = round4(src_offset + len);
            let staging = self.temp(end - start, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST);
            encoder.copy_buffer_to_buffer(s, start, &staging, 0, end - start);
            self.copy_bytes(&mut encoder, &staging, src_offset - start, d, dst_offset, len);
        }
        self.submit(encoder)
    }

    fn synchronize(&mut self) -> Result<(), GpuError> {
        self.wait()
    }

    fn bin_features(&mut self, p: &BinFeaturesParams, x: BufferId, edges: BufferId, bins: BufferId) -> Result<(), GpuError> {
        self.check()?;
        let words = p.rows.div_ceil(4);
        let total = p.features as u64 * words as u64;
        let mut encoder = self.encoder();
        let params = [0, 0, p.rows, p.features, p.max_bins, words];
        self.dispatch(&mut encoder, &self.kernels.bin_features, &params, &[self.buf(x)?, self.buf(edges)?, self.buf(bins)?], total);
        self.submit(encoder)
    }

    fn bootstrap(&mut self, p: &BootstrapParams, weights: BufferId, node_of: BufferId) -> Result<(), GpuError> {
        self.check()?;
        let (w, n) = (self.buf(weights)?, self.buf(node_of)?);
        let entries = p.tree_count as u64 * p.rows as u64;
        let params =
            [0, 0, p.seed as u32, (p.seed >> 32) as u32, p.rows, p.tree_begin, p.tree_count, p.draws];
        let mut encoder = self.encoder();
        encoder.clear_buffer(w, 0, Some(entries * 4));
        self.dispatch(&mut encoder, &self.kernels.bootstrap_draw, &params, &[w], p.draws as u64);
        self.dispatch(&mut encoder, &self.kernels.bootstrap_mark, &params, &[w, n], entries);
        self.submit(encoder)
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
        self.check()?;
        let bufs = [self.buf(bins)?, self.buf(targets)?, self.buf(weights)?, self.buf(node_of)?, self.buf(hist)?];
        let mut encoder = self.encoder();
        self.encode_build_histograms(&mut encoder, p, bufs);
        self.submit(encoder)
    }

    fn find_splits(&mut self, p: &SplitParams, hist: BufferId, feature_mask: BufferId, splits: BufferId) -> Result<(), GpuError> {
        self.check()?;
        let bufs = [self.buf(hist)?, self.buf(feature_mask)?, self.buf(splits)?];
        let mut encoder = self.encoder();
        self.encode_find_splits(&mut encoder, p, bufs);
        self.submit(encoder)
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
        self.check()?;
        if p.slot_count == 0 {
            return Ok(());
        }
        if let Some(hist_bytes) = self.dense_rows_path(p) {
            self.grow(Which::Hist, hist_bytes)?;
            let hist = self.scratch(Which::Hist)?;
            let h = [self.buf(bins)?, self.buf(targets)?, self.buf(weights)?, self.buf(node_of)?, hist];
            let mut encoder = self.encoder();
            self.encode_build_histograms(&mut encoder, &p.histogram(), h);
            self.encode_find_splits(&mut encoder, &p.split(), [hist, self.buf(feature_mask)?, self.buf(splits)?]);
            return self.submit(encoder);
        }
        self.find_splits_rows_grouped(p, [bins, targets, weights, node_of, feature_mask, splits])
    }

    fn apply_splits(
        &mut self,
        p: &ApplyParams,
        bins: BufferId,
        splits: BufferId,
        next_slot: BufferId,
        node_of: BufferId,
    ) -> Result<(), GpuError> {
        self.check()?;
        let params = [0, 0, p.rows, p.features, p.slot_count, p.rows.div_ceil(4)];
        let entries = p.tree_count as u64 * p.rows as u64;
        let mut encoder = self.encoder();
        let bufs = [self.buf(bins)?, self.buf(splits)?, self.buf(next_slot)?, self.buf(node_of)?];
        self.dispatch(&mut encoder, &self.kernels.apply_splits, &params, &bufs, entries);
        self.submit(encoder)
    }

    fn predict_forest(
        &mut self,
        p: &PredictParams,
        x: BufferId,
        nodes: BufferId,
        roots: BufferId,
        sums: BufferId,
    ) -> Result<(), GpuError> {
        self.check()?;
        let params = [0, 0, p.features, p.tree_count, p.node_count, p.max_depth];
        let mut encoder = self.encoder();
        let bufs = [self.buf(x)?, self.buf(nodes)?, self.buf(roots)?, self.buf(sums)?];
        self.dispatch(&mut encoder, &self.kernels.predict_forest, &params, &bufs, p.rows as u64);
        self.submit(encoder)
    }
}
