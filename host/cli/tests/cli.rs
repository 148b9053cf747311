//! End-to-end tests of the `wasmtime-gpu-host` binary: exit codes and messages for
//! `devices`, bad inputs, and tiny WAT components exercising exit codes and limits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn host() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmtime-gpu-host"));
    // Keep tests hermetic: no writes to the user's compile cache.
    c.env("WASMTIME_GPU_HOST_NO_CACHE", "1");
    c
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmtime-gpu-host-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write_wat(name: &str, wat: &str) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, wat::parse_str(wat).expect("test WAT must parse")).unwrap();
    path
}

fn run(args: &[&str], wasm: &Path) -> Output {
    let mut c = host();
    c.arg("run").args(args).arg(wasm);
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the host printed exactly one line to stderr and no Rust panic.
fn assert_one_clean_line(o: &Output) -> String {
    let e = stderr(o);
    assert!(!e.contains("panicked") && !e.contains("RUST_BACKTRACE"), "panic output: {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "expected one line, got: {e}");
    assert!(e.starts_with("error: "), "{e}");
    e
}

/// A command component whose `run` executes `body` (a core function body returning i32:
/// 0 = ok, 1 = err), with `exit-with-code` importable as `$exit` and one page of memory.
fn command(body: &str) -> String {
    format!(
        r#"(component
  (import "wasi:cli/exit@0.2.12" (instance $exit (export "exit-with-code" (func (param "status-code" u8)))))
  (core func $exitc (canon lower (func $exit "exit-with-code")))
  (core module $m
    (import "host" "exit" (func $exit (param i32)))
    (memory 1)
    (func (export "run") (result i32) {body}))
  (core instance $i (instantiate $m (with "host" (instance (export "exit" (func $exitc))))))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $ri (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $ri)))"#
    )
}

#[test]
fn devices_lists_every_backend_and_the_cpu() {
    let o = host().arg("devices").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for section in ["cuda:", "wgpu:", "cpu:"] {
        assert!(out.contains(section), "{out}");
    }
    assert!(out.contains("CPU reference"), "{out}");
}

#[test]
fn missing_file_is_exit_1() {
    let o = run(&["--backend", "cpu"], Path::new("/nonexistent/guest.wasm"));
    assert_eq!(o.status.code(), Some(1));
    let e = assert_one_clean_line(&o);
    assert!(e.contains("cannot read /nonexistent/guest.wasm"), "{e}");
}

#[test]
fn invalid_wasm_is_exit_1_with_clean_message() {
    let path = scratch("junk.wasm");
    std::fs::write(&path, b"this is not wasm at all").unwrap();
    let o = run(&["--backend", "cpu"], &path);
    assert_eq!(o.status.code(), Some(1));
    let e = assert_one_clean_line(&o);
    assert!(e.contains("not a WebAssembly binary"), "{e}");

    // A valid header with a corrupt body fails in the compiler, still as one line.
    let path = scratch("truncated.wasm");
    std::fs::write(&path, b"\0asm\x0d\0\x01\0\x07\xff").unwrap();
    let o = run(&["--backend", "cpu"], &path);
    assert_eq!(o.status.code(), Some(1));
    let e = assert_one_clean_line(&o);
    assert!(e.contains("is not a valid component"), "{e}");
}

