//! The CMake package of docs/cpp.md, as a C++ team uses it: `cmake --install` of this checkout
//! into a temporary prefix, then a fresh out-of-tree project (docs/cpp.md's own CMakeLists.txt
//! and train_csv.cpp, with `find_package(wasi_gpu CONFIG REQUIRED)`) builds a guest on
//! `wasi_gpu::forest`, componentized by `wasmtime-gpu-host componentize` found on PATH; the host
//! runs it on the CPU backend and its model must be byte-identical to the Rust guest's. The same
//! through FetchContent of the checkout, componentized by the host named in WASI_GPU_HOST. Also:
//! the package refuses bindings of another WIT version, and `wasi_gpu_add_guest` says what is
//! missing when nothing can componentize.
//!
//! Needs cmake and the C++ toolchain (.ci/setup) and the host and Rust guest of
//! `cargo xtask build-all`; a missing one is a failure with instructions, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use wasi_gpu_tests::artefacts::{guest_rust, host, workspace};

/// This run's directory under Cargo's temporary directory for integration tests.
fn scratch() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cmake-package-{}", std::process::id()))
}

fn describe(cmd: &Command, out: &Output) -> String {
    format!("{cmd:?}: {}\nstdout:\n{}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs `cmd`; returns (success, stdout + stderr with every run of white space made one space
/// (CMake wraps long messages), a description for failure messages).
fn output(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("starting {cmd:?}: {e} (cmake and clang-19 come from .ci/setup)"));
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.split_whitespace().collect::<Vec<_>>().join(" "), describe(cmd, &out))
}

fn ok(cmd: &mut Command) -> String {
    let (success, text, what) = output(cmd);
    assert!(success, "{what}");
    text
}

/// The package installed once per test binary: (its build tree, the install prefix).
fn package() -> &'static (PathBuf, PathBuf) {
    static PACKAGE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        // Earlier runs' directories go once they are an hour old (a run in progress keeps its own).
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let stale = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600));
            if entry.file_name().to_string_lossy().starts_with("cmake-package-") && entry.path() != scratch() && stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        // The directory is this process's, shared with the other tests: only its own parts go.
        let (build, prefix) = (scratch().join("package-build"), scratch().join("prefix"));
        for dir in [&build, &prefix] {
            let _ = std::fs::remove_dir_all(dir);
        }
        let root = workspace();
        ok(Command::new("cmake")
            .arg("-S")
            .arg(&root)
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_TOOLCHAIN_FILE={}", root.join("cmake/wasm32-wasi.cmake").display()))
            .arg("-DWASI_GPU_BUILD_GUESTS=OFF"));
        ok(Command::new("cmake").arg("--build").arg(&build).args(["--parallel", "2"]));
        ok(Command::new("cmake").arg("--install").arg(&build).arg("--prefix").arg(&prefix));
        (build, prefix)
    })
}

fn toolchain(prefix: &Path) -> String {
    format!("-DCMAKE_TOOLCHAIN_FILE={}", prefix.join("lib/cmake/wasi_gpu/wasm32-wasi.cmake").display())
}

/// PATH with the host's directory first, the way a C++ team has it.
fn path_with_host() -> std::ffi::OsString {
    let host = host();
    assert_eq!(host.file_name().unwrap(), "wasmtime-gpu-host", "WASI_GPU_HOST must name the host binary itself");
    let mut dirs = vec![host.parent().unwrap().to_path_buf()];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(dirs).unwrap()
}

/// The fenced block that follows `<!-- tests/tests/cmake_package.rs builds this project: NAME -->`
/// in docs/cpp.md.
fn doc_block(name: &str) -> String {
    let doc = std::fs::read_to_string(workspace().join("docs/cpp.md")).unwrap();
    let marker = format!("<!-- tests/tests/cmake_package.rs builds this project: {name} -->");
    let after = doc.split_once(&marker).unwrap_or_else(|| panic!("docs/cpp.md lost the marker {marker}")).1;
    let fence = after.find("```").expect("a code block after the marker");
    let body = &after[fence..];
    let start = body.find('\n').unwrap() + 1;
    let end = body[start..].find("\n```").expect("the block ends") + start;
    body[start..=end].to_string()
}

/// A fresh project directory with docs/cpp.md's CMakeLists.txt and train_csv.cpp, edited by `edit`.
fn consumer(name: &str, edit: impl Fn(&str, String) -> String) -> PathBuf {
    consumer_from(name, "CMakeLists.txt", edit)
}

/// The same with the CMakeLists.txt of docs/cpp.md's block `cmake_block`.
fn consumer_from(name: &str, cmake_block: &str, edit: impl Fn(&str, String) -> String) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, block) in [("CMakeLists.txt", cmake_block), ("train_csv.cpp", "train_csv.cpp")] {
        std::fs::write(dir.join(file), edit(file, doc_block(block))).unwrap();
    }
    dir
}

