//! The compute pipelines: every WGSL entry point, compiled once per device.

use std::cell::OnceCell;

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
pub(crate) struct Kernel {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// Every pipeline of the backend, compiled once per device.
pub(crate) struct Kernels {
    pub(crate) bin_features: Kernel,
    pub(crate) bootstrap_draw: Kernel,
    pub(crate) bootstrap_mark: Kernel,
    pub(crate) build_histograms_clear: Kernel,
    pub(crate) build_histograms: Kernel,
    pub(crate) find_splits: Kernel,
    pub(crate) apply_splits: Kernel,
    pub(crate) predict_forest: Kernel,
    pub(crate) predict_walk: Kernel,
    pub(crate) copy_bytes: Kernel,
    pub(crate) rows_count: Kernel,
    pub(crate) rows_scan: Kernel,
    pub(crate) rows_add: Kernel,
    pub(crate) rows_scatter: Kernel,
    pub(crate) rows_split: Kernel,
    pub(crate) rows_split_small: Kernel,
    pub(crate) rows_largest: Kernel,
    pub(crate) rows_merge: Kernel,
    /// find-splits' `merging` variant, compiled when first needed (`merging`).
    merging: OnceCell<Kernel>,
}

fn compile(device: &wgpu::Device, label: &str, source: &str, entry: &str) -> Kernel {
    compile_with(device, label, source, entry, &[])
}

/// [`compile`] with values for the shader's pipeline-overridable constants.
fn compile_with(device: &wgpu::Device, label: &str, source: &str, entry: &str, constants: &[(&str, f64)]) -> Kernel {
    let module =
        device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(label), source: wgpu::ShaderSource::Wgsl(source.into()) });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: None,
        module: &module,
        entry_point: Some(entry),
        compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
        cache: None,
    });
    let layout = pipeline.get_bind_group_layout(0);
    Kernel { pipeline, layout }
}

/// The source of `find-splits` (with the shared score functions).
fn find_splits_src() -> String {
    format!("{SPLIT_SCORE_WGSL}\n{}", include_str!("../../backend/src/kernels/find_splits.wgsl"))
}

/// The source of `find-splits-rows` (with the shared score functions).
fn rows_src() -> String {
    format!("{SPLIT_SCORE_WGSL}\n{FIND_SPLITS_ROWS_WGSL}")
}

impl Kernels {
    /// Compiles every kernel (but find-splits' merging variant); the error is wgpu's
    /// validation message.
    pub(crate) fn compile(device: &wgpu::Device) -> Result<Kernels, String> {
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let k = |label: &str, src: &str, entry: &str| compile(device, label, src, entry);
        let (find_splits_src, rows_src) = (find_splits_src(), rows_src());
        let bin_features_src = format!("{FLOAT_ORDER_WGSL}\n{}", include_str!("../../backend/src/kernels/bin_features.wgsl"));
        let predict_src = format!("{FLOAT_ORDER_WGSL}\n{}", include_str!("../../backend/src/kernels/predict_forest.wgsl"));
        let bootstrap_src = include_str!("../../backend/src/kernels/bootstrap.wgsl");
        let histograms_src = include_str!("../../backend/src/kernels/build_histograms.wgsl");
        let kernels = Kernels {
            bin_features: k("bin_features", &bin_features_src, "main"),
            bootstrap_draw: k("bootstrap.draw", bootstrap_src, "draw"),
            bootstrap_mark: k("bootstrap.mark", bootstrap_src, "mark"),
            build_histograms_clear: k("build_histograms.clear", histograms_src, "clear_cells"),
            build_histograms: k("build_histograms", histograms_src, "main"),
            find_splits: k("find_splits", &find_splits_src, "main"),
            apply_splits: k("apply_splits", include_str!("../../backend/src/kernels/apply_splits.wgsl"), "main"),
            predict_forest: k("predict_forest", &predict_src, "main"),
            predict_walk: k("predict_forest.walk", &predict_src, "walk_part"),
            copy_bytes: k("copy_bytes", COPY_BYTES_WGSL, "main"),
            rows_count: k("find_splits_rows.count", &rows_src, "count_entries"),
            rows_scan: k("find_splits_rows.scan", &rows_src, "scan_blocks"),
            rows_add: k("find_splits_rows.add", &rows_src, "add_offsets"),
            rows_scatter: k("find_splits_rows.scatter", &rows_src, "scatter_entries"),
            rows_split: k("find_splits_rows.split", &rows_src, "split_slots"),
            rows_split_small: k("find_splits_rows.split_small", &rows_src, "split_small"),
            rows_largest: k("find_splits_rows.largest", &rows_src, "largest_slot"),
            rows_merge: k("find_splits_rows.merge", &rows_src, "merge_partials"),
            merging: OnceCell::new(),
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(format!("compiling the WGSL kernels failed: {e}"));
        }
        Ok(kernels)
    }

    /// The variant of `find-splits` that merges into the records of a call's earlier
    /// launches over lower features (`override merging` in split_score.wgsl), compiled on
    /// first use: only tables wider than one launch's block of features need it (a compile
    /// error, which the tests rule out, would reach the device's error sink like any wgpu
    /// error).
    pub(crate) fn find_splits_merging(&self, device: &wgpu::Device) -> &Kernel {
        self.merging.get_or_init(|| compile_with(device, "find_splits.merging", &find_splits_src(), "main", &[("merging", 1.0)]))
    }
}
