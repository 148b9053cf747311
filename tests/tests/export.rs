//! `tools/wasi_gpu_export.py`: a model.bin exported to ONNX (onnxruntime) and to Treelite
//! (`treelite.gtil`) predicts what the guests' `predict --out` writes, within 1e-5 relative
//! per row (docs/export.md), on diabetes and on a generated 100k-row table of integer ties.
//!
//! The rows predicted are the test rows plus "probe" rows whose features are set to the
//! model's own thresholds, so that `x <= threshold` against `x < threshold` changes the
//! predictions (the test checks that it would, using the reader with the values nudged one
//! float32 step up); rows with a NaN feature (which the guests cannot read) are compared with
//! tools/wasi_gpu_model.py, the guests' bytes exactly (tests/tests/python_reader.rs).
//!
//! Python: `ACCURACY_PYTHON`, else `target/accuracy-venv/bin/python` (made by .ci/setup), else
//! `python3`; it needs NumPy, onnx, onnxruntime and treelite. None with all four is a failure,
//! never a skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wasi_gpu_tests::artefacts::{fresh_dir, guest_cpp, guest_in, guest_rust, python_with, run_ok, workspace};

/// The brief's bound: relative difference per row.
const TOLERANCE: f64 = 1e-5;
/// ONNX's only loss is rounding the double result to float32 (Y is float32): half an ulp,
/// 2^-24 relative, with a factor 2 to spare. Float thresholds or float leaf sums would exceed it.
const ONNX_FLOAT32_BOUND: f64 = 1.0 / (1u64 << 23) as f64;
/// Treelite keeps doubles to the end: only the summation order differs from the guests'.
const TREELITE_DOUBLE_BOUND: f64 = 1e-12;

/// Helpers run with the Python that has the packages. `prepare`: the rows to predict (test rows,
/// then probe rows at the model's thresholds) and how many of them `x < threshold` would move.
/// `predict`: onnxruntime's and treelite's predictions, the ONNX file's opsets and modes, and
/// NaN rows against the reader.
const HELPER: &str = r#"
import json, sys
import numpy as np
tools, mode = sys.argv[1], sys.argv[2]
sys.path.insert(0, tools)
import wasi_gpu_model as wgm

def thresholds(m):
    out = [[] for _ in range(m.features)]
    for f, t in zip(m.feature, m.threshold):
        inner = f != wgm.NONE
        for j, v in zip(f[inner], t[inner]):
            out[int(j)].append(v)
    return [np.unique(np.array(v, dtype=np.float32)) for v in out]

if mode == "prepare":
    model, test, out, probes = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
    m = wgm.load(model)
    x, _ = wgm.read_csv(test, m.features)
    rng = np.random.default_rng(7)
    thr = thresholds(m)
    p = x[rng.integers(0, len(x), probes)].copy()
    for j, t in enumerate(thr):
        if len(t):
            hit = rng.random(probes) < 0.5
            p[hit, j] = rng.choice(t, int(hit.sum())).astype(np.float64)
    rows = np.vstack([x, p])
    with open(out, "w") as f:
        f.write(",".join(f"f{j}" for j in range(m.features)) + "\n")
        f.writelines(",".join(repr(float(v)) for v in r) + "\n" for r in rows)
    x32 = rows.astype(np.float32)
    nudged = x32.copy()
    ties = 0
    for j, t in enumerate(thr):
        at = np.isin(x32[:, j], t)
        ties += int(at.sum())
        nudged[at, j] = np.nextafter(x32[at, j], np.float32(np.inf))
    moved = int((wgm.predict(m, x32) != wgm.predict(m, nudged)).sum())
    print(json.dumps({"rows": len(rows), "ties": ties, "moved_by_lt": moved}))
