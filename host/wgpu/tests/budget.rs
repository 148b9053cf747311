//! The wgpu backend against the CPU reference where its own policies decide how the work is
//! cut: scratch within a small `--max-device-memory`, `predict-forest` spans, transfers of
//! several staging pieces, and cancellation between chunks. Skipped when no wgpu adapter
//! opens, unless `WASI_GPU_REQUIRE` names `wgpu`.

use wasi_gpu_backend::*;

fn open(grid_limit: Option<u32>) -> Option<Box<dyn Backend>> {
    let opened = match grid_limit {
        None => wasi_gpu_wgpu::open(true),
        Some(n) => wasi_gpu_wgpu::open_with_grid_limit(true, n),
    };
    match opened {
        Ok(b) => Some(b),
        Err(e) => {
            let required = std::env::var("WASI_GPU_REQUIRE").is_ok_and(|v| v.split(',').any(|s| s.trim() == "wgpu"));
            assert!(!required, "wgpu is required by WASI_GPU_REQUIRE but could not open: {e}");
            eprintln!("wgpu: skipped: {e}");
            None
        }
    }
}

/// xorshift64: deterministic inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n.max(1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn upload(d: &mut Device, bufs: &[Vec<u8>]) -> Result<Vec<BufferId>, GpuError> {
    bufs.iter()
        .map(|b| {
            let id = d.create_buffer(b.len() as u64)?;
            d.write(id, 0, b)?;
            Ok(id)
        })
        .collect()
}

/// Inputs of one `find-splits-rows` call: bins, targets, weights, node-of, mask, splits.
fn rows_case(rng: &mut Rng, p: &RowSplitParams) -> Vec<Vec<u8>> {
    let [nb, nt, _, _, nm, ns] = p.check().unwrap();
    let bins: Vec<u8> = (0..nb).map(|_| rng.below(p.max_bins) as u8).collect();
    let entries = (p.tree_count * p.rows) as usize;
    let weights: Vec<u32> = (0..entries).map(|_| rng.below(4)).collect();
    let node_of: Vec<u32> = (0..entries).map(|_| if rng.below(10) == 0 { NONE } else { p.slot_begin + rng.below(p.slot_count) }).collect();
    vec![bins, rng.bytes(nt as usize), bytes(&weights), bytes(&node_of), rng.bytes(nm as usize), rng.bytes(ns as usize)]
}

/// Runs `find-splits-rows` on `d`; the split records, or the error.
fn run_rows(d: &mut Device, p: &RowSplitParams, bufs: &[Vec<u8>]) -> Result<Vec<u8>, GpuError> {
    let ids = upload(d, bufs)?;
    let result = d.find_splits_rows(p, ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]);
    let out = result.and_then(|_| d.read(ids[5], 0, bufs[5].len() as u64));
    for id in ids {
        d.drop_buffer(id);
    }
    out
}

#[test]
fn find_splits_rows_within_the_scratch_budget() {
    let Some(backend) = open(None) else { return };
    let mut gpu = Device::new(backend, Limits::default());
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let rows = |rows, features, max_bins, tree_count, slot_count, masked: bool| RowSplitParams {
        rows,
        features,
        max_bins,
        tree_count,
        slot_begin: 2,
        slot_count,
        min_samples_leaf: 1,
        mask_words: if masked { u32::div_ceil(features, 32) } else { 0 },
    };
    // (params, scratch allowed beyond the guest's buffers, scratch the call must hold or
    // None for limit-exceeded).
    let order = |p: &RowSplitParams| (p.rows * p.tree_count * 4) as u64;
    let dense = rows(5000, 35, 256, 2, 4, true); // histogram 860160 bytes, 2500 entries per slot
    let grouped = rows(3000, 5, 64, 2, 300, false);
    let few = rows(400, 3, 16, 1, 20, true);
    // The grouped path holds the entries (order), the chunk's scan (slots + 1 words, one
    // level but for 300 slots, 301 + 2) and the partial records of one launch (48 bytes per slot and block).
    let cases = [
        // The dense path when its histogram fits, the grouped one when only that fits (its
        // split_small in 2 blocks of 22 features).
        (dense, 1 << 20, Some(860_160)),
        (dense, 100_000, Some(order(&dense) + 4 * 5 + 2 * 4 * 48)),
        (dense, order(&dense) + 7, None),
        // Grouped: one chunk; 20 slots a chunk (15 chunks); one slot a chunk (20 chunks).
        (grouped, 1 << 20, Some(order(&grouped) + 4 * 303 + 300 * 48)),
        (grouped, order(&grouped) + 4 * (13 * 20 + 1) + 3, Some(order(&grouped) + 4 * 21 + 20 * 48)),
        (few, order(&few) + 56, Some(order(&few) + 56)),
        (few, order(&few) + 55, None),
    ];
    for (p, extra, held) in cases {
        let bufs = rows_case(&mut rng, &p);
        let want = run_rows(&mut Device::new(Box::new(CpuBackend::new()), Limits::default()), &p, &bufs).unwrap();
        let guest: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let limit = guest + extra;
        let mut d = Device::new(open(None).unwrap(), Limits { max_device_bytes: limit, ..Limits::default() });
        let ids = upload(&mut d, &bufs).unwrap();
        let result = d.find_splits_rows(&p, ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]);
        let label = format!("{p:?} with {extra} bytes of scratch allowed");
        match held {
            Some(held) => {
                result.unwrap_or_else(|e| panic!("{label}: {e}"));
                assert_eq!(d.read(ids[5], 0, bufs[5].len() as u64).unwrap(), want, "{label}: splits");
                assert_eq!(d.held_bytes() - d.used_bytes(), held, "{label}: scratch held");
            }
            None => {
                let e = result.expect_err(&label);
                assert!(matches!(&e, GpuError::LimitExceeded(m) if m.contains("--max-device-memory")), "{label}: {e}");
                assert_eq!(d.held_bytes(), d.used_bytes(), "{label}: no scratch held");
            }
        }
        assert!(d.held_bytes() <= limit, "{label}: {} bytes held", d.held_bytes());
        // The scratch gives way to a guest buffer that needs its memory.
        let room = limit - d.used_bytes();
        let id = d.create_buffer(room).unwrap_or_else(|e| panic!("{label}: the scratch did not give way: {e}"));
        assert_eq!(d.held_bytes(), limit, "{label}");
        d.drop_buffer(id);
        // The same call on an unlimited device agrees too (scratch kept across calls).
        assert_eq!(run_rows(&mut gpu, &p, &bufs).unwrap(), want, "{label}: unlimited");
    }
}

