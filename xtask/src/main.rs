//! Project automation, run as `cargo xtask <command>`.
//!
//! Each command lives in its own module so new ones (`parity`, `bench`) can be
//! added without touching the others: add a module, a match arm in [`main`] and a
//! line in [`USAGE`].

mod bench;
mod bindgen;
mod build;
mod multi;
mod parity;
mod synth;

use std::path::PathBuf;
use std::process::ExitCode;

/// Printed for `help` and for unknown commands.
const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build-all [--debug]     build the host, the Rust guest, the C++ guest and the C++ example
                          (CMake, componentized by the host just built) into target/wasm/*.wasm
  test [--debug] [ARGS]   build-all, then `cargo test --release --workspace ARGS` with
                          WASI_GPU_HOST, GUEST_RUST_WASM, GUEST_CPP_WASM, EXAMPLE_CPP_WASM,
                          HOSTILE_WASM set
  bindgen [--check]       regenerate include/wasi_gpu.{h,c}, include/wasi_gpu_component_type.o
                          from wit/ and include/wasi_snapshot_preview1.command.wasm
                          (--check: fail if the checked-in files differ instead)
  componentize IN OUT     turn a wasm32-wasi core module into a WASI command component
                          (the same as `wasmtime-gpu-host componentize IN -o OUT`)
  parity [--no-build] [OPTS]  both guests x every backend vs tests/snapshots
                          (`cargo xtask parity --help`)
  bench [OPTIONS]         our guests on each backend vs scikit-learn and XGBoost
                          (docs/benchmarks.md; `cargo xtask bench --help`)
  gen-data [--sizes LIST] write the synthetic Friedman #1 .npy workloads to target/bench/data
  train-multi [OPTIONS]   one forest over every GPU: a shard per device, then merge
                          (docs/multi-gpu.md; `cargo xtask train-multi --help`)
  help                    this text
";

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "build-all" => build::parse_profile(rest).and_then(|p| build::build_all(p).map(|_| ())),
        "test" => build::test(rest),
        "bindgen" => match rest {
            [] => bindgen::write(&workspace_root()),
            [flag] if flag == "--check" => bindgen::check(&workspace_root()),
            _ => Err(anyhow::anyhow!("usage: cargo xtask bindgen [--check]")),
        },
        "componentize" => match rest {
            [input, output] => wasi_gpu_componentize::componentize_file(input.as_ref(), output.as_ref()).map(|_| ()),
            _ => Err(anyhow::anyhow!("usage: cargo xtask componentize IN.wasm OUT.wasm")),
        },
        "bench" => bench::command(&workspace_root(), rest),
        "parity" => parity::command(rest),
        "gen-data" => synth::gen_data_command(&bench::root(&workspace_root()), rest),
        "train-multi" => multi::command(&workspace_root(), rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("error: unknown command `{other}`\n");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
