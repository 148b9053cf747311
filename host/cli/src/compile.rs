//! Compiling a guest within the limits its user granted.
//!
//! Cranelift's memory grows with the guest's code (about 0.8 KB per wasm instruction,
//! measured: a 3.6 MB component of one 400,000-instruction function took 320 MB to
//! compile), and with parallel compilation one component of many large functions could
//! take many gigabytes of the host before its first instruction runs. So the host never
//! compiles a guest in its own process: it runs itself as `wasmtime-gpu-host compile-guest`
//! (a hidden subcommand) with the component on standard input, under `RLIMIT_DATA` of
//! [`compile_memory_limit`] (the guest's `--max-memory`, at least [`COMPILE_MEMORY_FLOOR`]),
//! and reads the compiled artefact (`Engine::precompile_component`) from its standard
//! output. The child dies with the host (`PR_SET_PDEATHSIG`) and is killed when `--timeout`
//! passes; a child that runs out of its memory is reported as `--max-memory` being too small.
//!
//! Compiled guests are cached in `wasmtime-gpu-host/` under wasmtime's cache directory, one
//! file per (SHA-256 of the component, engine configuration), written to a temporary file
//! and renamed; `--dir-rw` can never reach that directory (`run::check_writable_dirs`), so no
//! guest can plant machine code the host would load.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasi_gpu_backend::CancelToken;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The least memory a compile may use, whatever `--max-memory` says: this host's own
/// compiler state (about 35 MB for our 3.4 MB Rust guest) must fit beside the guest's code.
pub const COMPILE_MEMORY_FLOOR: u64 = 256 << 20;

/// Stack reserved per compiler thread (Rust's 2 MiB thread stacks, the main thread's
/// 8 MiB, with room): `RLIMIT_DATA` counts stacks too, and Cranelift compiles on one
/// thread per core.
const STACK_BYTES_PER_THREAD: u64 = 8 << 20;

/// Host memory (`RLIMIT_DATA`) the compiling process may use for a guest limited to
/// `max_memory` bytes of linear memory: that (at least [`COMPILE_MEMORY_FLOOR`]), plus the
/// compiler threads' stacks.
pub fn compile_memory_limit(max_memory: u64) -> u64 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64 + 1;
    max_memory.max(COMPILE_MEMORY_FLOOR).saturating_add(threads * STACK_BYTES_PER_THREAD)
}

/// Why a compile did not produce a component.
pub enum CompileError {
    /// `--timeout` passed while compiling.
    TimedOut,
    /// Anything else, as the one line to print.
    Failed(String),
}

/// The `compile-guest` child: reads a component from standard input, writes the compiled
/// artefact to standard output; an invalid component is reported on stderr with exit 1.
pub fn child_main(epoch_interruption: bool) -> i32 {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("cannot read the component from the host: {e}");
        return 1;
    }
    let engine = match crate::run::engine_config(epoch_interruption) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match engine.precompile_component(&bytes) {
        Ok(code) => match std::io::stdout().lock().write_all(&code) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cannot hand the compiled component to the host: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("{}", crate::run::one_line(&e));
            1
        }
    }
}

/// The cache file of `bytes` compiled for `engine`.
fn cache_file(dir: &Path, engine: &Engine, bytes: &[u8]) -> PathBuf {
    let mut config = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut config);
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}-{:016x}.cwasm", config.finish()))
}

/// The component `bytes` (read from `path`) compiled for `engine`: from `cache` when it has
/// it, else by a `compile-guest` child within `memory_limit` bytes, stopped when `cancel`
/// is cancelled (the run's time limit).
pub fn compile(
    engine: &Engine,
    epoch_interruption: bool,
    path: &Path,
    bytes: &[u8],
    cache: Option<&Path>,
    memory_limit: u64,
    cancel: &CancelToken,
) -> Result<Component, CompileError> {
    let cached = cache.map(|dir| cache_file(dir, engine, bytes));
    if let Some(file) = &cached
        && file.is_file()
    {
        // SAFETY: the file was written by `precompile_component` of this binary (its name
        // holds the engine's compatibility hash), in a directory no guest can write to;
        // wasmtime still checks its header and version, and a failure recompiles it.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, file) } {
            return Ok(c);
        }
    }
    let code = compile_in_child(path, bytes, epoch_interruption, memory_limit, cancel)?;
    // SAFETY: `code` is what `precompile_component` of this same binary, with the same
    // engine configuration, just wrote for us through a pipe only we hold.
    let component = unsafe { Component::deserialize(engine, &code) }.map_err(|e| {
        CompileError::Failed(format!("{}: loading the compiled guest failed: {}", path.display(), crate::run::one_line(&e)))
    })?;
    if let Some(file) = &cached {
        // Best effort: a cache that cannot be written only costs the next run a compile.
        let _ = write_atomically(file, &code);
    }
    Ok(component)
}

fn write_atomically(file: &Path, code: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.{}", std::process::id(), file.file_name().and_then(|n| n.to_str()).unwrap_or("cwasm")));
    let written = std::fs::write(&tmp, code).and_then(|()| std::fs::rename(&tmp, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn compile_in_child(
    path: &Path,
    bytes: &[u8],
    epoch_interruption: bool,
    memory_limit: u64,
    cancel: &CancelToken,
) -> Result<Vec<u8>, CompileError> {
    let failed = |what: String| CompileError::Failed(format!("{}: {what}", path.display()));
    // The running binary itself, even if its file has been replaced since it started.
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("compile-guest");
    if epoch_interruption {
        cmd.arg("--epoch-interruption");
    }
    // The environment is kept: wasmtime's `Config::new` reads some of it (e.g.
    // WASMTIME_BACKTRACE_DETAILS), and the child's engine must equal ours.
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (prctl, getrlimit, setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_DATA, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Never above a hard limit the host was started under.
            let want = (memory_limit as libc::rlim_t).min(limit.rlim_max);
            limit = libc::rlimit { rlim_cur: want, rlim_max: want };
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| failed(format!("cannot start the compiler process: {e}")))?;
    // Feed and drain on threads, so that neither pipe can fill up and stall the child.
    let mut stdin = child.stdin.take().expect("piped");
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut code = Vec::new();
        stdout.read_to_end(&mut code).map(|_| code)
    });
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if cancel.is_cancelled() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CompileError::TimedOut);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("waiting for the compiler process failed: {e}")));
            }
        }
    };
    let _ = feeder.join();
    let code = reader.join().ok().and_then(|r| r.ok());
    let message = errors.join().unwrap_or_default();
    let last = message.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
    // Rust's allocation-failure line, printed before the abort.
    let allocation = message.lines().find(|l| l.starts_with("memory allocation of")).map(str::to_string);
    let internal = last.starts_with("error: internal error in the host");
    match (status.code(), code) {
        (Some(0), Some(code)) => Ok(code),
        (Some(1), _) if !last.is_empty() && allocation.is_none() && !internal => Err(failed(format!("is not a valid component: {last}"))),
        _ if allocation.is_none() => Err(failed(format!("the compiler process failed ({status}): {}", last.trim_start_matches("error: ")))),
        _ => Err(failed(format!(
            "compiling it needed more than {memory_limit} bytes of host memory (--max-memory, at least {} MiB for \
             compiling); raise --max-memory or use a smaller guest ({})",
            COMPILE_MEMORY_FLOOR >> 20,
            allocation.unwrap_or_else(|| format!("the compiler process ended with {status}")),
        ))),
    }
}
