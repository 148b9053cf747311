//! Accuracy against scikit-learn on real-looking tables (tests/accuracy/).
//!
//! `tests/accuracy/make_data.py` writes the data sets (ties, outliers, heavy tails,
//! zero-heavy columns, one-hot blocks, the diabetes split) into a temporary directory,
//! `tests/accuracy/sklearn_ref.py` fits scikit-learn's
//! `RandomForestRegressor(n_estimators=200, max_depth=16, max_features=M)` with seeds 0, 1, 2,
//! and the guests train and evaluate the same forest (`--trees 200 --max-depth 16
//! --max-features M`) on the CPU backend: the first guest with seeds 0, 1, 2, the others with
//! seed 0. For every set the test asserts
//!
//! * ours (the mean over the same three seeds) <= 1.02 x scikit-learn's mean test MSE, and
//! * the Rust and the C++ guest print the identical MSE and `model_checksum` for seed 0.
//!
//! The table (set, ours, scikit-learn mean/min/max, ratio, seconds) goes to stderr whether
//! the test passes or not, so the CI log shows it.
//!
//! Python: `ACCURACY_PYTHON` (it must work), else `target/accuracy-venv/bin/python` (made by
//! `.ci/setup`), else `python3` on the PATH; it needs numpy and scikit-learn. Without one the
//! test is skipped with the reason on stderr, except when `CI` is set: then it fails.
//! The host and guests come from `cargo xtask test` (WASI_GPU_HOST, GUEST_RUST_WASM,
//! GUEST_CPP_WASM) or their `cargo xtask build-all` locations; a missing one is a failure.
//!
//! Knobs for trials (CI sets none of them):
//! `ACCURACY_SETS=ties,onehot:sqrt` runs only those sets (`NAME[:MAX_FEATURES]`; the default
//! max-features of a set is used when omitted; `outliers-random` is only run this way),
//! `ACCURACY_GUESTS=rust` runs one guest (no cross-guest check),
//! `ACCURACY_TRAIN_ROWS` / `ACCURACY_TEST_ROWS` change the synthetic sets' sizes,
//! `ACCURACY_KEEP=1` keeps the data directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Ours may be at most this factor above scikit-learn's mean test MSE.
const TOLERANCE: f64 = 1.02;
/// The seeds both sides average over.
const SEEDS: [&str; 3] = ["0", "1", "2"];

/// The sets, with the `--max-features` both sides use.
const SETS: &[(&str, &str)] =
    &[("ties", "1.0"), ("outliers", "1.0"), ("heavy-tail", "1.0"), ("zero-heavy", "1.0"), ("onehot", "sqrt"), ("diabetes", "1.0")];

/// Sets that `ACCURACY_SETS` may name besides SETS (not asserted by default; see make_data.py).
const EXTRA_SETS: &[(&str, &str)] = &[("outliers-random", "1.0")];

fn workspace() -> PathBuf {
    wasi_gpu_tests::parity::build_workspace_root()
}

/// Writes straight to the process's stderr: libtest captures `eprintln!` of passing tests,
/// and the table must reach the CI log.
fn report(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

fn artefact(var: &str, default: &str) -> PathBuf {
    let path = wasi_gpu_tests::parity::artefact_path(var, &workspace(), default);
    assert!(path.is_file(), "{var}: {} does not exist; build it with `cargo xtask build-all` (or run `cargo xtask test`)", path.display());
    path
}

fn env_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// A Python with numpy and scikit-learn, or why there is none.
fn find_python() -> Result<PathBuf, String> {
    let works = |python: &Path| -> Result<(), String> {
        let out = Command::new(python)
            .args(["-c", "import numpy, sklearn"])
            .output()
            .map_err(|e| format!("{}: cannot start ({e})", python.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: `import numpy, sklearn` failed: {}",
                python.display(),
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
            ))
        }
    };
    if let Some(p) = std::env::var_os("ACCURACY_PYTHON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        // An explicit choice that does not work is a failure, never a skip or a fallback.
        if let Err(e) = works(&p) {
            panic!("ACCURACY_PYTHON: {e}");
        }
        return Ok(p);
    }
    let mut reasons = Vec::new();
    for p in [workspace().join("target/accuracy-venv/bin/python"), PathBuf::from("python3")] {
        match works(&p) {
            Ok(()) => return Ok(p),
            Err(e) => reasons.push(e),
        }
    }
    Err(format!(
        "no Python with numpy and scikit-learn ({}); run .ci/setup (it creates target/accuracy-venv) \
         or set ACCURACY_PYTHON",
        reasons.join("; ")
    ))
}

