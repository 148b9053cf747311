//! Guest/backend parity: both guests must produce the same model file, the same test MSE
//! and the same predictions on every backend, for every configuration below, and those
//! results must match the insta snapshot committed for the configuration
//! (`tests/snapshots/parity__<configuration>.snap`). A model trained by each guest must
//! also give the same predictions when the other guest loads it.
//!
//! One implementation serves `cargo xtask parity`, the standalone `parity` binary (for
//! machines without cargo, e.g. a GPU box) and `tests/tests/parity.rs`.
//!
//! The snapshot body is what a cell produced, never which cell produced it, so every cell
//! of a configuration is compared against the same file. On a mismatch the report names
//! the cells, the first differing model header field or tree/node (feature, threshold,
//! leaf value) and the first differing prediction (row, both values).

pub mod model;
pub mod snapshot;
pub mod ties;

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use sha2::{Digest, Sha256};

use model::Model;

/// The two guests under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guest {
    /// `guest-rust`.
    Rust,
    /// `guest-cpp`.
    Cpp,
}

impl Guest {
    /// Both guests, in table order.
    pub const ALL: [Guest; 2] = [Guest::Rust, Guest::Cpp];

    /// The name used in tables and in the guests' JSON (`"guest"`).
    pub fn name(self) -> &'static str {
        match self {
            Guest::Rust => "rust",
            Guest::Cpp => "cpp",
        }
    }

    fn other(self) -> Guest {
        match self {
            Guest::Rust => Guest::Cpp,
            Guest::Cpp => Guest::Rust,
        }
    }
}

/// The host's backends (`wasmtime-gpu-host run --backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The pure-Rust reference backend.
    Cpu,
    /// WebGPU (any adapter, software ones included).
    Wgpu,
    /// CUDA device 0.
    Cuda,
}

impl Backend {
    /// Every backend, in table order.
    pub const ALL: [Backend; 3] = [Backend::Cpu, Backend::Wgpu, Backend::Cuda];

    /// The `--backend` value.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Parses a comma-separated list such as `cpu,wgpu,cuda` (order kept, duplicates dropped).
    pub fn parse_list(list: &str) -> Result<Vec<Backend>, String> {
        let mut out = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let b = Backend::ALL
                .into_iter()
                .find(|b| b.name() == item)
                .ok_or_else(|| format!("unknown backend `{item}` (expected cpu, wgpu or cuda)"))?;
            if !out.contains(&b) {
                out.push(b);
            }
        }
        if out.is_empty() {
            return Err("empty backend list".into());
        }
        Ok(out)
    }
}

/// One training/prediction setting that every cell runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Snapshot name (`parity__<name>.snap`).
    pub name: &'static str,
    /// What the configuration exercises.
    pub about: &'static str,
    /// Training file, a name inside the data directory.
    pub train: &'static str,
    /// Test file, a name inside the data directory.
    pub test: &'static str,
    /// Extra guest options (docs/guests.md).
    pub args: &'static [&'static str],
}

/// The configurations, in run order.
///
/// The diabetes runs use 100 trees instead of the guests' default 200: on Mesa's software
/// Vulkan (lavapipe) 200 trees take ~18 s per cell, and the whole run must stay well under
/// five minutes on a 2-core machine; depth, bins and everything else keep their defaults.
pub fn configs() -> Vec<Config> {
    const DIABETES_TRAIN: &str = "diabetes_train.csv";
    const DIABETES_TEST: &str = "diabetes_test.csv";
    vec![
        Config {
            name: "diabetes-seed42",
            about: "diabetes split, defaults (depth 16, all features), seed 42",
            train: DIABETES_TRAIN,
            test: DIABETES_TEST,
            args: &["--trees", "100", "--seed", "42"],
        },
        Config {
            name: "diabetes-seed7",
            about: "diabetes split, defaults, seed 7",
            train: DIABETES_TRAIN,
            test: DIABETES_TEST,
            args: &["--trees", "100", "--seed", "7"],
        },
        Config {
            name: "diabetes-seed-high-bits",
            about: "diabetes split, defaults, a seed with non-zero high 32 bits (seed_hi)",
            train: DIABETES_TRAIN,
            test: DIABETES_TEST,
            args: &["--trees", "100", "--seed", "16045690984503098046"],
        },
        Config {
            name: "synthetic-ties",
            about: "duplicate rows, tied and copied features, tied targets; unlimited depth",
            train: "synthetic_ties.csv",
            test: "synthetic_ties.csv",
            args: &["--trees", "64", "--max-depth", "none", "--seed", "3"],
        },
        Config {
            name: "wide-ties-outliers",
            about: "integers with >256 distinct values and ties, zero-heavy, constant and one-hot columns, 1% outlier targets",
            train: "wide_ties.csv",
            test: "wide_ties.csv",
            args: &["--trees", "32", "--max-features", "sqrt", "--min-samples-leaf", "2", "--seed", "9"],
        },
        Config {
            name: "subsample-leaf5-bins32",
            about: "feature subsampling (3 of 10), min-samples-leaf 5, 32 quantile bins",
            train: DIABETES_TRAIN,
            test: DIABETES_TEST,
            args: &[
                "--trees",
                "100",
                "--max-features",
                "3",
                "--min-samples-leaf",
                "5",
                "--min-samples-split",
                "4",
                "--bins",
                "32",
                "--seed",
                "11",
            ],
        },
        Config {
            name: "diabetes-depth30",
            about: "depth 30: every tree runs out of rows to split long before the limit",
            train: DIABETES_TRAIN,
            test: DIABETES_TEST,
            args: &["--trees", "50", "--max-depth", "30", "--max-features", "sqrt", "--seed", "5"],
        },
    ]
}

