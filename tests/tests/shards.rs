//! One forest trained in shards (docs/algorithm.md §11, docs/multi-gpu.md): partial forests
//! from either guest and any backend merge into the one-piece model byte for byte, through
//! the guests' `merge`, `cargo xtask train-multi` and the Ray driver on a local cluster; a bad
//! set of shards (gap, overlap, other data, other parameters) is refused, naming the file.
//!
//! Runs the artefacts of `cargo xtask build-all` under the real host (see cpp_guest.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wasi_gpu_tests::artefacts::{guest_cpp, guest_rust, host, python_with, workspace};

fn workdir(name: &str) -> PathBuf {
    let dir = workspace().join("target").join("test-shards").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(workspace().join("data/diabetes_train.csv"), dir.join("data/train.csv")).unwrap();
    dir
}

fn run(dir: &Path, backend: &str, guest: &Path, args: &[&str]) -> Output {
    Command::new(host())
        .current_dir(dir)
        .args(["run", "--backend", backend, "--dir-rw", "."])
        .arg(guest)
        .arg("--")
        .args(args)
        .output()
        .expect("starting the host")
}

fn describe(out: &Output) -> String {
    format!("{}\nstdout:\n{}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", describe(&out));
    out
}

/// The parameters of every run here: 13 trees (an odd count, so shard sizes differ).
const PARAMS: [&str; 8] = ["--trees", "13", "--max-depth", "6", "--max-features", "sqrt", "--quiet", "--train"];