elif mode == "predict":
    model, rows, onnx_path, tl_path, outdir = sys.argv[3:8]
    import onnx, onnxruntime, treelite
    m = wgm.load(model)
    x = np.loadtxt(rows, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64).astype(np.float32)
    proto = onnx.load(onnx_path)
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    modes = sorted({s.decode() for n in proto.graph.node for a in n.attribute if a.name == "nodes_modes" for s in a.strings})
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    run_onnx = lambda x: session.run(["Y"], {"X": x})[0][:, 0].astype(np.float64)
    tl = treelite.Model.deserialize(tl_path)
    run_tl = lambda x: treelite.gtil.predict(tl, x).reshape(len(x)).astype(np.float64)
    for name, y in [("onnx", run_onnx(x)), ("treelite", run_tl(x))]:
        with open(f"{outdir}/{name}.txt", "w") as f:
            f.writelines("%.17g\n" % v for v in y)
    rng = np.random.default_rng(11)
    xn = x[: min(len(x), 500)].copy()
    xn[np.arange(len(xn)), rng.integers(0, m.features, len(xn))] = np.nan
    want = wgm.predict(m, xn)
    rel = lambda got: float(np.max(np.abs(got - want) / np.abs(want)))
    print(json.dumps({
        "opsets": {o.domain or "ai.onnx": o.version for o in proto.opset_import}, "ops": ops, "modes": modes,
        "onnx_input": onnx.helper.tensor_dtype_to_np_dtype(proto.graph.input[0].type.tensor_type.elem_type).name,
        "treelite_trees": tl.num_tree, "treelite_types": [tl.input_type, tl.output_type],
        "nan_rows": len(xn), "nan_moved": int((want != wgm.predict(m, x[: len(xn)])).sum()),
        "nan_onnx": rel(run_onnx(xn)), "nan_treelite": rel(run_tl(xn)),
    }))
"#;

fn python() -> PathBuf {
    python_with("numpy, onnx, onnxruntime, treelite")
}

fn exporter(python: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(python)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(workspace().join("tools/wasi_gpu_export.py"))
        .args(args)
        .output()
        .expect("start python")
}

