//! The host against a hostile guest (`guest-hostile.wasm`) run under the host binary, on
//! the CPU backend, on wgpu (software adapters allowed) and on CUDA wherever it opens
//! (`WASI_GPU_REQUIRE=cuda,wgpu` makes an absent one a failure): every attack must end with a
//! typed error the guest can print, or, for the fatal ones, with exit status 3 and one
//! clear line naming the cause; the host never prints Rust panic text. Also checks the
//! WASI sandbox: no host environment, no files outside `--dir`, no network.
//!
//! Builds nothing itself: `cargo xtask test` builds the artefacts and sets the paths;
//! `HOSTILE_WASM` (default target/wasm32-wasip2/release/guest-hostile.wasm) and
//! `WASI_GPU_HOST` (default target/release/wasmtime-gpu-host) override them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

fn artifact(var: &str, default: &str, build: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| workspace().join(default));
    assert!(path.is_file(), "{} does not exist; build it first ({build}) or point {var} at it", path.display());
    path
}

fn host() -> PathBuf {
    artifact("WASI_GPU_HOST", "target/release/wasmtime-gpu-host", "cargo build --release -p wasmtime-gpu-host")
}

fn hostile() -> PathBuf {
    artifact(
        "HOSTILE_WASM",
        "target/wasm32-wasip2/release/guest-hostile.wasm",
        "cargo build --release -p guest-hostile --target wasm32-wasip2",
    )
}

/// The attacks that end with typed errors (the guest's `all` runs them in this order).
const NON_FATAL: &[&str] = &[
    "read-past-end",
    "huge-offset",
    "huge-sizes",
    "zero-sizes",
    "aliased",
    "undersized",
    "bad-params",
    "planted-node-of",
    "planted-splits",
    "planted-nodes",
    "planted-bins",
    "device-memory",
    "max-buffers",
    "empty-slots",
    "scratch-hog",
    "valid",
];

/// Limits that make the exhaustion attacks quick.
const LIMIT_ARGS: &[&str] = &["--max-device-memory", "64M", "--max-buffers", "256", "--max-memory", "128M", "--timeout", "60"];

struct Run {
    out: Output,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    fn context(&self) -> String {
        format!("status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.out.status, self.stdout, self.stderr)
    }

    /// The host must never show a Rust panic or an internal error, whatever the guest did.
    fn assert_no_panic(&self) {
        for text in ["panicked at", "RUST_BACKTRACE", "stack backtrace", "internal error in the host"] {
            assert!(!self.stderr.contains(text), "stderr shows `{text}`:\n{}", self.context());
        }
    }
}

/// Runs the hostile guest with `host_args` before the wasm and `guest_args` after `--`.
fn run(backend: &str, host_args: &[&str], guest_args: &[&str]) -> Run {
    run_with(backend, host_args, guest_args, |_| {})
}

fn run_with(backend: &str, host_args: &[&str], guest_args: &[&str], tweak: impl FnOnce(&mut Command)) -> Run {
    let mut cmd = Command::new(host());
    cmd.args(["run", "--backend", backend]).args(host_args).arg(hostile()).arg("--").args(guest_args);
    tweak(&mut cmd);
    let start = Instant::now();
    let out = cmd.output().expect("start the host binary");
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Run { out, stdout, stderr, elapsed }
}

/// Whether `backend` opens here; wgpu needs a Vulkan driver (llvmpipe counts), CUDA a
/// driver and a GPU. A backend named in `WASI_GPU_REQUIRE` must open.
fn available(backend: &str) -> bool {
    let r = run(backend, &[], &["valid"]);
    if r.code() == Some(1) && r.stdout.is_empty() && r.stderr.contains(backend) {
        let required = std::env::var("WASI_GPU_REQUIRE").unwrap_or_default();
        assert!(!required.split(',').any(|b| b.trim() == backend), "{backend} is required but does not open:\n{}", r.stderr);
        eprintln!("skipping the {backend} backend: it does not open here:\n{}", r.stderr);
        return false;
    }
    true
}

/// Every backend that opens here (and fails the test if a required one does not).
fn backends() -> impl Iterator<Item = &'static str> {
    ["cpu", "wgpu", "cuda"].into_iter().filter(|b| available(b))
}

/// The lines where the guest saw an answer it did not expect.
fn unexpected_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.contains("UNEXPECTED")).collect()
}

