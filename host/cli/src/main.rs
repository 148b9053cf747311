//! `wasmtime-gpu-host`: runs wasi:gpu guests. See host/cli/README.md.

fn main() {
    // Before any thread exists (setting the environment is only sound then).
    wasmtime_gpu_host::quiet_wayland_probe();
    wasmtime_gpu_host::install_panic_hook();
    let code =
        std::panic::catch_unwind(|| wasmtime_gpu_host::main_with_args(std::env::args_os())).unwrap_or(wasmtime_gpu_host::EXIT_HOST_ERROR);
    std::process::exit(code);
}
