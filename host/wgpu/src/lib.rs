//! WebGPU backend of `wasi:gpu` (being implemented).

use wasi_gpu_backend::Backend;

/// What the probe saw of one adapter, for `wasmtime-gpu-host devices`.
#[derive(Debug, Clone)]
pub struct AdapterReport {
    pub name: String,
    /// "Vulkan", "Metal", ...
    pub api: String,
    /// "DiscreteGpu", "Cpu", ...
    pub device_type: String,
    pub hardware: bool,
    /// Why this adapter cannot run the kernels, if it cannot.
    pub unusable: Option<String>,
}

/// Every adapter wgpu can see.
pub fn list_adapters() -> Vec<AdapterReport> {
    Vec::new()
}

/// Opens the best adapter: hardware first; software ones only if `allow_software`.
pub fn open(allow_software: bool) -> Result<Box<dyn Backend>, String> {
    let _ = allow_software;
    Err("the wgpu backend is not built yet".into())
}