fn configure(project: &Path, prefix: &Path) -> Command {
    let mut cmd = Command::new("cmake");
    cmd.arg("-S").arg(project).arg("-B").arg(project.join("build")).arg(toolchain(prefix));
    cmd
}

/// Runs the guest built in `project` and the Rust guest on the diabetes training data; asserts
/// that they wrote the same model file.
fn same_model_as_the_rust_guest(project: &Path) {
    let component = project.join("build/train_csv.wasm");
    let bytes = std::fs::read(&component).unwrap_or_else(|e| panic!("{}: {e}", component.display()));
    assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00", "{} is a component", component.display());
    let run = project.join("run");
    std::fs::create_dir_all(run.join("data")).unwrap();
    std::fs::copy(workspace().join("data/diabetes_train.csv"), run.join("data/diabetes_train.csv")).unwrap();
    let guest = |wasm: &Path, args: &[&str]| {
        let mut cmd = Command::new(host());
        cmd.current_dir(&run).args(["run", "--backend", "cpu", "--dir-rw", "."]).arg(wasm).arg("--").args(args);
        ok(&mut cmd)
    };
    let said = guest(&component, &["data/diabetes_train.csv", "cpp.bin"]);
    guest(
        &guest_rust(),
        &["train", "--train", "data/diabetes_train.csv", "--model", "rust.bin", "--trees", "50", "--seed", "7", "--quiet"],
    );
    let cpp = std::fs::read(run.join("cpp.bin")).expect("the C++ guest wrote its model");
    let rust = std::fs::read(run.join("rust.bin")).expect("the Rust guest wrote its model");
    let checksum = wasi_gpu_tests::model_file::model_checksum(&cpp).expect("a valid model file");
    assert!(said.contains(&format!("model: cpp.bin ({} bytes, {checksum})", cpp.len())), "{said}");
    assert!(said.contains("train MSE: "), "{said}");
    assert!(
        cpp == rust,
        "the out-of-tree C++ guest and the Rust guest wrote different models: {} bytes ({checksum}) vs {} bytes ({:?})",
        cpp.len(),
        rust.len(),
        wasi_gpu_tests::model_file::model_checksum(&rust)
    );
}

#[test]
fn out_of_tree_guest_on_the_forest_library_writes_the_rust_guests_model() {
    let started = std::time::Instant::now();
    let (_, prefix) = package();
    let project = consumer("train-csv", |_, text| text);
    let cmake_lists = std::fs::read_to_string(project.join("CMakeLists.txt")).unwrap();
    assert!(cmake_lists.contains("find_package(wasi_gpu CONFIG REQUIRED)"), "{cmake_lists}");
    let lines = std::fs::read_to_string(project.join("train_csv.cpp")).unwrap().lines().count();
    assert!(lines <= 32, "docs/cpp.md promises a 30-line example; it has {lines} lines");

    let configured = ok(configure(&project, prefix).env("PATH", path_with_host()));
    assert!(
        configured.contains("wasi_gpu: componentizing guests with ") && configured.contains("wasmtime-gpu-host componentize"),
        "the host on PATH componentizes:\n{configured}"
    );
    ok(Command::new("cmake").arg("--build").arg(project.join("build")).args(["--parallel", "2"]));
    same_model_as_the_rust_guest(&project);
    let _ = std::fs::remove_dir_all(&project);
    eprintln!("package and out-of-tree guest: {:.1} s", started.elapsed().as_secs_f64());
}

/// The checkout as a subproject (docs/cpp.md's FetchContent project, given this checkout, i.e.
/// add_subdirectory), componentized by the host named with WASI_GPU_HOST: the same targets
/// and function, the same model. (The wasm-tools route is not built in CI: building wasm-tools
/// costs more than three minutes there; docs/cpp.md says how it was checked.)
#[test]
fn fetch_content_of_the_checkout_builds_the_same_guest() {
    let project = consumer_from("fetch-content", "CMakeLists.txt with FetchContent", |_, text| text);
    let root = workspace();
    let configured = ok(Command::new("cmake")
        .arg("-S")
        .arg(&project)
        .arg("-B")
        .arg(project.join("build"))
        .arg(format!("-DCMAKE_TOOLCHAIN_FILE={}", root.join("cmake/wasm32-wasi.cmake").display()))
        .arg(format!("-DFETCHCONTENT_SOURCE_DIR_WASI_GPU={}", root.display()))
        .arg("-DWASI_GPU_COMPONENTIZER=host")
        .arg(format!("-DWASI_GPU_HOST={}", host().display())));
    assert!(configured.contains("componentizing guests with") && configured.contains("componentize"), "{configured}");
    let built = ok(Command::new("cmake").arg("--build").arg(project.join("build")).args(["--parallel", "2"]));
    assert!(built.contains("Built target wasi_gpu_forest"), "{built}");
    assert!(!built.contains("target guest-cpp") && !built.contains("example-cpp"), "a subproject builds none of our guests:\n{built}");
    same_model_as_the_rust_guest(&project);
    let _ = std::fs::remove_dir_all(&project);
}

