//! Checks of the CUDA backend that go below [`Device`]: `predict-forest` launched span by
//! span (set and add, both the one-group and the shared-row kernel paths, carries into
//! the high half) against `kernels::predict_forest_span`, and `find-splits-rows` under
//! scratch budgets from ample down to none (the dense batch shrinking to one slot, the
//! grouped fallback, `limit-exceeded`), plus a cancelled dense call. Exit status 1 on
//! any difference.
//!
//! `cargo run -p wasi-gpu-cuda --release --example budget_check`

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wasi_gpu_backend::*;

fn bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Buffer ids handed to the backend directly (Device is bypassed).
struct Bufs<'a> {
    b: &'a mut dyn Backend,
    next: BufferId,
    ids: Vec<BufferId>,
}

impl Bufs<'_> {
    fn upload(&mut self, data: &[u32]) -> BufferId {
        let id = self.next;
        self.next += 1;
        self.b.alloc(id, data.len() as u64 * 4).expect("alloc");
        self.b.write(id, 0, &bytes(data)).expect("write");
        self.ids.push(id);
        id
    }

    fn read(&mut self, id: BufferId, n: usize) -> Vec<u32> {
        words(&self.b.read(id, 0, n as u64 * 4).expect("read"))
    }

    fn free_all(&mut self) {
        for id in self.ids.drain(..) {
            self.b.free(id);
        }
    }
}

fn budget(scratch_bytes: u64) -> CallBudget {
    CallBudget { scratch_bytes, cancel: CancelToken::new() }
}

/// A random forest over `features` features with garbage mixed in, some huge leaves.
fn forest(rng: &mut StdRng, features: u32, trees: u32, node_count: u32) -> (Vec<u32>, Vec<u32>) {
    let mut nodes = Vec::new();
    for i in 0..node_count {
        if rng.random_range(0..3) == 0 || i + 2 >= node_count {
            let v: u64 = if rng.random_bool(0.5) { u64::MAX - rng.random_range(0..1000) } else { rng.random() };
            nodes.extend([NONE, v as u32, (v >> 32) as u32, 0]);
        } else {
            let f = if rng.random_range(0..20) == 0 { features + rng.random_range(0..3) } else { rng.random_range(0..features) };
            let left = if rng.random_range(0..15) == 0 { rng.random_range(0..=i) } else { rng.random_range(i + 1..node_count + 2) };
            let right = rng.random_range(i + 1..node_count + 2);
            nodes.extend([f, rng.random_range(-2.0f32..2.0).to_bits(), left, right]);
        }
    }
    let roots = (0..trees).map(|_| if rng.random_range(0..10) == 0 { rng.random() } else { rng.random_range(0..node_count) }).collect();
    (nodes, roots)
}

/// Runs `spans` in order on CUDA and on the reference; true when every byte matches.
fn predict_case(b: &mut dyn Backend, label: &str, p: PredictParams, spans: &[PredictSpan], seed: u64) -> bool {
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Vec<u32> = (0..p.rows as usize * p.features as usize)
        .map(|_| if rng.random_range(0..50) == 0 { f32::NAN.to_bits() } else { rng.random_range(-2.0f32..2.0).to_bits() })
        .collect();
    let (nodes, roots) = forest(&mut rng, p.features, p.tree_count, p.node_count);
    // Sums start as garbage: rows outside every span must keep it.
    let start: Vec<u32> = (0..p.rows as usize * 4).map(|_| rng.random()).collect();
    let xf: Vec<f32> = x.iter().map(|&w| f32::from_bits(w)).collect();
    let mut want = start.clone();
    for span in spans {
        kernels::predict_forest_span(&p, span, &xf, &nodes, &roots, &mut want);
    }
    let mut bufs = Bufs { b, next: 1, ids: Vec::new() };
    let ids = [bufs.upload(&x), bufs.upload(&nodes), bufs.upload(&roots), bufs.upload(&start)];
    let mut result = Ok(());
    for span in spans {
        bufs.b.begin_call(&budget(0));
        result = bufs.b.predict_forest(&p, span, ids[0], ids[1], ids[2], ids[3]).and_then(|_| bufs.b.synchronize());
        if result.is_err() {
            break;
        }
    }
    let got = bufs.read(ids[3], p.rows as usize * 4);
    bufs.free_all();
    let same = result.is_ok() && got == want;
    let carries = want.chunks_exact(4).filter(|q| q[2] != 0 || q[3] != 0).count();
    println!("predict {label}: {} spans, {carries} rows with a high half: {}", spans.len(), if same { "identical" } else { "DIFFERENT" });
    if let Err(e) = result {
        println!("  error: {e}");
    } else if !same {
        let k = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
        println!("  first difference at row {}: got {:?} want {:?}", k / 4, &got[k / 4 * 4..][..4], &want[k / 4 * 4..][..4]);
    }
    same
}