/// Every non-fatal attack in one guest, then the known-answer computation: exit 0, every
/// step printed, every refusal typed, and the device still computes exact results.
fn all_attacks(backend: &str) {
    if !available(backend) {
        return;
    }
    let r = run(backend, LIMIT_ARGS, &["all"]);
    r.assert_no_panic();
    let unexpected = unexpected_lines(&r.stdout);
    assert!(unexpected.is_empty(), "unexpected answers on {backend}: {unexpected:#?}\n{}", r.context());
    for attack in NON_FATAL {
        assert!(r.stdout.contains(&format!("{attack}: PASS")), "{attack} did not finish on {backend}\n{}", r.context());
    }
    // The refusals are the typed errors the WIT promises, with the host's messages.
    for needle in [
        "read-past-end: read 16 bytes at offset 8: rejected invalid-argument: ",
        "huge-sizes: create u64::MAX bytes: rejected limit-exceeded: ",
        "huge-sizes: read u64::MAX bytes: rejected limit-exceeded: ",
        "aliased: bin-features with x = edges = bins: rejected invalid-argument: ",
        "device-memory: the next allocation: rejected limit-exceeded: ",
        "max-buffers: the next buffer: rejected limit-exceeded: ",
        "valid: bins are [0, 1, 2, 0, 1]: ok",
        "valid: sums are [20, 2^64 + 40]: ok",
    ] {
        assert!(r.stdout.contains(needle), "missing `{needle}` on {backend}\n{}", r.context());
    }
    let fails_only_known = r.stdout.lines().filter(|l| l.ends_with(": FAIL")).all(|l| backend == "wgpu" && l == "aliased: FAIL");
    assert!(fails_only_known, "a FAIL on {backend}\n{}", r.context());
    let expected = if r.stdout.contains(": FAIL") { Some(1) } else { Some(0) };
    assert_eq!(r.code(), expected, "{}", r.context());
}

#[test]
fn all_attacks_cpu() {
    all_attacks("cpu");
}

#[test]
fn all_attacks_wgpu() {
    all_attacks("wgpu");
}

#[test]
fn all_attacks_cuda() {
    all_attacks("cuda");
}

/// Each attack also runs on its own (a fresh guest), with the same outcome.
#[test]
fn each_attack_alone_cpu() {
    for attack in NON_FATAL {
        let r = run("cpu", LIMIT_ARGS, &[attack]);
        r.assert_no_panic();
        assert!(r.stdout.contains(&format!("{attack}: PASS")), "{attack}\n{}", r.context());
        assert!(!r.stdout.contains("UNEXPECTED"), "{attack}\n{}", r.context());
        assert_eq!(r.code(), Some(0), "{attack}\n{}", r.context());
    }
}

/// A fatal attack must end with exit 3 and one `error: guest trapped: ...` line containing
/// every string of `names`, quickly, and without panic text.
fn fatal(backend: &str, host_args: &[&str], attack: &str, names: &[&str]) {
    if !available(backend) {
        return;
    }
    let r = run(backend, host_args, &[attack]);
    r.assert_no_panic();
    assert_eq!(r.code(), Some(3), "{attack} on {backend}\n{}", r.context());
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("error: guest trapped: "))
        .unwrap_or_else(|| panic!("no `error: guest trapped:` line for {attack} on {backend}\n{}", r.context()));
    for name in names {
        assert!(line.contains(name), "the trap line of {attack} on {backend} does not mention `{name}`: {line}");
    }
    assert_eq!(r.stderr.matches("error: guest trapped").count(), 1, "{}", r.context());
    assert!(!r.stdout.contains("FAIL"), "{attack} on {backend} was not stopped\n{}", r.context());
    assert!(r.elapsed < Duration::from_secs(60), "{attack} on {backend} took {:?}", r.elapsed);
}

fn fatal_attacks(backend: &str) {
    fatal(backend, &[], "use-after-drop", &["unknown handle"]);
    fatal(backend, &["--max-memory", "64M"], "linear-memory", &["--max-memory"]);
    fatal(backend, &["--timeout", "1.5"], "forever", &["--timeout"]);
    fatal(backend, &["--timeout", "1.5"], "forever-gpu", &["--timeout"]);
    // One kernel call with hours of work: 2^44 predict steps, 2^36 histogram visits.
    stopped_between_launches(backend, &["--max-device-memory", "512M"], "endless-predict", "predict: 2^20 rows x 2^24 trees");
    stopped_between_launches(backend, &["--max-device-memory", "1G"], "endless-histograms", "build-histograms: 2^36 steps");
}