#[test]
fn core_module_is_rejected_with_advice() {
    let path = write_wat("core.wasm", r#"(module (func (export "_start")))"#);
    let o = run(&["--backend", "cpu"], &path);
    assert_eq!(o.status.code(), Some(1));
    let e = assert_one_clean_line(&o);
    assert!(e.contains("core WebAssembly module, not a component"), "{e}");
    assert!(e.contains("wasm32-wasip2"), "{e}");
}

#[test]
fn component_without_run_export_is_exit_1() {
    let path = write_wat("norun.wasm", "(component)");
    let o = run(&["--backend", "cpu"], &path);
    assert_eq!(o.status.code(), Some(1));
    let e = assert_one_clean_line(&o);
    assert!(e.contains("wasi:cli/run"), "{e}");
}

#[test]
fn exit_codes_come_from_the_guest() {
    let ok = write_wat("ok.wasm", &command("i32.const 0"));
    let o = run(&["--backend", "cpu"], &ok);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));

    let err = write_wat("err.wasm", &command("i32.const 1"));
    assert_eq!(run(&["--backend", "cpu"], &err).status.code(), Some(1));

    let exit42 = write_wat("exit42.wasm", &command("i32.const 42 call $exit unreachable"));
    let o = run(&["--backend", "cpu"], &exit42);
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
}

#[test]
fn trap_is_exit_3_with_one_line() {
    let path = write_wat("trap.wasm", &command("unreachable"));
    let o = run(&["--backend", "cpu"], &path);
    assert_eq!(o.status.code(), Some(3));
    let e = assert_one_clean_line(&o);
    assert!(e.starts_with("error: guest trapped: "), "{e}");
    assert!(e.contains("unreachable"), "{e}");
}

#[test]
fn timeout_stops_an_endless_guest() {
    let path = write_wat("loop.wasm", &command("(loop $l (br $l)) i32.const 0"));
    let start = std::time::Instant::now();
    let o = run(&["--backend", "cpu", "--timeout", "0.5"], &path);
    assert!(start.elapsed().as_secs() < 30, "the timeout did not stop the guest");
    assert_eq!(o.status.code(), Some(3));
    let e = assert_one_clean_line(&o);
    assert!(e.contains("--timeout"), "{e}");
}

#[test]
fn max_memory_refuses_growth_and_names_the_limit() {
    // Grows by 1000 pages (64 MiB) and traps if that fails.
    let body = "(if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable)) i32.const 0";
    let path = write_wat("grow.wasm", &command(body));
    let o = run(&["--backend", "cpu"], &path);
    assert_eq!(o.status.code(), Some(0), "the default 4G limit allows 64 MiB: {}", stderr(&o));

    let o = run(&["--backend", "cpu", "--max-memory", "1M"], &path);
    assert_eq!(o.status.code(), Some(3));
    let e = assert_one_clean_line(&o);
    assert!(e.contains("--max-memory"), "{e}");
}

#[test]
fn profile_prints_the_table() {
    let ok = write_wat("ok-profile.wasm", &command("i32.const 0"));
    let o = run(&["--backend", "cpu", "--profile"], &ok);
    assert_eq!(o.status.code(), Some(0));
    let e = stderr(&o);
    assert!(e.contains("--- wasi:gpu profile (backend: cpu) ---"), "{e}");
    assert!(e.contains("total wall time:"), "{e}");
    assert!(e.contains("guest time outside wasi:gpu calls:"), "{e}");
    assert!(e.contains("peak device memory held: 0 bytes"), "{e}");
}

#[test]
fn explicit_backend_that_cannot_open_is_exit_1() {
    let ok = write_wat("ok-backend.wasm", &command("i32.const 0"));
    // Only meaningful where the backend really is unavailable; the probe says so.
    let devices = String::from_utf8_lossy(&host().arg("devices").output().unwrap().stdout).into_owned();
    let cuda_section = devices.split("wgpu:").next().unwrap_or_default();
    if cuda_section.contains("unavailable") {
        let o = run(&["--backend", "cuda"], &ok);
        assert_eq!(o.status.code(), Some(1));
        let e = assert_one_clean_line(&o);
        assert!(e.contains("CUDA backend is unavailable"), "{e}");
    }
}

