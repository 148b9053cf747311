//! `parity`: the guest/backend parity check as a standalone program, for machines that
//! have the built artefacts but no cargo (e.g. a GPU box). `cargo xtask parity` builds and
//! runs it; `tests/tests/parity.rs` runs the same library code under `cargo test`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wasi_gpu_tests::parity::{self, Backend, Options};

const USAGE: &str = "\
usage: parity [options]

Runs every configuration on {rust, cpp} x backends, compares the cells with each other,
across guests and with tests/snapshots/parity__*.snap, and prints a table.

options:
  --host PATH          wasmtime-gpu-host (default: $WASI_GPU_HOST or ROOT/target/release/wasmtime-gpu-host)
  --rust PATH          guest-rust.wasm (default: $GUEST_RUST_WASM or ROOT/target/wasm/guest-rust.wasm)
  --cpp PATH           guest-cpp.wasm (default: $GUEST_CPP_WASM or ROOT/target/wasm/guest-cpp.wasm)
  --backends LIST      backends to try, e.g. cpu,wgpu,cuda (default: all; unavailable ones are skipped)
  --require LIST       backends that must run (a skipped cell is then a failure)
  --root DIR           checkout root (default: the current directory if it has data/diabetes_train.csv,
                       else the checkout this binary was built in)
  --data DIR           data directory (default: ROOT/data)
  --snapshots DIR      snapshot directory (default: ROOT/tests/snapshots)
  --work DIR           scratch directory (default: ROOT/target/parity)
  --only LIST          run only these configurations (comma-separated names)
  --bless              write missing/changed snapshots when all cells of a configuration agree
  --list               print the configurations and exit
  --write-ties-data    regenerate ROOT/data/synthetic_ties.csv and wide_ties.csv and exit
  --quiet              no progress lines on stderr

exit status: 0 all cells agree with each other and the snapshots, 1 a mismatch or failure, 2 usage";

struct Args {
    opts: Options,
    list: bool,
    write_ties: bool,
}

fn default_root() -> PathBuf {
    if Path::new("data/diabetes_train.csv").is_file() {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    } else {
        parity::build_workspace_root()
    }
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut root = None;
    let mut set: Vec<(String, String)> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bless" | "--list" | "--write-ties-data" | "--quiet" => flags.push(arg.clone()),
            "--host" | "--rust" | "--cpp" | "--backends" | "--require" | "--root" | "--data" | "--snapshots" | "--work" | "--only" => {
                let value = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
                if arg == "--root" {
                    root = Some(PathBuf::from(value));
                } else {
                    set.push((arg.clone(), value.clone()));
                }
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let root = root.unwrap_or_else(default_root);
    let mut opts = Options::for_root(&root);
    for (key, value) in set {
        match key.as_str() {
            "--host" => opts.host = value.into(),
            "--rust" => opts.rust = value.into(),
            "--cpp" => opts.cpp = value.into(),
            "--backends" => opts.backends = Backend::parse_list(&value)?,
            "--require" => opts.require = Backend::parse_list(&value)?,
            "--data" => opts.data_dir = value.into(),
            "--snapshots" => opts.snapshot_dir = value.into(),
            "--work" => opts.work_dir = value.into(),
            "--only" => opts.only = value.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            _ => unreachable!("every option with a value is matched above"),
        }
    }
    opts.bless = flags.iter().any(|f| f == "--bless");
    opts.progress = !flags.iter().any(|f| f == "--quiet");
    // The guests run with the work directory as their current directory: make paths absolute.
    for path in [&mut opts.host, &mut opts.rust, &mut opts.cpp, &mut opts.data_dir, &mut opts.snapshot_dir, &mut opts.work_dir] {
        if path.is_relative()
            && let Ok(cwd) = std::env::current_dir()
        {
            *path = cwd.join(&*path);
        }
    }
    Ok(Args { list: flags.iter().any(|f| f == "--list"), write_ties: flags.iter().any(|f| f == "--write-ties-data"), opts })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = match parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for c in parity::configs() {
            println!("{:<26} {} | {} / {} | {}", c.name, c.about, c.train, c.test, c.args.join(" "));
        }
        return ExitCode::SUCCESS;
    }
    if args.write_ties {
        for (name, text) in [(parity::ties::PATH, parity::ties::csv()), (parity::ties::WIDE_PATH, parity::ties::wide_csv())] {
            let path = args.opts.data_dir.join(Path::new(name).file_name().expect("the path names a file"));
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("error: writing {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", path.display());
        }
        return ExitCode::SUCCESS;
    }
    match parity::run(&args.opts) {
        Ok(report) => {
            print!("{report}");
            if report.failures(true).is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
