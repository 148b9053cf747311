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
    let mut entries = vec![0u32; counts.len()];
    let mut sums = vec![0u64; counts.len()];
    let mut lo = vec![u32::MAX; counts.len()];
    let mut hi = vec![0u32; counts.len()];
    for i in 0..p.tree_count as usize * rows {
        let s = node_of[i];
        if s < p.slot_begin || s - p.slot_begin >= p.slot_count || w[i] == 0 {
            continue;
        }
        let r = i % rows;
        for j in 0..f {
            let b = ((bins[j * words + r / 4] >> ((r % 4) * 8)) & 0xff) as usize;
            if b < nb {
                let at = ((s - p.slot_begin) as usize * f + j) * nb + b;
                counts[at] = counts[at].wrapping_add(w[i]);
                entries[at] += 1;
                sums[at] = sums[at].wrapping_add(w[i] as u64 * t[r] as u64);
                lo[at] = lo[at].min(t[r]);
                hi[at] = hi[at].max(t[r]);
            }
        }
    }
    (0..counts.len()).flat_map(|k| [counts[k], entries[k], sums[k] as u32, (sums[k] >> 32) as u32, lo[k], hi[k]]).collect()
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
        let w: Vec<u32> = (0..n).map(|_| if rng.random_bool(0.1) { rng.random() } else { rng.random_range(0..4) }).collect();
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

/// The histogram of one slot holding `rows` = (weight, target, bin of each feature).
fn hist_of(features: usize, max_bins: usize, rows: &[(u32, u32, &[usize])]) -> Vec<u32> {
    let mut h: Vec<u32> = (0..features * max_bins).flat_map(|_| [0, 0, 0, 0, u32::MAX, 0]).collect();
    for &(w, t, bins) in rows {
        for (j, &b) in bins.iter().enumerate() {
            let c = &mut h[(j * max_bins + b) * 6..][..6];
            let sum = (c[2] as u64 | (c[3] as u64) << 32) + w as u64 * t as u64;
            c[0] += w;
            c[1] += 1;
            c[2] = sum as u32;
            c[3] = (sum >> 32) as u32;
            c[4] = c[4].min(t);
            c[5] = c[5].max(t);
        }
    }
    h
}

fn split_params(features: u32, max_bins: u32, min_leaf: u32) -> SplitParams {
    SplitParams { features, max_bins, slot_begin: 0, slot_count: 1, min_samples_leaf: min_leaf, mask_words: 0 }
}

#[test]
fn find_splits_picks_the_exact_best_split() {
    // Feature 0 separates 0s from 100s perfectly at bin 1; feature 1 is noise.
    let rows: [(u32, u32, &[usize]); 6] =
        [(1, 0, &[0, 0]), (1, 0, &[0, 2]), (1, 0, &[1, 0]), (1, 100, &[3, 0]), (1, 100, &[3, 2]), (1, 100, &[3, 2])];
    let h = hist_of(2, 4, &rows);
    let mut s = vec![0u32; 12];
    kernels::find_splits(&split_params(2, 4, 1), &h, &[], &mut s);
    assert_eq!(s, [0, 1, 3, 3, 0, 0, 6, 6, 300, 0, 2, 1]);
    // Bootstrap weights: counts and sums are weighted, entries count rows.
    let rows: [(u32, u32, &[usize]); 3] = [(3, 0, &[0, 1]), (1, 7, &[1, 1]), (2, 100, &[2, 0])];
    let h = hist_of(2, 4, &rows);
    kernels::find_splits(&split_params(2, 4, 1), &h, &[], &mut s);
    assert_eq!(s, [0, 1, 4, 2, 7, 0, 6, 3, 207, 0, 2, 1]);
}