fn predict_checks(b: &mut dyn Backend) -> bool {
    let mut ok = true;
    let p = PredictParams { rows: 1000, features: 7, tree_count: 300, node_count: 500, max_depth: 12 };
    // Device's own splits at several step budgets, then hand-made spans.
    for (i, steps) in [u64::MAX, 1 << 20, 50_000, 1000, 200].into_iter().enumerate() {
        let spans: Vec<PredictSpan> = PredictSpan::split(&p, steps).collect();
        ok &= predict_case(b, &format!("split steps {steps}"), p, &spans, 100 + i as u64);
    }
    let span = |r: std::ops::Range<u32>, t: std::ops::Range<u32>| PredictSpan {
        row_begin: r.start,
        row_end: r.end,
        tree_begin: t.start,
        tree_end: t.end,
    };
    let manual =
        [span(3..997, 0..1), span(3..997, 1..2), span(10..20, 2..300), span(500..501, 0..300), span(0..1000, 5..5), span(7..9, 0..0)];
    ok &= predict_case(b, "hand-made spans", p, &manual, 200);
    // No trees at all: the first launch zeroes the rows.
    let p0 = PredictParams { tree_count: 0, ..p };
    ok &= predict_case(b, "no trees", p0, &[PredictSpan::all(&p0)], 201);
    // One row, many trees: the shared-row path with atomics.
    let p1 = PredictParams { rows: 1, features: 3, tree_count: 200_000, node_count: 64, max_depth: 40 };
    ok &= predict_case(b, "one row", p1, &PredictSpan::split(&p1, 1 << 28).collect::<Vec<_>>(), 202);
    ok &= predict_case(b, "one row, two spans", p1, &[span(0..1, 0..70_000), span(0..1, 70_000..200_000)], 203);
    // More rows than one grid: one group per row, sums added to in place.
    let p2 = PredictParams { rows: 1_500_000, features: 2, tree_count: 4, node_count: 40, max_depth: 6 };
    let big = [span(0..1_500_000, 0..1), span(0..1_500_000, 1..3), span(0..1_400_000, 3..4), span(1_400_000..1_500_000, 3..4)];
    ok &= predict_case(b, "many rows", p2, &big, 204);
    ok
}

/// One find-splits-rows batch with `slots_per_tree` slots per tree.
struct RowLevel {
    p: RowSplitParams,
    data: [Vec<u32>; 5],
}

impl RowLevel {
    fn new(rows: u32, features: u32, max_bins: u32, trees: u32, slots_per_tree: u32, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let slot_count = trees * slots_per_tree;
        let mask_words = features.div_ceil(32);
        let bins = (0..features as usize * rows.div_ceil(4) as usize)
            .map(|_| (0..4).fold(0u32, |w, lane| w | rng.random_range(0..max_bins) << (lane * 8)))
            .collect();
        let targets = (0..rows).map(|_| rng.random_range(0..=TARGET_MAX)).collect();
        let n = trees as usize * rows as usize;
        let weights = (0..n).map(|_| [0, 1, 1, 2, 3][rng.random_range(0..5)]).collect();
        let node_of = (0..n)
            .map(|i| {
                let t = (i / rows as usize) as u32;
                if rng.random_bool(0.05) { NONE } else { t * slots_per_tree + rng.random_range(0..slots_per_tree) }
            })
            .collect();
        let mask = (0..slot_count * mask_words).map(|_| rng.random::<u32>() | 1).collect();
        let p = RowSplitParams { rows, features, max_bins, tree_count: trees, slot_begin: 0, slot_count, min_samples_leaf: 2, mask_words };
        RowLevel { p, data: [bins, targets, weights, node_of, mask] }
    }

