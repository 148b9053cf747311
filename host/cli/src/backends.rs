//! Backend selection for `run --backend` and the report of `devices`.

use std::fmt::Write as _;

use wasi_gpu_backend::{Backend, CpuBackend};

use crate::cli::BackendChoice;
use crate::profile::human_bytes;

/// Opens the backend the user asked for. `auto` falls back CUDA → hardware wgpu → CPU
/// and returns, beside the backend, why each skipped backend was skipped; an explicit
/// `cuda` or `wgpu` that cannot open is an error.
pub fn open_backend(choice: BackendChoice) -> Result<(Box<dyn Backend>, Vec<String>), String> {
    match choice {
        BackendChoice::Cpu => Ok((Box::new(CpuBackend::new()), Vec::new())),
        BackendChoice::Cuda => {
            guard("cuda", wasi_gpu_cuda::open).map(|b| (b, Vec::new())).map_err(|e| format!("the CUDA backend is unavailable: {e}"))
        }
        BackendChoice::Wgpu => guard("wgpu", || wasi_gpu_wgpu::open(true))
            .map(|b| (b, Vec::new()))
            .map_err(|e| format!("the wgpu backend is unavailable: {e}")),
        BackendChoice::Auto => {
            let mut skipped = Vec::new();
            match guard("cuda", wasi_gpu_cuda::open) {
                Ok(b) => return Ok((b, skipped)),
                Err(e) => skipped.push(format!("cuda: {e}")),
            }
            match guard("wgpu", || wasi_gpu_wgpu::open(false)) {
                Ok(b) => return Ok((b, skipped)),
                Err(e) => skipped.push(format!("wgpu (hardware adapters only): {e}")),
            }
            Ok((Box::new(CpuBackend::new()), skipped))
        }
    }
}

/// Calls a backend's opener, turning a panic inside it into an error message.
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    crate::catch_panic(f).unwrap_or_else(|p| Err(format!("the {what} backend panicked: {p}")))
}

/// The text `wasmtime-gpu-host devices` prints: each backend, what its probe found,
/// and why it is unavailable where it is.
pub fn devices_report() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cuda:");
    match guard("cuda", wasi_gpu_cuda::probe) {
        Ok(desc) => {
            let _ = writeln!(out, "  available: {desc}");
        }
        Err(why) => {
            let _ = writeln!(out, "  unavailable: {why}");
        }
    }
    let _ = writeln!(out, "wgpu:");
    match crate::catch_panic(wasi_gpu_wgpu::list_adapters) {
        Ok(adapters) if adapters.is_empty() => {
            let _ = writeln!(out, "  unavailable: no adapters found (no Vulkan driver, or the wgpu backend is not built)");
        }
        Ok(adapters) => {
            for a in adapters {
                let kind = if a.hardware { "hardware" } else { "software; only with --backend wgpu" };
                let _ = write!(out, "  - {} ({}, {}, {kind})", a.name, a.api, a.device_type);
                match a.unusable {
                    Some(why) => {
                        let _ = writeln!(out, ": unusable: {why}");
                    }
                    None => {
                        let _ = writeln!(out, ": usable");
                    }
                }
            }
        }
        Err(p) => {
            let _ = writeln!(out, "  unavailable: listing adapters panicked: {p}");
        }
    }
    let cpu = CpuBackend::new().info();
    let _ = writeln!(out, "cpu:");
    let _ = writeln!(
        out,
        "  available: {} [{}], memory {}, largest buffer {}",
        cpu.name,
        cpu.driver,
        human_bytes(cpu.memory_bytes),
        human_bytes(cpu.max_buffer_bytes)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_auto_always_open() {
        let (cpu, skipped) = open_backend(BackendChoice::Cpu).unwrap();
        assert_eq!(cpu.info().backend, wasi_gpu_backend::BackendKind::Cpu);
        assert!(skipped.is_empty());
        let (auto, skipped) = open_backend(BackendChoice::Auto).unwrap();
        // Whatever auto picked, every backend it skipped says why.
        assert_eq!(
            skipped.len(),
            match auto.info().backend {
                wasi_gpu_backend::BackendKind::Cuda => 0,
                wasi_gpu_backend::BackendKind::Wgpu => 1,
                wasi_gpu_backend::BackendKind::Cpu => 2,
            }
        );
    }

    #[test]
    fn report_names_every_backend() {
        let r = devices_report();
        for section in ["cuda:", "wgpu:", "cpu:"] {
            assert!(r.contains(section), "{r}");
        }
        assert!(r.contains("CPU reference"), "{r}");
    }
}
