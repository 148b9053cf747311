//! The wgpu device behind the [`Backend`] trait: buffers, dispatch helpers and the kernel
//! entry points (`find-splits-rows` is in `rows.rs`, `predict-forest` in `predict.rs`,
//! transfers in `transfer.rs`).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasi_gpu_backend::{
    ApplyParams, Backend, BackendKind, BinFeaturesParams, BootstrapParams, BufferId, CallBudget, DeviceInfo, GpuError, HistogramParams,
    PredictParams, PredictSpan, RowSplitParams, SplitParams,
};
use wgpu::util::DeviceExt;

use crate::adapter::{ErrorSink, host_memory, is_hardware, take_error, watch_errors};
use crate::pipelines::{Kernel, Kernels};
use crate::scratch::Scratch;
use crate::{WORKGROUP, round4};

/// Largest buffer whose byte offsets still fit the u32 arithmetic of the shaders.
const U32_BYTE_LIMIT: u64 = 0xffff_fffc;

/// `wasi:gpu` on one wgpu device; obtained through [`crate::open`] as a `Box<dyn Backend>`.
pub(crate) struct WgpuBackend {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: DeviceInfo,
    pub(crate) kernels: Kernels,
    /// The guest's buffers (rounded up to whole words, at least one word).
    buffers: HashMap<BufferId, wgpu::Buffer>,
    errors: Arc<Mutex<ErrorSink>>,
    /// Most workgroups along one grid dimension.
    max_dim: u32,
    /// The backend's own buffers kept between calls (`scratch.rs`).
    pub(crate) scratch: Scratch,
    /// What the current kernel call may use: set by [`Backend::begin_call`].
    pub(crate) budget: CallBudget,
    /// Most walk steps of one row in one `predict-forest` launch (`predict.rs`).
    pub(crate) predict_row_steps: u64,
    /// Most loop passes one invocation may make in one launch, on every adapter
    /// (`loops.rs`); the tests lower it.
    pub(crate) loop_budget: u64,
    /// Bytes of transient staging submitted since the GPU was last waited for; they are
    /// freed only once the GPU is done with them (`transfer.rs` bounds this).
    pub(crate) staged: Cell<u64>,
}