#[test]
fn find_splits_rows_cancelled_between_chunks() {
    let Some(mut b) = open(None) else { return };
    let mut rng = Rng(77);
    let p = RowSplitParams {
        rows: 300,
        features: 3,
        max_bins: 8,
        tree_count: 1,
        slot_begin: 0,
        slot_count: 10,
        min_samples_leaf: 1,
        mask_words: 0,
    };
    let bufs = rows_case(&mut rng, &p);
    for (i, data) in bufs.iter().enumerate() {
        b.alloc(i as u64 + 1, data.len() as u64).unwrap();
        b.write(i as u64 + 1, 0, data).unwrap();
    }
    let cancel = CancelToken::new();
    // Room for one slot per chunk (its scan and partial record): ten chunks.
    b.begin_call(&CallBudget { scratch_bytes: 300 * 4 + 56, cancel: cancel.clone() });
    b.find_splits_rows(&p, 1, 2, 3, 4, 5, 6).unwrap();
    cancel.cancel();
    b.begin_call(&CallBudget { scratch_bytes: 300 * 4 + 56, cancel: cancel.clone() });
    let e = b.find_splits_rows(&p, 1, 2, 3, 4, 5, 6).expect_err("cancelled");
    assert!(matches!(e, GpuError::Cancelled(_)), "{e}");
    assert!(b.scratch_bytes() <= 300 * 4 + 56);
    b.release_scratch();
    assert_eq!(b.scratch_bytes(), 0);
}

/// The partial records of a later call fit beside what the grouped entries' buffers still
/// hold from an earlier, larger call (4 trees, then 1), and never displace them.
#[test]
fn find_splits_rows_partials_beside_larger_kept_scratch() {
    let Some(mut b) = open(None) else { return };
    let mut rng = Rng(99);
    let mut cpu = Device::new(Box::new(CpuBackend::new()), Limits::default());
    // 60,000 bytes: the first call's entries take 48,000, the second's only 12,000, and its
    // 91 blocks of features would fill the rest with partial records.
    let budget = 60_000;
    for tree_count in [4, 1] {
        let p = RowSplitParams {
            rows: 3000,
            features: 2000,
            max_bins: 16,
            tree_count,
            slot_begin: 0,
            slot_count: 200,
            min_samples_leaf: 1,
            mask_words: 0,
        };
        let bufs = rows_case(&mut rng, &p);
        let want = run_rows(&mut cpu, &p, &bufs).unwrap();
        for (i, data) in bufs.iter().enumerate() {
            b.alloc(i as u64 + 1, data.len() as u64).unwrap();
            b.write(i as u64 + 1, 0, data).unwrap();
        }
        b.begin_call(&CallBudget { scratch_bytes: budget, cancel: CancelToken::new() });
        b.find_splits_rows(&p, 1, 2, 3, 4, 5, 6).unwrap();
        assert_eq!(b.read(6, 0, bufs[5].len() as u64).unwrap(), want, "{tree_count} trees");
        assert!(b.scratch_bytes() <= budget);
        for i in 1..=6 {
            b.free(i);
        }
    }
}