/// A scratch directory, removed when dropped unless ACCURACY_KEEP is set.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if env_set("ACCURACY_KEEP") {
            report(&format!("accuracy: data kept in {}\n", self.0.display()));
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn run_checked(cmd: &mut Command, what: &str) -> String {
    let out = cmd.stderr(Stdio::inherit()).output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed ({}):\n{stdout}", out.status);
    stdout
}

/// The sets to run: `ACCURACY_SETS` or SETS.
fn sets() -> Vec<(String, String)> {
    let Some(list) = std::env::var("ACCURACY_SETS").ok().filter(|s| !s.is_empty()) else {
        return SETS.iter().map(|(n, m)| (n.to_string(), m.to_string())).collect();
    };
    list.split(',')
        .map(|spec| {
            let (name, mf) = spec.split_once(':').unwrap_or((spec, ""));
            let default =
                SETS.iter().chain(EXTRA_SETS).find(|(n, _)| *n == name).unwrap_or_else(|| panic!("ACCURACY_SETS: unknown set {name}")).1;
            (name.to_string(), if mf.is_empty() { default } else { mf }.to_string())
        })
        .collect()
}

struct GuestRun {
    mse: f64,
    /// The `mse` field as printed (`%.17g`): compared between the guests as text.
    mse_text: String,
    sha: String,
    seconds: f64,
}