/// Everything a parity run needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// `wasmtime-gpu-host`.
    pub host: PathBuf,
    /// `guest-rust.wasm`.
    pub rust: PathBuf,
    /// `guest-cpp.wasm`.
    pub cpp: PathBuf,
    /// Backends to try; unavailable ones are skipped with the reason.
    pub backends: Vec<Backend>,
    /// Backends whose cells must run (a skip is a failure).
    pub require: Vec<Backend>,
    /// Directory holding the data files named by [`Config::train`] / [`Config::test`].
    pub data_dir: PathBuf,
    /// Directory of the `parity__*.snap` files.
    pub snapshot_dir: PathBuf,
    /// Scratch directory (one sub-directory per configuration and cell; kept for inspection).
    pub work_dir: PathBuf,
    /// Run only these configurations (all when empty).
    pub only: Vec<String>,
    /// Write missing or changed snapshots (only when every cell of a configuration agrees).
    pub bless: bool,
    /// Print progress lines to stderr.
    pub progress: bool,
}

/// The workspace this crate was built in (`tests/..`).
pub fn build_workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The default artefact path for `var` (its value if set, else `root/default`).
pub fn artefact_path(var: &str, root: &Path, default: &str) -> PathBuf {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| root.join(default))
}

impl Options {
    /// Defaults for a checkout at `root`: artefacts from `WASI_GPU_HOST`, `GUEST_RUST_WASM`,
    /// `GUEST_CPP_WASM` or the paths `cargo xtask build-all` writes; every backend.
    pub fn for_root(root: &Path) -> Options {
        Options {
            host: artefact_path("WASI_GPU_HOST", root, "target/release/wasmtime-gpu-host"),
            rust: artefact_path("GUEST_RUST_WASM", root, "target/wasm/guest-rust.wasm"),
            cpp: artefact_path("GUEST_CPP_WASM", root, "target/wasm/guest-cpp.wasm"),
            backends: Backend::ALL.to_vec(),
            require: Vec::new(),
            data_dir: root.join("data"),
            snapshot_dir: root.join("tests/snapshots"),
            work_dir: root.join("target/parity"),
            only: Vec::new(),
            bless: false,
            progress: true,
        }
    }

    /// Checks that the artefacts and data exist, with what to do when they do not.
    pub fn check(&self) -> Result<(), String> {
        let mut missing = Vec::new();
        for (what, var, path) in [
            ("host", "WASI_GPU_HOST / --host", &self.host),
            ("Rust guest", "GUEST_RUST_WASM / --rust", &self.rust),
            ("C++ guest", "GUEST_CPP_WASM / --cpp", &self.cpp),
        ] {
            if !path.is_file() {
                missing.push(format!("{what} {} does not exist (set {var}, or build it with `cargo xtask build-all`)", path.display()));
            }
        }
        for config in self.selected()? {
            for file in [config.train, config.test] {
                let path = self.data_dir.join(file);
                if !path.is_file() && !missing.iter().any(|m| m.contains(&path.display().to_string())) {
                    missing.push(format!("data file {} does not exist (set --data DIR)", path.display()));
                }
            }
        }
        if missing.is_empty() { Ok(()) } else { Err(missing.join("\n")) }
    }

