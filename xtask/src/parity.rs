//! `cargo xtask parity`: proves both guests produce the same model, MSE and predictions on
//! every backend this machine can run, against the snapshots in tests/snapshots/.
//!
//! The check itself is the `parity` binary of the tests crate (`wasi_gpu_tests::parity`),
//! which also runs standalone where there is no cargo; this command builds the artefacts
//! (unless `--no-build`), builds that binary and runs it with the artefact paths.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{Backend, build, workspace_root};

/// Options of `cargo xtask parity`: `--no-build`, and those of the `parity` binary, which
/// gets them unchanged (keep this list in step with tests/src/bin/parity.rs).
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Every option but --no-build goes to the `parity` binary (`target/release/parity --help`), which is also \
                        the way to run the check on a machine without cargo. Relative paths are relative to the repository root.")]
pub struct ParityArgs {
    /// Use existing artefacts (default: `cargo xtask build-all` first); the paths then default
    /// to target/release/wasmtime-gpu-host and target/wasm/guest-*.wasm.
    #[arg(long)]
    pub no_build: bool,
    /// wasmtime-gpu-host [default: the one build-all built, else $WASI_GPU_HOST or
    /// ROOT/target/release/wasmtime-gpu-host].
    #[arg(long, value_name = "PATH")]
    pub host: Option<PathBuf>,
    /// guest-rust.wasm [default: the one build-all built, else $GUEST_RUST_WASM or
    /// ROOT/target/wasm/guest-rust.wasm].
    #[arg(long, value_name = "PATH")]
    pub rust: Option<PathBuf>,
    /// guest-cpp.wasm [default: the one build-all built, else $GUEST_CPP_WASM or
    /// ROOT/target/wasm/guest-cpp.wasm].
    #[arg(long, value_name = "PATH")]
    pub cpp: Option<PathBuf>,
    /// Backends to try [default: all; unavailable ones are skipped].
    #[arg(long, value_name = "LIST", value_delimiter = ',', action = clap::ArgAction::Set)]
    pub backends: Vec<Backend>,
    /// Backends that must run (a skipped cell is then a failure).
    #[arg(long, value_name = "LIST", value_delimiter = ',', action = clap::ArgAction::Set)]
    pub require: Vec<Backend>,
    /// Checkout root [default: this repository].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Data directory [default: ROOT/data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Snapshot directory [default: ROOT/tests/snapshots].
    #[arg(long, value_name = "DIR")]
    pub snapshots: Option<PathBuf>,
    /// Scratch directory [default: ROOT/target/parity].
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Run only these configurations (comma-separated names; `--list` prints them).
    #[arg(long, value_name = "NAMES")]
    pub only: Option<String>,
    /// Write missing/changed snapshots when all cells of a configuration agree.
    #[arg(long)]
    pub bless: bool,
    /// Print the configurations and exit.
    #[arg(long)]
    pub list: bool,
    /// Regenerate ROOT/data/synthetic_ties.csv and wide_ties.csv and exit.
    #[arg(long)]
    pub write_ties_data: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl ParityArgs {
    /// The `parity` binary's command line.
    fn forward(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        let paths = [
            ("--host", &self.host),
            ("--rust", &self.rust),
            ("--cpp", &self.cpp),
            ("--root", &self.root),
            ("--data", &self.data),
            ("--snapshots", &self.snapshots),
            ("--work", &self.work),
        ];
        for (flag, path) in paths {
            if let Some(path) = path {
                out.extend([flag.into(), path.into()]);
            }
        }
        let list = |backends: &[Backend]| backends.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(",");
        for (flag, backends) in [("--backends", &self.backends), ("--require", &self.require)] {
            if !backends.is_empty() {
                out.extend([flag.into(), list(backends).into()]);
            }
        }
        if let Some(only) = &self.only {
            out.extend(["--only".into(), only.into()]);
        }
        for (flag, set) in
            [("--bless", self.bless), ("--list", self.list), ("--write-ties-data", self.write_ties_data), ("--quiet", self.quiet)]
        {
            if set {
                out.push(flag.into());
            }
        }
        out
    }
}

/// Entry point of `cargo xtask parity`.
pub fn command(args: &ParityArgs) -> Result<()> {
    let root = workspace_root();
    let mut args = args.clone();
    if !args.no_build {
        let artefacts = build::build_all(build::Profile::Release)?;
        args.host.get_or_insert(artefacts.host);
        args.rust.get_or_insert(artefacts.guest_rust);
        args.cpp.get_or_insert(artefacts.guest_cpp);
    }
    args.root.get_or_insert_with(|| root.clone());
    let forward = args.forward();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "-p", "wasi-gpu-tests", "--bin", "parity"])
        .status()
        .context("starting cargo to build the parity binary")?;
    if !status.success() {
        bail!("building the parity binary failed with {status}");
    }
    let binary: PathBuf = root.join("target/release").join(format!("parity{}", std::env::consts::EXE_SUFFIX));
    eprintln!("+ {} {}", binary.display(), forward.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    let status =
        Command::new(&binary).current_dir(&root).args(&forward).status().with_context(|| format!("starting {}", binary.display()))?;
    if !status.success() {
        bail!("parity failed ({status}): the table and the mismatches are above");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Command;
    use crate::tests::parse;

    fn forwarded(args: &str) -> (bool, Vec<String>) {
        match parse(args) {
            Ok(Command::Parity(p)) => (p.no_build, p.forward().iter().map(|a| a.to_string_lossy().into_owned()).collect()),
            other => panic!("{args}: {other:?}"),
        }
    }

    #[test]
    fn no_build_is_consumed_and_the_rest_forwarded() {
        assert_eq!(forwarded("parity --no-build --backends cpu"), (true, vec!["--backends".into(), "cpu".into()]));
        assert_eq!(forwarded("parity --backends cpu,wgpu --no-build"), (true, vec!["--backends".into(), "cpu,wgpu".into()]));
        assert_eq!(forwarded("parity"), (false, vec![]));
        let (_, all) = forwarded(
            "parity --host h --rust r --cpp c --backends cuda --require cpu,cuda --root R --data d --snapshots s --work w \
             --only a,b --bless --list --write-ties-data --quiet",
        );
        let expected = "--host h --rust r --cpp c --root R --data d --snapshots s --work w --backends cuda --require cpu,cuda \
                        --only a,b --bless --list --write-ties-data --quiet";
        assert_eq!(all.join(" "), expected);
        assert!(parse("parity --backends tpu").is_err());
        assert!(parse("parity --bogus").is_err());
    }
}
