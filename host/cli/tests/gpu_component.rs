//! A hand-written component that imports `wasi:gpu/compute` checks, through real
//! wasm, that the host's bindings link, that buffers are created, sized, refused past a
//! limit and dropped, that the profile sees them, and that a forged handle traps.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A command component importing `[static]buffer.create`, `[method]buffer.size` and
/// the buffer destructor; `run` executes `body` (core function body returning 0 = ok).
fn gpu_command(body: &str) -> String {
    format!(
        r#"(component
  (import "wasi:gpu/compute@0.1.0" (instance $gpu
    (export "buffer" (type $buffer (sub resource)))
    (type $error (variant (case "out-of-memory" string) (case "invalid-argument" string)
      (case "limit-exceeded" string) (case "kernel-failure" string) (case "device-lost" string)))
    (export "error" (type $error-named (eq $error)))
    (type $own (own $buffer))
    (type $create-result (result $own (error $error-named)))
    (export "[static]buffer.create" (func (param "size" u64) (result $create-result)))
    (type $borrow (borrow $buffer))
    (export "[method]buffer.size" (func (param "self" $borrow) (result u64)))))
  (alias export $gpu "buffer" (type $buf))

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

  (core func $create (canon lower (func $gpu "[static]buffer.create")
    (memory (core memory $libc "mem")) (realloc (core func $libc "realloc"))))
  (core func $size (canon lower (func $gpu "[method]buffer.size")))
  (core func $drop (canon resource.drop $buf))

  (core module $main
    (import "libc" "mem" (memory 1))
    (import "gpu" "create" (func $create (param i64 i32)))
    (import "gpu" "size" (func $size (param i32) (result i64)))
    (import "gpu" "drop" (func $drop (param i32)))
    (func (export "run") (result i32) (local $h i32) {body}))
  (core instance $main (instantiate $main
    (with "libc" (instance $libc))
    (with "gpu" (instance (export "create" (func $create)) (export "size" (func $size)) (export "drop" (func $drop))))))
  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $ri (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $ri)))"#
    )
}

/// Creates 1024 bytes, checks the size, checks that 1 TiB is refused with
/// `limit-exceeded` (case 2), drops the buffer.
const BUFFER_LIFECYCLE: &str = r#"
    (call $create (i64.const 1024) (i32.const 0))
    (if (i32.ne (i32.load8_u (i32.const 0)) (i32.const 0)) (then (return (i32.const 1))))
    (local.set $h (i32.load (i32.const 4)))
    (if (i64.ne (call $size (local.get $h)) (i64.const 1024)) (then (return (i32.const 1))))
    (call $create (i64.const 0x10000000000) (i32.const 16))
    (if (i32.ne (i32.load8_u (i32.const 16)) (i32.const 1)) (then (return (i32.const 1))))
    (if (i32.ne (i32.load8_u (i32.const 20)) (i32.const 2)) (then (return (i32.const 1))))
    (call $drop (local.get $h))
    (i32.const 0)"#;

fn write_component(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmtime-gpu-host-gpu-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, wat::parse_str(gpu_command(body)).expect("test WAT must parse")).unwrap();
    path
}

fn run(args: &[&str], wasm: &PathBuf) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmtime-gpu-host"))
        .env("WASMTIME_GPU_HOST_NO_CACHE", "1")
        .arg("run")
        .args(args)
        .arg(wasm)
        .output()
        .unwrap()
}

#[test]
fn buffers_work_through_wasm_and_show_in_the_profile() {
    let path = write_component("lifecycle.wasm", BUFFER_LIFECYCLE);
    let o = run(&["--backend", "cpu", "--profile"], &path);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let create = err.lines().find(|l| l.starts_with("buffer.create")).unwrap_or_else(|| panic!("{err}"));
    assert_eq!(create.split_whitespace().nth(1), Some("2"), "{err}");
    assert!(err.contains("peak device memory held: 1024 bytes"), "{err}");
    assert!(!err.contains("buffers still held"), "{err}");
}

#[test]
fn device_memory_limit_reaches_the_guest_as_an_error() {
    // With a 512-byte limit the first create already fails, so `run` returns err (exit 1).
    let path = write_component("limited.wasm", BUFFER_LIFECYCLE);
    let o = run(&["--backend", "cpu", "--max-device-memory", "512"], &path);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn leaked_buffers_are_reported_and_released() {
    let body = "(call $create (i64.const 64) (i32.const 0)) (i32.const 0)";
    let path = write_component("leak.wasm", body);
    let o = run(&["--backend", "cpu", "--profile"], &path);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("buffers still held at exit (released by the host): 1"), "{err}");
}

#[test]
fn a_forged_handle_traps_cleanly() {
    let path = write_component("forged.wasm", "(drop (call $size (i32.const 77))) (i32.const 0)");
    let o = run(&["--backend", "cpu"], &path);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.starts_with("error: guest trapped: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
