//! `run`: loads a component, wires WASI and `wasi:gpu` into it, runs `wasi:cli/run`,
//! and classifies how it ended.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wasi_gpu_backend::{Backend, Device, Limits};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, OptLevel, Store, Trap};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx};

use crate::cli::{DirMapping, RunArgs};
use crate::host::{DeadlineExceeded, HostState, bindings::MlCompute};
use crate::limits::GuestLimiter;
use crate::profile::Profile;

/// Exit code when the guest trapped (including `--timeout` and `--max-memory`).
pub const EXIT_TRAP: i32 = 3;
/// Exit code when the host could not start the guest (bad file, backend, link error).
pub const EXIT_HOST_ERROR: i32 = 1;

/// Everything `run` needs, independent of the command line.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The component to run.
    pub wasm: PathBuf,
    /// Guest arguments after argv[0].
    pub args: Vec<String>,
    /// Preopened directories.
    pub dirs: Vec<DirMapping>,
    /// Guest environment (nothing is inherited).
    pub envs: Vec<(String, String)>,
    /// Device limits enforced by [`Device`].
    pub limits: Limits,
    /// Guest linear memory budget in bytes.
    pub max_memory: u64,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
}

impl RunOptions {
    /// Converts parsed arguments, filling unset limits from [`Limits::default`].
    pub fn from_args(a: &RunArgs) -> Self {
        let d = Limits::default();
        RunOptions {
            wasm: a.wasm.clone(),
            args: a.args.clone(),
            dirs: a.dirs.clone(),
            envs: a.envs.clone(),
            limits: Limits {
                max_device_bytes: a.max_device_memory.unwrap_or(d.max_device_bytes),
                max_buffers: a.max_buffers.unwrap_or(d.max_buffers),
                max_transfer_bytes: a.max_transfer.unwrap_or(d.max_transfer_bytes),
            },
            max_memory: a.max_memory,
            timeout: a.timeout,
        }
    }
}

/// How the guest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It returned from `run` (0 for ok, 1 for err) or called `exit`.
    Exited(i32),
    /// It trapped; the one-line reason, naming `--timeout` or `--max-memory` when one caused it.
    Trapped(String),
}

impl Outcome {
    /// The host process's exit status for this outcome.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(c) => *c,
            Outcome::Trapped(_) => EXIT_TRAP,
        }
    }
}

/// A finished run: the outcome plus what `--profile` reports.
#[derive(Debug)]
pub struct RunReport {
    /// How the guest ended.
    pub outcome: Outcome,
    /// Host-call timings and device-memory peak.
    pub profile: Profile,
    /// Wall time from instantiation to the end of `run`.
    pub wall: Duration,
    /// Name of the backend that ran the kernels.
    pub backend: &'static str,
    /// Buffers still live when the guest ended (all released since).
    pub leaked_buffers: usize,
    /// The full error with its wasm backtrace when the guest trapped.
    pub trap_details: Option<String>,
    /// Time to read and compile the component (filled in by [`crate::run_guest`]).
    pub startup: Duration,
    /// Why `--backend auto` skipped each backend it did not pick.
    pub skipped_backends: Vec<String>,
}

/// Reads a guest file and checks that it is a component, not a core module or junk.
pub fn read_component_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    check_component_header(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// Checks the 8-byte preamble: `\0asm`, then the component layer/version.
pub fn check_component_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("not a WebAssembly binary (it does not start with \\0asm); pass a .wasm component".into());
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Err("this is a core WebAssembly module, not a component; build the guest for wasm32-wasip2 \
                             (or wrap it with `wasm-tools component new`)"
            .into()),
        [_, _, 1, 0] => Ok(()),
        _ => Err(format!("unsupported WebAssembly binary version/layer {:02x?}", &bytes[4..8])),
    }
}

/// Builds the wasmtime engine: optimising Cranelift, epoch interruption only for `--timeout`,
/// and the on-disk compile cache when its configuration loads.
pub fn engine(timeout: bool) -> Result<Engine, String> {
    let mut config = Config::new();
    config.cranelift_opt_level(OptLevel::Speed);
    config.epoch_interruption(timeout);
    config.wasm_component_model(true);
    if std::env::var_os("WASMTIME_GPU_HOST_NO_CACHE").is_none()
        && let Ok(cache) = wasmtime::Cache::from_file(None)
    {
        config.cache(Some(cache));
    }
    Engine::new(&config).map_err(|e| format!("cannot configure wasmtime: {}", one_line(&e)))
}

/// Compiles the component bytes.
pub fn compile(engine: &Engine, path: &Path, bytes: &[u8]) -> Result<Component, String> {
    Component::from_binary(engine, bytes).map_err(|e| format!("{} is not a valid component: {}", path.display(), one_line(&e)))
}

/// A linker with WASI 0.2 (sync; includes `exit-with-code`, so exit codes survive) and `wasi:gpu`.
pub fn linker(engine: &Engine) -> Result<Linker<HostState>, String> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| format!("cannot link WASI: {}", one_line(&e)))?;
    MlCompute::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(|e| format!("cannot link wasi:gpu: {}", one_line(&e)))?;
    Ok(linker)
}

