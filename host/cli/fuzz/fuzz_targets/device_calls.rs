//! Fuzzes the `wasi:gpu` host with call sequences decoded from the input (see
//! `src/driver.rs` for the call space and the properties checked, a per-call time limit
//! included), on the backend named by `FUZZ_BACKEND`: `cpu` (default), `wgpu` (software
//! adapters allowed) or `cuda`.
//!
//! Run: `cd host/cli/fuzz && FUZZ_BACKEND=wgpu cargo +nightly fuzz run device_calls` (add
//! `-- -max_total_time=60` for a bounded run). A violated property panics with a description, which libFuzzer
//! reports as a crash and saves the input under `artifacts/device_calls/`.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use wasi_gpu_backend::{Backend, CpuBackend};
use wasmtime_gpu_host_fuzz::driver::Harness;

/// The backend `FUZZ_BACKEND` names; one that does not open stops the run at once.
fn backend() -> Box<dyn Backend> {
    let name = std::env::var("FUZZ_BACKEND").unwrap_or_else(|_| "cpu".into());
    let opened = match name.as_str() {
        "cpu" => Ok(Box::new(CpuBackend::new()) as Box<dyn Backend>),
        "wgpu" => wasi_gpu_wgpu::open(true),
        "cuda" => wasi_gpu_cuda::open(),
        other => Err(format!("unknown FUZZ_BACKEND `{other}`; use cpu, wgpu or cuda")),
    };
    opened.unwrap_or_else(|e| panic!("FUZZ_BACKEND={name}: {e}"))
}

thread_local! {
    /// One host instance serves every input, as a long-lived guest would: each input must
    /// leave it empty and still computing correctly.
    static HARNESS: RefCell<Harness> = RefCell::new(Harness::new(backend()));
}

fuzz_target!(|data: &[u8]| {
    HARNESS.with(|h| {
        let mut h = h.borrow_mut();
        if let Err(violation) = h.run(data).and_then(|()| h.finish()) {
            panic!("wasi:gpu host property violated on the {} backend: {violation}", h.backend());
        }
    });
});
