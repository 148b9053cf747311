//! Bounding the loop iterations of one kernel invocation, for llvmpipe.
//!
//! Mesa's llvmpipe (lavapipe, Mesa's software Vulkan) ends the loops of a shader invocation
//! without any error once they have iterated 65535 times in all (`LP_MAX_TGSI_LOOP_ITERATIONS`
//! in gallivm). Measured on Mesa 22.3.6 with `tests/llvmpipe_loops.rs`, and as gallivm's
//! `lp_exec_endloop` reads:
//!
//! * One counter, set to 65535 when an invocation starts, is shared by every loop of the
//!   shader (functions are inlined): two loops of 40000 iterations give 40000 and 25534.
//! * Every pass through the end of a loop takes one from it: each iteration, and also the
//!   last pass, the one that leaves the loop (a loop of `n` iterations costs `n + 1`;
//!   nested loops cost their inner loops' passes plus their own). A loop then goes on only
//!   while the counter is above 0, so once it is spent every loop still to come makes one
//!   pass and leaves, and the invocation ends with wrong results and no error.
//! * The counter belongs to a SIMD group of invocations of one workgroup (8 with 256-bit
//!   vectors), which run their loops together: a loop costs the most passes any of the
//!   group's invocations needs.
//! * Loops with a small constant trip count (`for t in 0..4`, the 32 steps of the score's
//!   long division) are unrolled by Mesa and cost nothing.
//!
//! The backend therefore plans each launch so that no invocation makes more than
//! [`LOOP_BUDGET`] loop passes, using the worst-case costs below (functions of the launch's
//! parameters and, for `find-splits-rows`, of its largest slot); a kernel whose work does
//! not fit is launched over blocks of features or trees: `find-splits-rows`' per-slot
//! kernels over a grid of (slot, block) in one launch, their partial records merged after
//! (`find_splits_rows.wgsl`), the others over ascending blocks in successive launches.
//!
//! It does so on every adapter, hardware too: there no loop ends early, but one invocation
//! walking every feature of a wide table alone is slow (64 rows x 65,536 features took over
//! a minute on an H100 through Vulkan, its four slots in four threads) and no cancel can
//! reach it; in blocks the features of a slot run in parallel, each invocation's work is
//! bounded, and software and hardware adapters run the same launches (so the lavapipe tests
//! cover the hardware plans).

/// What a launch plan lets one invocation's loops take: llvmpipe's 65535 passes less a
/// margin for the few loops the costs below leave out (constant-count loops Mesa might not
/// unroll).
pub(crate) const LOOP_BUDGET: u64 = 60_000;

/// Threads of the one-workgroup-per-slot kernel (`WG` in find_splits_rows.wgsl).
const WG: u64 = 64;
/// Largest slot `split_small` decides (`SMALL` in find_splits_rows.wgsl).
pub(crate) const SMALL: u32 = 32;

/// How many units (features, trees) one launch may take when a launch costs `fixed` passes
/// plus `each` per unit: at least 1 (the callers make sure one unit fits where it matters).
fn per_launch(budget: u64, fixed: u64, each: u64) -> u32 {
    (budget.saturating_sub(fixed) / each.max(1)).clamp(1, u32::MAX as u64) as u32
}

/// Trees one `bootstrap` `draw` invocation takes: the tree loop's passes.
pub(crate) fn bootstrap_trees(budget: u64) -> u32 {
    per_launch(budget, 1, 1)
}

/// Features one `build-histograms` launch takes: one pass of the feature loop each.
pub(crate) fn histogram_features(budget: u64) -> u32 {
    per_launch(budget, 1, 1)
}

/// Features one `find-splits` launch takes: the totals over feature 0 (`max_bins + 1`
/// passes), the feature loop's last pass, and per feature its pass and the bin loop's
/// `max_bins` (`max_bins - 1` bins and the last pass).
pub(crate) fn find_splits_features(budget: u64, max_bins: u32) -> u32 {
    let b = max_bins as u64;
    per_launch(budget, b + 2, b + 1)
}