    fn reference(&self) -> Vec<u32> {
        let [bins, targets, weights, node_of, mask] = &self.data;
        let mut splits = vec![0u32; self.p.slot_count as usize * SPLIT_WORDS as usize];
        kernels::find_splits_rows(&self.p, bins, targets, weights, node_of, mask, &mut splits);
        splits
    }

    /// The split records under `call`, and the scratch held afterwards.
    fn run(&self, b: &mut dyn Backend, call: &CallBudget) -> (Result<Vec<u32>, GpuError>, u64) {
        let mut bufs = Bufs { b, next: 1, ids: Vec::new() };
        let ids: Vec<BufferId> = self.data.iter().map(|d| bufs.upload(d)).collect();
        let n = self.p.slot_count as usize * SPLIT_WORDS as usize;
        let splits = bufs.upload(&vec![0u32; n]);
        bufs.b.begin_call(call);
        let r = bufs
            .b
            .find_splits_rows(&self.p, ids[0], ids[1], ids[2], ids[3], ids[4], splits)
            .and_then(|_| bufs.b.synchronize())
            .map(|_| bufs.read(splits, n));
        let held = bufs.b.scratch_bytes();
        bufs.free_all();
        (r, held)
    }
}

fn budget_checks(b: &mut dyn Backend) -> bool {
    let mut ok = true;
    // (rows, features, bins, trees, slots per tree): few big slots (dense preferred), many
    // small ones (grouped preferred).
    let levels = [(200_000, 12, 64, 2, 2), (50_000, 10, 256, 2, 400)];
    for (k, &(rows, features, bins, trees, spt)) in levels.iter().enumerate() {
        let level = RowLevel::new(rows, features, bins, trees, spt, 300 + k as u64);
        let want = level.reference();
        let slot = features as u64 * bins as u64 * HIST_WORDS as u64 * 4;
        let entries = trees as u64 * rows as u64;
        // The grouped path's layout: counts and starts (slot_count + 1 words each), tile
        // sums, then entry rows and weights, each rounded up to 256 bytes.
        let align = |words: u64| (words * 4).div_ceil(256) * 256;
        let n = level.p.slot_count as u64 + 1;
        let grouped = 2 * align(n) + align(n.div_ceil(2048)) + 2 * align(entries);
        for scratch in [u64::MAX, 64 << 20, 3 * slot + 5, slot, grouped + 1024, slot.min(grouped) - 1, 0] {
            b.release_scratch();
            let (r, held) = level.run(b, &budget(scratch));
            let verdict = match &r {
                Ok(got) if *got == want && held <= scratch => "identical".to_string(),
                Ok(got) if *got == want => format!("identical but HOLDS {held} > {scratch}"),
                Ok(_) => "DIFFERENT".to_string(),
                Err(GpuError::LimitExceeded(m)) if scratch < slot.min(grouped) => format!("limit-exceeded as expected ({m})"),
                Err(e) => format!("FAILED: {e}"),
            };
            ok &= verdict.starts_with("identical") && !verdict.contains("HOLDS") || verdict.starts_with("limit-exceeded");
            println!(
                "find-splits-rows {} slots (slot hist {slot} B, grouped ~{grouped} B), budget {scratch}: held {held}: {verdict}",
                level.p.slot_count
            );
        }
    }
    // A dense call of several batches stops at the first check once cancelled.
    let level = RowLevel::new(100_000, 12, 64, 2, 4, 400);
    let slot = 12 * 64 * HIST_WORDS as u64 * 4;
    let call = budget(slot);
    call.cancel.cancel();
    let (r, _) = level.run(b, &call);
    let cancelled = matches!(r, Err(GpuError::Cancelled(_)));
    println!("cancelled dense call: {}", if cancelled { "stopped" } else { "NOT STOPPED" });
    ok & cancelled
}

fn main() {
    let mut backend = match wasi_gpu_cuda::open() {
        Ok(b) => b,
        Err(e) => {
            println!("open failed: {e}");
            std::process::exit(1);
        }
    };
    let b: &mut dyn Backend = backend.as_mut();
    let ok = predict_checks(b) & budget_checks(b);
    println!("{}", if ok { "ALL OK" } else { "SOME CHECKS FAILED" });
    std::process::exit(if ok { 0 } else { 1 });
}