fn train(dir: &Path, backend: &str, guest: &Path, model: &str, shard: Option<(u32, u32)>) {
    let mut args = vec!["train".to_string()];
    args.extend(PARAMS.iter().map(|s| s.to_string()));
    args.extend(["data/train.csv".into(), "--model".into(), model.into()]);
    if let Some((a, b)) = shard {
        args.extend(["--trees-from".into(), a.to_string(), "--trees-to".into(), b.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(run(dir, backend, guest, &args));
}

fn wgpu_available() -> bool {
    let out = Command::new(host()).arg("devices").output().expect("starting the host");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.ends_with(": usable"))
}

fn python() -> PathBuf {
    python_with("ray")
}

#[test]
fn shards_from_both_guests_and_backends_merge_into_the_one_piece_model() {
    let dir = workdir("merge");
    let (rust, cpp) = (guest_rust(), guest_cpp());
    train(&dir, "cpu", &rust, "whole.bin", None);
    let whole = std::fs::read(dir.join("whole.bin")).unwrap();
    let gpu = if wgpu_available() { "wgpu" } else { "cpu" };
    train(&dir, "cpu", &rust, "p0.bin", Some((0, 4)));
    train(&dir, "cpu", &cpp, "p1.bin", Some((4, 9)));
    train(&dir, gpu, &rust, "p2.bin", Some((9, 13)));
    for (guest, name) in [(&rust, "rust.bin"), (&cpp, "cpp.bin")] {
        // In any order.
        ok(run(&dir, "cpu", guest, &["merge", "--model", name, "p2.bin", "p0.bin", "p1.bin", "--quiet"]));
        assert!(std::fs::read(dir.join(name)).unwrap() == whole, "{}: the merged model differs from the one-piece model", guest.display());
    }
    // The partial files are the same bytes from either guest.
    train(&dir, "cpu", &cpp, "p0-cpp.bin", Some((0, 4)));
    assert!(
        std::fs::read(dir.join("p0.bin")).unwrap() == std::fs::read(dir.join("p0-cpp.bin")).unwrap(),
        "partial forests differ by guest"
    );
    // A partial forest is not a model.
    for guest in [&rust, &cpp] {
        let out = run(&dir, "cpu", guest, &["predict", "--model", "p0.bin", "--test", "data/train.csv"]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("a partial forest, not a model: merge it"), "{}", describe(&out));
    }
}

#[test]
fn bad_sets_of_shards_are_refused() {
    let dir = workdir("refuse");
    let (rust, cpp) = (guest_rust(), guest_cpp());
    train(&dir, "cpu", &rust, "a.bin", Some((0, 5)));
    train(&dir, "cpu", &rust, "b.bin", Some((5, 13)));
    train(&dir, "cpu", &rust, "gap.bin", Some((6, 13)));
    train(&dir, "cpu", &rust, "over.bin", Some((4, 13)));
    // Other data: one byte of the training file changed.
    let mut data = std::fs::read(dir.join("data/train.csv")).unwrap();
    let at = data.iter().rposition(|b| b.is_ascii_digit() && *b != b'9').unwrap();
    data[at] += 1;
    std::fs::write(dir.join("data/other.csv"), &data).unwrap();
    ok(run(
        &dir,
        "cpu",
        &rust,
        &[&["train"][..], &PARAMS[..], &["data/other.csv", "--model", "data.bin", "--trees-from", "5", "--trees-to", "13"]].concat(),
    ));
    // Other parameters: another seed.
    ok(run(
        &dir,
        "cpu",
        &rust,
        &[&["train"][..], &PARAMS[..], &["data/train.csv", "--seed", "7", "--model", "seed.bin", "--trees-from", "5", "--trees-to", "13"]]
            .concat(),
    ));
    let mut damaged = std::fs::read(dir.join("b.bin")).unwrap();
    damaged[14] ^= 1; // the header's tree range
    std::fs::write(dir.join("damaged.bin"), damaged).unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["a.bin", "gap.bin"], "error: gap.bin: starts at tree 6 but trees 5..6 are missing"),
        (&["a.bin", "over.bin"], "error: over.bin: trees 4..5 overlap"),
        (&["a.bin"], "error: a.bin: ends at tree 5 but the forest has 13 trees"),
        (&["a.bin", "data.bin"], "error: data.bin: the training data (its XXH64 and size) differs from a.bin's"),
        (&["a.bin", "seed.bin"], "error: seed.bin: a parameter or the target mapping differs from a.bin's"),
        (&["a.bin", "damaged.bin"], "error: damaged.bin: checksum mismatch in the partial forest's header"),
        (&["a.bin", "data/train.csv"], "error: data/train.csv: not a partial forest"),
    ];
    for guest in [&rust, &cpp] {
        for (parts, expected) in cases {
            let out = run(&dir, "cpu", guest, &[&["merge", "--model", "m.bin"][..], parts].concat());
            assert_eq!(out.status.code(), Some(1), "{} {parts:?}: {}", guest.display(), describe(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.starts_with(expected), "{} {parts:?}: expected `{expected}`, got {stderr}", guest.display());
            assert!(!dir.join("m.bin").exists(), "a refused merge writes nothing");
        }
    }
}

#[test]
fn train_multi_and_the_ray_driver_give_the_one_piece_model() {
    let dir = workdir("drivers");
    let rust = guest_rust();
    train(&dir, "cpu", &rust, "whole.bin", None);
    let whole = std::fs::read(dir.join("whole.bin")).unwrap();
    let extra = ["--max-depth", "6", "--max-features", "sqrt"];
    let xtask = workspace().join("target/release/xtask");
    let xtask = if xtask.is_file() { xtask } else { workspace().join("target/debug/xtask") };
    let out = ok(Command::new(&xtask)
        .args(["train-multi", "--backend", "cpu", "--devices", "3", "--trees", "13", "--json", "--host"])
        .arg(host())
        .arg("--guest")
        .arg(&rust)
        .arg("--train")
        .arg(dir.join("data/train.csv"))
        .arg("--model")
        .arg(dir.join("multi.bin"))
        .arg("--")
        .args(extra)
        .output()
        .expect("starting xtask"));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(j["shards"].as_array().map(Vec::len), Some(3), "{j}");
    assert!(std::fs::read(dir.join("multi.bin")).unwrap() == whole, "train-multi's model differs from the one-piece model");
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".part-")), "parts removed");

    // Ray: a local cluster of 3 CPUs, one task per shard.
    let out = ok(Command::new(python())
        .arg(workspace().join("tools/wasi_gpu_ray.py"))
        .args(["--backend", "cpu", "--shards", "3", "--trees", "13", "--num-cpus", "3", "--host"])
        .arg(host())
        .arg("--guest")
        .arg(&rust)
        .arg("--train")
        .arg(dir.join("data/train.csv"))
        .arg("--model")
        .arg(dir.join("ray.bin"))
        .arg("--")
        .args(extra)
        .output()
        .expect("starting Python"));
    let line = String::from_utf8_lossy(&out.stdout);
    let j: serde_json::Value = serde_json::from_str(line.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(j["shards"].as_array().map(Vec::len), Some(3), "{j}");
    assert!(std::fs::read(dir.join("ray.bin")).unwrap() == whole, "the Ray driver's model differs from the one-piece model");

    // The same with the data read where it is (--shared-path): the shards see its directory.
    ok(Command::new(python())
        .arg(workspace().join("tools/wasi_gpu_ray.py"))
        .args(["--backend", "cpu", "--shards", "2", "--trees", "13", "--num-cpus", "2", "--shared-path", "--host"])
        .arg(host())
        .arg("--guest")
        .arg(&rust)
        .arg("--train")
        .arg(dir.join("data/train.csv"))
        .arg("--model")
        .arg(dir.join("ray-shared.bin"))
        .arg("--")
        .args(extra)
        .output()
        .expect("starting Python"));
    assert!(std::fs::read(dir.join("ray-shared.bin")).unwrap() == whole, "--shared-path gave another model");
}
