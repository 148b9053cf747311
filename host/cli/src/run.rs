//! `run`: loads a component, wires WASI and `wasi:gpu` into it, runs `wasi:cli/run`,
//! and classifies how it ended.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wasi_gpu_backend::{Backend, CancelToken, Device, Limits};
use wasmtime::component::{Component, Linker, Resource, WasmList};
use wasmtime::{Config, Engine, OptLevel, Store, StoreContextMut, Trap};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx};

use crate::cli::{DirMapping, RunArgs};
use crate::host::bindings::{MlCompute, wasi::gpu::compute};
use crate::host::{DeadlineExceeded, GpuBuffer, HostState};
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
    /// Wall-clock limit for the whole run, compiling included.
    pub timeout: Option<Duration>,
    /// After the limit, how long the device gets to stop before the process ends itself
    /// ([`GRACE`] from the command line; `None` in-process, e.g. tests and fuzzing).
    pub grace: Option<Duration>,
    /// Whether the guest may read the host's stdin.
    pub stdin: bool,
    /// `--device N`: which device of the backend (`None`: the backend's best).
    pub device: Option<usize>,
}

/// What the host tells every guest about itself and the component it runs, as environment
/// variables (training receipts record them, docs/guests.md): `WASI_GPU_HOST` (name and
/// version) and `WASI_GPU_COMPONENT_SHA256` (of the component's bytes as read). They replace
/// any `--env` of the same name, so a guest never reports a component it is not.
pub fn with_provenance(opts: &RunOptions, component: &[u8]) -> RunOptions {
    use sha2::{Digest, Sha256};
    let sha: String = Sha256::digest(component).iter().map(|b| format!("{b:02x}")).collect();
    let mut out = opts.clone();
    out.envs.retain(|(k, _)| k != "WASI_GPU_HOST" && k != "WASI_GPU_COMPONENT_SHA256");
    out.envs.push(("WASI_GPU_HOST".into(), format!("wasmtime-gpu-host {}", env!("CARGO_PKG_VERSION"))));
    out.envs.push(("WASI_GPU_COMPONENT_SHA256".into(), sha));
    out
}

/// How long a run may overrun `--timeout` while a device call is under way before the
/// host ends the process (exit status [`EXIT_TRAP`]).
pub const GRACE: Duration = Duration::from_secs(2);