#[test]
fn bad_usage_is_exit_2() {
    let o = host().args(["run", "--max-memory", "lots", "x.wasm"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not a size"), "{}", stderr(&o));
}

/// A component whose `run` succeeds only when it sees exactly `envs` environment
/// variables and `args` arguments (argv[0] included), via wasi:cli/environment.
fn environment_probe(envs: u32, args: u32) -> String {
    format!(
        r#"(component
  (import "wasi:cli/environment@0.2.0" (instance $env
    (export "get-environment" (func (result (list (tuple string string)))))
    (export "get-arguments" (func (result (list string))))))
  (core module $libc
    (memory (export "mem") 1)
    (global $bump (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
      (global.set $bump (i32.add (local.get $p) (local.get 3)))
      (local.get $p)))
  (core instance $libc (instantiate $libc))
  (core func $get-env (canon lower (func $env "get-environment")
    (memory (core memory $libc "mem")) (realloc (core func $libc "realloc"))))
  (core func $get-args (canon lower (func $env "get-arguments")
    (memory (core memory $libc "mem")) (realloc (core func $libc "realloc"))))
  (core module $main
    (import "libc" "mem" (memory 1))
    (import "env" "get-env" (func $get-env (param i32)))
    (import "env" "get-args" (func $get-args (param i32)))
    (func (export "run") (result i32)
      (call $get-env (i32.const 0))
      (if (i32.ne (i32.load (i32.const 4)) (i32.const {envs})) (then (return (i32.const 1))))
      (call $get-args (i32.const 8))
      (if (i32.ne (i32.load (i32.const 12)) (i32.const {args})) (then (return (i32.const 1))))
      (i32.const 0)))
  (core instance $main (instantiate $main
    (with "libc" (instance $libc))
    (with "env" (instance (export "get-env" (func $get-env)) (export "get-args" (func $get-args))))))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $ri (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $ri)))"#
    )
}

#[test]
fn guest_sees_only_the_given_environment_and_its_arguments() {
    // The test process surely has environment variables (PATH at least); none may leak. The
    // guest sees the host's two provenance variables (WASI_GPU_HOST, WASI_GPU_COMPONENT_SHA256,
    // for training receipts) and what --env gives, nothing else.
    assert!(std::env::vars_os().count() > 0);
    let none = write_wat("env0.wasm", &environment_probe(2, 1));
    let o = run(&["--backend", "cpu"], &none);
    assert_eq!(o.status.code(), Some(0), "host environment leaked or argv wrong: {}", stderr(&o));

    let two = write_wat("env2.wasm", &environment_probe(4, 3));
    let mut c = host();
    c.args(["run", "--backend", "cpu", "--env", "A=1", "--env", "B=x=y"]).arg(&two).args(["--", "--flag", "v"]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The same probe fails when the counts differ, so the check above can fail.
    let o = run(&["--backend", "cpu"], &two);
    assert_eq!(o.status.code(), Some(1));
}

/// A valid command component whose `run` is one function of `n` additions: Cranelift needs
/// about 0.8 KB per instruction to compile it (600,000: about 480 MB; measured at 400,000).
fn big_component(name: &str, n: usize) -> PathBuf {
    let mut body = String::with_capacity(n * 60);
    body.push_str("(local $x i32) ");
    for i in 0..n {
        body.push_str(&format!("(local.set $x (i32.add (local.get $x) (i32.const {i}))) "));
    }
    body.push_str("(i32.const 0)");
    write_wat(name, &command(&body))
}

/// Compiling a guest counts against its memory limit (at least 256 MiB for compiling, plus
/// the compiler threads' stacks) and
/// its time limit: a component that needs about 480 MB to compile is refused under
/// `--max-memory 64M` with one line naming the flag, and stopped by `--timeout` 0.3 s with
/// the trap status, both without a panic.
#[test]
fn compiling_stays_within_the_limits() {
    let path = big_component("big.wasm", 600_000);
    let o = run(&["--backend", "cpu", "--max-memory", "64M"], &path);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = assert_one_clean_line(&o);
    assert!(e.contains("--max-memory") && e.contains("compiling it needed more than"), "{e}");
    let start = std::time::Instant::now();
    let o = run(&["--backend", "cpu", "--timeout", "0.3"], &path);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = assert_one_clean_line(&o);
    assert!(e.contains("compiling the guest took longer than --timeout 0.3s"), "{e}");
    assert!(start.elapsed().as_secs_f64() < 5.0, "{:?}", start.elapsed());
}

/// A compiled guest is cached by content and loaded from the cache on the next run.
#[test]
fn compiled_guests_are_cached() {
    let cache = scratch("cache-home");
    let path = write_wat("cached.wasm", &command("(i32.const 0)"));
    // wasmtime's cache directory follows the XDG cache home.
    let go = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wasmtime-gpu-host"));
        c.env("XDG_CACHE_HOME", &cache).env("XDG_CONFIG_HOME", cache.join("config")).args(["run", "--backend", "cpu"]).arg(&path);
        c.output().unwrap()
    };
    assert_eq!(go().status.code(), Some(0));
    let dir = cache.join("wasmtime").join("wasmtime-gpu-host");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(go().status.code(), Some(0));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

/// No writable preopen reaches the compiled-guest cache: not its parent, not a directory
/// inside it (even one not created yet), not wasmtime's configuration, and not when this
/// run itself has the cache turned off.
#[test]
fn dir_rw_never_reaches_the_compile_cache() {
    let home = scratch("guard-home");
    let cache = home.join("wasmtime");
    std::fs::create_dir_all(&cache).unwrap();
    let config = home.join("config");
    std::fs::create_dir_all(config.join("wasmtime")).unwrap();
    let path = write_wat("guard.wasm", &command("(i32.const 0)"));
    let go = |dir: &Path, no_cache: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wasmtime-gpu-host"));
        c.env("XDG_CACHE_HOME", &home).env("XDG_CONFIG_HOME", &config);
        if no_cache {
            c.env("WASMTIME_GPU_HOST_NO_CACHE", "1");
        }
        c.args(["run", "--backend", "cpu", "--dir-rw"]).arg(format!("{}::.", dir.display())).arg(&path);
        c.output().unwrap()
    };
    for (dir, what) in [
        (home.clone(), "wasmtime's compilation cache"),
        (cache.join("wasmtime-gpu-host").join("later"), "wasmtime's compilation cache"),
        (config.clone(), "wasmtime's configuration"),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        for no_cache in [false, true] {
            let o = go(&dir, no_cache);
            assert_eq!(o.status.code(), Some(1), "{}: {}", dir.display(), stderr(&o));
            let e = assert_one_clean_line(&o);
            assert!(e.contains("--dir-rw") && e.contains(what), "{e}");
        }
    }
    let elsewhere = home.join("out");
    std::fs::create_dir_all(&elsewhere).unwrap();
    assert_eq!(go(&elsewhere, false).status.code(), Some(0));
}

/// `componentize`: a core module that is not a wasi:gpu guest, a component, a missing file:
/// one `error:` line each, exit 1, and no output file left behind.
#[test]
fn componentize_refuses_what_is_not_a_wasi_gpu_core_module() {
    let not_gpu = write_wat("not-gpu.core.wasm", r#"(module (memory (export "memory") 1) (func (export "_start")))"#);
    let component = write_wat("already.wasm", &command("i32.const 0"));
    let missing = scratch("missing.core.wasm");
    for (input, says) in [(&not_gpu, "does not import wasi:gpu/compute@0.1.0"), (&component, "already a component"), (&missing, "reading ")]
    {
        let out_file = scratch("out.wasm");
        let o = host().arg("componentize").arg(input).arg("-o").arg(&out_file).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(assert_one_clean_line(&o).contains(says), "{}: {}", input.display(), stderr(&o));
        assert!(!out_file.exists() && !scratch("out.wasm.tmp").exists(), "nothing written for {}", input.display());
    }
    let o = host().arg("componentize").arg(&not_gpu).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "-o is required: {}", stderr(&o));
}
