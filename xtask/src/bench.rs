//! `cargo xtask bench`: our guests on each backend against scikit-learn and XGBoost,
//! same machine, same run, same data files, matched parameters (docs/benchmarks.md).
//!
//! Workloads: the seed's diabetes split (200 trees, depth 16) and Friedman #1 synthetic
//! sets (src/synth.rs) of the requested sizes. Our rows come from running the host
//! binary with each built guest and each requested backend; the anchors from
//! `bench/run_anchors.py` in a Python that has scikit-learn, NumPy and XGBoost (a venv
//! made under target/bench-venv, or one given with `--python`). Results go to
//! target/bench/results.{json,md} and target/bench/train_time.svg.
//!
//! Nothing here needs cargo at run time: the built `xtask` binary can be copied next to
//! the host binary on a machine without Rust and run from the repository root.

mod report;
mod run;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use clap::{ArgAction, ValueEnum};
use serde_json::Value;

use crate::{Backend, synth};
use run::{Measurement, System};

/// Everything `bench` was asked to do: the options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Synthetic Friedman #1 training sizes, e.g. 100k,1m,10m (x 32 features; test sets are
    /// 20%, at most 200k rows).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = synth::parse_rows, default_value = "100k", action = ArgAction::Set)]
    sizes: Vec<u64>,
    /// Skip the diabetes workload (always 200 trees, max depth 16).
    #[arg(long = "no-diabetes", action = ArgAction::SetFalse)]
    diabetes: bool,
    /// Our backends; one that cannot open is reported as a failed row.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "cpu,wgpu,cuda", action = ArgAction::Set)]
    backends: Vec<Backend>,
    /// Guests; one that is not built is noted and skipped.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "rust,cpp", action = ArgAction::Set)]
    guests: Vec<Guest>,
    /// Runs per system, medians reported [default: 3; 1 for >= 5M rows].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    repeats: Option<u32>,
    /// Trees of the synthetic workloads.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    trees: u32,
    /// Max depth of the synthetic workloads, 0 = unlimited.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_depth: u32,
    /// Model and data seed.
    #[arg(long, value_name = "N", default_value_t = 42)]
    seed: u64,
    /// Anchors: sklearn, xgboost (comma-separated), or none.
    #[arg(long, value_name = "LIST|none", value_parser = parse_anchors, default_value = "sklearn,xgboost")]
    anchors: Anchors,
    /// Skip scikit-learn above this many training rows.
    #[arg(long, value_name = "N", value_parser = synth::parse_rows, default_value = "1m")]
    sklearn_max_rows: u64,
    /// XGBoost device.
    #[arg(long, value_name = "D", value_enum, default_value_t = XgbDevice::Auto)]
    device: XgbDevice,
    /// Python for the anchors; implies --no-install.
    #[arg(long, value_name = "PATH", env = "BENCH_PYTHON")]
    python: Option<PathBuf>,
    /// Do not create target/bench-venv; use --python, $BENCH_PYTHON or python3.
    #[arg(long = "no-install", action = ArgAction::SetFalse)]
    install: bool,
    /// Host binary [default: target/release/wasmtime-gpu-host].
    #[arg(long, value_name = "PATH", env = "WASI_GPU_HOST")]
    host: Option<PathBuf>,
    /// Per run, for our host and for each anchor, in seconds [default: none].
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: Option<f64>,
}

/// A guest of `--guests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Guest {
    /// The Rust guest (target/wasm32-wasip2/release/guest-rust.wasm).
    Rust,
    /// The C++ guest (target/wasm/guest-cpp.wasm).
    Cpp,
}

impl Guest {
    fn as_str(self) -> &'static str {
        match self {
            Guest::Rust => "rust",
            Guest::Cpp => "cpp",
        }
    }
}

/// An anchor of `--anchors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Anchor {
    /// scikit-learn's RandomForestRegressor.
    Sklearn,
    /// XGBoost's XGBRFRegressor.
    Xgboost,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Anchor::Sklearn => "sklearn",
            Anchor::Xgboost => "xgboost",
        }
    }
}