impl WgpuBackend {
    /// Creates the device with every limit the adapter offers and compiles all kernels.
    pub(crate) fn new(adapter: &wgpu::Adapter, grid_limit: Option<u32>) -> Result<Self, String> {
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
        let errors = watch_errors(&device);
        let kernels = Kernels::compile(&device)?;

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
            scratch: Scratch::default(),
            budget: CallBudget::default(),
            staged: Cell::new(0),
            predict_row_steps: crate::predict::row_steps(hardware),
            loop_budget: crate::loops::LOOP_BUDGET,
        })
    }

    /// Reports (and clears, unless the device is lost) the first error wgpu recorded.
    pub(crate) fn check(&self) -> Result<(), GpuError> {
        take_error(&self.errors)
    }

    pub(crate) fn buf(&self, id: BufferId) -> Result<&wgpu::Buffer, GpuError> {
        self.buffers.get(&id).ok_or_else(|| GpuError::invalid(format!("buffer {id} does not exist on the wgpu device")))
    }

    pub(crate) fn encoder(&self) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wasi-gpu") })
    }

    pub(crate) fn submit(&self, encoder: wgpu::CommandEncoder) -> Result<(), GpuError> {
        self.queue.submit([encoder.finish()]);
        self.check()
    }

    /// Waits until the GPU has finished everything submitted (which also frees the
    /// transient buffers that work used).
    pub(crate) fn wait(&self) -> Result<(), GpuError> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| match e {
            wgpu::PollError::Timeout => GpuError::KernelFailure(format!("waiting for the GPU failed: {e}")),
            _ => GpuError::DeviceLost(format!("waiting for the GPU failed: {e}")),
        })?;
        self.staged.set(0);
        self.check()
    }

    /// Creates a device buffer of `size` bytes (rounded up to whole words), reporting an
    /// allocation failure as `OutOfMemory` naming `what`.
    pub(crate) fn create(&self, what: &str, size: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer, GpuError> {
        let size = round4(size).max(4);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        // wgpu zero-initializes new buffers.
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor { label: Some(what), size, usage, mapped_at_creation: false });
        if let Some(e) = pollster::block_on(scope.pop()) {
            buffer.destroy();
            return Err(GpuError::OutOfMemory(format!("allocating {size} bytes ({what}) on the wgpu device failed: {e}")));
        }
        self.check()?;
        Ok(buffer)
    }

    /// Records dispatches of `kernel` over `total` invocations, split into as many
    /// dispatches as the device's grid limits need. `params[0..2]` are overwritten with
    /// each dispatch's (base, count); buffers bind at 1.. in order.
    pub(crate) fn dispatch(
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
    pub(crate) fn dispatch_at(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        params: &[u32],
        bindings: &[(u32, &wgpu::Buffer)],
        total: u64,
    ) {
        self.dispatch_items(encoder, kernel, params, bindings, total, WORKGROUP as u64);
    }

    /// Records `groups` workgroups of `kernel` (kernels indexed by workgroup); like
    /// [`Self::dispatch_at`] with `params[0..2]` = each dispatch's (first workgroup, workgroups).
    pub(crate) fn dispatch_groups(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        params: &[u32],
        bindings: &[(u32, &wgpu::Buffer)],
        groups: u64,
    ) {
        self.dispatch_items(encoder, kernel, params, bindings, groups, 1);
    }

    /// Records `total` items of `kernel`, `per_group` items per workgroup, over a 2-D grid
    /// in as many dispatches as the grid limits need (at most 2^24 workgroups each, so a
    /// few dispatches cover any u32 count).
    fn dispatch_items(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        params: &[u32],
        bindings: &[(u32, &wgpu::Buffer)],
        total: u64,
        per_group: u64,
    ) {
        let max_dim = self.max_dim as u64;
        let per_dispatch = (max_dim * max_dim).min(1 << 24) * per_group;
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
            let group =
                self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &kernel.layout, entries: &entries });
            let groups = count.div_ceil(per_group);
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

    /// Runs `build-histograms` (one invocation per cell writing the empty cell, then one
    /// per entry and feature). `bufs`: bins, targets, weights, node-of, hist.
    pub(crate) fn build_histograms_all(&self, p: &HistogramParams, bufs: [&wgpu::Buffer; 5]) -> Result<(), GpuError> {
        // Device validated the histogram inside one buffer, so the cell count fits u32 and
        // bounds the features (no slots: no work, whatever `features` says).
        let cells = p.slot_count as u64 * p.features as u64 * p.max_bins as u64;
        if cells == 0 {
            return Ok(());
        }
        self.histogram_block(p, bufs, (0, p.features), (0, p.features))
    }

    /// Runs `build-histograms` of features `block` (j_begin, j_end) into a histogram laid
    /// out as `layout` (the feature of column 0, columns per slot; (0, features) for the
    /// kernel's own): clears its cells, then adds the entries in launches of as many
    /// features as both the loop budget and [`Self::predict_steps`] (entry, feature)
    /// visits allow, waiting for the GPU and checking the cancel token between them.
    pub(crate) fn histogram_block(
        &self,
        p: &HistogramParams,
        bufs: [&wgpu::Buffer; 5],
        block: (u32, u32),
        layout: (u32, u32),
    ) -> Result<(), GpuError> {
        const KERNEL: &str = "build-histograms";
        let (hist_j0, cols) = layout;
        let cells = p.slot_count as u64 * cols as u64 * p.max_bins as u64;
        let entries = p.tree_count as u64 * p.rows as u64;
        let mut params = [0, 0, p.rows, p.features, p.max_bins, p.rows.div_ceil(4), p.slot_begin, p.slot_count, 0, 0, hist_j0, cols];
        let mut encoder = self.encoder();
        self.dispatch_at(&mut encoder, &self.kernels.build_histograms_clear, &params, &[(5, bufs[4])], cells);
        if entries == 0 {
            return self.submit(encoder);
        }
        let visits = (self.predict_steps() / entries).clamp(1, u32::MAX as u64) as u32;
        let per = crate::loops::histogram_features(self.loop_budget).min(visits);
        for (i, (j0, j1)) in crate::loops::blocks(block.0, block.1, per).enumerate() {
            if i > 0 {
                self.submit(std::mem::replace(&mut encoder, self.encoder()))?;
                self.wait()?;
                self.budget.cancel.check(KERNEL)?;
            }
            (params[8], params[9]) = (j0, j1);
            self.dispatch(&mut encoder, &self.kernels.build_histograms, &params, &bufs, entries);
        }
        self.submit(encoder)
    }

    /// Records `find-splits` (one invocation per slot, in ascending blocks of features
    /// merged into the records as the loop budget needs) into `encoder`.
    /// `bufs`: hist, feature-mask, splits.
    pub(crate) fn encode_find_splits(&self, encoder: &mut wgpu::CommandEncoder, p: &SplitParams, bufs: [&wgpu::Buffer; 3]) {
        self.encode_find_splits_block(encoder, p, bufs, 0, (0, p.features), (0, p.features));
    }

    /// Records `find-splits` of features `block` on a histogram laid out as `layout` (the
    /// feature of column 0, columns per slot), slot k's mask row being `mask_slot + k`; the
    /// launches merge into the records, except one starting at feature 0 (which needs
    /// feature 0's column for the slots' totals).
    pub(crate) fn encode_find_splits_block(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        p: &SplitParams,
        bufs: [&wgpu::Buffer; 3],
        mask_slot: u32,
        block: (u32, u32),
        layout: (u32, u32),
    ) {
        // No slots, no work: `features` is then bounded by no buffer, so the feature blocks
        // must not even be counted (work scales with the buffers passed).
        if p.slot_count == 0 {
            return;
        }
        let (hist_j0, cols) = layout;
        let per = crate::loops::find_splits_features(self.loop_budget, p.max_bins);
        for (j0, j1) in crate::loops::blocks(block.0, block.1, per) {
            let kernel = if j0 > 0 { self.kernels.find_splits_merging(&self.device) } else { &self.kernels.find_splits };
            let params = [0, 0, p.features, p.max_bins, p.slot_begin, p.min_samples_leaf, p.mask_words, mask_slot, j0, j1, hist_j0, cols];
            self.dispatch(encoder, kernel, &params, &bufs, p.slot_count as u64);
        }
    }
}

