//! Fuzzes the `wasi:gpu` host with call sequences decoded from the input (see
//! `src/driver.rs` for the call space and the properties checked), on the CPU backend.
//!
//! Run: `cd host/cli/fuzz && cargo +nightly fuzz run device_calls` (add `-- -max_total_time=60`
//! for a bounded run). A violated property panics with a description, which libFuzzer
//! reports as a crash and saves the input under `artifacts/device_calls/`.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use wasi_gpu_backend::CpuBackend;
use wasmtime_gpu_host_fuzz::driver::Harness;

thread_local! {
    /// One host instance serves every input, as a long-lived guest would: each input must
    /// leave it empty and still computing correctly.
    static HARNESS: RefCell<Harness> = RefCell::new(Harness::new(Box::new(CpuBackend::new())));
}

fuzz_target!(|data: &[u8]| {
    HARNESS.with(|h| {
        let mut h = h.borrow_mut();
        if let Err(violation) = h.run(data).and_then(|()| h.finish()) {
            panic!("wasi:gpu host property violated on the {} backend: {violation}", h.backend());
        }
    });
});
