//! Choosing and opening a wgpu adapter, and turning wgpu's asynchronous errors into
//! [`GpuError`]s.

use std::sync::{Arc, Mutex};

use wasi_gpu_backend::{Backend, GpuError};

use crate::WORKGROUP;
use crate::backend::WgpuBackend;

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

/// Storage buffers the widest kernel (find-splits-rows' `split_slots`) binds.
const STORAGE_BINDINGS: u32 = 7;

fn device_type_name(t: wgpu::DeviceType) -> String {
    format!("{t:?}")
}

pub(crate) fn is_hardware(t: wgpu::DeviceType) -> bool {
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
    Ok(Box::new(open_backend(allow_software, None)?))
}

/// Like [`open`], but never dispatches more than `max_workgroups_per_dimension` (at least 1)
/// workgroups along a grid dimension, so that small inputs already take the multi-dispatch
/// path that only huge inputs take otherwise. It exists for the conformance tests.
pub fn open_with_grid_limit(allow_software: bool, max_workgroups_per_dimension: u32) -> Result<Box<dyn Backend>, String> {
    Ok(Box::new(open_backend(allow_software, Some(max_workgroups_per_dimension.max(1)))?))
}

/// [`open`] without the box (the crate's own tests use the backend's internals).
pub(crate) fn open_backend(allow_software: bool, grid_limit: Option<u32>) -> Result<WgpuBackend, String> {
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
            Ok(backend) => return Ok(backend),
            Err(e) => why.push(format!("{}: {e}", info.name)),
        }
    }
    Err(format!("no usable wgpu adapter: {}", why.join("; ")))
}

/// Opens adapter `index` of [`list_adapters`] (what `wasmtime-gpu-host devices` lists under
/// `wgpu:`, in that order), hardware or software; an unusable adapter is an error saying why.
pub fn open_adapter(index: usize) -> Result<Box<dyn Backend>, String> {
    let instance = instance();
    let all = adapters(&instance);
    let Some(adapter) = all.get(index) else {
        return Err(format!("there is no wgpu adapter {index}: wgpu sees {} (wasmtime-gpu-host devices lists them)", all.len()));
    };
    let info = adapter.get_info();
    if let Some(reason) = unusable_reason(adapter) {
        return Err(format!("wgpu adapter {index} ({}) is unusable: {reason}", info.name));
    }
    Ok(Box::new(WgpuBackend::new(adapter, None).map_err(|e| format!("wgpu adapter {index} ({}): {e}", info.name))?))
}

/// The best adapter for the crate's own tests, software allowed; None (the test skips)
/// when none opens, unless `WASI_GPU_REQUIRE` names `wgpu`.
#[cfg(test)]
pub(crate) fn test_backend() -> Option<WgpuBackend> {
    match open_backend(true, None) {
        Ok(b) => Some(b),
        Err(e) => {
            let required = std::env::var("WASI_GPU_REQUIRE").is_ok_and(|v| v.split(',').any(|s| s.trim() == "wgpu"));
            assert!(!required, "wgpu is required by WASI_GPU_REQUIRE but could not open: {e}");
            eprintln!("wgpu: skipped: {e}");
            None
        }
    }
}

/// Bytes of host memory, from /proc/meminfo.
pub(crate) fn host_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// The first error wgpu reported asynchronously; taken by the next operation.
#[derive(Default)]
pub(crate) struct ErrorSink {
    lost: Option<String>,
    error: Option<GpuError>,
}

/// Routes `device`'s uncaptured errors and its loss into a sink, instead of wgpu's default
/// handler (which panics).
pub(crate) fn watch_errors(device: &wgpu::Device) -> Arc<Mutex<ErrorSink>> {
    let errors = Arc::new(Mutex::new(ErrorSink::default()));
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
    errors
}

/// Reports (and clears, unless the device is lost) the first error wgpu recorded.
pub(crate) fn take_error(errors: &Mutex<ErrorSink>) -> Result<(), GpuError> {
    let mut s = errors.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(lost) = &s.lost {
        return Err(GpuError::DeviceLost(format!("the wgpu device was lost ({lost}); open a new device")));
    }
    match s.error.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