/// `--anchors`: the anchors to run, empty for `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchors(Vec<Anchor>);

/// Parses `--anchors`: `none`, or a comma-separated list of anchors.
fn parse_anchors(s: &str) -> Result<Anchors, String> {
    if s == "none" {
        return Ok(Anchors(Vec::new()));
    }
    let items = s.split(',').map(str::trim).filter(|x| !x.is_empty());
    items
        .map(|i| Anchor::from_str(i, false).map_err(|_| format!("unknown anchor `{i}` (expected sklearn, xgboost or none)")))
        .collect::<Result<_, _>>()
        .map(Anchors)
}

/// XGBoost's device (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XgbDevice {
    /// cuda if nvidia-smi sees a GPU, else cpu.
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA device.
    Cuda,
}

impl XgbDevice {
    fn as_str(self) -> &'static str {
        match self {
            XgbDevice::Auto => "auto",
            XgbDevice::Cpu => "cpu",
            XgbDevice::Cuda => "cuda",
        }
    }
}

/// Parses `--timeout`: a positive number of seconds.
fn parse_timeout(s: &str) -> Result<f64, String> {
    let t: f64 = s.parse().map_err(|_| "--timeout takes seconds".to_string())?;
    if t > 0.0 && t.is_finite() { Ok(t) } else { Err("--timeout must be a positive number of seconds".into()) }
}

/// One data set with the parameters every system trains it with.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Short name used in tables and file names, e.g. `diabetes`, `friedman1-100k`.
    pub name: String,
    /// Training file, relative to the repository root (the guest's `.`).
    pub train: PathBuf,
    /// Test file, relative to the repository root.
    pub test: PathBuf,
    /// Training rows.
    pub train_rows: u64,
    /// Test rows.
    pub test_rows: u64,
    /// Feature columns.
    pub features: u64,
    /// Trees per forest.
    pub trees: u32,
    /// Maximum depth, 0 = unlimited.
    pub max_depth: u32,
    /// Runs per system.
    pub repeats: u32,
}

/// `100000` -> `100k`, `10000000` -> `10m`.
pub fn short_rows(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}m", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Data rows (lines after the header) and columns of a CSV file.
fn csv_shape(path: &Path) -> Result<(u64, u64)> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().with_context(|| format!("{} is empty", path.display()))?;
    Ok((lines.count() as u64, header.split(',').count() as u64))
}

fn relative(root: &Path, p: &Path) -> Result<PathBuf> {
    p.strip_prefix(root)
        .map(Path::to_path_buf)
        .with_context(|| format!("{} is not under the repository root {}", p.display(), root.display()))
}

fn workloads(root: &Path, o: &Options) -> Result<Vec<Workload>> {
    let repeats_for = |rows: u64| o.repeats.unwrap_or(if rows >= 5_000_000 { 1 } else { 3 });
    let mut out = Vec::new();
    if o.diabetes {
        let train = PathBuf::from("data/diabetes_train.csv");
        let test = PathBuf::from("data/diabetes_test.csv");
        let (train_rows, cols) = csv_shape(&root.join(&train))?;
        let (test_rows, _) = csv_shape(&root.join(&test))?;
        out.push(Workload {
            name: "diabetes".into(),
            train,
            test,
            train_rows,
            test_rows,
            features: cols - 1,
            trees: 200,
            max_depth: 16,
            repeats: repeats_for(train_rows),
        });
    }
    let data_dir = root.join("target/bench/data");
    for &rows in &o.sizes {
        let d = synth::ensure_dataset(&data_dir, rows, o.seed)?;
        out.push(Workload {
            name: format!("friedman1-{}", short_rows(rows)),
            train: relative(root, &d.train)?,
            test: relative(root, &d.test)?,
            train_rows: d.train_rows,
            test_rows: d.test_rows,
            features: synth::FEATURES as u64,
            trees: o.trees,
            max_depth: o.max_depth,
            repeats: repeats_for(rows),
        });
    }
    Ok(out)
}

