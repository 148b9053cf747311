//! `cargo xtask build-all` and `cargo xtask test`: toolchain checks, the host,
//! both guests and the C++ example (built by CMake with `wasi_gpu_add_guest`, which
//! componentizes them with the host just built).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// Release (default) or debug builds of the host and the guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Release,
    Debug,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
    fn cmake_type(self) -> &'static str {
        match self {
            Profile::Release => "Release",
            Profile::Debug => "Debug",
        }
    }
}

/// Options of `cargo xtask build-all`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildAllArgs {
    /// Debug builds of the host and the guests (target/debug, ...) instead of release builds.
    #[arg(long)]
    pub debug: bool,
}

impl BuildAllArgs {
    /// The profile asked for.
    pub fn profile(&self) -> Profile {
        if self.debug { Profile::Debug } else { Profile::Release }
    }
}

/// Options of `cargo xtask test`.
#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    /// Debug builds of the host and the guests (`cargo test` itself still runs with --release).
    #[arg(long)]
    pub debug: bool,
    /// Arguments for `cargo test --release --workspace`, e.g. `--test accuracy`; everything
    /// from the first of them on goes to cargo unchanged, a `--` included.
    #[arg(num_args = 0.., allow_hyphen_values = true, value_name = "ARGS")]
    pub args: Vec<String>,
    /// Arguments for the test binaries (`cargo xtask test -- --nocapture`), given to `cargo test`
    /// after a `--`.
    #[arg(last = true, value_name = "TEST_ARGS")]
    pub test_args: Vec<String>,
}

impl TestArgs {
    /// The profile asked for.
    pub fn profile(&self) -> Profile {
        if self.debug { Profile::Debug } else { Profile::Release }
    }

    /// What follows `cargo test --release --workspace`.
    pub fn cargo_test_args(&self) -> Vec<String> {
        let mut out = self.args.clone();
        if !self.test_args.is_empty() {
            out.push("--".into());
            out.extend(self.test_args.iter().cloned());
        }
        out
    }
}

/// Where `build-all` put everything.
#[derive(Debug)]
pub struct Artefacts {
    /// The `wasmtime-gpu-host` executable.
    pub host: PathBuf,
    /// The Rust guest component.
    pub guest_rust: PathBuf,
    /// The C++ guest component.
    pub guest_cpp: PathBuf,
    /// The C++ example component.
    pub example_cpp: PathBuf,
    /// The hostile test guest (tests/tests/hostile.rs).
    pub hostile: PathBuf,
}

