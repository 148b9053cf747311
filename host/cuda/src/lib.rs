//! CUDA backend of `wasi:gpu`.
//!
//! The kernels are the CUDA C twins of the Rust reference kernels
//! (`host/backend/src/kernels/NAME.cu`), compiled once per process by NVRTC for the
//! device's compute capability (`--fmad=false`, `--ftz=false`, precise division and
//! square root: no fast math), and launched asynchronously on one stream per backend.
//! cudarc loads `libcuda` and `libnvrtc` at run time; it panics when a library or a
//! symbol is missing, so [`probe`] first looks for the libraries itself and every call
//! into cudarc runs under `catch_unwind`: a machine without CUDA gets an error, never a
//! crash.

mod backend;
mod compile;
mod errors;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

pub use backend::CudaBackend;
use wasi_gpu_backend::Backend;

/// Runs `f`, turning a panic inside cudarc (missing library or symbol) into `Err`.
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(format!("{what}: the CUDA libraries failed ({msg})"))
        }
    }
}

/// Which shared library (by cudarc's own search list) is missing, if any.
fn find_library(lib: &str) -> Result<String, String> {
    let candidates = cudarc::get_lib_name_candidates(lib);
    for name in &candidates {
        // SAFETY: loading the CUDA driver / NVRTC runs their initialisers, which is
        // exactly what cudarc is about to do with the same names.
        if unsafe { libloading::Library::new(name) }.is_ok() {
            return Ok(name.clone());
        }
    }
    Err(format!(
        "lib{lib}.so not found (searched {}); install the NVIDIA driver / CUDA toolkit or add its directory to LD_LIBRARY_PATH",
        candidates.join(", ")
    ))
}

/// Checks that the CUDA driver library can be loaded; Err says which one is missing.
fn check_driver_library() -> Result<(), String> {
    find_library("cuda").map(|_| ()).map_err(|e| format!("no CUDA driver: {e}"))
}

/// Checks that NVRTC can be loaded; the kernels are compiled at run time.
fn check_nvrtc_library() -> Result<(), String> {
    find_library("nvrtc").map(|_| ()).map_err(|e| format!("no NVRTC (the CUDA run-time compiler): {e}"))
}

/// Finds out, without panicking, whether a CUDA driver, a device and NVRTC are usable:
/// `Ok("NVIDIA H100 80GB HBM3, sm_90, CUDA driver 13.0")` or `Err(why not)`.
pub fn probe() -> Result<String, String> {
    probe_all().map(|mut devices| devices.swap_remove(0))
}

/// Like [`probe`], for every CUDA device of the machine, in ordinal order (what
/// `run --device N` opens).
pub fn probe_all() -> Result<Vec<String>, String> {
    check_driver_library()?;
    let count = guarded("counting the CUDA devices", backend::DeviceFacts::count)?;
    let mut out = Vec::with_capacity(count);
    for ordinal in 0..count {
        let facts = guarded("probing the CUDA device", || backend::DeviceFacts::query(ordinal))?;
        out.push(format!("{}, sm_{}{}, CUDA driver {}", facts.name, facts.major, facts.minor, facts.driver_version()));
    }
    check_nvrtc_library()?;
    Ok(out)
}

/// Opens device 0, compiles the kernels with NVRTC (once per process) and returns the
/// backend. Err says what is missing or what failed.
pub fn open() -> Result<Box<dyn Backend>, String> {
    open_device(0)
}

/// Like [`open`], for device `ordinal` (0-based, as `probe_all` lists them; the driver's
/// numbering, which `CUDA_VISIBLE_DEVICES` narrows).
pub fn open_device(ordinal: usize) -> Result<Box<dyn Backend>, String> {
    Ok(Box::new(CudaBackend::open(ordinal)?))
}

/// How long NVRTC took to compile the kernels in this process, once it has.
pub fn kernel_compile_time() -> Option<Duration> {
    compile::compile_time()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where no driver is installed (CI, this build machine), probe and open must
    /// report it as an error, not panic. Where one is, they must succeed together.
    #[test]
    fn probe_and_open_agree_without_panicking() {
        let probed = std::panic::catch_unwind(probe).expect("probe must not panic");
        let opened = std::panic::catch_unwind(open).expect("open must not panic");
        match probed {
            Ok(desc) => {
                assert!(desc.contains("sm_"), "description lacks the architecture: {desc}");
                let backend = opened.expect("probe succeeded, so open must too");
                assert!(backend.info().hardware);
            }
            Err(why) => {
                assert!(!why.is_empty());
                let err = opened.err().expect("probe failed, so open must fail too");
                assert!(!err.is_empty());
            }
        }
    }

    /// On a machine without libcuda the message must name the driver.
    #[test]
    fn missing_driver_is_named() {
        if check_driver_library().is_err() {
            let err = probe().unwrap_err();
            assert!(err.contains("no CUDA driver"), "{err}");
        }
    }
}