/// The Python that runs the anchors: the given one, or target/bench-venv (made and
/// filled from PyPI when missing), or `python3` with `--no-install`.
fn python(root: &Path, o: &Options) -> Result<PathBuf> {
    let imports = "import numpy, sklearn, xgboost";
    let works = |py: &Path, code: &str| Command::new(py).args(["-c", code]).status().map(|s| s.success()).unwrap_or(false);
    if let Some(py) = &o.python {
        return Ok(py.clone());
    }
    if !o.install {
        return Ok(PathBuf::from("python3"));
    }
    let venv = root.join("target/bench-venv");
    let py = venv.join("bin/python");
    if !py.exists() {
        progress(&format!("creating {}", venv.display()));
        let st = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().context("running python3 -m venv")?;
        ensure!(st.success(), "python3 -m venv {} failed (is python3-venv installed?)", venv.display());
    }
    if !works(&py, imports) {
        progress(&format!("installing scikit-learn, numpy, xgboost into {}", venv.display()));
        let st = Command::new(&py)
            .args(["-m", "pip", "install", "--quiet", "scikit-learn", "numpy", "xgboost"])
            .status()
            .context("running pip")?;
        ensure!(st.success(), "pip install scikit-learn numpy xgboost failed; use --python or --no-install");
    }
    Ok(py)
}

/// Runs the anchors of one workload through bench/run_anchors.py.
fn anchors(root: &Path, o: &Options, py: &Path, w: &Workload) -> Vec<Measurement> {
    let mut systems: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for &a in &o.anchors.0 {
        if a == Anchor::Sklearn && w.train_rows > o.sklearn_max_rows {
            out.push(Measurement::skipped(
                System::anchor("sklearn", "cpu"),
                format!("skipped: {} training rows > --sklearn-max-rows {}", w.train_rows, o.sklearn_max_rows),
            ));
        } else {
            systems.push(a.as_str());
        }
    }
    if systems.is_empty() {
        return out;
    }
    let json_path = root.join(format!("target/bench/anchors-{}.json", w.name));
    let mut cmd = Command::new(py);
    cmd.current_dir(root)
        .arg(root.join("bench/run_anchors.py"))
        .arg("--train")
        .arg(root.join(&w.train))
        .arg("--test")
        .arg(root.join(&w.test))
        .args(["--trees", &w.trees.to_string(), "--max-depth", &w.max_depth.to_string()])
        .args(["--seed", &o.seed.to_string(), "--repeats", &w.repeats.to_string()])
        .args(["--device", o.device.as_str(), "--anchors", &systems.join(",")])
        .arg("--out")
        .arg(&json_path);
    if let Some(t) = o.timeout {
        cmd.args(["--timeout", &t.to_string()]);
    }
    progress(&format!("{}: anchors {} (all their repeats in one Python process)", w.name, systems.join(", ")));
    let _ = fs::remove_file(&json_path);
    let status = cmd.status();
    let doc: Result<Value> = fs::read_to_string(&json_path)
        .with_context(|| match &status {
            Ok(s) => format!("run_anchors.py wrote no {} ({s})", json_path.display()),
            Err(e) => format!("could not start {}: {e}", py.display()),
        })
        .and_then(|t| serde_json::from_str(&t).context("run_anchors.py wrote invalid JSON"));
    match doc {
        Ok(doc) => {
            let results = doc["results"].as_array().cloned().unwrap_or_default();
            for s in &systems {
                match results.iter().find(|r| r["system"] == *s) {
                    Some(r) => out.push(Measurement::from_anchor(r, &doc["versions"])),
                    None => out.push(Measurement::skipped(System::anchor(s, "?"), "no result from run_anchors.py".into())),
                }
            }
        }
        Err(e) => {
            for s in &systems {
                out.push(Measurement::skipped(System::anchor(s, "?"), format!("failed: {e:#}")));
            }
        }
    }
    out
}