    fn selected(&self) -> Result<Vec<Config>, String> {
        let all = configs();
        for name in &self.only {
            if !all.iter().any(|c| c.name == name) {
                let names: Vec<&str> = all.iter().map(|c| c.name).collect();
                return Err(format!("unknown configuration `{name}` (known: {})", names.join(", ")));
            }
        }
        Ok(all.into_iter().filter(|c| self.only.is_empty() || self.only.iter().any(|n| n == c.name)).collect())
    }
}

/// What one guest on one backend produced for one configuration.
#[derive(Clone, Debug)]
pub struct Produced {
    /// The model file's bytes.
    pub model_bytes: Vec<u8>,
    /// SHA-256 of the model file (hex).
    pub sha256: String,
    /// The parsed model, or why it could not be parsed.
    pub model: Result<Model, String>,
    /// The test MSE the guest printed.
    pub mse: f64,
    /// The prediction lines (`%.17g`), verbatim.
    pub predictions: Vec<String>,
    /// The snapshot body (see [`snapshot_body`]).
    pub body: String,
    /// The other guest's predictions from this model: `Ok` when they are identical.
    pub cross_guest: Result<(), String>,
    /// Inconsistent output (JSON hash vs file, unparsable model); empty when fine.
    pub output_problems: Vec<String>,
    /// Wall time of the training pipeline in seconds.
    pub seconds: f64,
}

/// The outcome of one cell.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The backend cannot run here (the reason from `devices` or from a failing open).
    Skipped(String),
    /// The guest or host failed (the error).
    Failed(String),
    /// The cell ran.
    Ran(Box<Produced>),
}

/// One (guest, backend) cell of a configuration.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The guest.
    pub guest: Guest,
    /// The backend.
    pub backend: Backend,
    /// What happened.
    pub outcome: Outcome,
    /// Problems found when comparing with the other cells and the snapshot (empty = ok).
    pub problems: Vec<String>,
    /// Whether the cell differs from the snapshot (its problems then include why).
    pub snapshot_differs: bool,
}

impl Cell {
    /// `rust/cpu` etc.
    pub fn label(&self) -> String {
        format!("{}/{}", self.guest.name(), self.backend.name())
    }

    fn produced(&self) -> Option<&Produced> {
        match &self.outcome {
            Outcome::Ran(p) => Some(p),
            _ => None,
        }
    }
}

/// How a configuration's snapshot fared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// Every cell that ran matches the committed snapshot.
    Matches,
    /// At least one cell differs (details in the cells' problems).
    Differs,
    /// There is no snapshot file yet.
    Missing,
    /// The snapshot was (re)written (`bless`).
    Written(PathBuf),
    /// No cell ran, so there was nothing to compare.
    NotChecked,
    /// The file exists but could not be read.
    Unreadable(String),
}

/// The results of one configuration.
#[derive(Clone, Debug)]
pub struct ConfigReport {
    /// The configuration.
    pub config: Config,
    /// Every (guest, backend) cell, guests outer, backends inner.
    pub cells: Vec<Cell>,
    /// The snapshot comparison.
    pub snapshot: SnapshotStatus,
}

/// The results of a parity run.
#[derive(Clone, Debug)]
pub struct Report {
    /// One entry per configuration, in run order.
    pub configs: Vec<ConfigReport>,
    /// Backends that had to run but were skipped (with the reason).
    pub required_but_skipped: Vec<String>,
}

impl Report {
    /// Every failure: cell errors, cells disagreeing with each other or across guests,
    /// required backends that were skipped and, when `with_snapshots`, snapshot mismatches
    /// and missing snapshots.
    pub fn failures(&self, with_snapshots: bool) -> Vec<String> {
        let mut out = self.required_but_skipped.clone();
        for c in &self.configs {
            for cell in &c.cells {
                for p in &cell.problems {
                    if with_snapshots || !p.starts_with(SNAPSHOT_PREFIX) {
                        out.push(format!("{} {}: {p}", c.config.name, cell.label()));
                    }
                }
            }
            if with_snapshots && c.snapshot == SnapshotStatus::Missing {
                out.push(format!(
                    "{}: no snapshot {} yet (run the parity binary with --bless, or `INSTA_UPDATE=always cargo test -p wasi-gpu-tests --test parity`)",
                    c.config.name,
                    snapshot::file_name(c.config.name)
                ));
            }
            if let SnapshotStatus::Unreadable(e) = &c.snapshot
                && with_snapshots
            {
                out.push(format!("{}: snapshot unreadable: {e}", c.config.name));
            }
        }
        out
    }

