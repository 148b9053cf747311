//! Backend selection for `run --backend` and the report of `devices`.

use std::fmt::Write as _;

use wasi_gpu_backend::{Backend, CpuBackend};

use crate::cli::BackendChoice;
use crate::profile::human_bytes;

/// Opens the backend the user asked for, device `device` of it where given (numbered as
/// `devices` lists them). `auto` falls back CUDA → hardware wgpu → CPU and returns, beside
/// the backend, why each skipped backend was skipped; an explicit `cuda` or `wgpu` that
/// cannot open is an error.
pub fn open_backend(choice: BackendChoice, device: Option<usize>) -> Result<(Box<dyn Backend>, Vec<String>), String> {
    let cpu = || match device {
        None | Some(0) => Ok(Box::new(CpuBackend::new()) as Box<dyn Backend>),
        Some(n) => Err(format!("the CPU backend has one device, 0, not {n}")),
    };
    let cuda = || match device {
        None => wasi_gpu_cuda::open(),
        Some(n) => wasi_gpu_cuda::open_device(n),
    };
    match choice {
        BackendChoice::Cpu => Ok((cpu()?, Vec::new())),
        BackendChoice::Cuda => guard("cuda", cuda).map(|b| (b, Vec::new())).map_err(|e| format!("the CUDA backend is unavailable: {e}")),
        BackendChoice::Wgpu => {
            let wgpu = || match device {
                None => wasi_gpu_wgpu::open(true),
                Some(n) => wasi_gpu_wgpu::open_adapter(n),
            };
            guard("wgpu", wgpu).map(|b| (b, Vec::new())).map_err(|e| format!("the wgpu backend is unavailable: {e}"))
        }
        // Device numbers differ between backends (CUDA ordinals, Vulkan adapters): a device
        // number names a device of one backend, never whichever backend auto falls back to.
        BackendChoice::Auto if device.is_some() => {
            Err("--device needs --backend cuda, wgpu or cpu: device numbers differ between backends (`devices` lists them)".into())
        }
        BackendChoice::Auto => {
            let mut skipped = Vec::new();
            match guard("cuda", cuda) {
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
    match guard("cuda", wasi_gpu_cuda::probe_all) {
        Ok(devices) => {
            for (n, desc) in devices.iter().enumerate() {
                let _ = writeln!(out, "  available: device {n}: {desc}");
            }
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
            for (n, a) in adapters.iter().enumerate() {
                let kind = if a.hardware { "hardware" } else { "software; only with --backend wgpu" };
                let _ = write!(out, "  - [{n}] {} ({}, {}, {kind})", a.name, a.api, a.device_type);
                match &a.unusable {
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
        let (cpu, skipped) = open_backend(BackendChoice::Cpu, None).unwrap();
        assert_eq!(cpu.info().backend, wasi_gpu_backend::BackendKind::Cpu);
        assert!(skipped.is_empty());
        let (auto, skipped) = open_backend(BackendChoice::Auto, None).unwrap();
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
    fn device_numbers_are_checked() {
        let err = open_backend(BackendChoice::Auto, Some(0)).err().expect("auto takes no device number");
        assert!(err.contains("--device needs --backend"), "{err}");
        assert!(open_backend(BackendChoice::Cpu, Some(0)).is_ok());
        let err = open_backend(BackendChoice::Cpu, Some(1)).err().expect("the CPU has no device 1");
        assert!(err.contains("one device, 0, not 1"), "{err}");
        let err = open_backend(BackendChoice::Wgpu, Some(999)).err().expect("no adapter 999");
        assert!(err.contains("999"), "{err}");
        let err = open_backend(BackendChoice::Cuda, Some(999)).err().expect("no CUDA device 999");
        assert!(err.contains("CUDA"), "{err}");
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
