//! Project automation, run as `cargo xtask <command>`.
//!
//! The command line is [`Cli`] (clap, derive). Each command lives in its own module so new
//! ones can be added without touching the others: add a module, a variant of [`Command`]
//! (its doc comment is the command's help) and a match arm in [`main`].

mod bench;
mod bindgen;
mod build;
mod multi;
mod parity;
mod synth;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Project automation for the wasi:gpu workspace: builds, bindings, tests, parity, benchmarks.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", arg_required_else_help = true, args_override_self = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the host and every guest; print the paths.
    ///
    /// The host, the Rust guest, the hostile test guest, the C++ guest and the C++ example (CMake,
    /// componentized by the host just built), the guests into target/wasm/*.wasm.
    BuildAll(build::BuildAllArgs),
    /// Style checks, build-all, then every test.
    ///
    /// `cargo fmt --check`, `cargo clippy -D warnings`, build-all, then `cargo test --release
    /// --workspace ARGS` with WASI_GPU_HOST, GUEST_RUST_WASM, GUEST_CPP_WASM, EXAMPLE_CPP_WASM and
    /// HOSTILE_WASM set.
    Test(build::TestArgs),
    /// Regenerate the C bindings in include/ from wit/.
    ///
    /// Writes include/wasi_gpu.{h,c}, include/wasi_gpu_component_type.o and
    /// include/wasi_snapshot_preview1.command.wasm.
    Bindgen {
        /// Fail if the checked-in files differ instead of writing them.
        #[arg(long)]
        check: bool,
    },
    /// Turn a wasm32-wasi core module into a WASI command component.
    ///
    /// The same as `wasmtime-gpu-host componentize IN -o OUT`.
    Componentize {
        /// The core module.
        #[arg(value_name = "IN.wasm")]
        input: PathBuf,
        /// Where to write the component.
        #[arg(value_name = "OUT.wasm")]
        output: PathBuf,
    },
    /// Both guests x every backend vs tests/snapshots.
    ///
    /// Builds the artefacts (unless --no-build) and the `parity` binary of the tests crate, and
    /// runs it.
    Parity(parity::ParityArgs),
    /// Our guests on each backend vs scikit-learn and XGBoost.
    ///
    /// Same machine, same run, same data files, matched parameters (docs/benchmarks.md). Results
    /// go to target/bench/results.{json,md} and target/bench/train_time.svg.
    Bench(bench::Options),
    /// Write the synthetic Friedman #1 .npy workloads of `bench`.
    GenData(synth::GenDataArgs),
    /// One forest over every GPU: a shard per device, then merge.
    ///
    /// See docs/multi-gpu.md.
    TrainMulti(multi::Options),
}

/// The host's backends (`wasmtime-gpu-host run --backend`), as options of several commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The pure-Rust reference backend.
    Cpu,
    /// WebGPU (wgpu).
    Wgpu,
    /// CUDA.
    Cuda,
}

impl Backend {
    /// The `--backend` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::BuildAll(args) => build::build_all(args.profile()).map(|_| ()),
        Command::Test(args) => build::test(&args),
        Command::Bindgen { check: false } => bindgen::write(&workspace_root()),
        Command::Bindgen { check: true } => bindgen::check(&workspace_root()),
        Command::Componentize { input, output } => wasi_gpu_componentize::componentize_file(&input, &output).map(|_| ()),
        Command::Bench(options) => bench::command(&workspace_root(), &options),
        Command::Parity(args) => parity::command(&args),
        Command::GenData(args) => synth::gen_data_command(&bench::root(&workspace_root()), &args),
        Command::TrainMulti(options) => multi::command(&workspace_root(), &options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    /// Parses `cargo xtask ARGS` (whitespace-separated).
    pub fn parse(args: &str) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.split_whitespace())).map(|cli| cli.command)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_parses() {
        assert!(matches!(parse("build-all"), Ok(Command::BuildAll(a)) if a.profile() == build::Profile::Release));
        assert!(matches!(parse("build-all --debug"), Ok(Command::BuildAll(a)) if a.profile() == build::Profile::Debug));
        assert!(matches!(parse("bindgen"), Ok(Command::Bindgen { check: false })));
        assert!(matches!(parse("bindgen --check"), Ok(Command::Bindgen { check: true })));
        match parse("componentize core.wasm out/guest.wasm") {
            Ok(Command::Componentize { input, output }) => {
                assert_eq!(input, PathBuf::from("core.wasm"));
                assert_eq!(output, PathBuf::from("out/guest.wasm"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse("gen-data --sizes 10k"), Ok(Command::GenData(_))));
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        let kind = |args: &str| parse(args).map(|_| ()).unwrap_err().kind();
        assert_eq!(kind(""), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
        assert_eq!(kind("frobnicate"), ErrorKind::InvalidSubcommand);
        assert_eq!(kind("help"), ErrorKind::DisplayHelp);
        assert_eq!(kind("--help"), ErrorKind::DisplayHelp);
        assert_eq!(kind("bench --help"), ErrorKind::DisplayHelp);
        assert_eq!(kind("build-all --release"), ErrorKind::UnknownArgument);
        assert_eq!(kind("bindgen --check extra"), ErrorKind::UnknownArgument);
        assert_eq!(kind("componentize only-one.wasm"), ErrorKind::MissingRequiredArgument);
    }
}
