//! `wasmtime-gpu-host componentize CORE.wasm -o GUEST.wasm`: turns the wasm32-wasi (preview 1)
//! core module a C or C++ guest's linker wrote into the command component `run` takes, with
//! wit-component and the wasi_snapshot_preview1 command adapter of the wasmtime this host embeds
//! (host/componentize, shared with `cargo xtask componentize`). `wasi_gpu_add_guest` in
//! cmake/wasi_gpu_guest.cmake runs it, so a C++ team needs no Rust tooling beyond this binary.

use std::path::PathBuf;

use crate::run::EXIT_HOST_ERROR;

/// Options of `componentize`.
#[derive(Debug, Clone, clap::Args)]
pub struct ComponentizeArgs {
    /// The core module: linked with include/wasi_gpu_component_type.o (the world's component
    /// type), `-nostartfiles -Wl,--no-entry` and include/wasi_gpu_start.c (include/README.md).
    #[arg(value_name = "CORE.wasm")]
    pub input: PathBuf,

    /// Where to write the component (through OUT.tmp and a rename).
    #[arg(short, long, value_name = "OUT.wasm")]
    pub output: PathBuf,
}

/// Runs `componentize`; returns the exit status (0, or 1 after one `error:` line).
pub fn main(args: &ComponentizeArgs) -> i32 {
    match wasi_gpu_componentize::componentize_file(&args.input, &args.output) {
        Ok(_) => 0,
        Err(err) => {
            eprintln!("error: {err:#}");
            EXIT_HOST_ERROR
        }
    }
}