impl Backend for WgpuBackend {
    fn info(&self) -> DeviceInfo {
        self.info.clone()
    }

    fn begin_call(&mut self, budget: &CallBudget) {
        self.budget = budget.clone();
        // Device keeps scratch within the limit; should the budget ever be below what is
        // held, the scratch gives way at once.
        if self.scratch.held() > budget.scratch_bytes {
            self.release_scratch();
        }
    }

    fn scratch_bytes(&self) -> u64 {
        self.scratch.held()
    }

    fn release_scratch(&mut self) {
        self.drop_scratch();
    }

    fn predict_steps_per_launch(&self) -> u64 {
        self.predict_steps()
    }

    fn alloc(&mut self, id: BufferId, size: u64) -> Result<(), GpuError> {
        self.check()?;
        if size > self.info.max_buffer_bytes {
            return Err(GpuError::LimitExceeded(format!(
                "a buffer of {size} bytes is larger than this wgpu device can bind ({} bytes); split the data",
                self.info.max_buffer_bytes
            )));
        }
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let buffer = self.create("wasi-gpu buffer", size, usage)?;
        self.buffers.insert(id, buffer);
        Ok(())
    }

    fn free(&mut self, id: BufferId) {
        if let Some(b) = self.buffers.remove(&id) {
            b.destroy();
        }
    }

    fn write(&mut self, id: BufferId, offset: u64, data: &[u8]) -> Result<(), GpuError> {
        self.check()?;
        self.write_bytes(id, offset, data)
    }

    fn read(&mut self, id: BufferId, offset: u64, len: u64) -> Result<Vec<u8>, GpuError> {
        self.check()?;
        self.read_bytes(id, offset, len)
    }

    fn copy(&mut self, src: BufferId, src_offset: u64, dst: BufferId, dst_offset: u64, len: u64) -> Result<(), GpuError> {
        self.check()?;
        self.copy_range(src, src_offset, dst, dst_offset, len)
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
        // One draw invocation per draw and block of trees: draws * blocks <= rows * trees < 2^32.
        let chunk = crate::loops::bootstrap_trees(self.loop_budget).clamp(1, p.tree_count.max(1));
        let draw_items = p.draws as u64 * p.tree_count.div_ceil(chunk) as u64;
        let params = [0, 0, p.seed as u32, (p.seed >> 32) as u32, p.rows, p.tree_begin, p.tree_count, p.draws, chunk];
        let mut encoder = self.encoder();
        encoder.clear_buffer(w, 0, Some(entries * 4));
        self.dispatch(&mut encoder, &self.kernels.bootstrap_draw, &params, &[w], draw_items);
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
        self.build_histograms_all(p, bufs)
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
        self.split_rows(p, [bins, targets, weights, node_of, feature_mask, splits])
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
        span: &PredictSpan,
        x: BufferId,
        nodes: BufferId,
        roots: BufferId,
        sums: BufferId,
    ) -> Result<(), GpuError> {
        self.check()?;
        self.predict_span(p, span, [x, nodes, roots, sums])
    }
}
