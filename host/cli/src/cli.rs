//! The command line: `run` a guest, list `devices`, or `componentize` a C/C++ core module.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Command-line interface of `wasmtime-gpu-host`.
#[derive(Debug, Parser)]
#[command(
    name = "wasmtime-gpu-host",
    version,
    about = "Runs wasi:gpu guests (WebAssembly components) under wasmtime on CUDA, wgpu or the CPU."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a wasi:cli command component that may import wasi:gpu.
    Run(RunArgs),
    /// Show what each backend probe found, and why a backend is unavailable.
    Devices,
    /// Turn a wasm32-wasi core module (a C/C++ guest) into a command component for `run`.
    Componentize(crate::componentize::ComponentizeArgs),
    /// Internal: compile the component on standard input to standard output, in the
    /// memory-limited child process `run` starts (host/cli/src/compile.rs).
    #[command(hide = true)]
    CompileGuest {
        /// Compile for an engine with epoch interruption (`run --timeout`).
        #[arg(long)]
        epoch_interruption: bool,
    },
}

/// Which backend runs the guest's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum BackendChoice {
    /// CUDA if it opens, else a hardware wgpu adapter, else the CPU.
    #[default]
    Auto,
    /// CUDA (device 0, or `--device N`); fails if CUDA is unusable.
    Cuda,
    /// The best wgpu adapter, software ones (llvmpipe) allowed; fails if none opens.
    Wgpu,
    /// The pure-Rust reference backend.
    Cpu,
}

/// Options of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Backend to run kernels on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// Device N of the backend, numbered as `devices` lists them: the CUDA device ordinal, or
    /// the wgpu adapter index (any adapter, software included); the CPU backend has device 0.
    /// Needs an explicit --backend (the numbers differ between backends). Default: the
    /// backend's best.
    #[arg(long, value_name = "N")]
    pub device: Option<usize>,

    /// Give the guest a host directory, read-only: HOST (seen as HOST) or HOST::GUEST. Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    pub dirs: Vec<DirMapping>,

    /// Give the guest a host directory it may also write (create, replace, delete files in).
    /// Refused for a directory holding wasmtime's compilation cache or this host binary.
    #[arg(long = "dir-rw", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    pub dirs_rw: Vec<DirMapping>,

    /// Let the guest read the host's standard input (closed otherwise).
    #[arg(long)]
    pub stdin: bool,

    /// Set an environment variable in the guest (the host's are not passed). Repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub envs: Vec<(String, String)>,

    /// Device memory the guest may hold at once, e.g. 512M, 8G [default: 16G].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_device_memory: Option<u64>,

    /// Buffers the guest may hold at once [default: 4096].
    #[arg(long, value_name = "N")]
    pub max_buffers: Option<u32>,

    /// Largest single buffer write, read or copy, e.g. 256M [default: 1G].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_transfer: Option<u64>,

    /// Guest linear memory, all memories together, e.g. 512M.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "4G")]
    pub max_memory: u64,

    /// Wall-clock limit for the whole run, compiling the guest included, in seconds
    /// (fractions allowed), or `none`. When it passes the guest is stopped, a kernel in
    /// flight at its next launch boundary, and the host exits with status 3; a device that
    /// does not stop within the grace period (2 s) ends the process with the same status.
    #[arg(long, value_name = "SECONDS|none", value_parser = parse_timeout, default_value = "3600")]
    pub timeout: TimeLimit,

    /// Print per-function call counts and times to stderr at exit.
    #[arg(long)]
    pub profile: bool,

    /// Say on stderr which backend ran the guest and, for `--backend auto`, why each backend
    /// before it was skipped (also part of --profile).
    #[arg(long, short)]
    pub verbose: bool,

    /// The guest: a WebAssembly component (e.g. built for wasm32-wasip2).
    #[arg(value_name = "GUEST.wasm")]
    pub wasm: PathBuf,

    /// Arguments passed to the guest after its name (put them after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// One `--dir` or `--dir-rw`: a host directory and the path the guest opens it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirMapping {
    /// Directory on the host.
    pub host: PathBuf,
    /// Name of the preopen inside the guest.
    pub guest: String,
    /// Whether the guest may write there (`--dir-rw`); `--dir` is read-only.
    pub writable: bool,
}

/// `--timeout`: a wall-clock limit, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLimit(pub Option<Duration>);

/// Parses `--timeout`: a positive number of seconds or `none`.
pub fn parse_timeout(s: &str) -> Result<TimeLimit, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(TimeLimit(None));
    }
    parse_seconds(s).map(|d| TimeLimit(Some(d)))
}