/// One kernel call with hours of work is stopped by `--timeout` 2 s between its launches
/// (or, on the CPU, between features): the ordinary trap line soon after the limit, not
/// the grace-period kill.
fn stopped_between_launches(backend: &str, host_args: &[&str], attack: &str, started: &str) {
    let limit = 2.0;
    let args = [&["--timeout", "2"], host_args].concat();
    fatal(backend, &args, attack, &["--timeout", "wall-clock limit exceeded"]);
    let r = run(backend, &args, &[attack]);
    assert!(!r.stderr.contains("grace period"), "{attack} on {backend} was killed, not stopped\n{}", r.context());
    assert!(r.stdout.contains(&format!("{attack}: {started}")), "{}", r.context());
    assert!(r.elapsed.as_secs_f64() < limit + 6.0, "{attack} on {backend} stopped after {:?}", r.elapsed);
}

fn fatal_attacks_cuda_or_skip() {
    if available("cuda") {
        fatal_attacks("cuda");
    }
}

#[test]
fn fatal_attacks_cpu() {
    fatal_attacks("cpu");
}

#[test]
fn fatal_attacks_wgpu() {
    fatal_attacks("wgpu");
}

#[test]
fn fatal_attacks_cuda() {
    fatal_attacks_cuda_or_skip();
}

/// The time limit holds even while the guest is blocked inside a host call, where no epoch
/// check runs: reading a standard input (granted with `--stdin`) that never ends. The
/// watchdog ends the process after the grace period with one trap line and exit 3.
#[test]
fn timeout_ends_a_run_blocked_in_a_host_call() {
    let mut cmd = Command::new(host());
    cmd.args(["run", "--backend", "cpu", "--stdin", "--timeout", "1.5"]).arg(hostile()).args(["--", "stdin"]);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("start the host");
    // Held open, unwritten, until the host has ended.
    let _stdin = child.stdin.take();
    let out = child.wait_with_output().expect("host output");
    let r = Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
        out,
    };
    r.assert_no_panic();
    assert_eq!(r.code(), Some(3), "{}", r.context());
    let line = r.stderr.lines().find(|l| l.starts_with("error: guest trapped: ")).unwrap_or_else(|| panic!("{}", r.context()));
    assert!(line.contains("--timeout") && line.contains("grace period"), "{line}");
    assert!(r.elapsed < Duration::from_secs(10), "took {:?}", r.elapsed);
}

/// Work scales with the buffers passed: a call with 192 bytes of buffers but 2^28 features
/// answers at once on every backend.
#[test]
fn work_scales_with_buffers() {
    for backend in backends() {
        let r = run(backend, &["--timeout", "20"], &["empty-slots"]);
        r.assert_no_panic();
        assert!(r.stdout.contains("empty-slots: PASS"), "{backend}\n{}", r.context());
        assert_eq!(r.code(), Some(0), "{backend}\n{}", r.context());
        assert!(r.elapsed < Duration::from_secs(5), "empty-slots on {backend} took {:?}", r.elapsed);
    }
}

/// Backend scratch counts against --max-device-memory: a call whose dense histogram would
/// need 1.5 GiB either fits the guest's 64 MiB or is refused, and the profile's peak
/// (buffers and scratch held) stays within the limit.
#[test]
fn scratch_is_charged_to_the_guest() {
    for backend in backends() {
        let r = run(backend, &["--max-device-memory", "64M", "--profile"], &["scratch-hog"]);
        r.assert_no_panic();
        assert!(r.stdout.contains("scratch-hog: PASS"), "{backend}\n{}", r.context());
        assert_eq!(r.code(), Some(0), "{backend}\n{}", r.context());
        let peak: u64 = r
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("peak device memory held: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no peak line\n{}", r.context()));
        assert!(peak <= 64 << 20, "{backend} held {peak} bytes, over the 64 MiB limit\n{}", r.context());
    }
}

/// `run` has a time limit even when none is given, and `--timeout none` lifts it.
#[test]
fn default_timeout_is_documented_and_overridable() {
    let out = Command::new(host()).args(["run", "--help"]).output().expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[default: 3600]"), "{help}");
    let r = run("cpu", &["--timeout", "none"], &["valid"]);
    assert_eq!(r.code(), Some(0), "{}", r.context());
}

