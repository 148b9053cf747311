//! `wasmtime-gpu-host`: runs wasi:gpu guests. See host/cli/README.md.

fn main() {
    wasmtime_gpu_host::install_panic_hook();
    let code = std::panic::catch_unwind(|| wasmtime_gpu_host::main_with_args(std::env::args_os()))
        .unwrap_or(wasmtime_gpu_host::EXIT_HOST_ERROR);
    std::process::exit(code);
}
