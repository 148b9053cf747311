//! Training receipts (docs/guests.md, "Receipts"): `train --receipt` records the data's and the
//! model's hashes, the parameters, the guest, host and component; `verify --receipt` trains
//! again and confirms the model, in either guest and on another backend than the one that
//! trained; a receipt whose data or parameters were changed is refused.
//!
//! Runs the artefacts of `cargo xtask build-all` under the real host (see cpp_guest.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use wasi_gpu_tests::artefacts::{guest_cpp, guest_rust, host, workspace};

fn workdir(name: &str) -> PathBuf {
    let dir = workspace().join("target").join("test-receipts").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(workspace().join("data/diabetes_train.csv"), dir.join("data/diabetes_train.csv")).unwrap();
    dir
}

fn run(dir: &Path, backend: &str, host_args: &[&str], guest: &Path, args: &[&str]) -> Output {
    Command::new(host())
        .current_dir(dir)
        .args(["run", "--backend", backend, "--dir-rw", "."])
        .args(host_args)
        .arg(guest)
        .arg("--")
        .args(args)
        .output()
        .expect("starting the host")
}

fn describe(out: &Output) -> String {
    format!("{}\nstdout:\n{}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn receipt(dir: &Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(name)).expect("the receipt was written");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON ({e}):\n{text}"))
}

const TRAIN: [&str; 8] = ["train", "--trees", "20", "--max-depth", "8", "--max-features", "sqrt", "--quiet"];

/// Whether the software (or any) wgpu adapter opens here; CI has lavapipe.
fn wgpu_available() -> bool {
    let out = Command::new(host()).arg("devices").output().expect("starting the host");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.contains("usable"))
}