/// Features one `split_small` invocation takes when its slots have at most `m` (<= 32)
/// entries: the totals (`m + 1`), the feature loop's last pass, and per feature its pass,
/// the bins load (`m + 1`), the loop over entries (`m + 1`) and, per entry `t`, the loop
/// over earlier entries (`t + 1`), the prefix (`m + 1`) and the next bin (`m + 1`).
pub(crate) fn split_small_features(budget: u64, m: u32) -> u32 {
    let m = m.min(SMALL) as u64;
    per_launch(budget, m + 2, 1 + 2 * (m + 1) + m * (m + 1) / 2 + 2 * m * (m + 1))
}

/// Passes of one `split_slots` thread for a slot of `m` entries: fixed, then per feature.
/// Fixed: the totals (`ceil(m/64) + 1`), thread 0's sum over the threads (64), the
/// feature loop's last pass and the final reduction (65). Per feature: its pass, clearing
/// the histogram (5), the entries (`ceil(m/64) + 1`), the thread's bins twice (5 each), the
/// group sums (9), the two prefix loops (8 each) and the search for the next bin (64).
fn split_slots_costs(m: u64) -> (u64, u64) {
    let q = m.div_ceil(WG);
    (q + 1 + 64 + 1 + 65, 1 + 5 + q + 1 + 5 + 9 + 8 + 8 + 5 + 64)
}

/// The largest slot one `split_slots` workgroup can decide within `budget` (one feature
/// per launch); larger ones are left to build-histograms + find-splits.
pub(crate) fn split_slots_max_entries(budget: u64) -> u32 {
    let (fixed, each) = split_slots_costs(0);
    // fixed + each + 2 * ceil(m / 64) <= budget
    let q = budget.saturating_sub(fixed + each) / 2;
    (q * WG).min(u32::MAX as u64) as u32
}

/// Features one `split_slots` workgroup takes when its slots have at most `m` entries.
pub(crate) fn split_slots_features(budget: u64, m: u32) -> u32 {
    let (fixed, each) = split_slots_costs(m as u64);
    per_launch(budget, fixed, each)
}

/// Partial records one `merge_partials` invocation folds: the block loop's last pass, and
/// per block its pass and the 6-word copy (in case Mesa keeps it a loop; the 12-word copy
/// of the first block and the score's steps are fixed, 13 passes at most).
pub(crate) fn merge_blocks(budget: u64) -> u32 {
    per_launch(budget, 14, 8)
}

/// `begin..end` in ascending blocks of at most `per` (at least 1); one empty block when
/// the range is empty, so that a kernel still runs once.
pub(crate) fn blocks(begin: u32, end: u32, per: u32) -> impl Iterator<Item = (u32, u32)> {
    let per = per.max(1);
    let count = (end.saturating_sub(begin)).div_ceil(per).max(1);
    (0..count).map(move |i| {
        let a = begin + i * per;
        (a.min(end), a.saturating_add(per).min(end))
    })
}

#[cfg(test)]
mod tests {
    use wasi_gpu_backend::{
        Backend, BootstrapParams, CallBudget, CancelToken, HIST_WORDS, HistogramParams, NONE, RowSplitParams, SPLIT_WORDS, SplitParams,
        kernels,
    };

    use super::*;
    use crate::adapter::test_backend;
    use crate::backend::WgpuBackend;

    #[test]
    fn blocks_cover_the_range_in_order() {
        assert_eq!(blocks(0, 0, 5).collect::<Vec<_>>(), [(0, 0)]);
        assert_eq!(blocks(0, 10, 5).collect::<Vec<_>>(), [(0, 5), (5, 10)]);
        assert_eq!(blocks(0, 11, 5).collect::<Vec<_>>(), [(0, 5), (5, 10), (10, 11)]);
        assert_eq!(blocks(0, 3, u32::MAX).collect::<Vec<_>>(), [(0, 3)]);
        assert_eq!(blocks(0, u32::MAX, u32::MAX - 1).collect::<Vec<_>>(), [(0, u32::MAX - 1), (u32::MAX - 1, u32::MAX)]);
    }