    /// The table (cells x configurations) followed by every failure and skip reason.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{:<26} {:<10} {:<10} {:<24} {:>7}  status", "configuration", "cell", "sha256", "test MSE", "time");
        for c in &self.configs {
            for cell in &c.cells {
                let (hash, mse, time) = match cell.produced() {
                    Some(p) => (p.sha256[..8].to_string(), format!("{:?}", p.mse), format!("{:.1}s", p.seconds)),
                    None => ("-".into(), "-".into(), "-".into()),
                };
                let status = match &cell.outcome {
                    Outcome::Skipped(_) => "skipped".to_string(),
                    Outcome::Failed(_) => "FAILED".to_string(),
                    Outcome::Ran(_) if cell.problems.is_empty() => match c.snapshot {
                        SnapshotStatus::Missing => "ok (no snapshot)".to_string(),
                        SnapshotStatus::Written(_) => "ok (snapshot written)".to_string(),
                        _ => "ok".to_string(),
                    },
                    Outcome::Ran(_) => {
                        let mut kinds = Vec::new();
                        if cell.problems.iter().any(|p| p.starts_with(CELL_PREFIX)) {
                            kinds.push("cells differ");
                        }
                        if cell.snapshot_differs {
                            kinds.push("snapshot differs");
                        }
                        if cell.problems.iter().any(|p| p.starts_with(CROSS_PREFIX)) {
                            kinds.push("cross-guest differs");
                        }
                        if cell.problems.iter().any(|p| p.starts_with(OUTPUT_PREFIX)) {
                            kinds.push("bad output");
                        }
                        format!("MISMATCH ({})", kinds.join(", "))
                    }
                };
                let _ = writeln!(s, "{:<26} {:<10} {:<10} {:<24} {:>7}  {status}", c.config.name, cell.label(), hash, mse, time);
            }
        }
        let mut skipped: Vec<String> = Vec::new();
        for c in &self.configs {
            for cell in &c.cells {
                if let Outcome::Skipped(why) = &cell.outcome {
                    let line = format!("{} (both guests): {why}", cell.backend.name());
                    if !skipped.contains(&line) {
                        skipped.push(line);
                    }
                }
            }
        }
        if !skipped.is_empty() {
            let _ = writeln!(s, "\nskipped cells:");
            for line in skipped {
                let _ = writeln!(s, "  {line}");
            }
        }
        let failures = self.failures(true);
        if failures.is_empty() {
            let _ = writeln!(s, "\nparity: OK");
        } else {
            let _ = writeln!(s, "\nparity: {} problem(s):", failures.len());
            for f in failures {
                let _ = writeln!(s, "  {f}");
            }
        }
        s
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

const CELL_PREFIX: &str = "differs from ";
const SNAPSHOT_PREFIX: &str = "snapshot: ";
const CROSS_PREFIX: &str = "cross-guest: ";
const OUTPUT_PREFIX: &str = "output: ";

/// The snapshot body of one cell: the configuration, the model's hash and shape, the MSE
/// and every prediction line. It names no guest or backend, so all cells share it.
pub fn snapshot_body(config: &Config, sha256: &str, model: &Result<Model, String>, mse: f64, predictions: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "configuration: {}", config.name);
    let _ = writeln!(s, "train: {}", config.train);
    let _ = writeln!(s, "test: {}", config.test);
    let _ = writeln!(s, "args: {}", config.args.join(" "));
    let _ = writeln!(s, "model_sha256: {sha256}");
    match model {
        Ok(m) => {
            let _ = writeln!(
                s,
                "model: {} trees, {} nodes, {} leaves, deepest leaf at depth {}",
                m.trees.len(),
                m.node_count(),
                m.leaf_count(),
                m.max_leaf_depth()
            );
        }
        Err(e) => {
            let _ = writeln!(s, "model: unreadable: {e}");
        }
    }
    let _ = writeln!(s, "test_mse: {mse:?}");
    let _ = writeln!(s, "predictions: {}", predictions.len());
    for p in predictions {
        let _ = writeln!(s, "{p}");
    }
    s.trim_end().to_string()
}

/// Which backends the host can open here, from `wasmtime-gpu-host devices`:
/// `Err(reason)` for one that it reports as unavailable. A backend the output does not
/// mention is tried (a failing open then marks its cells skipped).
pub fn probe_backends(host: &Path) -> Vec<(Backend, Result<(), String>)> {
    let output = Command::new(host).arg("devices").output();
    let text = match output {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(_) => String::new(),
    };
    Backend::ALL.into_iter().map(|b| (b, parse_devices(&text, b))).collect()
}