/// The timeout really bounds the run: a 1.5 s limit stops a busy loop within a few seconds.
#[test]
fn timeout_is_prompt() {
    let r = run("cpu", &["--timeout", "1.5"], &["forever"]);
    assert_eq!(r.code(), Some(3), "{}", r.context());
    assert!(r.elapsed >= Duration::from_millis(1400), "stopped before the limit: {:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(15), "stopped late: {:?}", r.elapsed);
}

/// The host's environment is invisible to the guest unless passed with `--env`: the guest
/// sees only what the host says about itself and the component (`WASI_GPU_HOST`,
/// `WASI_GPU_COMPONENT_SHA256`, for training receipts) and the `--env` given.
#[test]
fn environment_is_not_inherited() {
    let secret = |c: &mut Command| {
        c.env("HOSTILE_SECRET", "host-only-value");
    };
    let r = run_with("cpu", &[], &["env", "HOSTILE_SECRET"], secret);
    r.assert_no_panic();
    assert_eq!(r.code(), Some(0), "{}", r.context());
    assert!(r.stdout.contains("env: visible variables: 2"), "{}", r.context());
    assert!(r.stdout.contains("env: variable: WASI_GPU_HOST=wasmtime-gpu-host "), "{}", r.context());
    assert!(r.stdout.contains("env: variable: WASI_GPU_COMPONENT_SHA256="), "{}", r.context());
    assert!(r.stdout.contains("HOSTILE_SECRET is not visible"), "{}", r.context());
    assert!(!r.stdout.contains("host-only-value"), "{}", r.context());
    assert!(!r.stdout.contains("PATH="), "{}", r.context());

    let r = run_with("cpu", &["--env", "HOSTILE_SECRET=given"], &["env", "HOSTILE_SECRET"], secret);
    assert_eq!(r.code(), Some(0), "{}", r.context());
    assert!(r.stdout.contains("env: visible variables: 3"), "{}", r.context());
    assert!(r.stdout.contains("HOSTILE_SECRET is visible: given"), "{}", r.context());
    assert!(!r.stdout.contains("host-only-value"), "{}", r.context());
}

/// Nothing outside `--dir` can be read, listed or created, through absolute paths or `..`.
#[test]
fn files_outside_dir_are_unreachable() {
    let base = std::env::temp_dir().join(format!("hostile-escape-{}", std::process::id()));
    let sandbox = base.join("sandbox");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&sandbox).expect("create sandbox");
    std::fs::write(sandbox.join("inside.txt"), b"inside").expect("write sandbox file");
    std::fs::write(base.join("outside.txt"), b"outside").expect("write outside file");
    let dir = format!("{}::.", sandbox.display());
    let r = run("cpu", &["--dir-rw", &dir], &["escape"]);
    r.assert_no_panic();
    assert!(!r.stdout.contains("UNEXPECTED"), "{}", r.context());
    assert!(r.stdout.contains("escape: read /etc/passwd: blocked"), "{}", r.context());
    assert!(r.stdout.contains("escape: read ../etc/passwd: blocked"), "{}", r.context());
    assert!(r.stdout.contains("escape: list ..: blocked"), "{}", r.context());
    assert!(r.stdout.contains("escape: list . (the preopen): ok 1 entries"), "{}", r.context());
    assert!(r.stdout.contains("escape: PASS"), "{}", r.context());
    assert_eq!(r.code(), Some(0), "{}", r.context());
    assert!(!base.join("escaped-by-guest-hostile").exists(), "the guest created a file next to its --dir");
    assert!(!Path::new("/tmp/escaped-by-guest-hostile").exists(), "the guest created /tmp/escaped-by-guest-hostile");
    let _ = std::fs::remove_dir_all(&base);
}