fn helper(python: &Path, dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = run_ok(
        Command::new(python)
            .current_dir(dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .args(["-c", HELPER])
            .arg(workspace().join("tools"))
            .args(args),
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("helper {args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn read_values(path: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| l.parse().unwrap_or_else(|e| panic!("{}: {l:?}: {e}", path.display()))).collect()
}

/// (maximum relative difference |got - want| / |want|, its row).
fn max_relative(got: &[f64], want: &[f64]) -> (f64, usize) {
    assert_eq!(got.len(), want.len(), "row counts differ");
    let mut best = (0.0, 0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let rel = if g == w { 0.0 } else { (g - w).abs() / w.abs() };
        // NaN (an unreadable or missing prediction) must fail too.
        let rel = if rel.is_nan() { f64::INFINITY } else { rel };
        if rel > best.0 {
            best = (rel, i);
        }
    }
    best
}

/// Straight to the process's stderr, past libtest's capture, so the CI log has the numbers.
fn report(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Trains with `wasm` on `train`, exports the model to ONNX and Treelite, predicts the test rows
/// plus `probes` rows at the model's thresholds with the guest and with both runtimes, and checks
/// every row within TOLERANCE (and the tighter per-format bounds).
fn exports_match_the_guest(name: &str, dir: &Path, wasm: &Path, train: &str, test: &str, train_args: &[&str], probes: usize) {
    let python = python();
    let mut args = vec!["train", "--train", train, "--model", "m.bin", "--quiet"];
    args.extend_from_slice(train_args);
    guest_in(dir, wasm, &args);

    let prepared = helper(&python, dir, &["prepare", "m.bin", test, "rows.csv", &probes.to_string()]);
    let rows = prepared["rows"].as_u64().unwrap() as usize;
    // The probe rows must exercise the tie: with `<` instead of `<=` many would be predicted
    // differently (the reader on the rows with every tied value one float32 step up).
    let moved = prepared["moved_by_lt"].as_u64().unwrap() as usize;
    assert!(moved >= probes / 4, "{name}: only {moved} of {rows} rows depend on x == threshold going left ({prepared})");

    guest_in(dir, wasm, &["predict", "--model", "m.bin", "--test", "rows.csv", "--out", "guest.txt", "--quiet"]);
    for (format, file) in [("onnx", "m.onnx"), ("treelite", "m.treelite")] {
        let out = exporter(&python, dir, &["--format", format, "m.bin", file]);
        assert!(out.status.success(), "{name}: export to {format}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let facts = helper(&python, dir, &["predict", "m.bin", "rows.csv", "m.onnx", "m.treelite", "."]);

    let want = read_values(&dir.join("guest.txt"));
    assert_eq!(want.len(), rows, "{name}: the guest predicted {} rows of {rows}", want.len());
    let (onnx, onnx_row) = max_relative(&read_values(&dir.join("onnx.txt")), &want);
    let (tl, tl_row) = max_relative(&read_values(&dir.join("treelite.txt")), &want);
    let (nan_onnx, nan_tl) = (facts["nan_onnx"].as_f64().unwrap(), facts["nan_treelite"].as_f64().unwrap());
    report(&format!(
        "export {name}: {rows} rows ({probes} at thresholds, {moved} would move under `<`), max relative difference to \
         the guest: onnxruntime {onnx:.3e} (row {onnx_row}), treelite {tl:.3e} (row {tl_row}); {} NaN rows ({} moved by \
         the NaN) against the reader: onnxruntime {nan_onnx:.3e}, treelite {nan_tl:.3e}\n",
        facts["nan_rows"], facts["nan_moved"]
    ));
    assert!(onnx <= TOLERANCE, "{name}: onnxruntime differs from the guest by {onnx:e} relative at row {onnx_row}");
    assert!(tl <= TOLERANCE, "{name}: treelite differs from the guest by {tl:e} relative at row {tl_row}");
    assert!(onnx <= ONNX_FLOAT32_BOUND, "{name}: onnxruntime: {onnx:e} at row {onnx_row}, more than float32 output rounding");
    assert!(tl <= TREELITE_DOUBLE_BOUND, "{name}: treelite: {tl:e} at row {tl_row}, more than double rounding");
    assert!(facts["nan_moved"].as_u64().unwrap() > 0, "{name}: no NaN row changes its prediction: {facts}");
    assert!(nan_onnx <= ONNX_FLOAT32_BOUND, "{name}: NaN rows: onnxruntime differs from the reader by {nan_onnx:e}");
    assert!(nan_tl <= TREELITE_DOUBLE_BOUND, "{name}: NaN rows: treelite differs from the reader by {nan_tl:e}");
    // What the files declare (docs/export.md): the opsets, the operators and the split mode.
    assert_eq!(facts["opsets"], serde_json::json!({"ai.onnx": 13, "ai.onnx.ml": 3}), "{name}: {facts}");
    assert_eq!(facts["ops"], serde_json::json!(["Cast", "TreeEnsembleRegressor"]), "{name}: {facts}");
    assert_eq!(facts["modes"], serde_json::json!(["BRANCH_LEQ", "LEAF"]), "{name}: {facts}");
    assert_eq!(facts["onnx_input"], "float32", "{name}: {facts}");
    assert_eq!(facts["treelite_types"], serde_json::json!(["float64", "float64"]), "{name}: {facts}");
}

/// The diabetes forest of `./x run` (200 trees, depth 16), trained by the Rust guest.
#[test]
fn exported_diabetes_forest_predicts_the_guests_values() {
    let dir = fresh_dir("test-export", "diabetes");
    for f in ["diabetes_train.csv", "diabetes_test.csv"] {
        std::fs::copy(workspace().join("data").join(f), dir.join(f)).unwrap();
    }
    exports_match_the_guest("diabetes", &dir, &guest_rust(), "diabetes_train.csv", "diabetes_test.csv", &[], 2000);
}

/// 100k rows x 12 features: integer columns with heavy ties, a zero-heavy column, values near
/// 1e6, a constant column, two adjacent float32 values (so a threshold equals a data value) and
/// a column of arbitrary doubles that the guests round to float32; 20 trees of depth 12,
/// trained by the C++ guest.
#[test]
fn exported_100k_row_forest_predicts_the_guests_values() {
    let dir = fresh_dir("test-export", "ties-100k");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut table = |rows: usize| {
        let mut s = String::from("f0,f1,f2,f3,f4,f5,f6,f7,f8,f9,f10,f11,y\n");
        for _ in 0..rows {
            let f0 = (next() % 10) as f64;
            let f1 = (next() % 100) as f64;
            let f2 = (next() % 7) as f64 - 3.0;
            let f3 = (next() % 2) as f64;
            let f4 = (next() % 1000) as f64 / 1000.0;
            let f5 = (next() % 1000) as f64;
            let f6 = if next().is_multiple_of(2) { 1.0 } else { 1.0 + f64::from(f32::EPSILON) };
            let f7 = if next().is_multiple_of(5) { (1 + next() % 49) as f64 } else { 0.0 };
            let f8 = 1e6 + (next() % 30) as f64;
            let f10 = -((next() % 400) as f64) / 8.0;
            let f11 = (next() >> 11) as f64 / (1u64 << 53) as f64 * 100.0;
            let noise = (next() % 4001) as f64 / 1000.0 - 2.0;
            let bump = if f6 > 1.0 { 5.0 } else { 0.0 };
            let y = 100.0 + 3.0 * f0 + 0.1 * f1 * f2 + 20.0 * f3 * f4 + 0.01 * f5 + bump + f7 + (f8 - 1e6) + 0.5 * f10 + 0.2 * f11 + noise;
            s += &format!("{f0},{f1},{f2},{f3},{f4},{f5},{f6:?},{f7},{f8},7,{f10},{f11:?},{y:?}\n");
        }
        s
    };
    std::fs::write(dir.join("train.csv"), table(100_000)).unwrap();
    std::fs::write(dir.join("test.csv"), table(20_000)).unwrap();
    exports_match_the_guest("100k", &dir, &guest_cpp(), "train.csv", "test.csv", &["--trees", "20", "--max-depth", "12"], 5000);
}

/// Usage errors exit with 2; a damaged file, or one the formats cannot hold exactly (a NaN
/// threshold, a node with two parents; for ONNX, predictions beyond float32), exits with 1 and
/// says why, writing nothing.
#[test]
fn exporter_refuses_bad_usage_and_models_it_cannot_represent() {
    let python = python();
    let dir = fresh_dir("test-export", "refuse");
    for f in ["diabetes_train.csv", "diabetes_test.csv"] {
        std::fs::copy(workspace().join("data").join(f), dir.join(f)).unwrap();
    }
    guest_in(&dir, &guest_rust(), &["train", "--train", "diabetes_train.csv", "--model", "m.bin", "--trees", "3", "--quiet"]);

    for args in [&["m.bin", "out.onnx"][..], &["--format", "pmml", "m.bin", "out"], &["--format", "onnx", "m.bin"]] {
        let out = exporter(&python, &dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    // Rewrites m.bin's first tree with the reader's layout (header 84 bytes, then per tree a
    // node count and 32-byte nodes) and a fresh checksum, so only the exporter can object.
    let edit = |name: &str, python_edit: &str| {
        let script = format!(
            "import struct, sys\nsys.path.insert(0, sys.argv[1])\nimport wasi_gpu_model as w\n\
             b = bytearray(open('m.bin', 'rb').read()[:-8])\nnode = lambda k: 88 + 32 * k\n{python_edit}\n\
             open('{name}', 'wb').write(bytes(b) + struct.pack('<Q', w.xxh64(bytes(b))))\n"
        );
        run_ok(
            Command::new(&python)
                .current_dir(&dir)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .args(["-c", &script])
                .arg(workspace().join("tools")),
        );
    };
    // The root's threshold becomes NaN.
    edit("nan.bin", "struct.pack_into('<f', b, node(0) + 4, float('nan'))");
    // The root's right child becomes its left child: node 1 has two parents, the old right
    // child none.
    edit("dag.bin", "struct.pack_into('<I', b, node(0) + 12, struct.unpack_from('<I', b, node(0) + 8)[0])");
    let mut damaged = std::fs::read(dir.join("m.bin")).unwrap();
    damaged[200] ^= 1;
    std::fs::write(dir.join("damaged.bin"), damaged).unwrap();

    for (model, expect) in [("nan.bin", "threshold nan"), ("dag.bin", "is the child of 2 nodes"), ("damaged.bin", "checksum mismatch")] {
        for format in ["onnx", "treelite"] {
            let out = exporter(&python, &dir, &["--format", format, model, "out"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{model} {format}: {stderr}");
            assert!(stderr.contains(expect), "{model} {format}: expected {expect:?} in {stderr}");
            assert!(!dir.join("out").exists() && !dir.join("out.tmp").exists(), "{model} {format}: a file was written");
        }
    }
    // The untouched model exports.
    for format in ["onnx", "treelite"] {
        let out = exporter(&python, &dir, &["--format", format, "m.bin", "out"]);
        assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::remove_file(dir.join("out")).unwrap();
    }

    // Targets up to 1e39: ONNX's float32 output cannot hold the predictions, Treelite's float64
    // can (and its --check against the reader passes).
    std::fs::write(dir.join("big.csv"), "a,y\n1,0\n2,1e39\n3,5e38\n4,2\n").unwrap();
    guest_in(&dir, &guest_rust(), &["train", "--train", "big.csv", "--model", "big.bin", "--trees", "5", "--quiet"]);
    let out = exporter(&python, &dir, &["--format", "onnx", "big.bin", "big.onnx"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && stderr.contains("beyond float32"), "big.bin onnx: {stderr}");
    let out = exporter(&python, &dir, &["--format", "treelite", "big.bin", "big.treelite", "--check", "big.csv"]);
    assert!(out.status.success(), "big.bin treelite: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"max_relative_difference\""), "{}", String::from_utf8_lossy(&out.stdout));
}
