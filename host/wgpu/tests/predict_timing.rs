//! How long one `predict-forest` launch of a given number of walk steps takes on this
//! machine's wgpu adapter; the figures behind `SOFTWARE_STEPS` in src/predict.rs. Run with
//! `cargo test --release -p wasi-gpu-wgpu --test predict_timing -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use wasi_gpu_backend::{Backend, CallBudget, NONE, PredictParams, PredictSpan};

/// Times one call (the backend may split it into several launches when a row's walks are
/// long, `SOFTWARE_ROW_STEPS`) over every row and tree of a forest whose trees are all one chain of
/// `depth` splits, so that every walk takes all `depth + 1` steps.
fn time_launch(b: &mut dyn Backend, rows: u32, trees: u32, depth: u32) -> Duration {
    let mut nodes = Vec::new();
    for i in 0..depth {
        nodes.extend_from_slice(&[0, 0.5f32.to_bits(), i + 1, i + 1]);
    }
    nodes.extend_from_slice(&[NONE, 1, 0, 0]);
    let p = PredictParams { rows, features: 1, tree_count: trees, node_count: depth + 1, max_depth: depth };
    let x: Vec<u8> = (0..rows).flat_map(|r| (r as f32 / rows as f32).to_le_bytes()).collect();
    let words = |w: &[u32]| w.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    let bufs = [x, words(&nodes), words(&vec![0u32; trees as usize]), vec![0u8; rows as usize * 16]];
    for (i, data) in bufs.iter().enumerate() {
        b.alloc(i as u64 + 1, data.len() as u64).unwrap();
        b.write(i as u64 + 1, 0, data).unwrap();
    }
    b.begin_call(&CallBudget { scratch_bytes: 1 << 30, ..Default::default() });
    let mut best = Duration::MAX;
    for _ in 0..3 {
        b.synchronize().unwrap();
        let start = Instant::now();
        b.predict_forest(&p, &PredictSpan::all(&p), 1, 2, 3, 4).unwrap();
        b.synchronize().unwrap();
        best = best.min(start.elapsed());
    }
    let sums = b.read(4, 0, rows as u64 * 16).unwrap();
    for q in sums.chunks(16) {
        assert_eq!(u32::from_le_bytes(q[..4].try_into().unwrap()), trees, "every walk reaches its leaf");
    }
    for i in 1..=4 {
        b.free(i);
    }
    best
}

#[test]
#[ignore = "a measurement, not a check"]
fn predict_launch_time() {
    let Ok(mut b) = wasi_gpu_wgpu::open(true) else {
        eprintln!("wgpu: skipped: no adapter");
        return;
    };
    eprintln!("adapter: {} ({}), {} steps per launch", b.info().name, b.info().driver, b.predict_steps_per_launch());
    let mut cases = vec![
        (1 << 14, 16, 63),
        (1 << 16, 16, 63),
        (1 << 18, 4, 15),
        (1 << 12, 1, 4095),
        (64, 64, 4095),
        (8, 512, 4095),
        (1, 4096, 4095),
        (1, 256, 65533),
    ];
    if b.info().hardware {
        cases.extend([(1 << 20, 64, 15), (1 << 14, 64, 1023), (1 << 16, 256, 63), (1, 16384, 4095), (64, 16384, 4095)]);
    }
    for (rows, trees, depth) in cases {
        let steps = rows as u64 * trees as u64 * (depth as u64 + 1);
        let t = time_launch(&mut *b, rows, trees, depth);
        eprintln!(
            "rows {rows:>7} trees {trees:>5} depth {depth:>7}: {steps:>10} steps ({:.1} x 2^20) in {:>8.1} ms = {:.2} ns/step",
            steps as f64 / (1 << 20) as f64,
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e9 / steps as f64
        );
    }
}
