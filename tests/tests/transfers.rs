//! Chunked transfers (issue 17, docs/guests.md "Chunked transfers"): both guests move every
//! large array to and from the device in pieces, so they must work unchanged under a host
//! whose `--max-transfer` is far below their data. Here the limit is 1 MiB and every kind
//! of large transfer is bigger: the training feature matrix (17 MB) and targets (1.08 MB),
//! the test feature matrix (4.5 MB) and the prediction sums read back (1.12 MB). A guest
//! that moves any of them in one `buffer.write` / `buffer.read` fails here with
//! `limit-exceeded`, instead of first at 10M rows on a GPU.
//!
//! They run the real artefacts of `cargo xtask build-all` under the real host on the CPU
//! backend: run them with `cargo xtask test` (which sets WASI_GPU_HOST, GUEST_RUST_WASM and
//! GUEST_CPP_WASM), or after `cargo xtask build-all` (the default paths under target/).
//! A missing artefact is a failure with instructions, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wasi_gpu_tests::artefacts::{guest_cpp, guest_rust, host, workspace};

/// The host's transfer limit in these tests, and the same in bytes.
const LIMIT: &str = "1M";
const LIMIT_BYTES: usize = 1 << 20;
const FEATURES: usize = 16;
/// Enough rows that the targets (4 bytes a row) exceed the limit too.
const TRAIN_ROWS: usize = 270_000;
/// Enough rows that the prediction sums read back (16 bytes a row) exceed the limit.
const TEST_ROWS: usize = 70_000;

/// SplitMix64: a deterministic stream of u64s.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits (exact in f32).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u32 << 24) as f32
    }
}

/// A `<f4` C-order .npy of `rows` rows: FEATURES uniform features, then a Friedman-#1-like
/// target of the first five plus a little noise.
fn npy(rows: usize, seed: u64) -> Vec<u8> {
    let cols = FEATURES + 1;
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + header length (2) + dict + padding + '\n', a multiple of 64.
    let padded = format!("{dict:<width$}\n", width = (10 + dict.len() + 1).div_ceil(64) * 64 - 10 - 1);
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    out.extend_from_slice(padded.as_bytes());
    let mut rng = Rng(seed);
    let mut x = [0f32; FEATURES];
    for _ in 0..rows {
        x.iter_mut().for_each(|v| *v = rng.unit());
        let y = 10.0 * (std::f32::consts::PI * x[0] * x[1]).sin()
            + 20.0 * (x[2] - 0.5) * (x[2] - 0.5)
            + 10.0 * x[3]
            + 5.0 * x[4]
            + (rng.unit() - 0.5);
        for v in x.iter().chain(std::iter::once(&y)) {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// A fresh working directory holding train.npy and test.npy.
fn workdir(name: &str) -> PathBuf {
    let dir = workspace().join("target").join("test-transfers").join(format!("{name}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clearing the old test directory");
    }
    std::fs::create_dir_all(&dir).expect("creating the test directory");
    std::fs::write(dir.join("train.npy"), npy(TRAIN_ROWS, 17)).expect("writing train.npy");
    std::fs::write(dir.join("test.npy"), npy(TEST_ROWS, 71)).expect("writing test.npy");
    dir
}

/// Runs `guest` on the CPU backend in `dir` (mapped as the guest's `.`) with the host
/// options `host_opts` before the guest.
fn run_guest(dir: &Path, guest: &Path, host_opts: &[&str], args: &[&str]) -> Output {
    Command::new(host())
        .current_dir(dir)
        .args(["run", "--backend", "cpu", "--dir-rw", "."])
        .args(host_opts)
        .arg(guest)
        .arg("--")
        .args(args)
        .output()
        .expect("starting the host")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The pipeline (train, save, predict) with `--max-transfer` at `limit` (None: the
/// host's default), writing `<tag>.bin` and `<tag>.txt`; returns (model, predictions).
fn pipeline(dir: &Path, guest: &Path, limit: Option<&str>, tag: &str) -> (Vec<u8>, String) {
    let host_opts: Vec<&str> = limit.map_or(vec![], |l| vec!["--max-transfer", l]);
    let (model, out) = (format!("{tag}.bin"), format!("{tag}.txt"));
    let args = [
        "--train",
        "train.npy",
        "--test",
        "test.npy",
        "--trees",
        "3",
        "--max-depth",
        "8",
        "--seed",
        "5",
        "--model",
        &model,
        "--out",
        &out,
        "--quiet",
    ];
    let run = run_guest(dir, guest, &host_opts, &args);
    assert!(
        run.status.success(),
        "{} with --max-transfer {limit:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        guest.display(),
        run.status,
        text(&run.stdout),
        text(&run.stderr)
    );
    let model = std::fs::read(dir.join(&model)).expect("the model was written");
    let predictions = std::fs::read_to_string(dir.join(&out)).expect("the predictions were written");
    assert_eq!(predictions.lines().count(), TEST_ROWS, "{}: one prediction per test row", guest.display());
    (model, predictions)
}

#[test]
fn both_guests_run_under_a_1_mib_transfer_limit() {
    // Every kind of large transfer really is larger than the limit.
    const {
        assert!(TRAIN_ROWS * FEATURES * 4 > LIMIT_BYTES && TEST_ROWS * FEATURES * 4 > LIMIT_BYTES, "features");
        assert!(TRAIN_ROWS * 4 > LIMIT_BYTES, "targets");
        assert!(TEST_ROWS * 16 > LIMIT_BYTES, "prediction sums");
    }
    let dir = workdir("limit");
    let (cpp_model, cpp_pred) = pipeline(&dir, &guest_cpp(), Some(LIMIT), "cpp-1m");
    let (rust_model, rust_pred) = pipeline(&dir, &guest_rust(), Some(LIMIT), "rust-1m");
    assert!(cpp_model == rust_model, "under --max-transfer {LIMIT} the C++ and Rust guests wrote different models");
    assert!(cpp_pred == rust_pred, "under --max-transfer {LIMIT} the C++ and Rust guests predicted differently");
    // The pieces are an implementation detail: the host's default limit gives the same model.
    let (default_model, default_pred) = pipeline(&dir, &guest_cpp(), None, "cpp-default");
    assert!(default_model == cpp_model, "--max-transfer {LIMIT} changed the C++ guest's model");
    assert!(default_pred == cpp_pred, "--max-transfer {LIMIT} changed the C++ guest's predictions");
    let _ = std::fs::remove_dir_all(&dir); // 23 MB of data; kept only when the test fails
}

/// The limit above is real: below the guests' smallest piece (4 KiB) the host refuses their
/// transfers, and each guest fails with the host's message rather than a trap.
#[test]
fn a_limit_below_the_smallest_piece_is_reported() {
    let dir = workdir("tiny");
    for guest in [guest_cpp(), guest_rust()] {
        let out = run_guest(&dir, &guest, &["--max-transfer", "1000"], &["train", "--train", "train.npy", "--trees", "1"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", guest.display());
        assert!(stderr.starts_with("error: train.npy: "), "{}: {stderr}", guest.display());
        assert!(stderr.contains("--max-transfer"), "{}: {stderr}", guest.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
