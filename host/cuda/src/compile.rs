//! NVRTC compilation of the CUDA C kernels, once per process and architecture.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use cudarc::nvrtc::{CompileError, CompileOptions};

/// The CUDA C kernels, one file per kernel beside its Rust reference and WGSL twin.
pub(crate) const SOURCES: [(&str, &str); 7] = [
    ("bin_features.cu", include_str!("../../backend/src/kernels/bin_features.cu")),
    ("bootstrap.cu", include_str!("../../backend/src/kernels/bootstrap.cu")),
    ("build_histograms.cu", include_str!("../../backend/src/kernels/build_histograms.cu")),
    ("find_splits.cu", include_str!("../../backend/src/kernels/find_splits.cu")),
    // Uses find_splits.cu's 128-bit score helpers, so it must come after it.
    ("find_splits_rows.cu", include_str!("../../backend/src/kernels/find_splits_rows.cu")),
    ("apply_splits.cu", include_str!("../../backend/src/kernels/apply_splits.cu")),
    ("predict_forest.cu", include_str!("../../backend/src/kernels/predict_forest.cu")),
];

/// Every `extern "C" __global__` entry point the backend loads.
pub(crate) const ENTRY_POINTS: [&str; 15] = [
    "bin_features",
    "bootstrap_draws",
    "bootstrap_roots",
    "build_histograms",
    "find_splits",
    "apply_splits",
    "predict_forest",
    "fsr_count",
    "fsr_scan_tiles",
    "fsr_scan_sums",
    "fsr_scan_add",
    "fsr_scatter",
    "find_splits_rows",
    "build_histograms_shared",
    "build_histograms_init",
];

/// PTX per virtual architecture ("compute_90"), or the compile error.
type Cache = Mutex<HashMap<String, Result<String, String>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

static COMPILE_TIME: OnceLock<Duration> = OnceLock::new();

/// Time the first successful compilation in this process took.
pub(crate) fn compile_time() -> Option<Duration> {
    COMPILE_TIME.get().copied()
}

/// The one translation unit: every kernel file concatenated in [`SOURCES`] order.
fn program_source() -> String {
    let mut src = String::new();
    for (name, text) in SOURCES {
        src.push_str(&format!("// ---- {name} ----\n#line 1 \"{name}\"\n"));
        src.push_str(text);
        src.push('\n');
    }
    src
}

/// Returns PTX for compute capability `major.minor`, compiling on first use.
pub(crate) fn ptx_for(major: i32, minor: i32) -> Result<String, String> {
    let arch = format!("compute_{major}{minor}");
    let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = cache.get(&arch) {
        return r.clone();
    }
    let started = Instant::now();
    let result = crate::guarded("compiling the kernels with NVRTC", || compile(&arch));
    if result.is_ok() {
        let _ = COMPILE_TIME.set(started.elapsed());
    }
    cache.insert(arch, result.clone());
    result
}

fn compile(arch: &str) -> Result<String, String> {
    let opts = CompileOptions {
        ftz: Some(false),
        prec_sqrt: Some(true),
        prec_div: Some(true),
        fmad: Some(false),
        use_fast_math: None,
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        name: Some("wasi_gpu_kernels.cu".into()),
        ..Default::default()
    };
    match cudarc::nvrtc::compile_ptx_with_opts(program_source(), opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(CompileError::CompileError { nvrtc, options, log }) => {
            Err(format!("NVRTC failed to compile the kernels for {arch} ({nvrtc:?}, options {options:?}):\n{}", log.to_string_lossy()))
        }
        Err(e) => Err(format!("NVRTC failed for {arch}: {e}")),
    }
}
