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

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::synth;
use run::{Measurement, System};

/// Usage text of `cargo xtask bench`.
pub const USAGE: &str = "\
usage: cargo xtask bench [options]
  --sizes LIST          synthetic Friedman #1 training sizes, e.g. 100k,1m,10m [default: 100k]
                        (x 32 features; test sets are 20%, at most 200k rows)
  --no-diabetes         skip the diabetes workload (always 200 trees, max depth 16)
  --backends LIST       cpu,wgpu,cuda [default: cpu,wgpu,cuda]
  --guests LIST         rust,cpp [default: both, those that are built]
  --repeats N           runs per system, medians reported [default: 3; 1 for >= 5M rows]
  --trees N             trees of the synthetic workloads [default: 100]
  --max-depth N         max depth of the synthetic workloads, 0 = unlimited [default: 16]
  --seed N              model and data seed [default: 42]
  --anchors LIST        sklearn,xgboost or none [default: sklearn,xgboost]
  --sklearn-max-rows N  skip scikit-learn above this many training rows [default: 1m]
  --device D            XGBoost device: auto, cpu, cuda [default: auto = cuda if nvidia-smi sees a GPU]
  --python PATH         Python for the anchors (also $BENCH_PYTHON); implies --no-install
  --no-install          do not create target/bench-venv; use --python, $BENCH_PYTHON or python3
  --host PATH           host binary [default: $WASI_GPU_HOST or target/release/wasmtime-gpu-host]
  --timeout SECONDS     per run, for our host and for each anchor [default: none]
";

/// Everything `bench` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    sizes: Vec<u64>,
    diabetes: bool,
    backends: Vec<String>,
    guests: Vec<String>,
    repeats: Option<u32>,
    trees: u32,
    max_depth: u32,
    seed: u64,
    anchors: Vec<String>,
    sklearn_max_rows: u64,
    device: String,
    python: Option<PathBuf>,
    install: bool,
    host: Option<PathBuf>,
    timeout: Option<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sizes: vec![100_000],
            diabetes: true,
            backends: vec!["cpu".into(), "wgpu".into(), "cuda".into()],
            guests: vec!["rust".into(), "cpp".into()],
            repeats: None,
            trees: 100,
            max_depth: 16,
            seed: 42,
            anchors: vec!["sklearn".into(), "xgboost".into()],
            sklearn_max_rows: 1_000_000,
            device: "auto".into(),
            python: std::env::var_os("BENCH_PYTHON").map(PathBuf::from),
            install: std::env::var_os("BENCH_PYTHON").is_none(),
            host: std::env::var_os("WASI_GPU_HOST").map(PathBuf::from),
            timeout: None,
        }
    }
}

fn list(s: &str, allowed: &[&str], what: &str) -> Result<Vec<String>> {
    let items: Vec<String> = s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect();
    for i in &items {
        ensure!(allowed.contains(&i.as_str()), "unknown {what} `{i}` (expected one of {})", allowed.join(", "));
    }
    Ok(items)
}

/// Parses the command line of `bench`.
pub fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value\n\n{USAGE}"));
        match a.as_str() {
            "--sizes" => o.sizes = val()?.split(',').filter(|s| !s.is_empty()).map(synth::parse_rows).collect::<Result<_>>()?,
            "--no-diabetes" => o.diabetes = false,
            "--backends" => o.backends = list(val()?, &["cpu", "wgpu", "cuda"], "backend")?,
            "--guests" => o.guests = list(val()?, &["rust", "cpp"], "guest")?,
            "--repeats" => {
                let n: u32 = val()?.parse().context("--repeats takes a positive integer")?;
                ensure!(n >= 1, "--repeats must be at least 1");
                o.repeats = Some(n);
            }
            "--trees" => {
                o.trees = val()?.parse().context("--trees takes a positive integer")?;
                ensure!(o.trees >= 1, "--trees must be at least 1");
            }
            "--max-depth" => o.max_depth = val()?.parse().context("--max-depth takes an integer (0 = unlimited)")?,
            "--seed" => o.seed = val()?.parse().context("--seed takes an unsigned integer")?,
            "--anchors" => {
                let v = val()?;
                o.anchors = if v == "none" { Vec::new() } else { list(v, &["sklearn", "xgboost"], "anchor")? };
            }
            "--sklearn-max-rows" => o.sklearn_max_rows = synth::parse_rows(val()?)?,
            "--device" => {
                let v = val()?;
                ensure!(["auto", "cpu", "cuda"].contains(&v.as_str()), "--device takes auto, cpu or cuda, not `{v}`");
                o.device = v.clone();
            }
            "--python" => {
                o.python = Some(PathBuf::from(val()?));
                o.install = false;
            }
            "--no-install" => o.install = false,
            "--host" => o.host = Some(PathBuf::from(val()?)),
            "--timeout" => {
                let t: f64 = val()?.parse().context("--timeout takes seconds")?;
                ensure!(t > 0.0 && t.is_finite(), "--timeout must be a positive number of seconds");
                o.timeout = Some(t);
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    ensure!(o.diabetes || !o.sizes.is_empty(), "nothing to run: --no-diabetes and no --sizes");
    Ok(o)
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
    for a in &o.anchors {
        if a == "sklearn" && w.train_rows > o.sklearn_max_rows {
            out.push(Measurement::skipped(
                System::anchor("sklearn", "cpu"),
                format!("skipped: {} training rows > --sklearn-max-rows {}", w.train_rows, o.sklearn_max_rows),
            ));
        } else {
            systems.push(a);
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
        .args(["--device", &o.device, "--anchors", &systems.join(",")])
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

pub fn command(built_from: &Path, args: &[String]) -> Result<()> {
    START.get_or_init(std::time::Instant::now);
    let o = parse(args)?;
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
            let p = match g.as_str() {
                "rust" => "target/wasm32-wasip2/release/guest-rust.wasm",
                _ => "target/wasm/guest-cpp.wasm",
            };
            (g.clone(), PathBuf::from(p))
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

    let work = workloads(root, &o)?;
    let py = if o.anchors.is_empty() { None } else { Some(python(root, &o)?) };

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
                    rows.push(run::ours(root, &host, guest, wasm, backend, w, o.seed, o.timeout));
                }
            }
        }
        if let Some(py) = &py {
            rows.extend(anchors(root, &o, py, w));
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

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_options() {
        let o = parse(&args("--sizes 100k,1m --backends cpu --repeats 2 --anchors none --trees 50")).unwrap();
        assert_eq!(o.sizes, vec![100_000, 1_000_000]);
        assert_eq!(o.backends, vec!["cpu"]);
        assert_eq!(o.repeats, Some(2));
        assert!(o.anchors.is_empty());
        assert_eq!(o.trees, 50);
        assert!(parse(&args("--backends cpu,tpu")).is_err());
        assert!(parse(&args("--repeats 0")).is_err());
        assert!(parse(&args("--repeats")).is_err());
        assert!(parse(&args("--bogus")).is_err());
        assert!(parse(&args("--python /x/python")).map(|o| !o.install).unwrap());
    }

    #[test]
    fn short_row_names() {
        assert_eq!(short_rows(100_000), "100k");
        assert_eq!(short_rows(10_000_000), "10m");
        assert_eq!(short_rows(353), "353");
        assert_eq!(short_rows(1_500_000), "1500k");
    }
}
