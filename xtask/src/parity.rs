//! `cargo xtask parity`: proves both guests produce the same model, MSE and predictions on
//! every backend this machine can run, against the snapshots in tests/snapshots/.
//!
//! The check itself is the `parity` binary of the tests crate (`wasi_gpu_tests::parity`),
//! which also runs standalone where there is no cargo; this command builds the artefacts
//! (unless `--no-build`), builds that binary and runs it with the artefact paths.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{build, workspace_root};

/// Printed for `cargo xtask parity --help`.
const USAGE: &str = "\
usage: cargo xtask parity [--no-build] [--host PATH] [--rust PATH] [--cpp PATH]
                          [--backends cpu,wgpu,cuda] [--require LIST] [--only NAMES] [--bless] ...

  --no-build   use existing artefacts (default: `cargo xtask build-all` first); the paths
               default to target/release/wasmtime-gpu-host and target/wasm/guest-*.wasm
  every other option goes to the `parity` binary (`target/release/parity --help`), which is
  also the way to run the check on a machine without cargo";

/// Options this command consumes itself; the rest go to the binary.
fn split_args(args: &[String]) -> (bool, Vec<String>) {
    let no_build = args.iter().any(|a| a == "--no-build");
    (no_build, args.iter().filter(|a| *a != "--no-build").cloned().collect())
}

fn has(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

/// Entry point of `cargo xtask parity ARGS`.
pub fn command(args: &[String]) -> Result<()> {
    if has(args, "--help") || has(args, "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let root = workspace_root();
    let (no_build, mut forward) = split_args(args);
    if !no_build {
        let artefacts = build::build_all(build::Profile::Release)?;
        for (flag, path) in [("--host", &artefacts.host), ("--rust", &artefacts.guest_rust), ("--cpp", &artefacts.guest_cpp)] {
            if !has(&forward, flag) {
                forward.push(flag.to_string());
                forward.push(path.display().to_string());
            }
        }
    }
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
    if !has(&forward, "--root") {
        forward.push("--root".into());
        forward.push(root.display().to_string());
    }
    eprintln!("+ {} {}", binary.display(), forward.join(" "));
    let status =
        Command::new(&binary).current_dir(&root).args(&forward).status().with_context(|| format!("starting {}", binary.display()))?;
    if !status.success() {
        bail!("parity failed ({status}): the table and the mismatches are above");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_build_is_consumed_and_the_rest_forwarded() {
        let args: Vec<String> = ["--no-build", "--backends", "cpu"].iter().map(|s| s.to_string()).collect();
        let (no_build, rest) = split_args(&args);
        assert!(no_build);
        assert_eq!(rest, ["--backends", "cpu"]);
    }
}