#[test]
fn find_splits_breaks_ties_to_lower_feature_then_lower_bin() {
    // Two identical features; bins 0, 1 and 2 of each give the same partition, reported
    // as the middle bin 1 of the gap 0..=2.
    let h = hist_of(2, 4, &[(1, 0, &[0, 0]), (1, 10, &[3, 3])]);
    let mut s = vec![0u32; 12];
    kernels::find_splits(&split_params(2, 4, 1), &h, &[], &mut s);
    assert_eq!(&s[..4], &[0, 1, 1, 1]);
    assert_eq!(&s[10..], &[2, 1]);
    // Masking feature 0 out moves the choice to feature 1.
    let p = SplitParams { mask_words: 1, ..split_params(2, 4, 1) };
    kernels::find_splits(&p, &h, &[0b10], &mut s);
    assert_eq!(&s[..4], &[1, 1, 1, 1]);
    assert_eq!(&s[10..], &[1, 1]);
}

#[test]
fn find_splits_reports_leaves_with_totals() {
    let mut s = vec![0u32; 12];
    // A pure slot is a leaf even though its rows fall in several bins; its features are
    // not scanned, so none counts as varying.
    let h = hist_of(1, 4, &[(2, 10, &[0]), (2, 10, &[2]), (1, 10, &[1])]);
    kernels::find_splits(&split_params(1, 4, 1), &h, &[], &mut s);
    assert_eq!(s, [NONE, 0, 0, 0, 0, 0, 5, 3, 50, 0, 0, 0]);
    // min-samples-leaf counts distinct rows, not bootstrap draws: two rows drawn twice
    // each are two rows.
    let h = hist_of(1, 4, &[(2, 0, &[0]), (2, 50, &[2])]);
    // No valid candidate, yet the feature varies in the slot.
    kernels::find_splits(&split_params(1, 4, 2), &h, &[], &mut s);
    assert_eq!(s, [NONE, 0, 0, 0, 0, 0, 4, 2, 100, 0, 1, 1]);
    kernels::find_splits(&split_params(1, 4, 1), &h, &[], &mut s);
    assert_eq!(s, [0, 0, 2, 1, 0, 0, 4, 2, 100, 0, 1, 1]);
    let h = hist_of(1, 4, &[(1, 0, &[0]), (1, 0, &[0]), (1, 50, &[2]), (1, 50, &[2])]);
    kernels::find_splits(&split_params(1, 4, 2), &h, &[], &mut s);
    assert_eq!(&s[..4], &[0, 0, 2, 2]);
    kernels::find_splits(&split_params(1, 4, 3), &h, &[], &mut s);
    assert_eq!(s[0], NONE);
    assert_eq!(&s[10..], &[1, 1]);
    // An empty slot: nothing varies; its target range is (NONE, 0), not min < max: pure.
    kernels::find_splits(&split_params(1, 4, 1), &hist_of(1, 4, &[]), &[], &mut s);
    assert_eq!(s, [NONE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
}

/// find-splits on the histogram of one slot holding `rows` = (weight, target, bin of each
/// feature), checked equal to find-splits-rows on the same rows.
fn split_both(features: usize, max_bins: u32, min_leaf: u32, rows: &[(u32, u32, &[usize])]) -> Vec<u32> {
    let h = hist_of(features, max_bins as usize, rows);
    let mut s = vec![0u32; 12];
    kernels::find_splits(&split_params(features as u32, max_bins, min_leaf), &h, &[], &mut s);
    assert_eq!(s, naive_split(&h, features, max_bins as usize, min_leaf, None));
    let n = rows.len() as u32;
    let p = RowSplitParams {
        rows: n,
        features: features as u32,
        max_bins,
        tree_count: 1,
        slot_begin: 0,
        slot_count: 1,
        min_samples_leaf: min_leaf,
        mask_words: 0,
    };
    let bins = pack_bins(rows.len(), features, |r, j| rows[r].2[j] as u32);
    let targets: Vec<u32> = rows.iter().map(|r| r.1).collect();
    let weights: Vec<u32> = rows.iter().map(|r| r.0).collect();
    let mut got = vec![0u32; 12];
    kernels::find_splits_rows(&p, &bins, &targets, &weights, &vec![0; rows.len()], &[], &mut got);
    assert_eq!(got, s);
    s
}

#[test]
fn find_splits_reports_the_threshold_in_the_middle_of_the_gap() {
    // Bins 3..=8 are empty: every bin 2..=8 partitions alike; the middle one is reported.
    let s = split_both(1, 16, 1, &[(1, 0, &[2]), (1, 10, &[9])]);
    assert_eq!(s, [0, 5, 1, 1, 0, 0, 2, 2, 10, 0, 1, 1]);
    // No gap: the candidate's own bin.
    let s = split_both(1, 16, 1, &[(1, 0, &[2]), (1, 10, &[3])]);
    assert_eq!(&s[..4], &[0, 2, 1, 1]);
    // A gap of even width rounds down: bins 2..=5 -> 3.
    let s = split_both(1, 16, 1, &[(1, 0, &[2]), (1, 10, &[6])]);
    assert_eq!(&s[..4], &[0, 3, 1, 1]);
    // Nothing after bin 2 but the last bin, which is no candidate: c = max_bins - 1 = 15.
    // Feature 1 (noise) is scanned after feature 0's best and keeps it.
    let s = split_both(2, 16, 1, &[(1, 0, &[2, 4]), (1, 10, &[15, 4]), (2, 10, &[15, 7])]);
    assert_eq!(&s[..4], &[0, 8, 1, 1]);
    // The best candidate is followed by later non-empty bins that lose: c is the next one.
    let s = split_both(1, 16, 1, &[(1, 0, &[1]), (1, 0, &[4]), (1, 100, &[10]), (1, 100, &[12])]);
    assert_eq!(&s[..4], &[0, 6, 2, 2]);
    // min-samples-leaf 2: bin 3 is the only valid candidate; bin 8, invalid, still ends
    // its gap: 3 + (8 - 1 - 3) / 2 = 5.
    let rows: [(u32, u32, &[usize]); 4] = [(1, 0, &[1]), (1, 100, &[3]), (1, 0, &[8]), (1, 100, &[12])];
    let s = split_both(1, 16, 2, &rows);
    assert_eq!(&s[..4], &[0, 5, 2, 2]);
    // min-samples-leaf 1: bins 1 and 8 tie (40000/3 = 3333 + 10000); the lower one wins,
    // reported in its own gap 1..=2.
    let s = split_both(1, 16, 1, &rows);
    assert_eq!(&s[..4], &[0, 1, 1, 1]);
    // min-samples-leaf 3: no valid candidate, a leaf.
    let s = split_both(1, 16, 3, &rows);
    assert_eq!(&s[..2], &[NONE, 0]);
    // A later feature with a better split whose gap runs to the last bin.
    let s = split_both(2, 16, 1, &[(1, 0, &[0, 2]), (1, 100, &[1, 15]), (1, 100, &[0, 15])]);
    assert_eq!(&s[..4], &[1, 8, 1, 1]);
}

#[test]
fn find_splits_splits_impure_slots_without_gain() {
    // XOR-like: both halves have the mean of the whole slot, so the split gains nothing,
    // yet an impure slot splits (as scikit-learn does).
    let h = hist_of(1, 4, &[(1, 0, &[0]), (1, 10, &[0]), (1, 0, &[1]), (1, 10, &[1])]);
    let mut s = vec![0u32; 12];
    kernels::find_splits(&split_params(1, 4, 1), &h, &[], &mut s);
    assert_eq!(s, [0, 0, 2, 2, 10, 0, 4, 4, 20, 0, 1, 1]);
}

#[test]
fn find_splits_counts_features_not_constant_in_the_slot() {
    // Feature 0 separates the targets; feature 1 varies but every candidate of it loses
    // (and may be pruned); feature 2 keeps every row in one middle bin; feature 3 has
    // every row in the last bin, which is no candidate; feature 4 splits rows between
    // bin 0 and the last bin.
    let rows: [(u32, u32, &[usize]); 4] =
        [(1, 0, &[0, 0, 2, 4, 0]), (1, 0, &[0, 1, 2, 4, 4]), (1, 1000, &[1, 0, 2, 4, 0]), (1, 1000, &[1, 1, 2, 4, 4])];
    let h = hist_of(5, 5, &rows);
    let mut s = vec![0u32; 12];
    kernels::find_splits(&split_params(5, 5, 1), &h, &[], &mut s);
    assert_eq!(s, [0, 0, 2, 2, 0, 0, 4, 4, 2000, 0, 3, 1]);
    assert_eq!(s, naive_split(&h, 5, 5, 1, None));
    // Only masked-in features count.
    let p = SplitParams { mask_words: 1, ..split_params(5, 5, 1) };
    for (mask, varying) in [(0b00001, 1), (0b01100, 0), (0b10010, 2), (0, 0)] {
        kernels::find_splits(&p, &h, &[mask], &mut s);
        assert_eq!(s[10..], [varying, 1], "mask {mask:#b}");
        assert_eq!(s, naive_split(&h, 5, 5, 1, Some(&[mask])));
    }
    // min-samples-leaf too large for any candidate: a leaf whose features still vary.
    kernels::find_splits(&split_params(5, 5, 3), &h, &[], &mut s);
    assert_eq!(s, [NONE, 0, 0, 0, 0, 0, 4, 4, 2000, 0, 3, 1]);
}

#[test]
fn find_splits_is_exact_with_full_width_targets_and_heavy_weights() {
    let t = TARGET_MAX;
    // Scores near 2^96: 0xfffffffe and 0xffffffff weighted by large bootstrap counts.
    let rows: [(u32, u32, &[usize]); 3] = [(1_000_000, t, &[0]), (3_000_000, t - 1, &[1]), (7, t, &[2])];
    let h = hist_of(1, 4, &rows);
    let mut s = vec![0u32; 12];
    kernels::find_splits(&split_params(1, 4, 1), &h, &[], &mut s);
    let (s0, s1, s2) = (1_000_000 * t as u64, 3_000_000 * (t - 1) as u64, 7 * t as u64);
    let all = s0 + s1 + s2;
    assert!(all > 1 << 53, "sums beyond f64's exact range");
    let score = |s: u64, n: u64| (s as u128 * s as u128) / n as u128;
    let at0 = score(s0, 1_000_000) + score(s1 + s2, 3_000_007);
    let at1 = score(s0 + s1, 4_000_000) + score(s2, 7);
    let (bin, nl, sl) = if at1 > at0 { (1, 4_000_000, s0 + s1) } else { (0, 1_000_000, s0) };
    assert_eq!(s, [0, bin, nl, bin + 1, sl as u32, (sl >> 32) as u32, 4_000_007, 3, all as u32, (all >> 32) as u32, 1, 1]);
    assert_eq!(s, naive_split(&h, 1, 4, 1, None));
}

#[test]
fn find_splits_writes_at_slot_begin_and_survives_absurd_counts() {
    let mut h = vec![u32::MAX; 2 * 6];
    h[4] = 0;
    let mut s = vec![7u32; 36];
    let p = SplitParams { slot_begin: 2, ..split_params(1, 2, 1) };
    kernels::find_splits(&p, &h, &[], &mut s);
    assert_eq!(&s[..24], &[7; 24]);
    assert_eq!(s[24..], naive_split(&h, 1, 2, 1, None));
}

#[test]
fn apply_splits_moves_rows_to_child_slots() {
    let rows = 5;
    let bins = pack_bins(rows, 2, |r, j| if j == 1 { r as u32 } else { 0 });
    // slot 0 splits on feature 1 at bin 2; slot 1 is a leaf; slot 2 names a bad feature.
    let splits: Vec<u32> = [1, 2, NONE, 0, 9, 0].chunks(2).flat_map(|r| [r[0], r[1], 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]).collect();
    let next = [10, 11, 12, 13, 14, 15];
    let mut node_of = vec![0, 0, 0, 1, 0, /* tree 1 */ 2, NONE, 0, 77, 0];
    let p = ApplyParams { rows: rows as u32, features: 2, tree_count: 2, slot_count: 3 };
    kernels::apply_splits(&p, &bins, &splits, &next, &mut node_of);
    assert_eq!(node_of, [10, 10, 10, NONE, 11, NONE, NONE, 10, NONE, 11]);
}

#[test]
fn predict_forest_sums_leaves_and_bounds_walks() {
    // Tree 0: x0 <= 0.5 ? leaf 10 : leaf 20. Tree 1: a leaf of 5. Tree 2: a self-loop.
    // Tree 3: a root out of range. Tree 4: a back-edge to the leaf of tree 1.
    let nodes = [
        0,
        0.5f32.to_bits(),
        1,
        2, //
        NONE,
        10,
        0,
        0, //
        NONE,
        20,
        0,
        0, //
        NONE,
        5,
        0,
        0, //
        0,
        0.0f32.to_bits(),
        4,
        4, //
        0,
        f32::INFINITY.to_bits(),
        3,
        3, //
    ];
    let roots = [0, 3, 4, 99, 5];
    let x = [0.25f32, 0.5, 0.75];
    let p = PredictParams { rows: 3, features: 1, tree_count: 5, node_count: 6, max_depth: 6 };
    let mut sums = vec![0u32; 12];
    kernels::predict_forest(&p, &x, &nodes, &roots, &mut sums);
    assert_eq!(sums, [15, 0, 0, 0, 15, 0, 0, 0, 25, 0, 0, 0]);
}

#[test]
fn predict_forest_sums_64_bit_leaves_in_128_bits() {
    // Three trees whose leaves are near 2^64 and one small leaf: the sum carries into word 2.
    let big = u64::MAX - 5;
    let nodes = [
        0,
        0.0f32.to_bits(),
        1,
        2, //
        NONE,
        big as u32,
        (big >> 32) as u32,
        0, //
        NONE,
        u32::MAX,
        u32::MAX,
        0, //
        NONE,
        0x20,
        0,
        0, //
    ];
    let roots = [0, 0, 3, 0];
    let x = [-1.0f32, 1.0, f32::NAN];
    let p = PredictParams { rows: 3, features: 1, tree_count: 4, node_count: 4, max_depth: 1 };
    let mut sums = vec![0u32; 12];
    kernels::predict_forest(&p, &x, &nodes, &roots, &mut sums);
    let want = |r: u128| [r as u32, (r >> 32) as u32, (r >> 64) as u32, (r >> 96) as u32];
    let low = 3 * big as u128 + 0x20;
    let high = 3 * u64::MAX as u128 + 0x20;
    assert_eq!(sums[..4], want(low));
    assert_eq!(sums[..4], [0x0e, 0, 3, 0]);
    assert_eq!(sums[4..8], want(high));
    assert_eq!(sums[8..], want(high), "NaN goes right");
}

#[test]
fn predict_forest_walks_deep_chains_up_to_max_depth() {
    // A chain of 100 internal nodes (x <= +inf goes left to the next node), then a leaf of 7
    // at depth 100: reached with max-depth 100, not with 99. A second tree's chain of 80
    // nodes ends in a back-edge to its own first node and must add nothing.
    let depth = 100u32;
    let mut nodes = Vec::new();
    for i in 0..depth {
        nodes.extend([0, f32::INFINITY.to_bits(), i + 1, NONE]);
    }
    nodes.extend([NONE, 7, 1, 0]);
    let second = depth + 1;
    for i in 0..80 {
        let next = if i == 79 { second } else { second + i + 1 };
        nodes.extend([0, f32::INFINITY.to_bits(), next, next]);
    }
    let node_count = nodes.len() as u32 / 4;
    let x = [1.0f32, f32::NAN];
    let roots = [0, second];
    for (max_depth, want) in [(100, [7, 1, 0, 0]), (99, [0; 4]), (node_count, [7, 1, 0, 0])] {
        let p = PredictParams { rows: 2, features: 1, tree_count: 2, node_count, max_depth };
        p.check().unwrap();
        let mut sums = vec![0xeeu32; 8];
        kernels::predict_forest(&p, &x, &nodes, &roots, &mut sums);
        assert_eq!(sums[..4], want, "max-depth {max_depth}");
        // NaN goes right: NONE, out of range.
        assert_eq!(sums[4..], [0; 4], "max-depth {max_depth}");
    }
}

#[test]
fn predict_forest_params_bound_max_depth_by_node_count() {
    let p = PredictParams { rows: 3, features: 2, tree_count: 5, node_count: 1000, max_depth: 1000 };
    assert_eq!(p.check().unwrap(), [3 * 2 * 4, 1000 * 16, 5 * 4, 3 * 16]);
    let deep = PredictParams { max_depth: 1001, ..p };
    let err = deep.check().unwrap_err().to_string();
    assert!(err.contains("max-depth") && err.contains("node-count"), "{err}");
    assert!(PredictParams { node_count: 0, max_depth: 0, ..p }.check().is_ok());
    assert!(PredictParams { node_count: u32::MAX, max_depth: u32::MAX, ..p }.check().is_ok());
}

/// Naive §9: recursion over depth, the 128-bit sum as a u128.
fn naive_predict(p: &PredictParams, x: &[f32], nodes: &[u32], roots: &[u32]) -> Vec<u32> {
    fn walk(p: &PredictParams, xs: &[f32], nodes: &[u32], node: u32, steps_left: u64) -> u128 {
        if steps_left == 0 || node >= p.node_count {
            return 0;
        }
        let r = &nodes[node as usize * 4..node as usize * 4 + 4];
        if r[0] == NONE {
            return ((r[2] as u128) << 32) | r[1] as u128;
        }
        if r[0] >= p.features {
            return 0;
        }
        let goes_left = !xs[r[0] as usize].is_nan() && xs[r[0] as usize] <= f32::from_bits(r[1]);
        let child = if goes_left { r[2] } else { r[3] };
        if child <= node { 0 } else { walk(p, xs, nodes, child, steps_left - 1) }
    }
    let f = p.features as usize;
    let mut out = Vec::new();
    for row in 0..p.rows as usize {
        let xs = &x[row * f..row * f + f];
        let total = roots.iter().fold(0u128, |acc, &root| acc.wrapping_add(walk(p, xs, nodes, root, p.max_depth as u64 + 1)));
        out.extend((0..4).map(|i| (total >> (32 * i)) as u32));
    }
    out
}

#[test]
fn predict_forest_matches_naive_walks() {
    let mut rng = StdRng::seed_from_u64(9);
    for case in 0..40 {
        let rows = rng.random_range(0..300u32);
        let features = rng.random_range(1..4u32);
        let node_count = rng.random_range(0..200u32);
        let tree_count = rng.random_range(0..12u32);
        let max_depth = rng.random_range(0..=node_count);
        let mut nodes = Vec::new();
        for i in 0..node_count {
            if rng.random_bool(0.25) {
                nodes.extend([NONE, rng.random(), rng.random(), rng.random()]);
            } else {
                let mut child = || match rng.random_range(0..10) {
                    0 => rng.random_range(0..=i),
                    1 => rng.random(),
                    _ => rng.random_range(i + 1..=node_count),
                };
                let (l, r) = (child(), child());
                let feature = if rng.random_bool(0.05) { features + rng.random_range(0..3) } else { rng.random_range(0..features) };
                nodes.extend([feature, rng.random_range(-2.0f32..2.0).to_bits(), l, r]);
            }
        }
        let roots: Vec<u32> = (0..tree_count).map(|_| rng.random_range(0..node_count + 2)).collect();
        let x: Vec<f32> =
            (0..rows * features).map(|_| if rng.random_bool(0.05) { f32::NAN } else { rng.random_range(-2.0f32..2.0) }).collect();
        let p = PredictParams { rows, features, tree_count, node_count, max_depth };
        let mut sums = vec![0xeeu32; rows as usize * 4];
        kernels::predict_forest(&p, &x, &nodes, &roots, &mut sums);
        assert_eq!(sums, naive_predict(&p, &x, &nodes, &roots), "case {case}: {p:?}");
        // Split into launches (docs/algorithm.md §9): the same bits, every row and tree once.
        let steps = [1, 2, (max_depth as u64 + 1) * 5, u64::MAX][case % 4];
        let spans: Vec<PredictSpan> = PredictSpan::split(&p, steps).collect();
        for pair in spans.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let next_trees = a.row_begin == b.row_begin && a.tree_end == b.tree_begin;
            let next_rows = a.row_end == b.row_begin && a.tree_end == tree_count && b.tree_begin == 0;
            assert!(next_trees || next_rows, "case {case}: {a:?} then {b:?}");
        }
        assert!(rows == 0 || (spans[0].row_begin == 0 && spans[0].tree_begin == 0 && spans.last().unwrap().row_end == rows));
        let mut split = vec![0xeeu32; rows as usize * 4];
        for span in &spans {
            kernels::predict_forest_span(&p, span, &x, &nodes, &roots, &mut split);
        }
        assert_eq!(split, sums, "case {case}: {p:?} in launches of {steps} steps");
    }
}

/// docs/algorithm.md §7 written out with no pruning, on one slot's 6-word cells.
fn naive_split(h: &[u32], features: usize, max_bins: usize, min_leaf: u32, mask: Option<&[u32]>) -> [u32; 12] {
    let cell = |j: usize, b: usize| {
        let c = &h[(j * max_bins + b) * 6..][..6];
        (c[0], c[1], c[2] as u64 | (c[3] as u64) << 32, c[4], c[5])
    };
    let (mut n, mut d, mut s, mut lo, mut hi) = (0u32, 0u32, 0u64, u32::MAX, 0u32);
    for b in 0..max_bins {
        let (c, e, v, mn, mx) = cell(0, b);
        n = n.wrapping_add(c);
        d = d.wrapping_add(e);
        s = s.wrapping_add(v);
        lo = lo.min(mn);
        hi = hi.max(mx);
    }
    let min_leaf = min_leaf.max(1);
    let score = |s: u64, n: u32| (s as u128 * s as u128) / n as u128;
    let mut best: Option<(u128, u32, u32, u32, u32, u64)> = None;
    let mut varying = 0;
    for j in 0..features {
        if mask.is_some_and(|m| m[j / 32] >> (j % 32) & 1 == 0) {
            continue;
        }
        let (mut nl, mut dl, mut sl) = (0u32, 0u32, 0u64);
        let mut varies = false;
        for b in 0..max_bins - 1 {
            let (c, e, v, _, _) = cell(j, b);
            nl = nl.wrapping_add(c);
            dl = dl.wrapping_add(e);
            sl = sl.wrapping_add(v);
            varies |= 0 < dl && dl < d;
            let (nr, dr, sr) = (n.wrapping_sub(nl), d.wrapping_sub(dl), s.wrapping_sub(sl));
            // Zero weighted counts only occur in wrapped or garbage histograms.
            if dl >= min_leaf && dr >= min_leaf && nl != 0 && nr != 0 {
                let sc = score(sl, nl).wrapping_add(score(sr, nr));
                if best.is_none_or(|x| sc > x.0) {
                    best = Some((sc, j as u32, b as u32, nl, dl, sl));
                }
            }
        }
        varying += varies as u32;
    }
    // A pure slot scans nothing: no feature varies.
    let (impure, varying) = (lo < hi, if lo < hi { varying } else { 0 });
    let tail = [n, d, s as u32, (s >> 32) as u32, varying, impure as u32];
    // The threshold in the middle of the gap: c is the first non-empty cell after b below
    // max_bins - 1, else max_bins - 1.
    let middle = |j: u32, b: u32| {
        let c = (b as usize + 1..max_bins - 1)
            .find(|&c| {
                let (n, e, v, _, _) = cell(j as usize, c);
                n != 0 || e != 0 || v != 0
            })
            .unwrap_or(max_bins - 1) as u32;
        b + (c - 1 - b) / 2
    };
    let head = match best.filter(|_| impure) {
        Some((_, j, b, nl, dl, sl)) => [j, middle(j, b), nl, dl, sl as u32, (sl >> 32) as u32],
        None => [NONE, 0, 0, 0, 0, 0],
    };
    std::array::from_fn(|i| if i < 6 { head[i] } else { tail[i - 6] })
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
        let wide = case % 3 == 0;
        let few_targets = case % 4 == 1;
        // Realistic histograms: one set of rows binned per feature; sometimes absurd words.
        let rows: Vec<(u32, u32, Vec<usize>)> = (0..rng.random_range(0..60))
            .map(|_| {
                let w = if wide { rng.random_range(1..100_000u32) } else { rng.random_range(1..4u32) };
                let y = if few_targets { rng.random_range(0..2) * 1000 } else { rng.random_range(0..=TARGET_MAX) };
                let y = if rng.random_bool(0.3) { y & !0xff } else { y }; // ties in targets
                let bins = (0..features).map(|_| if rng.random_bool(sparse) { 0 } else { rng.random_range(0..max_bins) }).collect();
                (w, y, bins)
            })
            .collect();
        let refs: Vec<(u32, u32, &[usize])> = rows.iter().map(|(w, y, b)| (*w, *y, &b[..])).collect();
        let mut h = hist_of(features, max_bins, &refs);
        if huge {
            for word in h.iter_mut() {
                if rng.random_bool(0.3) {
                    *word = if rng.random_bool(0.2) { 0 } else { rng.random() };
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
        let mut out = vec![0u32; 12];
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
        let min_leaf = rng.random_range(0..4u32);
        let distinct = rng.random_range(1..=max_bins + 1); // some bytes >= max_bins
        let bins = pack_bins(rows as usize, features as usize, |_, _| rng.random_range(0..distinct));
        // Few distinct targets (pure slots are common) or the full 32-bit range.
        let targets: Vec<u32> = (0..rows)
            .map(|_| if case % 3 == 0 { rng.random_range(0..3) * 0x7fff_ffff } else { rng.random_range(0..=TARGET_MAX) & !0x3ff })
            .collect();
        let n = (trees * rows) as usize;
        let weights: Vec<u32> =
            (0..n).map(|_| if case % 7 == 0 && rng.random_bool(0.2) { rng.random() } else { rng.random_range(0..4) }).collect();
        let node_of: Vec<u32> =
            (0..n).map(|_| if rng.random_bool(0.05) { rng.random() } else { rng.random_range(0..slot_begin + slot_count + 1) }).collect();
        let mask_words = if rng.random_bool(0.5) { features.div_ceil(32) } else { 0 };
        let mask: Vec<u32> = (0..(slot_count * mask_words).max(1)).map(|_| rng.random()).collect();
        let p =
            RowSplitParams { rows, features, max_bins, tree_count: trees, slot_begin, slot_count, min_samples_leaf: min_leaf, mask_words };
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