/// Parses `HOST` or `HOST::GUEST`.
pub fn parse_dir(s: &str) -> Result<DirMapping, String> {
    let (host, guest) = match s.split_once("::") {
        Some((h, g)) => (h, g),
        None => (s, s),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("`{s}` is not HOST or HOST::GUEST (both parts must be non-empty)"));
    }
    Ok(DirMapping { host: PathBuf::from(host), guest: guest.to_string(), writable: false })
}

/// Parses `KEY=VALUE` (the value may be empty or contain `=`).
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// Parses a byte count: plain bytes, or a number with K, M, G or T (powers of 1024;
/// `KB`/`KiB`/`k` spellings accepted), e.g. `4096`, `512M`, `8G`, `1.5G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: String = num.chars().filter(|&c| c != '_').collect();
    let bad = || format!("`{s}` is not a size; use bytes or a number with K, M, G, T (e.g. 512M, 8G)");
    if num.is_empty() {
        return Err(bad());
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit `{other}` in `{s}`; use bytes or K, M, G, T (e.g. 512M)")),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(1u64 << shift).ok_or_else(|| format!("`{s}` does not fit in 64 bits"));
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let bytes = f * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("`{s}` does not fit in 64 bits"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a positive number of seconds, e.g. `30` or `0.5`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 || !secs.is_finite() || secs > 1e9 {
        return Err(format!("the timeout must be a positive number of seconds, got `{s}`"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("8g"), Ok(8 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("1_000"), Ok(1000));
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("12Q").unwrap_err().contains("unknown size unit"));
        assert!(parse_size("-5").is_err());
        assert!(parse_size("99999999999T").unwrap_err().contains("64 bits"));
    }

    #[test]
    fn dirs() {
        let ro = |h: &str, g: &str| Ok(DirMapping { host: h.into(), guest: g.into(), writable: false });
        assert_eq!(parse_dir("."), ro(".", "."));
        assert_eq!(parse_dir("/data::/in"), ro("/data", "/in"));
        assert_eq!(parse_dir("out::out"), ro("out", "out"));
        assert!(parse_dir("::x").is_err());
        assert!(parse_dir("x::").is_err());
    }

    #[test]
    fn envs_and_seconds() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_env("A="), Ok(("A".into(), String::new())));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("nan").is_err());
        assert_eq!(parse_timeout("none"), Ok(TimeLimit(None)));
        assert_eq!(parse_timeout("2"), Ok(TimeLimit(Some(Duration::from_secs(2)))));
        assert!(parse_timeout("0").is_err());
    }

    #[test]
    fn full_command_line() {
        let cli = Cli::try_parse_from([
            "wasmtime-gpu-host",
            "run",
            "--backend",
            "cpu",
            "--dir",
            ".",
            "--dir-rw",
            "/tmp::/scratch",
            "--stdin",
            "--env",
            "K=V",
            "--max-device-memory",
            "512M",
            "--max-buffers",
            "7",
            "--max-transfer",
            "1M",
            "--max-memory",
            "64M",
            "--timeout",
            "2",
            "--profile",
            "g.wasm",
            "--",
            "--trees",
            "10",
            "-v",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else { panic!("expected run") };
        assert_eq!(r.backend, BackendChoice::Cpu);
        assert_eq!(r.dirs.len(), 1);
        assert_eq!(r.dirs_rw[0].guest, "/scratch");
        assert!(r.stdin);
        assert_eq!(r.envs, vec![("K".to_string(), "V".to_string())]);
        assert_eq!(r.max_device_memory, Some(512 << 20));
        assert_eq!(r.max_buffers, Some(7));
        assert_eq!(r.max_transfer, Some(1 << 20));
        assert_eq!(r.max_memory, 64 << 20);
        assert_eq!(r.timeout, TimeLimit(Some(Duration::from_secs(2))));
        assert!(r.profile);
        assert_eq!(r.wasm, PathBuf::from("g.wasm"));
        assert_eq!(r.args, ["--trees", "10", "-v"]);
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["wasmtime-gpu-host", "run", "g.wasm"]).unwrap();
        let Command::Run(r) = cli.command else { panic!("expected run") };
        assert_eq!(r.backend, BackendChoice::Auto);
        assert_eq!(r.max_memory, 4 << 30);
        assert_eq!(r.timeout, TimeLimit(Some(Duration::from_secs(3600))));
        assert!(r.dirs.is_empty() && r.dirs_rw.is_empty() && r.envs.is_empty() && r.args.is_empty() && !r.profile && !r.stdin);
        assert!(Cli::try_parse_from(["wasmtime-gpu-host", "run", "--backend", "tpu", "g.wasm"]).is_err());
    }
}