#[test]
fn predict_forest_spans_match_the_reference() {
    for grid in [None, Some(1)] {
        let Some(mut b) = open(grid) else { return };
        b.begin_call(&CallBudget::default());
        let mut rng = Rng(0xfeed_beef_0000_0001);
        let (rows, features, trees, node_count, max_depth) = (300u32, 3u32, 25u32, 400u32, 12u32);
        let p = PredictParams { rows, features, tree_count: trees, node_count, max_depth };
        let mut nodes = Vec::new();
        for i in 0..node_count {
            if rng.below(4) == 0 {
                nodes.extend([NONE, rng.next(), u32::MAX - rng.below(3), 0]);
            } else {
                let mut child = || if rng.below(10) == 0 { rng.below(node_count + 3) } else { i + 1 + rng.below(3) };
                let (left, right) = (child(), child());
                nodes.extend([rng.below(features + 1), (rng.below(1000) as f32 / 1000.0).to_bits(), left, right]);
            }
        }
        let x: Vec<u32> = (0..rows * features).map(|_| (rng.below(1000) as f32 / 1000.0).to_bits()).collect();
        let roots: Vec<u32> = (0..trees).map(|_| rng.below(node_count + 2)).collect();
        // Sums near 2^128, so that adding to them wraps.
        let sums: Vec<u32> = (0..rows * 4).map(|i| if i % 4 == 3 { u32::MAX } else { rng.next() }).collect();
        let span = |row_begin, row_end, tree_begin, tree_end| PredictSpan { row_begin, row_end, tree_begin, tree_end };
        let sequences: Vec<Vec<PredictSpan>> = vec![
            vec![PredictSpan::all(&p)],
            PredictSpan::split(&p, 1).take(200).collect(),
            PredictSpan::split(&p, 700).collect(),
            PredictSpan::split(&p, 20_000).collect(),
            vec![span(7, 230, 3, 20), span(0, 1, 24, 25), span(299, 300, 1, 2), span(100, 200, 0, 5)],
        ];
        for spans in &sequences {
            let bufs = [bytes(&x), bytes(&nodes), bytes(&roots), bytes(&sums)];
            for (i, data) in bufs.iter().enumerate() {
                b.alloc(i as u64 + 1, data.len() as u64).unwrap();
                b.write(i as u64 + 1, 0, data).unwrap();
            }
            for s in spans {
                b.predict_forest(&p, s, 1, 2, 3, 4).unwrap();
            }
            let got = b.read(4, 0, rows as u64 * 16).unwrap();
            let xf: Vec<f32> = x.iter().map(|&w| f32::from_bits(w)).collect();
            let mut want = sums.clone();
            for s in spans {
                kernels::predict_forest_span(&p, s, &xf, &nodes, &roots, &mut want);
            }
            assert_eq!(got, bytes(&want), "grid {grid:?}, spans {spans:?}");
            for i in 1..=4 {
                b.free(i);
            }
        }
    }
}

#[test]
fn transfers_of_several_pieces() {
    let Some(backend) = open(None) else { return };
    let mut d = Device::new(backend, Limits::default());
    let mut rng = Rng(5);
    let size = (20 << 20) + 13;
    let mut model = vec![0u8; size];
    let a = d.create_buffer(size as u64).unwrap();
    let b = d.create_buffer(size as u64).unwrap();
    // Unaligned writes, large and small; edges within one word and across two.
    for (offset, len) in [(1usize, (17 << 20) + 5), (3, 2), (5, 1), (6, 7), (size - 3, 3), (0, 4), (8, 16 << 20)] {
        let data = rng.bytes(len);
        d.write(a, offset as u64, &data).unwrap();
        model[offset..offset + len].copy_from_slice(&data);
    }
    assert!(d.read(a, 0, size as u64).unwrap() == model, "writes");
    for (offset, len) in [(3usize, (18 << 20) + 1), (1, 2), (size - 1, 1), (4, 9 << 20)] {
        assert!(d.read(a, offset as u64, len as u64).unwrap() == model[offset..offset + len], "read at {offset}");
    }
    // Copies within one buffer (disjoint) and between buffers, aligned and not.
    let mut model_b = vec![0u8; size];
    for (src, dst, len, same) in [
        (1usize, (10 << 20) + 2, (9 << 20) + 1, true),
        (0, 12 << 20, 8 << 20, true),
        (5, 2, (19 << 20) + 3, false),
        (4, 8, 16 << 20, false),
    ] {
        if same {
            d.copy(a, src as u64, a, dst as u64, len as u64).unwrap();
            model.copy_within(src..src + len, dst);
        } else {
            d.copy(a, src as u64, b, dst as u64, len as u64).unwrap();
            model_b[dst..dst + len].copy_from_slice(&model[src..src + len]);
        }
    }
    assert!(d.read(a, 0, size as u64).unwrap() == model, "copies within one buffer");
    assert!(d.read(b, 0, size as u64).unwrap() == model_b, "copies between buffers");
}
