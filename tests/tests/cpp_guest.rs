//! End-to-end tests of the C++ guest, the C++ example, and the two guests against each
//! other (docs/guests.md, docs/algorithm.md §10).
//!
//! They run the real artefacts of `cargo xtask build-all` under the real host, so run them
//! with `cargo xtask test` (which sets WASI_GPU_HOST, GUEST_RUST_WASM, GUEST_CPP_WASM and
//! EXAMPLE_CPP_WASM), or after `cargo xtask build-all` (the default paths under target/).
//! A missing artefact is a failure with instructions, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wasi_gpu_tests::artefacts::{example_cpp, guest_cpp, guest_rust, host, workspace};

/// A fresh working directory with the diabetes data under `data/`.
fn workdir(name: &str) -> PathBuf {
    let dir = workspace().join("target").join("test-cpp-guest").join(format!("{name}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clearing the old test directory");
    }
    std::fs::create_dir_all(dir.join("data")).expect("creating the test directory");
    for file in ["diabetes_train.csv", "diabetes_test.csv"] {
        let src = workspace().join("data").join(file);
        assert!(src.is_file(), "{} is missing (the lead's data split, data/make_diabetes_split.py)", src.display());
        std::fs::copy(&src, dir.join("data").join(file)).expect("copying the data");
    }
    dir
}

/// Runs `guest` on the CPU backend in `dir` (mapped as the guest's `.`).
fn run_guest(dir: &Path, guest: &Path, args: &[&str]) -> Output {
    Command::new(host())
        .current_dir(dir)
        .args(["run", "--backend", "cpu", "--dir-rw", "."])
        .arg(guest)
        .arg("--")
        .args(args)
        .output()
        .expect("starting the host")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs and requires success; returns stdout.
fn ok(dir: &Path, guest: &Path, args: &[&str]) -> String {
    let out = run_guest(dir, guest, args);
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        guest.display(),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The one JSON line of a `--json` run.
fn json(stdout: &str) -> serde_json::Value {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "--json must print exactly one line on stdout, got:\n{stdout}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {}", lines[0]))
}

fn checksum(model: &[u8]) -> String {
    wasi_gpu_tests::model_file::model_checksum(model).expect("a valid checksum trailer")
}

#[test]
fn example_guest_runs() {
    let dir = workdir("example");
    let stdout = ok(&dir, &example_cpp(), &[]);
    assert!(stdout.contains("example: bin-features OK"), "unexpected output:\n{stdout}");
}