/// Parses the `devices` output for one backend (see [`probe_backends`]).
pub fn parse_devices(text: &str, backend: Backend) -> Result<(), String> {
    let header = format!("{}:", backend.name());
    let mut lines = text.lines().skip_while(|l| l.trim_end() != header);
    if lines.next().is_none() {
        return Ok(());
    }
    let section: Vec<&str> = lines.take_while(|l| l.starts_with(' ') || l.starts_with('\t')).collect();
    let usable = section.iter().any(|l| {
        let l = l.trim();
        l.starts_with("available:") || l.ends_with(": usable")
    });
    if usable || section.is_empty() {
        return Ok(());
    }
    Err(format!("`devices` says: {}", section.iter().map(|l| l.trim().trim_start_matches("- ")).collect::<Vec<_>>().join("; ")))
}

fn tail(bytes: &[u8], max_lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(max_lines)..].join(" | ")
}

/// Runs `guest` under the host on `backend` with `dir` as the guest's `.`.
fn run_guest(opts: &Options, guest: Guest, backend: Backend, dir: &Path, args: &[&str]) -> Result<Output, String> {
    let wasm = match guest {
        Guest::Rust => &opts.rust,
        Guest::Cpp => &opts.cpp,
    };
    Command::new(&opts.host)
        .current_dir(dir)
        .args(["run", "--backend", backend.name(), "--timeout", "900", "--dir-rw", "."])
        .arg(wasm)
        .arg("--")
        .args(args)
        .output()
        .map_err(|e| format!("starting {}: {e}", opts.host.display()))
}

/// The guest's `--json` line as a JSON object.
fn json_line(out: &Output) -> Result<serde_json::Value, String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).ok_or("printed nothing on stdout")?;
    serde_json::from_str(line).map_err(|e| format!("stdout is not one JSON line ({e}): {line}"))
}

fn read_lines(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.lines().map(str::to_string).collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn prepare_dir(opts: &Options, config: &Config, cell: &str) -> Result<PathBuf, String> {
    let dir = opts.work_dir.join(config.name).join(cell);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("clearing {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("data")).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for file in [config.train, config.test] {
        let dest = dir.join("data").join(file);
        if !dest.exists() {
            std::fs::copy(opts.data_dir.join(file), &dest)
                .map_err(|e| format!("copying {} to {}: {e}", opts.data_dir.join(file).display(), dest.display()))?;
        }
    }
    Ok(dir)
}

/// Trains with `guest` on `backend` (pipeline: train, save, load, predict) and then lets
/// the other guest predict from the saved model on the same backend.
fn run_cell(opts: &Options, config: &Config, guest: Guest, backend: Backend) -> Outcome {
    let label = format!("{}-{}", guest.name(), backend.name());
    let dir = match prepare_dir(opts, config, &label) {
        Ok(d) => d,
        Err(e) => return Outcome::Failed(e),
    };
    let train = format!("data/{}", config.train);
    let test = format!("data/{}", config.test);
    let mut args =
        vec!["pipeline", "--train", &train, "--test", &test, "--model", "model.bin", "--out", "predictions.txt", "--json", "--quiet"];
    args.extend_from_slice(config.args);
    let started = Instant::now();
    let out = match run_guest(opts, guest, backend, &dir, &args) {
        Ok(o) => o,
        Err(e) => return Outcome::Failed(e),
    };
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(line) = stderr.lines().find(|l| l.contains("backend is unavailable")) {
            return Outcome::Skipped(line.trim().trim_start_matches("error: ").to_string());
        }
        return Outcome::Failed(format!("{} ({}): {}", args.join(" "), out.status, tail(&out.stderr, 4)));
    }
    let json = match json_line(&out) {
        Ok(j) => j,
        Err(e) => return Outcome::Failed(e),
    };
    let Some(mse) = json.get("mse").and_then(serde_json::Value::as_f64) else {
        return Outcome::Failed(format!("the JSON line has no numeric mse: {json}"));
    };
    let model_bytes = match std::fs::read(dir.join("model.bin")) {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(format!("reading the model: {e}")),
    };
    let predictions = match read_lines(&dir.join("predictions.txt")) {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e),
    };
    let sha256 = hex(&Sha256::digest(&model_bytes));
    let reported = json.get("model_checksum").and_then(serde_json::Value::as_str).unwrap_or("");
    let own = crate::model_file::model_checksum(&model_bytes);
    let model = Model::parse(&model_bytes).map_err(|e| e.to_string());
    let body = snapshot_body(config, &sha256, &model, mse, &predictions);
    let mut produced = Produced {
        model_bytes,
        sha256: sha256.clone(),
        model,
        mse,
        predictions,
        body,
        cross_guest: Ok(()),
        output_problems: Vec::new(),
        seconds,
    };
    if own.as_deref() != Ok(reported) {
        produced.output_problems.push(format!("{OUTPUT_PREFIX}JSON model_checksum {reported} but the file's trailer says {own:?}"));
    }
    if let Err(e) = &produced.model {
        produced.output_problems.push(format!("{OUTPUT_PREFIX}model.bin does not parse: {e}"));
    }
    produced.cross_guest = cross_guest(opts, guest, backend, &dir, &test, &produced);
    Outcome::Ran(Box::new(produced))
}

