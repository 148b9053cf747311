//! Unit tests of every CPU reference kernel: hand-worked cases and naive re-implementations.

use rand::{Rng, SeedableRng, rngs::StdRng};
use wasi_gpu_backend::kernels::{self, rng};
use wasi_gpu_backend::*;

fn pack_bins(rows: usize, features: usize, mut bin: impl FnMut(usize, usize) -> u32) -> Vec<u32> {
    let words = rows.div_ceil(4);
    let mut out = vec![0u32; features * words];
    for j in 0..features {
        for r in 0..rows {
            out[j * words + r / 4] |= (bin(r, j) & 0xff) << ((r % 4) * 8);
        }
    }
    out
}

#[test]
fn rng_matches_the_documented_constants() {
    // Frozen values: the WGSL, CUDA and C++ implementations must give the same numbers.
    assert_eq!(rng::mix32(0), 0);
    assert_eq!(rng::mix32(1), 0x688990c0);
    assert_eq!(rng::mix32(0xdeadbeef), 0xe628c683);
    assert_eq!(rng::key(&[42, 0, 1, 0, 0]), 0xae546844);
    assert_eq!(rng::key(&[42, 0, 2, 3, 5, 1]), 0x8a164ede);
    assert_eq!(rng::mulhi(u32::MAX, 10), 9);
    assert_eq!(rng::mulhi(0, 10), 0);
    assert_eq!(rng::mulhi(0x8000_0000, 10), 5);
}

#[test]
fn bin_features_counts_edges_strictly_below() {
    let p = BinFeaturesParams { rows: 5, features: 2, max_bins: 4 };
    let x = [0.0f32, 10.0, 1.0, 20.0, 1.5, 30.0, 2.0, 40.0, 99.0, -5.0];
    let edges = [1.0f32, 2.0, f32::INFINITY, 15.0, 35.0, f32::INFINITY];
    let mut bins = vec![0u32; 2 * 2];
    kernels::bin_features(&p, &x, &edges, &mut bins);
    let b = |j: usize, r: usize| (bins[j * 2 + r / 4] >> ((r % 4) * 8)) & 0xff;
    assert_eq!((0..5).map(|r| b(0, r)).collect::<Vec<_>>(), [0, 0, 1, 1, 2]);
    assert_eq!((0..5).map(|r| b(1, r)).collect::<Vec<_>>(), [0, 1, 1, 2, 0]);
}

#[test]
fn bootstrap_draws_rows_times_and_does_not_depend_on_batching() {
    let rows = 1000u32;
    let all = BootstrapParams { seed: 7, rows, tree_begin: 0, tree_count: 4, draws: rows };
    let mut w = vec![0u32; 4 * rows as usize];
    let mut n = vec![0u32; 4 * rows as usize];
    kernels::bootstrap(&all, &mut w, &mut n);
    for t in 0..4 {
        let tree = &w[t * rows as usize..(t + 1) * rows as usize];
        assert_eq!(tree.iter().sum::<u32>(), rows);
        let drawn = tree.iter().filter(|&&c| c > 0).count() as f64 / rows as f64;
        assert!((drawn - 0.632).abs() < 0.05, "fraction of distinct rows {drawn}");
        for r in 0..rows as usize {
            let i = t * rows as usize + r;
            assert_eq!(n[i], if w[i] > 0 { t as u32 } else { NONE });
        }
    }
    let second = BootstrapParams { tree_begin: 2, tree_count: 2, ..all };
    let mut w2 = vec![0u32; 2 * rows as usize];
    let mut n2 = vec![0u32; 2 * rows as usize];
    kernels::bootstrap(&second, &mut w2, &mut n2);
    assert_eq!(w2, w[2 * rows as usize..]);
    assert_ne!(w[..rows as usize], w[rows as usize..2 * rows as usize]);
}

/// A direct transcription of docs/algorithm.md §6 with no threading or batching.
fn naive_histograms(p: &HistogramParams, bins: &[u32], t: &[u32], w: &[u32], node_of: &[u32]) -> Vec<u32> {
    let (rows, f, nb) = (p.rows as usize, p.features as usize, p.max_bins as usize);
    let words = rows.div_ceil(4);
    let mut counts = vec![0u32; p.slot_count as usize * f * nb];
    let mut sums = vec![0u64; counts.len()];
    for i in 0..p.tree_count as usize * rows {
        let s = node_of[i];
        if s < p.slot_begin || s - p.slot_begin >= p.slot_count {
            continue;
        }
        let r = i % rows;
        for j in 0..f {
            let b = ((bins[j * words + r / 4] >> ((r % 4) * 8)) & 0xff) as usize;
            if b < nb {
                let at = ((s - p.slot_begin) as usize * f + j) * nb + b;
                counts[at] = counts[at].wrapping_add(w[i]);
                sums[at] = sums[at].wrapping_add(w[i] as u64 * t[r] as u64);
            }
        }
    }
    counts.iter().zip(&sums).flat_map(|(&c, &s)| [c, s as u32, (s >> 32) as u32]).collect()
}