fn run_guest(host: &Path, guest: &Path, dir: &Path, set: &str, max_features: &str, tag: &str, seed: &str) -> GuestRun {
    let (train, test, model) = (format!("{set}_train.csv"), format!("{set}_test.csv"), format!("{set}-{tag}-{seed}.bin"));
    let args = [
        "--train",
        &train,
        "--test",
        &test,
        "--model",
        &model,
        "--trees",
        "200",
        "--max-depth",
        "16",
        "--max-features",
        max_features,
        "--seed",
        seed,
        "--json",
        "--quiet",
    ];
    let start = Instant::now();
    let out = Command::new(host)
        .current_dir(dir)
        .args(["run", "--backend", "cpu", "--dir-rw", "."])
        .arg(guest)
        .arg("--")
        .args(args)
        .output()
        .expect("starting the host binary");
    let seconds = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{set}: {} {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        guest.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().next().unwrap_or("");
    let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{set}: not one JSON line ({e}):\n{stdout}"));
    let mse = json["mse"].as_f64().unwrap_or_else(|| panic!("{set}: no mse in {line}"));
    // The text of the number as printed, so the cross-guest check compares exact bits.
    let mse_text = line.split("\"mse\":").nth(1).and_then(|rest| rest.split([',', '}']).next()).unwrap_or("").to_string();
    let sha = json["model_checksum"].as_str().unwrap_or_else(|| panic!("{set}: no model_checksum in {line}")).to_string();
    GuestRun { mse, mse_text, sha, seconds }
}

#[test]
fn accuracy_matches_scikit_learn() {
    let python = match find_python() {
        Ok(p) => p,
        Err(reason) if env_set("CI") => panic!("accuracy suite: {reason} (CI is set, so this fails)"),
        Err(reason) => {
            report(&format!("accuracy: SKIPPED: {reason}\n"));
            return;
        }
    };
    let host = artefact("WASI_GPU_HOST", "target/release/wasmtime-gpu-host");
    let rust = || ("rust", artefact("GUEST_RUST_WASM", "target/wasm/guest-rust.wasm"));
    let cpp = || ("cpp", artefact("GUEST_CPP_WASM", "target/wasm/guest-cpp.wasm"));
    let guests = match std::env::var("ACCURACY_GUESTS").ok().filter(|s| !s.is_empty()).as_deref() {
        None | Some("rust,cpp") | Some("cpp,rust") => vec![rust(), cpp()],
        Some("rust") => vec![rust()],
        Some("cpp") => vec![cpp()],
        Some(other) => panic!("ACCURACY_GUESTS: expected rust, cpp or rust,cpp, got {other}"),
    };
    let sets = sets();
    let scripts = workspace().join("tests/accuracy");
    let scratch = Scratch(std::env::temp_dir().join(format!("wasi-gpu-accuracy-{}", std::process::id())));
    let dir = &scratch.0;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("creating the data directory");
    report(&format!(
        "accuracy: python {}, host {}, guests {}\n",
        python.display(),
        host.display(),
        guests.iter().map(|(n, p)| format!("{n}={}", p.display())).collect::<Vec<_>>().join(" ")
    ));

    // Data.
    let names: Vec<&str> = sets.iter().map(|(n, _)| n.as_str()).collect();
    let mut make = Command::new(&python);
    make.arg(scripts.join("make_data.py")).arg(dir).arg("--sets").arg(names.join(","));
    for (var, flag) in [("ACCURACY_TRAIN_ROWS", "--train"), ("ACCURACY_TEST_ROWS", "--test")] {
        if let Some(rows) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            make.arg(flag).arg(rows);
        }
    }
    run_checked(&mut make, "make_data.py");

    // scikit-learn.
    let start = Instant::now();
    let mut reference = Command::new(&python);
    reference.arg(scripts.join("sklearn_ref.py")).arg(dir);
    for (name, mf) in &sets {
        reference.arg(format!("{name}:{mf}"));
    }
    let reference = run_checked(&mut reference, "sklearn_ref.py");
    let sklearn_seconds = start.elapsed().as_secs_f64();
    let reference: serde_json::Value =
        serde_json::from_str(reference.trim()).unwrap_or_else(|e| panic!("sklearn_ref.py printed no JSON ({e}):\n{reference}"));

    // Ours, and the table.
    let mut table = format!(
        "\naccuracy: test MSE, ours (mean over seeds 0-2, CPU backend) vs scikit-learn {} RandomForestRegressor \
         (seeds 0-2), 200 trees, max depth 16; limit ours <= {TOLERANCE} x sklearn mean\n\
         {:<15} {:>6} {:>5} {:>16} {:>16} {:>16} {:>16} {:>7} {:>4} {:>9} {:>9}\n",
        reference["sklearn"].as_str().unwrap_or("?"),
        "set",
        "rows",
        "maxf",
        "ours",
        "sklearn mean",
        "sklearn min",
        "sklearn max",
        "ratio",
        "ok",
        "ours s",
        "sklearn s",
    );
    let mut failures = Vec::new();
    for (name, mf) in &sets {
        let r = &reference["sets"][name.as_str()];
        let mean = r["mean"].as_f64().unwrap_or_else(|| panic!("sklearn_ref.py: no mean for {name}"));
        let (first_tag, first_wasm) = &guests[0];
        let seeded: Vec<GuestRun> = SEEDS.iter().map(|seed| run_guest(&host, first_wasm, dir, name, mf, first_tag, seed)).collect();
        let ours_mse = seeded.iter().map(|g| g.mse).sum::<f64>() / SEEDS.len() as f64;
        let mut runs: Vec<(&str, GuestRun)> = vec![(*first_tag, seeded.into_iter().next().expect("three seeds"))];
        for (tag, wasm) in &guests[1..] {
            runs.push((*tag, run_guest(&host, wasm, dir, name, mf, tag, SEEDS[0])));
        }
        let ours = &runs[0].1;
        let ratio = ours_mse / mean;
        let ok = ratio <= TOLERANCE;
        if !ok {
            failures.push(format!("{name}: ours {ours_mse} > {TOLERANCE} x sklearn mean {mean} (ratio {ratio:.4})"));
        }
        for (tag, run) in &runs[1..] {
            if run.mse_text != ours.mse_text || run.sha != ours.sha {
                failures.push(format!(
                    "{name}: the guests disagree: {} mse {} model {}, {tag} mse {} model {}",
                    runs[0].0, ours.mse_text, ours.sha, run.mse_text, run.sha
                ));
            }
        }
        table += &format!(
            "{:<15} {:>6} {:>5} {:>16.6} {:>16.6} {:>16.6} {:>16.6} {:>7.4} {:>4} {:>9} {:>9.1}\n",
            name,
            r["train_rows"].as_u64().unwrap_or(0),
            mf,
            ours_mse,
            mean,
            r["min"].as_f64().unwrap_or(f64::NAN),
            r["max"].as_f64().unwrap_or(f64::NAN),
            ratio,
            if ok { "ok" } else { "FAIL" },
            runs.iter().map(|(_, g)| format!("{:.1}", g.seconds)).collect::<Vec<_>>().join("/"),
            r["fit_s"].as_f64().unwrap_or(f64::NAN),
        );
    }
    table += &format!(
        "(ours s: wall seconds of the seed-0 run per guest, {}; sklearn s: all three seeds; sklearn total {sklearn_seconds:.1} s)\n",
        guests.iter().map(|(n, _)| *n).collect::<Vec<_>>().join("/")
    );
    report(&table);
    assert!(failures.is_empty(), "accuracy suite (table on stderr above):\n  {}", failures.join("\n  "));
}