    #[test]
    fn plans_fit_the_budget() {
        let b = LOOP_BUDGET;
        assert!(b < 65535);
        assert_eq!(bootstrap_trees(b) as u64 + 1, b);
        // find-splits: 256 bins leave room for 232 features a launch.
        for bins in [2, 17, 256] {
            let f = find_splits_features(b, bins) as u64;
            let bins = bins as u64;
            assert!((bins + 2) + f * (bins + 1) <= b && (bins + 2) + (f + 1) * (bins + 1) > b);
        }
        assert_eq!(find_splits_features(b, 256), 232);
        // split_small: 22 features of 32-entry slots a launch.
        assert_eq!(split_small_features(b, 32), 22);
        assert!(split_small_features(b, 16) > 80);
        // split_slots: the largest slot fits one feature a launch, and no larger one does.
        let m = split_slots_max_entries(b) as u64;
        let (fixed, each) = split_slots_costs(m);
        assert!(fixed + each <= b, "{m}");
        let (fixed, each) = split_slots_costs(m + WG);
        assert!(fixed + each > b, "{m}");
        assert!(m > 1_800_000);
        // 600,000 entries: 5 features a launch.
        assert_eq!(split_slots_features(b, 600_000), 5);
        let m = merge_blocks(b) as u64;
        assert!(14 + m * 8 <= b && m > 7000);
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
    }

    /// Asserts `got == want`, naming the first word that differs.
    fn same(got: &[u32], want: &[u32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
            panic!("{what}: word {i} is {:#x}, the CPU reference's {:#x}", got[i], want[i]);
        }
    }