#[test]
fn build_histograms_matches_the_naive_definition_on_random_inputs() {
    let mut rng = StdRng::seed_from_u64(3);
    for &(rows, features, max_bins, trees, slot_begin, slot_count) in
        &[(1, 1, 2, 1, 0, 1), (37, 3, 7, 2, 1, 3), (1001, 5, 256, 3, 2, 9), (50, 2, 4, 1, 0, 0)]
    {
        let p = HistogramParams { rows, features, max_bins, tree_count: trees, slot_begin, slot_count };
        let bins = pack_bins(rows as usize, features as usize, |_, _| rng.random_range(0..max_bins + 2));
        let t: Vec<u32> = (0..rows).map(|_| rng.random_range(0..=TARGET_MAX)).collect();
        let n = (trees * rows) as usize;
        let w: Vec<u32> = (0..n).map(|_| rng.random_range(0..4)).collect();
        // Slots in and out of the batch, NONE, and garbage.
        let node_of: Vec<u32> = (0..n)
            .map(|_| match rng.random_range(0..10) {
                0 => NONE,
                1 => rng.random(),
                _ => rng.random_range(0..slot_begin + slot_count + 2),
            })
            .collect();
        let mut hist = vec![0xdead_beef; (slot_count * features * max_bins * HIST_WORDS) as usize];
        kernels::build_histograms(&p, &bins, &t, &w, &node_of, &mut hist);
        assert_eq!(hist, naive_histograms(&p, &bins, &t, &w, &node_of), "{p:?}");
    }
}

fn hist_of(features: usize, max_bins: usize, cells: &[(usize, usize, u32, u64)]) -> Vec<u32> {
    let mut h = vec![0u32; features * max_bins * 3];
    for &(j, b, c, s) in cells {
        let at = (j * max_bins + b) * 3;
        h[at] = c;
        h[at + 1] = s as u32;
        h[at + 2] = (s >> 32) as u32;
    }
    h
}

fn split_params(features: u32, max_bins: u32, min_leaf: u32) -> SplitParams {
    SplitParams { features, max_bins, slot_begin: 0, slot_count: 1, min_samples_leaf: min_leaf, mask_words: 0 }
}

#[test]
fn find_splits_picks_the_exact_best_split() {
    // Feature 0 separates 0s from 100s perfectly at bin 1; feature 1 is noise.
    let h = hist_of(2, 4, &[(0, 0, 2, 0), (0, 1, 1, 0), (0, 3, 3, 300), (1, 0, 3, 100), (1, 2, 3, 200)]);
    let mut s = vec![0u32; 8];
    kernels::find_splits(&split_params(2, 4, 1), &h, &[], &mut s);
    assert_eq!(s, [0, 1, 3, 0, 0, 6, 300, 0]);
}

#[test]
fn find_splits_breaks_ties_to_lower_feature_then_lower_bin() {
    // Two identical features; bins 1 and 2 of each give the same partition.
    let cells = [(0, 0, 1, 0), (0, 3, 1, 10), (1, 0, 1, 0), (1, 3, 1, 10)];
    let h = hist_of(2, 4, &cells);
    let mut s = vec![0u32; 8];
    kernels::find_splits(&split_params(2, 4, 1), &h, &[], &mut s);
    assert_eq!(&s[..3], &[0, 0, 1]);
    // Masking feature 0 out moves the choice to feature 1.
    let p = SplitParams { mask_words: 1, ..split_params(2, 4, 1) };
    kernels::find_splits(&p, &h, &[0b10], &mut s);
    assert_eq!(&s[..3], &[1, 0, 1]);
}