/// Bindings of another WIT version are refused: in the prefix (configure), asked for
/// (find_package's version), and included by the guest itself (compile).
#[test]
fn the_package_refuses_another_wit_version() {
    let (build, prefix) = package();

    // A prefix whose wasi_gpu.h was generated from wasi:gpu@0.2.0.
    let other = scratch().join("prefix-0.2.0");
    ok(Command::new("cmake").arg("--install").arg(build).arg("--prefix").arg(&other));
    let header = other.join("include/wasi_gpu.h");
    let text = std::fs::read_to_string(&header).unwrap();
    assert!(text.contains("#define WASI_GPU_WIT_PACKAGE \"wasi:gpu@0.1.0\""), "the installed header records its version");
    std::fs::write(&header, text.replace("wasi:gpu@0.1.0\"", "wasi:gpu@0.2.0\"").replace("MINOR 1", "MINOR 2")).unwrap();
    let project = consumer("mixed-prefix", |_, text| text);
    let (success, text, what) = output(configure(&project, &other).env("PATH", path_with_host()));
    assert!(!success, "{what}");
    assert!(text.contains("was generated from wasi:gpu@0.2.0, but this package is wasi:gpu@0.1.0"), "{what}");

    // find_package(wasi_gpu 0.2) does not take 0.1.0.
    let project = consumer("version-0.2", |file, text| {
        if file == "CMakeLists.txt" { text.replace("find_package(wasi_gpu CONFIG", "find_package(wasi_gpu 0.2 CONFIG") } else { text }
    });
    let (success, text, what) = output(configure(&project, prefix).env("PATH", path_with_host()));
    assert!(!success, "{what}");
    assert!(text.contains("requested version \"0.2\"") && text.contains("version: 0.1.0"), "{what}");

    // A guest that includes an older wasi_gpu.h first does not compile.
    let project = consumer("old-header", |file, text| {
        if file == "train_csv.cpp" {
            text.replace("#include <wasi_gpu/forest.hpp>", "#include \"old/wasi_gpu.h\"\n#include <wasi_gpu/forest.hpp>")
        } else {
            text
        }
    });
    std::fs::create_dir_all(project.join("old")).unwrap();
    let old = std::fs::read_to_string(prefix.join("include/wasi_gpu.h")).unwrap();
    std::fs::write(project.join("old/wasi_gpu.h"), old.replace("wasi:gpu@0.1.0\"", "wasi:gpu@0.0.9\"").replace("MINOR 1", "MINOR 0"))
        .unwrap();
    ok(configure(&project, prefix).env("PATH", path_with_host()));
    let (success, text, what) = output(Command::new("cmake").arg("--build").arg(project.join("build")));
    assert!(!success, "{what}");
    assert!(text.contains("wasi_gpu.hpp is for wasi:gpu@0.1.0, but the wasi_gpu.h it found records another WIT version"), "{what}");
}

/// Without a host that can componentize and without wasm-tools, configuring stops and says
/// what it looked for and how to get each.
#[test]
fn add_guest_says_what_is_missing() {
    let (_, prefix) = package();
    let project = consumer("no-componentizer", |_, text| text);
    let dir = scratch().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    // A wasmtime-gpu-host of an earlier release: no `componentize` subcommand.
    let old_host = dir.join("wasmtime-gpu-host");
    std::fs::write(&old_host, "#!/bin/sh\necho \"error: unrecognized subcommand '$1'\" >&2\nexit 2\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&old_host, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (success, text, what) = output(
        configure(&project, prefix)
            .arg(format!("-DWASI_GPU_HOST={}", old_host.display()))
            .arg(format!("-DWASI_GPU_WASM_TOOLS={}", dir.join("missing/wasm-tools").display())),
    );
    assert!(!success, "{what}");
    for needle in [
        "wasi_gpu_add_guest(train_csv): nothing can turn the guest's core module into a component",
        "has no `componentize` subcommand",
        "missing/wasm-tools does not exist",
        "cargo build --release -p wasmtime-gpu-host",
        "-DWASI_GPU_HOST=",
        "cargo install --locked wasm-tools",
    ] {
        assert!(text.contains(needle), "no `{needle}` in:\n{what}");
    }

    // Nothing on PATH either (clang-19 and cmake live in /usr/bin).
    if ["/usr/bin/wasmtime-gpu-host", "/usr/bin/wasm-tools", "/bin/wasm-tools"].iter().any(|p| Path::new(p).exists()) {
        return;
    }
    let _ = std::fs::remove_dir_all(project.join("build"));
    let (success, text, what) = output(configure(&project, prefix).env("PATH", "/usr/bin:/bin"));
    assert!(!success, "{what}");
    assert!(text.contains("wasmtime-gpu-host is not on PATH and WASI_GPU_HOST is not set"), "{what}");
    assert!(text.contains("wasm-tools is not on PATH and WASI_GPU_WASM_TOOLS is not set"), "{what}");
}