/// The other guest predicts from `produced`'s model; `Err` says where it differs.
fn cross_guest(opts: &Options, guest: Guest, backend: Backend, dir: &Path, test: &str, produced: &Produced) -> Result<(), String> {
    let other = guest.other();
    let args = ["predict", "--model", "model.bin", "--test", test, "--out", "cross.txt", "--json", "--quiet"];
    let out = run_guest(opts, other, backend, dir, &args).map_err(|e| format!("{CROSS_PREFIX}{e}"))?;
    if !out.status.success() {
        return Err(format!("{CROSS_PREFIX}{} could not load the model ({}): {}", other.name(), out.status, tail(&out.stderr, 4)));
    }
    let json = json_line(&out).map_err(|e| format!("{CROSS_PREFIX}{}: {e}", other.name()))?;
    let lines = read_lines(&dir.join("cross.txt")).map_err(|e| format!("{CROSS_PREFIX}{e}"))?;
    if let Some(diff) = first_prediction_difference(&produced.predictions, guest.name(), &lines, other.name()) {
        return Err(format!("{CROSS_PREFIX}{} predicting from {}'s model: {diff}", other.name(), guest.name()));
    }
    let mse = json.get("mse").and_then(serde_json::Value::as_f64);
    if mse.map(f64::to_bits) != Some(produced.mse.to_bits()) {
        return Err(format!("{CROSS_PREFIX}{} reports mse {mse:?}, {} {:?}", other.name(), guest.name(), produced.mse));
    }
    Ok(())
}

/// The first differing prediction line, with both values; `None` when identical.
pub fn first_prediction_difference(a: &[String], a_name: &str, b: &[String], b_name: &str) -> Option<String> {
    for (row, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            let delta = match (x.trim().parse::<f64>(), y.trim().parse::<f64>()) {
                (Ok(p), Ok(q)) => format!(" (difference {:e})", p - q),
                _ => String::new(),
            };
            return Some(format!("first differing prediction: row {row}: {a_name} {x}, {b_name} {y}{delta}"));
        }
    }
    if a.len() != b.len() {
        return Some(format!("{a_name} has {} predictions, {b_name} {}", a.len(), b.len()));
    }
    None
}

/// Compares cell `b` with the reference cell `a` and says every way they differ.
fn compare_cells(a: &Produced, a_name: &str, b: &Produced, b_name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if a.model_bytes != b.model_bytes {
        let detail = match (&a.model, &b.model) {
            (Ok(ma), Ok(mb)) => model::first_difference(ma, a_name, mb, b_name).unwrap_or_else(|| "same trees, different bytes".into()),
            _ => "a model file does not parse".into(),
        };
        out.push(format!("{CELL_PREFIX}{a_name}: model sha256 {} vs {}; first difference: {detail}", &b.sha256[..12], &a.sha256[..12]));
    }
    if a.mse.to_bits() != b.mse.to_bits() {
        out.push(format!("{CELL_PREFIX}{a_name}: test mse {:?} vs {:?}", b.mse, a.mse));
    }
    if let Some(diff) = first_prediction_difference(&a.predictions, a_name, &b.predictions, b_name) {
        out.push(format!("{CELL_PREFIX}{a_name}: {diff}"));
    }
    if out.is_empty() && a.body != b.body {
        out.push(format!("{CELL_PREFIX}{a_name}: snapshot bodies differ"));
    }
    out
}

/// Where a cell's body first departs from the snapshot, in words.
fn snapshot_difference(expected: &str, actual: &str) -> String {
    let exp: Vec<&str> = expected.lines().collect();
    let act: Vec<&str> = actual.lines().collect();
    let header = exp.iter().position(|l| l.starts_with("predictions:")).map(|i| i + 1);
    for (i, (e, a)) in exp.iter().zip(&act).enumerate() {
        if e != a {
            return match header {
                Some(h) if i >= h => format!("first differing prediction: row {}: snapshot {e}, this cell {a}", i - h),
                _ => format!("line {}: snapshot `{e}`, this cell `{a}`", i + 1),
            };
        }
    }
    format!("snapshot has {} lines, this cell {}", exp.len(), act.len())
}

