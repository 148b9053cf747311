//! Where the cross-crate tests find the host and the guests: the path in an environment
//! variable (`cargo xtask test` sets them all), else the default location under target/.
//! A missing artefact is a failure with what to run, never a skip.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The artefact named by `var`, or its default location; panics with what to run if absent.
pub fn artefact(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| workspace().join(default));
    assert!(path.is_file(), "{var}: {} does not exist; build it with `cargo xtask build-all` (or run `cargo xtask test`)", path.display());
    path
}

pub fn host() -> PathBuf {
    artefact("WASI_GPU_HOST", "target/release/wasmtime-gpu-host")
}

pub fn guest_cpp() -> PathBuf {
    artefact("GUEST_CPP_WASM", "target/wasm/guest-cpp.wasm")
}

pub fn guest_rust() -> PathBuf {
    artefact("GUEST_RUST_WASM", "target/wasm/guest-rust.wasm")
}

pub fn example_cpp() -> PathBuf {
    artefact("EXAMPLE_CPP_WASM", "target/wasm/example-cpp.wasm")
}

/// A Python that imports every module of `modules` (comma-separated, as in `import a, b`):
/// `ACCURACY_PYTHON` if set (no fallback then), else `target/accuracy-venv/bin/python` (made by
/// .ci/setup), else `python3`. None is a failure naming each candidate's error, never a skip.
pub fn python_with(modules: &str) -> PathBuf {
    let explicit = std::env::var_os("ACCURACY_PYTHON").filter(|p| !p.is_empty()).map(PathBuf::from);
    let candidates = match explicit {
        Some(p) => vec![p],
        None => vec![workspace().join("target/accuracy-venv/bin/python"), PathBuf::from("python3")],
    };
    let mut reasons = Vec::new();
    for p in candidates {
        match std::process::Command::new(&p).args(["-c", &format!("import {modules}")]).output() {
            Ok(o) if o.status.success() => return p,
            Ok(o) => reasons.push(format!("{}: {}", p.display(), String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or(""))),
            Err(e) => reasons.push(format!("{}: {e}", p.display())),
        }
    }
    panic!("no Python with {modules} ({}); run .ci/setup (it makes target/accuracy-venv) or set ACCURACY_PYTHON", reasons.join("; "));
}

/// An empty directory `target/<group>/<name>` (removed first, if it was there).
pub fn fresh_dir(group: &str, name: &str) -> PathBuf {
    let dir = workspace().join("target").join(group).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cmd` and requires success; a failure shows the command and both streams.
pub fn run_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().expect("start");
    assert!(out.status.success(), "{cmd:?}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs `wasm` under the host on the CPU backend with `dir` as its `.`, and requires success.
pub fn guest_in(dir: &Path, wasm: &Path, args: &[&str]) -> std::process::Output {
    run_ok(
        std::process::Command::new(host())
            .current_dir(dir)
            .args(["run", "--backend", "cpu", "--dir-rw", "."])
            .arg(wasm)
            .arg("--")
            .args(args),
    )
}