#[test]
fn find_splits_reports_leaves_with_totals() {
    let mut s = vec![0u32; 8];
    // Constant target: no split improves the score.
    let h = hist_of(1, 4, &[(0, 0, 2, 10), (0, 2, 2, 10)]);
    kernels::find_splits(&split_params(1, 4, 1), &h, &[], &mut s);
    assert_eq!(s, [NONE, 0, 0, 0, 0, 4, 20, 0]);
    // min-samples-leaf larger than either side.
    let h = hist_of(1, 4, &[(0, 0, 2, 0), (0, 2, 2, 50)]);
    kernels::find_splits(&split_params(1, 4, 3), &h, &[], &mut s);
    assert_eq!(s[0], NONE);
    kernels::find_splits(&split_params(1, 4, 2), &h, &[], &mut s);
    assert_eq!(&s[..3], &[0, 0, 2]);
    // An empty slot.
    kernels::find_splits(&split_params(1, 4, 1), &vec![0; 12], &[], &mut s);
    assert_eq!(s, [NONE, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn find_splits_writes_at_slot_begin_and_survives_absurd_counts() {
    let h = hist_of(1, 2, &[(0, 0, u32::MAX, u64::MAX), (0, 1, u32::MAX, u64::MAX)]);
    let mut s = vec![7u32; 24];
    let p = SplitParams { slot_begin: 2, ..split_params(1, 2, 1) };
    kernels::find_splits(&p, &h, &[], &mut s);
    assert_eq!(&s[..16], &[7; 16]);
    assert_eq!(s[16..].len(), 8);
}

#[test]
fn apply_splits_moves_rows_to_child_slots() {
    let rows = 5;
    let bins = pack_bins(rows, 2, |r, j| if j == 1 { r as u32 } else { 0 });
    // slot 0 splits on feature 1 at bin 2; slot 1 is a leaf; slot 2 names a bad feature.
    let splits = [1, 2, 0, 0, 0, 0, 0, 0, NONE, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0];
    let next = [10, 11, 12, 13, 14, 15];
    let mut node_of = vec![0, 0, 0, 1, 0, /* tree 1 */ 2, NONE, 0, 77, 0];
    let p = ApplyParams { rows: rows as u32, features: 2, tree_count: 2, slot_count: 3 };
    kernels::apply_splits(&p, &bins, &splits, &next, &mut node_of);
    assert_eq!(node_of, [10, 10, 10, NONE, 11, NONE, NONE, 10, NONE, 11]);
}

#[test]
fn predict_forest_sums_leaves_and_bounds_walks() {
    // Tree 0: x0 <= 0.5 ? leaf 10 : leaf 20. Tree 1: a leaf of 5. Tree 2: a cycle.
    // Tree 3: a root out of range.
    let nodes = [
        0, 0.5f32.to_bits(), 1, 2, //
        NONE, 10, 0, 0, //
        NONE, 20, 0, 0, //
        NONE, 5, 0, 0, //
        0, 0.0f32.to_bits(), 4, 4, //
    ];
    let roots = [0, 3, 4, 99];
    let x = [0.25f32, 0.5, 0.75];
    let p = PredictParams { rows: 3, features: 1, tree_count: 4, node_count: 5, max_depth: 16 };
    let mut sums = vec![0u32; 6];
    kernels::predict_forest(&p, &x, &nodes, &roots, &mut sums);
    assert_eq!(sums, [15, 0, 15, 0, 25, 0]);
}

/// docs/algorithm.md §7 written out with no pruning.
fn naive_split(h: &[u32], features: usize, max_bins: usize, min_leaf: u32, mask: Option<&[u32]>) -> [u32; 8] {
    let cell = |j: usize, b: usize| {
        let at = (j * max_bins + b) * 3;
        (h[at], h[at + 1] as u64 | (h[at + 2] as u64) << 32)
    };
    let (mut n, mut s) = (0u32, 0u64);
    for b in 0..max_bins {
        n = n.wrapping_add(cell(0, b).0);
        s = s.wrapping_add(cell(0, b).1);
    }
    let min_leaf = min_leaf.max(1);
    let score = |s: u64, n: u32| (s as u128 * s as u128) / n as u128;
    let mut best: Option<(u128, u32, u32, u32, u64)> = None;
    for j in 0..features {
        if n == 0 || mask.is_some_and(|m| m[j / 32] >> (j % 32) & 1 == 0) {
            continue;
        }
        let (mut nl, mut sl) = (0u32, 0u64);
        for b in 0..max_bins - 1 {
            nl = nl.wrapping_add(cell(j, b).0);
            sl = sl.wrapping_add(cell(j, b).1);
            let (nr, sr) = (n.wrapping_sub(nl), s.wrapping_sub(sl));
            if nl >= min_leaf && nr >= min_leaf {
                let sc = score(sl, nl).wrapping_add(score(sr, nr));
                if best.is_none_or(|x| sc > x.0) {
                    best = Some((sc, j as u32, b as u32, nl, sl));
                }
            }
        }
    }
    match best.filter(|x| x.0 > score(s, n.max(1))) {
        Some((_, j, b, nl, sl)) => [j, b, nl, sl as u32, (sl >> 32) as u32, n, s as u32, (s >> 32) as u32],
        None => [NONE, 0, 0, 0, 0, n, s as u32, (s >> 32) as u32],
    }
}

#[test]
fn find_splits_matches_the_unpruned_definition_on_random_histograms() {
    let mut rng = StdRng::seed_from_u64(11);
    for case in 0..400 {
        let features = rng.random_range(1..40usize);
        let max_bins = rng.random_range(2..=64usize);
        let min_leaf = rng.random_range(0..4);
        let sparse = rng.random_range(0.0..1.0);
        let huge = case % 5 == 0;
        // Realistic histograms: one set of rows binned per feature; sometimes absurd words.
        let mut h = vec![0u32; features * max_bins * 3];
        let rows = rng.random_range(0..60);
        for _ in 0..rows {
            let (w, y) = (rng.random_range(1..4u32), rng.random_range(0..=TARGET_MAX) as u64);
            let y = if rng.random_bool(0.3) { y & !0xff } else { y }; // ties in targets
            for j in 0..features {
                let b = if rng.random_bool(sparse) { 0 } else { rng.random_range(0..max_bins) };
                let at = (j * max_bins + b) * 3;
                h[at] += w;
                let sum = (h[at + 1] as u64 | (h[at + 2] as u64) << 32) + w as u64 * y;
                h[at + 1] = sum as u32;
                h[at + 2] = (sum >> 32) as u32;
            }
        }
        if huge {
            for word in h.iter_mut() {
                if rng.random_bool(0.3) {
                    *word = rng.random();
                }
            }
        }
        let words = features.div_ceil(32);
        let mask: Vec<u32> = (0..words).map(|_| rng.random()).collect();
        let use_mask = rng.random_bool(0.5);
        let p = SplitParams {
            features: features as u32,
            max_bins: max_bins as u32,
            slot_begin: 0,
            slot_count: 1,
            min_samples_leaf: min_leaf,
            mask_words: if use_mask { words as u32 } else { 0 },
        };
        let mut out = vec![0u32; 8];
        kernels::find_splits(&p, &h, &mask, &mut out);
        let expect = naive_split(&h, features, max_bins, min_leaf, use_mask.then_some(&mask[..]));
        assert_eq!(out, expect, "case {case}: {p:?}");
    }
}

#[test]
fn bin_features_counts_unsorted_edges_too() {
    let p = BinFeaturesParams { rows: 1, features: 1, max_bins: 4 };
    let mut bins = vec![0u32; 1];
    kernels::bin_features(&p, &[2.0], &[5.0, 1.0, 0.0], &mut bins);
    assert_eq!(bins[0], 2);
}

#[test]
fn find_splits_rows_equals_histograms_then_find_splits() {
    let mut rng = StdRng::seed_from_u64(5);
    for case in 0..60 {
        let rows = rng.random_range(1..300u32);
        let features = rng.random_range(1..12u32);
        let max_bins = [2, 3, 16, 64, 256][case % 5];
        let trees = rng.random_range(1..4u32);
        let slot_begin = rng.random_range(0..3u32);
        let slot_count = rng.random_range(0..20u32);
        let min_leaf = rng.random_range(0..3u32);
        let distinct = rng.random_range(1..=max_bins + 1); // some bytes >= max_bins
        let bins = pack_bins(rows as usize, features as usize, |_, _| rng.random_range(0..distinct));
        let targets: Vec<u32> = (0..rows).map(|_| rng.random_range(0..=TARGET_MAX) & !0x3ff).collect();
        let n = (trees * rows) as usize;
        let weights: Vec<u32> = (0..n).map(|_| rng.random_range(0..3)).collect();
        let node_of: Vec<u32> = (0..n)
            .map(|_| if rng.random_bool(0.05) { rng.random() } else { rng.random_range(0..slot_begin + slot_count + 1) })
            .collect();
        let mask_words = if rng.random_bool(0.5) { features.div_ceil(32) } else { 0 };
        let mask: Vec<u32> = (0..(slot_count * mask_words).max(1)).map(|_| rng.random()).collect();
        let p = RowSplitParams { rows, features, max_bins, tree_count: trees, slot_begin, slot_count, min_samples_leaf: min_leaf, mask_words };
        let mut hist = vec![0u32; (slot_count * features * max_bins * HIST_WORDS) as usize];
        kernels::build_histograms(&p.histogram(), &bins, &targets, &weights, &node_of, &mut hist);
        let total = ((slot_begin + slot_count) * SPLIT_WORDS) as usize;
        let mut expect = vec![0xabcd_u32; total];
        kernels::find_splits(&p.split(), &hist, &mask, &mut expect);
        let mut got = vec![0xabcd_u32; total];
        kernels::find_splits_rows(&p, &bins, &targets, &weights, &node_of, &mask, &mut got);
        assert_eq!(got, expect, "case {case}: {p:?}");
    }
}