impl RunOptions {
    /// Converts parsed arguments, filling unset limits from [`Limits::default`].
    pub fn from_args(a: &RunArgs) -> Self {
        let d = Limits::default();
        RunOptions {
            wasm: a.wasm.clone(),
            args: a.args.clone(),
            dirs: a.dirs.iter().cloned().chain(a.dirs_rw.iter().map(|d| DirMapping { writable: true, ..d.clone() })).collect(),
            envs: a.envs.clone(),
            limits: Limits {
                max_device_bytes: a.max_device_memory.unwrap_or(d.max_device_bytes),
                max_buffers: a.max_buffers.unwrap_or(d.max_buffers),
                max_transfer_bytes: a.max_transfer.unwrap_or(d.max_transfer_bytes),
            },
            max_memory: a.max_memory,
            timeout: a.timeout.0,
            grace: Some(GRACE),
            stdin: a.stdin,
            device: a.device,
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

/// The steps before a guest runs, timed for `--profile`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Startup {
    /// Reading the component file.
    pub read: Duration,
    /// Opening the backend: for CUDA and wgpu the driver's initialisation and the device
    /// kernels' compilation (NVRTC, WGSL pipelines).
    pub backend: Duration,
    /// Configuring wasmtime and compiling the guest (or loading it from the cache).
    pub compile: Duration,
}

impl Startup {
    pub fn total(&self) -> Duration {
        self.read + self.backend + self.compile
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
    /// Time before the guest starts, by step (filled in by [`crate::run_guest`]).
    pub startup: Startup,
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

/// The wasmtime engine for guests: optimising Cranelift, the component model, and epoch
/// interruption when a time limit applies (`--timeout`). The `compile-guest` child builds
/// the same, so that what it compiles loads here.
pub fn engine_config(epoch_interruption: bool) -> Result<Engine, String> {
    let mut config = Config::new();
    config.cranelift_opt_level(OptLevel::Speed);
    config.epoch_interruption(epoch_interruption);
    config.wasm_component_model(true);
    Engine::new(&config).map_err(|e| format!("cannot configure wasmtime: {}", one_line(&e)))
}

/// The engine for `opts`, and the directory of compiled guests (`compile.rs`): under
/// wasmtime's cache directory when its configuration loads; none with
/// `WASMTIME_GPU_HOST_NO_CACHE` set. Whether or not this run uses the cache, no writable
/// preopen may reach it (a guest that could write there could plant machine code a later
/// run would load).
pub fn engine(opts: &RunOptions) -> Result<(Engine, Option<PathBuf>), String> {
    let wasmtime_cache = wasmtime::Cache::from_file(None).ok().map(|c| c.directory().clone());
    check_writable_dirs(opts, wasmtime_cache.as_deref())?;
    let cache =
        wasmtime_cache.filter(|_| std::env::var_os("WASMTIME_GPU_HOST_NO_CACHE").is_none()).map(|dir| dir.join("wasmtime-gpu-host"));
    Ok((engine_config(opts.timeout.is_some())?, cache))
}

/// `path` absolute, with symlinks resolved as far as it exists and the rest appended, so
/// that a directory not created yet is compared by where it will be.
fn resolve(path: &Path) -> Option<PathBuf> {
    let mut rest = Vec::new();
    let mut p = path;
    loop {
        if let Ok(mut c) = p.canonicalize() {
            c.extend(rest.iter().rev());
            return Some(c);
        }
        rest.push(p.file_name()?.to_owned());
        p = p.parent()?;
    }
}

/// Wasmtime's configuration directory (its `config.toml` chooses the cache directory).
fn wasmtime_config_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("wasmtime"))
}

/// Refuses a `--dir-rw` that contains, or lies inside, the compilation cache; or contains
/// wasmtime's configuration (which places the cache) or the host binary itself.
fn check_writable_dirs(opts: &RunOptions, cache: Option<&Path>) -> Result<(), String> {
    let exe = std::env::current_exe().ok().and_then(|p| resolve(&p));
    let cache = cache.and_then(resolve);
    let config = wasmtime_config_dir().and_then(|p| resolve(&p));
    for d in opts.dirs.iter().filter(|d| d.writable) {
        let Some(host) = resolve(&d.host) else { continue };
        let guarded = [
            (cache.clone(), true, "wasmtime's compilation cache"),
            (config.clone(), false, "wasmtime's configuration"),
            (exe.clone(), false, "this host binary"),
        ];
        for (path, inside_too, what) in guarded {
            if let Some(path) = path
                && (path.starts_with(&host) || (inside_too && host.starts_with(&path)))
            {
                return Err(format!(
                    "--dir-rw {}: it contains or lies inside {what} ({}); a guest able to write there could change \
                     code the host runs. Grant another directory (or --dir for read-only access)",
                    d.host.display(),
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Enforces `--timeout` over the whole run, compiling included: when the limit passes it
/// cancels device work (checked between launches), interrupts wasm (epoch), and, if the
/// run has still not ended after the grace period, ends the process with one `error:`
/// line and [`EXIT_TRAP`] whatever the device is doing.
pub struct Watchdog {
    /// Cancelled when the limit passes (before the epoch is bumped).
    cancel: CancelToken,
    done: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the clock now.
    pub fn start(engine: &Engine, timeout: Option<Duration>, grace: Option<Duration>) -> Self {
        let cancel = CancelToken::new();
        let (done, finished) = mpsc::channel::<()>();
        let thread = timeout.map(|t| {
            let (engine, cancel) = (engine.clone(), cancel.clone());
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(t) {
                    cancel.cancel();
                    engine.increment_epoch();
                    if let Some(g) = grace
                        && let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(g)
                    {
                        let _ = writeln!(
                            std::io::stderr(),
                            "error: guest trapped: wall-clock limit exceeded: the run took longer than --timeout {}s \
                             and did not stop within the {}s grace period; the host ended it",
                            t.as_secs_f64(),
                            g.as_secs_f64()
                        );
                        // Not `exit`: destructors and atexit handlers could wait for the device.
                        // SAFETY: `_exit` ends the process at once; nothing runs after it.
                        unsafe { libc::_exit(EXIT_TRAP) };
                    }
                }
            })
        });
        Watchdog { cancel, done: Some(done), thread }
    }

    /// Whether the limit has passed.
    pub fn fired(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The token a [`Device`] checks between launches.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// The run has ended: stops the clock.
    pub fn stop(&mut self) {
        self.done.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A linker with WASI 0.2 (sync; includes `exit-with-code`, so exit codes survive) and `wasi:gpu`.
pub fn linker(engine: &Engine) -> Result<Linker<HostState>, String> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| format!("cannot link WASI: {}", one_line(&e)))?;
    MlCompute::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(|e| format!("cannot link wasi:gpu: {}", one_line(&e)))?;
    // The generated `buffer.write` copies the whole list out of the guest before any check;
    // this one checks the length against --max-transfer and the buffer first.
    linker.allow_shadowing(true);
    linker
        .instance("wasi:gpu/compute@0.1.0")
        .and_then(|mut i| {
            i.func_wrap(
                "[method]buffer.write",
                |mut store: StoreContextMut<'_, HostState>, (this, offset, data): (Resource<GpuBuffer>, u64, WasmList<u8>)| {
                    if let Err(e) = store.data().precheck_write(&this, offset, data.len() as u64)? {
                        return Ok((Err(e),));
                    }
                    let bytes = data.as_le_slice(&store).to_vec();
                    compute::HostBuffer::write(store.data_mut(), this, offset, bytes).map(|r| (r,))
                },
            )
        })
        .map_err(|e| format!("cannot link wasi:gpu: {}", one_line(&e)))?;
    linker.allow_shadowing(false);
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
    b.inherit_stdout().inherit_stderr();
    if opts.stdin {
        b.inherit_stdin();
    }
    // The host runs the guest synchronously: blocking WASI calls (file reads, 64 KiB a call
    // in wasmtime-wasi) run on this thread instead of a hand-off to a blocking pool and back.
    b.allow_blocking_current_thread(true);
    b.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    b.socket_addr_check(|_, _| Box::pin(async { false }));
    for d in &opts.dirs {
        let flag = if d.writable { "--dir-rw" } else { "--dir" };
        if !d.host.is_dir() {
            return Err(format!("{flag} {}: not a directory on the host", d.host.display()));
        }
        let perms = if d.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        b.preopened_dir(&d.host, &d.guest, perms).map_err(|e| format!("{flag} {}: cannot open it: {}", d.host.display(), one_line(&e)))?;
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
    watchdog: &Watchdog,
) -> Result<RunReport, String> {
    let linker = linker(engine)?;
    let pre = linker.instantiate_pre(component).map_err(|e| format!("{} cannot run here: {}", opts.wasm.display(), one_line(&e)))?;
    let pre = CommandPre::new(pre)
        .map_err(|e| format!("{} is not a wasi:cli command (it must export wasi:cli/run): {}", opts.wasm.display(), one_line(&e)))?;

    let wasi = wasi_ctx(opts)?;
    let mut device = Device::new(backend, opts.limits);
    device.set_cancel_token(watchdog.cancel_token());
    let backend_name = device.info().backend.name();
    let start = Instant::now();
    let state = HostState::new(wasi, device, GuestLimiter::new(opts.max_memory), watchdog.cancel_token());
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // wasmtime caps the bytes a guest may pass into one host call (128 MiB by default) and
    // traps beyond it. Our bounds are --max-transfer, answered with a typed `limit-exceeded`
    // (`buffer.write`, linked in `linker`, checks its list's length in place before copying),
    // and the guest's own memory (--max-memory), which no list can exceed: let a call carry
    // up to the larger of the two, so oversized transfers get the typed answer, not a trap.
    let most = opts.limits.max_transfer_bytes.max(opts.max_memory);
    store.set_hostcall_fuel(usize::try_from(most).unwrap_or(usize::MAX).saturating_add(1 << 20));

    // The watchdog bumps the epoch once when the limit passes; the guest then traps at
    // its next epoch check. If the limit already passed (while compiling), the deadline is
    // the current epoch: the guest traps at its first check. (The watchdog cancels before
    // it bumps the epoch, so no order of the two misses the bump.)
    if opts.timeout.is_some() {
        store.set_epoch_deadline(if watchdog.fired() { 0 } else { 1 });
    }

    let result = pre.instantiate(&mut store).and_then(|cmd| cmd.wasi_cli_run().call_run(&mut store));
    let wall = start.elapsed();

    let mut trap_details = None;
    let outcome = match result {
        Ok(Ok(())) => Outcome::Exited(0),
        Ok(Err(())) => Outcome::Exited(1),
        Err(e) => {
            let outcome = classify(&e, watchdog.fired(), opts, store.data());
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
        startup: Startup::default(),
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
        return Outcome::Trapped(format!("wall-clock limit exceeded: the run took longer than --timeout {}s", t.as_secs_f64()));
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