/// `--dir` is read-only: nothing can be created or opened for writing there; `--dir-rw`
/// allows both.
#[test]
fn dir_is_read_only_unless_dir_rw() {
    let sandbox = std::env::temp_dir().join(format!("hostile-ro-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&sandbox);
    std::fs::create_dir_all(&sandbox).expect("create sandbox");
    std::fs::write(sandbox.join("inside.txt"), b"inside").expect("write sandbox file");
    let dir = format!("{}::.", sandbox.display());
    let r = run("cpu", &["--dir", &dir], &["write-here"]);
    r.assert_no_panic();
    assert_eq!(r.code(), Some(0), "{}", r.context());
    assert!(r.stdout.contains("write-here: create ./written-by-guest-hostile: blocked"), "{}", r.context());
    assert!(r.stdout.contains("write-here: open ./inside.txt for writing: blocked"), "{}", r.context());
    assert!(!sandbox.join("written-by-guest-hostile").exists());
    assert_eq!(std::fs::read(sandbox.join("inside.txt")).unwrap(), b"inside");
    let r = run("cpu", &["--dir-rw", &dir], &["write-here"]);
    assert!(r.stdout.contains("write-here: create ./written-by-guest-hostile: ok wrote"), "{}", r.context());
    assert!(r.stdout.contains("write-here: open ./inside.txt for writing: ok opened"), "{}", r.context());
    assert!(sandbox.join("written-by-guest-hostile").exists());
    let _ = std::fs::remove_dir_all(&sandbox);
}

/// A writable preopen may not contain the host binary (or the compilation cache): the
/// guest could otherwise change code the host runs next time.
#[test]
fn dir_rw_over_the_host_binary_is_refused() {
    let bin_dir = host().canonicalize().unwrap().parent().unwrap().to_path_buf();
    let r = run("cpu", &["--dir-rw", &format!("{}::.", bin_dir.display())], &["valid"]);
    r.assert_no_panic();
    assert_eq!(r.code(), Some(1), "{}", r.context());
    assert!(r.stderr.contains("--dir-rw") && r.stderr.contains("this host binary"), "{}", r.context());
    let r = run("cpu", &["--dir", &format!("{}::.", bin_dir.display())], &["valid"]);
    assert_eq!(r.code(), Some(0), "read-only access is fine\n{}", r.context());
}

/// Standard input is closed unless `--stdin` passes it through.
#[test]
fn stdin_is_closed_unless_asked() {
    let feed = |extra: &[&str]| {
        let mut cmd = Command::new(host());
        cmd.args(["run", "--backend", "cpu"]).args(extra).arg(hostile()).args(["--", "stdin"]);
        cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("start the host");
        use std::io::Write as _;
        let _ = child.stdin.take().unwrap().write_all(b"host secret\n");
        let out = child.wait_with_output().expect("host output");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let closed = feed(&[]);
    assert!(closed.contains("stdin: read: 0 bytes") || closed.contains("stdin: read: failed"), "{closed}");
    assert!(!closed.contains("host secret"), "{closed}");
    let open = feed(&["--stdin"]);
    assert!(open.contains("stdin: read: 12 bytes: \"host secret\""), "{open}");
}

/// No TCP, UDP or name lookup, even to a port that is listening on the host.
#[test]
fn network_is_denied() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local listener");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let port = listener.local_addr().expect("local addr").port().to_string();
    let r = run("cpu", &[], &["net", &port]);
    r.assert_no_panic();
    assert!(!r.stdout.contains("UNEXPECTED"), "{}", r.context());
    assert!(r.stdout.contains(&format!("net: tcp connect 127.0.0.1:{port}: blocked")), "{}", r.context());
    assert!(r.stdout.contains("net: udp send: blocked"), "{}", r.context());
    assert!(r.stdout.contains("net: name lookup of localhost: blocked"), "{}", r.context());
    assert!(r.stdout.contains("net: PASS"), "{}", r.context());
    assert_eq!(r.code(), Some(0), "{}", r.context());
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the listener saw a connection from the guest: {other:?}"),
    }
}

/// An unknown attack is a usage error of the guest, not of the host.
#[test]
fn unknown_attack_is_a_usage_error() {
    let r = run("cpu", &[], &["no-such-attack"]);
    r.assert_no_panic();
    assert_eq!(r.code(), Some(1), "{}", r.context());
    assert!(r.stderr.contains("usage: guest-hostile ATTACK"), "{}", r.context());
}

/// A single write bigger than wasmtime's default per-call allowance (128 MiB) works within
/// --max-transfer, and beyond --max-transfer is refused with `limit-exceeded`, never a trap.
#[test]
fn big_transfers_follow_max_transfer_not_wasmtime_defaults() {
    let r = run("cpu", &[], &["big-write"]);
    r.assert_no_panic();
    assert_eq!(r.code(), Some(0), "{}", r.context());
    assert!(r.stdout.contains("big-write: write 200 MiB in one call: ok"), "{}", r.context());
    assert!(r.stdout.contains("big-write: contents: "), "{}", r.context());
    let r = run("cpu", &["--max-transfer", "64M"], &["big-write"]);
    r.assert_no_panic();
    assert_eq!(r.code(), Some(0), "{}", r.context());
    assert!(r.stdout.contains("big-write: write 200 MiB in one call: rejected limit-exceeded"), "{}", r.context());
}