/// The guest's WASI context: args, the given env only, preopens, inherited stdio,
/// no network and no name lookup.
pub fn wasi_ctx(opts: &RunOptions) -> Result<WasiCtx, String> {
    let mut b = WasiCtx::builder();
    let argv0 = opts.wasm.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| opts.wasm.display().to_string());
    b.arg(argv0);
    b.args(&opts.args);
    b.envs(&opts.envs);
    b.inherit_stdio();
    b.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    b.socket_addr_check(|_, _| Box::pin(async { false }));
    for d in &opts.dirs {
        if !d.host.is_dir() {
            return Err(format!("--dir {}: not a directory on the host", d.host.display()));
        }
        b.preopened_dir(&d.host, &d.guest, FsPerms::ReadWrite)
            .map_err(|e| format!("--dir {}: cannot open it: {}", d.host.display(), one_line(&e)))?;
    }
    Ok(b.build())
}

/// Runs a compiled component to completion on `backend`. `Err` means it never started
/// (link error, missing `wasi:cli/run` export, bad `--dir`); traps and exits are an `Ok` outcome.
pub fn run_component(
    engine: &Engine,
    component: &Component,
    backend: Box<dyn Backend>,
    opts: &RunOptions,
) -> Result<RunReport, String> {
    let linker = linker(engine)?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| format!("{} cannot run here: {}", opts.wasm.display(), one_line(&e)))?;
    let pre = CommandPre::new(pre).map_err(|e| {
        format!("{} is not a wasi:cli command (it must export wasi:cli/run): {}", opts.wasm.display(), one_line(&e))
    })?;

    let wasi = wasi_ctx(opts)?;
    let device = Device::new(backend, opts.limits);
    let backend_name = device.info().backend.name();
    let start = Instant::now();
    let deadline = opts.timeout.map(|t| start + t);
    let state = HostState::new(wasi, device, GuestLimiter::new(opts.max_memory), deadline);
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // wasmtime caps the bytes a guest may pass into one host call (128 MiB by default) and
    // traps beyond it. Our bounds are --max-transfer, answered with a typed `limit-exceeded`,
    // and the guest's own memory (--max-memory), which no list can exceed: let a call carry
    // up to the larger of the two, so oversized transfers get the typed answer, not a trap.
    let most = opts.limits.max_transfer_bytes.max(opts.max_memory);
    store.set_hostcall_fuel(usize::try_from(most).unwrap_or(usize::MAX).saturating_add(1 << 20));

    // The ticker bumps the epoch once when the deadline passes; the guest then traps at
    // its next epoch check. It is cancelled as soon as the guest ends.
    let fired = Arc::new(AtomicBool::new(false));
    let (cancel, cancelled) = mpsc::channel::<()>();
    let ticker = opts.timeout.map(|t| {
        store.set_epoch_deadline(1);
        let engine = engine.clone();
        let fired = fired.clone();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(t) {
                fired.store(true, Ordering::SeqCst);
                engine.increment_epoch();
            }
        })
    });

    let result = pre.instantiate(&mut store).and_then(|cmd| cmd.wasi_cli_run().call_run(&mut store));
    let wall = start.elapsed();
    drop(cancel);
    if let Some(t) = ticker {
        let _ = t.join();
    }

    let mut trap_details = None;
    let outcome = match result {
        Ok(Ok(())) => Outcome::Exited(0),
        Ok(Err(())) => Outcome::Exited(1),
        Err(e) => {
            let outcome = classify(&e, fired.load(Ordering::SeqCst), opts, store.data());
            if matches!(outcome, Outcome::Trapped(_)) {
                trap_details = Some(format!("{e:?}"));
            }
            outcome
        }
    };
    let leaked_buffers = store.data().device().live_buffers();
    store.data_mut().release_all();
    let profile = store.data().profile.clone();
    Ok(RunReport {
        outcome,
        profile,
        wall,
        backend: backend_name,
        leaked_buffers,
        trap_details,
        startup: Duration::ZERO,
        skipped_backends: Vec::new(),
    })
}

/// Turns a failed `run` into an exit (WASI `exit`) or a one-line trap description.
fn classify(e: &wasmtime::Error, timeout_fired: bool, opts: &RunOptions, state: &HostState) -> Outcome {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return Outcome::Exited(exit.0);
    }
    let trap = e.downcast_ref::<Trap>().copied();
    let deadline_call = e.chain().any(|c| c.is::<DeadlineExceeded>());
    if deadline_call || (timeout_fired && trap == Some(Trap::Interrupt)) {
        let t = opts.timeout.unwrap_or_default();
        return Outcome::Trapped(format!("wall-clock limit exceeded: the guest ran longer than --timeout {}s", t.as_secs_f64()));
    }
    let what = match trap {
        Some(t) => t.to_string(),
        None => one_line_dyn(e.root_cause()),
    };
    match state.limiter.refused() {
        Some((held, wanted)) => Outcome::Trapped(format!(
            "{what} (after the guest hit the --max-memory limit: it held {held} bytes of linear memory and asked for \
             {wanted}, over the limit of {}; raise --max-memory)",
            state.limiter.max_bytes()
        )),
        None => Outcome::Trapped(what),
    }
}

/// An error and its causes on one line.
pub fn one_line(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        // Wasm backtraces are multi-line context; keep only their first line.
        let first = s.lines().next().unwrap_or("").trim().to_string();
        if !first.is_empty() && !parts.contains(&first) {
            parts.push(first);
        }
    }
    parts.join(": ")
}

fn one_line_dyn(e: &(dyn std::error::Error + 'static)) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        assert!(check_component_header(b"hello world").unwrap_err().contains("not a WebAssembly binary"));
        assert!(check_component_header(b"\0asm").unwrap_err().contains("not a WebAssembly binary"));
        assert!(check_component_header(b"\0asm\x01\0\0\0").unwrap_err().contains("core WebAssembly module"));
        assert!(check_component_header(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(check_component_header(b"\0asm\x02\0\x02\0").unwrap_err().contains("unsupported"));
    }
}