#[test]
fn a_receipt_records_what_made_the_model_and_both_guests_verify_it() {
    let dir = workdir("verify");
    let (rust, cpp) = (guest_rust(), guest_cpp());
    // A forged component hash passed with --env is replaced by the host's own.
    let out = run(
        &dir,
        "cpu",
        &["--env", "WASI_GPU_COMPONENT_SHA256=forged"],
        &rust,
        &[&TRAIN[..], &["--model", "rust.bin", "--receipt", "rust.json"]].concat(),
    );
    assert!(out.status.success(), "{}", describe(&out));
    let r = receipt(&dir, "rust.json");
    let model = std::fs::read(dir.join("rust.bin")).unwrap();
    let data = std::fs::read(dir.join("data/diabetes_train.csv")).unwrap();
    assert_eq!(r["receipt"], 1);
    assert_eq!(r["guest"], "rust");
    assert_eq!(r["component_sha256"], sha256_hex(&std::fs::read(&rust).unwrap()), "the component's own hash");
    assert_eq!(r["host"], format!("wasmtime-gpu-host {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(r["guest_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!((r["backend"].as_str(), r["train"].as_str()), (Some("cpu"), Some("data/diabetes_train.csv")));
    assert_eq!(r["train_sha256"], sha256_hex(&data));
    assert_eq!(r["train_bytes"], data.len());
    assert_eq!((r["train_rows"].as_u64(), r["features"].as_u64()), (Some(353), Some(10)));
    assert_eq!((r["trees"].as_u64(), r["max_depth"].as_u64(), r["max_features"].as_u64()), (Some(20), Some(8), Some(3)));
    assert_eq!((r["bins"].as_u64(), r["seed"].as_u64(), r["min_samples_leaf"].as_u64()), (Some(256), Some(42), Some(1)));
    assert_eq!(r["model_sha256"], sha256_hex(&model));
    assert_eq!(r["model_bytes"], model.len());
    assert_eq!(r["model_checksum"], wasi_gpu_tests::model_file::model_checksum(&model).unwrap());

    // The C++ guest writes the same receipt but for who wrote it and where.
    let out = run(&dir, "cpu", &[], &cpp, &[&TRAIN[..], &["--model", "cpp.bin", "--receipt", "cpp.json"]].concat());
    assert!(out.status.success(), "{}", describe(&out));
    let c = receipt(&dir, "cpp.json");
    for key in r.as_object().unwrap().keys() {
        if !["guest", "component_sha256", "model"].contains(&key.as_str()) {
            assert_eq!(c[key], r[key], "key {key}: the C++ guest's receipt differs");
        }
    }
    assert_eq!(c["component_sha256"], sha256_hex(&std::fs::read(&cpp).unwrap()));
    let (rust_text, cpp_text) =
        (std::fs::read_to_string(dir.join("rust.json")).unwrap(), std::fs::read_to_string(dir.join("cpp.json")).unwrap());
    assert_eq!(rust_text.lines().count(), cpp_text.lines().count(), "the same layout, one key per line");

    // Each guest verifies each receipt; on wgpu as well where an adapter opens.
    let mut backends = vec!["cpu"];
    if wgpu_available() {
        backends.push("wgpu");
    }
    for backend in backends {
        for (guest, file) in [(&rust, "cpp.json"), (&cpp, "rust.json"), (&rust, "rust.json")] {
            let out = run(&dir, backend, &[], guest, &["verify", "--receipt", file, "--json", "--quiet"]);
            assert!(out.status.success(), "{} verify {file} on {backend}: {}", guest.display(), describe(&out));
            let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
            assert_eq!((j["command"].as_str(), j["receipt"].as_str()), (Some("verify"), Some(file)));
            assert_eq!(j["model_checksum"], r["model_checksum"]);
            assert_eq!(j["backend"], backend);
        }
    }
}

#[test]
fn verify_refuses_changed_data_and_changed_parameters() {
    let dir = workdir("refuse");
    let (rust, cpp) = (guest_rust(), guest_cpp());
    let out = run(&dir, "cpu", &[], &rust, &[&TRAIN[..], &["--model", "m.bin", "--receipt", "r.json"]].concat());
    assert!(out.status.success(), "{}", describe(&out));
    let text = std::fs::read_to_string(dir.join("r.json")).unwrap();

    // One byte of the data changed (a digit of a feature value), given with --train.
    let mut data = std::fs::read(dir.join("data/diabetes_train.csv")).unwrap();
    let at = data.iter().rposition(|b| b.is_ascii_digit() && *b != b'9').unwrap();
    data[at] += 1;
    std::fs::write(dir.join("changed.csv"), &data).unwrap();
    // A parameter changed in the receipt: the model it names is then not the one training gives.
    std::fs::write(dir.join("seed.json"), text.replace("\"seed\": 42", "\"seed\": 43")).unwrap();
    // The model hash changed.
    let model_sha = receipt(&dir, "r.json")["model_sha256"].as_str().unwrap().to_string();
    let flipped = format!("{}{}", if model_sha.starts_with('0') { '1' } else { '0' }, &model_sha[1..]);
    std::fs::write(dir.join("hash.json"), text.replace(&model_sha, &flipped)).unwrap();
    std::fs::write(dir.join("broken.json"), &text[..text.len() / 2]).unwrap();

    for guest in [&rust, &cpp] {
        let cases: [(&[&str], &str, &str); 4] = [
            (
                &["--receipt", "r.json", "--train", "changed.csv"],
                "error: changed.csv: its SHA-256 is ",
                "not the data the model was trained on",
            ),
            (&["--receipt", "seed.json"], "error: seed.json: the model trained here (", "not verified"),
            (&["--receipt", "hash.json"], "error: hash.json: the model trained here (", "not verified"),
            (&["--receipt", "broken.json"], "error: broken.json: not a receipt: ", "at byte"),
        ];
        for (args, starts, contains) in cases {
            let out = run(&dir, "cpu", &[], guest, &[&["verify", "--quiet"][..], args].concat());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{} {args:?}: {}", guest.display(), describe(&out));
            assert!(stderr.starts_with(starts) && stderr.contains(contains), "{} {args:?}: {stderr}", guest.display());
        }
        // A usage error: exit 2 from the Rust guest; the C++ guest's preview-1 adapter turns
        // every non-zero exit into 1.
        let out = run(&dir, "cpu", &[], guest, &["verify"]);
        let usage = if *guest == rust { Some(2) } else { Some(1) };
        assert_eq!(out.status.code(), usage, "verify without --receipt is a usage error: {}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: verify needs --receipt FILE"), "{}", describe(&out));
        // The unchanged receipt still verifies.
        let out = run(&dir, "cpu", &[], guest, &["verify", "--receipt", "r.json", "--quiet"]);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("verified: r.json: the model trained here"), "{}", describe(&out));
    }
}

/// The receipt of the diabetes forest the Rust guest trained on an NVIDIA H200 through CUDA
/// (docs/results.md, "Receipts"): both guests still derive that model, byte for byte, on the
/// CPU backend here. Fails when training changes the model; a deliberate change of the
/// algorithm re-records the receipt on a GPU machine, like the parity snapshots.
#[test]
fn the_receipt_of_a_cuda_trained_model_verifies_on_the_cpu() {
    let dir = workdir("h200");
    std::fs::copy(workspace().join("docs/receipts/h200-cuda-diabetes.json"), dir.join("h200.json")).unwrap();
    let r = receipt(&dir, "h200.json");
    assert_eq!((r["backend"].as_str(), r["device"].as_str()), (Some("cuda"), Some("NVIDIA H200")));
    for guest in [guest_rust(), guest_cpp()] {
        let out = run(&dir, "cpu", &[], &guest, &["verify", "--receipt", "h200.json", "--train", "data/diabetes_train.csv", "--quiet"]);
        assert!(out.status.success(), "{}: {}", guest.display(), describe(&out));
    }
}
