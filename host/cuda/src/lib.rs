//! CUDA backend of `wasi:gpu` (being implemented).

use wasi_gpu_backend::Backend;

/// Finds out, without panicking, whether a CUDA driver and device are usable:
/// `Ok(description)` or `Err(why not)`.
pub fn probe() -> Result<String, String> {
    Err("no CUDA driver (the CUDA backend is not built yet)".into())
}

/// Opens device 0 and compiles the kernels with NVRTC.
pub fn open() -> Result<Box<dyn Backend>, String> {
    Err(probe().err().unwrap_or_default())
}