/// Runs every selected configuration on every cell and compares the results.
pub fn run(opts: &Options) -> Result<Report, String> {
    opts.check()?;
    let configs = opts.selected()?;
    let probe = probe_backends(&opts.host);
    let availability = |b: Backend| probe.iter().find(|(p, _)| *p == b).map(|(_, r)| r.clone()).unwrap_or(Ok(()));
    let mut reports = Vec::new();
    // A backend that failed to open once is skipped for the rest of the run.
    let mut late_skips: Vec<(Backend, String)> = Vec::new();
    for config in configs {
        if opts.progress {
            eprintln!("parity: {} ({}) {}", config.name, config.about, config.args.join(" "));
        }
        let mut cells = Vec::new();
        for guest in Guest::ALL {
            for &backend in &opts.backends {
                let skip = match availability(backend) {
                    Err(why) => Some(why),
                    Ok(()) => late_skips.iter().find(|(b, _)| *b == backend).map(|(_, w)| w.clone()),
                };
                let outcome = match skip {
                    Some(why) => Outcome::Skipped(why),
                    None => run_cell(opts, &config, guest, backend),
                };
                if let Outcome::Skipped(why) = &outcome
                    && !late_skips.iter().any(|(b, _)| *b == backend)
                {
                    late_skips.push((backend, why.clone()));
                }
                let mut cell = Cell { guest, backend, outcome, problems: Vec::new(), snapshot_differs: false };
                match &cell.outcome {
                    Outcome::Failed(e) => cell.problems.push(format!("failed: {e}")),
                    Outcome::Ran(p) => {
                        cell.problems.extend(p.output_problems.iter().cloned());
                        if let Err(e) = &p.cross_guest {
                            cell.problems.push(e.clone());
                        }
                    }
                    Outcome::Skipped(_) => {}
                }
                if opts.progress {
                    let what = match &cell.outcome {
                        Outcome::Skipped(_) => "skipped (reason below the table)".to_string(),
                        Outcome::Failed(e) => format!("FAILED: {e}"),
                        Outcome::Ran(p) => format!("sha256 {} mse {:?} ({:.1}s)", &p.sha256[..8], p.mse, p.seconds),
                    };
                    eprintln!("  {:<10} {what}", cell.label());
                }
                cells.push(cell);
            }
        }
        // Every cell against the first one that ran.
        let reference = cells.iter().position(|c| c.produced().is_some());
        if let Some(r) = reference {
            let (ref_label, ref_produced) = (cells[r].label(), cells[r].produced().cloned());
            if let Some(refp) = ref_produced {
                for cell in cells.iter_mut().skip(r + 1) {
                    let problems = match cell.produced() {
                        Some(p) => compare_cells(&refp, &ref_label, p, &cell.label()),
                        None => Vec::new(),
                    };
                    cell.problems.extend(problems);
                }
            }
        }
        // Every cell against the snapshot.
        let all_agree = cells.iter().all(|c| c.problems.is_empty() && !matches!(c.outcome, Outcome::Failed(_)));
        let snapshot = match reference.and_then(|r| cells[r].produced().map(|p| p.body.clone())) {
            None => SnapshotStatus::NotChecked,
            Some(body) => match snapshot::read(&opts.snapshot_dir, config.name) {
                Err(e) => SnapshotStatus::Unreadable(e),
                Ok(expected) => {
                    let differs =
                        expected.as_deref() != Some(body.as_str()) || cells.iter().filter_map(Cell::produced).any(|p| p.body != body);
                    if opts.bless && all_agree && differs {
                        match snapshot::write(&opts.snapshot_dir, config.name, &body) {
                            Ok(path) => SnapshotStatus::Written(path),
                            Err(e) => SnapshotStatus::Unreadable(format!("writing: {e}")),
                        }
                    } else if let Some(expected) = expected {
                        let mut any = false;
                        for cell in &mut cells {
                            let Some(body) = cell.produced().map(|p| p.body.clone()) else { continue };
                            if body != expected {
                                any = true;
                                cell.snapshot_differs = true;
                                cell.problems.push(format!(
                                    "{SNAPSHOT_PREFIX}differs from {}: {}",
                                    snapshot::file_name(config.name),
                                    snapshot_difference(&expected, &body)
                                ));
                            }
                        }
                        if any { SnapshotStatus::Differs } else { SnapshotStatus::Matches }
                    } else {
                        SnapshotStatus::Missing
                    }
                }
            },
        };
        reports.push(ConfigReport { config, cells, snapshot });
    }
    let mut required_but_skipped = Vec::new();
    for &b in &opts.require {
        for c in &reports {
            for cell in &c.cells {
                if cell.backend == b
                    && let Outcome::Skipped(why) = &cell.outcome
                {
                    let line = format!("{} is required but its cells were skipped: {why}", b.name());
                    if !required_but_skipped.contains(&line) {
                        required_but_skipped.push(line);
                    }
                }
            }
        }
        if !opts.backends.contains(&b) {
            required_but_skipped.push(format!("{} is required but not in the backend list", b.name()));
        }
    }
    Ok(Report { configs: reports, required_but_skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_output_is_parsed() {
        let text = "cuda:\n  unavailable: no CUDA driver\nwgpu:\n  - llvmpipe (Vulkan, Cpu, software; only with --backend wgpu): usable\ncpu:\n  available: CPU reference\n";
        assert_eq!(parse_devices(text, Backend::Cuda), Err("`devices` says: unavailable: no CUDA driver".into()));
        assert_eq!(parse_devices(text, Backend::Wgpu), Ok(()));
        assert_eq!(parse_devices(text, Backend::Cpu), Ok(()));
        let none = "wgpu:\n  - foo: unusable: too old\ncpu:\n  available: x\n";
        assert!(parse_devices(none, Backend::Wgpu).unwrap_err().contains("too old"));
        assert_eq!(parse_devices("", Backend::Cuda), Ok(()));
    }

    #[test]
    fn prediction_and_snapshot_differences_name_the_row() {
        let a = vec!["1.5".to_string(), "2".to_string()];
        let b = vec!["1.5".to_string(), "2.25".to_string()];
        let d = first_prediction_difference(&a, "x", &b, "y").unwrap();
        assert!(d.contains("row 1: x 2, y 2.25"), "{d}");
        assert!(first_prediction_difference(&a, "x", &a, "y").is_none());
        let s = snapshot_difference("m: 1\npredictions: 2\n1.5\n2", "m: 1\npredictions: 2\n1.5\n2.25");
        assert_eq!(s, "first differing prediction: row 1: snapshot 2, this cell 2.25");
        assert_eq!(snapshot_difference("m: 1", "m: 2"), "line 1: snapshot `m: 1`, this cell `m: 2`");
    }

    fn produced(model_bytes: Vec<u8>, mse: f64, predictions: &[&str]) -> Produced {
        let config = &configs()[0];
        let sha256 = hex(&Sha256::digest(&model_bytes));
        let model = Model::parse(&model_bytes).map_err(|e| e.to_string());
        let predictions: Vec<String> = predictions.iter().map(|s| s.to_string()).collect();
        let body = snapshot_body(config, &sha256, &model, mse, &predictions);
        Produced { model_bytes, sha256, model, mse, predictions, body, cross_guest: Ok(()), output_problems: Vec::new(), seconds: 0.0 }
    }

    #[test]
    fn differing_cells_name_the_node_and_the_row() {
        use model::tests::{build, leaf, split};
        let a = produced(build(&[vec![leaf(1)], vec![split(2, 0.5), leaf(3), leaf(4)]]), 2.5, &["1", "2", "3"]);
        let b = produced(build(&[vec![leaf(1)], vec![split(2, 0.5), leaf(3), leaf(7)]]), 2.75, &["1", "2", "3.5"]);
        assert!(compare_cells(&a, "rust/cpu", &a.clone(), "cpp/wgpu").is_empty());
        let problems = compare_cells(&a, "rust/cpu", &b, "cpp/wgpu");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("first difference: tree 1 node 2: rust/cpu leaf count 1 value 0x400000000 (= 3.5"), "{}", problems[0]);
        assert!(problems[0].contains("cpp/wgpu leaf count 1 value 0x700000000 (= 5.0"), "{}", problems[0]);
        assert_eq!(problems[1], "differs from rust/cpu: test mse 2.75 vs 2.5");
        assert!(problems[2].contains("row 2: rust/cpu 3, cpp/wgpu 3.5"), "{}", problems[2]);
        assert!(snapshot_difference(&a.body, &b.body).starts_with("line 5: snapshot `model_sha256: "));
    }

    #[test]
    fn backend_lists() {
        assert_eq!(Backend::parse_list("cpu, wgpu,cpu").unwrap(), vec![Backend::Cpu, Backend::Wgpu]);
        assert!(Backend::parse_list("tpu").is_err());
        assert!(Backend::parse_list("").is_err());
    }
}