#[test]
fn cpp_pipeline_on_diabetes() {
    let dir = workdir("pipeline");
    let stdout = ok(&dir, &guest_cpp(), &["--json", "--trees", "60"]);
    let j = json(&stdout);
    // serde_json sorts keys, so check the order of docs/guests.md on the raw line.
    let order = [
        "guest",
        "command",
        "backend",
        "device",
        "train_rows",
        "test_rows",
        "features",
        "trees",
        "max_depth",
        "min_samples_split",
        "min_samples_leaf",
        "max_features",
        "bins",
        "seed",
        "load_ms",
        "train_ms",
        "save_ms",
        "predict_ms",
        "mse",
        "model_checksum",
        "receipt",
    ];
    assert_eq!(j.as_object().unwrap().len(), order.len(), "exactly the fields of docs/guests.md: {stdout}");
    let positions: Vec<usize> =
        order.iter().map(|k| stdout.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("field {k} missing: {stdout}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "fields out of the documented order: {stdout}");
    assert_eq!(j["guest"], "cpp");
    assert_eq!(j["command"], "pipeline");
    assert_eq!(j["backend"], "cpu");
    assert_eq!(j["train_rows"], 353);
    assert_eq!(j["test_rows"], 89);
    assert_eq!(j["features"], 10);
    assert_eq!(j["trees"], 60);
    assert_eq!(j["max_depth"], 16);
    let mse = j["mse"].as_f64().expect("mse is a number");
    // The diabetes targets have variance ~6000; a random forest gets ~3000 on this split.
    assert!((1500.0..4500.0).contains(&mse), "implausible test MSE {mse}");
    let model = std::fs::read(dir.join("model.bin")).expect("model.bin written");
    assert_eq!(j["model_checksum"], checksum(&model), "model_checksum is the file's own checksum");
    assert!(!dir.join("model.bin.tmp").exists(), "the temporary model file was renamed away");

    // The human output of the same run.
    let human = ok(&dir, &guest_cpp(), &["--trees", "60", "--quiet"]);
    let lines: Vec<&str> = human.lines().collect();
    assert!(lines[0].starts_with("device: ") && lines[0].contains("(cpu, "), "{human}");
    assert_eq!(lines[1], "train: 353 rows x 10 features; test: 89 rows");
    assert!(lines[2].starts_with("model: model.bin (") && lines[2].contains(&checksum(&model)), "{human}");
    assert_eq!(lines[3], format!("test MSE: {mse:.6}"));
    assert_eq!(lines[4], "phase      ms");
    for (line, phase) in lines[5..].iter().zip(["load ", "train ", "save ", "predict ", "total "]) {
        assert!(line.starts_with(phase), "{human}");
    }
}

#[test]
fn cpp_reports_errors_with_file_and_line() {
    let dir = workdir("errors");
    std::fs::write(dir.join("bad.csv"), "a,b,y\n1,2,3\n4,nan,6\n").unwrap();
    let out = run_guest(&dir, &guest_cpp(), &["train", "--train", "bad.csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: bad.csv:3: "), "{stderr}");
    assert!(!dir.join("model.bin").exists(), "no model after a failed run");

    std::fs::write(dir.join("model.bin"), b"not a model").unwrap();
    let out = run_guest(&dir, &guest_cpp(), &["predict"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: model.bin: "), "{}", text(&out.stderr));

    let out = run_guest(&dir, &guest_cpp(), &["--bins", "300"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).starts_with("error: --bins"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(dir.join("model.bin")).unwrap(), b"not a model", "usage errors touch nothing");
}

/// Trains with both guests on the same data/params/seed; returns (cpp bytes, rust bytes).
fn train_both(dir: &Path, extra: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let mut args = vec!["train", "--quiet", "--json"];
    args.extend_from_slice(extra);
    let cpp = json(&ok(dir, &guest_cpp(), &[args.as_slice(), &["--model", "cpp.bin"]].concat()));
    let rust = json(&ok(dir, &guest_rust(), &[args.as_slice(), &["--model", "rust.bin"]].concat()));
    assert_eq!(cpp["guest"], "cpp");
    assert_eq!(rust["guest"], "rust");
    let cpp_bytes = std::fs::read(dir.join("cpp.bin")).unwrap();
    let rust_bytes = std::fs::read(dir.join("rust.bin")).unwrap();
    eprintln!(
        "{extra:?}: cpp {} ({} bytes), rust {} ({} bytes)",
        cpp["model_checksum"],
        cpp_bytes.len(),
        rust["model_checksum"],
        rust_bytes.len()
    );
    (cpp_bytes, rust_bytes)
}

#[test]
fn guests_write_identical_models() {
    let dir = workdir("identical");
    for extra in [
        &["--trees", "40", "--seed", "7"][..],
        &["--trees", "25", "--seed", "123456789012", "--max-features", "sqrt", "--max-depth", "6"][..],
        &["--trees", "10", "--max-features", "0.5", "--min-samples-leaf", "3", "--min-samples-split", "9", "--bins", "17"][..],
        &["--trees", "5", "--max-depth", "none", "--max-features", "3"][..],
    ] {
        let (cpp, rust) = train_both(&dir, extra);
        assert!(cpp == rust, "{extra:?}: the C++ and Rust guests wrote different model files");
    }
}

#[test]
fn guests_read_each_others_models() {
    let dir = workdir("cross");
    let (cpp, rust) = train_both(&dir, &["--trees", "30", "--seed", "99", "--max-features", "log2"]);
    assert_eq!(cpp, rust);
    let mut predictions = Vec::new();
    for (guest, model) in [(guest_cpp(), "rust.bin"), (guest_rust(), "cpp.bin"), (guest_cpp(), "cpp.bin"), (guest_rust(), "rust.bin")] {
        let out = format!("pred-{}-{model}.txt", guest.file_stem().unwrap().to_string_lossy());
        let j = json(&ok(&dir, &guest, &["predict", "--model", model, "--out", &out, "--json"]));
        assert_eq!(j["command"], "predict");
        assert!(j["mse"].as_f64().is_some(), "the test file has targets, so predict reports an MSE");
        predictions.push((out.clone(), std::fs::read_to_string(dir.join(&out)).unwrap(), j["mse"].clone()));
    }
    let (first_name, first, first_mse) = &predictions[0];
    assert_eq!(first.lines().count(), 89);
    for (name, p, mse) in &predictions[1..] {
        assert!(p == first, "{name} differs from {first_name}");
        assert_eq!(mse, first_mse, "{name}: MSE differs");
    }
}

/// Inputs where the guests used to disagree (docs/algorithm.md §1): both must accept the
/// same files with the same model and refuse the same files with the same `file:line`.
#[test]
fn guests_agree_on_edge_case_inputs() {
    let dir = workdir("edge-inputs");
    // A -0.0 target minimum is +0.0; a `.NPY` extension is .npy whatever its case.
    std::fs::write(dir.join("negzero.csv"), "a,b,y\n1,2,-0.0\n2,3,0.5\n3,1,-0\n4,4,2\n5,0,1\n").unwrap();
    let (cpp, rust) = train_both(&dir, &["--train", "negzero.csv", "--trees", "3"]);
    assert!(cpp == rust, "a -0.0 target minimum gave different models");
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 3), }";
    let padded = format!("{header:<117}\n");
    npy.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    npy.extend_from_slice(padded.as_bytes());
    for v in [1.0f64, 2.0, -0.0, 2.0, 3.0, 0.5, 3.0, 1.0, -0.0, 4.0, 4.0, 2.0, 5.0, 0.0, 1.0] {
        npy.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(dir.join("upper.NPY"), &npy).unwrap();
    let (cpp_npy, rust_npy) = train_both(&dir, &["--train", "upper.NPY", "--trees", "3"]);
    assert!(cpp_npy == rust_npy, "an upper-case .NPY file gave different models");
    assert!(cpp_npy == cpp, "the .NPY file holds the CSV's values, so the model must be the same");

    // Refused by both, naming the same line: a feature that overflows f32, a NUL byte.
    std::fs::write(dir.join("f32.csv"), "a,b,y\n1,2,3\n1,1e39,3\n").unwrap();
    std::fs::write(dir.join("nul.csv"), b"a,b,y\n1,2,3\n4,5\x006,7\n1,2,3\n").unwrap();
    for (file, line, what) in [("f32.csv", 3, "f32"), ("nul.csv", 3, "NUL")] {
        for guest in [guest_cpp(), guest_rust()] {
            let out = run_guest(&dir, &guest, &["train", "--train", file, "--quiet"]);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{}: {file}: {stderr}", guest.display());
            assert!(stderr.starts_with(&format!("error: {file}:{line}: ")), "{}: {stderr}", guest.display());
            assert!(stderr.contains(what), "{}: {stderr}", guest.display());
        }
    }
}

/// The pipeline checks its test file (it opens, its header, its column count against the
/// training data) before it trains: a test file it cannot use is refused with the same line
/// by both guests, and the model file already there is left as it was.
#[test]
fn pipeline_refuses_an_unusable_test_file_before_training() {
    let dir = workdir("test-file-first");
    std::fs::write(dir.join("few.csv"), "a,b,c\n1,2,3\n").unwrap();
    std::fs::write(dir.join("few.npy"), npy_header("(1, 3)")).unwrap();
    let cases = [
        ("few.csv", "error: few.csv:1: the header has 3 columns but the model was trained on 10 features"),
        ("few.npy", "error: few.npy: the array has 3 columns but the model was trained on 10 features"),
        ("missing.csv", "error: missing.csv: cannot open: no such file"),
    ];
    for (test, want) in cases {
        for guest in [guest_rust(), guest_cpp()] {
            std::fs::write(dir.join("model.bin"), b"the model of an earlier run").unwrap();
            let args = ["--train", "data/diabetes_train.csv", "--test", test, "--quiet"];
            let out = run_guest(&dir, &guest, &args);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{} {test}: {stderr}", guest.display());
            assert!(stderr.starts_with(want), "{} {test}: {stderr}", guest.display());
            assert_eq!(std::fs::read(dir.join("model.bin")).unwrap(), b"the model of an earlier run", "{test}");
        }
    }
}

/// A `.npy` v1 header for `<f4` data of `shape`, without data.
fn npy_header(shape: &str) -> Vec<u8> {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    b.extend_from_slice(dict.as_bytes());
    b
}

/// Both guests take exactly the same options: the `--NAME`s their `--help` lists agree.
#[test]
fn guests_list_the_same_options() {
    let dir = workdir("help");
    let options = |guest: &Path| -> Vec<String> {
        let help = ok(&dir, guest, &["--help"]);
        let mut names: Vec<String> = help
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("--"))
            .map(|rest| format!("--{}", rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).next().unwrap_or("")))
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let (rust, cpp) = (options(&guest_rust()), options(&guest_cpp()));
    assert!(rust.len() >= 10 && rust.contains(&"--train".to_string()), "{rust:?}");
    assert_eq!(rust, cpp, "the Rust guest's options, then the C++ guest's");
}
