//! `tools/wasi_gpu_model.py`, the model reader for people without Rust or WebAssembly: its
//! predictions are the guests' `predict --out` bytes exactly, its checksum is the guests'
//! `model_checksum`, and it refuses a damaged file.
//!
//! Python: `ACCURACY_PYTHON`, else `target/accuracy-venv/bin/python` (made by .ci/setup), else
//! `python3`; it needs NumPy. None with NumPy is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use wasi_gpu_tests::artefacts::{fresh_dir, guest_cpp, guest_in, guest_rust, python_with, run_ok, workspace};

fn python() -> PathBuf {
    python_with("numpy")
}

/// Trains with `wasm` on `train`, predicts `test` with the guest and with the reader; checks
/// the two prediction files are the same bytes and the checksums agree.
fn same_predictions(dir: &Path, wasm: &Path, train: &str, test: &str, extra: &[&str]) {
    let mut args = vec!["train", "--train", train, "--model", "m.bin", "--json", "--quiet"];
    args.extend_from_slice(extra);
    let trained = guest_in(dir, wasm, &args);
    let json: serde_json::Value = serde_json::from_slice(&trained.stdout).expect("one JSON line");
    guest_in(dir, wasm, &["predict", "--model", "m.bin", "--test", test, "--out", "guest.txt", "--quiet"]);
    let tool = workspace().join("tools/wasi_gpu_model.py");
    let out = run_ok(Command::new(python()).current_dir(dir).arg(tool).args(["m.bin", test, "--out", "python.txt"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let checksum = json["model_checksum"].as_str().expect("model_checksum");
    assert!(stdout.contains(checksum), "the reader reports {stdout}, the guest {checksum}");
    let (a, b) = (std::fs::read(dir.join("guest.txt")).unwrap(), std::fs::read(dir.join("python.txt")).unwrap());
    assert!(!a.is_empty() && a == b, "predictions differ:\nguest  {:?}\npython {:?}", &a[..a.len().min(200)], &b[..b.len().min(200)]);
}

#[test]
fn reader_predicts_the_guests_bytes_on_diabetes() {
    let dir = fresh_dir("test-python-reader", "diabetes");
    for f in ["diabetes_train.csv", "diabetes_test.csv"] {
        std::fs::copy(workspace().join("data").join(f), dir.join(f)).unwrap();
    }
    same_predictions(&dir, &guest_rust(), "diabetes_train.csv", "diabetes_test.csv", &["--trees", "60"]);
}

/// Integer ties, signed zeros, a constant column and 1e7 outliers in the target, unlimited
/// depth, trained by the C++ guest.
#[test]
fn reader_predicts_the_guests_bytes_on_ties_and_outliers() {
    let dir = fresh_dir("test-python-reader", "ties");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let table = |rows: usize, next: &mut dyn FnMut() -> u64| {
        let mut s = String::from("a,b,c,d,e,y\n");
        for _ in 0..rows {
            let a = next() % 300;
            let b = if next().is_multiple_of(3) { "-0.0".to_string() } else { format!("{}", (next() % 5) as i64 - 2) };
            let c = (next() % 1000) as f64 / 8.0;
            let y = a as f64 * 0.5 + c + if next().is_multiple_of(100) { 1e7 } else { 0.0 };
            s += &format!("{a},{b},{c},7,{},{y}\n", next() % 2);
        }
        s
    };
    std::fs::write(dir.join("train.csv"), table(3000, &mut next)).unwrap();
    std::fs::write(dir.join("test.csv"), table(500, &mut next)).unwrap();
    same_predictions(&dir, &guest_cpp(), "train.csv", "test.csv", &["--trees", "20", "--max-depth", "0"]);
}

#[test]
fn reader_refuses_a_damaged_model() {
    let dir = fresh_dir("test-python-reader", "damaged");
    std::fs::copy(workspace().join("data/diabetes_test.csv"), dir.join("test.csv")).unwrap();
    std::fs::copy(workspace().join("data/diabetes_train.csv"), dir.join("train.csv")).unwrap();
    guest_in(&dir, &guest_rust(), &["train", "--train", "train.csv", "--model", "m.bin", "--trees", "5", "--quiet"]);
    let mut bytes = std::fs::read(dir.join("m.bin")).unwrap();
    bytes[200] ^= 1;
    std::fs::write(dir.join("m.bin"), bytes).unwrap();
    let tool = workspace().join("tools/wasi_gpu_model.py");
    let out = Command::new(python()).current_dir(&dir).arg(tool).args(["m.bin", "test.csv"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"), "{}", String::from_utf8_lossy(&out.stderr));
}