/// A short description of the machine for the report header.
fn machine() -> Value {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let gpu = Command::new("nvidia-smi")
        .args(["--query-gpu=name,memory.total", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().replace('\n', "; "))
        .filter(|s| !s.is_empty());
    let host = fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
    serde_json::json!({ "cpu": cpu, "cores": cores, "gpu": gpu, "hostname": host, "date_utc": report::utc_now() })
}

/// The repository root to benchmark in: the one this xtask was built from when it is
/// still there, else the current directory (a copied `xtask` binary run from a checkout
/// on another machine, e.g. a GPU machine without Rust).
pub fn root(built_from: &Path) -> PathBuf {
    let marker = Path::new("bench/run_anchors.py");
    if built_from.join(marker).is_file() {
        return built_from.to_path_buf();
    }
    std::env::current_dir().unwrap_or_else(|_| built_from.to_path_buf())
}

/// Entry point of `cargo xtask bench`.
/// When this bench run started, for [`progress`].
static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// One progress line on stderr: `bench [ELAPSED s] MESSAGE`, elapsed since the run started.
pub fn progress(message: &str) {
    let t = START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64();
    eprintln!("bench [{t:7.1} s] {message}");
}

pub fn command(built_from: &Path, o: &Options) -> Result<()> {
    START.get_or_init(std::time::Instant::now);
    let root = &root(built_from);
    ensure!(
        root.join("data/diabetes_train.csv").is_file(),
        "{} does not look like the repository root (no data/diabetes_train.csv); run from the checkout",
        root.display()
    );
    let out_dir = root.join("target/bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let host = o.host.clone().unwrap_or_else(|| root.join("target/release/wasmtime-gpu-host"));
    let guests: Vec<(String, PathBuf)> = o
        .guests
        .iter()
        .map(|g| {
            let p = match g {
                Guest::Rust => "target/wasm32-wasip2/release/guest-rust.wasm",
                Guest::Cpp => "target/wasm/guest-cpp.wasm",
            };
            (g.as_str().to_string(), PathBuf::from(p))
        })
        .collect();
    let mut notes = Vec::new();
    let host_ok = host.is_file();
    if !host_ok {
        notes.push(format!(
            "host binary {} not found (build it with `cargo build --release -p wasmtime-gpu-host` or `cargo xtask build-all`): our rows are missing",
            host.display()
        ));
    }
    let built: Vec<&(String, PathBuf)> = guests
        .iter()
        .filter(|(g, p)| {
            let ok = root.join(p).is_file();
            if !ok {
                notes.push(format!("guest `{g}` not built ({} missing): its rows are missing", p.display()));
            }
            ok
        })
        .collect();

    let work = workloads(root, o)?;
    let py = if o.anchors.0.is_empty() { None } else { Some(python(root, o)?) };

    let mut results: Vec<(Workload, Vec<Measurement>)> = Vec::new();
    for w in &work {
        progress(&format!(
            "{} ({} train x {} features, {} test; {} trees, depth {}; {} repeats)",
            w.name, w.train_rows, w.features, w.test_rows, w.trees, w.max_depth, w.repeats
        ));
        let mut rows = Vec::new();
        if host_ok {
            for (guest, wasm) in &built {
                for backend in &o.backends {
                    rows.push(run::ours(root, &host, guest, wasm, backend.as_str(), w, o.seed, o.timeout));
                }
            }
        }
        if let Some(py) = &py {
            rows.extend(anchors(root, o, py, w));
        }
        results.push((w.clone(), rows));
    }

    let machine = machine();
    let doc = report::json(&machine, &results, &notes);
    let json_path = out_dir.join("results.json");
    fs::write(&json_path, serde_json::to_string_pretty(&doc)? + "\n").with_context(|| format!("writing {}", json_path.display()))?;
    let md = report::markdown(&machine, &results, &notes);
    let md_path = out_dir.join("results.md");
    fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    let svg_path = out_dir.join("train_time.svg");
    fs::write(&svg_path, report::svg(&results)).with_context(|| format!("writing {}", svg_path.display()))?;
    print!("{md}");
    progress(&format!("wrote {}, {}, {}", json_path.display(), md_path.display(), svg_path.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::Command;
    use crate::tests::parse as parse_cli;

    fn parse(args: &str) -> Result<Options, clap::Error> {
        match parse_cli(&format!("bench {args}"))? {
            Command::Bench(o) => Ok(o),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_options() {
        let o = parse("--sizes 100k,1m --backends cpu --repeats 2 --anchors none --trees 50").unwrap();
        assert_eq!(o.sizes, vec![100_000, 1_000_000]);
        assert_eq!(o.backends, vec![Backend::Cpu]);
        assert_eq!(o.repeats, Some(2));
        assert!(o.anchors.0.is_empty());
        assert_eq!(o.trees, 50);
        assert!(o.diabetes && o.install);
        assert!(parse("--backends cpu,tpu").is_err());
        assert!(parse("--repeats 0").is_err());
        assert!(parse("--repeats").is_err());
        assert!(parse("--bogus").is_err());
        assert_eq!(parse("--python /x/python").unwrap().python, Some(PathBuf::from("/x/python")));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let o = parse("").unwrap();
        assert_eq!(o.sizes, vec![100_000]);
        assert!(o.diabetes);
        assert_eq!(o.backends, vec![Backend::Cpu, Backend::Wgpu, Backend::Cuda]);
        assert_eq!(o.guests, vec![Guest::Rust, Guest::Cpp]);
        assert_eq!((o.repeats, o.trees, o.max_depth, o.seed), (None, 100, 16, 42));
        assert_eq!(o.anchors, Anchors(vec![Anchor::Sklearn, Anchor::Xgboost]));
        assert_eq!(o.sklearn_max_rows, 1_000_000);
        assert_eq!(o.device, XgbDevice::Auto);
        assert_eq!(o.timeout, None);
    }

    #[test]
    fn parses_every_option() {
        let o = parse(
            "--sizes 10k --no-diabetes --backends cuda,wgpu --guests cpp --repeats 1 --trees 7 --max-depth 0 --seed 9 \
             --anchors xgboost --sklearn-max-rows 2m --device cuda --python py --no-install --host h --timeout 1.5",
        )
        .unwrap();
        assert_eq!(o.sizes, vec![10_000]);
        assert!(!o.diabetes && !o.install);
        assert_eq!(o.backends, vec![Backend::Cuda, Backend::Wgpu]);
        assert_eq!(o.guests, vec![Guest::Cpp]);
        assert_eq!((o.repeats, o.trees, o.max_depth, o.seed), (Some(1), 7, 0, 9));
        assert_eq!(o.anchors, Anchors(vec![Anchor::Xgboost]));
        assert_eq!((o.sklearn_max_rows, o.device), (2_000_000, XgbDevice::Cuda));
        assert_eq!((o.python, o.host), (Some(PathBuf::from("py")), Some(PathBuf::from("h"))));
        assert_eq!(o.timeout, Some(1.5));
        // The last of a repeated option wins, as it did before clap.
        assert_eq!(parse("--backends cpu --backends cuda").unwrap().backends, vec![Backend::Cuda]);
        assert_eq!(parse("--sizes 1m --sizes 10k").unwrap().sizes, vec![10_000]);
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "--sizes 0",
            "--sizes 1.5",
            "--guests go",
            "--trees 0",
            "--max-depth -1",
            "--anchors sklearn,none",
            "--anchors lightgbm",
            "--device tpu",
            "--timeout 0",
            "--timeout inf",
            "--timeout soon",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_row_names() {
        assert_eq!(short_rows(100_000), "100k");
        assert_eq!(short_rows(10_000_000), "10m");
        assert_eq!(short_rows(353), "353");
        assert_eq!(short_rows(1_500_000), "1500k");
    }
}
