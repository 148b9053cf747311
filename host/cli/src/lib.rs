//! `wasmtime-gpu-host` as a library: the `wasi:gpu` host implementation, the guest
//! runner and the command line, so tests and fuzz targets can drive them in-process.
//! `src/main.rs` only maps [`main_with_args`]'s result to the process exit status.

pub mod backends;
pub mod cli;
pub mod compile;
pub mod componentize;
pub mod host;
pub mod limits;
pub mod profile;
pub mod run;

use std::any::Any;
use std::ffi::OsString;
use std::io::Write as _;

use clap::Parser as _;

pub use host::{GpuBuffer, HostState};
pub use run::{EXIT_HOST_ERROR, EXIT_TRAP, Outcome, RunOptions, RunReport};

/// The text of a panic payload (`&str` or `String`), for error messages.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

thread_local! {
    /// True while this thread runs backend code under [`catch_panic`], whose caller
    /// reports the panic itself; the hook then stays quiet.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs backend code, turning a panic into `Err(message)` without printing anything.
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let was = CATCHING.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    r.map_err(|p| panic_message(&*p))
}

/// Mesa's Vulkan drivers load the Wayland window-system code while wgpu enumerates adapters,
/// and libwayland prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.`
/// when that variable is missing (headless servers, CI, containers). The host never draws,
/// so when it is missing it points it at a private empty directory (mode 0700 under the
/// temporary directory), which silences that line; a directory the user set is kept.
/// Call it first thing in `main`, before any thread is started.
pub fn quiet_wayland_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir()) {
        return;
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("wasmtime-gpu-host-runtime-{uid}"));
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Only a directory of ours that nobody else can use (not a planted one).
    let ours = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0);
    if ours {
        // SAFETY: called from `main` before any other thread exists.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

/// Replaces the default panic output (a multi-line trace) with one `error:` line.
/// Panics inside backend calls are caught and turned into `kernel-failure` errors; this
/// hook only keeps any other panic from printing a trace.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        if CATCHING.with(|c| c.get()) {
            return;
        }
        let msg = panic_message(info.payload());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let _ = writeln!(std::io::stderr(), "error: internal error in the host: {msg}{at}");
    }));
}

/// Runs the command line `args` (including the program name) and returns the exit
/// status: the guest's own exit code, [`EXIT_TRAP`] for a trap, [`EXIT_HOST_ERROR`] when
/// the guest could not be started, 2 for usage errors.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match cli.command {
        cli::Command::Devices => {
            print!("{}", backends::devices_report());
            0
        }
        cli::Command::CompileGuest { epoch_interruption } => compile::child_main(epoch_interruption),
        cli::Command::Componentize(a) => componentize::main(&a),
        cli::Command::Run(a) => {
            let profile = a.profile;
            match run_guest(&RunOptions::from_args(&a), a.backend) {
                Ok(report) => finish(&report, profile, a.verbose),
                Err(msg) => {
                    eprintln!("error: {msg}");
                    EXIT_HOST_ERROR
                }
            }
        }
    }
}

/// Loads, compiles and runs one guest with the chosen backend.
pub fn run_guest(opts: &RunOptions, choice: cli::BackendChoice) -> Result<RunReport, String> {
    let start = std::time::Instant::now();
    let bytes = run::read_component_bytes(&opts.wasm)?;
    let opts = &run::with_provenance(opts, &bytes);
    let read = start.elapsed();
    let (backend, skipped) = backends::open_backend(choice, opts.device)?;
    let opened = start.elapsed();
    let (engine, cache) = run::engine(opts)?;
    // The time limit covers compiling the guest too, and so does the memory limit.
    let mut watchdog = run::Watchdog::start(&engine, opts.timeout, opts.grace);
    let limit = compile::compile_memory_limit(opts.max_memory);
    let epoch = opts.timeout.is_some();
    let startup = || run::Startup { read, backend: opened - read, compile: start.elapsed() - opened };
    let component = match compile::compile(&engine, epoch, &opts.wasm, &bytes, cache.as_deref(), limit, &watchdog.cancel_token()) {
        Ok(c) => c,
        Err(compile::CompileError::Failed(msg)) => return Err(msg),
        Err(compile::CompileError::TimedOut) => {
            let t = opts.timeout.unwrap_or_default().as_secs_f64();
            return Ok(RunReport {
                outcome: Outcome::Trapped(format!("wall-clock limit exceeded: compiling the guest took longer than --timeout {t}s")),
                profile: Default::default(),
                wall: Default::default(),
                backend: backend.info().backend.name(),
                leaked_buffers: 0,
                trap_details: None,
                startup: startup(),
                skipped_backends: skipped,
            });
        }
    };
    let startup = startup();
    let mut report = run::run_component(&engine, &component, backend, opts, &watchdog)?;
    watchdog.stop();
    report.startup = startup;
    report.skipped_backends = skipped;
    Ok(report)
}

/// Prints the trap line and the profile, and returns the exit status.
fn finish(report: &RunReport, profile: bool, verbose: bool) -> i32 {
    if let Outcome::Trapped(why) = &report.outcome {
        eprintln!("error: guest trapped: {why}");
        if std::env::var_os("WASI_GPU_HOST_BACKTRACE").is_some_and(|v| v != "0")
            && let Some(details) = &report.trap_details
        {
            eprintln!("{details}");
        }
    }
    if profile || verbose {
        eprintln!("backend: {}", report.backend);
        for why in &report.skipped_backends {
            eprintln!("backend skipped by --backend auto: {why}");
        }
    }
    if profile {
        eprint!("{}", report.profile.report(report.wall, report.backend));
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let s = report.startup;
        eprintln!(
            "startup (read, open backend, compile): {:.3} ms = read {:.3} + open backend (driver, device kernels) {:.3} + compile or load from cache {:.3}",
            ms(s.total()),
            ms(s.read),
            ms(s.backend),
            ms(s.compile)
        );
        if report.leaked_buffers > 0 {
            eprintln!("buffers still held at exit (released by the host): {}", report.leaked_buffers);
        }
    }
    report.outcome.exit_code()
}