    fn bytes(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// Uploads `bufs` as buffers 1.., runs `kernel` on their ids and returns the last one.
    fn run(b: &mut WgpuBackend, bufs: &[&[u32]], kernel: impl FnOnce(&mut WgpuBackend, &[u64])) -> Vec<u32> {
        let ids: Vec<u64> = (1..=bufs.len() as u64).collect();
        for (&id, words) in ids.iter().zip(bufs) {
            b.alloc(id, words.len() as u64 * 4).unwrap();
            b.write(id, 0, &bytes(words)).unwrap();
        }
        kernel(b, &ids);
        let last = *ids.last().unwrap();
        let out = b.read(last, 0, bufs[bufs.len() - 1].len() as u64 * 4).unwrap();
        for id in ids {
            b.free(id);
        }
        out.chunks(4).map(|q| u32::from_le_bytes(q.try_into().unwrap())).collect()
    }

    /// Loop budgets far below llvmpipe's, so that small inputs take every path of the
    /// bounded launch plans with several blocks: merges into the records in every split
    /// kernel, slots too large for a workgroup (one-slot histograms over several blocks of
    /// features), slot chunks after the first (a small scratch budget), blocks of trees and
    /// of histogram features. Every adapter runs them, hardware ones too.
    #[test]
    fn bounded_plans_match_the_reference() {
        let Some(mut b) = test_backend() else { return };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for (loop_budget, tight) in [(300u64, false), (300, true), (3000, false)] {
            b.loop_budget = loop_budget;
            let wg_max = split_slots_max_entries(loop_budget);
            // find-splits-rows: (rows, features, max_bins, trees, slots, masked); tree 0's
            // first `big` rows in the last slot (with the budget of 300, more than wg_max
            // entries), the others in slots of 1..60 rows; tree 1's rows anywhere (some in
            // no slot).
            // With `tight` scratch, the scan takes several chunks of slots.
            for (rows, features, max_bins, tree_count, slot_count, masked) in
                [(8000, 70, 64, 2, 300, true), (8000, 40, 256, 1, 90, false), (5000, 9, 16, 2, 5, true)]
            {
                // A quarter of the weights are 0.
                let big = (wg_max / 3 * 4 + 600).min(rows / 2);
                let scratch = if tight { (tree_count * rows * 4) as u64 + 600 } else { 1 << 30 };
                b.begin_call(&CallBudget { scratch_bytes: scratch, cancel: CancelToken::new() });
                let mask_words = if masked { u32::div_ceil(features, 32) } else { 0 };
                let slot_begin = 2;
                let min_samples_leaf = 2;
                let p = RowSplitParams { rows, features, max_bins, tree_count, slot_begin, slot_count, min_samples_leaf, mask_words };
                let mut bin_word = || (0..4).map(|l| rng.below(max_bins / 2 + 2) << (8 * l)).sum();
                let bins: Vec<u32> = (0..features * rows.div_ceil(4)).map(|_| bin_word()).collect();
                let targets: Vec<u32> = (0..rows).map(|_| rng.next()).collect();
                let n = tree_count * rows;
                let weights: Vec<u32> = (0..n).map(|_| rng.below(4)).collect();
                let mut node_of = Vec::new();
                let (mut slot, mut left) = (0, 0);
                for i in 0..n {
                    let (t, r) = (i / rows, i % rows);
                    node_of.push(if t == 0 && r < big {
                        slot_begin + slot_count - 1
                    } else if t == 0 {
                        if left == 0 {
                            (slot, left) = ((slot + 1) % (slot_count - 1), 1 + rng.below(60));
                        }
                        left -= 1;
                        slot_begin + slot
                    } else if rng.below(10) == 0 {
                        NONE
                    } else {
                        slot_begin + rng.below(slot_count)
                    });
                }
                let mask: Vec<u32> = (0..(slot_count * mask_words).max(1)).map(|_| rng.next() | 1).collect();
                let splits: Vec<u32> = (0..(slot_begin + slot_count) * SPLIT_WORDS + 3).map(|_| rng.next()).collect();
                let mut want = splits.clone();
                kernels::find_splits_rows(&p, &bins, &targets, &weights, &node_of, &mask, &mut want);
                let got = run(&mut b, &[&bins, &targets, &weights, &node_of, &mask, &splits], |b, i| {
                    b.find_splits_rows(&p, i[0], i[1], i[2], i[3], i[4], i[5]).unwrap()
                });
                same(&got, &want, &format!("find-splits-rows {p:?}, loop budget {loop_budget}, scratch {scratch}"));
            }
            b.begin_call(&CallBudget { scratch_bytes: 1 << 30, cancel: CancelToken::new() });
            // build-histograms + find-splits through the kernels' own entry points.
            let (rows, features, max_bins, tree_count, slot_count) = (500, 30, 32, 2, 3);
            let hp = HistogramParams { rows, features, max_bins, tree_count, slot_begin: 1, slot_count };
            let bins: Vec<u32> = (0..features * rows.div_ceil(4)).map(|_| rng.next() & 0x1f1f_1f1f).collect();
            let targets: Vec<u32> = (0..rows).map(|_| rng.next()).collect();
            let weights: Vec<u32> = (0..tree_count * rows).map(|_| rng.below(3)).collect();
            let node_of: Vec<u32> = (0..tree_count * rows).map(|_| rng.below(slot_count + 2)).collect();
            let hist: Vec<u32> = (0..slot_count * features * max_bins * HIST_WORDS).map(|_| rng.next()).collect();
            let mut want = hist.clone();
            kernels::build_histograms(&hp, &bins, &targets, &weights, &node_of, &mut want);
            let got = run(&mut b, &[&bins, &targets, &weights, &node_of, &hist], |b, i| {
                b.build_histograms(&hp, i[0], i[1], i[2], i[3], i[4]).unwrap()
            });
            same(&got, &want, &format!("build-histograms {hp:?}, loop budget {loop_budget}"));
            let sp = SplitParams { features, max_bins, slot_begin: 1, slot_count, min_samples_leaf: 1, mask_words: 1 };
            let mask: Vec<u32> = (0..slot_count).map(|_| rng.next() | 1).collect();
            let splits: Vec<u32> = (0..(slot_count + 1) * SPLIT_WORDS).map(|_| rng.next()).collect();
            let mut records = splits.clone();
            kernels::find_splits(&sp, &got, &mask, &mut records);
            let out = run(&mut b, &[&got, &mask, &splits], |b, i| b.find_splits(&sp, i[0], i[1], i[2]).unwrap());
            same(&out, &records, &format!("find-splits {sp:?}, loop budget {loop_budget}"));
            // bootstrap in blocks of trees.
            let bp = BootstrapParams { seed: rng.next() as u64, rows: 3, tree_begin: 7, tree_count: 1500, draws: 3 };
            let (mut weights, mut node_of) = (vec![5u32; 4500], vec![5u32; 4500]);
            let got_node_of = run(&mut b, &[&weights, &node_of], |b, i| b.bootstrap(&bp, i[0], i[1]).unwrap());
            kernels::bootstrap(&bp, &mut weights, &mut node_of);
            same(&got_node_of, &node_of, &format!("bootstrap {bp:?}, loop budget {loop_budget}"));
        }
    }
}