/// How the C++ code is compiled: an official WASI SDK or Debian's clang-19.
enum CppToolchain {
    WasiSdk(PathBuf),
    DebianClang,
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Checks every tool the build needs and says how to install what is missing.
fn check_toolchains() -> Result<CppToolchain> {
    let mut missing = Vec::new();
    if !have("cmake", "--version") {
        missing.push("cmake: `sudo apt-get install cmake` (3.16 or newer)".to_string());
    }
    let cpp = match std::env::var_os("WASI_SDK_PATH") {
        Some(sdk) if !sdk.is_empty() => {
            let sdk = PathBuf::from(sdk);
            let clang = sdk.join("bin/clang++");
            if !clang.exists() {
                missing.push(format!(
                    "WASI_SDK_PATH={} has no bin/clang++: unpack a WASI SDK release there or unset WASI_SDK_PATH",
                    sdk.display()
                ));
            }
            CppToolchain::WasiSdk(sdk)
        }
        _ => {
            if !have("clang-19", "--version") {
                missing.push("clang-19: `sudo apt-get install clang-19`".to_string());
            }
            if !have("wasm-ld-19", "--version") && !have("wasm-ld", "--version") {
                missing.push("wasm-ld: `sudo apt-get install lld-19`".to_string());
            }
            let sysroot_checks = [
                ("/usr/include/wasm32-wasi/stdio.h", "wasi-libc"),
                ("/usr/lib/wasm32-wasi/libc++.a", "libc++-19-dev-wasm32"),
                ("/usr/lib/wasm32-wasi/libc++abi.a", "libc++abi-19-dev-wasm32"),
                ("/usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a", "libclang-rt-19-dev-wasm32"),
            ];
            for (path, package) in sysroot_checks {
                if !Path::new(path).exists() {
                    missing.push(format!("{path}: `sudo apt-get install {package}`"));
                }
            }
            CppToolchain::DebianClang
        }
    };
    let targets = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match targets {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") => {}
        Ok(_) => missing.push("Rust target wasm32-wasip2: `rustup target add wasm32-wasip2`".to_string()),
        Err(_) => missing.push(
            "rustup (to check the wasm32-wasip2 target): install from https://rustup.rs, then `rustup target add wasm32-wasip2`"
                .to_string(),
        ),
    }
    if !missing.is_empty() {
        bail!("missing toolchain pieces (or set WASI_SDK_PATH to a WASI SDK instead of Debian's clang-19):\n  {}", missing.join("\n  "));
    }
    Ok(cpp)
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Builds everything and returns the artefact paths.
pub fn build_all(profile: Profile) -> Result<Artefacts> {
    let root = workspace_root();
    let cpp = check_toolchains()?;
    let target = root.join("target");
    let wasm_dir = target.join("wasm");
    std::fs::create_dir_all(&wasm_dir).with_context(|| format!("creating {}", wasm_dir.display()))?;
    let release: &[&str] = if profile == Profile::Release { &["--release"] } else { &[] };

    // Host.
    run(cargo().current_dir(&root).args(["build", "-p", "wasmtime-gpu-host"]).args(release))?;
    let host = target.join(profile.dir()).join(format!("wasmtime-gpu-host{}", std::env::consts::EXE_SUFFIX));

    // Rust guest.
    run(cargo().current_dir(&root).args(["build", "-p", "guest-rust", "--target", "wasm32-wasip2"]).args(release))?;
    let rust_built = target.join("wasm32-wasip2").join(profile.dir()).join("guest-rust.wasm");
    let guest_rust = wasm_dir.join("guest-rust.wasm");
    std::fs::copy(&rust_built, &guest_rust).with_context(|| format!("copying {} to {}", rust_built.display(), guest_rust.display()))?;

    // Hostile test guest.
    run(cargo().current_dir(&root).args(["build", "-p", "guest-hostile", "--target", "wasm32-wasip2"]).args(release))?;
    let hostile_built = target.join("wasm32-wasip2").join(profile.dir()).join("guest-hostile.wasm");
    let hostile = wasm_dir.join("guest-hostile.wasm");
    std::fs::copy(&hostile_built, &hostile).with_context(|| format!("copying {} to {}", hostile_built.display(), hostile.display()))?;

    // C++ guest and example: CMake builds the core modules and, with `wasi_gpu_add_guest`
    // (cmake/wasi_gpu_guest.cmake), componentizes them with the host just built, as it does
    // for a C++ team's guest.
    let cpp_build = target.join("cpp").join(profile.dir());
    let toolchain_file = root.join("cmake/wasm32-wasi.cmake");
    let mut configure = Command::new("cmake");
    configure
        .arg("-S")
        .arg(&root)
        .arg("-B")
        .arg(&cpp_build)
        .arg(format!("-DCMAKE_TOOLCHAIN_FILE={}", toolchain_file.display()))
        .arg(format!("-DCMAKE_BUILD_TYPE={}", profile.cmake_type()))
        .arg(format!("-DWASI_GPU_HOST={}", host.display()))
        .arg("-DWASI_GPU_COMPONENTIZER=host");
    if let CppToolchain::WasiSdk(sdk) = &cpp {
        configure.env("WASI_SDK_PATH", sdk);
    }
    run(&mut configure)?;
    run(Command::new("cmake").arg("--build").arg(&cpp_build).args(["--parallel", "2"]))?;
    let guest_cpp = wasm_dir.join("guest-cpp.wasm");
    let example_cpp = wasm_dir.join("example-cpp.wasm");
    for (built, to) in [(cpp_build.join("guest-cpp.wasm"), &guest_cpp), (cpp_build.join("example-cpp.wasm"), &example_cpp)] {
        std::fs::copy(&built, to).with_context(|| format!("copying {} to {}", built.display(), to.display()))?;
    }

    let artefacts = Artefacts { host, guest_rust, guest_cpp, example_cpp, hostile };
    println!("built ({}):", profile.dir());
    println!("  host          {}", artefacts.host.display());
    println!("  rust guest    {}", artefacts.guest_rust.display());
    println!("  c++ guest     {}", artefacts.guest_cpp.display());
    println!("  c++ example   {}", artefacts.example_cpp.display());
    println!("  hostile guest {}", artefacts.hostile.display());
    Ok(artefacts)
}

/// `cargo xtask test [--debug] [ARGS]`: the style checks (`cargo fmt --check` with the
/// workspace's rustfmt.toml, `cargo clippy --workspace --all-targets -D warnings`), build-all,
/// then the workspace tests with the artefact paths in the environment; ARGS go to
/// `cargo test`.
pub fn test(args: &TestArgs) -> Result<()> {
    let profile = args.profile();
    let root = workspace_root();
    run(cargo().current_dir(&root).args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().current_dir(&root).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    let artefacts = build_all(profile)?;
    let mut cmd = cargo();
    cmd.current_dir(&root)
        .args(["test", "--release", "--workspace"])
        .args(args.cargo_test_args())
        .env("WASI_GPU_HOST", &artefacts.host)
        .env("GUEST_RUST_WASM", &artefacts.guest_rust)
        .env("GUEST_CPP_WASM", &artefacts.guest_cpp)
        .env("EXAMPLE_CPP_WASM", &artefacts.example_cpp)
        .env("HOSTILE_WASM", &artefacts.hostile);
    // Tests open wgpu in-process; without XDG_RUNTIME_DIR, libwayland (loaded by Mesa's
    // Vulkan drivers) prints an `error:` line for every adapter enumeration. A private
    // directory silences it, as the host binary does for itself.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = root.join("target").join("xdg-runtime");
        std::fs::create_dir_all(&dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        cmd.env("XDG_RUNTIME_DIR", &dir);
    }
    run(&mut cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::tests::parse;

    fn test_args(args: &str) -> (Profile, Vec<String>) {
        match parse(args) {
            Ok(Command::Test(t)) => (t.profile(), t.cargo_test_args()),
            other => panic!("{args}: {other:?}"),
        }
    }

    #[test]
    fn test_passes_its_arguments_to_cargo_test() {
        let strings = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(test_args("test"), (Profile::Release, vec![]));
        assert_eq!(test_args("test --debug"), (Profile::Debug, vec![]));
        assert_eq!(test_args("test --test accuracy"), (Profile::Release, strings("--test accuracy")));
        assert_eq!(test_args("test --debug --test accuracy"), (Profile::Debug, strings("--test accuracy")));
        assert_eq!(test_args("test -p xtask --lib"), (Profile::Release, strings("-p xtask --lib")));
        assert_eq!(test_args("test --test=accuracy"), (Profile::Release, strings("--test=accuracy")));
        assert_eq!(test_args("test accuracy --debug"), (Profile::Release, strings("accuracy --debug")));
        assert_eq!(test_args("test --test accuracy -- --nocapture"), (Profile::Release, strings("--test accuracy -- --nocapture")));
        assert_eq!(test_args("test -- --nocapture"), (Profile::Release, strings("-- --nocapture")));
        assert_eq!(test_args("test --debug -- --nocapture --test-threads 1"), (Profile::Debug, strings("-- --nocapture --test-threads 1")));
        assert_eq!(test_args("test --"), (Profile::Release, vec![]));
    }
}
